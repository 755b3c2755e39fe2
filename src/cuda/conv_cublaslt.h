// 1×1, stride-1, ungrouped convolutions on NHWC tensors as one cuBLASLt matmul: the input [N·H·W, C] times
// the filter (KRSC, here [K, C]) transposed gives the output [N·H·W, K], with bias, the residual (as the C
// matrix, beta = 1) and ReLU in cuBLASLt's epilogue. C++17 (used from .cu and .cpp).
#pragma once
#include <cublasLt.h>

#include <cstdint>
#include <vector>

#include "cuda/conv_cudnn.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace eastrt::cuda {

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw_error("cuBLASLt error ", static_cast<int>(status), " in ", call, " at ", file, ":", line);
}
#define EASTRT_CUBLAS(call) ::eastrt::cuda::check_cublas((call), #call, __FILE__, __LINE__)

// Every device pointer the matmul reads or writes must be this aligned: what the heuristic is told, and
// what cudaMalloc, the weight blob and the activation planner give (256 bytes).
inline constexpr size_t kCublasLtAlignment = 256;

// Whether a convolution is this GEMM: 1×1, stride 1, no padding, one group, and an epilogue cuBLASLt
// computes as we do, act(conv + bias + residual) with act identity or ReLU (activation type -1 or 0).
// cuBLASLt's epilogue is D = act(alpha·A·B + beta·C + bias): the residual as C is added before the ReLU,
// as the layer's fused epilogue needs.
bool cublaslt_conv_fits(const ConvGeometry& g, const Activation& act);

// The compute type a precision's matmul runs with: FP32 strict (CUBLAS_COMPUTE_32F), TF32
// (CUBLAS_COMPUTE_32F_FAST_TF32), FP16 storage with FP32 accumulation (CUBLAS_COMPUTE_32F).
int cublaslt_compute_type(bool tf32);

// One algorithm as cuBLASLt describes it: the opaque algo (64 bytes, stored in plans as they are) and the
// configuration it decodes to, which names it in reports and checks a stored one against what was chosen.
struct LtAlgorithm {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  int rank = 0;  // its place in the heuristic's answer
  int id = 0, tile = 0, stages = 0, split_k = 1;
};

// Reads the configuration of `algo` back from cuBLASLt (id, tile, stages, split-K).
void describe_algorithm(LtAlgorithm* a);

// Up to `count` algorithms from cuBLASLt's heuristic for the matmul D = op(A)·B (+ C) with D laid out as C,
// within `workspace_limit` and for pointers kCublasLtAlignment-aligned, best first (none when cuBLASLt has
// none for these shapes, types and alignments). Shared by the FP16/FP32 and the INT8 matmuls.
std::vector<LtAlgorithm> matmul_heuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                          cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, size_t workspace_limit,
                                          int count);
// Whether cuBLASLt accepts `algo` for that matmul, and the workspace it then needs.
bool matmul_accepts(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                    cublasLtMatrixLayout_t c, const cublasLtMatmulAlgo_t& algo, size_t* workspace);

class CublasLtConvolution {
 public:
  // `compute` from cublaslt_compute_type; `bias` may be null (no bias in the epilogue). The bias pointer is
  // given here because the heuristic reads its alignment.
  CublasLtConvolution(const ConvGeometry& geometry, DType type, int compute, const void* bias, bool residual,
                      bool relu);
  ~CublasLtConvolution();
  CublasLtConvolution(const CublasLtConvolution&) = delete;
  CublasLtConvolution& operator=(const CublasLtConvolution&) = delete;

  // Up to `count` algorithms from cuBLASLt's heuristic within `workspace_limit`, best first (none when
  // cuBLASLt has none for these shapes, types and alignments).
  std::vector<LtAlgorithm> heuristic(cublasLtHandle_t handle, size_t workspace_limit, int count);
  // Whether cuBLASLt accepts `algo` for this problem, and the workspace it then needs.
  bool check(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, size_t* workspace);
  // Runs the matmul on `stream`: x, w, bias as given at construction, residual when the layer has one, y.
  // Returns cuBLASLt's status (an algorithm may refuse); a misaligned pointer throws.
  cublasStatus_t run(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, const ConvOperands& operands,
                     cudaStream_t stream);

 private:
  ConvGeometry geometry_;
  const void* bias_;
  bool residual_;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
};

}  // namespace eastrt::cuda
