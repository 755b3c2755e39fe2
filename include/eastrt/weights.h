// Where a network's weights come from: tensors looked up by name (an in-memory map, a safetensors file,
// a TensorFlow checkpoint). Values are handed out as float32 whatever the stored type.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eastrt/tensor.h"

namespace eastrt {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Names of all tensors, sorted.
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  // The tensor as float32; throws an Error naming the tensor and the source when it is missing.
  virtual HostTensor get(const std::string& name) const = 0;
  // A short description for error messages ("safetensors file models/east.safetensors").
  virtual std::string describe() const = 0;

  // get() plus a shape check: an Error naming the tensor, the source and both shapes on mismatch.
  HostTensor get(const std::string& name, const Shape& expected) const;
};

class InMemoryWeights : public WeightSource {
 public:
  void set(const std::string& name, HostTensor tensor);
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override;
  HostTensor get(const std::string& name) const override;
  using WeightSource::get;
  std::string describe() const override { return "in-memory weights"; }

 private:
  std::map<std::string, HostTensor> tensors_;
};

// A safetensors file (8-byte little-endian header length, JSON header, raw data); F32, F16 and BF16
// tensors are read, and group-quantised filters (train/checkpoint.py's int8 form, which halves the bundled
// model: NAME#q int8 [K, groups, 128] with NAME#scale [K, groups, 1] and NAME's RSCK shape in the
// metadata's "shapes") are read back as the float filter NAME. The header is validated in full when the
// file is opened.
class SafetensorsReader : public WeightSource {
 public:
  explicit SafetensorsReader(const std::string& path);
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override;
  HostTensor get(const std::string& name) const override;
  using WeightSource::get;
  std::string describe() const override { return "safetensors file " + path_; }
  DataType stored_type(const std::string& name) const;

 private:
  struct Entry {
    DataType type;
    Shape shape;
    size_t begin, end;
  };
  struct Quantised {
    std::string q, scale;  // the stored tensors' names
    Shape shape;           // the filter's (TF RSCK)
  };
  HostTensor decode(const Entry& e) const;
  HostTensor dequantise(const Quantised& g) const;

  std::string path_;
  std::vector<char> data_;  // the data section
  std::map<std::string, Entry> entries_;
  std::map<std::string, Quantised> quantised_;  // by the filter's name
  std::vector<std::string> plain_;              // names() — sorted, the quantised filters' parts left out
};

// Writes tensors to a safetensors file, each stored as `type` (kFloat32 or kFloat16).
void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       DataType type = DataType::kFloat32);

}  // namespace eastrt
