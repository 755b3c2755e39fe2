// Lowering an optimised Network to a plan without tactics: storage types, casts, in-place concatenation
// views, explicit padding (asymmetric borders, FP16 channels to a multiple of 8), and the activation memory
// plan (see plan.h).
#include <algorithm>
#include <map>

#include "cuda/memory_planner.h"
#include "cuda/plan.h"
#include "eastrt/error.h"

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

}  // namespace

std::vector<Lifetime> arena_lifetimes(const PlanData& plan) {
  std::vector<Lifetime> life(plan.tensors.size());
  auto root = [&](int id) { return plan.tensors[id].place == TensorPlace::kView ? plan.tensors[id].view_of : id; };
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const PlanStep& step = plan.steps[s];
    std::vector<int> touched = step.inputs;
    touched.insert(touched.end(), step.outputs.begin(), step.outputs.end());
    if (step.padded_input >= 0) touched.push_back(step.padded_input);
    for (int id : touched) {
      const int r = root(id);
      if (plan.tensors[r].place != TensorPlace::kArena) continue;
      Lifetime& l = life[r];
      l.first = l.first < 0 ? static_cast<int>(s) : std::min(l.first, static_cast<int>(s));
      l.last = std::max(l.last, static_cast<int>(s));
    }
  }
  return life;
}

PlanData lower_network(const Network& network, const BuildOptions& options) {
  EASTRT_CHECK(options.max_batch >= 1, "GPU builder: max_batch must be at least 1, got ", options.max_batch);
  PlanData plan;
  plan.precision = options.precision;
  plan.max_batch = options.max_batch;
  plan.workspace_limit = static_cast<int64_t>(options.workspace_bytes);
  const int64_t batch = options.max_batch;
  const std::vector<Layer>& layers = network.layers();

  auto precision_of = [&](const Layer& layer) {
    auto found = options.layer_precisions.find(layer.name);
    return found == options.layer_precisions.end() ? options.precision : found->second;
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

  // Plan tensors for the inputs and every layer output, typed by their producer's precision.
  std::vector<int> plan_id(static_cast<size_t>(network.tensor_count()), -1);
  auto add_tensor = [&](PlanTensor t) {
    plan.tensors.push_back(std::move(t));
    return static_cast<int>(plan.tensors.size()) - 1;
  };
  for (size_t i = 0; i < network.inputs().size(); ++i) {
    const Tensor& t = network.tensor(network.inputs()[i]);
    batch_major(t, "input");
    EASTRT_CHECK(!t.is_output, "GPU builder: input '", t.name, "' is also an output; the GPU engine does not copy inputs to outputs");
    plan_id[t.id] = add_tensor({t.name, t.shape, StorageType::kFloat32, TensorPlace::kInput, static_cast<int64_t>(i)});
    plan.inputs.push_back(plan_id[t.id]);
  }
  std::map<int, int> output_binding;
  for (size_t i = 0; i < network.outputs().size(); ++i) output_binding[network.outputs()[i]] = static_cast<int>(i);
  for (const Layer& layer : layers) {
    const Tensor& t = network.tensor(layer.outputs.at(0));
    EASTRT_CHECK(layer.outputs.size() == 1, "GPU builder: layer '", layer.name, "' has ", layer.outputs.size(), " outputs");
    batch_major(t, "tensor");
    PlanTensor pt{t.name, t.shape, storage_type(precision_of(layer)), TensorPlace::kArena, 0};
    if (t.is_output) {
      pt.type = StorageType::kFloat32;
      pt.place = TensorPlace::kOutput;
      pt.offset = output_binding.at(t.id);
    }
    plan_id[t.id] = add_tensor(pt);
  }
  plan.outputs.resize(network.outputs().size());
  for (const auto& [id, binding] : output_binding) plan.outputs[binding] = plan_id[id];

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
          !in.is_output) {
        PlanTensor& view = plan.tensors[plan_id[id]];
        view.place = TensorPlace::kView;
        view.view_of = plan_id[out.id];
        view.channel_offset = channel;
        view.type = plan.tensors[plan_id[out.id]].type;
      }
      channel += in.shape[3];
    }
  }

  // Steps, with casts where a convolution needs its operands in its own type (cuDNN takes one type for
  // input, residual and output); one cast per tensor and type, shared by its readers.
  std::map<std::pair<int, StorageType>, int> casts;
  auto cast_to = [&](int id, StorageType type) {
    if (plan.tensors[id].type == type) return id;
    auto found = casts.find({id, type});
    if (found != casts.end()) return found->second;
    PlanTensor converted = plan.tensors[id];
    converted.name += std::string("/to_") + to_string(type);
    converted.type = type;
    converted.place = TensorPlace::kArena;
    converted.offset = 0;
    converted.view_of = -1;
    converted.channel_offset = 0;
    const int cid = add_tensor(converted);
    PlanStep cast;
    cast.name = plan.tensors[cid].name;
    cast.kind = StepKind::kCast;
    cast.inputs = {id};
    cast.outputs = {cid};
    cast.precision = type == StorageType::kFloat16 ? Precision::kFp16 : Precision::kFp32;
    plan.steps.push_back(std::move(cast));
    casts[{id, type}] = cid;
    return cid;
  };

  for (const Layer& layer : layers) {
    PlanStep step;
    step.name = layer.name;
    step.kind = StepKind::kLayer;
    step.params = layer.params;
    step.precision = precision_of(layer);
    const int out = plan_id[layer.outputs[0]];
    if (layer.kind() == LayerKind::kConcatenation) {
      const int axis = normalized_axis(layer.as<ConcatenationParams>().axis, plan.tensors[out].shape.size());
      EASTRT_CHECK(axis > 0, "GPU builder: layer '", layer.name, "' concatenates along the batch, which the GPU engine does not");
    }
    if (layer.kind() != LayerKind::kConvolution) {
      for (int id : layer.inputs) step.inputs.push_back(plan_id[id]);
      step.outputs = {out};
      plan.steps.push_back(std::move(step));
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
      step.inputs.push_back(i == 0 && pad ? plan_id[layer.inputs[0]] : cast_to(plan_id[layer.inputs[i]], type));
    if (pad) {
      PlanTensor padded = plan.tensors[step.inputs[0]];
      padded.name = layer.name + "/padded_input";
      padded.type = type;
      padded.shape[1] += extra_h;
      padded.shape[2] += extra_w;
      padded.shape[3] += extra_c;
      padded.place = TensorPlace::kArena;
      padded.offset = 0, padded.view_of = -1, padded.channel_offset = 0;
      step.padded_input = add_tensor(padded);
    }
    if (plan.tensors[out].type == type) {
      step.outputs = {out};
      plan.steps.push_back(std::move(step));
      continue;
    }
    // A half-precision convolution whose output is a float32 binding: it writes a half tensor, cast after.
    PlanTensor result = plan.tensors[out];
    result.name = layer.name + "/" + to_string(type);
    result.type = type;
    result.place = TensorPlace::kArena;
    result.offset = 0, result.view_of = -1, result.channel_offset = 0;
    const int rid = add_tensor(result);
    step.outputs = {rid};
    plan.steps.push_back(std::move(step));
    PlanStep cast;
    cast.name = layer.name + "/to_" + to_string(plan.tensors[out].type);
    cast.kind = StepKind::kCast;
    cast.inputs = {rid};
    cast.outputs = {out};
    cast.precision = Precision::kFp32;
    plan.steps.push_back(std::move(cast));
  }

  plan_arena(plan);
  return plan;
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

}  // namespace eastrt::gpu
