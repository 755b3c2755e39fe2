// `eastrt inspect`: what a network is — layers, parameters, arithmetic, outputs — as text, JSON or Graphviz.
#include <fstream>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/error.h"
#include "model_loader.h"

namespace eastrt::tool {
namespace {

int inspect(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt inspect (--builtin east | --model FILE) [options]\n\n"
                        "Prints the network's layers, parameter count, GMACs and outputs. Shapes are NHWC.\n\n") +
                kModelFlagsHelp +
                "  --json                machine-readable summary\n"
                "  --layers              also list every layer (text) or include them (JSON)\n"
                "  --dot FILE            write the graph for Graphviz\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--dot"}, {"--json", "--layers"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");
  LoadedModel model = load_model(args);
  const Network& net = model.network;

  std::map<std::string, int> kinds;
  for (const Layer& layer : net.layers()) ++kinds[to_string(layer.kind())];
  if (args.has("--dot")) {
    std::ofstream dot(args.get("--dot"));
    EASTRT_CHECK(dot, "cannot write ", args.get("--dot"));
    dot << to_dot(net);
  }
  if (args.has("--json")) {
    nlohmann::json out;
    out["model"] = model.description;
    out["layout"] = "NHWC";
    out["layers"] = net.layers().size();
    out["layer_kinds"] = kinds;
    out["params"] = net.parameter_count();
    out["gmacs"] = net.macs() / 1e9;
    for (int id : net.inputs()) out["inputs"].push_back({{"name", net.tensor(id).name}, {"shape", net.tensor(id).shape}});
    for (int id : net.outputs())
      out["outputs"].push_back({{"name", net.tensor(id).name}, {"shape", net.tensor(id).shape}});
    if (args.has("--layers"))
      for (const Layer& layer : net.layers())
        out["layer_list"].push_back({{"name", layer.name},
                                     {"kind", to_string(layer.kind())},
                                     {"shape", net.tensor(layer.outputs[0]).shape}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << model.description << "\n";
  if (args.has("--layers")) std::cout << to_text(net);
  std::cout << "layers: " << net.layers().size() << " (";
  bool first = true;
  for (const auto& [kind, count] : kinds) {
    std::cout << (first ? "" : ", ") << count << " " << kind;
    first = false;
  }
  std::cout << ")\nparameters: " << net.parameter_count() << "\nGMACs: " << net.macs() / 1e9 << "\n";
  for (int id : net.inputs()) std::cout << "input  " << net.tensor(id).name << " " << to_string(net.tensor(id).shape) << " (NHWC)\n";
  for (int id : net.outputs()) std::cout << "output " << net.tensor(id).name << " " << to_string(net.tensor(id).shape) << " (NHWC)\n";
  return 0;
}

RegisterCommand registration("inspect", "describe a network: layers, parameters, GMACs, outputs", inspect);

}  // namespace
}  // namespace eastrt::tool
