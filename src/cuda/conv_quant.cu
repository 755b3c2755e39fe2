// The INT8 / FP8-E4M3 convolution of conv_quant.h as an implicit GEMM on the tensor cores (mma.sync
// m16n8k32), and the quantise / dequantise passes with src/quant/quantize.cpp's rounding.
//
// GEMM view: M = n·oh·ow output pixels (rows of A), N = k output channels (columns of B), reduction over
// (tap, channel). A block computes a BM × BN tile; each step of the reduction is one filter tap and KS (64, or
// 128 where c is a multiple of 128) of its channels, so that both operands are contiguous along the
// reduction (x is NHWC, the filter KRSC) and every row of a stage is KS / 16 16-byte cp.async copies,
// zero-filled where the tap falls in the padding, the pixel or the output channel is past the end, or the
// channels run out (c is a multiple of 16). Stages go round a ring of kStages buffers (one barrier a step),
// fragments come from shared memory by ldmatrix, and the finished tile goes back through shared memory so
// that the epilogue reads and writes 8 channels at once.
#include "cuda/conv_quant.h"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "cuda/conv_quant_kernel.cuh"
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/sm90a.h"
#include "cuda/tensor_core.cuh"

namespace eastrt::cuda {
namespace {

using namespace quant_kernel;

constexpr int kStages = 3;  // the cp.async ring: two stages in flight while the third is consumed
// A stage's shared rows are KS + 16 bytes apart: ldmatrix reads 8 rows of 16 bytes at a time, and with a
// pitch of 80 (5 · 16) or 144 (9 · 16) bytes those 8 rows start in 8 different 16-byte bank groups
// (5·i mod 8 and 9·i mod 8 are permutations of 0..7); every 16-byte copy stays aligned.
template <int KS>
constexpr int kRowBytes = KS + 16;

// ---- Device pieces ----

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

template <int BM, int BN, int KS>
constexpr int pipeline_bytes() { return kStages * (BM + BN) * kRowBytes<KS>; }
template <int BM, int BN, int KS>
constexpr int shared_bytes() {
  return pipeline_bytes<BM, BN, KS>() > staging_bytes<BM, BN>() ? pipeline_bytes<BM, BN, KS>() : staging_bytes<BM, BN>();
}

// BM × BN block tile, warps of WM × WN (WM / 16 by WN / 8 mma tiles each), KS channels per stage, kStages
// stages in dynamic shared memory (shared_bytes). `a` comes with y_pixel_stride resolved.
template <int BM, int BN, int WM, int WN, int KS, bool kFp8>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32)
    quant_conv_kernel(const QuantConvArgs a, const int flags) {
  constexpr int kWarpsN = BN / WN;
  constexpr int kBlockThreads = (BM / WM) * kWarpsN * 32;
  constexpr int kTilesM = WM / 16, kTilesN = WN / 8;
  constexpr int kRow = kRowBytes<KS>;
  constexpr int kStageBytes = (BM + BN) * kRow;
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "tile shape");
  static_assert(KS % 32 == 0, "stage shape");
  using Acc = std::conditional_t<kFp8, float, int>;

  extern __shared__ __align__(16) uint8_t shared[];
  // Stage i: A rows at shared + i · kStageBytes, B rows after them.

  const int64_t block_m = int64_t(blockIdx.x) * BM;
  const int block_n = blockIdx.y * BN;
  const int tid = threadIdx.x;
  const QuantStages<BM, BN, KS, kBlockThreads> stages(a, block_m, block_n, tid % (KS / 16), tid / (KS / 16));
  const int steps = stages.steps;
  const unsigned shared_address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  // Rows kRow bytes apart, A's then B's.
  auto load_stage = [&](int stage, int step) {
    uint8_t* sa = shared + stage * kStageBytes;
    stages.load(sa, sa + BM * kRow, step, [](int row, int copy) { return row * kRow + copy * 16; });
  };

  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = (warp / kWarpsN) * WM, warp_n = (warp % kWarpsN) * WN;
  // ldmatrix.x4 takes the rows of its four 8x8 (b16) matrices from lanes 8j .. 8j + 7 and gives lane l row
  // l / 4, bytes 4 (l % 4) .. + 3 of matrix j in register j: the 8-bit m16n8k32 fragments (see mma_k32) when
  // A's matrices are (rows 0-7, bytes 0-15), (rows 8-15, 0-15), (rows 0-7, 16-31), (rows 8-15, 16-31) and
  // B's, for two n tiles, (n 0-7, bytes 0-15), (n 0-7, 16-31), (n 8-15, 0-15), (n 8-15, 16-31).
  const int a_lane = (warp_m + (lane & 7) + ((lane >> 3) & 1) * 8) * kRow + (lane >> 4) * 16;
  const int b_lane = BM * kRow + (warp_n + (lane & 7) + (lane >> 4) * 8) * kRow + ((lane >> 3) & 1) * 16;

  Acc acc[kTilesM][kTilesN][4];
#pragma unroll
  for (int mt = 0; mt < kTilesM; ++mt)
#pragma unroll
    for (int nt = 0; nt < kTilesN; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = Acc(0);

  // A group is committed for every stage issued (an empty one past the end), so that at step `step` the
  // groups of steps 0 .. step are complete when at most kStages − 2 are pending.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load_stage(s, s);
    cp_async_commit();
  }
  int stage = 0;  // step % kStages
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<kStages - 2>();
    // This step's stage is visible to all, and every warp is done with the stage of step − 1, which the
    // copies issued next overwrite.
    __syncthreads();
    {
      const int next = step + kStages - 1;
      int next_stage = stage + kStages - 1;
      if (next_stage >= kStages) next_stage -= kStages;
      if (next < steps) load_stage(next_stage, next);
      cp_async_commit();
    }
    const unsigned base = shared_address + stage * kStageBytes;
#pragma unroll
    for (int k32 = 0; k32 < KS; k32 += 32) {
      uint32_t fb[kTilesN][2];
#pragma unroll
      for (int pair = 0; pair < kTilesN / 2; ++pair) {
        uint32_t r[4];
        ldmatrix_x4(r, base + b_lane + pair * 16 * kRow + k32);
        fb[2 * pair][0] = r[0], fb[2 * pair][1] = r[1];
        fb[2 * pair + 1][0] = r[2], fb[2 * pair + 1][1] = r[3];
      }
      // One A fragment at a time: fewer live registers (the 64x64 warp tile holds 128 accumulators).
#pragma unroll
      for (int mt = 0; mt < kTilesM; ++mt) {
        uint32_t fa[4];
        ldmatrix_x4(fa, base + a_lane + mt * 16 * kRow + k32);
#pragma unroll
        for (int nt = 0; nt < kTilesN; ++nt) mma_k32(acc[mt][nt], fa, fb[nt]);
      }
    }
    if (++stage == kStages) stage = 0;
  }

  // The finished tile through shared memory (the ring is free once every warp is past its last stage).
  cp_async_wait<0>();
  __syncthreads();
  Acc* staged = reinterpret_cast<Acc*>(shared);
  {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < kTilesM; ++mt)
#pragma unroll
      for (int nt = 0; nt < kTilesN; ++nt)
        stage_quad<BN>(staged, warp_m + mt * 16 + g, warp_n + nt * 8 + 2 * t, acc[mt][nt][0], acc[mt][nt][1],
                       acc[mt][nt][2], acc[mt][nt][3]);
  }
  __syncthreads();
  quant_epilogue<BM, BN, kBlockThreads, kFp8>(a, flags, staged, block_m, block_n);
}

// ---- Variants ----

struct Variant {
  const char* name;
  int bm, bn;
  int min_pixels, min_k;  // below these a smaller tile does the same work with less waste
  // E4M3's mma.sync holds more registers on sm_90 (ptxas converts the operands): a 64x64 warp tile spills.
  bool int8_only;
  bool wgmma;  // conv_quant_wgmma.cu's kernel (sm_90a: compute capability 9.0 alone; INT8 only), BN bn
};
// The mma.sync ones run with 128-channel stages where c is a multiple of 128, with 64 otherwise, the wgmma
// ones with 64 (the name says the tile; the builder times them on the layer's own shape). kGeneric applies to
// everything the kernel takes.
constexpr Variant kVariants[] = {
    {"q128x128_w64x32", 128, 128, 65, 65, false, false},  // 8 warps
    {"q128x128_w64x64", 128, 128, 65, 65, true, false},   // 4 warps
    {"q128x64_w64x32", 128, 64, 65, 1, false, false},     // 4 warps
    {"q64x64_w32x32", 64, 64, 1, 1, false, false},        // 4 warps
    {"wgmma128x128", 128, 128, 65, 65, true, true},       // 2 warpgroups, persistent
    {"wgmma128x64", 128, 64, 65, 1, true, true},          // 2 warpgroups, persistent
};
constexpr int kGeneric = 3;
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);

template <int BM, int BN, int WM, int WN, int KS, bool kFp8>
void launch_kernel(const QuantConvArgs& a, int flags, cudaStream_t stream) {
  constexpr int threads = (BM / WM) * (BN / WN) * 32;
  constexpr int bytes = shared_bytes<BM, BN, KS>();
  auto kernel = quant_conv_kernel<BM, BN, WM, WN, KS, kFp8>;
  // Above 48 KiB a kernel must ask for its dynamic shared memory; asked every launch, as the attribute is
  // the current device's.
  if (bytes > 48 * 1024) EASTRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  const dim3 grid(static_cast<unsigned>((pixels + BM - 1) / BM), static_cast<unsigned>((a.k + BN - 1) / BN));
  kernel<<<grid, threads, bytes, stream>>>(a, flags);
}

template <int BM, int BN, int WM, int WN, bool kFp8>
void launch_stages(const QuantConvArgs& a, int flags, cudaStream_t stream) {
  if (a.c % 128 == 0) launch_kernel<BM, BN, WM, WN, 128, kFp8>(a, flags, stream);
  else launch_kernel<BM, BN, WM, WN, 64, kFp8>(a, flags, stream);
}

// kInt8Only: the variant is int8_only (quant_conv_variant_applies refused E4M3), so no E4M3 kernel is built.
template <int BM, int BN, int WM, int WN, bool kInt8Only = false>
void launch_tile(const QuantConvArgs& a, int flags, cudaStream_t stream) {
  if constexpr (!kInt8Only) {
    if (a.in_type == QType::kE4m3) return launch_stages<BM, BN, WM, WN, true>(a, flags, stream);
  }
  launch_stages<BM, BN, WM, WN, false>(a, flags, stream);
}

// What the GPU in use can run, asked once per device: the compute capability and whether this build
// holds a kernel image for it (sm_90 code and compute_90 PTX run on sm_90 and later only).
struct DeviceAbility {
  bool known = false;
  int major = 0, minor = 0;
  bool image = false;
};

// The current GPU's, asked once per device; nothing without any GPU (the answer is then the arguments'
// alone: a plan lowered on the host, in tests; a launch there fails with CUDA's own error).
std::optional<DeviceAbility> current_ability() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();  // leave no error behind for the next launch check
    return std::nullopt;
  }
  static std::mutex mutex;
  static std::vector<DeviceAbility> abilities;
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= abilities.size()) abilities.resize(device + 1);
  DeviceAbility& ability = abilities[device];
  if (!ability.known) {
    if (cudaDeviceGetAttribute(&ability.major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&ability.minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
      cudaGetLastError();
      ability.major = ability.minor = 0;
    }
    cudaFuncAttributes attributes;
    ability.image = cudaFuncGetAttributes(&attributes, quant_conv_kernel<64, 64, 32, 32, 64, false>) == cudaSuccess;
    if (!ability.image) cudaGetLastError();
    ability.known = true;
  }
  return ability;
}

const char* device_refusal(QType in_type) {
  const std::optional<DeviceAbility> ability = current_ability();
  if (!ability) return nullptr;
  const int capability = ability->major * 10 + ability->minor;
  if (capability < 80) return "the GPU has no 8-bit tensor-core mma (needs compute capability 8.0 or later)";
  if (in_type == QType::kE4m3 && capability < 89)
    return "the GPU has no FP8 tensor-core mma (E4M3 needs compute capability 8.9 or later)";
  if (!ability->image) return "this build holds no kernel image for the GPU (it is built for sm_90 and later)";
  return nullptr;
}

// Whether the current GPU runs the sm_90a kernels (without any GPU: yes, the arguments decide alone).
bool device_runs_sm90a() {
  const std::optional<DeviceAbility> ability = current_ability();
  return !ability || runs_sm90a(ability->major, ability->minor);
}

bool valid_qtype(QType type) { return type == QType::kInt8 || type == QType::kE4m3 || type == QType::kF16 || type == QType::kF32; }

bool refuse(const char** why, const char* reason) {
  if (why) *why = reason;
  return false;
}

// ---- Quantise / dequantise ----

constexpr int kPack = 4;  // values per thread and step of the dequantise pass: 4 codes are one 32-bit word

// v / scale as quantize.cpp computes it (the division, rounded once), for INT8's round to an integer:
// v · (1 / scale) is within 3 ulps of the quotient, so it rounds to the same integer unless a half-integer
// lies within 1e-6 of it (relative: 5 times that bound); only there is the division done.
__device__ __forceinline__ float int8_quotient(float v, float scale, float inverse) {
  const float r = __fmul_rn(v, inverse);
  return fabsf(fabsf(r - rintf(r)) - 0.5f) <= 1e-6f * fabsf(r) ? __fdiv_rn(v, scale) : r;
}

// 16 bytes of input a thread and step (8 FP16 or 4 float32 values), their codes stored in one word.
template <typename In, bool kFp8>
__global__ void quantize_kernel(const In* x, uint8_t* y, int64_t count, float scale, float inverse, bool packed) {
  constexpr int kWidth = 16 / sizeof(In);
  const int64_t packs = (count + kWidth - 1) / kWidth;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q * kWidth;
    auto code = [&](float v) -> uint8_t {
      // FP8's rounding boundaries are not half-integers: it divides, as quantize.cpp does.
      return kFp8 ? e4m3_code(__fdiv_rn(v, scale)) : static_cast<uint8_t>(int8_code(int8_quotient(v, scale, inverse)));
    };
    if (packed && i + kWidth <= count) {
      float v[kWidth];
      load_pack<kWidth>(x + i, v);
      uint8_t codes[kWidth];
#pragma unroll
      for (int j = 0; j < kWidth; ++j) codes[j] = code(v[j]);
      typename PackWord<kWidth>::type word;
      memcpy(&word, codes, sizeof word);
      *reinterpret_cast<typename PackWord<kWidth>::type*>(y + i) = word;
    } else {
      for (int64_t j = i; j < count && j < i + kWidth; ++j) y[j] = code(load(x, j));
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

int quant_conv_generic_variant() { return kGeneric; }

bool quant_conv_variant_uses_wgmma(int variant) {
  return variant >= 0 && variant < kVariantCount && kVariants[variant].wgmma;
}

bool quant_conv_variant_runs(const QuantConvArgs& a, int variant) {
  if (variant < 0 || variant >= kVariantCount || !quant_conv_supports(a)) return false;
  if (kVariants[variant].int8_only && a.in_type != QType::kInt8) return false;
  return !kVariants[variant].wgmma || device_runs_sm90a();
}

bool quant_conv_variant_applies(const QuantConvArgs& a, int variant) {
  return quant_conv_variant_runs(a, variant) && int64_t(a.n) * a.oh * a.ow >= kVariants[variant].min_pixels &&
         a.k >= kVariants[variant].min_k;
}

void launch_quant_conv(const QuantConvArgs& args, int variant, cudaStream_t stream) {
  const char* why = nullptr;
  if (!quant_conv_supports(args, &why))
    throw_error("quantised convolution (", qtype_name(args.in_type), ", c ", args.c, ", k ", args.k, ", ", args.r, "x",
                args.s, "): ", why);
  if (!quant_conv_variant_runs(args, variant))
    throw_error("quantised convolution: variant ", variant, " (", quant_conv_variant_name(variant), ") cannot run ",
                qtype_name(args.in_type), " input on this GPU");
  EASTRT_CHECK(args.x && args.filter && args.scale && args.y, "quantised convolution: x, filter, scale or y is null");
  QuantConvArgs a = args;
  if (a.y_pixel_stride == 0) a.y_pixel_stride = a.k;
  // The epilogue's vector accesses: 8 channels from a multiple of 8 (block_n and the thread's column are).
  const size_t out_vector = std::min<size_t>(8 * qtype_size(a.out_type), 16);
  int flags = 0;
  if (a.y_pixel_stride % 8 == 0 && a.y_channel_offset % 8 == 0 && aligned_to(a.y, out_vector)) flags |= kVectorStores;
  if (a.residual && a.k % 8 == 0 && aligned_to(a.residual, std::min<size_t>(8 * qtype_size(a.residual_type), 16)))
    flags |= kVectorResidual;
  switch (variant) {
    case 0: launch_tile<128, 128, 64, 32>(a, flags, stream); break;
    case 1: launch_tile<128, 128, 64, 64, true>(a, flags, stream); break;
    case 2: launch_tile<128, 64, 64, 32>(a, flags, stream); break;
    case kGeneric: launch_tile<64, 64, 32, 32>(a, flags, stream); break;
    default: return launch_quant_conv_wgmma(a, kVariants[variant].bn, flags, stream);
  }
  EASTRT_LAUNCHED("quant_conv_kernel");
}

void launch_quantize(const void* x, QType xt, void* y, QType yt, int64_t count, float scale, cudaStream_t stream) {
  EASTRT_CHECK((xt == QType::kF16 || xt == QType::kF32) && is_8bit(yt), "quantise: ", qtype_name(xt), " to ",
               qtype_name(yt), " is not a quantisation (FP16/FP32 to INT8/E4M3)");
  EASTRT_CHECK(std::isfinite(scale) && scale > 0, "quantise: scale ", scale, " is not finite and positive");
  if (count <= 0) return;
  const int width = 16 / static_cast<int>(qtype_size(xt));  // quantize_kernel's values a thread and step
  const bool packed = aligned_to(x, 16) && aligned_to(y, width);
  const unsigned grid = grid_for((count + width - 1) / width);
  uint8_t* out = static_cast<uint8_t*>(y);
  const bool fp8 = yt == QType::kE4m3;
  const float inverse = 1.0f / scale;
  if (xt == QType::kF32) {
    const float* in = static_cast<const float*>(x);
    if (fp8) quantize_kernel<float, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, inverse, packed);
    else quantize_kernel<float, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, inverse, packed);
  } else {
    const __half* in = static_cast<const __half*>(x);
    if (fp8) quantize_kernel<__half, true><<<grid, kThreads, 0, stream>>>(in, out, count, scale, inverse, packed);
    else quantize_kernel<__half, false><<<grid, kThreads, 0, stream>>>(in, out, count, scale, inverse, packed);
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
