// Detector: preprocess → engine → detect_boxes, timing the stages.
#include "eastrt/detector.h"

#include <chrono>

#include "eastrt/east.h"
#include "eastrt/error.h"

namespace eastrt::east {

namespace {
double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

Detector::Detector(Network network, CpuOptions cpu, DetectOptions options)
    : engine_(std::move(network), cpu), options_(options) {
  const Network& net = engine_.network();
  EASTRT_CHECK(net.find_tensor(kInputName) && net.find_tensor(kScoreOutput) && net.find_tensor(kGeometryOutput),
               "the detector needs an EAST network with input ", kInputName, " and outputs ", kScoreOutput, ", ",
               kGeometryOutput);
}

Detection Detector::detect(const Image& image) {
  Detection detection;
  HostTensor input = preprocess(image, &detection.plan);
  auto start = std::chrono::steady_clock::now();
  auto outputs = engine_.run({{kInputName, input}});
  detection.network_ms = since(start);
  start = std::chrono::steady_clock::now();
  detection.boxes = detect_boxes(outputs.at(kScoreOutput), outputs.at(kGeometryOutput), detection.plan.ratio_h,
                                 detection.plan.ratio_w, options_);
  detection.post_ms = since(start);
  return detection;
}

}  // namespace eastrt::east
