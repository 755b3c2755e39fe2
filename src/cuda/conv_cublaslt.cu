// The cuBLASLt tactic for 1×1 convolutions (see conv_cublaslt.h).
#include "cuda/conv_cublaslt.h"

#include <cstdint>

#include "eastrt/error.h"

namespace eastrt::cuda {

// cuBLASLt is column-major. The NHWC input [M = N·H·W rows, C] row-major is, column-major, the C×M matrix
// with leading dimension C; the filter [K, C] row-major is the C×K matrix with ld C; the output [M, K] is
// the K×M matrix with ld K. So D (K×M) = op(A)·B with A the filter transposed (m = K, k = C) and B the
// input (n = M): the bias, one per row of D, is one per output channel as the layer has it.

bool cublaslt_conv_fits(const ConvGeometry& g, const Activation& act) {
  return g.r == 1 && g.s == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
         g.groups == 1 && g.oh == g.h && g.ow == g.w && (act.type == -1 || act.type == 0);
}

int cublaslt_compute_type(bool tf32) {
  return static_cast<int>(tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
}

void describe_algorithm(LtAlgorithm* a) {
  int32_t id = 0, split_k = 1;
  uint32_t tile = 0, stages = 0;
  size_t written = 0;
  EASTRT_CUBLAS(cublasLtMatmulAlgoConfigGetAttribute(&a->algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &written));
  EASTRT_CUBLAS(cublasLtMatmulAlgoConfigGetAttribute(&a->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &written));
  EASTRT_CUBLAS(
      cublasLtMatmulAlgoConfigGetAttribute(&a->algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &written));
  EASTRT_CUBLAS(
      cublasLtMatmulAlgoConfigGetAttribute(&a->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split_k, sizeof split_k, &written));
  a->id = id, a->tile = static_cast<int>(tile), a->stages = static_cast<int>(stages), a->split_k = split_k;
}

CublasLtConvolution::CublasLtConvolution(const ConvGeometry& geometry, DType type, int compute, const void* bias,
                                         bool residual, bool relu)
    : geometry_(geometry), bias_(bias), residual_(residual) {
  EASTRT_CHECK(cublaslt_conv_fits(geometry, relu ? Activation{0} : Activation{}),
               "cuBLASLt convolution: not a 1x1, stride-1, unpadded, ungrouped convolution");
  const cudaDataType_t data = type == DType::kF16 ? CUDA_R_16F : CUDA_R_32F;
  const uint64_t m = static_cast<uint64_t>(geometry.k), k = static_cast<uint64_t>(geometry.c);
  const uint64_t n = static_cast<uint64_t>(geometry.n) * geometry.h * geometry.w;
  EASTRT_CUBLAS(cublasLtMatmulDescCreate(&op_, static_cast<cublasComputeType_t>(compute), CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
  const cublasLtEpilogue_t epilogue = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                           : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (bias) {
    // The bias is in the output's type: cuBLASLt's default bias type for FP32 and FP16 outputs, and what the
    // weight upload stores (the step's storage type).
    EASTRT_CUBLAS(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_, sizeof bias_));
  }
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&a_, data, k, m, static_cast<int64_t>(k)));
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&b_, data, k, n, static_cast<int64_t>(k)));
  EASTRT_CUBLAS(cublasLtMatrixLayoutCreate(&c_, data, m, n, static_cast<int64_t>(m)));
}

CublasLtConvolution::~CublasLtConvolution() {
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (op_) cublasLtMatmulDescDestroy(op_);
}

std::vector<LtAlgorithm> matmul_heuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                          cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, size_t workspace_limit,
                                          int count) {
  cublasLtMatmulPreference_t preference = nullptr;
  EASTRT_CUBLAS(cublasLtMatmulPreferenceCreate(&preference));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int returned = 0;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  try {
    const uint64_t limit = workspace_limit;
    EASTRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit,
                                                       sizeof limit));
    const uint32_t alignment = kCublasLtAlignment;
    for (cublasLtMatmulPreferenceAttributes_t attribute :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      EASTRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof alignment));
    status = cublasLtMatmulAlgoGetHeuristic(handle, op, a, b, c, c, preference, count, results.data(), &returned);
  } catch (...) {
    cublasLtMatmulPreferenceDestroy(preference);
    throw;
  }
  cublasLtMatmulPreferenceDestroy(preference);
  std::vector<LtAlgorithm> algos;
  // NOT_SUPPORTED: no algorithm for this problem (shapes, types, alignment), an empty answer; anything else
  // is an error the caller reports.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return algos;
  EASTRT_CUBLAS(status);
  for (int i = 0; i < returned; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > workspace_limit) continue;
    LtAlgorithm algo;
    algo.algo = results[i].algo;
    algo.workspace = results[i].workspaceSize;
    algo.rank = i;
    describe_algorithm(&algo);
    algos.push_back(algo);
  }
  return algos;
}

bool matmul_accepts(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                    cublasLtMatrixLayout_t c, const cublasLtMatmulAlgo_t& algo, size_t* workspace) {
  cublasLtMatmulHeuristicResult_t result{};
  if (cublasLtMatmulAlgoCheck(handle, op, a, b, c, c, &algo, &result) != CUBLAS_STATUS_SUCCESS) return false;
  if (result.state != CUBLAS_STATUS_SUCCESS) return false;
  *workspace = result.workspaceSize;
  return true;
}

std::vector<LtAlgorithm> CublasLtConvolution::heuristic(cublasLtHandle_t handle, size_t workspace_limit, int count) {
  return matmul_heuristic(handle, op_, a_, b_, c_, workspace_limit, count);
}

bool CublasLtConvolution::check(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo, size_t* workspace) {
  return matmul_accepts(handle, op_, a_, b_, c_, algo, workspace);
}

cublasStatus_t CublasLtConvolution::run(cublasLtHandle_t handle, const cublasLtMatmulAlgo_t& algo,
                                        const ConvOperands& o, cudaStream_t stream) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % kCublasLtAlignment == 0; };
  EASTRT_CHECK(aligned(o.x) && aligned(o.w) && aligned(o.y) && (!residual_ || aligned(o.residual)) &&
                   (!bias_ || aligned(bias_)),
               "cuBLASLt convolution: an operand is not ", kCublasLtAlignment, "-byte aligned");
  EASTRT_CHECK(!residual_ || o.residual, "cuBLASLt convolution: the layer has a residual and none was given");
  const float alpha = 1.0f, beta = residual_ ? 1.0f : 0.0f;
  // Without a residual C is never read (beta 0) but must be a valid matrix: the output stands in.
  const void* c = residual_ ? o.residual : o.y;
  return cublasLtMatmul(handle, op_, &alpha, o.w, a_, o.x, b_, &beta, c, c_, o.y, c_, &algo, o.workspace,
                        o.workspace_bytes, stream);
}

}  // namespace eastrt::cuda
