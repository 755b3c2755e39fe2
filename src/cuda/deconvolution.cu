// The transposed-convolution family: ONNX ConvTranspose on NHWC tensors, any stride, groups, asymmetric
// padding (a crop of the full output) and output padding, as cpu::naive::deconvolution computes it.
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

// One thread per output element, gathering instead of scattering (no atomics, so every run gives the same
// bits): output row oy takes kernel row r from input row (oy + pad_top − r) / stride when that divides.
// Channels are fastest, so a warp's threads read one input pixel (a broadcast) and consecutive filter values.
template <typename In, typename Out>
__global__ void deconvolution_kernel(const In* x, const float* w, const float* bias, Out* y, DeconvArgs a) {
  const int64_t count = int64_t(a.n) * a.oh * a.ow * a.k;
  const int cg = a.c / a.groups, kg = a.k / a.groups;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int k = static_cast<int>(i % a.k);
    int64_t rest = i / a.k;
    const int ox = static_cast<int>(rest % a.ow);
    rest /= a.ow;
    const int oy = static_cast<int>(rest % a.oh);
    const int64_t n = rest / a.oh;
    const int g = k / kg, kl = k % kg;
    float acc = 0.0f;
    for (int r = 0; r < a.r; ++r) {
      const int ty = oy + a.pad_top - r;
      if (ty < 0 || ty % a.stride_h != 0) continue;
      const int iy = ty / a.stride_h;
      if (iy >= a.h) continue;
      for (int s = 0; s < a.s; ++s) {
        const int tx = ox + a.pad_left - s;
        if (tx < 0 || tx % a.stride_w != 0) continue;
        const int ix = tx / a.stride_w;
        if (ix >= a.w) continue;
        const int64_t xi = ((n * a.h + iy) * a.w + ix) * a.c + int64_t(g) * cg;
        const float* wp = w + (int64_t(r * a.s + s) * a.c + int64_t(g) * cg) * kg + kl;
        for (int c = 0; c < cg; ++c) acc = fmaf(load(x, xi + c), wp[int64_t(c) * kg], acc);
      }
    }
    if (bias) acc += bias[k];
    store(y, i, acc);
  }
}

}  // namespace

void launch_deconvolution(const void* x, DType xt, const float* w, const float* bias, void* y, DType yt,
                          const DeconvArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.k;
  if (count == 0) return;
  EASTRT_CHECK(args.groups >= 1 && args.c % args.groups == 0 && args.k % args.groups == 0 && args.stride_h >= 1 &&
                   args.stride_w >= 1,
               "deconvolution: ", args.c, " input and ", args.k, " output channels in ", args.groups,
               " groups, stride ", args.stride_h, "x", args.stride_w);
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    deconvolution_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), w, bias,
                                                                   static_cast<Out*>(y), args);
  });
  EASTRT_LAUNCHED("deconvolution_kernel");
}

}  // namespace eastrt::cuda
