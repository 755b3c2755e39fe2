// model_fingerprint: FNV-1a over a network's structure, parameters and weight values (not its input size),
// so that a calibration cache can tell the model it was made for.
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "eastrt/calibration.h"

namespace eastrt::quant {
namespace {

class Fnv1a {
 public:
  void bytes(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ p[i]) * 0x100000001b3ull;
  }
  template <typename T>
    requires std::is_arithmetic_v<T> || std::is_enum_v<T>
  void add(T value) {
    bytes(&value, sizeof value);
  }
  void add(const std::string& s) {
    add(s.size());
    bytes(s.data(), s.size());
  }
  void add(const Shape& shape) {
    add(shape.size());
    for (int64_t d : shape) add(d);
  }
  template <typename T, size_t N>
  void add(const std::array<T, N>& values) {
    for (const T& v : values) add(v);
  }
  void add(const std::vector<int>& values) {
    add(values.size());
    for (int v : values) add(v);
  }
  void add(const Padding& p) { add(std::array<int, 4>{p.top, p.left, p.bottom, p.right}); }
  void add(const Weights& w) {
    add(w != nullptr);
    if (!w) return;
    add(w->shape);
    bytes(w->data.data(), w->data.size() * sizeof(float));
  }
  void add(const ActivationParams& a) {
    add(a.type);
    add(a.alpha);
    add(a.beta);
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

void add_params(Fnv1a& h, const LayerParams& params) {
  std::visit(
      [&h](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, ConvolutionParams>) {
          h.add(p.out_channels), h.add(p.kernel), h.add(p.stride), h.add(p.dilation), h.add(p.groups);
          h.add(p.padding), h.add(p.kernel_weights), h.add(p.bias), h.add(p.activation.has_value());
          if (p.activation) h.add(*p.activation);
        } else if constexpr (std::is_same_v<P, DeconvolutionParams>) {
          h.add(p.out_channels), h.add(p.kernel), h.add(p.stride), h.add(p.groups), h.add(p.padding);
          h.add(p.output_padding), h.add(p.kernel_weights), h.add(p.bias);
        } else if constexpr (std::is_same_v<P, ScaleParams>) {
          h.add(p.mode), h.add(p.scale), h.add(p.shift), h.add(p.power);
        } else if constexpr (std::is_same_v<P, PoolingParams>) {
          h.add(p.type), h.add(p.window), h.add(p.stride), h.add(p.padding), h.add(p.global);
          h.add(p.count_include_pad);
        } else if constexpr (std::is_same_v<P, ActivationParams>) {
          h.add(p);
        } else if constexpr (std::is_same_v<P, ElementWiseParams> || std::is_same_v<P, UnaryParams>) {
          h.add(p.op);
        } else if constexpr (std::is_same_v<P, ConcatenationParams>) {
          h.add(p.axis);
        } else if constexpr (std::is_same_v<P, ResizeParams>) {
          h.add(p.mode), h.add(p.coordinates), h.add(p.out_height), h.add(p.out_width), h.add(p.scale_height);
          h.add(p.scale_width);
        } else if constexpr (std::is_same_v<P, SliceParams>) {
          h.add(p.start), h.add(p.size), h.add(p.stride);
        } else if constexpr (std::is_same_v<P, ShuffleParams>) {
          h.add(p.permutation), h.add(p.reshape);
        } else if constexpr (std::is_same_v<P, ConstantParams>) {
          h.add(p.value);
        } else if constexpr (std::is_same_v<P, ReduceParams>) {
          h.add(p.op), h.add(p.axes), h.add(p.keep_dims);
        } else {
          static_assert(sizeof(P) == 0, "model_fingerprint: a layer kind without a hash");
        }
      },
      params);
}

}  // namespace

std::string model_fingerprint(const Network& network) {
  Fnv1a h;
  for (int id : network.inputs()) h.add(network.tensor(id).name);
  for (const Layer& layer : network.layers()) {
    h.add(layer.name);
    h.add(static_cast<int>(layer.kind()));
    add_params(h, layer.params);
    for (int id : layer.inputs) h.add(network.tensor(id).name);
    for (int id : layer.outputs) h.add(network.tensor(id).name);
  }
  for (int id : network.outputs()) h.add(network.tensor(id).name);
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h.value()));
  return text;
}

}  // namespace eastrt::quant
