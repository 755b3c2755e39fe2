// The network IR and the network definition API: layers and tensors, built layer by layer, with every
// output shape inferred (and every mismatch reported) as the layer is added.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "eastrt/tensor.h"

namespace eastrt {

// ---- Layer parameters. Spatial layers work on N,H,W,C tensors (see tensor.h). ----

// Explicit padding: rows added above/below and columns left/right. TF `SAME` with even sizes is asymmetric
// (nothing before, one after), which is why pre and post are separate.
struct Padding {
  int top = 0, left = 0, bottom = 0, right = 0;
  static Padding symmetric(int p) { return {p, p, p, p}; }
  bool operator==(const Padding&) const = default;
};

enum class ActivationType { kRelu, kSigmoid, kTanh, kClip, kHardSigmoid, kHardSwish, kLeakyRelu };
struct ActivationParams {
  ActivationType type = ActivationType::kRelu;
  float alpha = 0.0f;  // Clip: min; HardSigmoid: slope; LeakyRelu: negative slope
  float beta = 0.0f;   // Clip: max; HardSigmoid: offset
};

struct ConvolutionParams {
  int out_channels = 0;
  std::array<int, 2> kernel{1, 1};    // R (height), S (width)
  std::array<int, 2> stride{1, 1};
  std::array<int, 2> dilation{1, 1};
  int groups = 1;
  Padding padding;
  Weights kernel_weights;             // KCRS: [K, C/groups, R, S]
  Weights bias;                       // [K] or null
  // The epilogue the passes fuse in: y = activation(conv(x) + bias + residual), where the residual is the
  // layer's optional second input (of the output's shape).
  std::optional<ActivationParams> activation;
};

// Transposed convolution; the padding crops the full output (as ONNX ConvTranspose pads do).
struct DeconvolutionParams {
  int out_channels = 0;
  std::array<int, 2> kernel{1, 1};
  std::array<int, 2> stride{1, 1};
  int groups = 1;
  Padding padding;
  std::array<int, 2> output_padding{0, 0};  // extra rows/columns at the bottom/right
  Weights kernel_weights;                   // CKRS: [C, K/groups, R, S] (ONNX's layout)
  Weights bias;                             // [K] or null
};

// y = (x * scale + shift) ^ power, per channel (last dimension) or uniform; BatchNorm is expressed this way.
enum class ScaleMode { kUniform, kChannel };
struct ScaleParams {
  ScaleMode mode = ScaleMode::kChannel;
  Weights scale, shift, power;  // each [C] (channel) or [1] (uniform), or null for 1, 0, 1
};

enum class PoolingType { kMax, kAverage };
struct PoolingParams {
  PoolingType type = PoolingType::kMax;
  std::array<int, 2> window{1, 1};
  std::array<int, 2> stride{1, 1};
  Padding padding;
  bool global = false;              // window = the whole H×W
  bool count_include_pad = false;   // average pooling: divide by the full window (TF: no; ONNX: option)
};

enum class ElementWiseOp { kAdd, kSub, kMul, kDiv, kMax, kMin, kPow };
struct ElementWiseParams {
  ElementWiseOp op = ElementWiseOp::kAdd;
};

enum class UnaryOp { kExp, kLog, kSqrt, kRsqrt, kAbs, kNeg, kReciprocal, kFloor, kCeil, kSin, kCos };
struct UnaryParams {
  UnaryOp op = UnaryOp::kExp;
};

struct ConcatenationParams {
  int axis = 3;
};

// Coordinate rules of resizing, as ONNX names them. TF1 resize_bilinear(align_corners=False,
// half_pixel_centers=False) is kAsymmetric: in = out / scale.
enum class ResizeMode { kBilinear, kNearest };
enum class ResizeCoordinates { kAsymmetric, kHalfPixel, kAlignCorners };
struct ResizeParams {
  ResizeMode mode = ResizeMode::kBilinear;
  ResizeCoordinates coordinates = ResizeCoordinates::kAsymmetric;
  // Output size on dimensions 1 and 2: fixed, or (when the scales are positive) floor(input · scale), so
  // that the layer follows the input when the network runs at another size.
  int out_height = 0, out_width = 0;
  float scale_height = 0, scale_width = 0;
};

// Every dimension: out[i] = in[start + i * stride], size[i] elements; a size of -1 (kToTheEnd) takes
// every element from start on, so that the slice follows the input when the network runs at another size.
struct SliceParams {
  static constexpr int64_t kToTheEnd = -1;
  Shape start, size, stride;
};

// An optional transpose (out dim i = in dim perm[i]) followed by an optional reshape, as TensorRT's
// shuffle. A reshape entry is a size, or 0 (the transposed input's dimension at the same position), or -1
// (inferred), or input_dimension(k) (the transposed input's dimension k): with those a squeeze or an
// unsqueeze follows the input when the network runs at another size.
struct ShuffleParams {
  std::vector<int> permutation;  // empty: none
  Shape reshape;                 // empty: none
  static constexpr int64_t input_dimension(int k) { return -2 - k; }
};
// The shape a shuffle's reshape gives a (transposed) input of shape `in`; an Error when it cannot apply.
Shape resolve_reshape(const Shape& in, const Shape& target);

struct ConstantParams {
  Weights value;
};

enum class ReduceOp { kSum, kMean, kMax, kMin };
struct ReduceParams {
  ReduceOp op = ReduceOp::kMean;
  std::vector<int> axes;
  bool keep_dims = true;
};

enum class LayerKind {
  kConvolution, kDeconvolution, kScale, kPooling, kActivation, kElementWise, kUnary,
  kConcatenation, kResize, kSlice, kShuffle, kConstant, kReduce
};
const char* to_string(LayerKind kind);
const char* to_string(ActivationType type);
const char* to_string(ElementWiseOp op);
const char* to_string(UnaryOp op);
const char* to_string(ReduceOp op);

using LayerParams = std::variant<ConvolutionParams, DeconvolutionParams, ScaleParams, PoolingParams,
                                 ActivationParams, ElementWiseParams, UnaryParams, ConcatenationParams,
                                 ResizeParams, SliceParams, ShuffleParams, ConstantParams, ReduceParams>;

// ---- The graph ----

struct Tensor {
  int id = -1;
  std::string name;
  Shape shape;
  int producer = -1;  // layer index, -1 for a network input
  bool is_input = false;
  bool is_output = false;
};

struct Layer {
  std::string name;
  LayerParams params;
  std::vector<int> inputs;   // tensor ids
  std::vector<int> outputs;  // tensor ids

  LayerKind kind() const { return static_cast<LayerKind>(params.index()); }
  template <typename P> const P& as() const { return std::get<P>(params); }
  template <typename P> P& as() { return std::get<P>(params); }
};

class Network {
 public:
  Network() = default;
  // Copies share the (immutable) weights; Tensor pointers of the original do not refer into the copy.
  Network(const Network& other);
  Network& operator=(const Network& other);
  Network(Network&&) noexcept = default;
  Network& operator=(Network&&) noexcept = default;

  // -- definition API. Each add_* infers the output shape now and throws an Error naming the layer and
  // the shapes involved when they do not fit. Names must be unique; an empty name gets a generated one.
  Tensor* add_input(const std::string& name, const Shape& shape);
  Tensor* add_convolution(Tensor* input, ConvolutionParams params, const std::string& name = "",
                          Tensor* residual = nullptr);
  Tensor* add_deconvolution(Tensor* input, DeconvolutionParams params, const std::string& name = "");
  Tensor* add_scale(Tensor* input, ScaleParams params, const std::string& name = "");
  Tensor* add_pooling(Tensor* input, PoolingParams params, const std::string& name = "");
  Tensor* add_activation(Tensor* input, ActivationParams params, const std::string& name = "");
  Tensor* add_activation(Tensor* input, ActivationType type, const std::string& name = "");
  Tensor* add_elementwise(Tensor* a, Tensor* b, ElementWiseOp op, const std::string& name = "");
  Tensor* add_unary(Tensor* input, UnaryOp op, const std::string& name = "");
  Tensor* add_concatenation(const std::vector<Tensor*>& inputs, int axis, const std::string& name = "");
  Tensor* add_resize(Tensor* input, ResizeParams params, const std::string& name = "");
  Tensor* add_slice(Tensor* input, SliceParams params, const std::string& name = "");
  Tensor* add_shuffle(Tensor* input, ShuffleParams params, const std::string& name = "");
  Tensor* add_constant(Weights value, const std::string& name = "");
  Tensor* add_reduce(Tensor* input, ReduceParams params, const std::string& name = "");
  // A fully connected layer on [N, C] with weights in TensorFlow's [C, K] layout (converted to [K, C]
  // inside): expressed as a 1×1 convolution between two shuffles.
  Tensor* add_fully_connected(Tensor* input, const HostTensor& weights_ck, const HostTensor* bias,
                              const std::string& name = "");
  void mark_output(Tensor* tensor, const std::string& name = "");

  // -- inspection
  const std::vector<Layer>& layers() const { return layers_; }
  std::vector<Layer>& mutable_layers() { return layers_; }
  const Tensor& tensor(int id) const { return *tensors_.at(id); }
  Tensor& tensor(int id) { return *tensors_.at(id); }
  int tensor_count() const { return static_cast<int>(tensors_.size()); }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }
  Tensor* find_tensor(const std::string& name);
  const Tensor* find_tensor(const std::string& name) const;

  // Sets the shape of an input and infers every shape again (the same network runs at many sizes).
  void set_input_shape(const std::string& name, const Shape& shape);
  void infer_shapes();

  // Checks that every layer's inputs exist and are produced before it, names are unique, at least one
  // output is marked; throws an Error describing the first problem.
  void validate() const;

  int64_t parameter_count() const;   // weights and biases of every layer
  double macs() const;               // multiply-accumulates of convolutions and fully connected layers

 private:
  Tensor* new_tensor(const std::string& name, int producer);
  Tensor* add_layer(const std::string& name, LayerParams params, std::vector<Tensor*> inputs);
  std::string unique_name(const std::string& requested, const char* kind);

  std::vector<std::unique_ptr<Tensor>> tensors_;
  std::vector<Layer> layers_;
  std::vector<int> inputs_, outputs_;
  int next_name_ = 0;
};

// Output height and width of a resize for an input of in_height × in_width (fixed, or scaled).
std::array<int64_t, 2> resize_output_size(const ResizeParams& params, int64_t in_height, int64_t in_width);

// Output shape of a slice of `input` (its kToTheEnd sizes resolved); the caller checks that it fits.
Shape slice_output_shape(const SliceParams& params, const Shape& input);

// Output shapes of one layer from its input shapes; throws an Error naming the layer on a mismatch.
std::vector<Shape> infer_layer_shapes(const Layer& layer, const std::vector<Shape>& input_shapes);

// Layout conversions the definition API offers for weights in the framework's layout.
HostTensor rsck_to_kcrs(const HostTensor& rsck);  // TF Conv2D filter [R,S,C,K] → [K,C,R,S]
HostTensor ck_to_kc(const HostTensor& ck);        // TF MatMul weights [C,K] → [K,C]

// Text dump (one line per layer: name, kind, inputs → outputs with shapes, parameters) and Graphviz.
std::string to_text(const Network& network);
std::string to_dot(const Network& network);

}  // namespace eastrt
