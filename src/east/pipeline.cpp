// The overlapped detection pipeline: a queue of inputs for the decoding threads (libjpeg ones, and GPU ones that
// take JPEGs a batch at a time and pass back what the hardware decoder does not take through a second queue),
// a batcher holding the decoded images by network size, one network thread per slot taking batches from it,
// and a queue of output maps for the post-processing threads. One mutex guards all of it: every critical
// section is a few pointer moves.
#include "eastrt/pipeline.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>

#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu_jpeg.h"

namespace eastrt::east {
namespace {

using Clock = std::chrono::steady_clock;

struct Deadline {};  // thrown inside a decoding thread for a job already past its deadline

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Job {
  std::string path;            // read from here (unless a GPU decoding thread already read it into bytes), or
  std::vector<uint8_t> bytes;  // decoded from these, or
  bool decoded = false;        // `image` is given
  Image image;
  HostTensor input;            // the resized image, when the runner does not resize on the device
  HostTensor score, geometry;  // geometry is empty when the candidates were decoded on the device
  std::vector<Quad> candidates;  // in row order, or what LANMS kept of them when `merged`
  bool have_candidates = false;
  bool merged = false;
  Clock::time_point submitted;
  Clock::time_point deadline = Clock::time_point::max();  // not run once this has passed
  Clock::time_point ready;     // entered the batcher, or the post queue
  PipelineResult result;
  std::promise<PipelineResult> promise;
  enum class DecodedBy { kNone, kCpu, kGpu } decoded_by = DecodedBy::kNone;
};
using JobPtr = std::unique_ptr<Job>;

struct Group {
  std::vector<JobPtr> jobs;
  Clock::time_point first;  // when its oldest image arrived
};

// The whole file, or false (the CPU decoder then reads it again and says what is wrong).
bool read_file(const std::string& path, std::vector<uint8_t>* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

const char* to_string(Decoder decoder) {
  switch (decoder) {
    case Decoder::kAuto: return "auto";
    case Decoder::kCpu: return "cpu";
    case Decoder::kGpu: return "gpu";
    case Decoder::kHybrid: return "hybrid";
  }
  return "?";
}

Decoder parse_decoder(const std::string& text) {
  for (Decoder d : {Decoder::kAuto, Decoder::kCpu, Decoder::kGpu, Decoder::kHybrid})
    if (text == to_string(d)) return d;
  throw_error("unknown decoder '", text, "' (choose auto, cpu, gpu or hybrid)");
}

bool parse_lanms_on_device(const std::string& text) {
  EASTRT_CHECK(text == "cpu" || text == "gpu", "unknown --lanms '", text, "' (choose cpu or gpu)");
  return text == "gpu";
}

struct Pipeline::Impl {
  Runner& runner;
  PipelineOptions options;
  const bool device_resize, device_decode, device_lanms;

  mutable std::mutex mutex;
  std::condition_variable decode_cv, batch_cv, post_cv;
  std::deque<JobPtr> to_decode;
  std::deque<JobPtr> to_cpu;                 // passed on by a GPU decoding thread, for the CPU decoder
  int decoding = 0;                          // taken by a decoding thread, not yet in the batcher
  int waiting = 0;                           // submitted, not yet taken into a batch (nor failed)
  std::map<std::pair<int, int>, Group> groups;  // by network height, width
  std::deque<JobPtr> to_post;
  bool decode_stop = false, network_stop = false, post_stop = false;
  int pending = 0;
  PipelineStats stats;

  std::vector<std::thread> decoders, networks, posters;
  std::vector<std::unique_ptr<GpuJpegDecoder>> gpu_decoders;  // one per GPU decoding thread
  std::string gpu_unavailable;  // why there are none, when the decoder is not kCpu
  bool cpu_takes_jpegs = true;  // the CPU threads take any input, not only what the GPU threads pass on
  int gpu_running = 0;          // GPU decoding threads not yet finished (they may still pass inputs on)

  Impl(Runner& r, PipelineOptions o)
      : runner(r), options(o), device_resize(r.resizes_images()),
        device_decode(o.device_decode && r.resizes_images() && r.decodes_on_device()),
        device_lanms(o.device_lanms) {
    EASTRT_CHECK(options.max_batch >= 1, "a batch must hold at least one image, not ", options.max_batch);
    EASTRT_CHECK(!device_lanms || device_decode, "LANMS on the GPU needs the decode on the GPU: a GPU runner, "
                 "with the device decode on (eastrt: --lanms gpu needs --device gpu and no --cpu-decode)");
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
    make_gpu_decoders();
    gpu_running = static_cast<int>(gpu_decoders.size());
    for (int i = 0; i < options.workers; ++i) decoders.emplace_back([this] { decode_loop(); });
    for (auto& decoder : gpu_decoders) decoders.emplace_back([this, d = decoder.get()] { gpu_decode_loop(*d); });
    for (int i = 0; i < options.in_flight; ++i) networks.emplace_back([this, i] { network_loop(i); });
    for (int i = 0; i < options.post_workers; ++i) posters.emplace_back([this] { post_loop(); });
  }

  void make_gpu_decoders() {
    if (options.decoder == Decoder::kCpu) return;
    EASTRT_CHECK(options.gpu_decode_threads >= 1, "the GPU decoder needs at least one thread, not ",
                 options.gpu_decode_threads);
    const int device = runner.gpu_device();
    if (device < 0 || !device_resize) {
      gpu_unavailable = "the network does not run on a GPU";
    } else {
      gpu_unavailable = gpu_jpeg_unavailable(device);
      if (gpu_unavailable.empty()) {
        try {
          for (int i = 0; i < options.gpu_decode_threads; ++i)
            gpu_decoders.push_back(std::make_unique<GpuJpegDecoder>(device, std::max(options.max_batch, 4)));
        } catch (const std::exception& e) {
          gpu_decoders.clear();
          gpu_unavailable = e.what();
        }
      }
    }
    EASTRT_CHECK(gpu_decoders.size() > 0 || options.decoder != Decoder::kGpu, "decoder gpu: ", gpu_unavailable,
                 " (choose decoder auto or cpu)");
    cpu_takes_jpegs = gpu_decoders.empty() || options.decoder == Decoder::kHybrid;
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
    if (options.keep_images) {
      job->result.image = std::move(job->image);
      job->result.image.device.reset();  // its host copy is there; the device buffer goes back to its pool
    }
    job->result.decoded_on_gpu = job->decoded_by == Job::DecodedBy::kGpu;
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
      if (job->decoded_by == Job::DecodedBy::kCpu) ++stats.decoded_on_cpu, stats.cpu_decode_ms += t.decode_ms;
      if (job->decoded_by == Job::DecodedBy::kGpu) ++stats.decoded_on_gpu;
    }
    job->promise.set_value(std::move(job->result));
  }

  // ---- decoding threads: file → image → plan (→ resized input on the CPU) → batcher

  // Under the lock: whether a CPU decoding thread has an input to take.
  bool cpu_has_work() const {
    if (!to_cpu.empty()) return true;
    if (cpu_takes_jpegs) return !to_decode.empty();
    return std::any_of(to_decode.begin(), to_decode.end(), [](const JobPtr& j) { return j->decoded; });
  }

  // Under the lock, with cpu_has_work(): what the GPU threads passed on first, then the queue (only inputs given
  // decoded when the GPU decoder takes every JPEG).
  JobPtr take_cpu_job() {
    std::deque<JobPtr>& queue = to_cpu.empty() ? to_decode : to_cpu;
    auto it = queue.begin();
    if (&queue == &to_decode && !cpu_takes_jpegs)
      it = std::find_if(queue.begin(), queue.end(), [](const JobPtr& j) { return j->decoded; });
    JobPtr job = std::move(*it);
    queue.erase(it);
    return job;
  }

  void decode_loop() {
    for (;;) {
      JobPtr job;
      {
        std::unique_lock<std::mutex> lock(mutex);
        // A GPU thread still running may yet pass inputs on.
        decode_cv.wait(lock, [&] { return cpu_has_work() || (decode_stop && gpu_running == 0); });
        if (!cpu_has_work()) return;
        job = take_cpu_job();
        ++decoding;
      }
      bool ok = true;
      const Clock::time_point start = Clock::now();
      job->result.times.decode_wait_ms = ms_between(job->submitted, start);
      try {
        // Under overload a service's request may expire in this queue: no point decoding it.
        if (start >= job->deadline) throw Deadline();
        if (!job->decoded) {
          job->image = job->path.empty() || !job->bytes.empty()
                           ? decode_image(job->bytes.data(), job->bytes.size(), job->result.name)
                           : decode_image(job->path);
          job->decoded_by = Job::DecodedBy::kCpu;
        }
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

  // ---- GPU decoding threads: a batch of files → nvJPEG → device images → batcher (the rest → to_cpu)

  bool gpu_has_work() const {
    return std::any_of(to_decode.begin(), to_decode.end(), [](const JobPtr& j) { return !j->decoded; });
  }

  void gpu_decode_loop(GpuJpegDecoder& decoder) {
    for (;;) {
      std::vector<JobPtr> jobs;
      {
        std::unique_lock<std::mutex> lock(mutex);
        decode_cv.wait(lock, [&] { return decode_stop || gpu_has_work(); });
        if (!gpu_has_work()) {
          --gpu_running;
          lock.unlock();
          decode_cv.notify_all();  // the CPU threads wait for the last one before they stop
          batch_cv.notify_all();
          return;
        }
        // Whatever is queued, up to a batch: waiting for more would only delay these.
        for (auto it = to_decode.begin(); it != to_decode.end() && static_cast<int>(jobs.size()) < decoder.max_batch();) {
          if ((*it)->decoded) {
            ++it;
            continue;
          }
          jobs.push_back(std::move(*it));
          it = to_decode.erase(it);
        }
        decoding += static_cast<int>(jobs.size());
      }
      const Clock::time_point start = Clock::now();
      enum class Next { kCpu, kExpired, kDecoded };
      std::vector<Next> next(jobs.size(), Next::kCpu);
      std::vector<GpuJpegDecoder::Input> inputs;
      std::vector<size_t> sent;  // the job of each input
      for (size_t i = 0; i < jobs.size(); ++i) {
        Job& job = *jobs[i];
        job.result.times.decode_wait_ms = ms_between(job.submitted, start);
        if (start >= job.deadline) {
          fail(job, Failure::kDeadline, "its deadline passed before it was decoded");
          next[i] = Next::kExpired;
          continue;
        }
        if (job.bytes.empty() && !job.path.empty() && !read_file(job.path, &job.bytes)) continue;
        inputs.push_back({job.bytes.data(), job.bytes.size()});
        sent.push_back(i);
      }
      std::vector<GpuJpegDecoder::Output> decoded;
      if (!inputs.empty()) {
        try {
          decoded = decoder.decode(inputs, options.keep_images);
        } catch (const std::exception&) {
          decoded.assign(inputs.size(), {});  // a CUDA failure: libjpeg still decodes them
        }
      }
      const Clock::time_point done = Clock::now();
      int on_gpu = 0;
      for (size_t k = 0; k < decoded.size(); ++k) on_gpu += decoded[k].decoded ? 1 : 0;
      for (size_t k = 0; k < decoded.size(); ++k) {
        if (!decoded[k].decoded) continue;
        Job& job = *jobs[sent[k]];
        job.image = std::move(decoded[k].image);
        job.bytes = {};
        job.decoded_by = Job::DecodedBy::kGpu;
        job.result.width = job.image.width;
        job.result.height = job.image.height;
        job.result.times.decode_ms = ms_between(start, done) / on_gpu;
        job.result.detection.plan = plan_resize(job.image.height, job.image.width, options.max_side);
        next[sent[k]] = Next::kDecoded;
      }
      std::vector<JobPtr> expired;
      bool passed_on = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        stats.gpu_decode_busy_ms += ms_between(start, done);
        for (size_t i = 0; i < jobs.size(); ++i) {
          --decoding;
          if (next[i] == Next::kExpired) {
            --waiting;
            expired.push_back(std::move(jobs[i]));
          } else if (next[i] == Next::kCpu) {
            ++stats.gpu_declined;
            to_cpu.push_back(std::move(jobs[i]));
            passed_on = true;
          } else {
            const ResizePlan& plan = jobs[i]->result.detection.plan;
            Group& group = groups[{plan.height, plan.width}];
            jobs[i]->ready = Clock::now();
            if (group.jobs.empty()) group.first = jobs[i]->ready;
            group.jobs.push_back(std::move(jobs[i]));
          }
        }
      }
      if (passed_on) decode_cv.notify_all();
      batch_cv.notify_all();
      for (JobPtr& job : expired) finish(std::move(job));
    }
  }

  // ---- network threads, one per slot: batcher → runner → post queue

  // Under the lock: the batch to run now, if any; else the time to look again (max() for "when woken").
  // Batched jobs whose deadline has passed leave their groups into `expired`, for finish() after the lock.
  std::vector<JobPtr> take_batch(Clock::time_point* recheck, std::vector<JobPtr>* expired) {
    const bool nothing_coming =
        to_decode.empty() && to_cpu.empty() && decoding == 0 && (!options.hold_partial_batches || decode_stop);
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
          if (network_stop && groups.empty() && to_decode.empty() && to_cpu.empty() && decoding == 0) {
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
            runner.run_to_candidates(images, plan.height, plan.width, slot, options.detect.score_threshold,
                                     device_lanms ? std::optional<float>(options.detect.nms_threshold) : std::nullopt);
        for (int i = 0; i < count; ++i) {
          batch[i]->score = std::move(found[i].score);
          batch[i]->candidates = std::move(found[i].quads);
          batch[i]->have_candidates = true;
          batch[i]->merged = found[i].merged;
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
          d.boxes = !job->have_candidates
                        ? detect_boxes(job->score, job->geometry, d.plan.ratio_h, d.plan.ratio_w, options.detect)
                    : job->merged
                        ? boxes_from_merged(job->candidates, job->score, d.plan.ratio_h, d.plan.ratio_w, options.detect)
                        : boxes_from_candidates(job->candidates, job->score, d.plan.ratio_h, d.plan.ratio_w, options.detect);
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
bool Pipeline::runs_lanms_on_device() const { return impl_->device_lanms; }
bool Pipeline::decodes_jpegs_on_gpu() const { return !impl_->gpu_decoders.empty(); }

std::string Pipeline::decoder_description() const {
  const Impl& i = *impl_;
  const std::string cpu = "libjpeg on " + std::to_string(i.options.workers) + " threads";
  if (i.gpu_decoders.empty())
    return cpu + (i.options.decoder == Decoder::kCpu ? "" : " (GPU decoder: " + i.gpu_unavailable + ")");
  return i.gpu_decoders.front()->description() + " on " + std::to_string(i.gpu_decoders.size()) + " threads, " +
         (i.cpu_takes_jpegs ? "and " + cpu : cpu + " for what it does not take");
}

std::string Pipeline::description() const {
  const PipelineOptions& o = impl_->options;
  return "batch " + std::to_string(o.max_batch) + ", " + std::to_string(o.in_flight) + " in flight, " +
         std::to_string(o.workers) + " decoding and " + std::to_string(o.post_workers) + " post-processing threads" +
         (impl_->device_decode ? ", candidates decoded on the GPU" : "") + (impl_->device_lanms ? ", LANMS on the GPU" : "") +
         (impl_->gpu_decoders.empty() ? "" : ", JPEGs decoded on the GPU too");
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
