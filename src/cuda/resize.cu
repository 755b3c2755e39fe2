// The resize family: bilinear and nearest under the three coordinate rules, with TensorFlow's arithmetic
// exactly as cpu::naive::resize does it (the _rn intrinsics keep nvcc from fusing a multiply and an add the
// CPU rounds separately, so source coordinates land on the same cells). The output may be a channel slice
// of a concatenation: EAST's ×2 upsampling writes straight into the first channels of the merge's input.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

enum Coordinates { kAsymmetric = 0, kHalfPixel = 1, kAlignCorners = 2 };

__device__ float source_coordinate(int rule, int dst, int in_size, int out_size) {
  const float x = static_cast<float>(dst);
  switch (rule) {
    case kAsymmetric:
      return __fmul_rn(x, __fdiv_rn(static_cast<float>(in_size), static_cast<float>(out_size)));
    case kHalfPixel:
      return fmaxf(0.0f, __fsub_rn(__fmul_rn(__fadd_rn(x, 0.5f), __fdiv_rn(static_cast<float>(in_size),
                                                                            static_cast<float>(out_size))),
                                   0.5f));
    default:
      return out_size > 1 ? __fmul_rn(x, __fdiv_rn(static_cast<float>(in_size - 1), static_cast<float>(out_size - 1)))
                          : 0.0f;
  }
}

__device__ int nearest_index(int rule, int dst, int in_size, int out_size) {
  const float scale = __fdiv_rn(static_cast<float>(in_size), static_cast<float>(out_size));
  const float x = static_cast<float>(dst);
  float index = 0.0f;
  switch (rule) {
    case kAsymmetric: index = floorf(__fmul_rn(x, scale)); break;
    case kAlignCorners: index = roundf(source_coordinate(rule, dst, in_size, out_size)); break;
    default: index = ceilf(__fsub_rn(__fsub_rn(__fmul_rn(__fadd_rn(x, 0.5f), scale), 0.5f), 0.5f)); break;
  }
  const int i = static_cast<int>(index);
  return i < 0 ? 0 : (i > in_size - 1 ? in_size - 1 : i);
}

__device__ __forceinline__ float lerp(float a, float b, float t) { return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), t)); }

template <typename In, typename Out>
__global__ void resize_kernel(const In* x, Out* y, ResizeArgs p) {
  const int64_t count = int64_t(p.n) * p.oh * p.ow * p.c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % p.c);
    const int64_t pixel = i / p.c;
    const int ow = static_cast<int>(pixel % p.ow);
    const int oh = static_cast<int>(pixel / p.ow % p.oh);
    const int64_t n = pixel / (int64_t(p.ow) * p.oh);
    auto at = [&](int h, int w) { return load(x, ((n * p.h + h) * p.w + w) * p.c + c); };
    float v;
    if (p.nearest) {
      v = at(nearest_index(p.coordinates, oh, p.h, p.oh), nearest_index(p.coordinates, ow, p.w, p.ow));
    } else {
      const float sy = source_coordinate(p.coordinates, oh, p.h, p.oh);
      const float sx = source_coordinate(p.coordinates, ow, p.w, p.ow);
      const int y0 = min(static_cast<int>(floorf(sy)), p.h - 1), x0 = min(static_cast<int>(floorf(sx)), p.w - 1);
      const int y1 = min(y0 + 1, p.h - 1), x1 = min(x0 + 1, p.w - 1);
      const float fy = __fsub_rn(sy, static_cast<float>(y0)), fx = __fsub_rn(sx, static_cast<float>(x0));
      // Across each row first, then between the rows: TensorFlow's order.
      const float top = lerp(at(y0, x0), at(y0, x1), fx);
      const float bottom = lerp(at(y1, x0), at(y1, x1), fx);
      v = lerp(top, bottom, fy);
    }
    store(y, pixel * p.out_channel_stride + p.out_channel_offset + c, v);
  }
}

}  // namespace

void launch_resize(const void* x, DType xt, void* y, DType yt, const ResizeArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.c;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    resize_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), args);
  });
  EASTRT_LAUNCHED("resize_kernel");
}

}  // namespace eastrt::cuda
