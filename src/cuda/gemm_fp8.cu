// The FP8 E4M3 GEMM launcher (see gemm_fp8.h).
#include "cuda/gemm_fp8.h"

#include <cstdint>

#include "cuda/conv_cublaslt.h"
#include "cuda/cuda_check.h"
#include "eastrt/error.h"

namespace eastrt::cuda {
namespace {

__global__ void reciprocal_kernel(const float* x, float* y) { *y = 1.0f / *x; }

// cuBLASLt descriptors released on every path out.
struct Fp8Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Fp8Descriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cublasStatus_t run_fp8_gemm(cublasLtHandle_t handle, const Fp8GemmArgs& g, float* d_scale_device,
                            cudaStream_t stream) {
  const bool fp8_out = g.output == Fp8Output::kE4m3;
  EASTRT_CHECK(g.m > 0 && g.k > 0 && g.n > 0 && g.k % 16 == 0 && g.n % 16 == 0, "FP8 GEMM: ", g.m, "x", g.k, " times ",
               g.k, "x", g.n, ": cuBLASLt's FP8 matmuls need the inner size and the output columns to be multiples "
               "of 16");
  EASTRT_CHECK(g.x && g.w && g.x_scale && g.w_scale && g.y && aligned16(g.x) && aligned16(g.w) && aligned16(g.y) &&
                   (!g.bias || aligned16(g.bias)),
               "FP8 GEMM: x, w, their scales and y must be given, and x, w, y and the bias 16-byte aligned");
  // On an H200 (commit 7950241) E4M3 output gave 31 of 128 000 codes more than one code from the
  // fake-quantised reference for M 1000, 256 -> 128 with bias and negative outputs (ReLU'd outputs agreed);
  // the cause is not found, so E4M3 output stays off until it is.
  EASTRT_CHECK(!fp8_out, "FP8 GEMM: E4M3 output is not enabled (it disagreed with the fake-quantised reference on "
               "the H200); use FP16 output");
  EASTRT_CHECK(!fp8_out || (g.y_scale && d_scale_device), "FP8 GEMM: an E4M3 output needs its scale and scratch for 1/scale");

  // Column-major, as in conv_cublaslt.cu: D (n×m, ld n) = op(A)·B with A the filter (k×n, ld k, transposed)
  // and B the input (k×m, ld k) — "TN", the one operand order cuBLASLt's FP8 kernels take.
  Fp8Descriptors desc;
  EASTRT_CUBLAS(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
  // value(A)·value(B) = a_scale · b_scale · codes(A)·codes(B): the per-tensor scales go in as cuBLASLt's.
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.w_scale, sizeof g.w_scale));
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.x_scale, sizeof g.x_scale));
  const cublasLtEpilogue_t epilogue = g.bias ? (g.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                             : (g.relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (g.bias) {
    // Said explicitly: with FP8 inputs cuBLASLt's default bias type need not be the C type.
    const cudaDataType_t bias_type = CUDA_R_16F;
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
  }
  if (fp8_out) {
    // cuBLASLt multiplies the result by D's scale before rounding it to E4M3; ours divides: 1 / y_scale.
    reciprocal_kernel<<<1, 1, 0, stream>>>(g.y_scale, d_scale_device);
    EASTRT_CUDA(cudaGetLastError());
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &d_scale_device,
                                                 sizeof d_scale_device));
  }
  const uint64_t m = static_cast<uint64_t>(g.n), n = static_cast<uint64_t>(g.m), k = static_cast<uint64_t>(g.k);
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&desc.a, CUDA_R_8F_E4M3, k, m, static_cast<int64_t>(k)));
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&desc.b, CUDA_R_8F_E4M3, k, n, static_cast<int64_t>(k)));
  // C is never read (beta 0) but its type selects the kernel: FP16 for both outputs.
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&desc.c, CUDA_R_16F, m, n, static_cast<int64_t>(m)));
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&desc.d, fp8_out ? CUDA_R_8F_E4M3 : CUDA_R_16F, m, n, static_cast<int64_t>(m)));

  EASTRT_CUBLAS(cublasLtMatmulPreferenceCreate(&desc.preference));
  const uint64_t limit = g.workspace_bytes;
  EASTRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit,
                                                     sizeof limit));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t found = cublasLtMatmulAlgoGetHeuristic(handle, desc.op, desc.a, desc.b, desc.c, desc.d,
                                                              desc.preference, 1, &result, &returned);
  if (found != CUBLAS_STATUS_SUCCESS) return found;
  if (returned == 0 || result.state != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(handle, desc.op, &alpha, g.w, desc.a, g.x, desc.b, &beta, nullptr, desc.c, g.y, desc.d,
                        &result.algo, g.workspace, g.workspace_bytes, stream);
}

}  // namespace eastrt::cuda
