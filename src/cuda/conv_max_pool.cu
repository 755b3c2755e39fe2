// EAST's conv1 and pool1 as one FP16 tensor-core kernel: the 4x4 stride-1 convolution of the 16-channel
// space-to-depth X' (space_to_depth.h) and the 3x3/2 max-pool over its output, which never leaves the chip.
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/conv_max_pool.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"

namespace eastrt::cuda {
namespace {

constexpr int kTaps = kConvMaxPoolTaps;
constexpr int kChannels = kConvMaxPoolChannels;  // one mma K step per tap
constexpr int kFilters = kConvMaxPoolFilters;    // 4 warps of 16
constexpr int kK = kTaps * kTaps * kChannels;
constexpr int kWindow = kConvMaxPoolWindow, kStride = kConvMaxPoolStride;
// A tile: kPoolRows x kPoolCols pooled outputs from kConvRows x kConvCols convolution outputs, the columns in
// two mma M tiles of 16 (the last column is computed, never pooled).
constexpr int kPoolRows = 4, kPoolCols = 15;
constexpr int kConvRows = (kPoolRows - 1) * kStride + kWindow;  // 9
constexpr int kSegments = 2, kConvCols = kSegments * 16;        // 32, of which 31 are pooled
static_assert((kPoolCols - 1) * kStride + kWindow <= kConvCols);
constexpr int kInputRows = kConvRows + kTaps - 1, kInputCols = kConvCols + kTaps - 1;  // 12 x 35
constexpr int kInputPixels = kInputRows * kInputCols;
constexpr int kInputLoads = kInputPixels * 2;  // 16-byte halves
constexpr int kConvStride = kFilters + 8;      // halves per conv pixel in shared memory: conflict-free stores
constexpr int kThreads = 128;
constexpr int kBlocksPerSm = 3;  // 168 registers a thread, 68 KB of shared memory a block
constexpr size_t kInputBytes = size_t(kInputPixels) * kChannels * sizeof(__half);
constexpr size_t kSharedBytes = 2 * kInputBytes + size_t(kConvRows) * kConvCols * kConvStride * sizeof(__half);

// X' pixels are 32 bytes, two 16-byte halves; consecutive pixels swap halves in groups of four so that an
// ldmatrix of any 8 consecutive pixels' same half hits 8 distinct bank groups.
__device__ __forceinline__ int swizzled_half(int pixel, int half) { return half ^ ((pixel >> 2) & 1); }

struct TileOrigin {
  int image, ph0, pw0;
};

__device__ __forceinline__ TileOrigin tile_origin(int64_t tile, int tiles_h, int tiles_w) {
  const int image = static_cast<int>(tile / (int64_t(tiles_h) * tiles_w));
  const int rest = static_cast<int>(tile % (int64_t(tiles_h) * tiles_w));
  return {image, rest / tiles_w * kPoolRows, rest % tiles_w * kPoolCols};
}

// A persistent grid over tiles of kPoolRows x kPoolCols pooled outputs of one image; the next tile's X' is
// copied into shared memory while this one computes. Each warp computes 16 filters (their fragments held in
// registers for the whole grid) at all of the tile's conv outputs, one 16-column segment at a time: every X'
// row it loads serves the (up to four) conv rows that read it, so shared memory is read a quarter as often as
// one conv row at a time would. The conv outputs (bias and ReLU applied, rounded to FP16, as the separate
// convolution writes them) go to shared memory, and each pooled output is the max over its window's conv
// outputs inside the image. kShortLastRow: the filter is 7 rows high, so the last tap row reads only the
// first of X''s two rows (its channels 0-7 hold all of them; space_to_depth.h) and takes one K step of 8.
template <bool kShortLastRow>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    conv_max_pool_kernel(const __half* __restrict__ xs, const __half* __restrict__ filter,
                         const __half* __restrict__ bias, __half* __restrict__ y, int n, int oh, int ow, int ph,
                         int pw, int top, int left, bool relu) {
  extern __shared__ __align__(16) unsigned char shared[];
  const auto input_buffer = [&](int buffer) { return reinterpret_cast<__half*>(shared + buffer * kInputBytes); };
  __half* conv = reinterpret_cast<__half*>(shared + 2 * kInputBytes);
  const int xh = oh + kTaps - 1, xw = ow + kTaps - 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // B fragments (K x N column-major = the KRSC filter's rows) of this warp's two n tiles, every tap.
  uint32_t b[kTaps * kTaps][2][2];
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int tap = 0; tap < kTaps * kTaps; ++tap) {
      const __half* row = filter + size_t(warp * 16 + nt * 8 + lane / 4) * kK + tap * kChannels + (lane % 4) * 2;
      b[tap][nt][0] = *reinterpret_cast<const uint32_t*>(row);
      b[tap][nt][1] = *reinterpret_cast<const uint32_t*>(row + 8);
    }
  }

  const int tiles_h = (ph + kPoolRows - 1) / kPoolRows, tiles_w = (pw + kPoolCols - 1) / kPoolCols;
  const int64_t tiles = int64_t(n) * tiles_h * tiles_w;
  const auto load_input = [&](int64_t tile, int buffer) {
    __half* input = input_buffer(buffer);
    const TileOrigin t = tile_origin(tile, tiles_h, tiles_w);
    const int cy0 = t.ph0 * kStride - top, cx0 = t.pw0 * kStride - left;
    for (int i = threadIdx.x; i < kInputLoads; i += kThreads) {
      const int pixel = i / 2, half = i % 2;
      const int gy = cy0 + pixel / kInputCols, gx = cx0 + pixel % kInputCols;
      const bool inside = gy >= 0 && gy < xh && gx >= 0 && gx < xw;
      const __half* source = inside ? xs + ((int64_t(t.image) * xh + gy) * xw + gx) * kChannels + half * 8 : xs;
      cp_async_16(input + pixel * kChannels + swizzled_half(pixel, half) * 8, source, inside);
    }
  };

  double_buffered_tiles(tiles, load_input, [&](int64_t tile, int buffer) {
    const __half* input = input_buffer(buffer);

#pragma unroll 1
    for (int segment = 0; segment < kSegments; ++segment) {
      float c[kConvRows][2][4] = {};
      // This lane's ldmatrix row: matrices 0-3 are rows 0-7 / 8-15 of K halves 0 / 1.
      const int column = segment * 16 + lane % 8 + (lane / 8) % 2 * 8, half = lane / 16;
#pragma unroll
      for (int row = 0; row < kInputRows; ++row)
#pragma unroll
        for (int tx = 0; tx < kTaps; ++tx) {
          const int pixel = row * kInputCols + column + tx;
          uint32_t a[4];
          ldmatrix_x4(a, shared_address(input + pixel * kChannels + swizzled_half(pixel, half) * 8));
#pragma unroll
          for (int ty = 0; ty < kTaps; ++ty) {
            const int conv_row = row - ty;
            if (conv_row < 0 || conv_row >= kConvRows) continue;
            if (kShortLastRow && ty == kTaps - 1) {
              mma_1688(c[conv_row][0], a[0], a[1], b[ty * kTaps + tx][0][0]);
              mma_1688(c[conv_row][1], a[0], a[1], b[ty * kTaps + tx][1][0]);
              continue;
            }
            mma_16816(c[conv_row][0], a, b[ty * kTaps + tx][0][0], b[ty * kTaps + tx][0][1]);
            mma_16816(c[conv_row][1], a, b[ty * kTaps + tx][1][0], b[ty * kTaps + tx][1][1]);
          }
        }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int filter0 = warp * 16 + nt * 8 + (lane % 4) * 2;  // this lane's two accumulator columns
        const float bias0 = bias ? __half2float(bias[filter0]) : 0.0f, bias1 = bias ? __half2float(bias[filter0 + 1]) : 0.0f;
#pragma unroll
        for (int r = 0; r < kConvRows; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h) {  // accumulator rows lane / 4 and lane / 4 + 8
            float v0 = c[r][nt][2 * h] + bias0, v1 = c[r][nt][2 * h + 1] + bias1;
            if (relu) v0 = fmaxf(v0, 0.0f), v1 = fmaxf(v1, 0.0f);
            const int pixel = r * kConvCols + segment * 16 + lane / 4 + h * 8;
            *reinterpret_cast<__half2*>(conv + pixel * kConvStride + filter0) = __floats2half2_rn(v0, v1);
          }
      }
    }
    __syncthreads();

    const TileOrigin t = tile_origin(tile, tiles_h, tiles_w);
    const int cy0 = t.ph0 * kStride - top, cx0 = t.pw0 * kStride - left;
    for (int i = threadIdx.x; i < kPoolRows * kPoolCols * (kFilters / 8); i += kThreads) {
      const int group = i % (kFilters / 8), pixel = i / (kFilters / 8);
      const int pr = pixel / kPoolCols, pc = pixel % kPoolCols;
      if (t.ph0 + pr >= ph || t.pw0 + pc >= pw) continue;
      __half2 m[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = __half2half2(__ushort_as_half(0xFC00));  // -infinity
#pragma unroll
      for (int dy = 0; dy < kWindow; ++dy)
#pragma unroll
        for (int dx = 0; dx < kWindow; ++dx) {
          const int cy = pr * kStride + dy, cx = pc * kStride + dx;
          if (cy0 + cy < 0 || cy0 + cy >= oh || cx0 + cx < 0 || cx0 + cx >= ow) continue;  // the pool's padding
          const uint4 v = *reinterpret_cast<const uint4*>(conv + (cy * kConvCols + cx) * kConvStride + group * 8);
          const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
          for (int j = 0; j < 4; ++j) m[j] = __hmax2(m[j], h[j]);
        }
      *reinterpret_cast<uint4*>(y + ((int64_t(t.image) * ph + t.ph0 + pr) * pw + t.pw0 + pc) * kFilters + group * 8) =
          *reinterpret_cast<const uint4*>(m);
    }
    // The next tile's conv outputs overwrite `conv` only after its own barrier above; its X' copy goes into
    // the buffer this tile read, which every thread finished with before the barrier after the convolution.
  });
}

}  // namespace

void launch_conv_max_pool(const void* xs, const void* filter, const void* bias, void* y, int n, int oh, int ow, int ph,
                          int pw, int top, int left, bool relu, bool short_last_row, cudaStream_t stream) {
  const int64_t tiles = int64_t(n) * ((ph + kPoolRows - 1) / kPoolRows) * ((pw + kPoolCols - 1) / kPoolCols);
  if (tiles == 0) return;
  const auto kernel = short_last_row ? conv_max_pool_kernel<true> : conv_max_pool_kernel<false>;
  kernel<<<persistent_grid(kernel, kSharedBytes, tiles, kBlocksPerSm), kThreads, kSharedBytes, stream>>>(
      static_cast<const __half*>(xs), static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), n, oh, ow, ph, pw, top, left, relu);
  EASTRT_LAUNCHED("conv_max_pool_kernel");
}

}  // namespace eastrt::cuda
