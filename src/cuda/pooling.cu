// The pooling family: max and average over NHWC windows with any (asymmetric) padding handled in the
// kernel, as cpu::naive::pooling computes. One thread per output pixel and pack of V channels (16-byte loads
// and stores when the channels and pointers allow, V = 1 otherwise), channels fastest so that a warp reads
// consecutive memory.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

// Index: int where every offset fits (dispatch_index).
template <int V, typename Index, typename In, typename Out>
__global__ void pooling_kernel(const In* x, Out* y, PoolArgs p) {
  const Index packs = p.c / V;
  const Index count = Index(p.n) * p.oh * p.ow * packs;
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % packs) * V;
    Index rest = i / packs;
    const int ow = static_cast<int>(rest % p.ow);
    rest /= p.ow;
    const int oh = static_cast<int>(rest % p.oh);
    const Index n = rest / p.oh;
    // Padded cells never win a max (they are −inf) and are not counted by an average unless asked.
    float best[V], sum[V];
#pragma unroll
    for (int j = 0; j < V; ++j) best[j] = -INFINITY, sum[j] = 0.0f;
    int cells = 0;
    for (int r = 0; r < p.window_h; ++r) {
      const int ih = oh * p.stride_h - p.pad_top + r;
      if (ih < 0 || ih >= p.h) continue;
      for (int s = 0; s < p.window_w; ++s) {
        const int iw = ow * p.stride_w - p.pad_left + s;
        if (iw < 0 || iw >= p.w) continue;
        float v[V];
        load_pack<V>(x + ((n * p.h + ih) * p.w + iw) * p.c + c, v);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          best[j] = fmaxf(best[j], v[j]);
          sum[j] += v[j];
        }
        ++cells;
      }
    }
    float out[V];
    const int divisor = p.count_include_pad ? p.window_h * p.window_w : cells;
#pragma unroll
    for (int j = 0; j < V; ++j)
      out[j] = !p.average ? best[j] : divisor > 0 ? sum[j] / static_cast<float>(divisor) : 0.0f;
    store_pack<V>(y + (i / packs) * p.c + c, out);
  }
}

// A window over the whole input (a global pooling, 1x1 output: PP-OCRv4's squeeze-and-excitation over maps
// of up to 136x240) as one thread per output would loop over every cell alone: 7 ms for one layer on an
// H200. Here a block takes 32 channels of one image, its 32 rows of threads share the cells (four loads in
// flight each) and add their partial results in a fixed order, so runs give the same bits.
constexpr int kGlobalChannels = 32, kGlobalLanes = 32;

template <typename In, typename Out>
__global__ void global_pooling_kernel(const In* x, Out* y, PoolArgs p) {
  __shared__ float best_of[kGlobalLanes][kGlobalChannels], sum_of[kGlobalLanes][kGlobalChannels];
  const int c = blockIdx.y * kGlobalChannels + threadIdx.x;
  const int64_t n = blockIdx.x;
  const int r0 = max(0, -p.pad_top), r1 = min(p.h, p.window_h - p.pad_top);
  const int s0 = max(0, -p.pad_left), s1 = min(p.w, p.window_w - p.pad_left);
  const int cols = max(0, s1 - s0), cells = max(0, r1 - r0) * cols;
  float best[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, sum[4] = {0, 0, 0, 0};
  if (c < p.c) {
    const In* image = x + n * p.h * p.w * p.c + c;
    int i = threadIdx.y;
    for (; i + 3 * kGlobalLanes < cells; i += 4 * kGlobalLanes) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int cell = i + j * kGlobalLanes;
        const float v = load(image, (int64_t(r0 + cell / cols) * p.w + s0 + cell % cols) * p.c);
        best[j] = fmaxf(best[j], v);
        sum[j] += v;
      }
    }
    for (; i < cells; i += kGlobalLanes) {
      const float v = load(image, (int64_t(r0 + i / cols) * p.w + s0 + i % cols) * p.c);
      best[0] = fmaxf(best[0], v);
      sum[0] += v;
    }
  }
  best_of[threadIdx.y][threadIdx.x] = fmaxf(fmaxf(best[0], best[1]), fmaxf(best[2], best[3]));
  sum_of[threadIdx.y][threadIdx.x] = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  __syncthreads();
  if (threadIdx.y != 0 || c >= p.c) return;
  float b = -INFINITY, total = 0.0f;
  for (int lane = 0; lane < kGlobalLanes; ++lane) {
    b = fmaxf(b, best_of[lane][threadIdx.x]);
    total += sum_of[lane][threadIdx.x];
  }
  const int divisor = p.count_include_pad ? p.window_h * p.window_w : cells;
  store(y, n * p.c + c, !p.average ? b : divisor > 0 ? total / static_cast<float>(divisor) : 0.0f);
}

}  // namespace

void launch_pooling(const void* x, DType xt, void* y, DType yt, const PoolArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.c;
  if (count == 0) return;
  if (args.oh == 1 && args.ow == 1) {
    const dim3 grid(static_cast<unsigned>(args.n), static_cast<unsigned>((args.c + kGlobalChannels - 1) / kGlobalChannels));
    dispatch_types(xt, yt, [&](auto in, auto out) {
      using In = decltype(in);
      using Out = decltype(out);
      global_pooling_kernel<<<grid, dim3(kGlobalChannels, kGlobalLanes), 0, stream>>>(static_cast<const In*>(x),
                                                                                      static_cast<Out*>(y), args);
    });
    EASTRT_LAUNCHED("global_pooling_kernel");
    return;
  }
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    constexpr int V = pack_width<In, Out>();
    const bool packed = args.c % V == 0 && aligned_to(x, V * sizeof(In)) && aligned_to(y, V * sizeof(Out));
    dispatch_index(std::max(int64_t(args.n) * args.h * args.w * args.c, count), [&](auto index) {
      using Index = decltype(index);
      if (packed)
        pooling_kernel<V, Index><<<grid_for(count / V), kThreads, 0, stream>>>(static_cast<const In*>(x),
                                                                              static_cast<Out*>(y), args);
      else
        pooling_kernel<1, Index><<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y),
                                                                          args);
    });
  });
  EASTRT_LAUNCHED("pooling_kernel");
}

}  // namespace eastrt::cuda
