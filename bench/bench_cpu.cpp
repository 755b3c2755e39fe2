// CPU benchmark of the EAST network in FP32 (not a test): median of repeated runs after a warm-up, on a
// seeded random image; prints a table and appends one JSON line per configuration to bench/results/.
// With --pb FILE the same frozen TensorFlow graph runs on eastrt and, where installed, on OpenCV's DNN
// module (the peer), one after the other on the same input.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/run_record.h"
#include "eastrt/tf_import.h"

#ifdef EASTRT_HAVE_OPENCV
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>
#endif

using namespace eastrt;


namespace {

// Median and minimum of `iterations` timed calls after one warm-up call.
std::pair<double, double> time_runs(const std::function<void()>& run, int iterations) {
  run();
  std::vector<double> times;
  for (int i = 0; i < iterations; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 5, height = 672, width = 1280;
  std::string results = std::string(EASTRT_SOURCE_DIR) + "/bench/results/cpu.jsonl", pb;
  std::vector<int> thread_counts{1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) iterations = std::stoi(argv[++i]);
    else if (a == "--size" && i + 2 < argc) { height = std::stoi(argv[++i]); width = std::stoi(argv[++i]); }
    else if (a == "--threads" && i + 1 < argc) thread_counts = {std::stoi(argv[++i])};
    else if (a == "--results" && i + 1 < argc) results = argv[++i];
    else if (a == "--pb" && i + 1 < argc) pb = argv[++i];
    else {
      std::cerr << "usage: bench_cpu [--iterations N] [--size H W] [--threads N] [--pb FROZEN.pb] [--results FILE.jsonl]\n";
      return 2;
    }
  }
  HostTensor image({1, height, width, 3});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(0, 255);
  for (float& v : image.data) v = pixel(rng);

  const std::string cpu = cpu_name(), commit = git_commit(EASTRT_SOURCE_DIR);
  // Other work on the machine slows the figures; the load average is recorded with them.
  std::printf("EAST FP32 on the CPU, %dx%d, %s, load average %s\n", height, width, cpu.c_str(),
              load_average().c_str());
  std::printf("%-12s %-34s %-8s %12s %12s %10s\n", "tool", "model", "threads", "median ms", "min ms", "images/s");
  std::ofstream out(results, std::ios::app);
  auto record = [&](const std::string& tool, const std::string& model, int threads, std::pair<double, double> t) {
    std::printf("%-12s %-34s %-8d %12.1f %12.1f %10.3f\n", tool.c_str(), model.c_str(), threads, t.first, t.second,
                1000 / t.first);
    nlohmann::json line{{"date", utc_timestamp()}, {"commit", commit}, {"cpu", cpu}, {"tool", tool},
                        {"model", model}, {"engine", "cpu"}, {"precision", "fp32"}, {"batch", 1},
                        {"height", height}, {"width", width}, {"threads", threads}, {"iterations", iterations},
                        {"median_ms", t.first}, {"min_ms", t.second}, {"images_per_s", 1000 / t.first},
                        {"load_average", load_average()}};
    out << line.dump() << "\n";
  };

  east::NetworkOptions options{1, height, width, 1};
  Network builtin = east::build(east::random_weights(options, 1), options);
  for (int threads : thread_counts) {
    CpuEngine engine(builtin, {threads, false});
    record("eastrt", "east (built-in, full width)", engine.threads(),
           time_runs([&] { engine.run({{east::kInputName, image}}); }, iterations));
  }
  if (!pb.empty()) {
    const int threads = thread_counts.back();
    CpuEngine engine(tf_to_network(TfGraph::load(pb), {{east::kScoreOutput, east::kGeometryOutput},
                                                       {{east::kInputName, image.shape}}}),
                     {threads, false});
    const std::string name = std::filesystem::path(pb).filename().string();
    record("eastrt", name, engine.threads(), time_runs([&] { engine.run({{east::kInputName, image}}); }, iterations));
#ifdef EASTRT_HAVE_OPENCV
    cv::setNumThreads(threads);
    cv::dnn::Net net = cv::dnn::readNetFromTensorflow(pb);
    int dims[] = {1, 3, height, width};
    cv::Mat blob(4, dims, CV_32F);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) blob.ptr<float>(0, c, y)[x] = image.data[(size_t(y) * width + x) * 3 + c];
    std::vector<cv::Mat> outs;
    record("opencv-dnn-" CV_VERSION, name, threads, time_runs([&] {
             net.setInput(blob);
             net.forward(outs, std::vector<cv::String>{east::kScoreOutput, east::kGeometryOutput});
           }, iterations));
#else
    std::printf("(OpenCV's DNN module is not installed: no peer figure)\n");
#endif
  }
  std::printf("appended to %s\n", results.c_str());
  return 0;
}
