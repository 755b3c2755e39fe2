// The wgmma kernels (sm_90a) on the GPU: the FP16 GEMM (cuda/gemm_wgmma.h) against double-precision
// products of the same FP16 values, C = A·Bᵀ (+ bias) rounded to FP16; the conv/max-pool kernel on wgmma
// against the mma.sync one (kernels.h), which the engine tests check against the CPU, and the two timed.
// Skipped without a GPU, and said so on GPUs other than compute capability 9.0, which sm_90a code does not
// run on.
#ifdef EASTRT_HAVE_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda/gemm_wgmma.h"
#include "cuda/kernels.h"
#include "cuda/sm90a.h"
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
  if (!cuda::runs_sm90a(gpu.major, gpu.minor)) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << ": the wgmma code is sm_90a";
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

// Both conv/max-pool kernels on the same X', filter (the space-to-depth layout [64][4][4][16], zeros past
// 4C as space_to_depth_filter writes them) and bias, at sizes with partial tiles and both pads, float32 and
// FP16 inputs of 3 and 4 channels; then both timed (median of 20 launches, events) at EAST's batch-16 conv1.
TEST(GpuKernels, ConvMaxPoolWgmmaMatchesTheMmaSyncKernel) {
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) GTEST_SKIP() << "no usable GPU (" << gpu.reason << "): GPU test skipped";
  if (!cuda::runs_sm90a(gpu.major, gpu.minor)) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << ": the wgmma code is sm_90a";
  std::mt19937 rng(47);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  struct Case {
    int n, h, w, c;
    int conv_pad, pool_pad;
    bool fp16, bias, relu;
  };
  const Case cases[] = {{2, 75, 130, 3, 3, 1, true, true, true},
                        {1, 37, 53, 3, 2, 0, false, false, true},
                        {1, 24, 95, 4, 3, 1, false, true, false},
                        {16, 672, 1280, 3, 2, 0, true, true, true}};  // EAST's conv1 at batch 16 (timed)
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.n << "x" << c.h << "x" << c.w << "x" << c.c << (c.fp16 ? " FP16" : " float32"));
    cuda::ConvMaxPoolArgs a;
    a.n = c.n, a.h = c.h, a.w = c.w, a.c = c.c;
    a.conv_top = a.conv_left = c.conv_pad;
    a.oh = (c.h + 2 * c.conv_pad - 7) / 2 + 1, a.ow = (c.w + 2 * c.conv_pad - 7) / 2 + 1;
    a.pool_top = a.pool_left = c.pool_pad;
    a.ph = (a.oh + 2 * c.pool_pad - 3) / 2 + 1, a.pw = (a.ow + 2 * c.pool_pad - 3) / 2 + 1;
    a.relu = c.relu;
    const size_t elements = size_t(c.n) * c.h * c.w * c.c;
    std::vector<float> x(elements);
    for (float& v : x) v = uniform(rng);
    std::vector<uint16_t> x16(elements), filter(64 * 256, 0), bias(64);
    for (size_t i = 0; i < elements; ++i) x16[i] = float_to_half(x[i]);
    for (int f = 0; f < 64; ++f)
      for (int tap = 0; tap < 16; ++tap)
        for (int ch = 0; ch < 4 * c.c; ++ch) filter[f * 256 + tap * 16 + ch] = float_to_half(uniform(rng) * 0.2f);
    for (uint16_t& v : bias) v = float_to_half(uniform(rng));
    const std::vector<float> shift = {0.25f, -0.5f, 0.125f, 0.75f};
    DeviceMemory memory;
    const void* xd = c.fp16 ? static_cast<const void*>(memory.upload(x16)) : memory.upload(x);
    const void* fd = memory.upload(filter);
    const void* bd = c.bias ? memory.upload(bias) : nullptr;
    const float* sd = memory.upload(std::vector<float>(shift.begin(), shift.begin() + c.c));
    const size_t outputs = size_t(c.n) * a.ph * a.pw * 64;
    void* want = memory.allocate(outputs * 2);
    void* got = memory.allocate(outputs * 2);
    ASSERT_EQ(cudaMemset(got, 0xff, outputs * 2), cudaSuccess);  // NaN: every output must be written
    const cuda::DType xt = c.fp16 ? cuda::DType::kF16 : cuda::DType::kF32;
    const auto mma_sync = [&] { cuda::launch_conv_max_pool(xd, xt, sd, fd, bd, want, a, false, nullptr); };
    const auto wgmma = [&] { cuda::launch_conv_max_pool_wgmma(xd, xt, sd, fd, bd, got, a, nullptr); };
    mma_sync();
    wgmma();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<uint16_t> w(outputs), g(outputs);
    ASSERT_EQ(cudaMemcpy(w.data(), want, outputs * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(g.data(), got, outputs * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    double error = 0, norm = 0;
    int64_t nans = 0;
    for (size_t i = 0; i < outputs; ++i) {
      const double a_ = half_to_float(w[i]), b_ = half_to_float(g[i]);
      if (std::isnan(b_)) ++nans;
      error += (a_ - b_) * (a_ - b_), norm += a_ * a_;
    }
    EXPECT_EQ(nans, 0);
    EXPECT_LE(std::sqrt(error / norm), 2e-3);  // the same products summed in another order, rounded to FP16
    if (c.n < 16) continue;
    const auto median_ms = [&](const auto& run) {
      cudaEvent_t start, stop;
      cudaEventCreate(&start), cudaEventCreate(&stop);
      std::vector<float> ms(20);
      for (float& t : ms) {
        cudaEventRecord(start);
        run();
        cudaEventRecord(stop);
        cudaEventSynchronize(stop);
        cudaEventElapsedTime(&t, start, stop);
      }
      cudaEventDestroy(start), cudaEventDestroy(stop);
      std::nth_element(ms.begin(), ms.begin() + 10, ms.end());
      return ms[10];
    };
    mma_sync(), wgmma();  // warm-up
    const float sync_ms = median_ms(mma_sync), wgmma_ms = median_ms(wgmma);
    std::printf("conv/max-pool at %dx%dx%dx%d: mma.sync kernel %.4f ms, wgmma kernel %.4f ms (median of 20)\n", c.n,
                c.h, c.w, c.c, sync_ms, wgmma_ms);
    EXPECT_GT(wgmma_ms, 0.0f);
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
