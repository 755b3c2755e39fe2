// The builder's tactic timing cache: for one GPU model, cuDNN and eastrt version, and one convolution
// signature, the tactic the timing chose and what each candidate measured, kept in a versioned JSON file
// so that a later build on the same kind of GPU reuses the choice instead of timing again. Host code only.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cuda/plan.h"

namespace eastrt::gpu {

// The revision of the builder's candidate set, in every device string: an entry timed by an eastrt that
// offered other candidates is not reused (timed again and added beside it). 1: the direct tactic's
// pointwise and wgmma 3x3 variants (entries without a revision were timed without them); 2: the quantised
// convolution's wgmma variants; 3: cuDNN's INT8 graphs beside the quantised convolution's variants; 4:
// cuBLASLt's INT8 matmul for the 1x1 ones.
constexpr int kCandidateRevision = 4;

// What the candidates and their times depend on besides the layer:
// "NVIDIA H200 sm_90 cudnn 91000 eastrt 0.1.0 candidates 2".
std::string timing_device(const std::string& gpu_name, int major, int minor, long cudnn_version,
                          const std::string& eastrt_version);

struct TimingEntry {
  ConvTactic chosen;
  std::vector<ConvTactic> timed;  // every candidate that ran correctly, with its median time
};

class TimingCache {
 public:
  // 2: cuDNN graph tactics (their engine configuration), and convolution signatures that name an explicit
  // pad's padding; a cache of version 1 was timed without the graph tactics.
  static constexpr int kFormatVersion = 2;

  // The cache in `path`; a file that does not exist is an empty cache (the build will write it). A file
  // that is not a timing cache, is corrupt, or has another format version is an Error naming the file and
  // what is wrong: the cache is the user's choice, so it is never silently replaced (delete it to rebuild).
  static TimingCache load(const std::string& path);
  // Writes the whole cache to `path` (through a temporary file renamed over it, so that a build interrupted
  // while writing leaves the old cache whole).
  void save(const std::string& path) const;

  // `device` from timing_device, `layer` the convolution's signature (the builder's conv_signature).
  const TimingEntry* find(const std::string& device, const std::string& layer) const;
  void insert(const std::string& device, const std::string& layer, TimingEntry entry);
  size_t size() const { return entries_.size(); }

 private:
  std::map<std::pair<std::string, std::string>, TimingEntry> entries_;
};

}  // namespace eastrt::gpu
