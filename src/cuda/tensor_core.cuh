// The PTX pieces our tensor-core kernels share (conv_quant.cu, conv_max_pool.cu, conv_tensor_core.cu):
// cp.async copies into shared memory, ldmatrix, and the FP16 mma.sync shapes. sm_80 and later; on older
// targets the copies compile to nothing and the mma to a trap (the host code never launches them there).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_check.h"

namespace eastrt::cuda {

// 16 bytes from global to shared memory without passing through registers; `copy` false reads nothing and
// fills the 16 bytes with zeros (padding, everything out of range).
__device__ __forceinline__ void cp_async_16(void* shared, const void* global, bool copy) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(copy ? 16 : 0)
               : "memory");
#endif
}

// The first `bytes` (0 to 16) of 16 from global to shared memory, the rest of the 16 zeros; the global
// address is 16-byte aligned even where fewer bytes are read (the end of a tensor).
__device__ __forceinline__ void cp_async_zfill(void* shared, const void* global, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(bytes) : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

// Four 8x8 b16 matrices from shared memory (a shared-window address): lanes 8j .. 8j + 7 give the rows of
// matrix j, and r[j] holds lane l's part of it (row l / 4, columns 2 (l % 4), + 1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
#endif
}

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// D += A·B for one 16x8x16 FP16 tile, float32 accumulators. g = lane / 4, t = lane % 4: a[0] A row g,
// columns 2t, 2t+1; a[1] row g + 8; a[2], a[3] the same at columns 8 + 2t; b0 B column g, rows 2t, 2t+1,
// b1 rows 8 + 2t; c[0], c[1] row g, columns 2t, 2t+1; c[2], c[3] row g + 8.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();
#endif
}

// The 16x8x8 shape: a0, a1 and b0 as a[0], a[1] and b0 above (K columns 0-7 only).
__device__ __forceinline__ void mma_1688(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(b0));
#else
  __trap();
#endif
}

// Shared memory written by ordinary stores or cp.async is read by wgmma through the async proxy: each
// writing thread fences before the barrier that publishes the stores (a no-op below sm_90a).
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The grid of a persistent kernel (double_buffered_tiles): `per_sm` blocks on every SM of the current
// device, no more than there are tiles; the kernel's dynamic shared memory allowed first.
template <typename Kernel>
int persistent_grid(Kernel* kernel, size_t shared_bytes, int64_t tiles, int per_sm) {
  int device = 0, sms = 0;
  EASTRT_CUDA(cudaGetDevice(&device));
  EASTRT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  EASTRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)));
  return static_cast<int>(std::min<int64_t>(tiles, int64_t(sms) * per_sm));
}

// A persistent block's tiles (blockIdx.x, then every gridDim.x-th below `tiles`), each next tile's input
// copied by cp.async while this one computes: load(tile, buffer) issues the copies of a tile's input into
// shared buffer 0 or 1; compute(tile, buffer) starts after a barrier that makes its tile's copy visible to
// the whole block and must pass a barrier after its last read of the buffer (the next copy goes into it).
// kWgmmaReads: compute reads the buffers with wgmma (each thread fences its copies for the async proxy).
template <bool kWgmmaReads = false, typename Load, typename Compute>
__device__ __forceinline__ void double_buffered_tiles(int64_t tiles, const Load& load, const Compute& compute) {
  if (blockIdx.x < tiles) load(int64_t(blockIdx.x), 0);
  cp_async_commit();
  int buffer = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, buffer ^= 1) {
    if (tile + gridDim.x < tiles) load(tile + gridDim.x, buffer ^ 1);
    cp_async_commit();
    cp_async_wait<1>();  // this tile's input has landed (the next one's may still be in flight)
    if constexpr (kWgmmaReads) fence_proxy_async_shared();
    __syncthreads();
    compute(tile, buffer);
  }
  cp_async_wait<0>();
}

}  // namespace eastrt::cuda
