// The FP8 E4M3 GEMM launcher (cuda/gemm_fp8.h) on the GPU against the CPU's fake-quantised reference: the
// same E4M3 codes and scales dequantised on the host (eastrt/quant.h), multiplied in double, bias (FP16)
// and ReLU added, then rounded to FP16 as the output is (E4M3 output is refused for now: gemm_fp8.cu). Skipped without a GPU,
// and said so on GPUs before sm_89, which have no FP8 matmul.
#ifdef EASTRT_HAVE_CUDA
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/conv_cublaslt.h"
#include "cuda/gemm_fp8.h"
#include "test_device_memory.h"
#include "eastrt/gpu.h"
#include "eastrt/quant.h"
#include "eastrt/tensor.h"

namespace eastrt {
namespace {

using test_support::DeviceMemory;

TEST(GpuKernels, Fp8GemmMatchesTheFakeQuantisedCpu) {
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) GTEST_SKIP() << "no usable GPU (" << gpu.reason << "): GPU test skipped";
  if (gpu.major * 10 + gpu.minor < 89) GTEST_SKIP() << "sm_" << gpu.major << gpu.minor << " has no FP8 matmul";
  struct Case {
    const char* what;
    int64_t m, k, n;
    bool bias, relu;
    cuda::Fp8Output output;
  };
  const Case cases[] = {
      {"M 126 (2x7x9), 48 -> 32, bias + ReLU, FP16 out", 126, 48, 32, true, true, cuda::Fp8Output::kFloat16},
      {"M 65, 64 -> 48, no bias, FP16 out", 65, 64, 48, false, false, cuda::Fp8Output::kFloat16},
      {"M 1000, 256 -> 128, bias, FP16 out", 1000, 256, 128, true, false, cuda::Fp8Output::kFloat16},
  };
  cublasLtHandle_t handle = nullptr;
  ASSERT_EQ(cublasLtCreate(&handle), CUBLAS_STATUS_SUCCESS);
  std::mt19937 rng(31);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> x(c.m * c.k), w(c.n * c.k), bias(c.n);
    for (float& v : x) v = uniform(rng);
    for (float& v : w) v = uniform(rng) * 0.2f;
    for (float& v : bias) v = uniform(rng) * 0.5f;
    auto amax = [](const std::vector<float>& v) {
      float a = 0;
      for (float e : v) a = std::max(a, std::abs(e));
      return a;
    };
    const float x_scale = quant::scale_for_amax(amax(x), quant::QuantType::kFp8);
    const float w_scale = quant::scale_for_amax(amax(w), quant::QuantType::kFp8);
    std::vector<uint8_t> xq(x.size()), wq(w.size());
    for (size_t i = 0; i < x.size(); ++i) xq[i] = quant::float_to_e4m3(x[i] / x_scale);
    for (size_t i = 0; i < w.size(); ++i) wq[i] = quant::float_to_e4m3(w[i] / w_scale);
    std::vector<uint16_t> bias_h(c.n);
    for (int64_t i = 0; i < c.n; ++i) bias_h[i] = float_to_half(bias[i]);

    // The reference from the codes, as the GPU sees them.
    std::vector<double> want(c.m * c.n);
    double want_amax = 0;
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < c.k; ++l)
          sum += double(quant::e4m3_to_float(xq[i * c.k + l])) * quant::e4m3_to_float(wq[j * c.k + l]);
        double v = sum * x_scale * w_scale + (c.bias ? half_to_float(bias_h[j]) : 0.0);
        if (c.relu) v = std::max(v, 0.0);
        want[i * c.n + j] = v;
        want_amax = std::max(want_amax, std::abs(v));
      }
    const float y_scale = static_cast<float>(want_amax / quant::kE4m3Max);  // unused by FP16 output

    DeviceMemory memory;
    cuda::Fp8GemmArgs args;
    args.m = c.m, args.k = c.k, args.n = c.n;
    args.x = memory.upload(xq), args.w = memory.upload(wq);
    args.x_scale = memory.upload(std::vector<float>{x_scale}), args.w_scale = memory.upload(std::vector<float>{w_scale});
    args.bias = c.bias ? memory.upload(bias_h) : nullptr;
    args.relu = c.relu;
    args.output = c.output;
    args.y_scale = memory.upload(std::vector<float>{y_scale});
    const bool fp8_out = c.output == cuda::Fp8Output::kE4m3;
    const size_t y_bytes = c.m * c.n * (fp8_out ? 1 : 2);
    args.y = memory.allocate(y_bytes);
    ASSERT_EQ(cudaMemset(args.y, 0xff, y_bytes), cudaSuccess);  // poison: 0xffff is an FP16 NaN, 0xff an E4M3 NaN
    args.workspace_bytes = size_t(32) << 20;
    args.workspace = memory.allocate(args.workspace_bytes);
    float* scratch = static_cast<float*>(memory.allocate(sizeof(float)));
    ASSERT_EQ(cuda::run_fp8_gemm(handle, args, scratch, nullptr), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    if (!fp8_out) {
      std::vector<uint16_t> got(c.m * c.n);
      ASSERT_EQ(cudaMemcpy(got.data(), args.y, y_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
      double diff = 0, norm = 0;
      int64_t nan = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        const double g = half_to_float(got[i]);
        nan += std::isnan(g);
        diff += (g - want[i]) * (g - want[i]);
        norm += want[i] * want[i];
      }
      EXPECT_EQ(nan, 0);
      // FP32 accumulation of exact products, rounded once to FP16: far below 1e-3.
      EXPECT_LE(std::sqrt(diff / norm), 1e-3);
    }
  }
  cublasLtDestroy(handle);
}

// Shapes cuBLASLt's FP8 kernels do not take are an error saying so, before anything runs.
// E4M3 output stays refused until it agrees with the reference (see gemm_fp8.cu).
TEST(GpuKernels, Fp8GemmRefusesE4m3OutputForNow) {
  cuda::Fp8GemmArgs args;
  args.m = 16, args.k = 16, args.n = 16;
  args.output = cuda::Fp8Output::kE4m3;
  alignas(16) static uint8_t bytes[256];
  float* scale = reinterpret_cast<float*>(bytes);
  args.x = args.w = bytes;
  args.y = bytes;
  args.x_scale = args.w_scale = args.y_scale = scale;
  try {
    cuda::run_fp8_gemm(nullptr, args, scale, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("E4M3 output is not enabled"), std::string::npos) << e.what();
  }
}

TEST(GpuKernels, Fp8GemmRefusesSizesNotMultiplesOf16) {
  cuda::Fp8GemmArgs args;
  args.m = 10, args.k = 24, args.n = 32;
  try {
    cuda::run_fp8_gemm(nullptr, args, nullptr, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiples of 16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
