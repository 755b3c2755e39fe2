// The conv/max-pool kernel on Hopper's warpgroup MMA (sm_90a alone, CMakeLists.txt): the tiles, X' and the
// pool of conv_max_pool_tiles.cuh, the convolution as wgmma m64n64k16 products, A (16 pixels of X' a warp)
// from registers and B (the filter, all 16 taps) from shared memory. An experiment beside the mma.sync
// kernel (conv_max_pool.cu), not a builder tactic: GpuKernels.ConvMaxPoolWgmmaMatchesTheMmaSyncKernel
// compares and times the two.
#include <cuda_fp16.h>

#include "cuda/conv_max_pool_tiles.cuh"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

using namespace conv_max_pool_tiles;

// The filter in shared memory as wgmma's B, tap by tap: N = 64 filters x K = 16 channels, 8x8 core matrices
// (filter group g, channel half q) at (g * 2 + q) * 128 bytes: K-adjacent 128 bytes apart (LBO), N-adjacent
// 256 (SBO); a tap 2048 bytes.
constexpr size_t kFilterBytes = size_t(kFilters) * kK * sizeof(__half);
constexpr uint32_t kFilterLbo = 128, kFilterSbo = 256, kTapHalves = kFilters * kChannels;
// Each M tile: two conv rows of 32 columns (warp w: row 2m + w / 2, segment w % 2), five for the 9 rows
// (the tenth row a repeat of the ninth, never stored).
constexpr int kMTiles = (kConvRows + 1) / 2;

template <int kC, typename In>
constexpr int kBlocksPerSm = RawTile<kC, In>::blocks_per_sm(kFilterBytes, 2);

template <int kC, typename In>
__global__ void __launch_bounds__(kBlockThreads, (kBlocksPerSm<kC, In>))
    conv_max_pool_wgmma_kernel(const In* __restrict__ x, const float* __restrict__ shift,
                               const __half* __restrict__ filter, const __half* __restrict__ bias, __half* __restrict__ y,
                               ConvMaxPoolArgs a) {
  extern __shared__ __align__(128) unsigned char shared[];
  const Tiles<kC, In> tiles(x, shift, a, shared);
  __half* b = reinterpret_cast<__half*>(shared + RawTile<kC, In>::shared_bytes());
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // The filter [64][16 taps][16] into its core matrices, read by the async proxy (fenced; the tile walk's
  // first barrier publishes it).
  for (int i = threadIdx.x; i < kFilters * kTaps * kTaps * 2; i += kBlockThreads) {
    const int f = i / (kTaps * kTaps * 2), tap = i / 2 % (kTaps * kTaps), q = i % 2;
    *reinterpret_cast<uint4*>(b + tap * kTapHalves + ((f / 8) * 2 + q) * 64 + (f % 8) * 8) =
        *reinterpret_cast<const uint4*>(filter + size_t(f) * kK + tap * kChannels + q * 8);
  }
  fence_proxy_async_shared();
  float bias_of[8][2];  // this lane's accumulator columns 8j + 2 (lane % 4), + 1
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) bias_of[j][e] = bias ? __half2float(bias[j * 8 + (lane % 4) * 2 + e]) : 0.0f;

  const int segment = warp % 2;
  // This lane's ldmatrix row: matrices 0-3 are pixels 0-7 / 8-15 of K halves 0 / 1.
  const int column = segment * 16 + lane % 8 + (lane / 8) % 2 * 8, half = lane / 16;
  tiles.for_each_tile(y, [&](int64_t) {
#pragma unroll 1
    for (int m = 0; m < kMTiles; ++m) {
      const int wanted = 2 * m + warp / 2, row = wanted < kConvRows ? wanted : kConvRows - 1;
      uint32_t frag[kTaps * kTaps][4];
#pragma unroll
      for (int ty = 0; ty < kTaps; ++ty)
#pragma unroll
        for (int tx = 0; tx < kTaps; ++tx) {
          const int pixel = (row + ty) * kInputCols + column + tx;
          ldmatrix_x4(frag[ty * kTaps + tx], shared_address(tiles.input + pixel * kChannels + swizzled_half(pixel, half) * 8));
        }
      float d[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) d[i] = 0.0f;
      wgmma_fence();
#pragma unroll
      for (int tap = 0; tap < kTaps * kTaps; ++tap)
        wgmma_m64n64k16(d, frag[tap], wgmma_descriptor(b + tap * kTapHalves, kFilterLbo, kFilterSbo));
      wgmma_commit();
      wgmma_wait<0>();
      if (wanted >= kConvRows) continue;
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)  // accumulator rows lane / 4 and lane / 4 + 8
          tiles.store_conv(row, segment * 16 + lane / 4 + h * 8, j * 8 + (lane % 4) * 2, d[4 * j + 2 * h],
                           d[4 * j + 2 * h + 1], bias_of[j][0], bias_of[j][1]);
    }
  });
}

template <int kC, typename In>
void launch(const void* x, const float* shift, const void* filter, const void* bias, void* y, const ConvMaxPoolArgs& a,
            cudaStream_t stream) {
  const size_t shared = RawTile<kC, In>::shared_bytes(kFilterBytes);
  const auto kernel = conv_max_pool_wgmma_kernel<kC, In>;
  kernel<<<persistent_grid(kernel, shared, tile_count(a), kBlocksPerSm<kC, In>), kBlockThreads, shared, stream>>>(
      static_cast<const In*>(x), shift, static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), a);
}

}  // namespace

void launch_conv_max_pool_wgmma(const void* x, DType xt, const float* shift, const void* filter, const void* bias,
                                void* y, const ConvMaxPoolArgs& a, cudaStream_t stream) {
  EASTRT_CHECK(a.c == 3 || a.c == 4, "conv/max-pool wgmma kernel: ", a.c, " input channels (it takes 3 or 4)");
  EASTRT_CHECK(aligned_to(x, 16) && aligned_to(filter, 16),
               "conv/max-pool wgmma kernel: its input and filter must be 16-byte aligned");
  require_sm90a("conv/max-pool wgmma kernel");
  if (tile_count(a) == 0) return;
  if (xt == DType::kF32)
    a.c == 3 ? launch<3, float>(x, shift, filter, bias, y, a, stream) : launch<4, float>(x, shift, filter, bias, y, a, stream);
  else
    a.c == 3 ? launch<3, __half>(x, shift, filter, bias, y, a, stream) : launch<4, __half>(x, shift, filter, bias, y, a, stream);
  EASTRT_LAUNCHED("conv_max_pool_wgmma_kernel");
}

}  // namespace eastrt::cuda
