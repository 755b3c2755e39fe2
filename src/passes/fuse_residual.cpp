// fuse_residual: Add(conv(x), r) [→ ReLU] → conv(x) with residual input r [and ReLU] in its epilogue.
// Targets an Add of two tensors of the sum's shape (no broadcast) where one operand is a convolution output
// read by nothing else and the convolution has no residual or activation yet. The fused convolution moves
// to the Add's place, where both its input and r exist.
#include "passes/graph_edit.h"
#include "passes/passes.h"

namespace eastrt::passes {

int fuse_residual(Network& network) {
  std::vector<Layer>& layers = network.mutable_layers();
  const auto consumers = tensor_consumers(network);
  std::vector<bool> remove(layers.size(), false);
  int fused = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (remove[i]) continue;
    const Layer& add = layers[i];
    if (add.kind() != LayerKind::kElementWise || add.as<ElementWiseParams>().op != ElementWiseOp::kAdd ||
        add.inputs.size() != 2)
      continue;
    const Shape& sum_shape = network.tensor(add.outputs[0]).shape;
    if (network.tensor(add.inputs[0]).shape != sum_shape || network.tensor(add.inputs[1]).shape != sum_shape) continue;

    // Of the operands that qualify, take the later convolution (in ResNet the residual branch's last
    // convolution rather than the projection shortcut, as other engines do).
    int chosen = -1;
    for (int j = 0; j < 2; ++j) {
      const int t = add.inputs[static_cast<size_t>(j)];
      const int p = network.tensor(t).producer;
      if (p < 0 || remove[static_cast<size_t>(p)] || !has_single_reader(network, consumers, t)) continue;
      const Layer& conv = layers[static_cast<size_t>(p)];
      if (conv.kind() != LayerKind::kConvolution || conv.inputs.size() != 1 ||
          conv.as<ConvolutionParams>().activation)
        continue;
      if (chosen < 0 || p > network.tensor(add.inputs[static_cast<size_t>(chosen)]).producer) chosen = j;
    }
    if (chosen < 0) continue;
    const int conv_out = add.inputs[static_cast<size_t>(chosen)];
    const int other = add.inputs[static_cast<size_t>(1 - chosen)];
    const int p = network.tensor(conv_out).producer;

    Layer conv = std::move(layers[static_cast<size_t>(p)]);
    remove[static_cast<size_t>(p)] = true;
    conv.inputs.push_back(other);
    conv.outputs[0] = add.outputs[0];
    network.tensor(conv_out).producer = -1;

    // A ReLU that alone reads the sum joins the epilogue.
    const int sum = add.outputs[0];
    if (has_single_reader(network, consumers, sum)) {
      const int r = consumers[static_cast<size_t>(sum)][0];
      Layer& relu = layers[static_cast<size_t>(r)];
      if (!remove[static_cast<size_t>(r)] && relu.kind() == LayerKind::kActivation &&
          relu.as<ActivationParams>().type == ActivationType::kRelu) {
        conv.as<ConvolutionParams>().activation = relu.as<ActivationParams>();
        conv.outputs[0] = relu.outputs[0];
        network.tensor(sum).producer = -1;
        remove[static_cast<size_t>(r)] = true;
      }
    }
    network.tensor(conv.outputs[0]).producer = static_cast<int>(i);
    layers[i] = std::move(conv);
    ++fused;
  }
  remove_layers(network, remove);
  return fused;
}

}  // namespace eastrt::passes
