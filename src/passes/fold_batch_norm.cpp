// fold_batch_norm: Scale(conv(x)) → conv'(x) with W'[k] = W[k]·s[k] and b'[k] = b[k]·s[k] + t[k]. Targets a
// Scale without power whose input is a convolution output read by nothing else; the convolution must not
// have a fused activation or residual yet (the scale would apply to those too).
#include <algorithm>

#include "passes/graph_edit.h"
#include "passes/passes.h"

namespace eastrt::passes {
namespace {

bool power_is_one(const ScaleParams& s) {
  return !s.power || std::all_of(s.power->data.begin(), s.power->data.end(), [](float p) { return p == 1.0f; });
}

float value_at(const Weights& w, int64_t k, float fallback) {
  if (!w) return fallback;
  return w->size() == 1 ? w->data[0] : w->data[static_cast<size_t>(k)];
}

}  // namespace

int fold_batch_norm(Network& network) {
  std::vector<Layer>& layers = network.mutable_layers();
  const auto consumers = tensor_consumers(network);
  std::vector<bool> remove(layers.size(), false);
  int folded = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& scale = layers[i];
    if (scale.kind() != LayerKind::kScale || scale.inputs.size() != 1) continue;
    const ScaleParams& s = scale.as<ScaleParams>();
    if (!power_is_one(s)) continue;
    const int t = scale.inputs[0];
    const int p = network.tensor(t).producer;
    if (p < 0 || remove[static_cast<size_t>(p)] || !has_single_reader(network, consumers, t)) continue;
    Layer& conv = layers[static_cast<size_t>(p)];
    if (conv.kind() != LayerKind::kConvolution || conv.inputs.size() != 1) continue;
    ConvolutionParams& c = conv.as<ConvolutionParams>();
    if (c.activation) continue;
    const int64_t K = c.out_channels;
    // A per-channel scale runs over the last dimension, which for the NHWC convolution output is K.
    auto fits = [&](const Weights& w) { return !w || w->size() == 1 || (s.mode == ScaleMode::kChannel && w->size() == K); };
    if (!fits(s.scale) || !fits(s.shift)) continue;

    // New weights: the old ones may be shared with copies of the network.
    const HostTensor& w = *c.kernel_weights;
    const int64_t per_k = w.size() / K;
    std::vector<float> weights(w.data.size()), bias(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      const float sk = value_at(s.scale, k, 1.0f);
      for (int64_t j = 0; j < per_k; ++j) weights[k * per_k + j] = w.data[k * per_k + j] * sk;
      bias[k] = value_at(c.bias, k, 0.0f) * sk + value_at(s.shift, k, 0.0f);
    }
    c.kernel_weights = make_weights(w.shape, std::move(weights));
    c.bias = make_weights({K}, std::move(bias));

    // The convolution now writes the Scale's output, so every reader (and an output mark) stays as it was.
    conv.outputs[0] = scale.outputs[0];
    network.tensor(scale.outputs[0]).producer = p;
    network.tensor(t).producer = -1;
    remove[i] = true;
    ++folded;
  }
  remove_layers(network, remove);
  return folded;
}

}  // namespace eastrt::passes
