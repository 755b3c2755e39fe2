// The space-to-depth convolution tactic's host side: when a convolution may run as one, the shape of the
// rearranged input X', and the rearranged filter. Host code only (tested without a GPU); the kernel that
// writes X' on the device is in space_to_depth.cu.
//
// A KxK stride-2 convolution on C channels is a ceil(K/2)xceil(K/2) stride-1 unpadded convolution on the
// 2x2 space-to-depth of the padded input: X'[n, i, j, (py, px, c)] = Xpad[n, 2i+py, 2j+px, c], with the
// filter W'[k, dy, dx, (py, px, c)] = W[k, 2dy+py, 2dx+px, c] (zero where 2dy+py or 2dx+px reaches K).
// Few input channels become 4C (rounded up with zeros), enough for tensor cores.
#pragma once
#include "cuda/plan.h"
#include "eastrt/network.h"
#include "eastrt/tensor.h"

namespace eastrt::gpu {

inline constexpr int kSpaceToDepthMaxChannels = 32;  // 4C at most: the tactic is for few input channels

// X' and the stride-1 convolution on it. X' covers exactly the rows and columns the output reads
// (oh + r - 1 by ow + s - 1), zeros beyond the padded input; its channels are 4C rounded up to
// `channel_multiple`.
struct SpaceToDepthShape {
  int h = 0, w = 0, c = 0;  // X' per image
  int r = 0, s = 0;         // the stride-1 kernel: ceil(K/2) each way
};
SpaceToDepthShape space_to_depth_shape(int oh, int ow, int in_channels, int kernel_h, int kernel_w,
                                       int channel_multiple);

// Whether the parameters allow it: stride 2 both ways, dilation 1, one group, 4C <= kSpaceToDepthMaxChannels.
bool space_to_depth_fits(const ConvolutionParams& p, int64_t in_channels);
// Whether plan step `step` may take the tactic: a convolution that fits, on a whole NHWC input and output
// (not channel views: the kernel writes and cuDNN reads dense tensors) and a whole residual.
bool space_to_depth_applies(const PlanData& plan, const PlanStep& step);
// The step's X' and kernel (channels to 8 for FP16, whose tensor cores want them; 4C for float32).
SpaceToDepthShape space_to_depth_shape(const PlanData& plan, const PlanStep& step);

// The filter of the stride-1 convolution, KCRS like ConvolutionParams::kernel_weights: [K, c_padded, r', s']
// from [K, C, R, S], channel index (py*2 + px)*C + c, zeros past 4C and past the original kernel.
HostTensor space_to_depth_filter(const HostTensor& kcrs, int c_padded);
// X' of an NHWC input on the host (what the device kernel writes), for the tests and as its definition.
HostTensor space_to_depth_input(const HostTensor& nhwc, const Padding& padding, const SpaceToDepthShape& shape);

}  // namespace eastrt::gpu
