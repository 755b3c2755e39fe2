// Small graph edits shared by the rewrites of src/passes/: who reads a tensor, and removing layers while
// keeping every tensor's producer index right.
#pragma once
#include <vector>

#include "eastrt/network.h"

namespace eastrt::passes {

// For every tensor id, the indices of the layers that read it (a layer reading it twice appears twice).
std::vector<std::vector<int>> tensor_consumers(const Network& network);

// True when `tensor` is read by exactly one layer and is not a network output: its producer may then be
// rewritten to write another tensor instead.
bool has_single_reader(const Network& network, const std::vector<std::vector<int>>& consumers, int tensor);

// Erases the layers flagged in `remove` and renumbers every remaining layer's outputs' producer; tensors
// that no remaining layer writes (and that are not inputs) are left orphaned with producer -1.
void remove_layers(Network& network, const std::vector<bool>& remove);

}  // namespace eastrt::passes
