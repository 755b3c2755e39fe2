// Which tensors are quantised, their histograms over a calibration set, and the ranges the calibrators
// choose from them.
#include <algorithm>

#include "eastrt/calibration.h"
#include "eastrt/error.h"
#include "passes/passes.h"

namespace eastrt::quant {

Network prepare_network(const Network& network) {
  Network prepared = network;
  prepared.validate();
  passes::run_default_passes(prepared);
  return prepared;
}

std::vector<QuantizedTensor> quantized_tensors(const Network& prepared) {
  std::vector<QuantizedTensor> tensors;
  std::map<int, size_t> index;  // tensor id → position in `tensors`
  for (const Layer& layer : prepared.layers()) {
    if (layer.kind() != LayerKind::kConvolution) continue;
    const int id = layer.inputs.at(0);
    auto [it, added] = index.emplace(id, tensors.size());
    if (added) tensors.push_back({prepared.tensor(id).name, id, {}});
    tensors[it->second].consumers.push_back(layer.name);
  }
  return tensors;
}

ActivationStatistics::ActivationStatistics(const Network& network, int threads, int bins)
    : engine_(prepare_network(network), CpuOptions{threads, false, false}) {
  EASTRT_CHECK(engine_.network().inputs().size() == 1, "calibration: the network has ",
               engine_.network().inputs().size(), " inputs; calibration feeds networks with one");
  tensors_ = quantized_tensors(engine_.network());
  EASTRT_CHECK(!tensors_.empty(), "calibration: the network has no convolution, so nothing to quantise");
  for (const QuantizedTensor& t : tensors_) histograms_.emplace(t.id, Histogram(bins));
}

void ActivationStatistics::add_batch(const HostTensor& input) {
  const Tensor& in = engine_.network().tensor(engine_.network().inputs()[0]);
  engine_.run({{in.name, input}}, [this](const Tensor& tensor, HostTensor& value) {
    auto it = histograms_.find(tensor.id);
    if (it == histograms_.end()) return;
    try {
      it->second.add(value.data.data(), value.size(), engine_.threads());
    } catch (const Error& e) {
      throw_error("calibration: tensor '", tensor.name, "': ", e.what());
    }
  });
  images_ += input.shape.empty() ? 1 : input.shape[0];
}

const Histogram& ActivationStatistics::histogram(const std::string& tensor) const {
  for (const QuantizedTensor& t : tensors_)
    if (t.name == tensor) return histograms_.at(t.id);
  throw_error("calibration: '", tensor, "' is not a quantised tensor of the network");
}

CalibrationCache make_cache(const Network& network, const ActivationStatistics& statistics, QuantType precision,
                            Calibrator calibrator, const CalibratorOptions& options) {
  EASTRT_CHECK(statistics.images() > 0, "calibration: no image was run, so there are no ranges");
  CalibrationCache cache;
  cache.eastrt_version = EASTRT_VERSION;
  cache.model_fingerprint = model_fingerprint(network);
  cache.precision = precision;
  cache.calibrator = calibrator;
  cache.percentile = calibrator == Calibrator::kPercentile ? options.percentile : 0;
  cache.images = statistics.images();
  for (const QuantizedTensor& t : statistics.tensors()) {
    const float amax = calibrate_amax(statistics.histogram(t.name), calibrator, precision, options);
    cache.tensors.push_back({t.name, amax, scale_for_amax(amax, precision)});
  }
  return cache;
}

const TensorRange* CalibrationCache::find(const std::string& tensor) const {
  for (const TensorRange& r : tensors)
    if (r.name == tensor) return &r;
  return nullptr;
}

}  // namespace eastrt::quant
