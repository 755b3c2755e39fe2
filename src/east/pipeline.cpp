// The overlapped detection pipeline: a queue of inputs for the decoding threads, a batcher holding the decoded
// images by network size, one network thread per slot taking batches from it, and a queue of output maps for
// the post-processing threads. One mutex guards all of it: every critical section is a few pointer moves.
#include "eastrt/pipeline.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "eastrt/east.h"
#include "eastrt/error.h"

namespace eastrt::east {
namespace {

using Clock = std::chrono::steady_clock;

struct Deadline {};  // thrown inside a decoding thread for a job already past its deadline

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Job {
  std::string path;            // read from here, or
  std::vector<uint8_t> bytes;  // decoded from these, or
  bool decoded = false;        // `image` is given
  Image image;
  HostTensor input;            // the resized image, when the runner does not resize on the device
  HostTensor score, geometry;  // geometry is empty when the candidates were decoded on the device
  std::vector<Quad> candidates;
  bool have_candidates = false;
  Clock::time_point submitted;
  Clock::time_point deadline = Clock::time_point::max();  // not run once this has passed
  Clock::time_point ready;     // entered the batcher, or the post queue
  PipelineResult result;
  std::promise<PipelineResult> promise;
};
using JobPtr = std::unique_ptr<Job>;

struct Group {
  std::vector<JobPtr> jobs;
  Clock::time_point first;  // when its oldest image arrived
};

}  // namespace

struct Pipeline::Impl {
  Runner& runner;
  PipelineOptions options;
  const bool device_resize, device_decode;

  mutable std::mutex mutex;
  std::condition_variable decode_cv, batch_cv, post_cv;
  std::deque<JobPtr> to_decode;
  int decoding = 0;                          // taken by a decoding thread, not yet in the batcher
  int waiting = 0;                           // submitted, not yet taken into a batch (nor failed)
  std::map<std::pair<int, int>, Group> groups;  // by network height, width
  std::deque<JobPtr> to_post;
  bool decode_stop = false, network_stop = false, post_stop = false;
  int pending = 0;
  PipelineStats stats;

  std::vector<std::thread> decoders, networks, posters;

  Impl(Runner& r, PipelineOptions o)
      : runner(r), options(o), device_resize(r.resizes_images()),
        device_decode(o.device_decode && r.resizes_images() && r.decodes_on_device()) {
    EASTRT_CHECK(options.max_batch >= 1, "a batch must hold at least one image, not ", options.max_batch);
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    // The CPU engine wants the cores for the network; with the network on the GPU, the cores decode.
    if (options.workers <= 0) options.workers = std::max(1, device_resize ? cores / 2 : cores / 4);
    if (options.post_workers <= 0) options.post_workers = options.workers;
    if (options.in_flight <= 0 || options.in_flight > runner.slots()) options.in_flight = runner.slots();
    EASTRT_CHECK(options.max_waiting >= 0, "max_waiting must be at least 0 (0: no bound), not ", options.max_waiting);
    stats.batch_sizes.assign(static_cast<size_t>(options.max_batch) + 1, 0);
    const Network& net = runner.network();
    EASTRT_CHECK(net.find_tensor(kInputName) && net.find_tensor(kScoreOutput) && net.find_tensor(kGeometryOutput),
                 "the pipeline needs an EAST network with input ", kInputName, " and outputs ", kScoreOutput, ", ",
                 kGeometryOutput);
    for (int i = 0; i < options.workers; ++i) decoders.emplace_back([this] { decode_loop(); });
    for (int i = 0; i < options.in_flight; ++i) networks.emplace_back([this, i] { network_loop(i); });
    for (int i = 0; i < options.post_workers; ++i) posters.emplace_back([this] { post_loop(); });
  }

  ~Impl() {
    // Stage by stage, so that each finishes what the one before handed it.
    stop(decode_stop, decode_cv, decoders);
    stop(network_stop, batch_cv, networks);
    stop(post_stop, post_cv, posters);
  }

  void stop(bool& flag, std::condition_variable& cv, std::vector<std::thread>& threads) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      flag = true;
    }
    cv.notify_all();
    batch_cv.notify_all();  // the network threads also wait for the decoders to finish
    for (std::thread& t : threads) t.join();
  }

  std::future<PipelineResult> submit(JobPtr job, const std::string& name) {
    std::vector<JobPtr> jobs;
    jobs.push_back(std::move(job));
    return std::move(submit_all(std::move(jobs), {name}).front());
  }

  // With `bounded`, nothing is queued (an empty result) when the jobs would take the waiting inputs past
  // max_waiting.
  std::vector<std::future<PipelineResult>> submit_all(std::vector<JobPtr> jobs, const std::vector<std::string>& names,
                                                      bool bounded = false) {
    EASTRT_CHECK(jobs.size() == names.size(), "submit: ", jobs.size(), " inputs with ", names.size(), " names");
    std::vector<std::future<PipelineResult>> futures;
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < jobs.size(); ++i) {
      jobs[i]->result.name = names[i];
      jobs[i]->submitted = now;
      futures.push_back(jobs[i]->promise.get_future());
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      EASTRT_CHECK(!decode_stop, "the pipeline is stopping");
      const int count = static_cast<int>(jobs.size());
      if (bounded && options.max_waiting > 0 && waiting + count > options.max_waiting) return {};
      for (JobPtr& job : jobs) to_decode.push_back(std::move(job));
      pending += count;
      waiting += count;
    }
    decode_cv.notify_all();
    return futures;
  }

  // Marks the job failed, and why; finish() then hands it to its future like any other.
  static void fail(Job& job, Failure failure, std::string error) {
    job.result.failure = failure;
    job.result.error = std::move(error);
  }

  void finish(JobPtr job) {
    if (options.keep_images) job->result.image = std::move(job->image);
    {
      std::lock_guard<std::mutex> lock(mutex);
      --pending;
      ++stats.images;
      if (!job->result.ok()) ++stats.failed;
      if (job->result.failure == Failure::kDeadline) ++stats.expired;
      const StageTimes& t = job->result.times;
      StageTimes& s = stats.total;
      s.decode_wait_ms += t.decode_wait_ms, s.decode_ms += t.decode_ms, s.preprocess_ms += t.preprocess_ms;
      s.batch_wait_ms += t.batch_wait_ms, s.network_ms += t.network_ms, s.post_wait_ms += t.post_wait_ms;
      s.post_ms += t.post_ms;
    }
    job->promise.set_value(std::move(job->result));
  }

  // ---- decoding threads: file → image → plan (→ resized input on the CPU) → batcher

  void decode_loop() {
    for (;;) {
      JobPtr job;
      {
        std::unique_lock<std::mutex> lock(mutex);
        decode_cv.wait(lock, [&] { return decode_stop || !to_decode.empty(); });
        if (to_decode.empty()) return;
        job = std::move(to_decode.front());
        to_decode.pop_front();
        ++decoding;
      }
      bool ok = true;
      const Clock::time_point start = Clock::now();
      job->result.times.decode_wait_ms = ms_between(job->submitted, start);
      try {
        // Under overload a service's request may expire in this queue: no point decoding it.
        if (start >= job->deadline) throw Deadline();
        if (!job->decoded)
          job->image = job->path.empty() ? decode_image(job->bytes.data(), job->bytes.size(), job->result.name)
                                         : decode_image(job->path);
        job->bytes = {};
        job->result.width = job->image.width;
        job->result.height = job->image.height;
        const Clock::time_point decoded = Clock::now();
        job->result.times.decode_ms = ms_between(start, decoded);
        ResizePlan& plan = job->result.detection.plan;
        plan = plan_resize(job->image.height, job->image.width, options.max_side);
        if (!device_resize) {
          job->input = resize_bilinear(job->image, plan.height, plan.width);
          job->result.times.preprocess_ms = ms_between(decoded, Clock::now());
          job->result.detection.preprocess_ms = job->result.times.preprocess_ms;
          if (!options.keep_images) job->image = Image();
        }
      } catch (const Deadline&) {
        fail(*job, Failure::kDeadline, "its deadline passed before it was decoded");
        ok = false;
      } catch (const std::exception& e) {
        fail(*job, Failure::kInput, e.what());
        ok = false;
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        --decoding;
        if (!ok) --waiting;
        if (ok) {
          const ResizePlan& plan = job->result.detection.plan;
          Group& group = groups[{plan.height, plan.width}];
          job->ready = Clock::now();
          if (group.jobs.empty()) group.first = job->ready;
          group.jobs.push_back(std::move(job));
        }
      }
      batch_cv.notify_all();
      if (!ok) finish(std::move(job));
    }
  }

  // ---- network threads, one per slot: batcher → runner → post queue

  // Under the lock: the batch to run now, if any; else the time to look again (max() for "when woken").
  // Batched jobs whose deadline has passed leave their groups into `expired`, for finish() after the lock.
  std::vector<JobPtr> take_batch(Clock::time_point* recheck, std::vector<JobPtr>* expired) {
    const bool nothing_coming = to_decode.empty() && decoding == 0 && (!options.hold_partial_batches || decode_stop);
    const auto delay = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(options.max_delay_ms));
    const Clock::time_point now = Clock::now();
    for (auto it = groups.begin(); it != groups.end();) {
      std::vector<JobPtr>& jobs = it->second.jobs;
      for (auto job = jobs.begin(); job != jobs.end();) {
        if ((*job)->deadline > now) {
          ++job;
          continue;
        }
        (*job)->result.times.batch_wait_ms = ms_between((*job)->ready, now);
        fail(**job, Failure::kDeadline, "its deadline passed while it waited for the network");
        expired->push_back(std::move(*job));
        job = jobs.erase(job);
        --waiting;
      }
      if (jobs.empty()) {
        it = groups.erase(it);
      } else {
        it->second.first = jobs.front()->ready;
        ++it;
      }
    }
    auto chosen = groups.end();
    *recheck = Clock::time_point::max();
    for (auto it = groups.begin(); it != groups.end(); ++it) {
      const bool ready = static_cast<int>(it->second.jobs.size()) >= options.max_batch || nothing_coming ||
                         now - it->second.first >= delay;
      if (ready && (chosen == groups.end() || it->second.first < chosen->second.first)) chosen = it;
      if (!ready) *recheck = std::min(*recheck, it->second.first + delay);
    }
    std::vector<JobPtr> batch;
    if (chosen == groups.end()) return batch;
    std::vector<JobPtr>& jobs = chosen->second.jobs;
    const size_t count = std::min(jobs.size(), static_cast<size_t>(options.max_batch));
    for (size_t i = 0; i < count; ++i) batch.push_back(std::move(jobs[i]));
    jobs.erase(jobs.begin(), jobs.begin() + static_cast<std::ptrdiff_t>(count));
    waiting -= static_cast<int>(count);
    if (jobs.empty())
      groups.erase(chosen);
    else
      chosen->second.first = jobs.front()->ready;
    return batch;
  }

  void network_loop(int slot) {
    for (;;) {
      std::vector<JobPtr> batch, expired;
      bool stop = false;
      {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
          Clock::time_point recheck;
          batch = take_batch(&recheck, &expired);
          if (!batch.empty() || !expired.empty()) break;
          if (network_stop && groups.empty() && to_decode.empty() && decoding == 0) {
            stop = true;
            break;
          }
          if (recheck == Clock::time_point::max())
            batch_cv.wait(lock);
          else
            batch_cv.wait_until(lock, recheck);
        }
      }
      for (JobPtr& job : expired) finish(std::move(job));
      if (stop) return;
      if (!batch.empty()) run_batch(slot, batch);
    }
  }

  void run_batch(int slot, std::vector<JobPtr>& batch) {
    const Clock::time_point start = Clock::now();
    const int count = static_cast<int>(batch.size());
    const ResizePlan& plan = batch.front()->result.detection.plan;
    std::string error;
    try {
      std::map<std::string, HostTensor> outputs;
      if (device_decode) {
        std::vector<const Image*> images;
        for (const JobPtr& job : batch) images.push_back(&job->image);
        std::vector<Runner::Candidates> found =
            runner.run_to_candidates(images, plan.height, plan.width, slot, options.detect.score_threshold);
        for (int i = 0; i < count; ++i) {
          batch[i]->score = std::move(found[i].score);
          batch[i]->candidates = std::move(found[i].quads);
          batch[i]->have_candidates = true;
        }
      } else if (device_resize) {
        std::vector<const Image*> images;
        for (const JobPtr& job : batch) images.push_back(&job->image);
        outputs = runner.run_images(kInputName, images, plan.height, plan.width, slot);
      } else {
        HostTensor input({count, plan.height, plan.width, 3});
        const size_t per_image = static_cast<size_t>(plan.height) * plan.width * 3;
        for (int i = 0; i < count; ++i) {
          std::memcpy(input.data.data() + per_image * i, batch[i]->input.data.data(), per_image * sizeof(float));
          batch[i]->input = HostTensor();
        }
        outputs = runner.run({{kInputName, std::move(input)}});
      }
      if (!device_decode) {
        check_output_maps(outputs, count, plan.height, plan.width);
        for (int i = 0; i < count; ++i) {
          batch[i]->score = batch_item(outputs.at(kScoreOutput), i);
          batch[i]->geometry = batch_item(outputs.at(kGeometryOutput), i);
        }
      }
    } catch (const std::exception& e) {
      error = std::string("network: ") + e.what();
    }
    const Clock::time_point done = Clock::now();
    const double network_ms = ms_between(start, done);
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.batches;
      ++stats.batch_sizes[static_cast<size_t>(count)];
      stats.network_busy_ms += network_ms;
      for (JobPtr& job : batch) {
        job->result.times.batch_wait_ms = ms_between(job->ready, start);
        job->result.times.network_ms = network_ms / count;
        job->result.detection.network_ms = network_ms / count;
        job->result.batch = count;
        if (!error.empty()) fail(*job, Failure::kNetwork, error);
        if (!options.keep_images) job->image = Image();
        job->ready = done;
        to_post.push_back(std::move(job));
      }
    }
    post_cv.notify_all();
  }

  // ---- post-processing threads: maps → boxes → the caller's future

  void post_loop() {
    for (;;) {
      JobPtr job;
      {
        std::unique_lock<std::mutex> lock(mutex);
        post_cv.wait(lock, [&] { return post_stop || !to_post.empty(); });
        if (to_post.empty()) return;
        job = std::move(to_post.front());
        to_post.pop_front();
      }
      const Clock::time_point start = Clock::now();
      job->result.times.post_wait_ms = ms_between(job->ready, start);
      if (job->result.ok()) {
        try {
          Detection& d = job->result.detection;
          d.boxes = job->have_candidates
                        ? boxes_from_candidates(job->candidates, job->score, d.plan.ratio_h, d.plan.ratio_w, options.detect)
                        : detect_boxes(job->score, job->geometry, d.plan.ratio_h, d.plan.ratio_w, options.detect);
        } catch (const std::exception& e) {
          fail(*job, Failure::kPostprocess, std::string("post-processing: ") + e.what());
        }
      }
      job->score = HostTensor();
      job->geometry = HostTensor();
      job->candidates = {};
      job->result.times.post_ms = ms_between(start, Clock::now());
      job->result.detection.post_ms = job->result.times.post_ms;
      finish(std::move(job));
    }
  }
};

Pipeline::Pipeline(Runner& runner, PipelineOptions options)
    : impl_(std::make_unique<Impl>(runner, std::move(options))) {}
Pipeline::~Pipeline() = default;

std::future<PipelineResult> Pipeline::submit_file(const std::string& path) {
  auto job = std::make_unique<Job>();
  job->path = path;
  return impl_->submit(std::move(job), path);
}

std::future<PipelineResult> Pipeline::submit_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  auto job = std::make_unique<Job>();
  job->bytes = std::move(bytes);
  return impl_->submit(std::move(job), name);
}

std::future<PipelineResult> Pipeline::submit_image(Image image, const std::string& name) {
  auto job = std::make_unique<Job>();
  job->image = std::move(image);
  job->decoded = true;
  return impl_->submit(std::move(job), name);
}

std::vector<std::future<PipelineResult>> Pipeline::submit_files(const std::vector<std::string>& paths) {
  std::vector<JobPtr> jobs;
  for (const std::string& path : paths) {
    jobs.push_back(std::make_unique<Job>());
    jobs.back()->path = path;
  }
  return impl_->submit_all(std::move(jobs), paths);
}

std::vector<std::future<PipelineResult>> Pipeline::submit_images(std::vector<Image> images,
                                                                const std::vector<std::string>& names) {
  std::vector<JobPtr> jobs;
  for (Image& image : images) {
    jobs.push_back(std::make_unique<Job>());
    jobs.back()->image = std::move(image);
    jobs.back()->decoded = true;
  }
  return impl_->submit_all(std::move(jobs), names);
}

std::optional<std::future<PipelineResult>> Pipeline::try_submit_bytes(std::vector<uint8_t> bytes,
                                                                     const std::string& name,
                                                                     std::chrono::steady_clock::time_point deadline) {
  std::vector<JobPtr> jobs;
  jobs.push_back(std::make_unique<Job>());
  jobs.back()->bytes = std::move(bytes);
  jobs.back()->deadline = deadline;
  std::vector<std::future<PipelineResult>> futures = impl_->submit_all(std::move(jobs), {name}, true);
  if (futures.empty()) return std::nullopt;
  return std::move(futures.front());
}

int Pipeline::waiting() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->waiting;
}

int Pipeline::pending() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->pending;
}

PipelineStats Pipeline::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

const PipelineOptions& Pipeline::options() const { return impl_->options; }
bool Pipeline::decodes_on_device() const { return impl_->device_decode; }

std::string Pipeline::description() const {
  const PipelineOptions& o = impl_->options;
  return "batch " + std::to_string(o.max_batch) + ", " + std::to_string(o.in_flight) + " in flight, " +
         std::to_string(o.workers) + " decoding and " + std::to_string(o.post_workers) + " post-processing threads" +
         (impl_->device_decode ? ", candidates decoded on the GPU" : "");
}

void detect_in_order(Pipeline& pipeline, const std::vector<std::string>& paths,
                     const std::function<void(PipelineResult&)>& each, int window) {
  const PipelineOptions& o = pipeline.options();
  // Enough ahead to fill every slot's batch twice over and keep the decoders busy meanwhile.
  if (window <= 0) window = std::max(2 * o.max_batch * o.in_flight + 2 * o.workers, 8);
  std::deque<std::future<PipelineResult>> futures;
  size_t next = 0;
  for (size_t done = 0; done < paths.size(); ++done) {
    // Refilled a batch at a time rather than one by one, so that a batch is not sent part-filled while the
    // next few are still being submitted.
    const bool room = static_cast<int>(futures.size()) <= window - o.max_batch || futures.empty();
    if (next < paths.size() && room) {
      const size_t count = std::min(paths.size() - next, static_cast<size_t>(window) - futures.size());
      for (auto& f : pipeline.submit_files({paths.begin() + next, paths.begin() + next + count})) futures.push_back(std::move(f));
      next += count;
    }
    PipelineResult result = futures.front().get();
    futures.pop_front();
    each(result);
  }
}

}  // namespace eastrt::east
