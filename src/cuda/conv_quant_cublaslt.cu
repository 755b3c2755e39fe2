// The INT8 1×1 convolution as a cuBLASLt integer matmul (see conv_quant_cublaslt.h).
#include "cuda/conv_quant_cublaslt.h"

#include <cstdint>
#include <vector>

#include "cuda/cuda_check.h"
#include "eastrt/error.h"

namespace eastrt::cuda {

// The layout is conv_cublaslt.cu's: D (K×M column-major, ld K) = filterᵀ (op T of the C×K matrix, ld C) times
// the input (C×M, ld C), M = N·H·W, so that alpha, one per row of D, is one per output channel.

bool cublaslt_quant_conv_applies(const QuantConvArgs& a, bool residual, const char** why) {
  const char* no = nullptr;
  if (a.in_type != QType::kInt8 || a.out_type != QType::kInt8)
    no = "cuBLASLt's integer matmul is taken for INT8 input and output only";
  else if (a.r != 1 || a.s != 1 || a.stride_h != 1 || a.stride_w != 1 || a.pad_top != 0 || a.pad_left != 0 ||
           a.oh != a.h || a.ow != a.w)
    no = "not a 1x1, stride-1, unpadded convolution";
  else if ((a.y_pixel_stride != 0 && a.y_pixel_stride != a.k) || a.y_channel_offset != 0)
    no = "a channel slice as output (the matmul writes dense outputs only)";
  else if (a.act.type != 0)
    no = "no ReLU (cuBLASLt saturates negative values to -128, eastrt's INT8 codes stop at -127)";
  else if (residual && a.residual_type != QType::kInt8)
    no = "a residual that is not INT8 (the matmul's C is in the output's type)";
  else if (a.c % 4 != 0 || a.k % 4 != 0)
    no = "channel counts not multiples of 4";
  if (why) *why = no;
  return no == nullptr;
}

CublasLtQuantConvolution::CublasLtQuantConvolution(const QuantConvArgs& args, bool residual)
    : shape_(args), residual_(residual) {
  const QuantConvArgs& a = args;
  const char* no = nullptr;
  if (!cublaslt_quant_conv_applies(a, residual, &no)) throw_error("cuBLASLt's INT8 convolution: ", no);
  EASTRT_CHECK(a.scale != nullptr, "cuBLASLt's INT8 convolution: no scales given");

  // alpha and bias' from the device's scale and bias, rounded once each.
  const size_t k = static_cast<size_t>(a.k);
  std::vector<float> host(a.bias ? 2 * k : k);
  EASTRT_CUDA(cudaMemcpy(host.data(), a.scale, k * sizeof(float), cudaMemcpyDeviceToHost));
  if (a.bias) EASTRT_CUDA(cudaMemcpy(host.data() + k, a.bias, k * sizeof(float), cudaMemcpyDeviceToHost));
  const float inverse = 1.0f / a.out_scale;
  for (float& v : host) v *= inverse;
  EASTRT_CUDA(cudaMalloc(&alpha_, host.size() * sizeof(float)));
  try {
    EASTRT_CUDA(cudaMemcpy(alpha_, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
    EASTRT_CUBLAS(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32I, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
    // alpha a device vector (one per row of D), beta a host scalar (zero without a residual).
    const cublasLtPointerMode_t mode = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode));
    const cublasLtEpilogue_t epilogue = a.bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
    if (a.bias) {
      const float* bias = alpha_ + k;
      const cudaDataType_t bias_type = CUDA_R_32F;
      EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
      EASTRT_CUBLAS(
          cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
    }
    const uint64_t m = static_cast<uint64_t>(a.k), depth = static_cast<uint64_t>(a.c);
    const uint64_t n = static_cast<uint64_t>(a.n) * a.h * a.w;
    EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&a_, CUDA_R_8I, depth, m, static_cast<int64_t>(depth)));
    EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&b_, CUDA_R_8I, depth, n, static_cast<int64_t>(depth)));
    EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&c_, CUDA_R_8I, m, n, static_cast<int64_t>(m)));
  } catch (...) {
    release();
    throw;
  }
}

CublasLtQuantConvolution::~CublasLtQuantConvolution() { release(); }

void CublasLtQuantConvolution::release() {
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (op_) cublasLtMatmulDescDestroy(op_);
  cudaFree(alpha_);  // never throws; a failure would only leak
  c_ = b_ = a_ = nullptr, op_ = nullptr, alpha_ = nullptr;
}

std::vector<LtAlgorithm> CublasLtQuantConvolution::heuristic(cublasLtHandle_t handle, size_t workspace_limit,
                                                             int count) {
  return matmul_heuristic(handle, op_, a_, b_, c_, workspace_limit, count);
}

bool CublasLtQuantConvolution::check(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, size_t* workspace) {
  return matmul_accepts(handle, op_, a_, b_, c_, algo, workspace);
}

cublasStatus_t CublasLtQuantConvolution::run(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo,
                                             const QuantConvArgs& a, void* workspace, size_t workspace_bytes,
                                             cudaStream_t stream) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % kCublasLtAlignment == 0; };
  EASTRT_CHECK(aligned(a.x) && aligned(a.filter) && aligned(a.y) && (!residual_ || aligned(a.residual)),
               "cuBLASLt's INT8 convolution: an operand is not ", kCublasLtAlignment, "-byte aligned");
  EASTRT_CHECK(!residual_ || a.residual, "cuBLASLt's INT8 convolution: the layer has a residual and none was given");
  const float beta = residual_ ? shape_.residual_scale / shape_.out_scale : 0.0f;
  // Without a residual C is never read (beta 0) but must be a valid matrix: the output stands in.
  const void* c = residual_ ? a.residual : a.y;
  return cublasLtMatmul(handle, op_, alpha_, a.filter, a_, a.x, b_, &beta, c, c_, a.y, c_, &algo, workspace,
                        workspace_bytes, stream);
}

}  // namespace eastrt::cuda
