// The two BatchEngines: the CPU engine (any input size, the EAST resize rule) and a GPU execution context
// (the built size, fixed).
#include <chrono>
#include <climits>
#include <cstring>

#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/runner.h"
#include "eastrt/serve.h"

namespace eastrt::serve {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void check_east(const Network& network) {
  EASTRT_CHECK(network.find_tensor(east::kInputName) && network.find_tensor(east::kScoreOutput) &&
                   network.find_tensor(east::kGeometryOutput),
               "serving needs an EAST network with input ", east::kInputName, " and outputs ", east::kScoreOutput,
               ", ", east::kGeometryOutput);
}

class CpuBatchEngine : public BatchEngine {
 public:
  CpuBatchEngine(const Network& network, CpuOptions cpu) : runner_(make_cpu_runner(network, cpu)) {}

  std::string description() const override { return runner_->description(); }
  int max_batch() const override { return INT_MAX; }
  east::ResizePlan plan(const east::Image& image) const override {
    return east::plan_resize(image.height, image.width);
  }

  std::vector<EastMaps> run(const std::vector<const east::Image*>& images, int height, int width,
                            BatchTimes* times) override {
    auto start = Clock::now();
    const int batch = static_cast<int>(images.size());
    HostTensor input({batch, height, width, 3});
    const size_t per_image = static_cast<size_t>(height) * width * 3;
    for (int i = 0; i < batch; ++i) {
      const HostTensor resized = east::resize_bilinear(*images[i], height, width);
      std::memcpy(input.data.data() + per_image * i, resized.data.data(), per_image * sizeof(float));
    }
    times->preprocess_ms = ms_since(start);
    start = Clock::now();
    auto outputs = runner_->run({{east::kInputName, input}});
    times->network_ms = ms_since(start);
    std::vector<EastMaps> maps;
    for (int i = 0; i < batch; ++i)
      maps.push_back({batch_item(outputs.at(east::kScoreOutput), i), batch_item(outputs.at(east::kGeometryOutput), i)});
    return maps;
  }

 private:
  std::unique_ptr<Runner> runner_;
};

class GpuBatchEngine : public BatchEngine {
 public:
  GpuBatchEngine(std::shared_ptr<Engine> engine, int height, int width)
      : engine_(std::move(engine)), context_(engine_->create_context()), height_(height), width_(width) {}

  std::string description() const override {
    return std::string("GPU engine, ") + to_string(engine_->precision()) + ", " + std::to_string(height_) + "x" +
           std::to_string(width_);
  }
  int max_batch() const override { return engine_->max_batch(); }
  east::ResizePlan plan(const east::Image& image) const override {
    return {height_, width_, double(height_) / image.height, double(width_) / image.width};
  }

  std::vector<EastMaps> run(const std::vector<const east::Image*>& images, int, int, BatchTimes* times) override {
    // The resize runs on the GPU as part of the batch, so it is counted in the network time.
    const auto start = Clock::now();
    const int batch = static_cast<int>(images.size());
    context_->set_batch(batch);
    context_->set_input_images(east::kInputName, images);  // one pinned staging buffer, one copy
    context_->enqueue();
    context_->fetch_outputs();
    context_->synchronize();
    times->preprocess_ms = 0;
    times->network_ms = ms_since(start);
    const HostTensor score = context_->output(east::kScoreOutput), geometry = context_->output(east::kGeometryOutput);
    std::vector<EastMaps> maps;
    for (int i = 0; i < batch; ++i) maps.push_back({batch_item(score, i), batch_item(geometry, i)});
    return maps;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::unique_ptr<ExecutionContext> context_;
  int height_, width_;
};

}  // namespace

EngineFactory cpu_engines(const Network& network, CpuOptions cpu) {
  check_east(network);
  return [network, cpu](int) { return std::make_unique<CpuBatchEngine>(network, cpu); };
}

EngineFactory gpu_engines(const Network& network, const BuildOptions& options) {
  check_east(network);
  const Shape input = network.tensor(network.inputs().at(0)).shape;
  EASTRT_CHECK(input.size() == 4, "the GPU engine needs an NHWC input, got ", to_string(input));
  std::shared_ptr<Engine> engine = Builder(network, options).build();
  const int height = static_cast<int>(input[1]), width = static_cast<int>(input[2]);
  return [engine, height, width](int) { return std::make_unique<GpuBatchEngine>(engine, height, width); };
}

}  // namespace eastrt::serve
