// Runners and the batched detector: a batch gives what one image at a time gives; the device and precision
// choices and their errors; on a GPU, per-size engines agree with the CPU engine (skipped without a GPU).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <string>

#include "eastrt/detector.h"
#include "eastrt/east.h"
#include "eastrt/gpu.h"
#include "eastrt/runner.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {


void expect_same_boxes(const east::Detection& a, const east::Detection& b) {
  EXPECT_EQ(a.plan.height, b.plan.height);
  EXPECT_EQ(a.plan.width, b.plan.width);
  ASSERT_EQ(a.boxes.size(), b.boxes.size());
  for (size_t i = 0; i < a.boxes.size(); ++i) {
    EXPECT_EQ(east::format_box(a.boxes[i]), east::format_box(b.boxes[i]));
    EXPECT_FLOAT_EQ(a.boxes[i].score, b.boxes[i].score);
  }
}

TEST(DetectorBatch, EqualsOneImageAtATime) {
  // Two sizes interleaved (70x100 → 64x96 network input, 100x70 → 96x64), three of the first.
  const std::vector<east::Image> images = {random_image(70, 100, 1), random_image(100, 70, 2),
                                           random_image(70, 100, 3), random_image(70, 100, 4)};
  east::Detector detector(small_east(), CpuOptions{2});
  size_t boxes = 0;
  for (const east::Image& image : images) boxes += detector.detect(image).boxes.size();
  EXPECT_GT(boxes, 0u) << "the comparison needs boxes to compare";
  for (int max_batch : {1, 2, 4}) {
    std::vector<east::Detection> batched = detector.detect_batch(images, max_batch);
    ASSERT_EQ(batched.size(), images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      SCOPED_TRACE("image " + std::to_string(i) + ", batches of " + std::to_string(max_batch));
      expect_same_boxes(batched[i], detector.detect(images[i]));
    }
  }
  EXPECT_TRUE(detector.detect_batch({}, 3).empty());
  EXPECT_NE(error_of([&] { detector.detect_batch(images, 0); }).find("at least one image"), std::string::npos);
}

TEST(Runner, DeviceAndPrecisionChoices) {
  EXPECT_FALSE(make_runner(small_east(), "cpu", Precision::kFp32)->on_gpu());
  EXPECT_NE(make_runner(small_east(), "cpu", Precision::kFp32)->description().find("CPU"), std::string::npos);
  EXPECT_NE(error_of([] { make_runner(small_east(), "cpu", Precision::kFp16); }).find("needs the GPU engine"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_runner(small_east(), "tpu", Precision::kFp32); }).find("unknown device 'tpu'"),
            std::string::npos);
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) {
    EXPECT_NE(error_of([] { make_runner(small_east(), "gpu", Precision::kFp16); }).find("no usable GPU"),
              std::string::npos);
    EXPECT_FALSE(make_runner(small_east(), "auto", Precision::kFp32)->on_gpu());
    EXPECT_NE(error_of([] { make_runner(small_east(), "auto", Precision::kFp16); }).find("no usable GPU"),
              std::string::npos);
  } else {
    EXPECT_TRUE(make_runner(small_east(), "auto", Precision::kFp16)->on_gpu());
    const std::string d = make_runner(small_east(), "gpu", Precision::kFp16)->description();
    EXPECT_NE(d.find("the GPU engine on " + gpu.name), std::string::npos) << d;
    EXPECT_NE(d.find("fp16"), std::string::npos) << d;
  }
}

// The tools' timing cache: the variable when set (empty: none), else the XDG cache folder, else ~/.cache.
TEST(Runner, DefaultTimingCacheFollowsTheEnvironment) {
  struct Saved {
    const char* name;
    std::optional<std::string> value;
  } saved[] = {{"EASTRT_TIMING_CACHE", {}}, {"XDG_CACHE_HOME", {}}, {"HOME", {}}};
  for (Saved& s : saved)
    if (const char* v = std::getenv(s.name)) s.value = v;
  setenv("EASTRT_TIMING_CACHE", "/tmp/mine.json", 1);
  EXPECT_EQ(default_timing_cache(), "/tmp/mine.json");
  setenv("EASTRT_TIMING_CACHE", "", 1);
  EXPECT_EQ(default_timing_cache(), "");
  unsetenv("EASTRT_TIMING_CACHE");
  setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(default_timing_cache(), "/tmp/xdg/eastrt/timing_cache.v2.json");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(default_timing_cache(), "/home/someone/.cache/eastrt/timing_cache.v2.json");
  unsetenv("HOME");
  EXPECT_EQ(default_timing_cache(), "");
  for (const Saved& s : saved) {
    if (s.value) setenv(s.name, s.value->c_str(), 1);
    else unsetenv(s.name);
  }
}

TEST(GpuRunner, EnginesPerSizeAgreeWithTheCpu) {
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) GTEST_SKIP() << "no usable GPU (" << gpu.reason << "): GPU test skipped";
  Network network = small_east();
  CpuEngine cpu(network, {2});
  GpuRunnerOptions options;
  options.build.max_batch = 2;
  options.build.time_tactics = false;  // cuDNN's heuristic tactics: the test is about engines per size
  options.max_engines = 2;
  auto runner = make_gpu_runner(network, options);
  std::mt19937 rng(9);
  // Three sizes with two engines kept: the first is rebuilt when it comes back.
  for (const Shape& shape : std::vector<Shape>{{1, 64, 96, 3}, {2, 96, 64, 3}, {1, 32, 160, 3}, {2, 64, 96, 3}}) {
    SCOPED_TRACE(to_string(shape));
    const std::map<std::string, HostTensor> inputs = {{east::kInputName, random_tensor(shape, rng, 0.0f, 255.0f)}};
    auto want = cpu.run(inputs);
    auto got = runner->run(inputs);
    for (const char* name : {east::kScoreOutput, east::kGeometryOutput}) {
      ASSERT_EQ(got.at(name).shape, want.at(name).shape);
      EXPECT_LE(relative_error(got.at(name), want.at(name)), 1e-4) << name;
    }
  }
  const std::map<std::string, HostTensor> too_many = {{east::kInputName, HostTensor({3, 64, 96, 3})}};
  EXPECT_NE(error_of([&] { runner->run(too_many); }).find("at most 2"), std::string::npos);
}

}  // namespace
}  // namespace eastrt
