// Metrics: thread-safe updates and the Prometheus text rendering.
#include "serve/metrics.h"

#include <algorithm>
#include <sstream>

namespace eastrt::serve {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value, long times) {
  const size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();  // le: value <= bound
  counts[bucket] += times;
  sum += value * static_cast<double>(times);
  count += times;
}

Metrics::Metrics() : latencies_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}) {}

void Metrics::count_response(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++responses_[status];
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

east::PipelineStats sum_of(const std::vector<east::PipelineStats>& all) {
  east::PipelineStats sum;
  for (const east::PipelineStats& p : all) {
    sum.images += p.images;
    sum.failed += p.failed;
    sum.batches += p.batches;
    sum.expired += p.expired;
    if (sum.batch_sizes.size() < p.batch_sizes.size()) sum.batch_sizes.resize(p.batch_sizes.size(), 0);
    for (size_t n = 0; n < p.batch_sizes.size(); ++n) sum.batch_sizes[n] += p.batch_sizes[n];
    east::StageTimes& t = sum.total;
    t.decode_wait_ms += p.total.decode_wait_ms;
    t.decode_ms += p.total.decode_ms;
    t.preprocess_ms += p.total.preprocess_ms;
    t.batch_wait_ms += p.total.batch_wait_ms;
    t.network_ms += p.total.network_ms;
    t.post_wait_ms += p.total.post_wait_ms;
    t.post_ms += p.total.post_ms;
    sum.network_busy_ms += p.network_busy_ms;
    sum.decoded_on_cpu += p.decoded_on_cpu;
    sum.decoded_on_gpu += p.decoded_on_gpu;
    sum.cpu_decode_ms += p.cpu_decode_ms;
    sum.gpu_decode_busy_ms += p.gpu_decode_busy_ms;
    sum.gpu_declined += p.gpu_declined;
  }
  return sum;
}
}  // namespace

std::string Metrics::render(const std::vector<east::PipelineStats>& pipelines, int queue_depth,
                            int queue_capacity) const {
  const east::PipelineStats pipeline = sum_of(pipelines);
  Histogram batch_sizes({1, 2, 4, 8, 16, 32, 64});
  for (size_t images = 1; images < pipeline.batch_sizes.size(); ++images)
    if (pipeline.batch_sizes[images] > 0) batch_sizes.observe(static_cast<double>(images), pipeline.batch_sizes[images]);
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  out << "# HELP eastrt_http_responses_total HTTP responses sent, by status code.\n"
         "# TYPE eastrt_http_responses_total counter\n";
  for (const auto& [status, count] : responses_)
    out << "eastrt_http_responses_total{status=\"" << status << "\"} " << count << "\n";
  render_histogram(out, "eastrt_batch_size", "Images per network run.", batch_sizes);
  render_histogram(out, "eastrt_detect_latency_seconds",
                   "Time from a detection request's arrival to its answer, for answered (200) requests.", latencies_);
  out << "# HELP eastrt_queue_depth Requests waiting for the network (being decoded or in a batch not yet run).\n# TYPE eastrt_queue_depth gauge\n"
      << "eastrt_queue_depth " << queue_depth << "\n"
      << "# HELP eastrt_queue_capacity Requests that may wait; beyond, 503.\n# TYPE eastrt_queue_capacity gauge\n"
      << "eastrt_queue_capacity " << queue_capacity << "\n";
  // Summed over images (network: over runs), so rate() over a window gives how busy each stage's threads were.
  const east::StageTimes& t = pipeline.total;
  out << "# HELP eastrt_stage_seconds_total Time spent per stage, summed over images (network: over runs).\n"
         "# TYPE eastrt_stage_seconds_total counter\n";
  const std::pair<const char*, double> stages[] = {
      {"decode_wait", t.decode_wait_ms}, {"decode", t.decode_ms},   {"preprocess", t.preprocess_ms},
      {"batch_wait", t.batch_wait_ms},   {"network", pipeline.network_busy_ms}, {"post_wait", t.post_wait_ms},
      {"post", t.post_ms}};
  for (const auto& [stage, ms] : stages)
    out << "eastrt_stage_seconds_total{stage=\"" << stage << "\"} " << ms / 1000 << "\n";
  out << "# HELP eastrt_images_decoded_total Images decoded, by decoder (libjpeg on the CPU, nvJPEG on the GPU).\n"
         "# TYPE eastrt_images_decoded_total counter\n"
      << "eastrt_images_decoded_total{decoder=\"cpu\"} " << pipeline.decoded_on_cpu << "\n"
      << "eastrt_images_decoded_total{decoder=\"gpu\"} " << pipeline.decoded_on_gpu << "\n";
  out << "# HELP eastrt_expired_total Requests whose deadline passed before their batch ran (answered 504).\n"
         "# TYPE eastrt_expired_total counter\n"
      << "eastrt_expired_total " << pipeline.expired << "\n";
  out << "# HELP eastrt_pipeline_images_total Images each pipeline (one per GPU) has finished, failed ones included.\n"
         "# TYPE eastrt_pipeline_images_total counter\n";
  for (size_t i = 0; i < pipelines.size(); ++i)
    out << "eastrt_pipeline_images_total{pipeline=\"" << i << "\"} " << pipelines[i].images << "\n";
  return out.str();
}

}  // namespace eastrt::serve
