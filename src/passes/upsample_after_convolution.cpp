// upsample_after_convolution: Conv1×1(Concat(Resize(h), f)) → Conv1×1(f) + Resize(Conv1×1(h)).
// A resize is linear in its input and a 1×1 convolution acts on each pixel alone, so the convolution's part
// over the upsampled channels can run before the upsampling, at its low resolution, and only the K output
// channels are upsampled instead of h's C. The sum is the residual of the convolution over f, where its
// epilogue adds it (with the bias and activation after it). EAST's merge branch is three such blocks: the
// first upsamples 2048 channels for a 128-channel convolution; after the rewrite there is no concatenation
// to copy, a quarter of that part's arithmetic, and the upsampling writes 128 channels.
//
// Targets a 1×1 convolution (stride 1, no padding, one group, no residual yet) whose input is a channel
// concatenation of two tensors read by nothing else, one of them an upsampling Resize's output read only
// by the concatenation, with K ≤ C. Not in the default passes: it replaces tensors, so a calibration cache
// made for the original tensors has no ranges for the new ones.
#include "passes/graph_edit.h"
#include "passes/passes.h"

namespace eastrt::passes {
namespace {

bool is_pointwise(const ConvolutionParams& c) {
  const Padding& p = c.padding;
  return c.kernel == std::array<int, 2>{1, 1} && c.stride == std::array<int, 2>{1, 1} &&
         c.dilation == std::array<int, 2>{1, 1} && c.groups == 1 && p.top == 0 && p.bottom == 0 && p.left == 0 &&
         p.right == 0;
}

// Filter input channels [begin, begin + count) of a [K, C, 1, 1] filter.
Weights filter_channels(const HostTensor& w, int64_t begin, int64_t count) {
  const int64_t K = w.shape[0], C = w.shape[1];
  std::vector<float> part(static_cast<size_t>(K * count));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < count; ++c) part[k * count + c] = w.data[k * C + begin + c];
  return make_weights({K, count, 1, 1}, std::move(part));
}

}  // namespace

int upsample_after_convolution(Network& network) {
  std::vector<Layer>& layers = network.mutable_layers();
  const auto consumers = tensor_consumers(network);
  int moved = 0;
  for (size_t ci = 0; ci < layers.size(); ++ci) {
    if (layers[ci].kind() != LayerKind::kConvolution || layers[ci].inputs.size() != 1) continue;
    if (!is_pointwise(layers[ci].as<ConvolutionParams>())) continue;
    const int x = layers[ci].inputs[0];
    const int cat_index = network.tensor(x).producer;
    if (cat_index < 0 || !has_single_reader(network, consumers, x)) continue;
    const Layer& cat = layers[static_cast<size_t>(cat_index)];
    const Shape& cat_shape = network.tensor(x).shape;
    if (cat.kind() != LayerKind::kConcatenation || cat.inputs.size() != 2 || cat_shape.size() != 4) continue;
    const int axis = cat.as<ConcatenationParams>().axis;
    if (axis != 3 && axis != -1) continue;

    // The concatenation's upsampled operand: g = Resize(h), read only here, growing the picture.
    int side = -1;
    for (int j = 0; j < 2 && side < 0; ++j) {
      const int g = cat.inputs[static_cast<size_t>(j)];
      const int r = network.tensor(g).producer;
      if (r < 0 || layers[static_cast<size_t>(r)].kind() != LayerKind::kResize || !has_single_reader(network, consumers, g))
        continue;
      const Shape& h = network.tensor(layers[static_cast<size_t>(r)].inputs[0]).shape;
      const Shape& up = network.tensor(g).shape;
      if (h.size() != 4) continue;
      const bool grows = up[1] >= h[1] && up[2] >= h[2] && up[1] * up[2] > h[1] * h[2];
      if (grows && layers[ci].as<ConvolutionParams>().out_channels <= h[3]) side = j;
    }
    if (side < 0) continue;
    const int g = cat.inputs[static_cast<size_t>(side)];
    const int f = cat.inputs[static_cast<size_t>(1 - side)];
    const size_t resize_index = static_cast<size_t>(network.tensor(g).producer);
    const int h = layers[resize_index].inputs[0];
    const int64_t g_channels = network.tensor(g).shape[3], f_channels = network.tensor(f).shape[3];

    // The filter's columns over g and over f, in the concatenation's order.
    Layer conv = std::move(layers[ci]);
    ConvolutionParams& c = conv.as<ConvolutionParams>();
    const Weights whole = c.kernel_weights;
    ConvolutionParams low;
    low.out_channels = c.out_channels;
    low.kernel_weights = filter_channels(*whole, side == 0 ? 0 : f_channels, g_channels);
    c.kernel_weights = filter_channels(*whole, side == 0 ? g_channels : 0, f_channels);

    // In place of the resize, the low-resolution convolution (writing the tensor g was); in place of the
    // concatenation, the resize of its output (writing the tensor x was, under g's name); in place of the
    // convolution, the convolution over f with that as its residual.
    Layer resize = std::move(layers[resize_index]);
    const std::string upsampled_name = network.tensor(g).name;
    Layer& first = layers[resize_index];
    first = Layer{};
    first.name = conv.name + "/before_" + resize.name;
    first.params = std::move(low);
    first.inputs = {h};
    first.outputs = {g};
    network.tensor(g).name = first.name;
    network.tensor(g).producer = static_cast<int>(resize_index);

    resize.inputs = {g};
    resize.outputs = {x};
    network.tensor(x).name = upsampled_name;
    network.tensor(x).producer = cat_index;
    layers[static_cast<size_t>(cat_index)] = std::move(resize);

    conv.inputs = {f, x};
    layers[ci] = std::move(conv);
    network.infer_shapes();  // the next block's checks read shapes
    ++moved;
  }
  return moved;
}

}  // namespace eastrt::passes
