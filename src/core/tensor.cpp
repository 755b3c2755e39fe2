// Shapes, data types, host tensors and the half-precision conversions.
#include "eastrt/tensor.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "eastrt/error.h"

namespace eastrt {

const char* to_string(DataType type) {
  switch (type) {
    case DataType::kFloat32: return "float32";
    case DataType::kFloat16: return "float16";
    case DataType::kBFloat16: return "bfloat16";
    case DataType::kInt8: return "int8";
    case DataType::kUInt8: return "uint8";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
    case DataType::kBool: return "bool";
  }
  return "?";
}

size_t element_size(DataType type) {
  switch (type) {
    case DataType::kFloat32: case DataType::kInt32: return 4;
    case DataType::kFloat16: case DataType::kBFloat16: return 2;
    case DataType::kInt8: case DataType::kUInt8: case DataType::kBool: return 1;
    case DataType::kInt64: return 8;
  }
  return 0;
}

int64_t volume(const Shape& shape) {
  int64_t v = 1;
  for (int64_t d : shape) v *= d;
  return v;
}

std::string to_string(const Shape& shape) {
  std::string text;
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "x" : "") + std::to_string(shape[i]);
  return shape.empty() ? "scalar" : text;
}

Shape parse_shape(const std::string& text) {
  Shape shape;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('x', pos);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(pos, end - pos);
    EASTRT_CHECK(!part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 10,
                 "malformed shape '", text, "': expected dimensions like 1x672x1280x3");
    shape.push_back(std::stoll(part));
    EASTRT_CHECK(shape.back() > 0, "malformed shape '", text, "': dimensions must be positive");
    pos = end + 1;
  }
  return shape;
}

HostTensor::HostTensor(Shape s, std::vector<float> values) : shape(std::move(s)), data(std::move(values)) {
  EASTRT_CHECK(static_cast<int64_t>(data.size()) == volume(shape), "tensor of shape ", to_string(shape), " needs ",
               volume(shape), " values, got ", data.size());
}

HostTensor batch_item(const HostTensor& batch, int64_t index) {
  EASTRT_CHECK(!batch.shape.empty() && index >= 0 && index < batch.shape[0], "item ", index, " of a tensor shaped ",
               to_string(batch.shape));
  Shape shape = batch.shape;
  const int64_t per_item = volume(shape) / shape[0];
  shape[0] = 1;
  const auto first = batch.data.begin() + index * per_item;
  return HostTensor(std::move(shape), std::vector<float>(first, first + per_item));
}

Weights make_weights(Shape shape, std::vector<float> values) {
  return std::make_shared<const HostTensor>(std::move(shape), std::move(values));
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);
    float value = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal
    return sign ? -value : value;
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t float_to_half(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow → inf (incl. rounding)
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero, rounded to nearest even
    float value = std::bit_cast<float>(abs) * 16777216.0f;  // 2^24: the subnormal unit becomes 1
    uint32_t m = static_cast<uint32_t>(std::nearbyint(value));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t mantissa = abs & 0x7fffffu;
  uint32_t exponent = (abs >> 23) - 112;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // round to nearest even
  return static_cast<uint16_t>(sign | half);
}

float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

}  // namespace eastrt
