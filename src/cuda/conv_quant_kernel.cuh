// What the two kernels of the quantised convolution share (conv_quant.cu on mma.sync, conv_quant_wgmma.cu on
// Hopper's wgmma): the 8-bit codes and the residual's values, the copy of one reduction step of the implicit
// GEMM into a stage of shared memory, and the epilogue over the finished tile. conv_quant.cu's header comment
// describes the GEMM view.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "cuda/conv_quant.h"
#include "cuda/tensor_core.cuh"

namespace eastrt::cuda::quant_kernel {

constexpr int kOutsideRow = -(1 << 29);  // the input row of a pixel past the end: never inside x

// quantize_int8's rule on y = x / scale: NaN → 0, else clamp to ±127 and round half to even. The
// conversion rounds half to even, saturates to the int range and takes NaN to 0 itself; rounding before
// the clamp gives the same codes, since ±127 are integers.
__device__ __forceinline__ int8_t int8_code(float y) {
  const int code = __float2int_rn(y);
  return static_cast<int8_t>(code < -127 ? -127 : code > 127 ? 127 : code);
}

// float_to_e4m3(y, kSaturate): the hardware's round to nearest even, saturating to ±448; every NaN is
// 0x7f there (cvt could keep a NaN's sign).
__device__ __forceinline__ uint8_t e4m3_code(float y) {
  if (isnan(y)) return 0x7f;
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3));
}

__device__ __forceinline__ float e4m3_value(uint8_t code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));  // exact: E4M3 ⊂ FP16
}

// `inv_scale`: 1 / out_scale (the epilogue multiplies by it rather than dividing: conv_quant.h).
__device__ __forceinline__ void store_output(const QuantConvArgs& a, int64_t at, float v, float inv_scale) {
  switch (a.out_type) {
    case QType::kInt8: static_cast<int8_t*>(a.y)[at] = int8_code(__fmul_rn(v, inv_scale)); break;
    case QType::kE4m3: static_cast<uint8_t*>(a.y)[at] = e4m3_code(__fmul_rn(v, inv_scale)); break;
    case QType::kF16: static_cast<__half*>(a.y)[at] = __float2half_rn(v); break;
    default: static_cast<float*>(a.y)[at] = v; break;
  }
}

// The residual's value at element `at`, in the header's order: code · residual_scale, or the value.
__device__ __forceinline__ float residual_value(const QuantConvArgs& a, int64_t at) {
  switch (a.residual_type) {
    case QType::kInt8:
      return __fmul_rn(static_cast<float>(static_cast<const int8_t*>(a.residual)[at]), a.residual_scale);
    case QType::kE4m3: return __fmul_rn(e4m3_value(static_cast<const uint8_t*>(a.residual)[at]), a.residual_scale);
    case QType::kF16: return __half2float(static_cast<const __half*>(a.residual)[at]);
    default: return static_cast<const float*>(a.residual)[at];
  }
}

// Eight residual values at `at` (a multiple of 8, the residual aligned to 8 elements: the host checked).
__device__ __forceinline__ void residual_values8(const QuantConvArgs& a, int64_t at, float (&r)[8]) {
  switch (a.residual_type) {
    case QType::kInt8:
    case QType::kE4m3: {
      const uint2 word = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(a.residual) + at);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint8_t code = static_cast<uint8_t>((j < 4 ? word.x : word.y) >> (8 * (j % 4)));
        const float value =
            a.residual_type == QType::kInt8 ? static_cast<float>(static_cast<int8_t>(code)) : e4m3_value(code);
        r[j] = __fmul_rn(value, a.residual_scale);
      }
      break;
    }
    case QType::kF16: {
      const uint4 word = *reinterpret_cast<const uint4*>(static_cast<const __half*>(a.residual) + at);
      const uint32_t w[4] = {word.x, word.y, word.z, word.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[j]));
        r[2 * j] = f.x, r[2 * j + 1] = f.y;
      }
      break;
    }
    default: {
      const float4* f = reinterpret_cast<const float4*>(static_cast<const float*>(a.residual) + at);
      const float4 lo = f[0], hi = f[1];
      r[0] = lo.x, r[1] = lo.y, r[2] = lo.z, r[3] = lo.w, r[4] = hi.x, r[5] = hi.y, r[6] = hi.z, r[7] = hi.w;
      break;
    }
  }
}

__device__ __forceinline__ uint8_t code8(const QuantConvArgs& a, float v, float inv_scale) {
  const float y = __fmul_rn(v, inv_scale);
  return a.out_type == QType::kInt8 ? static_cast<uint8_t>(int8_code(y)) : e4m3_code(y);
}

// Eight channels in one (8-bit, FP16) or two (FP32) vector stores; `at` a multiple of 8 and y aligned to
// that (the host checked).
__device__ __forceinline__ void store_output8(const QuantConvArgs& a, int64_t at, const float (&v)[8], float inv_scale) {
  switch (a.out_type) {
    case QType::kInt8:
    case QType::kE4m3: {
      uint2 word = make_uint2(0, 0);
#pragma unroll
      for (int j = 0; j < 8; ++j) (j < 4 ? word.x : word.y) |= uint32_t(code8(a, v[j], inv_scale)) << (8 * (j % 4));
      *reinterpret_cast<uint2*>(static_cast<uint8_t*>(a.y) + at) = word;
      break;
    }
    case QType::kF16: {
      uint32_t w[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const __half2 h = __halves2half2(__float2half_rn(v[2 * j]), __float2half_rn(v[2 * j + 1]));
        w[j] = *reinterpret_cast<const uint32_t*>(&h);
      }
      *reinterpret_cast<uint4*>(static_cast<__half*>(a.y) + at) = make_uint4(w[0], w[1], w[2], w[3]);
      break;
    }
    default: {
      float4* f = reinterpret_cast<float4*>(static_cast<float*>(a.y) + at);
      f[0] = make_float4(v[0], v[1], v[2], v[3]);
      f[1] = make_float4(v[4], v[5], v[6], v[7]);
      break;
    }
  }
}

// What the host found about alignment, for the epilogue's vector accesses.
enum EpilogueFlags : int {
  kVectorStores = 1,    // y_pixel_stride, y_channel_offset multiples of 8, y aligned for 8 elements
  kVectorResidual = 2,  // k a multiple of 8, the residual aligned for 8 elements
};

// The stages of the implicit GEMM. A thread copies bytes 16 · copy .. + 15 of A rows (output pixels) and B
// rows (filters) first_row + i · kRowsPerPass; load() copies reduction step `step` — filter tap (rr, ss),
// channels c0 .. c0 + KS − 1 — zero-filled where the tap falls in the padding, the pixel or the filter is
// past the end, or the channels run out. `offset(row, copy)` says where in a stage's A (or B) rows a copy
// goes: the kernels' shared layouts differ.
template <int BM, int BN, int KS, int kThreads>
struct QuantStages {
  static constexpr int kCopiesPerRow = KS / 16;
  static constexpr int kRowsPerPass = kThreads / kCopiesPerRow;
  static constexpr int kRowsA = BM / kRowsPerPass, kRowsB = BN / kRowsPerPass;
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole rows per thread");

  int h, w, c, k, s;  // of the arguments, what the copies need
  const uint8_t* x;
  const uint8_t* filter;
  int copy, first_row;
  // The pixels of this thread's A rows, decomposed once: the offset in x of tap (0, 0)'s pixel (plus the
  // copy's bytes; outside x where that tap is in the padding, never read there) and its input row / column.
  int64_t a_offset[kRowsA];
  int a_row[kRowsA], a_col[kRowsA];
  int64_t filter_per_k;
  int b_first_k;
  const uint8_t* b_filter;  // read only where inside
  int chunks_per_tap, steps;

  __device__ QuantStages(const QuantConvArgs& args, int64_t block_m, int block_n, int copy_, int first_row_)
      : h(args.h), w(args.w), c(args.c), k(args.k), s(args.s), x(static_cast<const uint8_t*>(args.x)),
        filter(static_cast<const uint8_t*>(args.filter)), copy(copy_), first_row(first_row_) {
    filter_per_k = int64_t(args.r) * args.s * args.c;
    chunks_per_tap = (args.c + KS - 1) / KS;
    steps = args.r * args.s * chunks_per_tap;
    set_tile(args, block_m, block_n);
  }

  // The tile of output pixels block_m .. + BM − 1 and filters block_n .. + BN − 1 (a persistent block's next).
  __device__ void set_tile(const QuantConvArgs& a, int64_t block_m, int block_n) {
    const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
#pragma unroll
    for (int i = 0; i < kRowsA; ++i) {
      const int64_t p = block_m + first_row + i * kRowsPerPass;
      a_offset[i] = 0;
      a_row[i] = kOutsideRow;
      a_col[i] = 0;
      if (p < pixels) {
        const int64_t per_image = int64_t(a.oh) * a.ow;
        const int64_t image = p / per_image;
        const int rest = static_cast<int>(p - image * per_image);
        const int oi = rest / a.ow, oj = rest - oi * a.ow;
        a_row[i] = oi * a.stride_h - a.pad_top;
        a_col[i] = oj * a.stride_w - a.pad_left;
        a_offset[i] = ((image * a.h + a_row[i]) * a.w + a_col[i]) * a.c + copy * 16;
      }
    }
    b_first_k = block_n + first_row;
    b_filter = filter + int64_t(b_first_k) * filter_per_k + copy * 16;
  }

  template <typename Offset>
  __device__ void load(uint8_t* sa, uint8_t* sb, int step, const Offset& offset) const {
    const int tap = step / chunks_per_tap;
    const int c0 = (step - tap * chunks_per_tap) * KS;
    const int rr = tap / s, ss = tap - rr * s;
    const bool channels_inside = c0 + copy * 16 < c;
    const int64_t tap_offset = (int64_t(rr) * w + ss) * c + c0;  // the same for every pixel
#pragma unroll
    for (int i = 0; i < kRowsA; ++i) {
      const int ih = a_row[i] + rr, iw = a_col[i] + ss;
      const bool inside = channels_inside && unsigned(ih) < unsigned(h) && unsigned(iw) < unsigned(w);
      const uint8_t* src = inside ? x + a_offset[i] + tap_offset : x;
      cp_async_16(sa + offset(first_row + i * kRowsPerPass, copy), src, inside);
    }
#pragma unroll
    for (int i = 0; i < kRowsB; ++i) {
      const bool inside = channels_inside && b_first_k + i * kRowsPerPass < k;
      const uint8_t* src = inside ? b_filter + i * kRowsPerPass * filter_per_k + int64_t(tap) * c + c0 : filter;
      cp_async_16(sb + offset(first_row + i * kRowsPerPass, copy), src, inside);
    }
  }
};

// The finished tile goes through shared memory as 32-bit accumulators (INT32 or FP32), rows BN + 8 words
// apart: a warp's two-word stores of rows g (and g + 8), words 2t, 2t + 1 then fall on distinct banks for
// each half-warp.
template <int BN>
constexpr int kStagedPitch = BN + 8;
template <int BM, int BN>
constexpr int staging_bytes() { return BM * kStagedPitch<BN> * 4; }

// Four accumulators in the mma.sync m16n8 layout (rows `row` and row + 8, columns `col` and col + 1, as
// wgmma's too) into the staged tile.
template <int BN, typename Acc>
__device__ __forceinline__ void stage_quad(Acc* staged, int row, int col, Acc v0, Acc v1, Acc v2, Acc v3) {
  Acc* p = staged + row * kStagedPitch<BN> + col;
  p[0] = v0, p[1] = v1;
  p[8 * kStagedPitch<BN>] = v2, p[8 * kStagedPitch<BN> + 1] = v3;
}

// The epilogue over the staged BM x BN tile at output pixel block_m, channel block_n: each thread 8
// consecutive channels (fixed, so scale and bias are read once) of every kRowsOut-th row; `a` comes with
// y_pixel_stride resolved.
template <int BM, int BN, int kThreads, bool kFp8>
__device__ void quant_epilogue(const QuantConvArgs& a, int flags, const void* staged_tile, int64_t block_m, int block_n) {
  using Acc = std::conditional_t<kFp8, float, int>;
  const Acc* staged = static_cast<const Acc*>(staged_tile);
  constexpr int kGroups = BN / 8;
  constexpr int kRowsOut = kThreads / kGroups;
  static_assert(BN % 8 == 0 && kThreads % kGroups == 0, "epilogue threads");
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const int tid = threadIdx.x;
  const int col = (tid % kGroups) * 8;
  const int kk0 = block_n + col;
  if (kk0 >= a.k) return;
  const int valid = a.k - kk0 < 8 ? a.k - kk0 : 8;  // channels of the 8 that exist
  float scale[8], bias[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    scale[j] = j < valid ? __ldg(a.scale + kk0 + j) : 0.0f;
    bias[j] = j < valid && a.bias ? __ldg(a.bias + kk0 + j) : 0.0f;
  }
  const float inv_scale = __frcp_rn(a.out_scale);
  const bool vector_store = valid == 8 && (flags & kVectorStores);
  const bool vector_residual = valid == 8 && (flags & kVectorResidual);
  for (int r = tid / kGroups; r < BM; r += kRowsOut) {
    const int64_t pixel = block_m + r;
    if (pixel >= pixels) break;
    const Acc* p = staged + r * kStagedPitch<BN> + col;
    const uint4 lo = *reinterpret_cast<const uint4*>(p), hi = *reinterpret_cast<const uint4*>(p + 4);
    const uint32_t words[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float sum = kFp8 ? __uint_as_float(words[j]) : static_cast<float>(static_cast<int>(words[j]));
      v[j] = __fmaf_rn(sum, scale[j], bias[j]);
    }
    if (a.residual) {
      const int64_t at = pixel * a.k + kk0;
      float res[8];
      if (vector_residual) {
        residual_values8(a, at, res);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) res[j] = j < valid ? residual_value(a, at + j) : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = __fadd_rn(v[j], res[j]);
    }
    if (a.act.type == 0) {
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
    }
    const int64_t at = pixel * a.y_pixel_stride + a.y_channel_offset + kk0;
    if (vector_store) {
      store_output8(a, at, v, inv_scale);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (j < valid) store_output(a, at + j, v[j], inv_scale);
    }
  }
}

}  // namespace eastrt::cuda::quant_kernel

namespace eastrt::cuda {

// conv_quant_wgmma.cu (sm_90a alone): the INT8 convolution with wgmma products, tiles of 128 pixels by `bn`
// (64 or 128) filters; `a` comes with y_pixel_stride resolved and `flags` as for the mma.sync kernel.
void launch_quant_conv_wgmma(const QuantConvArgs& a, int bn, int flags, cudaStream_t stream);

}  // namespace eastrt::cuda
