// CPU benchmark of the EAST network in FP32 (not a test): median of repeated runs after a warm-up, on a
// seeded random image; prints a table and appends one JSON line per configuration to bench/results/.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/run_record.h"

using namespace eastrt;


int main(int argc, char** argv) {
  int iterations = 5, height = 672, width = 1280;
  std::string results = std::string(EASTRT_SOURCE_DIR) + "/bench/results/cpu.jsonl";
  std::vector<int> thread_counts{1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) iterations = std::stoi(argv[++i]);
    else if (a == "--size" && i + 2 < argc) { height = std::stoi(argv[++i]); width = std::stoi(argv[++i]); }
    else if (a == "--threads" && i + 1 < argc) thread_counts = {std::stoi(argv[++i])};
    else if (a == "--results" && i + 1 < argc) results = argv[++i];
    else {
      std::cerr << "usage: bench_cpu [--iterations N] [--size H W] [--threads N] [--results FILE.jsonl]\n";
      return 2;
    }
  }
  east::NetworkOptions options{1, height, width, 1};
  Network network = east::build(east::random_weights(options, 1), options);
  HostTensor image({1, height, width, 3});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(0, 255);
  for (float& v : image.data) v = pixel(rng);

  std::string cpu = cpu_name();
  std::string commit = git_commit(EASTRT_SOURCE_DIR);
  // Other work on the machine slows the figures; the load average is recorded with them.
  std::printf("EAST FP32 on the CPU, %dx%d, %s, load average %s\n", height, width, cpu.c_str(),
              load_average().c_str());
  std::printf("%-10s %-8s %12s %12s %10s\n", "engine", "threads", "median ms", "min ms", "images/s");
  std::ofstream out(results, std::ios::app);
  for (int threads : thread_counts) {
    CpuEngine engine(network, {threads, false});
    engine.run({{east::kInputName, image}});  // warm-up
    std::vector<double> times;
    for (int i = 0; i < iterations; ++i) {
      auto start = std::chrono::steady_clock::now();
      engine.run({{east::kInputName, image}});
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    std::printf("%-10s %-8d %12.1f %12.1f %10.3f\n", "eastrt", engine.threads(), median, times.front(), 1000 / median);
    nlohmann::json line{{"date", utc_timestamp()}, {"commit", commit}, {"cpu", cpu}, {"tool", "eastrt"},
                        {"engine", "cpu"}, {"precision", "fp32"}, {"batch", 1}, {"height", height},
                        {"width", width}, {"threads", engine.threads()}, {"iterations", iterations},
                        {"median_ms", median}, {"min_ms", times.front()}, {"images_per_s", 1000 / median},
                        {"load_average", load_average()}};
    out << line.dump() << "\n";
  }
  std::printf("appended to %s\n", results.c_str());
  return 0;
}
