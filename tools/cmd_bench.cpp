// `eastrt bench`: times a GPU engine (built here from a model, or loaded from a plan) by CUDA events on a
// seeded random batch: median, p90 and p99 of the device time per batch, images per second, device memory;
// prints a table or a JSON line and appends the JSON line to a results file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/run_record.h"
#include "eastrt/weights.h"
#include "model_loader.h"

namespace eastrt::tool {

// Shared with `eastrt build` (defined in tools/cmd_build.cpp).
std::map<std::string, Precision> parse_layer_precisions(const std::string& text);

namespace {

// The weights the benchmarked EAST uses, as a safetensors file with TF-slim names: a peer (PyTorch) loads
// them to run the very same network.
void save_weights(const Args& args, const std::string& path) {
  const Shape input = parse_shape(args.get("--input", "1x672x1280x3"));
  EASTRT_CHECK(input.size() == 4, "--input must be NxHxWx3");
  east::NetworkOptions options{input[0], input[1], input[2], args.get_int("--width-divisor", 1)};
  std::map<std::string, HostTensor> tensors;
  const std::string model = args.has("--model") ? args.get("--model") : args.has("--builtin") ? "" : bundled_model();
  if (!model.empty()) {
    SafetensorsReader reader(model);
    for (const std::string& name : reader.names()) tensors[name] = reader.get(name);
  } else {
    const InMemoryWeights weights = east::random_weights(options, 1);  // what load_model builds
    for (const std::string& name : weights.names()) tensors[name] = weights.get(name);
  }
  write_safetensors(path, tensors);
}

// Per-layer device times, slowest first, with the share of the whole, the rates the step reached (its least
// traffic and its arithmetic over its time: what bench/roofline.py sets against the card's peaks) and the
// tactic; kinds summed below.
void print_profile(const Args& args, const EngineInfo& info, ExecutionContext& context, int batch, int warmup,
                   int iterations) {
  const std::vector<double> ms = context.profile_steps(warmup, std::min(iterations, 50));
  double total = 0;
  for (double m : ms) total += m;
  std::vector<size_t> order(ms.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ms[a] > ms[b]; });
  nlohmann::json layers = nlohmann::json::array();
  std::map<std::string, double> by_kind;
  std::vector<double> bytes(ms.size()), flop(ms.size());
  for (size_t i = 0; i < ms.size(); ++i) {
    const EngineLayerInfo& l = info.layers[i];
    by_kind[l.kind] += ms[i];
    bytes[i] = double(l.activation_bytes_per_image) * batch + double(l.weight_bytes);
    flop[i] = 2.0 * double(l.macs_per_image) * batch;
    layers.push_back({{"name", l.name}, {"kind", l.kind}, {"precision", l.precision}, {"tactic", l.tactic},
                      {"ms", ms[i]}, {"built_ms", l.tactic_ms}, {"output", to_string(l.output_shape)},
                      {"bytes", bytes[i]}, {"flop", flop[i]}});
  }
  if (args.has("--profile-json")) {
    std::ofstream out(args.get("--profile-json"));
    EASTRT_CHECK(out.good(), "cannot write ", args.get("--profile-json"));
    out << nlohmann::json{{"total_ms", total}, {"batch", batch}, {"layers", layers}}.dump(1) << "\n";
  }
  if (!args.has("--profile")) return;
  std::printf("\nper-layer device time (eager launches, median of %d): %.3f ms in all\n", std::min(iterations, 50),
              total);
  std::printf("%8s %6s %6s %7s  %-44s %-14s %-5s %s\n", "ms", "share", "TB/s", "TFLOP/s", "layer", "kind", "prec",
              "tactic");
  for (size_t i : order) {
    const EngineLayerInfo& l = info.layers[i];
    const double seconds = std::max(ms[i], 1e-6) / 1000;
    std::printf("%8.4f %5.1f%% %6.2f %7.1f  %-44.44s %-14.14s %-5s %s\n", ms[i], 100 * ms[i] / total,
                bytes[i] / seconds / 1e12, flop[i] / seconds / 1e12, l.name.c_str(), l.kind.c_str(),
                l.precision.c_str(), l.tactic.c_str());
  }
  std::printf("by kind:");
  for (const auto& [kind, m] : by_kind) std::printf("  %s %.3f ms", kind.c_str(), m);
  std::printf("\n");
}

int bench(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt bench (--builtin east | --model FILE | --plan PLAN) [options]\n\n"
                        "Times the GPU engine on a seeded random batch (pixels 0..255) with CUDA events: the\n"
                        "median, p90 and p99 device time of one batch, images per second and device memory.\n"
                        "Appends a JSON line (date, commit, gpu, tool, precision, batch, height, width,\n"
                        "median_ms, images_per_s, ...) to --results.\n\n") +
                kModelFlagsHelp +
                "  --plan PLAN           a plan from `eastrt build` instead of building here\n"
                "  --precision P         fp32, tf32, fp16, int8 or fp8 when building (default fp32)\n"
                "  --calib-cache FILE    int8/fp8: the calibration cache (made by eastrt calibrate; default for the\n"
                "                        bundled model: models/east.int8.cache / east.fp8.cache shipped beside it)\n"
                "  --batch N             images per batch (default 1)\n"
                "  --max-batch N         the engine's largest batch when building (default --batch)\n"
                "  --workspace MB        tactic workspace limit when building (default 256)\n"
                "  --layer-precision L=P[,L=P...]  per-layer precision when building\n"
                "  --no-cudnn-graph      when building: leave cuDNN's graph API configurations (INT8's 8-bit\n"
                "                        graphs too) out of the tactics\n"
                "  --parallel-branches   when building: independent convolutions on a second stream (see build)\n"
                "  --no-wgmma            when building: leave our Hopper wgmma kernels out of the tactics\n"
                "  --all-8bit            int8/fp8: every convolution the cache and the 8-bit kernel allow in 8\n"
                "                        bits, even where FP16 times faster (default: those stay in FP16, and\n"
                "                        the engine is FP16's where that runs faster whole)\n"
                "  --no-8bit-upsampling  int8/fp8: without FP16's upsampling pass (the network as calibrated)\n"
                "  --timing-cache FILE   when building: reuse and extend this tactic timing cache (see build)\n"
                "  --iterations N        timed batches (default 100)\n"
                "  --warmup N            untimed batches first (default 10)\n"
                "  --cuda-graph          replay a captured CUDA graph instead of launching each step\n"
                "  --save-plan PLAN      also write the plan built here\n"
                "  --save-weights FILE   write the network's weights (safetensors, TF-slim names) first\n"
                "  --profile             also time every step (eager launches, events between steps) and print\n"
                "                        each layer's median time with its tactic, slowest first\n"
                "  --profile-json FILE   write that per-layer profile as JSON\n"
                "  --results FILE        append the JSON line here (default: none)\n"
                "  --json                print only the JSON line\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--plan", "--precision", "--batch", "--max-batch",
             "--workspace", "--layer-precision", "--timing-cache", "--iterations", "--warmup", "--save-plan", "--save-weights",
             "--results", "--profile-json", "--calib-cache"},
            {"--cuda-graph", "--json", "--profile", "--all-8bit", "--no-8bit-upsampling", "--no-cudnn-graph", "--parallel-branches", "--no-wgmma"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");
  if (args.has("--save-weights")) save_weights(args, args.get("--save-weights"));
  const std::string calibration_cache =
      args.has("--plan") ? "" : calibration_cache_for(args, parse_precision(args.get("--precision", "fp32")));
  const GpuInfo gpu = query_gpu();
  EASTRT_CHECK(gpu.available, "no usable GPU (", gpu.reason, "): eastrt bench times the GPU engine");

  const int batch = args.get_int("--batch", 1);
  const int iterations = args.get_int("--iterations", 100);
  const int warmup = args.get_int("--warmup", 10);
  EASTRT_CHECK(batch >= 1 && iterations >= 1 && warmup >= 0, "--batch and --iterations must be at least 1");
  const int64_t memory_before = gpu_memory_used();
  std::unique_ptr<Engine> engine;
  std::string model_description;
  double build_s = 0;
  if (args.has("--plan")) {
    EASTRT_CHECK(!args.has("--builtin") && !args.has("--model"), "give either --plan or a model, not both");
    EASTRT_CHECK(!args.has("--timing-cache"), "--timing-cache is for building; a --plan has its tactics already");
    engine = Engine::load(args.get("--plan"));
    model_description = "plan " + args.get("--plan");
    if (args.has("--precision"))
      EASTRT_CHECK(parse_precision(args.get("--precision")) == engine->precision(), "plan ", args.get("--plan"),
                   " is ", to_string(engine->precision()), ", not ", args.get("--precision"));
  } else {
    LoadedModel model = load_model(args);
    model_description = model.description;
    BuildOptions options;
    options.precision = parse_precision(args.get("--precision", "fp32"));
    options.max_batch = args.get_int("--max-batch", batch);
    const int workspace_mb = args.get_int("--workspace", 256);
    EASTRT_CHECK(workspace_mb >= 0, "--workspace must be at least 0 MB");
    options.workspace_bytes = static_cast<size_t>(workspace_mb) << 20;
    options.layer_precisions = parse_layer_precisions(args.get("--layer-precision"));
    options.timing_cache = args.get("--timing-cache");
    options.calibration_cache = calibration_cache;
    options.keep_faster_fp16 = !args.has("--all-8bit");
    options.upsample_8bit = !args.has("--no-8bit-upsampling");
    options.cudnn_graph = !args.has("--no-cudnn-graph");
    options.parallel_branches = args.has("--parallel-branches");
    options.wgmma = !args.has("--no-wgmma");
    const auto start = std::chrono::steady_clock::now();
    engine = Builder(std::move(model.network), options).build();
    build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (args.has("--save-plan")) engine->save(args.get("--save-plan"));
  }
  EASTRT_CHECK(batch <= engine->max_batch(), "--batch ", batch, " is above the engine's largest batch ",
               engine->max_batch());
  const EngineInfo info = engine->inspect();
  std::unique_ptr<ExecutionContext> context = engine->create_context();
  const int64_t memory_after = gpu_memory_used();

  // A seeded random batch, not zeros: timing on zeros can flatter kernels.
  const auto& [input_name, input_shape] = info.inputs.at(0);
  Shape shape = input_shape;
  shape[0] = batch;
  HostTensor image(shape);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(0.0f, 255.0f);
  for (float& v : image.data) v = pixel(rng);
  context->set_input(input_name, image);
  context->set_cuda_graph(args.has("--cuda-graph"));
  const std::vector<double> ms = context->time_enqueue(warmup, iterations);
  context->fetch_outputs();
  context->synchronize();
  bool finite = true;
  for (const auto& [name, output_shape] : info.outputs)
    for (float v : context->output(name).data) finite = finite && std::isfinite(v);

  const double median = percentile(ms, 0.5);
  const auto side_stream_steps =
      std::count_if(info.layers.begin(), info.layers.end(), [](const EngineLayerInfo& l) { return l.side_stream; });
  nlohmann::json line{{"date", utc_timestamp()},
                      {"commit", build_commit()},
                      {"gpu", gpu.name},
                      {"tool", "eastrt"},
                      {"engine", "gpu"},
                      {"model", model_description},
                      {"precision", to_string(engine->precision())},
                      {"batch", batch},
                      {"height", shape.size() > 1 ? shape[1] : 0},
                      {"width", shape.size() > 2 ? shape[2] : 0},
                      {"cuda_graph", args.has("--cuda-graph")},
                      {"cudnn_graph_tactics", !args.has("--plan") && !args.has("--no-cudnn-graph")},
                      {"wgmma_tactics", !args.has("--plan") && !args.has("--no-wgmma")},
                      {"side_stream_steps", side_stream_steps},
                      {"iterations", iterations},
                      {"median_ms", median},
                      {"p90_ms", percentile(ms, 0.9)},
                      {"p99_ms", percentile(ms, 0.99)},
                      {"min_ms", percentile(ms, 0.0)},
                      {"images_per_s", 1000.0 * batch / median},
                      {"build_s", build_s},
                      {"weight_bytes", info.weight_bytes},
                      {"activation_bytes", info.activation_bytes},
                      {"workspace_bytes", info.workspace_bytes},
                      {"device_memory_bytes", memory_after - memory_before},
                      {"outputs_finite", finite}};
  if (is_quantized(engine->precision())) {
    int quantized = 0, faster_in_fp16 = 0;
    for (const EngineLayerInfo& l : info.layers) {
      quantized += l.kind == "Convolution" && is_quantized(parse_precision(l.precision));
      faster_in_fp16 += l.note.find("FP16 is faster") != std::string::npos;
    }
    line["all_8bit"] = args.has("--all-8bit");
    line["upsample_8bit"] = !args.has("--no-8bit-upsampling");
    if (args.has("--calib-cache")) line["calibration_cache"] = std::filesystem::path(args.get("--calib-cache")).filename().string();
    line["convolutions_8bit"] = quantized;
    line["convolutions_kept_faster_fp16"] = faster_in_fp16;
  }
  if (args.has("--results")) {
    std::ofstream out(args.get("--results"), std::ios::app);
    EASTRT_CHECK(out.good(), "cannot append to ", args.get("--results"));
    out << line.dump() << "\n";
  }
  if (args.has("--json")) {
    std::cout << line.dump() << "\n";
  } else {
    std::printf("%s on %s, %s, batch %d, %s\n", model_description.c_str(), gpu.name.c_str(),
                to_string(engine->precision()), batch, args.has("--cuda-graph") ? "CUDA graph" : "stream launches");
    std::printf("%-10s %10s %10s %10s %12s %14s\n", "precision", "median ms", "p90 ms", "p99 ms", "images/s",
                "device MiB");
    std::printf("%-10s %10.3f %10.3f %10.3f %12.1f %14.1f\n", to_string(engine->precision()), median,
                percentile(ms, 0.9), percentile(ms, 0.99), 1000.0 * batch / median,
                (memory_after - memory_before) / 1048576.0);
    std::printf("weights %.1f MiB, activations %.1f MiB, workspace %.1f MiB%s\n", info.weight_bytes / 1048576.0,
                info.activation_bytes / 1048576.0, info.workspace_bytes / 1048576.0,
                finite ? "" : "; OUTPUTS NOT FINITE");
  }
  if (args.has("--profile") || args.has("--profile-json")) print_profile(args, info, *context, batch, warmup, iterations);
  return finite ? 0 : 1;
}

RegisterCommand registration("bench", "time the GPU engine (median/p90/p99 by CUDA events, images/s, memory)", bench);

}  // namespace
}  // namespace eastrt::tool
