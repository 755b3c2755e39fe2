// `eastrt freeze`: a MetaGraphDef (.meta) and its checkpoint become a frozen GraphDef (.pb) that TensorFlow
// and `eastrt convert` load, as TensorFlow's convert_variables_to_constants writes it.
#include <iostream>
#include <sstream>

#include "args.h"
#include "command.h"
#include "eastrt/checkpoint.h"
#include "eastrt/error.h"
#include "eastrt/tf_import.h"

namespace eastrt::tool {
namespace {


int freeze(const std::vector<std::string>& argv) {
  Args args("usage: eastrt freeze --meta MODEL.meta --ckpt PREFIX --outputs A,B -o FROZEN.pb [--moving-average]\n\n"
            "Keeps the outputs' closure of the meta graph and replaces every variable by a constant holding its\n"
            "checkpoint value. The moving statistics of training-mode batch norms are kept for the conversion.\n\n"
            "  --meta FILE           the MetaGraphDef (written beside a checkpoint as PREFIX.meta)\n"
            "  --ckpt PREFIX         the checkpoint prefix (PREFIX.index, PREFIX.data-*)\n"
            "  --outputs A,B         output nodes or tensors (node:1)\n"
            "  -o, --output FILE     the frozen GraphDef to write\n"
            "  --moving-average      use <var>/ExponentialMovingAverage where the checkpoint has it, as evaluation does\n",
            {"--meta", "--ckpt", "--outputs", "--output"}, {"--moving-average"});
  if (!args.parse(argv)) return 0;
  std::string output = args.get("--output");
  const auto& positional = args.positional();
  for (size_t i = 0; i < positional.size(); ++i) {
    EASTRT_CHECK(positional[i] == "-o" && i + 1 < positional.size(), "unexpected argument '", positional[i], "'");
    output = positional[++i];
  }
  EASTRT_CHECK(args.has("--meta") && args.has("--ckpt"), "give the meta graph (--meta) and the checkpoint (--ckpt)");
  EASTRT_CHECK(!output.empty(), "give the file to write (-o FROZEN.pb)");
  FreezeOptions options;
  options.outputs = split_list(args.get("--outputs"));
  EASTRT_CHECK(!options.outputs.empty(), "give the outputs to keep (--outputs A,B)");

  std::shared_ptr<tf::MetaGraphDef> meta = load_meta_graph(args.get("--meta"));
  CheckpointReader checkpoint(args.get("--ckpt"), {args.has("--moving-average")});
  TfGraph frozen = freeze_graph(*meta, checkpoint, options);
  frozen.save(output);
  std::cout << "wrote " << output << ": " << frozen.node_count() << " nodes\n";
  return 0;
}

RegisterCommand registration("freeze", "freeze a TensorFlow meta graph and checkpoint into a GraphDef (.pb)", freeze);

}  // namespace
}  // namespace eastrt::tool
