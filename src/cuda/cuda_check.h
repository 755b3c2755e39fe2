// Checking every CUDA runtime call and kernel launch: a failure throws an eastrt::Error naming the call,
// the file and the line. Included by .cu files (C++17) and the engine's .cpp files alike.
#pragma once
#include <cuda_runtime.h>

#include "eastrt/error.h"

namespace eastrt::cuda {

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw_error("CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ", call, " at ", file,
                ":", line);
}

}  // namespace eastrt::cuda

#define EASTRT_CUDA(call) ::eastrt::cuda::check_cuda((call), #call, __FILE__, __LINE__)
// After every launch: a bad configuration shows here, not at some later, unrelated call.
#define EASTRT_LAUNCHED(kernel) ::eastrt::cuda::check_cuda(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)
