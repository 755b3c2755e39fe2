// Consumer lists and layer removal for the rewrites (see graph_edit.h).
#include "passes/graph_edit.h"

namespace eastrt::passes {

std::vector<std::vector<int>> tensor_consumers(const Network& network) {
  std::vector<std::vector<int>> consumers(static_cast<size_t>(network.tensor_count()));
  const std::vector<Layer>& layers = network.layers();
  for (size_t i = 0; i < layers.size(); ++i)
    for (int id : layers[i].inputs) consumers[static_cast<size_t>(id)].push_back(static_cast<int>(i));
  return consumers;
}

bool has_single_reader(const Network& network, const std::vector<std::vector<int>>& consumers, int tensor) {
  return consumers[static_cast<size_t>(tensor)].size() == 1 && !network.tensor(tensor).is_output;
}

void remove_layers(Network& network, const std::vector<bool>& remove) {
  std::vector<Layer>& layers = network.mutable_layers();
  std::vector<Layer> kept;
  kept.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i)
    if (i >= remove.size() || !remove[i]) kept.push_back(std::move(layers[i]));
  layers = std::move(kept);
  for (int id = 0; id < network.tensor_count(); ++id)
    if (!network.tensor(id).is_input) network.tensor(id).producer = -1;
  for (size_t i = 0; i < layers.size(); ++i)
    for (int id : layers[i].outputs) network.tensor(id).producer = static_cast<int>(i);
}

}  // namespace eastrt::passes
