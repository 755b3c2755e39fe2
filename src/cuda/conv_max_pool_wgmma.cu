// The conv/max-pool kernel on Hopper's warpgroup MMA (sm_90a alone, CMakeLists.txt): the tiles, X' and the
// pool of conv_max_pool_tiles.cuh in their kChannelPlanes layout, the convolution as wgmma m64n64k16 products
// with A the filter (M = 64 filters, each warp's 16 held in registers for the whole grid, all 16 taps) and B
// X' (N = 64 conv positions, read by descriptor from X''s two channel planes). The conv positions are X''s
// pixels taken flat, row after row (36 a row), so that a tap's B for 64 consecutive positions is 64
// consecutive pixels of each plane; positions past a row's 32 columns are computed and never pooled. The
// bias starts the accumulators; each lane's accumulators are pairs of consecutive positions of one filter,
// stored as such into the filter-major conv outputs. The builder times it against the mma.sync kernel
// (conv_max_pool.cu) on compute capability 9.0; GpuKernels.ConvMaxPoolWgmmaMatchesTheMmaSyncKernel compares
// and times the two at EAST's batch-16 conv1.
#include <cuda_fp16.h>

#include "cuda/conv_max_pool_tiles.cuh"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/tensor_core.cuh"
#include "cuda/wgmma.cuh"

namespace eastrt::cuda {
namespace {

using namespace conv_max_pool_tiles;

// B's core matrices: 8 consecutive pixels of a plane (128 bytes), the next 8 pixels 128 bytes on (SBO), the
// other plane (channels 8-15, the next 8 of K) a plane on (LBO).
constexpr uint32_t kPlaneBytes = kPlanePixels * 8 * sizeof(__half), kPixelGroupBytes = 128;
constexpr int kPositions = 64;  // N of one product
constexpr int kChunks = kPlaneConvPositions / kPositions;
static_assert(kChunks * kPositions - 1 + (kTaps - 1) * (kPlaneCols + 1) < kPlanePixels);  // the furthest tap

template <int kC, typename In>
using PlaneTiles = Tiles<kC, In, InputLayout::kChannelPlanes>;
template <int kC, typename In>
constexpr int kBlocksPerSm = PlaneTiles<kC, In>::Raw::blocks_per_sm();

template <int kC, typename In>
__global__ void __launch_bounds__(kBlockThreads, (kBlocksPerSm<kC, In>))
    conv_max_pool_wgmma_kernel(const In* __restrict__ x, const float* __restrict__ shift,
                               const __half* __restrict__ filter, const __half* __restrict__ bias, __half* __restrict__ y,
                               ConvMaxPoolArgs a) {
  extern __shared__ __align__(128) unsigned char shared[];
  const PlaneTiles<kC, In> tiles(x, shift, a, shared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // A: this warp's filters 16w..16w+15 as the m16n8k16 A fragment, tap by tap (rows: filters; K: channels).
  const int filter0 = warp * 16 + lane / 4;  // this lane's accumulator rows filter0 and filter0 + 8
  uint32_t f[kTaps * kTaps][4];
#pragma unroll
  for (int tap = 0; tap < kTaps * kTaps; ++tap) {
    const __half* row = filter + size_t(filter0) * kK + tap * kChannels + (lane % 4) * 2;
    f[tap][0] = *reinterpret_cast<const uint32_t*>(row);
    f[tap][1] = *reinterpret_cast<const uint32_t*>(row + 8 * kK);
    f[tap][2] = *reinterpret_cast<const uint32_t*>(row + 8);
    f[tap][3] = *reinterpret_cast<const uint32_t*>(row + 8 * kK + 8);
  }
  const float bias0 = bias ? __half2float(bias[filter0]) : 0.0f, bias8 = bias ? __half2float(bias[filter0 + 8]) : 0.0f;
  const __half2 floor = a.relu ? __float2half2_rn(0.0f) : lowest_half2();  // ReLU or none

  // The descriptor of X''s first pixel; its address field counts 16 bytes, one pixel of a plane.
  const uint64_t planes = wgmma_descriptor(tiles.input, kPlaneBytes, kPixelGroupBytes);
  // Chunk c's 16 products are issued into one set of accumulators while chunk c - 1's outputs, in the
  // other, are stored (161 registers, no spills at three blocks an SM).
  // d[4j + 2h + e]: filter filter0 + 8h at the chunk's position 8j + 2 (lane % 4) + e.
  const auto issue = [&](int chunk, float(&d)[32]) {
#pragma unroll
    for (int j = 0; j < 8; ++j) d[4 * j] = d[4 * j + 1] = bias0, d[4 * j + 2] = d[4 * j + 3] = bias8;
    wgmma_fence();
#pragma unroll
    for (int ty = 0; ty < kTaps; ++ty)
#pragma unroll
      for (int tx = 0; tx < kTaps; ++tx)
        wgmma_m64n64k16(d, f[ty * kTaps + tx], planes + uint64_t(chunk * kPositions + ty * kPlaneCols + tx));
    wgmma_commit();
  };
  const auto store = [&](int chunk, float(&d)[32]) {
    wgmma_fence_operands(d);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int position = chunk * kPositions + 8 * j + 2 * (lane % 4);
        *reinterpret_cast<__half2*>(tiles.conv + tiles.conv_offset(filter0 + 8 * h, position)) =
            __hmax2(__floats2half2_rn(d[4 * j + 2 * h], d[4 * j + 2 * h + 1]), floor);
      }
  };
  tiles.for_each_tile(y, [&](int64_t) {
    float d0[32], d1[32];
    issue(0, d0);
#pragma unroll
    for (int chunk = 1; chunk < kChunks; ++chunk) {
      if (chunk % 2) issue(chunk, d1); else issue(chunk, d0);
      wgmma_wait<1>();
      if (chunk % 2) store(chunk - 1, d0); else store(chunk - 1, d1);
    }
    wgmma_wait<0>();
    store(kChunks - 1, (kChunks - 1) % 2 ? d1 : d0);
  });
}

template <int kC, typename In>
void launch(const void* x, const float* shift, const void* filter, const void* bias, void* y, const ConvMaxPoolArgs& a,
            cudaStream_t stream) {
  const size_t shared = PlaneTiles<kC, In>::Raw::shared_bytes();
  const auto kernel = conv_max_pool_wgmma_kernel<kC, In>;
  kernel<<<persistent_grid(kernel, shared, tile_count(a), kBlocksPerSm<kC, In>), kBlockThreads, shared, stream>>>(
      static_cast<const In*>(x), shift, static_cast<const __half*>(filter), static_cast<const __half*>(bias),
      static_cast<__half*>(y), a);
}

}  // namespace

void launch_conv_max_pool_wgmma(const void* x, DType xt, const float* shift, const void* filter, const void* bias,
                                void* y, const ConvMaxPoolArgs& a, cudaStream_t stream) {
  EASTRT_CHECK(a.c == 3 || a.c == 4, "conv/max-pool wgmma kernel: ", a.c, " input channels (it takes 3 or 4)");
  EASTRT_CHECK(aligned_to(x, 16) && aligned_to(filter, 4),
               "conv/max-pool wgmma kernel: its input must be 16-byte aligned and its filter 4-byte aligned");
  require_sm90a("conv/max-pool wgmma kernel");
  if (tile_count(a) == 0) return;
  if (xt == DType::kF32)
    a.c == 3 ? launch<3, float>(x, shift, filter, bias, y, a, stream) : launch<4, float>(x, shift, filter, bias, y, a, stream);
  else
    a.c == 3 ? launch<3, __half>(x, shift, filter, bias, y, a, stream) : launch<4, __half>(x, shift, filter, bias, y, a, stream);
  EASTRT_LAUNCHED("conv_max_pool_wgmma_kernel");
}

}  // namespace eastrt::cuda
