// The GPU engine: a Builder turns a Network into an Engine (passes, per-tensor precision, a memory plan,
// per-convolution tactics chosen by timing on this GPU), which serialises to a plan file and back; an
// ExecutionContext runs an Engine on its own stream with its own buffers (several per engine may run at
// once). CUDA types never appear here: streams are passed as void* (a cudaStream_t).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eastrt/network.h"

namespace eastrt {

namespace east {
struct Image;
struct Quad;
}
namespace quant {
struct CalibrationCache;
enum class QuantType;  // eastrt/quant.h
}

// kInt8 and kFp8 (E4M3) engines run their convolutions on 8-bit tensors with the ranges of a calibration
// cache (docs/QUANTIZATION.md); every other layer, and the convolutions kept in high precision, in FP16.
enum class Precision { kFp32, kTf32, kFp16, kInt8, kFp8 };
const char* to_string(Precision precision);     // "fp32", "tf32", "fp16", "int8", "fp8"
Precision parse_precision(const std::string& text);  // inverse; throws an Error naming the choices
inline bool is_quantized(Precision precision) { return precision == Precision::kInt8 || precision == Precision::kFp8; }
// The 8-bit type of kInt8 / kFp8; an Error for the other precisions.
quant::QuantType quant_type(Precision precision);

struct BuildOptions {
  Precision precision = Precision::kFp32;
  int max_batch = 1;                          // the engine runs any batch from 1 to this
  size_t workspace_bytes = size_t(256) << 20;  // the most one convolution tactic may use
  // Per-layer precision, by the name of a layer of the network as given (after the passes a fused layer
  // keeps the convolution's name). In an INT8/FP8 engine a convolution given fp16 (or fp32, tf32) is kept
  // in that precision, as the cache's `layer` lines keep theirs in FP16.
  std::map<std::string, Precision> layer_precisions;
  // INT8/FP8: the calibration cache (quant::CalibrationCache of this network and precision), in memory or
  // read from the file `calibration_cache` when `calibration` is null. Either is required; the builder
  // refuses a cache of another model or precision (quant::check_cache_matches).
  std::shared_ptr<const quant::CalibrationCache> calibration;
  std::string calibration_cache;
  int device = 0;
  // Time every candidate tactic (the point of building on the target GPU); off: cuDNN's heuristic choice.
  bool time_tactics = true;
  // INT8/FP8 with timed tactics: each quantised convolution is also timed as an FP16 one, and where FP16 is
  // the faster by more than the casts it may add (gpu::faster_in_fp16), it stays in FP16, as a kept layer
  // (so the engine is never slower there than FP16; the layer's note says both times). Off: every
  // convolution the cache and the 8-bit kernel allow runs in 8 bits.
  bool keep_faster_fp16 = true;
  // INT8/FP8: FP16's upsampling pass (upsample_after_convolution) in the 8-bit engine too: the feature-merging
  // concatenations go, the 1x1 convolutions it splits or gives another input run in FP16 and the others keep
  // their calibrated inputs (FakeQuantEngine's semantics with those kept). Off: the network as calibrated.
  bool upsample_8bit = true;
  // With timed tactics, convolutions also time cuDNN graph API configurations (FP32/TF32/FP16, and INT8's
  // 8-bit graphs beside our 8-bit kernel); off: the legacy API, cuBLASLt and our kernels only (to compare,
  // or where the graphs make the build slow).
  bool cudnn_graph = true;
  // Our Hopper wgmma kernels among the candidates on compute capability 9.0 (the conv1/pool1 kernel's and
  // the tensor-core 3x3's wgmma versions); off: the mma.sync ones alone (to compare them in one run).
  bool wgmma = true;
  // Convolutions independent of the steps around them (a ResNet unit's projection shortcut, one of two
  // heads) run on a second stream alongside them (gpu::assign_side_lane). Off by default: on the H200 EAST
  // ran no faster with them (FP16 batch 1 1357 against 1371 images/s on one stream, batch 16 2477 against
  // 2508, one call): its big convolutions fill the GPU, and the cross-stream edges cost about what the
  // overlap saves.
  bool parallel_branches = false;
  bool verbose = false;  // one line per layer on stderr while building
  // A tactic timing cache file (empty: none): convolutions whose signature it holds for this GPU model,
  // cuDNN and eastrt version take the cached tactic without timing; the others are timed and added, and
  // the file is rewritten. A file that is not a valid cache of this format version is an Error naming it.
  std::string timing_cache;
};

// What the last build did about tactics.
struct BuildStats {
  int convolutions_timed = 0;       // candidates run and timed here
  int convolutions_from_cache = 0;  // tactic taken from the timing cache
};

struct EngineLayerInfo {
  std::string name;
  std::string kind;       // "Convolution", "Resize", ..., "Cast" for conversions the builder inserted
  std::string precision;  // "fp32", "tf32", "fp16", "int8", "fp8"
  std::string tactic;     // convolutions: "cudnn fused algo 1", "cudnn algo 6 + epilogue"; others: the kernel
  std::string note;       // why the builder chose otherwise than asked ("kept in fp16: ..."), or empty
  double tactic_ms = 0;   // the chosen tactic's time when built (convolutions), 0 otherwise
  bool side_stream = false;  // runs on the context's second stream, alongside independent steps
  std::vector<Shape> input_shapes;
  Shape output_shape;     // at the largest batch
  // What the step cannot do with less, for a roofline: multiply-adds per image (convolutions), and bytes
  // of device memory per image (each input read once, the output written once) plus the weights' bytes.
  int64_t macs_per_image = 0;
  int64_t activation_bytes_per_image = 0;
  int64_t weight_bytes = 0;
};

struct EngineInfo {
  std::string gpu_name;
  int compute_major = 0, compute_minor = 0;
  std::string eastrt_version;
  Precision precision = Precision::kFp32;
  int max_batch = 1;
  // INT8/FP8: the calibration cache's model fingerprint and calibrator ("entropy", "percentile 99.99").
  std::string model_fingerprint, calibrator;
  std::vector<std::string> passes;  // "fold_batch_norm: 60 rewrites", ...
  std::vector<EngineLayerInfo> layers;
  int64_t weight_bytes = 0;      // on the device
  int64_t activation_bytes = 0;  // one context's shared activation buffer
  int64_t workspace_bytes = 0;   // one context's convolution workspace (each stream's)
  int64_t io_bytes = 0;          // one context's input and output bindings
  std::vector<std::pair<std::string, Shape>> inputs, outputs;  // at the largest batch
};
std::string to_text(const EngineInfo& info);

class ExecutionContext;

class Engine {
 public:
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A plan from serialize(); refuses (with an Error naming `path` and what differs) a plan that is not an
  // eastrt plan, is truncated or corrupt (checksum), comes from another plan format or eastrt version, or
  // was built for another GPU (name or compute capability).
  static std::unique_ptr<Engine> deserialize(const std::vector<uint8_t>& plan, const std::string& path = "<memory>");
  static std::unique_ptr<Engine> load(const std::string& path);
  std::vector<uint8_t> serialize() const;
  void save(const std::string& path) const;

  EngineInfo inspect() const;
  int max_batch() const;
  Precision precision() const;

  std::unique_ptr<ExecutionContext> create_context();

  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Builder {
 public:
  Builder(Network network, BuildOptions options);
  // Throws an Error naming the layer for anything the GPU engine cannot run.
  std::unique_ptr<Engine> build();
  const BuildStats& stats() const { return stats_; }

 private:
  Network network_;
  BuildOptions options_;
  BuildStats stats_;
};

// One stream, one activation buffer, one workspace, device and pinned host bindings. Not thread-safe;
// use one context per thread. Inputs and outputs are float32 NHWC whatever the engine's precision.
class ExecutionContext {
 public:
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;

  // Copies through pinned memory into the input binding, asynchronously; the batch is value.shape[0]
  // (every input of one run has the same batch, at most max_batch; the other dimensions are the built ones).
  void set_input(const std::string& name, const HostTensor& value);
  // EAST's pre-processing on the GPU: the 8-bit RGB image resized (cv2 INTER_LINEAR, bit for bit) to the
  // input binding's height and width, into image `index` of the batch, as float RGB 0..255.
  void set_input_image(const std::string& name, int index, const east::Image& image);
  // The same for a whole batch: images 0..n-1 (any sizes) packed into one pinned buffer, copied to the device
  // in one transfer and resized there; the batch becomes n. An image decoded on the GPU (Image::device, on
  // this engine's device) is resized from there and not copied; its `consumed` event is recorded after.
  void set_input_images(const std::string& name, const std::vector<const east::Image*>& images);
  void set_batch(int batch);
  int batch() const;

  void enqueue();         // runs the network on the stream (replays a CUDA graph when enabled)
  // After enqueue(), in place of fetch_outputs(): EAST's decode on the device up to the candidate quads
  // (decode_quads: pixels of output `score` above `threshold`, rectangles restored from output `geometry`,
  // compacted), the score output copied back (output() gives it; re-scoring reads it) and, of the geometry,
  // only the candidates. Synchronises; returns each image's candidates in row order. With `nms_threshold`,
  // locality-aware NMS runs on the GPU too (by the rules of src/cuda/lanms.h: lanms-neo's but for an IoU
  // within ~1e-5 of Clipper's), and what it keeps comes back instead, by decreasing score.
  std::vector<std::vector<east::Quad>> decode_candidates(const std::string& score, const std::string& geometry,
                                                         float threshold,
                                                         std::optional<float> nms_threshold = std::nullopt);
  void fetch_outputs();   // copies every output to pinned memory, asynchronously
  void synchronize();
  HostTensor output(const std::string& name) const;  // after fetch_outputs + synchronize: [batch, ...]

  // set_input for every input, enqueue, fetch_outputs, synchronize; returns every output by name.
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs);

  // Captures the network once per batch size and replays the graph from then on.
  void set_cuda_graph(bool enabled);

  // Device times of `iterations` enqueues after `warmup` untimed ones, each timed by CUDA events, in ms.
  std::vector<double> time_enqueue(int warmup, int iterations);
  // The median device time of each step over `iterations` eager runs (events between the steps, no CUDA
  // graph), in ms, in the order of Engine::inspect().layers.
  std::vector<double> profile_steps(int warmup, int iterations);

  // Writes `value` (NaN by default) into every output binding and the whole activation buffer, so that a
  // test sees any element a run leaves unwritten or any read of memory nothing wrote.
  void poison(float value);
  void poison();

  void* stream() const;  // cudaStream_t
  void* device_binding(const std::string& name) const;

  struct Impl;
  explicit ExecutionContext(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// The GPU decode of decode_candidates on maps in host memory ([n, h, w, 1] and [n, h, w, 5]): for tests,
// against decode_quads.
std::vector<std::vector<east::Quad>> decode_candidates_on_gpu(const HostTensor& score, const HostTensor& geometry,
                                                              float threshold);
// The same, then LANMS on the GPU: what decode_candidates with an nms_threshold returns.
std::vector<std::vector<east::Quad>> decode_boxes_on_gpu(const HostTensor& score, const HostTensor& geometry,
                                                         float threshold, float nms_threshold);

// Device memory in use on `device` (total − free), for reports.
int64_t gpu_memory_used(int device = 0);

}  // namespace eastrt
