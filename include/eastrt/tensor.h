// Shapes, data types and a host tensor: the vocabulary shared by the IR, the weights and the engines.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace eastrt {

enum class DataType { kFloat32, kFloat16, kBFloat16, kInt8, kUInt8, kInt32, kInt64, kBool };

const char* to_string(DataType type);
size_t element_size(DataType type);

// Dimensions in logical order. Four-dimensional activations in the IR are N,H,W,C (TensorFlow's order);
// a backend is free to store them otherwise.
using Shape = std::vector<int64_t>;

int64_t volume(const Shape& shape);
std::string to_string(const Shape& shape);  // "1x672x1280x3"
Shape parse_shape(const std::string& text);  // inverse of to_string; throws on malformed text

// A dense float32 host tensor (row-major over its shape). Weights and activations on the CPU use it.
struct HostTensor {
  Shape shape;
  std::vector<float> data;

  HostTensor() = default;
  explicit HostTensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(volume(shape)), 0.0f) {}
  HostTensor(Shape s, std::vector<float> values);
  int64_t size() const { return static_cast<int64_t>(data.size()); }
  bool empty() const { return data.empty(); }
};

// Weights as layers hold them: immutable and shared, so copying a network does not copy its weights.
using Weights = std::shared_ptr<const HostTensor>;
Weights make_weights(Shape shape, std::vector<float> values);

// Item `index` of a [batch, ...] tensor, as a [1, ...] tensor.
HostTensor batch_item(const HostTensor& batch, int64_t index);

// Half-precision conversions (IEEE binary16 and bfloat16), round to nearest even.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t b);

}  // namespace eastrt
