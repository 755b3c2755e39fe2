// The DB detector: PaddleOCR's DetResizeForTest + NormalizeImage, the ONNX network on the CPU engine, and
// detect_boxes, timing the stages.
#include "eastrt/db_detector.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "eastrt/error.h"
#include "eastrt/onnx_import.h"

namespace eastrt::db {

namespace {
double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// DetResizeForTest.image_padding: tiny images go into a black canvas of at least 32 × 32.
Image pad_small(const Image& image) {
  if (image.height + image.width >= 64) return image;
  Image padded{std::max(image.width, 32), std::max(image.height, 32), {}, {}};
  padded.rgb.assign(size_t(padded.width) * padded.height * 3, 0);
  for (int y = 0; y < image.height; ++y)
    std::copy_n(image.rgb.begin() + size_t(y) * image.width * 3, size_t(image.width) * 3,
                padded.rgb.begin() + size_t(y) * padded.width * 3);
  return padded;
}
}  // namespace

ResizePlan plan_resize(int height, int width, int limit_side_len) {
  EASTRT_CHECK(height > 0 && width > 0 && limit_side_len > 0, "plan_resize: image ", height, "x", width,
               ", limit ", limit_side_len);
  const double ratio = std::max(height, width) > limit_side_len ? double(limit_side_len) / std::max(height, width) : 1.0;
  auto side = [&](int s) { return std::max(int(std::nearbyint(int(s * ratio) / 32.0)) * 32, 32); };
  ResizePlan plan;
  plan.height = side(height);
  plan.width = side(width);
  plan.ratio_h = double(plan.height) / height;
  plan.ratio_w = double(plan.width) / width;
  return plan;
}

HostTensor preprocess(const Image& image, ResizePlan* plan, int limit_side_len) {
  const Image source = pad_small(image);
  const ResizePlan p = plan_resize(source.height, source.width, limit_side_len);
  if (plan) *plan = p;
  HostTensor x = east::resize_bilinear(source, p.height, p.width);  // RGB, integral values 0..255
  // NormalizeImage works on cv2's BGR image, in float32: (v * float32(1/255) - mean) / std.
  const float scale = float(1.0 / 255.0);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
  for (size_t i = 0; i < x.data.size(); i += 3) {
    const float bgr[3] = {x.data[i + 2], x.data[i + 1], x.data[i]};
    for (int c = 0; c < 3; ++c) {
      const float scaled = bgr[c] * scale;
      x.data[i + c] = (scaled - mean[c]) / stdev[c];
    }
  }
  return x;
}

Network load_network(const std::string& onnx_path) {
  OnnxImportOptions options;
  options.input_layout = OnnxLayout::kNhwc;
  options.output_layout = OnnxLayout::kNhwc;
  options.input_shapes[""] = {1, 640, 640, 3};
  return import_onnx(onnx_path, options);
}

Detector::Detector(Network network, CpuOptions cpu, DbOptions options)
    : Detector(make_cpu_runner(std::move(network), cpu), options) {}

Detector::Detector(std::unique_ptr<Runner> runner, DbOptions options) : runner_(std::move(runner)), options_(options) {
  const Network& net = runner_->network();
  EASTRT_CHECK(net.inputs().size() == 1 && net.outputs().size() == 1,
               "the DB detector needs a network with one input and one output (the probability map), got ",
               net.inputs().size(), " inputs and ", net.outputs().size(), " outputs");
  const Tensor& in = net.tensor(net.inputs()[0]);
  EASTRT_CHECK(in.shape.size() == 4 && in.shape[3] == 3, "the DB detector's input ", in.name,
               " must be NHWC with 3 channels, got ", to_string(in.shape));
  input_name_ = in.name;
  output_name_ = net.tensor(net.outputs()[0]).name;
}

Detection Detector::detect(const Image& image) {
  Detection detection;
  auto start = std::chrono::steady_clock::now();
  HostTensor input = db::preprocess(image, &detection.plan, options_.limit_side_len);
  detection.preprocess_ms = since(start);
  start = std::chrono::steady_clock::now();
  auto outputs = runner_->run({{input_name_, input}});
  detection.network_ms = since(start);
  start = std::chrono::steady_clock::now();
  detection.boxes = detect_boxes(outputs.at(output_name_), image.height, image.width, options_);
  detection.post_ms = since(start);
  return detection;
}

}  // namespace eastrt::db
