// The wgmma FP16 GEMM (cuda/gemm_wgmma.h) on the GPU against double-precision products of the same FP16
// values: C = A·Bᵀ (+ bias) rounded to FP16. Skipped without a GPU, and said so on GPUs other than
// compute capability 9.0, which its sm_90a code does not run on.
#ifdef EASTRT_HAVE_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/gemm_wgmma.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/tensor.h"
#include "test_device_memory.h"

namespace eastrt {
namespace {

using test_support::DeviceMemory;

TEST(GpuKernels, WgmmaGemmMatchesTheCpu) {
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) GTEST_SKIP() << "no usable GPU (" << gpu.reason << "): GPU test skipped";
  if (gpu.major != 9 || gpu.minor != 0) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << ": the wgmma code is sm_90a";
  struct Case {
    int m, n, k;
    bool bias;
  };
  // One tile; several tiles each way and K slices; a K of 9 slices with a bias.
  const Case cases[] = {{64, 64, 64, false}, {192, 128, 256, true}, {320, 64, 576, true}, {64, 256, 128, false}};
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.m << "x" << c.k << " times " << c.k << "x" << c.n << (c.bias ? ", bias" : ""));
    const auto random_halves = [&](size_t count) {
      std::vector<uint16_t> v(count);
      for (uint16_t& h : v) h = float_to_half(uniform(rng));
      return v;
    };
    const std::vector<uint16_t> a = random_halves(size_t(c.m) * c.k), b = random_halves(size_t(c.n) * c.k);
    const std::vector<uint16_t> bias = random_halves(c.n);
    DeviceMemory memory;
    void* y = memory.allocate(size_t(c.m) * c.n * 2);
    ASSERT_EQ(cudaMemset(y, 0xff, size_t(c.m) * c.n * 2), cudaSuccess);  // NaN: every element must be written
    cuda::run_wgmma_gemm(memory.upload(a), memory.upload(b), c.bias ? memory.upload(bias) : nullptr, y, c.m, c.n, c.k,
                         nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<uint16_t> got(size_t(c.m) * c.n);
    ASSERT_EQ(cudaMemcpy(got.data(), y, got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    double error = 0, norm = 0;
    int64_t nans = 0;
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double want = c.bias ? half_to_float(bias[j]) : 0.0;
        for (int q = 0; q < c.k; ++q)
          want += double(half_to_float(a[size_t(i) * c.k + q])) * half_to_float(b[size_t(j) * c.k + q]);
        const double value = half_to_float(got[size_t(i) * c.n + j]);
        if (std::isnan(value)) ++nans;
        error += (value - want) * (value - want);
        norm += want * want;
      }
    EXPECT_EQ(nans, 0);
    EXPECT_LE(std::sqrt(error / norm), 1e-3);  // FP16 output rounding: about 3e-4
  }
}

TEST(GpuKernels, WgmmaGemmRefusesShapesItDoesNotTake) {
  EXPECT_TRUE(cuda::wgmma_gemm_fits(64, 64, 64));
  EXPECT_FALSE(cuda::wgmma_gemm_fits(65, 64, 64));
  EXPECT_FALSE(cuda::wgmma_gemm_fits(64, 32, 64));
  EXPECT_FALSE(cuda::wgmma_gemm_fits(64, 64, 48));
  EXPECT_FALSE(cuda::wgmma_gemm_fits(0, 64, 64));
  EXPECT_THROW(cuda::run_wgmma_gemm(nullptr, nullptr, nullptr, nullptr, 64, 64, 48, nullptr), Error);
}

}  // namespace
}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
