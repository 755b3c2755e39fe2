// EAST's conv1 and pool1 as one FP16 tensor-core kernel: the 4x4 stride-1 convolution of the 16-channel
// space-to-depth X' of its input (space_to_depth.h), built tile by tile in shared memory from the raw input,
// and the 3x3/2 max-pool over its output, which never leaves the chip either.
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "cuda/conv_max_pool.h"
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
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
constexpr int kInputRows = kConvRows + kTaps - 1, kInputCols = kConvCols + kTaps - 1;  // X': 12 x 35
constexpr int kInputPixels = kInputRows * kInputCols;
constexpr int kConvStride = kFilters + 8;  // halves per conv pixel in shared memory: conflict-free stores
constexpr int kThreads = 128;
constexpr size_t kInputBytes = size_t(kInputPixels) * kChannels * sizeof(__half);
constexpr size_t kConvBytes = size_t(kConvRows) * kConvCols * kConvStride * sizeof(__half);

// The raw input a tile's X' comes from: 2 x 12 rows of 2 x 35 pixels, each row copied as the 16-byte
// chunks that cover it (one more than its length needs, since it starts anywhere in a chunk).
template <int kC, typename In>
struct RawTile {
  static constexpr int kRows = 2 * kInputRows, kPixels = 2 * kInputCols;
  static constexpr int kChunkElements = 16 / sizeof(In);
  static constexpr int kRowChunks = (kPixels * kC + kChunkElements - 1) / kChunkElements + 1;
  static constexpr int kRowElements = kRowChunks * kChunkElements;
  static constexpr size_t kBytes = size_t(kRows) * kRowChunks * 16;
  static constexpr size_t kSharedBytes = kBytes + kInputBytes + kConvBytes;
  // Three blocks an SM where their shared memory fits (EAST's three float32 channels: 74 KB each; four
  // channels, 80 KB, get two): 168 registers a thread at three.
  static constexpr int kBlocksPerSm = (kSharedBytes + 1024) * 3 <= 233472 ? 3 : 2;
};

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

// A persistent grid over tiles of kPoolRows x kPoolCols pooled outputs of one image. The next tile's raw
// input rows are copied into shared memory (cp.async) while this one computes; at the start of each tile
// every thread builds its share of the tile's X' from them (X'[i, j, (py * 2 + px) * C + c] =
// x[2i + py - conv_top, 2j + px - conv_left, c] + shift[c], zero outside x and past 4C), so X' never goes
// through device memory. Each warp computes 16 filters (their fragments held in registers for the whole
// grid) at all of the tile's conv outputs, one 16-column segment at a time: every X' row it loads serves the
// (up to four) conv rows that read it. The conv outputs (bias and ReLU applied, rounded to FP16, as the
// separate convolution writes them) go to shared memory, and each pooled output is the max over its window's
// conv outputs inside the image. kShortLastRow: the filter is 7 rows high, so the last tap row reads only the
// first of X''s two rows (its channels 0-7 hold all of them) and takes one K step of 8.
template <int kC, typename In, bool kShortLastRow>
__global__ void __launch_bounds__(kThreads, RawTile<kC, In>::kBlocksPerSm)
    conv_max_pool_kernel(const In* __restrict__ x, const float* __restrict__ shift, const __half* __restrict__ filter,
                         const __half* __restrict__ bias, __half* __restrict__ y, ConvMaxPoolArgs a) {
  using Raw = RawTile<kC, In>;
  extern __shared__ __align__(16) unsigned char shared[];
  In* raw = reinterpret_cast<In*>(shared);
  __half* input = reinterpret_cast<__half*>(shared + Raw::kBytes);
  __half* conv = reinterpret_cast<__half*>(shared + Raw::kBytes + kInputBytes);
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
  float shifts[kC];
#pragma unroll
  for (int c = 0; c < kC; ++c) shifts[c] = shift ? shift[c] : 0.0f;

  const int tiles_h = (a.ph + kPoolRows - 1) / kPoolRows, tiles_w = (a.pw + kPoolCols - 1) / kPoolCols;
  const int64_t tiles = int64_t(a.n) * tiles_h * tiles_w;
  const int64_t elements = int64_t(a.n) * a.h * a.w * kC;
  const int64_t row_elements = int64_t(a.w) * kC;
  // The tile's first raw row and column (X' row and column (cy0, cx0) is conv output (cy0, cx0)'s first
  // tap), and the offset of the element there (negative left of the first image's first row).
  struct RawOrigin {
    int y0, x0;
    int64_t first;
  };
  const auto raw_origin = [&](int64_t tile) {
    const TileOrigin t = tile_origin(tile, tiles_h, tiles_w);
    const int cy0 = t.ph0 * kStride - a.pool_top, cx0 = t.pw0 * kStride - a.pool_left;
    const int y0 = 2 * cy0 - a.conv_top, x0 = 2 * cx0 - a.conv_left;
    return RawOrigin{y0, x0, (int64_t(t.image) * a.h + y0) * row_elements + int64_t(x0) * kC};
  };
  // Where raw row `row`'s first element sits in its first chunk (two's complement keeps the residue of a
  // negative offset).
  const int row_step_skew = static_cast<int>(row_elements & (Raw::kChunkElements - 1));
  const auto row_skew = [&](const RawOrigin& o, int row) {
    return (static_cast<int>(o.first & (Raw::kChunkElements - 1)) + row * row_step_skew) & (Raw::kChunkElements - 1);
  };
  const auto copy_raw = [&](int64_t tile) {
    const RawOrigin o = raw_origin(tile);
    for (int i = threadIdx.x; i < Raw::kRows * Raw::kRowChunks; i += kThreads) {
      const int row = i / Raw::kRowChunks, chunk = i % Raw::kRowChunks;
      const int gy = o.y0 + row;
      if (gy < 0 || gy >= a.h) continue;  // X' is zero there: never read
      const int64_t start = o.first + row * row_elements - row_skew(o, row) + chunk * Raw::kChunkElements;
      if (start < 0 || start >= elements) continue;  // before the tensor (padding) or past it
      const int64_t left = elements - start;
      const int bytes = static_cast<int>((left < Raw::kChunkElements ? left : Raw::kChunkElements) * sizeof(In));
      cp_async_zfill(raw + (row * Raw::kRowChunks + chunk) * Raw::kChunkElements, x + start, bytes);
    }
  };
  const auto build_input = [&](int64_t tile) {
    const RawOrigin o = raw_origin(tile);
    for (int pixel = threadIdx.x; pixel < kInputPixels; pixel += kThreads) {
      const int i = pixel / kInputCols, j = pixel % kInputCols;
      float v[kChannels];
#pragma unroll
      for (int ch = 4 * kC; ch < kChannels; ++ch) v[ch] = 0.0f;
#pragma unroll
      for (int py = 0; py < 2; ++py) {
        const int row = 2 * i + py, gy = o.y0 + row;
        const bool row_inside = gy >= 0 && gy < a.h;
        const In* source = raw + row * Raw::kRowElements + row_skew(o, row);
#pragma unroll
        for (int px = 0; px < 2; ++px) {
          const int gx = o.x0 + 2 * j + px;
          const bool inside = row_inside && gx >= 0 && gx < a.w;
#pragma unroll
          for (int c = 0; c < kC; ++c)
            v[(py * 2 + px) * kC + c] = inside ? load(source, (2 * j + px) * kC + c) + shifts[c] : 0.0f;
        }
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        uint4 packed;
        __half2* h = reinterpret_cast<__half2*>(&packed);
#pragma unroll
        for (int k = 0; k < 4; ++k) h[k] = __floats2half2_rn(v[half * 8 + 2 * k], v[half * 8 + 2 * k + 1]);
        *reinterpret_cast<uint4*>(input + pixel * kChannels + swizzled_half(pixel, half) * 8) = packed;
      }
    }
  };

  if (blockIdx.x < tiles) copy_raw(blockIdx.x);
  cp_async_commit();
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    // The raw rows have arrived, and every thread is done with the last tile's X' and conv outputs.
    cp_async_wait<0>();
    __syncthreads();
    build_input(tile);
    __syncthreads();  // X' complete; the raw rows free for the next tile's copy
    if (tile + gridDim.x < tiles) copy_raw(tile + gridDim.x);
    cp_async_commit();

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
          ldmatrix_x4(frag, shared_address(input + pixel * kChannels + swizzled_half(pixel, half) * 8));
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
          for (int h = 0; h < 2; ++h) {  // accumulator rows lane / 4 and lane / 4 + 8
            float v0 = c[r][nt][2 * h] + bias0, v1 = c[r][nt][2 * h + 1] + bias1;
            if (a.relu) v0 = fmaxf(v0, 0.0f), v1 = fmaxf(v1, 0.0f);
            const int pixel = r * kConvCols + segment * 16 + lane / 4 + h * 8;
            *reinterpret_cast<__half2*>(conv + pixel * kConvStride + filter0) = __floats2half2_rn(v0, v1);
          }
      }
    }
    __syncthreads();

    const TileOrigin t = tile_origin(tile, tiles_h, tiles_w);
    const int cy0 = t.ph0 * kStride - a.pool_top, cx0 = t.pw0 * kStride - a.pool_left;
    for (int i = threadIdx.x; i < kPoolRows * kPoolCols * (kFilters / 8); i += kThreads) {
      const int group = i % (kFilters / 8), pixel = i / (kFilters / 8);
      const int pr = pixel / kPoolCols, pc = pixel % kPoolCols;
      if (t.ph0 + pr >= a.ph || t.pw0 + pc >= a.pw) continue;
      __half2 m[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = __half2half2(__ushort_as_half(0xFC00));  // -infinity
#pragma unroll
      for (int dy = 0; dy < kWindow; ++dy)
#pragma unroll
        for (int dx = 0; dx < kWindow; ++dx) {
          const int cy = pr * kStride + dy, cx = pc * kStride + dx;
          if (cy0 + cy < 0 || cy0 + cy >= a.oh || cx0 + cx < 0 || cx0 + cx >= a.ow) continue;  // the pool's padding
          const uint4 v = *reinterpret_cast<const uint4*>(conv + (cy * kConvCols + cx) * kConvStride + group * 8);
          const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
          for (int j = 0; j < 4; ++j) m[j] = __hmax2(m[j], h[j]);
        }
      *reinterpret_cast<uint4*>(y + ((int64_t(t.image) * a.ph + t.ph0 + pr) * a.pw + t.pw0 + pc) * kFilters + group * 8) =
          *reinterpret_cast<const uint4*>(m);
    }
  }
}

template <int kC, typename In>
void launch(const void* x, const float* shift, const void* filter, const void* bias, void* y, const ConvMaxPoolArgs& a,
            bool short_last_row, int64_t tiles, cudaStream_t stream) {
  using Raw = RawTile<kC, In>;
  const auto kernel = short_last_row ? conv_max_pool_kernel<kC, In, true> : conv_max_pool_kernel<kC, In, false>;
  kernel<<<persistent_grid(kernel, Raw::kSharedBytes, tiles, Raw::kBlocksPerSm), kThreads, Raw::kSharedBytes, stream>>>(
      static_cast<const In*>(x), shift, static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), a);
}

}  // namespace

void launch_conv_max_pool(const void* x, DType xt, const float* shift, const void* filter, const void* bias, void* y,
                          const ConvMaxPoolArgs& a, bool short_last_row, cudaStream_t stream) {
  EASTRT_CHECK(a.c == 3 || a.c == 4, "conv/max-pool kernel: ", a.c, " input channels (it takes 3 or 4)");
  EASTRT_CHECK(reinterpret_cast<uintptr_t>(x) % 16 == 0, "conv/max-pool kernel: its input is not 16-byte aligned");
  const int64_t tiles = int64_t(a.n) * ((a.ph + kPoolRows - 1) / kPoolRows) * ((a.pw + kPoolCols - 1) / kPoolCols);
  if (tiles == 0) return;
  if (xt == DType::kF32)
    a.c == 3 ? launch<3, float>(x, shift, filter, bias, y, a, short_last_row, tiles, stream)
             : launch<4, float>(x, shift, filter, bias, y, a, short_last_row, tiles, stream);
  else
    a.c == 3 ? launch<3, __half>(x, shift, filter, bias, y, a, short_last_row, tiles, stream)
             : launch<4, __half>(x, shift, filter, bias, y, a, short_last_row, tiles, stream);
  EASTRT_LAUNCHED("conv_max_pool_kernel");
}

}  // namespace eastrt::cuda
