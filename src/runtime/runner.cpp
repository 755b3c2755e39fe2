// The CPU runner wraps the CPU engine; the GPU runner keeps one engine and execution context per input size,
// built the first time a size is seen, and drops the least recently used one beyond max_engines. Each engine
// has one execution context per slot, so batches on different slots run on different streams at once.
#include "cuda/timing_cache.h"
#include "eastrt/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <list>
#include <mutex>
#include <sstream>

#include "eastrt/calibration.h"
#include "eastrt/detector.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"

namespace eastrt {

std::map<std::string, HostTensor> Runner::run_images(const std::string& input,
                                                     const std::vector<const east::Image*>& images, int height,
                                                     int width, int slot) {
  EASTRT_CHECK(slot >= 0 && slot < slots(), "slot ", slot, " is outside this runner's 0..", slots() - 1);
  EASTRT_CHECK(!images.empty(), "run_images: no images");
  HostTensor batch({static_cast<int64_t>(images.size()), height, width, 3});
  const size_t per_image = static_cast<size_t>(height) * width * 3;
  for (size_t i = 0; i < images.size(); ++i) {
    const HostTensor resized = east::resize_bilinear(*images[i], height, width);
    std::memcpy(batch.data.data() + per_image * i, resized.data.data(), per_image * sizeof(float));
  }
  return run({{input, std::move(batch)}});
}

std::vector<Runner::Candidates> Runner::run_to_candidates(const std::vector<const east::Image*>& images, int height,
                                                          int width, int slot, float threshold,
                                                          std::optional<float>) {
  auto outputs = run_images(east::kInputName, images, height, width, slot);
  east::check_output_maps(outputs, static_cast<int64_t>(images.size()), height, width);
  std::vector<Candidates> result(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    result[i].score = batch_item(outputs.at(east::kScoreOutput), static_cast<int64_t>(i));
    result[i].quads = east::decode_quads(result[i].score, batch_item(outputs.at(east::kGeometryOutput), static_cast<int64_t>(i)),
                                         threshold);
  }
  return result;
}

double Runner::time_network(const std::string& input, const Shape& shape, int iterations) {
  EASTRT_CHECK(iterations >= 1, "time_network: at least one iteration, not ", iterations);
  HostTensor value(shape);
  for (size_t i = 0; i < value.data.size(); ++i) value.data[i] = static_cast<float>((i * 37) % 256);
  run({{input, value}});
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run({{input, value}});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

namespace {

class CpuRunner : public Runner {
 public:
  CpuRunner(Network network, CpuOptions options) : engine_(std::move(network), options) {}
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs) override {
    return engine_.run(inputs);
  }
  const Network& network() const override { return engine_.network(); }
  std::string description() const override {
    return "the CPU engine, " + std::to_string(engine_.threads()) + " threads, fp32";
  }
  bool on_gpu() const override { return false; }

 private:
  CpuEngine engine_;
};

class GpuRunner : public Runner {
 public:
  GpuRunner(Network network, GpuRunnerOptions options) : network_(std::move(network)), options_(std::move(options)) {
    const GpuInfo gpu = query_gpu(options_.build.device);
    EASTRT_CHECK(gpu.available, "no usable GPU ", options_.build.device, ": ", gpu.reason);
    EASTRT_CHECK(options_.max_engines >= 1, "the GPU runner must keep at least one engine");
    EASTRT_CHECK(options_.slots >= 1, "the GPU runner needs at least one slot, not ", options_.slots);
    in_use_.resize(static_cast<size_t>(options_.slots));
    std::ostringstream d;
    d << "the GPU engine on " << gpu.name << " (sm_" << gpu.major << gpu.minor << "), " << to_string(options_.build.precision);
    description_ = d.str();
  }

  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs) override {
    int batch = -1;
    std::vector<Shape> key;
    for (int id : network_.inputs()) {
      const std::string& name = network_.tensor(id).name;
      auto it = inputs.find(name);
      EASTRT_CHECK(it != inputs.end(), "the network's input '", name, "' is not given");
      const Shape& shape = it->second.shape;
      EASTRT_CHECK(!shape.empty(), "input '", name, "' is a scalar");
      EASTRT_CHECK(batch < 0 || shape[0] == batch, "inputs of one run disagree in batch size (", batch, " and ",
                   shape[0], " for '", name, "')");
      batch = static_cast<int>(shape[0]);
      key.push_back(Shape(shape.begin() + 1, shape.end()));
    }
    check_batch(batch);
    return context_for(key, 0).run(inputs);
  }

  std::map<std::string, HostTensor> run_images(const std::string& input, const std::vector<const east::Image*>& images,
                                               int height, int width, int slot) override {
    EASTRT_CHECK(slot >= 0 && slot < options_.slots, "slot ", slot, " is outside this runner's 0..",
                 options_.slots - 1);
    EASTRT_CHECK(network_.inputs().size() == 1 && network_.tensor(network_.inputs()[0]).name == input,
                 "run_images: the network's only input must be '", input, "'");
    check_batch(static_cast<int>(images.size()));
    ExecutionContext& context = context_for({Shape{height, width, 3}}, slot);
    context.set_input_images(input, images);
    context.enqueue();
    context.fetch_outputs();
    context.synchronize();
    std::map<std::string, HostTensor> result;
    for (int id : network_.outputs()) result[network_.tensor(id).name] = context.output(network_.tensor(id).name);
    return result;
  }

  bool decodes_on_device() const override { return true; }
  std::vector<Candidates> run_to_candidates(const std::vector<const east::Image*>& images, int height, int width,
                                            int slot, float threshold, std::optional<float> nms_threshold) override {
    EASTRT_CHECK(slot >= 0 && slot < options_.slots, "slot ", slot, " is outside this runner's 0..",
                 options_.slots - 1);
    check_batch(static_cast<int>(images.size()));
    ExecutionContext& context = context_for({Shape{height, width, 3}}, slot);
    context.set_input_images(east::kInputName, images);
    context.enqueue();
    std::vector<std::vector<east::Quad>> quads =
        context.decode_candidates(east::kScoreOutput, east::kGeometryOutput, threshold, nms_threshold);
    const HostTensor score = context.output(east::kScoreOutput);
    const Shape want{static_cast<int64_t>(images.size()), height / 4, width / 4, 1};
    EASTRT_CHECK(score.shape == want, "the network gives ", east::kScoreOutput, " ", to_string(score.shape), " for a ",
                 images.size(), "x", height, "x", width, "x3 input, not ", to_string(want));
    std::vector<Candidates> result(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      result[i].score = batch_item(score, static_cast<int64_t>(i));
      result[i].quads = std::move(quads[i]);
      result[i].merged = nms_threshold.has_value();
    }
    return result;
  }

  double time_network(const std::string& input, const Shape& shape, int iterations) override {
    EASTRT_CHECK(iterations >= 1, "time_network: at least one iteration, not ", iterations);
    EASTRT_CHECK(network_.inputs().size() == 1 && shape.size() >= 1, "time_network: one input with a batch");
    check_batch(static_cast<int>(shape[0]));
    ExecutionContext& context = context_for({Shape(shape.begin() + 1, shape.end())}, 0);
    HostTensor value(shape);
    context.set_input(input, value);
    std::vector<double> ms = context.time_enqueue(2, iterations);
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
  }

  const Network& network() const override { return network_; }
  std::string description() const override { return description_; }
  bool on_gpu() const override { return true; }
  int gpu_device() const override { return options_.build.device; }
  int slots() const override { return options_.slots; }
  bool resizes_images() const override { return true; }

 private:
  struct Built {
    std::vector<Shape> key;
    std::unique_ptr<Engine> engine;
    std::vector<std::unique_ptr<ExecutionContext>> contexts;  // per slot, made on first use
  };

  void check_batch(int batch) const {
    EASTRT_CHECK(batch >= 1 && batch <= options_.build.max_batch, "a batch of ", batch,
                 " images: this GPU runner was made for at most ", options_.build.max_batch);
  }

  // The context of `slot` on the engine for these input shapes. An engine dropped from the list while a slot
  // still runs on it lives on until that run ends (shared ownership), so slots never wait for each other
  // except while an engine is built.
  ExecutionContext& context_for(const std::vector<Shape>& key, int slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<Built> built;
    for (auto it = built_.begin(); it != built_.end() && !built; ++it)
      if ((*it)->key == key) {
        built_.splice(built_.begin(), built_, it);  // most recently used first
        built = built_.front();
      }
    if (!built) {
      Network sized = network_;
      const std::vector<int>& ids = sized.inputs();
      for (size_t i = 0; i < ids.size(); ++i) {
        Shape shape{options_.build.max_batch};
        shape.insert(shape.end(), key[i].begin(), key[i].end());
        sized.tensor(ids[i]).shape = shape;
      }
      sized.infer_shapes();
      if (options_.verbose) {
        std::cerr << "eastrt: building a " << to_string(options_.build.precision) << " GPU engine for input";
        for (const Shape& s : key) std::cerr << " " << to_string(s);
        std::cerr << " on GPU " << options_.build.device << "\n";
      }
      built = std::make_shared<Built>();
      built->key = key;
      built->engine = Builder(std::move(sized), options_.build).build();
      built->contexts.resize(static_cast<size_t>(options_.slots));
      built_.push_front(built);
      if (static_cast<int>(built_.size()) > options_.max_engines) built_.pop_back();
    }
    std::unique_ptr<ExecutionContext>& context = built->contexts[static_cast<size_t>(slot)];
    if (!context) {
      context = built->engine->create_context();
      context->set_cuda_graph(options_.cuda_graph);
    }
    in_use_[static_cast<size_t>(slot)] = built;  // keeps it alive until this slot's next call
    return *context;
  }

  Network network_;
  GpuRunnerOptions options_;
  std::string description_;
  std::mutex mutex_;
  std::list<std::shared_ptr<Built>> built_;
  std::vector<std::shared_ptr<Built>> in_use_;  // per slot: the engine its last call ran on
};

}  // namespace

std::unique_ptr<Runner> make_cpu_runner(Network network, CpuOptions options) {
  return std::make_unique<CpuRunner>(std::move(network), options);
}

std::unique_ptr<Runner> make_gpu_runner(Network network, GpuRunnerOptions options) {
  return std::make_unique<GpuRunner>(std::move(network), std::move(options));
}

std::string default_timing_cache() {
  if (const char* chosen = std::getenv("EASTRT_TIMING_CACHE")) return chosen;
  std::filesystem::path folder;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) folder = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home) folder = std::filesystem::path(home) / ".cache";
  else return "";
  // The format version in the name: a newer eastrt starts its own file instead of refusing the old one.
  return (folder / "eastrt" / ("timing_cache.v" + std::to_string(gpu::TimingCache::kFormatVersion) + ".json")).string();
}

std::unique_ptr<Runner> make_runner(Network network, const std::string& device, Precision precision, CpuOptions cpu,
                                    int max_batch, int gpu_slots, bool verbose, const std::string& calibration_cache,
                                    int gpu_device) {
  EASTRT_CHECK(device == "auto" || device == "gpu" || device == "cpu", "unknown device '", device,
               "' (choose auto, gpu or cpu)");
  const bool gpu = device == "gpu" || (device == "auto" && query_gpu(gpu_device).available);
  if (!gpu) {
    EASTRT_CHECK(precision == Precision::kFp32, "precision ", to_string(precision),
                 " needs the GPU engine; the CPU engine runs fp32",
                 device == "auto" ? (" (no usable GPU: " + query_gpu(gpu_device).reason + ")") : std::string());
    return make_cpu_runner(std::move(network), cpu);
  }
  GpuRunnerOptions options;
  if (is_quantized(precision)) {
    // Read and checked once, now, rather than at the first image of each size.
    EASTRT_CHECK(!calibration_cache.empty(), "precision ", to_string(precision),
                 " needs a calibration cache: give --calib-cache FILE (made by eastrt calibrate)");
    auto cache = std::make_shared<quant::CalibrationCache>(quant::read_cache(calibration_cache));
    quant::check_cache_matches(*cache, calibration_cache, network,
                               quant_type(precision));
    options.build.calibration = std::move(cache);
  }
  options.build.precision = precision;
  options.build.device = gpu_device;
  options.build.max_batch = max_batch;
  options.slots = gpu_slots;
  options.verbose = verbose;
  options.build.timing_cache = default_timing_cache();
  if (const std::filesystem::path folder = std::filesystem::path(options.build.timing_cache).parent_path();
      !folder.empty()) {
    std::error_code error;  // a cache folder that cannot be made means timing every build, not failing
    std::filesystem::create_directories(folder, error);
    if (error) options.build.timing_cache.clear();
  }
  return make_gpu_runner(std::move(network), options);
}

}  // namespace eastrt
