// The elementwise family: scale, activation, unary, cast, broadcasting binary ops, the convolution
// epilogue, and the fills and norms the builder and the tests use. Grid-stride loops, float arithmetic.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

// Index (here and in conv_epilogue_kernel): int where the count fits (dispatch_index), for the remainder.
template <typename Index, typename In, typename Out>
__global__ void scale_kernel(const In* x, Out* y, Index count, Index channels, ScaleArgs a) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    const Index c = i % channels;
    float v = load(x, i);
    if (a.scale) v *= a.scale[a.scale_per_channel ? c : 0];
    if (a.shift) v += a.shift[a.shift_per_channel ? c : 0];
    if (a.power) v = powf(v, a.power[a.power_per_channel ? c : 0]);
    store(y, i, v);
  }
}

template <typename In, typename Out>
__global__ void activation_kernel(const In* x, Out* y, int64_t count, Activation act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, activate(act, load(x, i)));
}

__device__ float unary_op(int op, float x) {
  switch (op) {
    case 0: return expf(x);
    case 1: return logf(x);
    case 2: return sqrtf(x);
    case 3: return 1.0f / sqrtf(x);
    case 4: return fabsf(x);
    case 5: return -x;
    case 6: return 1.0f / x;
    case 7: return floorf(x);
    case 8: return ceilf(x);
    case 9: return sinf(x);
    case 10: return cosf(x);
    default: return x;
  }
}

template <typename In, typename Out>
__global__ void unary_kernel(const In* x, Out* y, int64_t count, int op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, unary_op(op, load(x, i)));
}

template <typename In, typename Out>
__global__ void cast_kernel(const In* x, Out* y, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, load(x, i));
}

__device__ float binary_op(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return fmaxf(a, b);
    case 5: return fminf(a, b);
    case 6: return powf(a, b);
    default: return a;
  }
}

template <typename A, typename B, typename Out>
__global__ void elementwise_kernel(const A* a, const B* b, Out* y, int64_t count, Broadcast s, int op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t index = rest % s.out[d];
      rest /= s.out[d];
      ia += index * s.a_stride[d];
      ib += index * s.b_stride[d];
    }
    store(y, i, binary_op(op, load(a, ia), load(b, ib)));
  }
}

template <typename Index, typename T>
__global__ void conv_epilogue_kernel(T* y, Index count, Index channels, const T* bias, const T* residual,
                                     Activation act) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    float v = load(y, i);
    if (bias) v += load(bias, i % channels);
    if (residual) v += load(residual, i);
    store(y, i, activate(act, v));
  }
}

template <typename T>
__global__ void fill_kernel(T* y, int64_t count, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, value);
}

// SplitMix64 of (seed, index): independent uniform values without state.
__device__ float hash_uniform(uint64_t seed, int64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

template <typename T>
__global__ void fill_random_kernel(T* y, int64_t count, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, lo + (hi - lo) * hash_uniform(seed, i));
}

template <typename T>
__global__ void difference_norms_kernel(const T* a, const T* b, int64_t count, double* sums) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const double x = load(a, i), r = load(b, i);
    diff += (x - r) * (x - r);
    norm += r * r;
  }
  // A warp's sums, then one atomic per warp.
  for (int offset = 16; offset > 0; offset /= 2) {
    diff += __shfl_down_sync(0xffffffffu, diff, offset);
    norm += __shfl_down_sync(0xffffffffu, norm, offset);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(&sums[0], diff);
    atomicAdd(&sums[1], norm);
  }
}

}  // namespace

void launch_scale(const void* x, DType xt, void* y, DType yt, int64_t count, int64_t channels, const ScaleArgs& args,
                  cudaStream_t stream) {
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    dispatch_index(count, [&](auto index) {
      using Index = decltype(index);
      scale_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y),
                                                             Index(count), Index(channels), args);
    });
  });
  EASTRT_LAUNCHED("scale_kernel");
}

void launch_activation(const void* x, DType xt, void* y, DType yt, int64_t count, Activation act, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    activation_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), count,
                                                                act);
  });
  EASTRT_LAUNCHED("activation_kernel");
}

void launch_unary(const void* x, DType xt, void* y, DType yt, int64_t count, int op, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    unary_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), count, op);
  });
  EASTRT_LAUNCHED("unary_kernel");
}

void launch_cast(const void* x, DType xt, void* y, DType yt, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    cast_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), count);
  });
  EASTRT_LAUNCHED("cast_kernel");
}

void launch_elementwise(const void* a, DType at, const void* b, DType bt, void* y, DType yt, const Broadcast& shape,
                        int op, cudaStream_t stream) {
  int64_t count = 1;
  for (int d = 0; d < shape.rank; ++d) count *= shape.out[d];
  if (count == 0) return;
  // Three storage types: dispatch the first two, then the output.
  dispatch_types(at, bt, [&](auto ta, auto tb) {
    using A = decltype(ta);
    using B = decltype(tb);
    dispatch_type(yt, [&](auto to) {
      using Out = decltype(to);
      elementwise_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const A*>(a), static_cast<const B*>(b),
                                                                   static_cast<Out*>(y), count, shape, op);
    });
  });
  EASTRT_LAUNCHED("elementwise_kernel");
}

void launch_conv_epilogue(void* y, DType type, int64_t count, int64_t channels, const void* bias, const void* residual,
                          Activation act, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_type(type, [&](auto t) {
    using T = decltype(t);
    dispatch_index(count, [&](auto index) {
      using Index = decltype(index);
      conv_epilogue_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(y), Index(count), Index(channels),
                                                                     static_cast<const T*>(bias),
                                                                     static_cast<const T*>(residual), act);
    });
  });
  EASTRT_LAUNCHED("conv_epilogue_kernel");
}

void launch_fill(void* y, DType type, int64_t count, float value, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_type(type, [&](auto t) {
    using T = decltype(t);
    fill_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(y), count, value);
  });
  EASTRT_LAUNCHED("fill_kernel");
}

void launch_fill_random(void* y, DType type, int64_t count, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (count == 0) return;
  dispatch_type(type, [&](auto t) {
    using T = decltype(t);
    fill_random_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(y), count, seed, lo, hi);
  });
  EASTRT_LAUNCHED("fill_random_kernel");
}

void launch_difference_norms(const void* a, const void* b, DType type, int64_t count, double* sums,
                             cudaStream_t stream) {
  if (count == 0) return;
  // Whole warps only (the shuffle reduction assumes them); blocks are kThreads, a multiple of 32.
  const unsigned blocks = grid_for(count) < 1024 ? grid_for(count) : 1024;
  dispatch_type(type, [&](auto t) {
    using T = decltype(t);
    difference_norms_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b), count,
                                                             sums);
  });
  EASTRT_LAUNCHED("difference_norms_kernel");
}

}  // namespace eastrt::cuda
