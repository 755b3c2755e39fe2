// Tests of the cuBLASLt tactic for 1x1 convolutions on the GPU (skipped without one): every algorithm
// cuBLASLt's heuristic offers, forced into a plan, against the CPU reference on awkward shapes; the builder
// timing it and the timing cache keeping it; plans whose algorithm this cuBLASLt would not read refused.
// The plan and cache formats of the tactic are tested without a GPU in test_gpu_engine.cpp and
// test_timing_cache.cpp.
#ifdef EASTRT_HAVE_CUDA
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "conv_cases.h"
#include "cuda/engine_impl.h"
#include "cuda/timing_cache.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "test_device_memory.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {

struct OneByOne {
  const char* what;
  Shape input;  // N, H, W, C
  int k;
  bool bias, residual;
  std::optional<ActivationType> activation;
};

// conv 1x1 (+ residual add) (+ activation), which the passes fuse into one convolution step; the weights
// depend only on `seed`, so that the same layer can be made at another batch for the CPU reference.
Network one_by_one(const OneByOne& c, int batch, unsigned seed) {
  Shape shape = c.input;
  shape[0] = batch;
  std::mt19937 rng(seed);
  return conv_case_network({c.what, shape, c.k, 1, 1, 1, 1, {}, c.bias, c.activation, c.residual, false}, rng);
}

// The plan of `built` with its convolution's tactic replaced by cuBLASLt's algorithm `a`.
std::unique_ptr<Engine> with_matmul(Engine& built, const cuda::LtAlgorithm& a, Precision precision) {
  gpu::ParsedPlan parsed = gpu::parse_plan(built.serialize(), "cublaslt.plan");
  const size_t i = conv_step(parsed.plan);
  parsed.plan.steps[i].tactic = gpu::cublaslt_tactic(a, precision);
  parsed.plan.workspace_bytes = std::max<int64_t>(parsed.plan.workspace_bytes, static_cast<int64_t>(a.workspace));
  return Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "cublaslt.plan");
}

// Every algorithm (up to 4) that cuBLASLt's heuristic offers for the layer, forced into the plan, at the
// largest batch and at batch 1: odd H·W, C and K not multiples of 8 (FP16's C is padded to 8 by the
// lowering; K is not), batch 2-3, bias, residual (cuBLASLt's C with beta 1, added before the ReLU), no bias.
// An activation cuBLASLt's epilogue does not compute (sigmoid) is not offered at all.
TEST(GpuKernels, CublasLtConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  const OneByOne cases[] = {
      {"odd H*W, C 13 -> K 11, bias, residual + ReLU", {2, 7, 9, 13}, 11, true, true, ActivationType::kRelu},
      {"batch 3, 5x5, C 24 -> K 40, bias + ReLU", {3, 5, 5, 24}, 40, true, false, ActivationType::kRelu},
      {"C 64 -> K 32, residual, no bias, no activation", {2, 11, 13, 64}, 32, false, true, std::nullopt},
      {"C 8 -> K 7, bias only", {2, 6, 10, 8}, 7, true, false, std::nullopt},
      {"C 40 -> K 24, residual + ReLU", {3, 3, 7, 40}, 24, true, true, ActivationType::kRelu},
  };
  LtHandle handle;
  std::mt19937 rng(21);
  int checked = 0;
  unsigned seed = 100;
  for (const OneByOne& c : cases) {
    for (Precision precision : kPrecisions) {
      SCOPED_TRACE(std::string(c.what) + " at " + to_string(precision));
      const int max_batch = static_cast<int>(c.input[0]);
      const Network net = one_by_one(c, max_batch, ++seed), net1 = one_by_one(c, 1, seed);
      BuildOptions options;
      options.precision = precision;
      options.max_batch = max_batch;
      options.time_tactics = false;  // the heuristic's cuDNN tactic: this test replaces it anyway
      std::unique_ptr<Engine> built = Builder(net, options).build();
      const Engine::Impl& impl = built->impl();
      const size_t i = conv_step(impl.plan);
      ASSERT_TRUE(gpu::cublaslt_applies(impl.plan, impl.plan.steps[i]));
      auto matmul = gpu::cublaslt_convolution(impl.plan, impl.plan.steps[i], impl.step_weights[i], max_batch);
      const std::vector<cuda::LtAlgorithm> algos = matmul->heuristic(handle.get(), options.workspace_bytes, 4);
      const bool aligned = c.input[3] % 8 == 0 && c.k % 8 == 0;
      if (aligned || precision != Precision::kFp16) EXPECT_FALSE(algos.empty()) << "cuBLASLt offers no algorithm";
      auto matmul1 = gpu::cublaslt_convolution(impl.plan, impl.plan.steps[i], impl.step_weights[i], 1);
      for (const cuda::LtAlgorithm& a : algos) {
        size_t ignored = 0;
        if (!matmul1->check(handle.get(), a.algo, &ignored)) continue;  // the builder would not offer it either
        std::unique_ptr<Engine> engine = with_matmul(*built, a, precision);
        const std::string tactic = gpu::describe(engine->impl().plan.steps[i].tactic);
        SCOPED_TRACE(tactic);
        EXPECT_EQ(tactic.rfind("cublaslt#" + std::to_string(a.rank), 0), 0u);
        auto context = engine->create_context();
        const auto inputs = random_inputs(net, rng);
        context->poison();
        const auto got = context->run(inputs);
        EXPECT_EQ(nan_count(got.at("y")), 0);
        EXPECT_LE(relative_error(got.at("y"), CpuEngine(net, {1, true}).run(inputs).at("y")), tolerance(precision));
        // Reproducible: a second run gives the same bits (the builder keeps only deterministic tactics; a
        // split-K reduction must not depend on the order blocks finish in).
        EXPECT_EQ(context->run(inputs).at("y").data, got.at("y").data);
        if (max_batch > 1) {  // the same algorithm at batch 1 (M = H·W): the context checks and runs it
          const auto inputs1 = random_inputs(net1, rng);
          context->poison();
          const auto got1 = context->run(inputs1);
          EXPECT_EQ(nan_count(got1.at("y")), 0);
          EXPECT_LE(relative_error(got1.at("y"), CpuEngine(net1, {1, true}).run(inputs1).at("y")), tolerance(precision));
        }
        ++checked;
      }
    }
  }
  // At least one algorithm for each FP32 and TF32 case and each FP16 case with C and K multiples of 8.
  EXPECT_GE(checked, 13);

  // Not offered: an activation after the epilogue (sigmoid), a 1x1 with stride 2, a 3x3.
  for (int variant = 0; variant < 3; ++variant) {
    std::mt19937 wrng(7);
    Network net;
    Tensor* x = net.add_input("x", {2, 8, 10, 16});
    ConvolutionParams p;
    p.out_channels = 16;
    p.kernel = variant == 2 ? std::array<int, 2>{3, 3} : std::array<int, 2>{1, 1};
    p.padding = variant == 2 ? Padding::symmetric(1) : Padding{};
    p.stride = variant == 1 ? std::array<int, 2>{2, 2} : std::array<int, 2>{1, 1};
    p.kernel_weights = random_weights({16, 16, p.kernel[0], p.kernel[1]}, wrng, -0.3f, 0.3f);
    Tensor* y = net.add_convolution(x, p, "conv");
    if (variant == 0) y = net.add_activation(y, ActivationType::kSigmoid, "act");
    net.mark_output(y, "y");
    BuildOptions options;
    options.max_batch = 2;
    options.time_tactics = false;
    std::unique_ptr<Engine> built = Builder(net, options).build();
    const gpu::PlanData& plan = built->impl().plan;
    EXPECT_FALSE(gpu::cublaslt_applies(plan, plan.steps[conv_step(plan)])) << "variant " << variant;
  }
}

std::string temporary_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("eastrt_" + std::to_string(::getpid()) + "_" + name)).string();
}

// A 1x1 convolution of EAST's size class: the builder times cuBLASLt's algorithms beside cuDNN's (each
// checked against the reference output), the timing cache records them, and a second build takes the
// cached choice, cuBLASLt or not, and runs it right.
TEST(GpuBuilder, TimesCublasLtForOneByOneConvolutionsAndCachesIt) {
  REQUIRE_GPU();
  const OneByOne c{"C 256 -> K 128, bias + ReLU", {4, 40, 48, 256}, 128, true, false, ActivationType::kRelu};
  std::mt19937 rng(22);
  for (Precision precision : {Precision::kTf32, Precision::kFp16}) {
    SCOPED_TRACE(to_string(precision));
    const std::string path = temporary_path(std::string("lt_cache_") + to_string(precision) + ".json");
    const Network net = one_by_one(c, 4, 5);
    const auto [a, b] = build_twice_through_a_cache(net, precision, path);
    const gpu::ConvTactic& chosen_a = conv_tactic(*a);
    EXPECT_EQ(gpu::describe(chosen_a), gpu::describe(conv_tactic(*b)));
    std::cout << "  " << to_string(precision) << " chosen: " << gpu::describe(chosen_a) << "\n";
    // The cache lists what each candidate measured: cuBLASLt's must be among them, having run correctly
    // (a candidate that differs from the reference is left out). Its one entry is this layer's, keyed by
    // a device that names the cuBLASLt version.
    std::ifstream in(path);
    const nlohmann::json j = nlohmann::json::parse(in);
    ASSERT_EQ(j.at("entries").size(), 1u);
    const nlohmann::json& entry = j.at("entries")[0];
    EXPECT_NE(entry.at("device").get<std::string>().find(" cublaslt "), std::string::npos);
    int matmuls = 0;
    for (const nlohmann::json& t : entry.at("timed")) matmuls += t.at("kind").get<int>() == 4;
    EXPECT_GT(matmuls, 0) << entry.dump();
    std::remove(path.c_str());
    const auto inputs = random_inputs(net, rng);
    const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
    for (Engine* engine : {a.get(), b.get()}) {
      auto context = engine->create_context();
      context->poison();
      const auto got = context->run(inputs);
      EXPECT_EQ(nan_count(got.at("y")), 0);
      EXPECT_LE(relative_error(got.at("y"), want), tolerance(precision));
    }
  }
}

// A plan's cuBLASLt algorithm is used as it is stored, so one from another cuBLASLt version, one whose bytes
// do not decode to the configuration beside them, and one on a layer that is not a 1x1 convolution are
// each refused on load with a message naming the plan and the layer.
TEST(GpuEngine, PlansWithAForeignOrCorruptCublasLtAlgorithmAreRefused) {
  REQUIRE_GPU();
  const OneByOne c{"C 32 -> K 16, bias + ReLU", {2, 6, 8, 32}, 16, true, false, ActivationType::kRelu};
  const Network net = one_by_one(c, 2, 9);
  BuildOptions options;
  options.max_batch = 2;
  options.time_tactics = false;
  std::unique_ptr<Engine> built = Builder(net, options).build();
  const Engine::Impl& impl = built->impl();
  const size_t i = conv_step(impl.plan);
  LtHandle handle;
  auto matmul = gpu::cublaslt_convolution(impl.plan, impl.plan.steps[i], impl.step_weights[i], 2);
  const std::vector<cuda::LtAlgorithm> algos = matmul->heuristic(handle.get(), options.workspace_bytes, 1);
  ASSERT_FALSE(algos.empty());
  const gpu::ConvTactic good = gpu::cublaslt_tactic(algos[0], Precision::kFp32);
  EXPECT_NO_THROW(with_matmul(*built, algos[0], Precision::kFp32)->create_context());

  auto refused = [&](const std::function<void(gpu::ConvTactic&)>& spoil) {
    gpu::ParsedPlan parsed = gpu::parse_plan(built->serialize(), "spoilt.plan");
    gpu::ConvTactic t = good;
    spoil(t);
    parsed.plan.steps[i].tactic = t;
    return error_of([&] { Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "spoilt.plan"); });
  };
  const std::string other_version = refused([](gpu::ConvTactic& t) { t.lt.version += 1; });
  EXPECT_NE(other_version.find("spoilt.plan"), std::string::npos) << other_version;
  EXPECT_NE(other_version.find("'conv'"), std::string::npos) << other_version;
  EXPECT_NE(other_version.find("build again"), std::string::npos) << other_version;
  const std::string other_tile = refused([](gpu::ConvTactic& t) { t.lt.tile += 1; });
  EXPECT_NE(other_tile.find("does not decode"), std::string::npos) << other_tile;

  // The same tactic on a 3x3 convolution.
  Network net3;
  {
    std::mt19937 wrng(3);
    Tensor* x = net3.add_input("x", {2, 6, 8, 32});
    ConvolutionParams p;
    p.out_channels = 16;
    p.kernel = {3, 3};
    p.padding = Padding::symmetric(1);
    p.kernel_weights = random_weights({16, 32, 3, 3}, wrng, -0.1f, 0.1f);
    net3.mark_output(net3.add_convolution(x, p, "conv3"), "y");
  }
  gpu::ParsedPlan parsed = gpu::parse_plan(Builder(net3, options).build()->serialize(), "three.plan");
  parsed.plan.steps[conv_step(parsed.plan)].tactic = good;
  const std::string message =
      error_of([&] { Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "three.plan"); });
  EXPECT_NE(message.find("not a 1x1 convolution"), std::string::npos) << message;
}

}  // namespace
}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
