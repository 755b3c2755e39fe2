// `eastrt build`: builds a GPU engine for a network on this GPU (passes, precision, memory plan, tactics
// timed here) and writes it as a plan file that `eastrt bench --plan` (and any program) loads.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "args.h"
#include "calibration_flags.h"
#include "command.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "model_loader.h"

namespace eastrt::tool {

// "-o FILE" is the usual spelling for an output; the shared parser knows only long flags.
std::vector<std::string> with_long_output_flag(std::vector<std::string> argv) {
  for (std::string& a : argv)
    if (a == "-o") a = "--output";
  return argv;
}

// --layer-precision NAME=P[,NAME=P...]
std::map<std::string, Precision> parse_layer_precisions(const std::string& text) {
  std::map<std::string, Precision> result;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.rfind('=');
    EASTRT_CHECK(eq != std::string::npos && eq > 0, "--layer-precision expects NAME=PRECISION[,...], got '", item, "'");
    result[item.substr(0, eq)] = parse_precision(item.substr(eq + 1));
  }
  return result;
}

namespace {

// INT8/FP8: the calibration cache the engine is built with: --calib-cache when the file exists (checked
// against the model), or null when --calib is to make one; an Error naming the flags when there is neither.
std::shared_ptr<const quant::CalibrationCache> existing_calibration(const Args& args, const LoadedModel& model,
                                                                    quant::QuantType precision) {
  const std::string path = args.get("--calib-cache");
  const bool exists = !path.empty() && std::ifstream(path).good();
  EASTRT_CHECK(exists || args.has("--calib"), "--precision ", quant::to_string(precision), " needs a calibration: give ",
               path.empty() ? "--calib DIR (images to calibrate on) or --calib-cache FILE (made by eastrt calibrate)"
                            : "--calib DIR to make " + path + " (it does not exist), or make it with eastrt calibrate");
  if (exists) {
    auto cache = std::make_shared<quant::CalibrationCache>(quant::read_cache(path));
    quant::check_cache_matches(*cache, path, model.network, precision);
    std::cout << "calibration cache " << path << ": " << cache->tensors.size() << " tensors, "
              << quant::to_string(cache->calibrator) << ", " << cache->images << " images, "
              << cache->keep_high_precision.size() << " layers kept in high precision\n";
    if (args.has("--calib"))
      std::cout << "(the cache exists, so --calib was not run; remove " << path << " to calibrate again)\n";
    return cache;
  }
  return nullptr;
}

// Else made from --calib (and written to --calib-cache when given).
std::shared_ptr<const quant::CalibrationCache> new_calibration(const Args& args, const LoadedModel& model,
                                                               quant::QuantType precision) {
  const std::string path = args.get("--calib-cache");
  const CalibrationOutcome outcome = calibrate_from_flags(args, model, precision);
  print_ranges(std::cout, outcome);
  if (!path.empty()) {
    quant::write_cache(path, outcome.cache);
    std::cout << "wrote calibration cache " << path << "\n";
  }
  return std::make_shared<quant::CalibrationCache>(outcome.cache);
}

int build(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt build (--builtin east | --model FILE) --precision fp32|tf32|fp16\n"
                        "                    --max-batch N [options] -o PLAN\n\n"
                        "Builds a GPU engine on this GPU and writes its plan: the graph passes (batch norm\n"
                        "folding, activation and residual fusion), one precision with per-layer overrides, the\n"
                        "activation memory plan and, for every convolution, the fastest correct tactic timed\n"
                        "here. A plan runs only on the GPU model it was built on.\n\n") +
                kModelFlagsHelp +
                "  --precision P         fp32 (strict, no TF32), tf32, fp16, int8 or fp8 (default fp32); int8\n"
                "                        and fp8 quantise the convolutions with a calibration cache, the\n"
                "                        other layers and the cache's kept layers run in fp16\n"
                "  --calib-cache FILE    int8/fp8: the calibration cache to use, or to write from --calib\n"
                "                        (without one, --calib DIR calibrates in memory)\n" +
                std::string(kCalibrationFlagsHelp) +
                "  --max-batch N         the largest batch the engine runs (default: the input's)\n"
                "  --workspace MB        the most workspace one convolution tactic may use (default 256)\n"
                "  --layer-precision L=P[,L=P...]  per-layer precision, by layer name\n"
                "  --all-8bit            int8/fp8: every convolution the cache and the 8-bit kernel allow in 8 bits,\n"
                "                        even where it times slower than FP16 (default: those stay in FP16, and\n"
                "                        the engine is FP16's where that runs faster whole)\n"
                "  --no-8bit-upsampling  int8/fp8: without FP16's upsampling pass (the network as calibrated)\n"
                "  --heuristic           take cuDNN's heuristic choice instead of timing the tactics\n"
                "  --no-cudnn-graph      leave cuDNN's graph API configurations (INT8's 8-bit graphs too) out of\n"
                "                        the tactics timed\n"
                "  --parallel-branches   independent convolutions on a second stream (default: one stream)\n"
                "  --no-wgmma            leave our Hopper wgmma kernels out of the tactics timed\n"
                "  --timing-cache FILE   reuse the tactics timed by earlier builds on this GPU model (and\n"
                "                        cuDNN and eastrt version) from FILE, time the rest and add them;\n"
                "                        a FILE that is not a valid cache is an error (delete it to start over)\n"
                "  --verbose             every tactic tried, with its time, on stderr\n"
                "  --json                the engine's summary as JSON\n"
                "  -o, --output PLAN     the plan file to write\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--precision", "--max-batch", "--workspace",
             "--layer-precision", "--output", "--timing-cache", "--calib-cache", "--calib", "--calibrator", "--percentile", "--images",
             "--batch", "--size", "--threads"},
            {"--heuristic", "--verbose", "--json", "--allow-held-out", "--all-8bit", "--no-8bit-upsampling", "--no-cudnn-graph",
             "--parallel-branches", "--no-wgmma"});
  if (!args.parse(with_long_output_flag(argv))) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");
  EASTRT_CHECK(args.has("--output"), "no plan file: give -o PLAN");
  BuildOptions options;
  options.precision = parse_precision(args.get("--precision", "fp32"));
  const bool quantized = is_quantized(options.precision);
  LoadedModel model = load_model(args);
  // An existing cache is checked before anything else (cheap); calibrating waits until there is a GPU.
  if (quantized) options.calibration = existing_calibration(args, model, quant_type(options.precision));
  const GpuInfo gpu = query_gpu();
  EASTRT_CHECK(gpu.available, "no usable GPU (", gpu.reason, "): a plan is built on the GPU it will run on");
  if (quantized && !options.calibration) options.calibration = new_calibration(args, model, quant_type(options.precision));
  const Tensor& input = model.network.tensor(model.network.inputs().at(0));
  options.max_batch = args.get_int("--max-batch", static_cast<int>(input.shape.at(0)));
  const int workspace_mb = args.get_int("--workspace", 256);
  EASTRT_CHECK(workspace_mb >= 0, "--workspace must be at least 0 MB");
  options.workspace_bytes = static_cast<size_t>(workspace_mb) << 20;
  options.layer_precisions = parse_layer_precisions(args.get("--layer-precision"));
  options.time_tactics = !args.has("--heuristic");
  options.keep_faster_fp16 = !args.has("--all-8bit");
  options.upsample_8bit = !args.has("--no-8bit-upsampling");
  options.cudnn_graph = !args.has("--no-cudnn-graph");
  options.parallel_branches = args.has("--parallel-branches");
  options.wgmma = !args.has("--no-wgmma");
  options.verbose = args.has("--verbose");
  options.timing_cache = args.get("--timing-cache");

  const auto start = std::chrono::steady_clock::now();
  Builder builder(std::move(model.network), options);
  std::unique_ptr<Engine> engine = builder.build();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string path = args.get("--output");
  engine->save(path);
  const EngineInfo info = engine->inspect();
  std::ifstream written(path, std::ios::binary | std::ios::ate);
  const auto plan_bytes = static_cast<int64_t>(written.tellg());

  if (args.has("--json")) {
    nlohmann::json out;
    out["model"] = model.description;
    out["plan"] = path;
    out["plan_bytes"] = plan_bytes;
    out["build_s"] = seconds;
    out["gpu"] = info.gpu_name;
    out["precision"] = to_string(info.precision);
    if (!info.model_fingerprint.empty()) out["calibration"] = {{"model", info.model_fingerprint}, {"calibrator", info.calibrator}};
    out["max_batch"] = info.max_batch;
    out["layers"] = info.layers.size();
    out["passes"] = info.passes;
    out["weight_bytes"] = info.weight_bytes;
    out["activation_bytes"] = info.activation_bytes;
    out["workspace_bytes"] = info.workspace_bytes;
    out["convolutions_timed"] = builder.stats().convolutions_timed;
    out["convolutions_from_cache"] = builder.stats().convolutions_from_cache;
    for (const EngineLayerInfo& l : info.layers)
      out["layer_list"].push_back({{"name", l.name}, {"kind", l.kind}, {"precision", l.precision},
                                   {"tactic", l.tactic}, {"tactic_ms", l.tactic_ms}, {"shape", l.output_shape},
                                   {"note", l.note}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (!options.timing_cache.empty())
    std::cout << "timing cache " << options.timing_cache << ": " << builder.stats().convolutions_from_cache
              << " convolutions reused, " << builder.stats().convolutions_timed << " timed\n";
  std::cout << model.description << "\n" << to_text(info) << "built in " << seconds << " s; wrote " << path << " ("
            << plan_bytes << " bytes)\n";
  return 0;
}

RegisterCommand registration("build", "build a GPU engine on this GPU and write its plan file", build);

}  // namespace
}  // namespace eastrt::tool
