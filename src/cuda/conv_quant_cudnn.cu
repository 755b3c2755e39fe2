// The quantised convolution through cuDNN's graph API (see conv_quant_cudnn.h).
#include "cuda/conv_quant_cudnn.h"

#include <algorithm>

#include "cuda/cuda_check.h"
#include "eastrt/error.h"

namespace eastrt::cuda {
namespace {

// The graph's tensors by unique id (the variant pack names the real ones by them).
constexpr int64_t kX = 1, kW = 2, kScale = 3, kBias = 4, kResidual = 5, kY = 6;
constexpr int64_t kResidualScale = 7, kOutScale = 8, kFloor = 9;  // scalars in the owned buffer
constexpr int64_t kFirstVirtual = 100;

cudnnDataType_t cudnn_type(QType type) {
  switch (type) {
    case QType::kInt8: return CUDNN_DATA_INT8;
    case QType::kE4m3: return CUDNN_DATA_FP8_E4M3;
    case QType::kF16: return CUDNN_DATA_HALF;
    case QType::kF32: return CUDNN_DATA_FLOAT;
  }
  return CUDNN_DATA_FLOAT;
}

// Why the graph cannot describe these arguments, or null.
const char* not_described(const QuantConvArgs& a) {
  if (!is_8bit(a.in_type)) return "the input is not 8-bit";
  if ((a.y_pixel_stride != 0 && a.y_pixel_stride != a.k) || a.y_channel_offset != 0)
    return "a channel slice as output (the graph writes dense outputs only)";
  if (a.act.type > 0) return "an activation other than ReLU";
  return nullptr;
}

}  // namespace

bool cudnn_quant_conv_applies(const QuantConvArgs& a, const char** why) {
  const char* no = a.in_type != QType::kInt8 ? "cuDNN's 8-bit convolution is taken for INT8 only" : not_described(a);
  if (why) *why = no;
  return no == nullptr;
}

CudnnQuantConvolution::CudnnQuantConvolution(cudnnHandle_t handle, const QuantConvArgs& args, bool bias,
                                             bool residual)
    : handle_(handle), shape_(args), bias_(bias), residual_(residual) {
  const QuantConvArgs& a = args;
  if (const char* no = not_described(a)) throw_error("cuDNN's quantised convolution: ", no);
  // The padding after: what the output size implies (never negative; the graph's rule rounds down).
  const int pad_bottom = std::max(0, (a.oh - 1) * a.stride_h + a.r - a.h - a.pad_top);
  const int pad_right = std::max(0, (a.ow - 1) * a.stride_w + a.s - a.w - a.pad_left);
  if ((a.h + a.pad_top + pad_bottom - a.r) / a.stride_h + 1 != a.oh ||
      (a.w + a.pad_left + pad_right - a.s) / a.stride_w + 1 != a.ow)
    throw_error("cuDNN's quantised convolution: output ", a.oh, "x", a.ow, " does not follow from the input ", a.h,
                "x", a.w, ", filter, strides and padding");

  auto keep = [&](BackendDescriptor d) {
    parts_.push_back(std::move(d));
    return parts_.back().get();
  };
  const cudnnDataType_t in = cudnn_type(a.in_type);
  const cudnnDataType_t accumulator = a.in_type == QType::kInt8 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
  cudnnBackendDescriptor_t x = keep(graph_tensor(kX, in, a.n, a.c, a.h, a.w, false));
  cudnnBackendDescriptor_t w = keep(graph_tensor(kW, in, a.k, a.c, a.r, a.s, false));
  cudnnBackendDescriptor_t y = keep(graph_tensor(kY, cudnn_type(a.out_type), a.n, a.k, a.oh, a.ow, false));
  auto per_channel = [&](int64_t uid) { return keep(graph_tensor(uid, CUDNN_DATA_FLOAT, 1, a.k, 1, 1, false)); };
  auto scalar = [&](int64_t uid) { return keep(graph_tensor(uid, CUDNN_DATA_FLOAT, 1, 1, 1, 1, false)); };
  int64_t next_virtual = kFirstVirtual;
  auto intermediate = [&](cudnnDataType_t type) {
    return keep(graph_tensor(next_virtual++, type, a.n, a.k, a.oh, a.ow, true));
  };

  // The epilogue's chain after the convolution: (mode, operand); the last writes y.
  struct Stage {
    cudnnPointwiseMode_t mode;
    cudnnBackendDescriptor_t operand;
  };
  std::vector<Stage> stages;
  std::vector<cudnnBackendDescriptor_t> ops;
  stages.push_back({CUDNN_POINTWISE_MUL, per_channel(kScale)});
  if (bias) stages.push_back({CUDNN_POINTWISE_ADD, per_channel(kBias)});
  if (residual) {
    cudnnBackendDescriptor_t r = keep(graph_tensor(kResidual, cudnn_type(a.residual_type), a.n, a.k, a.oh, a.ow, false));
    if (is_8bit(a.residual_type)) {  // decoded first: codes · residual_scale, a branch joining the chain
      cudnnBackendDescriptor_t decoded = intermediate(CUDNN_DATA_FLOAT);
      cudnnBackendDescriptor_t mode = keep(pointwise_mode(CUDNN_POINTWISE_MUL));
      ops.push_back(keep(pointwise_operation(mode, r, scalar(kResidualScale), decoded)));
      r = decoded;
    }
    stages.push_back({CUDNN_POINTWISE_ADD, r});
  }
  if (a.act.type == 0) stages.push_back({CUDNN_POINTWISE_RELU_FWD, nullptr});
  if (is_8bit(a.out_type)) {
    stages.push_back({CUDNN_POINTWISE_MUL, scalar(kOutScale)});
    // INT8 codes are −127..127: without a ReLU the lowest value is clamped before the conversion (the code
    // of the clamped value is the clamped code: rounding is monotonic and −127 an integer).
    if (a.out_type == QType::kInt8 && a.act.type != 0) stages.push_back({CUDNN_POINTWISE_MAX, scalar(kFloor)});
  }

  const int64_t pre[2] = {a.pad_top, a.pad_left}, post[2] = {pad_bottom, pad_right};
  const int64_t strides[2] = {a.stride_h, a.stride_w}, dilations[2] = {1, 1};
  cudnnBackendDescriptor_t conv_desc = keep(convolution_descriptor(accumulator, pre, post, strides, dilations));
  cudnnBackendDescriptor_t current = intermediate(accumulator);
  ops.insert(ops.begin(), keep(convolution_forward(x, w, current, conv_desc)));
  for (size_t i = 0; i < stages.size(); ++i) {
    cudnnBackendDescriptor_t mode_desc = keep(pointwise_mode(stages[i].mode));
    cudnnBackendDescriptor_t out = i + 1 == stages.size() ? y : intermediate(CUDNN_DATA_FLOAT);
    ops.push_back(keep(pointwise_operation(mode_desc, current, stages[i].operand, out)));
    current = out;
  }

  keep(operation_graph(handle_, ops));

  // Last, so that nothing thrown above leaves it allocated (the destructor does not run then).
  const float scalars[3] = {a.residual_scale, 1.0f / a.out_scale, -127.0f};
  EASTRT_CUDA(cudaMalloc(&scalars_, sizeof scalars));
  EASTRT_CUDA(cudaMemcpy(scalars_, scalars, sizeof scalars, cudaMemcpyHostToDevice));
}

CudnnQuantConvolution::~CudnnQuantConvolution() {
  parts_.clear();
  plans_.clear();
  cudaFree(scalars_);  // never throws; a failure would only leak
}

std::vector<GraphEngineConfig> CudnnQuantConvolution::candidate_configs(std::string* why) {
  return graph_engine_configs(parts_.back().get(), why);
}

int CudnnQuantConvolution::add_plan(const GraphEngineConfig& config, bool allow_run_time_compilation, std::string* why) {
  auto unsuitable = [&](cudnnBackendDescriptor_t engine) -> std::string {
    EngineNotes notes;
    std::string failure;
    if (!read_engine_notes(engine, &notes, &failure)) return failure;
    for (cudnnBackendNumericalNote_t note : notes.numerical) {
      if (note == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return "nondeterministic";
      if (note == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) return "accumulates in reduced precision";
    }
    if (!allow_run_time_compilation && notes.compiles_at_run_time()) return "compiles its kernels at run time";
    return {};
  };
  GraphPlan plan;
  if (!build_graph_plan(handle_, parts_.back().get(), config, unsuitable, &plan, why)) return -1;
  plans_.push_back(std::move(plan));
  return static_cast<int>(plans_.size()) - 1;
}

size_t CudnnQuantConvolution::workspace_size(int plan) const { return plans_.at(static_cast<size_t>(plan)).workspace; }

cudnnStatus_t CudnnQuantConvolution::run(int plan, const QuantConvArgs& a, void* workspace, size_t workspace_bytes) {
  const GraphPlan& p = plans_.at(static_cast<size_t>(plan));
  if (p.workspace > 0 && (!workspace || workspace_bytes < p.workspace)) return CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT;
  if (!a.x || !a.filter || !a.scale || !a.y || (bias_ && !a.bias) || (residual_ && !a.residual))
    return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  int64_t uids[9];
  void* pointers[9];
  int64_t bound = 0;
  auto bind = [&](int64_t uid, const void* pointer) {
    uids[bound] = uid, pointers[bound] = const_cast<void*>(pointer), ++bound;
  };
  bind(kX, a.x), bind(kW, a.filter), bind(kScale, a.scale), bind(kY, a.y);
  if (bias_) bind(kBias, a.bias);
  if (residual_) {
    bind(kResidual, a.residual);
    if (is_8bit(shape_.residual_type)) bind(kResidualScale, scalars_);
  }
  if (is_8bit(shape_.out_type)) {
    bind(kOutScale, scalars_ + 1);
    if (shape_.out_type == QType::kInt8 && shape_.act.type != 0) bind(kFloor, scalars_ + 2);
  }
  return execute_graph_plan(handle_, p, uids, pointers, bound, workspace);
}

}  // namespace eastrt::cuda
