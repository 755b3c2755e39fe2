// libFuzzer target for timing cache files: any bytes as the file. Loading must end in a cache or an
// eastrt::Error naming the file, never a crash or a hang; a cache that loads must save and load again
// with the same entries.
//
// Seeds: EASTRT_FUZZ_CACHE_SEEDS=DIR writes a cache with an entry of every tactic kind into DIR at start-up.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cuda/timing_cache.h"
#include "eastrt/error.h"

namespace {

using eastrt::gpu::ConvTactic;

std::string temp_file(const char* what) {
  return (std::filesystem::temp_directory_path() / ("eastrt_fuzz_" + std::to_string(::getpid()) + what)).string();
}

void write_seeds(const std::string& dir) {
  std::filesystem::create_directories(dir);
  eastrt::gpu::TimingCache cache;
  int k = 0;
  for (ConvTactic::Kind kind : {ConvTactic::Kind::kCudnnFused, ConvTactic::Kind::kCublasLt, ConvTactic::Kind::kQuant,
                                ConvTactic::Kind::kCudnnGraphFused, ConvTactic::Kind::kSpaceToDepthSplit,
                                ConvTactic::Kind::kQuantCudnn, ConvTactic::Kind::kQuantCublasLt}) {
    eastrt::gpu::TimingEntry entry;
    entry.chosen.kind = kind;
    entry.chosen.algo = ++k, entry.chosen.workspace = 1024 * k, entry.chosen.ms = 0.1 * k;
    if (eastrt::gpu::has_lt_algo(kind)) entry.chosen.lt = {{1, 2, 3, 4, 5, 6, 7, 8}, 130000, 21, 18, 9, 1};
    if (kind == ConvTactic::Kind::kQuant) entry.chosen.variant_name = "q128x128 8 warps";
    if (eastrt::gpu::has_graph_config(kind)) {
      entry.chosen.graph.version = 91900;
      entry.chosen.graph.knobs = {{2, 3}};
    }
    entry.timed = {entry.chosen, entry.chosen};
    cache.insert("NVIDIA H100 sm_90 cudnn 91900 eastrt 0.1.0", "conv n1 h8 w8 c" + std::to_string(k), entry);
  }
  cache.save(dir + "/cache.json");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("EASTRT_FUZZ_CACHE_SEEDS")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string in = temp_file(".json"), again = temp_file("_again.json");
  std::ofstream(in, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  eastrt::gpu::TimingCache cache;
  try {
    cache = eastrt::gpu::TimingCache::load(in);
  } catch (const eastrt::Error&) {
    return 0;
  }
  cache.save(again);
  const eastrt::gpu::TimingCache reloaded = eastrt::gpu::TimingCache::load(again);
  if (reloaded.size() != cache.size()) __builtin_trap();
  return 0;
}
