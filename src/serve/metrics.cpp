// Metrics: thread-safe updates and the Prometheus text rendering.
#include "serve/metrics.h"

#include <algorithm>
#include <sstream>

namespace eastrt::serve {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();  // le: value <= bound
  ++counts[bucket];
  sum += value;
  ++count;
}

Metrics::Metrics()
    : batch_sizes_({1, 2, 4, 8, 16, 32, 64}),
      latencies_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}) {}

void Metrics::count_response(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++responses_[status];
}

void Metrics::observe_batch(int images) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_sizes_.observe(images);
}

void Metrics::observe_latency(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  latencies_.observe(seconds);
}

namespace {
void render_histogram(std::ostringstream& out, const std::string& name, const std::string& help, const Histogram& h) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  long cumulative = 0;
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out << name << "_bucket{le=\"";
    if (i < h.bounds.size()) out << h.bounds[i];
    else out << "+Inf";
    out << "\"} " << cumulative << "\n";
  }
  out << name << "_sum " << h.sum << "\n" << name << "_count " << h.count << "\n";
}
}  // namespace

std::string Metrics::render(size_t queue_depth, size_t queue_capacity) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  out << "# HELP eastrt_http_responses_total HTTP responses sent, by status code.\n"
         "# TYPE eastrt_http_responses_total counter\n";
  for (const auto& [status, count] : responses_)
    out << "eastrt_http_responses_total{status=\"" << status << "\"} " << count << "\n";
  render_histogram(out, "eastrt_batch_size", "Images per network run.", batch_sizes_);
  render_histogram(out, "eastrt_detect_latency_seconds",
                   "Time from a detection request's arrival to its answer, for answered (200) requests.", latencies_);
  out << "# HELP eastrt_queue_depth Requests waiting for a worker.\n# TYPE eastrt_queue_depth gauge\n"
      << "eastrt_queue_depth " << queue_depth << "\n"
      << "# HELP eastrt_queue_capacity Requests that may wait; beyond, 503.\n# TYPE eastrt_queue_capacity gauge\n"
      << "eastrt_queue_capacity " << queue_capacity << "\n";
  return out.str();
}

}  // namespace eastrt::serve
