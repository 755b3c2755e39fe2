// libFuzzer target: any bytes as a TensorFlow checkpoint .index. Opening and reading every tensor must end
// in success or an eastrt::Error, never a crash, a hang or a huge allocation.
#include <cstdint>
#include <filesystem>
#include <string>

#include "eastrt/checkpoint.h"
#include "eastrt/error.h"

namespace {
// Tensors are read from a real data shard (the dtypes fixture beside this source tree) so fuzzed offsets,
// sizes and dtypes reach the data path and its checksum; elsewhere the shard is simply missing.
const std::string kPrefix =
    (std::filesystem::path(__FILE__).parent_path() / "../tests/fixtures/tf/dtypes/model.ckpt").string();
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto reader = eastrt::CheckpointReader::from_index_bytes(std::string(reinterpret_cast<const char*>(data), size),
                                                             kPrefix, {.prefer_moving_average = size % 2 == 0});
    for (const std::string& name : reader.names()) {
      try {
        reader.get(name);
        reader.get_integers(name);
      } catch (const eastrt::Error&) {
      }
    }
  } catch (const eastrt::Error&) {
  }
  return 0;
}
