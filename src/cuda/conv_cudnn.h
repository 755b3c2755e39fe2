// Convolutions through cuDNN 9's legacy API on NHWC tensors (filters KRSC): the descriptors of one layer at
// one batch size, the algorithms cuDNN finds and times within a workspace limit, and the two ways of running
// one (the tactics): cudnnConvolutionBiasActivationForward with bias, residual (z) and ReLU or identity in
// one call, or cudnnConvolutionForward followed by our epilogue kernel. C++17 (used from .cu and .cpp).
#pragma once
#include <cudnn.h>

#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace eastrt::cuda {

inline void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw_error("cuDNN error ", cudnnGetErrorString(status), " in ", call, " at ", file, ":", line);
}
#define EASTRT_CUDNN(call) ::eastrt::cuda::check_cudnn((call), #call, __FILE__, __LINE__)

// Storage types as cuDNN names them (both APIs): FP16 tensors are half, the others float.
inline cudnnDataType_t cudnn_data_type(DType type) { return type == DType::kF16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

// Symmetric padding only: an asymmetric one is split by the caller into this and an explicit pad (launch_pad).
struct ConvGeometry {
  int n = 0, h = 0, w = 0, c = 0;  // input
  int k = 0, r = 1, s = 1;         // output channels, kernel height and width
  int oh = 0, ow = 0;              // output
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1, groups = 1;
};

struct ConvAlgorithm {
  int algo = -1;     // cudnnConvolutionFwdAlgo_t
  float ms = 0;      // cuDNN's own timing (find), or 0 (heuristic)
  size_t memory = 0;  // workspace bytes
  int math = 0;      // cudnnMathType_t
  bool deterministic = true;
};

struct ConvOperands {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;      // y's type, k values; required by the fused call
  const void* residual = nullptr;  // y's type and shape, or null
  void* y = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

class CudnnConvolution {
 public:
  // `math` is the cudnnMathType_t to start with (FMA for strict float32, tensor-op for TF32 and FP16).
  CudnnConvolution(const ConvGeometry& geometry, DType type, int math);
  ~CudnnConvolution();
  CudnnConvolution(const CudnnConvolution&) = delete;
  CudnnConvolution& operator=(const CudnnConvolution&) = delete;

  const ConvGeometry& geometry() const { return geometry_; }
  DType type() const { return type_; }

  // Every algorithm cuDNN can run here within `workspace_limit`, fastest first: timed by
  // cudnnFindConvolutionForwardAlgorithmEx on the given buffers (y is overwritten), or ranked by cuDNN's
  // heuristic without running anything.
  std::vector<ConvAlgorithm> find(cudnnHandle_t handle, const void* x, const void* w, void* y, void* workspace,
                                  size_t workspace_limit);
  std::vector<ConvAlgorithm> heuristic(cudnnHandle_t handle, size_t workspace_limit);
  size_t workspace_size(cudnnHandle_t handle, int algo);
  void set_math(int math);

  // Runs one tactic on the handle's stream. Fused: bias, residual and ReLU (or identity) inside cuDNN, any
  // other activation by our kernel after it. Split: the plain convolution, then bias, residual and the
  // activation by our epilogue kernel. Returns cuDNN's status (an algorithm may refuse a configuration);
  // a failed launch of our kernels throws.
  cudnnStatus_t run(cudnnHandle_t handle, bool fused, int algo, const ConvOperands& operands, Activation act,
                    cudaStream_t stream);

 private:
  ConvGeometry geometry_;
  DType type_;
  cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr, bias_desc_ = nullptr;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  cudnnActivationDescriptor_t relu_desc_ = nullptr, identity_desc_ = nullptr;
};

}  // namespace eastrt::cuda
