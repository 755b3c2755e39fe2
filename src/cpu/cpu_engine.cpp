// The CPU executor: runs a Network's layers in order on host tensors, with the fast kernels (or, on
// request, the naive reference ones), freeing each intermediate once its last consumer has run.
#include "eastrt/cpu_engine.h"

#include <algorithm>
#include <thread>

#include "cpu/fast.h"
#include "cpu/naive.h"
#include "cpu/thread_pool.h"
#include "eastrt/error.h"
#include "passes/passes.h"

namespace eastrt {
namespace {

// Keeps the storage of freed intermediates for the next tensors of one run. Fresh std::vector<float>
// storage is zero-filled and, for large tensors, page-faulted in: one extra pass over memory per layer
// that the reused buffers avoid (the fast kernels overwrite every element). A buffer is reused only for
// a tensor at least half its size, and only a few are kept, so the memory held stays bounded.
class BufferRecycler {
 public:
  HostTensor take(const Shape& shape) {
    const size_t count = static_cast<size_t>(volume(shape));
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->size() >= count && it->size() <= 2 * count && (best == free_.end() || it->size() < best->size()))
        best = it;
    HostTensor tensor;
    tensor.shape = shape;
    if (best == free_.end()) {
      tensor.data.resize(count);
    } else {
      tensor.data = std::move(*best);
      free_.erase(best);
      tensor.data.resize(count);  // shrinking writes nothing
    }
    return tensor;
  }

  void give(std::vector<float>&& storage) {
    if (storage.empty()) return;
    free_.push_back(std::move(storage));
    if (free_.size() > kKept)
      free_.erase(std::min_element(free_.begin(), free_.end(),
                                   [](const auto& a, const auto& b) { return a.size() < b.size(); }));
  }

 private:
  static constexpr size_t kKept = 8;
  std::vector<std::vector<float>> free_;
};

std::string input_names(const Network& network) {
  std::string names;
  for (int id : network.inputs()) names += (names.empty() ? "'" : ", '") + network.tensor(id).name + "'";
  return names;
}

}  // namespace

CpuEngine::CpuEngine(Network network, CpuOptions options)
    : network_(std::move(network)),
      options_(options),
      threads_(options.threads > 0 ? options.threads
                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {
  network_.validate();
  // The oracle runs the network as given; the fast path runs it as the GPU builder does, fused.
  if (!options_.naive && options_.fuse) passes::run_default_passes(network_);
}

std::map<std::string, HostTensor> CpuEngine::run(const std::map<std::string, HostTensor>& inputs) {
  return run(inputs, TensorHook());
}

std::map<std::string, HostTensor> CpuEngine::run(const std::map<std::string, HostTensor>& inputs,
                                                 const TensorHook& hook) {
  for (const auto& [name, value] : inputs) {
    const Tensor* tensor = network_.find_tensor(name);
    EASTRT_CHECK(tensor && tensor->is_input, "CpuEngine: '", name, "' is not an input of the network (inputs: ",
                 input_names(network_), ")");
  }
  std::vector<const HostTensor*> values(static_cast<size_t>(network_.tensor_count()), nullptr);
  for (int id : network_.inputs()) {
    Tensor& tensor = network_.tensor(id);
    const auto found = inputs.find(tensor.name);
    EASTRT_CHECK(found != inputs.end(), "CpuEngine: input '", tensor.name, "' (", to_string(tensor.shape),
                 ") was not given");
    const HostTensor& value = found->second;
    EASTRT_CHECK(value.shape.size() == tensor.shape.size(), "CpuEngine: input '", tensor.name, "' has shape ",
                 to_string(value.shape), " of rank ", value.shape.size(), "; the network expects rank ",
                 tensor.shape.size(), " (", to_string(tensor.shape), ")");
    EASTRT_CHECK(value.size() == volume(value.shape), "CpuEngine: input '", tensor.name, "' holds ", value.size(),
                 " values for shape ", to_string(value.shape));
    // Set every input before inferring: several inputs may have to agree with each other.
    tensor.shape = value.shape;
    values[id] = &value;
  }
  // Always inferred again (cheap), so a run never sees the shapes left by an earlier, failed one.
  try {
    network_.infer_shapes();
  } catch (const Error& e) {
    throw_error("CpuEngine: the given input shapes do not fit the network: ", e.what());
  }

  const std::vector<Layer>& layers = network_.layers();
  std::vector<int> last_use(values.size(), -1);
  for (size_t i = 0; i < layers.size(); ++i)
    for (int id : layers[i].inputs) last_use[id] = static_cast<int>(i);

  cpu::ThreadPool& pool = cpu::ThreadPool::shared(threads_);
  BufferRecycler recycler;
  std::vector<HostTensor> owned(values.size());  // the intermediates and outputs this run computes
  if (hook)
    for (int id : network_.inputs()) {
      owned[id] = *values[id];  // the caller's tensor is const: the hook changes a copy
      values[id] = &owned[id];
      hook(network_.tensor(id), owned[id]);
    }
  auto release = [&](int id) {
    const Tensor& tensor = network_.tensor(id);
    if (tensor.is_input || tensor.is_output) return;
    recycler.give(std::move(owned[id].data));
    owned[id] = HostTensor();
    values[id] = nullptr;
  };

  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& layer = layers[i];
    std::vector<const HostTensor*> in;
    for (int id : layer.inputs) {
      EASTRT_CHECK(values[id], "CpuEngine: layer '", layer.name, "' reads tensor '", network_.tensor(id).name,
                   "' before it is computed");
      in.push_back(values[id]);
    }
    try {
      if (!options_.naive && cpu::fast::has_fast_kernel(layer, in)) {
        std::vector<HostTensor*> out;
        for (int id : layer.outputs) {
          owned[id] = recycler.take(network_.tensor(id).shape);
          out.push_back(&owned[id]);
        }
        cpu::fast::run_layer(layer, in, out, pool);
      } else {
        std::vector<HostTensor> results = cpu::naive::run_layer(layer, in);
        EASTRT_CHECK(results.size() == layer.outputs.size(), "the kernel gave ", results.size(), " outputs for ",
                     layer.outputs.size(), " tensors");
        for (size_t j = 0; j < results.size(); ++j) {
          const Tensor& tensor = network_.tensor(layer.outputs[j]);
          EASTRT_CHECK(results[j].shape == tensor.shape, "the kernel computed ", to_string(results[j].shape),
                       " for '", tensor.name, "' but shape inference gave ", to_string(tensor.shape));
          owned[tensor.id] = std::move(results[j]);
        }
      }
    } catch (const std::exception& e) {
      throw_error("CpuEngine: layer '", layer.name, "' (", to_string(layer.kind()), "): ", e.what());
    }
    for (int id : layer.outputs) {
      values[id] = &owned[id];
      if (hook) hook(network_.tensor(id), owned[id]);
    }
    for (int id : layer.inputs)
      if (last_use[id] == static_cast<int>(i) && values[id]) release(id);
    for (int id : layer.outputs)
      if (last_use[id] < 0) release(id);  // never read: dead unless marked as an output
  }

  std::map<std::string, HostTensor> outputs;
  for (int id : network_.outputs()) {
    const Tensor& tensor = network_.tensor(id);
    if (outputs.count(tensor.name)) continue;
    if (tensor.is_input)
      outputs.emplace(tensor.name, *values[id]);  // the caller's own tensor: copied
    else
      outputs.emplace(tensor.name, std::move(owned[id]));
  }
  return outputs;
}

}  // namespace eastrt
