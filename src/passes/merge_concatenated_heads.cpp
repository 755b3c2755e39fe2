// merge_concatenated_heads: Concat(Scale_1(Conv_1(x)), …, Scale_n(Conv_n(x))) → Scale(Conv(x)).
// Convolutions of one input with the same geometry and activation compute their output channels
// independently, so one convolution with their filters stacked computes them all; the scales (uniform or
// per channel) become one per-channel scale over the stacked channels, which writes the concatenation's
// tensor. EAST's geometry output is such a block (the 4 distances ·512 and the angle (σ − ½)·π/2): two
// convolutions, two scales and a concatenation become one convolution and one scale.
//
// Targets a channel concatenation of n ≥ 2 tensors, each a Scale (no power) read only by it, of a
// convolution output read only by that Scale, the convolutions with no residual and the same input, kernel,
// stride, dilation, groups, padding and activation. Not in the default passes: it replaces tensors, so a
// calibration cache made for the original tensors has no ranges for the new ones.
#include <algorithm>

#include "passes/graph_edit.h"
#include "passes/passes.h"

namespace eastrt::passes {
namespace {

bool same_activation(const std::optional<ActivationParams>& a, const std::optional<ActivationParams>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->type == b->type && a->alpha == b->alpha && a->beta == b->beta);
}

bool same_geometry(const ConvolutionParams& a, const ConvolutionParams& b) {
  return a.kernel == b.kernel && a.stride == b.stride && a.dilation == b.dilation && a.groups == b.groups &&
         a.padding == b.padding && same_activation(a.activation, b.activation);
}

// Value c of a scale or shift operand: uniform ([1]), per channel ([C]), or `absent` when null.
float operand(const Weights& w, int64_t c, float absent) {
  if (!w) return absent;
  return w->data.size() == 1 ? w->data[0] : w->data[static_cast<size_t>(c)];
}

}  // namespace

int merge_concatenated_heads(Network& network) {
  int merged = 0;
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<Layer>& layers = network.mutable_layers();
    const auto consumers = tensor_consumers(network);
    for (size_t ci = 0; ci < layers.size() && !changed; ++ci) {
      const Layer& cat = layers[ci];
      if (cat.kind() != LayerKind::kConcatenation || cat.inputs.size() < 2) continue;
      const int axis = cat.as<ConcatenationParams>().axis;
      if ((axis != 3 && axis != -1) || network.tensor(cat.outputs[0]).shape.size() != 4) continue;
      // Each operand: Scale(Conv(x)), every link read once.
      std::vector<size_t> scales, convs;
      for (int t : cat.inputs) {
        const int s = network.tensor(t).producer;
        if (s < 0 || !has_single_reader(network, consumers, t)) break;
        const Layer& scale = layers[static_cast<size_t>(s)];
        if (scale.kind() != LayerKind::kScale || scale.as<ScaleParams>().power) break;
        const int u = scale.inputs[0];
        const int c = network.tensor(u).producer;
        if (c < 0 || !has_single_reader(network, consumers, u)) break;
        const Layer& conv = layers[static_cast<size_t>(c)];
        if (conv.kind() != LayerKind::kConvolution || conv.inputs.size() != 1) break;
        if (!convs.empty()) {
          const Layer& first = layers[convs[0]];
          if (conv.inputs[0] != first.inputs[0] ||
              !same_geometry(conv.as<ConvolutionParams>(), first.as<ConvolutionParams>()))
            break;
        }
        scales.push_back(static_cast<size_t>(s));
        convs.push_back(static_cast<size_t>(c));
      }
      if (convs.size() != cat.inputs.size()) continue;

      // The stacked filter, bias (zeros for a convolution without one) and per-channel scale and shift.
      ConvolutionParams stacked = layers[convs[0]].as<ConvolutionParams>();
      stacked.out_channels = 0;
      std::vector<float> filter, bias, scale, shift;
      bool any_bias = false;
      Shape filter_shape = stacked.kernel_weights->shape;
      for (size_t i = 0; i < convs.size(); ++i) {
        const auto& p = layers[convs[i]].as<ConvolutionParams>();
        const auto& s = layers[scales[i]].as<ScaleParams>();
        filter.insert(filter.end(), p.kernel_weights->data.begin(), p.kernel_weights->data.end());
        any_bias = any_bias || p.bias;
        for (int k = 0; k < p.out_channels; ++k) {
          bias.push_back(p.bias ? p.bias->data[static_cast<size_t>(k)] : 0.0f);
          scale.push_back(operand(s.scale, k, 1.0f));
          shift.push_back(operand(s.shift, k, 0.0f));
        }
        stacked.out_channels += p.out_channels;
      }
      filter_shape[0] = stacked.out_channels;
      stacked.kernel_weights = make_weights(filter_shape, std::move(filter));
      stacked.bias = any_bias ? make_weights({stacked.out_channels}, std::move(bias)) : nullptr;
      ScaleParams per_channel;
      per_channel.mode = ScaleMode::kChannel;
      per_channel.scale = make_weights({stacked.out_channels}, std::move(scale));
      per_channel.shift = make_weights({stacked.out_channels}, std::move(shift));

      // The last convolution's place (its input exists by then) takes the stacked one, writing the first
      // convolution's tensor under the concatenation's name; the concatenation's place takes the scale,
      // writing the concatenation's tensor. The other convolutions and the scales go.
      const size_t last = *std::max_element(convs.begin(), convs.end());
      const int stacked_out = layers[convs[0]].outputs[0];
      const int x = layers[convs[0]].inputs[0];
      const std::string cat_name = cat.name;
      Layer conv;
      conv.name = cat_name + "/convolution";
      conv.params = std::move(stacked);
      conv.inputs = {x};
      conv.outputs = {stacked_out};
      network.tensor(stacked_out).name = conv.name;
      Layer affine;
      affine.name = cat_name + "/scale";
      affine.params = std::move(per_channel);
      affine.inputs = {stacked_out};
      affine.outputs = layers[ci].outputs;
      std::vector<bool> remove(layers.size(), false);
      for (size_t i : convs) remove[i] = i != last;
      for (size_t i : scales) remove[i] = true;
      layers[last] = std::move(conv);
      layers[ci] = std::move(affine);
      remove_layers(network, remove);
      network.infer_shapes();
      ++merged;
      changed = true;
    }
  }
  return merged;
}

}  // namespace eastrt::passes
