// ONNX models in (the parser path of DESIGN.md): an .onnx file (opsets 11–18) becomes a Network, with
// ONNX's NCHW activations carried as the IR's NHWC and weights, shape arithmetic and constants folded.
// Transposes become no layer (each value keeps the layout it is held in), so tf2onnx's NHWC models, whose
// convolutions sit between Transposes to NCHW and back, import without shuffles.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "eastrt/network.h"

namespace eastrt {

enum class OnnxLayout { kNchw, kNhwc };

struct OnnxImportOptions {
  // The layout the network's 4-D inputs take: kNchw (the model's own order, whatever it means: a shuffle
  // to NHWC follows where a spatial layer needs one) or kNhwc (ONNX's N,C,H,W fed as N,H,W,C, as the
  // detector's preprocessing writes it). A model whose input is already NHWC (tf2onnx's) takes kNchw.
  OnnxLayout input_layout = OnnxLayout::kNchw;
  // Shapes of the graph inputs, in input_layout, by input name; needed where the model leaves a dimension
  // dynamic (a given shape must agree with the dimensions the model fixes). The network is shape-inferred
  // at these sizes; the CPU engine infers again when it runs at others. The name "" stands for the model's
  // only input.
  std::map<std::string, Shape> input_shapes;
  // The values to return, by ONNX name (any intermediate value may be named); empty: the graph's outputs.
  std::vector<std::string> outputs;
  // The layout of the network's 4-D outputs: kNchw (as ONNX Runtime returns them) or kNhwc (no shuffle).
  OnnxLayout output_layout = OnnxLayout::kNchw;
};

// Loads and converts an ONNX model file. A missing, truncated or corrupt file, external tensor data, an
// opset outside 11–18 or a graph that does not hold together is an Error naming the file; an operator or
// attribute the importer does not support is an Error naming the file, the node and the op.
Network import_onnx(const std::string& path, const OnnxImportOptions& options = {});

// The graph's inputs as the model declares them (initializers excluded): name and dimensions, -1 where a
// dimension is left dynamic. What a caller needs to choose OnnxImportOptions before importing.
struct OnnxInputInfo {
  std::string name;
  std::vector<int64_t> dims;
};
std::vector<OnnxInputInfo> onnx_inputs(const std::string& path);

// The same from the bytes of a model; `source` names them in errors.
Network import_onnx_bytes(const std::string& bytes, const std::string& source, const OnnxImportOptions& options = {});

}  // namespace eastrt
