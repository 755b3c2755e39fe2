// `eastrt convert`: partial conversion of a frozen TensorFlow graph, as TF-TRT reports it — node counts
// before and after, the segments — and optionally one run of the segmented graph on a random input.
#include <cmath>
#include <iostream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/error.h"
#include "eastrt/tf_import.h"

namespace eastrt::tool {
namespace {


// "--input 1x64x64x3" for the only placeholder, or "--input a=1x64x64x3,b=1x8".
std::map<std::string, Shape> input_shapes(const std::string& text, const TfGraph& graph) {
  std::map<std::string, Shape> shapes;
  for (const std::string& item : split_list(text)) {
    size_t eq = item.find('=');
    if (eq == std::string::npos) {
      std::vector<std::string> names = graph.placeholders();
      EASTRT_CHECK(names.size() == 1, "--input ", item, ": the graph has ", names.size(),
                   " placeholders; name the one meant (--input NAME=SHAPE)");
      shapes[names[0]] = parse_shape(item);
    } else {
      shapes[item.substr(0, eq)] = parse_shape(item.substr(eq + 1));
    }
  }
  return shapes;
}

int convert(const std::vector<std::string>& argv) {
  Args args("usage: eastrt convert MODEL.pb --outputs A,B [--min-segment-size N] [--json] [--run]\n\n"
            "Groups the convertible nodes of a frozen GraphDef into segments (TF-TRT's rule: connected, no cycle\n"
            "after contraction); segments of at least N nodes become networks, the other nodes run on the\n"
            "fallback executor. Prints the node counts before and after and the segment sizes.\n\n"
            "  --outputs A,B           output nodes or tensors (node:1); default: the nodes nothing reads\n"
            "  --min-segment-size N    smallest segment converted (default 3)\n"
            "  --input SHAPE           shape of the only placeholder, or NAME=SHAPE,... (needed by --run where the\n"
            "                          graph leaves dimensions unknown; default 1x672x1280x3 for NHWC images)\n"
            "  --run                   run once on a seeded random input (values 0..255) and summarise the outputs\n"
            "  --seed S                seed of that input (default 7)\n"
            "  --json                  machine-readable report (keys nodes_before, nodes_after, segments)\n",
            {"--outputs", "--min-segment-size", "--input", "--seed"}, {"--json", "--run"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().size() == 1, "give one model file (eastrt convert MODEL.pb --outputs A,B)");
  const std::string path = args.positional()[0];
  TfGraph graph = TfGraph::load(path);
  SegmentOptions options;
  options.outputs = args.has("--outputs") ? split_list(args.get("--outputs")) : graph.terminal_nodes();
  EASTRT_CHECK(!options.outputs.empty(), "give the outputs (--outputs A,B)");
  options.min_segment_size = args.get_int("--min-segment-size", 3);
  SegmentedGraph segmented(graph, options);
  const SegmentReport& report = segmented.report();

  nlohmann::json out;
  out["model"] = path;
  out["nodes_before"] = report.nodes_before;
  out["nodes_after"] = report.nodes_after;
  out["segments"] = report.segments;
  out["fallback"] = report.fallback;
  if (args.has("--run")) {
    std::map<std::string, Shape> shapes = input_shapes(args.get("--input", "1x672x1280x3"), graph);
    std::mt19937 rng(static_cast<uint32_t>(args.get_int("--seed", 7)));
    std::uniform_real_distribution<float> pixel(0.0f, 255.0f);
    std::map<std::string, HostTensor> inputs;
    for (const auto& [name, shape] : shapes) {
      HostTensor t(shape);
      for (float& v : t.data) v = pixel(rng);
      inputs[name] = std::move(t);
    }
    for (const auto& [name, tensor] : segmented.run(inputs)) {
      double lo = INFINITY, hi = -INFINITY, sum = 0;
      for (float v : tensor.data) {
        lo = std::min<double>(lo, v);
        hi = std::max<double>(hi, v);
        sum += v;
      }
      out["outputs"].push_back({{"name", name}, {"shape", tensor.shape}, {"min", lo}, {"max", hi},
                                {"mean", tensor.data.empty() ? 0.0 : sum / tensor.size()}});
    }
  }
  if (args.has("--json")) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << path << ": " << report.summary() << "\n";
  if (!report.fallback.empty()) {
    std::cout << "fallback executor: " << report.fallback.size() << " node" << (report.fallback.size() == 1 ? "" : "s");
    for (size_t i = 0; i < report.fallback.size() && i < 10; ++i) std::cout << (i ? ", " : " (") << report.fallback[i];
    std::cout << (report.fallback.size() > 10 ? ", ...)" : ")") << "\n";
  }
  for (const auto& o : out["outputs"])
    std::printf("output %s %s: min %.4g max %.4g mean %.4g\n", o["name"].get<std::string>().c_str(),
                to_string(o["shape"].get<Shape>()).c_str(), o["min"].get<double>(), o["max"].get<double>(),
                o["mean"].get<double>());
  return 0;
}

RegisterCommand registration("convert", "partition a TensorFlow graph into segments (TF-TRT) and report them", convert);

}  // namespace
}  // namespace eastrt::tool
