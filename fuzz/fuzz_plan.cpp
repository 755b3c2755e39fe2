// libFuzzer target for plan files: any bytes as a plan's body (the target writes the header around them,
// checksum included, so that mutations reach the contents rather than stop at the checksum). Parsing must
// end in a plan or an eastrt::Error, never a crash, a hang or a huge allocation; a plan that parses must
// serialize back to the same bytes.
//
// Seeds: EASTRT_FUZZ_PLAN_SEEDS=DIR writes the bodies of two plans (a small network of every layer kind
// the GPU runs, lowered in FP32 and FP16, with tactics of every kind set on its convolutions, a step on
// the side stream and, in FP16, a fused max-pool) into DIR.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cuda/plan.h"
#include "eastrt/error.h"

namespace {

using eastrt::gpu::ConvTactic;

constexpr size_t kMagicBytes = 8;                       // "EASTRTPL"
constexpr size_t kHeaderBytes = kMagicBytes + 4 + 8 + 8;  // magic, format, checksum, body size

std::vector<uint8_t> with_header(const uint8_t* body, size_t size) {
  std::vector<uint8_t> bytes(kHeaderBytes + size);
  std::memcpy(bytes.data(), "EASTRTPL", kMagicBytes);
  const uint32_t format = eastrt::gpu::kPlanFormatVersion;
  const uint64_t checksum = eastrt::gpu::fnv1a64(body, size), length = size;
  std::memcpy(bytes.data() + kMagicBytes, &format, 4);
  std::memcpy(bytes.data() + kMagicBytes + 4, &checksum, 8);
  std::memcpy(bytes.data() + kMagicBytes + 12, &length, 8);
  if (size) std::memcpy(bytes.data() + kHeaderBytes, body, size);
  return bytes;
}

// A few layers of every kind the GPU runs, on few channels (a plan's weights are most of its bytes).
eastrt::Network seed_network() {
  using namespace eastrt;
  Network net;
  Tensor* x = net.add_input("x", {2, 12, 16, 3});
  auto conv = [&](Tensor* in, int k, int r, int stride, const std::string& name, Tensor* residual = nullptr) {
    ConvolutionParams p;
    p.out_channels = k;
    p.kernel = {r, r};
    p.stride = {stride, stride};
    // Stride 2: TF's SAME on an even size (nothing before, one after); else symmetric.
    p.padding = stride == 2 ? eastrt::Padding{0, 0, 1, 1} : eastrt::Padding::symmetric(r / 2);
    std::vector<float> w(static_cast<size_t>(k * in->shape[3] * r * r));
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
    p.kernel_weights = make_weights({k, in->shape[3], r, r}, std::move(w));
    p.bias = make_weights({k}, std::vector<float>(static_cast<size_t>(k), 0.5f));
    p.activation = ActivationParams{ActivationType::kRelu};
    return net.add_convolution(in, p, name, residual);
  };
  Tensor* a = conv(x, 8, 3, 2, "conv_a");
  Tensor* b = conv(a, 8, 1, 1, "conv_b");
  Tensor* c = conv(b, 8, 3, 1, "conv_c", a);
  Tensor* p = net.add_pooling(c, {PoolingType::kMax, {3, 3}, {2, 2}, {0, 0, 1, 1}}, "pool");
  Tensor* d = conv(p, 16, 1, 1, "conv_d");
  Tensor* up = net.add_resize(d, {ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f}, "up");
  Tensor* cat = net.add_concatenation({up, c}, 3, "concat");
  Tensor* e = conv(cat, 8, 3, 1, "conv_e");
  Tensor* f = conv(e, 4, 1, 1, "conv_f");
  net.mark_output(net.add_scale(f, {ScaleMode::kUniform, make_weights({1}, {2.0f}), nullptr, nullptr}, "out"));
  // EAST's conv1 shape (7x7/2, 3 -> 64 channels), the one the conv/max-pool tactic takes.
  net.mark_output(conv(conv(x, 64, 7, 2, "conv_p"), 4, 1, 1, "conv_q"), "second");
  return net;
}

void write_seeds(const std::string& dir) {
  std::filesystem::create_directories(dir);
  int index = 0;
  for (eastrt::Precision precision : {eastrt::Precision::kFp32, eastrt::Precision::kFp16}) {
    eastrt::Network net = seed_network();
    eastrt::gpu::run_builder_passes(net, precision);
    eastrt::BuildOptions build;
    build.precision = precision;
    build.max_batch = 2;
    eastrt::gpu::PlanData plan = eastrt::gpu::lower_network(net, build);
    int k = 0;
    for (eastrt::gpu::PlanStep& step : plan.steps) {
      if (step.kind != eastrt::gpu::StepKind::kLayer || step.layer_kind() != eastrt::LayerKind::kConvolution) continue;
      ConvTactic& t = step.tactic;
      const ConvTactic::Kind kinds[] = {ConvTactic::Kind::kCudnnFused, ConvTactic::Kind::kCudnnSplit,
                                        ConvTactic::Kind::kCublasLt, ConvTactic::Kind::kCudnnGraphFused,
                                        ConvTactic::Kind::kCudnnGraphSplit, ConvTactic::Kind::kDirect};
      t.kind = kinds[k++ % 6];
      t.algo = k % 7, t.math = k % 3, t.workspace = 4096 * (k % 5), t.ms = 0.01 * k;
      if (t.kind == ConvTactic::Kind::kDirect) t.algo = (k / 6) % eastrt::gpu::kDirectVariants;  // the ones there are
      if (t.kind == ConvTactic::Kind::kCublasLt) t.lt = {{1, 2, 3, 4, 5, 6, 7, 8}, 130000, 21, 18, 9, 1};
      if (eastrt::gpu::is_cudnn_graph(t.kind)) {
        t.graph.version = 91900;
        t.graph.knobs = {{2, 3}, {14, -1}};
      }
      step.note = k % 2 ? "kept: a note" : "";
    }
    if (precision == eastrt::Precision::kFp16) {
      // A fused max-pool (plan format 7) on the convolution of conv1's shape: its fields as the parser checks
      // them against the output (the network itself pools elsewhere).
      for (eastrt::gpu::PlanStep& step : plan.steps)
        if (step.name == "conv_p") {
          const eastrt::Shape& y = plan.tensors[step.outputs[0]].shape;
          step.tactic.kind = ConvTactic::Kind::kSpaceToDepthMaxPool;
          step.pool = {"pool_a", 3, 2, 0, 1, static_cast<int>(y[1]) * 2, static_cast<int>(y[2]) * 2};
          step.input_shift = {-123.68f, -116.78f, -103.94f};  // plan format 8: EAST's means, folded in
        }
    }
    eastrt::gpu::assign_side_lane(plan);  // lanes as the builder sets them, where the network has any
    plan.steps.back().lane = 1;           // and one set by hand, so that every seed has a side-stream step
    const std::vector<uint8_t> bytes = eastrt::gpu::serialize_plan(plan, {EASTRT_VERSION, "NVIDIA H100 80GB HBM3", 9, 0});
    std::ofstream(dir + "/plan_" + std::to_string(index++) + ".body", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data() + kHeaderBytes),
               static_cast<std::streamsize>(bytes.size() - kHeaderBytes));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("EASTRT_FUZZ_PLAN_SEEDS")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes = with_header(data, size);
  eastrt::gpu::ParsedPlan parsed;
  try {
    parsed = eastrt::gpu::parse_plan(bytes, "fuzz.plan");
  } catch (const eastrt::Error&) {
    return 0;
  }
  // What parses is whole: written again, it is the same plan byte for byte.
  if (eastrt::gpu::serialize_plan(parsed.plan, parsed.target) != bytes) __builtin_trap();
  return 0;
}
