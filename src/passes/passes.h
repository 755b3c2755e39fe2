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

// Conv1×1(Concat(Resize(h), f)) with K ≤ C(h), the Resize upsampling, becomes Conv1×1(f) with residual
// Resize(Conv1×1(h)) (the filter split by the concatenation's channels): the part over the upsampled
// channels runs at the low resolution and the concatenation goes. It replaces tensors (the concatenation's,
// the upsampled one), so it is not among the default passes. Returns the count.
int upsample_after_convolution(Network& network);

// Concat(Scale_1(Conv_1(x)), …, Scale_n(Conv_n(x))) along channels, the convolutions alike but for their
// filters and bias, each link read once, becomes Scale(Conv(x)): one convolution of the stacked filters and
// one per-channel scale writing the concatenation's tensor (EAST's geometry output). It replaces tensors,
// so it is not among the default passes. Returns the count.
int merge_concatenated_heads(Network& network);

struct PassReport {
  std::string pass;
  int rewrites = 0;
  size_t layers_after = 0;
};

struct PassOptions {
  // Also upsample_after_convolution and merge_concatenated_heads, last: for engines that need no
  // calibration cache of the network's tensors (the GPU builder's FP32/TF32/FP16).
  bool upsample_after_convolution = false;
  bool merge_concatenated_heads = false;
};

// Runs fold_batch_norm, fuse_residual, fuse_activation in that order (each enables the next), and what
// `options` adds; validates and infers shapes again after each; returns what each did.
std::vector<PassReport> run_default_passes(Network& network, const PassOptions& options = {});

}  // namespace eastrt::passes
