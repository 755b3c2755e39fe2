// The fake-quantised CPU reference and the per-layer sensitivity measured with it.
#include <algorithm>
#include <cmath>

#include "cpu/thread_pool.h"
#include "eastrt/calibration.h"
#include "eastrt/error.h"

namespace eastrt::quant {
namespace {

const Layer* find_convolution(const Network& network, const std::string& name) {
  for (const Layer& l : network.layers())
    if (l.name == name && l.kind() == LayerKind::kConvolution) return &l;
  return nullptr;
}

}  // namespace

FakeQuantEngine::FakeQuantEngine(const Network& network, const CalibrationCache& cache, FakeQuantOptions options)
    : precision_(cache.precision), engine_(quantize(network, cache, options), CpuOptions{options.threads, false, false}) {}

Network FakeQuantEngine::quantize(const Network& network, const CalibrationCache& cache,
                                  const FakeQuantOptions& options) {
  Network prepared = prepare_network(network);
  const std::vector<QuantizedTensor> tensors = quantized_tensors(prepared);
  auto range_of = [&](const QuantizedTensor& t) {
    const TensorRange* r = cache.find(t.name);
    EASTRT_CHECK(r, "fake quantisation: the calibration cache has no range for tensor '", t.name,
                 "' (the input of ", t.consumers[0], ")");
    return r->scale;
  };
  auto check_names = [&](const std::set<std::string>& names, const char* what) {
    for (const std::string& name : names)
      EASTRT_CHECK(find_convolution(prepared, name), "fake quantisation: ", what, " '", name,
                   "' is not a convolution of the network (after the graph passes)");
  };
  check_names(options.high_precision_layers, "high-precision layer");

  scales_.assign(static_cast<size_t>(prepared.tensor_count()), 0.0f);
  std::set<std::string> quantized;
  for (const QuantizedTensor& t : tensors) {
    bool quantize_tensor = false;
    if (options.only_layers) {
      for (const std::string& c : t.consumers)
        if (options.only_layers->count(c)) quantized.insert(c), quantize_tensor = true;
    } else {
      bool kept = false;
      for (const std::string& c : t.consumers) kept = kept || options.high_precision_layers.count(c) > 0;
      if (kept) {
        high_precision_.insert(t.consumers.begin(), t.consumers.end());
      } else {
        quantized.insert(t.consumers.begin(), t.consumers.end());
        quantize_tensor = true;
      }
    }
    if (quantize_tensor) scales_[static_cast<size_t>(t.id)] = range_of(t);
  }
  if (options.only_layers) check_names(*options.only_layers, "layer to quantise");

  for (Layer& layer : prepared.mutable_layers()) {
    if (!quantized.count(layer.name) || layer.kind() != LayerKind::kConvolution) continue;
    ConvolutionParams& conv = layer.as<ConvolutionParams>();
    conv.kernel_weights = std::make_shared<const HostTensor>(fake_quantize_weights(*conv.kernel_weights, precision_));
    quantized_layers_.push_back(layer.name);
  }
  return prepared;
}

std::map<std::string, HostTensor> FakeQuantEngine::run(const std::map<std::string, HostTensor>& inputs) {
  return engine_.run(inputs, [this](const Tensor& tensor, HostTensor& value) {
    const float scale = scales_[static_cast<size_t>(tensor.id)];
    if (scale <= 0) return;
    constexpr int64_t kChunk = 1 << 16;
    cpu::ThreadPool::shared(engine_.threads())
        .parallel_for((value.size() + kChunk - 1) / kChunk, [&](int64_t first, int64_t last) {
          const int64_t end = std::min(value.size(), last * kChunk);
          fake_quantize(value.data.data() + first * kChunk, end - first * kChunk, scale, precision_);
        });
  });
}

namespace {

// Sums of squares per output over several runs, for ‖y − y_ref‖ / ‖y_ref‖ over all of them.
class OutputError {
 public:
  void add(const std::map<std::string, HostTensor>& got, const std::map<std::string, HostTensor>& want) {
    for (const auto& [name, w] : want) {
      const HostTensor& g = got.at(name);
      EASTRT_CHECK(g.shape == w.shape, "sensitivity: output '", name, "' has shape ", eastrt::to_string(g.shape),
                   " quantised and ", eastrt::to_string(w.shape), " in FP32");
      auto& [diff, norm] = sums_[name];
      for (int64_t i = 0; i < w.size(); ++i) {
        const double d = static_cast<double>(g.data[i]) - w.data[i];
        diff += std::isfinite(d) ? d * d : INFINITY;
        norm += static_cast<double>(w.data[i]) * w.data[i];
      }
    }
  }
  std::map<std::string, double> by_output() const {
    std::map<std::string, double> out;
    for (const auto& [name, s] : sums_) out[name] = std::sqrt(s.first) / std::max(std::sqrt(s.second), 1e-30);
    return out;
  }
  double largest() const {
    double e = 0;
    for (const auto& [name, v] : by_output()) e = std::max(e, v);
    return e;
  }

 private:
  std::map<std::string, std::pair<double, double>> sums_;
};

}  // namespace

SensitivityReport measure_sensitivity(const Network& network, const CalibrationCache& cache,
                                      const std::vector<HostTensor>& inputs, double threshold, int threads,
                                      const std::function<void(size_t, size_t)>& progress) {
  EASTRT_CHECK(!inputs.empty(), "sensitivity: no input to measure on");
  EASTRT_CHECK(threshold >= 0, "sensitivity: the threshold ", threshold, " is negative");
  CpuEngine reference(prepare_network(network), CpuOptions{threads, false, false});
  const std::string input_name = reference.network().tensor(reference.network().inputs().at(0)).name;
  std::vector<std::map<std::string, HostTensor>> want;
  for (const HostTensor& input : inputs) want.push_back(reference.run({{input_name, input}}));
  auto measure = [&](FakeQuantEngine& engine) {
    OutputError error;
    for (size_t i = 0; i < inputs.size(); ++i) error.add(engine.run({{input_name, inputs[i]}}), want[i]);
    return error;
  };

  SensitivityReport report;
  report.threshold = threshold;
  std::vector<std::pair<std::string, std::string>> layers;  // convolution, its input
  for (const QuantizedTensor& t : quantized_tensors(reference.network()))
    for (const std::string& c : t.consumers) layers.emplace_back(c, t.name);
  // In network order, as the table reads best.
  std::vector<LayerSensitivity> ordered;
  for (const Layer& l : reference.network().layers())
    for (const auto& [layer, tensor] : layers)
      if (layer == l.name) ordered.push_back({layer, tensor, 0});

  std::set<std::string> above;
  for (size_t i = 0; i < ordered.size(); ++i) {
    FakeQuantEngine one(network, cache, FakeQuantOptions{threads, {}, std::set<std::string>{ordered[i].layer}});
    ordered[i].error = measure(one).largest();
    if (ordered[i].error > threshold) above.insert(ordered[i].layer);
    if (progress) progress(i + 1, ordered.size());
  }
  report.layers = ordered;

  FakeQuantEngine all(network, cache, FakeQuantOptions{threads, {}, std::nullopt});
  const OutputError all_error = measure(all);
  report.all_quantized_by_output = all_error.by_output();
  report.all_quantized_error = all_error.largest();
  FakeQuantEngine mixed(network, cache, FakeQuantOptions{threads, above, std::nullopt});
  const OutputError mixed_error = measure(mixed);
  report.mixed_by_output = mixed_error.by_output();
  report.mixed_error = mixed_error.largest();
  for (const LayerSensitivity& l : ordered)
    if (mixed.high_precision_layers().count(l.layer)) report.keep_high_precision.push_back(l.layer);
  return report;
}

}  // namespace eastrt::quant
