// Quantisation primitives: INT8 and FP8 E4M3 codes, symmetric scales (per output channel for weights, per
// tensor for activations), fake quantisation, and the calibrators that choose an activation's clipping
// range from its histogram. Pure arithmetic; the network-level parts are in eastrt/calibration.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eastrt/tensor.h"

namespace eastrt::quant {

// INT8: symmetric, x ≈ q · scale with q in [−127, 127] (−128 unused, as TensorRT), scale = amax / 127.
// FP8: OCP E4M3 ("e4m3fn", NVIDIA's __nv_fp8_e4m3): x ≈ e4m3(x / scale) · scale, scale = amax / 448.
enum class QuantType { kInt8, kFp8 };
const char* to_string(QuantType type);             // "int8", "fp8"
QuantType parse_quant_type(const std::string& text);  // inverse; throws an Error naming the choices

// The largest representable magnitude: 127 or 448.
float max_representable(QuantType type);

// ---- INT8 ----

// round-to-nearest-even of x / scale, saturated to ±127 (NaN gives 0). scale > 0.
int8_t quantize_int8(float x, float scale);
inline float dequantize_int8(int8_t q, float scale) { return static_cast<float>(q) * scale; }

// ---- FP8 E4M3 (1 sign, 4 exponent bits with bias 7, 3 mantissa bits) ----
// Normal values (1 + m/8) · 2^(e−7) for e = 1..15, except e = 15, m = 7 which is NaN (0x7f, 0xff): there
// are no infinities and the largest finite value is 448 (0x7e). Subnormals m/8 · 2^−6 (e = 0), the smallest
// 2^−9. Signed zeros 0x00 and 0x80.

inline constexpr uint8_t kE4m3NaN = 0x7f;
inline constexpr float kE4m3Max = 448.0f;

float e4m3_to_float(uint8_t code);

// What happens to values beyond the largest finite one after rounding (|x| > 464, or ±inf): kSaturate
// gives ±448 (cuda_fp8's __NV_SATFINITE, what quantisation uses), kNaN gives NaN (__NV_NOSAT: e4m3fn has
// no infinity to overflow to). NaN in always gives 0x7f.
enum class Fp8Overflow { kSaturate, kNaN };

// Correctly rounded (to nearest, ties to even mantissa) conversion, subnormals included; the sign of zero
// and of an underflow to zero is kept.
uint8_t float_to_e4m3(float x, Fp8Overflow overflow = Fp8Overflow::kSaturate);

// ---- Scales ----

// scale = amax / max_representable(type); an amax of 0 (a tensor or channel that is all zeros) gets the
// scale of amax 1 so that quantising stays defined and zero stays zero. amax must be finite and >= 0.
float scale_for_amax(float amax, QuantType type);

// One scale per output channel k (axis 0) of a KCRS weight tensor, from the channel's largest magnitude.
std::vector<float> weight_scales(const HostTensor& weights, QuantType type);

// The 8-bit code of x / scale in `type`: quantize_int8's (as a byte) or float_to_e4m3's, saturating.
uint8_t quantize_code(float x, float scale, QuantType type);

// x → dequantise(quantise(x, scale), scale): the value the quantised tensor stands for, with the type's
// rounding and saturation (NaN stays NaN for FP8 and becomes 0 for INT8, as the codes do). The array form
// computes the same values without going through the codes (bit arithmetic; tested against the scalar).
float fake_quantize(float x, float scale, QuantType type);
void fake_quantize(float* values, int64_t count, float scale, QuantType type);
// Per output channel (axis 0 of KCRS), with weight_scales.
HostTensor fake_quantize_weights(const HostTensor& weights, QuantType type);

// ---- Histograms of |x| ----

// A histogram of absolute values over [0, range) in a fixed number of equal bins [i·w, (i+1)·w), and the
// exact largest magnitude seen. The first add with a nonzero value sets the range to that batch's largest
// magnitude · (1 + 2^−10), so that it lies inside the last bin; when a later value reaches the range, the
// range doubles (repeatedly) and adjacent bin pairs merge, which re-bins exactly (no interpolation). So one pass suffices and the
// result depends only on the values and the order in which they were added: a fixed calibration set in a
// fixed order gives a fixed histogram. NaNs are counted apart and otherwise ignored; ±inf is an Error (no
// range can hold it).
class Histogram {
 public:
  static constexpr int kDefaultBins = 2048;
  explicit Histogram(int bins = kDefaultBins);

  // `threads` > 1 scans in parallel (the CPU engine's pool); the result is the same for any count.
  void add(const float* values, int64_t count, int threads = 1);

  int bins() const { return static_cast<int>(counts_.size()); }
  double range() const { return range_; }                       // 0 before any nonzero value
  double bin_width() const { return range_ / counts_.size(); }
  float max_abs() const { return max_abs_; }
  double total() const;                                       // values added, NaNs excluded
  int64_t nan_count() const { return nans_; }
  const std::vector<double>& counts() const { return counts_; }
  // Sets the state directly (tests build synthetic histograms with known answers).
  static Histogram from_counts(std::vector<double> counts, double range, float max_abs);

 private:
  void grow_to(double magnitude);
  std::vector<double> counts_;
  double range_ = 0;
  float max_abs_ = 0;
  int64_t nans_ = 0;
};

// ---- Calibrators: the clipping magnitude (amax) of an activation from its histogram ----

enum class Calibrator { kEntropy, kMinMax, kPercentile, kMse };
const char* to_string(Calibrator calibrator);             // "entropy", "minmax", "percentile", "mse"
Calibrator parse_calibrator(const std::string& text);

struct CalibratorOptions {
  double percentile = 99.99;  // kPercentile: the share (in %) of values that must lie within amax
};

// kMinMax: the largest magnitude seen.
// kPercentile: the upper edge of the first bin at which the cumulative count reaches the share, at most
//   the largest magnitude.
// kEntropy (NVIDIA, "8-bit Inference with TensorRT", GTC 2017): for every candidate clip i·w (w the bin
//   width), i from 128 up to the last nonzero bin, P is the histogram's first i bins with the mass beyond
//   folded into bin i−1, and Q is those i bins quantised, without the folded mass: for INT8 the i bins are
//   split into 128 groups of (nearly) equal width, the talk's 128 levels; for FP8 bins are grouped by the
//   E4M3 code their centre quantises to at that clip. Each group's mass is spread evenly over its bins where P is nonzero, and Q is
//   mixed with weight 10^−4 with the uniform distribution on P's support (a clip beyond the data leaves Q
//   zero where P holds the clipped mass). The clip minimising KL(P‖Q) wins (the first on ties); amax is
//   its upper edge i·w, at most the largest magnitude.
// kMse: for every candidate clip at a bin's upper edge, the mean squared error of fake-quantising the
//   histogram's values (clipping included), each bin's taken as spread evenly over it (8 points a bin); the clip with the least error wins (the first
//   on ties), at most the largest magnitude.
// All return 0 for an empty or all-zero histogram.
float calibrate_amax(const Histogram& histogram, Calibrator calibrator, QuantType type,
                     const CalibratorOptions& options = {});

// The pieces of the calibrators, for tests: KL(P‖Q) of the entropy method at clip bin i, and the MSE of
// clipping at amax.
double entropy_divergence(const Histogram& histogram, int clip_bins, QuantType type);
double quantization_mse(const Histogram& histogram, double amax, QuantType type);

}  // namespace eastrt::quant
