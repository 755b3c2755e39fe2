// Detector: preprocess → runner → detect_boxes, timing the stages; batches group images by network size.
#include "eastrt/detector.h"

#include <chrono>
#include <cstring>
#include <map>

#include "eastrt/east.h"
#include "eastrt/error.h"

namespace eastrt::east {

namespace {
double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

void check_output_maps(const std::map<std::string, HostTensor>& outputs, int64_t count, int height, int width) {
  for (const auto& [name, channels] : {std::pair{kScoreOutput, 1}, std::pair{kGeometryOutput, 5}}) {
    auto it = outputs.find(name);
    EASTRT_CHECK(it != outputs.end(), "the network gives no output ", name);
    const Shape want{count, height / 4, width / 4, channels};
    EASTRT_CHECK(it->second.shape == want, "the network gives ", name, " ", to_string(it->second.shape), " for a ",
                 count, "x", height, "x", width, "x3 input, not ", to_string(want),
                 ": it cannot run at this size (a network with sizes fixed at import runs only at that size: "
                 "give --input 1x", height, "x", width, "x3)");
  }
}

Detector::Detector(Network network, CpuOptions cpu, DetectOptions options)
    : Detector(make_cpu_runner(std::move(network), cpu), options) {}

Detector::Detector(std::unique_ptr<Runner> runner, DetectOptions options)
    : runner_(std::move(runner)), options_(options) {
  const Network& net = runner_->network();
  EASTRT_CHECK(net.find_tensor(kInputName) && net.find_tensor(kScoreOutput) && net.find_tensor(kGeometryOutput),
               "the detector needs an EAST network with input ", kInputName, " and outputs ", kScoreOutput, ", ",
               kGeometryOutput);
}

Detection Detector::detect(const Image& image) { return detect_batch({image}, 1).front(); }

std::vector<Detection> Detector::detect_batch(const std::vector<Image>& images, int max_batch) {
  EASTRT_CHECK(max_batch >= 1, "a batch must hold at least one image, not ", max_batch);
  std::vector<Detection> detections(images.size());
  std::vector<HostTensor> inputs(images.size());
  std::map<std::pair<int, int>, std::vector<size_t>> by_size;
  for (size_t i = 0; i < images.size(); ++i) {
    auto start = std::chrono::steady_clock::now();
    inputs[i] = preprocess(images[i], &detections[i].plan);
    detections[i].preprocess_ms = since(start);
    by_size[{detections[i].plan.height, detections[i].plan.width}].push_back(i);
  }
  for (const auto& [size, members] : by_size) {
    for (size_t first = 0; first < members.size(); first += max_batch) {
      const size_t count = std::min(members.size() - first, static_cast<size_t>(max_batch));
      Shape shape = inputs[members[first]].shape;
      const int64_t per_image = volume(shape);
      shape[0] = static_cast<int64_t>(count);
      HostTensor batch(shape);
      for (size_t j = 0; j < count; ++j)
        std::memcpy(batch.data.data() + j * per_image, inputs[members[first + j]].data.data(),
                    per_image * sizeof(float));
      auto start = std::chrono::steady_clock::now();
      auto outputs = runner_->run({{kInputName, batch}});
      const double network_ms = since(start) / count;
      check_output_maps(outputs, static_cast<int64_t>(count), size.first, size.second);
      for (size_t j = 0; j < count; ++j) {
        Detection& d = detections[members[first + j]];
        d.network_ms = network_ms;
        start = std::chrono::steady_clock::now();
        d.boxes = detect_boxes(batch_item(outputs.at(kScoreOutput), j), batch_item(outputs.at(kGeometryOutput), j),
                               d.plan.ratio_h, d.plan.ratio_w, options_);
        d.post_ms = since(start);
      }
    }
  }
  return detections;
}

}  // namespace eastrt::east
