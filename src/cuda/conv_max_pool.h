// The shapes the conv_max_pool kernel (conv_max_pool.cu, launched through kernels.h) takes, for the host
// code that decides where it runs (no CUDA headers: the lowering builds without the toolkit too).
#pragma once

namespace eastrt::cuda {

inline constexpr int kConvMaxPoolChannels = 16;  // space-to-depth X' channels: one tensor-core K step per tap
inline constexpr int kConvMaxPoolTaps = 4;       // the stride-1 kernel on X', 4 x 4 (a 7x7 or 8x8 stride 2 one)
inline constexpr int kConvMaxPoolFilters = 64;   // output channels
inline constexpr int kConvMaxPoolWindow = 3, kConvMaxPoolStride = 2;

// Its two kernels (a kSpaceToDepthMaxPool tactic's algo; -1, in plans from before there were two, is the
// first): mma.sync on any GPU, wgmma on compute capability 9.0 alone (kernels.h).
inline constexpr int kConvMaxPoolMmaSync = 0, kConvMaxPoolWgmma = 1;

inline bool conv_max_pool_fits(int channels, int taps_h, int taps_w, int filters, int window, int stride) {
  return channels == kConvMaxPoolChannels && taps_h == kConvMaxPoolTaps && taps_w == kConvMaxPoolTaps &&
         filters == kConvMaxPoolFilters && window == kConvMaxPoolWindow && stride == kConvMaxPoolStride;
}

}  // namespace eastrt::cuda
