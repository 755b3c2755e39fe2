// What GPU this process can use, if any: the tool runs on the GPU when there is one, else on the CPU.
#pragma once
#include <string>

namespace eastrt {

struct GpuInfo {
  bool available = false;
  std::string name;          // "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0;  // compute capability
  size_t memory_bytes = 0;
  std::string reason;        // why none is available ("no CUDA driver", "built without CUDA")
};

GpuInfo query_gpu(int device = 0);
// CUDA devices this process sees (0 without a driver, a GPU or a CUDA build); they are numbered 0..count-1.
int gpu_count();

}  // namespace eastrt
