// The server's counters and histograms, rendered in the Prometheus text exposition format (version 0.0.4).
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace eastrt::serve {

// Cumulative-bucket histogram as Prometheus defines it: counts per upper bound, plus a sum and a count.
struct Histogram {
  std::vector<double> bounds;  // increasing upper bounds; +Inf is implied
  std::vector<long> counts;    // per bound, not cumulative; one more for +Inf
  double sum = 0;
  long count = 0;

  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
};

class Metrics {
 public:
  Metrics();
  void count_response(int status);
  void observe_batch(int images);         // one network run
  void observe_latency(double seconds);   // one answered (200) detection, arrival to answer
  std::string render(size_t queue_depth, size_t queue_capacity) const;

 private:
  mutable std::mutex mutex_;
  std::map<int, long> responses_;  // by status
  Histogram batch_sizes_, latencies_;
};

}  // namespace eastrt::serve
