// A direct convolution for few input channels (EAST's conv1: 7x7/2 on 3 channels), depthwise (PP-OCRv4's)
// or 1x1 into few outputs (EAST's score and geometry heads, where cuDNN and cuBLASLt, built for wide
// outputs, move a third of the bandwidth), a tactic the builder times against cuDNN: it reads the unpadded
// input, of either storage type, with any (asymmetric) padding decided in the kernel, so that neither the
// pad copy nor the channels padded to 8 cost anything; bias, residual and activation in its epilogue, as
// conv_epilogue_kernel applies them.
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

constexpr int kOutputsPerThread = 16;  // output channels one thread accumulates
constexpr int kSharedBytes = 48 * 1024;

__host__ __device__ int padded_outputs(int k) { return (k + kOutputsPerThread - 1) / kOutputsPerThread * kOutputsPerThread; }

// Filters in shared memory as float, [tap = (r, s, c)][k rounded up to a multiple of 16, zeros past k], so
// that a thread's 16 outputs for one tap are four float4 loads every thread of a warp shares. One thread per
// output pixel and group of 16 channels, pixels fastest (a warp shares its group's filters).
template <typename In, typename T>
__global__ void direct_conv_kernel(const In* x, const T* filter, const T* bias, const T* residual, T* y,
                                   DirectConvArgs a, Activation act) {
  extern __shared__ float4 shared[];
  float* weights = reinterpret_cast<float*>(shared);
  const int kp = padded_outputs(a.k);
  const int taps = a.r * a.s * a.c;
  for (int i = threadIdx.x; i < taps * kp; i += blockDim.x) {
    const int k = i % kp, tap = i / kp;
    const int ch = tap % a.c, rs = tap / a.c;  // rs = r · s_size + s
    weights[i] = k < a.k ? load(filter, (int64_t(k) * a.r * a.s + rs) * a.filter_c + ch) : 0.0f;
  }
  __syncthreads();

  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const int64_t count = pixels * (kp / kOutputsPerThread);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int k0 = static_cast<int>(i / pixels) * kOutputsPerThread;
    const int64_t pixel = i % pixels;
    const int ow = static_cast<int>(pixel % a.ow);
    const int oh = static_cast<int>(pixel / a.ow % a.oh);
    const int64_t n = pixel / (int64_t(a.ow) * a.oh);
    float acc[kOutputsPerThread];
#pragma unroll
    for (int j = 0; j < kOutputsPerThread; ++j) acc[j] = 0.0f;
    for (int r = 0; r < a.r; ++r) {
      const int ih = oh * a.stride_h - a.pad_top + r * a.dilation_h;
      if (ih < 0 || ih >= a.h) continue;  // a padded row: zeros, nothing to add
      for (int s = 0; s < a.s; ++s) {
        const int iw = ow * a.stride_w - a.pad_left + s * a.dilation_w;
        if (iw < 0 || iw >= a.w) continue;
        const In* px = x + ((n * a.h + ih) * a.w + iw) * a.c;
        const float* tap = weights + ((r * a.s + s) * a.c) * kp + k0;
        for (int ch = 0; ch < a.c; ++ch, tap += kp) {
          const float v = load(px, ch);
#pragma unroll
          for (int j = 0; j < kOutputsPerThread; j += 4) {
            const float4 w = *reinterpret_cast<const float4*>(tap + j);
            acc[j] = fmaf(v, w.x, acc[j]);
            acc[j + 1] = fmaf(v, w.y, acc[j + 1]);
            acc[j + 2] = fmaf(v, w.z, acc[j + 2]);
            acc[j + 3] = fmaf(v, w.w, acc[j + 3]);
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kOutputsPerThread; ++j) {
      const int k = k0 + j;
      if (k >= a.k) break;
      const int64_t at = pixel * a.k + k;
      float v = acc[j];
      if (bias) v += load(bias, k);
      if (residual) v += load(residual, at);
      store(y, at, activate(act, v));
    }
  }
}

// Depthwise: one thread per output element, channels fastest, so that a warp reads consecutive channels of
// one pixel (coalesced, in either storage type) and the filter taps of consecutive channels. cuDNN's grouped
// NHWC convolution is slow here (PP-OCRv4's 14 depthwise layers).
template <typename In, typename T>
__global__ void depthwise_conv_kernel(const In* x, const T* filter, const T* bias, const T* residual, T* y,
                                      DirectConvArgs a, Activation act) {
  const int64_t count = int64_t(a.n) * a.oh * a.ow * a.k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int k = static_cast<int>(i % a.k);
    const int64_t pixel = i / a.k;
    const int ow = static_cast<int>(pixel % a.ow);
    const int oh = static_cast<int>(pixel / a.ow % a.oh);
    const int64_t n = pixel / (int64_t(a.ow) * a.oh);
    float acc = 0.0f;
    for (int r = 0; r < a.r; ++r) {
      const int ih = oh * a.stride_h - a.pad_top + r * a.dilation_h;
      if (ih < 0 || ih >= a.h) continue;
      for (int s = 0; s < a.s; ++s) {
        const int iw = ow * a.stride_w - a.pad_left + s * a.dilation_w;
        if (iw < 0 || iw >= a.w) continue;
        acc = fmaf(load(x, ((n * a.h + ih) * a.w + iw) * a.c + k), load(filter, (int64_t(k) * a.r + r) * a.s + s), acc);
      }
    }
    if (bias) acc += load(bias, k);
    if (residual) acc += load(residual, i);
    store(y, i, activate(act, acc));
  }
}

// The pointwise variant: a thread takes two pixels (blockDim apart, so that a warp's loads of either are
// consecutive), reads their channels in 16-byte packs, a group of kPointwiseGroup packs in flight before any
// arithmetic, and keeps a sum for each of K filters (k rounded up to 1, 2, 4 or 8); the filters, as float
// [channel][K] in shared memory (zeros past k), are the same loads for every thread of a warp.
constexpr int kPointwisePixels = 2, kPointwiseGroup = 4;

template <int K, typename In, typename T>
__global__ void pointwise_conv_kernel(const In* __restrict__ x, const T* __restrict__ filter, const T* __restrict__ bias,
                                      const T* __restrict__ residual, T* __restrict__ y, int64_t pixels, int c, int k,
                                      int filter_c, Activation act) {
  constexpr int kPack = 16 / sizeof(In);  // channels a 16-byte load brings
  __shared__ __align__(16) float w[kPointwiseMaxChannels * K];
  for (int i = threadIdx.x; i < c * K; i += blockDim.x) {
    const int j = i % K, ch = i / K;
    w[i] = j < k ? load(filter, int64_t(j) * filter_c + ch) : 0.0f;
  }
  __syncthreads();
  const int packs = c / kPack;
  const int64_t step = int64_t(gridDim.x) * blockDim.x * kPointwisePixels;
  for (int64_t first = blockIdx.x * int64_t(blockDim.x) * kPointwisePixels + threadIdx.x; first < pixels; first += step) {
    float acc[kPointwisePixels][K] = {};
    for (int pack0 = 0; pack0 < packs; pack0 += kPointwiseGroup) {
      uint4 raw[kPointwisePixels][kPointwiseGroup];
#pragma unroll
      for (int q = 0; q < kPointwisePixels; ++q)
#pragma unroll
        for (int g = 0; g < kPointwiseGroup; ++g) {
          const int64_t p = first + q * int64_t(blockDim.x);
          if (p < pixels && pack0 + g < packs)
            raw[q][g] = __ldg(reinterpret_cast<const uint4*>(x + p * c) + pack0 + g);
        }
#pragma unroll
      for (int g = 0; g < kPointwiseGroup; ++g) {
        if (pack0 + g >= packs) break;
        float v[kPointwisePixels][kPack];
#pragma unroll
        for (int q = 0; q < kPointwisePixels; ++q) unpack<kPack, In>(raw[q][g], v[q]);
        const float* tap = w + (pack0 + g) * kPack * K;
#pragma unroll
        for (int e = 0; e < kPack; ++e)
#pragma unroll
          for (int j = 0; j < K; ++j) {
            const float f = tap[e * K + j];
#pragma unroll
            for (int q = 0; q < kPointwisePixels; ++q) acc[q][j] = fmaf(v[q][e], f, acc[q][j]);
          }
      }
    }
#pragma unroll
    for (int q = 0; q < kPointwisePixels; ++q) {
      const int64_t p = first + q * int64_t(blockDim.x);
      if (p >= pixels) break;
#pragma unroll
      for (int j = 0; j < K; ++j) {
        if (j >= k) break;
        const int64_t at = p * k + j;
        float v = acc[q][j];
        if (bias) v += load(bias, j);
        if (residual) v += load(residual, at);
        store(y, at, activate(act, v));
      }
    }
  }
}

}  // namespace

bool direct_conv_fits(int c, int k, int r, int s, int groups) {
  if (groups > 1) return groups == c && c == k && r >= 1 && s >= 1;  // depthwise
  return groups == 1 && c >= 1 && c <= kDirectConvMaxChannels &&
         int64_t(r) * s * c * padded_outputs(k) * int64_t(sizeof(float)) <= kSharedBytes;
}

void launch_direct_conv(const void* x, DType xt, const void* filter, const void* bias, const void* residual, void* y,
                        DType type, const DirectConvArgs& a, Activation act, cudaStream_t stream) {
  EASTRT_CHECK(direct_conv_fits(a.c, a.k, a.r, a.s, a.groups), "direct convolution: ", a.c, " channels, ", a.k,
               " outputs, ", a.r, "x", a.s, ", ", a.groups, " groups is beyond what it takes");
  if (a.groups > 1) {
    const int64_t count = int64_t(a.n) * a.oh * a.ow * a.k;
    if (count == 0) return;
    dispatch_types(xt, type, [&](auto in, auto out) {
      using In = decltype(in);
      using T = decltype(out);
      depthwise_conv_kernel<<<grid_for(count), kThreads, 0, stream>>>(
          static_cast<const In*>(x), static_cast<const T*>(filter), static_cast<const T*>(bias),
          static_cast<const T*>(residual), static_cast<T*>(y), a, act);
    });
    EASTRT_LAUNCHED("depthwise_conv_kernel");
    return;
  }
  const int64_t count = int64_t(a.n) * a.oh * a.ow * (padded_outputs(a.k) / kOutputsPerThread);
  if (count == 0) return;
  const size_t shared = size_t(a.r) * a.s * a.c * padded_outputs(a.k) * sizeof(float);
  dispatch_types(xt, type, [&](auto in, auto out) {
    using In = decltype(in);
    using T = decltype(out);
    direct_conv_kernel<<<grid_for(count), kThreads, shared, stream>>>(
        static_cast<const In*>(x), static_cast<const T*>(filter), static_cast<const T*>(bias),
        static_cast<const T*>(residual), static_cast<T*>(y), a, act);
  });
  EASTRT_LAUNCHED("direct_conv_kernel");
}

bool pointwise_conv_fits(const DirectConvArgs& a, DType xt) {
  const int pack = xt == DType::kF32 ? 4 : 8;
  return a.groups == 1 && a.r == 1 && a.s == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_top == 0 &&
         a.pad_left == 0 && a.oh == a.h && a.ow == a.w && a.k >= 1 && a.k <= kPointwiseMaxOutputs && a.c >= pack &&
         a.c % pack == 0 && a.c <= kPointwiseMaxChannels && a.filter_c >= a.c;
}

void launch_pointwise_conv(const void* x, DType xt, const void* filter, const void* bias, const void* residual, void* y,
                           DType type, const DirectConvArgs& a, Activation act, cudaStream_t stream) {
  EASTRT_CHECK(pointwise_conv_fits(a, xt), "pointwise convolution: ", a.c, " channels, ", a.k, " outputs, ", a.r, "x",
               a.s, "/", a.stride_h, " is beyond what it takes");
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  if (pixels == 0) return;
  const auto run = [&](auto outputs) {
    constexpr int K = decltype(outputs)::value;
    dispatch_types(xt, type, [&](auto in, auto out) {
      using In = decltype(in);
      using T = decltype(out);
      pointwise_conv_kernel<K><<<grid_for((pixels + kPointwisePixels - 1) / kPointwisePixels), kThreads, 0, stream>>>(
          static_cast<const In*>(x), static_cast<const T*>(filter), static_cast<const T*>(bias),
          static_cast<const T*>(residual), static_cast<T*>(y), pixels, a.c, a.k, a.filter_c, act);
    });
  };
  if (a.k == 1) run(std::integral_constant<int, 1>{});
  else if (a.k == 2) run(std::integral_constant<int, 2>{});
  else if (a.k <= 4) run(std::integral_constant<int, 4>{});
  else run(std::integral_constant<int, 8>{});
  EASTRT_LAUNCHED("pointwise_conv_kernel");
}

}  // namespace eastrt::cuda
