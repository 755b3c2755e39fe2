// The resize family: bilinear and nearest under the three coordinate rules, with TensorFlow's arithmetic
// exactly as cpu::naive::resize does it (the _rn intrinsics keep nvcc from fusing a multiply and an add the
// CPU rounds separately, so source coordinates land on the same cells). The output may be a channel slice
// of a concatenation: EAST's ×2 upsampling writes straight into the first channels of the merge's input.
// One thread per output pixel and pack of V channels: the source cells and weights are worked out once per
// pack, and moved by 16-byte loads and stores when the channels, the slice and the pointers allow; the
// bilinear ×2 of the asymmetric rule, one thread per input pixel and pack (its four output pixels).
#include <algorithm>
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

// Grid-stride item i of an [n, height, width, packs] walk: its first channel (V a pack), column, row and image.
template <typename Index>
struct PackAt {
  int c, col, row;
  Index n;
};
template <int V, typename Index>
__device__ __forceinline__ PackAt<Index> pack_at(Index i, Index packs, int width, int height) {
  const Index pixel = i / packs;
  return {static_cast<int>(i % packs) * V, static_cast<int>(pixel % width), static_cast<int>(pixel / width % height),
          pixel / (Index(width) * height)};
}

// Index: int where every offset fits (dispatch_index).
template <int V, typename Index, typename In, typename Out>
__global__ void resize_kernel(const In* x, Out* y, ResizeArgs p) {
  const Index packs = p.c / V;
  const Index count = Index(p.n) * p.oh * p.ow * packs;
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    const auto [c, ow, oh, n] = pack_at<V>(i, packs, p.ow, p.oh);
    const Index pixel = i / packs;
    auto at = [&](int h, int w, float(&v)[V]) { load_pack<V>(x + ((n * p.h + h) * p.w + w) * p.c + c, v); };
    float v[V];
    if (p.nearest) {
      at(nearest_index(p.coordinates, oh, p.h, p.oh), nearest_index(p.coordinates, ow, p.w, p.ow), v);
    } else {
      const float sy = source_coordinate(p.coordinates, oh, p.h, p.oh);
      const float sx = source_coordinate(p.coordinates, ow, p.w, p.ow);
      const int y0 = min(static_cast<int>(floorf(sy)), p.h - 1), x0 = min(static_cast<int>(floorf(sx)), p.w - 1);
      const int y1 = min(y0 + 1, p.h - 1), x1 = min(x0 + 1, p.w - 1);
      const float fy = __fsub_rn(sy, static_cast<float>(y0)), fx = __fsub_rn(sx, static_cast<float>(x0));
      float a[V], b[V], d[V], e[V];
      at(y0, x0, a), at(y0, x1, b), at(y1, x0, d), at(y1, x1, e);
      // Across each row first, then between the rows: TensorFlow's order.
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = lerp(lerp(a[j], b[j], fx), lerp(d[j], e[j], fx), fy);
    }
    store_pack<V>(y + pixel * Index(p.out_channel_stride) + Index(p.out_channel_offset) + c, v);
  }
}

// Bilinear ×2 under the asymmetric rule (TensorFlow's default, EAST's unpooling): output row 2i+f reads
// rows i and min(i + 1, h - 1) at weight f / 2, the same cells and weights resize_kernel finds there (the
// source coordinate dst · (h / 2h) is exactly dst / 2), so one thread reads the four cells of an input
// pixel once and writes the four output pixels they make, with resize_kernel's arithmetic, bit for bit.
template <int V, typename Index, typename In, typename Out>
__global__ void resize_twice_kernel(const In* x, Out* y, ResizeArgs p) {
  const Index packs = p.c / V;
  const Index count = Index(p.n) * p.h * p.w * packs;
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    const auto [c, col, row, n] = pack_at<V>(i, packs, p.w, p.h);
    auto at = [&](int h, int w, float(&v)[V]) { load_pack<V>(x + ((n * p.h + h) * p.w + w) * p.c + c, v); };
    const int col1 = min(col + 1, p.w - 1), row1 = min(row + 1, p.h - 1);
    float a[V], b[V], d[V], e[V];
    at(row, col, a), at(row, col1, b), at(row1, col, d), at(row1, col1, e);
#pragma unroll
    for (int fy = 0; fy < 2; ++fy)
#pragma unroll
      for (int fx = 0; fx < 2; ++fx) {
        float v[V];
#pragma unroll
        for (int j = 0; j < V; ++j)
          v[j] = lerp(lerp(a[j], b[j], 0.5f * fx), lerp(d[j], e[j], 0.5f * fx), 0.5f * fy);
        const Index out = (n * p.oh + 2 * row + fy) * Index(p.ow) + 2 * col + fx;
        store_pack<V>(y + out * Index(p.out_channel_stride) + Index(p.out_channel_offset) + c, v);
      }
  }
}

}  // namespace

void launch_resize(const void* x, DType xt, void* y, DType yt, const ResizeArgs& args, cudaStream_t stream) {
  const int64_t count = int64_t(args.n) * args.oh * args.ow * args.c;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    constexpr int V = pack_width<In, Out>();
    // Every pack's address is a multiple of the pack: channels, slice width and slice offset in whole packs.
    const bool packed = args.c % V == 0 && args.out_channel_stride % V == 0 && args.out_channel_offset % V == 0 &&
                        aligned_to(x, V * sizeof(In)) && aligned_to(y, V * sizeof(Out));
    const int64_t largest = std::max(int64_t(args.n) * args.h * args.w * args.c,
                                     int64_t(args.n) * args.oh * args.ow * args.out_channel_stride);
    const bool twice = !args.nearest && args.coordinates == kAsymmetric && args.oh == 2 * args.h && args.ow == 2 * args.w;
    dispatch_index(largest, [&](auto index) {
      using Index = decltype(index);
      if (twice && packed)
        resize_twice_kernel<V, Index><<<grid_for(count / V / 4), kThreads, 0, stream>>>(static_cast<const In*>(x),
                                                                                   static_cast<Out*>(y), args);
      else if (twice)
        resize_twice_kernel<1, Index><<<grid_for(count / 4), kThreads, 0, stream>>>(static_cast<const In*>(x),
                                                                               static_cast<Out*>(y), args);
      else if (packed)
        resize_kernel<V, Index><<<grid_for(count / V), kThreads, 0, stream>>>(static_cast<const In*>(x),
                                                                             static_cast<Out*>(y), args);
      else
        resize_kernel<1, Index><<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y),
                                                                         args);
    });
  });
  EASTRT_LAUNCHED("resize_kernel");
}

}  // namespace eastrt::cuda
