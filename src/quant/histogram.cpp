// Histograms of magnitudes with exact range doubling (see quant.h: one pass, deterministic).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "cpu/thread_pool.h"
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

void Histogram::add(const float* values, int64_t count, int threads) {
  // Chunks scanned in parallel; what they find is combined by max and by integer sums, so the result does
  // not depend on the thread count or the schedule.
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  cpu::ThreadPool& pool = cpu::ThreadPool::shared(std::max(1, threads));
  std::mutex mutex;
  float batch_max = 0;
  int64_t nans = 0, infinite_at = -1;
  pool.parallel_for(chunks, [&](int64_t first, int64_t last) {
    float local_max = 0;
    int64_t local_nans = 0, local_infinite = -1;
    for (int64_t i = first * kChunk; i < std::min(count, last * kChunk); ++i) {
      const float a = std::fabs(values[i]);
      if (std::isnan(a)) {
        ++local_nans;
      } else if (!std::isfinite(a)) {
        if (local_infinite < 0) local_infinite = i;
      } else {
        local_max = std::max(local_max, a);
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    batch_max = std::max(batch_max, local_max);
    nans += local_nans;
    if (local_infinite >= 0 && (infinite_at < 0 || local_infinite < infinite_at)) infinite_at = local_infinite;
  });
  EASTRT_CHECK(infinite_at < 0, "Histogram: an infinite value (at index ", infinite_at, " of ", count, ")");
  nans_ += nans;
  max_abs_ = std::max(max_abs_, batch_max);
  if (batch_max == 0) {  // zeros (or nothing): bin 0 whatever the range becomes
    counts_[0] += static_cast<double>(count - nans);
    return;
  }
  if (range_ == 0) range_ = batch_max * (1.0 + 1.0 / 1024);
  grow_to(batch_max);
  const int last_bin = bins() - 1;  // only a value an ulp below the range can round onto the end
  const double per_unit = bins() / range_;
  std::vector<int64_t> total(counts_.size(), 0);
  pool.parallel_for(chunks, [&](int64_t first, int64_t last) {
    std::vector<int64_t> local(counts_.size(), 0);
    for (int64_t i = first * kChunk; i < std::min(count, last * kChunk); ++i) {
      const float a = std::fabs(values[i]);
      if (std::isnan(a)) continue;
      ++local[static_cast<size_t>(std::min(last_bin, static_cast<int>(a * per_unit)))];
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t b = 0; b < local.size(); ++b) total[b] += local[b];
  });
  // Counts are integers held in doubles: exact up to 2^53 values.
  for (size_t b = 0; b < counts_.size(); ++b) counts_[b] += static_cast<double>(total[b]);
}

}  // namespace eastrt::quant
