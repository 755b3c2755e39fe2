// The quantised 1×1 convolution of conv_quant.h (same arguments) as one cuBLASLt integer matmul: INT8 × INT8
// summed in INT32, then cuBLASLt's epilogue on float32 values,
//   code = saturate(round(alpha[k] · acc + beta · residual_code + bias'[k])), ReLU before the rounding,
// with alpha[k] = scale[k] / out_scale, beta = residual_scale / out_scale and bias' = bias / out_scale (each
// rounded once, here): v · (1 / out_scale) of the kernel's epilogue reassociated, so a code may differ from
// the kernel's by one step near a rounding boundary. What makes it pay is the output: 8-bit codes straight
// into the next layer (cuBLASLt's integer matmul writes INT8 or INT32 only, so FP16 outputs stay on the
// kernel and cuDNN). C++17.
#pragma once
#include <cublasLt.h>

#include <vector>

#include "cuda/conv_cublaslt.h"
#include "cuda/conv_quant.h"

namespace eastrt::cuda {

// Whether eastrt runs these arguments through cuBLASLt: INT8 input and a dense INT8 output, a 1×1
// unpadded stride-1 convolution, ReLU (cuBLASLt saturates to −128, a code eastrt's INT8 never has; after a
// ReLU no value is negative), no residual or (`residual`) an INT8 one, channel counts multiples of 4.
// Otherwise false with the reason in `*why`. (The arguments' pointers are not looked at.)
bool cublaslt_quant_conv_applies(const QuantConvArgs& args, bool residual, const char** why = nullptr);

class CublasLtQuantConvolution {
 public:
  // Describes the matmul of `args` with a residual as said (its pointer is not looked at: run() is given
  // it), shapes, types and the epilogue; reads args.scale and args.bias (null: none) from the device once, to
  // make alpha and bias' (kept in a device buffer it owns). Throws an Error when the arguments are not what
  // cublaslt_quant_conv_applies takes.
  CublasLtQuantConvolution(const QuantConvArgs& args, bool residual);
  ~CublasLtQuantConvolution();
  CublasLtQuantConvolution(const CublasLtQuantConvolution&) = delete;
  CublasLtQuantConvolution& operator=(const CublasLtQuantConvolution&) = delete;

  // As CublasLtConvolution's: up to `count` algorithms best first, none when cuBLASLt has none.
  std::vector<LtAlgorithm> heuristic(cublasLtHandle_t handle, size_t workspace_limit, int count);
  bool check(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, size_t* workspace);
  // Runs the matmul on `stream` with the tensors of `args` (x, filter, residual, y: the shape and types
  // described; its scale and bias are those given at construction). Returns cuBLASLt's status; a misaligned
  // pointer or a missing residual throws.
  cublasStatus_t run(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, const QuantConvArgs& args,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream);

 private:
  void release();

  QuantConvArgs shape_;
  bool residual_;
  float* alpha_ = nullptr;  // device: k values, then (with a bias) k values of bias'
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
};

}  // namespace eastrt::cuda
