// The direct tactic's wgmma variant (kDirectTensorCoreWgmma, sm_90a alone): the 3x3 stride-1 FP16
// convolution of conv_tensor_core.cu (32 input channels, read unpadded, the padding decided per tap) into
// 32 filters, as wgmma m64n32k16 products with A a run of 64 consecutive input pixels (one output row's 64
// columns, shifted by the tap) and B the filters, both read by descriptor from shared memory. The input tile
// is stored as four channel planes (channels 8p..8p+7 of every pixel, 16 bytes a pixel), so that any 8
// consecutive pixels of a plane are one core matrix and a tap's shift is a shift of the descriptor's start;
// the filters stay in shared memory for the whole grid. The mma.sync kernel moved 1.4 TB/s on EAST's
// feature-merging 3x3s, a fifth of its tensor pipe busy.
#include <cuda_fp16.h>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

constexpr int kTaps = 3;
constexpr int kChannels = 32, kPlanes = kChannels / 8;  // two K steps of 16 a tap
constexpr int kFilters = 32;                             // N
constexpr int kRows = 4, kCols = 64;                     // a tile: 4 output rows of 64 columns (M)
constexpr int kInputRows = kRows + kTaps - 1, kInputCols = kCols + kTaps - 1;
constexpr int kPlanePixels = kInputRows * kInputCols;  // 396: the last tap's run ends at the last pixel
static_assert((kRows - 1 + kTaps - 1) * kInputCols + kTaps - 1 + kCols <= kPlanePixels);
constexpr uint32_t kPlaneBytes = kPlanePixels * 16, kInputBytes = kPlanes * kPlaneBytes;
// B: for each tap and K step, 4 groups of 8 filters x 2 groups of 8 channels, core matrices of 8 filters'
// 16 bytes: K-adjacent ones 128 bytes apart, N-adjacent 256.
constexpr uint32_t kFilterStepBytes = kFilters * 16 * sizeof(__half), kFilterBytes = kTaps * kTaps * 2 * kFilterStepBytes;
constexpr size_t kSharedBytes = kFilterBytes + 2 * size_t(kInputBytes);
constexpr int kBlockThreads = 128;  // one warpgroup
constexpr int kBlocksPerSm = 3;

struct Tile {
  int image, row0, col0;
};

__device__ __forceinline__ Tile tile_at(int64_t tile, int tiles_h, int tiles_w) {
  const int image = static_cast<int>(tile / (int64_t(tiles_h) * tiles_w));
  const int rest = static_cast<int>(tile % (int64_t(tiles_h) * tiles_w));
  return {image, rest / tiles_w * kRows, rest % tiles_w * kCols};
}

// A persistent grid over tiles (image, 4 output rows, 64 output columns); the next tile's input is copied
// by cp.async while this one computes. Each output row's 18 products are one commit group, and row r's
// epilogue runs while the later rows' products are still in flight.
template <int kActivation>
__global__ void __launch_bounds__(kBlockThreads, kBlocksPerSm)
    tensor_core_wgmma_conv_kernel(const __half* __restrict__ x, const __half* __restrict__ filter,
                                  const __half* __restrict__ bias, const __half* __restrict__ residual,
                                  __half* __restrict__ y, DirectConvArgs a, Activation act) {
  extern __shared__ __align__(128) unsigned char shared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  unsigned char* filters = shared;
  const auto input_buffer = [&](int buffer) { return shared + kFilterBytes + buffer * kInputBytes; };

  // The filters, once: tap t, K step s, filter group g, channel group h, filter row r at
  // (t * 2 + s) * 1024 + (g * 2 + h) * 128 + r * 16 bytes.
  for (int i = threadIdx.x; i < kTaps * kTaps * 2 * kFilters * 2; i += kBlockThreads) {
    const int h = i % 2, f = i / 2 % kFilters, s = i / (2 * kFilters) % 2, tap = i / (4 * kFilters);
    const uint4 v = *reinterpret_cast<const uint4*>(filter + (f * kTaps * kTaps + tap) * kChannels + s * 16 + h * 8);
    *reinterpret_cast<uint4*>(filters + (tap * 2 + s) * kFilterStepBytes + ((f / 8) * 2 + h) * 128 + (f % 8) * 16) = v;
  }

  const int tiles_h = (a.oh + kRows - 1) / kRows, tiles_w = (a.ow + kCols - 1) / kCols;
  const int64_t tiles = int64_t(a.n) * tiles_h * tiles_w;
  const auto load_input = [&](int64_t tile, int buffer) {
    unsigned char* input = input_buffer(buffer);
    const Tile t = tile_at(tile, tiles_h, tiles_w);
    const int y0 = t.row0 - a.pad_top, x0 = t.col0 - a.pad_left;
    for (int i = threadIdx.x; i < kPlanePixels * kPlanes; i += kBlockThreads) {
      const int pixel = i / kPlanes, plane = i % kPlanes;
      const int gy = y0 + pixel / kInputCols, gx = x0 + pixel % kInputCols;
      const bool inside = gy >= 0 && gy < a.h && gx >= 0 && gx < a.w;
      const __half* source = inside ? x + ((int64_t(t.image) * a.h + gy) * a.w + gx) * kChannels + plane * 8 : x;
      cp_async_16(input + plane * kPlaneBytes + pixel * 16, source, inside);
    }
  };

  // This thread's accumulator columns (filters) 8j + 2 (lane % 4) and + 1, and rows (output columns)
  // 16 warp + lane / 4 and + 8.
  float bias_at[8];
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) bias_at[2 * j + e] = bias ? __half2float(bias[8 * j + 2 * (lane % 4) + e]) : 0.0f;
  const uint64_t b0 = wgmma_descriptor(filters, 128, 256);

  // The filters' stores are published, for wgmma too, by the fence and barrier before the first tile.
  double_buffered_tiles<true>(tiles, load_input, [&](int64_t tile, int buffer) {
    const Tile t = tile_at(tile, tiles_h, tiles_w);
    const uint64_t a0 = wgmma_descriptor(input_buffer(buffer), kPlaneBytes, 128);
    float d[kRows][16];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        d[r][4 * j] = d[r][4 * j + 2] = bias_at[2 * j], d[r][4 * j + 1] = d[r][4 * j + 3] = bias_at[2 * j + 1];
    wgmma_fence();
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int ty = 0; ty < kTaps; ++ty)
#pragma unroll
        for (int tx = 0; tx < kTaps; ++tx)
#pragma unroll
          for (int s = 0; s < 2; ++s)  // descriptor addresses count 16 bytes: a pixel of a plane
            wgmma_m64n32k16(d[r], a0 + uint64_t(2 * s * kPlanePixels + (r + ty) * kInputCols + tx),
                            b0 + uint64_t(((ty * kTaps + tx) * 2 + s) * kFilterStepBytes / 16));
      wgmma_commit();
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      wgmma_wait_at_most(kRows - 1 - r);
      wgmma_fence_operands(d[r]);
      if (r == kRows - 1) __syncthreads();  // every product has read this buffer before it is copied into
      const int oy = t.row0 + r;
      if (oy >= a.oh) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int ox = t.col0 + warp * 16 + lane / 4 + h * 8;
        if (ox >= a.ow) continue;
        const int64_t pixel = (int64_t(t.image) * a.oh + oy) * a.ow + ox;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t at = pixel * a.k + 8 * j + 2 * (lane % 4);
          float v0 = d[r][4 * j + 2 * h], v1 = d[r][4 * j + 2 * h + 1];
          if (residual) {
            const float2 add = __half22float2(*reinterpret_cast<const __half2*>(residual + at));
            v0 += add.x, v1 += add.y;
          }
          *reinterpret_cast<__half2*>(y + at) = __floats2half2_rn(epilogue_activation<kActivation>(act, v0),
                                                                  epilogue_activation<kActivation>(act, v1));
        }
      }
    }
  });
}

}  // namespace

bool tensor_core_wgmma_conv_fits(const DirectConvArgs& a, DType xt, DType yt) {
  return xt == DType::kF16 && yt == DType::kF16 && a.groups == 1 && a.c == kChannels && a.filter_c == kChannels &&
         a.k == kFilters && a.r == kTaps && a.s == kTaps && a.stride_h == 1 && a.stride_w == 1 && a.dilation_h == 1 &&
         a.dilation_w == 1 && a.pad_top >= 0 && a.pad_top < kTaps && a.pad_left >= 0 && a.pad_left < kTaps &&
         a.n >= 0 && a.oh > 0 && a.ow > 0;
}

void launch_tensor_core_wgmma_conv(const void* x, const void* filter, const void* bias, const void* residual, void* y,
                                   const DirectConvArgs& a, Activation act, cudaStream_t stream) {
  EASTRT_CHECK(tensor_core_wgmma_conv_fits(a, DType::kF16, DType::kF16), "tensor-core wgmma convolution: ", a.c,
               " channels, ", a.k, " outputs, ", a.r, "x", a.s, "/", a.stride_h, " is beyond what it takes");
  EASTRT_CHECK(aligned_to(x, 16) && aligned_to(filter, 16),
               "tensor-core wgmma convolution: its input and filter must be 16-byte aligned");
  require_sm90a("tensor-core wgmma convolution");
  const int64_t tiles = int64_t(a.n) * ((a.oh + kRows - 1) / kRows) * ((a.ow + kCols - 1) / kCols);
  if (tiles == 0) return;
  dispatch_epilogue_activation(act, [&](auto activation) {
    constexpr int kActivation = decltype(activation)::value;
    const auto kernel = tensor_core_wgmma_conv_kernel<kActivation>;
    kernel<<<persistent_grid(kernel, kSharedBytes, tiles, kBlocksPerSm), kBlockThreads, kSharedBytes, stream>>>(
        static_cast<const __half*>(x), static_cast<const __half*>(filter), static_cast<const __half*>(bias),
        static_cast<const __half*>(residual), static_cast<__half*>(y), a, act);
  });
  EASTRT_LAUNCHED("tensor_core_wgmma_conv_kernel");
}

}  // namespace eastrt::cuda
