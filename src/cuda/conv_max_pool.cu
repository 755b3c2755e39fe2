// EAST's conv1 and pool1 as one FP16 tensor-core kernel: the 4x4 stride-1 convolution of the 16-channel
// space-to-depth X' of its input (space_to_depth.h), built tile by tile in shared memory from the raw input,
// and the 3x3/2 max-pool over its output, which never leaves the chip either (conv_max_pool_tiles.cuh).
#include <cuda_fp16.h>

#include "cuda/conv_max_pool_tiles.cuh"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"

namespace eastrt::cuda {
namespace {

using namespace conv_max_pool_tiles;

// Three blocks an SM where their shared memory fits (EAST's three channels: 65-74 KB each; four float32
// channels, 80 KB, get two): 168 registers a thread at three.
template <int kC, typename In>
constexpr int kBlocksPerSm = RawTile<kC, In>::blocks_per_sm();

// Each warp computes 16 filters (their fragments held in registers for the whole grid) at all of the tile's
// conv outputs, one 16-column segment at a time: every X' row it loads serves the (up to four) conv rows
// that read it. kShortLastRow: the filter is 7 rows high, so the last tap row reads only the first of X''s
// two rows (its channels 0-7 hold all of them) and takes one K step of 8.
template <int kC, typename In, bool kShortLastRow>
__global__ void __launch_bounds__(kBlockThreads, (kBlocksPerSm<kC, In>))
    conv_max_pool_kernel(const In* __restrict__ x, const float* __restrict__ shift, const __half* __restrict__ filter,
                         const __half* __restrict__ bias, __half* __restrict__ y, ConvMaxPoolArgs a) {
  extern __shared__ __align__(16) unsigned char shared[];
  const Tiles<kC, In> tiles(x, shift, a, shared);
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

  tiles.for_each_tile(y, [&](int64_t) {
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
          uint32_t frag[4];
          ldmatrix_x4(frag, shared_address(tiles.input + pixel * kChannels + swizzled_half(pixel, half) * 8));
#pragma unroll
          for (int ty = 0; ty < kTaps; ++ty) {
            const int conv_row = row - ty;
            if (conv_row < 0 || conv_row >= kConvRows) continue;
            if (kShortLastRow && ty == kTaps - 1) {
              mma_1688(c[conv_row][0], frag[0], frag[1], b[ty * kTaps + tx][0][0]);
              mma_1688(c[conv_row][1], frag[0], frag[1], b[ty * kTaps + tx][1][0]);
              continue;
            }
            mma_16816(c[conv_row][0], frag, b[ty * kTaps + tx][0][0], b[ty * kTaps + tx][0][1]);
            mma_16816(c[conv_row][1], frag, b[ty * kTaps + tx][1][0], b[ty * kTaps + tx][1][1]);
          }
        }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int filter0 = warp * 16 + nt * 8 + (lane % 4) * 2;  // this lane's two accumulator columns
        const float bias0 = bias ? __half2float(bias[filter0]) : 0.0f, bias1 = bias ? __half2float(bias[filter0 + 1]) : 0.0f;
#pragma unroll
        for (int r = 0; r < kConvRows; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h)  // accumulator rows lane / 4 and lane / 4 + 8
            tiles.store_conv(r, segment * 16 + lane / 4 + h * 8, filter0, c[r][nt][2 * h], c[r][nt][2 * h + 1], bias0,
                             bias1);
      }
    }
  });
}

template <int kC, typename In>
void launch(const void* x, const float* shift, const void* filter, const void* bias, void* y, const ConvMaxPoolArgs& a,
            bool short_last_row, cudaStream_t stream) {
  const size_t shared = RawTile<kC, In>::shared_bytes();
  const auto kernel = short_last_row ? conv_max_pool_kernel<kC, In, true> : conv_max_pool_kernel<kC, In, false>;
  kernel<<<persistent_grid(kernel, shared, tile_count(a), kBlocksPerSm<kC, In>), kBlockThreads, shared, stream>>>(
      static_cast<const In*>(x), shift, static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), a);
}

}  // namespace

void launch_conv_max_pool(const void* x, DType xt, const float* shift, const void* filter, const void* bias, void* y,
                          const ConvMaxPoolArgs& a, bool short_last_row, cudaStream_t stream) {
  EASTRT_CHECK(a.c == 3 || a.c == 4, "conv/max-pool kernel: ", a.c, " input channels (it takes 3 or 4)");
  EASTRT_CHECK(aligned_to(x, 16), "conv/max-pool kernel: its input is not 16-byte aligned");
  if (tile_count(a) == 0) return;
  if (xt == DType::kF32)
    a.c == 3 ? launch<3, float>(x, shift, filter, bias, y, a, short_last_row, stream)
             : launch<4, float>(x, shift, filter, bias, y, a, short_last_row, stream);
  else
    a.c == 3 ? launch<3, __half>(x, shift, filter, bias, y, a, short_last_row, stream)
             : launch<4, __half>(x, shift, filter, bias, y, a, short_last_row, stream);
  EASTRT_LAUNCHED("conv_max_pool_kernel");
}

}  // namespace eastrt::cuda
