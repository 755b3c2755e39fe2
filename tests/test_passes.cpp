// Tests of the graph rewrites (src/passes/): each runs the CPU engine before and after the rewrite on fresh
// random inputs and compares (≤ 1e-5), checks what was rewritten and what must be left alone; and the CPU
// engine's fused convolution epilogue (activation, residual) the rewrites rely on.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "cpu/fast.h"
#include "cpu/naive.h"
#include "cpu/thread_pool.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "passes/passes.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {



constexpr double kTolerance = 1e-5;

int count_kind(const Network& network, LayerKind kind) {
  int n = 0;
  for (const Layer& layer : network.layers()) n += layer.kind() == kind;
  return n;
}

ConvolutionParams conv_params(int in_channels, int out_channels, int k, std::mt19937& rng, Padding padding = {},
                              bool bias = true, int stride = 1) {
  ConvolutionParams p;
  p.out_channels = out_channels;
  p.kernel = {k, k};
  p.stride = {stride, stride};
  p.padding = padding;
  p.kernel_weights = random_weights({out_channels, in_channels, k, k}, rng, -0.5f, 0.5f);
  if (bias) p.bias = random_weights({out_channels}, rng);
  return p;
}

ScaleParams channel_scale(int channels, std::mt19937& rng) {
  return {ScaleMode::kChannel, random_weights({channels}, rng, 0.5f, 1.5f), random_weights({channels}, rng),
          nullptr};
}

// Runs `network` on the CPU engine (fast kernels) before and after `pass`, on a fresh random input; every
// output must agree within kTolerance. Returns the pass's count.
int check_pass(Network& network, int (*pass)(Network&), std::mt19937& rng) {
  std::map<std::string, HostTensor> inputs;
  for (int id : network.inputs())
    inputs[network.tensor(id).name] = random_tensor(network.tensor(id).shape, rng, -2.0f, 2.0f);
  CpuEngine before(network, {2, false, false});
  const auto want = before.run(inputs);
  const int count = pass(network);
  network.validate();
  network.infer_shapes();
  CpuEngine after(network, {2, false, false});
  const auto got = after.run(inputs);
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [name, tensor] : want) {
    auto found = got.find(name);
    EXPECT_NE(found, got.end()) << "output " << name << " disappeared";
    if (found != got.end()) EXPECT_LE(relative_error(found->second, tensor), kTolerance) << name;
  }
  // The naive engine must agree too: it is the oracle of the GPU tests, and runs the fused layers itself.
  CpuEngine naive(network, {1, true});
  const auto oracle = naive.run(inputs);
  for (const auto& [name, tensor] : want) EXPECT_LE(relative_error(oracle.at(name), tensor), kTolerance) << name;
  return count;
}

// ---- the CPU engine's fused epilogue ----

TEST(PassesCpuEpilogue, NaiveFusedEqualsTheComposition) {
  std::mt19937 rng(101);
  for (ActivationType type : {ActivationType::kRelu, ActivationType::kSigmoid, ActivationType::kLeakyRelu}) {
    ConvolutionParams p = conv_params(5, 7, 3, rng, {0, 1, 1, 0}, true, 2);
    const HostTensor x = random_tensor({2, 9, 11, 5}, rng);
    const HostTensor plain = cpu::naive::convolution(x, p);
    const HostTensor residual = random_tensor(plain.shape, rng);
    ActivationParams act{type, 0.1f, 0.0f};
    const HostTensor want =
        cpu::naive::activation(cpu::naive::elementwise(plain, residual, ElementWiseOp::kAdd), act);
    p.activation = act;
    const HostTensor got = cpu::naive::convolution(x, p, &residual);
    EXPECT_LE(relative_error(got, want), 1e-6) << to_string(type);
  }
}

TEST(PassesCpuEpilogue, FastFusedMatchesNaive) {
  std::mt19937 rng(102);
  cpu::ThreadPool& pool = cpu::ThreadPool::shared(3);
  struct Case {
    Shape input;
    int k, kernel, stride;
    Padding padding;
  };
  // Pointwise (one GEMM), im2col with asymmetric padding, and a stride.
  for (const Case& c : {Case{{3, 7, 5, 6}, 9, 1, 1, {}}, Case{{2, 9, 11, 5}, 7, 3, 1, {1, 0, 2, 1}},
                        Case{{1, 13, 10, 3}, 11, 3, 2, {0, 0, 1, 1}}}) {
    ConvolutionParams p = conv_params(static_cast<int>(c.input[3]), c.k, c.kernel, rng, c.padding, true, c.stride);
    p.activation = ActivationParams{ActivationType::kRelu};
    const HostTensor x = random_tensor(c.input, rng);
    const HostTensor shape_probe = cpu::naive::convolution(x, p);
    const HostTensor residual = random_tensor(shape_probe.shape, rng);
    const HostTensor want = cpu::naive::convolution(x, p, &residual);
    HostTensor got(want.shape);
    std::fill(got.data.begin(), got.data.end(), std::nanf(""));
    cpu::fast::convolution(x, p, got, pool, &residual);
    EXPECT_LE(relative_error(got, want), kTolerance) << to_string(c.input);
  }
}

TEST(PassesCpuEpilogue, ResidualOfTheWrongShapeIsAnError) {
  std::mt19937 rng(103);
  ConvolutionParams p = conv_params(3, 4, 1, rng);
  const HostTensor x = random_tensor({1, 4, 4, 3}, rng);
  const HostTensor wrong = random_tensor({1, 4, 4, 5}, rng);
  EXPECT_THROW(cpu::naive::convolution(x, p, &wrong), Error);
}

// ---- fold_batch_norm ----

TEST(PassesFoldBatchNorm, FoldsChannelAndUniformScales) {
  std::mt19937 rng(201);
  Network net;
  Tensor* x = net.add_input("x", {2, 9, 11, 5});
  Tensor* y = net.add_convolution(x, conv_params(5, 7, 3, rng, {1, 0, 2, 1}), "conv1");
  y = net.add_scale(y, channel_scale(7, rng), "bn1");
  Tensor* z = net.add_convolution(y, conv_params(7, 6, 1, rng, {}, /*bias=*/false), "conv2");
  z = net.add_scale(z, {ScaleMode::kUniform, make_weights({1}, {0.75f}), make_weights({1}, {-0.25f}), nullptr},
                    "bn2");
  net.mark_output(z);
  EXPECT_EQ(check_pass(net, passes::fold_batch_norm, rng), 2);
  EXPECT_EQ(count_kind(net, LayerKind::kScale), 0);
  EXPECT_EQ(net.layers().size(), 2u);
  EXPECT_NE(net.find_tensor("bn2"), nullptr);
  EXPECT_TRUE(net.find_tensor("bn2")->is_output);
}

TEST(PassesFoldBatchNorm, LeavesAloneWhatItCannotFold) {
  std::mt19937 rng(202);
  Network net;
  Tensor* x = net.add_input("x", {1, 6, 7, 4});
  // A scale before any convolution (the mean subtraction of EAST).
  Tensor* m = net.add_scale(x, channel_scale(4, rng), "mean");
  // A convolution read twice: folding would change the other reader's input.
  Tensor* a = net.add_convolution(m, conv_params(4, 5, 3, rng, Padding::symmetric(1)), "conv_a");
  Tensor* a_bn = net.add_scale(a, channel_scale(5, rng), "bn_a");
  Tensor* a_relu = net.add_activation(a, ActivationType::kRelu, "relu_a");
  // A scale with a power.
  Tensor* b = net.add_convolution(m, conv_params(4, 5, 1, rng), "conv_b");
  ScaleParams pow = channel_scale(5, rng);
  pow.power = make_weights({5}, std::vector<float>(5, 2.0f));
  Tensor* b_pow = net.add_scale(b, pow, "pow_b");
  // A convolution that already has an activation.
  ConvolutionParams cp = conv_params(4, 5, 1, rng);
  cp.activation = ActivationParams{ActivationType::kRelu};
  Tensor* c = net.add_convolution(m, cp, "conv_c");
  Tensor* c_bn = net.add_scale(c, channel_scale(5, rng), "bn_c");
  // A convolution output that is itself a network output.
  Tensor* d = net.add_convolution(m, conv_params(4, 5, 1, rng), "conv_d");
  Tensor* d_bn = net.add_scale(d, channel_scale(5, rng), "bn_d");
  for (Tensor* t : {a_bn, a_relu, b_pow, c_bn, d, d_bn}) net.mark_output(t);
  EXPECT_EQ(check_pass(net, passes::fold_batch_norm, rng), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kScale), 5);
}

// ---- fuse_activation ----

TEST(PassesFuseActivation, FusesIntoTheEpilogue) {
  std::mt19937 rng(301);
  Network net;
  Tensor* x = net.add_input("x", {3, 7, 5, 6});
  Tensor* y = net.add_convolution(x, conv_params(6, 9, 3, rng, {0, 1, 1, 0}), "conv1");
  y = net.add_activation(y, ActivationType::kRelu, "relu1");
  Tensor* z = net.add_convolution(y, conv_params(9, 3, 1, rng), "conv2");
  z = net.add_activation(z, ActivationType::kSigmoid, "sigmoid2");
  net.mark_output(z, "score");
  EXPECT_EQ(check_pass(net, passes::fuse_activation, rng), 2);
  ASSERT_EQ(net.layers().size(), 2u);
  EXPECT_EQ(net.layers()[0].as<ConvolutionParams>().activation->type, ActivationType::kRelu);
  EXPECT_EQ(net.layers()[1].as<ConvolutionParams>().activation->type, ActivationType::kSigmoid);
  EXPECT_TRUE(net.find_tensor("score")->is_output);
}

TEST(PassesFuseActivation, LeavesAloneWhatItCannotFuse) {
  std::mt19937 rng(302);
  Network net;
  Tensor* x = net.add_input("x", {1, 5, 5, 3});
  Tensor* a = net.add_convolution(x, conv_params(3, 4, 1, rng), "conv_a");  // also an output
  Tensor* a_relu = net.add_activation(a, ActivationType::kRelu, "relu_a");
  Tensor* b = net.add_convolution(x, conv_params(3, 4, 1, rng), "conv_b");  // read twice
  Tensor* b_relu = net.add_activation(b, ActivationType::kRelu, "relu_b");
  Tensor* b_sum = net.add_elementwise(b, b_relu, ElementWiseOp::kAdd, "sum_b");
  Tensor* c = net.add_activation(x, ActivationType::kTanh, "tanh_x");  // not after a convolution
  for (Tensor* t : {a, a_relu, b_sum, c}) net.mark_output(t);
  EXPECT_EQ(check_pass(net, passes::fuse_activation, rng), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kActivation), 3);
}

// ---- fuse_residual ----

TEST(PassesFuseResidual, BottleneckAddAndReluJoinTheLaterConvolution) {
  std::mt19937 rng(401);
  Network net;
  Tensor* x = net.add_input("x", {2, 8, 7, 6});
  Tensor* shortcut = net.add_convolution(x, conv_params(6, 10, 1, rng), "shortcut");
  Tensor* r = net.add_convolution(x, conv_params(6, 5, 3, rng, Padding::symmetric(1)), "conv1");
  r = net.add_activation(r, ActivationType::kRelu, "relu1");
  r = net.add_convolution(r, conv_params(5, 10, 1, rng), "conv2");
  Tensor* sum = net.add_elementwise(shortcut, r, ElementWiseOp::kAdd, "add");
  Tensor* out = net.add_activation(sum, ActivationType::kRelu, "relu");
  net.mark_output(out);
  EXPECT_EQ(check_pass(net, passes::fuse_residual, rng), 1);
  EXPECT_EQ(count_kind(net, LayerKind::kElementWise), 0);
  ASSERT_EQ(net.layers().size(), 4u);
  const Layer& fused = net.layers().back();
  EXPECT_EQ(fused.name, "conv2");
  ASSERT_EQ(fused.inputs.size(), 2u);
  EXPECT_EQ(net.tensor(fused.inputs[1]).name, "shortcut");
  ASSERT_TRUE(fused.as<ConvolutionParams>().activation.has_value());
  EXPECT_EQ(net.tensor(fused.outputs[0]).name, "relu");
}

TEST(PassesFuseResidual, MovesAnEarlierConvolutionToTheAdd) {
  std::mt19937 rng(402);
  Network net;
  Tensor* x = net.add_input("x", {1, 6, 9, 4});
  Tensor* early = net.add_convolution(x, conv_params(4, 4, 3, rng, {1, 1, 1, 1}), "early");
  Tensor* late = net.add_activation(x, ActivationType::kTanh, "late");  // not a convolution
  Tensor* sum = net.add_elementwise(early, late, ElementWiseOp::kAdd, "add");  // no ReLU after it
  net.mark_output(sum);
  EXPECT_EQ(check_pass(net, passes::fuse_residual, rng), 1);
  ASSERT_EQ(net.layers().size(), 2u);
  EXPECT_EQ(net.layers()[0].name, "late");
  EXPECT_EQ(net.layers()[1].name, "early");
  EXPECT_FALSE(net.layers()[1].as<ConvolutionParams>().activation.has_value());
}

TEST(PassesFuseResidual, LeavesAloneWhatItCannotFuse) {
  std::mt19937 rng(403);
  Network net;
  Tensor* x = net.add_input("x", {2, 5, 6, 4});
  Tensor* a = net.add_convolution(x, conv_params(4, 4, 1, rng), "conv_a");
  Tensor* bias = net.add_constant(random_weights({4}, rng), "bias");
  Tensor* broadcast = net.add_elementwise(a, bias, ElementWiseOp::kAdd, "broadcast_add");  // broadcast
  Tensor* b = net.add_convolution(x, conv_params(4, 4, 1, rng), "conv_b");
  Tensor* diff = net.add_elementwise(b, x, ElementWiseOp::kSub, "sub");  // not an Add
  ConvolutionParams cp = conv_params(4, 4, 1, rng);
  cp.activation = ActivationParams{ActivationType::kRelu};
  Tensor* c = net.add_convolution(x, cp, "conv_c");
  Tensor* c_sum = net.add_elementwise(c, x, ElementWiseOp::kAdd, "add_c");  // the conv has an activation
  for (Tensor* t : {broadcast, diff, c_sum}) net.mark_output(t);
  EXPECT_EQ(check_pass(net, passes::fuse_residual, rng), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kElementWise), 3);
}

// ---- upsample_after_convolution ----

// Conv1×1(Concat(Resize(h), f)) as EAST's merge has it, with the upsampled operand on either side.
Network merge_block(std::mt19937& rng, bool upsampled_first, ResizeMode mode, int k = 6, int kernel = 1,
                    bool resize_read_twice = false) {
  Network net;
  Tensor* h = net.add_input("h", {2, 4, 5, 10});
  Tensor* f = net.add_input("f", {2, 8, 10, 3});
  Tensor* g = net.add_resize(h, {mode, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "unpool");
  Tensor* cat = net.add_concatenation(upsampled_first ? std::vector<Tensor*>{g, f} : std::vector<Tensor*>{f, g}, 3,
                                      "concat");
  ConvolutionParams p = conv_params(13, k, kernel, rng, Padding::symmetric(kernel / 2));
  p.activation = ActivationParams{ActivationType::kRelu};
  net.mark_output(net.add_convolution(cat, p, "merge"), "y");
  if (resize_read_twice) net.mark_output(net.add_activation(g, ActivationType::kTanh, "other_reader"));
  return net;
}

TEST(PassesUpsampleAfterConvolution, RunsThePartOverTheUpsampledChannelsBeforeTheUpsampling) {
  std::mt19937 rng(601);
  for (bool first : {true, false})
    for (ResizeMode mode : {ResizeMode::kBilinear, ResizeMode::kNearest}) {
      SCOPED_TRACE(std::string(first ? "upsampled first, " : "upsampled second, ") +
                   (mode == ResizeMode::kNearest ? "nearest" : "bilinear"));
      Network net = merge_block(rng, first, mode);
      EXPECT_EQ(check_pass(net, passes::upsample_after_convolution, rng), 1);
      EXPECT_EQ(count_kind(net, LayerKind::kConcatenation), 0);
      ASSERT_EQ(net.layers().size(), 3u);
      const Layer& low = net.layers()[0];
      const Layer& resize = net.layers()[1];
      const Layer& merge = net.layers()[2];
      EXPECT_EQ(low.kind(), LayerKind::kConvolution);
      EXPECT_EQ(net.tensor(low.inputs[0]).name, "h");
      EXPECT_EQ(net.tensor(low.outputs[0]).shape, (Shape{2, 4, 5, 6}));  // K channels at the low resolution
      EXPECT_FALSE(low.as<ConvolutionParams>().bias);
      EXPECT_FALSE(low.as<ConvolutionParams>().activation);
      EXPECT_EQ(resize.kind(), LayerKind::kResize);
      EXPECT_EQ(net.tensor(resize.outputs[0]).shape, (Shape{2, 8, 10, 6}));
      EXPECT_EQ(merge.name, "merge");
      ASSERT_EQ(merge.inputs.size(), 2u);
      EXPECT_EQ(net.tensor(merge.inputs[0]).name, "f");
      EXPECT_EQ(merge.inputs[1], resize.outputs[0]);
      EXPECT_EQ(merge.as<ConvolutionParams>().kernel_weights->shape, (Shape{6, 3, 1, 1}));
      EXPECT_TRUE(merge.as<ConvolutionParams>().activation.has_value());
      EXPECT_TRUE(net.find_tensor("y")->is_output);
    }
}

TEST(PassesUpsampleAfterConvolution, LeavesAloneWhatItCannotMove) {
  std::mt19937 rng(602);
  // A 3×3 convolution after the concatenation does not commute with the upsampling.
  Network three = merge_block(rng, true, ResizeMode::kBilinear, 6, 3);
  EXPECT_EQ(check_pass(three, passes::upsample_after_convolution, rng), 0);
  // More output channels than upsampled ones: the upsampling would carry more.
  Network wide = merge_block(rng, true, ResizeMode::kBilinear, 11);
  EXPECT_EQ(check_pass(wide, passes::upsample_after_convolution, rng), 0);
  // The upsampled tensor has another reader.
  Network shared = merge_block(rng, true, ResizeMode::kBilinear, 6, 1, true);
  EXPECT_EQ(check_pass(shared, passes::upsample_after_convolution, rng), 0);
  // A downsampling resize, a concatenation of three, and a concatenation read twice.
  Network other;
  Tensor* h = other.add_input("h", {1, 8, 10, 12});
  Tensor* f = other.add_input("f", {1, 4, 5, 3});
  Tensor* down = other.add_resize(h, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 4, 5, 0, 0}, "down");
  Tensor* a = other.add_convolution(other.add_concatenation({down, f}, 3, "cat_a"), conv_params(15, 4, 1, rng), "conv_a");
  Tensor* up = other.add_resize(f, {ResizeMode::kNearest, ResizeCoordinates::kAsymmetric, 8, 10, 0, 0}, "up");
  Tensor* b = other.add_convolution(other.add_concatenation({up, h, h}, 3, "cat_b"), conv_params(27, 2, 1, rng), "conv_b");
  Tensor* up2 = other.add_resize(f, {ResizeMode::kNearest, ResizeCoordinates::kAsymmetric, 8, 10, 0, 0}, "up2");
  Tensor* cat_c = other.add_concatenation({up2, h}, 3, "cat_c");
  Tensor* c = other.add_convolution(cat_c, conv_params(15, 2, 1, rng), "conv_c");
  for (Tensor* t : {a, b, c, cat_c}) other.mark_output(t);
  EXPECT_EQ(check_pass(other, passes::upsample_after_convolution, rng), 0);
  EXPECT_EQ(count_kind(other, LayerKind::kConcatenation), 3);
}

// ---- merge_concatenated_heads ----

// EAST's geometry head: two convolutions of one input (4 and 1 channels, sigmoid), a uniform scale on each
// (·512; (σ − ½)·π/2), their concatenation; `variant` breaks one condition.
enum class HeadVariant { kEast, kThreeHeads, kOtherInput, kOtherKernel, kOtherActivation, kScaleReadTwice };
Network geometry_head(std::mt19937& rng, HeadVariant variant) {
  Network net;
  Tensor* x = net.add_input("x", {2, 6, 7, 8});
  Tensor* other = net.add_input("other", {2, 6, 7, 8});
  auto head = [&](Tensor* in, int k, int kernel, ActivationType act, float scale, float shift, const char* name) {
    ConvolutionParams p = conv_params(8, k, kernel, rng, Padding::symmetric(kernel / 2));
    p.activation = ActivationParams{act};
    Tensor* conv = net.add_convolution(in, p, std::string(name) + "_conv");
    ScaleParams s;
    s.mode = ScaleMode::kUniform;
    s.scale = make_weights({1}, {scale});
    if (shift != 0.0f) s.shift = make_weights({1}, {shift});
    return net.add_scale(conv, s, std::string(name) + "_scale");
  };
  std::vector<Tensor*> parts;
  parts.push_back(head(x, 4, 1, ActivationType::kSigmoid, 512.0f, 0.0f, "geo"));
  const bool other_input = variant == HeadVariant::kOtherInput;
  const int kernel = variant == HeadVariant::kOtherKernel ? 3 : 1;
  const ActivationType act = variant == HeadVariant::kOtherActivation ? ActivationType::kRelu : ActivationType::kSigmoid;
  parts.push_back(head(other_input ? other : x, 1, kernel, act, 1.5707964f, -0.7853982f, "angle"));
  if (variant == HeadVariant::kThreeHeads) parts.push_back(head(x, 3, 1, ActivationType::kSigmoid, 2.0f, 1.0f, "third"));
  net.mark_output(net.add_concatenation(parts, 3, "concat"), "geometry");
  if (variant == HeadVariant::kScaleReadTwice) net.mark_output(net.add_activation(parts[1], ActivationType::kTanh, "again"));
  return net;
}

TEST(PassesMergeConcatenatedHeads, StacksTheConvolutionsAndTheirScales) {
  std::mt19937 rng(701);
  for (HeadVariant variant : {HeadVariant::kEast, HeadVariant::kThreeHeads}) {
    Network net = geometry_head(rng, variant);
    const int channels = variant == HeadVariant::kEast ? 5 : 8;
    EXPECT_EQ(check_pass(net, passes::merge_concatenated_heads, rng), 1);
    ASSERT_EQ(net.layers().size(), 2u);
    const Layer& conv = net.layers()[0];
    const Layer& scale = net.layers()[1];
    ASSERT_EQ(conv.kind(), LayerKind::kConvolution);
    EXPECT_EQ(conv.as<ConvolutionParams>().out_channels, channels);
    EXPECT_EQ(conv.as<ConvolutionParams>().kernel_weights->shape, (Shape{channels, 8, 1, 1}));
    EXPECT_EQ(conv.as<ConvolutionParams>().activation->type, ActivationType::kSigmoid);
    ASSERT_EQ(scale.kind(), LayerKind::kScale);
    EXPECT_EQ(scale.as<ScaleParams>().mode, ScaleMode::kChannel);
    EXPECT_EQ(scale.as<ScaleParams>().shift->data[4], -0.7853982f);  // the angle's, after the 4 distances'
    EXPECT_EQ(scale.as<ScaleParams>().shift->data[0], 0.0f);
    EXPECT_EQ(net.tensor(scale.outputs[0]).shape, (Shape{2, 6, 7, channels}));
    EXPECT_TRUE(net.find_tensor("geometry")->is_output);
  }
}

TEST(PassesMergeConcatenatedHeads, LeavesAloneWhatItCannotMerge) {
  std::mt19937 rng(702);
  for (HeadVariant variant : {HeadVariant::kOtherInput, HeadVariant::kOtherKernel, HeadVariant::kOtherActivation,
                              HeadVariant::kScaleReadTwice}) {
    Network net = geometry_head(rng, variant);
    const size_t layers = net.layers().size();
    EXPECT_EQ(check_pass(net, passes::merge_concatenated_heads, rng), 0) << static_cast<int>(variant);
    EXPECT_EQ(net.layers().size(), layers);
  }
}

// ---- the pass manager on EAST ----

// EAST at 1/8 width, its passes run by `passes_of` (which returns their reports): its outputs on the CPU
// engine (no passes of its own) the same before and after, within kTolerance.
std::vector<passes::PassReport> check_east_passes(
    uint32_t seed, const std::function<std::vector<passes::PassReport>(Network&)>& passes_of, Network* out) {
  east::NetworkOptions options{2, 64, 96, 8};
  Network net = east::build(east::random_weights(options, seed), options);
  std::mt19937 rng(seed);
  HostTensor image = random_tensor({2, 64, 96, 3}, rng, 0.0f, 255.0f);
  const auto want = CpuEngine(net, {2, false, false}).run({{east::kInputName, image}});
  const auto reports = passes_of(net);
  const auto got = CpuEngine(net, {2, false, false}).run({{east::kInputName, image}});
  for (const char* name : {east::kScoreOutput, east::kGeometryOutput})
    EXPECT_LE(relative_error(got.at(name), want.at(name)), kTolerance) << name;
  *out = std::move(net);
  return reports;
}

TEST(PassesManager, EastKeepsItsOutputsWithFusedLayers) {
  Network net;
  int convs = 0;
  const auto reports = check_east_passes(
      5,
      [&](Network& n) {
        convs = count_kind(n, LayerKind::kConvolution);
        return passes::run_default_passes(n);
      },
      &net);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].pass, "fold_batch_norm");
  EXPECT_EQ(reports[0].rewrites, convs - 3);  // every convolution but the three heads has a BatchNorm
  EXPECT_EQ(reports[1].rewrites, 16);         // one per bottleneck unit
  EXPECT_GT(reports[2].rewrites, 0);
  EXPECT_EQ(count_kind(net, LayerKind::kConvolution), convs);
  EXPECT_EQ(count_kind(net, LayerKind::kElementWise), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kActivation), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kScale), 3);  // mean subtraction, ·512 and the angle map
}

TEST(PassesManager, EastMergeBranchLosesItsConcatenationsWithTheUpsamplingMoved) {
  Network net;
  int convs = 0;
  const auto reports = check_east_passes(
      6,
      [&](Network& n) {
        convs = count_kind(n, LayerKind::kConvolution);
        passes::PassOptions moved;
        moved.upsample_after_convolution = true;
        moved.merge_concatenated_heads = true;
        return passes::run_default_passes(n, moved);
      },
      &net);
  ASSERT_EQ(reports.size(), 5u);
  EXPECT_EQ(reports[3].pass, "upsample_after_convolution");
  EXPECT_EQ(reports[3].rewrites, 3);  // the three merges
  EXPECT_EQ(reports[4].pass, "merge_concatenated_heads");
  EXPECT_EQ(reports[4].rewrites, 1);  // the geometry output
  EXPECT_EQ(count_kind(net, LayerKind::kConvolution), convs + 3 - 1);
  EXPECT_EQ(count_kind(net, LayerKind::kConcatenation), 0);
  EXPECT_EQ(count_kind(net, LayerKind::kScale), 2);  // mean subtraction, the geometry's per-channel scale
  EXPECT_EQ(count_kind(net, LayerKind::kResize), 3);
}

}  // namespace
}  // namespace eastrt
