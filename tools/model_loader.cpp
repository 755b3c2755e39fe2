// Model selection shared by the subcommands.
#include "model_loader.h"

#include <filesystem>

#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/checkpoint.h"
#include "eastrt/onnx_import.h"
#include "eastrt/tf_import.h"

namespace eastrt::tool {

namespace {
// A frozen TensorFlow GraphDef: its only placeholder takes --input; the outputs are EAST's when the graph
// has them, else the nodes nothing reads.
LoadedModel load_graph_def(const std::string& path, const Shape& input) {
  TfGraph graph = TfGraph::load(path);
  std::vector<std::string> inputs = graph.placeholders();
  EASTRT_CHECK(inputs.size() == 1, "model file ", path, " has ", inputs.size(),
               " placeholders; this command takes graphs with one input (eastrt convert takes any)");
  TfImportOptions options;
  options.input_shapes[inputs[0]] = input;
  if (graph.has_node(east::kScoreOutput) && graph.has_node(east::kGeometryOutput))
    options.outputs = {east::kScoreOutput, east::kGeometryOutput};
  else
    options.outputs = graph.terminal_nodes();
  return {tf_to_network(graph, options), "TensorFlow graph " + path};
}
// An ONNX model, fed NHWC. A model whose input already is (tf2onnx's from a TensorFlow graph: the last
// dimension fixed to the channels, H left open or larger) is taken in its own order, inputs and outputs; an
// NCHW model's input is fed as N,H,W,C. TensorFlow's tensor names (node:0) become the node's name, as the
// TensorFlow import names them, so that the EAST detector finds a tf2onnx EAST's outputs.
LoadedModel load_onnx(const std::string& path, const Shape& input) {
  const std::vector<OnnxInputInfo> inputs = onnx_inputs(path);
  EASTRT_CHECK(inputs.size() == 1, "model file ", path, " has ", inputs.size(),
               " inputs; this command takes models with one input");
  const std::vector<int64_t>& dims = inputs[0].dims;
  const bool nhwc = dims.size() == 4 && dims[3] > 0 && dims[3] <= 4 && (dims[1] < 0 || dims[1] > dims[3]);
  const OnnxLayout layout = nhwc ? OnnxLayout::kNchw : OnnxLayout::kNhwc;
  OnnxImportOptions options{layout, {{"", input}}, {}, layout};
  Network network = import_onnx(path, options);
  std::vector<int> ends = network.outputs();
  ends.insert(ends.end(), network.inputs().begin(), network.inputs().end());
  for (int id : ends) {
    Tensor& t = network.tensor(id);
    const std::string node = t.name.substr(0, t.name.size() - 2);
    if (ends_with(t.name, ":0") && !network.find_tensor(node)) t.name = node;
  }
  return {std::move(network), "ONNX model " + path + (nhwc ? " (NHWC, as tf2onnx writes it)" : "")};
}
}  // namespace

std::string bundled_model() {
  const std::filesystem::path path =
      std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "models" / "east.safetensors";
  EASTRT_CHECK(std::filesystem::exists(path), "no default model at ", path.string(),
               ": give --model FILE, or --builtin east for random weights");
  return path.string();
}

std::string calibration_cache_for(const Args& args, Precision precision) {
  if (!is_quantized(precision)) return "";
  if (args.has("--calib-cache")) return args.get("--calib-cache");
  if (!args.has("--model") && !args.has("--builtin")) {
    const std::filesystem::path shipped = std::filesystem::path(bundled_model()).parent_path() /
                                          (std::string("east.") + to_string(precision) + ".cache");
    if (std::filesystem::exists(shipped)) return shipped.string();
  }
  throw_error("--precision ", to_string(precision),
              " needs a calibration cache: give --calib-cache FILE (made by eastrt calibrate)");
}

LoadedModel load_model(const Args& args) {
  const Shape input = parse_shape(args.get("--input", "1x672x1280x3"));
  const std::string builtin = args.get("--builtin");
  const std::string model = args.has("--model") || !builtin.empty() ? args.get("--model") : bundled_model();
  EASTRT_CHECK(builtin.empty() || builtin == "east", "unknown built-in network '", builtin, "' (there is: east)");
  if (builtin.empty() && ends_with(model, ".pb")) {
    EASTRT_CHECK(std::filesystem::exists(model), "model file ", model, " does not exist");
    return load_graph_def(model, input);
  }
  if (builtin.empty() && ends_with(model, ".onnx")) {
    EASTRT_CHECK(std::filesystem::exists(model), "model file ", model, " does not exist");
    return load_onnx(model, input);
  }

  // Everything else is EAST built with the definition API, its weights from a file or seeded at random.
  EASTRT_CHECK(input.size() == 4 && input[3] == 3, "--input must be NxHxWx3 (NHWC, RGB), got ", to_string(input));
  east::NetworkOptions options{input[0], input[1], input[2], args.get_int("--width-divisor", 1)};
  if (model.empty()) return {east::build(east::random_weights(options, 1), options), "built-in EAST, seeded random weights"};
  if (ends_with(model, ".safetensors")) {
    EASTRT_CHECK(std::filesystem::exists(model), "model file ", model, " does not exist");
    return {east::build(SafetensorsReader(model), options), "EAST from " + model};
  }
  std::string prefix = ends_with(model, ".index") ? model.substr(0, model.size() - 6) : model;
  if (std::filesystem::exists(prefix + ".index")) {
    // As TensorFlow's evaluation does, the moving-average shadows replace the raw variables where present.
    CheckpointReader reader(prefix, CheckpointOptions{.prefer_moving_average = true});
    return {east::build(reader, options), "EAST from checkpoint " + prefix};
  }
  EASTRT_CHECK(std::filesystem::exists(model), "model file ", model, " does not exist");
  throw_error("model file ", model,
              ": unrecognised kind (expected .safetensors, a frozen TensorFlow .pb, .onnx or a checkpoint prefix)");
}

}  // namespace eastrt::tool
