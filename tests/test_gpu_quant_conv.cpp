// The INT8 / E4M3 convolution of cuda/conv_quant.h against a CPU computation written here: exact integer
// (INT8) or exact double (E4M3: every product and partial sum of decoded codes is a multiple of 2^-18 below
// 2^29) accumulation, then the header's float epilogue, the codes by eastrt/quant.h. Every variant on awkward
// shapes (13x19 and 14x20 images, batch 2, channels 32..136, odd k, TF SAME padding, outputs into a channel
// slice), outputs poisoned first; and the quantise / dequantise passes against quantize.cpp on special
// values. GPU tests skip without a GPU; the refusals need none.
#ifdef EASTRT_HAVE_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/conv_quant.h"
#include "cuda/conv_quant_cublaslt.h"
#include "cuda/conv_quant_cudnn.h"
#include "eastrt/quant.h"
#include "eastrt/tensor.h"
#include "test_device_memory.h"
#include "test_support.h"

namespace eastrt {
namespace {

using cuda::QType;

using test_support::CudnnHandle;
using test_support::DeviceMemory;
using test_support::LtHandle;

const char* name_of(QType type) {
  switch (type) {
    case QType::kInt8: return "INT8";
    case QType::kE4m3: return "E4M3";
    case QType::kF16: return "FP16";
    case QType::kF32: return "FP32";
  }
  return "?";
}

// ---- The convolution ----

enum class Residual { kNone, kInt8, kE4m3, kF16, kF32 };

struct ConvCase {
  const char* what;
  int h, w, c, k, r, stride;  // square filter, TF SAME padding
  bool bias, relu;
  Residual residual;
  QType out;
  int y_pixel_stride = 0, y_channel_offset = 0;  // 0: dense
};

const ConvCase kCases[] = {
    {"1x1, 64 -> 64, bias, INT8 out", 13, 19, 64, 64, 1, 1, true, false, Residual::kNone, QType::kInt8},
    {"3x3/1 pad 1, 96 -> 40, INT8 residual, ReLU, INT8 out", 13, 19, 96, 40, 3, 1, true, true, Residual::kInt8,
     QType::kInt8},
    {"3x3/2 SAME on 14x20 (pad 0 top/left, 1 bottom/right), 32 -> 136, FP16 residual, ReLU, E4M3 out", 14, 20, 32,
     136, 3, 2, true, true, Residual::kF16, QType::kE4m3},
    {"3x3/2 SAME on 13x19 (pad 1), 64 -> 8, no bias, FP16 out", 13, 19, 64, 8, 3, 2, false, false, Residual::kNone,
     QType::kF16},
    {"7x7/2 SAME (pad 3), 32 -> 64, FP32 residual, ReLU, FP32 out", 13, 19, 32, 64, 7, 2, true, true, Residual::kF32,
     QType::kF32},
    {"1x1, 96 -> 136 into channels 24.. of 200, INT8 residual, INT8 out", 13, 19, 96, 136, 1, 1, true, false,
     Residual::kInt8, QType::kInt8, 200, 24},
    {"3x3/1, 48 (half a stage) -> 5 into channels 7.. of 13, FP16 residual, ReLU, FP16 out", 13, 19, 48, 5, 3, 1, true,
     true, Residual::kF16, QType::kF16, 13, 7},
    {"3x3/1, 64 -> 72 into channels 8.. of 80, E4M3 residual, FP32 out", 13, 19, 64, 72, 3, 1, true, false,
     Residual::kE4m3, QType::kF32, 80, 8},
    {"1x1, 32 -> 136, ReLU, E4M3 out", 13, 19, 32, 136, 1, 1, true, true, Residual::kNone, QType::kE4m3},
    // 128-channel stages (c a multiple of 128), k 64 under the 128x64 tile, vector epilogues and their tails.
    {"3x3/1, 128 -> 64, FP16 residual, ReLU, INT8 out", 13, 19, 128, 64, 3, 1, true, true, Residual::kF16,
     QType::kInt8},
    {"1x1, 256 -> 136 into channels 8.. of 160, E4M3 residual, FP32 out", 13, 19, 256, 136, 1, 1, true, false,
     Residual::kE4m3, QType::kF32, 160, 8},
    {"3x3/2 SAME, 384 -> 200, INT8 residual, ReLU, FP16 out", 13, 19, 384, 200, 3, 2, true, true, Residual::kInt8,
     QType::kF16},
    {"1x1, 128 -> 13, no bias, E4M3 out", 13, 19, 128, 13, 1, 1, false, false, Residual::kNone, QType::kE4m3},
};

// TF SAME: out = ceil(in / stride), the padding's extra row or column at the bottom / right.
void same_padding(int in, int window, int stride, int* out, int* before) {
  *out = (in + stride - 1) / stride;
  *before = std::max((*out - 1) * stride + window - in, 0) / 2;
}

float decode(QType type, uint8_t code) {
  return type == QType::kInt8 ? static_cast<float>(static_cast<int8_t>(code)) : quant::e4m3_to_float(code);
}

// Random codes of the input type: INT8 uniform over −127..127, E4M3 uniform over the finite codes (so that
// magnitudes span 2^−9 .. 448).
std::vector<uint8_t> random_codes(QType type, size_t count, std::mt19937& rng) {
  std::vector<uint8_t> codes(count);
  std::uniform_int_distribution<int> int8(-127, 127), byte(0, 255);
  for (uint8_t& code : codes) {
    if (type == QType::kInt8) {
      code = static_cast<uint8_t>(static_cast<int8_t>(int8(rng)));
    } else {
      do code = static_cast<uint8_t>(byte(rng));
      while ((code & 0x7f) == 0x7f);
    }
  }
  return codes;
}

// Everything the reference knows about one case: the device arguments' host side and the expected outputs.
struct Problem {
  cuda::QuantConvArgs args;  // without device pointers
  std::vector<uint8_t> x, filter;
  std::vector<float> scale, bias;
  std::vector<uint8_t> residual_codes;
  std::vector<uint16_t> residual_f16;
  std::vector<float> residual_f32;
  std::vector<float> v;         // the epilogue in float, as the kernel computes it from an exact accumulator
  std::vector<double> v_exact;  // the same in double
};

Problem make_problem(const ConvCase& cc, QType in, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  cuda::QuantConvArgs& a = p.args;
  a.n = 2, a.h = cc.h, a.w = cc.w, a.c = cc.c, a.k = cc.k, a.r = a.s = cc.r;
  a.stride_h = a.stride_w = cc.stride;
  same_padding(cc.h, cc.r, cc.stride, &a.oh, &a.pad_top);
  same_padding(cc.w, cc.r, cc.stride, &a.ow, &a.pad_left);
  a.in_type = in;
  a.act.type = cc.relu ? 0 : -1;
  a.out_type = cc.out;
  a.y_pixel_stride = cc.y_pixel_stride;
  a.y_channel_offset = cc.y_channel_offset;

  p.x = random_codes(in, size_t(a.n) * a.h * a.w * a.c, rng);
  p.filter = random_codes(in, size_t(a.k) * a.r * a.s * a.c, rng);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f), positive(0.5f, 1.5f);
  const float s_x = in == QType::kInt8 ? 0.02f : 0.5f / quant::kE4m3Max;
  for (int kk = 0; kk < a.k; ++kk) p.scale.push_back(s_x * positive(rng) / (in == QType::kInt8 ? 127.0f : quant::kE4m3Max));

  // Exact accumulators.
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  std::vector<double> acc(pixels * a.k, 0.0);
  std::vector<float> xf(p.x.size()), wf(p.filter.size());
  for (size_t i = 0; i < p.x.size(); ++i) xf[i] = decode(in, p.x[i]);
  for (size_t i = 0; i < p.filter.size(); ++i) wf[i] = decode(in, p.filter[i]);
  for (int n = 0; n < a.n; ++n)
    for (int i = 0; i < a.oh; ++i)
      for (int j = 0; j < a.ow; ++j) {
        const int64_t pixel = (int64_t(n) * a.oh + i) * a.ow + j;
        for (int kk = 0; kk < a.k; ++kk) {
          int64_t isum = 0;
          double dsum = 0;
          for (int rr = 0; rr < a.r; ++rr) {
            const int ih = i * a.stride_h - a.pad_top + rr;
            if (ih < 0 || ih >= a.h) continue;
            for (int ss = 0; ss < a.s; ++ss) {
              const int iw = j * a.stride_w - a.pad_left + ss;
              if (iw < 0 || iw >= a.w) continue;
              const size_t xo = ((size_t(n) * a.h + ih) * a.w + iw) * a.c;
              const size_t wo = ((size_t(kk) * a.r + rr) * a.s + ss) * a.c;
              for (int ch = 0; ch < a.c; ++ch) {
                if (in == QType::kInt8)
                  isum += int64_t(static_cast<int8_t>(p.x[xo + ch])) * static_cast<int8_t>(p.filter[wo + ch]);
                else
                  dsum += double(xf[xo + ch]) * wf[wo + ch];
              }
            }
          }
          acc[pixel * a.k + kk] = in == QType::kInt8 ? static_cast<double>(isum) : dsum;
        }
      }

  // The part before the residual sets the scale of everything after it.
  double base_amax = 0;
  for (int64_t i = 0; i < pixels * a.k; ++i) base_amax = std::max(base_amax, std::abs(acc[i] * p.scale[i % a.k]));
  if (cc.bias)
    for (int kk = 0; kk < a.k; ++kk) p.bias.push_back(static_cast<float>(uniform(rng) * 0.5 * base_amax));
  const int64_t count = pixels * a.k;
  switch (cc.residual) {
    case Residual::kNone: break;
    case Residual::kInt8:
      a.residual_type = QType::kInt8;
      a.residual_scale = static_cast<float>(0.5 * base_amax / 127);
      p.residual_codes = random_codes(QType::kInt8, count, rng);
      break;
    case Residual::kE4m3:
      a.residual_type = QType::kE4m3;
      a.residual_scale = static_cast<float>(0.5 * base_amax / quant::kE4m3Max);
      p.residual_codes = random_codes(QType::kE4m3, count, rng);
      break;
    case Residual::kF16:
      a.residual_type = QType::kF16;
      for (int64_t i = 0; i < count; ++i) p.residual_f16.push_back(float_to_half(static_cast<float>(uniform(rng) * 0.5 * base_amax)));
      break;
    case Residual::kF32:
      a.residual_type = QType::kF32;
      for (int64_t i = 0; i < count; ++i) p.residual_f32.push_back(static_cast<float>(uniform(rng) * 0.5 * base_amax));
      break;
  }

  // The epilogue, in float exactly as the header states it, and in double.
  p.v.resize(count);
  p.v_exact.resize(count);
  double amax = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int kk = static_cast<int>(i % a.k);
    const float b = cc.bias ? p.bias[kk] : 0.0f;
    float v = std::fma(static_cast<float>(acc[i]), p.scale[kk], b);
    double ve = acc[i] * double(p.scale[kk]) + b;
    float r = 0;
    switch (cc.residual) {
      case Residual::kNone: break;
      case Residual::kInt8:
      case Residual::kE4m3: r = decode(a.residual_type, p.residual_codes[i]) * a.residual_scale; break;
      case Residual::kF16: r = half_to_float(p.residual_f16[i]); break;
      case Residual::kF32: r = p.residual_f32[i]; break;
    }
    if (cc.residual != Residual::kNone) {
      v = v + r;
      const bool codes = cc.residual == Residual::kInt8 || cc.residual == Residual::kE4m3;
      ve += codes ? double(decode(a.residual_type, p.residual_codes[i])) * a.residual_scale : double(r);
    }
    if (cc.relu) {
      v = v > 0 ? v : 0;
      ve = ve > 0 ? ve : 0;
    }
    p.v[i] = v;
    p.v_exact[i] = ve;
    amax = std::max(amax, std::abs(ve));
  }
  a.out_scale = static_cast<float>(amax / (cc.out == QType::kE4m3 ? quant::kE4m3Max : 127.0));
  return p;
}

// What the outputs of one run came to.
struct Agreement {
  int64_t exact = 0, near_boundary = 0, wrong = 0, missing = 0, slice_damage = 0;
  double diff2 = 0, norm2 = 0;
  std::string first_wrong;
};

// Whether two codes are neighbours on the type's grid.
bool adjacent(QType type, uint8_t got, uint8_t want) {
  if (type == QType::kInt8) return std::abs(int(static_cast<int8_t>(got)) - int(static_cast<int8_t>(want))) == 1;
  const int gm = got & 0x7f, wm = want & 0x7f;
  return ((got ^ want) & 0x80) == 0 ? std::abs(gm - wm) == 1 : (gm == 0 && wm == 1) || (gm == 1 && wm == 0);
}

// An 8-bit code one step from the expected one is allowed where the exact value lies within 1e-3 of a
// step of the boundary between the two.
bool near_boundary(QType type, uint8_t got, uint8_t want, double y) {
  const double g = decode(type, got), w = decode(type, want);
  return adjacent(type, got, want) && std::abs(y - (g + w) / 2) <= 1e-3 * std::abs(g - w);
}

Agreement compare(const Problem& p, const std::vector<uint8_t>& y, uint8_t poison) {
  const cuda::QuantConvArgs& a = p.args;
  const int stride = a.y_pixel_stride ? a.y_pixel_stride : a.k;
  const size_t size = cuda::qtype_size(a.out_type);
  const int64_t pixels = int64_t(a.n) * a.oh * a.ow;
  Agreement result;
  for (int64_t pixel = 0; pixel < pixels; ++pixel) {
    for (int ch = 0; ch < stride; ++ch) {
      const uint8_t* at = y.data() + (pixel * stride + ch) * size;
      const int kk = ch - a.y_channel_offset;
      if (kk < 0 || kk >= a.k) {
        for (size_t b = 0; b < size; ++b) result.slice_damage += at[b] != poison;
        continue;
      }
      const int64_t i = pixel * a.k + kk;
      auto note = [&](const std::string& what) {
        if (result.first_wrong.empty()) {
          std::ostringstream out;
          out << "pixel " << pixel << " channel " << kk << ": " << what << " (v " << p.v[i] << ")";
          result.first_wrong = out.str();
        }
      };
      if (cuda::is_8bit(a.out_type)) {
        const uint8_t want = a.out_type == QType::kInt8 ? static_cast<uint8_t>(quant::quantize_int8(p.v[i], a.out_scale))
                                                        : quant::float_to_e4m3(p.v[i] / a.out_scale);
        const uint8_t got = at[0];
        if (got == poison) {
          ++result.missing;
          note("not written");
        } else if (got == want || decode(a.out_type, got) == decode(a.out_type, want)) {
          ++result.exact;
        } else if (near_boundary(a.out_type, got, want, p.v_exact[i] / a.out_scale)) {
          ++result.near_boundary;
        } else {
          ++result.wrong;
          note("code " + std::to_string(int(got)) + ", expected " + std::to_string(int(want)));
        }
      } else {
        float got;
        double want;
        if (a.out_type == QType::kF16) {
          uint16_t h;
          std::memcpy(&h, at, 2);
          got = half_to_float(h);
          want = half_to_float(float_to_half(p.v[i]));
        } else {
          std::memcpy(&got, at, 4);
          want = p.v[i];
        }
        if (std::isnan(got)) {
          ++result.missing;
          note("NaN (not written?)");
          continue;
        }
        result.diff2 += (got - want) * (got - want);
        result.norm2 += want * want;
        ++result.exact;
      }
    }
  }
  return result;
}

// The device side of a problem; `*y_bytes` is the output buffer's size (a channel slice's whole buffer).
cuda::QuantConvArgs upload(const Problem& p, DeviceMemory& memory, size_t* y_bytes) {
  cuda::QuantConvArgs a = p.args;
  a.x = memory.upload(p.x);
  a.filter = memory.upload(p.filter);
  a.scale = memory.upload(p.scale);
  a.bias = p.bias.empty() ? nullptr : memory.upload(p.bias);
  if (!p.residual_codes.empty()) a.residual = memory.upload(p.residual_codes);
  if (!p.residual_f16.empty()) a.residual = memory.upload(p.residual_f16);
  if (!p.residual_f32.empty()) a.residual = memory.upload(p.residual_f32);
  const int stride = a.y_pixel_stride ? a.y_pixel_stride : a.k;
  *y_bytes = size_t(a.n) * a.oh * a.ow * stride * cuda::qtype_size(a.out_type);
  a.y = memory.allocate(*y_bytes);
  return a;
}

// Poison no output can be: −128 is no INT8 code the kernels write; 0xff is NaN in E4M3, FP16 and FP32.
uint8_t poison_of(QType out) { return out == QType::kInt8 ? 0x80 : 0xff; }

// The output of a run (written over `poison`) against the reference: every code exact or, rarely, one step
// off at a rounding boundary; FP16/FP32 values to the accumulation's precision. `reduced_sums`: products
// summed in less than FP32's precision (cuDNN's E4M3 engine): at most 1 % of the codes off (on the H200
// 0.1-0.6 %, nearly all by one step), values within 2e-3.
void expect_agrees(const Problem& p, const cuda::QuantConvArgs& a, size_t y_bytes, uint8_t poison,
                   bool reduced_sums = false) {
  std::vector<uint8_t> y(y_bytes);
  ASSERT_EQ(cudaMemcpy(y.data(), a.y, y_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  const Agreement got = compare(p, y, poison);
  const int64_t total = int64_t(a.n) * a.oh * a.ow * a.k;
  EXPECT_EQ(got.slice_damage, 0) << "bytes outside the output slice changed";
  EXPECT_EQ(got.missing, 0) << got.first_wrong;
  if (reduced_sums) {
    if (cuda::is_8bit(a.out_type)) EXPECT_LE(double(got.wrong), 0.01 * total) << got.wrong << " of " << total << " off";
    else EXPECT_LE(std::sqrt(got.diff2 / std::max(got.norm2, 1e-30)), 2e-3);
    return;
  }
  EXPECT_EQ(got.wrong, 0) << got.first_wrong;
  if (cuda::is_8bit(a.out_type)) {
    EXPECT_GE(double(got.exact), 0.9999 * total) << got.near_boundary << " of " << total << " one code off";
  } else {
    // INT8's accumulation is exact, so only the order of E4M3's FP32 sums may differ.
    const double tolerance = a.in_type == QType::kInt8 ? 1e-5 : 1e-4;
    EXPECT_LE(std::sqrt(got.diff2 / std::max(got.norm2, 1e-30)), tolerance);
  }
}

void run_cases(QType in) {
  if (in == QType::kE4m3) {
    const GpuInfo& gpu = test_support::the_gpu();
    if (gpu.major * 10 + gpu.minor < 89) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << " has no FP8 mma";
  }
  std::vector<int> runs_per_variant(cuda::quant_conv_variants(), 0);
  uint32_t seed = in == QType::kInt8 ? 101 : 202;
  for (const ConvCase& cc : kCases) {
    SCOPED_TRACE(std::string(name_of(in)) + " in: " + cc.what);
    const Problem p = make_problem(cc, in, seed++);
    DeviceMemory memory;
    size_t y_bytes = 0;
    cuda::QuantConvArgs a = upload(p, memory, &y_bytes);
    const char* why = nullptr;
    ASSERT_TRUE(cuda::quant_conv_supports(a, &why)) << why;
    const uint8_t poison = poison_of(a.out_type);
    int ran = 0;
    // Every variant that runs, also where it is no candidate (an engine built for a larger batch runs its
    // choice on fewer pixels).
    for (int variant = 0; variant < cuda::quant_conv_variants(); ++variant) {
      if (!cuda::quant_conv_variant_runs(a, variant)) continue;
      SCOPED_TRACE(cuda::quant_conv_variant_name(variant));
      ASSERT_EQ(cudaMemset(a.y, poison, y_bytes), cudaSuccess);
      cuda::launch_quant_conv(a, variant, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_agrees(p, a, y_bytes, poison);
      ++ran, ++runs_per_variant[variant];
    }
    EXPECT_GE(ran, 1) << "no variant applies";
  }
  // Every variant that takes this input type (some are INT8 only) ran on some case.
  cuda::QuantConvArgs large;
  large.n = 1, large.h = large.w = large.oh = large.ow = 64, large.c = large.k = 128, large.in_type = in;
  for (int variant = 0; variant < cuda::quant_conv_variants(); ++variant)
    if (cuda::quant_conv_variant_applies(large, variant))
      EXPECT_GE(runs_per_variant[variant], 1) << cuda::quant_conv_variant_name(variant) << " was never tested";
  EXPECT_TRUE(cuda::quant_conv_variant_applies(large, cuda::quant_conv_generic_variant()));
}

TEST(GpuQuantConv, Int8MatchesTheIntegerReference) {
  REQUIRE_GPU();
  run_cases(QType::kInt8);
}

TEST(GpuQuantConv, E4m3MatchesTheDoubleReference) {
  REQUIRE_GPU();
  run_cases(QType::kE4m3);
}

// A variant that cannot run (an INT8-only one on E4M3 input), and arguments the kernel does not take, are
// errors before anything runs.
TEST(GpuQuantConv, LaunchRefusesAVariantThatCannotRun) {
  REQUIRE_GPU();
  const GpuInfo& gpu = test_support::the_gpu();
  if (gpu.major * 10 + gpu.minor < 89) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << " has no FP8 mma";
  cuda::QuantConvArgs a;
  a.n = 1, a.h = a.w = a.oh = a.ow = 16, a.c = 32, a.k = 128, a.in_type = QType::kE4m3;
  alignas(16) static uint8_t bytes[1024];
  a.x = a.filter = bytes;
  a.scale = reinterpret_cast<const float*>(bytes);
  a.y = bytes;
  int int8_only = -1;
  for (int variant = 0; variant < cuda::quant_conv_variants(); ++variant)
    if (!cuda::quant_conv_variant_runs(a, variant)) int8_only = variant;
  ASSERT_GE(int8_only, 0) << "every variant runs E4M3";
  EXPECT_FALSE(cuda::quant_conv_variant_applies(a, int8_only));
  const std::string message = test_support::error_of([&] { cuda::launch_quant_conv(a, int8_only, nullptr); });
  EXPECT_NE(message.find("cannot run E4M3"), std::string::npos) << message;
}

// ---- The same convolution through cuDNN's graph API (conv_quant_cudnn.h) ----

// At most this many configurations that compile their kernels at run time (all of cuDNN 9's 8-bit ones on
// the H200) are tried a case, in cuDNN's ranking: the builder's kCudnnQuantConfigs.
constexpr int kRunTimeCompiled = 4;

// A plan of `config`: as cuDNN has it, or compiled at run time while fewer than kRunTimeCompiled such
// plans were made (`*compiled` counts them, `*run_time` says which); -1 with the reason in `*why`.
int plan_config(cuda::CudnnQuantConvolution& conv, const cuda::GraphEngineConfig& config, int* compiled,
                bool* run_time, std::string* why) {
  int plan = conv.add_plan(config, false, why);
  *run_time = false;
  if (plan < 0 && *why == "compiles its kernels at run time" && *compiled < kRunTimeCompiled) {
    plan = conv.add_plan(config, true, why);
    *run_time = plan >= 0;
    *compiled += 1;
  }
  return plan;
}

// Every configuration cuDNN offers for the dense cases, against the same reference as the kernel; what
// cuDNN does not take is printed. E4M3 with `reduced_sums` (expect_agrees): on the H200 cuDNN's E4M3 engine
// puts about one code in a thousand a step off against exact sums, so eastrt does not take it
// (cudnn_quant_conv_applies), and this test holds it to what it does.
void run_cudnn_cases(QType in) {
  if (in == QType::kE4m3) {
    const GpuInfo& gpu = test_support::the_gpu();
    if (gpu.major * 10 + gpu.minor < 89) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << " has no FP8";
  }
  CudnnHandle handle;
  uint32_t seed = in == QType::kInt8 ? 303 : 404;
  int cases = 0, cases_run = 0;
  for (const ConvCase& cc : kCases) {
    if (cc.y_pixel_stride) continue;
    SCOPED_TRACE(std::string(name_of(in)) + " in: " + cc.what);
    ++cases;
    const Problem p = make_problem(cc, in, seed++);
    DeviceMemory memory;
    size_t y_bytes = 0;
    cuda::QuantConvArgs a = upload(p, memory, &y_bytes);
    const uint8_t poison = poison_of(a.out_type);
    std::unique_ptr<cuda::CudnnQuantConvolution> conv;
    const std::string refused =
        test_support::error_of([&] {
          conv = std::make_unique<cuda::CudnnQuantConvolution>(handle.get(), a, a.bias != nullptr, a.residual != nullptr);
        });
    if (!refused.empty()) {
      std::cout << "  cuDNN, " << name_of(in) << ", " << cc.what << ": the graph is refused: " << refused << "\n";
      continue;
    }
    std::string why;
    const std::vector<cuda::GraphEngineConfig> configs = conv->candidate_configs(&why);
    int ran = 0, compiled = 0;
    std::map<std::string, int> refusals;
    for (const cuda::GraphEngineConfig& config : configs) {
      std::string no;
      bool run_time = false;
      const int plan = plan_config(*conv, config, &compiled, &run_time, &no);
      if (plan < 0) {
        ++refusals[no];
        continue;
      }
      SCOPED_TRACE("engine " + std::to_string(config.engine) + (run_time ? " (compiled at run time)" : ""));
      void* workspace = memory.allocate(conv->workspace_size(plan));
      ASSERT_EQ(cudaMemset(a.y, poison, y_bytes), cudaSuccess);
      ASSERT_EQ(conv->run(plan, a, workspace, std::max<size_t>(conv->workspace_size(plan), 256)), CUDNN_STATUS_SUCCESS);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_agrees(p, a, y_bytes, poison, in == QType::kE4m3);
      ++ran;
    }
    std::cout << "  cuDNN, " << name_of(in) << ", " << cc.what << ": " << configs.size() << " configurations, " << ran
              << " ran (" << compiled << " compiled at run time)";
    for (const auto& [reason, count] : refusals) std::cout << "; " << count << " refused: " << reason.substr(0, 120);
    if (!why.empty()) std::cout << "; heuristics: " << why.substr(0, 200);
    std::cout << "\n";
    cases_run += ran > 0;
  }
  std::cout << "cuDNN ran " << name_of(in) << " graphs on " << cases_run << " of " << cases << " cases\n";
}

TEST(GpuQuantConv, CudnnInt8MatchesTheIntegerReference) {
  REQUIRE_GPU();
  run_cudnn_cases(QType::kInt8);
}

TEST(GpuQuantConv, CudnnE4m3SumsInReducedPrecision) {
  REQUIRE_GPU();
  run_cudnn_cases(QType::kE4m3);
}

// ---- The 1x1 convolution through cuBLASLt's integer matmul (conv_quant_cublaslt.h) ----

// What cuBLASLt takes (INT8 in and out, 1x1, ReLU, no residual or an INT8 one), on odd pixel counts.
const ConvCase kMatmulCases[] = {
    {"1x1, 64 -> 64, bias, ReLU, INT8 out", 13, 19, 64, 64, 1, 1, true, true, Residual::kNone, QType::kInt8},
    {"1x1, 96 -> 136, INT8 residual, ReLU, INT8 out", 13, 19, 96, 136, 1, 1, true, true, Residual::kInt8,
     QType::kInt8},
    {"1x1, 256 -> 40, no bias, INT8 residual, ReLU, INT8 out", 13, 19, 256, 40, 1, 1, false, true, Residual::kInt8,
     QType::kInt8},
    {"1x1, 32 -> 200, no bias, ReLU, INT8 out", 14, 20, 32, 200, 1, 1, false, true, Residual::kNone, QType::kInt8},
};

constexpr size_t kMatmulWorkspace = size_t(32) << 20;

// Every algorithm (up to 8) of cuBLASLt's heuristic on each case, against the integer reference: the
// kernel's rules (codes exact, or one step off at a rounding boundary).
TEST(GpuQuantConv, CublasLtInt8MatchesTheIntegerReference) {
  REQUIRE_GPU();
  LtHandle handle;
  uint32_t seed = 505;
  for (const ConvCase& cc : kMatmulCases) {
    SCOPED_TRACE(cc.what);
    const Problem p = make_problem(cc, QType::kInt8, seed++);
    DeviceMemory memory;
    size_t y_bytes = 0;
    cuda::QuantConvArgs a = upload(p, memory, &y_bytes);
    const char* why = nullptr;
    ASSERT_TRUE(cuda::cublaslt_quant_conv_applies(a, a.residual != nullptr, &why)) << why;
    cuda::CublasLtQuantConvolution conv(a, a.residual != nullptr);
    const std::vector<cuda::LtAlgorithm> algos = conv.heuristic(handle.get(), kMatmulWorkspace, 8);
    ASSERT_FALSE(algos.empty()) << "cuBLASLt has no INT8 algorithm for this case";
    void* workspace = memory.allocate(kMatmulWorkspace);
    for (const cuda::LtAlgorithm& algo : algos) {
      SCOPED_TRACE("cublaslt algo " + std::to_string(algo.id) + " tile " + std::to_string(algo.tile));
      ASSERT_EQ(cudaMemset(a.y, 0x80, y_bytes), cudaSuccess);
      ASSERT_EQ(conv.run(handle.get(), algo.algo, a, workspace, kMatmulWorkspace, nullptr), CUBLAS_STATUS_SUCCESS);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_agrees(p, a, y_bytes, 0x80);
    }
    std::cout << "  cuBLASLt INT8, " << cc.what << ": " << algos.size() << " algorithms (first: id " << algos[0].id
              << ", tile " << algos[0].tile << ", stages " << algos[0].stages << ")\n";
  }
}

// The median of `runs` timed launches (after three untimed ones) of `launch`, in ms, by device events.
double median_ms(const std::function<void()>& launch, int runs = 15) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t start, stop;
  EXPECT_EQ(cudaEventCreate(&start), cudaSuccess);
  EXPECT_EQ(cudaEventCreate(&stop), cudaSuccess);
  std::vector<float> times;
  for (int i = 0; i < runs; ++i) {
    cudaEventRecord(start);
    launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The fastest of our kernel's variants that apply to `a` (median_ms), its name in `*variant` ("none").
double fastest_variant_ms(const cuda::QuantConvArgs& a, std::string* variant) {
  double best = 1e30;
  *variant = "none";
  for (int v = 0; v < cuda::quant_conv_variants(); ++v) {
    if (!cuda::quant_conv_variant_applies(a, v)) continue;
    const double ms = median_ms([&] { cuda::launch_quant_conv(a, v, nullptr); });
    if (ms < best) best = ms, *variant = cuda::quant_conv_variant_name(v);
  }
  return best;
}

// EAST's 8-bit layers at batch 16 (672x1280): our kernel's best variant against cuDNN's best configuration,
// timed in the same process on random codes. A measurement for the docs (docs/QUANTIZATION.md); it fails
// only when a configuration that was planned does not run.
TEST(GpuQuantConv, CudnnAndTheKernelTimedOnEastLayers) {
  REQUIRE_GPU();
  struct Layer {
    const char* what;
    int h, w, c, k, r;
    Residual residual;
    QType out;
  };
  const Layer layers[] = {
      {"block1 conv2 3x3 64->64 168x320, ReLU, INT8 out", 168, 320, 64, 64, 3, Residual::kNone, QType::kInt8},
      {"block1 conv3 1x1 64->256 168x320, FP16 residual, ReLU, FP16 out", 168, 320, 64, 256, 1, Residual::kF16,
       QType::kF16},
      {"block3 conv2 3x3 256->256 42x80, ReLU, INT8 out", 42, 80, 256, 256, 3, Residual::kNone, QType::kInt8},
      {"block3 conv3 1x1 256->1024 42x80, INT8 residual, ReLU, INT8 out", 42, 80, 256, 1024, 1, Residual::kInt8,
       QType::kInt8},
      {"block4 conv2 3x3 512->512 21x40, ReLU, INT8 out", 21, 40, 512, 512, 3, Residual::kNone, QType::kInt8},
      {"block4 conv3 1x1 512->2048 21x40, FP16 residual, ReLU, FP16 out", 21, 40, 512, 2048, 1, Residual::kF16,
       QType::kF16},
  };
  const GpuInfo& gpu = test_support::the_gpu();
  CudnnHandle handle;
  std::mt19937 rng(7);
  for (QType in : {QType::kInt8, QType::kE4m3}) {
    if (in == QType::kE4m3 && gpu.major * 10 + gpu.minor < 89) continue;
    for (const Layer& layer : layers) {
      SCOPED_TRACE(layer.what);
      DeviceMemory memory;
      cuda::QuantConvArgs a;
      a.n = 16, a.h = a.oh = layer.h, a.w = a.ow = layer.w, a.c = layer.c, a.k = layer.k, a.r = a.s = layer.r;
      a.pad_top = a.pad_left = layer.r / 2;
      a.in_type = in;
      a.act.type = 0;
      a.out_type = layer.out;
      a.out_scale = 0.05f;
      const size_t pixels = size_t(a.n) * a.h * a.w;
      a.x = memory.upload(random_codes(in, pixels * a.c, rng));
      a.filter = memory.upload(random_codes(in, size_t(a.k) * a.r * a.s * a.c, rng));
      const float s_x = in == QType::kInt8 ? 1e-4f : 1e-6f;
      a.scale = memory.upload(std::vector<float>(a.k, s_x));
      a.bias = memory.upload(std::vector<float>(a.k, 0.01f));
      if (layer.residual == Residual::kF16) {
        a.residual_type = QType::kF16;
        std::vector<uint16_t> r(pixels * a.k);
        for (uint16_t& v : r) v = float_to_half(std::uniform_real_distribution<float>(-1, 1)(rng));
        a.residual = memory.upload(r);
      } else if (layer.residual == Residual::kInt8) {
        a.residual_type = QType::kInt8;
        a.residual_scale = 0.01f;
        a.residual = memory.upload(random_codes(QType::kInt8, pixels * a.k, rng));
      }
      a.y = memory.allocate(pixels * a.k * cuda::qtype_size(a.out_type));

      std::string kernel_variant;
      const double kernel = fastest_variant_ms(a, &kernel_variant);
      double best = 1e30, best_compiled = 1e30;
      int64_t best_engine = -1, best_compiled_engine = -1;
      int planned = 0, compiled = 0;
      std::string refused;
      std::unique_ptr<cuda::CudnnQuantConvolution> conv;
      refused = test_support::error_of([&] {
        conv = std::make_unique<cuda::CudnnQuantConvolution>(handle.get(), a, true, a.residual != nullptr);
      });
      if (conv) {
        std::string why;
        for (const cuda::GraphEngineConfig& config : conv->candidate_configs(&why)) {
          std::string no;
          bool run_time = false;
          const int plan = plan_config(*conv, config, &compiled, &run_time, &no);
          if (plan < 0) continue;
          ++planned;
          const size_t bytes = std::max<size_t>(conv->workspace_size(plan), 256);
          void* workspace = memory.allocate(bytes);
          ASSERT_EQ(conv->run(plan, a, workspace, bytes), CUDNN_STATUS_SUCCESS);
          const double ms = median_ms([&] { conv->run(plan, a, workspace, bytes); });
          if (run_time ? ms < best_compiled : ms < best) {
            (run_time ? best_compiled : best) = ms;
            (run_time ? best_compiled_engine : best_engine) = config.engine;
          }
        }
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::printf("8-bit timing %s %s: kernel %.4f ms (%s); cuDNN %s", name_of(in), layer.what, kernel,
                  kernel_variant.c_str(), conv ? "" : refused.substr(0, 160).c_str());
      if (best < 1e30) std::printf("%.4f ms (engine %lld)", best, static_cast<long long>(best_engine));
      else if (conv) std::printf("no precompiled plan");
      if (best_compiled < 1e30)
        std::printf(", compiled at run time %.4f ms (engine %lld)", best_compiled,
                    static_cast<long long>(best_compiled_engine));
      std::printf(" [%d plans]\n", planned);
    }
  }
}

// EAST's 1x1 layers at batch 16 (672x1280) as they would run with 8-bit tensors on both sides: cuBLASLt's
// INT8 matmul (best of its heuristic's first 8) against our kernel's best variant on the same codes, and
// against cuBLASLt's FP16 matmul on the same shapes with FP16 tensors (what the FP16 engine runs), in one
// process. A measurement for the docs (docs/QUANTIZATION.md); it fails only when an algorithm offered does
// not run.
TEST(GpuQuantConv, CublasLtInt8TimedOnEast1x1Layers) {
  REQUIRE_GPU();
  struct Layer {
    const char* what;
    int h, w, c, k;
    bool residual;
  };
  const Layer layers[] = {
      {"block1 conv1 1x1 256->64 168x320", 168, 320, 256, 64, false},
      {"block1 conv3 1x1 64->256 168x320, residual", 168, 320, 64, 256, true},
      {"block2 conv1 1x1 512->128 84x160", 84, 160, 512, 128, false},
      {"block2 conv3 1x1 128->512 84x160, residual", 84, 160, 128, 512, true},
      {"block3 conv1 1x1 1024->256 42x80", 42, 80, 1024, 256, false},
      {"block3 conv3 1x1 256->1024 42x80, residual", 42, 80, 256, 1024, true},
      {"block4 conv1 1x1 2048->512 21x40", 21, 40, 2048, 512, false},
      {"block4 conv3 1x1 512->2048 21x40, residual", 21, 40, 512, 2048, true},
  };
  LtHandle handle;
  std::mt19937 rng(11);
  for (const Layer& layer : layers) {
    SCOPED_TRACE(layer.what);
    DeviceMemory memory;
    cuda::QuantConvArgs a;
    a.n = 16, a.h = a.oh = layer.h, a.w = a.ow = layer.w, a.c = layer.c, a.k = layer.k;
    a.act.type = 0;
    a.out_type = QType::kInt8;
    a.out_scale = 0.05f;
    const size_t pixels = size_t(a.n) * a.h * a.w;
    a.x = memory.upload(random_codes(QType::kInt8, pixels * a.c, rng));
    a.filter = memory.upload(random_codes(QType::kInt8, size_t(a.k) * a.c, rng));
    a.scale = memory.upload(std::vector<float>(a.k, 1e-4f));
    a.bias = memory.upload(std::vector<float>(a.k, 0.01f));
    if (layer.residual) {
      a.residual_type = QType::kInt8;
      a.residual_scale = 0.01f;
      a.residual = memory.upload(random_codes(QType::kInt8, pixels * a.k, rng));
    }
    a.y = memory.allocate(pixels * a.k);
    void* workspace = memory.allocate(kMatmulWorkspace);

    std::string kernel_variant;
    const double kernel = fastest_variant_ms(a, &kernel_variant);
    double int8 = 1e30;
    int int8_id = -1;
    cuda::CublasLtQuantConvolution conv(a, layer.residual);
    for (const cuda::LtAlgorithm& algo : conv.heuristic(handle.get(), kMatmulWorkspace, 8)) {
      ASSERT_EQ(conv.run(handle.get(), algo.algo, a, workspace, kMatmulWorkspace, nullptr), CUBLAS_STATUS_SUCCESS);
      const double ms = median_ms([&] { conv.run(handle.get(), algo.algo, a, workspace, kMatmulWorkspace, nullptr); });
      if (ms < int8) int8 = ms, int8_id = algo.id;
    }

    // FP16: the same shapes, FP16 tensors, bias, FP16 residual, ReLU.
    cuda::ConvGeometry g;
    g.n = a.n, g.h = g.oh = a.h, g.w = g.ow = a.w, g.c = a.c, g.k = a.k;
    std::vector<uint16_t> halves(std::max(pixels * std::max(a.c, a.k), size_t(a.k) * a.c));
    for (uint16_t& v : halves) v = float_to_half(std::uniform_real_distribution<float>(-1, 1)(rng));
    cuda::ConvOperands o;
    o.x = memory.upload(halves);
    o.w = memory.upload(halves);
    o.bias = memory.upload(std::vector<uint16_t>(a.k, float_to_half(0.01f)));
    o.residual = layer.residual ? memory.upload(halves) : nullptr;
    o.y = memory.allocate(pixels * a.k * 2);
    o.workspace = workspace, o.workspace_bytes = kMatmulWorkspace;
    cuda::CublasLtConvolution fp16(g, cuda::DType::kF16, cuda::cublaslt_compute_type(false), o.bias, layer.residual,
                                   true);
    double half = 1e30;
    for (const cuda::LtAlgorithm& algo : fp16.heuristic(handle.get(), kMatmulWorkspace, 8)) {
      ASSERT_EQ(fp16.run(handle.get(), algo.algo, o, nullptr), CUBLAS_STATUS_SUCCESS);
      half = std::min(half, median_ms([&] { fp16.run(handle.get(), algo.algo, o, nullptr); }));
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::printf("1x1 timing %s: FP16 cuBLASLt %.4f ms; INT8 cuBLASLt %.4f ms (algo %d); INT8 kernel %.4f ms (%s)\n",
                layer.what, half, int8, int8_id, kernel, kernel_variant.c_str());
  }
}

// ---- Quantise / dequantise ----

// Floats that test every rule: NaN, ±inf, ±0, huge, the largest finite, subnormals, exact ties of both
// grids at the scale, values around ±127.5 and ±464, and random bit patterns.
std::vector<float> awkward_floats(float scale, std::mt19937& rng) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {std::nanf(""), -std::nanf(""), inf, -inf, 0.0f, -0.0f, 1e30f, -1e30f,
                          std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(), -1e-40f, 1e-38f, 1e-45f};
  for (float t : {0.5f, 1.5f, 2.5f, -2.5f, 126.5f, 127.0f, 127.49f, 127.5f, 128.0f, -127.5f, -300.0f, 448.0f, 456.0f,
                  464.0f, 464.1f, 480.0f, -464.0f, -470.0f, 0.001953125f, 0.0009765625f, 0.0029296875f, 0.015625f,
                  0.0146484375f, 1.0625f, 1.1875f, 17.0f, 19.0f})
    v.push_back(t * scale);
  std::uniform_real_distribution<float> uniform(-600.0f, 600.0f);
  for (int i = 0; i < 20000; ++i) v.push_back(uniform(rng) * scale);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  for (int i = 0; i < 2000; ++i) v.push_back(std::ldexp(uniform(rng), -(i % 40)) * scale);  // toward E4M3 subnormals
  v.push_back(1.0f);  // an odd count: the tail of a pack
  return v;
}

uint8_t cpu_code(QType type, float x, float scale) {
  return type == QType::kInt8 ? static_cast<uint8_t>(quant::quantize_int8(x, scale)) : quant::float_to_e4m3(x / scale);
}

TEST(GpuQuantConv, QuantizeMatchesTheCpuCodes) {
  REQUIRE_GPU();
  std::mt19937 rng(7);
  for (float scale : {1.0f, 0.0371f, 3.3e-5f}) {
    const std::vector<float> values = awkward_floats(scale, rng);
    std::vector<uint16_t> halves;
    for (uint32_t h = 0; h < 65536; ++h) halves.push_back(static_cast<uint16_t>(h));  // every FP16 value
    halves.push_back(0x3c00);
    for (QType in : {QType::kF32, QType::kF16}) {
      for (QType out : {QType::kInt8, QType::kE4m3}) {
        // Both the packed path (aligned) and the scalar one (one element in).
        for (int offset : {0, 1}) {
          SCOPED_TRACE(std::string(name_of(in)) + " -> " + name_of(out) + ", scale " + std::to_string(scale) +
                       ", offset " + std::to_string(offset));
          DeviceMemory memory;
          const int64_t count = static_cast<int64_t>(in == QType::kF32 ? values.size() : halves.size()) - offset;
          const uint8_t* x = in == QType::kF32 ? reinterpret_cast<const uint8_t*>(memory.upload(values))
                                               : reinterpret_cast<const uint8_t*>(memory.upload(halves));
          x += offset * cuda::qtype_size(in);
          uint8_t* y = static_cast<uint8_t*>(memory.allocate(count + 1)) + offset;
          cuda::launch_quantize(x, in, y, out, count, scale, nullptr);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          std::vector<uint8_t> got(count);
          ASSERT_EQ(cudaMemcpy(got.data(), y, count, cudaMemcpyDeviceToHost), cudaSuccess);
          int64_t wrong = 0;
          std::string first;
          for (int64_t i = 0; i < count; ++i) {
            const float v = in == QType::kF32 ? values[i + offset] : half_to_float(halves[i + offset]);
            const uint8_t want = cpu_code(out, v, scale);
            if (got[i] != want && wrong++ == 0)
              first = "x " + std::to_string(v) + ": code " + std::to_string(int(got[i])) + ", expected " +
                      std::to_string(int(want));
          }
          EXPECT_EQ(wrong, 0) << first;
        }
      }
    }
  }
}

TEST(GpuQuantConv, DequantizeMatchesTheCpuValues) {
  REQUIRE_GPU();
  std::vector<uint8_t> codes;
  for (int repeat = 0; repeat < 5; ++repeat)
    for (int code = 0; code < 256; ++code) codes.push_back(static_cast<uint8_t>(code));
  codes.push_back(0x42);  // an odd count
  for (float scale : {1.0f, 0.0371f}) {
    for (QType in : {QType::kInt8, QType::kE4m3}) {
      for (QType out : {QType::kF32, QType::kF16}) {
        for (int offset : {0, 1}) {
          SCOPED_TRACE(std::string(name_of(in)) + " -> " + name_of(out) + ", offset " + std::to_string(offset));
          DeviceMemory memory;
          const int64_t count = static_cast<int64_t>(codes.size()) - offset;
          const uint8_t* x = memory.upload(codes) + offset;
          const size_t size = cuda::qtype_size(out);
          uint8_t* y = static_cast<uint8_t*>(memory.allocate((count + 1) * size)) + offset * size;
          cuda::launch_dequantize(x, in, y, out, count, scale, nullptr);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          std::vector<uint8_t> got(count * size);
          ASSERT_EQ(cudaMemcpy(got.data(), y, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
          int64_t wrong = 0;
          for (int64_t i = 0; i < count; ++i) {
            const uint8_t code = codes[i + offset];
            const float want = in == QType::kInt8 ? quant::dequantize_int8(static_cast<int8_t>(code), scale)
                                                  : quant::e4m3_to_float(code) * scale;
            float g;
            if (out == QType::kF32) {
              std::memcpy(&g, got.data() + i * 4, 4);
            } else {
              uint16_t h;
              std::memcpy(&h, got.data() + i * 2, 2);
              g = half_to_float(h);
            }
            const float w = out == QType::kF32 ? want : half_to_float(float_to_half(want));
            const bool same = std::isnan(w) ? std::isnan(g) : g == w;
            wrong += !same;
            EXPECT_TRUE(same) << "code " << int(code) << ": " << g << ", expected " << w;
            if (wrong > 5) return;
          }
        }
      }
    }
  }
}

// ---- Refusals (no GPU needed: the shape and activation are refused before the device is asked) ----

cuda::QuantConvArgs plain_args() {
  cuda::QuantConvArgs a;
  a.n = 1, a.h = a.w = a.oh = a.ow = 8, a.c = 64, a.k = 64, a.r = a.s = 3, a.pad_top = a.pad_left = 1;
  return a;
}

// What cuBLASLt's INT8 matmul is not given, each with its reason (no GPU needed).
TEST(CublasLtQuantConvApplies, RefusesWhatTheMatmulCannotComputeAsTheKernelDoes) {
  cuda::QuantConvArgs a;
  a.n = 1, a.h = a.w = a.oh = a.ow = 16, a.c = 64, a.k = 128;
  a.act.type = 0;
  const char* why = nullptr;
  EXPECT_TRUE(cuda::cublaslt_quant_conv_applies(a, false, &why));
  EXPECT_EQ(why, nullptr);
  a.residual_type = QType::kInt8;
  EXPECT_TRUE(cuda::cublaslt_quant_conv_applies(a, true, &why));
  auto refusal = [&](cuda::QuantConvArgs b, bool residual) {
    EXPECT_FALSE(cuda::cublaslt_quant_conv_applies(b, residual, &why));
    return std::string(why ? why : "");
  };
  cuda::QuantConvArgs b = a;
  b.act.type = -1;
  EXPECT_NE(refusal(b, false).find("-128"), std::string::npos);
  b = a, b.residual_type = QType::kF16;
  EXPECT_NE(refusal(b, true).find("residual"), std::string::npos);
  b = a, b.out_type = QType::kF16;
  EXPECT_NE(refusal(b, false).find("INT8"), std::string::npos);
  b = a, b.in_type = b.out_type = QType::kE4m3;
  EXPECT_NE(refusal(b, false).find("INT8"), std::string::npos);
  b = a, b.r = b.s = 3, b.pad_top = b.pad_left = 1;
  EXPECT_NE(refusal(b, false).find("1x1"), std::string::npos);
  b = a, b.stride_h = b.stride_w = 2, b.oh = b.ow = 8;
  EXPECT_NE(refusal(b, false).find("stride"), std::string::npos);
  b = a, b.y_pixel_stride = 256, b.y_channel_offset = 64;
  EXPECT_NE(refusal(b, false).find("slice"), std::string::npos);
  b = a, b.k = 130;
  EXPECT_NE(refusal(b, false).find("multiples of 4"), std::string::npos);
}

TEST(QuantConvSupports, RefusesThreeChannelsWithAReason) {
  cuda::QuantConvArgs a = plain_args();
  a.c = 3;
  const char* why = nullptr;
  EXPECT_FALSE(cuda::quant_conv_supports(a, &why));
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("multiple of 16"), std::string::npos) << why;
  EXPECT_FALSE(cuda::quant_conv_variant_applies(a, cuda::quant_conv_generic_variant()));
  const std::string message = test_support::error_of([&] { cuda::launch_quant_conv(a, 0, nullptr); });
  EXPECT_NE(message.find("multiple of 16"), std::string::npos) << message;
}

TEST(QuantConvSupports, RefusesSigmoidWithAReason) {
  cuda::QuantConvArgs a = plain_args();
  a.act.type = 1;  // Sigmoid
  const char* why = nullptr;
  EXPECT_FALSE(cuda::quant_conv_supports(a, &why));
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("ReLU"), std::string::npos) << why;
  const std::string message = test_support::error_of([&] { cuda::launch_quant_conv(a, 0, nullptr); });
  EXPECT_NE(message.find("ReLU"), std::string::npos) << message;
}

TEST(QuantConvSupports, RefusesASliceWiderThanThePixel) {
  cuda::QuantConvArgs a = plain_args();
  a.y_pixel_stride = 96, a.y_channel_offset = 40;  // 40 + 64 > 96
  const char* why = nullptr;
  EXPECT_FALSE(cuda::quant_conv_supports(a, &why));
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("y_pixel_stride"), std::string::npos) << why;
}

// A variant is a candidate only where its tile is not mostly waste, but it runs wherever its kernel can: an
// engine built for a larger batch runs its choice on fewer pixels. The wgmma variants take INT8 alone.
TEST(QuantConvSupports, AVariantRunsWhereItIsNoCandidateAndWgmmaTakesInt8Alone) {
  cuda::QuantConvArgs a = plain_args();  // 64 pixels, k 64: under the 128-wide tiles' 65
  if (!cuda::quant_conv_supports(a)) GTEST_SKIP() << "this GPU has no 8-bit mma";
  EXPECT_FALSE(cuda::quant_conv_variant_applies(a, 0));
  EXPECT_TRUE(cuda::quant_conv_variant_runs(a, 0));
  EXPECT_TRUE(cuda::quant_conv_variant_applies(a, cuda::quant_conv_generic_variant()));
  EXPECT_FALSE(cuda::quant_conv_variant_uses_wgmma(cuda::quant_conv_generic_variant()));
  a.in_type = QType::kE4m3;
  int wgmma = 0;
  for (int variant = 0; variant < cuda::quant_conv_variants(); ++variant) {
    if (!cuda::quant_conv_variant_uses_wgmma(variant)) continue;
    ++wgmma;
    EXPECT_FALSE(cuda::quant_conv_variant_runs(a, variant)) << cuda::quant_conv_variant_name(variant);
  }
  EXPECT_GE(wgmma, 1);
  EXPECT_FALSE(cuda::quant_conv_variant_runs(a, cuda::quant_conv_variants()));  // past the last
}

}  // namespace
}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
