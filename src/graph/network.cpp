// The Network IR: the definition API, shape inference for every layer kind, validation and statistics.
#include "eastrt/network.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "eastrt/error.h"

namespace eastrt {

const char* to_string(LayerKind kind) {
  static const char* names[] = {"Convolution", "Deconvolution", "Scale", "Pooling", "Activation",
                                "ElementWise", "Unary", "Concatenation", "Resize", "Slice",
                                "Shuffle", "Constant", "Reduce"};
  return names[static_cast<int>(kind)];
}

const char* to_string(ActivationType type) {
  static const char* names[] = {"ReLU", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "LeakyReLU"};
  return names[static_cast<int>(type)];
}

const char* to_string(ElementWiseOp op) {
  static const char* names[] = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};
  return names[static_cast<int>(op)];
}

const char* to_string(UnaryOp op) {
  static const char* names[] = {"Exp", "Log", "Sqrt", "Rsqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil",
                                "Sin", "Cos"};
  return names[static_cast<int>(op)];
}

const char* to_string(ReduceOp op) {
  static const char* names[] = {"Sum", "Mean", "Max", "Min"};
  return names[static_cast<int>(op)];
}

// ---------------------------------------------------------------- shape inference

Shape resolve_reshape(const Shape& in, const Shape& target) {
  Shape out = target;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0) {
      EASTRT_CHECK(i < in.size(), "reshape copies dimension ", i, " that input ", to_string(in), " lacks");
      out[i] = in[i];
    } else if (out[i] < -1) {
      const int64_t k = -2 - out[i];
      EASTRT_CHECK(k < static_cast<int64_t>(in.size()), "reshape takes dimension ", k, " that input ", to_string(in),
                   " lacks");
      out[i] = in[k];
    }
    if (out[i] == -1) {
      EASTRT_CHECK(infer < 0, "reshape has more than one -1");
      infer = static_cast<int>(i);
    } else {
      EASTRT_CHECK(out[i] > 0, "reshape dimension ", out[i], " is invalid");
      EASTRT_CHECK(!__builtin_mul_overflow(known, out[i], &known), "reshape of ", to_string(in),
                   ": the target's entries multiply past 2^63");
    }
  }
  if (infer >= 0) {
    EASTRT_CHECK(known > 0 && volume(in) % known == 0, "cannot reshape ", to_string(in), " to ", to_string(target));
    out[infer] = volume(in) / known;
  }
  EASTRT_CHECK(volume(out) == volume(in), "cannot reshape ", to_string(in), " (", volume(in), " elements) to ",
               to_string(out));
  return out;
}

namespace {

struct ShapeCheck {
  const Layer& layer;
  template <typename... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw_error("layer '", layer.name, "' (", to_string(layer.kind()), "): ", parts...);
  }
  template <typename... Parts>
  void require(bool ok, const Parts&... parts) const {
    if (!ok) fail(parts...);
  }
};

int64_t conv_out(int64_t in, int kernel, int stride, int dilation, int pad_before, int pad_after) {
  int64_t effective = static_cast<int64_t>(dilation) * (kernel - 1) + 1;
  int64_t padded = in + pad_before + pad_after;
  return padded < effective ? 0 : (padded - effective) / stride + 1;
}

void check_weights(const ShapeCheck& check, const Weights& w, const Shape& expected, const char* what) {
  check.require(w != nullptr, what, " weights are missing");
  check.require(w->shape == expected, what, " weights have shape ", to_string(w->shape), ", expected ",
                to_string(expected));
}

void check_vector(const ShapeCheck& check, const Weights& w, int64_t expected, const char* what) {
  if (!w) return;
  check.require(w->shape == Shape{expected}, what, " has shape ", to_string(w->shape), ", expected ",
                to_string(Shape{expected}));
}

Shape broadcast(const ShapeCheck& check, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    check.require(da == db || da == 1 || db == 1, "shapes ", to_string(a), " and ", to_string(b),
                  " do not broadcast");
    out[i] = std::max(da, db);
  }
  return out;
}

int normalise_axis(const ShapeCheck& check, int axis, size_t rank) {
  int r = static_cast<int>(rank);
  check.require(axis >= -r && axis < r, "axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + r : axis;
}

}  // namespace

std::array<int64_t, 2> resize_output_size(const ResizeParams& p, int64_t in_height, int64_t in_width) {
  auto scaled = [](int64_t size, float scale) { return static_cast<int64_t>(std::floor(size * double(scale))); };
  return {p.scale_height > 0 ? scaled(in_height, p.scale_height) : p.out_height,
          p.scale_width > 0 ? scaled(in_width, p.scale_width) : p.out_width};
}

Shape slice_output_shape(const SliceParams& p, const Shape& input) {
  Shape out = p.size;
  for (size_t d = 0; d < out.size() && d < input.size() && d < p.start.size() && d < p.stride.size(); ++d)
    if (out[d] == SliceParams::kToTheEnd && p.stride[d] > 0)
      out[d] = std::max<int64_t>(0, (input[d] - p.start[d] + p.stride[d] - 1) / p.stride[d]);
  return out;
}

std::vector<Shape> infer_layer_shapes(const Layer& layer, const std::vector<Shape>& in) {
  ShapeCheck check{layer};
  auto need_4d = [&](const Shape& s) {
    check.require(s.size() == 4, "expects a 4-D N,H,W,C input, got ", to_string(s));
  };
  switch (layer.kind()) {
    case LayerKind::kConvolution: {
      const auto& p = layer.as<ConvolutionParams>();
      need_4d(in[0]);
      check.require(p.groups >= 1 && in[0][3] % p.groups == 0 && p.out_channels % p.groups == 0, "groups ",
                    p.groups, " do not divide input channels ", in[0][3], " and output channels ", p.out_channels);
      check.require(p.stride[0] > 0 && p.stride[1] > 0 && p.dilation[0] > 0 && p.dilation[1] > 0,
                    "stride and dilation must be positive");
      check_weights(check, p.kernel_weights, {p.out_channels, in[0][3] / p.groups, p.kernel[0], p.kernel[1]},
                    "kernel");
      check_vector(check, p.bias, p.out_channels, "bias");
      int64_t h = conv_out(in[0][1], p.kernel[0], p.stride[0], p.dilation[0], p.padding.top, p.padding.bottom);
      int64_t w = conv_out(in[0][2], p.kernel[1], p.stride[1], p.dilation[1], p.padding.left, p.padding.right);
      check.require(h > 0 && w > 0, "input ", to_string(in[0]), " is smaller than the kernel");
      Shape out{in[0][0], h, w, p.out_channels};
      check.require(in.size() == 1 || (in.size() == 2 && in[1] == out), "the residual input has shape ",
                    in.size() > 1 ? to_string(in[1]) : "?", ", the output ", to_string(out));
      return {out};
    }
    case LayerKind::kDeconvolution: {
      const auto& p = layer.as<DeconvolutionParams>();
      need_4d(in[0]);
      check.require(p.groups >= 1 && in[0][3] % p.groups == 0 && p.out_channels % p.groups == 0, "groups ",
                    p.groups, " do not divide the channels");
      check_weights(check, p.kernel_weights, {in[0][3], p.out_channels / p.groups, p.kernel[0], p.kernel[1]},
                    "kernel");
      check_vector(check, p.bias, p.out_channels, "bias");
      int64_t h = (in[0][1] - 1) * p.stride[0] + p.kernel[0] - p.padding.top - p.padding.bottom + p.output_padding[0];
      int64_t w = (in[0][2] - 1) * p.stride[1] + p.kernel[1] - p.padding.left - p.padding.right + p.output_padding[1];
      check.require(h > 0 && w > 0, "output would be empty");
      return {{in[0][0], h, w, p.out_channels}};
    }
    case LayerKind::kScale: {
      const auto& p = layer.as<ScaleParams>();
      check.require(!in[0].empty(), "input is a scalar");
      int64_t n = p.mode == ScaleMode::kChannel ? in[0].back() : 1;
      check_vector(check, p.scale, n, "scale");
      check_vector(check, p.shift, n, "shift");
      check_vector(check, p.power, n, "power");
      return {in[0]};
    }
    case LayerKind::kPooling: {
      const auto& p = layer.as<PoolingParams>();
      need_4d(in[0]);
      if (p.global) return {{in[0][0], 1, 1, in[0][3]}};
      check.require(p.window[0] > 0 && p.window[1] > 0 && p.stride[0] > 0 && p.stride[1] > 0,
                    "window and stride must be positive");
      int64_t h = conv_out(in[0][1], p.window[0], p.stride[0], 1, p.padding.top, p.padding.bottom);
      int64_t w = conv_out(in[0][2], p.window[1], p.stride[1], 1, p.padding.left, p.padding.right);
      check.require(h > 0 && w > 0, "input ", to_string(in[0]), " is smaller than the window");
      return {{in[0][0], h, w, in[0][3]}};
    }
    case LayerKind::kActivation:
    case LayerKind::kUnary:
      return {in[0]};
    case LayerKind::kElementWise:
      return {broadcast(check, in[0], in[1])};
    case LayerKind::kConcatenation: {
      const auto& p = layer.as<ConcatenationParams>();
      check.require(!in.empty(), "has no inputs");
      int axis = normalise_axis(check, p.axis, in[0].size());
      Shape out = in[0];
      for (size_t i = 1; i < in.size(); ++i) {
        check.require(in[i].size() == out.size(), "input ", i, " has shape ", to_string(in[i]),
                      ", input 0 has ", to_string(in[0]));
        for (size_t d = 0; d < out.size(); ++d)
          if (static_cast<int>(d) != axis)
            check.require(in[i][d] == in[0][d], "input ", i, " has shape ", to_string(in[i]), ", input 0 has ",
                          to_string(in[0]), ": they differ outside axis ", axis);
        out[axis] += in[i][axis];
      }
      return {out};
    }
    case LayerKind::kResize: {
      const auto& p = layer.as<ResizeParams>();
      need_4d(in[0]);
      auto [h, w] = resize_output_size(p, in[0][1], in[0][2]);
      check.require(h > 0 && w > 0, "output size ", h, "x", w, " must be positive");
      return {{in[0][0], h, w, in[0][3]}};
    }
    case LayerKind::kSlice: {
      const auto& p = layer.as<SliceParams>();
      size_t rank = in[0].size();
      check.require(p.start.size() == rank && p.size.size() == rank && p.stride.size() == rank,
                    "start, size and stride need ", rank, " entries for input ", to_string(in[0]));
      const Shape size = slice_output_shape(p, in[0]);
      for (size_t d = 0; d < rank; ++d) {
        check.require(p.stride[d] > 0 && size[d] > 0 && p.start[d] >= 0 &&
                          p.start[d] + (size[d] - 1) * p.stride[d] < in[0][d],
                      "slice of dimension ", d, " (start ", p.start[d], ", size ", p.size[d], ", stride ",
                      p.stride[d], ") leaves input ", to_string(in[0]));
      }
      return {size};
    }
    case LayerKind::kShuffle: {
      const auto& p = layer.as<ShuffleParams>();
      Shape shape = in[0];
      if (!p.permutation.empty()) {
        check.require(p.permutation.size() == shape.size(), "permutation of ", p.permutation.size(),
                      " entries for input ", to_string(shape));
        std::vector<bool> seen(shape.size());
        Shape permuted(shape.size());
        for (size_t i = 0; i < shape.size(); ++i) {
          int src = p.permutation[i];
          check.require(src >= 0 && src < static_cast<int>(shape.size()) && !seen[src], "invalid permutation");
          seen[src] = true;
          permuted[i] = shape[src];
        }
        shape = permuted;
      }
      if (!p.reshape.empty()) {
        try {
          shape = resolve_reshape(shape, p.reshape);
        } catch (const Error& e) {
          check.fail(e.what());
        }
      }
      return {shape};
    }
    case LayerKind::kConstant: {
      const auto& p = layer.as<ConstantParams>();
      check.require(p.value != nullptr, "has no value");
      return {p.value->shape};
    }
    case LayerKind::kReduce: {
      const auto& p = layer.as<ReduceParams>();
      std::set<int> axes;
      for (int a : p.axes) axes.insert(normalise_axis(check, a, in[0].size()));
      Shape out;
      for (size_t d = 0; d < in[0].size(); ++d) {
        if (axes.count(static_cast<int>(d))) {
          if (p.keep_dims) out.push_back(1);
        } else {
          out.push_back(in[0][d]);
        }
      }
      return {out};
    }
  }
  check.fail("unknown layer kind");
}

// ---------------------------------------------------------------- the definition API

Network::Network(const Network& other)
    : layers_(other.layers_), inputs_(other.inputs_), outputs_(other.outputs_), next_name_(other.next_name_) {
  for (const auto& t : other.tensors_) tensors_.push_back(std::make_unique<Tensor>(*t));
}

Network& Network::operator=(const Network& other) {
  if (this != &other) *this = Network(other);
  return *this;
}

std::string Network::unique_name(const std::string& requested, const char* kind) {
  std::string name = requested.empty() ? std::string(kind) + "_" + std::to_string(next_name_++) : requested;
  return name;
}

Tensor* Network::new_tensor(const std::string& name, int producer) {
  auto tensor = std::make_unique<Tensor>();
  tensor->id = static_cast<int>(tensors_.size());
  tensor->name = name;
  tensor->producer = producer;
  tensors_.push_back(std::move(tensor));
  return tensors_.back().get();
}

Tensor* Network::find_tensor(const std::string& name) {
  for (auto& t : tensors_)
    if (t->name == name) return t.get();
  return nullptr;
}

const Tensor* Network::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t->name == name) return t.get();
  return nullptr;
}

Tensor* Network::add_input(const std::string& name, const Shape& shape) {
  EASTRT_CHECK(!name.empty(), "a network input needs a name");
  EASTRT_CHECK(find_tensor(name) == nullptr, "a tensor named '", name, "' already exists");
  for (int64_t d : shape) EASTRT_CHECK(d > 0, "input '", name, "' has invalid shape ", to_string(shape));
  Tensor* t = new_tensor(name, -1);
  t->shape = shape;
  t->is_input = true;
  inputs_.push_back(t->id);
  return t;
}

Tensor* Network::add_layer(const std::string& requested, LayerParams params, std::vector<Tensor*> inputs) {
  Layer layer;
  layer.params = std::move(params);
  layer.name = unique_name(requested, to_string(layer.kind()));
  for (const Layer& other : layers_)
    EASTRT_CHECK(other.name != layer.name, "a layer named '", layer.name, "' already exists");
  std::vector<Shape> shapes;
  for (Tensor* t : inputs) {
    EASTRT_CHECK(t != nullptr && t->id >= 0 && t->id < tensor_count() && tensors_[t->id].get() == t, "layer '",
                 layer.name, "': an input tensor does not belong to this network");
    layer.inputs.push_back(t->id);
    shapes.push_back(t->shape);
  }
  std::vector<Shape> out = infer_layer_shapes(layer, shapes);
  int index = static_cast<int>(layers_.size());
  Tensor* output = new_tensor(layer.name, index);
  output->shape = out[0];
  layer.outputs.push_back(output->id);
  layers_.push_back(std::move(layer));
  return output;
}

Tensor* Network::add_convolution(Tensor* input, ConvolutionParams params, const std::string& name,
                                 Tensor* residual) {
  if (residual) return add_layer(name, std::move(params), {input, residual});
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_deconvolution(Tensor* input, DeconvolutionParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_scale(Tensor* input, ScaleParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_pooling(Tensor* input, PoolingParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_activation(Tensor* input, ActivationParams params, const std::string& name) {
  return add_layer(name, params, {input});
}
Tensor* Network::add_activation(Tensor* input, ActivationType type, const std::string& name) {
  return add_layer(name, ActivationParams{type}, {input});
}
Tensor* Network::add_elementwise(Tensor* a, Tensor* b, ElementWiseOp op, const std::string& name) {
  return add_layer(name, ElementWiseParams{op}, {a, b});
}
Tensor* Network::add_unary(Tensor* input, UnaryOp op, const std::string& name) {
  return add_layer(name, UnaryParams{op}, {input});
}
Tensor* Network::add_concatenation(const std::vector<Tensor*>& inputs, int axis, const std::string& name) {
  return add_layer(name, ConcatenationParams{axis}, inputs);
}
Tensor* Network::add_resize(Tensor* input, ResizeParams params, const std::string& name) {
  return add_layer(name, params, {input});
}
Tensor* Network::add_slice(Tensor* input, SliceParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_shuffle(Tensor* input, ShuffleParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}
Tensor* Network::add_constant(Weights value, const std::string& name) {
  return add_layer(name, ConstantParams{std::move(value)}, {});
}
Tensor* Network::add_reduce(Tensor* input, ReduceParams params, const std::string& name) {
  return add_layer(name, std::move(params), {input});
}

Tensor* Network::add_fully_connected(Tensor* input, const HostTensor& weights_ck, const HostTensor* bias,
                                     const std::string& name) {
  std::string base = name.empty() ? unique_name("", "FullyConnected") : name;
  EASTRT_CHECK(input && input->shape.size() == 2, "fully connected layer '", base, "' expects an [N, C] input, got ",
               input ? to_string(input->shape) : "null");
  EASTRT_CHECK(weights_ck.shape.size() == 2 && weights_ck.shape[0] == input->shape[1], "fully connected layer '",
               base, "': weights have shape ", to_string(weights_ck.shape), ", expected [", input->shape[1], ", K]");
  int64_t k = weights_ck.shape[1];
  HostTensor kc = ck_to_kc(weights_ck);
  ConvolutionParams conv;
  conv.out_channels = static_cast<int>(k);
  conv.kernel_weights = make_weights({k, input->shape[1], 1, 1}, std::move(kc.data));
  if (bias) conv.bias = make_weights(bias->shape, bias->data);
  Tensor* x = add_shuffle(input, {{}, {input->shape[0], 1, 1, input->shape[1]}}, base + "/to_nhwc");
  x = add_convolution(x, std::move(conv), base);
  return add_shuffle(x, {{}, {0, -1}}, base + "/to_nc");
}

void Network::mark_output(Tensor* tensor, const std::string& name) {
  EASTRT_CHECK(tensor != nullptr, "mark_output: null tensor");
  if (!name.empty() && name != tensor->name) {
    EASTRT_CHECK(find_tensor(name) == nullptr, "mark_output: a tensor named '", name, "' already exists");
    tensor->name = name;
  }
  if (!tensor->is_output) outputs_.push_back(tensor->id);
  tensor->is_output = true;
}

void Network::set_input_shape(const std::string& name, const Shape& shape) {
  Tensor* t = find_tensor(name);
  EASTRT_CHECK(t && t->is_input, "the network has no input named '", name, "'");
  EASTRT_CHECK(shape.size() == t->shape.size(), "input '", name, "' has rank ", t->shape.size(), ", got shape ",
               to_string(shape));
  for (int64_t d : shape) EASTRT_CHECK(d > 0, "input '", name, "' cannot take shape ", to_string(shape));
  t->shape = shape;
  infer_shapes();
}

void Network::infer_shapes() {
  for (const Layer& layer : layers_) {
    std::vector<Shape> shapes;
    for (int id : layer.inputs) shapes.push_back(tensors_[id]->shape);
    std::vector<Shape> out = infer_layer_shapes(layer, shapes);
    for (size_t i = 0; i < out.size(); ++i) tensors_[layer.outputs[i]]->shape = out[i];
  }
}

void Network::validate() const {
  EASTRT_CHECK(!outputs_.empty(), "the network has no marked output");
  std::vector<bool> ready(tensors_.size());
  for (int id : inputs_) ready[id] = true;
  std::set<std::string> names;
  for (const Layer& layer : layers_) {
    EASTRT_CHECK(names.insert(layer.name).second, "two layers are named '", layer.name, "'");
    for (int id : layer.inputs)
      EASTRT_CHECK(id >= 0 && id < tensor_count() && ready[id], "layer '", layer.name, "' reads tensor ", id,
                   " before it is produced");
    for (int id : layer.outputs) ready[id] = true;
  }
  for (int id : outputs_) EASTRT_CHECK(ready[id], "output '", tensors_[id]->name, "' is never produced");
}

int64_t Network::parameter_count() const {
  int64_t count = 0;
  auto add = [&](const Weights& w) { count += w ? w->size() : 0; };
  for (const Layer& layer : layers_) {
    std::visit(
        [&](const auto& p) {
          using P = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<P, ConvolutionParams> || std::is_same_v<P, DeconvolutionParams>) {
            add(p.kernel_weights);
            add(p.bias);
          } else if constexpr (std::is_same_v<P, ScaleParams>) {
            add(p.scale);
            add(p.shift);
            add(p.power);
          }
        },
        layer.params);
  }
  return count;
}

double Network::macs() const {
  double total = 0;
  for (const Layer& layer : layers_) {
    if (layer.kind() == LayerKind::kConvolution) {
      const auto& p = layer.as<ConvolutionParams>();
      total += static_cast<double>(volume(tensors_[layer.outputs[0]]->shape)) * p.kernel_weights->size() /
               p.out_channels;
    } else if (layer.kind() == LayerKind::kDeconvolution) {
      const auto& p = layer.as<DeconvolutionParams>();
      total += static_cast<double>(volume(tensors_[layer.inputs[0]]->shape)) * p.kernel_weights->size() /
               tensors_[layer.inputs[0]]->shape[3];
    }
  }
  return total;
}

// ---------------------------------------------------------------- weight layouts

HostTensor rsck_to_kcrs(const HostTensor& rsck) {
  EASTRT_CHECK(rsck.shape.size() == 4, "a TensorFlow conv filter is [R,S,C,K], got ", to_string(rsck.shape));
  int64_t r = rsck.shape[0], s = rsck.shape[1], c = rsck.shape[2], k = rsck.shape[3];
  HostTensor out({k, c, r, s});
  for (int64_t ir = 0; ir < r; ++ir)
    for (int64_t is = 0; is < s; ++is)
      for (int64_t ic = 0; ic < c; ++ic)
        for (int64_t ik = 0; ik < k; ++ik)
          out.data[((ik * c + ic) * r + ir) * s + is] = rsck.data[((ir * s + is) * c + ic) * k + ik];
  return out;
}

HostTensor ck_to_kc(const HostTensor& ck) {
  EASTRT_CHECK(ck.shape.size() == 2, "fully connected weights are [C,K], got ", to_string(ck.shape));
  int64_t c = ck.shape[0], k = ck.shape[1];
  HostTensor out({k, c});
  for (int64_t ic = 0; ic < c; ++ic)
    for (int64_t ik = 0; ik < k; ++ik) out.data[ik * c + ic] = ck.data[ic * k + ik];
  return out;
}

}  // namespace eastrt
