// Groundwork for Hopper's warpgroup MMA (wgmma): one FP16 GEMM, C = A·Bᵀ + bias, the shape of a 1x1
// convolution (A an NHWC activation [m][k], B its filter [n][k], C [m][n]), float32 accumulation. Built
// for sm_90a alone (gemm_wgmma.cu); not a builder tactic: its test (GpuKernels.WgmmaGemmMatchesTheCpu)
// checks the descriptor and fragment layouts the convolution kernels would build on.
#pragma once
#include <cuda_runtime.h>

namespace eastrt::cuda {

// m, n and k multiples of 64 (one block a 64x64 tile of C, k in steps of 64).
bool wgmma_gemm_fits(int m, int n, int k);
// a [m][k], b [n][k], bias [n] (or null), c [m][n]: FP16, 16-byte aligned. Throws where the shape does not
// fit or the current device is not compute capability 9.0 (sm_90a code runs there only).
void run_wgmma_gemm(const void* a, const void* b, const void* bias, void* c, int m, int n, int k,
                    cudaStream_t stream);

}  // namespace eastrt::cuda
