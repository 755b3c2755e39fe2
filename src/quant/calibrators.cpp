// The calibrators: an activation's clipping magnitude from its histogram of magnitudes (see quant.h).
#include <algorithm>
#include <cmath>
#include <limits>

#include "eastrt/error.h"
#include "eastrt/quant.h"

namespace eastrt::quant {
namespace {

constexpr int kInt8Levels = 128;  // the magnitudes 0..127 of symmetric INT8

// The index of the last nonzero bin + 1 (0 for an empty histogram).
int used_bins(const Histogram& h) {
  const std::vector<double>& c = h.counts();
  int n = static_cast<int>(c.size());
  while (n > 0 && c[static_cast<size_t>(n - 1)] == 0) --n;
  return n;
}

// The bin index at which each group of the quantised distribution starts, for a clip after `clip_bins`
// bins, ending with clip_bins itself.
std::vector<int> quantization_groups(const Histogram& h, int clip_bins, QuantType type) {
  std::vector<int> starts;
  if (type == QuantType::kInt8) {
    // The talk's 128 levels: i bins in 128 groups as equal as integers allow (all of one bin when i = 128).
    for (int g = 0; g < kInt8Levels; ++g) {
      const int start = static_cast<int>(static_cast<int64_t>(g) * clip_bins / kInt8Levels);
      if (starts.empty() || start != starts.back()) starts.push_back(start);
    }
  } else {
    // E4M3's grid is not uniform: bins whose centres quantise to the same code form one group.
    const double clip = clip_bins * h.bin_width();
    const float scale = static_cast<float>(clip / kE4m3Max);
    int previous = -1;
    for (int j = 0; j < clip_bins; ++j) {
      const float centre = static_cast<float>((j + 0.5) * h.bin_width());
      const int code = float_to_e4m3(centre / scale);
      if (code != previous) starts.push_back(j), previous = code;
    }
  }
  starts.push_back(clip_bins);
  return starts;
}

}  // namespace

const char* to_string(Calibrator calibrator) {
  switch (calibrator) {
    case Calibrator::kEntropy: return "entropy";
    case Calibrator::kMinMax: return "minmax";
    case Calibrator::kPercentile: return "percentile";
    case Calibrator::kMse: return "mse";
  }
  return "?";
}

Calibrator parse_calibrator(const std::string& text) {
  for (Calibrator c : {Calibrator::kEntropy, Calibrator::kMinMax, Calibrator::kPercentile, Calibrator::kMse})
    if (text == to_string(c)) return c;
  throw_error("unknown calibrator '", text, "' (expected entropy, minmax, percentile or mse)");
}

double entropy_divergence(const Histogram& h, int clip_bins, QuantType type) {
  const std::vector<double>& bins = h.counts();
  EASTRT_CHECK(clip_bins >= 1 && clip_bins <= h.bins(), "entropy_divergence: clip after ", clip_bins, " of ",
               h.bins(), " bins");
  std::vector<double> p(bins.begin(), bins.begin() + clip_bins);
  double outliers = 0;
  for (size_t j = static_cast<size_t>(clip_bins); j < bins.size(); ++j) outliers += bins[j];
  p.back() += outliers;

  std::vector<double> q(p.size(), 0.0);
  const std::vector<int> starts = quantization_groups(h, clip_bins, type);
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    double mass = 0;
    int nonzero = 0;
    for (int j = starts[g]; j < starts[g + 1]; ++j) {
      mass += bins[static_cast<size_t>(j)];  // the quantised in-range values, without the folded outliers
      nonzero += p[static_cast<size_t>(j)] != 0;
    }
    if (nonzero == 0) continue;
    for (int j = starts[g]; j < starts[g + 1]; ++j)
      if (p[static_cast<size_t>(j)] != 0) q[static_cast<size_t>(j)] = mass / nonzero;
  }
  double p_total = 0, q_total = 0;
  int support = 0;
  for (size_t j = 0; j < p.size(); ++j) p_total += p[j], q_total += q[j], support += p[j] != 0;
  if (p_total == 0) return 0;
  // Q is 0 where P is not when the last group holds no in-range value but P has the clipped mass there
  // (a clip beyond the data): without smoothing every such clip would be infinitely far. Q is mixed with
  // the uniform distribution on P's support, weight kSmoothing: finite, still a distribution, and the
  // divergences of ordinary clips move by about kSmoothing only.
  constexpr double kSmoothing = 1e-4;
  double divergence = 0;
  for (size_t j = 0; j < p.size(); ++j) {
    if (p[j] == 0) continue;
    const double pj = p[j] / p_total;
    const double qj = (1 - kSmoothing) * (q_total > 0 ? q[j] / q_total : 0.0) + kSmoothing / support;
    divergence += pj * std::log(pj / qj);
  }
  return divergence;
}

double quantization_mse(const Histogram& h, double amax, QuantType type) {
  // Values are taken as spread evenly within their bin: each bin stands for kPoints values at the centres
  // of its eighths. (Bin centres alone alias with a quantisation step near the bin width.)
  constexpr int kPoints = 8;
  const std::vector<double>& bins = h.counts();
  std::vector<float> values;
  std::vector<double> counts;
  for (size_t j = 0; j < bins.size(); ++j)
    if (bins[j] != 0) {
      for (int s = 0; s < kPoints; ++s) values.push_back(static_cast<float>((j + (s + 0.5) / kPoints) * h.bin_width()));
      counts.push_back(bins[j]);
    }
  if (values.empty() || amax <= 0) return 0;
  std::vector<float> quantised = values;
  fake_quantize(quantised.data(), static_cast<int64_t>(quantised.size()),
                scale_for_amax(static_cast<float>(amax), type), type);
  double error = 0, total = 0;
  for (size_t j = 0; j < counts.size(); ++j) {
    double bin_error = 0;
    for (int s = 0; s < kPoints; ++s) {
      const double d = static_cast<double>(values[j * kPoints + s]) - quantised[j * kPoints + s];
      bin_error += d * d;
    }
    error += counts[j] * bin_error / kPoints;
    total += counts[j];
  }
  return error / total;
}

float calibrate_amax(const Histogram& h, Calibrator calibrator, QuantType type, const CalibratorOptions& options) {
  const int used = used_bins(h);
  if (used == 0 || h.max_abs() == 0) return 0;
  const double width = h.bin_width();
  const float max_abs = h.max_abs();
  auto capped = [&](double amax) { return static_cast<float>(std::min<double>(amax, max_abs)); };

  switch (calibrator) {
    case Calibrator::kMinMax:
      return max_abs;

    case Calibrator::kPercentile: {
      EASTRT_CHECK(options.percentile > 0 && options.percentile <= 100, "percentile calibrator: ",
                   options.percentile, " is not a share in (0, 100]");
      const double wanted = h.total() * options.percentile / 100.0;
      double cumulative = 0;
      for (int j = 0; j < h.bins(); ++j) {
        cumulative += h.counts()[static_cast<size_t>(j)];
        if (cumulative >= wanted) return capped((j + 1) * width);
      }
      return max_abs;
    }

    case Calibrator::kEntropy: {
      // Candidates past the last nonzero bin change nothing but the grid's coarseness: stop there.
      const int first = std::min(kInt8Levels, h.bins());
      int best = std::max(first, used);
      double best_divergence = std::numeric_limits<double>::infinity();
      for (int i = first; i <= std::max(first, used); ++i) {
        const double d = entropy_divergence(h, i, type);
        if (d < best_divergence) best_divergence = d, best = i;
      }
      return capped(best * width);
    }

    case Calibrator::kMse: {
      // Clips at every bin's upper edge up to the one holding the largest magnitude, which itself is the last.
      double best_amax = max_abs, best_error = std::numeric_limits<double>::infinity();
      for (int i = 1; i <= used; ++i) {
        const double amax = i == used ? static_cast<double>(max_abs) : std::min<double>(i * width, max_abs);
        const double e = quantization_mse(h, amax, type);
        if (e < best_error) best_error = e, best_amax = amax;
      }
      return static_cast<float>(best_amax);
    }
  }
  return max_abs;
}

}  // namespace eastrt::quant
