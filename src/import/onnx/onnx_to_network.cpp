// ONNX → Network: parses a ModelProto and converts its graph node by node. Weights and shape arithmetic
// are folded to constants at import; each tensor keeps a layout, so Transposes cost nothing and spatial
// layers get ONNX's N,C,H,W activations as the NHWC the IR wants with as few shuffles as the graph allows.
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "eastrt/error.h"
#include "eastrt/onnx_import.h"
#include "import/onnx/onnx_model.pb.h"

namespace eastrt {
namespace {

using OnnxNode = onnx::NodeProto;

constexpr int64_t kMinOpset = 11, kMaxOpset = 18;
constexpr int64_t kMaxFoldedElements = int64_t{1} << 26;  // folded constants beyond this are refused

// A layout says where a value's ONNX dimensions sit in its Network tensor: Network dimension j holds ONNX
// dimension layout[j]; empty is ONNX's own order. Spatial layers want kToNhwc (N,C,H,W held as N,H,W,C).
using Layout = std::vector<int>;
const Layout kToNhwc{0, 2, 3, 1};

// A value folded at import. Integers are held exactly (|v| < 2^53, which shape arithmetic never leaves).
struct Folded {
  Shape shape;
  std::vector<double> data;
  bool integer = false;
  bool from_shape = false;  // derived from a tensor's shape: it follows the input size at run time
};
using FoldedPtr = std::shared_ptr<const Folded>;

struct Value {
  FoldedPtr constant;       // set for a folded value, or
  Tensor* tensor = nullptr; // a tensor of the Network,
  Layout layout = {};       // holding the value in this layout
};

Layout identity_layout(size_t rank) {
  Layout l(rank);
  std::iota(l.begin(), l.end(), 0);
  return l;
}
// The canonical form: ONNX's own order is the empty layout.
Layout canonical(Layout l) { return l == identity_layout(l.size()) ? Layout{} : l; }
Layout inverse(const Layout& l) {
  Layout inv(l.size());
  for (size_t j = 0; j < l.size(); ++j) inv[l[j]] = static_cast<int>(j);
  return inv;
}

std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

void check_size(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    EASTRT_CHECK(d >= 0 && d <= kMaxFoldedElements, "dimension ", d, " of shape ", to_string(shape), " is out of range");
    n *= d;
    EASTRT_CHECK(n <= kMaxFoldedElements, "a constant of shape ", to_string(shape), " is too large to fold");
  }
}

// out dimension j = in dimension perm[j].
Folded transpose(const Folded& in, const std::vector<int>& perm) {
  Folded out = in;
  for (size_t j = 0; j < perm.size(); ++j) out.shape[j] = in.shape[perm[j]];
  const std::vector<int64_t> in_strides = strides_of(in.shape), out_strides = strides_of(out.shape);
  for (size_t i = 0; i < in.data.size(); ++i) {
    int64_t src = 0, rest = static_cast<int64_t>(i);
    for (size_t j = 0; j < perm.size(); ++j) {
      src += rest / out_strides[j] * in_strides[perm[j]];
      rest %= out_strides[j];
    }
    out.data[i] = in.data[src];
  }
  return out;
}

Folded broadcast_fold(const Folded& a, const Folded& b, const std::function<double(double, double)>& f) {
  const size_t rank = std::max(a.shape.size(), b.shape.size());
  auto padded = [&](const Shape& s) {
    Shape p(rank - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  const Shape pa = padded(a.shape), pb = padded(b.shape);
  Folded out;
  out.shape.resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    EASTRT_CHECK(pa[d] == pb[d] || pa[d] == 1 || pb[d] == 1, "shapes ", to_string(a.shape), " and ",
                 to_string(b.shape), " do not broadcast");
    out.shape[d] = pa[d] == 1 ? pb[d] : pa[d];
  }
  check_size(out.shape);
  out.data.resize(static_cast<size_t>(volume(out.shape)));
  const auto sa = strides_of(pa), sb = strides_of(pb), so = strides_of(out.shape);
  for (size_t i = 0; i < out.data.size(); ++i) {
    int64_t ia = 0, ib = 0, rest = static_cast<int64_t>(i);
    for (size_t d = 0; d < rank; ++d) {
      const int64_t k = rest / so[d];
      rest %= so[d];
      if (pa[d] > 1) ia += k * sa[d];
      if (pb[d] > 1) ib += k * sb[d];
    }
    out.data[i] = f(a.data[ia], b.data[ib]);
  }
  out.integer = a.integer && b.integer;
  out.from_shape = a.from_shape || b.from_shape;
  return out;
}

int normalise_axis(int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  EASTRT_CHECK(axis >= -r && axis < r, "axis ", axis, " is out of range for rank ", rank);
  return static_cast<int>(axis < 0 ? axis + r : axis);
}

int64_t to_int(double v) {
  EASTRT_CHECK(!std::isnan(v), "NaN where an integer is expected");
  constexpr double kLimit = 9.0e18;  // INT64_MAX as Slice's "to the end" arrives as about 9.22e18
  return static_cast<int64_t>(std::clamp(v, -kLimit, kLimit));
}

// ---------------------------------------------------------------- tensors and attributes

size_t element_bytes(int type) {
  switch (type) {
    case onnx::TensorProto::FLOAT: case onnx::TensorProto::INT32: case onnx::TensorProto::UINT32: return 4;
    case onnx::TensorProto::DOUBLE: case onnx::TensorProto::INT64: case onnx::TensorProto::UINT64: return 8;
    case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16: return 2;
    case onnx::TensorProto::INT8: case onnx::TensorProto::UINT8: case onnx::TensorProto::BOOL: return 1;
    default: return 0;
  }
}

// One element of raw_data (little-endian, as ONNX stores it; the hosts eastrt runs on are little-endian).
double raw_element(int type, const char* p) {
  auto get = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
  switch (type) {
    case onnx::TensorProto::FLOAT: return get(float{});
    case onnx::TensorProto::DOUBLE: return get(double{});
    case onnx::TensorProto::FLOAT16: return half_to_float(get(uint16_t{}));
    case onnx::TensorProto::BFLOAT16: return bfloat16_to_float(get(uint16_t{}));
    case onnx::TensorProto::INT8: return get(int8_t{});
    case onnx::TensorProto::UINT8: return get(uint8_t{});
    case onnx::TensorProto::BOOL: return get(uint8_t{}) != 0;
    case onnx::TensorProto::INT16: return get(int16_t{});
    case onnx::TensorProto::UINT16: return get(uint16_t{});
    case onnx::TensorProto::INT32: return get(int32_t{});
    case onnx::TensorProto::UINT32: return get(uint32_t{});
    case onnx::TensorProto::INT64: return static_cast<double>(get(int64_t{}));
    default: return static_cast<double>(get(uint64_t{}));
  }
}

Folded decode_tensor(const onnx::TensorProto& t) {
  const std::string what = "tensor '" + t.name() + "'";
  EASTRT_CHECK(t.data_location() != onnx::TensorProto::EXTERNAL && t.external_data_size() == 0, what,
               " keeps its data in an external file, which the importer does not read; save the model with ",
               "its weights inside (onnx.save_model(..., save_as_external_data=False))");
  Folded out;
  out.shape.assign(t.dims().begin(), t.dims().end());
  check_size(out.shape);
  const int type = t.data_type();
  const size_t bytes = element_bytes(type);
  EASTRT_CHECK(bytes > 0, what, " has data type ", type, ", which the importer does not read (numbers only)");
  out.integer = type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::DOUBLE &&
                type != onnx::TensorProto::FLOAT16 && type != onnx::TensorProto::BFLOAT16;
  const size_t n = static_cast<size_t>(volume(out.shape));
  out.data.resize(n);
  if (t.has_raw_data()) {
    EASTRT_CHECK(t.raw_data().size() == n * bytes, what, " of shape ", to_string(out.shape), " holds ",
                 t.raw_data().size(), " bytes of raw data, expected ", n * bytes);
    for (size_t i = 0; i < n; ++i) out.data[i] = raw_element(type, t.raw_data().data() + i * bytes);
    return out;
  }
  auto take = [&](const auto& field, auto convert) {
    EASTRT_CHECK(static_cast<size_t>(field.size()) == n, what, " of shape ", to_string(out.shape), " holds ",
                 field.size(), " values, expected ", n);
    for (size_t i = 0; i < n; ++i) out.data[i] = convert(field[static_cast<int>(i)]);
  };
  auto same = [](auto v) { return static_cast<double>(v); };
  switch (type) {
    case onnx::TensorProto::FLOAT: take(t.float_data(), same); break;
    case onnx::TensorProto::DOUBLE: take(t.double_data(), same); break;
    case onnx::TensorProto::INT64: take(t.int64_data(), same); break;
    case onnx::TensorProto::UINT32: case onnx::TensorProto::UINT64: take(t.uint64_data(), same); break;
    // Half-precision values travel as their bit patterns in int32_data.
    case onnx::TensorProto::FLOAT16:
      take(t.int32_data(), [](int32_t v) { return double(half_to_float(static_cast<uint16_t>(v))); });
      break;
    case onnx::TensorProto::BFLOAT16:
      take(t.int32_data(), [](int32_t v) { return double(bfloat16_to_float(static_cast<uint16_t>(v))); });
      break;
    default: take(t.int32_data(), same); break;
  }
  return out;
}

const onnx::AttributeProto* find_attribute(const OnnxNode& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
int64_t attr_int(const OnnxNode& node, const std::string& name, int64_t fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->i() : fallback;
}
float attr_float(const OnnxNode& node, const std::string& name, float fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->f() : fallback;
}
std::string attr_string(const OnnxNode& node, const std::string& name, const std::string& fallback) {
  const auto* a = find_attribute(node, name);
  return a ? a->s() : fallback;
}
std::vector<int64_t> attr_ints(const OnnxNode& node, const std::string& name, std::vector<int64_t> fallback) {
  const auto* a = find_attribute(node, name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

// An attribute that the IR holds as int (strides, groups, paddings): beyond ±2^20 it is a corrupt file.
int small_int(int64_t v) {
  EASTRT_CHECK(v > -(1 << 20) && v < (1 << 20), "attribute value ", v, " is out of range");
  return static_cast<int>(v);
}

std::vector<float> to_floats(const Folded& c) { return {c.data.begin(), c.data.end()}; }
std::vector<int64_t> to_ints(const Folded& c) {
  std::vector<int64_t> v;
  for (double d : c.data) v.push_back(to_int(d));
  return v;
}
Weights to_weights(const Folded& c) { return make_weights(c.shape, to_floats(c)); }

FoldedPtr share(Folded f) { return std::make_shared<const Folded>(std::move(f)); }

// Padding of one spatial dimension for auto_pad SAME_UPPER / SAME_LOWER (the extra pixel after / before).
std::pair<int, int> same_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, bool upper) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - in);
  const int small = static_cast<int>(total / 2), large = static_cast<int>(total - total / 2);
  return upper ? std::pair{small, large} : std::pair{large, small};
}

// ---------------------------------------------------------------- the converter

class Importer {
 public:
  Importer(const onnx::ModelProto& model, std::string source, const OnnxImportOptions& options)
      : model_(model), source_(std::move(source)), options_(options) {}

  Network run() {
    const onnx::GraphProto& graph = model_.graph();
    check_opset();
    for (const auto& t : graph.initializer()) {
      EASTRT_CHECK(!t.name().empty(), source_, ": an initializer has no name");
      try {
        values_[t.name()] = Value{share(decode_tensor(t))};
      } catch (const Error& e) {
        throw_error(source_, ": initializer: ", e.what());
      }
    }
    add_inputs();
    for (int i = 0; i < graph.node_size(); ++i) {
      const OnnxNode& node = graph.node(i);
      std::ostringstream where;  // an unnamed node is known by its index
      where << source_ << ": node '";
      if (node.name().empty()) where << "#" << i;
      else where << node.name();
      where << "' (" << node.op_type() << ")";
      try {
        convert(node);
      } catch (const Error& e) {
        throw_error(where.str(), ": ", e.what());
      }
    }
    add_outputs();
    net_.validate();
    return std::move(net_);
  }

 private:
  void check_opset() {
    EASTRT_CHECK(model_.has_graph(), source_, " holds no graph (is it an ONNX model?)");
    std::optional<int64_t> opset;
    for (const auto& o : model_.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
    EASTRT_CHECK(opset, source_, " declares no opset of the default ONNX domain");
    EASTRT_CHECK(*opset >= kMinOpset && *opset <= kMaxOpset, source_, " uses opset ", *opset,
                 " of the default domain; the importer supports opsets ", kMinOpset, " to ", kMaxOpset,
                 " (convert it with onnx.version_converter)");
    opset_ = *opset;
  }

  void add_inputs() {
    const onnx::GraphProto& graph = model_.graph();
    std::set<std::string> known;
    std::map<std::string, Shape> shapes = options_.input_shapes;
    if (auto only = shapes.find(""); only != shapes.end()) {
      std::vector<std::string> real;  // graph inputs that are not initializers (listed as inputs before IR 4)
      for (const auto& info : graph.input())
        if (!values_.count(info.name())) real.push_back(info.name());
      EASTRT_CHECK(real.size() == 1, source_, " has ", real.size(), " inputs; a shape without a name needs one");
      shapes[real[0]] = only->second;
      shapes.erase("");
      known.insert("");
    }
    for (const auto& info : graph.input()) {
      known.insert(info.name());
      if (values_.count(info.name())) continue;
      const std::string where = source_ + ": input '" + info.name() + "'";
      EASTRT_CHECK(info.type().has_tensor_type(), where, " is not a tensor");
      const auto& type = info.type().tensor_type();
      EASTRT_CHECK(type.elem_type() == onnx::TensorProto::FLOAT, where, " has element type ", type.elem_type(),
                   "; the importer takes float32 inputs only");
      const auto& dims = type.shape().dim();
      const bool nhwc_given = options_.input_layout == OnnxLayout::kNhwc && dims.size() == 4;
      Shape shape;  // in ONNX's order
      if (auto given = shapes.find(info.name()); given != shapes.end()) {
        EASTRT_CHECK(given->second.size() == static_cast<size_t>(dims.size()), where, " has rank ", dims.size(),
                     ", the given shape ", to_string(given->second), " does not");
        shape = given->second;
        if (nhwc_given) shape = {shape[0], shape[3], shape[1], shape[2]};
        for (int d = 0; d < dims.size(); ++d)
          EASTRT_CHECK(shape[d] > 0 && (!dims[d].has_dim_value() || dims[d].dim_value() == shape[d]), where,
                       " fixes dimension ", d, " (in the model's order) to ", dims[d].dim_value(), ", the given shape ",
                       to_string(given->second), " does not agree");
      } else {
        for (int d = 0; d < dims.size(); ++d) {
          EASTRT_CHECK(dims[d].has_dim_value() && dims[d].dim_value() > 0, where, " leaves dimension ", d, " ('",
                       dims[d].dim_param(), "') dynamic: give its shape in OnnxImportOptions::input_shapes");
          shape.push_back(dims[d].dim_value());
        }
      }
      // An input in ONNX's order is converted only where a layer needs another layout (a graph that
      // starts with a Transpose, as tf2onnx's NHWC models do, needs none).
      if (nhwc_given) {
        values_[info.name()] = Value{nullptr, net_.add_input(info.name(), {shape[0], shape[2], shape[3], shape[1]}), kToNhwc};
      } else {
        values_[info.name()] = Value{nullptr, net_.add_input(info.name(), shape), {}};
      }
    }
    for (const auto& [name, shape] : options_.input_shapes)
      EASTRT_CHECK(known.count(name), source_, ": a shape is given for input '", name, "', which the model lacks");
  }

  void add_outputs() {
    std::vector<std::string> names = options_.outputs;
    if (names.empty())
      for (const auto& info : model_.graph().output()) names.push_back(info.name());
    for (const std::string& name : names) {
      auto it = values_.find(name);
      EASTRT_CHECK(it != values_.end(), source_, ": output '", name, "' is produced by no node");
      const size_t rank = onnx_shape(it->second).size();
      Tensor* t = in_layout(it->second, options_.output_layout == OnnxLayout::kNhwc && rank == 4 ? kToNhwc : Layout{},
                            name);
      // A value that is a graph input or already another output (after an Identity, or Transposes that
      // cancel) gets a tensor of its own, so that marking it renames neither.
      if (t->is_input || (t->is_output && t->name != name)) t = net_.add_shuffle(t, {}, unused_name(name + "/copy"));
      if (t->name != name)
        if (Tensor* other = net_.find_tensor(name)) {
          EASTRT_CHECK(!other->is_input, source_, ": output '", name, "' is a graph input");
          other->name = name + "/internal";
        }
      net_.mark_output(t, name);
    }
    EASTRT_CHECK(!net_.outputs().empty(), source_, " has no outputs");
  }

  // -- values

  bool has_input(const OnnxNode& node, int i) const { return i < node.input_size() && !node.input(i).empty(); }

  const Value& input(const OnnxNode& node, int i) const {
    EASTRT_CHECK(has_input(node, i), "input ", i, " is missing");
    auto it = values_.find(node.input(i));
    EASTRT_CHECK(it != values_.end(), "input '", node.input(i), "' is produced by no earlier node, initializer or ",
                 "graph input");
    return it->second;
  }

  const Folded& constant_input(const OnnxNode& node, int i, const char* what) const {
    const Value& v = input(node, i);
    EASTRT_CHECK(v.constant, "input ", i, " (", what, ") must be a constant (an initializer or shape arithmetic ",
                 "on fixed shapes), '", node.input(i), "' is computed at run time");
    return *v.constant;
  }

  static Shape onnx_shape(const Value& v) {
    if (v.constant) return v.constant->shape;
    const Shape& s = v.tensor->shape;
    if (v.layout.empty()) return s;
    Shape out(s.size());
    for (size_t j = 0; j < s.size(); ++j) out[v.layout[j]] = s[j];
    return out;
  }

  // The value as a Network tensor in `layout` (of its rank; empty: ONNX's order): a constant is laid out
  // at import, a tensor in another layout gets one shuffle, made once and shared by every consumer.
  Tensor* in_layout(const Value& v, const Layout& layout, const std::string& name) {
    const size_t rank = onnx_shape(v).size();
    const Layout target = layout.empty() ? identity_layout(rank) : layout;
    EASTRT_CHECK(target.size() == rank, "a ", rank, "-D value cannot take a ", target.size(), "-D layout");
    if (v.constant) {
      const Folded laid = transpose(*v.constant, target);
      return net_.add_constant(to_weights(laid), unused_name(name + "/constant"));
    }
    // Network dimension j of the result holds ONNX dimension target[j], now at dimension from[target[j]].
    const Layout from = inverse(v.layout.empty() ? identity_layout(rank) : v.layout);
    std::vector<int> perm(rank);
    for (size_t j = 0; j < rank; ++j) perm[j] = from[target[j]];
    if (perm == identity_layout(rank)) return v.tensor;
    Tensor*& shuffled = laid_out_[{v.tensor->id, perm}];
    if (!shuffled) {
      const std::string suffix = target == kToNhwc                        ? "/to_nhwc"
                                 : layout.empty() && v.layout == kToNhwc ? "/to_nchw"
                                 : layout.empty()                        ? "/to_onnx_order"
                                                                         : "/transposed";
      shuffled = net_.add_shuffle(v.tensor, {perm, {}}, unused_name(v.tensor->name + suffix));
    }
    return shuffled;
  }

  // A name no tensor has yet: layers made for the layout are named after values, which may repeat.
  std::string unused_name(const std::string& name) {
    std::string candidate = name;
    for (int i = 1; net_.find_tensor(candidate); ++i) candidate = name + "_" + std::to_string(i);
    return candidate;
  }

  // A value in ONNX's order, materialised if it is a constant.
  Value materialise(const Value& v, const std::string& name) {
    if (!v.constant) return v;
    return Value{nullptr, in_layout(v, {}, name), {}};
  }

  // A value of rank ≤ `layout`'s as a tensor in that layout, broadcast as ONNX does (leading 1s).
  Tensor* broadcast_to(const Value& v, const Layout& layout, const std::string& name) {
    const Shape shape = onnx_shape(v);
    EASTRT_CHECK(shape.size() <= layout.size(), "cannot broadcast a ", shape.size(), "-D tensor to rank ",
                 layout.size());
    if (shape.size() == layout.size()) return in_layout(v, layout, name);
    Shape padded(layout.size() - shape.size(), 1);
    padded.insert(padded.end(), shape.begin(), shape.end());
    if (v.constant) {
      Folded f = *v.constant;
      f.shape = padded;
      return in_layout(Value{share(std::move(f))}, layout, name);
    }
    Tensor* t = net_.add_shuffle(in_layout(v, {}, name), {{}, padded}, unused_name(name + "/broadcast"));
    return in_layout(Value{nullptr, t, {}}, layout, name);
  }

  // A value reshaped to `shape` (ONNX's rules: 0 copies, -1 infers), in ONNX's order: one shuffle that
  // also brings the tensor to ONNX's order if it is not.
  Value reshape(const Value& v, const Shape& shape, const std::string& name) {
    Value m = materialise(v, name);
    std::vector<int> perm;
    if (!m.layout.empty()) perm = inverse(m.layout);
    return Value{nullptr, net_.add_shuffle(m.tensor, {perm, shape}, name), {}};
  }

  void set(const OnnxNode& node, Value v, int output = 0) {
    EASTRT_CHECK(output < node.output_size() && !node.output(output).empty(), "output ", output, " is missing");
    values_[node.output(output)] = std::move(v);
  }
  void set(const OnnxNode& node, Folded f) { set(node, Value{share(std::move(f))}); }

  // -- nodes

  void convert(const OnnxNode& node) {
    EASTRT_CHECK(node.domain().empty() || node.domain() == "ai.onnx", "operator domain '", node.domain(),
                 "' is not supported (only the default ONNX domain)");
    EASTRT_CHECK(node.output_size() >= 1, "has no outputs");
    const std::string& op = node.op_type();
    const std::string& name = node.output(0);
    static const std::map<std::string, ElementWiseOp> binary{
        {"Add", ElementWiseOp::kAdd}, {"Sub", ElementWiseOp::kSub}, {"Mul", ElementWiseOp::kMul},
        {"Div", ElementWiseOp::kDiv}, {"Pow", ElementWiseOp::kPow}, {"Max", ElementWiseOp::kMax},
        {"Min", ElementWiseOp::kMin}};
    static const std::map<std::string, UnaryOp> unary{
        {"Exp", UnaryOp::kExp}, {"Log", UnaryOp::kLog}, {"Sqrt", UnaryOp::kSqrt}, {"Abs", UnaryOp::kAbs},
        {"Neg", UnaryOp::kNeg}, {"Reciprocal", UnaryOp::kReciprocal}, {"Floor", UnaryOp::kFloor},
        {"Ceil", UnaryOp::kCeil}, {"Sin", UnaryOp::kSin}, {"Cos", UnaryOp::kCos}};
    if (auto b = binary.find(op); b != binary.end()) return convert_binary(node, b->second, name);
    if (auto u = unary.find(op); u != unary.end()) return convert_unary(node, u->second, name);
    if (op == "Conv") return convert_conv(node, name);
    if (op == "ConvTranspose") return convert_conv_transpose(node, name);
    if (op == "BatchNormalization") return convert_batch_norm(node, name);
    if (op == "Relu") return activation(node, {ActivationType::kRelu}, name);
    if (op == "Sigmoid") return activation(node, {ActivationType::kSigmoid}, name);
    if (op == "Tanh") return activation(node, {ActivationType::kTanh}, name);
    if (op == "LeakyRelu")
      return activation(node, {ActivationType::kLeakyRelu, attr_float(node, "alpha", 0.01f)}, name);
    if (op == "HardSigmoid")
      return activation(node, {ActivationType::kHardSigmoid, attr_float(node, "alpha", 0.2f),
                               attr_float(node, "beta", 0.5f)}, name);
    if (op == "HardSwish") return activation(node, {ActivationType::kHardSwish}, name);
    if (op == "Clip") return convert_clip(node, name);
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      PoolingParams p;
      p.type = op == "GlobalMaxPool" ? PoolingType::kMax : PoolingType::kAverage;
      p.global = true;
      return set(node, Value{nullptr, net_.add_pooling(spatial_input(node), p, name), kToNhwc});
    }
    if (op == "MaxPool" || op == "AveragePool") return convert_pool(node, name);
    if (op == "Resize") return convert_resize(node, name);
    if (op == "Concat") return convert_concat(node, name);
    if (op == "Reshape") return convert_reshape(node, name);
    if (op == "Flatten") return convert_flatten(node, name);
    if (op == "Transpose") return convert_transpose(node);
    if (op == "Squeeze" || op == "Unsqueeze") return convert_squeeze(node, op == "Unsqueeze", name);
    if (op == "Identity" || op == "Dropout") return set(node, input(node, 0));
    if (op == "Constant") return set(node, constant_attribute(node));
    if (op == "Shape") return convert_shape(node);
    if (op == "Gather") return convert_gather(node);
    if (op == "Slice") return convert_slice(node, name);
    if (op == "Split") return convert_split(node);
    if (op == "Cast") return convert_cast(node);
    if (op == "ConstantOfShape") return convert_constant_of_shape(node);
    throw_error("operator ", op, " is not supported by the ONNX importer");
  }

  Tensor* spatial_input(const OnnxNode& node) {
    const Value& x = input(node, 0);
    EASTRT_CHECK(onnx_shape(x).size() == 4, "expects a 4-D N,C,H,W input, got ", to_string(onnx_shape(x)));
    return in_layout(x, kToNhwc, node.output(0) + "/input");
  }

  void activation(const OnnxNode& node, ActivationParams p, const std::string& name) {
    Value x = materialise(input(node, 0), name + "/input");
    set(node, Value{nullptr, net_.add_activation(x.tensor, p, name), x.layout});
  }

  void convert_unary(const OnnxNode& node, UnaryOp op, const std::string& name) {
    Value x = materialise(input(node, 0), name + "/input");
    set(node, Value{nullptr, net_.add_unary(x.tensor, op, name), x.layout});
  }

  void convert_clip(const OnnxNode& node, const std::string& name) {
    // Opset 11 moved min and max from attributes to optional inputs; either may be absent (no bound).
    float lo = attr_float(node, "min", std::numeric_limits<float>::lowest());
    float hi = attr_float(node, "max", std::numeric_limits<float>::max());
    auto bound = [&](int i, float& b) {
      if (!has_input(node, i)) return;
      const Folded& c = constant_input(node, i, i == 1 ? "min" : "max");
      EASTRT_CHECK(c.data.size() == 1, "input ", i, " must be a scalar, got shape ", to_string(c.shape));
      b = static_cast<float>(c.data[0]);
    };
    bound(1, lo);
    bound(2, hi);
    activation(node, {ActivationType::kClip, lo, hi}, name);
  }

  void convert_binary(const OnnxNode& node, ElementWiseOp op, const std::string& name) {
    EASTRT_CHECK(node.input_size() == 2, "takes 2 inputs, got ", node.input_size());
    const Value& a = input(node, 0);
    const Value& b = input(node, 1);
    if (a.constant && b.constant) {
      const bool integer = a.constant->integer && b.constant->integer;
      return set(node, broadcast_fold(*a.constant, *b.constant, [op, integer](double x, double y) {
        switch (op) {
          case ElementWiseOp::kAdd: return x + y;
          case ElementWiseOp::kSub: return x - y;
          case ElementWiseOp::kMul: return x * y;
          case ElementWiseOp::kDiv: return integer ? std::trunc(x / y) : x / y;
          case ElementWiseOp::kPow: return std::pow(x, y);
          case ElementWiseOp::kMax: return std::max(x, y);
          default: return std::min(x, y);
        }
      }));
    }
    if (try_scale(node, op, a, b, name)) return;
    // Computed in the layout of the first tensor operand of the result's rank; the other is brought there.
    const size_t rank = std::max(onnx_shape(a).size(), onnx_shape(b).size());
    const Value& lead = a.tensor && onnx_shape(a).size() == rank ? a : b.tensor && onnx_shape(b).size() == rank ? b : a;
    const Layout layout = lead.tensor ? (lead.layout.empty() ? identity_layout(rank) : lead.layout) : identity_layout(rank);
    Tensor* x = broadcast_to(a, layout, name + "/a");
    Tensor* y = broadcast_to(b, layout, name + "/b");
    set(node, Value{nullptr, net_.add_elementwise(x, y, op, name), canonical(layout)});
  }

  // A tensor combined with a scalar or a per-channel constant is a Scale layer (the form the passes fold).
  bool try_scale(const OnnxNode& node, ElementWiseOp op, const Value& a, const Value& b, const std::string& name) {
    const bool constant_right = b.constant != nullptr;
    const Value& x = constant_right ? a : b;
    if (!x.tensor || !(a.constant || b.constant)) return false;
    const Folded& c = constant_right ? *b.constant : *a.constant;
    const bool commutes = op == ElementWiseOp::kAdd || op == ElementWiseOp::kMul;
    if (!commutes && !(constant_right && (op == ElementWiseOp::kSub || op == ElementWiseOp::kDiv ||
                                          op == ElementWiseOp::kPow)))
      return false;
    const Shape xs = onnx_shape(x);
    if (c.shape.size() > xs.size() || xs.empty()) return false;
    ScaleParams p;
    if (c.data.size() == 1) {
      p.mode = ScaleMode::kUniform;
    } else {
      // Per channel: the constant broadcasts along the channel dimension only (ONNX's 1, or the last one).
      const size_t channel_dim = x.layout.empty() ? xs.size() - 1 : x.layout.back();
      Shape padded(xs.size() - c.shape.size(), 1);
      padded.insert(padded.end(), c.shape.begin(), c.shape.end());
      for (size_t d = 0; d < padded.size(); ++d)
        if (padded[d] != (d == channel_dim ? xs[d] : 1)) return false;
      p.mode = ScaleMode::kChannel;
    }
    const int64_t n = static_cast<int64_t>(c.data.size());
    std::vector<float> v = to_floats(c);
    if (op == ElementWiseOp::kSub)
      for (float& f : v) f = -f;
    if (op == ElementWiseOp::kDiv)
      for (float& f : v) f = 1.0f / f;  // within an ulp of dividing
    Weights w = make_weights({n}, std::move(v));
    if (op == ElementWiseOp::kAdd || op == ElementWiseOp::kSub) p.shift = w;
    else if (op == ElementWiseOp::kPow) p.power = w;
    else p.scale = w;
    set(node, Value{nullptr, net_.add_scale(x.tensor, p, name), x.layout});
    return true;
  }

  void convert_conv(const OnnxNode& node, const std::string& name) {
    Tensor* x = spatial_input(node);
    const Folded& w = constant_input(node, 1, "weights");
    EASTRT_CHECK(w.shape.size() == 4, "weights must be [K, C/group, R, S] (2-D convolution), got ", to_string(w.shape));
    ConvolutionParams p;
    p.out_channels = static_cast<int>(w.shape[0]);
    p.kernel = {static_cast<int>(w.shape[2]), static_cast<int>(w.shape[3])};
    p.groups = small_int(attr_int(node, "group", 1));
    const auto kernel = attr_ints(node, "kernel_shape", {w.shape[2], w.shape[3]});
    EASTRT_CHECK(kernel == std::vector<int64_t>({w.shape[2], w.shape[3]}), "kernel_shape does not match the weights ",
                 to_string(w.shape));
    const auto strides = attr_ints(node, "strides", {1, 1});
    const auto dilations = attr_ints(node, "dilations", {1, 1});
    EASTRT_CHECK(strides.size() == 2 && dilations.size() == 2, "strides and dilations must have 2 entries");
    p.stride = {small_int(strides[0]), small_int(strides[1])};
    p.dilation = {small_int(dilations[0]), small_int(dilations[1])};
    p.padding = padding(node, {x->shape[1], x->shape[2]}, kernel, strides, dilations);
    p.kernel_weights = to_weights(w);
    if (has_input(node, 2)) p.bias = to_weights(constant_input(node, 2, "bias"));
    set(node, Value{nullptr, net_.add_convolution(x, std::move(p), name), kToNhwc});
  }

  // ONNX pads are [top, left, bottom, right]; auto_pad SAME_* is resolved for the import-time input size.
  Padding padding(const OnnxNode& node, std::array<int64_t, 2> in, const std::vector<int64_t>& kernel,
                  const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations) {
    const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
    if (auto_pad == "VALID") return {};
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      for (size_t d = 0; d < 2; ++d)
        EASTRT_CHECK(kernel.size() == 2 && strides.size() == 2 && dilations.size() == 2 && kernel[d] > 0 &&
                         strides[d] > 0 && dilations[d] > 0,
                     "kernel, strides and dilations must be 2 positive entries");
      auto [top, bottom] = same_padding(in[0], kernel[0], strides[0], dilations[0], auto_pad == "SAME_UPPER");
      auto [left, right] = same_padding(in[1], kernel[1], strides[1], dilations[1], auto_pad == "SAME_UPPER");
      return {top, left, bottom, right};
    }
    EASTRT_CHECK(auto_pad == "NOTSET", "auto_pad '", auto_pad, "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
    const auto pads = attr_ints(node, "pads", {0, 0, 0, 0});
    EASTRT_CHECK(pads.size() == 4, "pads must have 4 entries, got ", pads.size());
    for (int64_t v : pads) EASTRT_CHECK(v >= 0 && v < 1 << 16, "pad ", v, " is out of range");
    return {static_cast<int>(pads[0]), static_cast<int>(pads[1]), static_cast<int>(pads[2]), static_cast<int>(pads[3])};
  }

  void convert_conv_transpose(const OnnxNode& node, const std::string& name) {
    Tensor* x = spatial_input(node);
    const Folded& w = constant_input(node, 1, "weights");
    EASTRT_CHECK(w.shape.size() == 4, "weights must be [C, K/group, R, S], got ", to_string(w.shape));
    EASTRT_CHECK(!find_attribute(node, "output_shape"), "attribute output_shape is not supported (give pads)");
    const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
    EASTRT_CHECK(auto_pad == "NOTSET" || auto_pad == "VALID", "auto_pad '", auto_pad, "' is not supported");
    EASTRT_CHECK(attr_ints(node, "dilations", {1, 1}) == std::vector<int64_t>({1, 1}), "dilations other than 1");
    DeconvolutionParams p;
    p.groups = small_int(attr_int(node, "group", 1));
    p.out_channels = static_cast<int>(w.shape[1] * p.groups);
    p.kernel = {static_cast<int>(w.shape[2]), static_cast<int>(w.shape[3])};
    const auto strides = attr_ints(node, "strides", {1, 1});
    const auto output_padding = attr_ints(node, "output_padding", {0, 0});
    EASTRT_CHECK(strides.size() == 2 && output_padding.size() == 2, "strides and output_padding need 2 entries");
    p.stride = {small_int(strides[0]), small_int(strides[1])};
    p.output_padding = {small_int(output_padding[0]), small_int(output_padding[1])};
    if (auto_pad == "NOTSET") p.padding = padding(node, {x->shape[1], x->shape[2]}, {}, {}, {});
    p.kernel_weights = to_weights(w);
    if (has_input(node, 2)) p.bias = to_weights(constant_input(node, 2, "bias"));
    set(node, Value{nullptr, net_.add_deconvolution(x, std::move(p), name), kToNhwc});
  }

  void convert_batch_norm(const OnnxNode& node, const std::string& name) {
    EASTRT_CHECK(attr_int(node, "training_mode", 0) == 0, "training_mode=1 is not supported (export for inference)");
    const Value& xv = input(node, 0);
    const Shape xs = onnx_shape(xv);
    EASTRT_CHECK(xv.tensor && (xs.size() == 4 || xs.size() == 2), "expects an N,C,H,W or N,C tensor, got ", to_string(xs));
    // The Scale layer works on the last Network dimension: the channels must sit there.
    const Layout layout = xs.size() == 4 ? kToNhwc : Layout{};
    Tensor* x = in_layout(xv, layout, name + "/input");
    const Folded& gamma = constant_input(node, 1, "scale");
    const Folded& beta = constant_input(node, 2, "B");
    const Folded& mean = constant_input(node, 3, "mean");
    const Folded& var = constant_input(node, 4, "var");
    const double eps = attr_float(node, "epsilon", 1e-5f);
    const size_t c = static_cast<size_t>(xs[1]);
    for (const Folded* f : {&gamma, &beta, &mean, &var})
      EASTRT_CHECK(f->data.size() == c, "parameters must have ", c, " values, got shape ", to_string(f->shape));
    std::vector<float> scale(c), shift(c);
    for (size_t i = 0; i < c; ++i) {
      const double s = gamma.data[i] / std::sqrt(var.data[i] + eps);
      scale[i] = static_cast<float>(s);
      shift[i] = static_cast<float>(beta.data[i] - mean.data[i] * s);
    }
    ScaleParams p{ScaleMode::kChannel, make_weights({xs[1]}, std::move(scale)), make_weights({xs[1]}, std::move(shift)), nullptr};
    set(node, Value{nullptr, net_.add_scale(x, p, name), layout});
  }

  void convert_pool(const OnnxNode& node, const std::string& name) {
    Tensor* x = spatial_input(node);
    EASTRT_CHECK(node.output_size() < 2 || node.output(1).empty(), "the Indices output is not supported");
    PoolingParams p;
    p.type = node.op_type() == "MaxPool" ? PoolingType::kMax : PoolingType::kAverage;
    const auto kernel = attr_ints(node, "kernel_shape", {});
    const auto strides = attr_ints(node, "strides", {1, 1});
    EASTRT_CHECK(kernel.size() == 2 && strides.size() == 2 && kernel[0] > 0 && kernel[1] > 0 && strides[0] > 0 &&
                     strides[1] > 0 && kernel[0] < 1 << 16 && kernel[1] < 1 << 16 && strides[0] < 1 << 16 &&
                     strides[1] < 1 << 16,
                 "kernel_shape and strides need 2 positive entries (2-D pooling)");
    EASTRT_CHECK(attr_ints(node, "dilations", {1, 1}) == std::vector<int64_t>({1, 1}), "dilations other than 1");
    p.window = {small_int(kernel[0]), small_int(kernel[1])};
    p.stride = {small_int(strides[0]), small_int(strides[1])};
    p.padding = padding(node, {x->shape[1], x->shape[2]}, kernel, strides, {1, 1});
    p.count_include_pad = attr_int(node, "count_include_pad", 0) != 0;
    if (attr_int(node, "ceil_mode", 0) != 0) {
      // Ceil mode: extra rows/columns after the input, as long as the last window starts inside it.
      EASTRT_CHECK(p.type == PoolingType::kMax || !p.count_include_pad, "ceil_mode with count_include_pad=1");
      auto extra = [](int64_t in, int64_t k, int64_t s, int begin, int end) {
        int64_t out = (in + begin + end - k + s - 1) / s + 1;
        if ((out - 1) * s >= in + begin) --out;
        return static_cast<int>(std::max<int64_t>(0, (out - 1) * s + k - (in + begin + end)));
      };
      p.padding.bottom += extra(x->shape[1], kernel[0], strides[0], p.padding.top, p.padding.bottom);
      p.padding.right += extra(x->shape[2], kernel[1], strides[1], p.padding.left, p.padding.right);
    }
    set(node, Value{nullptr, net_.add_pooling(x, p, name), kToNhwc});
  }

  void convert_resize(const OnnxNode& node, const std::string& name) {
    Tensor* x = spatial_input(node);
    const std::string mode = attr_string(node, "mode", "nearest");
    const std::string coordinates = attr_string(node, "coordinate_transformation_mode", "half_pixel");
    const std::string nearest = attr_string(node, "nearest_mode", "round_prefer_floor");
    EASTRT_CHECK(mode == "nearest" || mode == "linear", "mode '", mode, "' is not supported (nearest, linear)");
    EASTRT_CHECK(attr_int(node, "antialias", 0) == 0, "antialias=1 is not supported");
    EASTRT_CHECK(attr_string(node, "keep_aspect_ratio_policy", "stretch") == "stretch",
                 "keep_aspect_ratio_policy other than stretch is not supported");
    const auto axes = attr_ints(node, "axes", {0, 1, 2, 3});
    EASTRT_CHECK(axes == std::vector<int64_t>({0, 1, 2, 3}) || axes == std::vector<int64_t>({2, 3}) ||
                     axes == std::vector<int64_t>({-2, -1}),
                 "axes must be the spatial dimensions");
    const size_t n_axes = axes.size();
    ResizeParams p;
    p.mode = mode == "linear" ? ResizeMode::kBilinear : ResizeMode::kNearest;
    if (coordinates == "asymmetric") p.coordinates = ResizeCoordinates::kAsymmetric;
    else if (coordinates == "half_pixel" || coordinates == "pytorch_half_pixel") p.coordinates = ResizeCoordinates::kHalfPixel;
    else if (coordinates == "align_corners") p.coordinates = ResizeCoordinates::kAlignCorners;
    else throw_error("coordinate_transformation_mode '", coordinates, "' is not supported");

    const int64_t in_h = x->shape[1], in_w = x->shape[2];
    const Folded* scales = has_input(node, 2) ? &constant_input(node, 2, "scales") : nullptr;
    if (scales && scales->data.empty()) scales = nullptr;
    if (scales) {
      EASTRT_CHECK(scales->data.size() == n_axes, "scales must have ", n_axes, " entries, got ", scales->data.size());
      EASTRT_CHECK(n_axes == 2 || (scales->data[0] == 1 && scales->data[1] == 1), "only H and W may be resized");
      const double sh = scales->data[n_axes - 2], sw = scales->data[n_axes - 1];
      EASTRT_CHECK(std::isfinite(sh) && std::isfinite(sw) && sh > 0 && sw > 0 && sh < 1e4 && sw < 1e4,
                   "scales ", sh, ", ", sw, " are out of range");
      // ONNX maps coordinates with the given scale, the engine with in/out; they agree when in·scale is whole.
      EASTRT_CHECK(std::floor(in_h * sh) == in_h * sh && std::floor(in_w * sw) == in_w * sw, "scales ", sh, ", ",
                   sw, " give a fractional size for the ", in_h, "x", in_w, " input");
      p.scale_height = static_cast<float>(sh);
      p.scale_width = static_cast<float>(sw);
    } else {
      const Folded& sizes = constant_input(node, 3, "sizes");
      EASTRT_CHECK(sizes.data.size() == n_axes, "sizes must have ", n_axes, " entries, got ", sizes.data.size());
      const int64_t h = to_int(sizes.data[n_axes - 2]), w = to_int(sizes.data[n_axes - 1]);
      EASTRT_CHECK(n_axes == 2 || (to_int(sizes.data[0]) == x->shape[0] && to_int(sizes.data[1]) == x->shape[3]),
                   "only H and W may be resized");
      EASTRT_CHECK(h > 0 && w > 0 && h < 1 << 20 && w < 1 << 20, "sizes ", h, "x", w, " are out of range");
      // Sizes computed from another tensor's shape follow the input: as whole multiples they become scales.
      if (sizes.from_shape && h % in_h == 0 && w % in_w == 0) {
        p.scale_height = static_cast<float>(h / in_h);
        p.scale_width = static_cast<float>(w / in_w);
      } else {
        p.out_height = static_cast<int>(h);
        p.out_width = static_cast<int>(w);
      }
    }
    if (p.mode == ResizeMode::kNearest) {
      // The engine's nearest rules: asymmetric floors, half-pixel rounds half down, align-corners half up.
      const auto [out_h, out_w] = resize_output_size(p, in_h, in_w);
      const bool double_or_same = (out_h == in_h || out_h == 2 * in_h) && (out_w == in_w || out_w == 2 * in_w);
      const bool fits = (p.coordinates == ResizeCoordinates::kAsymmetric &&
                         (nearest == "floor" || (nearest == "round_prefer_floor" && double_or_same))) ||
                        (p.coordinates == ResizeCoordinates::kHalfPixel && nearest == "round_prefer_floor") ||
                        (p.coordinates == ResizeCoordinates::kAlignCorners && nearest == "round_prefer_ceil");
      EASTRT_CHECK(fits, "nearest_mode '", nearest, "' with coordinate_transformation_mode '", coordinates,
                   "' is not supported");
    }
    set(node, Value{nullptr, net_.add_resize(x, p, name), kToNhwc});
  }

  void convert_concat(const OnnxNode& node, const std::string& name) {
    EASTRT_CHECK(node.input_size() >= 1, "has no inputs");
    bool all_constant = true;
    for (int i = 0; i < node.input_size(); ++i) all_constant = all_constant && input(node, i).constant;
    const size_t rank = onnx_shape(input(node, 0)).size();
    const int axis = normalise_axis(attr_int(node, "axis", 0), rank);
    if (all_constant) {
      std::vector<const Folded*> parts;
      for (int i = 0; i < node.input_size(); ++i) parts.push_back(input(node, i).constant.get());
      return set(node, concat_folded(parts, axis));
    }
    // Joined in the layout of the first tensor input; the others are brought there.
    Layout layout = identity_layout(rank);
    for (int i = 0; i < node.input_size(); ++i)
      if (const Value& v = input(node, i); v.tensor) {
        if (!v.layout.empty()) layout = v.layout;
        break;
      }
    std::vector<Tensor*> tensors;
    for (int i = 0; i < node.input_size(); ++i) {
      const Value& v = input(node, i);
      EASTRT_CHECK(onnx_shape(v).size() == rank, "input ", i, " has rank ", onnx_shape(v).size(), ", input 0 ", rank);
      tensors.push_back(in_layout(v, layout, name + "/" + std::to_string(i)));
    }
    set(node, Value{nullptr, net_.add_concatenation(tensors, inverse(layout)[axis], name), canonical(layout)});
  }

  static Folded concat_folded(const std::vector<const Folded*>& parts, int axis) {
    Folded out = *parts[0];
    out.shape[axis] = 0;
    for (const Folded* p : parts) {
      EASTRT_CHECK(p->shape.size() == out.shape.size(), "inputs differ in rank");
      for (size_t d = 0; d < out.shape.size(); ++d)
        EASTRT_CHECK(static_cast<int>(d) == axis || p->shape[d] == parts[0]->shape[d], "inputs ",
                     to_string(p->shape), " and ", to_string(parts[0]->shape), " differ outside axis ", axis);
      out.shape[axis] += p->shape[axis];
      out.integer = out.integer && p->integer;
      out.from_shape = out.from_shape || p->from_shape;
    }
    check_size(out.shape);
    const int64_t outer = std::accumulate(out.shape.begin(), out.shape.begin() + axis, int64_t{1}, std::multiplies<>());
    out.data.clear();
    for (int64_t o = 0; o < outer; ++o)
      for (const Folded* p : parts) {
        const int64_t block = outer > 0 ? static_cast<int64_t>(p->data.size()) / outer : 0;
        out.data.insert(out.data.end(), p->data.begin() + o * block, p->data.begin() + (o + 1) * block);
      }
    return out;
  }

  // ONNX's target shape for an input shape: 0 copies the dimension (unless allowzero), -1 is inferred.
  static Shape resolve_shape(const Shape& in, std::vector<int64_t> target, bool allowzero) {
    int64_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] == 0 && !allowzero) {
        EASTRT_CHECK(i < in.size(), "shape entry ", i, " copies a dimension the input ", to_string(in), " lacks");
        target[i] = in[i];
      }
      if (target[i] == -1) {
        EASTRT_CHECK(infer < 0, "the shape has more than one -1");
        infer = static_cast<int>(i);
      } else {
        EASTRT_CHECK(target[i] >= 0, "shape entry ", target[i], " is invalid");
        // A corrupt shape's entries can multiply past int64 (found by fuzz_onnx).
        EASTRT_CHECK(!__builtin_mul_overflow(known, target[i], &known), "cannot reshape ", to_string(in),
                     ": the target's entries multiply past 2^63");
      }
    }
    if (infer >= 0) {
      EASTRT_CHECK(known > 0 && volume(in) % known == 0, "cannot reshape ", to_string(in));
      target[infer] = volume(in) / known;
    }
    EASTRT_CHECK(volume(target) == volume(in), "cannot reshape ", to_string(in), " to ", to_string(target));
    return target;
  }

  // Keeps 0 and -1 where ONNX has them, so that the batch (and any copied dimension) follows the input;
  // the shuffle's reshape copies a 0 entry as ONNX does, so only allowzero needs the resolved shape.
  void reshape_to(const OnnxNode& node, const Value& x, const std::vector<int64_t>& target, bool allowzero,
                  const std::string& name) {
    const Shape out = resolve_shape(onnx_shape(x), target, allowzero);
    if (x.constant) {
      Folded f = *x.constant;
      f.shape = out;
      return set(node, std::move(f));
    }
    // A reshape that keeps the shape at every input size (entries that copy, infer or are 1 where the
    // input has 1, as tf2onnx writes for a Transpose of one channel) is no layer at all.
    const Shape in = onnx_shape(x);
    bool same = out == in;
    for (size_t i = 0; same && i < target.size(); ++i)
      same = target[i] == -1 || (target[i] == 0 && !allowzero) || (target[i] == 1 && in[i] == 1);
    if (same) return set(node, x);
    set(node, reshape(x, allowzero ? out : Shape(target.begin(), target.end()), name));
  }

  void convert_reshape(const OnnxNode& node, const std::string& name) {
    reshape_to(node, input(node, 0), to_ints(constant_input(node, 1, "shape")), attr_int(node, "allowzero", 0) != 0,
               name);
  }

  void convert_flatten(const OnnxNode& node, const std::string& name) {
    const Value& x = input(node, 0);
    const Shape s = onnx_shape(x);
    const int axis = s.empty() ? 0 : normalise_axis(attr_int(node, "axis", 1), s.size() + 1);
    const int64_t outer = std::accumulate(s.begin(), s.begin() + axis, int64_t{1}, std::multiplies<>());
    reshape_to(node, x, {axis == 1 ? 0 : outer, -1}, false, name);
  }

  void convert_squeeze(const OnnxNode& node, bool unsqueeze, const std::string& name) {
    const Value& x = input(node, 0);
    Shape s = onnx_shape(x);
    // Opset 13 moved axes from an attribute to an input.
    std::vector<int64_t> axes = has_input(node, 1) ? to_ints(constant_input(node, 1, "axes")) : attr_ints(node, "axes", {});
    // `out` at the import's sizes; `follows` names each kept dimension by the input dimension it is, so
    // that the layer gives the right shape when the network runs at another size.
    Shape out, follows;
    if (unsqueeze) {
      const size_t rank = s.size() + axes.size();
      std::set<int> at;
      for (int64_t a : axes) at.insert(normalise_axis(a, rank));
      EASTRT_CHECK(at.size() == axes.size(), "axes repeat");
      for (size_t d = 0, src = 0; d < rank; ++d) {
        const bool added = at.count(static_cast<int>(d)) > 0;
        out.push_back(added ? 1 : s[src]);
        follows.push_back(added ? 1 : ShuffleParams::input_dimension(static_cast<int>(src)));
        src += !added;
      }
    } else {
      std::set<int> at;
      for (int64_t a : axes) at.insert(normalise_axis(a, s.size()));
      for (size_t d = 0; d < s.size(); ++d) {
        const bool drop = axes.empty() ? s[d] == 1 : at.count(static_cast<int>(d)) > 0;
        EASTRT_CHECK(!drop || s[d] == 1, "cannot squeeze dimension ", d, " of size ", s[d]);
        if (!drop) {
          out.push_back(s[d]);
          follows.push_back(ShuffleParams::input_dimension(static_cast<int>(d)));
        }
      }
    }
    if (x.constant) return reshape_to(node, x, {out.begin(), out.end()}, true, name);
    set(node, out == s ? x : reshape(x, follows, name));
  }

  void convert_transpose(const OnnxNode& node) {
    const Value& x = input(node, 0);
    const size_t rank = onnx_shape(x).size();
    std::vector<int64_t> given = attr_ints(node, "perm", {});
    std::vector<int> perm(rank);
    for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int>(given.empty() ? rank - 1 - i : 0);
    EASTRT_CHECK(given.empty() || given.size() == rank, "perm has ", given.size(), " entries for rank ", rank);
    std::vector<bool> seen(rank);
    for (size_t i = 0; i < given.size(); ++i) {
      perm[i] = normalise_axis(given[i], rank);
      EASTRT_CHECK(!seen[perm[i]], "perm repeats ", perm[i]);
      seen[perm[i]] = true;
    }
    if (x.constant) return set(node, transpose(*x.constant, perm));
    // No layer: the tensor stays as it is and only its layout changes. Network dimension j holds the
    // input's ONNX dimension in[j], which is the result's ONNX dimension inverse(perm)[in[j]]. A Transpose
    // pair around a convolution (tf2onnx's NHWC ↔ NCHW) so costs nothing, and neither does one alone
    // where the next layer wants that layout anyway.
    const Layout in = x.layout.empty() ? identity_layout(rank) : x.layout;
    const Layout back = inverse(perm);
    Layout out(rank);
    for (size_t j = 0; j < rank; ++j) out[j] = back[in[j]];
    set(node, Value{nullptr, x.tensor, canonical(out)});
  }

  Folded constant_attribute(const OnnxNode& node) {
    EASTRT_CHECK(node.attribute_size() == 1, "needs exactly one value attribute");
    const auto& a = node.attribute(0);
    if (a.name() == "value") return decode_tensor(a.t());
    if (a.name() == "value_float") return Folded{{}, {a.f()}, false, false};
    if (a.name() == "value_int") return Folded{{}, {static_cast<double>(a.i())}, true, false};
    if (a.name() == "value_floats")
      return Folded{{a.floats_size()}, {a.floats().begin(), a.floats().end()}, false, false};
    if (a.name() == "value_ints") {
      Folded f{{a.ints_size()}, {}, true, false};
      for (int64_t v : a.ints()) f.data.push_back(static_cast<double>(v));
      return f;
    }
    throw_error("attribute '", a.name(), "' is not supported");
  }

  void convert_shape(const OnnxNode& node) {
    const Shape s = onnx_shape(input(node, 0));
    const int64_t rank = static_cast<int64_t>(s.size());
    auto clamp_axis = [rank](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
    const int64_t start = clamp_axis(attr_int(node, "start", 0)), end = clamp_axis(attr_int(node, "end", rank));
    Folded f{{std::max<int64_t>(0, end - start)}, {}, true, true};
    for (int64_t d = start; d < end; ++d) f.data.push_back(static_cast<double>(s[d]));
    set(node, std::move(f));
  }

  void convert_gather(const OnnxNode& node) {
    const Folded& data = constant_input(node, 0, "data");
    const Folded& indices = constant_input(node, 1, "indices");
    const int axis = normalise_axis(attr_int(node, "axis", 0), data.shape.size());
    Folded out;
    out.shape.assign(data.shape.begin(), data.shape.begin() + axis);
    out.shape.insert(out.shape.end(), indices.shape.begin(), indices.shape.end());
    out.shape.insert(out.shape.end(), data.shape.begin() + axis + 1, data.shape.end());
    check_size(out.shape);
    out.integer = data.integer;
    out.from_shape = data.from_shape || indices.from_shape;
    const int64_t outer = std::accumulate(data.shape.begin(), data.shape.begin() + axis, int64_t{1}, std::multiplies<>());
    const int64_t inner = std::accumulate(data.shape.begin() + axis + 1, data.shape.end(), int64_t{1}, std::multiplies<>());
    const int64_t n = data.shape[axis];
    for (int64_t o = 0; o < outer; ++o)
      for (double index : indices.data) {
        int64_t i = to_int(index);
        if (i < 0) i += n;
        EASTRT_CHECK(i >= 0 && i < n, "index ", to_int(index), " is out of range for dimension of size ", n);
        for (int64_t k = 0; k < inner; ++k) out.data.push_back(data.data[(o * n + i) * inner + k]);
      }
    set(node, std::move(out));
  }

  void convert_slice(const OnnxNode& node, const std::string& name) {
    const Value& x = input(node, 0);
    const Shape s = onnx_shape(x);
    const std::vector<int64_t> starts = to_ints(constant_input(node, 1, "starts"));
    const std::vector<int64_t> ends = to_ints(constant_input(node, 2, "ends"));
    std::vector<int64_t> axes(starts.size()), steps(starts.size(), 1);
    std::iota(axes.begin(), axes.end(), 0);
    if (has_input(node, 3)) axes = to_ints(constant_input(node, 3, "axes"));
    if (has_input(node, 4)) steps = to_ints(constant_input(node, 4, "steps"));
    EASTRT_CHECK(ends.size() == starts.size() && axes.size() == starts.size() && steps.size() == starts.size(),
                 "starts, ends, axes and steps differ in length");
    Shape start(s.size(), 0), size = s, step(s.size(), 1);
    std::vector<bool> to_the_end(s.size(), true);
    for (size_t i = 0; i < starts.size(); ++i) {
      const int d = normalise_axis(axes[i], s.size());
      const int64_t n = s[d];
      EASTRT_CHECK(steps[i] > 0, "steps other than positive are not supported");
      auto clamp = [n](int64_t v) { return std::clamp(v < 0 ? v + n : v, int64_t{0}, n); };
      const int64_t b = clamp(starts[i]), e = clamp(ends[i]);
      start[d] = b;
      step[d] = steps[i];
      size[d] = e > b ? (e - b + steps[i] - 1) / steps[i] : 0;
      // Exporters write "to the end" as INT32_MAX or INT64_MAX; any other end is an index.
      to_the_end[d] = starts[i] >= 0 && ends[i] >= std::numeric_limits<int32_t>::max();
    }
    set(node, slice(x, start, size, step, to_the_end, name));
  }

  // Start, size and step per ONNX dimension; where to_the_end, the slice runs to the end of the dimension
  // at any input size (the dimensions a Slice or Split leaves whole, above all).
  Value slice(const Value& x, const Shape& start, const Shape& size, const Shape& step,
              const std::vector<bool>& to_the_end, const std::string& name) {
    if (x.constant) {
      const Shape& s = x.constant->shape;
      Folded out = *x.constant;
      out.shape = size;
      out.data.clear();
      const auto in_strides = strides_of(s), out_strides = strides_of(size);
      for (int64_t i = 0; i < volume(size); ++i) {
        int64_t src = 0, rest = i;
        for (size_t d = 0; d < s.size(); ++d) {
          src += (start[d] + rest / out_strides[d] * step[d]) * in_strides[d];
          rest %= out_strides[d];
        }
        out.data.push_back(x.constant->data[src]);
      }
      return Value{share(std::move(out))};
    }
    Shape following = size;
    for (size_t d = 0; d < size.size(); ++d)
      if (to_the_end[d]) following[d] = SliceParams::kToTheEnd;
    auto to_net = [&](const Shape& v) {
      if (x.layout.empty()) return v;
      Shape net(v.size());
      for (size_t j = 0; j < v.size(); ++j) net[j] = v[x.layout[j]];
      return net;
    };
    return Value{nullptr, net_.add_slice(x.tensor, {to_net(start), to_net(following), to_net(step)}, name), x.layout};
  }

  void convert_split(const OnnxNode& node) {
    const Value& x = input(node, 0);
    const Shape s = onnx_shape(x);
    const int axis = normalise_axis(attr_int(node, "axis", 0), s.size());
    const int64_t n = s[axis];
    const int64_t parts = node.output_size();
    // The sizes: given (an input from opset 13, an attribute before), or num_outputs pieces of
    // ceil(n / num_outputs) with a smaller last one (opset 18), or equal pieces.
    std::vector<int64_t> sizes = has_input(node, 1) ? to_ints(constant_input(node, 1, "split"))
                                                    : attr_ints(node, "split", {});
    if (sizes.empty()) {
      const int64_t pieces = attr_int(node, "num_outputs", parts);
      EASTRT_CHECK(pieces == parts, "num_outputs is ", pieces, " but the node has ", parts, " outputs");
      EASTRT_CHECK(pieces > 0 && (find_attribute(node, "num_outputs") || n % pieces == 0), "cannot split ", n,
                   " into ", pieces, " equal parts");
      const int64_t piece = (n + pieces - 1) / pieces;
      for (int64_t i = 0; i < pieces; ++i) sizes.push_back(std::clamp<int64_t>(n - i * piece, 0, piece));
    }
    EASTRT_CHECK(static_cast<int64_t>(sizes.size()) == parts, "split has ", sizes.size(), " sizes for ", parts,
                 " outputs");
    int64_t begin = 0;
    for (int i = 0; i < parts; ++i) {
      EASTRT_CHECK(sizes[i] > 0 && sizes[i] <= n - begin, "split sizes ", to_string(Shape(sizes.begin(), sizes.end())),
                   " do not fit dimension ", axis, " of size ", n);
      Shape start(s.size(), 0), size = s, step(s.size(), 1);
      std::vector<bool> to_the_end(s.size(), true);
      start[axis] = begin;
      size[axis] = sizes[i];
      to_the_end[axis] = false;
      begin += sizes[i];
      if (!node.output(i).empty()) set(node, slice(x, start, size, step, to_the_end, node.output(i)), i);
    }
    EASTRT_CHECK(begin == n, "split sizes ", to_string(Shape(sizes.begin(), sizes.end())), " do not add up to ", n);
  }

  void convert_cast(const OnnxNode& node) {
    const Value& x = input(node, 0);
    const int64_t to = attr_int(node, "to", onnx::TensorProto::FLOAT);
    const bool to_float = to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE ||
                          to == onnx::TensorProto::FLOAT16 || to == onnx::TensorProto::BFLOAT16;
    if (!x.constant) {
      EASTRT_CHECK(to == onnx::TensorProto::FLOAT, "casting a run-time tensor to type ", to, " is not supported");
      return set(node, x);
    }
    Folded f = *x.constant;
    f.integer = !to_float;
    if (to == onnx::TensorProto::BOOL)
      for (double& v : f.data) v = v != 0;
    else if (!to_float)
      for (double& v : f.data) v = std::trunc(v);
    set(node, std::move(f));
  }

  void convert_constant_of_shape(const OnnxNode& node) {
    Folded f;
    f.shape = to_ints(constant_input(node, 0, "shape"));
    check_size(f.shape);
    double value = 0;
    if (const auto* a = find_attribute(node, "value")) {
      Folded v = decode_tensor(a->t());
      EASTRT_CHECK(v.data.size() == 1, "value must hold one element");
      value = v.data[0];
      f.integer = v.integer;
    }
    f.data.assign(static_cast<size_t>(volume(f.shape)), value);
    set(node, std::move(f));
  }

  const onnx::ModelProto& model_;
  std::string source_;
  const OnnxImportOptions& options_;
  int64_t opset_ = 0;
  Network net_;
  std::map<std::string, Value> values_;
  std::map<std::pair<int, std::vector<int>>, Tensor*> laid_out_;  // (tensor id, permutation) → its shuffle
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in, "cannot open ONNX model file ", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  EASTRT_CHECK(!in.bad(), "cannot read ONNX model file ", path);
  return bytes.str();
}

onnx::ModelProto parse_model(const std::string& bytes, const std::string& source) {
  EASTRT_CHECK(!bytes.empty(), source, " is empty");
  onnx::ModelProto model;
  // Protobuf reports malformed UTF-8 on its log; the parse failure itself is what the user gets.
  google::protobuf::LogHandler* previous = google::protobuf::SetLogHandler(nullptr);
  const bool ok = model.ParseFromString(bytes);
  google::protobuf::SetLogHandler(previous);
  EASTRT_CHECK(ok, source, " is not a valid ONNX model: the protobuf is truncated or corrupt (", bytes.size(),
               " bytes)");
  return model;
}

}  // namespace

Network import_onnx_bytes(const std::string& bytes, const std::string& source, const OnnxImportOptions& options) {
  return Importer(parse_model(bytes, source), source, options).run();
}

Network import_onnx(const std::string& path, const OnnxImportOptions& options) {
  return import_onnx_bytes(read_file(path), "ONNX model " + path, options);
}

std::vector<OnnxInputInfo> onnx_inputs(const std::string& path) {
  const onnx::ModelProto model = parse_model(read_file(path), "ONNX model " + path);
  std::set<std::string> initializers;
  for (const auto& t : model.graph().initializer()) initializers.insert(t.name());
  std::vector<OnnxInputInfo> inputs;
  for (const auto& info : model.graph().input()) {
    if (initializers.count(info.name())) continue;
    OnnxInputInfo input{info.name(), {}};
    if (info.type().has_tensor_type())
      for (const auto& d : info.type().tensor_type().shape().dim())
        input.dims.push_back(d.has_dim_value() && d.dim_value() > 0 ? d.dim_value() : -1);
    inputs.push_back(std::move(input));
  }
  return inputs;
}

}  // namespace eastrt
