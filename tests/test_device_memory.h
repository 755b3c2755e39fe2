// Device memory for one GPU test, freed at its end (tests of single kernels, which run without an engine),
// and cuDNN and cuBLASLt handles.
#pragma once
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "cuda/conv_cublaslt.h"
#include "cuda/conv_cudnn.h"

namespace eastrt::test_support {

class CudnnHandle {
 public:
  CudnnHandle() { EASTRT_CUDNN(cudnnCreate(&handle_)); }
  ~CudnnHandle() { cudnnDestroy(handle_); }
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

class LtHandle {
 public:
  LtHandle() { EASTRT_CUBLAS(cublasLtCreate(&handle_)); }
  ~LtHandle() { cublasLtDestroy(handle_); }
  cublasLtHandle_t get() const { return handle_; }

 private:
  cublasLtHandle_t handle_ = nullptr;
};


class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() {
    for (void* p : blocks_) cudaFree(p);
  }
  template <typename T>
  T* upload(const std::vector<T>& values) {
    T* p = static_cast<T*>(allocate(values.size() * sizeof(T)));
    EXPECT_EQ(cudaMemcpy(p, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    return p;
  }
  void* allocate(size_t bytes) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(bytes, 256)), cudaSuccess);
    blocks_.push_back(p);
    return p;
  }

 private:
  std::vector<void*> blocks_;
};

}  // namespace eastrt::test_support
