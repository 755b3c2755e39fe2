// The INT8 / FP8-E4M3 convolution of conv_quant.h as an implicit GEMM on the tensor cores (mma.sync
// m16n8k32), and the quantise / dequantise passes with src/quant/quantize.cpp's rounding.
//
// GEMM view: M = n·oh·ow output pixels (rows of A), N = k output channels (columns of B), reduction over
// (tap, channel). A block computes a BM × BN tile; each step of the reduction is one filter tap and 64 of
// its channels, so that both operands are contiguous along the reduction (x is NHWC, the filter KRSC) and
// every row of a stage is four 16-byte cp.async copies, zero-filled where the tap falls in the padding, the
// pixel or the output channel is past the end, or the channels run out (c is a multiple of 16).
#include "cuda/conv_quant.h"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"

namespace eastrt::cuda {
namespace {

constexpr int kStageK = 64;  // bytes (= channels) of the reduction per stage
// Shared rows are 80 bytes apart, not 64: a fragment load reads 4 bytes at row g (0..7), byte 4·t (t 0..3),
// i.e. word 20·g + t, and 20·g mod 32 = 0, 20, 8, 28, 16, 4, 24, 12 puts the 32 lanes on 32 different
// banks (with 64 bytes, rows g and g + 2 would collide). 80 keeps every 16-byte copy aligned.
constexpr int kRowBytes = kStageK + 16;
constexpr int kOutsideRow = -(1 << 29);  // the input row of a pixel past the end: never inside x

// ---- Device pieces ----

__device__ __forceinline__ void cp_async_16(void* shared, const void* global, bool copy) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  // src-size 0 reads nothing and fills the 16 bytes with zeros: the padding and everything out of range.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(copy ? 16 : 0)
               : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

// D = A·B + D for one 16x8x32 tile. Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k32", 8-bit types),
// g = lane / 4, t = lane % 4, the lowest byte of a register the lowest column / row:
//   a[0]: A row g,     columns 4t..4t+3;   a[1]: row g + 8, the same;
//   a[2]: A row g,     columns 16+4t..;    a[3]: row g + 8, the same;
//   b[0]: B column g,  rows 4t..4t+3;      b[1]: column g, rows 16+4t..;
//   d[0], d[1]: row g, columns 2t, 2t+1;   d[2], d[3]: row g + 8, the same.
__device__ __forceinline__ void mma_k32(int (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

__device__ __forceinline__ void mma_k32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// quantize_int8's rule on y = x / scale: NaN → 0, else clamp to ±127 and round half to even.
__device__ __forceinline__ int8_t int8_code(float y) {
  if (isnan(y)) return 0;
  return static_cast<int8_t>(__float2int_rn(fminf(fmaxf(y, -127.0f), 127.0f)));
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

// One value of the epilogue before the output's conversion, in the order the header states (explicit
// roundings, so that nvcc cannot contract them into other FMAs than this one).
__device__ __forceinline__ float epilogue_value(const QuantConvArgs& a, float acc, int64_t pixel, int kk) {
  float v = __fmaf_rn(acc, __ldg(a.scale + kk), a.bias ? __ldg(a.bias + kk) : 0.0f);
  if (a.residual) {
    const int64_t at = pixel * a.k + kk;
    float r;
    switch (a.residual_type) {
      case QType::kInt8:
        r = __fmul_rn(static_cast<float>(static_cast<const int8_t*>(a.residual)[at]), a.residual_scale);
        break;
      case QType::kE4m3: r = __fmul_rn(e4m3_value(static_cast<const uint8_t*>(a.residual)[at]), a.residual_scale); break;
      case QType::kF16: r = __half2float(static_cast<const __half*>(a.residual)[at]); break;
      default: r = static_cast<const float*>(a.residual)[at]; break;
    }
    v = __fadd_rn(v, r);
  }
  if (a.act.type == 0) v = v > 0.0f ? v : 0.0f;
  return v;
}

__device__ __forceinline__ void store_output(const QuantConvArgs& a, int64_t at, float v) {
  switch (a.out_type) {
    case QType::kInt8: static_cast<int8_t*>(a.y)[at] = int8_code(__fdiv_rn(v, a.out_scale)); break;
    case QType::kE4m3: static_cast<uint8_t*>(a.y)[at] = e4m3_code(__fdiv_rn(v, a.out_scale)); break;
    case QType::kF16: static_cast<__half*>(a.y)[at] = __float2half_rn(v); break;
    default: static_cast<float*>(a.y)[at] = v; break;
  }
}

// Two adjacent channels in one store; `at` is even and y aligned to two elements (the host checked).
__device__ __forceinline__ void store_output_pair(const QuantConvArgs& a, int64_t at, float v0, float v1) {
  switch (a.out_type) {
    case QType::kInt8: {
      const uint8_t c0 = static_cast<uint8_t>(int8_code(__fdiv_rn(v0, a.out_scale)));
      const uint8_t c1 = static_cast<uint8_t>(int8_code(__fdiv_rn(v1, a.out_scale)));
      reinterpret_cast<uint16_t*>(static_cast<uint8_t*>(a.y) + at)[0] = static_cast<uint16_t>(c0 | (c1 << 8));
      break;
    }
    case QType::kE4m3: {
      const uint8_t c0 = e4m3_code(__fdiv_rn(v0, a.out_scale)), c1 = e4m3_code(__fdiv_rn(v1, a.out_scale));
      reinterpret_cast<uint16_t*>(static_cast<uint8_t*>(a.y) + at)[0] = static_cast<uint16_t>(c0 | (c1 << 8));
      break;
    }
    case QType::kF16:
      reinterpret_cast<__half2*>(static_cast<__half*>(a.y) + at)[0] = __halves2half2(__float2half_rn(v0), __float2half_rn(v1));
      break;
    default: reinterpret_cast<float2*>(static_cast<float*>(a.y) + at)[0] = make_float2(v0, v1); break;
  }
}

// ---- The convolution ----

// BM × BN block tile, warps of WM × WN (WM / 16 by WN / 8 mma tiles each), two stages in shared memory.
// `a` comes with y_pixel_stride resolved; pair_stores says the output may be written two channels at once.
template <int BM, int BN, int WM, int WN, bool kFp8>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32)
    quant_conv_kernel(const QuantConvArgs a, const bool pair_stores) {
  constexpr int kWarpsN = BN / WN;
  constexpr int kBlockThreads = (BM / WM) * kWarpsN * 32;
  constexpr int kTilesM = WM / 16, kTilesN = WN / 8;
  constexpr int kCopiesPerRow = kStageK / 16;
  constexpr int kRowsPerPass = kBlockThreads / kCopiesPerRow;  // rows of a stage one pass of the block copies
  constexpr int kRowsA = BM / kRowsPerPass, kRowsB = BN / kRowsPerPass;
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 8 == 0, "tile shape");
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole rows per thread");
  using Acc = std::conditional_t<kFp8, float, int>;

  __shared__ __align__(16) uint8_t tile_a[2][BM * kRowBytes];
  __shared__ __align__(16) uint8_t tile_b[2][BN * kRowBytes];

  const uint8_t* x = static_cast<const uint8_t*>(a.x);
  const uint8_t* filter = static_cast<const uint8_t*>(a.filter);
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const int64_t block_m = int64_t(blockIdx.x) * BM;
  const int block_n = blockIdx.y * BN;
  const int tid = threadIdx.x;
  const int copy = tid % kCopiesPerRow;  // which 16 bytes of its rows this thread copies
  const int first_row = tid / kCopiesPerRow;

  // The pixels of this thread's A rows, decomposed once: their image's first byte (plus the copy's
  // offset) and the input row / column of tap (0, 0).
  const uint8_t* a_image[kRowsA];
  int a_row[kRowsA], a_col[kRowsA];
#pragma unroll
  for (int i = 0; i < kRowsA; ++i) {
    const int64_t p = block_m + first_row + i * kRowsPerPass;
    a_image[i] = x;
    a_row[i] = kOutsideRow;
    a_col[i] = 0;
    if (p < pixels) {
      const int64_t per_image = int64_t(a.oh) * a.ow;
      const int64_t image = p / per_image;
      const int rest = static_cast<int>(p - image * per_image);
      const int oi = rest / a.ow, oj = rest - oi * a.ow;
      a_image[i] = x + image * a.h * a.w * a.c + copy * 16;
      a_row[i] = oi * a.stride_h - a.pad_top;
      a_col[i] = oj * a.stride_w - a.pad_left;
    }
  }
  const int64_t filter_per_k = int64_t(a.r) * a.s * a.c;
  const uint8_t* b_filter[kRowsB];
  bool b_inside[kRowsB];
#pragma unroll
  for (int i = 0; i < kRowsB; ++i) {
    const int kk = block_n + first_row + i * kRowsPerPass;
    b_inside[i] = kk < a.k;
    b_filter[i] = b_inside[i] ? filter + kk * filter_per_k + copy * 16 : filter;
  }

  const int chunks_per_tap = (a.c + kStageK - 1) / kStageK;
  const int steps = a.r * a.s * chunks_per_tap;

  // Step `step` = tap (rr, ss) and channels c0 .. c0 + 63 into stage `stage`.
  auto load_stage = [&](int stage, int step) {
    const int tap = step / chunks_per_tap;
    const int c0 = (step - tap * chunks_per_tap) * kStageK;
    const int rr = tap / a.s, ss = tap - rr * a.s;
    const bool channels_inside = c0 + copy * 16 < a.c;
#pragma unroll
    for (int i = 0; i < kRowsA; ++i) {
      const int ih = a_row[i] + rr, iw = a_col[i] + ss;
      const bool inside = channels_inside && unsigned(ih) < unsigned(a.h) && unsigned(iw) < unsigned(a.w);
      const uint8_t* src = inside ? a_image[i] + (int64_t(ih) * a.w + iw) * a.c + c0 : x;
      cp_async_16(&tile_a[stage][(first_row + i * kRowsPerPass) * kRowBytes + copy * 16], src, inside);
    }
#pragma unroll
    for (int i = 0; i < kRowsB; ++i) {
      const bool inside = channels_inside && b_inside[i];
      const uint8_t* src = inside ? b_filter[i] + int64_t(tap) * a.c + c0 : filter;
      cp_async_16(&tile_b[stage][(first_row + i * kRowsPerPass) * kRowBytes + copy * 16], src, inside);
    }
  };

  const int warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;
  const int warp_m = (warp / kWarpsN) * WM, warp_n = (warp % kWarpsN) * WN;

  Acc acc[kTilesM][kTilesN][4];
#pragma unroll
  for (int mt = 0; mt < kTilesM; ++mt)
#pragma unroll
    for (int nt = 0; nt < kTilesN; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = Acc(0);

  load_stage(0, 0);
  cp_async_commit();
  for (int step = 0; step < steps; ++step) {
    // The next stage's copies go out before this one is consumed; a group is committed every step (an
    // empty one at the end) so that "all but the newest group" is always this step's.
    if (step + 1 < steps) load_stage((step + 1) & 1, step + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const uint8_t* sa = tile_a[step & 1];
    const uint8_t* sb = tile_b[step & 1];
#pragma unroll
    for (int k32 = 0; k32 < kStageK; k32 += 32) {  // the two mma steps of a stage
      uint32_t fa[kTilesM][4], fb[kTilesN][2];
#pragma unroll
      for (int mt = 0; mt < kTilesM; ++mt) {
        const uint8_t* p = sa + (warp_m + mt * 16 + g) * kRowBytes + k32 + t * 4;
        fa[mt][0] = *reinterpret_cast<const uint32_t*>(p);
        fa[mt][1] = *reinterpret_cast<const uint32_t*>(p + 8 * kRowBytes);
        fa[mt][2] = *reinterpret_cast<const uint32_t*>(p + 16);
        fa[mt][3] = *reinterpret_cast<const uint32_t*>(p + 8 * kRowBytes + 16);
      }
#pragma unroll
      for (int nt = 0; nt < kTilesN; ++nt) {
        const uint8_t* p = sb + (warp_n + nt * 8 + g) * kRowBytes + k32 + t * 4;
        fb[nt][0] = *reinterpret_cast<const uint32_t*>(p);
        fb[nt][1] = *reinterpret_cast<const uint32_t*>(p + 16);
      }
#pragma unroll
      for (int mt = 0; mt < kTilesM; ++mt)
#pragma unroll
        for (int nt = 0; nt < kTilesN; ++nt) mma_k32(acc[mt][nt], fa[mt], fb[nt]);
    }
    __syncthreads();  // the stage just read is the one the next step's copies overwrite
  }

#pragma unroll
  for (int mt = 0; mt < kTilesM; ++mt)
#pragma unroll
    for (int upper = 0; upper < 2; ++upper) {  // accumulator registers 0, 1 (row g) or 2, 3 (row g + 8)
      const int64_t pixel = block_m + warp_m + mt * 16 + g + upper * 8;
      if (pixel >= pixels) continue;
      const int64_t row = pixel * a.y_pixel_stride + a.y_channel_offset;
#pragma unroll
      for (int nt = 0; nt < kTilesN; ++nt) {
        const int kk = block_n + warp_n + nt * 8 + t * 2;
        if (kk >= a.k) continue;
        const float v0 = epilogue_value(a, static_cast<float>(acc[mt][nt][upper * 2]), pixel, kk);
        if (kk + 1 < a.k) {
          const float v1 = epilogue_value(a, static_cast<float>(acc[mt][nt][upper * 2 + 1]), pixel, kk + 1);
          if (pair_stores) {
            store_output_pair(a, row + kk, v0, v1);
          } else {
            store_output(a, row + kk, v0);
            store_output(a, row + kk + 1, v1);
          }
        } else {
          store_output(a, row + kk, v0);
        }
      }
    }
}

// ---- Variants ----

struct Variant {
  const char* name;
  int bm, bn;
  int min_pixels, min_k;  // below these a smaller tile does the same work with less waste
};
constexpr Variant kVariants[] = {
    {"q128x128_w64x32", 128, 128, 65, 65},
    {"q128x64_w64x32", 128, 64, 65, 1},
    {"q64x64_w32x32", 64, 64, 1, 1},
};
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);

template <int BM, int BN, int WM, int WN>
void launch_tile(const QuantConvArgs& a, bool pair_stores, cudaStream_t stream) {
  constexpr int threads = (BM / WM) * (BN / WN) * 32;
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const dim3 grid(static_cast<unsigned>((pixels + BM - 1) / BM), static_cast<unsigned>((a.k + BN - 1) / BN));
  if (a.in_type == QType::kE4m3)
    quant_conv_kernel<BM, BN, WM, WN, true><<<grid, threads, 0, stream>>>(a, pair_stores);
  else
    quant_conv_kernel<BM, BN, WM, WN, false><<<grid, threads, 0, stream>>>(a, pair_stores);
}

// What the GPU in use can run, asked once per device: the compute capability and whether this build
// holds a kernel image for it (sm_90 code and compute_90 PTX run on sm_90 and later only).
struct DeviceAbility {
  bool known = false;
  int capability = 0;  // major · 10 + minor
  bool image = false;
};

const char* device_refusal(QType in_type) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    // No GPU at all: the answer is the arguments' alone (a plan lowered on the host, in tests); a launch here
    // fails with CUDA's own error.
    cudaGetLastError();  // leave no error behind for the next launch check
    return nullptr;
  }
  static std::mutex mutex;
  static std::vector<DeviceAbility> abilities;
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= abilities.size()) abilities.resize(device + 1);
  DeviceAbility& ability = abilities[device];
  if (!ability.known) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
      cudaGetLastError();
      major = minor = 0;
    }
    ability.capability = major * 10 + minor;
    cudaFuncAttributes attributes;
    ability.image = cudaFuncGetAttributes(&attributes, quant_conv_kernel<64, 64, 32, 32, false>) == cudaSuccess;
    if (!ability.image) cudaGetLastError();
    ability.known = true;
  }
  if (ability.capability < 80) return "the GPU has no 8-bit tensor-core mma (needs compute capability 8.0 or later)";
  if (in_type == QType::kE4m3 && ability.capability < 89)
    return "the GPU has no FP8 tensor-core mma (E4M3 needs compute capability 8.9 or later)";
  if (!ability.image) return "this build holds no kernel image for the GPU (it is built for sm_90 and later)";
  return nullptr;
}

bool valid_qtype(QType type) { return type == QType::kInt8 || type == QType::kE4m3 || type == QType::kF16 || type == QType::kF32; }

bool refuse(const char** why, const char* reason) {
  if (why) *why = reason;
  return false;
}

// ---- Quantise / dequantise ----

constexpr int kPack = 4;  // values per thread and step: 4 codes are one 32-bit word

template <typename In, bool kFp8>
__global__ void quantize_kernel(const In* x, uint8_t* y, int64_t count, float scale, bool packed) {
  const int64_t packs = (count + kPack - 1) / kPack;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q * kPack;
    auto code = [&](float v) -> uint8_t {
      const float s = __fdiv_rn(v, scale);  // quantize.cpp divides; so do we, for the same codes
      return kFp8 ? e4m3_code(s) : static_cast<uint8_t>(int8_code(s));
    };
    if (packed && i + kPack <= count) {
      float v[kPack];
      load_pack<kPack>(x + i, v);
      uint32_t word = 0;
#pragma unroll
      for (int j = 0; j < kPack; ++j) word |= uint32_t(code(v[j])) << (8 * j);
      *reinterpret_cast<uint32_t*>(y + i) = word;
    } else {
      for (int64_t j = i; j < count && j < i + kPack; ++j) y[j] = code(load(x, j));
    }
  }
}

template <typename Out, bool kFp8>
__global__ void dequantize_kernel(const uint8_t* x, Out* y, int64_t count, float scale, bool packed) {
  const int64_t packs = (count + kPack - 1) / kPack;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q * kPack;
    auto value = [&](uint8_t code) {
      const float v = kFp8 ? e4m3_value(code) : static_cast<float>(static_cast<int8_t>(code));
      return __fmul_rn(v, scale);
    };
    if (packed && i + kPack <= count) {
      const uint32_t word = *reinterpret_cast<const uint32_t*>(x + i);
      float v[kPack];
#pragma unroll
      for (int j = 0; j < kPack; ++j) v[j] = value(static_cast<uint8_t>(word >> (8 * j)));
      store_pack<kPack>(y + i, v);
    } else {
      for (int64_t j = i; j < count && j < i + kPack; ++j) store(y, j, value(x[j]));
    }
  }
}

const char* qtype_name(QType type) {
  switch (type) {
    case QType::kInt8: return "INT8";
    case QType::kE4m3: return "E4M3";
    case QType::kF16: return "FP16";
    case QType::kF32: return "FP32";
  }
  return "an unknown type";
}

}  // namespace

bool quant_conv_supports(const QuantConvArgs& a, const char** why) {
  if (!is_8bit(a.in_type)) return refuse(why, "the input and filter must be INT8 or E4M3 codes");
  if (a.n < 1 || a.h < 1 || a.w < 1 || a.c < 1 || a.k < 1 || a.r < 1 || a.s < 1 || a.oh < 1 || a.ow < 1 ||
      a.stride_h < 1 || a.stride_w < 1 || a.pad_top < 0 || a.pad_left < 0)
    return refuse(why, "a size, stride or padding is not positive");
  if (a.c % 16 != 0)
    return refuse(why, "the input channels must be a multiple of 16 (each pixel's channels are copied in 16-byte pieces)");
  if (a.act.type != -1 && a.act.type != 0) return refuse(why, "only ReLU or no activation is fused");
  if (!valid_qtype(a.out_type)) return refuse(why, "the output type is not one of INT8, E4M3, FP16, FP32");
  if (a.residual && !valid_qtype(a.residual_type))
    return refuse(why, "the residual type is not one of INT8, E4M3, FP16, FP32");
  if (is_8bit(a.out_type) && !(std::isfinite(a.out_scale) && a.out_scale > 0))
    return refuse(why, "an 8-bit output needs a finite, positive out_scale");
  if (a.residual && is_8bit(a.residual_type) && !std::isfinite(a.residual_scale))
    return refuse(why, "an 8-bit residual needs a finite residual_scale");
  if (a.y_channel_offset < 0 || (a.y_pixel_stride != 0 && a.y_pixel_stride < a.y_channel_offset + a.k))
    return refuse(why, "the output slice (y_channel_offset + k) does not fit in y_pixel_stride");
  if (int64_t(a.n) * a.oh * a.ow > (int64_t(1) << 31) - 1) return refuse(why, "more than 2^31 - 1 output pixels");
  if (a.k > 65535 * 64) return refuse(why, "too many output channels for the grid");
  if ((a.x && !aligned_to(a.x, 16)) || (a.filter && !aligned_to(a.filter, 16)))
    return refuse(why, "x and the filter must be 16-byte aligned");
  if (const char* reason = device_refusal(a.in_type)) return refuse(why, reason);
  return true;
}

int quant_conv_variants() { return kVariantCount; }

const char* quant_conv_variant_name(int variant) {
  return variant >= 0 && variant < kVariantCount ? kVariants[variant].name : "none";
}

bool quant_conv_variant_applies(const QuantConvArgs& a, int variant) {
  if (variant < 0 || variant >= kVariantCount || !quant_conv_supports(a)) return false;
  return int64_t(a.n) * a.oh * a.ow >= kVariants[variant].min_pixels && a.k >= kVariants[variant].min_k;
}

void launch_quant_conv(const QuantConvArgs& args, int variant, cudaStream_t stream) {
  const char* why = nullptr;
  if (!quant_conv_supports(args, &why))
    throw_error("quantised convolution (", qtype_name(args.in_type), ", c ", args.c, ", k ", args.k, ", ", args.r, "x",
                args.s, "): ", why);
  if (!quant_conv_variant_applies(args, variant))
    throw_error("quantised convolution: variant ", variant, " (", quant_conv_variant_name(variant),
                ") does not apply to ", args.n, "x", args.oh, "x", args.ow, " pixels, k ", args.k);
  EASTRT_CHECK(args.x && args.filter && args.scale && args.y, "quantised convolution: x, filter, scale or y is null");
  QuantConvArgs a = args;
  if (a.y_pixel_stride == 0) a.y_pixel_stride = a.k;
  const bool pair_stores =
      a.y_pixel_stride % 2 == 0 && a.y_channel_offset % 2 == 0 && aligned_to(a.y, 2 * qtype_size(a.out_type));
  switch (variant) {
    case 0: launch_tile<128, 128, 64, 32>(a, pair_stores, stream); break;
    case 1: launch_tile<128, 64, 64, 32>(a, pair_stores, stream); break;
    default: launch_tile<64, 64, 32, 32>(a, pair_stores, stream); break;
  }
  EASTRT_LAUNCHED("quant_conv_kernel");
}

void launch_quantize(const void* x, QType xt, void* y, QType yt, int64_t count, float scale, cudaStream_t stream) {
  EASTRT_CHECK((xt == QType::kF16 || xt == QType::kF32) && is_8bit(yt), "quantise: ", qtype_name(xt), " to ",
               qtype_name(yt), " is not a quantisation (FP16/FP32 to INT8/E4M3)");
  EASTRT_CHECK(std::isfinite(scale) && scale > 0, "quantise: scale ", scale, " is not finite and positive");
  if (count <= 0) return;
  const bool packed = aligned_to(x, kPack * qtype_size(xt)) && aligned_to(y, kPack);
  const unsigned grid = grid_for((count + kPack - 1) / kPack);
  uint8_t* out = static_cast<uint8_t*>(y);
  const bool fp8 = yt == QType::kE4m3;
  if (xt == QType::kF32) {
    const float* in = static_cast<const float*>(x);
    if (fp8) quantize_kernel<float, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
    else quantize_kernel<float, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
  } else {
    const __half* in = static_cast<const __half*>(x);
    if (fp8) quantize_kernel<__half, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
    else quantize_kernel<__half, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
  }
  EASTRT_LAUNCHED("quantize_kernel");
}

void launch_dequantize(const void* x, QType xt, void* y, QType yt, int64_t count, float scale, cudaStream_t stream) {
  EASTRT_CHECK(is_8bit(xt) && (yt == QType::kF16 || yt == QType::kF32), "dequantise: ", qtype_name(xt), " to ",
               qtype_name(yt), " is not a dequantisation (INT8/E4M3 to FP16/FP32)");
  EASTRT_CHECK(std::isfinite(scale), "dequantise: scale ", scale, " is not finite");
  if (count <= 0) return;
  const bool packed = aligned_to(x, kPack) && aligned_to(y, kPack * qtype_size(yt));
  const unsigned grid = grid_for((count + kPack - 1) / kPack);
  const uint8_t* in = static_cast<const uint8_t*>(x);
  const bool fp8 = xt == QType::kE4m3;
  if (yt == QType::kF32) {
    float* out = static_cast<float*>(y);
    if (fp8) dequantize_kernel<float, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
    else dequantize_kernel<float, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
  } else {
    __half* out = static_cast<__half*>(y);
    if (fp8) dequantize_kernel<__half, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
    else dequantize_kernel<__half, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, packed);
  }
  EASTRT_LAUNCHED("dequantize_kernel");
}

}  // namespace eastrt::cuda
