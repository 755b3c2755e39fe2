// The pooling family: max and average over NHWC windows with any (asymmetric) padding, one thread per
// output element (channels fastest, so a warp reads consecutive channels), as cpu::naive::pooling computes.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

template <typename In, typename Out>
__global__ void pooling_kernel(const In* x, Out* y, PoolArgs p) {
  const int64_t count = int64_t(p.n) * p.oh * p.ow * p.c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % p.c);
    int64_t rest = i / p.c;
    const int ow = static_cast<int>(rest % p.ow);
    rest /= p.ow;
    const int oh = static_cast<int>(rest % p.oh);
    const int64_t n = rest / p.oh;
    // Padded cells never win a max (they are −inf) and are not counted by an average unless asked.
    float best = -INFINITY, sum = 0.0f;
    int cells = 0;
    for (int r = 0; r < p.window_h; ++r) {
      const int ih = oh * p.stride_h - p.pad_top + r;
      if (ih < 0 || ih >= p.h) continue;
      for (int s = 0; s < p.window_w; ++s) {
        const int iw = ow * p.stride_w - p.pad_left + s;
        if (iw < 0 || iw >= p.w) continue;
        const float v = load(x, ((n * p.h + ih) * p.w + iw) * p.c + c);
        best = fmaxf(best, v);
        sum += v;
        ++cells;
      }
    }
    float out = best;
    if (p.average) {
      const int divisor = p.count_include_pad ? p.window_h * p.window_w : cells;
      out = divisor > 0 ? sum / static_cast<float>(divisor) : 0.0f;
    }
    store(y, i, out);
  }
}

}  // namespace

void launch_pooling(const void* x, DType xt, void* y, DType yt, const PoolArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.c;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    pooling_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), args);
  });
  EASTRT_LAUNCHED("pooling_kernel");
}

}  // namespace eastrt::cuda
