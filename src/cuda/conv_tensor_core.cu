// The direct tactic's tensor-core variant (kDirectTensorCore): a 3x3 stride-1 FP16 convolution on 32 input
// channels (EAST's feature-merging 3x3s at a quarter of the input, where cuDNN moves 1.4 TB/s), read
// unpadded with the padding decided per tap, bias, residual and activation in its epilogue.
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"

namespace eastrt::cuda {
namespace {

constexpr int kTaps = 3;
constexpr int kChannels = 32;  // two mma K steps per tap
constexpr int kRows = 4, kSegments = 2, kCols = kSegments * 16;  // a tile: 4 x 32 outputs of 32 filters
constexpr int kFilters = 32;                                     // two warps of 16 per segment
constexpr int kInputRows = kRows + kTaps - 1, kInputCols = kCols + kTaps - 1;
constexpr int kInputPixels = kInputRows * kInputCols;
constexpr int kChunks = kChannels / 8;  // 16-byte pieces of a pixel
constexpr int kBlockThreads = 128;
constexpr size_t kInputBytes = size_t(kInputPixels) * kChannels * sizeof(__half);
constexpr size_t kSharedBytes = 2 * kInputBytes;

// A pixel's four 16-byte chunks rotate with the pixel index so that an ldmatrix of any 8 consecutive
// pixels' same chunk hits 8 distinct bank groups (pixels two apart share an XOR, the parity picks the half).
__device__ __forceinline__ int swizzled_chunk(int pixel, int chunk) { return chunk ^ ((pixel >> 1) & 3); }

struct Tile {
  int image, row0, col0, filter0;
};

__device__ __forceinline__ Tile tile_at(int64_t tile, int tiles_h, int tiles_w, int filter_groups) {
  const int group = static_cast<int>(tile % filter_groups);
  const int64_t spatial = tile / filter_groups;
  const int image = static_cast<int>(spatial / (int64_t(tiles_h) * tiles_w));
  const int rest = static_cast<int>(spatial % (int64_t(tiles_h) * tiles_w));
  return {image, rest / tiles_w * kRows, rest % tiles_w * kCols, group * kFilters};
}

// Four blocks an SM, 128 registers a thread without spills (the generic activation's epilogue, which would
// spill there, three). Tiles of 8 rows at two blocks (255 registers) left the schedulers without an eligible
// warp 57 % of the time (ncu, FP16 batch 16 on the H200) and lost to cuDNN at batch 16 (0.078 ms).
template <int kActivation>
constexpr int kBlocksPerSm = kActivation == kAnyActivation ? 3 : 4;

// A persistent grid over tiles (image, 4 output rows, 32 output columns, 32 filters); the next tile's input
// rows are copied into shared memory by cp.async while this one computes. Warp w computes 16 filters
// (w / 2) of one 16-column segment (w % 2) at all 4 rows, their filter fragments in registers for the whole
// grid; every input row it loads serves the up to three output rows that read it.
template <int kActivation>
__global__ void __launch_bounds__(kBlockThreads, kBlocksPerSm<kActivation>)
    tensor_core_conv_kernel(const __half* __restrict__ x, const __half* __restrict__ filter,
                            const __half* __restrict__ bias, const __half* __restrict__ residual,
                            __half* __restrict__ y, DirectConvArgs a, Activation act) {
  extern __shared__ __align__(16) unsigned char shared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int segment = warp % 2, half_group = warp / 2;
  const int filter_groups = a.k / kFilters;

  const int tiles_h = (a.oh + kRows - 1) / kRows, tiles_w = (a.ow + kCols - 1) / kCols;
  const int64_t tiles = int64_t(a.n) * tiles_h * tiles_w * filter_groups;
  const auto input_buffer = [&](int buffer) { return reinterpret_cast<__half*>(shared + buffer * kInputBytes); };
  const auto load_input = [&](int64_t tile, int buffer) {
    __half* input = input_buffer(buffer);
    const Tile t = tile_at(tile, tiles_h, tiles_w, filter_groups);
    const int y0 = t.row0 - a.pad_top, x0 = t.col0 - a.pad_left;
    for (int i = threadIdx.x; i < kInputPixels * kChunks; i += kBlockThreads) {
      const int pixel = i / kChunks, chunk = i % kChunks;
      const int gy = y0 + pixel / kInputCols, gx = x0 + pixel % kInputCols;
      const bool inside = gy >= 0 && gy < a.h && gx >= 0 && gx < a.w;
      const __half* source = inside ? x + ((int64_t(t.image) * a.h + gy) * a.w + gx) * kChannels + chunk * 8 : x;
      cp_async_16(input + pixel * kChannels + swizzled_chunk(pixel, chunk) * 8, source, inside);
    }
  };

  // The B fragments of this warp's filters in the first tile's filter group (reloaded when it changes).
  uint32_t b[kTaps * kTaps][2][2][2];  // [tap][K step][n tile][register]
  int loaded_filters = -1;
  const auto load_filters = [&](int filter0) {
#pragma unroll
    for (int tap = 0; tap < kTaps * kTaps; ++tap)
#pragma unroll
      for (int ks = 0; ks < 2; ++ks)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const __half* row = filter + size_t(filter0 + half_group * 16 + nt * 8 + lane / 4) * kTaps * kTaps * kChannels +
                              tap * kChannels + ks * 16 + (lane % 4) * 2;
          b[tap][ks][nt][0] = __ldg(reinterpret_cast<const unsigned*>(row));
          b[tap][ks][nt][1] = __ldg(reinterpret_cast<const unsigned*>(row + 8));
        }
    loaded_filters = filter0;
  };

  double_buffered_tiles(tiles, load_input, [&](int64_t tile, int buffer) {
    const Tile t = tile_at(tile, tiles_h, tiles_w, filter_groups);
    if (t.filter0 != loaded_filters) load_filters(t.filter0);
    const __half* input = input_buffer(buffer);

    float c[kRows][2][4] = {};
    // This lane's ldmatrix row: matrices 0-3 are pixels 0-7 / 8-15 of the K step's chunks 0 / 1.
    const int column = segment * 16 + lane % 8 + (lane / 8) % 2 * 8, chunk_half = lane / 16;
#pragma unroll
    for (int row = 0; row < kInputRows; ++row)
#pragma unroll
      for (int tx = 0; tx < kTaps; ++tx)
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {
          const int pixel = row * kInputCols + column + tx;
          uint32_t frag[4];
          ldmatrix_x4(frag, shared_address(input + pixel * kChannels + swizzled_chunk(pixel, ks * 2 + chunk_half) * 8));
#pragma unroll
          for (int ty = 0; ty < kTaps; ++ty) {
            const int out_row = row - ty;
            if (out_row < 0 || out_row >= kRows) continue;
            mma_16816(c[out_row][0], frag, b[ty * kTaps + tx][ks][0][0], b[ty * kTaps + tx][ks][0][1]);
            mma_16816(c[out_row][1], frag, b[ty * kTaps + tx][ks][1][0], b[ty * kTaps + tx][ks][1][1]);
          }
        }
    __syncthreads();  // every warp is done with this buffer before the next iteration copies into it

#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int k = t.filter0 + half_group * 16 + nt * 8 + (lane % 4) * 2;  // this lane's two columns
      const float bias0 = bias ? __half2float(bias[k]) : 0.0f, bias1 = bias ? __half2float(bias[k + 1]) : 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) {  // accumulator rows lane / 4 and lane / 4 + 8
          const int oy = t.row0 + r, ox = t.col0 + segment * 16 + lane / 4 + h * 8;
          if (oy >= a.oh || ox >= a.ow) continue;
          const int64_t at = ((int64_t(t.image) * a.oh + oy) * a.ow + ox) * a.k + k;
          float v0 = c[r][nt][2 * h] + bias0, v1 = c[r][nt][2 * h + 1] + bias1;
          if (residual) {
            const float2 add = __half22float2(*reinterpret_cast<const __half2*>(residual + at));
            v0 += add.x, v1 += add.y;
          }
          *reinterpret_cast<__half2*>(y + at) = __floats2half2_rn(epilogue_activation<kActivation>(act, v0),
                                                                  epilogue_activation<kActivation>(act, v1));
        }
    }
  });
}

}  // namespace

bool tensor_core_conv_fits(const DirectConvArgs& a, DType xt, DType yt) {
  return xt == DType::kF16 && yt == DType::kF16 && a.groups == 1 && a.c == kChannels && a.filter_c == kChannels &&
         a.r == kTaps && a.s == kTaps && a.stride_h == 1 && a.stride_w == 1 && a.dilation_h == 1 &&
         a.dilation_w == 1 && a.pad_top >= 0 && a.pad_top < kTaps && a.pad_left >= 0 && a.pad_left < kTaps &&
         a.k > 0 && a.k % kFilters == 0 && a.n >= 0 && a.oh > 0 && a.ow > 0;
}

void launch_tensor_core_conv(const void* x, const void* filter, const void* bias, const void* residual, void* y,
                             const DirectConvArgs& a, Activation act, cudaStream_t stream) {
  EASTRT_CHECK(tensor_core_conv_fits(a, DType::kF16, DType::kF16), "tensor-core convolution: ", a.c, " channels, ",
               a.k, " outputs, ", a.r, "x", a.s, "/", a.stride_h, " is beyond what it takes");
  const int64_t tiles = int64_t(a.n) * ((a.oh + kRows - 1) / kRows) * ((a.ow + kCols - 1) / kCols) * (a.k / kFilters);
  if (tiles == 0) return;
  const auto run = [&](auto activation) {
    constexpr int kActivation = decltype(activation)::value;
    const auto kernel = tensor_core_conv_kernel<kActivation>;
    kernel<<<persistent_grid(kernel, kSharedBytes, tiles, kBlocksPerSm<kActivation>), kBlockThreads, kSharedBytes,
             stream>>>(static_cast<const __half*>(x), static_cast<const __half*>(filter),
                       static_cast<const __half*>(bias), static_cast<const __half*>(residual),
                       static_cast<__half*>(y), a, act);
  };
  dispatch_epilogue_activation(act, run);
  EASTRT_LAUNCHED("tensor_core_conv_kernel");
}

}  // namespace eastrt::cuda
