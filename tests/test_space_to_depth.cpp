// The space-to-depth tactic's arithmetic on the host, without a GPU: a stride-2 convolution equals the
// stride-1 convolution of the rearranged filter on the space-to-depth of the padded input (what the device
// kernel writes and what the engine uploads), checked against the naive CPU convolution.
#include <gtest/gtest.h>

#include <random>

#include "cpu/naive.h"
#include "cuda/space_to_depth.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {

struct Case {
  const char* what;
  Shape input;  // NHWC
  int k, kernel_h, kernel_w;
  Padding padding;
  bool bias, relu;
  int channel_multiple;
};

TEST(SpaceToDepth, RearrangedFilterOnSpaceToDepthEqualsTheStride2Convolution) {
  std::mt19937 rng(41);
  const Case cases[] = {
      {"7x7/2 TF SAME 2/3, 3 channels (EAST's conv1), FP16 rounding to 16", {3, 22, 25, 3}, 64, 7, 7, {2, 2, 3, 3}, true, true, 8},
      {"5x5/2 on 1 channel, no padding", {2, 13, 11, 1}, 7, 5, 5, {}, false, false, 4},
      {"3x3/2 on 4 channels, odd sizes, asymmetric", {2, 9, 7, 4}, 5, 3, 3, {0, 1, 1, 0}, true, false, 8},
      {"4x2/2 even and unequal kernel, 2 channels", {1, 10, 9, 2}, 3, 4, 2, {1, 0, 2, 1}, false, true, 8},
      {"1x1/2 subsample, 8 channels", {2, 7, 8, 8}, 4, 1, 1, {}, true, false, 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const HostTensor x = random_tensor(c.input, rng);
    ConvolutionParams p;
    p.out_channels = c.k;
    p.kernel = {c.kernel_h, c.kernel_w};
    p.stride = {2, 2};
    p.padding = c.padding;
    p.kernel_weights = random_weights({c.k, c.input[3], c.kernel_h, c.kernel_w}, rng);
    if (c.bias) p.bias = random_weights({c.k}, rng);
    if (c.relu) p.activation = ActivationParams{ActivationType::kRelu};
    ASSERT_TRUE(gpu::space_to_depth_fits(p, c.input[3]));
    const HostTensor want = cpu::naive::convolution(x, p);

    const gpu::SpaceToDepthShape s = gpu::space_to_depth_shape(static_cast<int>(want.shape[1]),
                                                               static_cast<int>(want.shape[2]),
                                                               static_cast<int>(c.input[3]), c.kernel_h, c.kernel_w,
                                                               c.channel_multiple);
    EXPECT_EQ(s.c % c.channel_multiple, 0);
    EXPECT_GE(s.c, 4 * c.input[3]);
    EXPECT_EQ(s.r, (c.kernel_h + 1) / 2);
    EXPECT_EQ(s.s, (c.kernel_w + 1) / 2);
    ConvolutionParams q = p;
    q.kernel = {s.r, s.s};
    q.stride = {1, 1};
    q.padding = {};
    q.kernel_weights = std::make_shared<const HostTensor>(gpu::space_to_depth_filter(*p.kernel_weights, s.c));
    const HostTensor xs = gpu::space_to_depth_input(x, c.padding, s);
    ASSERT_EQ(xs.shape, (Shape{c.input[0], s.h, s.w, s.c}));
    const HostTensor got = cpu::naive::convolution(xs, q);
    ASSERT_EQ(got.shape, want.shape);
    EXPECT_LE(relative_error(got, want), 1e-6);
  }
}

// Where the tactic is offered: stride 2 both ways, dilation 1, one group, 4C <= 32.
TEST(SpaceToDepth, FitsOnlyStride2UngroupedUndilatedFewChannels) {
  ConvolutionParams p;
  p.stride = {2, 2};
  EXPECT_TRUE(gpu::space_to_depth_fits(p, 3));
  EXPECT_TRUE(gpu::space_to_depth_fits(p, 8));
  EXPECT_FALSE(gpu::space_to_depth_fits(p, 9));
  p.stride = {2, 1};
  EXPECT_FALSE(gpu::space_to_depth_fits(p, 3));
  p.stride = {1, 1};
  EXPECT_FALSE(gpu::space_to_depth_fits(p, 3));
  p.stride = {2, 2};
  p.dilation = {2, 2};
  EXPECT_FALSE(gpu::space_to_depth_fits(p, 3));
  p.dilation = {1, 1};
  p.groups = 2;
  EXPECT_FALSE(gpu::space_to_depth_fits(p, 4));
}

}  // namespace
}  // namespace eastrt
