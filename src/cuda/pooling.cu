// The pooling family: max and average over NHWC windows with any (asymmetric) padding handled in the
// kernel, as cpu::naive::pooling computes. One thread per output pixel and pack of V channels (16-byte loads
// and stores when the channels and pointers allow, V = 1 otherwise), channels fastest so that a warp reads
// consecutive memory.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

template <int V, typename In, typename Out>
__global__ void pooling_kernel(const In* x, Out* y, PoolArgs p) {
  const int packs = p.c / V;
  const int64_t count = int64_t(p.n) * p.oh * p.ow * packs;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % packs) * V;
    int64_t rest = i / packs;
    const int ow = static_cast<int>(rest % p.ow);
    rest /= p.ow;
    const int oh = static_cast<int>(rest % p.oh);
    const int64_t n = rest / p.oh;
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

}  // namespace

void launch_pooling(const void* x, DType xt, void* y, DType yt, const PoolArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.c;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    constexpr int V = pack_width<In, Out>();
    if (args.c % V == 0 && aligned_to(x, V * sizeof(In)) && aligned_to(y, V * sizeof(Out)))
      pooling_kernel<V><<<grid_for(count / V), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y),
                                                                      args);
    else
      pooling_kernel<1><<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), args);
  });
  EASTRT_LAUNCHED("pooling_kernel");
}

}  // namespace eastrt::cuda
