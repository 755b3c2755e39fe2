// INT8 and FP8 E4M3 codes, scales and fake quantisation (see quant.h).
#include <algorithm>
#include <bit>
#include <cmath>

#include "eastrt/error.h"
#include "eastrt/quant.h"

namespace eastrt::quant {
namespace {

// Round to nearest, ties to even, for |v| <= 2^22, without a libm call so that loops vectorise: adding
// 1.5·2^23 leaves no fraction bits and the FPU's default rounding is to nearest even.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23
  return (v + kMagic) - kMagic;
}

inline float int8_value(float y) {  // y = x / scale, NaN excluded
  return round_half_even(std::clamp(y, -127.0f, 127.0f));
}

// The E4M3 value nearest to y (ties to even mantissa), saturated to ±448, by bit arithmetic on the float.
inline float e4m3_value(float y) {
  const float a = std::fabs(y);
  float r;
  if (a < 0.015625f) {
    // Below the smallest normal 2^−6 the grid is uniform, multiples of 2^−9: the magic-number rounding at
    // that quantum (1.5 · 2^(23−9)).
    constexpr float kMagic = 24576.0f;
    r = (a + kMagic) - kMagic;
  } else {
    // Keep 3 mantissa bits, round to nearest even on the 20 dropped; a carry into the exponent is right.
    uint32_t bits = std::bit_cast<uint32_t>(std::min(a, 1024.0f));  // beyond 1024 saturates anyway
    bits += 0x7ffffu + ((bits >> 20) & 1u);
    bits &= ~0xfffffu;
    r = std::bit_cast<float>(bits);
  }
  r = std::min(r, kE4m3Max);
  return std::copysign(r, y);
}

}  // namespace

const char* to_string(QuantType type) { return type == QuantType::kInt8 ? "int8" : "fp8"; }

QuantType parse_quant_type(const std::string& text) {
  if (text == "int8") return QuantType::kInt8;
  if (text == "fp8") return QuantType::kFp8;
  throw_error("unknown quantised precision '", text, "' (expected int8 or fp8)");
}

float max_representable(QuantType type) { return type == QuantType::kInt8 ? 127.0f : kE4m3Max; }

int8_t quantize_int8(float x, float scale) {
  const float y = x / scale;
  if (std::isnan(y)) return 0;
  return static_cast<int8_t>(int8_value(y));
}

float e4m3_to_float(uint8_t code) {
  const int exponent = (code >> 3) & 0xf, mantissa = code & 0x7;
  if (exponent == 15 && mantissa == 7) return NAN;
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                        : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  return (code & 0x80) ? -magnitude : magnitude;
}

uint8_t float_to_e4m3(float x, Fp8Overflow overflow) {
  if (std::isnan(x)) return kE4m3NaN;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  // 464 lies halfway between 448 (mantissa 110) and 480, whose code would be the NaN: the tie goes to the
  // even 448, anything above overflows.
  if (a > 464.0f) return sign | (overflow == Fp8Overflow::kSaturate ? 0x7e : kE4m3NaN);
  if (a >= kE4m3Max) return sign | 0x7e;
  // The spacing of the grid around a: 2^(E−3) for a in [2^E, 2^(E+1)), E >= −6; the subnormals share the
  // spacing of the first binade, 2^−9.
  int e = 0;
  std::frexp(a, &e);  // a = f · 2^e, f in [0.5, 1)
  int binade = std::max(e - 1, -6);
  // a / spacing is a multiplication by a power of two: exact. m in [0, 16].
  int m = static_cast<int>(std::nearbyint(std::ldexp(a, 3 - binade)));
  if (m < 8) return sign | static_cast<uint8_t>(m);  // subnormal (only when binade is −6) or zero
  if (m == 16) m = 8, ++binade;
  return sign | static_cast<uint8_t>(((binade + 7) << 3) | (m - 8));
}

float scale_for_amax(float amax, QuantType type) {
  EASTRT_CHECK(std::isfinite(amax) && amax >= 0, "quantisation: amax ", amax, " is not a finite magnitude");
  return (amax > 0 ? amax : 1.0f) / max_representable(type);
}

std::vector<float> weight_scales(const HostTensor& weights, QuantType type) {
  EASTRT_CHECK(!weights.shape.empty() && weights.shape[0] > 0, "weight_scales: weights of shape ",
               eastrt::to_string(weights.shape), " have no output channels");
  const int64_t channels = weights.shape[0], per_channel = weights.size() / channels;
  std::vector<float> scales(static_cast<size_t>(channels));
  for (int64_t k = 0; k < channels; ++k) {
    float amax = 0;
    for (int64_t i = 0; i < per_channel; ++i) amax = std::max(amax, std::fabs(weights.data[k * per_channel + i]));
    scales[k] = scale_for_amax(amax, type);
  }
  return scales;
}

uint8_t quantize_code(float x, float scale, QuantType type) {
  return type == QuantType::kInt8 ? static_cast<uint8_t>(quantize_int8(x, scale)) : float_to_e4m3(x / scale);
}

float fake_quantize(float x, float scale, QuantType type) {
  if (type == QuantType::kInt8) return dequantize_int8(quantize_int8(x, scale), scale);
  return e4m3_to_float(float_to_e4m3(x / scale)) * scale;
}

void fake_quantize(float* values, int64_t count, float scale, QuantType type) {
  if (type == QuantType::kInt8) {
    for (int64_t i = 0; i < count; ++i) {
      const float y = values[i] / scale;
      values[i] = std::isnan(y) ? 0.0f : int8_value(y) * scale;
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      const float y = values[i] / scale;
      values[i] = std::isnan(y) ? y : e4m3_value(y) * scale;
    }
  }
}

HostTensor fake_quantize_weights(const HostTensor& weights, QuantType type) {
  const std::vector<float> scales = weight_scales(weights, type);
  HostTensor result = weights;
  const int64_t per_channel = weights.size() / weights.shape[0];
  for (size_t k = 0; k < scales.size(); ++k)
    fake_quantize(result.data.data() + k * per_channel, per_channel, scales[k], type);
  return result;
}

}  // namespace eastrt::quant
