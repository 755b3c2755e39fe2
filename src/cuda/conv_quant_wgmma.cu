// The INT8 convolution of conv_quant.h on Hopper's warpgroup MMA (sm_90a alone, CMakeLists.txt): the
// implicit GEMM of conv_quant.cu, with its stage copies and epilogue (conv_quant_kernel.cuh), but the products
// are wgmma m64nBNk32 reading both operands by descriptor from shared memory instead of mma.sync fed by
// ldmatrix. A block is two warpgroups: tiles of 128 output pixels (64 each) by BN filters (64 or 128). A stage
// is 64 channels of one filter tap in wgmma's K-major layout without swizzling — 8 rows of 16 bytes
// contiguous (a core matrix), the stage's four 16-byte K groups 128 bytes apart, 8-row groups 512 — and the
// stages go round a ring: all but two in flight while one is multiplied and the products of the one before
// drain (8 stages at BN 128, 6 at 64 with two blocks an SM; 4 measured the same). Blocks are persistent and
// the ring runs on across their tiles, so that a tile's epilogue (through its own shared memory) overlaps the
// copies of the next tile's first stages: a tile of a 1x1 convolution over 64 channels is a single step.
//
// Slower than the mma.sync kernel on every EAST layer on the H200 (docs/QUANTIZATION.md): a step takes
// several times its 256 cycles of tensor work at BN 128, and neither a deeper ring nor leaving out the proxy
// fence changed that much; the per-thread copies' address arithmetic and the epilogue's instructions, at one
// or two blocks an SM, are what Nsight Compute shows busy. Kept as a timed candidate and the ground for a
// TMA-fed, warp-specialised version.
//
// E4M3 stays on the mma.sync kernel: wgmma's FP8 products are summed in less than FP32's precision (on the
// H200, against double sums, 19–42 of 20–30 thousand codes were off by more than one, where the mma.sync
// kernel's are exact), which the kernel's tests do not allow.
#include <type_traits>

#include "cuda/conv_quant_kernel.cuh"
#include "cuda/cuda_check.h"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

using namespace quant_kernel;

constexpr int kBM = 128, kKS = 64, kBlockThreads = 256;
template <int BN>
constexpr int kStages = BN == 128 ? 8 : 6;
template <int BN>
constexpr int kAhead = kStages<BN> - 2;  // stages whose copies are in flight while one is multiplied
constexpr uint32_t kLbo = 128, kSbo = kKS / 16 * 128;
static_assert(kKS % 32 == 0 && kKS / 16 == 4, "the copies' lane mapping covers 4 K groups");

template <int BN>
constexpr int kStageBytes = (kBM + BN) * kKS;
template <int BN>
constexpr int kRingBytes = kStages<BN> * kStageBytes<BN>;
template <int BN>
constexpr int shared_bytes() { return kRingBytes<BN> + staging_bytes<kBM, BN>(); }
// What fits an SM's 227 KB: one block at BN 128 (196 KB), two at 64 (108 KB).
template <int BN>
constexpr int kBlocksPerSm = BN == 128 ? 1 : 2;

// Tile t: pixels (t / filter_blocks) · 128 .., filters (t % filter_blocks) · BN ..: the filter blocks of one
// pixel block are consecutive tiles, so that its A rows come from L2 after the first.
template <int BN>
__host__ __device__ inline int filter_blocks(const QuantConvArgs& a) { return (a.k + BN - 1) / BN; }
template <int BN>
__host__ __device__ inline int64_t tile_count(const QuantConvArgs& a) {
  return (int64_t(a.n) * a.oh * a.ow + kBM - 1) / kBM * filter_blocks<BN>(a);
}

// Where bytes 16 · copy .. + 15 of a stage's row `row` go: row group row / 8, K group `copy`, row row % 8 of it.
__device__ __forceinline__ int core_offset(int row, int copy) { return (row / 8) * kSbo + copy * kLbo + (row % 8) * 16; }

template <int BN>
__device__ __forceinline__ void product(int (&d)[BN / 2], uint64_t a, uint64_t b, bool accumulate) {
  if constexpr (BN == 128) wgmma_m64n128k32(d, a, b, accumulate);
  else wgmma_m64n64k32(d, a, b, accumulate);
}

template <int BN>
__global__ void __launch_bounds__(kBlockThreads, kBlocksPerSm<BN>)
    quant_conv_wgmma_kernel(const QuantConvArgs a, const int flags) {
  static_assert(BN == 64 || BN == 128, "wgmma N of the block");
  extern __shared__ __align__(128) uint8_t shared[];
  int* staged = reinterpret_cast<int*>(shared + kRingBytes<BN>);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n_blocks = filter_blocks<BN>(a);
  const int64_t tiles = tile_count<BN>(a);
  const auto block_m = [&](int64_t tile) { return tile / n_blocks * kBM; };
  const auto block_n = [&](int64_t tile) { return static_cast<int>(tile % n_blocks) * BN; };

  // The copies: a warp copies 8 rows by the 4 K groups, 512 contiguous bytes of a stage (every 16-byte bank
  // group once per 128 bytes). `loading` and `load_step` are the next step to copy, `issued` the stages
  // issued so far (one cp.async group each, empty past the block's last tile).
  int64_t loading = blockIdx.x;
  int load_step = 0, issued = 0;
  QuantStages<kBM, BN, kKS, kBlockThreads> stages(a, block_m(loading), block_n(loading), lane / 8, warp * 8 + lane % 8);
  const int steps = stages.steps;  // the same for every tile
  const auto issue_next = [&] {
    if (loading < tiles) {
      uint8_t* sa = shared + (issued % kStages<BN>) * kStageBytes<BN>;
      stages.load(sa, sa + kBM * kKS, load_step, core_offset);
      if (++load_step == steps) {
        load_step = 0;
        loading += gridDim.x;
        if (loading < tiles) stages.set_tile(a, block_m(loading), block_n(loading));
      }
    }
    cp_async_commit();
    ++issued;
  };

  const int group = warp / 4;  // the warpgroup: A rows 64 · group .. + 63
  for (int s = 0; s < kAhead<BN>; ++s) issue_next();
  int consumed = 0;  // stages multiplied so far
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    int d[BN / 2];  // the tile's first product writes them (see wgmma_m64n64k32)
    for (int step = 0; step < steps; ++step, ++consumed) {
      cp_async_wait<kAhead<BN> - 1>();  // this stage's copies (the kAhead − 1 issued after it may be pending)
      // The copies (generic proxy) visible to wgmma's reads (async proxy), as the PTX memory model asks.
      // Without the fence (40f3b88, the tests passing) a step was no more than 25 % faster, about what the
      // epilogue's own change gave the mma.sync kernel in the same build: not what holds it back.
      fence_proxy_async_shared();
      // The stage complete for every thread; every warpgroup is past its wait for the products of two stages
      // back, whose ring slot the copies issued below refill.
      __syncthreads();
      const uint8_t* sa = shared + (consumed % kStages<BN>) * kStageBytes<BN>;
      const uint64_t da = wgmma_descriptor(sa + group * 8 * kSbo, kLbo, kSbo);
      const uint64_t db = wgmma_descriptor(sa + kBM * kKS, kLbo, kSbo);
      wgmma_fence_operands(d);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kKS / 32; ++k)
        product<BN>(d, da + k * (2 * kLbo >> 4), db + k * (2 * kLbo >> 4), step > 0 || k > 0);
      wgmma_commit();
      wgmma_fence_operands(d);
      issue_next();
      wgmma_wait<1>();
    }
    wgmma_wait<0>();
    wgmma_fence_operands(d);
    // The staged tile has its own shared memory: the ring goes on filling under the epilogue. Every thread
    // finished the last tile's epilogue before the barrier of this tile's first step.
    const int row = group * 64 + (warp % 4) * 16 + lane / 4;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
      stage_quad<BN>(staged, row, 8 * j + 2 * (lane % 4), d[4 * j], d[4 * j + 1], d[4 * j + 2], d[4 * j + 3]);
    __syncthreads();
    quant_epilogue<kBM, BN, kBlockThreads, false>(a, flags, staged, block_m(tile), block_n(tile));
  }
  cp_async_wait<0>();
}

template <int BN>
void launch(const QuantConvArgs& a, int flags, cudaStream_t stream) {
  constexpr int bytes = shared_bytes<BN>();
  const auto kernel = quant_conv_wgmma_kernel<BN>;
  kernel<<<persistent_grid(kernel, bytes, tile_count<BN>(a), kBlocksPerSm<BN>), kBlockThreads, bytes, stream>>>(a, flags);
}

}  // namespace

void launch_quant_conv_wgmma(const QuantConvArgs& a, int bn, int flags, cudaStream_t stream) {
  EASTRT_CHECK(bn == 64 || bn == 128, "quantised convolution on wgmma: a tile of ", bn, " filters (it takes 64 or 128)");
  EASTRT_CHECK(a.in_type == QType::kInt8, "quantised convolution on wgmma: INT8 input only");
  require_sm90a("quantised convolution on wgmma");
  if (bn == 128) launch<128>(a, flags, stream);
  else launch<64>(a, flags, stream);
  EASTRT_LAUNCHED("quant_conv_wgmma_kernel");
}

}  // namespace eastrt::cuda
