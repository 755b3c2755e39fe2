// Model selection shared by the subcommands.
#include "model_loader.h"

#include <filesystem>

#include "eastrt/east.h"
#include "eastrt/error.h"

namespace eastrt::tool {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

LoadedModel load_model(const Args& args) {
  Shape input = parse_shape(args.get("--input", "1x672x1280x3"));
  EASTRT_CHECK(input.size() == 4 && input[3] == 3, "--input must be NxHxWx3 (NHWC, RGB), got ", to_string(input));
  east::NetworkOptions options{input[0], input[1], input[2], args.get_int("--width-divisor", 1)};
  std::string builtin = args.get("--builtin");
  std::string model = args.get("--model");
  EASTRT_CHECK(builtin.empty() || builtin == "east", "unknown built-in network '", builtin, "' (there is: east)");
  EASTRT_CHECK(!builtin.empty() || !model.empty(), "no model: give --builtin east or --model FILE");
  if (model.empty()) {
    InMemoryWeights weights = east::random_weights(options, 1);
    return {east::build(weights, options), "built-in EAST, seeded random weights"};
  }
  EASTRT_CHECK(std::filesystem::exists(model), "model file ", model, " does not exist");
  if (ends_with(model, ".safetensors")) {
    SafetensorsReader weights(model);
    return {east::build(weights, options), "EAST from " + model};
  }
  throw_error("model file ", model, ": unrecognised kind (expected .safetensors or a frozen TensorFlow .pb)");
}

}  // namespace eastrt::tool
