// The server's counters and histograms, rendered in the Prometheus text exposition format (version 0.0.4).
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "eastrt/pipeline.h"

namespace eastrt::serve {

// Cumulative-bucket histogram as Prometheus defines it: counts per upper bound, plus a sum and a count.
struct Histogram {
  std::vector<double> bounds;  // increasing upper bounds; +Inf is implied
  std::vector<long> counts;    // per bound, not cumulative; one more for +Inf
  double sum = 0;
  long count = 0;

  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value, long times = 1);
};

class Metrics {
 public:
  Metrics();
  void count_response(int status);
  void observe_latency(double seconds);   // one answered (200) detection, arrival to answer
  // The pipelines' figures (batch sizes, stage times) come from their own totals, read at each scrape, and are
  // summed over the pipelines (one per GPU); only the images each ran are also given per pipeline.
  std::string render(const std::vector<east::PipelineStats>& pipelines, int queue_depth, int queue_capacity) const;

 private:
  mutable std::mutex mutex_;
  std::map<int, long> responses_;  // by status
  Histogram latencies_;
};

}  // namespace eastrt::serve
