// Tests of the cuDNN graph tactics on the GPU (skipped without one): the configurations the builder would
// time, fused and split, forced into the plan of every case of the convolution table in every precision,
// against the CPU reference at the largest batch and at batch 1; what cuDNN offers no configuration for is
// said and counted. A plan with a graph tactic saved and loaded runs the same; plans whose configuration
// comes from another cuDNN or is refused by this one are errors naming the layer; the builder times the
// graph tactics beside the others and the timing cache keeps them. The plan and cache formats of the
// tactics are tested without a GPU in test_gpu_engine.cpp and test_timing_cache.cpp.
#ifdef EASTRT_HAVE_CUDA
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>

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

// The first image of a batch.
HostTensor first_image(const HostTensor& t) {
  Shape shape = t.shape;
  shape[0] = 1;
  return HostTensor(shape, std::vector<float>(t.data.begin(), t.data.begin() + volume(shape)));
}

// The configurations of the form the builder would time for `built`'s convolution, at most `limit`; what
// cuDNN said about them is printed (the first runs on a GPU are read for it).
std::vector<gpu::ConvTactic> graph_tactics(Engine& built, bool fused, size_t limit, const std::string& what) {
  CudnnHandle handle;
  const Engine::Impl& impl = built.impl();
  const size_t i = conv_step(impl.plan);
  std::ostringstream report;
  gpu::GraphCandidates found;
  try {
    found = gpu::cudnn_graph_candidates(handle.get(), impl.plan, impl.plan.steps[i], impl.step_weights[i], fused,
                                        BuildOptions{}.workspace_bytes, limit, report);
  } catch (const Error& e) {
    report << "  cudnn graph" << (fused ? " fused" : "") << ": not offered (" << e.what() << ")\n";
  }
  std::cout << "  " << what << ":\n  " << report.str();
  return found.tactics;
}

// The plan of `built` with its convolution's tactic replaced by `t`, and the explicit copy dropped where
// the graph reads input 0, as the builder leaves a plan whose graph tactic won.
std::unique_ptr<Engine> with_tactic(Engine& built, const gpu::ConvTactic& t, const std::string& path) {
  gpu::ParsedPlan parsed = gpu::parse_plan(built.serialize(), path);
  parsed.plan.steps[conv_step(parsed.plan)].tactic = t;
  gpu::release_padded_copies(parsed.plan);
  parsed.plan.workspace_bytes = std::max(parsed.plan.workspace_bytes, t.workspace);
  return Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), path);
}

std::unique_ptr<Engine> untimed_build(const Network& net, Precision precision, int max_batch) {
  BuildOptions options;
  options.precision = precision;
  options.max_batch = max_batch;
  options.time_tactics = false;  // the legacy heuristic's tactic: the tests replace it anyway
  return Builder(net, options).build();
}

// Up to two configurations of each graph form, forced on the convolution of every case in every precision:
// the graph's own asymmetric padding on the unpadded input (FP32/TF32) or the FP16 copy with channels
// rounded up, groups and dilation, bias, residual and ReLU inside the fused graph, a sigmoid after it, the
// split graph with our epilogue; batch 2-3 and batch 1 of the same plan; a second run gives the same bits.
TEST(GpuKernels, CudnnGraphConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(18);
  int cases = 0, with_a_form = 0, fused_ran = 0, checked = 0;
  std::vector<std::string> without;
  for (const ConvCase& c : kConvCases) {
    const Network net = conv_case_network(c, rng);
    const int max_batch = static_cast<int>(c.input[0]);
    for (Precision precision : kPrecisions) {
      const std::string what = std::string(c.what) + " at " + to_string(precision);
      SCOPED_TRACE(what);
      const std::unique_ptr<Engine> built = untimed_build(net, precision, max_batch);
      ASSERT_TRUE(gpu::cudnn_graph_applies(built->impl().plan, built->impl().plan.steps[conv_step(built->impl().plan)]));
      const auto inputs = random_inputs(net, rng);
      const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
      ++cases;
      bool any = false;
      for (bool fused : {true, false}) {
        const std::vector<gpu::ConvTactic> tactics = graph_tactics(*built, fused, 2, what);
        if (tactics.empty()) without.push_back(what + (fused ? ", fused" : ", split"));
        for (const gpu::ConvTactic& t : tactics) {
          SCOPED_TRACE(gpu::describe(t));
          std::unique_ptr<Engine> engine = with_tactic(*built, t, "graph.plan");
          const gpu::PlanData& plan = engine->impl().plan;
          EXPECT_EQ(gpu::describe(plan.steps[conv_step(plan)].tactic).rfind("cudnn graph", 0), 0u);
          auto context = engine->create_context();
          context->poison();
          const HostTensor got = context->run(inputs).at("y");
          EXPECT_EQ(nan_count(got), 0);
          EXPECT_LE(relative_error(got, want), tolerance(precision));
          // Reproducible: the builder keeps only deterministic configurations.
          EXPECT_EQ(context->run(inputs).at("y").data, got.data);
          if (max_batch > 1) {  // the context's own execution plan of the configuration at batch 1
            std::map<std::string, HostTensor> one;
            for (const auto& [name, t1] : inputs) one[name] = first_image(t1);
            context->poison();
            const HostTensor got_one = context->run(one).at("y");
            EXPECT_EQ(nan_count(got_one), 0);
            EXPECT_LE(relative_error(got_one, first_image(want)), tolerance(precision));
          }
          ++checked;
          any = true;
          fused_ran += fused;
        }
      }
      with_a_form += any;
    }
  }
  for (const std::string& w : without) std::cout << "  no cuDNN graph configuration for " << w << "\n";
  std::cout << "  cuDNN graph configurations checked: " << checked << ", cases with one: " << with_a_form << " of "
            << cases << ", fused: " << fused_ran << "\n";
  // Most cases must have run (a tactic cuDNN offers for almost nothing is not tested by passing here), and
  // the fused graph at least somewhere.
  EXPECT_GE(with_a_form * 4, cases * 3) << "cuDNN offered a graph configuration for only " << with_a_form << " of "
                                        << cases << " cases (listed above)";
  EXPECT_GT(fused_ran, 0) << "no fused graph configuration was offered anywhere: see the reasons printed above";
}

// A plan whose convolution runs a graph configuration, saved to a file and loaded, runs the same bits, eagerly
// and as a CUDA graph, and describes the same tactic; on EAST's conv1 in float32 the explicit copy is gone.
TEST(GpuEngine, CudnnGraphPlanSavedAndLoadedRunsTheSame) {
  REQUIRE_GPU();
  std::mt19937 rng(19);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("eastrt_graph_" + std::to_string(::getpid()) + ".plan")).string();
  int ran = 0;
  for (const size_t index : {3, 5}) {  // EAST's conv1 (TF SAME 2/3), 3x3 residual + ReLU
    const ConvCase& c = kConvCases[index];
    const Network net = conv_case_network(c, rng);
    for (Precision precision : {Precision::kFp32, Precision::kFp16}) {
      const std::string what = std::string(c.what) + " at " + to_string(precision);
      SCOPED_TRACE(what);
      const std::unique_ptr<Engine> built = untimed_build(net, precision, static_cast<int>(c.input[0]));
      std::vector<gpu::ConvTactic> tactics = graph_tactics(*built, true, 1, what);
      if (tactics.empty()) tactics = graph_tactics(*built, false, 1, what);
      if (tactics.empty()) continue;  // said above; the count below decides
      std::unique_ptr<Engine> a = with_tactic(*built, tactics[0], path);
      a->save(path);
      std::unique_ptr<Engine> b = Engine::load(path);
      EXPECT_EQ(b->serialize(), a->serialize());
      const gpu::PlanData& plan = b->impl().plan;
      const gpu::PlanStep& step = plan.steps[conv_step(plan)];
      EXPECT_TRUE(gpu::is_cudnn_graph(step.tactic.kind));
      if (precision == Precision::kFp32 && index == 3)
        EXPECT_EQ(step.padded_input, -1) << "the graph pads EAST's conv1 itself";
      const EngineInfo i = a->inspect(), j = b->inspect();
      ASSERT_EQ(i.layers.size(), j.layers.size());
      for (size_t k = 0; k < i.layers.size(); ++k) EXPECT_EQ(i.layers[k].tactic, j.layers[k].tactic);
      const auto inputs = random_inputs(net, rng);
      auto eager = a->create_context();
      auto replayed = b->create_context();
      replayed->set_cuda_graph(true);
      eager->poison();
      replayed->poison();
      const HostTensor x = eager->run(inputs).at("y");
      replayed->run(inputs);  // the capture
      const HostTensor y = replayed->run(inputs).at("y");  // a replay
      EXPECT_EQ(y.data, x.data);
      EXPECT_LE(relative_error(x, CpuEngine(net, {1, true}).run(inputs).at("y")), tolerance(precision));
      ++ran;
    }
  }
  std::remove(path.c_str());
  EXPECT_GE(ran, 3) << "cuDNN offered a graph configuration for only " << ran << " of the 4 plans";
}

// A plan's graph configuration is only rebuilt as stored: one numbered by another cuDNN version is refused
// on load, and one this cuDNN refuses (an engine that does not exist) when a context prepares it, each
// with a message naming the layer.
TEST(GpuEngine, PlansWithAForeignOrRefusedCudnnGraphConfigurationAreRefused) {
  REQUIRE_GPU();
  std::mt19937 rng(20);
  const Network net = conv_case_network(kConvCases[5], rng);
  const std::unique_ptr<Engine> built = untimed_build(net, Precision::kFp32, 3);
  std::vector<gpu::ConvTactic> tactics = graph_tactics(*built, false, 1, kConvCases[5].what);
  ASSERT_FALSE(tactics.empty()) << "cuDNN offers no graph configuration for a plain 3x3 float32 convolution";
  EXPECT_NO_THROW(with_tactic(*built, tactics[0], "good.plan")->create_context());

  gpu::ConvTactic foreign = tactics[0];
  foreign.graph.version += 1;
  const std::string other_version = error_of([&] { with_tactic(*built, foreign, "spoilt.plan"); });
  EXPECT_NE(other_version.find("spoilt.plan"), std::string::npos) << other_version;
  EXPECT_NE(other_version.find("'conv'"), std::string::npos) << other_version;
  EXPECT_NE(other_version.find("build again"), std::string::npos) << other_version;

  gpu::ConvTactic missing = tactics[0];
  missing.algo = 1 << 20;
  std::unique_ptr<Engine> engine = with_tactic(*built, missing, "missing.plan");
  const std::string refused = error_of([&] { engine->create_context(); });
  EXPECT_NE(refused.find("'conv'"), std::string::npos) << refused;
  EXPECT_NE(refused.find("refuses"), std::string::npos) << refused;
  EXPECT_NE(refused.find("build the plan again"), std::string::npos) << refused;
}

// A 3x3 convolution of EAST's size class: the builder times the graph configurations beside the legacy
// algorithms (each checked against the reference output), the timing cache records those that ran, and a
// second build takes the cached choice, graph or not, and runs it right.
TEST(GpuBuilder, TimesCudnnGraphConfigurationsAndCachesThem) {
  REQUIRE_GPU();
  const ConvCase c{"3x3 64 -> 64 at 40x48, bias + ReLU", {4, 40, 48, 64}, 64, 3, 1, 1, 1, Padding::symmetric(1),
                   true, ActivationType::kRelu, false, false};
  std::mt19937 rng(23);
  const Network net = conv_case_network(c, rng);
  for (Precision precision : {Precision::kTf32, Precision::kFp16}) {
    SCOPED_TRACE(to_string(precision));
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("eastrt_" + std::to_string(::getpid()) + "_graph_cache_" + to_string(precision) + ".json"))
                                 .string();
    const auto [a, b] = build_twice_through_a_cache(net, precision, path);
    const gpu::ConvTactic& chosen = conv_tactic(*a);
    EXPECT_EQ(gpu::describe(chosen), gpu::describe(conv_tactic(*b)));
    std::cout << "  " << to_string(precision) << " chosen: " << gpu::describe(chosen) << "\n";
    // The timed list holds every candidate that ran correctly: graph configurations among them.
    std::ifstream in(path);
    const nlohmann::json j = nlohmann::json::parse(in);
    int graphs = 0;
    for (const nlohmann::json& t : j.at("entries")[0].at("timed"))
      graphs += gpu::is_cudnn_graph(static_cast<gpu::ConvTactic::Kind>(t.at("kind").get<int>()));
    EXPECT_GT(graphs, 0) << j.dump();
    std::remove(path.c_str());
    const auto inputs = random_inputs(net, rng);
    const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
    for (Engine* engine : {a.get(), b.get()}) {
      auto context = engine->create_context();
      context->poison();
      const HostTensor got = context->run(inputs).at("y");
      EXPECT_EQ(nan_count(got), 0);
      EXPECT_LE(relative_error(got, want), tolerance(precision));
    }
  }
}

}  // namespace
}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
