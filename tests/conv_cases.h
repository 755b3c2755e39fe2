// The convolution cases the GPU tests run every convolution tactic on (awkward shapes: odd sizes, channels
// not a multiple of 8, batch 2-3, asymmetric padding, groups, dilation, bias, residual, activations) and
// the one network builder for them and for the tactic-specific tables.
#pragma once
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "cuda/plan.h"
#ifdef EASTRT_HAVE_CUDA
#include "cuda/engine_impl.h"
#include "cuda/timing_cache.h"
#endif
#include "eastrt/error.h"
#include "eastrt/network.h"
#include "test_support.h"

namespace eastrt::test_support {

struct ConvCase {
  const char* what;
  Shape input;
  int k, kernel, stride, dilation, groups;
  Padding padding;
  bool bias;
  std::optional<ActivationType> activation;
  bool residual;
  bool batch_norm;  // a Scale after the convolution, folded by the passes
};

inline const ConvCase kConvCases[] = {
    {"3x3/2 asymmetric pad, ReLU", {3, 13, 17, 5}, 7, 3, 2, 1, 1, {0, 0, 1, 1}, true, ActivationType::kRelu, false, false},
    {"1x1 bias only", {2, 9, 11, 6}, 10, 1, 1, 1, 1, {}, true, std::nullopt, false, false},
    {"7x7/2 pad 3, 3 channels (conv1)", {2, 21, 19, 3}, 9, 7, 2, 1, 1, Padding::symmetric(3), false, ActivationType::kRelu, false, true},
    {"7x7/2 TF SAME 2/3, 3 channels (EAST's conv1)", {3, 22, 25, 3}, 16, 7, 2, 1, 1, {2, 2, 3, 3}, true, ActivationType::kRelu, false, true},
    {"5x5 odd pad, 5 channels, padded to 8 packs", {2, 11, 13, 5}, 8, 5, 1, 1, 1, {1, 2, 3, 2}, true, std::nullopt, false, false},
    {"3x3 residual + ReLU", {3, 8, 10, 12}, 12, 3, 1, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, true, false},
    {"1x1 sigmoid head", {2, 10, 7, 8}, 5, 1, 1, 1, 1, {}, true, ActivationType::kSigmoid, false, false},
    {"3x3 grouped, dilated, no bias", {1, 12, 12, 8}, 8, 3, 1, 2, 2, Padding::symmetric(2), false, std::nullopt, false, false},
    {"3x3 batch norm + ReLU, odd pad", {2, 15, 16, 16}, 24, 3, 1, 1, 1, {1, 2, 1, 0}, false, ActivationType::kRelu, false, true},
    {"1x1/2 projection + residual", {2, 11, 9, 9}, 13, 1, 2, 1, 1, {}, true, std::nullopt, true, true},
};

// The case's network: input x, the convolution (weights uniform within ±1.5/√fan-in), then as the case says
// a folded batch norm, a residual input r added, an activation; output y. `before`: an activation on x
// first, so that the convolution reads a tensor of the engine's precision (not the float32 input binding).
inline Network conv_case_network(const ConvCase& c, std::mt19937& rng,
                                 std::optional<ActivationType> before = std::nullopt) {
  Network net;
  Tensor* x = net.add_input("x", c.input);
  if (before) x = net.add_activation(x, *before, "before");
  ConvolutionParams p;
  p.out_channels = c.k;
  p.kernel = {c.kernel, c.kernel};
  p.stride = {c.stride, c.stride};
  p.dilation = {c.dilation, c.dilation};
  p.groups = c.groups;
  p.padding = c.padding;
  const int64_t per_group = c.input[3] / c.groups;
  const float bound = 1.5f / std::sqrt(static_cast<float>(per_group * c.kernel * c.kernel));
  p.kernel_weights = random_weights({c.k, per_group, c.kernel, c.kernel}, rng, -bound, bound);
  if (c.bias) p.bias = random_weights({c.k}, rng);
  Tensor* y = net.add_convolution(x, p, "conv");
  if (c.batch_norm)
    y = net.add_scale(y, {ScaleMode::kChannel, random_weights({c.k}, rng, 0.5f, 1.5f), random_weights({c.k}, rng), nullptr},
                      "bn");
  if (c.residual) {
    Tensor* r = net.add_input("r", y->shape);
    y = net.add_elementwise(r, y, ElementWiseOp::kAdd, "add");
  }
  if (c.activation) y = net.add_activation(y, *c.activation, "act");
  net.mark_output(y, "y");
  return net;
}

// The index of the first convolution step of `plan`.
inline size_t conv_step(const gpu::PlanData& plan) {
  for (size_t i = 0; i < plan.steps.size(); ++i)
    if (plan.steps[i].kind == gpu::StepKind::kLayer && plan.steps[i].layer_kind() == LayerKind::kConvolution) return i;
  throw Error("the plan has no convolution");
}

#ifdef EASTRT_HAVE_CUDA
// The tactic of an engine's first convolution.
inline const gpu::ConvTactic& conv_tactic(Engine& engine) {
  return engine.impl().plan.steps[conv_step(engine.impl().plan)].tactic;
}

// Builds `net` twice with a fresh timing cache at `path`: the first build times its one convolution and
// writes one entry, the second takes it from the cache (each checked). Returns both engines.
inline std::pair<std::unique_ptr<Engine>, std::unique_ptr<Engine>> build_twice_through_a_cache(
    const Network& net, Precision precision, const std::string& path) {
  std::remove(path.c_str());
  BuildOptions options;
  options.precision = precision;
  options.max_batch = static_cast<int>(net.tensor(net.inputs()[0]).shape[0]);
  options.timing_cache = path;
  Builder first(net, options);
  std::unique_ptr<Engine> a = first.build();
  EXPECT_EQ(first.stats().convolutions_timed, 1);
  EXPECT_EQ(gpu::TimingCache::load(path).size(), 1u);
  Builder second(net, options);
  std::unique_ptr<Engine> b = second.build();
  EXPECT_EQ(second.stats().convolutions_from_cache, 1);
  return {std::move(a), std::move(b)};
}
#endif

}  // namespace eastrt::test_support
