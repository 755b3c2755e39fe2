// What a GPU engine is, as data: its tensors (type, place in memory), its steps (layers and inserted casts,
// with the tactic chosen for each convolution), and the plan file that holds it with a versioned,
// checksummed header naming the GPU it was built for. Host code only: it builds and runs without a GPU.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/network.h"

namespace eastrt::gpu {

using ::eastrt::to_string;  // gpu::to_string(StorageType) must not hide the IR's overloads

// How a tensor is stored on the device. TF32 engines store float32 (TF32 is a convolution math mode).
// kInt8 and kFp8 hold symmetric codes (quant.h) of value / PlanTensor::scale.
enum class StorageType : uint8_t { kFloat32 = 0, kFloat16 = 1, kInt8 = 2, kFp8 = 3 };
size_t storage_size(StorageType type);
const char* to_string(StorageType type);  // "fp32", "fp16", "int8", "fp8"
StorageType storage_type(Precision precision);  // int8 and fp8: the 8-bit type
inline bool is_8bit(StorageType type) { return type == StorageType::kInt8 || type == StorageType::kFp8; }

enum class TensorPlace : uint8_t {
  kArena = 0,   // in the context's activation buffer at `offset` bytes
  kInput = 1,   // input binding number `offset` (float32)
  kOutput = 2,  // output binding number `offset` (float32)
  kView = 3,    // channels [channel_offset, channel_offset + C) of tensor `view_of` (a concatenation written in place)
};

struct PlanTensor {
  std::string name;
  Shape shape;  // at the largest batch; dimension 0 is the batch
  StorageType type = StorageType::kFloat32;
  TensorPlace place = TensorPlace::kArena;
  int64_t offset = 0;
  int view_of = -1;
  int64_t channel_offset = 0;
  float scale = 0;  // 8-bit types: the calibration cache's scale of the tensor (value = code · scale); else 0

  int64_t elements() const { return volume(shape); }
  int64_t bytes() const { return elements() * static_cast<int64_t>(storage_size(type)); }
};

// The direct tactic's kernels (ConvTactic::algo of a kDirect step): CUDA cores for few input channels or
// depthwise (conv_direct.cu), tensor cores for 3x3 stride-1 FP16 convolutions on 32 channels
// (conv_tensor_core.cu; conv_tensor_core_wgmma.cu into 32 filters), CUDA cores for 1x1 convolutions into
// 1-8 outputs (conv_direct.cu: pointwise).
enum DirectVariant : int {
  kDirectCudaCores = 0,
  kDirectTensorCore = 1,
  kDirectPointwise = 2,
  kDirectTensorCoreWgmma = 3,  // the tensor-core 3x3 into 32 filters on wgmma (sm_90a: compute capability 9.0)
  kDirectVariants = 4
};

struct ConvTactic {
  enum class Kind : uint8_t {
    kUnset = 0,
    kCudnnFused = 1,  // cudnnConvolutionBiasActivationForward (ReLU or identity inside, others after it)
    kCudnnSplit = 2,  // cudnnConvolutionForward, then our epilogue kernel for bias, residual, activation
    kDirect = 3,      // our direct convolution on the unpadded input, `algo` its DirectVariant
    kCublasLt = 4,    // 1x1 convolutions as one cublasLtMatmul, bias, residual and ReLU in its epilogue (conv_cublaslt.cu)
    // Stride-2 convolutions on few channels: our kernel writes the 2x2 space-to-depth X' of the unpadded input
    // into the workspace, then cuDNN runs the equivalent stride-1 convolution on it, fused or split as above
    // (space_to_depth.h). `workspace` counts X' and cuDNN's workspace after it.
    kSpaceToDepthFused = 5,
    kSpaceToDepthSplit = 6,
    // INT8/FP8 convolutions: our implicit GEMM on 8-bit input and weights with the whole epilogue, written in
    // the output tensor's type (conv_quant.h); `algo` is the kernel's variant (tile configuration).
    kQuant = 7,
    // cuDNN's graph API (conv_cudnn_graph.h): `algo` is cuDNN's engine global index and `graph` its knob
    // choices. Fused: bias, residual and ReLU inside the graph (another activation by our kernel after it);
    // split: the convolution alone, then our epilogue kernel. The convolution has the layer's own padding,
    // before and after, so it reads input 0 itself where the explicit copy would only pad it.
    kCudnnGraphFused = 8,
    kCudnnGraphSplit = 9,
    // Our conv_max_pool kernel (kernels.h), which builds the space-to-depth X' in shared memory: the
    // convolution and the max-pool after it in one pass (PlanStep::pool, fuse_max_pool); algo: which of its
    // kernels (kConvMaxPoolMmaSync or kConvMaxPoolWgmma, conv_max_pool.h).
    kSpaceToDepthMaxPool = 10,
    // INT8 convolutions through cuDNN's graph API (conv_quant_cudnn.h): the 8-bit kernel's arguments and
    // epilogue as a graph, `algo` the engine and `graph` its knobs, as the graph kinds. cuDNN compiles its
    // 8-bit kernels at run time (NVRTC), in every context for every batch size it prepares.
    kQuantCudnn = 11,
    // INT8 1x1 convolutions with an INT8 output as one cuBLASLt integer matmul (conv_quant_cublaslt.h),
    // `lt` its algorithm as kCublasLt's, `algo` the rank in cuBLASLt's heuristic.
    kQuantCublasLt = 12,
  };
  Kind kind = Kind::kUnset;
  int algo = -1;          // cudnnConvolutionFwdAlgo_t (cuDNN and space-to-depth kinds; kDirect: its DirectVariant; cuBLASLt kinds: the rank in cuBLASLt's heuristic; graph kinds: the engine)
  int math = 0;           // cudnnMathType_t the algorithm was timed with (cuBLASLt kinds: the cublasComputeType_t)
  int64_t workspace = 0;  // bytes at the largest batch
  double ms = 0;          // measured at the largest batch when built
  // kCublasLt, kQuantCublasLt: the cublasLtMatmulAlgo_t as its 64 opaque bytes, used as they are by a loaded plan, with the
  // cuBLASLt version that gave it (another version may read the bytes otherwise: the plan is refused) and
  // the configuration they decode to (for reports, and checked against the bytes on load).
  struct LtAlgo {
    std::array<uint64_t, 8> data{};
    int64_t version = 0;
    int32_t id = 0, tile = 0, stages = 0, split_k = 1;
  };
  LtAlgo lt;
  // Graph kinds: the engine's knob choices ((cudnnBackendKnobType_t, value), sorted by type) and the cuDNN
  // version that numbered the engine and its knobs (another version may number them otherwise: the plan is
  // refused).
  struct GraphConfig {
    std::vector<std::pair<int32_t, int64_t>> knobs;
    int64_t version = 0;
  };
  GraphConfig graph;
  // kQuant: quant_conv_variant_name(algo) when built; a loaded plan whose name differs from this build's
  // variant `algo` (a kernel built otherwise) is refused.
  std::string variant_name;
};
// "cudnn fused algo 1 (tensor-op math)", "cublaslt#3 (algo 21, tile 18, stages 9, tf32, 64 KiB workspace)",
// "cudnn graph fused engine 12 (knobs 2=3 14=4, 64 KiB workspace)", ...
std::string describe(const ConvTactic& tactic);

// kCast converts input 0 to the output's storage type: FP16 <-> FP32, and to or from an 8-bit type, which
// quantises (saturating, round to nearest even) or dequantises with the 8-bit tensor's scale.
enum class StepKind : uint8_t { kLayer = 0, kCast = 1 };

struct PlanStep {
  std::string name;
  StepKind kind = StepKind::kLayer;
  LayerParams params;      // the layer's parameters (kLayer)
  std::vector<int> inputs;   // plan tensor ids
  std::vector<int> outputs;  // plan tensor ids (one)
  Precision precision = Precision::kFp32;
  ConvTactic tactic;         // convolutions
  // Convolutions with asymmetric padding or FP16 channels not a multiple of 8: the explicitly padded copy of
  // input 0 (borders beyond the symmetric part, channels up to the multiple) that cuDNN reads instead.
  int padded_input = -1;
  std::string note;  // why the step runs otherwise than the engine's precision asks ("kept in fp16: ...")
  // 0: the context's stream, in step order; 1: the side stream, alongside the steps of lane 0 it does not
  // depend on (assign_side_lane), waiting on the steps of the other lane it reads from, and they on it.
  uint8_t lane = 0;
  // A max-pool step folded into this convolution after tactic selection (fuse_max_pool): the output tensor
  // is the pool's, the convolution's own output is conv_h x conv_w. window 0: none.
  struct FusedPool {
    std::string name;  // the pool layer's
    int window = 0, stride = 0, top = 0, left = 0;
    int conv_h = 0, conv_w = 0;
  } pool;
  // A per-channel shift folded into this space-to-depth convolution (fold_input_shift): added to input 0's
  // values inside the space-to-depth pass, the padding zeros left as they are (they are the shifted
  // tensor's zeros in the graph). Empty: none.
  std::vector<float> input_shift;

  LayerKind layer_kind() const { return static_cast<LayerKind>(params.index()); }
};

struct PlanData {
  Precision precision = Precision::kFp32;
  int max_batch = 1;
  int64_t workspace_limit = 0;  // the build option
  int64_t workspace_bytes = 0;  // the most any chosen tactic needs
  int64_t arena_bytes = 0;
  std::vector<PlanTensor> tensors;
  std::vector<PlanStep> steps;
  std::vector<int> inputs, outputs;  // plan tensor ids, in binding order
  std::vector<std::string> passes;   // what the passes did, for inspect
  // INT8/FP8: the calibration cache's model fingerprint and calibrator, for inspect.
  std::string model_fingerprint, calibrator;
};

// The GPU a plan is for, as its header records it.
struct PlanTarget {
  std::string eastrt_version;
  std::string gpu_name;
  int major = 0, minor = 0;
};

// 2: cuBLASLt tactics; 3: space-to-depth tactics; 4: INT8/FP8 (8-bit tensors with scales, kQuant tactics,
// step notes, the calibration's fingerprint); 5: cuDNN graph tactics (engine, knobs, cuDNN version);
// 6: each step's lane; 7: max-pools fused into convolutions; 8: input shifts folded into them; 9: cuDNN's
// 8-bit convolutions; 10: cuBLASLt's INT8 matmuls
inline constexpr uint32_t kPlanFormatVersion = 10;

inline bool is_space_to_depth(ConvTactic::Kind kind) {
  return kind == ConvTactic::Kind::kSpaceToDepthFused || kind == ConvTactic::Kind::kSpaceToDepthSplit ||
         kind == ConvTactic::Kind::kSpaceToDepthMaxPool;
}
inline bool is_cudnn_graph(ConvTactic::Kind kind) {
  return kind == ConvTactic::Kind::kCudnnGraphFused || kind == ConvTactic::Kind::kCudnnGraphSplit;
}
// The tactics of INT8/FP8 convolution steps: our kernel's variants, cuDNN's 8-bit graphs and cuBLASLt's INT8
// matmul.
inline bool is_quant_conv(ConvTactic::Kind kind) {
  return kind == ConvTactic::Kind::kQuant || kind == ConvTactic::Kind::kQuantCudnn ||
         kind == ConvTactic::Kind::kQuantCublasLt;
}
// The tactics named by a cuBLASLt algorithm (ConvTactic::lt).
inline bool has_lt_algo(ConvTactic::Kind kind) {
  return kind == ConvTactic::Kind::kCublasLt || kind == ConvTactic::Kind::kQuantCublasLt;
}
// The tactics named by a cuDNN engine configuration (ConvTactic::graph).
inline bool has_graph_config(ConvTactic::Kind kind) {
  return is_cudnn_graph(kind) || kind == ConvTactic::Kind::kQuantCudnn;
}

// The plan file: "EASTRTPL", format version, FNV-1a 64 checksum and size of the rest, then the target
// (eastrt version, GPU name, compute capability) and the plan data, little-endian.
std::vector<uint8_t> serialize_plan(const PlanData& plan, const PlanTarget& target);

// Parses and checks everything but the GPU: not a plan, another format version, truncated, corrupt
// (checksum or contents) and another eastrt version are each an Error naming `path`.
struct ParsedPlan {
  PlanTarget target;
  PlanData plan;
};
ParsedPlan parse_plan(const std::vector<uint8_t>& bytes, const std::string& path);

// An Error naming `path`, the plan's GPU and this one when they differ (name or compute capability), or
// when there is no GPU at all.
void check_plan_target(const PlanTarget& target, const GpuInfo& gpu, const std::string& path);

uint64_t fnv1a64(const uint8_t* data, size_t size);

// ---- lowering: the passes' output to a plan without tactics (host only, tested without a GPU) ----

// INT8/FP8: the quantised convolutions (their 8-bit tactic's time in quant_ms, by layer) that timed faster
// as FP16 convolutions (fp16_ms) by more than `margin` (FP16 below margin × 8-bit: the rest pays for the
// casts a layer kept in FP16 may add around it), each with the note the plan gives it.
std::map<std::string, std::string> faster_in_fp16(const std::map<std::string, double>& quant_ms,
                                                  const std::map<std::string, double>& fp16_ms, double margin = 0.9);

// Each convolution's input (its first) by name, as the calibration saw it: after the default passes, before
// the builder's others.
using CalibratedInputs = std::map<std::string, std::string>;

// The graph passes the builder runs on the network (the inputs at the largest batch) for an engine of
// `precision`: the default ones, then upsample_after_convolution, and merge_concatenated_heads unless the
// engine is INT8/FP8 (its layers are the sensitivity pass's). INT8/FP8: `calibrated` (if given) gets each
// convolution's input after the default passes, for lower_network. Returns one line per pass for the
// plan's report.
// `upsample_8bit` false: INT8/FP8 engines run the default passes alone (BuildOptions::upsample_8bit).
std::vector<std::string> run_builder_passes(Network& network, Precision precision, CalibratedInputs* calibrated = nullptr,
                                            bool upsample_8bit = true);

// Assigns each tensor its storage type (by its producer's precision; inputs and outputs float32), inserts
// the casts where a convolution needs another type, lets a Resize read only by a Concatenation write its
// channels of the concatenation in place, pads asymmetric convolutions explicitly, and plans the activation
// buffer. `network` is after the passes, with the input shapes at the largest batch. Throws an Error naming
// the layer for anything the GPU engine does not run.
//
// INT8/FP8 (options.calibration set; see calibration_for): the tensors quant::quantized_tensors lists are
// stored 8-bit with the cache's scale unless one of their convolutions is kept (the cache's `layer` lines,
// a per-layer precision, or a convolution the 8-bit kernel does not take, which the step's note says), in
// which case all of them are kept, as FakeQuantEngine does; the other tensors are FP16. A quantised
// convolution reads its 8-bit input and writes its output's type itself; any other producer of an 8-bit
// tensor writes FP16 and a cast quantises it, and any other reader of one reads one shared dequantised
// FP16 copy, so that every reader sees the stored values. With `calibrated` (run_builder_passes'), a
// convolution the later passes made or gave another input (upsample_after_convolution's) has no calibrated
// input: it runs in FP16, reading its input as any other reader does.
PlanData lower_network(const Network& network, const BuildOptions& options, const CalibratedInputs* calibrated = nullptr);

// The calibration an INT8/FP8 build uses: options.calibration, or the file options.calibration_cache,
// checked against `network` as given (before the passes) with quant::check_cache_matches. Null for other
// precisions; an Error (naming the option and eastrt's --calib-cache) when an INT8/FP8 build has neither.
std::shared_ptr<const quant::CalibrationCache> calibration_for(const Network& network, const BuildOptions& options);

// Places every arena tensor that a step touches (input, output or padded input) in the activation buffer,
// sharing memory by lifetime, and sets arena_bytes. lower_network ends with it; the builder runs it again
// once tactics that read the unpadded input have let go of a padded copy.
void plan_arena(PlanData& plan);

// Whether a convolution step's explicit padded copy does no more than add the asymmetric borders: the same
// storage type and channels as input 0. A tactic that pads by itself, before and after (the cuDNN graph's),
// then reads input 0 instead. A copy that also converts the type (FP16 from the float32 network input) or
// rounds FP16 channels up to 8 is kept for it: cuDNN's graph takes one type for x and w, and the filter was
// uploaded with the padded channel count.
bool padded_copy_only_pads(const PlanData& plan, const PlanStep& step);

// Drops the explicit padded copies that the chosen tactics do not read (space-to-depth's, and the graph's
// where the copy only pads) and, if any went, plans the activation buffer again. Returns how many went.
int release_padded_copies(PlanData& plan);

// ---- a max-pool fused into the convolution before it (host only, tested without a GPU) ----
//
// EAST's conv1 (on space-to-depth) and pool1: the conv_max_pool kernel computes the convolution and the
// pool in one pass, so the convolution's output (FP16 batch 16: 440 MB written, then read) never exists.

// Per convolution step that may take kSpaceToDepthMaxPool: the step index of the max-pool that alone reads
// its output (-1 where there is none). The convolution: FP16, on space-to-depth (its chosen tactic), a
// shape conv_max_pool_fits takes, a float32 or FP16 input, no residual, ReLU or no activation, its output
// neither a network output nor a view; the pool: max, its window and stride as conv_max_pool_fits takes,
// leading padding smaller than the window, its output an FP16 whole tensor.
std::vector<int> max_pools_to_fuse(const PlanData& plan);

// Folds pool step `pool` into convolution step `conv` (a pair max_pools_to_fuse gives): the convolution
// writes the pool's output with tactic kSpaceToDepthMaxPool and records the pool (PlanStep::pool); the pool
// step goes. The caller drops the pool's per-step state and plans the arena again (the kernel needs no
// workspace: it builds X' in shared memory).
void fuse_max_pool(PlanData& plan, int conv, int pool);

// Per convolution step on space-to-depth (its chosen tactic): the step index of the per-channel shift (a
// Scale with a shift only, EAST's mean subtraction) that alone writes its input 0 and whose output it alone
// reads (-1 where there is none). Folded (fold_input_shift), the shift costs no pass of its own.
std::vector<int> input_shifts_to_fold(const PlanData& plan);
// Folds shift step `scale` into convolution step `conv` (a pair input_shifts_to_fold gives): the convolution
// reads the shift's input and adds the shift in its space-to-depth pass (PlanStep::input_shift); the shift
// step goes. The caller uploads the weights and plans the arena again.
void fold_input_shift(PlanData& plan, int conv, int scale);

// The convolution's own output rows and columns: its output tensor's, or those PlanStep::pool recorded.
std::array<int, 2> conv_output_size(const PlanData& plan, const PlanStep& step);

// The first and last step touching each arena tensor's storage (a concatenation and the views into it
// share one); -1 for tensors not in the arena. Used by the planner and by the tests that check it.
struct Lifetime {
  int first = -1, last = -1;
};
std::vector<Lifetime> arena_lifetimes(const PlanData& plan);

// ---- parallel branches: a second lane of steps (host only, tested without a GPU) ----
//
// A step on lane 1 runs on the context's side stream: after the steps that write what it reads (a wait on
// the other lane's event, or stream order on its own), and before the steps that read what it writes. So it
// may run alongside any step of lane 0 in between, which is what its window says, and the memory planner
// (arena_lifetimes) keeps everything it touches alive over that window: no buffer it reads or writes is
// shared with one those steps use.

// Per step, the first and last step (by index) it may run alongside: itself for lane 0; for lane 1 from
// just after the last lane-0 writer of its inputs (or that lane-1 writer's own first) to just before the
// first lane-0 reader of its output (or that lane-1 reader's own last), the whole plan where there is none.
std::vector<Lifetime> step_windows(const PlanData& plan);

// Puts on lane 1 each convolution that has a lane-0 step between the last writer of its inputs and the first
// reader of its output, that reads and writes whole tensors (no concatenation's view or parent), and whose
// writers are all on lane 0 (EAST: the four projection shortcuts beside their unit's first two
// convolutions, the first convolution of blocks 1-3's strided last units beside their subsampling
// shortcut, and the geometry head beside the score head). The merge's convolutions over the backbone's
// features are not among them: each adds its upsampled other half in its epilogue, so it waits for it.
// Returns how many; the caller plans the arena again (plan_arena) when there are any.
int assign_side_lane(PlanData& plan);

// Per step, the earlier steps on the other lane that write a tensor it reads (through a view's parent
// too): the events it waits for.
std::vector<std::vector<int>> cross_lane_waits(const PlanData& plan);

}  // namespace eastrt::gpu
