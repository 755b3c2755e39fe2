// TensorFlow nodes to Network layers. Every tensor is either a constant known at import (weights, shape
// arithmetic, anything computed only from those: folded by the host interpreter) or a float32 runtime
// tensor of the Network; each op's rule turns its operands into layers.
#include <cmath>
#include <iostream>

#include "import/tf/tf_ops.h"

namespace eastrt {
namespace tfimport {
namespace {

// A TensorFlow tensor during conversion.
struct Operand {
  std::optional<Value> constant;
  Tensor* tensor = nullptr;
  Padding pad;             // a zero Pad waiting to be folded into the convolution or pooling that reads it
  std::string pad_node;    // the Pad node, when one is waiting
  std::string unavailable; // why this output cannot be used (e.g. batch statistics of a training batch norm)
  std::string name;        // the tensor it came from (an Identity passes its input's name on)
  bool from_shape = false; // a constant computed from a runtime tensor's shape: it follows the input size
};

const std::set<std::string>& pass_through_ops() {
  static const std::set<std::string> ops{"Identity", "StopGradient", "Snapshot", "PreventGradient",
                                         "PlaceholderWithDefault", "IdentityN"};
  return ops;
}

// Ops with a rule for runtime operands (constant-only nodes of any host op fold without one).
const std::set<std::string>& converted_ops() {
  static const std::set<std::string> ops{
      "Placeholder", "Identity", "StopGradient", "Snapshot", "PreventGradient", "PlaceholderWithDefault",
      "IdentityN", "Shape", "ShapeN", "Size", "Rank", "Conv2D", "DepthwiseConv2dNative", "FusedBatchNorm",
      "FusedBatchNormV2", "FusedBatchNormV3", "BiasAdd", "Relu", "Relu6", "Sigmoid", "Tanh", "LeakyRelu", "Exp",
      "Log", "Sqrt", "Rsqrt", "Abs", "Neg", "Reciprocal", "Inv", "Floor", "Ceil", "Sin", "Cos", "Square", "MaxPool",
      "AvgPool", "Pad", "PadV2", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Pow", "ConcatV2",
      "Concat", "Pack", "Unpack", "Split", "SplitV", "ResizeBilinear", "ResizeNearestNeighbor", "StridedSlice",
      "Slice", "MatMul", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Mean", "Sum", "Max", "Min", "Cast"};
  return ops;
}

Weights to_weights(const Value& v) {
  std::vector<float> data(v.is_float() ? v.f : std::vector<float>(v.i.begin(), v.i.end()));
  return make_weights(v.shape, std::move(data));
}

// TF `SAME`: the output is ceil(in / stride); the total padding is split with the extra cell after.
std::pair<int, int> same_padding(int64_t in, int kernel, int stride, int dilation) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t effective = static_cast<int64_t>(kernel - 1) * dilation + 1;
  const int64_t total = std::max<int64_t>((out - 1) * stride + effective - in, 0);
  return {static_cast<int>(total / 2), static_cast<int>(total - total / 2)};
}

bool all_powers_of_two(const Value& v) {
  for (int64_t k = 0; k < v.size(); ++k) {
    int exponent;
    const double m = std::frexp(v.at(k), &exponent);
    if (std::fabs(m) != 0.5 || exponent < -120 || exponent > 120) return false;
  }
  return v.size() > 0;
}

class Converter {
 public:
  Converter(const GraphIndex& graph, const ConvertRequest& request) : graph_(graph), request_(request) {}

  ConvertResult run() {
    for (const auto& [name, value] : request_.constants) values_[name].constant = value;
    for (const auto& [name, shape] : request_.runtime_inputs) values_[name].tensor = net_.add_input(name, shape);
    for (auto& [name, operand] : values_) operand.name = name;
    for (const tf::NodeDef* node : request_.nodes) convert(*node);

    ConvertResult result;
    for (const std::string& requested : request_.outputs) {
      TensorRef ref = graph_.resolve_output(requested);
      auto it = values_.find(tensor_name(ref.node, ref.index));
      EASTRT_CHECK(it != values_.end(), graph_.source(), ": output '", requested, "' is not computed by the nodes converted");
      const Operand& out = it->second;
      EASTRT_CHECK(out.unavailable.empty(), graph_.source(), ": output '", requested, "': ", out.unavailable);
      EASTRT_CHECK(out.pad_node.empty(), graph_.source(), ": output '", requested, "' is the Pad node '", out.pad_node,
                   "', which can only be folded into a following convolution or pooling");
      if (out.constant && !request_.constant_outputs_as_layers) {
        result.constants[requested] = *out.constant;
        continue;
      }
      Tensor* t = out.constant ? net_.add_constant(to_weights(*out.constant), requested + "#constant") : out.tensor;
      if (t->is_input || t->is_output) t = net_.add_shuffle(t, {}, requested + "#copy");
      net_.mark_output(t, requested);
    }
    if (!net_.outputs().empty()) net_.validate();
    result.network = std::move(net_);
    return result;
  }

 private:
  using Operands = std::vector<Operand>;

  // ---- operands

  const Value& constant(const tf::NodeDef& node, const Operand& x, const char* what) const {
    EASTRT_CHECK(x.constant.has_value(), describe(node), ": ", what, " must be a constant (known at import)");
    return *x.constant;
  }
  std::vector<int64_t> ints(const tf::NodeDef& node, const Operand& x, const char* what) const {
    const Value& v = constant(node, x, what);
    EASTRT_CHECK(!v.is_float(), describe(node), ": ", what, " must be integers");
    return v.i;
  }
  int64_t scalar(const tf::NodeDef& node, const Operand& x, const char* what) const {
    std::vector<int64_t> v = ints(node, x, what);
    EASTRT_CHECK(v.size() == 1, describe(node), ": ", what, " must be one integer");
    return v[0];
  }

  // The operand as a Network tensor: constants become Constant layers (made once per tensor).
  Tensor* runtime(const tf::NodeDef& node, const Operand& x) {
    EASTRT_CHECK(x.pad_node.empty(), describe(node), " reads Pad node '", x.pad_node, "': a zero pad can only be ",
                 "folded into a Conv2D, DepthwiseConv2dNative or VALID AvgPool that follows it");
    EASTRT_CHECK(x.unavailable.empty(), describe(node), ": ", x.unavailable);
    if (x.tensor) return x.tensor;
    std::string key = x.name.empty() ? node.name() + "#" + std::to_string(materialised_.size()) : x.name;
    auto it = materialised_.find(key);
    if (it != materialised_.end()) return it->second;
    Value shaped = *x.constant;
    if (shaped.shape.empty()) shaped.shape = {1};  // scalars broadcast the same as [1] against any tensor
    Tensor* t = net_.add_constant(to_weights(shaped), key + "#constant");
    materialised_[key] = t;
    return t;
  }

  Shape shape_of(const Operand& x) const {
    if (x.constant) return x.constant->shape;
    Shape s = x.tensor->shape;
    if (!x.pad_node.empty()) {
      s[1] += x.pad.top + x.pad.bottom;
      s[2] += x.pad.left + x.pad.right;
    }
    return s;
  }

  Operand out(Tensor* t) {
    Operand o;
    o.tensor = t;
    return o;
  }
  Operand out(Value v) {
    Operand o;
    o.constant = std::move(v);
    return o;
  }

  // ---- nodes

  void convert(const tf::NodeDef& node) {
    std::vector<TensorRef> refs = graph_.data_inputs(node);
    std::vector<const Operand*> in;
    bool all_constant = true;
    for (const TensorRef& ref : refs) {
      auto it = values_.find(tensor_name(ref.node, ref.index));
      EASTRT_CHECK(it != values_.end(), graph_.source(), ": ", describe(node), " reads '", tensor_name(ref.node, ref.index),
                   "', which is not available here");
      in.push_back(&it->second);
      all_constant = all_constant && it->second.constant.has_value();
    }
    check_input_count(node, in.size());
    Operands outputs;
    if (node.op() != "Placeholder" && all_constant && host_op_supported(node.op())) {
      std::vector<Value> args;
      bool from_shape = false;
      for (const Operand* x : in) {
        args.push_back(*x->constant);
        from_shape = from_shape || x->from_shape;
      }
      for (Value& v : run_host_op(node, args)) {
        outputs.push_back(out(std::move(v)));
        outputs.back().from_shape = from_shape;
      }
    } else if (converted_ops().count(node.op())) {
      check_attributes(node);
      outputs = convert_op(node, in);
    } else {
      throw_error(graph_.source(), ": ", describe(node), " is not supported by the converter (a partial conversion, ",
                  "`eastrt convert --min-segment-size`, runs it on the fallback executor)");
    }
    for (size_t k = 0; k < outputs.size(); ++k) {
      const std::string tensor = tensor_name(node.name(), static_cast<int>(k));
      if (outputs[k].name.empty()) outputs[k].name = tensor;
      values_[tensor] = std::move(outputs[k]);
    }
  }

  void check_attributes(const tf::NodeDef& node) const {
    static const std::set<std::string> any_type{"Shape", "ShapeN", "Size", "Rank", "Identity", "IdentityN",
                                                "StopGradient", "Snapshot", "PreventGradient", "Cast", "Placeholder"};
    if (!any_type.count(node.op())) {
      int t = attr_type(node, "T", tf::DT_FLOAT);
      EASTRT_CHECK(t == tf::DT_FLOAT, describe(node), ": runtime tensors of type ", dtype_name(t),
                   " are not supported (only float32)");
    }
    const tf::AttrValue* format = find_attr(node, "data_format");
    if (format && format->value_case() == tf::AttrValue::kS) {
      EASTRT_CHECK(format->s() == "NHWC", describe(node), ": data_format ", format->s(),
                   " is not supported; eastrt's networks are NHWC (export the graph with data_format NHWC)");
    }
  }

  Operands convert_op(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    const std::string& op = node.op();
    const std::string& name = node.name();
    auto need = [&](size_t n) {
      EASTRT_CHECK(in.size() >= n, describe(node), " needs ", n, " inputs, has ", in.size());
    };
    if (op == "Placeholder") return {out(placeholder(node))};
    if (pass_through_ops().count(op)) {
      need(1);
      Operands o;
      for (const Operand* x : in) o.push_back(*x);
      return op == "IdentityN" ? o : Operands{o[0]};
    }
    if (op == "Shape" || op == "Size" || op == "Rank" || op == "ShapeN") {
      need(1);
      std::vector<Value> shapes;
      for (const Operand* x : in) {
        Value like;
        like.shape = shape_of(*x);
        shapes.push_back(like);
      }
      // The interpreter needs only the shapes; the values are not read.
      Operands o;
      for (Value& v : run_host_op(node, shapes)) {
        o.push_back(out(std::move(v)));
        o.back().from_shape = true;
      }
      return o;
    }
    if (op == "Cast") {
      need(1);
      EASTRT_CHECK(value_type(attr_type(node, "DstT"), describe(node)) == DataType::kFloat32, describe(node),
                   ": a cast of a runtime tensor to ", dtype_name(attr_type(node, "DstT")), " is not supported");
      return {*in[0]};
    }
    if (op == "Conv2D" || op == "DepthwiseConv2dNative") return {out(convolution(node, *in[0], *in[1]))};
    if (op.rfind("FusedBatchNorm", 0) == 0) return batch_norm(node, in);
    if (op == "BiasAdd") {
      need(2);
      const Value& bias = constant(node, *in[1], "the bias");
      Shape x = shape_of(*in[0]);
      EASTRT_CHECK(bias.shape.size() == 1 && !x.empty() && bias.shape[0] == x.back(), describe(node), ": bias of shape ",
                   to_string(bias.shape), " for input ", to_string(x));
      return {out(net_.add_scale(runtime(node, *in[0]), {ScaleMode::kChannel, nullptr, to_weights(bias), nullptr}, name))};
    }
    if (op == "Relu" || op == "Relu6" || op == "Sigmoid" || op == "Tanh" || op == "LeakyRelu") {
      need(1);
      ActivationParams p;
      if (op == "Relu") p.type = ActivationType::kRelu;
      if (op == "Relu6") p = {ActivationType::kClip, 0.0f, 6.0f};
      if (op == "Sigmoid") p.type = ActivationType::kSigmoid;
      if (op == "Tanh") p.type = ActivationType::kTanh;
      if (op == "LeakyRelu") p = {ActivationType::kLeakyRelu, attr_float(node, "alpha", 0.2f), 0.0f};
      return {out(net_.add_activation(runtime(node, *in[0]), p, name))};
    }
    if (op == "Square") {
      need(1);
      Tensor* x = runtime(node, *in[0]);
      return {out(net_.add_elementwise(x, x, ElementWiseOp::kMul, name))};
    }
    static const std::map<std::string, UnaryOp> unary{
        {"Exp", UnaryOp::kExp},   {"Log", UnaryOp::kLog},     {"Sqrt", UnaryOp::kSqrt},
        {"Rsqrt", UnaryOp::kRsqrt}, {"Abs", UnaryOp::kAbs},   {"Neg", UnaryOp::kNeg},
        {"Reciprocal", UnaryOp::kReciprocal}, {"Inv", UnaryOp::kReciprocal}, {"Floor", UnaryOp::kFloor},
        {"Ceil", UnaryOp::kCeil}, {"Sin", UnaryOp::kSin},     {"Cos", UnaryOp::kCos}};
    if (unary.count(op)) {
      need(1);
      return {out(net_.add_unary(runtime(node, *in[0]), unary.at(op), name))};
    }
    if (op == "MaxPool" || op == "AvgPool") return {out(pooling(node, *in[0]))};
    if (op == "Pad" || op == "PadV2") return {pad(node, in)};
    static const std::map<std::string, ElementWiseOp> binary{
        {"Add", ElementWiseOp::kAdd}, {"AddV2", ElementWiseOp::kAdd}, {"Sub", ElementWiseOp::kSub},
        {"Mul", ElementWiseOp::kMul}, {"RealDiv", ElementWiseOp::kDiv}, {"Maximum", ElementWiseOp::kMax},
        {"Minimum", ElementWiseOp::kMin}, {"Pow", ElementWiseOp::kPow}};
    if (binary.count(op)) {
      need(2);
      return {out(elementwise(node, binary.at(op), *in[0], *in[1]))};
    }
    if (op == "ConcatV2" || op == "Concat") {
      need(2);
      const bool axis_first = op == "Concat";
      std::vector<const Operand*> parts(in.begin() + (axis_first ? 1 : 0), in.end() - (axis_first ? 0 : 1));
      return {out(concat(node, parts, scalar(node, axis_first ? *in.front() : *in.back(), "the axis")))};
    }
    if (op == "Pack") {
      need(1);
      Shape shape = shape_of(*in[0]);
      const int axis = normalise_axis(node, attr_int(node, "axis", 0), shape.size() + 1);
      Shape expanded = shape;
      expanded.insert(expanded.begin() + axis, 1);
      std::vector<Tensor*> parts;
      for (size_t k = 0; k < in.size(); ++k) {
        EASTRT_CHECK(shape_of(*in[k]) == shape, describe(node), ": inputs of shapes ", to_string(shape), " and ",
                     to_string(shape_of(*in[k])), " do not stack");
        parts.push_back(net_.add_shuffle(runtime(node, *in[k]), {{}, expanded}, name + "#expand" + std::to_string(k)));
      }
      return {out(net_.add_concatenation(parts, axis, name))};
    }
    if (op == "Split" || op == "SplitV" || op == "Unpack") return split(node, in);
    if (op == "ResizeBilinear" || op == "ResizeNearestNeighbor") return {out(resize(node, in))};
    if (op == "StridedSlice" || op == "Slice") return {out(slice(node, in))};
    if (op == "MatMul") return {out(matmul(node, in))};
    if (op == "Reshape" || op == "Squeeze" || op == "ExpandDims") {
      need(op == "Squeeze" ? 1 : 2);
      Shape x = shape_of(*in[0]);
      Shape shape = op == "Reshape" ? reshape_shape(node, x, ints(node, *in[1], "the shape"))
                    : op == "Squeeze" ? squeeze_shape(node, x)
                                      : expand_dims_shape(node, x, scalar(node, *in[1], "the axis"));
      EASTRT_CHECK(!shape.empty(), describe(node), ": scalar runtime tensors are not supported");
      return {out(net_.add_shuffle(runtime(node, *in[0]), {{}, shape}, name))};
    }
    if (op == "Transpose") {
      need(2);
      std::vector<int64_t> perm = ints(node, *in[1], "the permutation");
      const int64_t rank = static_cast<int64_t>(shape_of(*in[0]).size());
      for (int64_t p : perm) EASTRT_CHECK(p >= 0 && p < rank, describe(node), ": invalid permutation entry ", p);
      return {out(net_.add_shuffle(runtime(node, *in[0]), {std::vector<int>(perm.begin(), perm.end()), {}}, name))};
    }
    if (op == "Mean" || op == "Sum" || op == "Max" || op == "Min") {
      need(2);
      ReduceParams p;
      p.op = op == "Mean" ? ReduceOp::kMean : op == "Sum" ? ReduceOp::kSum : op == "Max" ? ReduceOp::kMax : ReduceOp::kMin;
      const size_t rank = shape_of(*in[0]).size();
      for (int64_t a : ints(node, *in[1], "the reduction indices")) p.axes.push_back(normalise_axis(node, a, rank));
      p.keep_dims = attr_bool(node, "keep_dims", false);
      return {out(net_.add_reduce(runtime(node, *in[0]), p, name))};
    }
    throw_error(describe(node), ": no conversion rule");
  }

  Tensor* placeholder(const tf::NodeDef& node) {
    const int dtype = attr_type(node, "dtype", tf::DT_FLOAT);
    EASTRT_CHECK(dtype == tf::DT_FLOAT, describe(node), ": inputs of type ", dtype_name(dtype),
                 " are not supported (only float32)");
    std::optional<Shape> known = attr_shape(node, "shape");
    auto given = request_.placeholder_shapes.find(node.name());
    Shape shape;
    auto text = [](const Shape& s) {
      std::string t;
      for (int64_t d : s) {
        if (!t.empty()) t += 'x';
        t += d < 0 ? std::string("?") : std::to_string(d);
      }
      return t.empty() ? std::string("a scalar") : t;
    };
    if (given != request_.placeholder_shapes.end()) {
      shape = given->second;
      if (known) {
        bool fits = known->size() == shape.size();
        for (size_t d = 0; fits && d < shape.size(); ++d) fits = (*known)[d] < 0 || (*known)[d] == shape[d];
        EASTRT_CHECK(fits, "input '", node.name(), "' is ", text(*known), " in the graph; the shape given, ",
                     to_string(shape), ", does not fit it");
      }
    } else {
      bool complete = known.has_value() && !known->empty();
      for (size_t d = 0; complete && d < known->size(); ++d) complete = (*known)[d] > 0;
      EASTRT_CHECK(complete, "input '", node.name(), "' has shape ", known ? text(*known) : "of unknown rank",
                   " in the graph: give its full shape (eastrt: --input ", node.name(), "=NxHxWxC)");
      shape = *known;
    }
    for (int64_t d : shape)
      EASTRT_CHECK(d > 0 && d <= kMaxHostElements, "input '", node.name(), "': invalid shape ", to_string(shape));
    return net_.add_input(node.name(), shape);
  }

  Tensor* convolution(const tf::NodeDef& node, const Operand& x, const Operand& filter_operand) {
    const Value& filter = constant(node, filter_operand, "the filter");
    const Shape in = shape_of(x);
    EASTRT_CHECK(in.size() == 4 && filter.shape.size() == 4, describe(node), ": expects a 4-D NHWC input and an RSCK ",
                 "filter, got ", to_string(in), " and ", to_string(filter.shape));
    const std::vector<int64_t> strides = attr_ints(node, "strides");
    const std::vector<int64_t> dilations = attr_ints(node, "dilations", std::vector<int64_t>{1, 1, 1, 1});
    auto positive = [](int64_t v) { return v > 0 && v < (1 << 20); };
    EASTRT_CHECK(strides.size() == 4 && strides[0] == 1 && strides[3] == 1 && positive(strides[1]) && positive(strides[2]) &&
                     dilations.size() == 4 && dilations[0] == 1 && dilations[3] == 1 && positive(dilations[1]) &&
                     positive(dilations[2]),
                 describe(node), ": strides and dilations must be [1, h, w, 1]");
    const int64_t r = filter.shape[0], s = filter.shape[1], fc = filter.shape[2], fk = filter.shape[3];
    EASTRT_CHECK(positive(r) && positive(s) && positive(fk) && fk * std::max<int64_t>(fc, 1) < (1 << 30), describe(node),
                 ": invalid filter shape ", to_string(filter.shape));
    ConvolutionParams p;
    p.kernel = {static_cast<int>(r), static_cast<int>(s)};
    p.stride = {static_cast<int>(strides[1]), static_cast<int>(strides[2])};
    p.dilation = {static_cast<int>(dilations[1]), static_cast<int>(dilations[2])};
    if (node.op() == "DepthwiseConv2dNative") {
      // [R, S, C, M]: output channel c·M + m filters input channel c alone.
      EASTRT_CHECK(fc == in[3], describe(node), ": filter of ", to_string(filter.shape), " for input ", to_string(in));
      p.groups = static_cast<int>(fc);
      p.out_channels = static_cast<int>(fc * fk);
      std::vector<float> kcrs(static_cast<size_t>(filter.size()));
      for (int64_t ir = 0; ir < r; ++ir)
        for (int64_t is = 0; is < s; ++is)
          for (int64_t c = 0; c < fc; ++c)
            for (int64_t m = 0; m < fk; ++m)
              kcrs[((c * fk + m) * r + ir) * s + is] = filter.f[((ir * s + is) * fc + c) * fk + m];
      p.kernel_weights = make_weights({fc * fk, 1, r, s}, std::move(kcrs));
    } else {
      EASTRT_CHECK(fc > 0 && in[3] % fc == 0, describe(node), ": filter of ", to_string(filter.shape), " for input ",
                   to_string(in));
      p.groups = static_cast<int>(in[3] / fc);  // a filter with fewer input channels is a grouped convolution
      p.out_channels = static_cast<int>(fk);
      HostTensor kcrs = rsck_to_kcrs(HostTensor(filter.shape, filter.f));
      p.kernel_weights = make_weights(kcrs.shape, std::move(kcrs.data));
    }
    p.padding = x.pad;
    p.padding = add(p.padding, window_padding(node, in, p.kernel, p.stride, p.dilation));
    Operand unpadded = x;
    unpadded.pad_node.clear();
    return net_.add_convolution(runtime(node, unpadded), std::move(p), node.name());
  }

  static Padding add(Padding a, const Padding& b) {
    return {a.top + b.top, a.left + b.left, a.bottom + b.bottom, a.right + b.right};
  }

  // The padding a node's `padding` attribute asks for on an input of shape `in` (NHWC, padded already).
  Padding window_padding(const tf::NodeDef& node, const Shape& in, std::array<int, 2> kernel, std::array<int, 2> stride,
                         std::array<int, 2> dilation) const {
    const std::string padding = attr_string(node, "padding");
    if (padding == "VALID") return {};
    if (padding == "SAME") {
      auto [top, bottom] = same_padding(in[1], kernel[0], stride[0], dilation[0]);
      auto [left, right] = same_padding(in[2], kernel[1], stride[1], dilation[1]);
      return {top, left, bottom, right};
    }
    EASTRT_CHECK(padding == "EXPLICIT", describe(node), ": unknown padding '", padding, "'");
    std::vector<int64_t> e = attr_ints(node, "explicit_paddings");
    EASTRT_CHECK(e.size() == 8 && e[0] == 0 && e[1] == 0 && e[6] == 0 && e[7] == 0, describe(node),
                 ": explicit_paddings must be 8 values padding only H and W");
    for (int64_t v : e) EASTRT_CHECK(v >= 0 && v < (1 << 20), describe(node), ": invalid explicit padding ", v);
    return {static_cast<int>(e[2]), static_cast<int>(e[4]), static_cast<int>(e[3]), static_cast<int>(e[5])};
  }

  Tensor* pooling(const tf::NodeDef& node, const Operand& x) {
    const Shape in = shape_of(x);
    EASTRT_CHECK(in.size() == 4, describe(node), ": expects a 4-D NHWC input, got ", to_string(in));
    const std::vector<int64_t> k = attr_ints(node, "ksize"), s = attr_ints(node, "strides");
    EASTRT_CHECK(k.size() == 4 && s.size() == 4 && k[0] == 1 && k[3] == 1 && s[0] == 1 && s[3] == 1 && k[1] > 0 &&
                     k[2] > 0 && s[1] > 0 && s[2] > 0 && k[1] < (1 << 20) && k[2] < (1 << 20),
                 describe(node), ": ksize and strides must be [1, h, w, 1]");
    PoolingParams p;
    p.type = node.op() == "MaxPool" ? PoolingType::kMax : PoolingType::kAverage;
    p.window = {static_cast<int>(k[1]), static_cast<int>(k[2])};
    p.stride = {static_cast<int>(s[1]), static_cast<int>(s[2])};
    p.padding = window_padding(node, in, p.window, p.stride, {1, 1});
    if (!x.pad_node.empty()) {
      // Zero cells count in an average over a padded tensor; TF's own pooling padding never does. Both
      // can be expressed only when the pool adds none of its own.
      EASTRT_CHECK(p.type == PoolingType::kAverage && p.padding == Padding{}, describe(node), " reads Pad node '",
                   x.pad_node, "': a zero pad folds only into an AvgPool with no padding of its own (max pooling ",
                   "would see the zeros)");
      p.padding = x.pad;
      p.count_include_pad = true;
    }
    Operand unpadded = x;
    unpadded.pad_node.clear();
    return net_.add_pooling(runtime(node, unpadded), p, node.name());
  }

  Operand pad(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    EASTRT_CHECK(in.size() >= 2, describe(node), " needs 2 inputs");
    if (node.op() == "PadV2" && in.size() > 2) {
      const Value& fill = constant(node, *in[2], "the constant value");
      EASTRT_CHECK(fill.size() == 1 && fill.at(0) == 0.0, describe(node), ": only zero padding is supported");
    }
    std::vector<int64_t> p = ints(node, *in[1], "the paddings");
    const Shape shape = shape_of(*in[0]);
    EASTRT_CHECK(shape.size() == 4 && p.size() == 8 && p[0] == 0 && p[1] == 0 && p[6] == 0 && p[7] == 0, describe(node),
                 ": only padding of H and W of a 4-D NHWC tensor can be folded into a convolution or pooling");
    for (int64_t v : p) EASTRT_CHECK(v >= 0 && v < (1 << 20), describe(node), ": invalid padding ", v);
    Operand o = *in[0];
    if (o.constant) o.tensor = runtime(node, o), o.constant.reset();
    o.pad = add(o.pad, {static_cast<int>(p[2]), static_cast<int>(p[4]), static_cast<int>(p[3]), static_cast<int>(p[5])});
    o.pad_node = node.name();
    return o;
  }

  Operands batch_norm(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    EASTRT_CHECK(in.size() >= 5, describe(node), " needs 5 inputs");
    const Shape x = shape_of(*in[0]);
    const float epsilon = attr_float(node, "epsilon", 1e-4f);
    const Value& gamma = constant(node, *in[1], "the scale");
    const Value& beta = constant(node, *in[2], "the offset");
    Value mean, variance;
    const bool training = attr_bool(node, "is_training", true);
    const int64_t c = x.empty() ? 0 : x.back();
    auto is_statistic = [&](const Operand* v) { return v->constant && v->constant->shape == Shape{c}; };
    if (training && is_statistic(in[3]) && is_statistic(in[4])) {
      // A training batch norm ignores these inputs; TF-slim wires the moving statistics to them.
      mean = *in[3]->constant;
      variance = *in[4]->constant;
      warn_training(node, "its mean and variance inputs (" + node.input(3) + ", " + node.input(4) + ")");
    } else if (training) {
      // Otherwise (empty inputs) the moving statistics are variables of the batch norm's own scope.
      const size_t slash = node.name().rfind('/');
      const std::string prefix = slash == std::string::npos ? "" : node.name().substr(0, slash + 1);
      mean = moving_statistic(node, prefix + "moving_mean");
      variance = moving_statistic(node, prefix + "moving_variance");
      warn_training(node, prefix + "moving_mean and " + prefix + "moving_variance");
    } else {
      mean = constant(node, *in[3], "the mean");
      variance = constant(node, *in[4], "the variance");
    }
    for (const Value* v : std::initializer_list<const Value*>{&gamma, &beta, &mean, &variance})
      EASTRT_CHECK(v->shape == Shape{c} && v->is_float(), describe(node), ": statistics and parameters must be float [",
                   c, "] for input ", to_string(x), ", got ", to_string(v->shape));
    // Inference batch norm as one per-channel affine map: s = gamma / sqrt(var + eps), b = beta − mean·s.
    std::vector<float> s(static_cast<size_t>(c)), b(static_cast<size_t>(c));
    for (int64_t k = 0; k < c; ++k) {
      s[k] = gamma.f[k] / std::sqrt(variance.f[k] + epsilon);
      b[k] = beta.f[k] - mean.f[k] * s[k];
    }
    Operands o{out(net_.add_scale(runtime(node, *in[0]),
                                  {ScaleMode::kChannel, make_weights({c}, s), make_weights({c}, b), nullptr}, node.name()))};
    if (training) {
      Operand stats;
      stats.unavailable = "the batch statistics of a training-mode batch norm (" + node.name() + ") are not computed";
      o.insert(o.end(), 5, stats);
    } else {
      o.push_back(out(mean));
      o.push_back(out(variance));
      Operand reserve;
      reserve.unavailable = "the reserve outputs of " + node.name() + " are not computed";
      o.insert(o.end(), 3, reserve);
    }
    return o;
  }

  void warn_training(const tf::NodeDef& node, const std::string& statistics) {
    if (warned_.insert(node.name()).second)
      std::cerr << "eastrt: warning: " << describe(node) << " is in training mode; converted to inference form with "
                << statistics << "\n";
  }

  // A moving statistic looked up by name in the whole graph: a Const, possibly behind Identity nodes.
  Value moving_statistic(const tf::NodeDef& bn, const std::string& name) const {
    const tf::NodeDef* node = graph_.find(name);
    for (int hops = 0; node && node->op() == "Identity" && node->input_size() > 0 && hops < 8; ++hops)
      node = graph_.find(parse_tensor_name(node->input(0)).node);
    EASTRT_CHECK(node && node->op() == "Const", graph_.source(), ": ", describe(bn), " is in training mode and its ",
                 "moving statistic '", name, "' is not a constant of the graph (freeze the training graph with ",
                 "`eastrt freeze`, which keeps the moving statistics)");
    return run_host_op(*node, {})[0];
  }

  Tensor* elementwise(const tf::NodeDef& node, ElementWiseOp op, const Operand& a, const Operand& b) {
    if (a.constant || b.constant) {
      const bool constant_first = a.constant.has_value();
      const Value& c = constant_first ? *a.constant : *b.constant;
      const Operand& x = constant_first ? b : a;
      const Shape xs = shape_of(x);
      // A scalar or a per-channel vector that leaves the runtime operand's shape unchanged: a Scale layer.
      bool leading_ones = c.shape.size() <= xs.size();
      for (size_t d = 0; leading_ones && d + 1 < c.shape.size(); ++d) leading_ones = c.shape[d] == 1;
      const bool uniform = leading_ones && c.size() == 1;
      const bool channel = leading_ones && !c.shape.empty() && !xs.empty() && c.shape.back() == xs.back() && c.size() == xs.back();
      const bool scalable = (op == ElementWiseOp::kAdd || op == ElementWiseOp::kMul ||
                             op == ElementWiseOp::kSub || (op == ElementWiseOp::kDiv && !constant_first && all_powers_of_two(c)));
      if ((uniform || channel) && scalable) {
        std::vector<float> v(static_cast<size_t>(c.size()));
        for (int64_t k = 0; k < c.size(); ++k) v[k] = static_cast<float>(c.at(k));
        const int64_t n = static_cast<int64_t>(v.size());
        ScaleParams p{uniform ? ScaleMode::kUniform : ScaleMode::kChannel, nullptr, nullptr, nullptr};
        if (op == ElementWiseOp::kMul) p.scale = make_weights({n}, v);
        if (op == ElementWiseOp::kAdd) p.shift = make_weights({n}, v);
        if (op == ElementWiseOp::kDiv) {
          for (float& e : v) e = 1.0f / e;  // exact: every divisor is a power of two
          p.scale = make_weights({n}, v);
        }
        if (op == ElementWiseOp::kSub && !constant_first) {
          for (float& e : v) e = -e;
          p.shift = make_weights({n}, v);
        }
        if (op == ElementWiseOp::kSub && constant_first) {  // c − x = x·(−1) + c
          p.scale = make_weights({n}, std::vector<float>(v.size(), -1.0f));
          p.shift = make_weights({n}, v);
        }
        return net_.add_scale(runtime(node, x), p, node.name());
      }
    }
    return net_.add_elementwise(runtime(node, a), runtime(node, b), op, node.name());
  }

  Tensor* concat(const tf::NodeDef& node, const std::vector<const Operand*>& parts, int64_t axis) {
    EASTRT_CHECK(!parts.empty(), describe(node), ": nothing to concatenate");
    std::vector<Tensor*> tensors;
    for (const Operand* p : parts) tensors.push_back(runtime(node, *p));
    return net_.add_concatenation(tensors, normalise_axis(node, axis, tensors[0]->shape.size()), node.name());
  }

  Operands split(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    const std::string& op = node.op();
    EASTRT_CHECK(in.size() >= (op == "Unpack" ? 1u : op == "Split" ? 2u : 3u), describe(node), ": missing inputs");
    const Operand& x = op == "Split" ? *in[1] : *in[0];
    const Shape shape = shape_of(x);
    int axis;
    std::vector<int64_t> sizes;
    if (op == "Unpack") {
      axis = normalise_axis(node, attr_int(node, "axis", 0), shape.size());
      EASTRT_CHECK(attr_int(node, "num") == shape[axis], describe(node), ": num differs from dimension ", shape[axis]);
      sizes.assign(static_cast<size_t>(shape[axis]), 1);
    } else {
      axis = normalise_axis(node, scalar(node, op == "Split" ? *in[0] : *in[2], "the axis"), shape.size());
      sizes = split_sizes(node, shape[axis], op == "SplitV" ? &constant(node, *in[1], "size_splits") : nullptr);
    }
    Tensor* t = runtime(node, x);
    Operands o;
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      // Every other dimension whole, whatever its size when the network runs at another input size.
      SliceParams p{Shape(shape.size(), 0), Shape(shape.size(), SliceParams::kToTheEnd), Shape(shape.size(), 1)};
      p.start[axis] = start;
      p.size[axis] = sizes[k];
      start += sizes[k];
      const std::string out_name = tensor_name(node.name(), static_cast<int>(k));
      if (op != "Unpack") {
        o.push_back(out(net_.add_slice(t, p, out_name)));
        continue;
      }
      Shape squeezed;  // the piece's other dimensions, named by position so that they follow the input
      for (int d = 0; d < static_cast<int>(shape.size()); ++d)
        if (d != axis) squeezed.push_back(ShuffleParams::input_dimension(d));
      EASTRT_CHECK(!squeezed.empty(), describe(node), ": scalar runtime tensors are not supported");
      Tensor* piece = net_.add_slice(t, p, out_name + "#slice");
      o.push_back(out(net_.add_shuffle(piece, {{}, squeezed}, out_name)));
    }
    return o;
  }

  Tensor* resize(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    EASTRT_CHECK(in.size() >= 2, describe(node), " needs 2 inputs");
    const Shape x = shape_of(*in[0]);
    std::vector<int64_t> size = ints(node, *in[1], "the size");
    EASTRT_CHECK(x.size() == 4 && size.size() == 2 && size[0] > 0 && size[1] > 0 && size[0] <= kMaxHostElements &&
                     size[1] <= kMaxHostElements,
                 describe(node), ": expects a 4-D NHWC input and a positive size [h, w]");
    const bool align = attr_bool(node, "align_corners", false), half = attr_bool(node, "half_pixel_centers", false);
    EASTRT_CHECK(!(align && half), describe(node), ": align_corners and half_pixel_centers cannot both be set");
    ResizeParams p;
    p.mode = node.op() == "ResizeBilinear" ? ResizeMode::kBilinear : ResizeMode::kNearest;
    p.coordinates = align ? ResizeCoordinates::kAlignCorners : half ? ResizeCoordinates::kHalfPixel : ResizeCoordinates::kAsymmetric;
    // A size computed from a tensor's shape (EAST's tf.shape(x)[1:3] * 2) follows the input: as whole
    // multiples of it, it becomes scales, so that the network runs at every input size.
    if (in[1]->from_shape && size[0] % x[1] == 0 && size[1] % x[2] == 0) {
      p.scale_height = static_cast<float>(size[0] / x[1]);
      p.scale_width = static_cast<float>(size[1] / x[2]);
    } else {
      p.out_height = static_cast<int>(size[0]);
      p.out_width = static_cast<int>(size[1]);
    }
    if (p.mode == ResizeMode::kNearest && half) {
      // TF picks floor((dst + 0.5)·scale); the IR's half-pixel nearest rounds half down (ONNX). They differ
      // only where a source lands exactly between two cells: accept the sizes where they never do.
      for (int dim = 1; dim <= 2; ++dim) {
        const float scale = static_cast<float>(x[dim]) / static_cast<float>(size[dim - 1]);
        for (int64_t dst = 0; dst < size[dim - 1]; ++dst) {
          const float f = static_cast<float>(dst);
          int64_t tf_index = std::min<int64_t>(static_cast<int64_t>(std::floor((f + 0.5f) * scale)), x[dim] - 1);
          int64_t ir_index = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((f + 0.5f) * scale - 1.0f)), 0, x[dim] - 1);
          EASTRT_CHECK(tf_index == ir_index, describe(node), ": nearest-neighbour resizing with half_pixel_centers from ",
                       x[dim], " to ", size[dim - 1], " is not supported (TensorFlow's rounding differs from the IR's)");
        }
      }
    }
    return net_.add_resize(runtime(node, *in[0]), p, node.name());
  }

  Tensor* slice(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    const bool strided = node.op() == "StridedSlice";
    EASTRT_CHECK(in.size() >= (strided ? 4u : 3u), describe(node), ": missing inputs");
    const Shape x = shape_of(*in[0]);
    StridedSliceSpec spec;
    if (strided) {
      spec = strided_slice_spec(node, x, ints(node, *in[1], "begin"), ints(node, *in[2], "end"),
                                ints(node, *in[3], "strides"));
    } else {
      std::vector<int64_t> begin = ints(node, *in[1], "begin"), size = ints(node, *in[2], "size");
      EASTRT_CHECK(begin.size() == x.size() && size.size() == x.size(), describe(node), ": begin and size need ",
                   x.size(), " entries");
      for (size_t d = 0; d < x.size(); ++d) {
        if (size[d] == -1) size[d] = x[d] - begin[d];
        EASTRT_CHECK(begin[d] >= 0 && size[d] >= 0 && begin[d] <= x[d] && size[d] <= x[d] - begin[d], describe(node),
                     ": slice leaves dimension ", d, " of ", to_string(x));
      }
      spec = {begin, Shape(x.size(), 1), size, size};
    }
    for (size_t d = 0; d < x.size(); ++d) {
      EASTRT_CHECK(spec.stride[d] > 0, describe(node), ": negative strides on runtime tensors are not supported");
      EASTRT_CHECK(spec.size[d] > 0, describe(node), ": the slice of ", to_string(x), " is empty");
    }
    EASTRT_CHECK(!spec.output.empty(), describe(node), ": scalar runtime tensors are not supported");
    Tensor* t = runtime(node, *in[0]);
    const bool whole = spec.size == x && std::all_of(spec.start.begin(), spec.start.end(), [](int64_t v) { return v == 0; });
    const bool reshaped = spec.output != spec.size;
    if (!whole) t = net_.add_slice(t, {spec.start, spec.size, spec.stride}, reshaped ? node.name() + "#slice" : node.name());
    if (reshaped || whole) t = net_.add_shuffle(t, {{}, spec.output}, node.name());
    return t;
  }

  Tensor* matmul(const tf::NodeDef& node, const std::vector<const Operand*>& in) {
    EASTRT_CHECK(in.size() >= 2, describe(node), " needs 2 inputs");
    const bool ta = attr_bool(node, "transpose_a", false), tb = attr_bool(node, "transpose_b", false);
    EASTRT_CHECK(in[0]->constant.has_value() != in[1]->constant.has_value(), describe(node),
                 ": a product of two runtime tensors is not supported (one operand must be constant weights)");
    const bool weights_second = in[1]->constant.has_value();
    // y = a·b. With constant b: y = fc(a, b). With constant a: yᵀ = fc(bᵀ, aᵀ).
    Value w = *(weights_second ? in[1] : in[0])->constant;
    EASTRT_CHECK(w.shape.size() == 2, describe(node), ": weights must be 2-D, got ", to_string(w.shape));
    auto transposed = [](const Value& v) {
      Value t = Value::floats({v.shape[1], v.shape[0]}, std::vector<float>(static_cast<size_t>(v.size())));
      for (int64_t r = 0; r < v.shape[0]; ++r)
        for (int64_t c = 0; c < v.shape[1]; ++c) t.f[c * v.shape[0] + r] = static_cast<float>(v.at(r * v.shape[1] + c));
      return t;
    };
    // Bring the weights to [C, K] and the runtime operand to [N, C].
    bool transpose_weights = weights_second ? tb : !ta;
    bool transpose_input = weights_second ? ta : !tb;
    if (transpose_weights) w = transposed(w);
    if (!w.is_float()) w = Value::floats(w.shape, std::vector<float>(w.i.begin(), w.i.end()));
    const Operand& x_operand = weights_second ? *in[0] : *in[1];
    Shape xs = shape_of(x_operand);
    EASTRT_CHECK(xs.size() == 2, describe(node), ": expects 2-D operands, got ", to_string(xs));
    Tensor* x = runtime(node, x_operand);
    if (transpose_input) {
      x = net_.add_shuffle(x, {{1, 0}, {}}, node.name() + "#transpose_input");
      std::swap(xs[0], xs[1]);
    }
    EASTRT_CHECK(xs[1] == w.shape[0], describe(node), ": operands of ", to_string(xs), " and ", to_string(w.shape),
                 " do not multiply");
    const int64_t c = w.shape[0], k = w.shape[1];
    HostTensor kc = ck_to_kc(HostTensor(w.shape, w.f));
    ConvolutionParams p;
    p.out_channels = static_cast<int>(k);
    p.kernel_weights = make_weights({k, c, 1, 1}, std::move(kc.data));
    x = net_.add_shuffle(x, {{}, {xs[0], 1, 1, c}}, node.name() + "#to_nhwc");
    x = net_.add_convolution(x, std::move(p), node.name() + "#fully_connected");
    if (weights_second) return net_.add_shuffle(x, {{}, {xs[0], k}}, node.name());
    x = net_.add_shuffle(x, {{}, {xs[0], k}}, node.name() + "#to_nc");
    return net_.add_shuffle(x, {{1, 0}, {}}, node.name());
  }

  const GraphIndex& graph_;
  const ConvertRequest& request_;
  Network net_;
  std::map<std::string, Operand> values_;  // by TensorFlow tensor name
  std::map<std::string, Tensor*> materialised_;
  std::set<std::string> warned_;
};

}  // namespace

bool converter_supports(const tf::NodeDef& node) {
  if (!converted_ops().count(node.op())) return false;
  static const std::set<std::string> any_type{"Shape", "ShapeN", "Size", "Rank", "Placeholder", "Cast"};
  if (!any_type.count(node.op())) {
    const tf::AttrValue* t = find_attr(node, "T");
    if (t && t->value_case() == tf::AttrValue::kType && t->type() != tf::DT_FLOAT) return false;
  }
  if (node.op() == "Cast") {
    const tf::AttrValue* t = find_attr(node, "DstT");
    if (!t || (t->type() != tf::DT_FLOAT)) return false;
  }
  const tf::AttrValue* format = find_attr(node, "data_format");
  return !(format && format->value_case() == tf::AttrValue::kS && format->s() != "NHWC");
}

ConvertResult convert_nodes(const GraphIndex& graph, const ConvertRequest& request) {
  return Converter(graph, request).run();
}

}  // namespace tfimport

Network tf_to_network(const TfGraph& graph, const TfImportOptions& options) {
  EASTRT_CHECK(!options.outputs.empty(), "tf_to_network: no outputs given");
  tfimport::GraphIndex index(graph.def(), "TensorFlow graph");
  std::vector<std::string> roots;
  for (const std::string& name : options.outputs) roots.push_back(index.resolve_output(name).node);
  tfimport::ConvertRequest request;
  request.nodes = index.closure(roots, false);
  request.placeholder_shapes = options.input_shapes;
  request.outputs = options.outputs;
  for (const auto& [name, shape] : options.input_shapes) {
    const tf::NodeDef* node = index.find(name);
    EASTRT_CHECK(node && node->op() == "Placeholder", "input shape given for '", name, "', which is not a placeholder of the graph");
  }
  return tfimport::convert_nodes(index, request).network;
}

}  // namespace eastrt
