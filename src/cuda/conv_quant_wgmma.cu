// The quantised convolution of conv_quant.h on Hopper's warpgroup MMA (sm_90a alone, CMakeLists.txt): the
// implicit GEMM of conv_quant.cu, with its stage copies and epilogue (conv_quant_kernel.cuh), but the products
// are wgmma m64nBNk32 reading both operands by descriptor from shared memory instead of mma.sync fed by
// ldmatrix. A block is two warpgroups: 128 output pixels (64 each) by BN filters (64 or 128). A stage is 64
// channels of one filter tap in wgmma's K-major layout without swizzling — 8 rows of 16 bytes contiguous (a
// core matrix), the stage's four 16-byte K groups 128 bytes apart, 8-row groups 512 — and four stages go
// round a ring: two in flight while one is multiplied and the products of the one before drain.
#include <cuda_fp16.h>

#include <type_traits>

#include "cuda/conv_quant_kernel.cuh"
#include "cuda/cuda_check.h"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

using namespace quant_kernel;

constexpr int kBM = 128, kKS = 64, kBlockThreads = 256, kStages = 4;
constexpr uint32_t kLbo = 128, kSbo = kKS / 16 * 128;
static_assert(kKS % 32 == 0 && kKS / 16 == 4, "the copies' lane mapping covers 4 K groups");

template <int BN>
constexpr int kStageBytes = (kBM + BN) * kKS;
template <int BN>
constexpr int shared_bytes() {
  return kStages * kStageBytes<BN> > staging_bytes<kBM, BN>() ? kStages * kStageBytes<BN> : staging_bytes<kBM, BN>();
}
// 64 accumulators a thread at BN 128 leave room for two blocks an SM, 32 at BN 64 for three.
template <int BN>
constexpr int kBlocksPerSm = BN == 128 ? 2 : 3;

// Where bytes 16 · copy .. + 15 of a stage's row `row` go: row group row / 8, K group `copy`, row row % 8 of it.
__device__ __forceinline__ int core_offset(int row, int copy) { return (row / 8) * kSbo + copy * kLbo + (row % 8) * 16; }

template <int BN, typename Acc>
__device__ __forceinline__ void product(Acc (&d)[BN / 2], uint64_t a, uint64_t b, bool accumulate) {
  if constexpr (BN == 128) wgmma_m64n128k32(d, a, b, accumulate);
  else wgmma_m64n64k32(d, a, b, accumulate);
}

template <int BN, bool kFp8>
__global__ void __launch_bounds__(kBlockThreads, kBlocksPerSm<BN>)
    quant_conv_wgmma_kernel(const QuantConvArgs a, const int flags) {
  using Acc = std::conditional_t<kFp8, float, int>;
  static_assert(BN == 64 || BN == 128, "wgmma N of the block");
  extern __shared__ __align__(128) uint8_t shared[];
  // The filter blocks of one pixel block are consecutive blocks, so that its A rows come from L2 after the first.
  const int n_blocks = (a.k + BN - 1) / BN;
  const int64_t block_m = int64_t(blockIdx.x / n_blocks) * kBM;
  const int block_n = static_cast<int>(blockIdx.x % n_blocks) * BN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // A warp copies 8 rows by the 4 K groups: 512 contiguous bytes of the stage, every 16-byte bank group once
  // per 128 bytes.
  const QuantStages<kBM, BN, kKS, kBlockThreads> stages(a, block_m, block_n, lane / 8, warp * 8 + lane % 8);
  const auto load_stage = [&](int stage, int step) {
    uint8_t* sa = shared + stage * kStageBytes<BN>;
    stages.load(sa, sa + kBM * kKS, step, core_offset);
  };

  const int group = warp / 4;  // the warpgroup: A rows 64 · group .. + 63
  Acc d[BN / 2];  // the first product writes them (see wgmma_m64n64k32)

  // One cp.async group committed a step (empty past the end): at step `step` its copies are complete when
  // at most one group is pending.
  const int steps = stages.steps;
#pragma unroll
  for (int s = 0; s < kStages - 2; ++s) {
    if (s < steps) load_stage(s, s);
    cp_async_commit();
  }
  for (int step = 0; step < steps; ++step) {
    const int stage = step % kStages;
    cp_async_wait<kStages - 3>();
    fence_proxy_async_shared();  // the copies (generic proxy) visible to wgmma's reads (async proxy)
    // Stage `step` complete for every thread; every warpgroup is past its wait for step − 2's products, so
    // that stage can be refilled below.
    __syncthreads();
    const uint8_t* sa = shared + stage * kStageBytes<BN>;
    const uint64_t da = wgmma_descriptor(sa + group * 8 * kSbo, kLbo, kSbo);
    const uint64_t db = wgmma_descriptor(sa + kBM * kKS, kLbo, kSbo);
    wgmma_fence_operands(d);
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kKS / 32; ++k)
      product<BN>(d, da + k * (2 * kLbo >> 4), db + k * (2 * kLbo >> 4), step > 0 || k > 0);
    wgmma_commit();
    wgmma_fence_operands(d);
    const int next = step + kStages - 2;
    if (next < steps) load_stage(next % kStages, next);
    cp_async_commit();
    wgmma_wait<1>();
  }
  wgmma_wait<0>();
  wgmma_fence_operands(d);
  cp_async_wait<0>();
  __syncthreads();  // every product has read its stages: the ring takes the staged tile

  Acc* staged = reinterpret_cast<Acc*>(shared);
  const int row = group * 64 + (warp % 4) * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
    stage_quad<BN>(staged, row, 8 * j + 2 * (lane % 4), d[4 * j], d[4 * j + 1], d[4 * j + 2], d[4 * j + 3]);
  __syncthreads();
  quant_epilogue<kBM, BN, kBlockThreads, kFp8>(a, flags, staged, block_m, block_n);
}

template <int BN, bool kFp8>
void launch(const QuantConvArgs& a, int flags, cudaStream_t stream) {
  constexpr int bytes = shared_bytes<BN>();
  const auto kernel = quant_conv_wgmma_kernel<BN, kFp8>;
  // Asked every launch, as the attribute is the current device's (above 48 KiB a kernel must ask).
  EASTRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const int64_t blocks = (pixels + kBM - 1) / kBM * ((a.k + BN - 1) / BN);
  EASTRT_CHECK(blocks < (int64_t(1) << 31), "quantised convolution on wgmma: ", blocks, " blocks is too many for the grid");
  kernel<<<static_cast<unsigned>(blocks), kBlockThreads, bytes, stream>>>(a, flags);
}

}  // namespace

void launch_quant_conv_wgmma(const QuantConvArgs& a, int bn, int flags, cudaStream_t stream) {
  EASTRT_CHECK(bn == 64 || bn == 128, "quantised convolution on wgmma: a tile of ", bn, " filters (it takes 64 or 128)");
  require_sm90a("quantised convolution on wgmma");
  const bool fp8 = a.in_type == QType::kE4m3;
  if (bn == 128) fp8 ? launch<128, true>(a, flags, stream) : launch<128, false>(a, flags, stream);
  else fp8 ? launch<64, true>(a, flags, stream) : launch<64, false>(a, flags, stream);
  EASTRT_LAUNCHED("quant_conv_wgmma_kernel");
}

}  // namespace eastrt::cuda
