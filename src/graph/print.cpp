// Human-readable views of a Network: a text dump, one line per layer, and a Graphviz graph.
#include <sstream>

#include "eastrt/network.h"

namespace eastrt {

namespace {

std::string padding_text(const Padding& p) {
  if (p.top == p.bottom && p.left == p.right && p.top == p.left) return "pad " + std::to_string(p.top);
  return "pad t" + std::to_string(p.top) + " l" + std::to_string(p.left) + " b" + std::to_string(p.bottom) + " r" +
         std::to_string(p.right);
}

const char* resize_coordinates(ResizeCoordinates c) {
  switch (c) {
    case ResizeCoordinates::kAsymmetric: return "asymmetric";
    case ResizeCoordinates::kHalfPixel: return "half_pixel";
    case ResizeCoordinates::kAlignCorners: return "align_corners";
  }
  return "?";
}

// The parameters of a layer in a few words.
std::string describe(const Layer& layer) {
  std::ostringstream out;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, ConvolutionParams>) {
          out << p.kernel[0] << "x" << p.kernel[1] << "/" << p.stride[0] << " " << p.out_channels << " ch "
              << padding_text(p.padding);
          if (p.dilation[0] != 1 || p.dilation[1] != 1) out << " dilation " << p.dilation[0] << "x" << p.dilation[1];
          if (p.groups != 1) out << " groups " << p.groups;
          if (p.bias) out << " +bias";
          if (layer.inputs.size() > 1) out << " +residual";
          if (p.activation) out << " +" << to_string(p.activation->type);
        } else if constexpr (std::is_same_v<P, DeconvolutionParams>) {
          out << p.kernel[0] << "x" << p.kernel[1] << "/" << p.stride[0] << " " << p.out_channels << " ch "
              << padding_text(p.padding);
        } else if constexpr (std::is_same_v<P, ScaleParams>) {
          out << (p.mode == ScaleMode::kChannel ? "per-channel" : "uniform") << (p.scale ? " scale" : "")
              << (p.shift ? " shift" : "") << (p.power ? " power" : "");
        } else if constexpr (std::is_same_v<P, PoolingParams>) {
          out << (p.type == PoolingType::kMax ? "max " : "average ");
          if (p.global) {
            out << "global";
          } else {
            out << p.window[0] << "x" << p.window[1] << "/" << p.stride[0] << " " << padding_text(p.padding);
          }
        } else if constexpr (std::is_same_v<P, ActivationParams>) {
          out << to_string(p.type);
          if (p.type == ActivationType::kClip || p.type == ActivationType::kHardSigmoid ||
              p.type == ActivationType::kLeakyRelu)
            out << " " << p.alpha << " " << p.beta;
        } else if constexpr (std::is_same_v<P, ElementWiseParams>) {
          out << to_string(p.op);
        } else if constexpr (std::is_same_v<P, UnaryParams>) {
          out << to_string(p.op);
        } else if constexpr (std::is_same_v<P, ConcatenationParams>) {
          out << "axis " << p.axis;
        } else if constexpr (std::is_same_v<P, ResizeParams>) {
          out << (p.mode == ResizeMode::kBilinear ? "bilinear " : "nearest ") << resize_coordinates(p.coordinates);
        } else if constexpr (std::is_same_v<P, SliceParams>) {
          out << "start " << to_string(p.start) << " stride " << to_string(p.stride);
        } else if constexpr (std::is_same_v<P, ShuffleParams>) {
          if (!p.permutation.empty()) {
            out << "perm";
            for (int d : p.permutation) out << " " << d;
          }
          if (!p.reshape.empty()) out << (p.permutation.empty() ? "" : " ") << "reshape";
        } else if constexpr (std::is_same_v<P, ConstantParams>) {
          out << to_string(p.value->shape);
        } else if constexpr (std::is_same_v<P, ReduceParams>) {
          out << to_string(p.op) << " axes";
          for (int a : p.axes) out << " " << a;
        }
      },
      layer.params);
  return out.str();
}

}  // namespace

std::string to_text(const Network& network) {
  std::ostringstream out;
  for (int id : network.inputs())
    out << "input  " << network.tensor(id).name << " " << to_string(network.tensor(id).shape) << "\n";
  for (const Layer& layer : network.layers()) {
    out << layer.name << " = " << to_string(layer.kind()) << "(";
    for (size_t i = 0; i < layer.inputs.size(); ++i)
      out << (i ? ", " : "") << network.tensor(layer.inputs[i]).name;
    out << ") -> " << to_string(network.tensor(layer.outputs[0]).shape);
    std::string params = describe(layer);
    if (!params.empty()) out << "  [" << params << "]";
    out << "\n";
  }
  for (int id : network.outputs())
    out << "output " << network.tensor(id).name << " " << to_string(network.tensor(id).shape) << "\n";
  return out.str();
}

std::string to_dot(const Network& network) {
  std::ostringstream out;
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return q + "\"";
  };
  out << "digraph network {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n";
  for (int id : network.inputs())
    out << "  " << quoted("t:" + network.tensor(id).name) << " [shape=ellipse, label="
        << quoted(network.tensor(id).name + "\\n" + to_string(network.tensor(id).shape)) << "];\n";
  for (const Layer& layer : network.layers()) {
    out << "  " << quoted("l:" + layer.name) << " [label="
        << quoted(layer.name + "\\n" + to_string(layer.kind()) + " " + describe(layer) + "\\n" +
                  to_string(network.tensor(layer.outputs[0]).shape))
        << "];\n";
    for (int id : layer.inputs) {
      const Tensor& t = network.tensor(id);
      std::string from = t.producer < 0 ? "t:" + t.name : "l:" + network.layers()[t.producer].name;
      out << "  " << quoted(from) << " -> " << quoted("l:" + layer.name) << ";\n";
    }
  }
  for (int id : network.outputs()) {
    const Tensor& t = network.tensor(id);
    out << "  " << quoted("o:" + t.name) << " [shape=ellipse, label=" << quoted(t.name) << "];\n";
    if (t.producer >= 0) out << "  " << quoted("l:" + network.layers()[t.producer].name) << " -> " << quoted("o:" + t.name) << ";\n";
  }
  out << "}\n";
  return out.str();
}

}  // namespace eastrt
