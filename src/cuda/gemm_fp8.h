// FP8 E4M3 GEMM through cuBLASLt, groundwork for issue 7's quantised 1x1 convolutions (not yet a builder
// tactic): y [M, N] = act(dequant(x) [M, K] · dequant(w) [N, K]ᵀ + bias), x and w E4M3 codes with one scale
// each, y FP16 or E4M3 (requantised by its own scale in the epilogue). C++17 (used from .cu and .cpp).
#pragma once
#include <cublasLt.h>

#include <cstddef>
#include <cstdint>

namespace eastrt::cuda {

enum class Fp8Output { kFloat16, kE4m3 };

struct Fp8GemmArgs {
  int64_t m = 0;  // rows of x and y (N·H·W for a convolution)
  int64_t k = 0;  // columns of x and w (input channels): a multiple of 16
  int64_t n = 0;  // rows of w, columns of y (output channels): a multiple of 16
  const uint8_t* x = nullptr;  // [m, k] E4M3 codes, row-major
  const uint8_t* w = nullptr;  // [n, k] E4M3 codes, row-major (a KRSC 1x1 filter)
  const float* x_scale = nullptr;  // device, one float each: the value of code c is e4m3(c) · scale
  const float* w_scale = nullptr;
  const uint16_t* bias = nullptr;  // n FP16 values, or null
  bool relu = false;
  Fp8Output output = Fp8Output::kFloat16;
  // E4M3 output only, device: y's scale, so that y's code is e4m3(result / y_scale) (saturated to ±448).
  const float* y_scale = nullptr;
  void* y = nullptr;  // [m, n] row-major: FP16 values or E4M3 codes
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// Checks the shapes and pointers (an Error says what is wrong: FP8 matmuls need k and n multiples of 16
// and 16-byte aligned operands), takes cuBLASLt's first heuristic algorithm and runs it on `stream`.
// Returns CUBLAS_STATUS_NOT_SUPPORTED where cuBLASLt has no FP8 algorithm (GPUs before sm_89), or
// cuBLASLt's status; `d_scale_device` is scratch for one float (1 / y_scale, computed on the device).
cublasStatus_t run_fp8_gemm(cublasLtHandle_t handle, const Fp8GemmArgs& args, float* d_scale_device,
                            cudaStream_t stream);

}  // namespace eastrt::cuda
