// `eastrt run`: runs a network once (or a few times) on the CPU engine with a seeded random image and
// reports the time and what came out — the smoke test of an engine without a detector around it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/error.h"
#include "model_loader.h"

namespace eastrt::tool {
namespace {

int run(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt run (--builtin east | --model FILE) [options]\n\n"
                        "Runs the network on the CPU engine with a seeded random RGB image (values 0..255)\n"
                        "and prints the time and a summary of each output.\n\n") +
                kModelFlagsHelp +
                "  --threads N           CPU threads (default: all)\n"
                "  --iterations N        timed runs after one warm-up (default 1)\n"
                "  --seed S              seed of the input image (default 7)\n"
                "  --naive               use the naive reference kernels (slow; the oracle)\n"
                "  --json                machine-readable result\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--threads", "--iterations", "--seed"},
            {"--naive", "--json"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");
  LoadedModel model = load_model(args);
  const int iterations = args.get_int("--iterations", 1);
  EASTRT_CHECK(iterations >= 1, "--iterations must be at least 1");

  const Tensor& input = model.network.tensor(model.network.inputs().at(0));
  HostTensor image(input.shape);
  std::mt19937 rng(static_cast<uint32_t>(args.get_int("--seed", 7)));
  std::uniform_real_distribution<float> pixel(0.0f, 255.0f);
  for (float& v : image.data) v = pixel(rng);
  std::string input_name = input.name;

  CpuEngine engine(std::move(model.network), {args.get_int("--threads", 0), args.has("--naive")});
  std::map<std::string, HostTensor> outputs;
  std::vector<double> times;
  for (int i = 0; i < iterations + (iterations > 1 ? 1 : 0); ++i) {
    auto start = std::chrono::steady_clock::now();
    outputs = engine.run({{input_name, image}});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (iterations == 1 || i > 0) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];

  nlohmann::json out;
  out["model"] = model.description;
  out["engine"] = args.has("--naive") ? "cpu-naive" : "cpu";
  out["threads"] = engine.threads();
  out["input"] = {{"name", input_name}, {"shape", image.shape}};
  out["median_ms"] = median;
  for (const auto& [name, tensor] : outputs) {
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    bool finite = true;
    for (float v : tensor.data) {
      finite = finite && std::isfinite(v);
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
      sum += v;
    }
    out["outputs"].push_back({{"name", name}, {"shape", tensor.shape}, {"min", lo}, {"max", hi},
                              {"mean", sum / tensor.size()}, {"finite", finite}});
  }
  if (args.has("--json")) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << model.description << "\nengine: " << out["engine"].get<std::string>() << ", " << engine.threads()
            << " threads\ninput " << input_name << " " << to_string(image.shape) << " (NHWC, random pixels)\n"
            << "time: " << median << " ms" << (iterations > 1 ? " (median of " + std::to_string(iterations) + ")" : "")
            << "\n";
  for (const auto& o : out["outputs"])
    std::printf("output %s %s: min %.4g max %.4g mean %.4g%s\n", o["name"].get<std::string>().c_str(),
                to_string(o["shape"].get<Shape>()).c_str(), o["min"].get<double>(), o["max"].get<double>(),
                o["mean"].get<double>(), o["finite"].get<bool>() ? "" : "  NOT FINITE");
  return 0;
}

RegisterCommand registration("run", "run a network on the CPU engine with a random image and time it", run);

}  // namespace
}  // namespace eastrt::tool
