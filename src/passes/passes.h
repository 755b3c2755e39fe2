// The graph rewrites the GPU builder runs before planning (one per file in src/passes/), and the manager
// that runs them in order. Each rewrite keeps the network's function: the CPU engine gives the same outputs
// before and after (tests/test_passes.cpp).
#pragma once
#include <string>
#include <vector>

#include "eastrt/network.h"

namespace eastrt::passes {

// A Scale (y = x·s + t, no power) whose input is a convolution output read by nothing else is folded into
// that convolution's weights and bias (BatchNorm in inference form is such a Scale). Returns the count.
int fold_batch_norm(Network& network);

// An Activation whose input is a convolution output read by nothing else, the convolution having no
// activation yet, becomes that convolution's fused epilogue activation. Returns the count.
int fuse_activation(Network& network);

// Add(conv_out, other), where conv_out is read by nothing else and `other` has the sum's shape, becomes the
// convolution with `other` as its residual input (y = conv + bias + other), and a ReLU read only after the
// sum joins it as the fused activation. The fused layer takes the Add's place in the order. Returns the
// count of Adds removed.
int fuse_residual(Network& network);

struct PassReport {
  std::string pass;
  int rewrites = 0;
  size_t layers_after = 0;
};

// Runs fold_batch_norm, fuse_residual, fuse_activation in that order (each enables the next), validates
// and infers shapes again; returns what each did.
std::vector<PassReport> run_default_passes(Network& network);

}  // namespace eastrt::passes
