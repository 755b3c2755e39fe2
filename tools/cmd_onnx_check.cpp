// `eastrt onnx-check`: imports an ONNX model, says what it became (or which node and op stopped it) and,
// with --run, runs it once on the CPU engine on a seeded input.
#include <algorithm>
#include <iostream>
#include <map>
#include <random>

#include "args.h"
#include "command.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/error.h"
#include "eastrt/onnx_import.h"

namespace eastrt::tool {
namespace {

int onnx_check(const std::vector<std::string>& argv) {
  Args args("usage: eastrt onnx-check MODEL.onnx [options]\n\n"
            "Converts an ONNX model (opsets 11-18) to a network and prints its layers and outputs.\n\n"
            "  --input SHAPE         shape of the only input, in --layout (needed for dynamic dimensions)\n"
            "  --layout nchw|nhwc    layout of the input shape and of the network's 4-D inputs/outputs\n"
            "                        (default nchw, as ONNX)\n"
            "  --layers              list every layer\n"
            "  --run                 run once on the CPU engine on uniform [-1, 1) input; print output ranges\n",
            {"--input", "--layout"}, {"--layers", "--run"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().size() == 1, "give one ONNX model file (eastrt onnx-check --help)");
  const std::string layout = args.get("--layout", "nchw");
  EASTRT_CHECK(layout == "nchw" || layout == "nhwc", "--layout must be nchw or nhwc, got '", layout, "'");
  OnnxImportOptions options;
  options.input_layout = options.output_layout = layout == "nhwc" ? OnnxLayout::kNhwc : OnnxLayout::kNchw;
  if (args.has("--input")) options.input_shapes[""] = parse_shape(args.get("--input"));
  Network net = import_onnx(args.positional()[0], options);

  std::map<std::string, int> kinds;
  for (const Layer& layer : net.layers()) ++kinds[to_string(layer.kind())];
  if (args.has("--layers")) std::cout << to_text(net);
  std::cout << "layers: " << net.layers().size() << " (";
  for (auto it = kinds.begin(); it != kinds.end(); ++it)
    std::cout << (it == kinds.begin() ? "" : ", ") << it->second << " " << it->first;
  std::cout << "), params " << net.parameter_count() << ", GMACs " << net.macs() / 1e9 << "\n";
  for (int id : net.inputs()) std::cout << "input  " << net.tensor(id).name << " " << to_string(net.tensor(id).shape) << "\n";
  for (int id : net.outputs()) std::cout << "output " << net.tensor(id).name << " " << to_string(net.tensor(id).shape) << "\n";
  if (!args.has("--run")) return 0;

  std::map<std::string, HostTensor> inputs;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int id : net.inputs()) {
    HostTensor t(net.tensor(id).shape);
    for (float& v : t.data) v = uniform(rng);
    inputs[net.tensor(id).name] = std::move(t);
  }
  CpuEngine engine(std::move(net));
  for (const auto& [name, t] : engine.run(inputs)) {
    const auto [lo, hi] = std::minmax_element(t.data.begin(), t.data.end());
    std::cout << "ran    " << name << " " << to_string(t.shape) << " in [" << (t.empty() ? 0 : *lo) << ", "
              << (t.empty() ? 0 : *hi) << "]\n";
  }
  return 0;
}

RegisterCommand registration("onnx-check", "convert an ONNX model to a network and report it (or why not)",
                             onnx_check);

}  // namespace
}  // namespace eastrt::tool
