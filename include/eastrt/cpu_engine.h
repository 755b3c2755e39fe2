// The CPU engine: runs any Network in float32 on the host, multithreaded. Its naive kernels (cpu/naive.h)
// are the oracle the tests compare every fast path and every GPU kernel against.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "eastrt/network.h"

namespace eastrt {

struct CpuOptions {
  int threads = 0;          // 0: all hardware threads
  bool naive = false;       // use the naive reference kernel for every layer (and no graph passes)
  bool fuse = true;         // fold batch norms, fuse activations and residual adds into convolutions first
};

// Called with each tensor of a run as soon as it has its values, before any layer reads it: every network
// input, then every tensor a layer computes (of the network as the engine runs it, i.e. after the passes).
// It may change the values in place, and every reader then sees the change: the fake-quantised reference
// (quant/calibration.h) stores tensors quantised this way, the calibration collects statistics with it.
using TensorHook = std::function<void(const Tensor& tensor, HostTensor& value)>;

class CpuEngine {
 public:
  explicit CpuEngine(Network network, CpuOptions options = {});

  // Runs with the given inputs (by input name, shapes may differ from the network's: shapes are inferred
  // again); returns every marked output by name.
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs);
  // The same, calling `hook` for every tensor (see TensorHook); the inputs are copied first so that the
  // hook may change them. Without a hook nothing is copied and nothing is called.
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs, const TensorHook& hook);

  const Network& network() const { return network_; }
  int threads() const { return threads_; }

 private:
  Network network_;
  CpuOptions options_;
  int threads_;
};

}  // namespace eastrt
