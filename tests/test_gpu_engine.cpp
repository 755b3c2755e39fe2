// Tests of the GPU engine. Without a GPU the plan format, the lowering and the memory planner are still
// tested (host code); everything that runs on the device skips with a message. On the GPU every kernel
// and tactic is checked against the CPU naive kernels on fresh random inputs of awkward shapes (odd sizes,
// channels not a multiple of 8, batch 2–3, asymmetric padding) in FP32 (≤ 1e-5), TF32 (≤ 1e-3) and FP16
// (≤ 1e-2), outputs poisoned with NaN before each run so that an unwritten element fails; then EAST end to
// end, plans, contexts, CUDA graphs and the pre-processing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <fstream>
#include <random>
#include <set>
#include <tuple>

#ifdef EASTRT_HAVE_CUDA
#include "cuda/conv_max_pool.h"
#include "cuda/engine_impl.h"
#endif
#include "cuda/memory_planner.h"
#include "cuda/plan.h"
#include "cuda/sm90a.h"
#include "cuda/space_to_depth.h"
#include "conv_cases.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "passes/passes.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {



// Builds `net` for the GPU, poisons the context, runs `inputs` and checks that every output element was
// written (no NaN left).
std::map<std::string, HostTensor> run_gpu(const Network& net, Precision precision,
                                          const std::map<std::string, HostTensor>& inputs, int max_batch = 0) {
  BuildOptions options;
  options.precision = precision;
  options.max_batch = max_batch > 0 ? max_batch : static_cast<int>(net.tensor(net.inputs()[0]).shape[0]);
  std::unique_ptr<Engine> engine = Builder(net, options).build();
  std::unique_ptr<ExecutionContext> context = engine->create_context();
  context->poison();
  auto outputs = context->run(inputs);
  for (const auto& [name, t] : outputs) EXPECT_EQ(nan_count(t), 0) << "output " << name << " not fully written";
  return outputs;
}

// Runs `engine` on `inputs` in a poisoned context and compares its output y with `want`: every element
// written, within `precision`'s tolerance; for a batch of more than one, the first image alone as well (a
// smaller batch than the plan's reads only its own images).
void expect_engine_matches(Engine& engine, const std::map<std::string, HostTensor>& inputs,
                           const HostTensor& want, Precision precision) {
  auto context = engine.create_context();
  context->poison();
  const HostTensor got = context->run(inputs).at("y");
  EXPECT_EQ(nan_count(got), 0);
  EXPECT_LE(relative_error(got, want), tolerance(precision));
  if (want.shape[0] > 1) {
    std::map<std::string, HostTensor> one;
    for (const auto& [name, tensor] : inputs) one[name] = batch_item(tensor, 0);
    context->poison();
    const HostTensor got_one = context->run(one).at("y");
    EXPECT_EQ(nan_count(got_one), 0);
    EXPECT_LE(relative_error(got_one, batch_item(want, 0)), tolerance(precision));
  }
}

// Whether the direct tactic's `variant` takes the first convolution of `net` built in `precision`.
bool direct_variant_applies(const Network& net, Precision precision, int variant) {
  BuildOptions options;
  options.precision = precision;
  const gpu::ParsedPlan parsed = gpu::parse_plan(Builder(net, options).build()->serialize(), "direct.plan");
  return gpu::direct_conv_applies(parsed.plan, parsed.plan.steps[conv_step(parsed.plan)], variant);
}

// The network on the GPU at every precision against the naive CPU kernels on the same fresh random input.
void check_network(const Network& net, std::mt19937& rng, const std::string& what, float lo = -1.0f, float hi = 1.0f,
                   const std::vector<Precision>& precisions = {std::begin(kPrecisions), std::end(kPrecisions)}) {
  for (Precision p : precisions) {
    SCOPED_TRACE(what + " at " + to_string(p));
    const auto inputs = random_inputs(net, rng, lo, hi);
    CpuEngine cpu(net, {1, true});
    const auto want = cpu.run(inputs);
    const auto got = run_gpu(net, p, inputs);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [name, t] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_LE(relative_error(got.at(name), t), tolerance(p)) << name;
    }
  }
}

Network single_layer(const Shape& input, const std::function<Tensor*(Network&, Tensor*)>& body) {
  Network net;
  Tensor* x = net.add_input("x", input);
  net.mark_output(body(net, x), "y");
  return net;
}

// ---------------------------------------------------------------- host only: plans, lowering, memory

Network small_network(std::mt19937& rng, int batch = 2) {
  Network net;
  Tensor* x = net.add_input("x", {batch, 12, 16, 5});
  ConvolutionParams c;
  c.out_channels = 6;
  c.kernel = {3, 3};
  c.padding = {0, 0, 1, 1};
  c.stride = {2, 2};
  c.kernel_weights = random_weights({6, 5, 3, 3}, rng, -0.5f, 0.5f);
  c.bias = random_weights({6}, rng);
  Tensor* y = net.add_convolution(x, c, "conv");
  y = net.add_activation(y, ActivationType::kRelu, "relu");
  Tensor* p = net.add_pooling(y, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}, "pool");
  Tensor* up = net.add_resize(p, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "up");
  Tensor* cat = net.add_concatenation({up, y}, 3, "concat");
  net.mark_output(net.add_scale(cat, {ScaleMode::kUniform, make_weights({1}, {2.0f}), nullptr, nullptr}, "out"));
  return net;
}

gpu::PlanData lowered(Network net, Precision precision, int max_batch) {
  BuildOptions options;
  options.precision = precision;
  options.max_batch = max_batch;
  for (int id : net.inputs()) net.tensor(id).shape[0] = max_batch;  // as the Builder does
  net.infer_shapes();
  gpu::run_builder_passes(net, precision);
  return gpu::lower_network(net, options);
}

const gpu::PlanTarget kTarget{EASTRT_VERSION, "NVIDIA H100 80GB HBM3", 9, 0};

// Arena tensors alive at the same step never share bytes.
void expect_no_live_overlap(const gpu::PlanData& plan) {
  const auto life = gpu::arena_lifetimes(plan);
  for (size_t a = 0; a < plan.tensors.size(); ++a)
    for (size_t b = a + 1; b < plan.tensors.size(); ++b) {
      if (life[a].first < 0 || life[b].first < 0) continue;
      if (life[a].last < life[b].first || life[b].last < life[a].first) continue;
      const auto& ta = plan.tensors[a];
      const auto& tb = plan.tensors[b];
      const bool apart = ta.offset + ta.bytes() <= tb.offset || tb.offset + tb.bytes() <= ta.offset;
      EXPECT_TRUE(apart) << ta.name << " and " << tb.name << " overlap while both alive";
    }
}

TEST(GpuMemoryPlanner, BuffersAliveTogetherNeverShareBytes) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> step(0, 40), length(0, 8), size(1, 5000);
  std::vector<gpu::BufferRequest> requests;
  int64_t sum = 0;
  for (int i = 0; i < 120; ++i) {
    const int first = step(rng);
    requests.push_back({size(rng), first, first + length(rng)});
    sum += (requests.back().bytes + 255) / 256 * 256;
  }
  const gpu::MemoryPlan plan = gpu::plan_memory(requests);
  ASSERT_EQ(plan.offsets.size(), requests.size());
  for (size_t a = 0; a < requests.size(); ++a) {
    EXPECT_EQ(plan.offsets[a] % 256, 0);
    EXPECT_LE(plan.offsets[a] + requests[a].bytes, plan.total_bytes);
    for (size_t b = a + 1; b < requests.size(); ++b) {
      const auto& ra = requests[a];
      const auto& rb = requests[b];
      if (ra.last < rb.first || rb.last < ra.first) continue;
      EXPECT_TRUE(plan.offsets[a] + ra.bytes <= plan.offsets[b] || plan.offsets[b] + rb.bytes <= plan.offsets[a])
          << "requests " << a << " and " << b;
    }
  }
  EXPECT_LT(plan.total_bytes, sum) << "nothing was shared";
}

TEST(GpuLowering, EastInFp16HasNoMergeConcatenationsCastsPaddingAndASharedArena) {
  east::NetworkOptions options{2, 64, 96, 1};  // full width: every channel count but the input's is a multiple of 8
  const gpu::PlanData plan = lowered(east::build(east::random_weights(options, 2), options), Precision::kFp16, 3);
  EXPECT_EQ(plan.max_batch, 3);
  int casts = 0, padded = 0, concatenations = 0;
  std::vector<int64_t> upsampled;
  int64_t arena_sum = 0;
  for (const gpu::PlanTensor& t : plan.tensors) {
    EXPECT_EQ(t.shape[0], 3) << t.name;
    EXPECT_NE(t.place, gpu::TensorPlace::kView) << t.name;
    if (t.place == gpu::TensorPlace::kArena) arena_sum += t.bytes();
  }
  for (const gpu::PlanStep& s : plan.steps) {
    casts += s.kind == gpu::StepKind::kCast;
    padded += s.padded_input >= 0;
    if (s.kind != gpu::StepKind::kLayer) continue;
    concatenations += s.layer_kind() == LayerKind::kConcatenation;
    if (s.layer_kind() == LayerKind::kResize) upsampled.push_back(plan.tensors[s.outputs[0]].shape[3]);
  }
  // upsample_after_convolution: each merge convolution's part over the upsampled features runs before the
  // upsampling, which then carries the convolution's 128, 64, 32 channels instead of 2048, 128, 64, and no
  // merge concatenation is left; merge_concatenated_heads makes the geometry output one convolution and
  // one scale, so none is left at all.
  EXPECT_EQ(concatenations, 0);
  EXPECT_EQ(upsampled, (std::vector<int64_t>{128, 64, 32}));
  EXPECT_EQ(casts, 1);   // the score head's FP16 convolution into its float32 output; the others convert in place
  EXPECT_EQ(padded, 1);  // conv1: 3 input channels rounded up to 8
  for (int id : plan.outputs) {
    EXPECT_EQ(plan.tensors[id].place, gpu::TensorPlace::kOutput);
    EXPECT_EQ(plan.tensors[id].type, gpu::StorageType::kFloat32);
  }
  EXPECT_LT(plan.arena_bytes, arena_sum / 2) << "the memory plan shares too little";
  expect_no_live_overlap(plan);
}

// The side stream's steps, checked from the plan's own reads and writes: a lane-1 convolution may run
// alongside every lane-0 step between the last writer of its inputs and the first reader of its output, so
// no arena tensor it touches may share bytes with another tensor those steps touch (a tensor both only read
// is shared by right).
void expect_side_lane_apart(const gpu::PlanData& plan) {
  auto root = [&](int id) { return plan.tensors[id].place == gpu::TensorPlace::kView ? plan.tensors[id].view_of : id; };
  auto touched = [&](const gpu::PlanStep& step) {
    std::vector<std::pair<int, bool>> t;  // root, written
    for (int id : step.inputs) t.push_back({root(id), false});
    for (int id : step.outputs) t.push_back({root(id), true});
    if (step.padded_input >= 0) t.push_back({step.padded_input, true});
    return t;
  };
  const int n = static_cast<int>(plan.steps.size());
  for (int s = 0; s < n; ++s) {
    if (plan.steps[s].lane != 1) continue;
    int fork = -1, join = n;
    for (int w = 0; w < s; ++w)
      for (int out : plan.steps[w].outputs)
        for (int in : plan.steps[s].inputs)
          if (root(out) == root(in)) fork = std::max(fork, w);
    for (int r = n - 1; r > s; --r)
      for (int in : plan.steps[r].inputs)
        if (root(in) == root(plan.steps[s].outputs[0])) join = std::min(join, r);
    for (int m = fork + 1; m < join; ++m) {
      if (m == s || plan.steps[m].lane != 0) continue;
      for (const auto& [a, a_writes] : touched(plan.steps[s]))
        for (const auto& [b, b_writes] : touched(plan.steps[m])) {
          const gpu::PlanTensor& ta = plan.tensors[a];
          const gpu::PlanTensor& tb = plan.tensors[b];
          if (ta.place != gpu::TensorPlace::kArena || tb.place != gpu::TensorPlace::kArena) continue;
          if (a == b) {
            EXPECT_FALSE(a_writes || b_writes) << plan.steps[s].name << " and " << plan.steps[m].name << " race on " << ta.name;
            continue;
          }
          const bool apart = ta.offset + ta.bytes() <= tb.offset || tb.offset + tb.bytes() <= ta.offset;
          EXPECT_TRUE(apart) << ta.name << " (" << plan.steps[s].name << ", side stream) and " << tb.name << " ("
                             << plan.steps[m].name << ") share bytes while both may run";
        }
    }
  }
}

// Parallel branches on EAST: the four projection shortcuts, the first convolutions of the strided units
// (beside their subsampling) and the geometry head (beside the score head) go to the side stream, nothing
// that depends on them does, and the memory plan keeps them apart.
TEST(GpuLanes, EastRunsItsIndependentConvolutionsOnTheSideStream) {
  east::NetworkOptions options{2, 64, 96, 1};
  gpu::PlanData plan = lowered(east::build(east::random_weights(options, 2), options), Precision::kFp16, 1);
  const int64_t one_stream_arena = plan.arena_bytes;
  const int assigned = gpu::assign_side_lane(plan);
  gpu::plan_arena(plan);
  std::vector<std::string> side;
  for (const gpu::PlanStep& step : plan.steps)
    if (step.lane == 1) side.push_back(step.name);
  EXPECT_EQ(assigned, static_cast<int>(side.size()));
  std::string names;
  for (const std::string& n : side) names += n + "\n";
  int shortcuts = 0, strided = 0, heads = 0;
  for (const std::string& n : side) {
    shortcuts += n.find("unit_1/bottleneck_v1/shortcut") != std::string::npos;
    strided += n.find("/bottleneck_v1/conv1/") != std::string::npos;
    heads += n.rfind("feature_fusion", 0) == 0;
  }
  EXPECT_EQ(shortcuts, 4) << names;
  EXPECT_EQ(strided, 3) << names;
  EXPECT_EQ(heads, 1) << names;
  EXPECT_EQ(assigned, 8) << names;
  // Every wait is on an earlier step of the other lane, and each side step waits for its input's producer.
  const auto waits = gpu::cross_lane_waits(plan);
  for (size_t s = 0; s < plan.steps.size(); ++s)
    for (int p : waits[s]) {
      EXPECT_LT(p, static_cast<int>(s));
      EXPECT_NE(plan.steps[p].lane, plan.steps[s].lane);
    }
  for (size_t s = 0; s < plan.steps.size(); ++s)
    if (plan.steps[s].lane == 1) EXPECT_FALSE(waits[s].empty()) << plan.steps[s].name;
  expect_side_lane_apart(plan);
  expect_no_live_overlap(plan);
  // Longer lifetimes cost some memory, not much.
  EXPECT_LE(plan.arena_bytes, one_stream_arena * 5 / 4);
  // The lanes survive the plan file; a lane other than 0 and 1 is refused.
  const gpu::ParsedPlan back = gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "lanes.plan");
  for (size_t i = 0; i < plan.steps.size(); ++i) EXPECT_EQ(back.plan.steps[i].lane, plan.steps[i].lane);
  gpu::PlanData bad = plan;
  bad.steps[3].lane = 2;
  try {
    gpu::parse_plan(gpu::serialize_plan(bad, kTarget), "bad.plan");
    ADD_FAILURE() << "a plan with a step on lane 2 was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is on lane 2"), std::string::npos) << e.what();
  }
}

// A chain of side-stream steps (2 then 3, beside 1 and 4): the second may start as soon as the first,
// the first may end as late as the second, and both until just before their lane-0 reader 5; what they
// touch lives that long.
TEST(GpuLanes, WindowsFollowChainsOnTheSideStream) {
  gpu::PlanData plan;
  for (int i = 0; i < 7; ++i) {
    gpu::PlanTensor t;
    t.name = "t" + std::to_string(i);
    t.shape = {1, 4, 4, 8};
    t.type = gpu::StorageType::kFloat16;
    t.place = gpu::TensorPlace::kArena;
    plan.tensors.push_back(t);
  }
  auto step = [&](std::vector<int> in, int out, int lane) {
    gpu::PlanStep s;
    s.name = "s" + std::to_string(plan.steps.size());
    s.kind = gpu::StepKind::kCast;
    s.inputs = std::move(in), s.outputs = {out};
    s.lane = static_cast<uint8_t>(lane);
    plan.steps.push_back(s);
  };
  step({0}, 1, 0), step({1}, 2, 0), step({1}, 3, 1), step({3}, 4, 1), step({2}, 5, 0), step({4, 5}, 6, 0);
  const auto w = gpu::step_windows(plan);
  const std::vector<std::pair<int, int>> expected{{0, 0}, {1, 1}, {1, 4}, {1, 4}, {4, 4}, {5, 5}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(w[i].first, expected[i].first) << "step " << i;
    EXPECT_EQ(w[i].last, expected[i].second) << "step " << i;
  }
  const auto life = gpu::arena_lifetimes(plan);
  EXPECT_EQ(life[1].first, 0);
  EXPECT_EQ(life[1].last, 4);  // read by step 2, which may run until step 4
  EXPECT_EQ(life[3].first, 1);
  EXPECT_EQ(life[3].last, 4);
  EXPECT_EQ(life[4].last, 5);
  EXPECT_EQ(gpu::cross_lane_waits(plan), (std::vector<std::vector<int>>{{}, {}, {0}, {}, {}, {3}}));
}

TEST(GpuLowering, AResizeReadOnlyByAConcatenationWritesItsChannels) {
  std::mt19937 rng(5);
  const gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
  int views = 0;
  for (const gpu::PlanTensor& t : plan.tensors) {
    if (t.place != gpu::TensorPlace::kView) continue;
    ++views;
    EXPECT_EQ(t.name, "up");
    EXPECT_EQ(t.type, plan.tensors[t.view_of].type);
    EXPECT_EQ(t.channel_offset, 0) << "the upsampled tensor comes first in the concatenation";
  }
  EXPECT_EQ(views, 1);
  expect_no_live_overlap(plan);
}

TEST(GpuLowering, AsymmetricPaddingAndPerLayerPrecision) {
  std::mt19937 rng(3);
  Network net = small_network(rng);
  BuildOptions options;
  options.precision = Precision::kFp16;
  options.max_batch = 2;
  options.layer_precisions["conv"] = Precision::kFp32;
  gpu::run_builder_passes(net, options.precision);
  const gpu::PlanData plan = gpu::lower_network(net, options);
  const auto conv = std::find_if(plan.steps.begin(), plan.steps.end(), [](const gpu::PlanStep& s) { return s.name == "conv"; });
  ASSERT_NE(conv, plan.steps.end());
  EXPECT_EQ(conv->precision, Precision::kFp32);
  ASSERT_GE(conv->padded_input, 0);
  EXPECT_EQ(plan.tensors[conv->padded_input].shape, (Shape{2, 13, 17, 5}));  // one row and column more
  EXPECT_EQ(plan.tensors[conv->outputs[0]].type, gpu::StorageType::kFloat32);
  expect_no_live_overlap(plan);
}

TEST(GpuLowering, PaddedFp16ConvolutionReadsTheFloatInputWithoutACast) {
  std::mt19937 rng(4);
  Network net;
  Tensor* x = net.add_input("x", {2, 22, 25, 3});
  ConvolutionParams c;
  c.out_channels = 16;
  c.kernel = {7, 7};
  c.stride = {2, 2};
  c.padding = {2, 2, 3, 3};  // TF SAME on an even size: one more after than before
  c.kernel_weights = random_weights({16, 3, 7, 7}, rng);
  net.mark_output(net.add_convolution(x, c, "conv1"), "y");
  const gpu::PlanData plan = lowered(net, Precision::kFp16, 2);
  const auto conv = std::find_if(plan.steps.begin(), plan.steps.end(), [](const gpu::PlanStep& s) { return s.name == "conv1"; });
  ASSERT_NE(conv, plan.steps.end());
  // The pad converts float32 to half on the way: one pass over the input, no cast step before the convolution.
  EXPECT_EQ(plan.tensors[conv->inputs[0]].place, gpu::TensorPlace::kInput);
  EXPECT_EQ(plan.tensors[conv->inputs[0]].type, gpu::StorageType::kFloat32);
  ASSERT_GE(conv->padded_input, 0);
  EXPECT_EQ(plan.tensors[conv->padded_input].type, gpu::StorageType::kFloat16);
  EXPECT_EQ(plan.tensors[conv->padded_input].shape, (Shape{2, 23, 26, 8}));
  for (auto s = plan.steps.begin(); s != conv; ++s) EXPECT_NE(s->kind, gpu::StepKind::kCast) << s->name;
  expect_no_live_overlap(plan);
}

TEST(GpuLowering, UnsupportedLayerIsAnErrorNamingIt) {
  Network net;
  Tensor* x = net.add_input("x", {2, 4, 4, 3});
  net.mark_output(net.add_slice(x, {{0, 0, 0, 0}, {2, 2, 2, 3}, {1, 1, 1, 1}}, "crop"));
  try {
    gpu::lower_network(net, {});
    FAIL() << "a Slice was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'crop'"), std::string::npos) << e.what();
  }
}

TEST(GpuPlan, RoundTripsEveryField) {
  std::mt19937 rng(4);
  const gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
  const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
  const gpu::ParsedPlan back = gpu::parse_plan(bytes, "small.plan");
  EXPECT_EQ(back.target.gpu_name, kTarget.gpu_name);
  EXPECT_EQ(back.target.major, 9);
  EXPECT_EQ(back.plan.precision, Precision::kFp16);
  EXPECT_EQ(back.plan.arena_bytes, plan.arena_bytes);
  ASSERT_EQ(back.plan.tensors.size(), plan.tensors.size());
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    EXPECT_EQ(back.plan.tensors[i].name, plan.tensors[i].name);
    EXPECT_EQ(back.plan.tensors[i].shape, plan.tensors[i].shape);
    EXPECT_EQ(back.plan.tensors[i].offset, plan.tensors[i].offset);
    EXPECT_EQ(back.plan.tensors[i].place, plan.tensors[i].place);
  }
  ASSERT_EQ(back.plan.steps.size(), plan.steps.size());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    EXPECT_EQ(back.plan.steps[i].name, plan.steps[i].name);
    EXPECT_EQ(back.plan.steps[i].inputs, plan.steps[i].inputs);
    EXPECT_EQ(back.plan.steps[i].params.index(), plan.steps[i].params.index());
  }
  // The fused convolution keeps its weights and its ReLU.
  auto conv_step = [](const gpu::PlanData& p) {
    return std::find_if(p.steps.begin(), p.steps.end(), [](const gpu::PlanStep& s) { return s.name == "conv"; });
  };
  ASSERT_NE(conv_step(back.plan), back.plan.steps.end());
  const auto& conv = std::get<ConvolutionParams>(conv_step(back.plan)->params);
  EXPECT_EQ(conv.kernel_weights->data, std::get<ConvolutionParams>(conv_step(plan)->params).kernel_weights->data);
  ASSERT_TRUE(conv.activation.has_value());
  EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
}

// A cuBLASLt tactic keeps its algorithm's 64 opaque bytes, the cuBLASLt version and the configuration
// through the plan file, and the steps after it read back as they were.
TEST(GpuPlan, CublasLtTacticRoundTripsWithItsAlgorithm) {
  std::mt19937 rng(4);
  gpu::PlanData plan = lowered(small_network(rng), Precision::kTf32, 2);
  gpu::ConvTactic t;
  t.kind = gpu::ConvTactic::Kind::kCublasLt;
  t.algo = 3, t.math = 77, t.workspace = 65536, t.ms = 0.0625;
  t.lt.data = {0x0123456789abcdefull, 0xfedcba9876543210ull, 0, 1, 0x8000000000000000ull, 42, ~0ull, 7};
  t.lt.version = 130100, t.lt.id = 21, t.lt.tile = 18, t.lt.stages = 9, t.lt.split_k = 2;
  int forced = 0;
  for (gpu::PlanStep& step : plan.steps)
    if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) step.tactic = t, ++forced;
  ASSERT_GT(forced, 0);
  const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
  const gpu::ParsedPlan back = gpu::parse_plan(bytes, "lt.plan");
  ASSERT_EQ(back.plan.steps.size(), plan.steps.size());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const gpu::ConvTactic& a = back.plan.steps[i].tactic;
    const gpu::ConvTactic& b = plan.steps[i].tactic;
    EXPECT_EQ(back.plan.steps[i].name, plan.steps[i].name);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.algo, b.algo);
    EXPECT_EQ(a.math, b.math);
    EXPECT_EQ(a.workspace, b.workspace);
    EXPECT_EQ(a.ms, b.ms);
    EXPECT_EQ(a.lt.data, b.lt.data);
    EXPECT_EQ(a.lt.version, b.lt.version);
    EXPECT_EQ(a.lt.id, b.lt.id);
    EXPECT_EQ(a.lt.tile, b.lt.tile);
    EXPECT_EQ(a.lt.stages, b.lt.stages);
    EXPECT_EQ(a.lt.split_k, b.lt.split_k);
  }
  EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
  EXPECT_EQ(gpu::describe(t), "cublaslt#3 (algo 21, tile 18, stages 9, split-k 2, tf32, 64 KiB workspace)");
}

// EAST's conv1 on space-to-depth and pool1: the one pair max_pools_to_fuse finds, folded by fuse_max_pool
// into one step that writes the pool's output (the convolution's own output then unused), kept by the
// plan file, refused where the pool does not fit; FP32 or another tactic leaves the pool alone.
TEST(GpuPlan, MaxPoolFoldsIntoTheSpaceToDepthConvolutionBeforeIt) {
  east::NetworkOptions options{2, 64, 96, 1};
  const Network net = east::build(east::random_weights(options, 2), options);
  for (Precision precision : {Precision::kFp32, Precision::kFp16}) {
    gpu::PlanData plan = lowered(net, precision, 2);
    int conv1 = -1;
    for (size_t i = 0; i < plan.steps.size(); ++i)
      if (plan.steps[i].name == "resnet_v1_50/conv1/Conv2D") conv1 = static_cast<int>(i);
    ASSERT_GE(conv1, 0);
    for (int pool : gpu::max_pools_to_fuse(plan)) EXPECT_EQ(pool, -1) << "no space-to-depth tactic chosen yet";
    plan.steps[conv1].tactic.kind = gpu::ConvTactic::Kind::kSpaceToDepthFused;
    const std::vector<int> pools = gpu::max_pools_to_fuse(plan);
    for (size_t i = 0; i < pools.size(); ++i)
      if (static_cast<int>(i) != conv1) EXPECT_EQ(pools[i], -1) << plan.steps[i].name;
    if (precision == Precision::kFp32) {
      EXPECT_EQ(pools[conv1], -1) << "the kernel is FP16";
      continue;
    }
    ASSERT_GE(pools[conv1], 0);
    const int pool = pools[conv1];
    EXPECT_EQ(plan.steps[pool].name, "resnet_v1_50/pool1");
    const int unpooled = plan.steps[conv1].outputs[0], pooled = plan.steps[pool].outputs[0];
    const size_t steps = plan.steps.size();
    gpu::fuse_max_pool(plan, conv1, pool);
    gpu::plan_arena(plan);
    ASSERT_EQ(plan.steps.size(), steps - 1);
    const gpu::PlanStep& c = plan.steps[conv1];
    EXPECT_EQ(c.tactic.kind, gpu::ConvTactic::Kind::kSpaceToDepthMaxPool);
    EXPECT_EQ(c.outputs[0], pooled);
    EXPECT_EQ(c.pool.name, "resnet_v1_50/pool1");
    EXPECT_EQ(c.pool.window, 3);
    EXPECT_EQ(c.pool.stride, 2);
    EXPECT_EQ(c.pool.top, 0);  // TF SAME on an even size: all of the padding after
    EXPECT_EQ(c.pool.left, 0);
    EXPECT_EQ(gpu::conv_output_size(plan, c), (std::array<int, 2>{32, 48}));
    const gpu::SpaceToDepthShape xs = gpu::space_to_depth_shape(plan, c);
    EXPECT_EQ(xs.h, 35);
    EXPECT_EQ(xs.w, 51);
    EXPECT_EQ(xs.c, 16);
    EXPECT_EQ(plan.tensors[pooled].shape, (Shape{2, 16, 24, 64}));
    for (const gpu::PlanStep& step : plan.steps)
      for (int id : step.inputs) EXPECT_NE(id, unpooled) << step.name << " reads the convolution's unpooled output";
    EXPECT_EQ(gpu::arena_lifetimes(plan)[unpooled].first, -1) << "the unpooled output still has a place";
    expect_no_live_overlap(plan);
    EXPECT_NE(gpu::describe(c.tactic).find("conv/max-pool"), std::string::npos) << gpu::describe(c.tactic);
    EXPECT_EQ(gpu::describe(c.tactic).find("math"), std::string::npos) << "no cuDNN math in our kernel";
    EXPECT_EQ(c.tactic.algo, cuda::kConvMaxPoolMmaSync) << "the kernel that runs everywhere, until the builder times the other";
    EXPECT_EQ(gpu::describe(c.tactic).find("wgmma"), std::string::npos) << gpu::describe(c.tactic);
    // The plan file keeps the fused pool; one that does not fit its output, or a tactic without its pool,
    // is refused.
    const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
    const gpu::ParsedPlan back = gpu::parse_plan(bytes, "pool.plan");
    const gpu::PlanStep& b = back.plan.steps[conv1];
    EXPECT_EQ(b.pool.name, c.pool.name);
    EXPECT_EQ(std::tie(b.pool.window, b.pool.stride, b.pool.top, b.pool.left, b.pool.conv_h, b.pool.conv_w),
              std::tie(c.pool.window, c.pool.stride, c.pool.top, c.pool.left, c.pool.conv_h, c.pool.conv_w));
    EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
    gpu::PlanData short_conv = plan;
    short_conv.steps[conv1].pool.conv_h = 29;  // the last pooled row's window would start at row 30
    std::string message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(short_conv, kTarget), "short.plan"); });
    EXPECT_NE(message.find("fused pool that does not fit"), std::string::npos) << message;
    gpu::PlanData no_pool = plan;
    no_pool.steps[conv1].pool = {};
    message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(no_pool, kTarget), "nopool.plan"); });
    EXPECT_NE(message.find("conv/max-pool tactic"), std::string::npos) << message;
    EXPECT_NE(message.find("nopool.plan"), std::string::npos) << message;
    // Which of its two kernels: the wgmma one round-trips and says so; an unknown one is refused.
    gpu::PlanData on_wgmma = plan;
    on_wgmma.steps[conv1].tactic.algo = cuda::kConvMaxPoolWgmma;
    const gpu::ParsedPlan wgmma_back = gpu::parse_plan(gpu::serialize_plan(on_wgmma, kTarget), "wgmma.plan");
    EXPECT_EQ(wgmma_back.plan.steps[conv1].tactic.algo, cuda::kConvMaxPoolWgmma);
    EXPECT_NE(gpu::describe(wgmma_back.plan.steps[conv1].tactic).find("conv/max-pool kernel on wgmma"), std::string::npos);
    gpu::PlanData unknown_kernel = plan;
    unknown_kernel.steps[conv1].tactic.algo = 2;
    message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(unknown_kernel, kTarget), "kernel2.plan"); });
    EXPECT_NE(message.find("conv/max-pool kernel 2"), std::string::npos) << message;
    EXPECT_NE(message.find("kernel2.plan"), std::string::npos) << message;
    // EAST's mean subtraction folds into the same step's space-to-depth pass: conv1 then reads the network's
    // input and carries the negated means; the plan file keeps them; a shift of another size is refused.
    {
      gpu::PlanData folded = plan;
      const std::vector<int> shifts = gpu::input_shifts_to_fold(folded);
      for (size_t i = 0; i < shifts.size(); ++i)
        if (static_cast<int>(i) != conv1) EXPECT_EQ(shifts[i], -1) << folded.steps[i].name;
      ASSERT_GE(shifts[conv1], 0);
      const gpu::PlanStep mean = folded.steps[shifts[conv1]];
      EXPECT_EQ(mean.name, "mean_subtraction");
      gpu::fold_input_shift(folded, conv1, shifts[conv1]);
      gpu::plan_arena(folded);
      const gpu::PlanStep& f = folded.steps[conv1 - 1];
      EXPECT_EQ(f.name, "resnet_v1_50/conv1/Conv2D");
      EXPECT_EQ(f.inputs[0], folded.inputs[0]) << "conv1 reads the network input";
      const auto& shift = std::get<ScaleParams>(mean.params).shift;
      ASSERT_EQ(f.input_shift.size(), 3u);
      for (int c = 0; c < 3; ++c) EXPECT_EQ(f.input_shift[c], shift->data[shift->size() == 1 ? 0 : c]);
      EXPECT_LT(f.input_shift[0], -100.0f) << "EAST subtracts the ImageNet means";
      for (const gpu::PlanStep& step : folded.steps) EXPECT_NE(step.name, "mean_subtraction");
      expect_no_live_overlap(folded);
      const gpu::ParsedPlan again = gpu::parse_plan(gpu::serialize_plan(folded, kTarget), "shift.plan");
      EXPECT_EQ(again.plan.steps[conv1 - 1].input_shift, f.input_shift);
      gpu::PlanData wrong = folded;
      wrong.steps[conv1 - 1].input_shift.push_back(1.0f);
      const std::string why = error_of([&] { gpu::parse_plan(gpu::serialize_plan(wrong, kTarget), "wrong.plan"); });
      EXPECT_NE(why.find("input shift"), std::string::npos) << why;
      EXPECT_TRUE(gpu::input_shifts_to_fold(folded)[conv1 - 1] == -1) << "folded once";
    }
    // A pool the kernel's shape does not take (a 2x2 window) is refused even where its geometry fits.
    gpu::PlanData other_window = plan;
    other_window.steps[conv1].pool.window = 2;
    message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(other_window, kTarget), "window.plan"); });
    EXPECT_NE(message.find("whose kernel takes"), std::string::npos) << message;
  }
}


// The shapes the pointwise and wgmma 3x3 kernels take, decided on the host (no GPU needed): the pointwise
// one 1x1/1 unpadded into 1-8 outputs with channels in whole 16-byte packs of the input's type, at most 512;
// the wgmma 3x3 FP16 32 channels into exactly 32 filters, stride 1, leading padding 0-2.
TEST(GpuPlan, DirectVariantsTakeTheShapesTheirKernelsTake) {
  cuda::DirectConvArgs p;
  p.n = 2, p.h = p.oh = 7, p.w = p.ow = 9, p.c = p.filter_c = 32, p.k = 5;
  EXPECT_TRUE(cuda::pointwise_conv_fits(p, cuda::DType::kF16));
  for (int k : {1, 8}) {
    cuda::DirectConvArgs q = p;
    q.k = k;
    EXPECT_TRUE(cuda::pointwise_conv_fits(q, cuda::DType::kF16)) << k;
  }
  const auto refused = [&](const char* what, auto change, cuda::DType type = cuda::DType::kF16) {
    cuda::DirectConvArgs q = p;
    change(q);
    EXPECT_FALSE(cuda::pointwise_conv_fits(q, type)) << what;
  };
  refused("9 outputs", [](cuda::DirectConvArgs& q) { q.k = 9; });
  refused("3x3", [](cuda::DirectConvArgs& q) { q.r = q.s = 3; });
  refused("stride 2", [](cuda::DirectConvArgs& q) { q.stride_h = q.stride_w = 2, q.oh = 4, q.ow = 5; });
  refused("padding", [](cuda::DirectConvArgs& q) { q.pad_top = 1, q.oh = 9; });
  refused("12 FP16 channels", [](cuda::DirectConvArgs& q) { q.c = q.filter_c = 12; });
  refused("520 channels", [](cuda::DirectConvArgs& q) { q.c = q.filter_c = 520; });
  refused("grouped", [](cuda::DirectConvArgs& q) { q.groups = 2; });
  {
    cuda::DirectConvArgs q = p;
    q.c = q.filter_c = 12;  // three float packs
    EXPECT_TRUE(cuda::pointwise_conv_fits(q, cuda::DType::kF32));
  }

  cuda::DirectConvArgs t = p;
  t.k = 32, t.r = t.s = 3, t.pad_top = t.pad_left = 1;
  EXPECT_TRUE(cuda::tensor_core_wgmma_conv_fits(t, cuda::DType::kF16, cuda::DType::kF16));
  EXPECT_TRUE(cuda::tensor_core_conv_fits(t, cuda::DType::kF16, cuda::DType::kF16));
  for (int k : {64, 16}) {
    cuda::DirectConvArgs q = t;
    q.k = k;
    EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(q, cuda::DType::kF16, cuda::DType::kF16)) << k;
  }
  EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(t, cuda::DType::kF32, cuda::DType::kF32));
  EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(t, cuda::DType::kF16, cuda::DType::kF32));
  {
    cuda::DirectConvArgs q = t;
    q.pad_top = 3;
    EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(q, cuda::DType::kF16, cuda::DType::kF16));
    q = t;
    q.c = q.filter_c = 64;
    EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(q, cuda::DType::kF16, cuda::DType::kF16));
    q = t;
    q.stride_h = 2;
    EXPECT_FALSE(cuda::tensor_core_wgmma_conv_fits(q, cuda::DType::kF16, cuda::DType::kF16));
  }
}

// The direct tactic's variant reads back as written (the tensor-core one named so), and one past the
// variants there are is refused by name; whether a variant takes the convolution is checked when a
// context is made (GpuKernels.TensorCoreConvolutionMatchesTheCpu runs it).
TEST(GpuPlan, DirectTacticVariantsRoundTripAndAnUnknownOneIsRefused) {
  std::mt19937 rng(6);
  gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
  const size_t conv = conv_step(plan);
  for (int variant = 0; variant < gpu::kDirectVariants; ++variant) {
    plan.steps[conv].tactic = {};
    plan.steps[conv].tactic.kind = gpu::ConvTactic::Kind::kDirect;
    plan.steps[conv].tactic.algo = variant;
    const gpu::ParsedPlan back = gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "direct.plan");
    EXPECT_EQ(back.plan.steps[conv].tactic.algo, variant);
    EXPECT_EQ(gpu::describe(back.plan.steps[conv].tactic).find("tensor-core") != std::string::npos,
              variant == gpu::kDirectTensorCore || variant == gpu::kDirectTensorCoreWgmma);
    EXPECT_EQ(gpu::describe(back.plan.steps[conv].tactic).find("wgmma") != std::string::npos,
              variant == gpu::kDirectTensorCoreWgmma);
  }
  for (int variant : {-1, static_cast<int>(gpu::kDirectVariants)}) {
    plan.steps[conv].tactic.algo = variant;
    const std::string message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "variant.plan"); });
    EXPECT_NE(message.find("direct-convolution variant " + std::to_string(variant)), std::string::npos) << message;
    EXPECT_NE(message.find("variant.plan"), std::string::npos) << message;
  }
}

// A space-to-depth tactic (both kinds) reads back as it was written on a convolution it fits (small_network's
// 3x3/2 on 5 channels), and a plan that puts it on one it does not fit (stride 1 here) is refused: its kernel
// would read the wrong input.
TEST(GpuPlan, SpaceToDepthTacticRoundTripsAndIsRefusedWhereItDoesNotFit) {
  std::mt19937 rng(5);
  for (gpu::ConvTactic::Kind kind : {gpu::ConvTactic::Kind::kSpaceToDepthFused, gpu::ConvTactic::Kind::kSpaceToDepthSplit}) {
    gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
    gpu::ConvTactic t;
    t.kind = kind;
    t.algo = 1, t.math = 1, t.workspace = 3 << 20, t.ms = 0.125;
    int forced = 0;
    for (gpu::PlanStep& step : plan.steps)
      if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) {
        ASSERT_TRUE(gpu::space_to_depth_applies(plan, step)) << step.name;
        const gpu::SpaceToDepthShape xs = gpu::space_to_depth_shape(plan, step);
        EXPECT_EQ(xs.c, 24) << "4 x 5 channels rounded up to 8 for FP16";
        EXPECT_EQ(xs.r, 2);
        step.tactic = t, ++forced;
      }
    ASSERT_EQ(forced, 1);
    const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
    const gpu::ParsedPlan back = gpu::parse_plan(bytes, "s2d.plan");
    ASSERT_EQ(back.plan.steps.size(), plan.steps.size());
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      EXPECT_EQ(back.plan.steps[i].tactic.kind, plan.steps[i].tactic.kind);
      EXPECT_EQ(back.plan.steps[i].tactic.algo, plan.steps[i].tactic.algo);
      EXPECT_EQ(back.plan.steps[i].tactic.math, plan.steps[i].tactic.math);
      EXPECT_EQ(back.plan.steps[i].tactic.workspace, plan.steps[i].tactic.workspace);
      EXPECT_EQ(back.plan.steps[i].tactic.ms, plan.steps[i].tactic.ms);
    }
    EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
    EXPECT_NE(gpu::describe(t).find("space-to-depth"), std::string::npos) << gpu::describe(t);
  }
  // The builder lets go of the explicit padded copy once a space-to-depth tactic is chosen; the activation
  // buffer planned again no longer holds it and still keeps live tensors apart.
  {
    gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
    const int64_t before = plan.arena_bytes;
    int released = 0;
    for (gpu::PlanStep& step : plan.steps)
      if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution && step.padded_input >= 0)
        step.padded_input = -1, ++released;
    ASSERT_EQ(released, 1) << "small_network's convolution pads asymmetrically";
    gpu::plan_arena(plan);
    EXPECT_LE(plan.arena_bytes, before);
    expect_no_live_overlap(plan);
  }
  Network net = single_layer({2, 9, 11, 3}, [&](Network& n, Tensor* x) {
    ConvolutionParams c;
    c.out_channels = 4;
    c.kernel = {3, 3};
    c.padding = Padding::symmetric(1);
    c.kernel_weights = random_weights({4, 3, 3, 3}, rng);
    return n.add_convolution(x, c, "conv");
  });
  gpu::PlanData plan = lowered(net, Precision::kFp32, 2);
  for (gpu::PlanStep& step : plan.steps)
    if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) {
      EXPECT_FALSE(gpu::space_to_depth_applies(plan, step));
      step.tactic.kind = gpu::ConvTactic::Kind::kSpaceToDepthSplit;
    }
  const std::string message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "misfit.plan"); });
  EXPECT_NE(message.find("misfit.plan"), std::string::npos) << message;
  EXPECT_NE(message.find("space-to-depth"), std::string::npos) << message;
}

// A cuDNN graph tactic (both kinds) keeps its engine, knob choices (negative and 64-bit values included) and
// cuDNN version through the plan file, and the steps after it read back as they were.
TEST(GpuPlan, CudnnGraphTacticRoundTripsWithItsConfiguration) {
  std::mt19937 rng(7);
  for (gpu::ConvTactic::Kind kind : {gpu::ConvTactic::Kind::kCudnnGraphFused, gpu::ConvTactic::Kind::kCudnnGraphSplit}) {
    gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
    gpu::ConvTactic t;
    t.kind = kind;
    t.algo = 12, t.math = 0, t.workspace = 65536, t.ms = 0.0625;
    t.graph.knobs = {{2, 3}, {14, 4}, {25, -1}, {40, int64_t(1) << 40}};
    t.graph.version = 91900;
    int forced = 0;
    for (gpu::PlanStep& step : plan.steps)
      if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) step.tactic = t, ++forced;
    ASSERT_EQ(forced, 1);
    const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
    const gpu::ParsedPlan back = gpu::parse_plan(bytes, "graph.plan");
    ASSERT_EQ(back.plan.steps.size(), plan.steps.size());
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      const gpu::ConvTactic& a = back.plan.steps[i].tactic;
      const gpu::ConvTactic& b = plan.steps[i].tactic;
      EXPECT_EQ(back.plan.steps[i].name, plan.steps[i].name);
      EXPECT_EQ(back.plan.steps[i].padded_input, plan.steps[i].padded_input);
      EXPECT_EQ(a.kind, b.kind);
      EXPECT_EQ(a.algo, b.algo);
      EXPECT_EQ(a.workspace, b.workspace);
      EXPECT_EQ(a.ms, b.ms);
      EXPECT_EQ(a.graph.knobs, b.graph.knobs);
      EXPECT_EQ(a.graph.version, b.graph.version);
    }
    EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
  }
  gpu::ConvTactic t;
  t.kind = gpu::ConvTactic::Kind::kCudnnGraphFused;
  t.algo = 12, t.workspace = 65536;
  t.graph.knobs = {{2, 3}, {14, 4}};
  EXPECT_EQ(gpu::describe(t), "cudnn graph fused engine 12 (knobs 2=3 14=4, 64 KiB workspace)");
  t.kind = gpu::ConvTactic::Kind::kCudnnGraphSplit;
  t.algo = 7, t.workspace = 0, t.graph.knobs.clear();
  EXPECT_EQ(gpu::describe(t), "cudnn graph engine 7 + epilogue");
  t.workspace = 1000;
  EXPECT_EQ(gpu::describe(t), "cudnn graph engine 7 + epilogue (1 KiB workspace)");
}

// The graph tactic pads by itself, before and after: where the explicit copy only adds the asymmetric
// borders (same type and channels), the builder drops the copy once the graph tactic wins, and the
// activation buffer planned again keeps live tensors apart. A copy that converts the float32 network
// input to FP16 and rounds 5 channels up to 8 stays; so does one another tactic reads.
TEST(GpuLowering, GraphTacticsReleaseAnExplicitCopyThatOnlyPads) {
  std::mt19937 rng(8);
  auto force = [](gpu::PlanData& plan, gpu::ConvTactic::Kind kind) {
    for (gpu::PlanStep& step : plan.steps)
      if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) step.tactic.kind = kind;
  };
  auto padded_steps = [](const gpu::PlanData& plan) {
    return std::count_if(plan.steps.begin(), plan.steps.end(), [](const gpu::PlanStep& s) { return s.padded_input >= 0; });
  };
  {
    gpu::PlanData plan = lowered(small_network(rng), Precision::kFp32, 2);  // 3x3/2 padded 0,0,1,1 on float32
    ASSERT_EQ(padded_steps(plan), 1);
    for (const gpu::PlanStep& step : plan.steps)
      if (step.padded_input >= 0) EXPECT_TRUE(gpu::padded_copy_only_pads(plan, step)) << step.name;
    const int64_t before = plan.arena_bytes;
    force(plan, gpu::ConvTactic::Kind::kCudnnFused);
    EXPECT_EQ(gpu::release_padded_copies(plan), 0) << "the legacy tactic reads the copy";
    force(plan, gpu::ConvTactic::Kind::kDirect);
    EXPECT_EQ(gpu::release_padded_copies(plan), 0) << "the direct tactic's filter follows the copy";
    force(plan, gpu::ConvTactic::Kind::kCudnnGraphFused);
    EXPECT_EQ(gpu::release_padded_copies(plan), 1);
    EXPECT_EQ(padded_steps(plan), 0);
    EXPECT_LT(plan.arena_bytes, before);
    expect_no_live_overlap(plan);
    // Edited back to a legacy tactic, which pads symmetrically only, the plan no longer loads.
    force(plan, gpu::ConvTactic::Kind::kCudnnFused);
    const std::string message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "edited.plan"); });
    EXPECT_NE(message.find("for asymmetric padding but no explicitly padded input"), std::string::npos) << message;
  }
  {
    gpu::PlanData plan = lowered(small_network(rng), Precision::kFp16, 2);
    for (const gpu::PlanStep& step : plan.steps)
      if (step.padded_input >= 0) EXPECT_FALSE(gpu::padded_copy_only_pads(plan, step)) << step.name;
    force(plan, gpu::ConvTactic::Kind::kCudnnGraphSplit);
    EXPECT_EQ(gpu::release_padded_copies(plan), 0);
    EXPECT_EQ(padded_steps(plan), 1);
  }
  // In FP16 behind an FP16 convolution, 16 channels: the copy of the second only pads.
  Network net = single_layer({2, 9, 12, 16}, [&](Network& n, Tensor* x) {
    ConvolutionParams a;
    a.out_channels = 16;
    a.kernel_weights = random_weights({16, 16, 1, 1}, rng);
    ConvolutionParams b;
    b.out_channels = 24;
    b.kernel = {3, 3};
    b.stride = {2, 2};
    b.padding = {0, 0, 1, 1};
    b.kernel_weights = random_weights({24, 16, 3, 3}, rng);
    return n.add_convolution(n.add_convolution(x, a, "first"), b, "second");
  });
  gpu::PlanData plan = lowered(net, Precision::kFp16, 2);
  ASSERT_EQ(padded_steps(plan), 1);
  for (const gpu::PlanStep& step : plan.steps)
    if (step.padded_input >= 0) {
      EXPECT_EQ(step.name, "second");
      EXPECT_TRUE(gpu::padded_copy_only_pads(plan, step));
    }
  force(plan, gpu::ConvTactic::Kind::kCudnnGraphSplit);
  EXPECT_EQ(gpu::release_padded_copies(plan), 1);
  expect_no_live_overlap(plan);
}

#ifdef EASTRT_HAVE_CUDA
// The cuDNN graph's description pads as the layer does: on input 0 with the padding before and after where
// the explicit copy only pads (when timed, the copy still there, and when run, once the builder dropped it),
// and on the copy with the symmetric rest where the copy also converts the type and rounds channels up to
// 8. The output size follows from each, as cuDNN checks when it finalises the graph.
TEST(GpuPlan, CudnnGraphConvolutionPadsAsTheLayerDoes) {
  std::mt19937 rng(9);
  auto expect_output_follows = [](const cuda::GraphConvolution& c) {
    const cuda::ConvGeometry& g = c.geometry;
    EXPECT_EQ(g.oh, (g.h + g.pad_h + c.pad_bottom - g.dilation_h * (g.r - 1) - 1) / g.stride_h + 1);
    EXPECT_EQ(g.ow, (g.w + g.pad_w + c.pad_right - g.dilation_w * (g.s - 1) - 1) / g.stride_w + 1);
  };
  auto conv_index = [](const gpu::PlanData& plan) {
    for (size_t i = 0; i < plan.steps.size(); ++i)
      if (plan.steps[i].kind == gpu::StepKind::kLayer && plan.steps[i].layer_kind() == LayerKind::kConvolution) return i;
    return plan.steps.size();
  };
  gpu::StepWeights weights;
  weights.has_bias = true;
  gpu::PlanData plan = lowered(small_network(rng), Precision::kFp32, 2);  // 3x3/2 padded 0,0,1,1 on 12x16x5
  const size_t i = conv_index(plan);
  ASSERT_LT(i, plan.steps.size());
  ASSERT_GE(plan.steps[i].padded_input, 0);
  const cuda::GraphConvolution timed = gpu::graph_convolution(plan, plan.steps[i], weights, 2, true, false);
  EXPECT_EQ(timed.geometry.n, 2);
  EXPECT_EQ(timed.geometry.h, 12);
  EXPECT_EQ(timed.geometry.w, 16);
  EXPECT_EQ(timed.geometry.c, 5);
  EXPECT_EQ(timed.geometry.pad_h, 0);
  EXPECT_EQ(timed.geometry.pad_w, 0);
  EXPECT_EQ(timed.pad_bottom, 1);
  EXPECT_EQ(timed.pad_right, 1);
  EXPECT_TRUE(timed.strict_fp32 && timed.fused && timed.bias && timed.relu && !timed.residual);
  expect_output_follows(timed);
  plan.steps[i].tactic.kind = gpu::ConvTactic::Kind::kCudnnGraphFused;
  ASSERT_EQ(gpu::release_padded_copies(plan), 1);
  const cuda::GraphConvolution run =
      gpu::graph_convolution(plan, plan.steps[i], weights, 1, true, plan.steps[i].padded_input >= 0);
  EXPECT_EQ(run.geometry.n, 1);
  EXPECT_EQ(run.geometry.h, 12);
  EXPECT_EQ(run.geometry.c, 5);
  EXPECT_EQ(run.geometry.pad_h, 0);
  EXPECT_EQ(run.pad_bottom, 1);
  EXPECT_EQ(run.pad_right, 1);
  expect_output_follows(run);

  gpu::PlanData half = lowered(small_network(rng), Precision::kFp16, 2);
  const size_t j = conv_index(half);
  ASSERT_LT(j, half.steps.size());
  ASSERT_FALSE(gpu::padded_copy_only_pads(half, half.steps[j]));
  const cuda::GraphConvolution on_copy = gpu::graph_convolution(half, half.steps[j], weights, 2, false, true);
  EXPECT_EQ(on_copy.geometry.h, 13);
  EXPECT_EQ(on_copy.geometry.w, 17);
  EXPECT_EQ(on_copy.geometry.c, 8);
  EXPECT_EQ(on_copy.geometry.pad_h + on_copy.pad_bottom + on_copy.geometry.pad_w + on_copy.pad_right, 0);
  EXPECT_EQ(on_copy.type, cuda::DType::kF16);
  EXPECT_FALSE(on_copy.strict_fp32 || on_copy.fused);
  expect_output_follows(on_copy);
}
#endif

// DBNet's upsampling head: a transposed convolution, its batch norm and ReLU, then one to a single channel.
Network deconvolution_network(std::mt19937& rng, int batch = 2) {
  Network net;
  Tensor* x = net.add_input("x", {batch, 5, 7, 6});
  DeconvolutionParams d;
  d.out_channels = 4;
  d.kernel = {3, 2};
  d.stride = {2, 2};
  d.groups = 2;
  d.padding = {1, 0, 0, 1};
  d.output_padding = {1, 0};
  d.kernel_weights = random_weights({6, 2, 3, 2}, rng);
  d.bias = random_weights({4}, rng);
  Tensor* y = net.add_deconvolution(x, d, "up1");
  y = net.add_scale(y, {ScaleMode::kChannel, random_weights({4}, rng, 0.5f, 1.5f), random_weights({4}, rng), nullptr}, "bn");
  y = net.add_activation(y, ActivationType::kRelu, "relu");
  DeconvolutionParams head;
  head.out_channels = 1;
  head.kernel = {2, 2};
  head.stride = {2, 2};
  head.kernel_weights = random_weights({4, 1, 2, 2}, rng);
  net.mark_output(net.add_activation(net.add_deconvolution(y, head, "up2"), ActivationType::kSigmoid, "prob"));
  return net;
}

TEST(GpuPlan, DeconvolutionsLowerAndRoundTripWithTheirWeights) {
  std::mt19937 rng(6);
  for (Precision precision : kPrecisions) {
    SCOPED_TRACE(to_string(precision));
    const gpu::PlanData plan = lowered(deconvolution_network(rng), precision, 3);
    int deconvolutions = 0;
    for (const gpu::PlanStep& step : plan.steps) {
      if (step.kind != gpu::StepKind::kLayer || step.layer_kind() != LayerKind::kDeconvolution) continue;
      ++deconvolutions;
      EXPECT_EQ(step.padded_input, -1) << step.name << ": the kernel crops and pads itself";
      EXPECT_EQ(plan.tensors[step.outputs[0]].shape[0], 3) << step.name;
    }
    EXPECT_EQ(deconvolutions, 2);
    expect_no_live_overlap(plan);
    const std::vector<uint8_t> bytes = gpu::serialize_plan(plan, kTarget);
    const gpu::ParsedPlan back = gpu::parse_plan(bytes, "deconv.plan");
    ASSERT_EQ(back.plan.steps.size(), plan.steps.size());
    const auto up1 = [](const gpu::PlanData& p) {
      return std::get<DeconvolutionParams>(
          std::find_if(p.steps.begin(), p.steps.end(), [](const gpu::PlanStep& s) { return s.name == "up1"; })->params);
    };
    const DeconvolutionParams a = up1(plan), b = up1(back.plan);
    EXPECT_EQ(b.out_channels, a.out_channels);
    EXPECT_EQ(b.kernel, a.kernel);
    EXPECT_EQ(b.stride, a.stride);
    EXPECT_EQ(b.groups, 2);
    EXPECT_EQ(b.padding, a.padding);
    EXPECT_EQ(b.output_padding, a.output_padding);
    EXPECT_EQ(b.kernel_weights->shape, a.kernel_weights->shape);
    EXPECT_EQ(b.kernel_weights->data, a.kernel_weights->data);
    ASSERT_TRUE(b.bias);
    EXPECT_EQ(b.bias->data, a.bias->data);
    EXPECT_EQ(gpu::serialize_plan(back.plan, back.target), bytes);
  }
  // Parameters that disagree with the weights or the tensors (the kernel indexes by them) are refused.
  gpu::PlanData plan = lowered(deconvolution_network(rng), Precision::kFp32, 2);
  auto up1 = std::find_if(plan.steps.begin(), plan.steps.end(), [](const gpu::PlanStep& s) { return s.name == "up1"; });
  std::get<DeconvolutionParams>(up1->params).groups = 3;
  const std::string message = error_of([&] { gpu::parse_plan(gpu::serialize_plan(plan, kTarget), "bad.plan"); });
  EXPECT_NE(message.find("bad.plan"), std::string::npos) << message;
  EXPECT_NE(message.find("deconvolution"), std::string::npos) << message;
}

// Expects parse_plan to refuse `bytes` with an Error naming the file and containing `fragment`.
void expect_refused(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    gpu::parse_plan(bytes, "/plans/east.plan");
    ADD_FAILURE() << "accepted a plan that should fail with '" << fragment << "'";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("/plans/east.plan"), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(GpuPlan, CorruptTruncatedForeignAndOldPlansAreRefused) {
  std::mt19937 rng(5);
  const std::vector<uint8_t> good = gpu::serialize_plan(lowered(small_network(rng), Precision::kFp32, 2), kTarget);
  ASSERT_NO_THROW(gpu::parse_plan(good, "ok.plan"));

  std::vector<uint8_t> flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;
  expect_refused(flipped, "corrupt");
  expect_refused(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(good.size() / 3)), "truncated");
  expect_refused(std::vector<uint8_t>(good.begin(), good.begin() + 10), "not an eastrt plan");
  std::vector<uint8_t> not_plan = good;
  not_plan[0] = 'X';
  expect_refused(not_plan, "not an eastrt plan");
  std::vector<uint8_t> other_format = good;
  other_format[8] = 99;  // the format version follows the 8-byte magic
  expect_refused(other_format, "format version 99");
  // A plan of the format before cuBLASLt's INT8 matmuls (version 9) is refused with the same advice.
  ASSERT_EQ(gpu::kPlanFormatVersion, 10u);
  other_format[8] = 9;
  expect_refused(other_format, "plan format version 9, this eastrt (" EASTRT_VERSION ") reads version 10; build the plan again");
  gpu::PlanTarget old = kTarget;
  old.eastrt_version = "0.0.1-old";
  expect_refused(gpu::serialize_plan(lowered(small_network(rng), Precision::kFp32, 2), old), "built by eastrt 0.0.1-old");
}

// Found by fuzz_plan (plan bodies with the checksum made right): a shape whose element count overflows
// int64 was multiplied out unchecked, and a yes/no byte read any non-zero value as yes (so that the plan
// read was not the plan written); both are refused as they are read.
TEST(GpuPlan, DimensionsTooLargeAndOtherFlagBytesAreRefused) {
  std::mt19937 rng(6);
  const std::vector<uint8_t> good = gpu::serialize_plan(lowered(small_network(rng), Precision::kFp32, 2), kTarget);
  // The first convolution's filter: the yes/no byte that it exists, its rank (int64 4), then [6, 5, 3, 3].
  const int64_t dims[4] = {6, 5, 3, 3};
  const uint8_t* pattern = reinterpret_cast<const uint8_t*>(dims);
  const auto at = std::search(good.begin(), good.end(), pattern, pattern + sizeof(dims));
  ASSERT_NE(at, good.end()) << "the filter's shape is not in the plan as four int64";
  const size_t dims_at = static_cast<size_t>(at - good.begin());
  ASSERT_EQ(good[dims_at - 9], 1) << "no yes/no byte before the filter's rank";
  // The header's checksum over the body (after the 8-byte magic and the 4-byte version), made right again.
  auto resealed = [](std::vector<uint8_t> bytes) {
    constexpr size_t kHeader = 8 + 4 + 8 + 8;
    const uint64_t checksum = gpu::fnv1a64(bytes.data() + kHeader, bytes.size() - kHeader);
    std::memcpy(bytes.data() + 12, &checksum, sizeof(checksum));
    return bytes;
  };
  ASSERT_NO_THROW(gpu::parse_plan(resealed(good), "resealed.plan"));
  std::vector<uint8_t> huge = good;
  const int64_t too_large[4] = {int64_t(1) << 40, int64_t(1) << 30, 3, 3};
  std::memcpy(huge.data() + dims_at, too_large, sizeof(too_large));
  expect_refused(resealed(huge), "dimensions too large");
  std::vector<uint8_t> flag = good;
  flag[dims_at - 9] = 0xfe;
  expect_refused(resealed(flag), "a yes/no byte holds 254");
}

TEST(GpuPlan, PlanForAnotherGpuIsRefusedNamingBoth) {
  GpuInfo a100;
  a100.available = true;
  a100.name = "NVIDIA A100-SXM4-80GB";
  a100.major = 8;
  try {
    gpu::check_plan_target(kTarget, a100, "east.plan");
    FAIL() << "a plan for another GPU was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("east.plan"), std::string::npos) << m;
    EXPECT_NE(m.find(kTarget.gpu_name), std::string::npos) << m;
    EXPECT_NE(m.find("NVIDIA A100-SXM4-80GB"), std::string::npos) << m;
  }
  GpuInfo same_name_other_cc = a100;
  same_name_other_cc.name = kTarget.gpu_name;  // same name, another compute capability
  EXPECT_THROW(gpu::check_plan_target(kTarget, same_name_other_cc, "east.plan"), Error);
  GpuInfo none;
  none.reason = "no CUDA device";
  EXPECT_THROW(gpu::check_plan_target(kTarget, none, "east.plan"), Error);
  GpuInfo same = same_name_other_cc;
  same.major = 9;
  EXPECT_NO_THROW(gpu::check_plan_target(kTarget, same, "east.plan"));
}

// ---------------------------------------------------------------- kernels on the GPU against the CPU

TEST(GpuKernels, ConvolutionsMatchTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(11);
  for (const ConvCase& c : kConvCases) {
    const Network net = conv_case_network(c, rng);
    check_network(net, rng, c.what);
  }
}

// The direct convolution, forced on every convolution of the plan (the builder takes it only where it
// times fastest): unpadded input of 1-4 channels or depthwise, asymmetric padding, outputs not a multiple
// of 16, bias, residual and activations, batch > 1, in every precision.
TEST(GpuKernels, DirectConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(16);
  const ConvCase cases[] = {
      {"7x7/2 TF SAME 2/3, 3 channels (EAST's conv1)", {3, 22, 25, 3}, 64, 7, 2, 1, 1, {2, 2, 3, 3}, true, ActivationType::kRelu, false, true},
      {"3x3 1 channel, residual + ReLU", {2, 9, 13, 1}, 5, 3, 1, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, true, false},
      {"5x5 4 channels, odd pad, sigmoid, 20 outputs", {2, 11, 7, 4}, 20, 5, 1, 1, 1, {0, 2, 3, 1}, true, ActivationType::kSigmoid, false, false},
      {"3x3/2 dilated 2 channels, no bias", {3, 15, 12, 2}, 17, 3, 2, 2, 1, {1, 1, 2, 2}, false, std::nullopt, false, false},
      {"3x3 depthwise 24 channels, ReLU, batch norm", {2, 13, 17, 24}, 24, 3, 1, 1, 24, Padding::symmetric(1), true, ActivationType::kRelu, false, true},
      {"5x5/2 depthwise 13 channels, asymmetric pad, residual", {3, 12, 15, 13}, 13, 5, 2, 1, 13, {1, 1, 2, 2}, true, std::nullopt, true, false},
  };
  for (const ConvCase& c : cases) {
    const Network net = conv_case_network(c, rng);
    for (Precision precision : kPrecisions) {
      SCOPED_TRACE(std::string(c.what) + " at " + to_string(precision));
      BuildOptions options;
      options.precision = precision;
      options.max_batch = static_cast<int>(c.input[0]);
      gpu::ParsedPlan parsed = gpu::parse_plan(Builder(net, options).build()->serialize(), "direct.plan");
      int forced = 0;
      for (gpu::PlanStep& step : parsed.plan.steps)
        if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) {
          step.tactic = {};
          step.tactic.kind = gpu::ConvTactic::Kind::kDirect;
          step.tactic.algo = 0;
          ++forced;
        }
      ASSERT_EQ(forced, 1);
      std::unique_ptr<Engine> engine = Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "direct.plan");
      EXPECT_NE(engine->inspect().layers.size(), 0u);
      const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
      auto context = engine->create_context();
      context->poison();
      const auto got = context->run(inputs);
      EXPECT_EQ(nan_count(got.at("y")), 0);
      EXPECT_LE(relative_error(got.at("y"), CpuEngine(net, {1, true}).run(inputs).at("y")), tolerance(precision));
    }
  }
}

// The direct tactic's tensor-core variants (3x3 stride 1, FP16, 32 input channels: mma.sync into any
// multiple of 32 filters, wgmma into 32 on compute capability 9.0), each forced on the convolution where it
// takes it (after a tanh, so that it reads FP16 as EAST's do): partial row and column tiles, two and three
// filter groups, a residual, asymmetric and no padding, sigmoid, ReLU and no activation, batch 3 and a
// smaller batch than the plan's; and a timed build of the same network, whatever it picks (with wgmma off:
// never the wgmma variant). Against the CPU in FP16's tolerance.
TEST(GpuKernels, TensorCoreConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(31);
  const ConvCase cases[] = {
      {"EAST's feature-merging 3x3 (pad 1, bias, ReLU), partial tiles", {2, 21, 45, 32}, 32, 3, 1, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, false, false},
      {"64 outputs, residual + ReLU, batch norm", {1, 8, 32, 32}, 64, 3, 1, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, true, true},
      {"asymmetric pad, no bias, no activation", {3, 17, 70, 32}, 32, 3, 1, 1, 1, {2, 1, 0, 1}, false, std::nullopt, false, false},
      {"no padding, sigmoid, 96 outputs", {2, 11, 35, 32}, 96, 3, 1, 1, 1, {}, true, ActivationType::kSigmoid, false, false},
      {"32 outputs, residual + ReLU, batch norm, two column tiles", {3, 9, 130, 32}, 32, 3, 1, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, true, true},
      {"32 outputs, pad 2 before, sigmoid", {2, 6, 64, 32}, 32, 3, 1, 1, 1, {2, 2, 0, 0}, true, ActivationType::kSigmoid, false, false},
  };
  const GpuInfo gpu = query_gpu();
  for (const ConvCase& c : cases) {
    const Network net = conv_case_network(c, rng, ActivationType::kTanh);
    BuildOptions options;
    options.precision = Precision::kFp16;
    options.max_batch = static_cast<int>(c.input[0]);
    const std::vector<uint8_t> built = Builder(net, options).build()->serialize();
    const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
    const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
    if (&c == &cases[0]) {
      // With wgmma off never the wgmma variant, also where a timing cache holds a build's choice with it:
      // the cache keeps the two builds' entries apart.
      const std::string path = "/tmp/eastrt_wgmma_cache_" + std::to_string(::getpid()) + ".json";
      std::remove(path.c_str());
      BuildOptions cached = options;
      cached.timing_cache = path;
      Builder with(net, cached);
      with.build();
      BuildOptions no_wgmma = cached;
      no_wgmma.wgmma = false;
      Builder without(net, no_wgmma);
      for (const EngineLayerInfo& l : without.build()->inspect().layers)
        EXPECT_EQ(l.tactic.find("on wgmma"), std::string::npos) << l.name << ": " << l.tactic;
      EXPECT_EQ(without.stats().convolutions_from_cache, 0);
      std::remove(path.c_str());
    }
    for (int variant : {-1, static_cast<int>(gpu::kDirectTensorCore), static_cast<int>(gpu::kDirectTensorCoreWgmma)}) {
      const bool forced = variant >= 0;
      SCOPED_TRACE(std::string(c.what) + (!forced ? ", as built" : variant == gpu::kDirectTensorCoreWgmma ? ", forced, wgmma" : ", forced"));
      gpu::ParsedPlan parsed = gpu::parse_plan(built, "tensor_core.plan");
      if (forced) {
        gpu::PlanStep& step = parsed.plan.steps[conv_step(parsed.plan)];
        const bool applies = gpu::direct_conv_applies(parsed.plan, step, variant);
        if (variant == gpu::kDirectTensorCoreWgmma) {
          EXPECT_EQ(applies, c.k == 32);
          if (!applies || !cuda::runs_sm90a(gpu.major, gpu.minor)) continue;
        } else {
          ASSERT_TRUE(applies);
        }
        step.tactic = {};
        step.tactic.kind = gpu::ConvTactic::Kind::kDirect;
        step.tactic.algo = variant;
      }
      std::unique_ptr<Engine> engine = Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "tensor_core.plan");
      if (forced) {
        const std::string name = variant == gpu::kDirectTensorCoreWgmma ? "tensor-core 3x3 convolution on wgmma"
                                                                         : "tensor-core 3x3 convolution, unpadded";
        bool found = false;
        for (const EngineLayerInfo& l : engine->inspect().layers) found = found || l.tactic.find(name) != std::string::npos;
        EXPECT_TRUE(found);
      }
      expect_engine_matches(*engine, inputs, want, Precision::kFp16);
    }
  }
  // Not offered where it cannot run: 16 channels, stride 2, FP32.
  for (const ConvCase& c : {ConvCase{"16 channels", {1, 9, 9, 16}, 32, 3, 1, 1, 1, Padding::symmetric(1), true, std::nullopt, false, false},
                            ConvCase{"stride 2", {1, 9, 9, 32}, 32, 3, 2, 1, 1, Padding::symmetric(1), true, std::nullopt, false, false}}) {
    SCOPED_TRACE(c.what);
    const Network net = conv_case_network(c, rng, ActivationType::kTanh);
    EXPECT_FALSE(direct_variant_applies(net, Precision::kFp16, gpu::kDirectTensorCore));
    EXPECT_FALSE(direct_variant_applies(net, Precision::kFp16, gpu::kDirectTensorCoreWgmma));
  }
  {
    const Network net = conv_case_network(cases[0], rng, ActivationType::kTanh);
    EXPECT_FALSE(direct_variant_applies(net, Precision::kFp32, gpu::kDirectTensorCore));
    EXPECT_FALSE(direct_variant_applies(net, Precision::kFp32, gpu::kDirectTensorCoreWgmma));
  }
}

// The direct tactic's pointwise variant (1x1 into 1-8 outputs), forced on the convolution, reading the
// float32 input binding or (after a tanh) the engine's own type: EAST's score and geometry heads (32
// channels into 1 and 5, sigmoid), 8 outputs with a residual and ReLU, a folded batch norm, the most
// channels it takes, odd pixel counts, batch 3 and a smaller batch than the plan's, in every precision;
// and a timed build of the same network, whatever it picks. Against the CPU in each precision's tolerance.
TEST(GpuKernels, PointwiseConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(47);
  const ConvCase cases[] = {
      {"EAST's score head: 32 into 1, sigmoid", {2, 21, 45, 32}, 1, 1, 1, 1, 1, {}, true, ActivationType::kSigmoid, false, false},
      {"EAST's geometry head: 32 into 5, sigmoid", {3, 17, 23, 32}, 5, 1, 1, 1, 1, {}, true, ActivationType::kSigmoid, false, false},
      {"8 outputs, residual + ReLU, batch norm", {2, 9, 13, 16}, 8, 1, 1, 1, 1, {}, true, ActivationType::kRelu, true, true},
      {"512 channels into 3, no bias, no activation", {1, 7, 11, 512}, 3, 1, 1, 1, 1, {}, false, std::nullopt, false, false},
  };
  for (const ConvCase& c : cases)
    for (bool before : {false, true}) {
      const Network net = before ? conv_case_network(c, rng, ActivationType::kTanh) : conv_case_network(c, rng);
      const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
      const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
      for (Precision precision : kPrecisions) {
        BuildOptions options;
        options.precision = precision;
        options.max_batch = static_cast<int>(c.input[0]);
        const std::vector<uint8_t> built = Builder(net, options).build()->serialize();
        for (bool forced : {true, false}) {
          SCOPED_TRACE(std::string(c.what) + (before ? ", after a tanh" : ", on the input binding") + " at " +
                       to_string(precision) + (forced ? ", forced" : ", as built"));
          gpu::ParsedPlan parsed = gpu::parse_plan(built, "pointwise.plan");
          if (forced) {
            gpu::PlanStep& step = parsed.plan.steps[conv_step(parsed.plan)];
            ASSERT_TRUE(gpu::direct_conv_applies(parsed.plan, step, gpu::kDirectPointwise));
            step.tactic = {};
            step.tactic.kind = gpu::ConvTactic::Kind::kDirect;
            step.tactic.algo = gpu::kDirectPointwise;
          }
          std::unique_ptr<Engine> engine = Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "pointwise.plan");
          if (forced) {
            bool found = false;
            for (const EngineLayerInfo& l : engine->inspect().layers) found = found || l.tactic.find("pointwise") != std::string::npos;
            EXPECT_TRUE(found);
          }
          expect_engine_matches(*engine, inputs, want, precision);
        }
      }
    }
  // Not offered where it cannot run: 9 outputs, 3x3, stride 2, 12 FP16 channels (not whole 16-byte packs).
  const ConvCase refused[] = {
      {"9 outputs", {1, 5, 7, 32}, 9, 1, 1, 1, 1, {}, true, std::nullopt, false, false},
      {"3x3", {1, 5, 7, 32}, 4, 3, 1, 1, 1, Padding::symmetric(1), true, std::nullopt, false, false},
      {"stride 2", {1, 6, 8, 32}, 4, 1, 2, 1, 1, {}, true, std::nullopt, false, false},
      {"12 channels", {1, 5, 7, 12}, 4, 1, 1, 1, 1, {}, true, std::nullopt, false, false},
  };
  for (const ConvCase& c : refused) {
    SCOPED_TRACE(c.what);
    EXPECT_FALSE(direct_variant_applies(conv_case_network(c, rng, ActivationType::kTanh), Precision::kFp16,
                                        gpu::kDirectPointwise));
  }
}

// The space-to-depth tactic, forced on the convolution with cuDNN's implicit GEMM algorithms (the ones every
// configuration takes), fused and split: EAST's conv1 at a small size, 1 channel, 4 channels at odd sizes,
// an even kernel, batch > 1, with and without bias, ReLU and a residual, in every precision.
TEST(GpuKernels, SpaceToDepthConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(17);
  const ConvCase cases[] = {
      {"7x7/2 TF SAME 2/3, 3 channels (EAST's conv1)", {3, 22, 25, 3}, 64, 7, 2, 1, 1, {2, 2, 3, 3}, true, ActivationType::kRelu, false, true},
      {"5x5/2 on 1 channel, no bias, no activation", {2, 13, 11, 1}, 7, 5, 2, 1, 1, {1, 1, 2, 2}, false, std::nullopt, false, false},
      {"3x3/2 on 4 channels, odd sizes, ReLU", {2, 9, 7, 4}, 5, 3, 2, 1, 1, {0, 0, 1, 1}, true, ActivationType::kRelu, false, false},
      {"3x3/2 on 2 channels, symmetric pad, residual + ReLU", {3, 11, 15, 2}, 17, 3, 2, 1, 1, Padding::symmetric(1), true, ActivationType::kRelu, true, false},
      {"4x4/2 on 8 channels, sigmoid after", {2, 10, 9, 8}, 12, 4, 2, 1, 1, {1, 1, 2, 2}, true, ActivationType::kSigmoid, false, false},
  };
  for (const ConvCase& c : cases) {
    const Network net = conv_case_network(c, rng);
    for (Precision precision : kPrecisions) {
      BuildOptions options;
      options.precision = precision;
      options.max_batch = static_cast<int>(c.input[0]);
      const std::vector<uint8_t> built = Builder(net, options).build()->serialize();
      const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
      const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
      for (gpu::ConvTactic::Kind kind : {gpu::ConvTactic::Kind::kSpaceToDepthSplit, gpu::ConvTactic::Kind::kSpaceToDepthFused}) {
        const bool fused = kind == gpu::ConvTactic::Kind::kSpaceToDepthFused;
        SCOPED_TRACE(std::string(c.what) + " at " + to_string(precision) + (fused ? ", fused" : ", split"));
        gpu::ParsedPlan parsed = gpu::parse_plan(built, "s2d.plan");
        int forced = 0;
        for (gpu::PlanStep& step : parsed.plan.steps)
          if (step.kind == gpu::StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) {
            ASSERT_TRUE(gpu::space_to_depth_applies(parsed.plan, step));
            step.tactic = {};
            step.tactic.kind = kind;
            // cudnnConvolutionFwdAlgo_t: IMPLICIT_GEMM 0, IMPLICIT_PRECOMP_GEMM 1 (the fused call takes an
            // identity activation only with the latter, cuDNN's rule); cudnnMathType_t: tensor-op 1, FMA 3.
            step.tactic.algo = fused ? 1 : 0;
            step.tactic.math = precision == Precision::kFp32 ? 3 : 1;
            step.tactic.workspace = 0;  // the context asks cuDNN and grows its workspace: X' plus cuDNN's
            ++forced;
          }
        ASSERT_EQ(forced, 1);
        std::unique_ptr<Engine> engine = Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "s2d.plan");
        const EngineInfo info = engine->inspect();
        const auto conv = std::find_if(info.layers.begin(), info.layers.end(),
                                       [](const EngineLayerInfo& l) { return l.kind == "Convolution"; });
        ASSERT_NE(conv, info.layers.end());
        EXPECT_NE(conv->tactic.find("space-to-depth"), std::string::npos) << conv->tactic;
        expect_engine_matches(*engine, inputs, want, precision);
      }
    }
  }
}

// The conv/max-pool kernel against the CPU: a 7x7/2 convolution on 3 channels into 64, then a 3x3/2 max-pool,
// at sizes that leave partial tiles, with TF's SAME pads (pool: 0 before, 1 after) and symmetric ones, with
// and without bias and ReLU, on a float32 input with its shift folded in and on an FP16 one (a scale before
// it that stays a step), element counts that end inside a 16-byte chunk, at the plan's largest batch and
// below it; forced into the plan, and as a timed build chooses.
TEST(GpuKernels, ConvMaxPoolMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(23);
  struct Case {
    const char* what;
    Shape input;
    int kernel;
    Padding conv_pad, pool_pad;
    bool bias, relu;
    bool fp16_input = false;  // the scale before it multiplies too, so it stays a step with an FP16 output
  };
  const Case cases[] = {
      {"EAST's conv1 and pool1 (TF SAME)", {2, 37, 53, 3}, 7, {2, 2, 3, 3}, {0, 0, 1, 1}, true, true},
      {"symmetric pads, no bias, no ReLU", {3, 30, 41, 3}, 7, Padding::symmetric(3), Padding::symmetric(1), false, false},
      {"one row of tiles, ReLU", {1, 9, 70, 3}, 7, {2, 2, 3, 3}, {1, 1, 1, 1}, true, true},
      {"an 8x8 filter: every tap row whole", {2, 33, 64, 3}, 8, {3, 3, 4, 4}, {0, 0, 1, 1}, true, true},
      {"four input channels", {1, 24, 95, 4}, 7, {2, 2, 3, 3}, {0, 0, 1, 1}, true, false},
      {"an FP16 input, 3 channels", {2, 21, 45, 3}, 7, {2, 2, 3, 3}, {0, 0, 1, 1}, true, true, true},
      {"an FP16 input, 4 channels", {1, 19, 33, 4}, 7, {3, 3, 3, 3}, {1, 1, 1, 1}, false, true, true},
  };
  for (const Case& c : cases) {
    Network net;
    // A per-channel shift first (EAST's mean subtraction), which the builder folds into space-to-depth.
    Tensor* x = net.add_scale(net.add_input("x", c.input),
                              {ScaleMode::kChannel, c.fp16_input ? random_weights({c.input[3]}, rng, 0.5f, 1.5f) : nullptr,
                               random_weights({c.input[3]}, rng), nullptr},
                              "shift");
    ConvolutionParams conv;
    conv.out_channels = 64;
    conv.kernel = {c.kernel, c.kernel};
    conv.stride = {2, 2};
    conv.padding = c.conv_pad;
    conv.kernel_weights = random_weights({64, c.input[3], c.kernel, c.kernel}, rng, -0.2f, 0.2f);
    if (c.bias) conv.bias = random_weights({64}, rng);
    Tensor* y = net.add_convolution(x, conv, "conv");
    if (c.relu) y = net.add_activation(y, ActivationType::kRelu, "relu");
    // The pool's output inside the engine (FP16, as EAST's pool1), not the float32 output binding.
    Tensor* pooled = net.add_pooling(y, {PoolingType::kMax, {3, 3}, {2, 2}, c.pool_pad}, "pool");
    net.mark_output(net.add_scale(pooled, {ScaleMode::kUniform, make_weights({1}, {2.0f}), nullptr, nullptr}, "twice"), "y");
    const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
    const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
    BuildOptions options;
    options.precision = Precision::kFp16;
    options.max_batch = static_cast<int>(c.input[0]);
    const std::vector<uint8_t> built = Builder(net, options).build()->serialize();
    // As built, then forced with each of the kernel's two versions (wgmma on compute capability 9.0 alone).
    const GpuInfo gpu = query_gpu();
    if (&c == &cases[0]) {  // BuildOptions::wgmma off (--no-wgmma): never the wgmma version
      BuildOptions no_wgmma = options;
      no_wgmma.wgmma = false;
      for (const EngineLayerInfo& l : Builder(net, no_wgmma).build()->inspect().layers)
        EXPECT_EQ(l.tactic.find("on wgmma"), std::string::npos) << l.name << ": " << l.tactic;
    }
    for (int kernel : {-1, cuda::kConvMaxPoolMmaSync, cuda::kConvMaxPoolWgmma}) {
      if (kernel == cuda::kConvMaxPoolWgmma && !cuda::runs_sm90a(gpu.major, gpu.minor)) continue;
      const bool forced = kernel >= 0;
      SCOPED_TRACE(std::string(c.what) + (!forced ? ", as built" : kernel == cuda::kConvMaxPoolWgmma ? ", forced, wgmma" : ", forced"));
      gpu::ParsedPlan parsed = gpu::parse_plan(built, "pool.plan");
      if (forced) {
        for (size_t i = 0; i < parsed.plan.steps.size(); ++i) {
          gpu::PlanStep& step = parsed.plan.steps[i];
          if (step.kind != gpu::StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution || step.pool.window)
            continue;
          step.tactic = {};
          step.tactic.kind = gpu::ConvTactic::Kind::kSpaceToDepthFused;
          const int pool = gpu::max_pools_to_fuse(parsed.plan)[i];
          ASSERT_GT(pool, static_cast<int>(i));
          gpu::fuse_max_pool(parsed.plan, static_cast<int>(i), pool);  // the context sizes the workspace
          parsed.plan.steps[i].tactic.algo = kernel;
          if (const int shift = gpu::input_shifts_to_fold(parsed.plan)[i]; shift >= 0)
            gpu::fold_input_shift(parsed.plan, static_cast<int>(i), shift);
          gpu::plan_arena(parsed.plan);
          break;
        }
      }
      std::unique_ptr<Engine> engine = Engine::deserialize(gpu::serialize_plan(parsed.plan, parsed.target), "pool.plan");
      bool fused = false;
      for (const EngineLayerInfo& l : engine->inspect().layers) fused = fused || l.tactic.find("conv/max-pool") != std::string::npos;
      if (forced) EXPECT_TRUE(fused);
      // The kernel builds X' in shared memory: a build that fuses the network's one convolution needs no workspace.
      if (fused && !forced) EXPECT_EQ(engine->inspect().workspace_bytes, 0);
      if (forced)
        for (const EngineLayerInfo& l : engine->inspect().layers)
          EXPECT_TRUE((c.fp16_input || l.name != "shift") && l.name != "pool") << l.name << " should be folded into the convolution";
      SCOPED_TRACE(fused ? "fused" : "separate");
      expect_engine_matches(*engine, inputs, want, Precision::kFp16);
    }
  }
}

TEST(GpuKernels, PoolingMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(12);
  struct Case {
    const char* what;
    Shape input;
    PoolingParams p;
  };
  const Case cases[] = {
      {"max 3x3/2 TF SAME", {3, 12, 14, 5}, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}},
      {"max 1x1/2 subsample", {2, 9, 11, 7}, {PoolingType::kMax, {1, 1}, {2, 2}, {}}},
      {"average 3x3 pad 1", {2, 7, 9, 6}, {PoolingType::kAverage, {3, 3}, {1, 1}, Padding::symmetric(1)}},
      {"average 3x3 pad 1 counting pad", {2, 7, 9, 6}, {PoolingType::kAverage, {3, 3}, {1, 1}, Padding::symmetric(1), false, true}},
      {"global average", {3, 5, 6, 9}, {PoolingType::kAverage, {1, 1}, {1, 1}, {}, true}},
      {"max 2x3 stride 2x1 odd pad", {2, 7, 8, 3}, {PoolingType::kMax, {2, 3}, {2, 1}, {1, 0, 0, 2}}},
      // Channels in whole 16-byte packs (8 halves, 4 floats), in float packs only (12), and EAST's pool1.
      {"max 3x3/2 TF SAME, 16 channels", {3, 11, 13, 16}, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}},
      {"max 3x3/2 TF SAME, 12 channels", {2, 12, 15, 12}, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}},
      {"max 3x3/2 pool1, 64 channels", {2, 18, 22, 64}, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}},
      {"average 3x3 odd pad, 24 channels", {2, 9, 7, 24}, {PoolingType::kAverage, {3, 3}, {1, 1}, {1, 0, 2, 1}}},
      {"average 2x2/2 counting pad, 8 channels", {3, 7, 9, 8}, {PoolingType::kAverage, {2, 2}, {2, 2}, {0, 0, 1, 1}, false, true}},
      {"global average, 40 channels", {2, 5, 7, 40}, {PoolingType::kAverage, {1, 1}, {1, 1}, {}, true}},
      // One output pixel: the block-per-32-channels kernel (more cells than its 32 lanes, channels not a
      // multiple of 32, a window that leaves cells out, padding inside the window).
      {"global average 37x61, 40 channels", {2, 37, 61, 40}, {PoolingType::kAverage, {1, 1}, {1, 1}, {}, true}},
      {"global max 68x120, 96 channels (PP-OCRv4's SE)", {1, 68, 120, 96}, {PoolingType::kMax, {1, 1}, {1, 1}, {}, true}},
      {"max 2x2 on 3x3, one output", {2, 3, 3, 7}, {PoolingType::kMax, {2, 2}, {2, 2}, {}}},
      {"average 4x4 pad 1 on 3x3 counting pad, one output", {3, 3, 3, 5}, {PoolingType::kAverage, {4, 4}, {4, 4}, {1, 1, 0, 0}, false, true}},
  };
  for (const Case& c : cases)
    check_network(single_layer(c.input, [&](Network& n, Tensor* x) { return n.add_pooling(x, c.p, "pool"); }), rng, c.what);
}

TEST(GpuKernels, DeconvolutionsMatchTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(16);
  struct Case {
    const char* what;
    Shape input;
    int k, kernel_h, kernel_w, stride_h, stride_w, groups;
    Padding padding;
    std::array<int, 2> output_padding;
    bool bias;
    bool scale_relu;  // DBNet's batch norm and ReLU after it
  };
  const Case cases[] = {
      {"DBNet 2x2/2, 5 → 3 channels, batch 3", {3, 7, 9, 5}, 3, 2, 2, 2, 2, 1, {}, {0, 0}, true, true},
      {"DBNet head 2x2/2 to one channel", {2, 11, 6, 13}, 1, 2, 2, 2, 2, 1, {}, {0, 0}, true, false},
      {"3x3/2 pad 1, output padding 1", {2, 5, 7, 6}, 7, 3, 3, 2, 2, 1, Padding::symmetric(1), {1, 1}, true, false},
      {"4x4/2 asymmetric crop", {2, 6, 5, 9}, 5, 4, 4, 2, 2, 1, {1, 0, 2, 1}, {0, 0}, false, true},
      {"grouped 3x3/2, 6 → 9 channels in 3 groups", {3, 5, 6, 6}, 9, 3, 3, 2, 2, 3, {0, 1, 1, 0}, {1, 0}, true, false},
      {"2x3 stride 3x1: gaps between taps", {2, 4, 7, 11}, 10, 2, 3, 3, 1, 1, {}, {2, 0}, true, false},
      {"1x1/1: a plain channel mix", {2, 9, 5, 17}, 19, 1, 1, 1, 1, 1, {}, {0, 0}, false, false},
  };
  for (const Case& c : cases) {
    Network net;
    Tensor* x = net.add_input("x", c.input);
    DeconvolutionParams p;
    p.out_channels = c.k;
    p.kernel = {c.kernel_h, c.kernel_w};
    p.stride = {c.stride_h, c.stride_w};
    p.groups = c.groups;
    p.padding = c.padding;
    p.output_padding = c.output_padding;
    const float bound = 1.5f / std::sqrt(static_cast<float>(c.input[3] / c.groups));
    p.kernel_weights = random_weights({c.input[3], c.k / c.groups, c.kernel_h, c.kernel_w}, rng, -bound, bound);
    if (c.bias) p.bias = random_weights({c.k}, rng);
    Tensor* y = net.add_deconvolution(x, p, "deconv");
    if (c.scale_relu) {
      y = net.add_scale(y, {ScaleMode::kChannel, random_weights({c.k}, rng, 0.5f, 1.5f), random_weights({c.k}, rng), nullptr},
                        "bn");
      y = net.add_activation(y, ActivationType::kRelu, "relu");
    }
    net.mark_output(y, "y");
    check_network(net, rng, c.what);
  }
}

TEST(GpuKernels, ResizeUnderEveryRuleMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(13);
  for (ResizeMode mode : {ResizeMode::kBilinear, ResizeMode::kNearest})
    for (ResizeCoordinates rule : {ResizeCoordinates::kAsymmetric, ResizeCoordinates::kHalfPixel, ResizeCoordinates::kAlignCorners}) {
      const std::string what = std::string(mode == ResizeMode::kBilinear ? "bilinear" : "nearest") + " rule " +
                               std::to_string(static_cast<int>(rule));
      check_network(single_layer({2, 5, 7, 6}, [&](Network& n, Tensor* x) {
                      return n.add_resize(x, {mode, rule, 0, 0, 2.0f, 2.0f}, "up2");
                    }), rng, what + " x2");
      check_network(single_layer({3, 6, 5, 4}, [&](Network& n, Tensor* x) {
                      return n.add_resize(x, {mode, rule, 9, 13, 0, 0}, "up");
                    }), rng, what + " to 9x13");
      check_network(single_layer({2, 9, 10, 3}, [&](Network& n, Tensor* x) {
                      return n.add_resize(x, {mode, rule, 4, 3, 0, 0}, "down");
                    }), rng, what + " to 4x3");
      // Channels in whole 16-byte packs (8 halves, 4 floats) and in float packs only.
      check_network(single_layer({3, 5, 7, 16}, [&](Network& n, Tensor* x) {
                      return n.add_resize(x, {mode, rule, 0, 0, 2.0f, 2.0f}, "up2");
                    }), rng, what + " x2, 16 channels");
      check_network(single_layer({2, 6, 5, 12}, [&](Network& n, Tensor* x) {
                      return n.add_resize(x, {mode, rule, 11, 7, 0, 0}, "up");
                    }), rng, what + " to 11x7, 12 channels");
    }
}

// The bilinear ×2 of the asymmetric rule has a kernel of its own (a thread an input pixel): in FP32 it gives
// the CPU reference's values bit for bit, as the general kernel does, with channels in 16-byte packs and
// not, odd sizes and one row or column.
TEST(GpuKernels, TwiceUpsamplingIsTheReferenceBitForBit) {
  REQUIRE_GPU();
  std::mt19937 rng(17);
  for (const Shape& input : {Shape{2, 5, 7, 16}, Shape{3, 4, 3, 6}, Shape{1, 1, 9, 8}, Shape{2, 6, 1, 4}}) {
    SCOPED_TRACE(to_string(input));
    const Network net = single_layer(input, [&](Network& n, Tensor* x) {
      return n.add_resize(x, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "up2");
    });
    const auto inputs = random_inputs(net, rng, -3.0f, 3.0f);
    const HostTensor want = CpuEngine(net, {1, true}).run(inputs).at("y");
    const HostTensor got = run_gpu(net, Precision::kFp32, inputs).at("y");
    ASSERT_EQ(got.shape, want.shape);
    int64_t differ = 0;
    for (int64_t i = 0; i < want.size(); ++i) differ += got.data[i] != want.data[i];
    EXPECT_EQ(differ, 0);
  }
}

TEST(GpuKernels, ConcatenationsAndResizeIntoConcatenationMatchTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(14);
  for (bool inside : {false, true}) {
    // EAST's merge: the ×2 upsampling written straight into the first channels (a view), then the rest.
    Network net;
    Tensor* h = net.add_input("h", {2, 4, 5, 6});
    Tensor* f = net.add_input("f", {2, 8, 10, 3});
    Tensor* g = net.add_resize(h, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "unpool");
    Tensor* c = net.add_concatenation({g, f}, 3, "concat");
    if (inside) c = net.add_activation(c, ActivationType::kTanh, "after");
    net.mark_output(c, "y");
    check_network(net, rng, inside ? "resize into an arena concatenation" : "resize into the output binding");
  }
  // Packed channels written into a slice at a packed offset, and at an offset of 3 (the scalar kernel).
  for (int before : {0, 3}) {
    Network net;
    Tensor* h = net.add_input("h", {2, 4, 5, 32});
    Tensor* f = net.add_input("f", {2, 8, 10, 8});
    Tensor* g = net.add_resize(h, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "unpool");
    std::vector<Tensor*> parts{g, f};
    if (before > 0) parts.insert(parts.begin(), net.add_input("e", {2, 8, 10, before}));
    net.mark_output(net.add_activation(net.add_concatenation(parts, 3, "concat"), ActivationType::kTanh, "after"), "y");
    check_network(net, rng, "32 channels resized into a concatenation after " + std::to_string(before));
  }
  Network width;
  Tensor* a = width.add_input("a", {3, 5, 4, 7});
  Tensor* b = width.add_input("b", {3, 5, 9, 7});
  width.mark_output(width.add_concatenation({a, b, a}, 2, "concat_w"), "y");
  check_network(width, rng, "concatenation along the width, an input twice");
  Network channels;
  Tensor* p = channels.add_input("p", {2, 3, 3, 5});
  Tensor* q = channels.add_input("q", {2, 3, 3, 1});
  channels.mark_output(channels.add_concatenation({p, q}, -1, "concat_c"), "y");
  check_network(channels, rng, "concatenation of 5 and 1 channels");
}

TEST(GpuKernels, UpsampleAfterConvolutionMatchesTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(15);
  // EAST's merge at awkward sizes: Conv1×1(Concat(Resize(h), f)) with bias and ReLU, which the builder runs
  // as Conv1×1(f) + Resize(Conv1×1(h)) (the upsampled operand first or second, bilinear or nearest, the
  // upsampled size cut to an odd one).
  struct Case {
    int64_t h_channels, f_channels, k;
    bool upsampled_first;
    ResizeMode mode;
  };
  for (const Case& c : {Case{48, 24, 16, true, ResizeMode::kBilinear}, Case{40, 16, 8, false, ResizeMode::kNearest},
                        Case{13, 5, 7, true, ResizeMode::kBilinear}}) {
    Network net;
    Tensor* h = net.add_input("h", {2, 5, 7, c.h_channels});
    Tensor* f = net.add_input("f", {2, 9, 13, c.f_channels});
    Tensor* g = net.add_resize(h, {c.mode, ResizeCoordinates::kAsymmetric, 9, 13, 0.0f, 0.0f}, "unpool");
    Tensor* cat = net.add_concatenation(c.upsampled_first ? std::vector<Tensor*>{g, f} : std::vector<Tensor*>{f, g}, 3,
                                        "concat");
    ConvolutionParams p;
    p.out_channels = static_cast<int>(c.k);
    p.kernel_weights = random_weights({c.k, c.h_channels + c.f_channels, 1, 1}, rng, -0.3f, 0.3f);
    p.bias = random_weights({c.k}, rng);
    Tensor* y = net.add_activation(net.add_convolution(cat, p, "merge"), ActivationType::kRelu, "relu");
    net.mark_output(y, "y");
    Network rewritten = net;
    gpu::run_builder_passes(rewritten, Precision::kFp32);
    ASSERT_EQ(std::count_if(rewritten.layers().begin(), rewritten.layers().end(),
                            [](const Layer& l) { return l.kind() == LayerKind::kConcatenation; }),
              0)
        << "the rewrite did not apply";
    check_network(net, rng, "merge of " + std::to_string(c.h_channels) + " upsampled and " +
                                std::to_string(c.f_channels) + " channels into " + std::to_string(c.k));
  }
}

TEST(GpuKernels, ScaleActivationUnaryAndElementwiseMatchTheCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(15);
  const Shape shape{3, 5, 7, 6};
  check_network(single_layer(shape, [&](Network& n, Tensor* x) {
                  return n.add_scale(x, {ScaleMode::kChannel, random_weights({6}, rng, 0.5f, 1.5f),
                                         random_weights({6}, rng, 0.1f, 0.5f), random_weights({6}, rng, 0.5f, 2.0f)},
                                     "scale_power");
                }), rng, "per-channel scale with power", 0.5f, 2.0f);
  check_network(single_layer(shape, [&](Network& n, Tensor* x) {
                  return n.add_scale(x, {ScaleMode::kUniform, make_weights({1}, {-3.0f}), make_weights({1}, {0.25f}), nullptr},
                                     "scale_uniform");
                }), rng, "uniform scale");
  const ActivationParams activations[] = {{ActivationType::kRelu}, {ActivationType::kSigmoid}, {ActivationType::kTanh},
                                          {ActivationType::kClip, -0.3f, 0.6f}, {ActivationType::kHardSigmoid, 0.2f, 0.5f},
                                          {ActivationType::kHardSwish}, {ActivationType::kLeakyRelu, 0.1f}};
  for (const ActivationParams& a : activations)
    check_network(single_layer(shape, [&](Network& n, Tensor* x) { return n.add_activation(x, a, "act"); }), rng,
                  std::string("activation ") + to_string(a.type), -3.0f, 3.0f);
  for (int op = 0; op <= static_cast<int>(UnaryOp::kCos); ++op) {
    // Floor and ceil jump where FP16 rounding of the input may cross an integer: float storage only.
    const bool steps = op == static_cast<int>(UnaryOp::kFloor) || op == static_cast<int>(UnaryOp::kCeil);
    check_network(single_layer(shape, [&](Network& n, Tensor* x) { return n.add_unary(x, static_cast<UnaryOp>(op), "unary"); }),
                  rng, std::string("unary ") + to_string(static_cast<UnaryOp>(op)), 0.5f, 2.0f,
                  steps ? std::vector<Precision>{Precision::kFp32, Precision::kTf32}
                        : std::vector<Precision>{std::begin(kPrecisions), std::end(kPrecisions)});
  }
  for (int op = 0; op <= static_cast<int>(ElementWiseOp::kPow); ++op) {
    Network net;
    Tensor* a = net.add_input("a", {2, 5, 7, 3});
    Tensor* b = net.add_input("b", {2, 1, 7, 1});  // broadcast over rows and channels
    net.mark_output(net.add_elementwise(a, b, static_cast<ElementWiseOp>(op), "binary"), "y");
    check_network(net, rng, std::string("elementwise ") + to_string(static_cast<ElementWiseOp>(op)), 0.5f, 2.0f);
  }
}

// ---------------------------------------------------------------- EAST end to end

struct EastFixture {
  east::NetworkOptions options{2, 224, 320, 1};  // 7 × 10 blocks of 32: odd sizes all the way down
  Network network = east::build(east::random_weights(options, 1), options);
  HostTensor image;
  std::map<std::string, HostTensor> cpu;
  EastFixture() {
    std::mt19937 rng(21);
    image = random_tensor({2, 224, 320, 3}, rng, 0.0f, 255.0f);
    cpu = CpuEngine(network, {0, false}).run({{east::kInputName, image}});
  }
};

EastFixture& east_fixture() {
  static EastFixture fixture;
  return fixture;
}

TEST(GpuEast, Fp32MatchesTheCpuEndToEnd) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  const auto got = run_gpu(f.network, Precision::kFp32, {{east::kInputName, f.image}});
  EXPECT_LE(relative_error(got.at(east::kScoreOutput), f.cpu.at(east::kScoreOutput)), 1e-4);
  EXPECT_LE(relative_error(got.at(east::kGeometryOutput), f.cpu.at(east::kGeometryOutput)), 1e-4);
}

TEST(GpuEast, Tf32AndFp16StayCloseToTheCpu) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  for (auto [precision, bound] : {std::pair{Precision::kTf32, 1e-2}, std::pair{Precision::kFp16, 5e-2}}) {
    SCOPED_TRACE(to_string(precision));
    const auto got = run_gpu(f.network, precision, {{east::kInputName, f.image}});
    EXPECT_LE(relative_error(got.at(east::kScoreOutput), f.cpu.at(east::kScoreOutput)), bound);
    EXPECT_LE(relative_error(got.at(east::kGeometryOutput), f.cpu.at(east::kGeometryOutput)), bound);
  }
}

// An image's outputs do not depend on where in the batch it is, or on the other images: three images in
// two orders, bit for bit, with the tactics a timed build chooses and with the untimed heuristic ones
// (which the serve tests use).
TEST(GpuEast, AnImagesOutputsDoNotDependOnItsPlaceInTheBatch) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  std::mt19937 rng(31);
  const HostTensor images = random_tensor({3, 224, 320, 3}, rng, 0.0f, 255.0f);
  const int64_t per_image = volume(images.shape) / 3;
  HostTensor rotated(images.shape);  // images 2, 0, 1
  for (int i = 0; i < 3; ++i)
    std::copy_n(images.data.begin() + ((i + 2) % 3) * per_image, per_image, rotated.data.begin() + i * per_image);
  for (bool timed : {true, false}) {
    SCOPED_TRACE(timed ? "timed tactics" : "untimed tactics");
    BuildOptions options;
    options.precision = Precision::kFp16;
    options.max_batch = 3;
    options.time_tactics = timed;
    std::unique_ptr<Engine> engine = Builder(f.network, options).build();
    auto context = engine->create_context();
    const auto a = context->run({{east::kInputName, images}});
    const auto b = context->run({{east::kInputName, rotated}});
    for (const auto& [name, t] : a) {
      const int64_t n = volume(t.shape) / 3;
      for (int i = 0; i < 3; ++i) {
        int64_t differing = 0;
        for (int64_t k = 0; k < n; ++k)
          differing += t.data[i * n + k] != b.at(name).data[((i + 1) % 3) * n + k];
        EXPECT_EQ(differing, 0) << name << ": image " << i << " in place " << i << " and in place " << (i + 1) % 3;
      }
    }
    if (::testing::Test::HasFailure())
      for (const EngineLayerInfo& l : engine->inspect().layers)
        if (l.kind == "Convolution") std::cerr << "  " << l.name << ": " << l.tactic << "\n";
  }
}

TEST(GpuEast, ProfileTimesEveryStepAndLeavesTheOutputsRight) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  BuildOptions options;
  options.max_batch = 2;
  std::unique_ptr<Engine> engine = Builder(f.network, options).build();
  auto context = engine->create_context();
  context->set_input(east::kInputName, f.image);
  const std::vector<double> ms = context->profile_steps(1, 5);
  ASSERT_EQ(ms.size(), engine->inspect().layers.size());
  double total = 0;
  for (double m : ms) {
    EXPECT_GE(m, 0.0);
    total += m;
  }
  const std::vector<double> whole = context->time_enqueue(1, 5);
  EXPECT_GT(total, 0.0);
  EXPECT_LT(total, 5 * *std::max_element(whole.begin(), whole.end()) + 1.0) << "steps far longer than the run";
  context->fetch_outputs();
  context->synchronize();
  EXPECT_LE(relative_error(context->output(east::kScoreOutput), f.cpu.at(east::kScoreOutput)), 1e-4);
}

TEST(GpuEast, GraphsSmallerBatchesAndContextsAgree) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  BuildOptions options;
  options.max_batch = 3;
  std::unique_ptr<Engine> engine = Builder(f.network, options).build();
  auto eager = engine->create_context();
  auto graph = engine->create_context();
  graph->set_cuda_graph(true);
  eager->poison();
  graph->poison();
  const auto a = eager->run({{east::kInputName, f.image}});
  const auto b = graph->run({{east::kInputName, f.image}});
  graph->run({{east::kInputName, f.image}});  // the replay, not only the capture
  const auto b2 = graph->run({{east::kInputName, f.image}});
  for (const auto& [name, t] : a) {
    EXPECT_EQ(relative_error(b.at(name), t), 0.0) << name << ": graph replay differs from launches";
    EXPECT_EQ(relative_error(b2.at(name), t), 0.0) << name;
    EXPECT_LE(relative_error(t, f.cpu.at(name)), 1e-4) << name << " at batch 2 of 3";
  }
  // Batch 1: the first image alone gives the first image's outputs.
  HostTensor first({1, 224, 320, 3});
  std::copy_n(f.image.data.begin(), first.size(), first.data.begin());
  const auto one = eager->run({{east::kInputName, first}});
  for (const auto& [name, t] : one) {
    HostTensor want(t.shape);
    std::copy_n(a.at(name).data.begin(), want.size(), want.data.begin());
    EXPECT_LE(relative_error(t, want), 1e-5) << name;
  }
  // Two contexts enqueued together on their streams give what each gives alone.
  HostTensor other = f.image;
  std::reverse(other.data.begin(), other.data.end());
  eager->set_input(east::kInputName, f.image);
  graph->set_input(east::kInputName, other);
  eager->enqueue();
  graph->enqueue();
  eager->fetch_outputs();
  graph->fetch_outputs();
  eager->synchronize();
  graph->synchronize();
  const auto alone = engine->create_context()->run({{east::kInputName, other}});
  for (const auto& [name, t] : a) {
    EXPECT_EQ(relative_error(eager->output(name), t), 0.0) << name;
    EXPECT_EQ(relative_error(graph->output(name), alone.at(name)), 0.0) << name;
  }
  const std::vector<double> ms = graph->time_enqueue(2, 5);
  ASSERT_EQ(ms.size(), 5u);
  for (double t : ms) EXPECT_GT(t, 0.0);
  const EngineInfo info = engine->inspect();
  EXPECT_GT(info.weight_bytes, 90'000'000);  // ≈24 M float32 parameters
  EXPECT_GT(info.activation_bytes, 0);
  int convolutions = 0;
  for (const EngineLayerInfo& l : info.layers)
    if (l.kind == "Convolution") {
      ++convolutions;
      // A timed tactic of one of the three families (cuDNN, cuBLASLt for 1x1, our direct convolution's
      // variants).
      const bool named = l.tactic.find("cudnn") != std::string::npos || l.tactic.find("cublaslt#") != std::string::npos ||
                         l.tactic.find("eastrt direct") != std::string::npos ||
                         l.tactic.find("eastrt pointwise") != std::string::npos ||
                         l.tactic.find("eastrt tensor-core 3x3") != std::string::npos;
      EXPECT_TRUE(named) << l.name << ": " << l.tactic;
      EXPECT_GT(l.tactic_ms, 0.0) << l.name;
    }
  // EAST's 63, with each of the three merge 1x1 convolutions split in two by upsample_after_convolution and
  // the geometry output's two made one by merge_concatenated_heads.
  EXPECT_EQ(convolutions, 65);
  // The roofline terms: a 1x1 convolution at 56x80 (64 -> 64 channels, float32) by hand, and in all the
  // network's multiply-adds less what the passes save (the merge convolutions' part at a quarter of the pixels).
  double macs = 0;
  bool checked = false;
  for (const EngineLayerInfo& l : info.layers) {
    macs += static_cast<double>(l.macs_per_image);
    if (l.name != "resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/Conv2D") continue;
    checked = true;
    EXPECT_EQ(l.macs_per_image, 56 * 80 * 64 * 64);
    EXPECT_EQ(l.weight_bytes, (64 * 64 + 64) * 4);
    EXPECT_EQ(l.activation_bytes_per_image, 2 * 56 * 80 * 64 * 4);
  }
  EXPECT_TRUE(checked);
  const double network_macs = f.network.macs() / 2;  // the fixture's network is for batch 2
  EXPECT_LT(macs, network_macs);
  EXPECT_GT(macs, 0.9 * network_macs);
}

// The side stream changes when convolutions run, not what they compute: with the same (untimed) tactics an
// engine with parallel branches gives bit for bit what one stream gives, launched and replayed, at each
// batch, and its per-step profile (every step on the main stream) leaves the outputs right too.
TEST(GpuEast, ParallelBranchesGiveWhatOneStreamGives) {
  REQUIRE_GPU();
  EastFixture& f = east_fixture();
  BuildOptions options;
  options.precision = Precision::kFp16;
  options.max_batch = 2;
  options.time_tactics = false;
  options.parallel_branches = true;
  std::unique_ptr<Engine> parallel = Builder(f.network, options).build();
  options.parallel_branches = false;
  std::unique_ptr<Engine> serial = Builder(f.network, options).build();
  int side = 0;
  for (const EngineLayerInfo& l : parallel->inspect().layers) side += l.side_stream;
  EXPECT_EQ(side, 8);
  for (const EngineLayerInfo& l : serial->inspect().layers) EXPECT_FALSE(l.side_stream) << l.name;
  HostTensor first({1, 224, 320, 3});
  std::copy_n(f.image.data.begin(), first.size(), first.data.begin());
  for (const HostTensor* input : {&f.image, &first}) {
    auto one = serial->create_context();
    one->poison();
    const auto want = one->run({{east::kInputName, *input}});
    for (bool cuda_graph : {false, true}) {
      auto two = parallel->create_context();
      two->set_cuda_graph(cuda_graph);
      two->poison();
      two->run({{east::kInputName, *input}});
      const auto got = two->run({{east::kInputName, *input}});
      for (const auto& [name, t] : want) {
        EXPECT_EQ(relative_error(got.at(name), t), 0.0) << name << " at batch " << input->shape[0]
                                                        << (cuda_graph ? ", replayed" : ", launched");
      }
    }
    auto profiled = parallel->create_context();
    profiled->set_input(east::kInputName, *input);
    EXPECT_EQ(profiled->profile_steps(1, 2).size(), parallel->inspect().layers.size());
    profiled->fetch_outputs();
    profiled->synchronize();
    for (const auto& [name, t] : want) EXPECT_EQ(relative_error(profiled->output(name), t), 0.0) << name << " profiled";
  }
}

// ---------------------------------------------------------------- plans on the GPU

TEST(GpuEngine, PlanRoundTripRunsTheSame) {
  REQUIRE_GPU();
  std::mt19937 rng(31);
  const Network net = small_network(rng, 3);
  BuildOptions options;
  options.precision = Precision::kFp16;
  options.max_batch = 3;
  std::unique_ptr<Engine> built = Builder(net, options).build();
  const std::vector<uint8_t> bytes = built->serialize();
  std::unique_ptr<Engine> loaded = Engine::deserialize(bytes, "small.plan");
  EXPECT_EQ(loaded->serialize(), bytes);
  const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
  auto a = built->create_context();
  auto b = loaded->create_context();
  a->poison();
  b->poison();
  const auto x = a->run(inputs);
  const auto y = b->run(inputs);
  EXPECT_EQ(relative_error(y.at("out"), x.at("out")), 0.0);
  EXPECT_LE(relative_error(x.at("out"), CpuEngine(net, {1, true}).run(inputs).at("out")), 1e-2);
  const EngineInfo i = built->inspect(), j = loaded->inspect();
  ASSERT_EQ(i.layers.size(), j.layers.size());
  for (size_t k = 0; k < i.layers.size(); ++k) EXPECT_EQ(i.layers[k].tactic, j.layers[k].tactic);
  EXPECT_EQ(j.gpu_name, the_gpu().name);
}

// Three convolutions of different signatures (7x7/2 on 3 channels with TF's asymmetric SAME padding, a
// 3x3 with ReLU, a 1x1 with a residual) on a batch of 2 at an odd size.
Network three_convolutions(std::mt19937& rng) {
  Network net;
  Tensor* x = net.add_input("x", {2, 23, 29, 3});
  auto conv = [&](Tensor* in, int k, int kernel, int stride, Padding padding, const std::string& name) {
    ConvolutionParams p;
    p.out_channels = k;
    p.kernel = {kernel, kernel};
    p.stride = {stride, stride};
    p.padding = padding;
    const int c = static_cast<int>(in->shape[3]);
    const float bound = 1.5f / std::sqrt(static_cast<float>(c * kernel * kernel));
    p.kernel_weights = random_weights({k, c, kernel, kernel}, rng, -bound, bound);
    p.bias = random_weights({k}, rng);
    return net.add_convolution(in, p, name);
  };
  Tensor* y = conv(x, 12, 7, 2, {2, 2, 3, 3}, "conv1");
  y = net.add_activation(conv(y, 12, 3, 1, Padding::symmetric(1), "conv2"), ActivationType::kRelu, "relu2");
  y = net.add_elementwise(y, conv(y, 12, 1, 1, {}, "conv3"), ElementWiseOp::kAdd, "add3");
  net.mark_output(y, "y");
  return net;
}

TEST(GpuBuilder, TimingCacheSkipsTimingOnTheSecondBuildAndKeepsTheTactics) {
  REQUIRE_GPU();
  std::mt19937 rng(33);
  const Network net = three_convolutions(rng);
  const std::string path = "/tmp/eastrt_timing_cache_" + std::to_string(::getpid()) + ".json";
  std::remove(path.c_str());
  for (Precision precision : kPrecisions) {
    SCOPED_TRACE(to_string(precision));
    BuildOptions options;
    options.precision = precision;
    options.max_batch = 2;
    options.timing_cache = path;
    Builder first(net, options);
    std::unique_ptr<Engine> a = first.build();
    EXPECT_EQ(first.stats().convolutions_timed, 3);
    EXPECT_EQ(first.stats().convolutions_from_cache, 0);
    Builder second(net, options);
    std::unique_ptr<Engine> b = second.build();
    EXPECT_EQ(second.stats().convolutions_timed, 0);
    EXPECT_EQ(second.stats().convolutions_from_cache, 3);
    const EngineInfo i = a->inspect(), j = b->inspect();
    ASSERT_EQ(i.layers.size(), j.layers.size());
    for (size_t k = 0; k < i.layers.size(); ++k) {
      EXPECT_EQ(i.layers[k].tactic, j.layers[k].tactic) << i.layers[k].name;
      EXPECT_EQ(i.layers[k].tactic_ms, j.layers[k].tactic_ms) << i.layers[k].name;
    }
    // The cached tactics compute the right thing.
    const auto inputs = random_inputs(net, rng, -1.0f, 1.0f);
    auto context = b->create_context();
    context->poison();
    const auto got = context->run(inputs);
    EXPECT_EQ(nan_count(got.at("y")), 0);
    EXPECT_LE(relative_error(got.at("y"), CpuEngine(net, {1, true}).run(inputs).at("y")), tolerance(precision));
    // Without the cache everything is timed again.
    options.timing_cache.clear();
    Builder uncached(net, options);
    uncached.build();
    EXPECT_EQ(uncached.stats().convolutions_timed, 3);
  }
  // A corrupt cache stops the build, naming the file.
  { std::ofstream(path, std::ios::trunc) << "{\"format\": \"eastrt timing cache\", \"version\": 1, \"entr"; }
  BuildOptions options;
  options.max_batch = 2;
  options.timing_cache = path;
  const std::string message = error_of([&] { Builder(net, options).build(); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  std::remove(path.c_str());
}

TEST(GpuEngine, PlansForAnotherGpuOrCorruptAreRefused) {
  REQUIRE_GPU();
  std::mt19937 rng(32);
  std::unique_ptr<Engine> engine = Builder(small_network(rng), {}).build();
  const std::vector<uint8_t> bytes = engine->serialize();
  gpu::ParsedPlan parsed = gpu::parse_plan(bytes, "mine.plan");
  auto expect_error = [](const std::vector<uint8_t>& plan, const std::string& fragment) {
    try {
      Engine::deserialize(plan, "/tmp/other.plan");
      ADD_FAILURE() << "accepted; expected an error with '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("/tmp/other.plan"), std::string::npos) << e.what();
    }
  };
  gpu::PlanTarget other = parsed.target;
  other.gpu_name = "NVIDIA GeForce RTX 2080";
  expect_error(gpu::serialize_plan(parsed.plan, other), "NVIDIA GeForce RTX 2080");
  other = parsed.target;
  other.minor += 1;
  expect_error(gpu::serialize_plan(parsed.plan, other), "compute capability");
  std::vector<uint8_t> corrupt = bytes;
  corrupt[corrupt.size() - 7] ^= 1;
  expect_error(corrupt, "corrupt");
}

// ---------------------------------------------------------------- pre-processing

TEST(GpuPreprocess, MatchesTheCpuResizeBitForBit) {
  REQUIRE_GPU();
  std::mt19937 rng(41);
  // An engine that hands its input straight back (x·1 + 0 is exact in float32).
  Network net = single_layer({2, 64, 96, 3}, [](Network& n, Tensor* x) {
    return n.add_scale(x, {ScaleMode::kUniform, make_weights({1}, {1.0f}), make_weights({1}, {0.0f}), nullptr}, "copy");
  });
  BuildOptions options;
  options.max_batch = 2;
  std::unique_ptr<Engine> engine = Builder(net, options).build();
  auto context = engine->create_context();
  std::uniform_int_distribution<int> byte(0, 255);
  const std::pair<int, int> sizes[] = {{37, 53}, {130, 201}, {64, 96}, {20, 30}, {721, 1283}};
  for (const auto& [h, w] : sizes) {
    east::Image image;
    image.height = h, image.width = w;
    image.rgb.resize(static_cast<size_t>(h) * w * 3);
    for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(byte(rng));
    context->poison();
    context->set_input_image("x", 1, image);
    context->set_input_image("x", 0, image);
    context->set_batch(2);
    context->enqueue();
    context->fetch_outputs();
    context->synchronize();
    const HostTensor got = context->output("y");
    const HostTensor want = east::resize_bilinear(image, 64, 96);
    int64_t mismatches = 0;
    for (int b = 0; b < 2; ++b)
      for (int64_t i = 0; i < want.size(); ++i) mismatches += got.data[b * want.size() + i] != want.data[i];
    EXPECT_EQ(mismatches, 0) << "image " << h << "x" << w;
  }
}

}  // namespace
}  // namespace eastrt
