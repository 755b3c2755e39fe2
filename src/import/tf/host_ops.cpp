// The host interpreter: TensorFlow ops evaluated on host values, one node at a time. It folds constants and
// shape arithmetic at import and runs the nodes a partial conversion leaves outside its segments.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "import/tf/tf_ops.h"

namespace eastrt::tfimport {

// ---------------------------------------------------------------- shape helpers

int normalise_axis(const tf::NodeDef& node, int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  EASTRT_CHECK(axis >= -r && axis < r, describe(node), ": axis ", axis, " is out of range for rank ", rank);
  return static_cast<int>(axis < 0 ? axis + r : axis);
}

StridedSliceSpec strided_slice_spec(const tf::NodeDef& node, const Shape& input, const std::vector<int64_t>& begin,
                                    const std::vector<int64_t>& end, const std::vector<int64_t>& strides) {
  const int64_t begin_mask = attr_int(node, "begin_mask", 0), end_mask = attr_int(node, "end_mask", 0);
  const int64_t ellipsis_mask = attr_int(node, "ellipsis_mask", 0), new_axis_mask = attr_int(node, "new_axis_mask", 0);
  const int64_t shrink_mask = attr_int(node, "shrink_axis_mask", 0);
  const int n = static_cast<int>(begin.size());
  EASTRT_CHECK(end.size() == begin.size() && strides.size() == begin.size() && n <= 32, describe(node),
               ": begin, end and strides must have the same length (at most 32)");
  EASTRT_CHECK((ellipsis_mask & (ellipsis_mask - 1)) == 0, describe(node), ": more than one ellipsis");
  auto bit = [](int64_t mask, int i) { return i < 63 && ((mask >> i) & 1) != 0; };
  const int rank = static_cast<int>(input.size());
  const bool implicit_ellipsis = ellipsis_mask == 0 || ellipsis_mask >= (int64_t{1} << n);

  // Sparse (as written) to dense (one entry per input dimension); new axes only shape the output.
  struct Dim {
    int64_t begin = 0, end = 0, stride = 1;
    bool begin_masked = true, end_masked = true, shrink = false;
  };
  std::vector<Dim> dense(static_cast<size_t>(rank));
  std::vector<int> gather;  // per output dimension: a dense index, or -1 for a new axis
  int full = 0;
  for (int i = 0; i < n + (implicit_ellipsis ? 1 : 0); ++i) {
    const bool ellipsis = i == n || bit(ellipsis_mask, i);
    if (ellipsis) {
      int after = 0;
      for (int j = i + 1; j < n; ++j) after += bit(new_axis_mask, j) ? 0 : 1;
      for (int next = std::min(rank, rank - after); full < next; ++full) gather.push_back(full);
    } else if (bit(new_axis_mask, i)) {
      gather.push_back(-1);
    } else {
      EASTRT_CHECK(full < rank, describe(node), ": slice of ", n, " entries for input of rank ", rank);
      Dim& d = dense[full];
      d = {begin[i], end[i], strides[i], bit(begin_mask, i), bit(end_mask, i), bit(shrink_mask, i)};
      if (!d.shrink) gather.push_back(full);
      ++full;
    }
  }
  for (; full < rank; ++full) gather.push_back(full);  // unreachable with an ellipsis, kept for safety

  StridedSliceSpec spec;
  for (int k = 0; k < rank; ++k) {
    const Dim& d = dense[k];
    const int64_t dim = input[k];
    EASTRT_CHECK(d.stride != 0, describe(node), ": stride 0 in dimension ", k);
    auto clamp_index = [&](int64_t x) { return std::clamp<int64_t>(x, -(int64_t{1} << 40), int64_t{1} << 40); };
    if (d.shrink) {
      int64_t x = clamp_index(d.begin);
      x = x < 0 ? x + dim : x;
      EASTRT_CHECK(d.stride > 0, describe(node), ": only stride 1 is allowed on an indexed dimension");
      EASTRT_CHECK(x >= 0 && x < dim, describe(node), ": index ", d.begin, " is out of bounds for dimension ", k,
                   " of size ", dim);
      spec.start.push_back(x);
      spec.stride.push_back(1);
      spec.size.push_back(1);
      continue;
    }
    auto canonical = [&](int64_t x, bool masked, bool is_begin) {
      if (masked) return d.stride > 0 ? (is_begin ? int64_t{0} : dim) : (is_begin ? dim - 1 : int64_t{-1});
      x = clamp_index(x);
      x = x < 0 ? x + dim : x;
      return d.stride > 0 ? std::clamp<int64_t>(x, 0, dim) : std::clamp<int64_t>(x, -1, dim - 1);
    };
    const int64_t b = canonical(d.begin, d.begin_masked, true), e = canonical(d.end, d.end_masked, false);
    int64_t size = d.stride > 0 ? (e - b + d.stride - 1) / d.stride : (b - e + (-d.stride) - 1) / (-d.stride);
    spec.start.push_back(b);
    spec.stride.push_back(d.stride);
    spec.size.push_back(std::max<int64_t>(size, 0));
  }
  for (int g : gather) spec.output.push_back(g < 0 ? 1 : spec.size[g]);
  return spec;
}

Shape reshape_shape(const tf::NodeDef& node, const Shape& input, const std::vector<int64_t>& requested) {
  Shape out(requested.begin(), requested.end());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      EASTRT_CHECK(infer < 0, describe(node), ": shape ", to_string(out), " has more than one -1");
      infer = static_cast<int>(i);
      continue;
    }
    EASTRT_CHECK(out[i] >= 0 && out[i] <= kMaxHostElements, describe(node), ": shape ", to_string(out), " is invalid");
    known *= out[i];
    EASTRT_CHECK(known <= kMaxHostElements * 8, describe(node), ": shape ", to_string(out), " is too large");
  }
  if (infer >= 0) {
    EASTRT_CHECK(known > 0 && volume(input) % known == 0, describe(node), ": cannot reshape ", to_string(input),
                 " to ", to_string(out));
    out[infer] = volume(input) / known;
  }
  EASTRT_CHECK(volume(out) == volume(input), describe(node), ": cannot reshape ", to_string(input), " (",
               volume(input), " elements) to ", to_string(out));
  return out;
}

Shape squeeze_shape(const tf::NodeDef& node, const Shape& input) {
  std::vector<int64_t> dims = attr_ints(node, "squeeze_dims", std::vector<int64_t>{});
  if (dims.empty() && find_attr(node, "axis")) dims = attr_ints(node, "axis");
  std::vector<bool> drop(input.size(), dims.empty());
  if (dims.empty()) {
    for (size_t d = 0; d < input.size(); ++d) drop[d] = input[d] == 1;
  } else {
    for (int64_t a : dims) {
      int d = normalise_axis(node, a, input.size());
      EASTRT_CHECK(input[d] == 1, describe(node), ": cannot squeeze dimension ", d, " of ", to_string(input));
      drop[d] = true;
    }
  }
  Shape out;
  for (size_t d = 0; d < input.size(); ++d)
    if (!drop[d]) out.push_back(input[d]);
  return out;
}

Shape expand_dims_shape(const tf::NodeDef& node, const Shape& input, int64_t axis) {
  int a = normalise_axis(node, axis, input.size() + 1);
  Shape out = input;
  out.insert(out.begin() + a, 1);
  return out;
}

std::vector<int64_t> split_sizes(const tf::NodeDef& node, int64_t extent, const Value* size_splits) {
  const int64_t num = attr_int(node, "num_split");
  EASTRT_CHECK(num >= 1 && num <= 4096, describe(node), ": num_split ", num, " is invalid");
  if (!size_splits) {
    EASTRT_CHECK(extent % num == 0, describe(node), ": dimension of ", extent, " does not split into ", num, " parts");
    return std::vector<int64_t>(static_cast<size_t>(num), extent / num);
  }
  EASTRT_CHECK(!size_splits->is_float() && size_splits->size() == num, describe(node), ": size_splits must hold ",
               num, " integers");
  std::vector<int64_t> sizes = size_splits->i;
  int infer = -1;
  int64_t total = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] == -1 && infer < 0) {
      infer = static_cast<int>(k);
      continue;
    }
    EASTRT_CHECK(sizes[k] >= 0, describe(node), ": invalid split size ", sizes[k]);
    total += sizes[k];
  }
  if (infer >= 0) sizes[infer] = extent - total;
  EASTRT_CHECK((infer < 0 ? total : total + sizes[infer]) == extent && (infer < 0 || sizes[infer] >= 0),
               describe(node), ": split sizes do not add up to ", extent);
  return sizes;
}

// ---------------------------------------------------------------- the interpreter

namespace {

using Ints = std::vector<int64_t>;

Value zeros(const tf::NodeDef& node, DataType type, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    EASTRT_CHECK(d >= 0, describe(node), ": negative dimension in ", to_string(shape));
    n *= d;
    EASTRT_CHECK(n <= kMaxHostElements, describe(node), ": result of shape ", to_string(shape), " is too large");
  }
  Value v;
  v.type = type;
  v.shape = shape;
  if (v.is_float()) v.f.assign(static_cast<size_t>(n), 0.0f);
  else v.i.assign(static_cast<size_t>(n), 0);
  return v;
}

Ints int_values(const tf::NodeDef& node, const Value& v, const char* what) {
  EASTRT_CHECK(!v.is_float(), describe(node), ": ", what, " must be integers");
  return v.i;
}

int64_t scalar_int(const tf::NodeDef& node, const Value& v, const char* what) {
  EASTRT_CHECK(!v.is_float() && v.size() == 1, describe(node), ": ", what, " must be one integer");
  return v.i[0];
}

void copy_element(Value& dst, int64_t k, const Value& src, int64_t j) {
  if (dst.is_float()) dst.f[k] = src.f[j];
  else dst.i[k] = src.i[j];
}

Ints row_major_strides(const Shape& shape) {
  Ints strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

// out[idx] = in[base + Σ idx[d]·step[d]]: slices, strided slices and transposes in one loop.
// The offset of every element of `shape`, in order, in a tensor walked from `base` by step[d] along each d.
Ints strided_offsets(int64_t base, const Ints& step, const Shape& shape) {
  const size_t rank = shape.size();
  Ints offsets(static_cast<size_t>(volume(shape)));
  Ints idx(rank, 0);
  int64_t offset = base;
  for (size_t k = 0; k < offsets.size(); ++k) {
    offsets[k] = offset;
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        offset += step[d];
        break;
      }
      offset -= step[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
  return offsets;
}

Value gather(const tf::NodeDef& node, const Value& in, int64_t base, const Ints& step, const Shape& out_shape) {
  Value out = zeros(node, in.type, out_shape);
  const Ints offsets = strided_offsets(base, step, out_shape);
  for (int64_t k = 0; k < out.size(); ++k) copy_element(out, k, in, offsets[static_cast<size_t>(k)]);
  return out;
}

// Offsets into a tensor of shape `in`, broadcast (numpy rules) to `out`, of every element of `out`.
Ints broadcast_offsets(const Shape& in, const Shape& out) {
  const size_t rank = out.size(), lead = rank - in.size();
  Ints stride(rank, 0);
  int64_t s = 1;
  for (size_t d = rank; d-- > lead;) {
    stride[d] = in[d - lead] == 1 ? 0 : s;
    s *= in[d - lead];
  }
  return strided_offsets(0, stride, out);
}

Shape broadcast_shape(const tf::NodeDef& node, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    EASTRT_CHECK(da == db || da == 1 || db == 1, describe(node), ": shapes ", to_string(a), " and ", to_string(b),
                 " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap(DataType type, int64_t x) { return type == DataType::kInt32 ? static_cast<int32_t>(x) : x; }

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Element-wise binary ops with broadcasting: float ops in double then rounded (exact for + − × ÷), integer
// ops in int64 wrapped to the type.
Value binary(const tf::NodeDef& node, const Value& a, const Value& b) {
  const std::string& op = node.op();
  const Shape shape = broadcast_shape(node, a.shape, b.shape);
  const bool compare = op == "Less" || op == "LessEqual" || op == "Greater" || op == "GreaterEqual" ||
                       op == "Equal" || op == "NotEqual" || op == "LogicalAnd" || op == "LogicalOr";
  const bool is_float = a.is_float() || b.is_float();
  DataType type = compare ? DataType::kBool : is_float ? DataType::kFloat32
                  : (a.type == DataType::kInt64 || b.type == DataType::kInt64) ? DataType::kInt64 : a.type;
  Value out = zeros(node, type, shape);
  const Ints ia = broadcast_offsets(a.shape, shape), ib = broadcast_offsets(b.shape, shape);
  for (int64_t k = 0; k < out.size(); ++k) {
    if (is_float) {
      const double x = a.at(ia[k]), y = b.at(ib[k]);
      double r;
      if (op == "Add" || op == "AddV2" || op == "BiasAdd") r = x + y;
      else if (op == "Sub") r = x - y;
      else if (op == "Mul") r = x * y;
      else if (op == "RealDiv" || op == "Div" || op == "TruncateDiv") r = x / y;
      else if (op == "FloorDiv") r = std::floor(x / y);
      else if (op == "FloorMod") r = x - std::floor(x / y) * y;
      else if (op == "Maximum") r = std::isnan(x) || std::isnan(y) ? NAN : std::max(x, y);
      else if (op == "Minimum") r = std::isnan(x) || std::isnan(y) ? NAN : std::min(x, y);
      else if (op == "Pow") r = std::pow(x, y);
      else if (op == "SquaredDifference") r = (x - y) * (x - y);
      else if (op == "Less") r = x < y;
      else if (op == "LessEqual") r = x <= y;
      else if (op == "Greater") r = x > y;
      else if (op == "GreaterEqual") r = x >= y;
      else if (op == "Equal") r = x == y;
      else if (op == "NotEqual") r = x != y;
      else throw_error(describe(node), ": not a float binary op");
      if (compare) out.i[k] = r != 0;
      else out.f[k] = static_cast<float>(r);
      continue;
    }
    const int64_t x = a.i[ia[k]], y = b.i[ib[k]];
    const bool divides = op == "RealDiv" || op == "Div" || op == "TruncateDiv" || op == "FloorDiv" || op == "FloorMod";
    EASTRT_CHECK(!divides || y != 0, describe(node), ": integer division by zero");
    EASTRT_CHECK(!divides || x != INT64_MIN || y != -1, describe(node), ": integer division overflows");
    auto u = [](int64_t v) { return static_cast<uint64_t>(v); };  // wrap-around arithmetic without UB
    int64_t r;
    if (op == "Add" || op == "AddV2" || op == "BiasAdd") r = static_cast<int64_t>(u(x) + u(y));
    else if (op == "Sub") r = static_cast<int64_t>(u(x) - u(y));
    else if (op == "Mul") r = static_cast<int64_t>(u(x) * u(y));
    else if (op == "RealDiv" || op == "Div" || op == "TruncateDiv") r = x / y;
    else if (op == "FloorDiv") r = floor_div(x, y);
    else if (op == "FloorMod") r = x - floor_div(x, y) * y;
    else if (op == "Maximum") r = std::max(x, y);
    else if (op == "Minimum") r = std::min(x, y);
    else if (op == "SquaredDifference") r = static_cast<int64_t>(u(x - y) * u(x - y));
    else if (op == "Less") r = x < y;
    else if (op == "LessEqual") r = x <= y;
    else if (op == "Greater") r = x > y;
    else if (op == "GreaterEqual") r = x >= y;
    else if (op == "Equal") r = x == y;
    else if (op == "NotEqual") r = x != y;
    else if (op == "LogicalAnd") r = x && y;
    else if (op == "LogicalOr") r = x || y;
    else throw_error(describe(node), ": not an integer binary op");
    out.i[k] = wrap(type, r);
  }
  return out;
}

double unary_float(const std::string& op, double x) {
  if (op == "Neg") return -x;
  if (op == "Abs") return std::fabs(x);
  if (op == "Square") return x * x;
  if (op == "Sqrt") return std::sqrt(x);
  if (op == "Rsqrt") return 1.0 / std::sqrt(x);
  if (op == "Exp") return std::exp(x);
  if (op == "Log") return std::log(x);
  if (op == "Floor") return std::floor(x);
  if (op == "Ceil") return std::ceil(x);
  if (op == "Round") return std::nearbyint(x);  // half to even, as TensorFlow
  if (op == "Relu") return x > 0 ? x : 0.0;
  if (op == "Relu6") return std::clamp(x, 0.0, 6.0);
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "Tanh") return std::tanh(x);
  if (op == "Reciprocal" || op == "Inv") return 1.0 / x;
  if (op == "Sign") return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
  if (op == "Sin") return std::sin(x);
  if (op == "Cos") return std::cos(x);
  if (op == "Softplus") return std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.0);
  return NAN;
}

const std::set<std::string>& unary_ops() {
  static const std::set<std::string> ops{"Neg", "Abs", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Floor", "Ceil",
                                         "Round", "Relu", "Relu6", "Sigmoid", "Tanh", "Reciprocal", "Inv", "Sign",
                                         "Sin", "Cos", "Softplus", "LogicalNot"};
  return ops;
}

const std::set<std::string>& binary_ops() {
  static const std::set<std::string> ops{"Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "TruncateDiv", "FloorDiv",
                                         "FloorMod", "Maximum", "Minimum", "Pow", "SquaredDifference", "Less",
                                         "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual", "LogicalAnd",
                                         "LogicalOr"};
  return ops;
}

Value unary(const tf::NodeDef& node, const Value& a) {
  const std::string& op = node.op();
  Value out = a;
  if (a.is_float()) {
    EASTRT_CHECK(op != "LogicalNot", describe(node), ": expects a bool input");
    for (float& x : out.f) x = static_cast<float>(unary_float(op, x));
    return out;
  }
  for (int64_t& x : out.i) {
    if (op == "Neg") x = wrap(a.type, static_cast<int64_t>(0 - static_cast<uint64_t>(x)));
    else if (op == "Abs") x = wrap(a.type, x < 0 ? static_cast<int64_t>(0 - static_cast<uint64_t>(x)) : x);
    else if (op == "Square") x = wrap(a.type, static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(x)));
    else if (op == "Relu") x = std::max<int64_t>(x, 0);
    else if (op == "Sign") x = (x > 0) - (x < 0);
    else if (op == "LogicalNot") x = !x;
    else if (op == "Floor" || op == "Ceil" || op == "Round") continue;
    else throw_error(describe(node), " is not supported on integer tensors by the host interpreter");
  }
  return out;
}

Value reduce(const tf::NodeDef& node, const Value& in, const Value& axes_value) {
  const std::string& op = node.op();
  std::vector<bool> reduced(in.shape.size(), false);
  for (int64_t a : int_values(node, axes_value, "reduction indices")) reduced[normalise_axis(node, a, in.shape.size())] = true;
  const bool keep = attr_bool(node, "keep_dims", false);
  Shape kept, out_shape;  // kept: the input shape with reduced dimensions set to 1
  int64_t count = 1;
  for (size_t d = 0; d < in.shape.size(); ++d) {
    kept.push_back(reduced[d] ? 1 : in.shape[d]);
    if (reduced[d]) count *= in.shape[d];
    if (!reduced[d] || keep) out_shape.push_back(reduced[d] ? 1 : in.shape[d]);
  }
  DataType type = (op == "All" || op == "Any") ? DataType::kBool : in.type;
  const double init = op == "Prod" || op == "All" ? 1.0
                      : op == "Max" ? -std::numeric_limits<double>::infinity()
                      : op == "Min" ? std::numeric_limits<double>::infinity() : 0.0;
  Value out = zeros(node, type, out_shape);
  std::vector<double> acc(static_cast<size_t>(out.size()), init);
  std::vector<int64_t> iacc(static_cast<size_t>(out.size()), op == "Prod" || op == "All" ? 1
                            : op == "Max" ? INT64_MIN : op == "Min" ? INT64_MAX : 0);
  // Each input element's slot is its index with the reduced dimensions dropped.
  const Ints strides = row_major_strides(kept);
  Ints idx(in.shape.size(), 0);
  for (int64_t k = 0; k < in.size(); ++k) {
    int64_t slot = 0;
    for (size_t d = 0; d < idx.size(); ++d) slot += reduced[d] ? 0 : idx[d] * strides[d];
    if (in.is_float()) {
      double x = in.f[k];
      double& r = acc[slot];
      if (op == "Sum" || op == "Mean") r += x;
      else if (op == "Prod") r *= x;
      else if (op == "Max") r = std::isnan(x) ? x : std::max(r, x);
      else if (op == "Min") r = std::isnan(x) ? x : std::min(r, x);
      else throw_error(describe(node), ": expects a bool input");
    } else {
      int64_t x = in.i[k];
      int64_t& r = iacc[slot];
      if (op == "Sum" || op == "Mean") r = static_cast<int64_t>(static_cast<uint64_t>(r) + static_cast<uint64_t>(x));
      else if (op == "Prod") r = static_cast<int64_t>(static_cast<uint64_t>(r) * static_cast<uint64_t>(x));
      else if (op == "Max") r = std::max(r, x);
      else if (op == "Min") r = std::min(r, x);
      else if (op == "All") r = r && x;
      else if (op == "Any") r = r || x;
    }
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  for (int64_t k = 0; k < out.size(); ++k) {
    if (out.is_float()) out.f[k] = static_cast<float>(op == "Mean" ? acc[k] / static_cast<double>(count) : acc[k]);
    else out.i[k] = wrap(type, op == "Mean" ? (count ? iacc[k] / count : 0) : iacc[k]);
  }
  return out;
}

Value transpose(const tf::NodeDef& node, const Value& in, const Ints& perm) {
  EASTRT_CHECK(perm.size() == in.shape.size(), describe(node), ": permutation of ", perm.size(),
               " entries for a tensor of rank ", in.shape.size());
  const Ints strides = row_major_strides(in.shape);
  Shape shape;
  Ints step;
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    EASTRT_CHECK(p >= 0 && p < static_cast<int64_t>(perm.size()) && !seen[p], describe(node), ": invalid permutation");
    seen[p] = true;
    shape.push_back(in.shape[p]);
    step.push_back(strides[p]);
  }
  return gather(node, in, 0, step, shape);
}

Value slice(const tf::NodeDef& node, const Value& in, const Shape& start, const Shape& stride, const Shape& size) {
  const Ints strides = row_major_strides(in.shape);
  int64_t base = 0;
  Ints step;
  for (size_t d = 0; d < in.shape.size(); ++d) {
    EASTRT_CHECK(size[d] == 0 || (start[d] >= 0 && start[d] < in.shape[d] && start[d] + (size[d] - 1) * stride[d] >= 0 &&
                                  start[d] + (size[d] - 1) * stride[d] < in.shape[d]),
                 describe(node), ": slice leaves dimension ", d, " of ", to_string(in.shape));
    base += size[d] == 0 ? 0 : start[d] * strides[d];
    step.push_back(stride[d] * strides[d]);
  }
  return gather(node, in, base, step, size);
}

Value concat(const tf::NodeDef& node, const std::vector<const Value*>& parts, int64_t axis_value) {
  EASTRT_CHECK(!parts.empty(), describe(node), ": nothing to concatenate");
  const Shape& first = parts[0]->shape;
  const int axis = normalise_axis(node, axis_value, first.size());
  Shape shape = first;
  shape[axis] = 0;
  for (const Value* p : parts) {
    EASTRT_CHECK(p->shape.size() == first.size() && p->is_float() == parts[0]->is_float(), describe(node),
                 ": inputs of shapes ", to_string(first), " and ", to_string(p->shape), " do not concatenate");
    for (size_t d = 0; d < first.size(); ++d)
      EASTRT_CHECK(static_cast<int>(d) == axis || p->shape[d] == first[d], describe(node), ": inputs of shapes ",
                   to_string(first), " and ", to_string(p->shape), " differ outside axis ", axis);
    shape[axis] += p->shape[axis];
  }
  Value out = zeros(node, parts[0]->type, shape);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const Value* p : parts) {
      const int64_t run = p->shape[axis] * inner;
      for (int64_t j = 0; j < run; ++j) copy_element(out, k++, *p, o * run + j);
    }
  return out;
}

Value cumsum(const tf::NodeDef& node, const Value& in, int64_t axis_value) {
  const int axis = normalise_axis(node, axis_value, in.shape.size());
  const bool exclusive = attr_bool(node, "exclusive", false), reverse = attr_bool(node, "reverse", false);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= in.shape[d];
  for (size_t d = axis + 1; d < in.shape.size(); ++d) inner *= in.shape[d];
  const int64_t n = in.shape[axis];
  Value out = zeros(node, in.type, in.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      float fsum = 0.0f;  // TensorFlow scans in the tensor's own type
      int64_t isum = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t a = reverse ? n - 1 - s : s;
        const int64_t k = (o * n + a) * inner + j;
        if (in.is_float()) {
          if (exclusive) {
            out.f[k] = fsum;
            fsum += in.f[k];
          } else {
            fsum += in.f[k];
            out.f[k] = fsum;
          }
        } else {
          if (exclusive) out.i[k] = isum;
          isum = wrap(in.type, static_cast<int64_t>(static_cast<uint64_t>(isum) + static_cast<uint64_t>(in.i[k])));
          if (!exclusive) out.i[k] = isum;
        }
      }
    }
  return out;
}

// Local response normalisation across the last (channel) dimension, NHWC.
Value lrn(const tf::NodeDef& node, const Value& in) {
  EASTRT_CHECK(in.is_float() && in.shape.size() == 4, describe(node), ": expects a 4-D float input");
  const int64_t radius = attr_int(node, "depth_radius", 5);
  const double bias = attr_float(node, "bias", 1.0f), alpha = attr_float(node, "alpha", 1.0f);
  const double beta = attr_float(node, "beta", 0.5f);
  const int64_t c = in.shape[3], pixels = in.size() / std::max<int64_t>(c, 1);
  Value out = in;
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t k = 0; k < c; ++k) {
      double sum = 0;
      for (int64_t j = std::max<int64_t>(0, k - radius); j <= std::min(c - 1, k + radius); ++j)
        sum += static_cast<double>(in.f[p * c + j]) * in.f[p * c + j];
      out.f[p * c + k] = static_cast<float>(in.f[p * c + k] / std::pow(bias + alpha * sum, beta));
    }
  return out;
}

Value pad(const tf::NodeDef& node, const Value& in, const Value& paddings, double fill) {
  const Ints p = int_values(node, paddings, "paddings");
  const size_t rank = in.shape.size();
  EASTRT_CHECK(p.size() == 2 * rank, describe(node), ": paddings must be [", rank, ", 2]");
  Shape shape;
  for (size_t d = 0; d < rank; ++d) {
    EASTRT_CHECK(p[2 * d] >= 0 && p[2 * d + 1] >= 0 && p[2 * d] < kMaxHostElements && p[2 * d + 1] < kMaxHostElements,
                 describe(node), ": negative or huge padding");
    shape.push_back(in.shape[d] + p[2 * d] + p[2 * d + 1]);
  }
  Value out = zeros(node, in.type, shape);
  if (out.is_float()) std::fill(out.f.begin(), out.f.end(), static_cast<float>(fill));
  else std::fill(out.i.begin(), out.i.end(), static_cast<int64_t>(fill));
  const Ints out_strides = row_major_strides(shape);
  Ints idx(rank, 0);
  for (int64_t k = 0; k < in.size(); ++k) {
    int64_t j = 0;
    for (size_t d = 0; d < rank; ++d) j += (idx[d] + p[2 * d]) * out_strides[d];
    copy_element(out, j, in, k);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

Value tile(const tf::NodeDef& node, const Value& in, const Value& multiples) {
  const Ints m = int_values(node, multiples, "multiples");
  EASTRT_CHECK(m.size() == in.shape.size(), describe(node), ": multiples must have one entry per dimension");
  Shape shape;
  for (size_t d = 0; d < m.size(); ++d) {
    EASTRT_CHECK(m[d] >= 0 && m[d] <= kMaxHostElements, describe(node), ": invalid multiple ", m[d]);
    shape.push_back(in.shape[d] * m[d]);
    EASTRT_CHECK(shape.back() <= kMaxHostElements, describe(node), ": result is too large");
  }
  Value out = zeros(node, in.type, shape);
  const Ints in_strides = row_major_strides(in.shape);
  Ints idx(shape.size(), 0);
  for (int64_t k = 0; k < out.size(); ++k) {
    int64_t j = 0;
    for (size_t d = 0; d < shape.size(); ++d) j += (idx[d] % in.shape[d]) * in_strides[d];
    copy_element(out, k, in, j);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

Value cast(const tf::NodeDef& node, const Value& in) {
  const int dst = attr_type(node, "DstT");
  DataType type = value_type(dst, describe(node));
  Value out = zeros(node, type, in.shape);
  for (int64_t k = 0; k < in.size(); ++k) {
    if (out.is_float()) {
      float x = static_cast<float>(in.at(k));
      if (dst == tf::DT_HALF) x = half_to_float(float_to_half(x));
      out.f[k] = x;
    } else if (type == DataType::kBool) {
      out.i[k] = in.at(k) != 0;
    } else {
      int64_t x = in.is_float() ? saturate_to_int64(in.f[k]) : in.i[k];
      if (dst == tf::DT_UINT8) x = static_cast<uint8_t>(x);
      else if (dst == tf::DT_INT8) x = static_cast<int8_t>(x);
      else if (dst == tf::DT_INT16) x = static_cast<int16_t>(x);
      else if (dst == tf::DT_UINT16) x = static_cast<uint16_t>(x);
      out.i[k] = wrap(type, x);
    }
  }
  return out;
}

Value range(const tf::NodeDef& node, const Value& start, const Value& limit, const Value& delta) {
  EASTRT_CHECK(start.size() == 1 && limit.size() == 1 && delta.size() == 1, describe(node), ": expects scalars");
  const double s = start.at(0), l = limit.at(0), d = delta.at(0);
  EASTRT_CHECK(d != 0 && std::isfinite(s) && std::isfinite(l) && std::isfinite(d), describe(node), ": invalid range");
  const double n = (d > 0 ? l > s : l < s) ? std::ceil(std::fabs((l - s) / d)) : 0.0;
  EASTRT_CHECK(n <= static_cast<double>(kMaxHostElements), describe(node), ": range is too long");
  Value out = zeros(node, start.type, {static_cast<int64_t>(n)});
  for (int64_t k = 0; k < out.size(); ++k) {
    if (out.is_float()) out.f[k] = static_cast<float>(s + static_cast<double>(k) * d);
    else out.i[k] = start.i[0] + k * delta.i[0];
  }
  return out;
}

Value shape_value(const tf::NodeDef& node, const Shape& shape) {
  DataType type = value_type(attr_type(node, "out_type", tf::DT_INT32), describe(node));
  return Value::ints(type, {static_cast<int64_t>(shape.size())}, Ints(shape.begin(), shape.end()));
}

const std::set<std::string>& other_ops() {
  static const std::set<std::string> ops{
      "Const", "Identity", "StopGradient", "Snapshot", "PreventGradient", "IdentityN", "PlaceholderWithDefault",
      "Shape", "ShapeN", "Size", "Rank", "Cast", "Fill", "Range", "ZerosLike", "OnesLike", "Pack", "Unpack",
      "ConcatV2", "Concat", "Split", "SplitV", "Slice", "StridedSlice", "Reshape", "Squeeze", "ExpandDims",
      "Transpose", "Tile", "Pad", "PadV2", "Sum", "Prod", "Mean", "Max", "Min", "All", "Any", "BiasAdd", "Cumsum",
      "LRN"};
  return ops;
}

}  // namespace

int min_inputs(const std::string& op) {
  static const std::map<std::string, int> counts{
      {"FusedBatchNorm", 5}, {"FusedBatchNormV2", 5}, {"FusedBatchNormV3", 5}, {"StridedSlice", 4},
      {"Slice", 3},          {"SplitV", 3},           {"Range", 3},            {"Conv2D", 2},
      {"DepthwiseConv2dNative", 2}, {"BiasAdd", 2},   {"Pad", 2},              {"PadV2", 2},
      {"ConcatV2", 2},       {"Concat", 2},           {"Split", 2},            {"ResizeBilinear", 2},
      {"ResizeNearestNeighbor", 2}, {"MatMul", 2},    {"Reshape", 2},          {"ExpandDims", 2},
      {"Transpose", 2},      {"Tile", 2},             {"Fill", 2},             {"Cumsum", 2},
      {"Sum", 2}, {"Prod", 2}, {"Mean", 2}, {"Max", 2}, {"Min", 2}, {"All", 2}, {"Any", 2}};
  auto it = counts.find(op);
  if (it != counts.end()) return it->second;
  if (binary_ops().count(op)) return 2;
  if (op == "Const" || op == "Placeholder" || op == "IdentityN" || op == "ShapeN" || op == "NoOp") return 0;
  return 1;
}

void check_input_count(const tf::NodeDef& node, size_t count) {
  const int needed = min_inputs(node.op());
  EASTRT_CHECK(count >= static_cast<size_t>(needed), describe(node), " has ", count, " data input",
               count == 1 ? "" : "s", "; it needs ", needed);
}

bool host_op_supported(const std::string& op) {
  return other_ops().count(op) || unary_ops().count(op) || binary_ops().count(op);
}

std::vector<Value> run_host_op(const tf::NodeDef& node, const std::vector<Value>& in) {
  const std::string& op = node.op();
  check_input_count(node, in.size());
  auto need = [&](size_t n) {
    EASTRT_CHECK(in.size() >= n, describe(node), " needs ", n, " inputs, has ", in.size());
  };
  if (op == "Const") {
    const tf::AttrValue* value = find_attr(node, "value");
    EASTRT_CHECK(value && value->value_case() == tf::AttrValue::kTensor, describe(node), ": no tensor value");
    return {decode_tensor(value->tensor(), describe(node))};
  }
  if (op == "IdentityN") return in;
  if (op == "ShapeN") {
    std::vector<Value> out;
    for (const Value& v : in) out.push_back(shape_value(node, v.shape));
    return out;
  }
  need(op == "Fill" || op == "Reshape" ? 2 : 1);
  const Value& x = in[0];
  if (op == "Identity" || op == "StopGradient" || op == "Snapshot" || op == "PreventGradient" ||
      op == "PlaceholderWithDefault")
    return {x};
  if (op == "Shape") return {shape_value(node, x.shape)};
  if (op == "Size" || op == "Rank") {
    DataType type = value_type(attr_type(node, "out_type", tf::DT_INT32), describe(node));
    return {Value::ints(type, {}, {op == "Size" ? volume(x.shape) : static_cast<int64_t>(x.shape.size())})};
  }
  if (op == "Cast") return {cast(node, x)};
  if (op == "ZerosLike" || op == "OnesLike") {
    Value out = zeros(node, x.type, x.shape);
    if (op == "OnesLike") {
      std::fill(out.f.begin(), out.f.end(), 1.0f);
      std::fill(out.i.begin(), out.i.end(), 1);
    }
    return {out};
  }
  if (unary_ops().count(op)) return {unary(node, x)};
  if (op == "Pack") {
    const int axis = normalise_axis(node, attr_int(node, "axis", 0), x.shape.size() + 1);
    std::vector<Value> parts;
    std::vector<const Value*> pointers;
    Shape expanded = x.shape;
    expanded.insert(expanded.begin() + axis, 1);
    for (const Value& v : in) {
      EASTRT_CHECK(v.shape == x.shape, describe(node), ": inputs of shapes ", to_string(x.shape), " and ",
                   to_string(v.shape), " do not stack");
      parts.push_back(v);
      parts.back().shape = expanded;
    }
    for (const Value& v : parts) pointers.push_back(&v);
    return {concat(node, pointers, axis)};
  }
  if (op == "Unpack") {
    const int axis = normalise_axis(node, attr_int(node, "axis", 0), x.shape.size());
    const int64_t num = attr_int(node, "num");
    EASTRT_CHECK(num == x.shape[axis], describe(node), ": num ", num, " differs from dimension ", x.shape[axis]);
    std::vector<Value> out;
    Shape start(x.shape.size(), 0), stride(x.shape.size(), 1), size = x.shape;
    size[axis] = 1;
    Shape squeezed = x.shape;
    squeezed.erase(squeezed.begin() + axis);
    for (int64_t k = 0; k < num; ++k) {
      start[axis] = k;
      out.push_back(slice(node, x, start, stride, size));
      out.back().shape = squeezed;
    }
    return out;
  }
  if (op == "ConcatV2" || op == "Concat") {
    need(2);
    const bool axis_first = op == "Concat";
    const Value& axis = axis_first ? in.front() : in.back();
    std::vector<const Value*> parts;
    for (size_t k = axis_first ? 1 : 0; k < (axis_first ? in.size() : in.size() - 1); ++k) parts.push_back(&in[k]);
    return {concat(node, parts, scalar_int(node, axis, "axis"))};
  }
  if (op == "Split" || op == "SplitV") {
    need(op == "Split" ? 2 : 3);
    const Value& value = op == "Split" ? in[1] : in[0];
    const int axis = normalise_axis(node, scalar_int(node, op == "Split" ? in[0] : in[2], "axis"), value.shape.size());
    std::vector<int64_t> sizes = split_sizes(node, value.shape[axis], op == "SplitV" ? &in[1] : nullptr);
    std::vector<Value> out;
    Shape start(value.shape.size(), 0), stride(value.shape.size(), 1), size = value.shape;
    for (int64_t s : sizes) {
      size[axis] = s;
      out.push_back(slice(node, value, start, stride, size));
      start[axis] += s;
    }
    return out;
  }
  if (op == "Slice") {
    need(3);
    Ints begin = int_values(node, in[1], "begin"), size = int_values(node, in[2], "size");
    EASTRT_CHECK(begin.size() == x.shape.size() && size.size() == x.shape.size(), describe(node),
                 ": begin and size need one entry per dimension");
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] == -1) size[d] = x.shape[d] - begin[d];
      EASTRT_CHECK(begin[d] >= 0 && size[d] >= 0 && begin[d] <= x.shape[d] && size[d] <= x.shape[d] - begin[d],
                   describe(node), ": slice leaves dimension ", d, " of ", to_string(x.shape));
    }
    return {slice(node, x, begin, Shape(x.shape.size(), 1), size)};
  }
  if (op == "StridedSlice") {
    need(4);
    StridedSliceSpec spec = strided_slice_spec(node, x.shape, int_values(node, in[1], "begin"),
                                               int_values(node, in[2], "end"), int_values(node, in[3], "strides"));
    Value out = slice(node, x, spec.start, spec.stride, spec.size);
    out.shape = spec.output;
    return {out};
  }
  if (op == "Reshape") {
    Value out = x;
    out.shape = reshape_shape(node, x.shape, int_values(node, in[1], "shape"));
    return {out};
  }
  if (op == "Squeeze") {
    Value out = x;
    out.shape = squeeze_shape(node, x.shape);
    return {out};
  }
  if (op == "ExpandDims") {
    need(2);
    Value out = x;
    out.shape = expand_dims_shape(node, x.shape, scalar_int(node, in[1], "axis"));
    return {out};
  }
  if (op == "Transpose") {
    need(2);
    return {transpose(node, x, int_values(node, in[1], "perm"))};
  }
  if (op == "Tile") {
    need(2);
    return {tile(node, x, in[1])};
  }
  if (op == "Pad" || op == "PadV2") {
    need(op == "Pad" ? 2 : 3);
    double fill = 0;
    if (op == "PadV2") {
      EASTRT_CHECK(in[2].size() == 1, describe(node), ": constant_values must be a scalar");
      fill = in[2].at(0);
    }
    return {pad(node, x, in[1], fill)};
  }
  if (op == "Fill") {
    EASTRT_CHECK(in[1].size() == 1, describe(node), ": value must be a scalar");
    Ints dims = int_values(node, x, "dims");
    Value out = zeros(node, in[1].type, Shape(dims.begin(), dims.end()));
    if (out.is_float()) std::fill(out.f.begin(), out.f.end(), in[1].f[0]);
    else std::fill(out.i.begin(), out.i.end(), in[1].i[0]);
    return {out};
  }
  if (op == "Range") {
    need(3);
    return {range(node, in[0], in[1], in[2])};
  }
  if (op == "Sum" || op == "Prod" || op == "Mean" || op == "Max" || op == "Min" || op == "All" || op == "Any") {
    need(2);
    return {reduce(node, x, in[1])};
  }
  if (op == "BiasAdd") {
    need(2);
    EASTRT_CHECK(in[1].shape.size() == 1 && !x.shape.empty(), describe(node), ": bias must be a vector");
    if (attr_string(node, "data_format", "NHWC") == "NCHW" && x.shape.size() >= 2) {
      Value bias = in[1];
      bias.shape = Shape(x.shape.size() - 1, 1);
      bias.shape[0] = in[1].shape[0];
      return {binary(node, x, bias)};
    }
    EASTRT_CHECK(in[1].shape[0] == x.shape.back(), describe(node), ": bias of ", in[1].shape[0], " for ",
                 to_string(x.shape));
    return {binary(node, x, in[1])};
  }
  if (binary_ops().count(op)) {
    need(2);
    return {binary(node, x, in[1])};
  }
  if (op == "Cumsum") {
    need(2);
    return {cumsum(node, x, scalar_int(node, in[1], "axis"))};
  }
  if (op == "LRN") return {lrn(node, x)};
  throw_error(describe(node), " is not supported by the host interpreter");
}

}  // namespace eastrt::tfimport
