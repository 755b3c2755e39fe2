// Reads a TensorFlow checkpoint (V2 tensor bundle: PREFIX.index, an SSTable of tensor entries, plus data
// shards PREFIX.data-0000S-of-0000N) as a WeightSource, verifying every checksum on the way.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eastrt/weights.h"

namespace eastrt {

struct CheckpointOptions {
  // get("x") reads "x/ExponentialMovingAverage" where the checkpoint holds it: the shadow weights that
  // evaluation restores in place of the raw training variables.
  bool prefer_moving_average = false;
};

// One stored tensor, as its BundleEntryProto describes it.
struct CheckpointEntry {
  int tf_dtype = 0;               // TensorFlow's DataType enum value
  std::string dtype_name;         // "DT_FLOAT", "DT_HALF", ..., "DT_STRING"
  std::optional<DataType> type;   // empty for the dtypes eastrt cannot read (double, string, ...)
  Shape shape;
  int shard = 0;
  uint64_t offset = 0, size = 0;  // byte range in the shard file
  uint32_t crc32c = 0;            // unmasked crc32c of those bytes
};

class CheckpointReader : public WeightSource {
 public:
  // `path` is the checkpoint prefix ("train/model.ckpt", as TensorFlow names it) or its ".index" file.
  // The index is parsed and checked in full; each data shard must exist and hold every range it is given.
  explicit CheckpointReader(const std::string& path, CheckpointOptions options = {});
  // Parses index bytes held in memory; data shards are looked for beside `prefix` only when read.
  static CheckpointReader from_index_bytes(const std::string& index_bytes, const std::string& prefix,
                                           CheckpointOptions options = {});

  std::vector<std::string> names() const override;  // every stored tensor (shadows included), sorted
  bool contains(const std::string& name) const override;
  HostTensor get(const std::string& name) const override;  // any readable dtype, converted to float32
  using WeightSource::get;
  std::string describe() const override { return "TensorFlow checkpoint " + prefix_; }

  // The stored name get(name) reads: the moving-average shadow when preferred and present, else `name`.
  std::string resolve(const std::string& name) const;
  const CheckpointEntry& entry(const std::string& name) const;  // after resolve()
  DataType stored_type(const std::string& name) const;          // throws for unsupported dtypes
  std::vector<uint8_t> read_bytes(const std::string& name) const;  // stored little-endian bytes, verified
  std::vector<int64_t> get_integers(const std::string& name) const;  // exact, for int32/int64/bool
  int num_shards() const { return num_shards_; }
  std::string shard_path(int shard) const;

 private:
  struct Unopened {};
  CheckpointReader(Unopened, std::string prefix, CheckpointOptions options)
      : prefix_(std::move(prefix)), options_(options) {}
  void parse_index(const std::string& bytes, const std::string& index_path);
  void check_shards() const;

  std::string prefix_;
  CheckpointOptions options_;
  int num_shards_ = 0;
  std::map<std::string, CheckpointEntry> entries_;
};

// CRC-32C (Castagnoli) as LevelDB and TensorFlow use it, and their masking of stored checksums.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t crc32c_unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace eastrt
