// The space-to-depth tactic's host side (see space_to_depth.h): applicability, X' shape, rearranged filter.
#include <variant>

#include "cuda/space_to_depth.h"
#include "eastrt/error.h"

namespace eastrt::gpu {

SpaceToDepthShape space_to_depth_shape(int oh, int ow, int in_channels, int kernel_h, int kernel_w,
                                       int channel_multiple) {
  SpaceToDepthShape s;
  s.r = (kernel_h + 1) / 2, s.s = (kernel_w + 1) / 2;
  s.h = oh + s.r - 1, s.w = ow + s.s - 1;
  s.c = (4 * in_channels + channel_multiple - 1) / channel_multiple * channel_multiple;
  return s;
}

bool space_to_depth_fits(const ConvolutionParams& p, int64_t in_channels) {
  return p.stride[0] == 2 && p.stride[1] == 2 && p.dilation[0] == 1 && p.dilation[1] == 1 && p.groups == 1 &&
         in_channels >= 1 && 4 * in_channels <= kSpaceToDepthMaxChannels;
}

bool space_to_depth_applies(const PlanData& plan, const PlanStep& step) {
  if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution) return false;
  const auto& p = std::get<ConvolutionParams>(step.params);
  if (step.inputs.empty() || step.outputs.size() != 1) return false;
  for (int id : step.inputs)
    if (plan.tensors[id].place == TensorPlace::kView || plan.tensors[id].shape.size() != 4) return false;
  const PlanTensor& y = plan.tensors[step.outputs[0]];
  if (y.place == TensorPlace::kView || y.shape.size() != 4) return false;
  return space_to_depth_fits(p, plan.tensors[step.inputs[0]].shape[3]);
}

SpaceToDepthShape space_to_depth_shape(const PlanData& plan, const PlanStep& step) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const std::array<int, 2> y = conv_output_size(plan, step);  // before a fused pool
  const int multiple = plan.tensors[step.outputs[0]].type == StorageType::kFloat16 ? 8 : 4;
  return space_to_depth_shape(y[0], y[1], static_cast<int>(plan.tensors[step.inputs[0]].shape[3]), p.kernel[0],
                              p.kernel[1], multiple);
}

HostTensor space_to_depth_filter(const HostTensor& kcrs, int c_padded) {
  EASTRT_CHECK(kcrs.shape.size() == 4, "space-to-depth filter: expected K, C, R, S weights, got rank ",
               kcrs.shape.size());
  const int64_t K = kcrs.shape[0], C = kcrs.shape[1], R = kcrs.shape[2], S = kcrs.shape[3];
  EASTRT_CHECK(c_padded >= 4 * C, "space-to-depth filter: ", c_padded, " channels cannot hold 4 x ", C);
  const int64_t R2 = (R + 1) / 2, S2 = (S + 1) / 2;
  HostTensor out({K, c_padded, R2, S2});
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t q = 0; q < S; ++q) {
          const int64_t channel = ((r % 2) * 2 + q % 2) * C + c;
          out.data[static_cast<size_t>(((k * c_padded + channel) * R2 + r / 2) * S2 + q / 2)] =
              kcrs.data[static_cast<size_t>(((k * C + c) * R + r) * S + q)];
        }
  return out;
}

HostTensor space_to_depth_input(const HostTensor& x, const Padding& padding, const SpaceToDepthShape& s) {
  EASTRT_CHECK(x.shape.size() == 4, "space-to-depth input: expected an NHWC tensor, got rank ", x.shape.size());
  const int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3];
  HostTensor out({N, s.h, s.w, s.c});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < s.h; ++i)
      for (int64_t j = 0; j < s.w; ++j)
        for (int64_t py = 0; py < 2; ++py)
          for (int64_t px = 0; px < 2; ++px) {
            const int64_t h = 2 * i + py - padding.top, w = 2 * j + px - padding.left;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;  // padding: stays zero
            for (int64_t c = 0; c < C; ++c)
              out.data[static_cast<size_t>(((n * s.h + i) * s.w + j) * s.c + (py * 2 + px) * C + c)] =
                  x.data[static_cast<size_t>(((n * H + h) * W + w) * C + c)];
          }
  return out;
}

}  // namespace eastrt::gpu
