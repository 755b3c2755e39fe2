// The CPU engine: runs any Network in float32 on the host, multithreaded. Its naive kernels (cpu/naive.h)
// are the oracle the tests compare every fast path and every GPU kernel against.
#pragma once
#include <map>
#include <string>

#include "eastrt/network.h"

namespace eastrt {

struct CpuOptions {
  int threads = 0;          // 0: all hardware threads
  bool naive = false;       // use the naive reference kernel for every layer (and no graph passes)
  bool fuse = true;         // fold batch norms, fuse activations and residual adds into convolutions first
};

class CpuEngine {
 public:
  explicit CpuEngine(Network network, CpuOptions options = {});

  // Runs with the given inputs (by input name, shapes may differ from the network's: shapes are inferred
  // again); returns every marked output by name.
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs);

  const Network& network() const { return network_; }
  int threads() const { return threads_; }

 private:
  Network network_;
  CpuOptions options_;
  int threads_;
};

}  // namespace eastrt
