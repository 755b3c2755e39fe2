// fuse_activation: Activation(conv(x)) → conv(x) with the activation in its epilogue. Targets an Activation
// whose input is a convolution output read by nothing else, the convolution having no activation yet (a
// residual is fine: the epilogue applies the activation after the residual sum).
#include "passes/graph_edit.h"
#include "passes/passes.h"

namespace eastrt::passes {

int fuse_activation(Network& network) {
  std::vector<Layer>& layers = network.mutable_layers();
  const auto consumers = tensor_consumers(network);
  std::vector<bool> remove(layers.size(), false);
  int fused = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& act = layers[i];
    if (act.kind() != LayerKind::kActivation || act.inputs.size() != 1) continue;
    const int t = act.inputs[0];
    const int p = network.tensor(t).producer;
    if (p < 0 || remove[static_cast<size_t>(p)] || !has_single_reader(network, consumers, t)) continue;
    Layer& conv = layers[static_cast<size_t>(p)];
    if (conv.kind() != LayerKind::kConvolution) continue;
    ConvolutionParams& c = conv.as<ConvolutionParams>();
    if (c.activation) continue;
    c.activation = act.as<ActivationParams>();
    conv.outputs[0] = act.outputs[0];
    network.tensor(act.outputs[0]).producer = p;
    network.tensor(t).producer = -1;
    remove[i] = true;
    ++fused;
  }
  remove_layers(network, remove);
  return fused;
}

}  // namespace eastrt::passes
