// The GPU engine's inside, shared by the builder (builder.cpp) and the runtime (engine.cpp): device buffers,
// the engine's weights on the device, and how one convolution step is set up and run.
#pragma once
#include <cudnn.h>

#include <memory>
#include <ostream>
#include <vector>

#include "cuda/conv_cublaslt.h"
#include "cuda/conv_cudnn.h"
#include "cuda/conv_cudnn_graph.h"
#include "cuda/conv_quant_cublaslt.h"
#include "cuda/conv_quant_cudnn.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/plan.h"
#include "cuda/plan_quant.h"
#include "cuda/space_to_depth.h"
#include "eastrt/error.h"
#include "eastrt/gpu_engine.h"

namespace eastrt::gpu {

// Owning CUDA memory: device memory (cudaMalloc; never managed memory) or page-locked host memory
// (cudaMallocHost, for asynchronous copies).
enum class Memory { kDevice, kPinnedHost };

template <Memory kind>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  explicit CudaBuffer(size_t bytes) { allocate(bytes); }
  ~CudaBuffer() { reset(); }
  CudaBuffer(CudaBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) { other.ptr_ = nullptr, other.bytes_ = 0; }
  CudaBuffer& operator=(CudaBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      ptr_ = other.ptr_, bytes_ = other.bytes_;
      other.ptr_ = nullptr, other.bytes_ = 0;
    }
    return *this;
  }
  void allocate(size_t bytes) {
    reset();
    if (bytes == 0) return;
    if constexpr (kind == Memory::kDevice) {
      EASTRT_CUDA(cudaMalloc(&ptr_, bytes));
    } else {
      EASTRT_CUDA(cudaMallocHost(&ptr_, bytes));
    }
    bytes_ = bytes;
  }
  void reset() {
    // A failure here cannot be acted on; the driver reports it at the next call.
    if (ptr_) {
      if constexpr (kind == Memory::kDevice) {
        cudaFree(ptr_);
      } else {
        cudaFreeHost(ptr_);
      }
    }
    ptr_ = nullptr, bytes_ = 0;
  }
  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};
using DeviceBuffer = CudaBuffer<Memory::kDevice>;
using PinnedBuffer = CudaBuffer<Memory::kPinnedHost>;

// The element type of an FP16/FP32 tensor for the kernels that read those; 8-bit tensors go only to the 8-bit
// convolution and the casts (plan_quant.h's qtype).
inline cuda::DType dtype(StorageType type) {
  EASTRT_CHECK(!is_8bit(type), "an ", to_string(type), " tensor reached a kernel that reads FP16/FP32 (a lowering bug)");
  return type == StorageType::kFloat16 ? cuda::DType::kF16 : cuda::DType::kF32;
}

// One step's parameters on the device (null where the step has none).
struct StepWeights {
  void* filter = nullptr;  // convolution: KRSC in the step's storage type; deconvolution: RSCK', float32
  void* s2d_filter = nullptr;  // convolution the space-to-depth tactic may run: the stride-1 filter, KRSC
  void* bias = nullptr;    // convolution: K values in the step's storage type (zeros when the layer has none);
                           // deconvolution: K float32 values, or null
  bool has_bias = false;
  float* scale = nullptr;  // Scale layers, float32; INT8/FP8 convolutions: s_x · s_w[k] (their filter is 8-bit
                           // codes, KRSC, and their bias float32)
  float* shift = nullptr;  // Scale layers; space-to-depth convolutions: their input shift (PlanStep::input_shift)
  float* power = nullptr;
};

// The cudnnMathType_t a precision starts from: strict FMA for FP32 (no TF32 anywhere), tensor cores for
// TF32 and FP16.
int initial_math(Precision precision);

// The convolution step's cuDNN geometry at `batch` (its symmetric padding; the explicit rest is in
// the padded input) and its epilogue activation.
cuda::ConvGeometry conv_geometry(const PlanData& plan, const PlanStep& step, int batch);
// The same convolution for the direct tactic: on input 0 as it is (unpadded, its own type), padding per tap.
cuda::DirectConvArgs direct_conv_args(const PlanData& plan, const PlanStep& step, int batch);
// Whether the direct tactic's `variant` (DirectVariant) takes the step: its kernel's shapes and types, on
// whole (not view) tensors. And the launch of that variant, on the step's unpadded input x.
bool direct_conv_applies(const PlanData& plan, const PlanStep& step, int variant);
void launch_direct_conv(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x,
                        const void* residual, void* y, int batch, int variant, cudaStream_t stream);
cuda::Activation conv_activation(const PlanStep& step);

// An INT8/FP8 convolution step's kernel arguments at `batch` with its weights and these operands.
cuda::QuantConvArgs quant_conv_operands(const PlanData& plan, const PlanStep& step, const StepWeights& weights,
                                        int batch, const void* x, const void* residual, void* y);
// An Error naming `where` and the step unless this build's 8-bit kernel has the tactic's variant under the
// same name (a plan or timing cache from an eastrt whose kernel was built otherwise).
void check_quant_tactic(const ConvTactic& t, const std::string& step, const std::string& where);
// The same for cuDNN's 8-bit graph tactic `t` of `step`: a convolution it applies to
// (cudnn_quant_conv_applies), an engine configuration of this cuDNN.
void check_quant_cudnn_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t, const std::string& where);
// The same for cuBLASLt's INT8 matmul `t`: a convolution it applies to (cublaslt_quant_conv_applies), an
// algorithm of this cuBLASLt that decodes as stored (check_cublaslt_tactic).
void check_quant_cublaslt_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t,
                                 const std::string& where);
// Whichever of the three an 8-bit convolution step's tactic is.
void check_quant_conv_tactic(const PlanData& plan, const PlanStep& step, const ConvTactic& t, const std::string& where);

// The operands of a convolution step (bias as the tactic needs it).
cuda::ConvOperands conv_operands(const PlanStep& step, const StepWeights& weights, bool fused, const void* x,
                                 const void* residual, void* y, void* workspace, size_t workspace_bytes);

// ---- the space-to-depth tactic (space_to_depth.h) ----

// The stride-1 unpadded convolution on X' at `batch`.
cuda::ConvGeometry space_to_depth_geometry(const PlanData& plan, const PlanStep& step, int batch);
// X' at `batch`, rounded up to 256 bytes: the start of the workspace, cuDNN's own workspace after it.
size_t space_to_depth_bytes(const PlanData& plan, const PlanStep& step, int batch);
// Writes X' of `x` (input 0 as the plan holds it, unpadded) into `xs`.
// The explicit pad copy of a convolution step with padded_input: the asymmetric part of its padding and
// the channels rounded up, in the padded tensor's type.
void launch_explicit_pad(const PlanData& plan, const PlanStep& step, const void* x, void* padded, int batch,
                         cudaStream_t stream);
// (With the step's input shift, PlanStep::input_shift, from w.shift.)
void launch_space_to_depth(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x, void* xs,
                           int batch, cudaStream_t stream);
// A pooling step's kernel arguments at `batch`.
cuda::PoolArgs pool_args(const PlanData& plan, const PlanStep& step, int batch);
// A kSpaceToDepthMaxPool step: the conv_max_pool kernel on its unpadded input x (with the step's input
// shift) into y, the pool's output.
void launch_conv_max_pool(const PlanData& plan, const PlanStep& step, const StepWeights& w, const void* x, void* y,
                          int batch, cudaStream_t stream);

// ---- the cuBLASLt tactic (1x1 convolutions as one matmul) ----

// Whether the step can run as one cuBLASLt matmul: a 1x1, stride-1, unpadded, ungrouped convolution with
// identity or ReLU after it, whose input and output are whole tensors (not channel views).
bool cublaslt_applies(const PlanData& plan, const PlanStep& step);
// The step's matmul at `batch`, in its precision's compute type, with the step's bias, residual and ReLU.
std::unique_ptr<cuda::CublasLtConvolution> cublaslt_convolution(const PlanData& plan, const PlanStep& step,
                                                                const StepWeights& weights, int batch);
cublasLtMatmulAlgo_t cublaslt_algo(const ConvTactic& tactic);
// cuBLASLt's INT8 matmul of an 8-bit 1x1 convolution step at `batch` (its weights' scales and bias).
std::unique_ptr<cuda::CublasLtQuantConvolution> cublaslt_quant_convolution(const PlanData& plan, const PlanStep& step,
                                                                          const StepWeights& weights, int batch);
// The tactic's fields for a heuristic result: rank, compute type, the algorithm's bytes, this cuBLASLt's version;
// kQuantCublasLt for an INT8/FP8 step, kCublasLt otherwise.
ConvTactic cublaslt_tactic(const cuda::LtAlgorithm& algo, Precision precision);
// An Error naming `where` and the step unless the tactic's algorithm comes from this cuBLASLt version and its
// bytes decode to the configuration stored beside them (a plan or cache from elsewhere, or corrupt).
void check_cublaslt_tactic(const ConvTactic& t, const std::string& step, const std::string& where);

// ---- the cuDNN graph tactics (conv_cudnn_graph.h) ----

// Whether the graph tactics are offered for the step: an FP16/float32 convolution whose input, output and
// residual are whole tensors (the graph's tensors are dense, none a channel view of a concatenation).
bool cudnn_graph_applies(const PlanData& plan, const PlanStep& step);
// The step's graph at `batch`, fused or split, with its weights' bias (host arithmetic, tested without a
// GPU). `on_padded_copy` (for a step that has one): the graph reads the explicit padded copy with the
// symmetric rest of the padding, as the legacy tactics do; otherwise input 0 with the layer's own padding
// before and after. A context reads the copy exactly when the step still has one; the builder times the
// graph on input 0 where the copy only pads (padded_copy_only_pads), and release_padded_copies drops the
// copy when such a tactic wins.
cuda::GraphConvolution graph_convolution(const PlanData& plan, const PlanStep& step, const StepWeights& weights,
                                         int batch, bool fused, bool on_padded_copy);
cuda::GraphEngineConfig graph_engine_config(const ConvTactic& tactic);
// An Error naming `where` and the step unless the tactic's configuration was numbered by this cuDNN version.
void check_cudnn_graph_tactic(const ConvTactic& t, const std::string& step, const std::string& where);

// The configurations of the step's graph (fused or split) the builder times, at most `limit`, in
// candidate_configs' order, the heuristics' ranking first (or just `only`, a configuration from a timing
// cache): each one eastrt runs (CudnnGraphConvolution::add_plan), that cuDNN also takes at batch 1 (the
// other end of the batches a context prepares), within `workspace_limit` at both. `graph` is at the largest
// batch and holds plan plans[i] for tactics[i] (whose workspace is the larger of the two ends'). One line
// on what was left out and why goes to `report`. Throws an Error when cuDNN refuses the graph itself.
struct GraphCandidates {
  std::unique_ptr<cuda::CudnnGraphConvolution> graph;
  std::vector<int> plans;
  std::vector<ConvTactic> tactics;
};
GraphCandidates cudnn_graph_candidates(cudnnHandle_t handle, const PlanData& plan, const PlanStep& step,
                                       const StepWeights& weights, bool fused, size_t workspace_limit, size_t limit,
                                       std::ostream& report, const cuda::GraphEngineConfig* only = nullptr);

}  // namespace eastrt::gpu

namespace eastrt {

struct Engine::Impl {
  gpu::PlanData plan;
  gpu::PlanTarget target;
  int device = 0;
  gpu::DeviceBuffer weights;
  std::vector<gpu::StepWeights> step_weights;  // per plan step
  int64_t weight_bytes = 0;

  // Converts every step's parameters to their device layout and type and copies them in one transfer.
  void upload_weights();
};

}  // namespace eastrt
