// query_gpu and gpu_count for a build without the CUDA toolkit: there is never a GPU.
#ifndef EASTRT_HAVE_CUDA
#include "eastrt/gpu.h"

namespace eastrt {
GpuInfo query_gpu(int) {
  GpuInfo info;
  info.reason = "built without CUDA";
  return info;
}
int gpu_count() { return 0; }
}  // namespace eastrt
#endif
