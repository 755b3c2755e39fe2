// What many test files need: run the built tool, seeded random tensors and images, a small EAST, the GPU
// or a skip, and an Error's message.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"
#include "eastrt/tensor.h"

namespace eastrt::test_support {

struct ToolResult {
  int status;
  std::string output;
};

// Runs the built `eastrt` with the arguments; captures stdout (and stderr unless with_stderr is false).
inline ToolResult run_tool(const std::string& arguments, bool with_stderr = true) {
  std::string command = std::string(EASTRT_TOOL) + " " + arguments + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe.release());
  return {WEXITSTATUS(status), output};
}

inline HostTensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  HostTensor t(shape);
  for (float& v : t.data) v = dist(rng);
  return t;
}

// A random tensor for every input of `net`, by name.
inline std::map<std::string, HostTensor> random_inputs(const Network& net, std::mt19937& rng, float lo = -1.0f,
                                                       float hi = 1.0f) {
  std::map<std::string, HostTensor> inputs;
  for (int id : net.inputs()) inputs[net.tensor(id).name] = random_tensor(net.tensor(id).shape, rng, lo, hi);
  return inputs;
}

inline Weights random_weights(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  return std::make_shared<const HostTensor>(random_tensor(shape, rng, lo, hi));
}

// ‖got − want‖₂ / ‖want‖₂; a NaN or a shape mismatch is infinitely wrong.
inline double relative_error(const HostTensor& got, const HostTensor& want) {
  if (got.shape != want.shape || got.size() != want.size()) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got.data[i]) - want.data[i];
    if (std::isnan(d)) return INFINITY;
    diff += d * d;
    norm += static_cast<double>(want.data[i]) * want.data[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// The message of the Error f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// EAST at 1/8 of its width, seeded random weights, 64x96 (runs at any size).
inline Network small_east() {
  east::NetworkOptions options{1, 64, 96, 8};
  return east::build(east::random_weights(options, 5), options);
}

inline east::Image random_image(int height, int width, uint32_t seed) {
  std::mt19937 rng(seed);
  east::Image image{width, height, std::vector<uint8_t>(size_t(width) * height * 3)};
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

// The bounds for a GPU kernel against the CPU reference (relative error), by precision.
inline double tolerance(Precision p) {
  switch (p) {
    case Precision::kFp32: return 1e-5;
    case Precision::kTf32: return 1e-3;
    case Precision::kFp16: return 1e-2;
    case Precision::kInt8:  // against FakeQuantEngine, the fake-quantised CPU (not against FP32)
    case Precision::kFp8: return 1e-2;
  }
  return 0;
}

inline constexpr Precision kPrecisions[] = {Precision::kFp32, Precision::kTf32, Precision::kFp16};

inline int64_t nan_count(const HostTensor& t) {
  return std::count_if(t.data.begin(), t.data.end(), [](float v) { return std::isnan(v); });
}

// A GPU runner of small_east for batches of 3 on 3 streams, `count` random images of four sizes, and pipeline
// options under which two runs compose the same batches (images queued together, one decoding thread,
// batches that leave only when full or at the end): what the GPU-side comparisons of whole runs share.
inline std::unique_ptr<Runner> three_stream_runner() {
  GpuRunnerOptions gpu;
  gpu.build.max_batch = 3;
  gpu.build.time_tactics = false;  // the engines' tactics are not what these runs compare: builds in ~1 s
  gpu.slots = 3;
  return make_gpu_runner(small_east(), gpu);
}
inline std::vector<east::Image> mixed_size_images(int count, uint32_t seed) {
  const std::pair<int, int> sizes[] = {{70, 100}, {100, 70}, {64, 64}, {130, 97}};
  std::vector<east::Image> images;
  for (int i = 0; i < count; ++i) images.push_back(random_image(sizes[i % 4].first, sizes[i % 4].second, seed + i));
  return images;
}
inline east::PipelineOptions same_batches_options() {
  east::PipelineOptions options;
  options.max_batch = 3;
  options.workers = 1;
  options.max_delay_ms = 60000;
  return options;
}

// `images` through a pipeline on `runner` with `options`, named by their index; the results in order.
inline std::vector<east::PipelineResult> run_pipeline(Runner& runner, const east::PipelineOptions& options,
                                                      const std::vector<east::Image>& images) {
  east::Pipeline pipeline(runner, options);
  std::vector<std::string> names;
  for (size_t i = 0; i < images.size(); ++i) names.push_back(std::to_string(i));
  std::vector<std::future<east::PipelineResult>> futures = pipeline.submit_images(images, names);
  std::vector<east::PipelineResult> results;
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

// Two runs over the same images found the same boxes (as result files write them) with the same scores;
// returns how many boxes were compared.
inline size_t expect_same_boxes(const std::vector<east::PipelineResult>& got, const std::vector<east::PipelineResult>& want) {
  EXPECT_EQ(got.size(), want.size());
  size_t boxes = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    SCOPED_TRACE("image " + std::to_string(i));
    EXPECT_TRUE(got[i].ok()) << got[i].error;
    EXPECT_TRUE(want[i].ok()) << want[i].error;
    EXPECT_EQ(got[i].batch, want[i].batch);
    const auto &g = got[i].detection.boxes, &w = want[i].detection.boxes;
    EXPECT_EQ(g.size(), w.size());
    if (g.size() != w.size()) {
      std::string lists = "got:\n";
      for (const auto& box : g) lists += "  " + east::format_box(box) + " " + std::to_string(box.score) + "\n";
      lists += "want:\n";
      for (const auto& box : w) lists += "  " + east::format_box(box) + " " + std::to_string(box.score) + "\n";
      ADD_FAILURE() << lists;
      continue;
    }
    boxes += w.size();
    for (size_t k = 0; k < w.size(); ++k) {
      EXPECT_EQ(east::format_box(g[k]), east::format_box(w[k]));
      EXPECT_FLOAT_EQ(g[k].score, w[k].score);
    }
  }
  return boxes;
}

// The GPU this process sees, queried once.
inline const GpuInfo& the_gpu() {
  static const GpuInfo info = query_gpu();
  return info;
}

}  // namespace eastrt::test_support

// Skips a GPU test, saying why, where there is no usable GPU.
#define REQUIRE_GPU()                                                                                   \
  do {                                                                                                  \
    if (!::eastrt::test_support::the_gpu().available)                                                   \
      GTEST_SKIP() << "no usable GPU (" << ::eastrt::test_support::the_gpu().reason << "): GPU test skipped"; \
  } while (0)
