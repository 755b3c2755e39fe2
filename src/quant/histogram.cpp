// Histograms of magnitudes with exact range doubling (see quant.h: one pass, deterministic).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "eastrt/error.h"
#include "eastrt/quant.h"

namespace eastrt::quant {

Histogram::Histogram(int bins) : counts_(static_cast<size_t>(bins), 0.0) {
  EASTRT_CHECK(bins >= 2 && bins % 2 == 0, "Histogram: ", bins, " bins; need an even count of at least 2");
}

Histogram Histogram::from_counts(std::vector<double> counts, double range, float max_abs) {
  Histogram h(static_cast<int>(counts.size()));
  EASTRT_CHECK(range >= max_abs && max_abs >= 0, "Histogram: largest magnitude ", max_abs, " beyond range ", range);
  h.counts_ = std::move(counts);
  h.range_ = range;
  h.max_abs_ = max_abs;
  return h;
}

double Histogram::total() const { return std::accumulate(counts_.begin(), counts_.end(), 0.0); }

void Histogram::grow_to(double magnitude) {
  const size_t n = counts_.size();
  while (range_ <= magnitude) {
    for (size_t i = 0; i < n / 2; ++i) counts_[i] = counts_[2 * i] + counts_[2 * i + 1];
    std::fill(counts_.begin() + static_cast<std::ptrdiff_t>(n / 2), counts_.end(), 0.0);
    range_ *= 2;
  }
}

void Histogram::add(const float* values, int64_t count) {
  float batch_max = 0;
  int64_t nans = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float a = std::fabs(values[i]);
    if (std::isnan(a)) {
      ++nans;
      continue;
    }
    EASTRT_CHECK(std::isfinite(a), "Histogram: an infinite value (at index ", i, " of ", count, ")");
    batch_max = std::max(batch_max, a);
  }
  nans_ += nans;
  max_abs_ = std::max(max_abs_, batch_max);
  if (batch_max == 0) {  // zeros (or nothing): bin 0 whatever the range becomes
    counts_[0] += static_cast<double>(count - nans);
    return;
  }
  if (range_ == 0) range_ = batch_max * (1.0 + 1.0 / 1024);
  grow_to(batch_max);
  const int last = bins() - 1;  // only a value an ulp below the range can round onto the end
  const double per_unit = bins() / range_;
  // Counts are integers held in doubles: exact up to 2^53 values.
  for (int64_t i = 0; i < count; ++i) {
    const float a = std::fabs(values[i]);
    if (std::isnan(a)) continue;
    counts_[static_cast<size_t>(std::min(last, static_cast<int>(a * per_unit)))] += 1.0;
  }
}

}  // namespace eastrt::quant
