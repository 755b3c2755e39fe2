// Quantisation: INT8 and E4M3 codes against independent references (exhaustive nearest search), the
// calibrators on histograms with known answers, the calibration cache, the fake-quantised reference against
// a hand computation with integer accumulation, and the calibration set's refusal of the held-out split.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "eastrt/calibration.h"
#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "eastrt/quant.h"
#include "test_support.h"

using namespace eastrt;
using namespace eastrt::quant;
using test_support::error_of;
using test_support::relative_error;

namespace fs = std::filesystem;

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

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("eastrt_quant_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_test_image(const fs::path& path, int height, int width, uint32_t seed) {
  east::Image image{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height * 3))};
  std::mt19937 rng(seed);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  east::write_png(path.string(), image);
}

east::NetworkOptions small_east() { return east::NetworkOptions{1, 64, 64, 8}; }

std::vector<HostTensor> random_images(int count, int64_t height, int64_t width, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<HostTensor> images;
  for (int i = 0; i < count; ++i) images.push_back(test_support::random_tensor({1, height, width, 3}, rng, 0, 255));
  return images;
}

// 512 bins: the network tests are about the plumbing, and the calibrators' cost grows as bins².
CalibrationCache calibrate_small(const Network& network, QuantType type, Calibrator calibrator) {
  ActivationStatistics statistics(network, 2, 512);
  for (const HostTensor& image : random_images(2, 64, 64, 3)) statistics.add_batch(image);
  return make_cache(network, statistics, type, calibrator);
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
  // Scanned in parallel chunks: the same counts.
  std::vector<float> many(300000);
  for (float& v : many) v = large(rng);
  Histogram one(256), two(256);
  one.add(many.data(), 300000, 1);
  two.add(many.data(), 300000, 2);
  EXPECT_EQ(one.counts(), two.counts());
  EXPECT_EQ(one.max_abs(), two.max_abs());
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

// ---- The network side ----

TEST(Quant, QuantisedTensorsAreConvolutionInputsAfterThePasses) {
  const east::NetworkOptions options = small_east();
  const Network prepared = prepare_network(east::build(east::random_weights(options), options));
  const std::vector<QuantizedTensor> tensors = quantized_tensors(prepared);
  ASSERT_FALSE(tensors.empty());
  EXPECT_EQ(tensors[0].name, "mean_subtraction");
  EXPECT_EQ(tensors[0].consumers, std::vector<std::string>{"resnet_v1_50/conv1/Conv2D"});
  // The three heads read the same g3 tensor.
  const QuantizedTensor& heads = tensors.back();
  EXPECT_EQ(heads.consumers.size(), 3u);
  size_t convolutions = 0;
  for (const Layer& l : prepared.layers()) convolutions += l.kind() == LayerKind::kConvolution;
  size_t readers = 0;
  for (const QuantizedTensor& t : tensors) readers += t.consumers.size();
  EXPECT_EQ(readers, convolutions);
}

TEST(Quant, CalibrationIsDeterministicAndCachesRoundTrip) {
  const east::NetworkOptions options = small_east();
  const Network network = east::build(east::random_weights(options), options);
  const CalibrationCache a = calibrate_small(network, QuantType::kInt8, Calibrator::kEntropy);
  const CalibrationCache b = calibrate_small(network, QuantType::kInt8, Calibrator::kEntropy);
  EXPECT_EQ(to_text(a), to_text(b));
  EXPECT_EQ(a.images, 2);
  for (const TensorRange& r : a.tensors) {
    EXPECT_GT(r.amax, 0) << r.name;
    EXPECT_EQ(r.scale, r.amax / 127) << r.name;
  }

  TempDir dir("cache");
  CalibrationCache with_keep = a;
  with_keep.keep_high_precision = {"resnet_v1_50/conv1/Conv2D", "feature_fusion/Conv_7/Conv2D"};
  const std::string path = (dir.path / "east.cache").string();
  write_cache(path, with_keep);
  const CalibrationCache read = read_cache(path);
  EXPECT_EQ(read.format_version, kCacheFormatVersion);
  EXPECT_EQ(read.model_fingerprint, with_keep.model_fingerprint);
  EXPECT_EQ(read.precision, QuantType::kInt8);
  EXPECT_EQ(read.calibrator, Calibrator::kEntropy);
  EXPECT_EQ(read.images, 2);
  EXPECT_EQ(read.keep_high_precision, with_keep.keep_high_precision);
  ASSERT_EQ(read.tensors.size(), with_keep.tensors.size());
  for (size_t i = 0; i < read.tensors.size(); ++i) {
    EXPECT_EQ(read.tensors[i].name, with_keep.tensors[i].name);
    EXPECT_EQ(read.tensors[i].amax, with_keep.tensors[i].amax);  // exactly: 9 significant digits
    EXPECT_EQ(read.tensors[i].scale, with_keep.tensors[i].scale);
  }
  EXPECT_NO_THROW(check_cache_matches(read, path, network, QuantType::kInt8));

  // A percentile cache keeps its share; an FP8 cache's scales are amax / 448.
  CalibrationCache fp8 = calibrate_small(network, QuantType::kFp8, Calibrator::kPercentile);
  EXPECT_EQ(fp8.percentile, 99.99);
  const CalibrationCache fp8_read = parse_cache(to_text(fp8), "fp8.cache");
  EXPECT_EQ(fp8_read.percentile, 99.99);
  EXPECT_EQ(fp8_read.tensors[3].scale, fp8.tensors[3].amax / 448);
}

TEST(Quant, CacheRefusesOtherModelsVersionsAndCorruption) {
  const east::NetworkOptions options = small_east();
  const Network network = east::build(east::random_weights(options, 1), options);
  const CalibrationCache cache = calibrate_small(network, QuantType::kInt8, Calibrator::kMinMax);
  const std::string text = to_text(cache);

  // Another model (other weights) is refused; the same model at another input size is not.
  const Network other = east::build(east::random_weights(options, 2), options);
  std::string e = error_of([&] { check_cache_matches(cache, "east.cache", other, QuantType::kInt8); });
  EXPECT_NE(e.find("east.cache"), std::string::npos) << e;
  EXPECT_NE(e.find("was made for model " + cache.model_fingerprint), std::string::npos) << e;
  east::NetworkOptions bigger = options;
  bigger.height = 96;
  EXPECT_NO_THROW(
      check_cache_matches(cache, "east.cache", east::build(east::random_weights(bigger, 1), bigger), QuantType::kInt8));
  e = error_of([&] { check_cache_matches(cache, "east.cache", network, QuantType::kFp8); });
  EXPECT_NE(e.find("holds int8 ranges"), std::string::npos) << e;

  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  e = error_of([&] { parse_cache(replaced("format 1\n", "format 2\n"), "old.cache"); });
  EXPECT_NE(e.find("old.cache, line 2: format version 2"), std::string::npos) << e;
  e = error_of([&] { parse_cache(text.substr(0, text.size() / 2), "cut.cache"); });
  EXPECT_NE(e.find("cut.cache"), std::string::npos) << e;
  e = error_of([&] { parse_cache(replaced("end\n", ""), "cut.cache"); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  e = error_of([&] { parse_cache("not a cache\n", "x.txt"); });
  EXPECT_NE(e.find("x.txt, line 1: not an eastrt calibration cache"), std::string::npos) << e;
  const TensorRange& first = cache.tensors[0];
  char amax[32];
  std::snprintf(amax, sizeof amax, "%.9g", first.amax);
  e = error_of([&] { parse_cache(replaced(std::string(amax) + " ", std::to_string(first.amax * 2) + " "), "ed.cache"); });
  EXPECT_NE(e.find("is not amax / 127"), std::string::npos) << e;
  e = error_of([&] { parse_cache(replaced(std::string(amax) + " ", "1e999 "), "bad.cache"); });
  EXPECT_NE(e.find("not a finite number"), std::string::npos) << e;
  e = error_of([&] { read_cache("/nonexistent/east.cache"); });
  EXPECT_NE(e.find("/nonexistent/east.cache"), std::string::npos) << e;
}

// A convolution fake-quantised by the engine against the integer arithmetic an INT8 kernel does, written
// out here: quantise the input (per tensor) and the weights (per output channel), accumulate the integer
// products in int32, rescale by s_x · s_w[k], add the bias. For FP8 the same with E4M3 values from the
// exhaustive-search reference, accumulated in double.
TEST(Quant, FakeQuantisedConvolutionMatchesAHandComputation) {
  std::mt19937 rng(21);
  const int64_t H = 5, W = 7, C = 3, K = 4;
  Network network;
  Tensor* x = network.add_input("x", {1, H, W, C});
  ConvolutionParams p;
  p.out_channels = static_cast<int>(K);
  p.kernel = {3, 3};
  p.padding = Padding::symmetric(1);
  p.kernel_weights = test_support::random_weights({K, C, 3, 3}, rng, -0.5f, 0.5f);
  p.bias = test_support::random_weights({K}, rng);
  network.mark_output(network.add_convolution(x, p, "conv"));
  const HostTensor input = test_support::random_tensor({1, H, W, C}, rng, -1.2f, 1.2f);  // beyond amax: clipped

  for (QuantType type : {QuantType::kInt8, QuantType::kFp8}) {
    SCOPED_TRACE(to_string(type));
    const float qmax = type == QuantType::kInt8 ? 127.0f : 448.0f;
    CalibrationCache cache;
    cache.model_fingerprint = model_fingerprint(network);
    cache.precision = type;
    cache.tensors = {{"x", 1.0f, 1.0f / qmax}};
    FakeQuantEngine engine(network, cache, {1});
    EXPECT_EQ(engine.quantized_layers(), std::vector<std::string>{"conv"});
    const HostTensor got = engine.run({{"x", input}}).at("conv");

    // The hand computation.
    const float sx = 1.0f / qmax;
    auto quantised_value = [&](float v, float s) -> double {  // the integer (or E4M3 value) standing for v
      if (type == QuantType::kInt8) return std::clamp(std::nearbyint(v / s), -127.0f, 127.0f);
      return e4m3_reference_value(e4m3_nearest_code(v / s));
    };
    const std::vector<float>& w = p.kernel_weights->data;
    HostTensor want({1, H, W, K});
    for (int64_t k = 0; k < K; ++k) {
      float wmax = 0;
      for (int64_t i = 0; i < C * 9; ++i) wmax = std::max(wmax, std::fabs(w[k * C * 9 + i]));
      const float sw = wmax / qmax;
      for (int64_t oh = 0; oh < H; ++oh)
        for (int64_t ow = 0; ow < W; ++ow) {
          int32_t acc_int = 0;
          double acc = 0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < 3; ++r)
              for (int64_t s = 0; s < 3; ++s) {
                const int64_t ih = oh + r - 1, iw = ow + s - 1;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const double qx = quantised_value(input.data[(ih * W + iw) * C + c], sx);
                const double qw = quantised_value(w[((k * C + c) * 3 + r) * 3 + s], sw);
                if (type == QuantType::kInt8)
                  acc_int += static_cast<int32_t>(qx) * static_cast<int32_t>(qw);
                else
                  acc += qx * qw;
              }
          const double sum = type == QuantType::kInt8 ? acc_int : acc;
          want.data[(oh * W + ow) * K + k] = static_cast<float>(sum * sx * sw + p.bias->data[k]);
        }
    }
    EXPECT_LT(relative_error(got, want), 1e-6);
    // And it is not the FP32 result (a test that could not tell would pass anything).
    const HostTensor fp32 = CpuEngine(network, {1}).run({{"x", input}}).at("conv");
    EXPECT_GT(relative_error(got, fp32), 1e-4);
  }
}

TEST(Quant, FakeQuantisedEastAndSensitivity) {
  const east::NetworkOptions options = small_east();
  const Network network = east::build(east::random_weights(options), options);
  for (QuantType type : {QuantType::kInt8, QuantType::kFp8}) {
    SCOPED_TRACE(to_string(type));
    const CalibrationCache cache = calibrate_small(network, type, Calibrator::kEntropy);
    const std::vector<HostTensor> inputs = random_images(1, 64, 64, 8);
    const SensitivityReport report = measure_sensitivity(network, cache, inputs, 0.0, 2);
    size_t convolutions = 0;
    for (const Layer& l : prepare_network(network).layers()) convolutions += l.kind() == LayerKind::kConvolution;
    ASSERT_EQ(report.layers.size(), convolutions);
    for (const LayerSensitivity& l : report.layers) {
      EXPECT_GT(l.error, 0) << l.layer;  // every layer's quantisation shows in the outputs
      EXPECT_LT(l.error, 0.5) << l.layer;
    }
    EXPECT_GT(report.all_quantized_error, 0);
    EXPECT_LT(report.all_quantized_error, 1.0);
    // Threshold 0: every layer is kept, and nothing is quantised.
    EXPECT_EQ(report.keep_high_precision.size(), convolutions);
    EXPECT_EQ(report.mixed_error, 0);

    // Keeping one head keeps the tensor the three heads share, so all three stay in high precision.
    FakeQuantEngine mixed(network, cache, FakeQuantOptions{2, {"feature_fusion/Conv_7/Conv2D"}, std::nullopt});
    EXPECT_EQ(mixed.high_precision_layers(),
              (std::set<std::string>{"feature_fusion/Conv_7/Conv2D", "feature_fusion/Conv_8/Conv2D", "feature_fusion/Conv_9/Conv2D"}));
    EXPECT_EQ(mixed.quantized_layers().size(), convolutions - 3);
    EXPECT_NE(error_of([&] { FakeQuantEngine(network, cache, FakeQuantOptions{1, {"no_such_layer"}, std::nullopt}); })
                  .find("no_such_layer"),
              std::string::npos);
  }
}

// ---- The calibration set ----

TEST(Quant, CalibrationSetRefusesTheHeldOutSplit) {
  EXPECT_FALSE(is_held_out_image("/data/img_250.jpg"));
  EXPECT_TRUE(is_held_out_image("/data/img_251.jpg"));
  EXPECT_TRUE(is_held_out_image("img_500.png"));
  EXPECT_FALSE(is_held_out_image("img_501.jpg"));
  EXPECT_FALSE(is_held_out_image("gt_img_300.txt"));
  EXPECT_FALSE(is_held_out_image("img_3000.jpg"));

  TempDir dir("set");
  write_test_image(dir.path / "img_2.png", 70, 100, 1);
  write_test_image(dir.path / "img_10.png", 70, 100, 2);
  write_test_image(dir.path / "img_300.png", 40, 40, 3);
  CalibrationSetOptions options;
  options.directory = dir.path.string();
  const std::string e = error_of([&] { CalibrationSet set(options); });
  EXPECT_NE(e.find("img_300.png is in the held-out"), std::string::npos) << e;
  EXPECT_NE(e.find("--allow-held-out"), std::string::npos) << e;

  options.max_images = 2;  // img_2, img_10: natural order, both allowed
  const CalibrationSet two(options);
  ASSERT_EQ(two.files().size(), 2u);
  EXPECT_EQ(fs::path(two.files()[1]).filename(), "img_10.png");

  options.max_images = 0;
  options.allow_held_out = true;
  std::vector<Shape> batches;
  CalibrationSet(options).for_each_batch(4, [&](const HostTensor& b, size_t) { batches.push_back(b.shape); });
  // The EAST resize rule: 70×100 → 32×64 (two share a batch), 40×40 → 32×32 (a batch of its own).
  EXPECT_EQ(batches, (std::vector<Shape>{{2, 32, 64, 3}, {1, 32, 32, 3}}));
}

TEST(Quant, CalibrateAndBuildCommands) {
  TempDir dir("tool");
  fs::create_directories(dir.path / "images");
  for (int i = 1; i <= 3; ++i) write_test_image(dir.path / "images" / ("img_" + std::to_string(i) + ".png"), 64, 64, i);
  const std::string cache = (dir.path / "east.cache").string();
  const std::string model = "--builtin east --width-divisor 8 --input 1x64x64x3";
  auto r = test_support::run_tool("calibrate " + model + " --calib " + (dir.path / "images").string() +
                                  " --precision int8 --calibrator percentile --batch 2 --threads 2 --sensitivity "
                                  "--sensitivity-images 1 -o " + cache);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resnet_v1_50/conv1/Conv2D"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("every convolution quantised"), std::string::npos) << r.output;
  const CalibrationCache read = read_cache(cache);
  EXPECT_EQ(read.images, 3);
  EXPECT_EQ(read.calibrator, Calibrator::kPercentile);

  // build reads and checks the cache before it looks for a GPU, then builds the plan on one.
  const std::string plan = (dir.path / "east.int8.plan").string();
  r = test_support::run_tool("build " + model + " --precision int8 --calib-cache " + cache + " -o " + plan);
  EXPECT_NE(r.output.find("calibration cache " + cache + ":"), std::string::npos) << r.output;
  if (test_support::the_gpu().available) {
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(fs::exists(plan)) << r.output;
    EXPECT_NE(r.output.find("engine: int8"), std::string::npos) << r.output;
  } else {
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("no usable GPU"), std::string::npos) << r.output;
  }
  r = test_support::run_tool("build " + model + " --precision int8 -o x.plan");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--calib-cache FILE"), std::string::npos) << r.output;
  r = test_support::run_tool("bench " + model + " --precision fp8");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("needs a calibration cache: give --calib-cache FILE"), std::string::npos) << r.output;
  r = test_support::run_tool("detect --builtin east --width-divisor 8 --device gpu --precision int8 x.png");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("needs a calibration cache: give --calib-cache FILE"), std::string::npos) << r.output;
  r = test_support::run_tool("build " + model + " --precision fp8 --calib-cache " + cache + " -o x.plan");
  EXPECT_NE(r.output.find("holds int8 ranges"), std::string::npos) << r.output;
  r = test_support::run_tool("build --builtin east --width-divisor 4 --input 1x64x64x3 --precision int8 --calib-cache " +
                             cache + " -o x.plan");
  EXPECT_NE(r.output.find("was made for model"), std::string::npos) << r.output;

  write_test_image(dir.path / "images" / "img_251.png", 64, 64, 9);
  r = test_support::run_tool("calibrate " + model + " --calib " + (dir.path / "images").string() +
                             " --precision fp8 -o " + cache);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("img_251.png is in the held-out"), std::string::npos) << r.output;
}
