// The wgmma FP16 GEMM (gemm_wgmma.h), compiled for sm_90a alone (CMakeLists.txt). Correct first: one
// warpgroup a 64x64 tile of C, A's and B's 64x64 slices of K stored in the canonical no-swizzle K-major
// layout by ordinary 16-byte stores, four m64n64k16 products a slice; no pipelining yet.
#include "cuda/gemm_wgmma.h"

#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

constexpr int kTile = 64;  // M, N and the K slice
constexpr int kBlockThreads = 128;
// A [64][64] slice as 8x8 core matrices: row group r (rows 8r..8r+7) and K group g (values 8g..8g+7) at
// ((r * 8) + g) * 64 values, row i of it 8 values in: K groups 128 bytes apart (LBO), row groups 1024 (SBO).
constexpr uint32_t kLbo = 128, kSbo = 1024;

__device__ __forceinline__ int core_offset(int row, int group) { return ((row / 8) * 8 + group) * 64 + (row % 8) * 8; }

__global__ void __launch_bounds__(kBlockThreads) wgmma_gemm_kernel(const __half* __restrict__ a, const __half* __restrict__ b,
                                                              const __half* __restrict__ bias, __half* __restrict__ c,
                                                              int m, int n, int k) {
  __shared__ __align__(128) __half sa[kTile * kTile];
  __shared__ __align__(128) __half sb[kTile * kTile];
  const int m0 = blockIdx.x * kTile, n0 = blockIdx.y * kTile;
  float d[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) d[i] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += kTile) {
    for (int i = threadIdx.x; i < kTile * kTile / 8; i += kBlockThreads) {
      const int row = i / (kTile / 8), group = i % (kTile / 8);
      *reinterpret_cast<uint4*>(sa + core_offset(row, group)) =
          *reinterpret_cast<const uint4*>(a + int64_t(m0 + row) * k + k0 + group * 8);
      *reinterpret_cast<uint4*>(sb + core_offset(row, group)) =
          *reinterpret_cast<const uint4*>(b + int64_t(n0 + row) * k + k0 + group * 8);
    }
    fence_proxy_async_shared();
    __syncthreads();
    wgmma_fence();
#pragma unroll
    for (int step = 0; step < kTile / 16; ++step)  // 16 values of K: two core matrices along K
      wgmma_m64n64k16(d, wgmma_descriptor(sa + step * 2 * 64, kLbo, kSbo), wgmma_descriptor(sb + step * 2 * 64, kLbo, kSbo));
    wgmma_commit();
    wgmma_wait<0>();
    __syncthreads();  // every product has read the slice before the next one is stored
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = m0 + warp * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int col = n0 + j * 8 + (lane % 4) * 2;
    const float b0 = bias ? __half2float(bias[col]) : 0.0f, b1 = bias ? __half2float(bias[col + 1]) : 0.0f;
    *reinterpret_cast<__half2*>(c + int64_t(row) * n + col) = __floats2half2_rn(d[4 * j] + b0, d[4 * j + 1] + b1);
    *reinterpret_cast<__half2*>(c + int64_t(row + 8) * n + col) =
        __floats2half2_rn(d[4 * j + 2] + b0, d[4 * j + 3] + b1);
  }
}

}  // namespace

bool wgmma_gemm_fits(int m, int n, int k) {
  return m > 0 && n > 0 && k > 0 && m % kTile == 0 && n % kTile == 0 && k % kTile == 0 && n / kTile <= 65535;
}

void run_wgmma_gemm(const void* a, const void* b, const void* bias, void* c, int m, int n, int k,
                    cudaStream_t stream) {
  EASTRT_CHECK(wgmma_gemm_fits(m, n, k), "wgmma GEMM: ", m, "x", k, " times ", k, "x", n,
               ": m, n and k must be multiples of ", kTile);
  EASTRT_CHECK(a && b && c && aligned_to(a, 16) && aligned_to(b, 16) && aligned_to(c, 16), "wgmma GEMM: its operands must be 16-byte aligned");
  require_sm90a("wgmma GEMM");
  wgmma_gemm_kernel<<<dim3(m / kTile, n / kTile), kBlockThreads, 0, stream>>>(
      static_cast<const __half*>(a), static_cast<const __half*>(b), static_cast<const __half*>(bias),
      static_cast<__half*>(c), m, n, k);
  EASTRT_LAUNCHED("wgmma_gemm_kernel");
}

}  // namespace eastrt::cuda
