// The CPU runner wraps the CPU engine; the GPU runner keeps one engine and execution context per input size,
// built the first time a size is seen, and drops the least recently used one beyond max_engines.
#include "eastrt/runner.h"

#include <iostream>
#include <list>
#include <sstream>

#include "eastrt/error.h"
#include "eastrt/gpu.h"

namespace eastrt {
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
    EASTRT_CHECK(batch >= 1 && batch <= options_.build.max_batch, "a batch of ", batch,
                 " images: this GPU runner was made for at most ", options_.build.max_batch);
    return engine_for(key).context->run(inputs);
  }
  const Network& network() const override { return network_; }
  std::string description() const override { return description_; }
  bool on_gpu() const override { return true; }

 private:
  struct Built {
    std::vector<Shape> key;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<ExecutionContext> context;
  };

  Built& engine_for(const std::vector<Shape>& key) {
    for (auto it = built_.begin(); it != built_.end(); ++it)
      if (it->key == key) {
        built_.splice(built_.begin(), built_, it);  // most recently used first
        return built_.front();
      }
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
      std::cerr << "\n";
    }
    Built b{key, Builder(std::move(sized), options_.build).build(), nullptr};
    b.context = b.engine->create_context();
    b.context->set_cuda_graph(options_.cuda_graph);
    built_.push_front(std::move(b));
    if (static_cast<int>(built_.size()) > options_.max_engines) built_.pop_back();
    return built_.front();
  }

  Network network_;
  GpuRunnerOptions options_;
  std::string description_;
  std::list<Built> built_;
};

}  // namespace

std::unique_ptr<Runner> make_cpu_runner(Network network, CpuOptions options) {
  return std::make_unique<CpuRunner>(std::move(network), options);
}

std::unique_ptr<Runner> make_gpu_runner(Network network, GpuRunnerOptions options) {
  return std::make_unique<GpuRunner>(std::move(network), std::move(options));
}

std::unique_ptr<Runner> make_runner(Network network, const std::string& device, Precision precision, CpuOptions cpu,
                                    int max_batch) {
  EASTRT_CHECK(device == "auto" || device == "gpu" || device == "cpu", "unknown device '", device,
               "' (choose auto, gpu or cpu)");
  const bool gpu = device == "gpu" || (device == "auto" && query_gpu().available);
  if (!gpu) {
    EASTRT_CHECK(precision == Precision::kFp32, "precision ", to_string(precision),
                 " needs the GPU engine; the CPU engine runs fp32",
                 device == "auto" ? (" (no usable GPU: " + query_gpu().reason + ")") : std::string());
    return make_cpu_runner(std::move(network), cpu);
  }
  GpuRunnerOptions options;
  options.build.precision = precision;
  options.build.max_batch = max_batch;
  return make_gpu_runner(std::move(network), options);
}

}  // namespace eastrt
