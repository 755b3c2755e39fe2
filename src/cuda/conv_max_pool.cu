// EAST's conv1 and pool1 as one FP16 tensor-core kernel: the 4x4 stride-1 convolution of the 16-channel
// space-to-depth X' (space_to_depth.h) and the 3x3/2 max-pool over its output, which never leaves the chip.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "cuda/conv_max_pool.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

constexpr int kTaps = kConvMaxPoolTaps;
constexpr int kChannels = kConvMaxPoolChannels;  // one mma K step per tap
constexpr int kFilters = kConvMaxPoolFilters;    // 4 warps of 16
constexpr int kK = kTaps * kTaps * kChannels;
constexpr int kPoolRows = 4, kPoolCols = 8;  // pooled outputs per tile
constexpr int kWindow = kConvMaxPoolWindow, kStride = kConvMaxPoolStride;
constexpr int kConvRows = (kPoolRows - 1) * kStride + kWindow;  // 9
constexpr int kConvCols = (kPoolCols - 1) * kStride + kWindow;  // 17
constexpr int kConvPixels = kConvRows * kConvCols;              // 153, in 10 mma M tiles of 16
constexpr int kMTiles = (kConvPixels + 15) / 16;
constexpr int kInputRows = kConvRows + kTaps - 1, kInputCols = kConvCols + kTaps - 1;
constexpr int kInputPixels = kInputRows * kInputCols;
constexpr int kConvStride = kFilters + 8;  // floats per conv pixel in shared memory: 64-bit stores without conflicts
constexpr int kThreads = 128;
constexpr size_t kSharedBytes = size_t(kInputPixels) * kChannels * sizeof(__half) + size_t(kConvPixels) * kConvStride * sizeof(float);

// X' pixels are 32 bytes, two 16-byte halves; consecutive pixels swap halves in groups of four so that an
// ldmatrix of 8 consecutive pixels' same half hits 8 distinct bank groups.
__device__ __forceinline__ int swizzled_half(int pixel, int half) { return half ^ ((pixel >> 2) & 1); }

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&a)[4], const void* shared) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(address));
}

// A persistent grid over tiles of kPoolRows x kPoolCols pooled outputs of one image. Per tile: X' rows and
// columns of the tile's conv outputs into shared memory, the conv outputs (float32 accumulators, each warp
// 16 filters with its filter fragments held in registers for the whole grid) into shared memory, then each
// pooled output's max over its window's conv outputs inside the image, plus the bias, ReLU, rounded once.
// Bias and ReLU after the max equal them before it (both are monotone), and so does the one rounding.
__global__ void __launch_bounds__(kThreads, 4)
    conv_max_pool_kernel(const __half* __restrict__ xs, const __half* __restrict__ filter,
                         const __half* __restrict__ bias, __half* __restrict__ y, int n, int oh, int ow, int ph,
                         int pw, int top, int left, bool relu) {
  extern __shared__ __align__(16) unsigned char shared[];
  __half* input = reinterpret_cast<__half*>(shared);
  float* conv = reinterpret_cast<float*>(shared + size_t(kInputPixels) * kChannels * sizeof(__half));
  const int xh = oh + kTaps - 1, xw = ow + kTaps - 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // B fragments (K x N column-major = the KRSC filter's rows) of this warp's two n tiles, every K step.
  uint32_t b[kTaps * kTaps][2][2];
#pragma unroll
  for (int step = 0; step < kTaps * kTaps; ++step)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const __half* row = filter + size_t(warp * 16 + nt * 8 + lane / 4) * kK + step * kChannels + (lane % 4) * 2;
      b[step][nt][0] = *reinterpret_cast<const uint32_t*>(row);
      b[step][nt][1] = *reinterpret_cast<const uint32_t*>(row + 8);
    }

  const int tiles_h = (ph + kPoolRows - 1) / kPoolRows, tiles_w = (pw + kPoolCols - 1) / kPoolCols;
  const int64_t tiles = int64_t(n) * tiles_h * tiles_w;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int image = static_cast<int>(tile / (int64_t(tiles_h) * tiles_w));
    const int rest = static_cast<int>(tile % (int64_t(tiles_h) * tiles_w));
    const int ph0 = rest / tiles_w * kPoolRows, pw0 = rest % tiles_w * kPoolCols;
    const int cy0 = ph0 * kStride - top, cx0 = pw0 * kStride - left;  // conv output (and X') origin

    for (int i = threadIdx.x; i < kInputPixels * 2; i += kThreads) {
      const int pixel = i / 2, half = i % 2;
      const int gy = cy0 + pixel / kInputCols, gx = cx0 + pixel % kInputCols;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (gy >= 0 && gy < xh && gx >= 0 && gx < xw)
        v = __ldg(reinterpret_cast<const uint4*>(xs + ((int64_t(image) * xh + gy) * xw + gx) * kChannels + half * 8));
      *reinterpret_cast<uint4*>(input + pixel * kChannels + swizzled_half(pixel, half) * 8) = v;
    }
    __syncthreads();

#pragma unroll 1
    for (int mt = 0; mt < kMTiles; ++mt) {
      float c[2][4] = {};
      // This lane's ldmatrix row: matrices 0-3 are rows 0-7 / 8-15 of K halves 0 / 1.
      const int q = min(mt * 16 + lane % 8 + (lane / 8) % 2 * 8, kConvPixels - 1);
      const int half = lane / 16;
      const int py = q / kConvCols, px = q % kConvCols;
#pragma unroll
      for (int step = 0; step < kTaps * kTaps; ++step) {
        const int pixel = (py + step / kTaps) * kInputCols + px + step % kTaps;
        uint32_t a[4];
        ldmatrix_x4(a, input + pixel * kChannels + swizzled_half(pixel, half) * 8);
        mma_16816(c[0], a, b[step][0][0], b[step][0][1]);
        mma_16816(c[1], a, b[step][1][0], b[step][1][1]);
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int col = warp * 16 + nt * 8 + (lane % 4) * 2;
        const int r0 = mt * 16 + lane / 4, r1 = r0 + 8;
        if (r0 < kConvPixels) *reinterpret_cast<float2*>(conv + r0 * kConvStride + col) = make_float2(c[nt][0], c[nt][1]);
        if (r1 < kConvPixels) *reinterpret_cast<float2*>(conv + r1 * kConvStride + col) = make_float2(c[nt][2], c[nt][3]);
      }
    }
    __syncthreads();

    for (int i = threadIdx.x; i < kPoolRows * kPoolCols * (kFilters / 8); i += kThreads) {
      const int group = i % (kFilters / 8), pixel = i / (kFilters / 8);
      const int pr = pixel / kPoolCols, pc = pixel % kPoolCols;
      if (ph0 + pr >= ph || pw0 + pc >= pw) continue;
      float m[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) m[j] = -FLT_MAX;
#pragma unroll
      for (int dy = 0; dy < kWindow; ++dy)
#pragma unroll
        for (int dx = 0; dx < kWindow; ++dx) {
          const int cy = pr * kStride + dy, cx = pc * kStride + dx;
          if (cy0 + cy < 0 || cy0 + cy >= oh || cx0 + cx < 0 || cx0 + cx >= ow) continue;  // the pool's padding
          const float* v = conv + (cy * kConvCols + cx) * kConvStride + group * 8;
          const float4 lo = *reinterpret_cast<const float4*>(v), hi = *reinterpret_cast<const float4*>(v + 4);
          m[0] = fmaxf(m[0], lo.x), m[1] = fmaxf(m[1], lo.y), m[2] = fmaxf(m[2], lo.z), m[3] = fmaxf(m[3], lo.w);
          m[4] = fmaxf(m[4], hi.x), m[5] = fmaxf(m[5], hi.y), m[6] = fmaxf(m[6], hi.z), m[7] = fmaxf(m[7], hi.w);
        }
      __align__(16) __half out[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float v = m[j] + (bias ? __half2float(bias[group * 8 + j]) : 0.0f);
        if (relu) v = fmaxf(v, 0.0f);
        out[j] = __float2half_rn(v);
      }
      *reinterpret_cast<uint4*>(y + ((int64_t(image) * ph + ph0 + pr) * pw + pw0 + pc) * kFilters + group * 8) =
          *reinterpret_cast<const uint4*>(out);
    }
    __syncthreads();  // the next tile overwrites both shared arrays
  }
}

}  // namespace

void launch_conv_max_pool(const void* xs, const void* filter, const void* bias, void* y, int n, int oh, int ow, int ph,
                          int pw, int top, int left, bool relu, cudaStream_t stream) {
  const int64_t tiles = int64_t(n) * ((ph + kPoolRows - 1) / kPoolRows) * ((pw + kPoolCols - 1) / kPoolCols);
  if (tiles == 0) return;
  int device = 0, sms = 0;
  EASTRT_CUDA(cudaGetDevice(&device));
  EASTRT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  EASTRT_CUDA(cudaFuncSetAttribute(conv_max_pool_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(kSharedBytes)));
  const int blocks = static_cast<int>(std::min<int64_t>(tiles, int64_t(sms) * 4));
  conv_max_pool_kernel<<<blocks, kThreads, kSharedBytes, stream>>>(
      static_cast<const __half*>(xs), static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), n, oh, ow, ph, pw, top, left, relu);
  EASTRT_LAUNCHED("conv_max_pool_kernel");
}

}  // namespace eastrt::cuda
