// libFuzzer target: arbitrary bytes as a GraphDef, through parsing, conversion and segmentation. Any
// eastrt::Error is a correct answer; a crash, a hang, a leak or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "eastrt/error.h"
#include "eastrt/tf_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eastrt;
  try {
    TfGraph graph = TfGraph::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
    std::vector<std::string> outputs = graph.terminal_nodes();
    if (outputs.empty() || outputs.size() > 8) return 0;
    TfImportOptions options;
    options.outputs = outputs;
    // Small inputs keep every runtime shape, and so every constant the graph derives from them, small.
    for (const std::string& name : graph.placeholders()) options.input_shapes[name] = {1, 4, 6, 3};
    try {
      Network network = tf_to_network(graph, options);
      (void)network.macs();
    } catch (const Error&) {
    }
    SegmentedGraph segmented(graph, {outputs, 2});
    (void)segmented.report().summary();
  } catch (const Error&) {
  }
  return 0;
}
