// Quantisation: INT8 and E4M3 codes against independent references (exhaustive nearest search), and the
// calibrators on histograms with known answers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "eastrt/quant.h"
#include "test_support.h"

using namespace eastrt;
using namespace eastrt::quant;
using test_support::error_of;

namespace {

// E4M3 decoded from the definition, independently of the library: sign, 4 exponent bits (bias 7), 3
// mantissa bits, subnormals at exponent 0, S.1111.111 NaN.
double e4m3_reference_value(int code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const double magnitude = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return (code & 0x80) ? -magnitude : magnitude;
}

// The nearest finite E4M3 value by exhaustive search over the 127 non-negative codes, ties to the even
// code (mantissa ending in 0); saturating, so anything beyond 448 is 448.
int e4m3_nearest_code(float x) {
  const double a = std::fabs(static_cast<double>(x));
  int best = 0;
  double best_distance = INFINITY;
  for (int c = 0; c <= 0x7e; ++c) {
    const double d = std::fabs(a - e4m3_reference_value(c));
    if (d < best_distance || (d == best_distance && (c & 1) == 0)) best = c, best_distance = d;
  }
  return std::signbit(x) ? best | 0x80 : best;
}

// Values around every E4M3 value and midpoint (±1 ulp), and random magnitudes over the whole range.
std::vector<float> rounding_probes() {
  std::vector<float> probes;
  for (int c = 0; c < 0x7e; ++c) {
    const float lo = static_cast<float>(e4m3_reference_value(c)), hi = static_cast<float>(e4m3_reference_value(c + 1));
    for (float v : {lo, 0.5f * (lo + hi)})
      for (float p : {v, std::nextafter(v, 0.0f), std::nextafter(v, 1e9f)}) probes.push_back(p);
  }
  for (float v : {448.0f, 460.0f, 464.0f, std::nextafter(464.0f, 0.0f), std::nextafter(464.0f, 1e9f), 480.0f, 1e6f,
                  1e-30f, std::numeric_limits<float>::denorm_min(), 0.0f})
    probes.push_back(v);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> exponent(-14.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) probes.push_back(std::exp2(exponent(rng)));
  const size_t n = probes.size();
  for (size_t i = 0; i < n; ++i) probes.push_back(-probes[i]);
  return probes;
}

Histogram histogram_of(const std::vector<float>& values, int bins = Histogram::kDefaultBins) {
  Histogram h(bins);
  h.add(values.data(), static_cast<int64_t>(values.size()));
  return h;
}

std::vector<float> gaussian_with_outlier(float outlier) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(1000000);
  for (float& v : values) v = normal(rng);
  values.push_back(outlier);
  return values;
}

}  // namespace

// ---- INT8 ----

TEST(Quant, Int8RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(quantize_int8(2.5f, 1), 2);
  EXPECT_EQ(quantize_int8(3.5f, 1), 4);
  EXPECT_EQ(quantize_int8(-2.5f, 1), -2);
  EXPECT_EQ(quantize_int8(-0.5f, 1), 0);
  EXPECT_EQ(quantize_int8(1.5f, 0.5f), 3);
  EXPECT_EQ(quantize_int8(126.5f, 1), 126);
  EXPECT_EQ(quantize_int8(127.4f, 1), 127);
  EXPECT_EQ(quantize_int8(200, 1), 127);
  EXPECT_EQ(quantize_int8(-1e9f, 1), -127);
  EXPECT_EQ(quantize_int8(INFINITY, 1), 127);
  EXPECT_EQ(quantize_int8(NAN, 1), 0);
  EXPECT_EQ(dequantize_int8(-127, 0.25f), -31.75f);
  // The array form gives the scalar's values.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-300, 300);
  std::vector<float> values(10000);
  for (float& v : values) v = dist(rng);
  for (float v : {0.5f, 1.5f, 2.5f, -2.5f, 126.5f, -126.5f}) values.push_back(v * 0.75f);
  std::vector<float> bulk = values;
  fake_quantize(bulk.data(), static_cast<int64_t>(bulk.size()), 0.75f, QuantType::kInt8);
  for (size_t i = 0; i < values.size(); ++i) {
    const double want = 0.75 * std::clamp(std::nearbyint(values[i] / 0.75f), -127.0f, 127.0f);
    ASSERT_EQ(bulk[i], static_cast<float>(want)) << values[i];
    ASSERT_EQ(fake_quantize(values[i], 0.75f, QuantType::kInt8), bulk[i]);
  }
}

// ---- FP8 E4M3 ----

TEST(Quant, E4m3EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_to_float(static_cast<uint8_t>(c));
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(v)) << c;
      EXPECT_EQ(float_to_e4m3(v) & 0x7f, 0x7f) << c;
      continue;
    }
    EXPECT_EQ(static_cast<double>(v), e4m3_reference_value(c)) << c;
    EXPECT_EQ(float_to_e4m3(v), c) << c << " = " << v;  // −0 included: 0x80
    EXPECT_EQ(float_to_e4m3(v, Fp8Overflow::kNaN), c) << c;
  }
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_float(0x08), 0.015625f);    // the smallest normal, 2^−6
  EXPECT_EQ(e4m3_to_float(0x01), 0.001953125f);  // the smallest subnormal, 2^−9
  EXPECT_EQ(e4m3_to_float(0xfe), -448.0f);
}

TEST(Quant, E4m3RoundingMatchesExhaustiveNearestSearch) {
  for (float x : rounding_probes()) {
    ASSERT_EQ(float_to_e4m3(x), e4m3_nearest_code(x)) << x;
    // The array form (bit arithmetic) gives the codes' values.
    float y = x;
    fake_quantize(&y, 1, 1.0f, QuantType::kFp8);
    ASSERT_EQ(y, static_cast<float>(e4m3_reference_value(e4m3_nearest_code(x)))) << x;
  }
  // With a scale: the same on x / scale.
  for (float x : rounding_probes()) {
    const float scale = 0.037f;
    float y = x * scale;
    fake_quantize(&y, 1, scale, QuantType::kFp8);
    ASSERT_EQ(y, fake_quantize(x * scale, scale, QuantType::kFp8)) << x;
  }
  // Overflow: saturating by default, NaN (no infinity in e4m3fn) on request; 464 is the tie that goes to 448.
  EXPECT_EQ(float_to_e4m3(464.0f, Fp8Overflow::kNaN), 0x7e);
  EXPECT_EQ(float_to_e4m3(std::nextafter(464.0f, 1e9f), Fp8Overflow::kNaN), 0x7f);
  EXPECT_EQ(float_to_e4m3(-1000.0f, Fp8Overflow::kNaN), 0xff);
  EXPECT_EQ(float_to_e4m3(INFINITY), 0x7e);
  EXPECT_EQ(float_to_e4m3(-INFINITY), 0xfe);
  EXPECT_EQ(float_to_e4m3(NAN), 0x7f);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(-1e-30f), 0x80);  // underflow keeps the sign
  float nan = NAN;
  fake_quantize(&nan, 1, 1.0f, QuantType::kFp8);
  EXPECT_TRUE(std::isnan(nan));
}

TEST(Quant, WeightScalesArePerOutputChannel) {
  HostTensor w({3, 2, 1, 1}, {0.5f, -1.27f, 0, 0, 4.48f, 1});
  const std::vector<float> int8 = weight_scales(w, QuantType::kInt8);
  EXPECT_FLOAT_EQ(int8[0], 0.01f);
  EXPECT_FLOAT_EQ(int8[1], 1.0f / 127);  // an all-zero channel keeps a usable scale
  EXPECT_FLOAT_EQ(int8[2], 4.48f / 127);
  EXPECT_FLOAT_EQ(weight_scales(w, QuantType::kFp8)[2], 0.01f);
  const HostTensor q = fake_quantize_weights(w, QuantType::kInt8);
  EXPECT_FLOAT_EQ(q.data[1], -1.27f);  // each channel's largest magnitude is exact
  EXPECT_FLOAT_EQ(q.data[0], 50 * 0.01f);
  EXPECT_EQ(q.data[2], 0.0f);
  EXPECT_FLOAT_EQ(q.data[5], std::nearbyint(127 / 4.48f) * (4.48f / 127));
}

// ---- Histograms and calibrators ----

TEST(Quant, HistogramGrowsByExactRebinning) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> small(-1, 1), large(-4, 4);
  std::vector<float> a(5000), b(5000);
  for (float& v : a) v = small(rng);
  for (float& v : b) v = large(rng);
  a[0] = 1.0f;  // the first range: exactly 1
  b[0] = 4.0f;
  Histogram grown(256);
  grown.add(a.data(), 5000);
  EXPECT_EQ(grown.range(), 1.0 + 1.0 / 1024);
  grown.add(b.data(), 5000);
  EXPECT_EQ(grown.range(), 4.0 + 4.0 / 1024);  // doubled twice
  EXPECT_EQ(grown.max_abs(), 4.0f);
  Histogram direct(256);
  direct.add(b.data(), 5000);  // range 4 from the start
  direct.add(a.data(), 5000);
  EXPECT_EQ(grown.counts(), direct.counts());
  EXPECT_EQ(grown.total(), 10000);
  const float bad[] = {1.0f, NAN, INFINITY};
  EXPECT_NE(error_of([&] { grown.add(bad, 3); }).find("infinite"), std::string::npos);
}

TEST(Quant, MinMaxIsTheLargestMagnitude) {
  const Histogram h = histogram_of({0.1f, -3.25f, 2.0f, 0.0f});
  EXPECT_EQ(calibrate_amax(h, Calibrator::kMinMax, QuantType::kInt8), 3.25f);
  EXPECT_EQ(calibrate_amax(h, Calibrator::kMinMax, QuantType::kFp8), 3.25f);
  EXPECT_EQ(calibrate_amax(histogram_of({0, 0}), Calibrator::kEntropy, QuantType::kInt8), 0.0f);
}

TEST(Quant, PercentileOnAKnownHistogram) {
  // One value in each of 2048 bins over [0, 2048]: the median's upper edge is 1024.
  const Histogram h = Histogram::from_counts(std::vector<double>(2048, 1.0), 2048, 2047.5f);
  CalibratorOptions half;
  half.percentile = 50;
  EXPECT_EQ(calibrate_amax(h, Calibrator::kPercentile, QuantType::kInt8, half), 1024.0f);
  CalibratorOptions all;
  all.percentile = 100;
  EXPECT_EQ(calibrate_amax(h, Calibrator::kPercentile, QuantType::kInt8, all), 2047.5f);  // capped at the max
  // A Gaussian's 99.99th percentile of |x| is 3.89 σ.
  const float p = calibrate_amax(histogram_of(gaussian_with_outlier(100)), Calibrator::kPercentile, QuantType::kInt8);
  EXPECT_NEAR(p, 3.89, 0.1);
}

TEST(Quant, EntropyAndMseClipAGaussianWellBelowItsOutlier) {
  const Histogram h = histogram_of(gaussian_with_outlier(100));
  ASSERT_EQ(h.max_abs(), 100.0f);
  for (QuantType type : {QuantType::kInt8, QuantType::kFp8}) {
    SCOPED_TRACE(to_string(type));
    const float entropy = calibrate_amax(h, Calibrator::kEntropy, type);
    const float mse = calibrate_amax(h, Calibrator::kMse, type);
    const float max = calibrate_amax(h, Calibrator::kMinMax, type);
    EXPECT_EQ(max, 100.0f);
    // One value in a million at 100 σ must not set the range. At a bin width of 100/2048 the Gaussian fills
    // only the first 100 bins, so KL's first candidate, 128 bins (6.25), is where INT8 lands.
    EXPECT_GT(entropy, 2.0f);
    EXPECT_LT(entropy, 20.0f);
    // MSE's choice has the least error among the calibrators' choices, the max included.
    const double e = quantization_mse(h, mse, type);
    EXPECT_LE(e, quantization_mse(h, entropy, type));
    EXPECT_LE(e, quantization_mse(h, max, type));
    EXPECT_LE(mse, max);
    // The entropy choice is where KL is least.
    const int best = static_cast<int>(std::lround(entropy / h.bin_width()));
    for (int i : {128, best / 2, best + 50, h.bins()})
      if (i >= 128 && i <= h.bins()) EXPECT_LE(entropy_divergence(h, best, type), entropy_divergence(h, i, type)) << i;
  }
  const float int8 = calibrate_amax(h, Calibrator::kEntropy, QuantType::kInt8);
  EXPECT_NEAR(int8, 128 * h.bin_width(), h.bin_width());
  // MSE weighs the one outlier's clipping, (100 − a)² in a million, against the rounding noise of all,
  // (a/127)²/12: least at a = 100 · 10⁻⁶ / (10⁻⁶ + 1/(12 · 127²)) = 16.2, between KL's clip and the max.
  const float int8_mse = calibrate_amax(h, Calibrator::kMse, QuantType::kInt8);
  EXPECT_NEAR(int8_mse, 16.2, 0.5);
  EXPECT_GT(int8_mse, int8);
}

TEST(Quant, CalibratorsOnAResolvedGaussian) {
  const Histogram h = histogram_of(gaussian_with_outlier(8));
  EXPECT_NEAR(calibrate_amax(h, Calibrator::kMse, QuantType::kInt8), 3.92, 0.12);
  const float entropy = calibrate_amax(h, Calibrator::kEntropy, QuantType::kInt8);
  EXPECT_GT(entropy, 3.9f);
  EXPECT_LT(entropy, 5.5f);
  // FP8's error is relative, so clipping buys less: its clips lie above INT8's.
  EXPECT_GT(calibrate_amax(h, Calibrator::kMse, QuantType::kFp8), 4.5f);
  EXPECT_GT(calibrate_amax(h, Calibrator::kEntropy, QuantType::kFp8), entropy);
}

TEST(Quant, EntropyKeepsTheWholeRangeOfAUniformTensor) {
  std::vector<float> values(200000);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(0, 1);
  for (float& v : values) v = u(rng);
  const Histogram h = histogram_of(values);
  EXPECT_GT(calibrate_amax(h, Calibrator::kEntropy, QuantType::kInt8), 0.97f);
  EXPECT_GT(calibrate_amax(h, Calibrator::kMse, QuantType::kInt8), 0.97f);
}

