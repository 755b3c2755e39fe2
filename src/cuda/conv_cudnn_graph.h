// Convolutions through cuDNN 9's graph (backend) API on NHWC tensors (filters KRSC): one layer's operation
// graph at one batch size, the engine configurations cuDNN offers for it, and execution plans
// of chosen configurations, each named by (engine global index, knob choices) so that a plan file rebuilds
// exactly the configuration that was timed. Beside the legacy API (conv_cudnn.h) it adds padding that may
// differ before and after, and engines and knobs the legacy algorithms do not reach. C++17.
#pragma once
#include <cudnn.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cuda/conv_cudnn.h"

namespace eastrt::cuda {

// One convolution as its graph describes it. geometry.pad_h and pad_w are the padding before (top, left);
// the padding after (bottom, right) may differ: the graph API takes both.
struct GraphConvolution {
  ConvGeometry geometry;
  int pad_bottom = 0, pad_right = 0;
  DType type = DType::kF32;  // of x, w, y, bias and residual; accumulation and intermediates are float32
  bool strict_fp32 = false;  // a strict float32 engine: FMA arithmetic only (no TF32 tensor cores, no Winograd)
  // Fused: y = relu(conv(x) + bias + residual) in one graph, each part there as the layer has it (pointwise
  // operations on virtual float32 tensors). Otherwise the graph is the convolution alone and our epilogue
  // kernel adds the rest, as the legacy split tactic does.
  bool fused = false;
  bool bias = false, residual = false, relu = false;
};

// An engine configuration of one cuDNN version: the engine's global index and its knob choices
// ((cudnnBackendKnobType_t, value), sorted by knob type).
struct GraphEngineConfig {
  int64_t engine = -1;
  std::vector<std::pair<int32_t, int64_t>> knobs;
};
bool operator==(const GraphEngineConfig& a, const GraphEngineConfig& b);

// Owns one backend descriptor (cudnnBackendCreateDescriptor / cudnnBackendDestroyDescriptor).
class BackendDescriptor {
 public:
  explicit BackendDescriptor(cudnnBackendDescriptorType_t type);
  ~BackendDescriptor();
  BackendDescriptor(BackendDescriptor&& other) noexcept : d_(other.d_) { other.d_ = nullptr; }
  BackendDescriptor& operator=(BackendDescriptor&& other) noexcept;
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// ---- The graph API's pieces, shared with the quantised convolution's graphs (conv_quant_cudnn.cu) ----

// A tensor with NCHW dimensions and NHWC strides (the filter's KCRS and KRSC alike), 16-byte aligned, the
// layout of every tensor here; a virtual one exists only inside cuDNN's kernels.
BackendDescriptor graph_tensor(int64_t uid, cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w,
                               bool is_virtual);
// One pointwise operation y = mode(x[, b]) computed in float32: its mode, then the operation.
BackendDescriptor pointwise_mode(cudnnPointwiseMode_t mode);
BackendDescriptor pointwise_operation(cudnnBackendDescriptor_t mode, cudnnBackendDescriptor_t x,
                                      cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y);

// A 2-D cross-correlation summing in `accumulation`, with padding before (top, left) and after, strides and
// dilations; its forward operation x, w → y; the finalised operation graph of `ops` on `handle`.
BackendDescriptor convolution_descriptor(cudnnDataType_t accumulation, const int64_t (&pre)[2], const int64_t (&post)[2],
                                         const int64_t (&strides)[2], const int64_t (&dilations)[2]);
BackendDescriptor convolution_forward(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t w, cudnnBackendDescriptor_t y,
                                      cudnnBackendDescriptor_t convolution);
BackendDescriptor operation_graph(cudnnHandle_t handle, const std::vector<cudnnBackendDescriptor_t>& ops);

// An engine's numerical and behaviour notes.
struct EngineNotes {
  std::vector<cudnnBackendNumericalNote_t> numerical;
  std::vector<cudnnBackendBehaviorNote_t> behaviour;
  bool compiles_at_run_time() const;
};
bool read_engine_notes(cudnnBackendDescriptor_t engine, EngineNotes* out, std::string* why);

// The configurations to try for a finalised operation graph, each once: mode A's ranking, then the
// heuristics' fallback list, then every other engine of the graph with its default knobs. A question cuDNN
// cannot answer adds nothing and appends cuDNN's reason to `*why`.
std::vector<GraphEngineConfig> graph_engine_configs(cudnnBackendDescriptor_t graph, std::string* why);

// An execution plan: engine, knob choices, engine configuration, execution plan (last), and its workspace.
struct GraphPlan {
  std::vector<BackendDescriptor> parts;
  size_t workspace = 0;
};
// Finalises a plan of `config` for `graph`, unless `unsuitable(engine)` names a reason eastrt does not run
// the engine; false with the reason (or cuDNN's refusal) in `*why`.
bool build_graph_plan(cudnnHandle_t handle, cudnnBackendDescriptor_t graph, const GraphEngineConfig& config,
                      const std::function<std::string(cudnnBackendDescriptor_t)>& unsuitable, GraphPlan* out,
                      std::string* why);
// Runs `plan` with the tensors `uids[i]` at `pointers[i]`.
cudnnStatus_t execute_graph_plan(cudnnHandle_t handle, const GraphPlan& plan, const int64_t* uids,
                                 void* const* pointers, int64_t count, void* workspace);

class CudnnGraphConvolution {
 public:
  // Describes and finalises the operation graph for execution on `handle` (whose stream the plans run on).
  // Throws an Error naming cuDNN's status when cuDNN refuses the graph itself (a shape, type or grouping
  // the backend does not take): then no configuration of it exists.
  CudnnGraphConvolution(cudnnHandle_t handle, const GraphConvolution& conv);
  ~CudnnGraphConvolution();
  CudnnGraphConvolution(const CudnnGraphConvolution&) = delete;
  CudnnGraphConvolution& operator=(const CudnnGraphConvolution&) = delete;

  const GraphConvolution& convolution() const { return conv_; }

  // The configurations to try for the graph, each once: mode A's ranking, then the heuristics' fallback
  // list, then every other engine of the graph (CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT) with its
  // default knobs. Nothing is filtered here (add_plan decides); a question cuDNN cannot answer adds nothing
  // and appends cuDNN's reason to `*why` (for the builder's report).
  std::vector<GraphEngineConfig> candidate_configs(std::string* why);

  // Finalises an execution plan of `config` for this graph. Returns its number for workspace_size() and
  // run(), or -1 with the reason in `*why` when cuDNN refuses the configuration or it is not one eastrt
  // runs (see conv_cudnn_graph.cu: nondeterministic, reduced-precision accumulation, inputs converted to a
  // narrower type than the precision allows, kernels compiled at run time; strict float32 also no tensor
  // cores or Winograd).
  int add_plan(const GraphEngineConfig& config, std::string* why);
  size_t workspace_size(int plan) const;

  // Runs plan `plan` on the handle's stream (`stream`), then what the graph leaves to our kernels: fused,
  // an activation other than ReLU; otherwise bias, residual and activation by our epilogue. `operands`
  // has the bias only when the layer has one. Returns cuDNN's status; a failed launch of ours throws.
  cudnnStatus_t run(int plan, const ConvOperands& operands, Activation act, cudaStream_t stream);

 private:
  cudnnHandle_t handle_;
  GraphConvolution conv_;
  std::vector<BackendDescriptor> parts_;  // tensors, operations and (last) the finalised operation graph
  std::vector<GraphPlan> plans_;
};

}  // namespace eastrt::cuda
