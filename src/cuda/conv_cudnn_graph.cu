// The cuDNN graph tactic's side of cuDNN (see conv_cudnn_graph.h): one convolution step's operation graph,
// the engine configurations cuDNN offers for it, and execution plans of chosen ones.
#include "cuda/conv_cudnn_graph.h"

#include <algorithm>
#include <functional>

namespace eastrt::cuda {
namespace {

// The graph's tensors by unique id, which the variant pack uses to name the real ones.
constexpr int64_t kX = 1, kW = 2, kBias = 3, kResidual = 4, kY = 5;
constexpr int64_t kFirstVirtual = 100;  // then the float32 intermediates, one per operation before the last
// Every tensor we bind starts at a cudaMalloc'd buffer, a 256-byte arena offset or a 256-byte slot of the
// weights (never a channel view: see cudnn_graph_applies), so 16-byte vector access is always allowed.
constexpr int64_t kByteAlignment = 16;

// Whether cuDNN accepted one call of a plan's construction; if not, `*why` names the step and the status.
bool accepted(cudnnStatus_t status, const char* what, std::string* why) {
  if (status == CUDNN_STATUS_SUCCESS) return true;
  *why = std::string(what) + ": " + cudnnGetErrorString(status);
  return false;
}

cudnnStatus_t set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                  int64_t count, const void* values) {
  return cudnnBackendSetAttribute(d, name, type, count, values);
}

}  // namespace

BackendDescriptor graph_tensor(int64_t uid, cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w,
                         bool is_virtual) {
  BackendDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {n, c, h, w};
  const int64_t strides[4] = {h * w * c, 1, w * c, c};
  const bool virtual_flag = is_virtual;
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kByteAlignment));
  EASTRT_CUDNN(set(t.get(), CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virtual_flag));
  EASTRT_CUDNN(cudnnBackendFinalize(t.get()));
  return t;
}

BackendDescriptor pointwise_mode(cudnnPointwiseMode_t mode) {
  BackendDescriptor d(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
  EASTRT_CUDNN(set(d.get(), CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
  EASTRT_CUDNN(set(d.get(), CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision));
  EASTRT_CUDNN(cudnnBackendFinalize(d.get()));
  return d;
}

BackendDescriptor pointwise_operation(cudnnBackendDescriptor_t mode, cudnnBackendDescriptor_t x,
                                      cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y) {
  BackendDescriptor op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  EASTRT_CUDNN(set(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mode));
  EASTRT_CUDNN(set(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
  if (b) EASTRT_CUDNN(set(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b));
  EASTRT_CUDNN(set(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
  EASTRT_CUDNN(cudnnBackendFinalize(op.get()));
  return op;
}

BackendDescriptor convolution_descriptor(cudnnDataType_t accumulation, const int64_t (&pre)[2], const int64_t (&post)[2],
                                         const int64_t (&strides)[2], const int64_t (&dilations)[2]) {
  BackendDescriptor desc(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 2;
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &accumulation));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pre));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, post));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides));
  EASTRT_CUDNN(set(desc.get(), CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations));
  EASTRT_CUDNN(cudnnBackendFinalize(desc.get()));
  return desc;
}

BackendDescriptor convolution_forward(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t w, cudnnBackendDescriptor_t y,
                                      cudnnBackendDescriptor_t convolution) {
  BackendDescriptor fprop(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  const float alpha = 1.0f, beta = 0.0f;
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x));
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w));
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y));
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   &convolution));
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
  EASTRT_CUDNN(set(fprop.get(), CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  EASTRT_CUDNN(cudnnBackendFinalize(fprop.get()));
  return fprop;
}

BackendDescriptor operation_graph(cudnnHandle_t handle, const std::vector<cudnnBackendDescriptor_t>& ops) {
  BackendDescriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  EASTRT_CUDNN(set(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   static_cast<int64_t>(ops.size()), ops.data()));
  EASTRT_CUDNN(set(graph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  EASTRT_CUDNN(cudnnBackendFinalize(graph.get()));
  return graph;
}

namespace {

// `count` fresh descriptors of `type` for cuDNN to fill (a query of a list attribute), with their handles.
struct Descriptors {
  Descriptors(cudnnBackendDescriptorType_t type, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      owned.emplace_back(type);
      raw.push_back(owned.back().get());
    }
  }
  std::vector<BackendDescriptor> owned;
  std::vector<cudnnBackendDescriptor_t> raw;
};

// The engine configuration a heuristic result holds, read back as (global index, knob choices).
bool read_config(cudnnBackendDescriptor_t config, GraphEngineConfig* out, std::string* why) {
  BackendDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t e = engine.get();
  int64_t count = 0;
  if (!accepted(cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count, &e),
                "a heuristic result's engine", why) ||
      !accepted(cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count, &out->engine),
                "a heuristic result's engine index", why))
    return false;
  Descriptors knobs(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, CUDNN_KNOB_TYPE_COUNTS);
  std::vector<cudnnBackendDescriptor_t>& raw = knobs.raw;
  int64_t n = 0;
  if (!accepted(cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         static_cast<int64_t>(raw.size()), &n, raw.data()),
                "a heuristic result's knobs", why))
    return false;
  out->knobs.clear();
  for (int64_t i = 0; i < std::min<int64_t>(n, static_cast<int64_t>(raw.size())); ++i) {
    cudnnBackendKnobType_t type{};
    int64_t value = 0;
    if (!accepted(cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &count, &type),
                  "a knob's type", why) ||
        !accepted(cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &count, &value),
                  "a knob's value", why))
      return false;
    out->knobs.emplace_back(static_cast<int32_t>(type), value);
  }
  std::sort(out->knobs.begin(), out->knobs.end());
  return true;
}

// Why eastrt does not run `engine` (finalised for this graph) in the convolution's precision, or empty.
// As the legacy tactics are kept to: reproducible runs (a context, a replayed CUDA graph and a reloaded
// plan give the same bits), float32 accumulation, and for strict float32 plain FMA arithmetic (no TF32,
// which cuDNN's notes call tensor cores with down-converted inputs, and no Winograd transforms, whose error
// grows beyond ordinary summation). TF32 is the one narrowing allowed, and only in a TF32 engine. Kernels
// compiled at run time are left out too: a plan rebuilds its configuration in every context and for every
// batch size it runs, and NVRTC would compile there, a cost the timing never sees.
std::string unsuitable(cudnnBackendDescriptor_t engine, const GraphConvolution& conv) {
  EngineNotes notes;
  std::string why;
  if (!read_engine_notes(engine, &notes, &why)) return why;
  const bool tf32 = conv.type == DType::kF32 && !conv.strict_fp32;
  for (cudnnBackendNumericalNote_t note : notes.numerical) {
    switch (note) {
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC: return "nondeterministic";
      case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION: return "accumulates in reduced precision";
      case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
        if (!tf32) return "converts its inputs to a narrower type";
        break;
      case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
        if (conv.strict_fp32) return "uses tensor cores (TF32) in a strict float32 engine";
        break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
        if (conv.strict_fp32) return "Winograd in a strict float32 engine";
        break;
      default: break;
    }
  }
  if (notes.compiles_at_run_time()) return "compiles its kernels at run time";
  return {};
}

}  // namespace

bool read_engine_notes(cudnnBackendDescriptor_t engine, EngineNotes* out, std::string* why) {
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  cudnnBackendBehaviorNote_t behaviours[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  int64_t note_count = 0, behaviour_count = 0;
  if (!accepted(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                         CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &note_count, notes),
                "its numerical notes", why) ||
      !accepted(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                         CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &behaviour_count, behaviours),
                "its behaviour notes", why))
    return false;
  out->numerical.assign(notes, notes + std::min<int64_t>(note_count, CUDNN_NUMERICAL_NOTE_TYPE_COUNT));
  out->behaviour.assign(behaviours, behaviours + std::min<int64_t>(behaviour_count, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT));
  return true;
}

bool EngineNotes::compiles_at_run_time() const {
  return std::find(behaviour.begin(), behaviour.end(), CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) != behaviour.end();
}

bool operator==(const GraphEngineConfig& a, const GraphEngineConfig& b) {
  return a.engine == b.engine && a.knobs == b.knobs;
}

BackendDescriptor::BackendDescriptor(cudnnBackendDescriptorType_t type) {
  EASTRT_CUDNN(cudnnBackendCreateDescriptor(type, &d_));
}

BackendDescriptor::~BackendDescriptor() {
  if (d_) cudnnBackendDestroyDescriptor(d_);  // never throws; a failure would only leak
}

BackendDescriptor& BackendDescriptor::operator=(BackendDescriptor&& other) noexcept {
  if (this != &other) {
    if (d_) cudnnBackendDestroyDescriptor(d_);
    d_ = other.d_;
    other.d_ = nullptr;
  }
  return *this;
}

CudnnGraphConvolution::CudnnGraphConvolution(cudnnHandle_t handle, const GraphConvolution& conv)
    : handle_(handle), conv_(conv) {
  const ConvGeometry& g = conv.geometry;
  const cudnnDataType_t type = cudnn_data_type(conv.type);
  auto keep = [&](BackendDescriptor d) {
    parts_.push_back(std::move(d));
    return parts_.back().get();
  };
  // Groups are the input's channels over the filter's, as the graph API infers them.
  cudnnBackendDescriptor_t x = keep(graph_tensor(kX, type, g.n, g.c, g.h, g.w, false));
  cudnnBackendDescriptor_t w = keep(graph_tensor(kW, type, g.k, g.c / g.groups, g.r, g.s, false));
  cudnnBackendDescriptor_t y = keep(graph_tensor(kY, type, g.n, g.k, g.oh, g.ow, false));

  // The fused graph's pointwise operations after the convolution, in our epilogue's order.
  struct Stage {
    cudnnPointwiseMode_t mode;
    cudnnBackendDescriptor_t operand;
  };
  std::vector<Stage> stages;
  if (conv.fused && conv.bias)
    stages.push_back({CUDNN_POINTWISE_ADD, keep(graph_tensor(kBias, type, 1, g.k, 1, 1, false))});
  if (conv.fused && conv.residual)
    stages.push_back({CUDNN_POINTWISE_ADD, keep(graph_tensor(kResidual, type, g.n, g.k, g.oh, g.ow, false))});
  if (conv.fused && conv.relu) stages.push_back({CUDNN_POINTWISE_RELU_FWD, nullptr});
  // Each operation but the last writes a float32 intermediate.
  int64_t next_virtual = kFirstVirtual;
  auto output_of = [&](size_t operation, size_t operations) {
    return operation + 1 == operations
               ? y
               : keep(graph_tensor(next_virtual++, CUDNN_DATA_FLOAT, g.n, g.k, g.oh, g.ow, true));
  };
  const size_t operations = 1 + stages.size();

  const int64_t pre[2] = {g.pad_h, g.pad_w}, post[2] = {conv.pad_bottom, conv.pad_right};
  const int64_t strides[2] = {g.stride_h, g.stride_w}, dilations[2] = {g.dilation_h, g.dilation_w};
  cudnnBackendDescriptor_t conv_desc = keep(convolution_descriptor(CUDNN_DATA_FLOAT, pre, post, strides, dilations));
  std::vector<cudnnBackendDescriptor_t> ops;
  cudnnBackendDescriptor_t current = output_of(0, operations);
  ops.push_back(keep(convolution_forward(x, w, current, conv_desc)));
  for (size_t i = 0; i < stages.size(); ++i) {
    cudnnBackendDescriptor_t mode_desc = keep(pointwise_mode(stages[i].mode));
    cudnnBackendDescriptor_t out = output_of(i + 1, operations);
    ops.push_back(keep(pointwise_operation(mode_desc, current, stages[i].operand, out)));
    current = out;
  }

  keep(operation_graph(handle_, ops));
}

CudnnGraphConvolution::~CudnnGraphConvolution() = default;

std::vector<GraphEngineConfig> CudnnGraphConvolution::candidate_configs(std::string* why) {
  return graph_engine_configs(parts_.back().get(), why);
}

std::vector<GraphEngineConfig> graph_engine_configs(cudnnBackendDescriptor_t graph, std::string* why) {
  std::vector<GraphEngineConfig> configs;
  auto note = [&](const std::string& failure) {
    if (why) *why += (why->empty() ? "" : "; ") + failure;
  };
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    const char* name = mode == CUDNN_HEUR_MODE_A ? "heuristics mode A" : "fallback heuristics";
    std::string failure;
    BackendDescriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    int64_t count = 0;
    if (!accepted(set(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph),
                  name, &failure) ||
        !accepted(set(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode), name, &failure) ||
        !accepted(cudnnBackendFinalize(heuristics.get()), name, &failure) ||
        !accepted(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                           0, &count, nullptr),
                  name, &failure)) {
      note(failure);
      continue;
    }
    Descriptors results(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, count);
    std::vector<cudnnBackendDescriptor_t>& raw = results.raw;
    int64_t returned = 0;
    if (count > 0 &&
        !accepted(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                           count, &returned, raw.data()),
                  name, &failure)) {
      note(failure);
      continue;
    }
    for (int64_t i = 0; i < std::min(returned, count); ++i) {
      GraphEngineConfig config;
      if (!read_config(raw[i], &config, &failure)) {
        note(failure);
        continue;
      }
      if (std::find(configs.begin(), configs.end(), config) == configs.end()) configs.push_back(config);
    }
  }
  // The heuristics may leave engines out that would run (or fail to rank the graph at all).
  int64_t engines = 0, count = 0;
  std::string failure;
  if (!accepted(cudnnBackendGetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1,
                                         &count, &engines),
                "the graph's engine count", &failure)) {
    note(failure);
    return configs;
  }
  for (int64_t e = 0; e < engines; ++e)
    if (std::none_of(configs.begin(), configs.end(), [&](const GraphEngineConfig& c) { return c.engine == e; }))
      configs.push_back({e, {}});
  return configs;
}

int CudnnGraphConvolution::add_plan(const GraphEngineConfig& config, std::string* why) {
  GraphPlan plan;
  if (!build_graph_plan(handle_, parts_.back().get(), config,
                        [&](cudnnBackendDescriptor_t engine) { return unsuitable(engine, conv_); }, &plan, why))
    return -1;
  plans_.push_back(std::move(plan));
  return static_cast<int>(plans_.size()) - 1;
}

bool build_graph_plan(cudnnHandle_t handle, cudnnBackendDescriptor_t graph, const GraphEngineConfig& config,
                      const std::function<std::string(cudnnBackendDescriptor_t)>& unsuitable, GraphPlan* out,
                      std::string* why) {
  GraphPlan plan;
  auto make = [&](cudnnBackendDescriptorType_t type) {
    plan.parts.emplace_back(type);
    return plan.parts.back().get();
  };
  cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  if (!accepted(set(engine, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph), "engine", why) ||
      !accepted(set(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &config.engine), "engine", why) ||
      !accepted(cudnnBackendFinalize(engine), "engine", why))
    return false;
  if (std::string no = unsuitable(engine); !no.empty()) {
    *why = std::move(no);
    return false;
  }
  std::vector<cudnnBackendDescriptor_t> knobs;
  for (const auto& [knob_type, value] : config.knobs) {
    cudnnBackendDescriptor_t knob = make(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR);
    const auto type = static_cast<cudnnBackendKnobType_t>(knob_type);
    if (!accepted(set(knob, CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &type), "knob", why) ||
        !accepted(set(knob, CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &value), "knob", why) ||
        !accepted(cudnnBackendFinalize(knob), "knob", why))
      return false;
    knobs.push_back(knob);
  }
  cudnnBackendDescriptor_t engine_config = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
  if (!accepted(set(engine_config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &engine),
                "engine configuration", why) ||
      (!knobs.empty() &&
       !accepted(set(engine_config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                     static_cast<int64_t>(knobs.size()), knobs.data()),
                 "engine configuration", why)) ||
      !accepted(cudnnBackendFinalize(engine_config), "engine configuration", why))
    return false;
  cudnnBackendDescriptor_t execution_plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  int64_t workspace = 0, count = 0;
  if (!accepted(set(execution_plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle), "execution plan",
                why) ||
      !accepted(set(execution_plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &engine_config),
                "execution plan", why) ||
      !accepted(cudnnBackendFinalize(execution_plan), "execution plan", why) ||
      !accepted(cudnnBackendGetAttribute(execution_plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                         &count, &workspace),
                "execution plan workspace", why))
    return false;
  if (workspace < 0) {
    *why = "execution plan workspace: cuDNN says " + std::to_string(workspace) + " bytes";
    return false;
  }
  plan.workspace = static_cast<size_t>(workspace);
  *out = std::move(plan);
  return true;
}

size_t CudnnGraphConvolution::workspace_size(int plan) const { return plans_.at(static_cast<size_t>(plan)).workspace; }

cudnnStatus_t CudnnGraphConvolution::run(int plan, const ConvOperands& o, Activation act, cudaStream_t stream) {
  const GraphPlan& p = plans_.at(static_cast<size_t>(plan));
  // cuDNN cannot check what the variant pack points to: a missing operand or a short workspace is refused here
  // rather than read or written past.
  if (p.workspace > 0 && (!o.workspace || o.workspace_bytes < p.workspace)) return CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT;
  const bool bias = conv_.fused && conv_.bias, residual = conv_.fused && conv_.residual;
  if (!o.x || !o.w || !o.y || (bias && !o.bias) || (residual && !o.residual)) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  int64_t uids[5];
  void* pointers[5];
  int64_t bound = 0;
  auto bind = [&](int64_t uid, const void* pointer) {
    uids[bound] = uid, pointers[bound] = const_cast<void*>(pointer), ++bound;
  };
  bind(kX, o.x), bind(kW, o.w), bind(kY, o.y);
  if (bias) bind(kBias, o.bias);
  if (residual) bind(kResidual, o.residual);
  const cudnnStatus_t status = execute_graph_plan(handle_, p, uids, pointers, bound, o.workspace);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  const ConvGeometry& g = conv_.geometry;
  const int64_t count = int64_t(g.n) * g.oh * g.ow * g.k;
  if (conv_.fused) {
    if (act.type >= 0 && !conv_.relu) launch_activation(o.y, conv_.type, o.y, conv_.type, count, act, stream);
  } else if (o.bias || o.residual || act.type >= 0) {
    launch_conv_epilogue(o.y, conv_.type, count, g.k, o.bias, o.residual, act, stream);
  }
  return status;
}

cudnnStatus_t execute_graph_plan(cudnnHandle_t handle, const GraphPlan& plan, const int64_t* uids,
                                 void* const* pointers, int64_t count, void* workspace) {
  BackendDescriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  cudnnStatus_t status = set(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, count, uids);
  if (status == CUDNN_STATUS_SUCCESS)
    status = set(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, count, pointers);
  if (status == CUDNN_STATUS_SUCCESS)
    status = set(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendFinalize(pack.get());
  if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendExecute(handle, plan.parts.back().get(), pack.get());
  return status;
}

}  // namespace eastrt::cuda
