// What the conv/max-pool kernels share (conv_max_pool.cu with mma.sync, conv_max_pool_wgmma.cu with wgmma):
// the tile geometry, a block's persistent walk over the tiles, each tile's raw input rows copied into shared
// memory, its space-to-depth X' built there from them, and the max-pool over its conv outputs.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/conv_max_pool.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda::conv_max_pool_tiles {

constexpr int kTaps = kConvMaxPoolTaps;
constexpr int kChannels = kConvMaxPoolChannels;  // one mma K step per tap
constexpr int kFilters = kConvMaxPoolFilters;
constexpr int kK = kTaps * kTaps * kChannels;
constexpr int kWindow = kConvMaxPoolWindow, kStride = kConvMaxPoolStride;
// A tile: kPoolRows x kPoolCols pooled outputs from kConvRows x kConvCols convolution outputs, the columns in
// two mma M tiles of 16 (the last column is computed, never pooled).
constexpr int kPoolRows = 4, kPoolCols = 15;
constexpr int kConvRows = (kPoolRows - 1) * kStride + kWindow;  // 9
constexpr int kSegments = 2, kConvCols = kSegments * 16;        // 32, of which 31 are pooled
static_assert((kPoolCols - 1) * kStride + kWindow <= kConvCols);
constexpr int kInputRows = kConvRows + kTaps - 1, kInputCols = kConvCols + kTaps - 1;  // X': 12 x 35
// The two layouts of a tile in shared memory. kSwizzledPixels (the mma.sync kernel): X' 12 x 35 pixels of
// 32 bytes (their two 16-byte halves swizzled, for ldmatrix); conv outputs pixel-major, kConvStride halves a
// pixel. kChannelPlanes (the wgmma kernel): X' 12 x 36 pixels as two planes, channels 0-7 of every pixel,
// then channels 8-15, 16 bytes a pixel, so that any 8 consecutive pixels of a plane are one wgmma core
// matrix; conv outputs filter-major, flat positions (row * 36 + column) kPlaneConvStride halves a filter.
enum class InputLayout { kSwizzledPixels, kChannelPlanes };
constexpr int kPlaneCols = kInputCols + 1;  // even, so that position pairs never straddle a row
constexpr int kPlanePixels = kInputRows * kPlaneCols;
constexpr int kPlaneConvPositions = 320;  // five wgmma N tiles of 64: every row * 36 + column the pool reads
static_assert((kConvRows - 1) * kPlaneCols + kConvCols - 2 < kPlaneConvPositions);
// 648 bytes: the 8 filters x 4 position pairs of one wgmma store hit each bank at most twice, the 32 filters
// of one pool load (8 bytes each) spread over the banks evenly.
constexpr int kPlaneConvStride = kPlaneConvPositions + 4;
constexpr int kConvStride = kFilters + 8;  // halves per conv pixel in shared memory: conflict-free stores
constexpr int kBlockThreads = 128;
constexpr size_t kInputBytes = size_t(kPlanePixels) * kChannels * sizeof(__half);  // either layout
static_assert(kPlanePixels % 8 == 0);
constexpr size_t kConvBytes = size_t(kConvRows) * kConvCols * kConvStride * sizeof(__half);  // either layout
static_assert(kConvBytes >= size_t(kFilters) * kPlaneConvStride * sizeof(__half));

inline int64_t tile_count(const ConvMaxPoolArgs& a) {
  return int64_t(a.n) * ((a.ph + kPoolRows - 1) / kPoolRows) * ((a.pw + kPoolCols - 1) / kPoolCols);
}

// The raw input a tile's X' comes from: 2 x 12 rows of 2 x kCols pixels (X''s columns: 35, or 36 in the
// kChannelPlanes layout), each row copied as the 16-byte chunks that cover it (one more than its length
// needs, since it starts anywhere in a chunk). Shared memory: the raw rows, X', the conv outputs, then
// `extra` bytes of the kernel's own.
template <int kC, typename In, int kCols = kInputCols>
struct RawTile {
  static constexpr int kRows = 2 * kInputRows, kPixels = 2 * kCols;
  static constexpr int kChunkElements = 16 / sizeof(In);
  static constexpr int kRowChunks = (kPixels * kC + kChunkElements - 1) / kChunkElements + 1;
  static constexpr int kRowElements = kRowChunks * kChunkElements;
  static constexpr size_t kBytes = size_t(kRows) * kRowChunks * 16;
  __host__ __device__ static constexpr size_t shared_bytes(size_t extra = 0) { return kBytes + kInputBytes + kConvBytes + extra; }
  // Blocks an SM whose shared memory fits (of the 228 KB an SM has on sm_90, 1 KB a block reserved).
  __host__ __device__ static constexpr int blocks_per_sm(size_t extra = 0, int most = 3) {
    int blocks = most;
    while (blocks > 1 && (shared_bytes(extra) + 1024) * blocks > 233472) --blocks;
    return blocks;
  }
};

// -infinity in both halves: where a max starts, and the floor of a convolution without ReLU.
__device__ __forceinline__ __half2 lowest_half2() { return __half2half2(__ushort_as_half(0xFC00)); }

// X' pixels are 32 bytes, two 16-byte halves; consecutive pixels swap halves in groups of four so that an
// ldmatrix of any 8 consecutive pixels' same half hits 8 distinct bank groups.
__device__ __forceinline__ int swizzled_half(int pixel, int half) { return half ^ ((pixel >> 2) & 1); }

struct TileOrigin {
  int image, ph0, pw0;
};

// One block's tiles and its shared memory: raw rows, X' and the conv outputs, in kLayout.
template <int kC, typename In, InputLayout kLayout = InputLayout::kSwizzledPixels>
struct Tiles {
  static constexpr bool kPlanes = kLayout == InputLayout::kChannelPlanes;
  static constexpr int kCols = kPlanes ? kPlaneCols : kInputCols, kPixels = kInputRows * kCols;  // X'
  using Raw = RawTile<kC, In, kCols>;
  const In* x;
  ConvMaxPoolArgs a;
  In* raw;
  __half* input;
  __half* conv;
  float shifts[kC];
  int tiles_h, tiles_w, row_step_skew;
  int64_t tiles, elements, row_elements;

  __device__ Tiles(const In* x_, const float* shift, const ConvMaxPoolArgs& a_, unsigned char* shared)
      : x(x_), a(a_), raw(reinterpret_cast<In*>(shared)), input(reinterpret_cast<__half*>(shared + Raw::kBytes)),
        conv(reinterpret_cast<__half*>(shared + Raw::kBytes + kInputBytes)) {
#pragma unroll
    for (int c = 0; c < kC; ++c) shifts[c] = shift ? shift[c] : 0.0f;
    tiles_h = (a.ph + kPoolRows - 1) / kPoolRows, tiles_w = (a.pw + kPoolCols - 1) / kPoolCols;
    tiles = int64_t(a.n) * tiles_h * tiles_w;
    elements = int64_t(a.n) * a.h * a.w * kC;
    row_elements = int64_t(a.w) * kC;
    row_step_skew = static_cast<int>(row_elements & (Raw::kChunkElements - 1));
  }

  __device__ TileOrigin origin(int64_t tile) const {
    const int image = static_cast<int>(tile / (int64_t(tiles_h) * tiles_w));
    const int rest = static_cast<int>(tile % (int64_t(tiles_h) * tiles_w));
    return {image, rest / tiles_w * kPoolRows, rest % tiles_w * kPoolCols};
  }

  // The tile's first raw row and column (X' row and column (cy0, cx0) is conv output (cy0, cx0)'s first
  // tap), and the offset of the element there (negative left of the first image's first row).
  struct RawOrigin {
    int y0, x0;
    int64_t first;
  };
  __device__ RawOrigin raw_origin(int64_t tile) const {
    const TileOrigin t = origin(tile);
    const int cy0 = t.ph0 * kStride - a.pool_top, cx0 = t.pw0 * kStride - a.pool_left;
    const int y0 = 2 * cy0 - a.conv_top, x0 = 2 * cx0 - a.conv_left;
    return RawOrigin{y0, x0, (int64_t(t.image) * a.h + y0) * row_elements + int64_t(x0) * kC};
  }
  // Where raw row `row`'s first element sits in its first chunk (two's complement keeps the residue of a
  // negative offset).
  __device__ int row_skew(const RawOrigin& o, int row) const {
    return (static_cast<int>(o.first & (Raw::kChunkElements - 1)) + row * row_step_skew) & (Raw::kChunkElements - 1);
  }

  __device__ void copy_raw(int64_t tile) const {
    const RawOrigin o = raw_origin(tile);
    for (int i = threadIdx.x; i < Raw::kRows * Raw::kRowChunks; i += kBlockThreads) {
      const int row = i / Raw::kRowChunks, chunk = i % Raw::kRowChunks;
      const int gy = o.y0 + row;
      if (gy < 0 || gy >= a.h) continue;  // X' is zero there: never read
      const int64_t start = o.first + row * row_elements - row_skew(o, row) + chunk * Raw::kChunkElements;
      if (start < 0 || start >= elements) continue;  // before the tensor (padding) or past it
      const int64_t left = elements - start;
      const int bytes = static_cast<int>((left < Raw::kChunkElements ? left : Raw::kChunkElements) * sizeof(In));
      cp_async_zfill(raw + (row * Raw::kRowChunks + chunk) * Raw::kChunkElements, x + start, bytes);
    }
  }

  // X'[i, j, (py * 2 + px) * C + c] = x[2i + py - conv_top, 2j + px - conv_left, c] + shift[c], zero outside
  // x and past 4C.
  __device__ void build_input(int64_t tile) const {
    const RawOrigin o = raw_origin(tile);
    for (int pixel = threadIdx.x; pixel < kPixels; pixel += kBlockThreads) {
      const int i = pixel / kCols, j = pixel % kCols;
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
        *reinterpret_cast<uint4*>(kPlanes ? input + (half * kPlanePixels + pixel) * 8
                                      : input + pixel * kChannels + swizzled_half(pixel, half) * 8) = packed;
      }
    }
  }

  // Conv output (row, column) of the tile, filters `filter0` and + 1, with the bias and ReLU applied, into
  // shared memory as the separate convolution would write them (FP16).
  __device__ void store_conv(int row, int column, int filter0, float v0, float v1, float bias0, float bias1) const {
    v0 += bias0, v1 += bias1;
    if (a.relu) v0 = fmaxf(v0, 0.0f), v1 = fmaxf(v1, 0.0f);
    *reinterpret_cast<__half2*>(conv + (row * kConvCols + column) * kConvStride + filter0) = __floats2half2_rn(v0, v1);
  }

  // kChannelPlanes: where filter f's conv output at flat position p sits in `conv` (halves).
  __device__ static int conv_offset(int f, int p) { return f * kPlaneConvStride + p; }

  // Each pooled output of the tile: the max over its window's conv outputs inside the image.
  __device__ void pool(int64_t tile, __half* y) const {
    if constexpr (kPlanes) {
      pool_filter_major(tile, y);
      return;
    }
    const TileOrigin t = origin(tile);
    const int cy0 = t.ph0 * kStride - a.pool_top, cx0 = t.pw0 * kStride - a.pool_left;
    for (int i = threadIdx.x; i < kPoolRows * kPoolCols * (kFilters / 8); i += kBlockThreads) {
      const int group = i % (kFilters / 8), pixel = i / (kFilters / 8);
      const int pr = pixel / kPoolCols, pc = pixel % kPoolCols;
      if (t.ph0 + pr >= a.ph || t.pw0 + pc >= a.pw) continue;
      __half2 m[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = lowest_half2();
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

  // kChannelPlanes: a thread a pair of filters and a pooled row at a time (128 of them a tile): each
  // filter's three conv rows of 32 columns read 4 values at once and their max taken down the rows in pairs
  // of columns, then the two filters' columns interleaved so that the max across them serves both, and both
  // pooled values stored at once.
  __device__ void pool_filter_major(int64_t tile, __half* y) const {
    const TileOrigin t = origin(tile);
    const int cy0 = t.ph0 * kStride - a.pool_top, cx0 = t.pw0 * kStride - a.pool_left;
    const __half2 lowest = lowest_half2();
    const bool edge = cx0 < 0 || cx0 + kConvCols > a.ow;            // columns outside the conv output to mask
    const int cols = a.pw - t.pw0 < kPoolCols ? a.pw - t.pw0 : kPoolCols;
    for (int i = threadIdx.x; i < kFilters / 2 * kPoolRows; i += kBlockThreads) {
      const int f = i % (kFilters / 2) * 2, pr = i / (kFilters / 2);
      if (t.ph0 + pr >= a.ph) continue;
      __half2 m[2][kConvCols / 2];  // filter f + k: columns 2c and 2c + 1
#pragma unroll
      for (int k = 0; k < 2; ++k)
#pragma unroll
        for (int c = 0; c < kConvCols / 2; ++c) m[k][c] = lowest;
#pragma unroll
      for (int dy = 0; dy < kWindow; ++dy) {
        const int cy = pr * kStride + dy;
        if (cy0 + cy < 0 || cy0 + cy >= a.oh) continue;  // the pool's padding
#pragma unroll
        for (int k = 0; k < 2; ++k)
#pragma unroll
          for (int g = 0; g < kConvCols / 4; ++g) {
            const uint2 v = *reinterpret_cast<const uint2*>(conv + conv_offset(f + k, cy * kPlaneCols + 4 * g));
            const __half2* h = reinterpret_cast<const __half2*>(&v);
            m[k][2 * g] = __hmax2(m[k][2 * g], h[0]), m[k][2 * g + 1] = __hmax2(m[k][2 * g + 1], h[1]);
          }
      }
      if (edge) {
#pragma unroll
        for (int c = 0; c < kConvCols; ++c)
          if (cx0 + c < 0 || cx0 + c >= a.ow) {
#pragma unroll
            for (int k = 0; k < 2; ++k) {
              if (c % 2)
                m[k][c / 2].y = lowest.y;
              else
                m[k][c / 2].x = lowest.x;
            }
          }
      }
      // even[c] = (filter f, filter f + 1) at column 2c, odd[c] the same at 2c + 1.
      __half2 even[kConvCols / 2], odd[kConvCols / 2];
#pragma unroll
      for (int c = 0; c < kConvCols / 2; ++c)
        even[c] = __lows2half2(m[0][c], m[1][c]), odd[c] = __highs2half2(m[0][c], m[1][c]);
      __half* out = y + ((int64_t(t.image) * a.ph + t.ph0 + pr) * a.pw + t.pw0) * kFilters + f;
#pragma unroll
      for (int pc = 0; pc < kPoolCols; ++pc) {  // conv columns 2pc, 2pc + 1, 2pc + 2
        if (pc >= cols) break;
        *reinterpret_cast<__half2*>(out + int64_t(pc) * kFilters) = __hmax2(__hmax2(even[pc], odd[pc]), even[pc + 1]);
      }
    }
  }

  // The block's persistent walk: blockIdx.x, then every gridDim.x-th tile. The next tile's raw rows are
  // copied while this one computes; `convolve(tile)` reads X' and writes every conv output of the tile
  // (store_conv), then the tile is pooled into y.
  template <typename Convolve>
  __device__ void for_each_tile(__half* y, const Convolve& convolve) const {
    if (blockIdx.x < tiles) copy_raw(blockIdx.x);
    cp_async_commit();
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      // The raw rows have arrived, and every thread is done with the last tile's X' and conv outputs.
      cp_async_wait<0>();
      __syncthreads();
      build_input(tile);
      fence_proxy_async_shared();  // for wgmma, which reads X' through the async proxy (a no-op below sm_90a)
      __syncthreads();             // X' complete; the raw rows free for the next tile's copy
      if (tile + gridDim.x < tiles) copy_raw(tile + gridDim.x);
      cp_async_commit();
      convolve(tile);
      __syncthreads();
      pool(tile, y);
    }
  }
};

}  // namespace eastrt::cuda::conv_max_pool_tiles
