// The plan file: its header checks and the byte format of every tensor, step and layer parameter the GPU
// engine runs (see plan.h). Host code only.
#include "cuda/plan.h"
#include "cuda/space_to_depth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <type_traits>

#include "cuda/conv_max_pool.h"
#include "eastrt/error.h"

namespace eastrt::gpu {

size_t storage_size(StorageType type) {
  return type == StorageType::kFloat32 ? 4 : type == StorageType::kFloat16 ? 2 : 1;
}
const char* to_string(StorageType type) {
  switch (type) {
    case StorageType::kFloat32: return "fp32";
    case StorageType::kFloat16: return "fp16";
    case StorageType::kInt8: return "int8";
    case StorageType::kFp8: return "fp8";
  }
  return "?";
}
StorageType storage_type(Precision precision) {
  switch (precision) {
    case Precision::kFp16: return StorageType::kFloat16;
    case Precision::kInt8: return StorageType::kInt8;
    case Precision::kFp8: return StorageType::kFp8;
    default: return StorageType::kFloat32;
  }
}

std::string describe(const ConvTactic& tactic) {
  std::ostringstream out;
  switch (tactic.kind) {
    case ConvTactic::Kind::kUnset: return "unset";
    case ConvTactic::Kind::kCudnnFused: out << "cudnn fused algo " << tactic.algo; break;
    case ConvTactic::Kind::kCudnnSplit: out << "cudnn algo " << tactic.algo << " + epilogue"; break;
    case ConvTactic::Kind::kDirect:
      return tactic.algo == kDirectTensorCore        ? "eastrt tensor-core 3x3 convolution, unpadded input"
             : tactic.algo == kDirectTensorCoreWgmma ? "eastrt tensor-core 3x3 convolution on wgmma, unpadded input"
             : tactic.algo == kDirectPointwise       ? "eastrt pointwise convolution into few outputs"
                                                     : "eastrt direct convolution, unpadded input";
    case ConvTactic::Kind::kQuant:
      out << "eastrt 8-bit convolution variant " << tactic.algo;
      if (!tactic.variant_name.empty()) out << " (" << tactic.variant_name << ")";
      return out.str();
    case ConvTactic::Kind::kSpaceToDepthFused: out << "eastrt space-to-depth + cudnn fused algo " << tactic.algo; break;
    case ConvTactic::Kind::kSpaceToDepthSplit:
      out << "eastrt space-to-depth + cudnn algo " << tactic.algo << " + epilogue";
      break;
    case ConvTactic::Kind::kSpaceToDepthMaxPool:  // our kernel: no cuDNN math type
      out << "eastrt conv/max-pool kernel" << (tactic.algo == cuda::kConvMaxPoolWgmma ? " on wgmma" : "")
          << " (space-to-depth in shared memory)";
      return out.str();
    case ConvTactic::Kind::kCudnnGraphFused:
    case ConvTactic::Kind::kCudnnGraphSplit:
    case ConvTactic::Kind::kQuantCudnn: {
      const bool fused = tactic.kind != ConvTactic::Kind::kCudnnGraphSplit;
      const char* what = tactic.kind == ConvTactic::Kind::kQuantCudnn ? "cudnn 8-bit graph engine "
                         : fused                                      ? "cudnn graph fused engine "
                                                                      : "cudnn graph engine ";
      out << what << tactic.algo << (fused ? "" : " + epilogue");
      std::ostringstream details;
      if (!tactic.graph.knobs.empty()) {
        details << "knobs";
        for (const auto& [type, value] : tactic.graph.knobs) details << " " << type << "=" << value;
      }
      if (tactic.workspace > 0)
        details << (tactic.graph.knobs.empty() ? "" : ", ") << (tactic.workspace + 1023) / 1024 << " KiB workspace";
      if (!details.str().empty()) out << " (" << details.str() << ")";
      return out.str();
    }
    case ConvTactic::Kind::kCublasLt:
    case ConvTactic::Kind::kQuantCublasLt: {
      // cublasComputeType_t: CUBLAS_COMPUTE_32F is 68, CUBLAS_COMPUTE_32F_FAST_TF32 77, CUBLAS_COMPUTE_32I 72.
      const bool int8 = tactic.kind == ConvTactic::Kind::kQuantCublasLt;
      out << (int8 ? "cublaslt int8#" : "cublaslt#") << tactic.algo << " (algo " << tactic.lt.id << ", tile " << tactic.lt.tile << ", stages "
          << tactic.lt.stages;
      if (tactic.lt.split_k > 1) out << ", split-k " << tactic.lt.split_k;
      out << (int8 ? ", int32 accumulation" : tactic.math == 77 ? ", tf32" : ", fp32 accumulation");
      if (tactic.workspace > 0) out << ", " << (tactic.workspace + 1023) / 1024 << " KiB workspace";
      out << ")";
      return out.str();
    }
  }
  static const char* maths[] = {"default", "tensor-op", "tensor-op-conversion", "fma"};
  if (tactic.math >= 0 && tactic.math < 4) out << " (" << maths[tactic.math] << " math";
  if (tactic.workspace > 0) out << ", " << (tactic.workspace + 1023) / 1024 << " KiB workspace";
  if (tactic.math >= 0 && tactic.math < 4) out << ")";
  return out.str();
}

uint64_t fnv1a64(const uint8_t* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

namespace {

constexpr char kMagic[8] = {'E', 'A', 'S', 'T', 'R', 'T', 'P', 'L'};
constexpr size_t kFixedHeader = sizeof(kMagic) + 4 + 8 + 8;  // magic, format, checksum, body size

// Little-endian writer (the plan is read on the machine that built it, x86-64 or aarch64: both little-endian).
class ByteWriter {
 public:
  std::vector<uint8_t> bytes;

  template <typename T>
  void pod(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void u8(uint8_t v) { pod(v); }
  void i32(int32_t v) { pod(v); }
  void i64(int64_t v) { pod(v); }
  void f32(float v) { pod(v); }
  void str(const std::string& s) {
    i64(static_cast<int64_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void shape(const Shape& s) {
    i64(static_cast<int64_t>(s.size()));
    for (int64_t d : s) i64(d);
  }
  void ints(const std::vector<int>& v) {
    i64(static_cast<int64_t>(v.size()));
    for (int x : v) i32(x);
  }
  void weights(const Weights& w) {
    u8(w ? 1 : 0);
    if (!w) return;
    shape(w->shape);
    const auto* p = reinterpret_cast<const uint8_t*>(w->data.data());
    i64(static_cast<int64_t>(w->data.size()));
    bytes.insert(bytes.end(), p, p + w->data.size() * sizeof(float));
  }
  void padding(const Padding& p) {
    i32(p.top), i32(p.left), i32(p.bottom), i32(p.right);
  }
  void pair(const std::array<int, 2>& a) { i32(a[0]), i32(a[1]); }
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  template <typename T>
  T pod(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  uint8_t u8(const char* what) { return pod<uint8_t>(what); }
  // A yes/no byte: written 0 or 1, and nothing else read (so that what parses is what was written).
  bool flag(const char* what) {
    const uint8_t v = u8(what);
    if (v > 1) throw_error(what, ": a yes/no byte holds ", static_cast<int>(v));
    return v == 1;
  }
  int32_t i32(const char* what) { return pod<int32_t>(what); }
  int64_t i64(const char* what) { return pod<int64_t>(what); }
  float f32(const char* what) { return pod<float>(what); }
  int64_t count(const char* what, int64_t element_bytes) {
    const int64_t n = i64(what);
    if (n < 0 || (element_bytes > 0 && n > static_cast<int64_t>((size_ - pos_) / element_bytes)))
      throw_error("a count of ", n, " for ", what, " runs past the end");
    return n;
  }
  std::string str(const char* what) {
    const int64_t n = count(what, 1);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  Shape shape(const char* what) {
    const int64_t n = count(what, 8);
    Shape s(static_cast<size_t>(n));
    // Every size computed from a shape (its volume, its bytes) must fit an int64 on the way.
    int64_t elements = 1;
    for (int64_t& d : s) {
      d = i64(what);
      if (d < 0) throw_error("negative dimension in ", what);
      if (__builtin_mul_overflow(elements, d, &elements) || elements > (int64_t(1) << 48))
        throw_error("dimensions too large in ", what);
    }
    return s;
  }
  std::vector<int> ints(const char* what) {
    const int64_t n = count(what, 4);
    std::vector<int> v(static_cast<size_t>(n));
    for (int& x : v) x = i32(what);
    return v;
  }
  Weights weights(const char* what) {
    if (!flag(what)) return nullptr;
    Shape s = shape(what);
    const int64_t n = count(what, 4);
    if (n != volume(s)) throw_error(what, " holds ", n, " values for shape ", to_string(s));
    std::vector<float> values(static_cast<size_t>(n));
    need(static_cast<size_t>(n) * sizeof(float), what);
    if (n > 0) std::memcpy(values.data(), data_ + pos_, static_cast<size_t>(n) * sizeof(float));
    pos_ += static_cast<size_t>(n) * sizeof(float);
    return make_weights(std::move(s), std::move(values));
  }
  Padding padding(const char* what) {
    Padding p;
    p.top = i32(what), p.left = i32(what), p.bottom = i32(what), p.right = i32(what);
    return p;
  }
  std::array<int, 2> pair(const char* what) {
    std::array<int, 2> a{};
    a[0] = i32(what), a[1] = i32(what);
    return a;
  }
  bool done() const { return pos_ == size_; }

 private:
  void need(size_t n, const char* what) {
    if (size_ - pos_ < n) throw_error("it ends inside ", what);
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void write_params(ByteWriter& w, const std::string& name, const LayerParams& params) {
  w.u8(static_cast<uint8_t>(params.index()));
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, ConvolutionParams>) {
          w.i32(p.out_channels), w.pair(p.kernel), w.pair(p.stride), w.pair(p.dilation), w.i32(p.groups);
          w.padding(p.padding);
          w.weights(p.kernel_weights), w.weights(p.bias);
          w.u8(p.activation ? 1 : 0);
          if (p.activation) w.i32(static_cast<int>(p.activation->type)), w.f32(p.activation->alpha), w.f32(p.activation->beta);
        } else if constexpr (std::is_same_v<P, DeconvolutionParams>) {
          w.i32(p.out_channels), w.pair(p.kernel), w.pair(p.stride), w.i32(p.groups), w.padding(p.padding);
          w.pair(p.output_padding), w.weights(p.kernel_weights), w.weights(p.bias);
        } else if constexpr (std::is_same_v<P, ScaleParams>) {
          w.u8(static_cast<uint8_t>(p.mode)), w.weights(p.scale), w.weights(p.shift), w.weights(p.power);
        } else if constexpr (std::is_same_v<P, PoolingParams>) {
          w.u8(static_cast<uint8_t>(p.type)), w.pair(p.window), w.pair(p.stride), w.padding(p.padding);
          w.u8(p.global), w.u8(p.count_include_pad);
        } else if constexpr (std::is_same_v<P, ActivationParams>) {
          w.i32(static_cast<int>(p.type)), w.f32(p.alpha), w.f32(p.beta);
        } else if constexpr (std::is_same_v<P, ElementWiseParams>) {
          w.i32(static_cast<int>(p.op));
        } else if constexpr (std::is_same_v<P, UnaryParams>) {
          w.i32(static_cast<int>(p.op));
        } else if constexpr (std::is_same_v<P, ConcatenationParams>) {
          w.i32(p.axis);
        } else if constexpr (std::is_same_v<P, ResizeParams>) {
          w.u8(static_cast<uint8_t>(p.mode)), w.u8(static_cast<uint8_t>(p.coordinates));
          w.i32(p.out_height), w.i32(p.out_width), w.f32(p.scale_height), w.f32(p.scale_width);
        } else {
          throw_error("plan: layer '", name, "' has a kind the plan format does not hold");
        }
      },
      params);
}

template <typename E>
E checked_enum(int value, int count, const char* what) {
  if (value < 0 || value >= count) throw_error(what, " has the invalid value ", value);
  return static_cast<E>(value);
}

LayerParams read_params(ByteReader& r) {
  const int kind = r.u8("a layer kind");
  switch (checked_enum<LayerKind>(kind, static_cast<int>(LayerKind::kReduce) + 1, "a layer kind")) {
    case LayerKind::kConvolution: {
      ConvolutionParams p;
      p.out_channels = r.i32("convolution"), p.kernel = r.pair("convolution"), p.stride = r.pair("convolution");
      p.dilation = r.pair("convolution"), p.groups = r.i32("convolution"), p.padding = r.padding("convolution");
      p.kernel_weights = r.weights("convolution weights"), p.bias = r.weights("convolution bias");
      if (r.flag("convolution activation")) {
        ActivationParams a;
        a.type = checked_enum<ActivationType>(r.i32("activation"), 7, "an activation type");
        a.alpha = r.f32("activation"), a.beta = r.f32("activation");
        p.activation = a;
      }
      return p;
    }
    case LayerKind::kDeconvolution: {
      DeconvolutionParams p;
      p.out_channels = r.i32("deconvolution"), p.kernel = r.pair("deconvolution"), p.stride = r.pair("deconvolution");
      p.groups = r.i32("deconvolution"), p.padding = r.padding("deconvolution");
      p.output_padding = r.pair("deconvolution");
      p.kernel_weights = r.weights("deconvolution weights"), p.bias = r.weights("deconvolution bias");
      // The kernel trusts these to agree (it indexes the filter by them).
      const bool fits = p.groups >= 1 && p.out_channels >= 1 && p.out_channels % p.groups == 0 && p.stride[0] >= 1 &&
                        p.stride[1] >= 1 && p.kernel_weights && p.kernel_weights->shape.size() == 4 &&
                        p.kernel_weights->shape[1] == p.out_channels / p.groups &&
                        p.kernel_weights->shape[2] == p.kernel[0] && p.kernel_weights->shape[3] == p.kernel[1] &&
                        (!p.bias || p.bias->size() == p.out_channels);
      if (!fits) throw_error("a deconvolution's weights do not fit its parameters");
      return p;
    }
    case LayerKind::kScale: {
      ScaleParams p;
      p.mode = checked_enum<ScaleMode>(r.u8("scale"), 2, "a scale mode");
      p.scale = r.weights("scale"), p.shift = r.weights("shift"), p.power = r.weights("power");
      return p;
    }
    case LayerKind::kPooling: {
      PoolingParams p;
      p.type = checked_enum<PoolingType>(r.u8("pooling"), 2, "a pooling type");
      p.window = r.pair("pooling"), p.stride = r.pair("pooling"), p.padding = r.padding("pooling");
      p.global = r.flag("pooling"), p.count_include_pad = r.flag("pooling");
      return p;
    }
    case LayerKind::kActivation: {
      ActivationParams p;
      p.type = checked_enum<ActivationType>(r.i32("activation"), 7, "an activation type");
      p.alpha = r.f32("activation"), p.beta = r.f32("activation");
      return p;
    }
    case LayerKind::kElementWise:
      return ElementWiseParams{checked_enum<ElementWiseOp>(r.i32("elementwise"), 7, "an elementwise op")};
    case LayerKind::kUnary:
      return UnaryParams{checked_enum<UnaryOp>(r.i32("unary"), 11, "a unary op")};
    case LayerKind::kConcatenation:
      return ConcatenationParams{r.i32("concatenation")};
    case LayerKind::kResize: {
      ResizeParams p;
      p.mode = checked_enum<ResizeMode>(r.u8("resize"), 2, "a resize mode");
      p.coordinates = checked_enum<ResizeCoordinates>(r.u8("resize"), 3, "a resize coordinate rule");
      p.out_height = r.i32("resize"), p.out_width = r.i32("resize");
      p.scale_height = r.f32("resize"), p.scale_width = r.f32("resize");
      return p;
    }
    default:
      throw_error("a step has layer kind ", kind, ", which the plan format does not hold");
  }
}

void write_body(ByteWriter& w, const PlanData& plan, const PlanTarget& target) {
  w.str(target.eastrt_version);
  w.str(target.gpu_name);
  w.i32(target.major), w.i32(target.minor);
  w.u8(static_cast<uint8_t>(plan.precision));
  w.i32(plan.max_batch);
  w.i64(plan.workspace_limit), w.i64(plan.workspace_bytes), w.i64(plan.arena_bytes);
  w.i64(static_cast<int64_t>(plan.tensors.size()));
  for (const PlanTensor& t : plan.tensors) {
    w.str(t.name), w.shape(t.shape), w.u8(static_cast<uint8_t>(t.type)), w.u8(static_cast<uint8_t>(t.place));
    w.i64(t.offset), w.i32(t.view_of), w.i64(t.channel_offset), w.f32(t.scale);
  }
  w.i64(static_cast<int64_t>(plan.steps.size()));
  for (const PlanStep& s : plan.steps) {
    w.str(s.name), w.u8(static_cast<uint8_t>(s.kind));
    if (s.kind == StepKind::kLayer) write_params(w, s.name, s.params);
    w.ints(s.inputs), w.ints(s.outputs);
    w.u8(static_cast<uint8_t>(s.precision));
    w.u8(static_cast<uint8_t>(s.tactic.kind)), w.i32(s.tactic.algo), w.i32(s.tactic.math);
    w.i64(s.tactic.workspace), w.pod(s.tactic.ms);
    if (has_lt_algo(s.tactic.kind)) {
      const ConvTactic::LtAlgo& lt = s.tactic.lt;
      for (uint64_t v : lt.data) w.pod(v);
      w.i64(lt.version), w.i32(lt.id), w.i32(lt.tile), w.i32(lt.stages), w.i32(lt.split_k);
    }
    if (has_graph_config(s.tactic.kind)) {
      w.i64(s.tactic.graph.version);
      w.i64(static_cast<int64_t>(s.tactic.graph.knobs.size()));
      for (const auto& [type, value] : s.tactic.graph.knobs) w.i32(type), w.i64(value);
    }
    if (s.tactic.kind == ConvTactic::Kind::kQuant) w.str(s.tactic.variant_name);
    w.i32(s.padded_input);
    w.str(s.note);
    w.u8(s.lane);
    w.i32(s.pool.window);
    if (s.pool.window != 0) {
      w.str(s.pool.name);
      w.i32(s.pool.stride), w.i32(s.pool.top), w.i32(s.pool.left), w.i32(s.pool.conv_h), w.i32(s.pool.conv_w);
    }
    w.i64(static_cast<int64_t>(s.input_shift.size()));
    for (float v : s.input_shift) w.f32(v);
  }
  w.ints(plan.inputs), w.ints(plan.outputs);
  w.i64(static_cast<int64_t>(plan.passes.size()));
  for (const std::string& p : plan.passes) w.str(p);
  w.str(plan.model_fingerprint), w.str(plan.calibrator);
}

void check_indices(const PlanData& plan) {
  const int n = static_cast<int>(plan.tensors.size());
  auto valid = [&](int id) { return id >= 0 && id < n; };
  for (const PlanTensor& t : plan.tensors) {
    if (t.place == TensorPlace::kView && !valid(t.view_of)) throw_error("tensor '", t.name, "' views a tensor that does not exist");
    if (t.shape.empty()) throw_error("tensor '", t.name, "' has no shape");
    if (is_8bit(t.type) && !(t.scale > 0 && std::isfinite(t.scale)))
      throw_error("8-bit tensor '", t.name, "' has the scale ", t.scale);
  }
  for (const PlanStep& s : plan.steps) {
    for (int id : s.inputs) if (!valid(id)) throw_error("step '", s.name, "' reads tensor ", id, " of ", n);
    for (int id : s.outputs) if (!valid(id)) throw_error("step '", s.name, "' writes tensor ", id, " of ", n);
    if (s.outputs.size() != 1) throw_error("step '", s.name, "' has ", s.outputs.size(), " outputs");
    if (s.padded_input != -1 && !valid(s.padded_input)) throw_error("step '", s.name, "' pads into a missing tensor");
    if (s.lane > 1) throw_error("step '", s.name, "' is on lane ", int(s.lane), " (there are lanes 0 and 1)");
    if (s.kind == StepKind::kLayer && s.layer_kind() == LayerKind::kDeconvolution) {
      const auto& p = std::get<DeconvolutionParams>(s.params);
      const Shape& in = s.inputs.size() == 1 ? plan.tensors[s.inputs[0]].shape : Shape{};
      const Shape& out = plan.tensors[s.outputs[0]].shape;
      if (in.size() != 4 || out.size() != 4 || in[3] != p.kernel_weights->shape[0] || in[3] % p.groups != 0 ||
          out[3] != p.out_channels)
        throw_error("deconvolution step '", s.name, "' does not fit its tensors");
    }
    if (s.tactic.kind == ConvTactic::Kind::kDirect && (s.tactic.algo < 0 || s.tactic.algo >= kDirectVariants))
      throw_error("step '", s.name, "' has direct-convolution variant ", s.tactic.algo, " (there are 0 to ",
                  kDirectVariants - 1, ")");
    if (s.tactic.kind == ConvTactic::Kind::kSpaceToDepthMaxPool && (s.tactic.algo < -1 || s.tactic.algo > cuda::kConvMaxPoolWgmma))
      throw_error("step '", s.name, "' has conv/max-pool kernel ", s.tactic.algo, " (there are 0 and 1)");
    // After the deconvolution check's style: a tactic on a layer it cannot run would read out of bounds.
    if (is_space_to_depth(s.tactic.kind) && !space_to_depth_applies(plan, s))
      throw_error("step '", s.name, "' has a space-to-depth tactic but is not a stride-2, dilation-1, ungrouped ",
                  "convolution on at most ", kSpaceToDepthMaxChannels / 4, " channels of whole tensors");
    // A fused pool goes with its kernel only, in the shape the kernel takes, over an output that the pool's
    // window and padding map onto the step's output tensor (the kernel would read or write out of bounds).
    if ((s.pool.window != 0) != (s.tactic.kind == ConvTactic::Kind::kSpaceToDepthMaxPool))
      throw_error("step '", s.name, "' has ", s.pool.window != 0 ? "a fused pool without" : "no fused pool for",
                  " the conv/max-pool tactic");
    if (s.pool.window != 0) {
      const PlanStep::FusedPool& p = s.pool;
      const Shape& out = plan.tensors[s.outputs[0]].shape;
      // Every pooled output's window starts inside the convolution's output.
      const bool fits = p.window > 0 && p.window <= 16 && p.stride > 0 && p.stride <= 16 && p.top >= 0 &&
                        p.top < p.window && p.left >= 0 && p.left < p.window && p.conv_h > 0 && p.conv_w > 0 &&
                        p.conv_h <= (1 << 20) && p.conv_w <= (1 << 20) && out.size() == 4 && out[1] > 0 &&
                        out[2] > 0 && (out[1] - 1) * p.stride - p.top < p.conv_h &&
                        (out[2] - 1) * p.stride - p.left < p.conv_w;  // a convolution: space_to_depth_applies
      if (!fits) throw_error("step '", s.name, "' has a fused pool that does not fit its output");
      // The kernel's fixed shape (its filter and tile sizes): anything else would be read out of bounds.
      const SpaceToDepthShape xs = space_to_depth_shape(plan, s);
      const int filters = std::get<ConvolutionParams>(s.params).out_channels;
      if (!cuda::conv_max_pool_fits(xs.c, xs.r, xs.s, filters, p.window, p.stride) || out[3] != filters ||
          plan.tensors[s.outputs[0]].type != StorageType::kFloat16)
        throw_error("step '", s.name, "' has the conv/max-pool tactic, whose kernel takes a ", cuda::kConvMaxPoolTaps,
                    "x", cuda::kConvMaxPoolTaps, " space-to-depth convolution on ", cuda::kConvMaxPoolChannels,
                    " channels into ", cuda::kConvMaxPoolFilters, " FP16 ones and a ", cuda::kConvMaxPoolWindow, "x",
                    cuda::kConvMaxPoolWindow, "/", cuda::kConvMaxPoolStride, " pool, not this one");
    }
    // An input shift goes with the space-to-depth pass that adds it, one finite value per input channel.
    if (!s.input_shift.empty()) {
      const bool fits = is_space_to_depth(s.tactic.kind) && !s.inputs.empty() &&
                        static_cast<int64_t>(s.input_shift.size()) == plan.tensors[s.inputs[0]].shape.back() &&
                        std::all_of(s.input_shift.begin(), s.input_shift.end(), [](float v) { return std::isfinite(v); });
      if (!fits) throw_error("step '", s.name, "' has an input shift without a space-to-depth tactic, of another ",
                             "channel count than its input, or not finite");
    }
    // cuDNN's legacy API pads symmetrically: asymmetric padding needs the explicit copy (a graph tactic may
    // release it, so a plan edited to another tactic could lack it).
    const auto* conv = s.kind == StepKind::kLayer ? std::get_if<ConvolutionParams>(&s.params) : nullptr;
    if (conv && (s.tactic.kind == ConvTactic::Kind::kCudnnFused || s.tactic.kind == ConvTactic::Kind::kCudnnSplit)) {
      const Padding& pad = conv->padding;
      if (s.padded_input == -1 && (pad.top != pad.bottom || pad.left != pad.right))
        throw_error("step '", s.name, "' has the tactic ", describe(s.tactic), " for asymmetric padding but no ",
                    "explicitly padded input");
    }
    // Only an INT8/FP8 convolution step reads 8-bit tensors (the other kernels read FP16/FP32), its input 0
    // always 8-bit; only it may have the 8-bit kernel's tactic.
    const bool quant_conv = s.kind == StepKind::kLayer && s.layer_kind() == LayerKind::kConvolution &&
                            is_quantized(s.precision);
    if (quant_conv && !is_8bit(plan.tensors[s.inputs.at(0)].type))
      throw_error("INT8/FP8 convolution step '", s.name, "' reads the ", to_string(plan.tensors[s.inputs[0]].type),
                  " tensor '", plan.tensors[s.inputs[0]].name, "'");
    if (s.kind == StepKind::kLayer && !quant_conv)
      for (int id : s.inputs)
        if (is_8bit(plan.tensors[id].type))
          throw_error("step '", s.name, "' (", to_string(s.precision), ") reads the 8-bit tensor '", plan.tensors[id].name, "'");
    if (is_quant_conv(s.tactic.kind) != (quant_conv && s.tactic.kind != ConvTactic::Kind::kUnset))
      throw_error("step '", s.name, "' has the tactic ", describe(s.tactic), " as a ", to_string(s.precision), " step");
  }
  for (int id : plan.inputs) if (!valid(id)) throw_error("an input binding names tensor ", id);
  for (int id : plan.outputs) if (!valid(id)) throw_error("an output binding names tensor ", id);
  if (plan.max_batch < 1) throw_error("the largest batch is ", plan.max_batch);
}

PlanData read_plan_data(ByteReader& r) {
  PlanData plan;
  plan.precision = checked_enum<Precision>(r.u8("precision"), 5, "the precision");
  plan.max_batch = r.i32("max batch");
  plan.workspace_limit = r.i64("workspace"), plan.workspace_bytes = r.i64("workspace"), plan.arena_bytes = r.i64("arena");
  const int64_t tensors = r.count("tensors", 1);
  for (int64_t i = 0; i < tensors; ++i) {
    PlanTensor t;
    t.name = r.str("a tensor name"), t.shape = r.shape("a tensor shape");
    t.type = checked_enum<StorageType>(r.u8("a tensor type"), 4, "a tensor type");
    t.place = checked_enum<TensorPlace>(r.u8("a tensor place"), 4, "a tensor place");
    t.offset = r.i64("a tensor offset"), t.view_of = r.i32("a tensor view"), t.channel_offset = r.i64("a tensor view");
    t.scale = r.f32("a tensor scale");
    plan.tensors.push_back(std::move(t));
  }
  const int64_t steps = r.count("steps", 1);
  for (int64_t i = 0; i < steps; ++i) {
    PlanStep s;
    s.name = r.str("a step name");
    s.kind = checked_enum<StepKind>(r.u8("a step kind"), 2, "a step kind");
    if (s.kind == StepKind::kLayer) s.params = read_params(r);
    s.inputs = r.ints("step inputs"), s.outputs = r.ints("step outputs");
    s.precision = checked_enum<Precision>(r.u8("a step precision"), 5, "a step precision");
    s.tactic.kind = checked_enum<ConvTactic::Kind>(r.u8("a tactic"), 13, "a tactic kind");
    s.tactic.algo = r.i32("a tactic"), s.tactic.math = r.i32("a tactic");
    s.tactic.workspace = r.i64("a tactic"), s.tactic.ms = r.pod<double>("a tactic");
    if (has_lt_algo(s.tactic.kind)) {
      ConvTactic::LtAlgo& lt = s.tactic.lt;
      for (uint64_t& v : lt.data) v = r.pod<uint64_t>("a cuBLASLt algorithm");
      lt.version = r.i64("a cuBLASLt algorithm"), lt.id = r.i32("a cuBLASLt algorithm");
      lt.tile = r.i32("a cuBLASLt algorithm"), lt.stages = r.i32("a cuBLASLt algorithm");
      lt.split_k = r.i32("a cuBLASLt algorithm");
    }
    if (has_graph_config(s.tactic.kind)) {
      s.tactic.graph.version = r.i64("a cuDNN graph configuration");
      const int64_t knobs = r.count("a cuDNN graph configuration's knobs", 12);
      for (int64_t k = 0; k < knobs; ++k) {
        const int32_t type = r.i32("a cuDNN graph knob");
        s.tactic.graph.knobs.emplace_back(type, r.i64("a cuDNN graph knob"));
      }
    }
    if (s.tactic.kind == ConvTactic::Kind::kQuant) s.tactic.variant_name = r.str("an 8-bit convolution variant");
    s.padded_input = r.i32("a step");
    s.note = r.str("a step note");
    s.lane = r.u8("a step's lane");
    s.pool.window = r.i32("a step's fused pool");
    if (s.pool.window != 0) {
      s.pool.name = r.str("a step's fused pool");
      s.pool.stride = r.i32("a step's fused pool"), s.pool.top = r.i32("a step's fused pool");
      s.pool.left = r.i32("a step's fused pool");
      s.pool.conv_h = r.i32("a step's fused pool"), s.pool.conv_w = r.i32("a step's fused pool");
    }
    const int64_t shifts = r.count("a step's input shift", 4);
    for (int64_t k = 0; k < shifts; ++k) s.input_shift.push_back(r.f32("a step's input shift"));
    plan.steps.push_back(std::move(s));
  }
  plan.inputs = r.ints("input bindings"), plan.outputs = r.ints("output bindings");
  const int64_t passes = r.count("passes", 1);
  for (int64_t i = 0; i < passes; ++i) plan.passes.push_back(r.str("a pass report"));
  plan.model_fingerprint = r.str("the calibration's model"), plan.calibrator = r.str("the calibrator");
  check_indices(plan);
  return plan;
}

}  // namespace

std::vector<uint8_t> serialize_plan(const PlanData& plan, const PlanTarget& target) {
  ByteWriter body;
  write_body(body, plan, target);
  ByteWriter out;
  out.bytes.insert(out.bytes.end(), kMagic, kMagic + sizeof(kMagic));
  out.pod(kPlanFormatVersion);
  out.pod(fnv1a64(body.bytes.data(), body.bytes.size()));
  out.pod(static_cast<uint64_t>(body.bytes.size()));
  out.bytes.insert(out.bytes.end(), body.bytes.begin(), body.bytes.end());
  return out.bytes;
}

ParsedPlan parse_plan(const std::vector<uint8_t>& bytes, const std::string& path) {
  if (bytes.size() < kFixedHeader || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    throw_error("plan ", path, ": not an eastrt plan (", bytes.size() < kFixedHeader ? "too short" : "no EASTRTPL magic",
                ")");
  ByteReader header(bytes.data() + sizeof(kMagic), kFixedHeader - sizeof(kMagic));
  const uint32_t format = header.pod<uint32_t>("the format version");
  const uint64_t checksum = header.pod<uint64_t>("the checksum");
  const uint64_t body_size = header.pod<uint64_t>("the size");
  if (format != kPlanFormatVersion)
    throw_error("plan ", path, ": plan format version ", format, ", this eastrt (", EASTRT_VERSION, ") reads version ",
                kPlanFormatVersion, "; build the plan again");
  const uint64_t have = bytes.size() - kFixedHeader;
  if (have != body_size)
    throw_error("plan ", path, ": ", have < body_size ? "truncated" : "has trailing bytes", " (", body_size,
                " bytes expected after the header, ", have, " present)");
  const uint8_t* body = bytes.data() + kFixedHeader;
  if (fnv1a64(body, static_cast<size_t>(body_size)) != checksum)
    throw_error("plan ", path, ": corrupt (the checksum of its contents does not match the header)");

  ParsedPlan parsed;
  ByteReader r(body, static_cast<size_t>(body_size));
  try {
    parsed.target.eastrt_version = r.str("the eastrt version");
    parsed.target.gpu_name = r.str("the GPU name");
    parsed.target.major = r.i32("the compute capability");
    parsed.target.minor = r.i32("the compute capability");
  } catch (const Error& e) {
    throw_error("plan ", path, ": corrupt header: ", e.what());
  }
  if (parsed.target.eastrt_version != EASTRT_VERSION)
    throw_error("plan ", path, ": built by eastrt ", parsed.target.eastrt_version, ", this is eastrt ", EASTRT_VERSION,
                "; build the plan again");
  try {
    parsed.plan = read_plan_data(r);
    if (!r.done()) throw_error("bytes are left after the plan");
  } catch (const Error& e) {
    throw_error("plan ", path, ": corrupt contents: ", e.what());
  }
  return parsed;
}

void check_plan_target(const PlanTarget& target, const GpuInfo& gpu, const std::string& path) {
  if (!gpu.available)
    throw_error("plan ", path, ": built for ", target.gpu_name, " (compute capability ", target.major, ".", target.minor,
                "), but this machine has no usable GPU (", gpu.reason, ")");
  if (gpu.name != target.gpu_name || gpu.major != target.major || gpu.minor != target.minor)
    throw_error("plan ", path, ": built for ", target.gpu_name, " (compute capability ", target.major, ".", target.minor,
                "), this GPU is ", gpu.name, " (compute capability ", gpu.major, ".", gpu.minor,
                "); tactics are timed for one GPU, so build the plan again on this one");
}

}  // namespace eastrt::gpu
