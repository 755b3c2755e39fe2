// The GPU engine's runtime: the engine's weights on the device, plan files in and out, and the execution
// context that runs the steps on its stream (eagerly or as a captured CUDA graph per batch size).
#ifdef EASTRT_HAVE_CUDA
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>

#include "cuda/conv_max_pool.h"
#include "cuda/east_candidates.h"
#include "cuda/engine_impl.h"
#include "eastrt/calibration.h"
#include "eastrt/detector_ops.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_jpeg.h"

namespace eastrt {
namespace gpu {

int initial_math(Precision precision) {
  return precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

cuda::ConvGeometry conv_geometry(const PlanData& plan, const PlanStep& step, int batch) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const Shape& in = plan.tensors[step.padded_input >= 0 ? step.padded_input : step.inputs[0]].shape;
  const Shape& out = plan.tensors[step.outputs[0]].shape;
  cuda::ConvGeometry g;
  g.n = batch;
  g.h = static_cast<int>(in[1]), g.w = static_cast<int>(in[2]), g.c = static_cast<int>(in[3]);
  g.k = p.out_channels, g.r = p.kernel[0], g.s = p.kernel[1];
  g.oh = static_cast<int>(out[1]), g.ow = static_cast<int>(out[2]);
  g.pad_h = std::min(p.padding.top, p.padding.bottom), g.pad_w = std::min(p.padding.left, p.padding.right);
  g.stride_h = p.stride[0], g.stride_w = p.stride[1];
  g.dilation_h = p.dilation[0], g.dilation_w = p.dilation[1];
  g.groups = p.groups;
  return g;
}

cuda::Activation conv_activation(const PlanStep& step) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  cuda::Activation a;
  if (p.activation) a = {static_cast<int>(p.activation->type), p.activation->alpha, p.activation->beta};
  return a;
}

cuda::DirectConvArgs direct_conv_args(const PlanData& plan, const PlanStep& step, int batch) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  const Shape& out = plan.tensors[step.outputs[0]].shape;
  cuda::DirectConvArgs a;
  a.n = batch;
  a.h = static_cast<int>(in[1]), a.w = static_cast<int>(in[2]), a.c = static_cast<int>(in[3]);
  a.k = p.out_channels, a.r = p.kernel[0], a.s = p.kernel[1];
  // The uploaded filter has as many channels per tap as the padded input, when there is one (zeros past c).
  a.groups = p.groups;
  a.filter_c = p.groups > 1                 ? a.c / p.groups
               : step.padded_input >= 0 ? static_cast<int>(plan.tensors[step.padded_input].shape[3])
                                        : a.c;
  a.oh = static_cast<int>(out[1]), a.ow = static_cast<int>(out[2]);
  a.stride_h = p.stride[0], a.stride_w = p.stride[1];
  a.dilation_h = p.dilation[0], a.dilation_w = p.dilation[1];
  a.pad_top = p.padding.top, a.pad_left = p.padding.left;
  return a;
}

bool direct_conv_applies(const PlanData& plan, const PlanStep& step, int variant) {
  if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution || step.inputs.empty()) return false;
  for (int id : step.inputs)
    if (plan.tensors[id].place == TensorPlace::kView || plan.tensors[id].shape.size() != 4) return false;
  const PlanTensor& y = plan.tensors[step.outputs[0]];
  if (y.place == TensorPlace::kView || y.shape.size() != 4) return false;
  const cuda::DirectConvArgs a = direct_conv_args(plan, step, plan.max_batch);
  switch (variant) {
    case kDirectCudaCores: return cuda::direct_conv_fits(a.c, a.k, a.r, a.s, a.groups);
    case kDirectTensorCore:
      return cuda::tensor_core_conv_fits(a, dtype(plan.tensors[step.inputs[0]].type), dtype(y.type));
    case kDirectPointwise: return cuda::pointwise_conv_fits(a, dtype(plan.tensors[step.inputs[0]].type));
    case kDirectTensorCoreWgmma:
      return cuda::tensor_core_wgmma_conv_fits(a, dtype(plan.tensors[step.inputs[0]].type), dtype(y.type));
    default: return false;
  }
}

void launch_direct_conv(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x,
                        const void* residual, void* y, int batch, int variant, cudaStream_t stream) {
  const cuda::DirectConvArgs a = direct_conv_args(plan, step, batch);
  const void* bias = w.has_bias ? w.bias : nullptr;
  if (variant == kDirectTensorCore)
    cuda::launch_tensor_core_conv(x, w.filter, bias, residual, y, a, conv_activation(step), stream);
  else if (variant == kDirectTensorCoreWgmma)
    cuda::launch_tensor_core_wgmma_conv(x, w.filter, bias, residual, y, a, conv_activation(step), stream);
  else if (variant == kDirectPointwise)
    cuda::launch_pointwise_conv(x, dtype(plan.tensors[step.inputs[0]].type), w.filter, bias, residual, y,
                                dtype(plan.tensors[step.outputs[0]].type), a, conv_activation(step), stream);
  else
    cuda::launch_direct_conv(x, dtype(plan.tensors[step.inputs[0]].type), w.filter, bias, residual, y,
                             dtype(plan.tensors[step.outputs[0]].type), a, conv_activation(step), stream);
}

cuda::ConvOperands conv_operands(const PlanStep& step, const StepWeights& weights, bool fused, const void* x,
                                 const void* residual, void* y, void* workspace, size_t workspace_bytes) {
  (void)step;
  cuda::ConvOperands o;
  o.x = x;
  o.w = weights.filter;
  // The fused call always takes a bias (zeros stand in for none); the split one skips a missing bias.
  o.bias = fused || weights.has_bias ? weights.bias : nullptr;
  o.residual = residual;
  o.y = y;
  o.workspace = workspace;
  o.workspace_bytes = workspace_bytes;
  return o;
}

cuda::QuantConvArgs quant_conv_operands(const PlanData& plan, const PlanStep& step, const StepWeights& weights,
                                        int batch, const void* x, const void* residual, void* y) {
  cuda::QuantConvArgs a = quant_conv_args(plan, step, batch);
  a.x = x, a.filter = weights.filter, a.scale = weights.scale;
  a.bias = weights.has_bias ? static_cast<const float*>(weights.bias) : nullptr;
  a.residual = residual, a.y = y;
  return a;
}

void check_quant_tactic(const ConvTactic& t, const std::string& step, const std::string& where) {
  const int variants = cuda::quant_conv_variants();
  EASTRT_CHECK(t.algo >= 0 && t.algo < variants && t.variant_name == cuda::quant_conv_variant_name(t.algo), where,
               ": convolution '", step, "' uses ", describe(t), ", which this eastrt's 8-bit kernel does not have (",
               variants, " variants", t.algo >= 0 && t.algo < variants ? std::string(", this one is ") +
                                                                           cuda::quant_conv_variant_name(t.algo)
                                                                     : std::string(),
               "): build again");
}

void check_quant_cudnn_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t, const std::string& where) {
  const char* why = nullptr;
  EASTRT_CHECK(cuda::cudnn_quant_conv_applies(quant_conv_args(plan, step, plan.max_batch), &why), where,
               ": convolution '", step.name, "' uses ", describe(t), ", which eastrt does not run there (", why, ")");
  check_cudnn_graph_tactic(t, step.name, where);
}

void check_quant_cublaslt_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t,
                                 const std::string& where) {
  const char* why = nullptr;
  EASTRT_CHECK(cuda::cublaslt_quant_conv_applies(quant_conv_args(plan, step, plan.max_batch), step.inputs.size() > 1,
                                                 &why),
               where, ": convolution '", step.name, "' uses ", describe(t), ", which eastrt does not run there (", why,
               ")");
  check_cublaslt_tactic(t, step.name, where);
}

void check_quant_conv_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t, const std::string& where) {
  switch (t.kind) {
    case ConvTactic::Kind::kQuant: return check_quant_tactic(t, step.name, where);
    case ConvTactic::Kind::kQuantCudnn: return check_quant_cudnn_tactic(plan, step, t, where);
    case ConvTactic::Kind::kQuantCublasLt: return check_quant_cublaslt_tactic(plan, step, t, where);
    default: throw_error(where, ": convolution '", step.name, "' has ", describe(t), ", no 8-bit tactic");
  }
}

std::unique_ptr<cuda::CublasLtQuantConvolution> cublaslt_quant_convolution(const PlanData& plan, const PlanStep& step,
                                                                          const StepWeights& weights, int batch) {
  return std::make_unique<cuda::CublasLtQuantConvolution>(
      quant_conv_operands(plan, step, weights, batch, nullptr, nullptr, nullptr), step.inputs.size() > 1);
}

cuda::ConvGeometry space_to_depth_geometry(const PlanData& plan, const PlanStep& step, int batch) {
  const SpaceToDepthShape xs = space_to_depth_shape(plan, step);
  cuda::ConvGeometry g;
  g.n = batch, g.h = xs.h, g.w = xs.w, g.c = xs.c;
  g.k = std::get<ConvolutionParams>(step.params).out_channels, g.r = xs.r, g.s = xs.s;
  const std::array<int, 2> size = conv_output_size(plan, step);
  g.oh = size[0], g.ow = size[1];
  return g;
}

size_t space_to_depth_bytes(const PlanData& plan, const PlanStep& step, int batch) {
  const SpaceToDepthShape xs = space_to_depth_shape(plan, step);
  const size_t bytes = size_t(batch) * xs.h * xs.w * xs.c * storage_size(plan.tensors[step.outputs[0]].type);
  return (bytes + 255) / 256 * 256;
}

cuda::PoolArgs pool_args(const PlanData& plan, const PlanStep& step, int batch) {
  const auto& p = std::get<PoolingParams>(step.params);
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  const Shape& y = plan.tensors[step.outputs[0]].shape;
  cuda::PoolArgs a;
  a.n = batch, a.h = static_cast<int>(in[1]), a.w = static_cast<int>(in[2]), a.c = static_cast<int>(in[3]);
  a.oh = static_cast<int>(y[1]), a.ow = static_cast<int>(y[2]);
  a.window_h = p.global ? a.h : p.window[0], a.window_w = p.global ? a.w : p.window[1];
  a.stride_h = p.global ? 1 : p.stride[0], a.stride_w = p.global ? 1 : p.stride[1];
  a.pad_top = p.global ? 0 : p.padding.top, a.pad_left = p.global ? 0 : p.padding.left;
  a.average = p.type == PoolingType::kAverage;
  a.count_include_pad = p.count_include_pad;
  return a;
}

void launch_conv_max_pool(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x, void* y,
                          int batch, cudaStream_t stream) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  const Shape& out = plan.tensors[step.outputs[0]].shape;
  const std::array<int, 2> conv = conv_output_size(plan, step);
  cuda::ConvMaxPoolArgs a;
  a.n = batch, a.h = static_cast<int>(in[1]), a.w = static_cast<int>(in[2]), a.c = static_cast<int>(in[3]);
  a.conv_top = p.padding.top, a.conv_left = p.padding.left, a.oh = conv[0], a.ow = conv[1];
  a.pool_top = step.pool.top, a.pool_left = step.pool.left;
  a.ph = static_cast<int>(out[1]), a.pw = static_cast<int>(out[2]);
  a.relu = conv_activation(step).type == static_cast<int>(ActivationType::kRelu);
  const cuda::DType xt = dtype(plan.tensors[step.inputs[0]].type);
  const float* shift = step.input_shift.empty() ? nullptr : w.shift;
  if (step.tactic.algo == cuda::kConvMaxPoolWgmma)
    cuda::launch_conv_max_pool_wgmma(x, xt, shift, w.s2d_filter, w.has_bias ? w.bias : nullptr, y, a, stream);
  else
    cuda::launch_conv_max_pool(x, xt, shift, w.s2d_filter, w.has_bias ? w.bias : nullptr, y, a, p.kernel[0] % 2 == 1, stream);
}

void launch_space_to_depth(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x, void* xs,
                           int batch, cudaStream_t stream) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  const SpaceToDepthShape s = space_to_depth_shape(plan, step);
  cuda::launch_space_to_depth(x, dtype(plan.tensors[step.inputs[0]].type), step.input_shift.empty() ? nullptr : w.shift,
                              xs, dtype(plan.tensors[step.outputs[0]].type),
                              batch, static_cast<int>(in[1]), static_cast<int>(in[2]), static_cast<int>(in[3]),
                              p.padding.top, p.padding.left, s.h, s.w, s.c, stream);
}

void launch_explicit_pad(const PlanData& plan, const PlanStep& step, const void* x, void* padded, int batch,
                         cudaStream_t stream) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  const Shape& out = plan.tensors[step.padded_input].shape;
  // cuDNN pads min(before, after) itself; the copy holds the rest of the before side.
  const int top = p.padding.top - std::min(p.padding.top, p.padding.bottom);
  const int left = p.padding.left - std::min(p.padding.left, p.padding.right);
  cuda::launch_pad(x, dtype(plan.tensors[step.inputs[0]].type), padded, dtype(plan.tensors[step.padded_input].type),
                   batch, static_cast<int>(in[1]), static_cast<int>(in[2]), static_cast<int>(in[3]), top, left,
                   static_cast<int>(out[1]), static_cast<int>(out[2]), static_cast<int>(out[3]), stream);
}

bool cublaslt_applies(const PlanData& plan, const PlanStep& step) {
  const bool whole = plan.tensors[step.inputs[0]].place != TensorPlace::kView &&
                     plan.tensors[step.outputs[0]].place != TensorPlace::kView &&
                     (step.inputs.size() < 2 || plan.tensors[step.inputs[1]].place != TensorPlace::kView);
  return whole && cuda::cublaslt_conv_fits(conv_geometry(plan, step, plan.max_batch), conv_activation(step));
}

std::unique_ptr<cuda::CublasLtConvolution> cublaslt_convolution(const PlanData& plan, const PlanStep& step,
                                                                const StepWeights& weights, int batch) {
  return std::make_unique<cuda::CublasLtConvolution>(
      conv_geometry(plan, step, batch), dtype(plan.tensors[step.outputs[0]].type),
      cuda::cublaslt_compute_type(step.precision == Precision::kTf32), weights.has_bias ? weights.bias : nullptr,
      step.inputs.size() > 1, conv_activation(step).type == 0);
}

cublasLtMatmulAlgo_t cublaslt_algo(const ConvTactic& tactic) {
  cublasLtMatmulAlgo_t algo;
  static_assert(sizeof algo.data == sizeof tactic.lt.data, "cublasLtMatmulAlgo_t is 8 uint64 words");
  std::memcpy(algo.data, tactic.lt.data.data(), sizeof algo.data);
  return algo;
}

ConvTactic cublaslt_tactic(const cuda::LtAlgorithm& a, Precision precision) {
  ConvTactic t;
  const bool int8 = is_quantized(precision);  // cuBLASLt's INT8 matmul of an 8-bit step
  t.kind = int8 ? ConvTactic::Kind::kQuantCublasLt : ConvTactic::Kind::kCublasLt;
  t.algo = a.rank;
  t.math = int8 ? static_cast<int>(CUBLAS_COMPUTE_32I) : cuda::cublaslt_compute_type(precision == Precision::kTf32);
  t.workspace = static_cast<int64_t>(a.workspace);
  std::memcpy(t.lt.data.data(), a.algo.data, sizeof a.algo.data);
  t.lt.version = static_cast<int64_t>(cublasLtGetVersion());
  t.lt.id = a.id, t.lt.tile = a.tile, t.lt.stages = a.stages, t.lt.split_k = a.split_k;
  return t;
}

void check_cublaslt_tactic(const ConvTactic& t, const std::string& step, const std::string& where) {
  const int64_t here = static_cast<int64_t>(cublasLtGetVersion());
  EASTRT_CHECK(t.lt.version == here, where, ": convolution '", step, "' uses ", describe(t),
               ", an algorithm of cuBLASLt ", t.lt.version, "; this is cuBLASLt ", here,
               ", which may read it otherwise: build again with this cuBLASLt");
  cuda::LtAlgorithm decoded;
  decoded.algo = cublaslt_algo(t);
  bool readable = true;
  try {
    cuda::describe_algorithm(&decoded);
  } catch (const Error&) {
    readable = false;
  }
  EASTRT_CHECK(readable && decoded.id == t.lt.id && decoded.tile == t.lt.tile && decoded.stages == t.lt.stages &&
                   decoded.split_k == t.lt.split_k,
               where, ": convolution '", step, "': the stored cuBLASLt algorithm does not decode to the ",
               "configuration beside it (", describe(t), "): the file is corrupt");
}

bool cudnn_graph_applies(const PlanData& plan, const PlanStep& step) {
  if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution || is_quantized(step.precision))
    return false;
  for (int id : step.inputs)
    if (plan.tensors[id].place == TensorPlace::kView) return false;
  return plan.tensors[step.outputs[0]].place != TensorPlace::kView;
}

cuda::GraphConvolution graph_convolution(const PlanData& plan, const PlanStep& step, const StepWeights& weights,
                                         int batch, bool fused, bool on_padded_copy) {
  cuda::GraphConvolution c;
  c.geometry = conv_geometry(plan, step, batch);  // on the padded copy when there is one
  c.pad_bottom = c.geometry.pad_h, c.pad_right = c.geometry.pad_w;
  if (step.padded_input < 0 || !on_padded_copy) {  // input 0 with the layer's own padding
    const auto& p = std::get<ConvolutionParams>(step.params);
    const Shape& in = plan.tensors[step.inputs[0]].shape;
    c.geometry.h = static_cast<int>(in[1]), c.geometry.w = static_cast<int>(in[2]), c.geometry.c = static_cast<int>(in[3]);
    c.geometry.pad_h = p.padding.top, c.geometry.pad_w = p.padding.left;
    c.pad_bottom = p.padding.bottom, c.pad_right = p.padding.right;
  }
  c.type = dtype(plan.tensors[step.outputs[0]].type);
  c.strict_fp32 = step.precision == Precision::kFp32;
  c.fused = fused;
  c.bias = weights.has_bias;
  c.residual = step.inputs.size() > 1;
  c.relu = conv_activation(step).type == 0;
  return c;
}

cuda::GraphEngineConfig graph_engine_config(const ConvTactic& tactic) { return {tactic.algo, tactic.graph.knobs}; }

void check_cudnn_graph_tactic(const ConvTactic& t, const std::string& step, const std::string& where) {
  const auto here = static_cast<int64_t>(cudnnGetVersion());
  EASTRT_CHECK(t.graph.version == here, where, ": convolution '", step, "' uses ", describe(t),
               ", an engine configuration of cuDNN ", t.graph.version, "; this is cuDNN ", here,
               ", which may number its engines and knobs otherwise: build again with this cuDNN");
}

GraphCandidates cudnn_graph_candidates(cudnnHandle_t handle, const PlanData& plan, const PlanStep& step,
                                       const StepWeights& weights, bool fused, size_t workspace_limit, size_t limit,
                                       std::ostream& report, const cuda::GraphEngineConfig* only) {
  const bool on_copy = step.padded_input >= 0 && !padded_copy_only_pads(plan, step);
  GraphCandidates found;
  found.graph = std::make_unique<cuda::CudnnGraphConvolution>(
      handle, graph_convolution(plan, step, weights, plan.max_batch, fused, on_copy));
  std::unique_ptr<cuda::CudnnGraphConvolution> one =
      plan.max_batch > 1
          ? std::make_unique<cuda::CudnnGraphConvolution>(handle, graph_convolution(plan, step, weights, 1, fused, on_copy))
          : nullptr;
  std::string unanswered;
  const std::vector<cuda::GraphEngineConfig> configs =
      only ? std::vector<cuda::GraphEngineConfig>{*only} : found.graph->candidate_configs(&unanswered);
  std::map<std::string, int> left_out;  // by reason (a list of every configuration would swamp the report)
  for (const cuda::GraphEngineConfig& config : configs) {
    if (found.tactics.size() >= limit) break;
    std::string why;
    const int p = found.graph->add_plan(config, &why);
    const int q = p >= 0 && one ? one->add_plan(config, &why) : 0;
    if (p < 0 || q < 0) {
      ++left_out[(p >= 0 ? "at batch 1: " : "") + why];
      continue;
    }
    const size_t workspace = std::max(found.graph->workspace_size(p), one ? one->workspace_size(q) : 0);
    if (workspace > workspace_limit) {
      ++left_out["needs more than the workspace limit"];
      continue;
    }
    ConvTactic t;
    t.kind = fused ? ConvTactic::Kind::kCudnnGraphFused : ConvTactic::Kind::kCudnnGraphSplit;
    t.algo = static_cast<int>(config.engine), t.math = 0;
    t.workspace = static_cast<int64_t>(workspace);
    t.graph.knobs = config.knobs;
    t.graph.version = static_cast<int64_t>(cudnnGetVersion());
    found.plans.push_back(p);
    found.tactics.push_back(std::move(t));
  }
  report << "  cudnn graph" << (fused ? " fused" : "") << ": " << found.tactics.size() << " configuration"
         << (found.tactics.size() == 1 ? "" : "s") << " to time of " << configs.size() << " offered";
  if (!unanswered.empty()) report << " (" << unanswered << ")";
  if (!left_out.empty()) {
    report << "; left out:";
    const char* separator = " ";
    for (const auto& [why, count] : left_out) report << separator << count << " " << why, separator = ", ";
  }
  report << "\n";
  return found;
}

}  // namespace gpu

namespace {

using gpu::DeviceBuffer;
using gpu::PinnedBuffer;
using gpu::PlanData;
using gpu::PlanStep;
using gpu::PlanTensor;
using gpu::StepKind;
using gpu::TensorPlace;

constexpr size_t kAlignment = 256;
size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// The workspace the side stream's steps need (lane 1; the main stream's is plan.workspace_bytes, which the
// profile's one-stream run of every step also uses).
int64_t side_workspace_bytes(const PlanData& plan) {
  int64_t bytes = 0;
  for (const PlanStep& step : plan.steps)
    if (step.lane == 1) bytes = std::max(bytes, step.tactic.workspace);
  return bytes;
}

// A KCRS filter as cuDNN's NHWC filters want it, KRSC, with `channels` (>= C) per tap: the ones past C zero.
std::vector<float> kcrs_to_krsc(const HostTensor& kcrs, int64_t channels) {
  const int64_t K = kcrs.shape[0], C = kcrs.shape[1], R = kcrs.shape[2], S = kcrs.shape[3];
  std::vector<float> krsc(static_cast<size_t>(K * R * S * channels), 0.0f);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t q = 0; q < S; ++q)
          krsc[static_cast<size_t>(((k * R + r) * S + q) * channels + c)] = kcrs.data[((k * C + c) * R + r) * S + q];
  return krsc;
}

void append_values(std::vector<uint8_t>& blob, const std::vector<float>& values, gpu::StorageType type) {
  if (type == gpu::StorageType::kFloat32) {
    const auto* p = reinterpret_cast<const uint8_t*>(values.data());
    blob.insert(blob.end(), p, p + values.size() * sizeof(float));
  } else {
    for (float v : values) {
      const uint16_t h = float_to_half(v);
      blob.push_back(static_cast<uint8_t>(h & 0xff));
      blob.push_back(static_cast<uint8_t>(h >> 8));
    }
  }
  blob.resize(aligned(blob.size()), 0);
}

std::vector<float> expand(const Weights& w, int64_t channels, bool per_channel) {
  std::vector<float> values(static_cast<size_t>(per_channel ? channels : 1));
  for (size_t i = 0; i < values.size(); ++i) values[i] = w->size() == 1 ? w->data[0] : w->data[i];
  return values;
}

int64_t per_batch(const PlanTensor& t) { return t.elements() / t.shape[0]; }

}  // namespace

void Engine::Impl::upload_weights() {
  // Offsets into one blob, patched into pointers once the blob is on the device.
  struct Slot {
    size_t step;
    int field;  // 0 filter, 1 bias, 2 scale, 3 shift, 4 power, 5 space-to-depth filter
    size_t offset;
  };
  std::vector<uint8_t> blob;
  std::vector<Slot> slots;
  step_weights.assign(plan.steps.size(), {});
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& step = plan.steps[i];
    if (step.kind != StepKind::kLayer) continue;
    if (step.layer_kind() == LayerKind::kConvolution && is_quantized(step.precision)) {
      // 8-bit codes per output channel with quant::weight_scales and the rounding of fake_quantize_weights
      // (so the engine computes what FakeQuantEngine does), KRSC; scale[k] = s_x · s_w[k] and the bias in
      // float32 for the kernel's epilogue.
      const auto& p = std::get<ConvolutionParams>(step.params);
      const quant::QuantType qt = quant_type(step.precision);
      const int64_t K = p.kernel_weights->shape[0], C = p.kernel_weights->shape[1];
      const std::vector<float> s_w = quant::weight_scales(*p.kernel_weights, qt);
      const std::vector<float> krsc = kcrs_to_krsc(*p.kernel_weights, C);
      const size_t per_k = krsc.size() / static_cast<size_t>(K);
      slots.push_back({i, 0, blob.size()});
      for (size_t k = 0; k < static_cast<size_t>(K); ++k)
        for (size_t j = 0; j < per_k; ++j) blob.push_back(quant::quantize_code(krsc[k * per_k + j], s_w[k], qt));
      blob.resize(aligned(blob.size()), 0);
      const float s_x = plan.tensors[step.inputs[0]].scale;
      std::vector<float> scale(static_cast<size_t>(K));
      for (size_t k = 0; k < scale.size(); ++k) scale[k] = s_x * s_w[k];
      slots.push_back({i, 2, blob.size()});
      append_values(blob, scale, gpu::StorageType::kFloat32);
      if (p.bias) {
        slots.push_back({i, 1, blob.size()});
        append_values(blob, p.bias->data, gpu::StorageType::kFloat32);
      }
      step_weights[i].has_bias = p.bias != nullptr;
    } else if (step.layer_kind() == LayerKind::kConvolution) {
      const auto& p = std::get<ConvolutionParams>(step.params);
      const gpu::StorageType type = plan.tensors[step.outputs[0]].type;
      const Shape& s = p.kernel_weights->shape;  // K, C/groups, R, S
      const int64_t K = s[0], C = s[1];
      // cuDNN's NHWC filters are KRSC; channels the lowering padded (a padded input wider than C) are zero.
      const int64_t CP = step.padded_input >= 0 && p.groups == 1 ? plan.tensors[step.padded_input].shape[3] : C;
      slots.push_back({i, 0, blob.size()});
      append_values(blob, kcrs_to_krsc(*p.kernel_weights, CP), type);
      std::vector<float> bias(static_cast<size_t>(K), 0.0f);
      if (p.bias) bias = p.bias->data;
      slots.push_back({i, 1, blob.size()});
      append_values(blob, bias, type);
      step_weights[i].has_bias = p.bias != nullptr;
      // The space-to-depth filter, for a builder that may time the tactic (no tactic yet) or a plan that
      // chose it.
      if (gpu::space_to_depth_applies(plan, step) &&
          (step.tactic.kind == gpu::ConvTactic::Kind::kUnset || gpu::is_space_to_depth(step.tactic.kind))) {
        const gpu::SpaceToDepthShape xs = gpu::space_to_depth_shape(plan, step);
        slots.push_back({i, 5, blob.size()});
        append_values(blob, kcrs_to_krsc(gpu::space_to_depth_filter(*p.kernel_weights, xs.c), xs.c), type);
      }
      if (!step.input_shift.empty()) {
        slots.push_back({i, 3, blob.size()});
        append_values(blob, step.input_shift, gpu::StorageType::kFloat32);
      }
    } else if (step.layer_kind() == LayerKind::kDeconvolution) {
      // Our kernel reads the filter as [R][S][C][K/groups] and the bias in float32 for every storage type.
      const auto& p = std::get<DeconvolutionParams>(step.params);
      const Shape& s = p.kernel_weights->shape;  // C, K/groups, R, S
      const int64_t C = s[0], KG = s[1], R = s[2], S = s[3];
      std::vector<float> rsck(static_cast<size_t>(R * S * C * KG));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < KG; ++k)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t q = 0; q < S; ++q)
              rsck[((r * S + q) * C + c) * KG + k] = p.kernel_weights->data[((c * KG + k) * R + r) * S + q];
      slots.push_back({i, 0, blob.size()});
      append_values(blob, rsck, gpu::StorageType::kFloat32);
      if (p.bias) {
        slots.push_back({i, 1, blob.size()});
        append_values(blob, p.bias->data, gpu::StorageType::kFloat32);
      }
      step_weights[i].has_bias = p.bias != nullptr;
    } else if (step.layer_kind() == LayerKind::kScale) {
      const auto& p = std::get<ScaleParams>(step.params);
      const int64_t C = plan.tensors[step.outputs[0]].shape.back();
      const bool per_channel = p.mode == ScaleMode::kChannel;
      int field = 2;
      for (const Weights* w : {&p.scale, &p.shift, &p.power}) {
        if (*w) {
          slots.push_back({i, field, blob.size()});
          append_values(blob, expand(*w, C, per_channel && (*w)->size() != 1), gpu::StorageType::kFloat32);
        }
        ++field;
      }
    }
  }
  weights.allocate(std::max<size_t>(blob.size(), kAlignment));
  EASTRT_CUDA(cudaMemcpy(weights.get(), blob.data(), blob.size(), cudaMemcpyHostToDevice));
  weight_bytes = static_cast<int64_t>(blob.size());
  auto* base = weights.as<uint8_t>();
  for (const Slot& slot : slots) {
    gpu::StepWeights& w = step_weights[slot.step];
    void* p = base + slot.offset;
    switch (slot.field) {
      case 0: w.filter = p; break;
      case 1: w.bias = p; break;
      case 2: w.scale = static_cast<float*>(p); break;
      case 3: w.shift = static_cast<float*>(p); break;
      case 5: w.s2d_filter = p; break;
      default: w.power = static_cast<float*>(p); break;
    }
  }
}

// ---------------------------------------------------------------- Engine

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::deserialize(const std::vector<uint8_t>& bytes, const std::string& path) {
  gpu::ParsedPlan parsed = gpu::parse_plan(bytes, path);
  gpu::check_plan_target(parsed.target, query_gpu(0), path);
  auto impl = std::make_unique<Impl>();
  impl->plan = std::move(parsed.plan);
  impl->target = std::move(parsed.target);
  impl->device = 0;
  EASTRT_CUDA(cudaSetDevice(impl->device));
  // A cuBLASLt algorithm is only good for the cuBLASLt that gave it: refused here, before anything runs
  // (whether it runs at each batch is checked when a context prepares that batch).
  for (const PlanStep& step : impl->plan.steps)
    if (step.kind == gpu::StepKind::kLayer && step.tactic.kind == gpu::ConvTactic::Kind::kCublasLt) {
      EASTRT_CHECK(step.layer_kind() == LayerKind::kConvolution && gpu::cublaslt_applies(impl->plan, step), "plan ",
                   path, ": step '", step.name, "' has a cuBLASLt tactic but is not a 1x1 convolution it runs");
      gpu::check_cublaslt_tactic(step.tactic, step.name, "plan " + path);
    }
  for (const PlanStep& step : impl->plan.steps)
    if (gpu::is_quant_conv(step.tactic.kind)) {
      gpu::check_quant_conv_tactic(impl->plan, step, step.tactic, "plan " + path);
      const std::string why = gpu::quant_conv_refusal(impl->plan, step);
      EASTRT_CHECK(why.empty(), "plan ", path, ": step '", step.name, "' has an 8-bit tactic the kernel refuses (",
                   why, ")");
    }
  // A graph tactic's engine numbers are only good for the cuDNN that gave them (whether cuDNN takes the
  // configuration is checked when a context prepares each batch).
  for (const PlanStep& step : impl->plan.steps)
    if (gpu::is_cudnn_graph(step.tactic.kind)) {
      EASTRT_CHECK(gpu::cudnn_graph_applies(impl->plan, step), "plan ", path, ": step '", step.name,
                   "' has a cuDNN graph tactic but is not an FP16/float32 convolution of whole tensors");
      gpu::check_cudnn_graph_tactic(step.tactic, step.name, "plan " + path);
    }
  impl->upload_weights();
  return std::make_unique<Engine>(std::move(impl));
}

std::unique_ptr<Engine> Engine::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in.good(), "plan ", path, ": cannot be opened");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return deserialize(bytes, path);
}

std::vector<uint8_t> Engine::serialize() const { return gpu::serialize_plan(impl_->plan, impl_->target); }

void Engine::save(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  EASTRT_CHECK(out.good(), "plan ", path, ": cannot be written");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  EASTRT_CHECK(out.good(), "plan ", path, ": writing failed");
}

int Engine::max_batch() const { return impl_->plan.max_batch; }
Precision Engine::precision() const { return impl_->plan.precision; }

namespace {

// EngineLayerInfo's roofline terms of one step: its least traffic and, for (de)convolutions, its arithmetic.
void add_roofline_terms(const PlanData& plan, const PlanStep& step, EngineLayerInfo& l) {
  const auto per_image = [&](int id) { return plan.tensors[id].bytes() / std::max(1, plan.max_batch); };
  const auto* pool = step.kind == StepKind::kLayer ? std::get_if<PoolingParams>(&step.params) : nullptr;
  const int64_t outputs = volume(plan.tensors[step.outputs[0]].shape) / std::max(1, plan.max_batch);
  for (int id : step.inputs) {
    int64_t bytes = per_image(id);
    // A pool whose windows leave input out (a 1x1 / 2 subsampling) needs only what they cover.
    if (pool && !pool->global)
      bytes = std::min<int64_t>(bytes, outputs * pool->window[0] * pool->window[1] *
                                           static_cast<int64_t>(gpu::storage_size(plan.tensors[id].type)));
    l.activation_bytes_per_image += bytes;
  }
  l.activation_bytes_per_image += per_image(step.outputs[0]);
  if (step.kind != StepKind::kLayer) return;
  const int64_t weight_size = static_cast<int64_t>(gpu::storage_size(gpu::storage_type(step.precision)));
  const Shape& in = plan.tensors[step.inputs[0]].shape;
  if (const auto* conv = std::get_if<ConvolutionParams>(&step.params)) {
    const int64_t per_output = int64_t(conv->kernel[0]) * conv->kernel[1] * (in[3] / conv->groups);
    const std::array<int, 2> size = gpu::conv_output_size(plan, step);  // before a fused pool
    l.macs_per_image = int64_t(size[0]) * size[1] * conv->out_channels * per_output;
    l.weight_bytes = (per_output * conv->out_channels + (conv->bias ? conv->out_channels : 0)) * weight_size;
  } else if (const auto* deconv = std::get_if<DeconvolutionParams>(&step.params)) {
    const int64_t per_input = int64_t(deconv->kernel[0]) * deconv->kernel[1] * (deconv->out_channels / deconv->groups);
    l.macs_per_image = volume(in) / std::max(1, plan.max_batch) * per_input;
    l.weight_bytes = (per_input * in[3] + (deconv->bias ? deconv->out_channels : 0)) * weight_size;
  }
}

}  // namespace

EngineInfo Engine::inspect() const {
  const PlanData& plan = impl_->plan;
  EngineInfo info;
  info.gpu_name = impl_->target.gpu_name;
  info.compute_major = impl_->target.major, info.compute_minor = impl_->target.minor;
  info.eastrt_version = impl_->target.eastrt_version;
  info.precision = plan.precision;
  info.max_batch = plan.max_batch;
  info.model_fingerprint = plan.model_fingerprint, info.calibrator = plan.calibrator;
  info.passes = plan.passes;
  for (const PlanStep& step : plan.steps) {
    EngineLayerInfo l;
    l.name = step.name;
    l.note = step.note;
    l.side_stream = step.lane == 1;
    const PlanTensor& out = plan.tensors[step.outputs[0]];
    l.output_shape = out.shape;
    for (int id : step.inputs) l.input_shapes.push_back(plan.tensors[id].shape);
    add_roofline_terms(plan, step, l);
    if (step.kind == StepKind::kCast) {
      l.kind = "Cast";
      l.precision = gpu::to_string(out.type);
      const PlanTensor& in = plan.tensors[step.inputs[0]];
      const char* what = gpu::is_8bit(out.type) ? "quantize " : gpu::is_8bit(in.type) ? "dequantize " : "cast ";
      l.tactic = std::string("eastrt ") + what + gpu::to_string(in.type) + "→" + gpu::to_string(out.type);
    } else {
      l.kind = to_string(step.layer_kind());
      l.precision = to_string(step.precision);
      if (step.layer_kind() == LayerKind::kConvolution) {
        l.tactic = gpu::describe(step.tactic);
        if (step.padded_input >= 0 && step.tactic.kind != gpu::ConvTactic::Kind::kDirect &&
            !gpu::is_space_to_depth(step.tactic.kind))
          l.tactic += " after an explicit pad";
        if (step.pool.window != 0) l.tactic += " (max-pool '" + step.pool.name + "' fused)";
        if (!step.input_shift.empty()) l.tactic += " (the input's shift folded in)";
        l.tactic_ms = step.tactic.ms;
      } else if (step.layer_kind() == LayerKind::kResize && out.place == TensorPlace::kView) {
        l.tactic = "eastrt resize, written into " + plan.tensors[out.view_of].name;
      } else {
        std::string kind = to_string(step.layer_kind());
        for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        l.tactic = "eastrt " + kind;
      }
    }
    info.layers.push_back(std::move(l));
  }
  info.weight_bytes = impl_->weight_bytes;
  info.activation_bytes = plan.arena_bytes;
  info.workspace_bytes = plan.workspace_bytes + side_workspace_bytes(plan);
  for (int id : plan.inputs) {
    info.inputs.emplace_back(plan.tensors[id].name, plan.tensors[id].shape);
    info.io_bytes += plan.tensors[id].bytes();
  }
  for (int id : plan.outputs) {
    info.outputs.emplace_back(plan.tensors[id].name, plan.tensors[id].shape);
    info.io_bytes += plan.tensors[id].bytes();
  }
  return info;
}

// ---------------------------------------------------------------- ExecutionContext

struct ExecutionContext::Impl {
  explicit Impl(Engine::Impl& engine);
  ~Impl();

  Engine::Impl& engine;
  const PlanData& plan;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cudaStream_t cudnn_stream = nullptr;  // the stream cuDNN's handle launches on now
  cublasLtHandle_t cublaslt = nullptr;
  DeviceBuffer arena, workspace;
  // Parallel branches (the plan's lane-1 steps): the side stream with its own workspace; per step, the
  // other lane's steps it waits for, and an event for each step the other lane waits for; `forked` lets the
  // side stream start only after what the main stream was given before the run, `joined` ends it there.
  cudaStream_t side_stream = nullptr;
  DeviceBuffer side_workspace;
  std::vector<std::vector<int>> waits;
  std::vector<cudaEvent_t> done;
  cudaEvent_t forked = nullptr, joined = nullptr;
  std::vector<DeviceBuffer> inputs, outputs;
  std::vector<PinnedBuffer> pinned_inputs, pinned_outputs;
  std::vector<cudaEvent_t> input_copied;  // the pinned input may be written again once its copy is done
  DeviceBuffer image_device;
  PinnedBuffer image_pinned;
  cudaEvent_t image_copied = nullptr;
  std::unique_ptr<gpu::CandidateDecoder> decoder;  // made by the first decode_candidates
  std::vector<void*> storage;  // per plan tensor: its storage's device address (a view: its parent's)
  int batch = 1;
  bool use_graph = false;

  struct BatchState {
    std::vector<std::unique_ptr<cuda::CudnnConvolution>> convs;  // per step, null for the others
    std::vector<std::unique_ptr<cuda::CublasLtConvolution>> matmuls;  // per cuBLASLt step, null for the others
    // Per graph step, null for the others: its graph at this batch with one plan (number 0), the tactic's
    // configuration.
    std::vector<std::unique_ptr<cuda::CudnnGraphConvolution>> graphs;
    std::vector<std::unique_ptr<cuda::CudnnQuantConvolution>> quant_graphs;
    std::vector<std::unique_ptr<cuda::CublasLtQuantConvolution>> quant_matmuls;  // per INT8 cuBLASLt step
    cudaGraphExec_t graph = nullptr;
  };
  std::map<int, BatchState> batches;

  BatchState& prepare(int b);
  void run_steps(BatchState& state, int b);
  // Step `index` on `on` with that lane's workspace `ws` (the profile runs every step on the main stream).
  void run_step(BatchState& state, size_t index, int b, cudaStream_t on, const DeviceBuffer& ws);
  void drop_graphs();
  int input_index(const std::string& name) const;
  int output_index(const std::string& name) const;
  const void* ptr(int id) const { return element_ptr(id); }
  void* element_ptr(int id) const;
  cuda::DType type(int id) const { return gpu::dtype(plan.tensors[id].type); }
};

ExecutionContext::Impl::Impl(Engine::Impl& e) : engine(e), plan(e.plan) {
  EASTRT_CUDA(cudaSetDevice(engine.device));
  EASTRT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  EASTRT_CUDNN(cudnnCreate(&cudnn));
  EASTRT_CUDNN(cudnnSetStream(cudnn, stream));
  EASTRT_CUBLAS(cublasLtCreate(&cublaslt));
  arena.allocate(std::max<size_t>(static_cast<size_t>(plan.arena_bytes), kAlignment));
  workspace.allocate(std::max<size_t>(static_cast<size_t>(plan.workspace_bytes), kAlignment));
  cudnn_stream = stream;
  if (std::any_of(plan.steps.begin(), plan.steps.end(), [](const PlanStep& s) { return s.lane == 1; })) {
    EASTRT_CUDA(cudaStreamCreateWithFlags(&side_stream, cudaStreamNonBlocking));
    side_workspace.allocate(std::max<size_t>(static_cast<size_t>(side_workspace_bytes(plan)), kAlignment));
    waits = gpu::cross_lane_waits(plan);
    done.assign(plan.steps.size(), nullptr);
    for (const std::vector<int>& w : waits)
      for (int p : w)
        if (!done[p]) EASTRT_CUDA(cudaEventCreateWithFlags(&done[p], cudaEventDisableTiming));
    EASTRT_CUDA(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
    EASTRT_CUDA(cudaEventCreateWithFlags(&joined, cudaEventDisableTiming));
  }
  for (int id : plan.inputs) {
    const size_t bytes = static_cast<size_t>(plan.tensors[id].bytes());
    inputs.emplace_back(bytes);
    pinned_inputs.emplace_back();
    pinned_inputs.back().allocate(bytes);
    cudaEvent_t event = nullptr;
    EASTRT_CUDA(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    input_copied.push_back(event);
  }
  for (int id : plan.outputs) {
    const size_t bytes = static_cast<size_t>(plan.tensors[id].bytes());
    outputs.emplace_back(bytes);
    pinned_outputs.emplace_back();
    pinned_outputs.back().allocate(bytes);
  }
  EASTRT_CUDA(cudaEventCreateWithFlags(&image_copied, cudaEventDisableTiming));
  storage.assign(plan.tensors.size(), nullptr);
  for (size_t id = 0; id < plan.tensors.size(); ++id) {
    const PlanTensor& t = plan.tensors[id];
    switch (t.place) {
      case TensorPlace::kArena: storage[id] = arena.as<uint8_t>() + t.offset; break;
      case TensorPlace::kInput: storage[id] = inputs.at(static_cast<size_t>(t.offset)).get(); break;
      case TensorPlace::kOutput: storage[id] = outputs.at(static_cast<size_t>(t.offset)).get(); break;
      case TensorPlace::kView: break;
    }
  }
  for (size_t id = 0; id < plan.tensors.size(); ++id)
    if (plan.tensors[id].place == TensorPlace::kView) storage[id] = storage[static_cast<size_t>(plan.tensors[id].view_of)];
  batch = plan.max_batch;
  prepare(plan.max_batch);
}

ExecutionContext::Impl::~Impl() {
  // Nothing here may throw: errors at teardown are not actionable.
  if (stream) cudaStreamSynchronize(stream);
  drop_graphs();
  batches.clear();
  if (side_stream) cudaStreamSynchronize(side_stream);
  for (cudaEvent_t e : input_copied) cudaEventDestroy(e);
  for (cudaEvent_t e : done)
    if (e) cudaEventDestroy(e);
  if (forked) cudaEventDestroy(forked);
  if (joined) cudaEventDestroy(joined);
  if (side_stream) cudaStreamDestroy(side_stream);
  if (image_copied) cudaEventDestroy(image_copied);
  if (cublaslt) cublasLtDestroy(cublaslt);
  if (cudnn) cudnnDestroy(cudnn);
  if (stream) cudaStreamDestroy(stream);
}

void* ExecutionContext::Impl::element_ptr(int id) const {
  const PlanTensor& t = plan.tensors[id];
  auto* base = static_cast<uint8_t*>(storage[id]);
  return t.place == TensorPlace::kView ? base + t.channel_offset * gpu::storage_size(t.type) : base;
}

void ExecutionContext::Impl::drop_graphs() {
  for (auto& [b, state] : batches)
    if (state.graph) {
      cudaGraphExecDestroy(state.graph);
      state.graph = nullptr;
    }
}

ExecutionContext::Impl::BatchState& ExecutionContext::Impl::prepare(int b) {
  auto found = batches.find(b);
  if (found != batches.end()) return found->second;
  BatchState state;
  state.convs.resize(plan.steps.size());
  state.matmuls.resize(plan.steps.size());
  state.graphs.resize(plan.steps.size());
  state.quant_graphs.resize(plan.steps.size());
  state.quant_matmuls.resize(plan.steps.size());
  size_t needed_by_lane[2] = {0, 0};
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& step = plan.steps[i];
    if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution) continue;
    size_t& needed = needed_by_lane[step.lane];
    // Our own kernels (8-bit, direct on the unpadded input) need no cuDNN handle and no workspace.
    if (step.tactic.kind == gpu::ConvTactic::Kind::kDirect)
      EASTRT_CHECK(gpu::direct_conv_applies(plan, step, step.tactic.algo), "convolution '", step.name, "' (",
                   gpu::describe(step.tactic), "): that kernel does not take this convolution: the plan is corrupt");
    if (step.tactic.kind == gpu::ConvTactic::Kind::kQuant || step.tactic.kind == gpu::ConvTactic::Kind::kDirect) continue;
    if (step.tactic.kind == gpu::ConvTactic::Kind::kQuantCudnn) {
      // As a graph tactic below: this batch's own execution plan of the configuration (compiled here).
      std::string why;
      std::unique_ptr<cuda::CudnnQuantConvolution> graph;
      try {
        graph = std::make_unique<cuda::CudnnQuantConvolution>(
            cudnn, gpu::quant_conv_args(plan, step, b), engine.step_weights[i].has_bias, step.inputs.size() > 1);
      } catch (const Error& e) {
        why = e.what();
      }
      const int planned = graph ? graph->add_plan(gpu::graph_engine_config(step.tactic), true, &why) : -1;
      EASTRT_CHECK(planned == 0, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                   "): cuDNN refuses the plan's 8-bit graph configuration at batch ", b, " (", why,
                   "): build the plan again");
      needed = std::max(needed, graph->workspace_size(planned));
      state.quant_graphs[i] = std::move(graph);
      continue;
    }
    if (gpu::has_lt_algo(step.tactic.kind)) {
      // The algorithm was chosen at the largest batch (and checked at batch 1): cuBLASLt must take it at
      // this one too, or the plan cannot run it. (FP16/FP32 matmul, or the INT8 one of an 8-bit step.)
      auto accepted = [&](auto matmul) {
        size_t bytes = 0;
        EASTRT_CHECK(matmul->check(cublaslt, gpu::cublaslt_algo(step.tactic), &bytes), "convolution '", step.name,
                     "' (", gpu::describe(step.tactic), "): cuBLASLt does not accept the plan's algorithm at batch ",
                     b, ": build the plan again");
        needed = std::max(needed, bytes);
        return matmul;
      };
      if (step.tactic.kind == gpu::ConvTactic::Kind::kQuantCublasLt)
        state.quant_matmuls[i] = accepted(gpu::cublaslt_quant_convolution(plan, step, engine.step_weights[i], b));
      else
        state.matmuls[i] = accepted(gpu::cublaslt_convolution(plan, step, engine.step_weights[i], b));
      continue;
    }
    if (gpu::is_cudnn_graph(step.tactic.kind)) {
      // The configuration was chosen at the largest batch (and checked at batch 1); this batch gets its own
      // execution plan of it, which cuDNN must take too.
      std::string why;
      std::unique_ptr<cuda::CudnnGraphConvolution> graph;
      try {
        graph = std::make_unique<cuda::CudnnGraphConvolution>(
            cudnn, gpu::graph_convolution(plan, step, engine.step_weights[i], b,
                                          step.tactic.kind == gpu::ConvTactic::Kind::kCudnnGraphFused,
                                          step.padded_input >= 0));
      } catch (const Error& e) {
        why = e.what();
      }
      const int planned = graph ? graph->add_plan(gpu::graph_engine_config(step.tactic), &why) : -1;
      EASTRT_CHECK(planned == 0, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                   "): cuDNN refuses the plan's graph configuration at batch ", b, " (", why,
                   "): build the plan again");
      needed = std::max(needed, graph->workspace_size(planned));
      state.graphs[i] = std::move(graph);
      continue;
    }
    if (step.tactic.kind == gpu::ConvTactic::Kind::kSpaceToDepthMaxPool) continue;  // our kernel: no workspace
    const bool s2d = gpu::is_space_to_depth(step.tactic.kind);
    auto conv = std::make_unique<cuda::CudnnConvolution>(
        s2d ? gpu::space_to_depth_geometry(plan, step, b) : gpu::conv_geometry(plan, step, b),
        gpu::dtype(plan.tensors[step.outputs[0]].type), step.tactic.math);
    // Space-to-depth: X' first in the workspace, cuDNN's after it.
    needed = std::max(needed, (s2d ? gpu::space_to_depth_bytes(plan, step, b) : 0) +
                                  conv->workspace_size(cudnn, step.tactic.algo));
    state.convs[i] = std::move(conv);
  }
  // The main workspace also serves the side stream's steps when the profile runs them on the main stream.
  const size_t needed = std::max(needed_by_lane[0], needed_by_lane[1]);
  if (needed > workspace.size() || needed_by_lane[1] > side_workspace.size()) {
    // Rare (a smaller batch asking more): graphs captured with the old workspaces must go.
    EASTRT_CUDA(cudaStreamSynchronize(stream));
    if (side_stream) EASTRT_CUDA(cudaStreamSynchronize(side_stream));
    drop_graphs();
    if (needed > workspace.size()) workspace.allocate(needed);
    if (needed_by_lane[1] > side_workspace.size()) side_workspace.allocate(needed_by_lane[1]);
  }
  return batches.emplace(b, std::move(state)).first->second;
}

void ExecutionContext::Impl::run_steps(BatchState& state, int b) {
  if (!side_stream) {
    for (size_t i = 0; i < plan.steps.size(); ++i) run_step(state, i, b, stream, workspace);
    return;
  }
  // Captured into a CUDA graph, the event waits become the graph's edges between the two streams' nodes.
  EASTRT_CUDA(cudaEventRecord(forked, stream));
  EASTRT_CUDA(cudaStreamWaitEvent(side_stream, forked, 0));
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const bool side = plan.steps[i].lane == 1;
    cudaStream_t on = side ? side_stream : stream;
    for (int p : waits[i]) EASTRT_CUDA(cudaStreamWaitEvent(on, done[p], 0));
    run_step(state, i, b, on, side ? side_workspace : workspace);
    if (done[i]) EASTRT_CUDA(cudaEventRecord(done[i], on));
  }
  EASTRT_CUDA(cudaEventRecord(joined, side_stream));
  EASTRT_CUDA(cudaStreamWaitEvent(stream, joined, 0));
}

void ExecutionContext::Impl::run_step(BatchState& state, size_t index, int b, cudaStream_t on,
                                      const DeviceBuffer& ws) {
  const PlanStep& step = plan.steps[index];
  if (cudnn_stream != on) {
    EASTRT_CUDNN(cudnnSetStream(cudnn, on));
    cudnn_stream = on;
  }
  const int out = step.outputs[0];
  const PlanTensor& y = plan.tensors[out];
  const int64_t count = per_batch(y) * b;
  if (step.kind == StepKind::kCast) {
    const PlanTensor& x = plan.tensors[step.inputs[0]];
    if (gpu::is_8bit(y.type))
      cuda::launch_quantize(ptr(step.inputs[0]), gpu::qtype(x.type), element_ptr(out), gpu::qtype(y.type), count,
                            y.scale, on);
    else if (gpu::is_8bit(x.type))
      cuda::launch_dequantize(ptr(step.inputs[0]), gpu::qtype(x.type), element_ptr(out), gpu::qtype(y.type), count,
                              x.scale, on);
    else
      cuda::launch_cast(ptr(step.inputs[0]), type(step.inputs[0]), element_ptr(out), type(out), count, on);
    return;
  }
  const gpu::StepWeights& w = engine.step_weights[index];
  switch (step.layer_kind()) {
    case LayerKind::kConvolution: {
      const void* x = ptr(step.inputs[0]);
      const void* residual = step.inputs.size() > 1 ? ptr(step.inputs[1]) : nullptr;
      if (step.tactic.kind == gpu::ConvTactic::Kind::kQuant) {
        cuda::launch_quant_conv(gpu::quant_conv_operands(plan, step, w, b, x, residual, element_ptr(out)),
                                step.tactic.algo, on);
        return;
      }
      if (step.tactic.kind == gpu::ConvTactic::Kind::kQuantCudnn) {
        const cudnnStatus_t status = state.quant_graphs[index]->run(
            0, gpu::quant_conv_operands(plan, step, w, b, x, residual, element_ptr(out)), ws.get(), ws.size());
        EASTRT_CHECK(status == CUDNN_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                     ", batch ", b, "): cuDNN says ", cudnnGetErrorString(status));
        return;
      }
      if (step.tactic.kind == gpu::ConvTactic::Kind::kQuantCublasLt) {
        const cublasStatus_t status = state.quant_matmuls[index]->run(
            cublaslt, gpu::cublaslt_algo(step.tactic), gpu::quant_conv_operands(plan, step, w, b, x, residual, element_ptr(out)),
            ws.get(), ws.size(), on);
        EASTRT_CHECK(status == CUBLAS_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                     ", batch ", b, "): cuBLASLt error ", static_cast<int>(status));
        return;
      }
      if (step.tactic.kind == gpu::ConvTactic::Kind::kDirect) {
        gpu::launch_direct_conv(plan, step, w, x, residual, element_ptr(out), b, step.tactic.algo, on);
        return;
      }
      if (step.tactic.kind == gpu::ConvTactic::Kind::kSpaceToDepthMaxPool) {
        gpu::launch_conv_max_pool(plan, step, w, x, element_ptr(out), b, on);
        return;
      }
      if (gpu::is_space_to_depth(step.tactic.kind)) {
        // X' from the unpadded input (the lowering's explicit pad is not used), then the stride-1 convolution.
        const size_t xs_bytes = gpu::space_to_depth_bytes(plan, step, b);
        gpu::launch_space_to_depth(plan, step, w, x, ws.get(), b, on);
        const bool fused = step.tactic.kind == gpu::ConvTactic::Kind::kSpaceToDepthFused;
        cuda::ConvOperands operands = gpu::conv_operands(step, w, fused, ws.get(), residual, element_ptr(out),
                                                         ws.as<uint8_t>() + xs_bytes, ws.size() - xs_bytes);
        operands.w = w.s2d_filter;
        const cudnnStatus_t status =
            state.convs[index]->run(cudnn, fused, step.tactic.algo, operands, gpu::conv_activation(step), on);
        EASTRT_CHECK(status == CUDNN_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                     ", batch ", b, "): cuDNN says ", cudnnGetErrorString(status));
        return;
      }
      if (step.padded_input >= 0) {
        gpu::launch_explicit_pad(plan, step, x, element_ptr(step.padded_input), b, on);
        x = ptr(step.padded_input);
      }
      if (gpu::is_cudnn_graph(step.tactic.kind)) {
        const cuda::ConvOperands operands =
            gpu::conv_operands(step, w, false, x, residual, element_ptr(out), ws.get(), ws.size());
        const cudnnStatus_t status = state.graphs[index]->run(0, operands, gpu::conv_activation(step), on);
        EASTRT_CHECK(status == CUDNN_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                     ", batch ", b, "): cuDNN says ", cudnnGetErrorString(status));
        return;
      }
      if (step.tactic.kind == gpu::ConvTactic::Kind::kCublasLt) {
        const cuda::ConvOperands operands =
            gpu::conv_operands(step, w, false, x, residual, element_ptr(out), ws.get(), ws.size());
        const cublasStatus_t status =
            state.matmuls[index]->run(cublaslt, gpu::cublaslt_algo(step.tactic), operands, on);
        EASTRT_CHECK(status == CUBLAS_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                     ", batch ", b, "): cuBLASLt error ", static_cast<int>(status));
        return;
      }
      const bool fused = step.tactic.kind == gpu::ConvTactic::Kind::kCudnnFused;
      const cuda::ConvOperands operands =
          gpu::conv_operands(step, w, fused, x, residual, element_ptr(out), ws.get(), ws.size());
      const cudnnStatus_t status =
          state.convs[index]->run(cudnn, fused, step.tactic.algo, operands, gpu::conv_activation(step), on);
      EASTRT_CHECK(status == CUDNN_STATUS_SUCCESS, "convolution '", step.name, "' (", gpu::describe(step.tactic),
                   ", batch ", b, "): cuDNN says ", cudnnGetErrorString(status));
      return;
    }
    case LayerKind::kDeconvolution: {
      const auto& p = std::get<DeconvolutionParams>(step.params);
      const Shape& in = plan.tensors[step.inputs[0]].shape;
      cuda::DeconvArgs a;
      a.n = b, a.h = static_cast<int>(in[1]), a.w = static_cast<int>(in[2]), a.c = static_cast<int>(in[3]);
      a.oh = static_cast<int>(y.shape[1]), a.ow = static_cast<int>(y.shape[2]), a.k = p.out_channels;
      a.r = p.kernel[0], a.s = p.kernel[1], a.stride_h = p.stride[0], a.stride_w = p.stride[1];
      a.pad_top = p.padding.top, a.pad_left = p.padding.left, a.groups = p.groups;
      cuda::launch_deconvolution(ptr(step.inputs[0]), type(step.inputs[0]), static_cast<const float*>(w.filter),
                                 w.has_bias ? static_cast<const float*>(w.bias) : nullptr, element_ptr(out), type(out),
                                 a, on);
      return;
    }
    case LayerKind::kScale: {
      const auto& p = std::get<ScaleParams>(step.params);
      cuda::ScaleArgs a;
      a.scale = w.scale, a.shift = w.shift, a.power = w.power;
      const bool channel = p.mode == ScaleMode::kChannel;
      a.scale_per_channel = channel && p.scale && p.scale->size() != 1;
      a.shift_per_channel = channel && p.shift && p.shift->size() != 1;
      a.power_per_channel = channel && p.power && p.power->size() != 1;
      cuda::launch_scale(ptr(step.inputs[0]), type(step.inputs[0]), element_ptr(out), type(out), count, y.shape.back(),
                         a, on);
      return;
    }
    case LayerKind::kPooling:
      cuda::launch_pooling(ptr(step.inputs[0]), type(step.inputs[0]), element_ptr(out), type(out),
                           gpu::pool_args(plan, step, b), on);
      return;
    case LayerKind::kActivation: {
      const auto& p = std::get<ActivationParams>(step.params);
      cuda::launch_activation(ptr(step.inputs[0]), type(step.inputs[0]), element_ptr(out), type(out), count,
                              {static_cast<int>(p.type), p.alpha, p.beta}, on);
      return;
    }
    case LayerKind::kUnary:
      cuda::launch_unary(ptr(step.inputs[0]), type(step.inputs[0]), element_ptr(out), type(out), count,
                         static_cast<int>(std::get<UnaryParams>(step.params).op), on);
      return;
    case LayerKind::kElementWise: {
      // Numpy broadcasting at this batch: every tensor's first dimension is the batch.
      auto at_batch = [&](int id) {
        Shape s = plan.tensors[id].shape;
        s[0] = b;
        return s;
      };
      Shape out_shape = at_batch(out);
      cuda::Broadcast s;
      s.rank = static_cast<int>(out_shape.size());
      EASTRT_CHECK(s.rank <= cuda::kMaxRank, "elementwise '", step.name, "': rank ", s.rank, " is above ", cuda::kMaxRank);
      auto strides = [&](const Shape& operand, int64_t* stride) {
        const int skip = s.rank - static_cast<int>(operand.size());
        int64_t running = 1;
        for (int d = s.rank - 1; d >= 0; --d) {
          const int64_t dim = d < skip ? 1 : operand[static_cast<size_t>(d - skip)];
          stride[d] = dim == 1 ? 0 : running;
          running *= dim;
        }
      };
      for (int d = 0; d < s.rank; ++d) s.out[d] = out_shape[static_cast<size_t>(d)];
      strides(at_batch(step.inputs[0]), s.a_stride);
      strides(at_batch(step.inputs[1]), s.b_stride);
      cuda::launch_elementwise(ptr(step.inputs[0]), type(step.inputs[0]), ptr(step.inputs[1]), type(step.inputs[1]),
                               element_ptr(out), type(out), s, static_cast<int>(std::get<ElementWiseParams>(step.params).op),
                               on);
      return;
    }
    case LayerKind::kConcatenation: {
      const int rank = static_cast<int>(y.shape.size());
      int axis = std::get<ConcatenationParams>(step.params).axis;
      if (axis < 0) axis += rank;
      int64_t outer = b;
      for (int d = 1; d < axis; ++d) outer *= y.shape[static_cast<size_t>(d)];
      const int64_t out_inner = per_batch(y) * b / outer;
      int64_t offset = 0;
      for (int id : step.inputs) {
        const PlanTensor& in = plan.tensors[id];
        const int64_t inner = per_batch(in) * b / outer;
        // A view was written in place by its producer.
        if (!(in.place == TensorPlace::kView && in.view_of == out))
          cuda::launch_concat_copy(ptr(id), type(id), element_ptr(out), type(out), outer, inner, out_inner, offset, on);
        offset += inner;
      }
      return;
    }
    case LayerKind::kResize: {
      const auto& p = std::get<ResizeParams>(step.params);
      const Shape& in = plan.tensors[step.inputs[0]].shape;
      cuda::ResizeArgs a;
      a.n = b, a.h = static_cast<int>(in[1]), a.w = static_cast<int>(in[2]), a.c = static_cast<int>(in[3]);
      a.oh = static_cast<int>(y.shape[1]), a.ow = static_cast<int>(y.shape[2]);
      a.nearest = p.mode == ResizeMode::kNearest;
      a.coordinates = static_cast<int>(p.coordinates);
      void* dst = element_ptr(out);
      a.out_channel_stride = y.shape[3];
      if (y.place == TensorPlace::kView) {
        // The storage is the concatenation's; the kernel adds the channel offset itself.
        dst = storage[static_cast<size_t>(out)];
        a.out_channel_stride = plan.tensors[static_cast<size_t>(y.view_of)].shape[3];
        a.out_channel_offset = y.channel_offset;
      }
      cuda::launch_resize(ptr(step.inputs[0]), type(step.inputs[0]), dst, type(out), a, on);
      return;
    }
    default:
      throw_error("step '", step.name, "': no GPU kernel for ", to_string(step.layer_kind()));
  }
}

int ExecutionContext::Impl::input_index(const std::string& name) const {
  for (size_t i = 0; i < plan.inputs.size(); ++i)
    if (plan.tensors[plan.inputs[i]].name == name) return static_cast<int>(i);
  std::string names;
  for (int id : plan.inputs) names += (names.empty() ? "" : ", ") + plan.tensors[id].name;
  throw_error("the engine has no input '", name, "' (inputs: ", names, ")");
}

int ExecutionContext::Impl::output_index(const std::string& name) const {
  for (size_t i = 0; i < plan.outputs.size(); ++i)
    if (plan.tensors[plan.outputs[i]].name == name) return static_cast<int>(i);
  std::string names;
  for (int id : plan.outputs) names += (names.empty() ? "" : ", ") + plan.tensors[id].name;
  throw_error("the engine has no output '", name, "' (outputs: ", names, ")");
}

std::unique_ptr<ExecutionContext> Engine::create_context() {
  return std::make_unique<ExecutionContext>(std::make_unique<ExecutionContext::Impl>(*impl_));
}

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;

void ExecutionContext::set_batch(int batch) {
  EASTRT_CHECK(batch >= 1 && batch <= impl_->plan.max_batch, "batch ", batch, " is outside the engine's 1..",
               impl_->plan.max_batch);
  impl_->batch = batch;
}

int ExecutionContext::batch() const { return impl_->batch; }

void ExecutionContext::set_input(const std::string& name, const HostTensor& value) {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  const int index = c.input_index(name);
  const PlanTensor& t = c.plan.tensors[c.plan.inputs[index]];
  bool fits = value.shape.size() == t.shape.size() && value.size() == volume(value.shape) && !value.shape.empty();
  for (size_t d = 1; fits && d < t.shape.size(); ++d) fits = value.shape[d] == t.shape[d];
  EASTRT_CHECK(fits && value.shape[0] >= 1 && value.shape[0] <= t.shape[0], "input '", name, "' has shape ",
               to_string(value.shape), "; the engine takes ", to_string(t.shape), " with a batch from 1 to ", t.shape[0]);
  set_batch(static_cast<int>(value.shape[0]));
  const size_t bytes = value.data.size() * sizeof(float);
  EASTRT_CUDA(cudaEventSynchronize(c.input_copied[index]));
  std::memcpy(c.pinned_inputs[index].get(), value.data.data(), bytes);
  EASTRT_CUDA(cudaMemcpyAsync(c.inputs[index].get(), c.pinned_inputs[index].get(), bytes, cudaMemcpyHostToDevice, c.stream));
  EASTRT_CUDA(cudaEventRecord(c.input_copied[index], c.stream));
}

void ExecutionContext::set_input_image(const std::string& name, int index, const east::Image& image) {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  const int input = c.input_index(name);
  const PlanTensor& t = c.plan.tensors[c.plan.inputs[input]];
  EASTRT_CHECK(t.shape.size() == 4 && t.shape[3] == 3, "input '", name, "' is ", to_string(t.shape),
               ", not an N×H×W×3 image batch");
  EASTRT_CHECK(index >= 0 && index < t.shape[0], "image index ", index, " is outside the batch of ", t.shape[0]);
  EASTRT_CHECK(image.width > 0 && image.height > 0 &&
                   image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
               "set_input_image: the image is ", image.width, "x", image.height, " with ", image.rgb.size(), " bytes");
  const int height = static_cast<int>(t.shape[1]), width = static_cast<int>(t.shape[2]);
  const std::vector<int> taps = cuda::linear_resize_taps(image.height, image.width, height, width);
  const size_t rgb_bytes = aligned(image.rgb.size()), tap_bytes = taps.size() * sizeof(int);
  EASTRT_CUDA(cudaEventSynchronize(c.image_copied));
  if (c.image_pinned.size() < rgb_bytes + tap_bytes) c.image_pinned.allocate(rgb_bytes + tap_bytes);
  if (c.image_device.size() < rgb_bytes + tap_bytes) {
    EASTRT_CUDA(cudaStreamSynchronize(c.stream));  // the old buffer may still be read
    c.image_device.allocate(rgb_bytes + tap_bytes);
  }
  auto* pinned = static_cast<uint8_t*>(c.image_pinned.get());
  std::memcpy(pinned, image.rgb.data(), image.rgb.size());
  std::memcpy(pinned + rgb_bytes, taps.data(), tap_bytes);
  EASTRT_CUDA(cudaMemcpyAsync(c.image_device.get(), pinned, rgb_bytes + tap_bytes, cudaMemcpyHostToDevice, c.stream));
  EASTRT_CUDA(cudaEventRecord(c.image_copied, c.stream));
  auto* device = c.image_device.as<uint8_t>();
  float* dst = c.inputs[input].as<float>() + static_cast<int64_t>(index) * height * width * 3;
  cuda::launch_preprocess(device, image.height, image.width, reinterpret_cast<const int*>(device + rgb_bytes), dst,
                          height, width, c.stream);
}

void ExecutionContext::set_input_images(const std::string& name, const std::vector<const east::Image*>& images) {
  Impl& c = *impl_;
  // Here and in each call below that allocates, copies or launches: the caller's thread may last have run
  // another GPU's runner, and device memory and kernels go to the current device.
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  const int input = c.input_index(name);
  const PlanTensor& t = c.plan.tensors[c.plan.inputs[input]];
  EASTRT_CHECK(t.shape.size() == 4 && t.shape[3] == 3, "input '", name, "' is ", to_string(t.shape),
               ", not an N×H×W×3 image batch");
  EASTRT_CHECK(!images.empty() && static_cast<int64_t>(images.size()) <= t.shape[0], "a batch of ", images.size(),
               " images: the engine takes 1 to ", t.shape[0]);
  const int height = static_cast<int>(t.shape[1]), width = static_cast<int>(t.shape[2]);
  // Layout of the staging buffer: per image its pixels (unless they are on the device already, decoded
  // there), then its taps, each part aligned.
  std::vector<std::vector<int>> taps;
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const east::Image* image : images) {
    const east::DeviceImage* on_device = image ? image->device.get() : nullptr;
    EASTRT_CHECK(image && image->width > 0 && image->height > 0 &&
                     (on_device ? on_device->width == image->width && on_device->height == image->height &&
                                      on_device->device == c.engine.device
                                : image->rgb.size() == static_cast<size_t>(image->width) * image->height * 3),
                 "set_input_images: an image is ", image ? image->width : 0, "x", image ? image->height : 0,
                 on_device ? " on another device or of another size than its pixels" : "");
    taps.push_back(cuda::linear_resize_taps(image->height, image->width, height, width));
    offsets.push_back(total);
    if (!on_device) total += aligned(image->rgb.size());
    offsets.push_back(total);
    total += aligned(taps.back().size() * sizeof(int));
  }
  EASTRT_CUDA(cudaEventSynchronize(c.image_copied));  // the previous batch's pixels have left the staging buffer
  if (c.image_pinned.size() < total) c.image_pinned.allocate(total);
  if (c.image_device.size() < total) {
    EASTRT_CUDA(cudaStreamSynchronize(c.stream));  // the old buffer may still be read
    c.image_device.allocate(total);
  }
  auto* pinned = static_cast<uint8_t*>(c.image_pinned.get());
  for (size_t i = 0; i < images.size(); ++i) {
    if (!images[i]->device) std::memcpy(pinned + offsets[2 * i], images[i]->rgb.data(), images[i]->rgb.size());
    std::memcpy(pinned + offsets[2 * i + 1], taps[i].data(), taps[i].size() * sizeof(int));
  }
  EASTRT_CUDA(cudaMemcpyAsync(c.image_device.get(), pinned, total, cudaMemcpyHostToDevice, c.stream));
  EASTRT_CUDA(cudaEventRecord(c.image_copied, c.stream));
  auto* device = c.image_device.as<uint8_t>();
  for (size_t i = 0; i < images.size(); ++i) {
    float* dst = c.inputs[input].as<float>() + static_cast<int64_t>(i) * height * width * 3;
    const east::DeviceImage* on_device = images[i]->device.get();
    // A decoded image's decoder waited for its decode before handing it over, so no event to wait on here.
    const uint8_t* pixels = on_device ? on_device->pixels : device + offsets[2 * i];
    cuda::launch_preprocess(pixels, images[i]->height, images[i]->width,
                            reinterpret_cast<const int*>(device + offsets[2 * i + 1]), dst, height, width, c.stream);
    // Its buffer may be decoded into again once the resize has read it.
    if (on_device) EASTRT_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(on_device->consumed), c.stream));
  }
  set_batch(static_cast<int>(images.size()));
}

void ExecutionContext::enqueue() {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  Impl::BatchState& state = c.prepare(c.batch);
  if (!c.use_graph) {
    c.run_steps(state, c.batch);
    return;
  }
  if (!state.graph) {
    // One eager run first: lazily loaded kernels (ours and cuDNN's) must not load during the capture.
    c.run_steps(state, c.batch);
    EASTRT_CUDA(cudaStreamSynchronize(c.stream));
    cudaGraph_t graph = nullptr;
    EASTRT_CUDA(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeRelaxed));
    try {
      c.run_steps(state, c.batch);
    } catch (...) {
      cudaStreamEndCapture(c.stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    EASTRT_CUDA(cudaStreamEndCapture(c.stream, &graph));
    const cudaError_t status = cudaGraphInstantiate(&state.graph, graph, 0);
    cudaGraphDestroy(graph);
    EASTRT_CUDA(status);
  }
  EASTRT_CUDA(cudaGraphLaunch(state.graph, c.stream));
}

void ExecutionContext::fetch_outputs() {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  for (size_t i = 0; i < c.plan.outputs.size(); ++i) {
    const PlanTensor& t = c.plan.tensors[c.plan.outputs[i]];
    const size_t bytes = static_cast<size_t>(per_batch(t) * c.batch) * sizeof(float);
    EASTRT_CUDA(cudaMemcpyAsync(c.pinned_outputs[i].get(), c.outputs[i].get(), bytes, cudaMemcpyDeviceToHost, c.stream));
  }
}

std::vector<std::vector<east::Quad>> ExecutionContext::decode_candidates(const std::string& score,
                                                                        const std::string& geometry, float threshold,
                                                                        std::optional<float> nms_threshold) {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  const int si = c.output_index(score), gi = c.output_index(geometry);
  const PlanTensor& st = c.plan.tensors[c.plan.outputs[si]];
  const PlanTensor& gt = c.plan.tensors[c.plan.outputs[gi]];
  EASTRT_CHECK(st.shape.size() == 4 && st.shape[3] == 1 && gt.shape.size() == 4 && gt.shape[3] == 5 &&
                   st.shape[1] == gt.shape[1] && st.shape[2] == gt.shape[2],
               "decode_candidates: outputs '", score, "' ", to_string(st.shape), " and '", geometry, "' ",
               to_string(gt.shape), " are not EAST's [n, h, w, 1] score and [n, h, w, 5] geometry maps");
  const size_t bytes = static_cast<size_t>(per_batch(st) * c.batch) * sizeof(float);
  EASTRT_CUDA(cudaMemcpyAsync(c.pinned_outputs[si].get(), c.outputs[si].get(), bytes, cudaMemcpyDeviceToHost, c.stream));
  if (!c.decoder) c.decoder = std::make_unique<gpu::CandidateDecoder>();
  return c.decoder->decode(c.outputs[si].as<float>(), c.outputs[gi].as<float>(), c.batch, static_cast<int>(st.shape[1]),
                           static_cast<int>(st.shape[2]), threshold, nms_threshold, c.stream);
}

void ExecutionContext::synchronize() { EASTRT_CUDA(cudaStreamSynchronize(impl_->stream)); }

HostTensor ExecutionContext::output(const std::string& name) const {
  const Impl& c = *impl_;
  const int index = c.output_index(name);
  EASTRT_CUDA(cudaStreamSynchronize(c.stream));
  const PlanTensor& t = c.plan.tensors[c.plan.outputs[index]];
  Shape shape = t.shape;
  shape[0] = c.batch;
  HostTensor result(shape);
  std::memcpy(result.data.data(), c.pinned_outputs[index].get(), result.data.size() * sizeof(float));
  return result;
}

std::map<std::string, HostTensor> ExecutionContext::run(const std::map<std::string, HostTensor>& inputs) {
  for (const auto& [name, value] : inputs) set_input(name, value);
  enqueue();
  fetch_outputs();
  synchronize();
  std::map<std::string, HostTensor> result;
  for (int id : impl_->plan.outputs) result[impl_->plan.tensors[id].name] = output(impl_->plan.tensors[id].name);
  return result;
}

void ExecutionContext::set_cuda_graph(bool enabled) { impl_->use_graph = enabled; }

std::vector<double> ExecutionContext::time_enqueue(int warmup, int iterations) {
  EASTRT_CHECK(warmup >= 0 && iterations >= 1, "time_enqueue: ", warmup, " warm-up and ", iterations, " timed runs");
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  for (int i = 0; i < warmup; ++i) enqueue();
  std::vector<cudaEvent_t> events(static_cast<size_t>(2 * iterations), nullptr);
  std::vector<double> ms(static_cast<size_t>(iterations));
  try {
    for (cudaEvent_t& e : events) EASTRT_CUDA(cudaEventCreate(&e));
    for (int i = 0; i < iterations; ++i) {
      EASTRT_CUDA(cudaEventRecord(events[2 * i], c.stream));
      enqueue();
      EASTRT_CUDA(cudaEventRecord(events[2 * i + 1], c.stream));
    }
    EASTRT_CUDA(cudaStreamSynchronize(c.stream));
    for (int i = 0; i < iterations; ++i) {
      float elapsed = 0;
      EASTRT_CUDA(cudaEventElapsedTime(&elapsed, events[2 * i], events[2 * i + 1]));
      ms[i] = elapsed;
    }
  } catch (...) {
    for (cudaEvent_t e : events)
      if (e) cudaEventDestroy(e);
    throw;
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  return ms;
}

constexpr int kProfileQueueAheadMicroseconds = 20000;  // enough for the host to queue every step

std::vector<double> ExecutionContext::profile_steps(int warmup, int iterations) {
  EASTRT_CHECK(warmup >= 0 && iterations >= 1, "profile_steps: ", warmup, " warm-up and ", iterations, " timed runs");
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  Impl::BatchState& state = c.prepare(c.batch);
  for (int i = 0; i < warmup; ++i) c.run_steps(state, c.batch);
  const size_t steps = c.plan.steps.size();
  std::vector<cudaEvent_t> events(steps + 1, nullptr);
  std::vector<std::vector<double>> ms(steps);
  try {
    for (cudaEvent_t& e : events) EASTRT_CUDA(cudaEventCreate(&e));
    for (int i = 0; i < iterations; ++i) {
      // The steps queue up behind a busy kernel, so that each one's events measure its device time, not the
      // host's launch latency (which a CUDA graph does not pay, and which would swamp the small layers).
      cuda::launch_busy_wait(kProfileQueueAheadMicroseconds, c.stream);
      EASTRT_CUDA(cudaEventRecord(events[0], c.stream));
      for (size_t s = 0; s < steps; ++s) {
        c.run_step(state, s, c.batch, c.stream, c.workspace);
        EASTRT_CUDA(cudaEventRecord(events[s + 1], c.stream));
      }
      EASTRT_CUDA(cudaStreamSynchronize(c.stream));
      for (size_t s = 0; s < steps; ++s) {
        float elapsed = 0;
        EASTRT_CUDA(cudaEventElapsedTime(&elapsed, events[s], events[s + 1]));
        ms[s].push_back(elapsed);
      }
    }
  } catch (...) {
    for (cudaEvent_t e : events)
      if (e) cudaEventDestroy(e);
    throw;
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  std::vector<double> median(steps);
  for (size_t s = 0; s < steps; ++s) {
    std::sort(ms[s].begin(), ms[s].end());
    median[s] = ms[s][ms[s].size() / 2];
  }
  return median;
}

void ExecutionContext::poison(float value) {
  Impl& c = *impl_;
  EASTRT_CUDA(cudaSetDevice(c.engine.device));
  // All-ones bytes are NaN in float32, float16 and E4M3 alike, whatever type each arena tensor has (in INT8
  // they are the code −1: an unwritten INT8 tensor shows only through the values it gives).
  EASTRT_CUDA(cudaMemsetAsync(c.arena.get(), 0xff, c.arena.size(), c.stream));
  for (size_t i = 0; i < c.outputs.size(); ++i)
    cuda::launch_fill(c.outputs[i].get(), cuda::DType::kF32, static_cast<int64_t>(c.outputs[i].size() / sizeof(float)),
                      value, c.stream);
  EASTRT_CUDA(cudaStreamSynchronize(c.stream));
}

void ExecutionContext::poison() { poison(std::nanf("")); }

void* ExecutionContext::stream() const { return impl_->stream; }

void* ExecutionContext::device_binding(const std::string& name) const {
  const Impl& c = *impl_;
  for (size_t i = 0; i < c.plan.inputs.size(); ++i)
    if (c.plan.tensors[c.plan.inputs[i]].name == name) return c.inputs[i].get();
  return c.outputs[static_cast<size_t>(c.output_index(name))].get();
}

int64_t gpu_memory_used(int device) {
  size_t free_bytes = 0, total = 0;
  EASTRT_CUDA(cudaSetDevice(device));
  EASTRT_CUDA(cudaMemGetInfo(&free_bytes, &total));
  return static_cast<int64_t>(total - free_bytes);
}

}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
