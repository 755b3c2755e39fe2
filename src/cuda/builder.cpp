// The GPU builder: passes, lowering to a plan, the weights on the device, then a tactic for every
// convolution chosen by timing each candidate on this GPU (cuDNN's own search within the workspace limit,
// then every algorithm it found run both fused and split, each checked against a reference output), or
// taken from a timing cache that an earlier build on the same kind of GPU wrote. 1x1 convolutions also
// time the algorithms cuBLASLt's heuristic offers for them as one matmul; stride-2 convolutions on few
// channels also time cuDNN's algorithms for the equivalent stride-1 convolution on their space-to-depth.
// Every FP16/FP32 convolution also times the engine configurations cuDNN's graph API offers for it, with
// the epilogue fused into the graph and without. INT8/FP8 convolutions time the variants of the 8-bit
// kernel (conv_quant.h) instead, and are timed as FP16 convolutions too: those faster in FP16 stay there.
#ifdef EASTRT_HAVE_CUDA
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>

#include "cuda/conv_max_pool.h"
#include "cuda/engine_impl.h"
#include "cuda/sm90a.h"
#include "cuda/timing_cache.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"

namespace eastrt {
namespace {

using gpu::ConvTactic;
using gpu::DeviceBuffer;
using gpu::PlanData;
using gpu::PlanStep;
using gpu::StepKind;
using gpu::TimingCache;
using gpu::TimingEntry;

constexpr int kAlgorithmsTried = 8;  // of cuDNN's fastest (by its own, noisy, timing), each run fused and split
constexpr int kMatmulsTried = 6;     // of cuBLASLt's heuristic answer for a 1x1 convolution
constexpr size_t kGraphConfigsTried = 8;  // per graph form (fused, split): the first that run, in cuDNN's ranking
// Of an INT8 convolution's cuDNN graph: the first configurations cuDNN plans, in its ranking (each compiles
// its kernels at run time).
constexpr int kCudnnQuantConfigs = 4;
// Candidates are timed in rounds, one run of each per round, and each keeps its median: a clock that
// drifts during the timing (boost, thermal) then moves every candidate alike instead of favouring the ones
// timed last, which timing each candidate's runs back to back did (FP16 batch 1 EAST varied 202-458
// images/s between builds on an H200).
constexpr int kTimedRounds = 11;
constexpr int kWarmupRuns = 3;        // untimed runs of each candidate first (its kernels loaded)
// After its first warm-up run each candidate is timed once, and one slower than this many times the
// fastest of those runs, and slower than kScreenedOutMinMs, goes no further (its one time is its figure): a
// strict FP32 batch-16 EAST build spent most of its 138 s on candidates many times slower than the best,
// 15 runs each. Short runs are all timed in full: they cost little, and one sample of a 10-70 us layer is
// the noisiest (of four screened FP16 batch-1 builds in one call, the first left conv1's space-to-depth
// tactic out, 1302 against 1357-1362 images/s; whether the screening did it is not known).
constexpr double kScreenedOutFactor = 2.0;
constexpr double kScreenedOutMinMs = 0.5;
constexpr double kWarmupSeconds = 0.3;  // of real work on the device before the first timing (clocks up)
// Each timed run waits behind a busy kernel this long, so that the start event fires only once the run's
// launches are queued: a small layer at batch 1 takes 10-30 us on the GPU, as much as its launch latency
// (several kernels for a split tactic), which the events would otherwise add and a CUDA graph does not pay.
constexpr int kQueueAheadMicroseconds = 100;

// The most a candidate's output may differ from the reference tactic's (‖a − b‖ / ‖b‖): far above each
// precision's rounding, far below a wrong result.
double tactic_tolerance(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return 1e-4;
    case Precision::kTf32: return 1e-2;
    case Precision::kFp16: return 3e-2;
    // 8-bit variants accumulate the same codes (INT8 exactly, FP8 in another order): their outputs differ
    // at most where a value rounds to a neighbouring code.
    case Precision::kInt8:
    case Precision::kFp8: return 1e-2;
  }
  return 1e-2;
}

bool is_winograd(int algo) {
  return algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}

struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    EASTRT_CUDA(cudaEventCreate(&start));
    EASTRT_CUDA(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

// Everything tactic timing needs on the device: one stream and cuDNN handle, and buffers for the largest
// convolution's input, output, reference output, residual and workspace, filled with random values (timing
// on zeros can flatter a kernel).
class TacticTimer {
 public:
  TacticTimer(const Engine::Impl& engine, const BuildOptions& options) : engine_(engine), options_(options) {
    EASTRT_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    EASTRT_CUDNN(cudnnCreate(&cudnn_));
    EASTRT_CUDNN(cudnnSetStream(cudnn_, stream_));
    EASTRT_CUBLAS(cublasLtCreate(&cublaslt_));
    const PlanData& plan = engine.plan;
    size_t x_bytes = 256, y_bytes = 256, raw_bytes = 256, float_bytes = 0;
    for (const PlanStep& step : plan.steps) {
      if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution) continue;
      if (is_quantized(step.precision))
        for (int id : {step.inputs[0], step.outputs[0]})
          float_bytes = std::max(float_bytes, static_cast<size_t>(plan.tensors[id].elements()) * sizeof(float));
      const int in = step.padded_input >= 0 ? step.padded_input : step.inputs[0];
      x_bytes = std::max(x_bytes, static_cast<size_t>(plan.tensors[in].bytes()));
      raw_bytes = std::max(raw_bytes, static_cast<size_t>(plan.tensors[step.inputs[0]].bytes()));
      y_bytes = std::max(y_bytes, static_cast<size_t>(plan.tensors[step.outputs[0]].bytes()));
      // An 8-bit convolution's residual may be wider than its output (FP16 beside 8-bit codes).
      if (step.inputs.size() > 1) y_bytes = std::max(y_bytes, static_cast<size_t>(plan.tensors[step.inputs[1]].bytes()));
    }
    x_.allocate(x_bytes);
    raw_.allocate(raw_bytes);
    y_.allocate(y_bytes);
    reference_.allocate(y_bytes);
    residual_.allocate(y_bytes);
    workspace_.allocate(std::max<size_t>(options.workspace_bytes, 256));
    sums_.allocate(2 * sizeof(double));
    float_a_.allocate(float_bytes);
    float_b_.allocate(float_bytes);
  }
  ~TacticTimer() {
    graph_forms_.clear();  // their execution plans were made on the handle, which goes below
    quant_graph_.reset();
    cublasLtDestroy(cublaslt_);
    cudnnDestroy(cudnn_);
    cudaStreamDestroy(stream_);
  }

  // The tactic for convolution step `index`: from `cache` when it holds this signature on this device
  // (and the tactic still runs), else timed and added to it. `timed` says which.
  ConvTactic choose(size_t index, TimingCache* cache, const std::string& device, bool* timed, std::ostream* log);
  // Whether convolution step `conv` with its chosen tactic and the max-pool step `pool` after it (a pair
  // gpu::max_pools_to_fuse gives) are better as one conv_max_pool kernel: it gives their output (within the
  // precision's tolerance, on random input) and, in timed builds, is faster than the tactic's time plus
  // the pooling kernel's. Its time then (0 in untimed builds), else nothing.
  // The conv/max-pool kernel that replaces convolution `conv` and pool `pool` fastest, with its time, if one
  // is faster than the two steps and gives their output.
  struct FusedKernel {
    int kernel;  // kConvMaxPoolMmaSync or kConvMaxPoolWgmma
    double ms;
  };
  std::optional<FusedKernel> max_pool_fusion_pays(size_t conv, size_t pool, std::ostream* log);

 private:
  ConvTactic time_candidates(size_t index, std::vector<ConvTactic>* timed, std::ostream* log);
  ConvTactic time_quant_variants(size_t index, std::vector<ConvTactic>* timed, std::ostream* log);
  // A warm-up run and one timed run of each candidate; those within kScreenedOutFactor of the fastest (or
  // under kScreenedOutMinMs) then get the other warm-up runs and kTimedRounds rounds of one run each.
  // tactics[i].ms: the median, or the one time of a candidate screened out.
  void time_rounds(std::vector<ConvTactic>& tactics, const std::function<void(size_t)>& run_candidate);
  // The fastest of `tactics` (all of them in the report), or an Error with the report when there is none.
  ConvTactic fastest(const PlanStep& step, const std::string& shape, const std::vector<ConvTactic>& tactics,
                     std::ostringstream& report, std::vector<ConvTactic>* timed, std::ostream* log);
  // Random values in `t`'s storage type at `dst` (8-bit: codes over the whole range of its scale).
  void fill_random(void* dst, const gpu::PlanTensor& t, uint64_t seed);
  // The tensor `t` held at `src` as float32 at `dst`.
  void to_float(const void* src, const gpu::PlanTensor& t, float* dst);
  bool still_runs(size_t index, const ConvTactic& tactic);
  // Whether our wgmma kernels are candidates: BuildOptions::wgmma, on a GPU where sm_90a code runs.
  bool wgmma_allowed() const { return options_.wgmma && cuda::runs_sm90a(engine_.target.major, engine_.target.minor); }
  // Whether the direct tactic's `variant` is a candidate for `step`: it takes the step, and the wgmma one
  // only where wgmma_allowed.
  bool direct_variant_offered(const gpu::PlanStep& step, int variant) const {
    return (variant != gpu::kDirectTensorCoreWgmma || wgmma_allowed()) &&
           gpu::direct_conv_applies(engine_.plan, step, variant);
  }
  // The same for the quantised convolution's `variant` on these arguments.
  bool quant_variant_offered(const cuda::QuantConvArgs& args, int variant) const {
    return (!cuda::quant_conv_variant_uses_wgmma(variant) || wgmma_allowed()) &&
           cuda::quant_conv_variant_applies(args, variant);
  }
  // Whether cuDNN's 8-bit graphs are candidates for these arguments: BuildOptions::cudnn_graph, and they
  // apply (cudnn_quant_conv_applies).
  bool quant_cudnn_offered(const cuda::QuantConvArgs& args) const {
    return options_.cudnn_graph && cuda::cudnn_quant_conv_applies(args);
  }
  // Whether cuBLASLt takes `algo` for the step's matmul (matmul_, or quant_matmul_ for an 8-bit step, made at
  // the largest batch) and at batch 1, within the workspace; `algo->workspace` becomes the larger need.
  bool matmul_accepts(size_t index, cuda::LtAlgorithm* algo);
  void warm_up();
  struct Candidate {
    bool fused;
    cuda::ConvAlgorithm algo;
    bool direct = false;  // our direct convolution on raw_ (or x_ when the step has no explicit pad)
    bool matmul = false;  // cuBLASLt's algorithm `lt` on matmul_ (x_, as the cuDNN tactics read)
    cuda::LtAlgorithm lt{};
    // cuDNN's `algo` on s2d_conv_ after our space-to-depth of raw_ (or x_) into the workspace; algo.memory
    // is cuDNN's part, after X'.
    bool s2d = false;
    // cuDNN's graph: plan `graph_plan` of graph_forms_[graph_form], on the unpadded input where the explicit
    // copy only pads (padded_copy_only_pads), else on x_.
    int graph_form = -1, graph_plan = -1;
    ConvTactic graph_tactic{};
    int direct_variant = gpu::kDirectCudaCores;  // with `direct`: which kernel (gpu::DirectVariant)
  };
  std::vector<cuda::ConvAlgorithm> usable_algorithms(cuda::CudnnConvolution& conv, std::vector<cuda::ConvAlgorithm> algos,
                                                     bool strict, size_t limit);
  const void* unpadded_input(const PlanStep& step) const { return step.padded_input >= 0 ? raw_.get() : x_.get(); }
  // Whether the candidate reads the step's explicit padded copy (x_), which the engine then writes before
  // each run: its timing includes that copy, as the others' include what they do instead (space-to-depth's
  // X', the direct kernel's per-tap padding). Timed without it, a graph configuration on the copy beat
  // space-to-depth on EAST's conv1 at FP16 batch 1 (95 against 124 us) in a build that then ran 5 % slower.
  bool reads_padded_copy(const PlanStep& step, const Candidate& c) const {
    if (step.padded_input < 0 || c.direct || c.s2d) return false;
    return c.graph_form < 0 || !gpu::padded_copy_only_pads(engine_.plan, step);
  }
  const void* graph_input(const PlanStep& step) const {
    return gpu::padded_copy_only_pads(engine_.plan, step) ? raw_.get() : x_.get();
  }
  cudnnStatus_t run(cuda::CudnnConvolution& conv, const PlanStep& step, size_t index, const Candidate& c, void* y,
                    bool residual) {
    if (c.direct) {
      gpu::launch_direct_conv(engine_.plan, step, engine_.step_weights[index], unpadded_input(step),
                              residual ? residual_.get() : nullptr, y, engine_.plan.max_batch, c.direct_variant,
                              stream_);
      return CUDNN_STATUS_SUCCESS;  // a failed launch throws
    }
    if (c.s2d) {
      const PlanData& plan = engine_.plan;
      const size_t xs_bytes = gpu::space_to_depth_bytes(plan, step, plan.max_batch);
      gpu::launch_space_to_depth(plan, step, engine_.step_weights[index], unpadded_input(step), workspace_.get(),
                                 plan.max_batch, stream_);
      s2d_conv_->set_math(c.algo.math);
      cuda::ConvOperands o = gpu::conv_operands(step, engine_.step_weights[index], c.fused, workspace_.get(),
                                                residual ? residual_.get() : nullptr, y,
                                                c.algo.memory ? workspace_.as<uint8_t>() + xs_bytes : nullptr,
                                                c.algo.memory);
      o.w = engine_.step_weights[index].s2d_filter;
      return s2d_conv_->run(cudnn_, c.fused, c.algo.algo, o, gpu::conv_activation(step), stream_);
    }
    if (c.graph_form >= 0) {
      const cuda::ConvOperands o =
          gpu::conv_operands(step, engine_.step_weights[index], false, graph_input(step),
                             residual ? residual_.get() : nullptr, y, workspace_.get(), workspace_.size());
      return graph_forms_[static_cast<size_t>(c.graph_form)]->run(c.graph_plan, o, gpu::conv_activation(step), stream_);
    }
    if (c.matmul) {
      const cuda::ConvOperands o =
          gpu::conv_operands(step, engine_.step_weights[index], false, x_.get(), residual ? residual_.get() : nullptr,
                             y, c.lt.workspace ? workspace_.get() : nullptr, c.lt.workspace);
      // A refusal reads as cuDNN's, which is what the callers test for.
      return matmul_->run(cublaslt_, c.lt.algo, o, stream_) == CUBLAS_STATUS_SUCCESS ? CUDNN_STATUS_SUCCESS
                                                                                   : CUDNN_STATUS_NOT_SUPPORTED;
    }
    conv.set_math(c.algo.math);
    // Exactly the workspace cuDNN said the algorithm needs: what the plan will provide, so that a tactic
    // asking for more (the fused call with an algorithm) is refused here and not at run time.
    const cuda::ConvOperands o = gpu::conv_operands(step, engine_.step_weights[index], c.fused, x_.get(),
                                                    residual ? residual_.get() : nullptr, y,
                                                    c.algo.memory ? workspace_.get() : nullptr, c.algo.memory);
    return conv.run(cudnn_, c.fused, c.algo.algo, o, gpu::conv_activation(step), stream_);
  }
  double relative_difference(const void* a, const void* b, cuda::DType type, int64_t count) {
    EASTRT_CUDA(cudaMemsetAsync(sums_.get(), 0, 2 * sizeof(double), stream_));
    cuda::launch_difference_norms(a, b, type, count, sums_.as<double>(), stream_);
    double sums[2] = {0, 0};
    EASTRT_CUDA(cudaMemcpyAsync(sums, sums_.get(), sizeof sums, cudaMemcpyDeviceToHost, stream_));
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return std::sqrt(sums[0]) / std::max(std::sqrt(sums[1]), 1e-30);
  }

  const Engine::Impl& engine_;
  const BuildOptions& options_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  std::unique_ptr<cuda::CublasLtConvolution> matmul_;  // the step being timed, at the largest batch
  std::unique_ptr<cuda::CudnnConvolution> s2d_conv_;    // its space-to-depth convolution, at the largest batch
  std::vector<std::unique_ptr<cuda::CudnnGraphConvolution>> graph_forms_;  // its graphs, with their candidates' plans
  std::unique_ptr<cuda::CudnnQuantConvolution> quant_graph_;  // an 8-bit step's cuDNN graph, with its candidates' plans
  std::unique_ptr<cuda::CublasLtQuantConvolution> quant_matmul_;  // an 8-bit step's cuBLASLt INT8 matmul, largest batch
  // raw_: input 0 as the plan holds it, before any explicit pad (x_ is then its padded copy), which the
  // direct tactic reads.
  DeviceBuffer x_, raw_, y_, reference_, residual_, workspace_, sums_;
  DeviceBuffer float_a_, float_b_;  // 8-bit steps: float32 staging for random codes and compared outputs
  bool warm_ = false;
};

// A GPU that has been idle sits at low clocks, and the first layers timed would see them: keep it busy
// with memory-bound work over the timing buffers (random fills, what timing runs on anyway) for a moment.
void TacticTimer::warm_up() {
  if (warm_) return;
  warm_ = true;
  const auto start = std::chrono::steady_clock::now();
  uint64_t seed = 1;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < kWarmupSeconds) {
    for (int i = 0; i < 8; ++i) {
      cuda::launch_fill_random(x_.get(), cuda::DType::kF32, static_cast<int64_t>(x_.size() / 4), seed++, -1.0f, 1.0f,
                               stream_);
      cuda::launch_fill_random(y_.get(), cuda::DType::kF32, static_cast<int64_t>(y_.size() / 4), seed++, -1.0f, 1.0f,
                               stream_);
    }
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
  }
}

// What a convolution's candidates and their times depend on: shapes, parameters, storage type, precision,
// the epilogue, and the workspace limit (a larger one admits other algorithms).
std::string conv_signature(const cuda::ConvGeometry& g, const std::string& types, Precision precision,
                           const cuda::Activation& act, bool bias, bool residual, size_t workspace_limit) {
  std::ostringstream out;
  out << "conv n" << g.n << " h" << g.h << " w" << g.w << " c" << g.c << " k" << g.k << " r" << g.r << " s" << g.s
      << " oh" << g.oh << " ow" << g.ow << " pad" << g.pad_h << "," << g.pad_w << " stride" << g.stride_h << ","
      << g.stride_w << " dilation" << g.dilation_h << "," << g.dilation_w << " groups" << g.groups << " "
      << types << " " << to_string(precision) << " act" << act.type << ","
      << act.alpha << "," << act.beta << (bias ? " bias" : "") << (residual ? " residual" : "") << " workspace"
      << workspace_limit;
  return out.str();
}

// The layer's own padding and input type where the geometry is the explicit padded copy's: the tactics that
// read input 0 instead (direct, space-to-depth, cuDNN graph) run another convolution for each.
std::string explicit_pad_signature(const PlanData& plan, const PlanStep& step) {
  if (step.padded_input < 0) return "";
  const Padding& p = std::get<ConvolutionParams>(step.params).padding;
  const gpu::PlanTensor& in = plan.tensors[step.inputs[0]];
  std::ostringstream out;
  // "copy timed": the candidates that read the copy were timed with it (entries from before were not).
  out << " explicit-pad " << p.top << "," << p.left << "," << p.bottom << "," << p.right << " of "
      << gpu::to_string(in.type) << " c" << in.shape[3] << " copy timed";
  return out.str();
}

// A cached tactic is taken only if cuDNN still accepts it here within the workspace (it will on the GPU
// model and cuDNN the cache key names; this guards against a hand-edited or stale entry).
bool TacticTimer::still_runs(size_t index, const ConvTactic& t) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[index];
  if (is_quantized(step.precision)) {
    if (!gpu::is_quant_conv(t.kind)) return false;
    const cuda::QuantConvArgs args =
        gpu::quant_conv_operands(plan, step, engine_.step_weights[index], plan.max_batch, x_.get(),
                                 step.inputs.size() > 1 ? residual_.get() : nullptr, y_.get());
    if (t.kind == ConvTactic::Kind::kQuantCudnn) {
      if (!options_.cudnn_graph || t.workspace > static_cast<int64_t>(workspace_.size())) return false;
      std::string why;
      try {
        gpu::check_quant_cudnn_tactic(plan, step, t, "timing cache");  // that it applies, and the cuDNN version
        quant_graph_ = std::make_unique<cuda::CudnnQuantConvolution>(cudnn_, args, args.bias, args.residual);
      } catch (const Error&) {
        return false;
      }
      const int planned = quant_graph_->add_plan(gpu::graph_engine_config(t), true, &why);
      const bool ok = planned >= 0 && quant_graph_->workspace_size(planned) <= static_cast<size_t>(t.workspace) &&
                      quant_graph_->run(planned, args, workspace_.get(), workspace_.size()) == CUDNN_STATUS_SUCCESS;
      EASTRT_CUDA(cudaStreamSynchronize(stream_));
      return ok;
    }
    if (t.kind == ConvTactic::Kind::kQuantCublasLt) {
      // As a cached FP16 matmul below: cuBLASLt takes the algorithm at the largest batch and at batch 1.
      try {
        gpu::check_quant_cublaslt_tactic(plan, step, t, "timing cache");
        quant_matmul_ = gpu::cublaslt_quant_convolution(plan, step, engine_.step_weights[index], plan.max_batch);
        cuda::LtAlgorithm algo;
        algo.algo = gpu::cublaslt_algo(t);
        if (!matmul_accepts(index, &algo) || algo.workspace > static_cast<size_t>(t.workspace)) return false;
        const bool ok = quant_matmul_->run(cublaslt_, algo.algo, args, workspace_.get(), workspace_.size(), stream_) ==
                        CUBLAS_STATUS_SUCCESS;
        EASTRT_CUDA(cudaStreamSynchronize(stream_));
        return ok;
      } catch (const Error&) {
        return false;
      }
    }
    try {
      gpu::check_quant_tactic(t, step.name, "timing cache");
    } catch (const Error&) {
      return false;
    }
    if (!quant_variant_offered(args, t.algo)) return false;
    cuda::launch_quant_conv(args, t.algo, stream_);
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return true;
  }
  const cuda::DType type = gpu::dtype(plan.tensors[step.outputs[0]].type);
  const cuda::ConvGeometry g = gpu::conv_geometry(plan, step, plan.max_batch);
  if (t.workspace > static_cast<int64_t>(workspace_.size())) return false;
  // (A cuBLASLt tactic's math is a cuBLAS compute type, not a cuDNN math type; its conv is not used.)
  cuda::CudnnConvolution conv(g, type, t.kind == ConvTactic::Kind::kCublasLt ? gpu::initial_math(step.precision) : t.math);
  if (t.kind == ConvTactic::Kind::kDirect) {
    if (!direct_variant_offered(step, t.algo)) return false;
    Candidate c{false, {}, true};
    c.direct_variant = t.algo;
    run(conv, step, index, c, y_.get(), step.inputs.size() > 1);
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return true;
  }
  if (t.kind == ConvTactic::Kind::kSpaceToDepthMaxPool) return false;  // chosen after the cache (fuse_max_pools)
  if (gpu::is_space_to_depth(t.kind)) {
    if (!gpu::space_to_depth_applies(plan, step) || !engine_.step_weights[index].s2d_filter) return false;
    const size_t xs_bytes = gpu::space_to_depth_bytes(plan, step, plan.max_batch);
    s2d_conv_ = std::make_unique<cuda::CudnnConvolution>(gpu::space_to_depth_geometry(plan, step, plan.max_batch), type,
                                                         t.math);
    Candidate c{t.kind == ConvTactic::Kind::kSpaceToDepthFused, {}};
    c.s2d = true;
    c.algo.algo = t.algo, c.algo.math = t.math;
    try {
      c.algo.memory = s2d_conv_->workspace_size(cudnn_, t.algo);
    } catch (const Error&) {
      return false;
    }
    if (xs_bytes + c.algo.memory > static_cast<size_t>(t.workspace)) return false;
    const bool ok = run(conv, step, index, c, y_.get(), step.inputs.size() > 1) == CUDNN_STATUS_SUCCESS;
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return ok;
  }
  if (gpu::is_cudnn_graph(t.kind)) {
    if (!gpu::cudnn_graph_applies(plan, step)) return false;
    const cuda::GraphEngineConfig config = gpu::graph_engine_config(t);
    std::ostringstream ignored;
    gpu::GraphCandidates found;
    try {
      gpu::check_cudnn_graph_tactic(t, step.name, "timing cache");
      found = gpu::cudnn_graph_candidates(cudnn_, plan, step, engine_.step_weights[index],
                                          t.kind == ConvTactic::Kind::kCudnnGraphFused, workspace_.size(), 1, ignored,
                                          &config);
    } catch (const Error&) {
      return false;
    }
    if (found.tactics.empty() || found.tactics[0].workspace > t.workspace) return false;
    graph_forms_.clear();
    graph_forms_.push_back(std::move(found.graph));
    Candidate c{false, {}};
    c.graph_form = 0, c.graph_plan = found.plans[0];
    const bool ok = run(conv, step, index, c, y_.get(), step.inputs.size() > 1) == CUDNN_STATUS_SUCCESS;
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return ok;
  }
  if (t.kind == ConvTactic::Kind::kCublasLt) {
    if (!gpu::cublaslt_applies(plan, step) || t.math != cuda::cublaslt_compute_type(step.precision == Precision::kTf32))
      return false;
    try {
      gpu::check_cublaslt_tactic(t, step.name, "timing cache");
    } catch (const Error&) {
      return false;
    }
    Candidate c{false, {}, false, true};
    c.lt.algo = gpu::cublaslt_algo(t);
    try {
      matmul_ = gpu::cublaslt_convolution(plan, step, engine_.step_weights[index], plan.max_batch);
      if (!matmul_accepts(index, &c.lt) || c.lt.workspace > static_cast<size_t>(t.workspace)) return false;
    } catch (const Error&) {
      return false;
    }
    const bool ok = run(conv, step, index, c, y_.get(), step.inputs.size() > 1) == CUDNN_STATUS_SUCCESS;
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    return ok;
  }
  cuda::ConvAlgorithm algo;
  algo.algo = t.algo, algo.math = t.math, algo.memory = static_cast<size_t>(t.workspace);
  try {
    if (conv.workspace_size(cudnn_, t.algo) > static_cast<size_t>(t.workspace)) return false;
  } catch (const Error&) {
    return false;
  }
  const bool ok = run(conv, step, index, {t.kind == ConvTactic::Kind::kCudnnFused, algo}, y_.get(),
                      step.inputs.size() > 1) == CUDNN_STATUS_SUCCESS;
  EASTRT_CUDA(cudaStreamSynchronize(stream_));
  return ok;
}

// Whether cuBLASLt takes the algorithm at the largest batch (matmul_, made for this step) and at batch 1, the
// two ends of the batches the engine runs (a context checks the one it prepares); `algo->workspace` becomes
// the larger need.
bool TacticTimer::matmul_accepts(size_t index, cuda::LtAlgorithm* algo) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[index];
  const gpu::StepWeights& weights = engine_.step_weights[index];
  // The step's matmul at the largest batch (matmul_ or, for an 8-bit step, quant_matmul_), then at batch 1.
  const bool int8 = is_quantized(step.precision);
  size_t largest = 0, smallest = 0;
  if (!(int8 ? quant_matmul_->check(cublaslt_, algo->algo, &largest) : matmul_->check(cublaslt_, algo->algo, &largest)))
    return false;
  if (plan.max_batch > 1) {
    const bool one = int8 ? gpu::cublaslt_quant_convolution(plan, step, weights, 1)->check(cublaslt_, algo->algo, &smallest)
                          : gpu::cublaslt_convolution(plan, step, weights, 1)->check(cublaslt_, algo->algo, &smallest);
    if (!one) return false;
  }
  algo->workspace = std::max(largest, smallest);
  return algo->workspace <= workspace_.size();
}

ConvTactic TacticTimer::choose(size_t index, TimingCache* cache, const std::string& device, bool* timed,
                               std::ostream* log) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[index];
  *timed = options_.time_tactics;  // the heuristic's choice is not timed, and not cached
  if (!cache || !options_.time_tactics) return time_candidates(index, nullptr, log);
  // The storage types: FP16/FP32 steps keep one type throughout; an 8-bit step's input, residual and output
  // may each differ (and its precision, int8 or fp8, is in the signature too).
  std::string types;
  if (is_quantized(step.precision)) {
    types = std::string(gpu::to_string(plan.tensors[step.inputs[0]].type)) + ">" +
            gpu::to_string(plan.tensors[step.outputs[0]].type);
    if (step.inputs.size() > 1) types += std::string(" residual-") + gpu::to_string(plan.tensors[step.inputs[1]].type);
  } else {
    types = gpu::dtype(plan.tensors[step.outputs[0]].type) == cuda::DType::kF16 ? "f16" : "f32";
  }
  const std::string signature =
      conv_signature(gpu::conv_geometry(plan, step, plan.max_batch), types, step.precision, gpu::conv_activation(step),
                     engine_.step_weights[index].bias != nullptr, step.inputs.size() > 1, workspace_.size()) +
      // The candidates include space-to-depth: an entry timed without it (an earlier build) is not taken.
      (gpu::space_to_depth_applies(plan, step) ? " space-to-depth" : "") + explicit_pad_signature(plan, step) +
      // A build without the wgmma kernels times fewer candidates: its choice is not the others' to reuse.
      (wgmma_allowed() ? "" : " no-wgmma");
  if (const TimingEntry* entry = cache->find(device, signature)) {
    if (still_runs(index, entry->chosen)) {
      *timed = false;
      if (log) *log << "tactic for " << step.name << " from the timing cache: " << gpu::describe(entry->chosen) << "\n";
      return entry->chosen;
    }
    if (log) *log << "cached tactic for " << step.name << " (" << gpu::describe(entry->chosen)
                  << ") no longer runs here: timing again\n";
  }
  TimingEntry entry;
  entry.chosen = time_candidates(index, &entry.timed, log);
  cache->insert(device, signature, entry);
  return entry.chosen;
}

// The algorithms of `algos` (cuDNN's answer for `conv`) that a plan may use, each once with the math it will
// run with and its workspace for that math, within `limit`.
std::vector<cuda::ConvAlgorithm> TacticTimer::usable_algorithms(cuda::CudnnConvolution& conv,
                                                                std::vector<cuda::ConvAlgorithm> algos, bool strict,
                                                                size_t limit) {
  // Runs must be reproducible (a context, a replayed graph and a reloaded plan give the same bits).
  algos.erase(std::remove_if(algos.begin(), algos.end(), [](const cuda::ConvAlgorithm& a) { return !a.deterministic; }),
              algos.end());
  // A strict float32 engine keeps to plain FMA arithmetic: no Winograd transforms (whose error grows beyond
  // ordinary summation), and every algorithm runs with FMA math, whatever cuDNN reports it searched with,
  // so no TF32 either.
  // TF32 and FP16 engines run every algorithm with tensor-op math: cuDNN's search also reports its
  // default-math variants, which for FP16 keep off the tensor cores, and on an H200 such a variant was
  // chosen by a noisy timing at twice the tensor-op time (docs/PERFORMANCE.md).
  if (strict)
    algos.erase(std::remove_if(algos.begin(), algos.end(), [](const cuda::ConvAlgorithm& a) { return is_winograd(a.algo); }),
                algos.end());
  {
    std::vector<cuda::ConvAlgorithm> unique;
    for (cuda::ConvAlgorithm a : algos) {
      a.math = strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
      if (std::none_of(unique.begin(), unique.end(), [&](const cuda::ConvAlgorithm& u) { return u.algo == a.algo; }))
        unique.push_back(a);
    }
    algos = unique;
  }
  // The workspace each needs with the math it will run with (asked again: cuDNN may have searched another).
  std::vector<cuda::ConvAlgorithm> sized;
  for (cuda::ConvAlgorithm a : algos) {
    try {
      conv.set_math(a.math);
      a.memory = conv.workspace_size(cudnn_, a.algo);
    } catch (const Error&) {
      continue;  // this algorithm does not take this configuration
    }
    if (a.memory <= limit) sized.push_back(a);
  }
  return sized;
}

ConvTactic TacticTimer::time_candidates(size_t index, std::vector<ConvTactic>* timed, std::ostream* log) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[index];
  if (is_quantized(step.precision)) return time_quant_variants(index, timed, log);
  const cuda::DType type = gpu::dtype(plan.tensors[step.outputs[0]].type);
  const cuda::ConvGeometry g = gpu::conv_geometry(plan, step, plan.max_batch);
  const int64_t x_count = int64_t(g.n) * g.h * g.w * g.c, y_count = int64_t(g.n) * g.oh * g.ow * g.k;
  const bool residual = step.inputs.size() > 1;
  if (options_.time_tactics) warm_up();  // before the fills: it overwrites the buffers
  cuda::launch_fill_random(x_.get(), type, x_count, 1000 + index, -1.0f, 1.0f, stream_);
  const cuda::DirectConvArgs direct = gpu::direct_conv_args(plan, step, plan.max_batch);
  if (step.padded_input >= 0) {
    // Random values in the input as the plan holds it, padded into x_ as the engine does: every candidate,
    // the direct one on raw_ included, sees the same convolution.
    const cuda::DType raw_type = gpu::dtype(plan.tensors[step.inputs[0]].type);
    cuda::launch_fill_random(raw_.get(), raw_type, int64_t(direct.n) * direct.h * direct.w * direct.c, 3000 + index,
                             -1.0f, 1.0f, stream_);
    gpu::launch_explicit_pad(plan, step, raw_.get(), x_.get(), g.n, stream_);
  }
  if (residual) cuda::launch_fill_random(residual_.get(), type, y_count, 2000 + index, -1.0f, 1.0f, stream_);
  EASTRT_CUDA(cudaStreamSynchronize(stream_));

  cuda::CudnnConvolution conv(g, type, gpu::initial_math(step.precision));
  std::vector<cuda::ConvAlgorithm> algos =
      options_.time_tactics ? conv.find(cudnn_, x_.get(), engine_.step_weights[index].filter, y_.get(), workspace_.get(),
                                        workspace_.size())
                            : conv.heuristic(cudnn_, workspace_.size());
  const bool strict = step.precision == Precision::kFp32;
  algos = usable_algorithms(conv, algos, strict, workspace_.size());
  if (static_cast<int>(algos.size()) > kAlgorithmsTried) algos.resize(kAlgorithmsTried);
  EASTRT_CHECK(!algos.empty(), "GPU builder: convolution '", step.name, "' (", g.n, "x", g.h, "x", g.w, "x", g.c, " → ",
               g.k, " channels, ", g.r, "x", g.s, ", ", to_string(step.precision),
               "): cuDNN has no algorithm for it within the workspace limit of ", workspace_.size(), " bytes");

  const cuda::Activation act = gpu::conv_activation(step);
  std::vector<Candidate> candidates;
  for (const cuda::ConvAlgorithm& a : algos) {
    candidates.push_back({false, a});
    // Identity inside the fused call is allowed only with IMPLICIT_PRECOMP_GEMM (cuDNN's rule).
    if (act.type == 0 || a.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) candidates.push_back({true, a});
  }
  for (int variant = 0; variant < gpu::kDirectVariants; ++variant)
    if (direct_variant_offered(step, variant)) {
      Candidate c{false, {}, true};
      c.direct_variant = variant;
      candidates.push_back(c);
    }
  std::ostringstream report;
  // Space-to-depth: cuDNN's algorithms for the stride-1 convolution on X', searched on X' of this input,
  // within what the workspace leaves after X'.
  if (gpu::space_to_depth_applies(plan, step) && engine_.step_weights[index].s2d_filter) {
    const size_t xs_bytes = gpu::space_to_depth_bytes(plan, step, plan.max_batch);
    if (xs_bytes >= workspace_.size()) {
      report << "  space-to-depth: not offered (X' needs " << xs_bytes << " bytes, the workspace limit is "
             << workspace_.size() << ")\n";
    } else {
      // Like cuBLASLt, one source of candidates among others: if cuDNN cannot describe or search it, the
      // layer goes without it (said in the report).
      try {
        const size_t limit = workspace_.size() - xs_bytes;
        s2d_conv_ = std::make_unique<cuda::CudnnConvolution>(gpu::space_to_depth_geometry(plan, step, plan.max_batch),
                                                             type, gpu::initial_math(step.precision));
        gpu::launch_space_to_depth(plan, step, engine_.step_weights[index], unpadded_input(step), workspace_.get(),
                                 plan.max_batch, stream_);
        std::vector<cuda::ConvAlgorithm> s2d_algos =
            options_.time_tactics
                ? s2d_conv_->find(cudnn_, workspace_.get(), engine_.step_weights[index].s2d_filter, y_.get(),
                                  workspace_.as<uint8_t>() + xs_bytes, limit)
                : s2d_conv_->heuristic(cudnn_, limit);
        s2d_algos = usable_algorithms(*s2d_conv_, s2d_algos, strict, limit);
        if (static_cast<int>(s2d_algos.size()) > kAlgorithmsTried) s2d_algos.resize(kAlgorithmsTried);
        if (s2d_algos.empty()) report << "  space-to-depth: cuDNN has no algorithm for it within the workspace\n";
        for (const cuda::ConvAlgorithm& a : s2d_algos)
          for (bool fused : {false, true}) {
            if (fused && act.type != 0 && a.algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) continue;
            Candidate c{fused, a};
            c.s2d = true;
            candidates.push_back(c);
          }
      } catch (const Error& e) {
        report << "  space-to-depth: not offered (" << e.what() << ")\n";
      }
    }
  }
  // A 1x1 convolution as one matmul: each algorithm cuBLASLt's heuristic offers within the workspace (for
  // these shapes, types and 256-byte alignment; odd channel counts get fewer, or none) that it also takes
  // at batch 1.
  // cuBLASLt is one source of candidates among others: if it cannot describe or rank this matmul at all,
  // the layer goes without it (said in the report) rather than failing the build.
  if (gpu::cublaslt_applies(plan, step)) {
    try {
      matmul_ = gpu::cublaslt_convolution(plan, step, engine_.step_weights[index], plan.max_batch);
      int offered = 0;
      for (const cuda::LtAlgorithm& a : matmul_->heuristic(cublaslt_, workspace_.size(), kMatmulsTried)) {
        Candidate c{false, {}, false, true, a};
        if (matmul_accepts(index, &c.lt)) candidates.push_back(c), ++offered;
      }
      if (offered == 0) report << "  cublaslt: no algorithm for this matmul within the workspace\n";
    } catch (const Error& e) {
      report << "  cublaslt: not offered (" << e.what() << ")\n";
    }
  }
  // cuDNN's graph API: the configurations it offers for the layer's graph, fused and split. Like
  // cuBLASLt, one source of candidates among others: a graph cuDNN refuses goes without (said in the
  // report). Untimed builds take the legacy heuristic's first choice, so the graphs are not made for them.
  graph_forms_.clear();
  if (options_.time_tactics && options_.cudnn_graph && gpu::cudnn_graph_applies(plan, step)) {
    // With no bias, residual or ReLU to fuse the fused graph is the split one.
    const bool fusable = engine_.step_weights[index].has_bias || residual || act.type == 0;
    for (bool fused : {true, false}) {
      if (fused && !fusable) continue;
      try {
        gpu::GraphCandidates found = gpu::cudnn_graph_candidates(cudnn_, plan, step, engine_.step_weights[index],
                                                                 fused, workspace_.size(), kGraphConfigsTried, report);
        for (size_t i = 0; i < found.tactics.size(); ++i) {
          Candidate c{false, {}};
          c.graph_form = static_cast<int>(graph_forms_.size()), c.graph_plan = found.plans[i];
          c.graph_tactic = found.tactics[i];
          candidates.push_back(c);
        }
        graph_forms_.push_back(std::move(found.graph));
      } catch (const Error& e) {
        report << "  cudnn graph" << (fused ? " fused" : "") << ": not offered (" << e.what() << ")\n";
      }
    }
  }

  // The reference output: the first plain convolution + our epilogue that cuDNN accepts.
  bool have_reference = false;
  for (const Candidate& c : candidates) {
    if (c.fused || c.direct || c.matmul || c.s2d || c.graph_form >= 0) continue;
    if (run(conv, step, index, c, reference_.get(), residual) == CUDNN_STATUS_SUCCESS) {
      have_reference = true;
      break;
    }
  }
  EASTRT_CUDA(cudaStreamSynchronize(stream_));

  // Every candidate once: refused by cuDNN, or wrong, or kept.
  std::vector<Candidate> kept;
  std::vector<ConvTactic> tactics;
  for (const Candidate& c : candidates) {
    ConvTactic t;
    if (c.matmul) {
      t = gpu::cublaslt_tactic(c.lt, step.precision);
    } else if (c.graph_form >= 0) {
      t = c.graph_tactic;
    } else if (c.s2d) {
      t.kind = c.fused ? ConvTactic::Kind::kSpaceToDepthFused : ConvTactic::Kind::kSpaceToDepthSplit;
      t.algo = c.algo.algo, t.math = c.algo.math;
      t.workspace = static_cast<int64_t>(gpu::space_to_depth_bytes(plan, step, plan.max_batch) + c.algo.memory);
    } else {
      t.kind = c.direct ? ConvTactic::Kind::kDirect : c.fused ? ConvTactic::Kind::kCudnnFused : ConvTactic::Kind::kCudnnSplit;
      t.algo = c.direct ? c.direct_variant : c.algo.algo, t.math = c.direct ? 0 : c.algo.math;
      t.workspace = c.direct ? 0 : static_cast<int64_t>(c.algo.memory);
    }
    if (run(conv, step, index, c, y_.get(), residual) != CUDNN_STATUS_SUCCESS) {
      report << "  " << gpu::describe(t) << ": refused\n";
      continue;
    }
    EASTRT_CUDA(cudaStreamSynchronize(stream_));
    if (have_reference) {
      const double diff = relative_difference(y_.get(), reference_.get(), type, y_count);
      if (!(diff <= tactic_tolerance(step.precision))) {
        report << "  " << gpu::describe(t) << ": rejected, differs from the reference by " << diff << "\n";
        continue;
      }
    }
    kept.push_back(c);
    tactics.push_back(t);
    if (!options_.time_tactics) break;  // the heuristic's first choice that runs
  }

  if (options_.time_tactics && !kept.empty())
    time_rounds(tactics, [&](size_t i) {
      if (reads_padded_copy(step, kept[i])) gpu::launch_explicit_pad(plan, step, raw_.get(), x_.get(), g.n, stream_);
      run(conv, step, index, kept[i], y_.get(), residual);
    });
  std::ostringstream shape;
  shape << g.n << "x" << g.h << "x" << g.w << "x" << g.c << " → " << g.k << ", " << g.r << "x" << g.s << "/" << g.stride_h;
  return fastest(step, shape.str(), tactics, report, timed, log);
}

void TacticTimer::time_rounds(std::vector<ConvTactic>& tactics, const std::function<void(size_t)>& run_candidate) {
  Events events;
  // Each candidate's queue-ahead also covers twice the host time its launches took in a run after the
  // first (kernels loaded): the legacy fused cuDNN call can cost the host more than the busy kernel lasts,
  // and then the GPU waits for the launch inside the timing. The suspected cause of this: space-to-depth +
  // that call on EAST's conv1 (FP16 batch 1) timed 123-127 us in some builds, which then took a graph
  // configuration (1291-1314 images/s), and 68 us in the others, as in the engine's profile (1357-1382).
  std::vector<int> queue_ahead(tactics.size(), kQueueAheadMicroseconds);
  auto time_once = [&](size_t i) {
    cuda::launch_busy_wait(queue_ahead[i], stream_);
    EASTRT_CUDA(cudaEventRecord(events.start, stream_));
    run_candidate(i);
    EASTRT_CUDA(cudaEventRecord(events.stop, stream_));
    EASTRT_CUDA(cudaEventSynchronize(events.stop));
    float elapsed = 0;
    EASTRT_CUDA(cudaEventElapsedTime(&elapsed, events.start, events.stop));
    return static_cast<double>(elapsed);
  };
  for (size_t i = 0; i < tactics.size(); ++i) run_candidate(i);  // kernels loaded, not timed
  for (size_t i = 0; i < tactics.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run_candidate(i);
    const double host_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    queue_ahead[i] = std::max(kQueueAheadMicroseconds, static_cast<int>(std::min(2 * host_us, 5000.0)));
  }
  std::vector<double> screened(tactics.size());
  for (size_t i = 0; i < tactics.size(); ++i) screened[i] = time_once(i);
  const double best = *std::min_element(screened.begin(), screened.end());
  std::vector<size_t> timed;
  for (size_t i = 0; i < tactics.size(); ++i) {
    if (screened[i] <= kScreenedOutFactor * best || screened[i] <= kScreenedOutMinMs) {
      timed.push_back(i);
    } else {
      tactics[i].ms = screened[i];
    }
  }
  for (size_t i : timed)
    for (int r = 1; r < kWarmupRuns; ++r) run_candidate(i);
  std::vector<std::vector<double>> ms(tactics.size());
  for (int round = 0; round < kTimedRounds; ++round)
    for (size_t i : timed) ms[i].push_back(time_once(i));
  for (size_t i : timed) {
    std::sort(ms[i].begin(), ms[i].end());
    tactics[i].ms = ms[i][ms[i].size() / 2];
  }
}

ConvTactic TacticTimer::fastest(const PlanStep& step, const std::string& shape, const std::vector<ConvTactic>& tactics,
                                std::ostringstream& report, std::vector<ConvTactic>* timed, std::ostream* log) {
  ConvTactic best;
  for (const ConvTactic& t : tactics) {
    report << "  " << gpu::describe(t) << ": " << t.ms << " ms\n";
    if (best.kind == ConvTactic::Kind::kUnset || t.ms < best.ms) best = t;
  }
  if (timed) *timed = tactics;
  EASTRT_CHECK(best.kind != ConvTactic::Kind::kUnset, "GPU builder: convolution '", step.name,
               "': no tactic ran correctly:\n", report.str());
  if (log) *log << "tactics for " << step.name << " (" << shape << "):\n" << report.str() << "  chosen: "
                << gpu::describe(best) << "\n";
  return best;
}

void TacticTimer::fill_random(void* dst, const gpu::PlanTensor& t, uint64_t seed) {
  if (!gpu::is_8bit(t.type)) {
    cuda::launch_fill_random(dst, gpu::dtype(t.type), t.elements(), seed, -1.0f, 1.0f, stream_);
    return;
  }
  const float amax = t.scale * (t.type == gpu::StorageType::kInt8 ? 127.0f : 448.0f);
  cuda::launch_fill_random(float_a_.get(), cuda::DType::kF32, t.elements(), seed, -amax, amax, stream_);
  cuda::launch_quantize(float_a_.get(), cuda::QType::kF32, dst, gpu::qtype(t.type), t.elements(), t.scale, stream_);
}

void TacticTimer::to_float(const void* src, const gpu::PlanTensor& t, float* dst) {
  if (gpu::is_8bit(t.type))
    cuda::launch_dequantize(src, gpu::qtype(t.type), dst, cuda::QType::kF32, t.elements(), t.scale, stream_);
  else
    cuda::launch_cast(src, gpu::dtype(t.type), dst, cuda::DType::kF32, t.elements(), stream_);
}

// The 8-bit kernel's variants that take the step, each checked against the first (its output as float32)
// and timed like the other tactics.
ConvTactic TacticTimer::time_quant_variants(size_t index, std::vector<ConvTactic>* timed, std::ostream* log) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[index];
  const gpu::PlanTensor& y = plan.tensors[step.outputs[0]];
  const bool residual = step.inputs.size() > 1;
  if (options_.time_tactics) warm_up();  // before the fills: it overwrites the buffers
  fill_random(x_.get(), plan.tensors[step.inputs[0]], 1000 + index);
  if (residual) fill_random(residual_.get(), plan.tensors[step.inputs[1]], 2000 + index);
  EASTRT_CUDA(cudaStreamSynchronize(stream_));
  const cuda::QuantConvArgs args = gpu::quant_conv_operands(plan, step, engine_.step_weights[index], plan.max_batch,
                                                            x_.get(), residual ? residual_.get() : nullptr, y_.get());
  cuda::QuantConvArgs reference_args = args;
  reference_args.y = reference_.get();

  std::ostringstream report;
  std::vector<ConvTactic> tactics;
  bool have_reference = false;
  // Whether the candidate's output (y_) is the first variant's within the precision's tolerance; if not,
  // the report says by how much.
  auto agrees = [&](const ConvTactic& t) {
    to_float(y_.get(), y, float_a_.as<float>());
    const double diff = relative_difference(float_a_.get(), float_b_.get(), cuda::DType::kF32, y.elements());
    if (diff <= tactic_tolerance(step.precision)) return true;
    report << "  " << gpu::describe(t) << ": rejected, differs from the first variant by " << diff << "\n";
    return false;
  };
  for (int v = 0; v < cuda::quant_conv_variants(); ++v) {
    ConvTactic t;
    t.kind = ConvTactic::Kind::kQuant;
    t.algo = v, t.math = 0, t.workspace = 0;
    t.variant_name = cuda::quant_conv_variant_name(v);
    if (!quant_variant_offered(args, v)) {
      report << "  " << gpu::describe(t) << ": not offered\n";
      continue;
    }
    if (!have_reference) {
      cuda::launch_quant_conv(reference_args, v, stream_);
      to_float(reference_.get(), y, float_b_.as<float>());
      have_reference = true;
    }
    cuda::launch_quant_conv(args, v, stream_);
    if (!agrees(t)) continue;
    tactics.push_back(t);
    if (!options_.time_tactics) break;  // untimed: the first variant that applies
  }
  // cuDNN's 8-bit graph, in timed builds: the first kCudnnQuantConfigs configurations cuDNN plans, in its
  // heuristics' order (each compiles its kernels at run time, a few tenths of a second), checked against the
  // kernel's first variant like the variants.
  // How to run each candidate in `tactics` (the variants', then the others').
  std::vector<std::function<void()>> launches;
  for (const ConvTactic& t : tactics) launches.push_back([&, v = t.algo] { cuda::launch_quant_conv(args, v, stream_); });
  if (options_.time_tactics && have_reference && quant_cudnn_offered(args)) {
    quant_graph_.reset();
    std::string why;
    try {
      quant_graph_ = std::make_unique<cuda::CudnnQuantConvolution>(cudnn_, args, args.bias, args.residual);
    } catch (const Error& e) {
      report << "  cudnn 8-bit graph: " << e.what() << "\n";
    }
    const std::vector<cuda::GraphEngineConfig> configs =
        quant_graph_ ? quant_graph_->candidate_configs(&why) : std::vector<cuda::GraphEngineConfig>{};
    if (quant_graph_ && configs.empty()) report << "  cudnn 8-bit graph: no configuration (" << why << ")\n";
    int planned = 0;
    for (const cuda::GraphEngineConfig& config : configs) {
      if (planned == kCudnnQuantConfigs) break;
      ConvTactic t;
      t.kind = ConvTactic::Kind::kQuantCudnn;
      t.algo = static_cast<int>(config.engine), t.math = 0;
      t.graph.knobs = config.knobs;
      t.graph.version = static_cast<int64_t>(cudnnGetVersion());
      std::string no;
      const int plan = quant_graph_->add_plan(config, true, &no);
      if (plan < 0) {
        report << "  " << gpu::describe(t) << ": " << no << "\n";
        continue;
      }
      ++planned;
      t.workspace = static_cast<int64_t>(quant_graph_->workspace_size(plan));
      if (t.workspace > static_cast<int64_t>(workspace_.size())) {
        report << "  " << gpu::describe(t) << ": needs more workspace than the limit\n";
        continue;
      }
      const cudnnStatus_t status = quant_graph_->run(plan, args, workspace_.get(), workspace_.size());
      if (status != CUDNN_STATUS_SUCCESS) {
        report << "  " << gpu::describe(t) << ": " << cudnnGetErrorString(status) << "\n";
        continue;
      }
      if (!agrees(t)) continue;
      tactics.push_back(t);
      launches.push_back([&, plan] { quant_graph_->run(plan, args, workspace_.get(), workspace_.size()); });
    }
  }
  // cuBLASLt's INT8 matmul for a 1x1 convolution with 8-bit codes on both sides, in timed builds: the
  // algorithms of its heuristic (as for FP16's matmul) that it also takes at batch 1, checked like the rest.
  const bool matmul = options_.time_tactics && have_reference && cuda::cublaslt_quant_conv_applies(args, residual);
  std::vector<cuda::LtAlgorithm> matmul_algos;
  if (matmul) {
    try {
      quant_matmul_ = gpu::cublaslt_quant_convolution(plan, step, engine_.step_weights[index], plan.max_batch);
      for (cuda::LtAlgorithm a : quant_matmul_->heuristic(cublaslt_, workspace_.size(), kMatmulsTried))
        if (matmul_accepts(index, &a)) matmul_algos.push_back(a);
      if (matmul_algos.empty()) report << "  cublaslt int8: no algorithm for this matmul within the workspace\n";
    } catch (const Error& e) {
      report << "  cublaslt int8: not offered (" << e.what() << ")\n";
    }
  }
  for (const cuda::LtAlgorithm& a : matmul_algos) {
    const ConvTactic t = gpu::cublaslt_tactic(a, step.precision);
    const cublasStatus_t status =
        quant_matmul_->run(cublaslt_, a.algo, args, workspace_.get(), workspace_.size(), stream_);
    if (status != CUBLAS_STATUS_SUCCESS) {
      report << "  " << gpu::describe(t) << ": cuBLASLt error " << static_cast<int>(status) << "\n";
      continue;
    }
    if (!agrees(t)) continue;
    tactics.push_back(t);
    launches.push_back([&, algo = a.algo] {
      quant_matmul_->run(cublaslt_, algo, args, workspace_.get(), workspace_.size(), stream_);
    });
  }
  if (options_.time_tactics && !tactics.empty()) time_rounds(tactics, [&](size_t i) { launches[i](); });
  std::ostringstream shape;
  shape << args.n << "x" << args.h << "x" << args.w << "x" << args.c << " → " << args.k << ", " << args.r << "x"
        << args.s << "/" << args.stride_h << ", " << gpu::to_string(plan.tensors[step.inputs[0]].type) << "→"
        << gpu::to_string(y.type);
  return fastest(step, shape.str(), tactics, report, timed, log);
}

std::optional<TacticTimer::FusedKernel> TacticTimer::max_pool_fusion_pays(size_t conv, size_t pool, std::ostream* log) {
  const PlanData& plan = engine_.plan;
  const PlanStep& step = plan.steps[conv];
  const PlanStep& pooling = plan.steps[pool];
  const gpu::PlanTensor& pooled = plan.tensors[pooling.outputs[0]];
  if (static_cast<size_t>(pooled.bytes()) > reference_.size()) return std::nullopt;
  fill_random(step.padded_input >= 0 ? raw_.get() : x_.get(), plan.tensors[step.inputs[0]], 3000 + conv);
  // The two kernels as the engine would run them: the pool of the chosen tactic's output (y_) into
  // reference_, then the fused kernel into residual_.
  if (!still_runs(conv, step.tactic)) return std::nullopt;
  const cuda::PoolArgs pool_args = gpu::pool_args(plan, pooling, plan.max_batch);
  const cuda::DType type = gpu::dtype(pooled.type);
  PlanData fused_plan = plan;  // the convolution with the pool folded in, as the engine will run it
  gpu::fuse_max_pool(fused_plan, static_cast<int>(conv), static_cast<int>(pool));
  PlanStep& fused = fused_plan.steps[conv];
  const void* input = unpadded_input(step);
  auto run_pool = [&] { cuda::launch_pooling(y_.get(), type, reference_.get(), type, pool_args, stream_); };
  auto run_fused = [&](int kernel) {
    fused.tactic.algo = kernel;
    gpu::launch_conv_max_pool(fused_plan, fused, engine_.step_weights[conv], input, residual_.get(), plan.max_batch,
                              stream_);
  };
  // The kernels that give the separate steps' output: mma.sync, and wgmma where it runs (sm_90a code).
  std::vector<int> kernels;
  run_pool();
  for (int kernel : {cuda::kConvMaxPoolMmaSync, cuda::kConvMaxPoolWgmma}) {
    if (kernel == cuda::kConvMaxPoolWgmma && !wgmma_allowed()) continue;
    run_fused(kernel);
    const double difference = relative_difference(residual_.get(), reference_.get(), type, pooled.elements());
    const bool same = difference <= tactic_tolerance(step.precision);
    if (log) *log << "conv/max-pool kernel " << gpu::describe(fused.tactic) << " for " << step.name << " + "
                  << pooling.name << ": differs by " << difference << " from the separate steps"
                  << (same ? "" : ": not used") << "\n";
    if (same) kernels.push_back(kernel);
  }
  if (kernels.empty()) return std::nullopt;
  if (!options_.time_tactics) return FusedKernel{kernels.back(), 0.0};
  warm_up();
  std::vector<ConvTactic> times(kernels.size() + 1);  // the pool, then each kernel
  time_rounds(times, [&](size_t i) { i == 0 ? run_pool() : run_fused(kernels[i - 1]); });
  const double separate = step.tactic.ms + times[0].ms;
  FusedKernel best{-1, separate};
  for (size_t i = 0; i < kernels.size(); ++i) {
    fused.tactic.algo = kernels[i];
    if (log) *log << "  " << gpu::describe(fused.tactic) << ": " << times[i + 1].ms << " ms against " << separate
                  << " ms (" << gpu::describe(step.tactic) << " " << step.tactic.ms << " + pooling " << times[0].ms << ")\n";
    if (times[i + 1].ms < best.ms) best = {kernels[i], times[i + 1].ms};
  }
  if (best.kernel < 0) return std::nullopt;
  return best;
}

// Folds each max-pool the conv_max_pool kernel can take into the convolution before it, where that pays
// (TacticTimer::max_pool_fusion_pays), with the tactic's time the fused kernel's; plans the arena again.
void fuse_max_pools(Engine::Impl& impl, const BuildOptions& options) {
  const std::vector<int> pools = gpu::max_pools_to_fuse(impl.plan);
  std::ostream* log = options.verbose ? &std::cerr : nullptr;
  bool fused = false;
  for (int conv = static_cast<int>(pools.size()) - 1; conv >= 0; --conv) {  // from the end: erasing keeps the indices before
    const int pool = pools[static_cast<size_t>(conv)];
    if (pool < 0) continue;
    const std::optional<TacticTimer::FusedKernel> best = TacticTimer(impl, options).max_pool_fusion_pays(conv, pool, log);
    if (!best) continue;
    gpu::fuse_max_pool(impl.plan, conv, pool);
    PlanStep& step = impl.plan.steps[static_cast<size_t>(conv)];
    step.tactic.algo = best->kernel;
    step.tactic.ms = best->ms;  // no workspace: the kernel builds X' in shared memory
    impl.step_weights.erase(impl.step_weights.begin() + pool);
    fused = true;
  }
  if (fused) gpu::plan_arena(impl.plan);
}

// Each per-channel shift before a space-to-depth convolution into its space-to-depth pass (one pass less, and
// the same values: the shifted input is rounded once either way); uploads the weights and plans the arena
// again when there was one.
void fold_input_shifts(Engine::Impl& impl) {
  bool folded = false;
  for (;;) {  // one at a time: each fold renumbers the steps after it
    const std::vector<int> shifts = gpu::input_shifts_to_fold(impl.plan);
    const auto conv = std::find_if(shifts.begin(), shifts.end(), [](int s) { return s >= 0; });
    if (conv == shifts.end()) break;
    gpu::fold_input_shift(impl.plan, static_cast<int>(conv - shifts.begin()), *conv);
    folded = true;
  }
  if (!folded) return;
  impl.upload_weights();
  gpu::plan_arena(impl.plan);
}

// The largest workspace a convolution step's tactic needs.
int64_t largest_tactic_workspace(const PlanData& plan) {
  int64_t workspace = 0;
  for (const PlanStep& step : plan.steps)
    if (step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution)
      workspace = std::max(workspace, step.tactic.workspace);
  return workspace;
}

// A tactic for every convolution of `impl`'s plan: timed, or taken from `cache` (may be null), counted in
// `stats`.
void choose_tactics(Engine::Impl& impl, const BuildOptions& options, TimingCache* cache, const std::string& device,
                       BuildStats& stats) {
  TacticTimer timer(impl, options);
  std::ostream* log = options.verbose ? &std::cerr : nullptr;
  for (size_t i = 0; i < impl.plan.steps.size(); ++i) {
    PlanStep& step = impl.plan.steps[i];
    if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution) continue;
    bool timed = false;
    step.tactic = timer.choose(i, cache, device, &timed, log);
    if (timed) ++stats.convolutions_timed;
    else if (options.time_tactics) ++stats.convolutions_from_cache;
  }
}

// What follows tactic choice: max-pools and input shifts folded into convolutions, padded copies released
// where no tactic reads them, the side lane, and the workspace the tactics need.
void finish(Engine::Impl& impl, const BuildOptions& options, bool has_convolutions) {
  if (has_convolutions) {
    fuse_max_pools(impl, options);
    fold_input_shifts(impl);
  }
  // Space-to-depth and (where the copy only pads) cuDNN graph tactics read the unpadded input.
  gpu::release_padded_copies(impl.plan);
  if (options.parallel_branches && gpu::assign_side_lane(impl.plan) > 0) gpu::plan_arena(impl.plan);
  impl.plan.workspace_bytes = largest_tactic_workspace(impl.plan);  // after the fusions (conv/max-pool needs none)
}

// The median device time of one batch at the engine's largest batch, its CUDA graph replayed, on random
// inputs (0..255, as images), after warm-up.
double batch_ms(Engine& engine) {
  std::unique_ptr<ExecutionContext> context = engine.create_context();
  const PlanData& plan = engine.impl().plan;
  context->set_batch(plan.max_batch);
  context->set_cuda_graph(true);
  auto* stream = static_cast<cudaStream_t>(context->stream());
  uint64_t seed = 7;
  for (int id : plan.inputs)
    cuda::launch_fill_random(context->device_binding(plan.tensors[id].name), cuda::DType::kF32,
                             plan.tensors[id].elements(), seed++, 0.0f, 255.0f, stream);
  std::vector<double> times = context->time_enqueue(5, 21);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

Builder::Builder(Network network, BuildOptions options) : network_(std::move(network)), options_(std::move(options)) {}

std::unique_ptr<Engine> Builder::build() {
  const GpuInfo gpu = query_gpu(options_.device);
  EASTRT_CHECK(gpu.available, "GPU builder: no usable GPU ", options_.device, " (", gpu.reason, ")");
  EASTRT_CHECK(options_.max_batch >= 1, "GPU builder: max_batch must be at least 1, got ", options_.max_batch);
  for (const auto& [name, precision] : options_.layer_precisions) {
    const bool known = std::any_of(network_.layers().begin(), network_.layers().end(),
                                   [&](const Layer& l) { return l.name == name; });
    EASTRT_CHECK(known, "GPU builder: a precision is given for layer '", name, "', which the network does not have");
  }
  // INT8/FP8: the calibration cache, checked against the network as given (its fingerprint).
  if (is_quantized(options_.precision)) options_.calibration = gpu::calibration_for(network_, options_);
  EASTRT_CUDA(cudaSetDevice(options_.device));

  // Every input at the largest batch at once (one at a time, two inputs would disagree in between).
  Network network = network_;
  for (int id : network.inputs()) {
    EASTRT_CHECK(!network.tensor(id).shape.empty(), "GPU builder: input '", network.tensor(id).name, "' is a scalar");
    network.tensor(id).shape[0] = options_.max_batch;
  }
  network.infer_shapes();
  const Network unpassed = is_quantized(options_.precision) ? network : Network();
  gpu::CalibratedInputs calibrated;
  const std::vector<std::string> passes =
      gpu::run_builder_passes(network, options_.precision, &calibrated, options_.upsample_8bit);

  auto impl = std::make_unique<Engine::Impl>();
  impl->plan = gpu::lower_network(network, options_, &calibrated);
  impl->plan.passes = passes;
  impl->target = {EASTRT_VERSION, gpu.name, gpu.major, gpu.minor};
  impl->device = options_.device;
  impl->upload_weights();

  const bool has_convolutions = std::any_of(impl->plan.steps.begin(), impl->plan.steps.end(), [](const PlanStep& s) {
    return s.kind == StepKind::kLayer && s.layer_kind() == LayerKind::kConvolution;
  });
  stats_ = {};
  std::unique_ptr<Engine::Impl> fp16_rival;  // INT8/FP8 with 8-bit convolutions: FP16's engine, to time beside
  if (has_convolutions) {
    // Read before any timing, so that a bad cache file fails the build at once.
    std::optional<TimingCache> file_cache;
    if (!options_.timing_cache.empty()) file_cache = TimingCache::load(options_.timing_cache);
    // The cuBLASLt version too: its algorithms (and their times) are its own.
    const std::string device = gpu::timing_device(gpu.name, gpu.major, gpu.minor, static_cast<long>(cudnnGetVersion()),
                                                  EASTRT_VERSION) +
                               " cublaslt " + std::to_string(cublasLtGetVersion());
    const bool compare_fp16 = is_quantized(options_.precision) && options_.time_tactics && options_.keep_faster_fp16;
    // Without a file, an INT8/FP8 build that compares with FP16 keeps this build's timings in memory, so that
    // its second lowering times only the layers whose types changed.
    TimingCache memory;
    TimingCache* cache = file_cache ? &*file_cache : compare_fp16 ? &memory : nullptr;
    choose_tactics(*impl, options_, cache, device, stats_);
    if (compare_fp16) {
      // The quantised convolutions' times against the same convolutions in an FP16 engine of the network.
      std::map<std::string, double> quant_ms, fp16_ms;
      for (const PlanStep& step : impl->plan.steps)
        if (step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution && is_quantized(step.precision))
          quant_ms[step.name] = step.tactic.ms;
      BuildOptions fp16 = options_;
      fp16.precision = Precision::kFp16;
      fp16.calibration = nullptr;
      fp16.calibration_cache.clear();
      for (auto it = fp16.layer_precisions.begin(); it != fp16.layer_precisions.end();)
        it = is_quantized(it->second) ? fp16.layer_precisions.erase(it) : std::next(it);
      Engine::Impl half;
      half.plan = gpu::lower_network(network, fp16);
      half.target = impl->target;
      half.device = impl->device;
      half.upload_weights();
      BuildStats half_stats;
      choose_tactics(half, fp16, cache, device, half_stats);
      for (const PlanStep& step : half.plan.steps)
        if (step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) fp16_ms[step.name] = step.tactic.ms;
      const std::map<std::string, std::string> faster = gpu::faster_in_fp16(quant_ms, fp16_ms);
      if (options_.verbose)
        std::cerr << "GPU builder: " << faster.size() << " of " << quant_ms.size() << " quantised convolutions are faster in FP16\n";
      // The FP16 engine of the network, with the FP16 engine's passes (which the calibration's tensor names
      // would not survive), labelled with the precision asked for; each convolution keeps its note (faster in
      // FP16, kept by the calibration) or gets `why`.
      auto fp16_engine = [&](const std::string& why, BuildStats& stats) {
        Network half_network = unpassed;
        std::vector<std::string> half_passes = gpu::run_builder_passes(half_network, Precision::kFp16);
        auto engine = std::make_unique<Engine::Impl>();
        engine->plan = gpu::lower_network(half_network, fp16);
        engine->plan.passes = std::move(half_passes);
        engine->plan.precision = impl->plan.precision;
        engine->plan.model_fingerprint = impl->plan.model_fingerprint, engine->plan.calibrator = impl->plan.calibrator;
        engine->target = impl->target;
        engine->device = impl->device;
        std::map<std::string, std::string> notes;
        for (const PlanStep& step : impl->plan.steps)
          if (step.kind == StepKind::kLayer && !step.note.empty()) notes[step.name] = step.note;
        for (const auto& [layer, note] : faster) notes[layer] = note;
        for (PlanStep& step : engine->plan.steps)
          if (step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution) {
            const auto found = notes.find(step.name);
            step.note = found != notes.end() ? found->second : why;
          }
        engine->upload_weights();
        choose_tactics(*engine, fp16, cache, device, stats);
        return engine;
      };
      if (!faster.empty() && faster.size() == quant_ms.size()) {
        // Every quantised convolution is faster in FP16: the engine is the FP16 one.
        impl = fp16_engine(std::string("kept: FP16 is faster for every ") + to_string(options_.precision) +
                           " convolution of the network here, so the engine is FP16's",
                           stats_);
        // Once a process: a detector builds an engine per image size.
        static std::atomic<bool> said{false};
        if (!said.exchange(true) || options_.verbose)
          std::cerr << "GPU builder: each of the " << quant_ms.size() << " " << to_string(options_.precision)
                    << " convolutions is faster in FP16 on " << gpu.name
                    << ": the engine runs FP16 (eastrt build/bench --all-8bit keeps them in 8 bits)\n";
      } else {
        if (!faster.empty()) {
          BuildOptions again = options_;
          for (const auto& [layer, note] : faster) again.layer_precisions[layer] = Precision::kFp16;
          impl->plan = gpu::lower_network(network, again, &calibrated);
          impl->plan.passes = passes;
          for (PlanStep& step : impl->plan.steps)
            if (auto found = faster.find(step.name); step.kind == StepKind::kLayer && found != faster.end())
              step.note = found->second;
          impl->upload_weights();
          choose_tactics(*impl, again, cache, device, stats_);
        }
        // Faster 8-bit convolutions still may not make a faster engine: the casts around them and the
        // original graph's concatenations cost too. The FP16 engine is timed beside it, whole.
        BuildStats rival_stats;
        fp16_rival = fp16_engine("", rival_stats);
      }
    }
    if (file_cache && stats_.convolutions_timed > 0) file_cache->save(options_.timing_cache);
  }
  finish(*impl, options_, has_convolutions);
  if (!fp16_rival) return std::make_unique<Engine>(std::move(impl));
  finish(*fp16_rival, options_, true);
  int quantized = 0;
  for (const PlanStep& step : impl->plan.steps)
    quantized += step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution &&
                 is_quantized(step.precision);
  auto chosen = std::make_unique<Engine>(std::move(impl));
  auto rival = std::make_unique<Engine>(std::move(fp16_rival));
  const double quantized_ms = batch_ms(*chosen), fp16_ms = batch_ms(*rival);
  std::ostringstream said;
  said << "the " << to_string(options_.precision) << " engine (" << quantized << " convolutions in 8 bits) ran "
       << quantized_ms << " ms a batch of " << options_.max_batch << " here, FP16's " << fp16_ms << " ms";
  if (options_.verbose) std::cerr << "GPU builder: " << said.str() << "\n";
  if (quantized_ms <= fp16_ms) return chosen;
  for (PlanStep& step : rival->impl().plan.steps)
    if (step.kind == StepKind::kLayer && step.layer_kind() == LayerKind::kConvolution && step.note.empty())
      step.note = "kept: " + said.str() + ", so the engine is FP16's";
  static std::atomic<bool> told{false};
  if (!told.exchange(true) || options_.verbose)
    std::cerr << "GPU builder: " << said.str() << " on " << gpu.name
              << ": the engine runs FP16 (eastrt build/bench --all-8bit keeps the 8-bit one)\n";
  return rival;
}

}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
