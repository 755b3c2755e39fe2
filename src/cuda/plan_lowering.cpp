// Lowering an optimised Network to a plan without tactics: storage types (8-bit where an INT8/FP8 engine
// quantises), casts, in-place concatenation views, explicit padding (asymmetric borders, FP16 channels to a
// multiple of 8), and the activation memory plan (see plan.h).
#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "cuda/conv_max_pool.h"
#include "cuda/memory_planner.h"
#include "cuda/plan.h"
#include "cuda/space_to_depth.h"
#include "eastrt/calibration.h"
#include "eastrt/error.h"
#include "passes/passes.h"
#ifdef EASTRT_HAVE_CUDA
#include "cuda/plan_quant.h"
#endif

namespace eastrt::gpu {
namespace {

bool gpu_runs(LayerKind kind) {
  switch (kind) {
    case LayerKind::kConvolution:
    case LayerKind::kDeconvolution:
    case LayerKind::kScale:
    case LayerKind::kPooling:
    case LayerKind::kActivation:
    case LayerKind::kElementWise:
    case LayerKind::kUnary:
    case LayerKind::kConcatenation:
    case LayerKind::kResize:
      return true;
    default:
      return false;
  }
}

int normalized_axis(int axis, size_t rank) { return axis < 0 ? axis + static_cast<int>(rank) : axis; }

int storage_root(const PlanData& plan, int id) {
  return plan.tensors[id].place == TensorPlace::kView ? plan.tensors[id].view_of : id;
}

// Per storage root, the steps that write it and those that read it, in step order.
struct Access {
  std::vector<std::vector<int>> writers, readers;
};

Access storage_access(const PlanData& plan) {
  Access a;
  a.writers.resize(plan.tensors.size()), a.readers.resize(plan.tensors.size());
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    for (int id : plan.steps[s].outputs) a.writers[storage_root(plan, id)].push_back(static_cast<int>(s));
    for (int id : plan.steps[s].inputs) {
      std::vector<int>& r = a.readers[storage_root(plan, id)];
      if (r.empty() || r.back() != static_cast<int>(s)) r.push_back(static_cast<int>(s));
    }
  }
  return a;
}

}  // namespace

std::vector<Lifetime> step_windows(const PlanData& plan) {
  const int n = static_cast<int>(plan.steps.size());
  const Access access = storage_access(plan);
  std::vector<Lifetime> window(plan.steps.size());
  for (int s = 0; s < n; ++s) {
    window[s] = {s, s};
    if (plan.steps[s].lane == 0) continue;
    int first = 0;
    for (int id : plan.steps[s].inputs)
      for (int w : access.writers[storage_root(plan, id)])
        if (w < s) first = std::max(first, plan.steps[w].lane == 0 ? w + 1 : window[w].first);
    window[s].first = std::min(first, s);
  }
  for (int s = n - 1; s >= 0; --s) {
    if (plan.steps[s].lane == 0) continue;
    int last = n - 1;
    for (int id : plan.steps[s].outputs)
      for (int r : access.readers[storage_root(plan, id)])
        if (r > s) last = std::min(last, plan.steps[r].lane == 0 ? r - 1 : window[r].last);
    window[s].last = std::max(last, s);
  }
  return window;
}

std::vector<Lifetime> arena_lifetimes(const PlanData& plan) {
  std::vector<Lifetime> life(plan.tensors.size());
  const std::vector<Lifetime> window = step_windows(plan);
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const PlanStep& step = plan.steps[s];
    std::vector<int> touched = step.inputs;
    touched.insert(touched.end(), step.outputs.begin(), step.outputs.end());
    if (step.padded_input >= 0) touched.push_back(step.padded_input);
    for (int id : touched) {
      const int r = storage_root(plan, id);
      if (plan.tensors[r].place != TensorPlace::kArena) continue;
      Lifetime& l = life[r];
      l.first = l.first < 0 ? window[s].first : std::min(l.first, window[s].first);
      l.last = std::max(l.last, window[s].last);
    }
  }
  return life;
}

int assign_side_lane(PlanData& plan) {
  const int n = static_cast<int>(plan.steps.size());
  const Access access = storage_access(plan);
  std::vector<bool> viewed(plan.tensors.size(), false);
  for (const PlanTensor& t : plan.tensors)
    if (t.place == TensorPlace::kView) viewed[static_cast<size_t>(t.view_of)] = true;
  auto whole = [&](int id) { return plan.tensors[id].place != TensorPlace::kView && !viewed[id]; };
  int assigned = 0;
  for (int s = 0; s < n; ++s) {
    PlanStep& step = plan.steps[s];
    if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution) continue;
    if (!std::all_of(step.inputs.begin(), step.inputs.end(), whole) || !whole(step.outputs[0])) continue;
    int fork = -1, join = n;
    bool writers_on_lane0 = true;
    for (int id : step.inputs)
      for (int w : access.writers[id])
        if (w < s) fork = std::max(fork, w), writers_on_lane0 = writers_on_lane0 && plan.steps[w].lane == 0;
    if (!writers_on_lane0) continue;
    for (int r : access.readers[step.outputs[0]])
      if (r > s) join = std::min(join, r);
    bool alongside = false;
    for (int m = fork + 1; m < join && !alongside; ++m) alongside = m != s && plan.steps[m].lane == 0;
    if (!alongside) continue;
    step.lane = 1;
    ++assigned;
  }
  return assigned;
}

std::vector<std::vector<int>> cross_lane_waits(const PlanData& plan) {
  const Access access = storage_access(plan);
  std::vector<std::vector<int>> waits(plan.steps.size());
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    for (int id : plan.steps[s].inputs)
      for (int w : access.writers[storage_root(plan, id)])
        if (w < static_cast<int>(s) && plan.steps[w].lane != plan.steps[s].lane) waits[s].push_back(w);
    std::sort(waits[s].begin(), waits[s].end());
    waits[s].erase(std::unique(waits[s].begin(), waits[s].end()), waits[s].end());
  }
  return waits;
}

namespace {

// What an INT8/FP8 engine quantises: the 8-bit tensors with their scales, the convolutions the 8-bit kernel
// runs, and why each other convolution is kept.
struct Quantization {
  StorageType type = StorageType::kInt8;
  std::map<int, float> scales;             // network tensor id → scale, for the tensors stored 8-bit
  std::set<std::string> layers;            // convolutions run on 8-bit tensors
  std::map<std::string, std::string> kept;  // convolution → why it is kept in high precision
  const CalibratedInputs* calibrated = nullptr;  // run_builder_passes', or null: every input is calibrated
};

// The quantised tensors and layers for a set of kept convolutions, closed as FakeQuantEngine closes it: a
// kept convolution leaves its input tensor unquantised, and so every convolution reading that tensor.
void close_quantization(const Network& network, const quant::CalibrationCache& cache, Quantization& q) {
  q.scales.clear(), q.layers.clear();
  for (quant::QuantizedTensor t : quant::quantized_tensors(network)) {
    // A convolution without a calibrated input is no reader of a quantised tensor here: FP16, it reads the
    // tensor as a pooling would.
    if (q.calibrated) {
      auto uncalibrated = [&](const std::string& c) {
        const auto found = q.calibrated->find(c);
        return found == q.calibrated->end() || found->second != t.name;
      };
      for (const std::string& c : t.consumers)
        if (uncalibrated(c) && !q.kept.count(c))
          q.kept[c] = "kept: the FP16 passes gave it the input '" + t.name + "', which the calibration did not see";
      t.consumers.erase(std::remove_if(t.consumers.begin(), t.consumers.end(), uncalibrated), t.consumers.end());
      if (t.consumers.empty()) continue;
    }
    std::string kept_by;
    for (const std::string& c : t.consumers)
      if (kept_by.empty() && q.kept.count(c)) kept_by = c;
    if (!kept_by.empty()) {
      for (const std::string& c : t.consumers)
        if (!q.kept.count(c)) q.kept[c] = "kept: it reads '" + t.name + "' with " + kept_by + ", which is kept";
      continue;
    }
    const quant::TensorRange* range = cache.find(t.name);
    EASTRT_CHECK(range, "GPU builder: the calibration cache has no range for tensor '", t.name, "' (the input of ",
                 t.consumers[0], ")");
    q.scales[t.id] = range->scale;
    q.layers.insert(t.consumers.begin(), t.consumers.end());
  }
}

PlanData lower(const Network& network, const BuildOptions& options, const Quantization* q) {
  EASTRT_CHECK(options.max_batch >= 1, "GPU builder: max_batch must be at least 1, got ", options.max_batch);
  PlanData plan;
  plan.precision = options.precision;
  plan.max_batch = options.max_batch;
  plan.workspace_limit = static_cast<int64_t>(options.workspace_bytes);
  const int64_t batch = options.max_batch;
  const std::vector<Layer>& layers = network.layers();

  // In an INT8/FP8 engine the quantised convolutions run in its precision and every other layer in FP16,
  // or in its per-layer precision.
  auto precision_of = [&](const Layer& layer) {
    auto found = options.layer_precisions.find(layer.name);
    if (!q) return found == options.layer_precisions.end() ? options.precision : found->second;
    if (q->layers.count(layer.name)) return options.precision;
    return found == options.layer_precisions.end() || is_quantized(found->second) ? Precision::kFp16 : found->second;
  };
  auto scale_of = [&](int tensor) {
    if (!q) return 0.0f;
    auto found = q->scales.find(tensor);
    return found == q->scales.end() ? 0.0f : found->second;
  };
  auto batch_major = [&](const Tensor& t, const std::string& what) {
    EASTRT_CHECK(!t.shape.empty() && t.shape[0] == batch, "GPU builder: ", what, " '", t.name, "' has shape ",
                 to_string(t.shape), "; the GPU engine needs the batch (", batch, ") as every tensor's first dimension");
  };

  std::vector<int> readers(static_cast<size_t>(network.tensor_count()), 0);
  for (const Layer& layer : layers) {
    EASTRT_CHECK(gpu_runs(layer.kind()), "GPU builder: layer '", layer.name, "' (", to_string(layer.kind()),
                 "): the GPU engine has no kernel for this kind of layer yet");
    for (int id : layer.inputs) ++readers[static_cast<size_t>(id)];
  }

  // Plan tensors for the inputs and every layer output, typed by their producer's precision. plan_id is
  // what readers read: for an 8-bit tensor its codes, a copy beside the binding when it is an input or an
  // output. written is what the producer writes: an 8-bit tensor's FP16 values before the cast that
  // quantises them, unless the producer is a quantised convolution, which writes the codes itself.
  std::vector<int> plan_id(static_cast<size_t>(network.tensor_count()), -1);
  std::vector<int> written(plan_id.size(), -1), binding(plan_id.size(), -1);
  auto add_tensor = [&](PlanTensor t) {
    plan.tensors.push_back(std::move(t));
    return static_cast<int>(plan.tensors.size()) - 1;
  };
  auto arena_copy = [&](int id, const std::string& name, StorageType type, float scale) {
    PlanTensor t = plan.tensors[id];
    t.name = name, t.type = type, t.scale = scale;
    t.place = TensorPlace::kArena;
    t.offset = 0, t.view_of = -1, t.channel_offset = 0;
    return add_tensor(t);
  };
  for (size_t i = 0; i < network.inputs().size(); ++i) {
    const Tensor& t = network.tensor(network.inputs()[i]);
    batch_major(t, "input");
    EASTRT_CHECK(!t.is_output, "GPU builder: input '", t.name, "' is also an output; the GPU engine does not copy inputs to outputs");
    binding[t.id] = written[t.id] = plan_id[t.id] =
        add_tensor({t.name, t.shape, StorageType::kFloat32, TensorPlace::kInput, static_cast<int64_t>(i)});
    plan.inputs.push_back(plan_id[t.id]);
    if (scale_of(t.id) > 0) plan_id[t.id] = arena_copy(binding[t.id], t.name + "/" + to_string(q->type), q->type, scale_of(t.id));
  }
  std::map<int, int> output_binding;
  for (size_t i = 0; i < network.outputs().size(); ++i) output_binding[network.outputs()[i]] = static_cast<int>(i);
  for (const Layer& layer : layers) {
    const Tensor& t = network.tensor(layer.outputs.at(0));
    EASTRT_CHECK(layer.outputs.size() == 1, "GPU builder: layer '", layer.name, "' has ", layer.outputs.size(), " outputs");
    batch_major(t, "tensor");
    const Precision precision = precision_of(layer);
    const float scale = scale_of(t.id);
    // A quantised convolution writes its output's own type: 8-bit, or FP16 (float32 into a binding).
    PlanTensor pt{t.name, t.shape, is_quantized(precision) ? StorageType::kFloat16 : storage_type(precision),
                  TensorPlace::kArena, 0};
    if (t.is_output) {
      pt.type = StorageType::kFloat32;
      pt.place = TensorPlace::kOutput;
      pt.offset = output_binding.at(t.id);
    }
    const int id = add_tensor(pt);
    written[t.id] = plan_id[t.id] = id;
    if (scale > 0) {
      if (t.is_output) binding[t.id] = id, plan_id[t.id] = arena_copy(id, t.name + "/" + to_string(q->type), q->type, scale);
      else plan.tensors[id].type = q->type, plan.tensors[id].scale = scale;
      written[t.id] = is_quantized(precision)
                          ? plan_id[t.id]
                          : arena_copy(plan_id[t.id], t.name + "/" + to_string(storage_type(precision)),
                                       storage_type(precision), 0.0f);
    }
  }
  plan.outputs.resize(network.outputs().size());
  for (const auto& [id, index] : output_binding) plan.outputs[index] = binding[id] >= 0 ? binding[id] : plan_id[id];

  // A Resize read only by a channel Concatenation writes straight into its channels of the concatenation
  // (EAST's ×2 upsampling before each merge), so the concatenation copies only its other inputs.
  for (const Layer& layer : layers) {
    if (layer.kind() != LayerKind::kConcatenation) continue;
    const Tensor& out = network.tensor(layer.outputs[0]);
    if (out.shape.size() != 4 || normalized_axis(layer.as<ConcatenationParams>().axis, 4) != 3) continue;
    int64_t channel = 0;
    for (int id : layer.inputs) {
      const Tensor& in = network.tensor(id);
      const bool once = std::count(layer.inputs.begin(), layer.inputs.end(), id) == 1;
      if (in.producer >= 0 && layers[in.producer].kind() == LayerKind::kResize && readers[id] == 1 && once &&
          !in.is_output && written[id] == plan_id[id]) {
        PlanTensor& view = plan.tensors[plan_id[id]];
        view.place = TensorPlace::kView;
        view.view_of = written[out.id];
        view.channel_offset = channel;
        view.type = plan.tensors[written[out.id]].type;
      }
      channel += in.shape[3];
    }
  }

  // Casts: where a layer needs its operand in another type (cuDNN takes one type for input, residual and
  // output; no kernel but the 8-bit convolution reads 8-bit codes), one cast per tensor and type, shared by
  // its readers; and where a producer's values become an 8-bit tensor or an 8-bit tensor a float binding.
  auto add_cast = [&](int from, int to, const std::string& name) {
    PlanStep cast;
    cast.name = name;
    cast.kind = StepKind::kCast;
    cast.inputs = {from};
    cast.outputs = {to};
    const StorageType type = plan.tensors[to].type;
    cast.precision = type == StorageType::kFloat16 ? Precision::kFp16
                     : type == StorageType::kFloat32 ? Precision::kFp32
                                                      : options.precision;
    plan.steps.push_back(std::move(cast));
  };
  std::map<std::pair<int, StorageType>, int> casts;
  auto cast_to = [&](int id, StorageType type) {
    if (plan.tensors[id].type == type) return id;
    auto found = casts.find({id, type});
    if (found != casts.end()) return found->second;
    const int cid = arena_copy(id, plan.tensors[id].name + "/to_" + to_string(type), type, 0.0f);
    add_cast(id, cid, plan.tensors[cid].name);
    casts[{id, type}] = cid;
    return cid;
  };
  // What a layer other than a quantised convolution reads: the tensor, or for an 8-bit one its FP16 copy.
  auto readable = [&](int id) { return is_8bit(plan.tensors[id].type) ? cast_to(id, StorageType::kFloat16) : id; };
  // After the producer of network tensor t: its 8-bit codes from what it wrote, its binding from the codes.
  auto finish = [&](int t) {
    if (written[t] != plan_id[t]) add_cast(written[t], plan_id[t], plan.tensors[plan_id[t]].name + "/quantize");
    if (binding[t] >= 0 && binding[t] != plan_id[t] && plan.tensors[binding[t]].place == TensorPlace::kOutput)
      add_cast(plan_id[t], binding[t], plan.tensors[binding[t]].name + "/dequantize");
  };
  for (int id : network.inputs()) finish(id);

  for (const Layer& layer : layers) {
    PlanStep step;
    step.name = layer.name;
    step.kind = StepKind::kLayer;
    step.params = layer.params;
    step.precision = precision_of(layer);
    if (q && q->kept.count(layer.name)) step.note = q->kept.at(layer.name);
    const int t = layer.outputs[0];
    const int out = written[t];
    if (layer.kind() == LayerKind::kConcatenation) {
      const int axis = normalized_axis(layer.as<ConcatenationParams>().axis, plan.tensors[out].shape.size());
      EASTRT_CHECK(axis > 0, "GPU builder: layer '", layer.name, "' concatenates along the batch, which the GPU engine does not");
    }
    if (layer.kind() != LayerKind::kConvolution) {
      for (int id : layer.inputs) step.inputs.push_back(readable(plan_id[id]));
      step.outputs = {out};
      plan.steps.push_back(std::move(step));
      finish(t);
      continue;
    }
    if (is_quantized(step.precision)) {
      // The 8-bit kernel reads the codes of its input and its residual as stored (8-bit, FP16 or float32),
      // pads itself and writes the output's type.
      for (int id : layer.inputs) step.inputs.push_back(plan_id[id]);
      EASTRT_CHECK(is_8bit(plan.tensors[step.inputs[0]].type), "GPU builder: quantised convolution '", layer.name,
                   "' has an unquantised input (a lowering bug)");
      step.outputs = {out};
      plan.steps.push_back(std::move(step));
      finish(t);
      continue;
    }

    const auto& conv = layer.as<ConvolutionParams>();
    const StorageType type = storage_type(step.precision);
    // cuDNN pads symmetrically; the part of an asymmetric padding beyond that is written out explicitly, and
    // so are FP16 input channels up to a multiple of 8 (zeros, with zero filter channels to match), where
    // cuDNN's tensor-core kernels start (EAST's first convolution has 3). The padding copy converts the type
    // too, so a padded input is read as it is, with no cast before it.
    const Padding& p = conv.padding;
    const int extra_h = std::abs(p.top - p.bottom), extra_w = std::abs(p.left - p.right);
    const int64_t channels = plan.tensors[plan_id[layer.inputs[0]]].shape[3];
    const int64_t extra_c = type == StorageType::kFloat16 && conv.groups == 1 && channels % 8 ? 8 - channels % 8 : 0;
    const bool pad = extra_h || extra_w || extra_c;
    for (size_t i = 0; i < layer.inputs.size(); ++i)
      step.inputs.push_back(i == 0 && pad ? readable(plan_id[layer.inputs[0]]) : cast_to(plan_id[layer.inputs[i]], type));
    if (pad) {
      PlanTensor padded = plan.tensors[step.inputs[0]];
      padded.name = layer.name + "/padded_input";
      padded.type = type;
      padded.shape[1] += extra_h;
      padded.shape[2] += extra_w;
      padded.shape[3] += extra_c;
      padded.place = TensorPlace::kArena;
      padded.offset = 0, padded.view_of = -1, padded.channel_offset = 0, padded.scale = 0;
      step.padded_input = add_tensor(padded);
    }
    if (plan.tensors[out].type == type) {
      step.outputs = {out};
      plan.steps.push_back(std::move(step));
      finish(t);
      continue;
    }
    // A half-precision convolution whose output is a float32 binding: it writes a half tensor, cast after.
    const int rid = arena_copy(out, layer.name + "/" + to_string(type), type, 0.0f);
    step.outputs = {rid};
    plan.steps.push_back(std::move(step));
    add_cast(rid, out, layer.name + "/to_" + to_string(plan.tensors[out].type));
    finish(t);
  }

  plan_arena(plan);
  return plan;
}

}  // namespace

std::map<std::string, std::string> faster_in_fp16(const std::map<std::string, double>& quant_ms,
                                                  const std::map<std::string, double>& fp16_ms, double margin) {
  std::map<std::string, std::string> faster;
  for (const auto& [layer, ms] : quant_ms) {
    auto fp16 = fp16_ms.find(layer);
    if (fp16 == fp16_ms.end() || !(fp16->second > 0) || !(fp16->second < margin * ms)) continue;
    std::ostringstream note;
    note.precision(3);
    note << "kept: FP16 is faster here (" << fp16->second << " ms, 8 bits " << ms << " ms)";
    faster[layer] = note.str();
  }
  return faster;
}

std::vector<std::string> run_builder_passes(Network& network, Precision precision, CalibratedInputs* calibrated,
                                            bool upsample_8bit) {
  std::vector<std::string> lines;
  auto report = [&](const passes::PassReport& r) {
    lines.push_back(r.pass + ": " + std::to_string(r.rewrites) + " rewrites, " + std::to_string(r.layers_after) +
                    " layers after");
  };
  passes::PassOptions options;
  options.upsample_after_convolution = options.merge_concatenated_heads = !is_quantized(precision);
  for (const passes::PassReport& r : passes::run_default_passes(network, options)) report(r);
  if (!is_quantized(precision)) return lines;
  // The calibration names the tensors of the network up to here.
  if (calibrated) {
    calibrated->clear();
    for (const Layer& layer : network.layers())
      if (layer.kind() == LayerKind::kConvolution) (*calibrated)[layer.name] = network.tensor(layer.inputs.at(0)).name;
  }
  if (!upsample_8bit) return lines;
  passes::PassReport moved{"upsample_after_convolution", 0, 0};
  try {
    moved.rewrites = passes::upsample_after_convolution(network);
    network.validate();
    network.infer_shapes();
  } catch (const Error& e) {
    throw_error("pass upsample_after_convolution left an invalid network: ", e.what());
  }
  moved.layers_after = network.layers().size();
  report(moved);
  return lines;
}

std::shared_ptr<const quant::CalibrationCache> calibration_for(const Network& network, const BuildOptions& options) {
  if (!is_quantized(options.precision)) return nullptr;
  const quant::QuantType type = quant_type(options.precision);
  std::shared_ptr<const quant::CalibrationCache> cache = options.calibration;
  std::string path = "<memory>";
  if (!cache) {
    EASTRT_CHECK(!options.calibration_cache.empty(), "GPU builder: a ", to_string(options.precision),
                 " engine needs a calibration cache (eastrt: --calib-cache FILE, made by eastrt calibrate; "
                 "BuildOptions::calibration or calibration_cache)");
    path = options.calibration_cache;
    cache = std::make_shared<const quant::CalibrationCache>(quant::read_cache(path));
  }
  quant::check_cache_matches(*cache, path, network, type);
  return cache;
}

PlanData lower_network(const Network& network, const BuildOptions& options, const CalibratedInputs* calibrated) {
  for (const auto& [name, precision] : options.layer_precisions)
    EASTRT_CHECK(!is_quantized(precision) || precision == options.precision, "GPU builder: layer '", name, "' is given ",
                 to_string(precision), " in a ", to_string(options.precision), " engine; ",
                 "8-bit layers need an engine of that precision (and its calibration cache)");
  if (!is_quantized(options.precision)) return lower(network, options, nullptr);
#ifndef EASTRT_HAVE_CUDA
  static_cast<void>(calibrated);
  throw_error("GPU builder: ", to_string(options.precision), " engines need eastrt built with CUDA");
#else
  EASTRT_CHECK(options.calibration, "GPU builder: a ", to_string(options.precision),
               " plan needs its calibration cache (eastrt: --calib-cache FILE)");
  const quant::CalibrationCache& cache = *options.calibration;
  Quantization q;
  q.type = storage_type(options.precision);
  q.calibrated = calibrated;
  for (const std::string& layer : cache.keep_high_precision) q.kept[layer] = "kept by the calibration cache";
  for (const auto& [name, precision] : options.layer_precisions)
    if (!is_quantized(precision)) q.kept[name] = std::string("kept: per-layer precision ") + to_string(precision);
  // The kernel's answer depends on the final types around each convolution (its output 8-bit or not), which
  // depend on what is kept: lower, keep what the kernel refuses, and lower again until it takes every one.
  for (;;) {
    close_quantization(network, cache, q);
    PlanData plan = lower(network, options, &q);
    bool refused = false;
    for (const PlanStep& step : plan.steps) {
      if (step.kind != StepKind::kLayer || step.layer_kind() != LayerKind::kConvolution || !is_quantized(step.precision))
        continue;
      const std::string why = quant_conv_refusal(plan, step);
      if (why.empty()) continue;
      q.kept[step.name] = std::string("kept: the ") + to_string(options.precision) + " kernel does not take it (" + why + ")";
      refused = true;
    }
    if (refused) continue;
    plan.model_fingerprint = cache.model_fingerprint;
    plan.calibrator = quant::to_string(cache.calibrator);
    if (cache.calibrator == quant::Calibrator::kPercentile) {
      std::ostringstream share;
      share << " " << cache.percentile;
      plan.calibrator += share.str();
    }
    return plan;
  }
#endif
}

void plan_arena(PlanData& plan) {
  // The activation buffer: every arena tensor (a concatenation with its views as one) for the steps it lives.
  const std::vector<Lifetime> life = arena_lifetimes(plan);
  std::vector<BufferRequest> requests;
  std::vector<int> owners;
  for (size_t id = 0; id < plan.tensors.size(); ++id) {
    if (plan.tensors[id].place != TensorPlace::kArena || life[id].first < 0) continue;
    requests.push_back({plan.tensors[id].bytes(), life[id].first, life[id].last});
    owners.push_back(static_cast<int>(id));
  }
  const MemoryPlan memory = plan_memory(requests);
  for (size_t i = 0; i < owners.size(); ++i) plan.tensors[owners[i]].offset = memory.offsets[i];
  plan.arena_bytes = memory.total_bytes;
}

bool padded_copy_only_pads(const PlanData& plan, const PlanStep& step) {
  if (step.padded_input < 0) return false;
  const PlanTensor& in = plan.tensors[step.inputs[0]];
  const PlanTensor& copy = plan.tensors[step.padded_input];
  return in.type == copy.type && in.shape[3] == copy.shape[3];
}

int release_padded_copies(PlanData& plan) {
  // With the copy goes its place in the activation buffer (at batch 16 on EAST's conv1 in FP16, 8 channels
  // at full size, twice space-to-depth's X'). The direct tactic keeps it: its filter's channel count follows
  // the padded input.
  int released = 0;
  for (PlanStep& step : plan.steps) {
    if (step.kind != StepKind::kLayer || step.padded_input < 0) continue;
    if (is_space_to_depth(step.tactic.kind) || (is_cudnn_graph(step.tactic.kind) && padded_copy_only_pads(plan, step)))
      step.padded_input = -1, ++released;
  }
  if (released > 0) plan_arena(plan);
  return released;
}

std::vector<int> max_pools_to_fuse(const PlanData& plan) {
  std::vector<int> pools(plan.steps.size(), -1);
  const Access access = storage_access(plan);
  for (size_t i = 0; i + 1 < plan.steps.size(); ++i) {
    const PlanStep& conv = plan.steps[i];
    if (conv.kind != StepKind::kLayer || conv.layer_kind() != LayerKind::kConvolution) continue;
    // On space-to-depth, and not fused already (that is the other space-to-depth kind).
    if (!is_space_to_depth(conv.tactic.kind) || conv.pool.window != 0) continue;
    if (conv.precision != Precision::kFp16 || conv.inputs.size() != 1 || conv.lane != 0) continue;
    const StorageType input = plan.tensors[conv.inputs[0]].type;
    if (input != StorageType::kFloat32 && input != StorageType::kFloat16) continue;
    const auto& c = std::get<ConvolutionParams>(conv.params);
    if (c.activation && c.activation->type != ActivationType::kRelu) continue;
    const int y = conv.outputs[0];
    // Read by one step, and not outside the engine (a network output).
    const std::vector<int>& readers = access.readers[y];
    if (plan.tensors[y].type != StorageType::kFloat16 || plan.tensors[y].place == TensorPlace::kView ||
        readers.size() != 1 || std::count(plan.outputs.begin(), plan.outputs.end(), y) ||
        !space_to_depth_applies(plan, conv))
      continue;
    const PlanStep& pool = plan.steps[static_cast<size_t>(readers[0])];
    if (pool.kind != StepKind::kLayer || pool.layer_kind() != LayerKind::kPooling || pool.inputs != std::vector<int>{y} ||
        pool.lane != 0)
      continue;
    const SpaceToDepthShape xs = space_to_depth_shape(plan, conv);
    const auto& p = std::get<PoolingParams>(pool.params);
    const PlanTensor& out = plan.tensors[pool.outputs[0]];
    const bool fits = p.type == PoolingType::kMax && !p.global && p.window[0] == p.window[1] &&
                      p.stride[0] == p.stride[1] &&
                      cuda::conv_max_pool_fits(xs.c, xs.r, xs.s, c.out_channels, p.window[0], p.stride[0]) &&
                      p.padding.top >= 0 && p.padding.top < p.window[0] && p.padding.left >= 0 &&
                      p.padding.left < p.window[1] && out.type == StorageType::kFloat16 &&
                      out.place != TensorPlace::kView && out.shape.size() == 4 && out.shape[3] == c.out_channels;
    if (fits) pools[i] = readers[0];
  }
  return pools;
}

void fuse_max_pool(PlanData& plan, int conv, int pool) {
  EASTRT_CHECK(conv >= 0 && pool > conv && pool < static_cast<int>(plan.steps.size()) &&
                   max_pools_to_fuse(plan)[conv] == pool,
               "fuse_max_pool: step ", pool, " is not a max-pool that step ", conv, " may take in (a builder bug)");
  PlanStep& c = plan.steps[conv];
  const PlanStep& p = plan.steps[pool];
  const auto& params = std::get<PoolingParams>(p.params);
  const Shape& y = plan.tensors[c.outputs[0]].shape;
  c.pool = {p.name, params.window[0], params.stride[0], params.padding.top, params.padding.left,
            static_cast<int>(y[1]), static_cast<int>(y[2])};
  c.outputs[0] = p.outputs[0];
  c.tactic = ConvTactic{};
  c.tactic.kind = ConvTactic::Kind::kSpaceToDepthMaxPool;
  c.tactic.algo = cuda::kConvMaxPoolMmaSync;  // the builder may time the wgmma one too (fuse_max_pools)
  plan.steps.erase(plan.steps.begin() + pool);
}

std::vector<int> input_shifts_to_fold(const PlanData& plan) {
  std::vector<int> shifts(plan.steps.size(), -1);
  const Access access = storage_access(plan);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& conv = plan.steps[i];
    if (conv.kind != StepKind::kLayer || conv.layer_kind() != LayerKind::kConvolution ||
        !is_space_to_depth(conv.tactic.kind) || !conv.input_shift.empty())
      continue;
    // Written by one step and read by the convolution alone (its explicit padded copy, which the tactic
    // lets go, is written by the convolution itself).
    const int x = conv.inputs[0];
    if (plan.tensors[x].place == TensorPlace::kView || access.writers[x].size() != 1 ||
        access.readers[x] != std::vector<int>{static_cast<int>(i)} ||
        std::count(plan.outputs.begin(), plan.outputs.end(), x))
      continue;
    const int j = access.writers[x][0];
    const PlanStep& scale = plan.steps[static_cast<size_t>(j)];
    if (scale.kind != StepKind::kLayer || scale.layer_kind() != LayerKind::kScale || scale.lane != conv.lane) continue;
    const auto& p = std::get<ScaleParams>(scale.params);
    const PlanTensor& source = plan.tensors[scale.inputs[0]];
    if (p.scale || p.power || !p.shift || source.place == TensorPlace::kView || is_8bit(source.type) ||
        source.shape != plan.tensors[x].shape)
      continue;
    shifts[i] = j;
  }
  return shifts;
}

void fold_input_shift(PlanData& plan, int conv, int scale) {
  EASTRT_CHECK(scale >= 0 && scale < conv && conv < static_cast<int>(plan.steps.size()) &&
                   input_shifts_to_fold(plan)[conv] == scale,
               "fold_input_shift: step ", scale, " is not a shift that step ", conv, " may take in (a builder bug)");
  PlanStep& c = plan.steps[conv];
  const PlanStep& s = plan.steps[scale];
  const auto& p = std::get<ScaleParams>(s.params);
  const int64_t channels = plan.tensors[c.inputs[0]].shape.back();
  c.input_shift.assign(static_cast<size_t>(channels), 0.0f);
  for (int64_t k = 0; k < channels; ++k)
    c.input_shift[k] = p.shift->data[p.mode == ScaleMode::kChannel && p.shift->size() != 1 ? k : 0];
  c.inputs[0] = s.inputs[0];
  plan.steps.erase(plan.steps.begin() + scale);
}

std::array<int, 2> conv_output_size(const PlanData& plan, const PlanStep& step) {
  if (step.pool.window != 0) return {step.pool.conv_h, step.pool.conv_w};
  const Shape& y = plan.tensors[step.outputs[0]].shape;
  return {static_cast<int>(y[1]), static_cast<int>(y[2])};
}

}  // namespace eastrt::gpu
