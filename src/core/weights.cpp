// Weight sources: the shape-checked lookup, an in-memory map, and the safetensors reader and writer.
#include "eastrt/weights.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "eastrt/error.h"

namespace eastrt {

HostTensor WeightSource::get(const std::string& name, const Shape& expected) const {
  HostTensor tensor = get(name);
  EASTRT_CHECK(tensor.shape == expected, describe(), ": tensor '", name, "' has shape ", to_string(tensor.shape),
               ", expected ", to_string(expected));
  return tensor;
}

void InMemoryWeights::set(const std::string& name, HostTensor tensor) { tensors_[name] = std::move(tensor); }

std::vector<std::string> InMemoryWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : tensors_) out.push_back(name);
  return out;
}

bool InMemoryWeights::contains(const std::string& name) const { return tensors_.count(name) > 0; }

HostTensor InMemoryWeights::get(const std::string& name) const {
  auto it = tensors_.find(name);
  EASTRT_CHECK(it != tensors_.end(), describe(), ": no tensor named '", name, "'");
  return it->second;
}

namespace {

DataType safetensors_type(const std::string& text, const std::string& path, const std::string& name) {
  if (text == "F32") return DataType::kFloat32;
  if (text == "F16") return DataType::kFloat16;
  if (text == "BF16") return DataType::kBFloat16;
  if (text == "I8") return DataType::kInt8;
  throw_error("safetensors file ", path, ": tensor '", name, "' has dtype ", text,
              ", only F32, F16, BF16 and I8 (group-quantised filters) are supported");
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  std::ifstream file(path, std::ios::binary);
  EASTRT_CHECK(file, "cannot open safetensors file ", path);
  file.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(file.tellg());
  file.seekg(0);
  EASTRT_CHECK(file_size >= 8, "safetensors file ", path, " is truncated (", file_size, " bytes)");
  uint8_t length_bytes[8];
  file.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  EASTRT_CHECK(header_length <= file_size - 8 && header_length <= (100u << 20), "safetensors file ", path,
               ": header length ", header_length, " does not fit the file (", file_size, " bytes)");
  std::string header(header_length, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_length));
  data_.resize(file_size - 8 - header_length);
  file.read(data_.data(), static_cast<std::streamsize>(data_.size()));
  EASTRT_CHECK(file, "safetensors file ", path, ": read failed");

  nlohmann::json json = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  EASTRT_CHECK(json.is_object(), "safetensors file ", path, ": the header is not a JSON object");
  nlohmann::json shapes = nlohmann::json::object();  // original shapes of group-quantised filters
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (entry.is_object() && entry.contains("shapes") && entry["shapes"].is_string())
        shapes = nlohmann::json::parse(entry["shapes"].get<std::string>(), nullptr, false);
      EASTRT_CHECK(shapes.is_object(), "safetensors file ", path, ": metadata 'shapes' is not a JSON object");
      continue;
    }
    EASTRT_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                     entry.contains("data_offsets") && entry["dtype"].is_string() && entry["shape"].is_array() &&
                     entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
                 "safetensors file ", path, ": malformed header entry for '", name, "'");
    Entry e;
    e.type = safetensors_type(entry["dtype"].get<std::string>(), path, name);
    for (const auto& d : entry["shape"]) {
      EASTRT_CHECK(d.is_number_unsigned(), "safetensors file ", path, ": bad shape for '", name, "'");
      e.shape.push_back(d.get<int64_t>());
    }
    const auto& offsets = entry["data_offsets"];
    EASTRT_CHECK(offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(), "safetensors file ", path,
                 ": bad data_offsets for '", name, "'");
    e.begin = offsets[0].get<size_t>();
    e.end = offsets[1].get<size_t>();
    EASTRT_CHECK(e.begin <= e.end && e.end <= data_.size(), "safetensors file ", path, ": tensor '", name,
                 "' lies outside the file");
    EASTRT_CHECK(static_cast<uint64_t>(volume(e.shape)) * element_size(e.type) == e.end - e.begin,
                 "safetensors file ", path, ": tensor '", name, "' of shape ", to_string(e.shape), " and type ",
                 to_string(e.type), " does not match its ", e.end - e.begin, " bytes");
    entries_[name] = e;
  }
  // Group-quantised filters (train/checkpoint.py): X#q int8 [K, G, group] and X#scale [K, G, 1] stand for
  // the TF RSCK filter X, whose shape the metadata records.
  for (const auto& [name, e] : entries_) {
    const bool q = name.size() > 2 && name.compare(name.size() - 2, 2, "#q") == 0;
    if (!q) {
      const bool scale = name.size() > 6 && name.compare(name.size() - 6, 6, "#scale") == 0;
      EASTRT_CHECK(e.type != DataType::kInt8, "safetensors file ", path, ": int8 tensor '", name,
                   "' is not a group-quantised filter (NAME#q with NAME#scale)");
      if (!scale) plain_.push_back(name);
      continue;
    }
    const std::string base = name.substr(0, name.size() - 2);
    auto scale = entries_.find(base + "#scale");
    EASTRT_CHECK(e.type == DataType::kInt8 && e.shape.size() == 3, "safetensors file ", path, ": '", name,
                 "' must be int8 [K, groups, group], got ", to_string(e.type), " ", to_string(e.shape));
    EASTRT_CHECK(scale != entries_.end() && scale->second.type != DataType::kInt8 &&
                     scale->second.shape == Shape({e.shape[0], e.shape[1], 1}),
                 "safetensors file ", path, ": '", name, "' needs '", base, "#scale' shaped ",
                 to_string(Shape{e.shape[0], e.shape[1], 1}));
    EASTRT_CHECK(shapes.contains(base) && shapes[base].is_array() && shapes[base].size() == 4, "safetensors file ",
                 path, ": no 4-D shape for the quantised filter '", base, "' in the metadata");
    Quantised g{name, base + "#scale", {}};
    for (const auto& d : shapes[base]) {
      EASTRT_CHECK(d.is_number_unsigned() && d.get<int64_t>() > 0, "safetensors file ", path, ": bad shape for '",
                   base, "'");
      g.shape.push_back(d.get<int64_t>());
    }
    const int64_t inputs = g.shape[0] * g.shape[1] * g.shape[2];
    EASTRT_CHECK(g.shape[3] == e.shape[0] && e.shape[1] * e.shape[2] >= inputs &&
                     (e.shape[1] - 1) * e.shape[2] < inputs,
                 "safetensors file ", path, ": the quantised '", base, "' ", to_string(e.shape),
                 " does not hold a filter of shape ", to_string(g.shape));
    quantised_[base] = g;
  }
  for (const auto& [base, g] : quantised_) {
    EASTRT_CHECK(!entries_.count(base), "safetensors file ", path, ": '", base, "' is stored both plain and quantised");
    plain_.push_back(base);
  }
  std::sort(plain_.begin(), plain_.end());
}

std::vector<std::string> SafetensorsReader::names() const { return plain_; }

bool SafetensorsReader::contains(const std::string& name) const {
  return quantised_.count(name) > 0 || (entries_.count(name) > 0 && std::binary_search(plain_.begin(), plain_.end(), name));
}

DataType SafetensorsReader::stored_type(const std::string& name) const {
  if (quantised_.count(name)) return DataType::kInt8;
  auto it = entries_.find(name);
  EASTRT_CHECK(it != entries_.end(), describe(), ": no tensor named '", name, "'");
  return it->second.type;
}

HostTensor SafetensorsReader::get(const std::string& name) const {
  if (auto q = quantised_.find(name); q != quantised_.end()) return dequantise(q->second);
  auto it = entries_.find(name);
  EASTRT_CHECK(it != entries_.end() && contains(name), describe(), ": no tensor named '", name, "'");
  return decode(it->second);
}

HostTensor SafetensorsReader::decode(const Entry& e) const {
  HostTensor tensor(e.shape);
  const char* bytes = data_.data() + e.begin;
  for (size_t i = 0; i < tensor.data.size(); ++i) {
    if (e.type == DataType::kInt8) {
      tensor.data[i] = static_cast<float>(static_cast<int8_t>(bytes[i]));
      continue;
    }
    if (e.type == DataType::kFloat32) {
      std::memcpy(&tensor.data[i], bytes + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      tensor.data[i] = e.type == DataType::kFloat16 ? half_to_float(h) : bfloat16_to_float(h);
    }
  }
  return tensor;
}

// filter[r, s, c, k] = q[k, i / group, i % group] · scale[k, i / group] with i = (r·S + s)·C + c.
HostTensor SafetensorsReader::dequantise(const Quantised& g) const {
  const HostTensor q = decode(entries_.at(g.q)), scale = decode(entries_.at(g.scale));
  const int64_t k_count = g.shape[3], inputs = g.shape[0] * g.shape[1] * g.shape[2];
  const int64_t groups = q.shape[1], group = q.shape[2];
  HostTensor filter(g.shape);
  for (int64_t k = 0; k < k_count; ++k)
    for (int64_t i = 0; i < inputs; ++i)
      filter.data[i * k_count + k] =
          q.data[(k * groups + i / group) * group + i % group] * scale.data[k * groups + i / group];
  return filter;
}

void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors, DataType type) {
  EASTRT_CHECK(type == DataType::kFloat32 || type == DataType::kFloat16,
               "write_safetensors: only float32 and float16 are written");
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    size_t begin = data.size();
    for (float v : tensor.data) {
      if (type == DataType::kFloat32) {
        data.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        uint16_t h = float_to_half(v);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[name] = {{"dtype", type == DataType::kFloat32 ? "F32" : "F16"},
                    {"shape", tensor.shape},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8) text += ' ';  // the format pads the header so data starts aligned
  std::ofstream file(path, std::ios::binary);
  EASTRT_CHECK(file, "cannot write ", path);
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) file.put(static_cast<char>((length >> (8 * i)) & 0xff));
  file << text << data;
  EASTRT_CHECK(file, "write to ", path, " failed");
}

}  // namespace eastrt
