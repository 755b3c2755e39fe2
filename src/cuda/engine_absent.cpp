// The GPU engine's API in a build without the CUDA toolkit: every entry point says so with an Error.
#ifndef EASTRT_HAVE_CUDA
#include "eastrt/error.h"
#include "eastrt/gpu_engine.h"

namespace eastrt {

struct Engine::Impl {};
struct ExecutionContext::Impl {};

namespace {
[[noreturn]] void no_cuda() { throw_error("the GPU engine is not available: eastrt was built without CUDA"); }
}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;
std::unique_ptr<Engine> Engine::deserialize(const std::vector<uint8_t>&, const std::string&) { no_cuda(); }
std::unique_ptr<Engine> Engine::load(const std::string&) { no_cuda(); }
std::vector<uint8_t> Engine::serialize() const { no_cuda(); }
void Engine::save(const std::string&) const { no_cuda(); }
EngineInfo Engine::inspect() const { no_cuda(); }
int Engine::max_batch() const { no_cuda(); }
Precision Engine::precision() const { no_cuda(); }
std::unique_ptr<ExecutionContext> Engine::create_context() { no_cuda(); }

Builder::Builder(Network network, BuildOptions options) : network_(std::move(network)), options_(std::move(options)) {}
std::unique_ptr<Engine> Builder::build() { no_cuda(); }

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;
void ExecutionContext::set_input(const std::string&, const HostTensor&) { no_cuda(); }
void ExecutionContext::set_input_image(const std::string&, int, const east::Image&) { no_cuda(); }
void ExecutionContext::set_input_images(const std::string&, const std::vector<const east::Image*>&) { no_cuda(); }
void ExecutionContext::set_batch(int) { no_cuda(); }
int ExecutionContext::batch() const { no_cuda(); }
void ExecutionContext::enqueue() { no_cuda(); }
void ExecutionContext::fetch_outputs() { no_cuda(); }
std::vector<std::vector<east::Quad>> ExecutionContext::decode_candidates(const std::string&, const std::string&, float,
                                                                        std::optional<float>) {
  no_cuda();
}
std::vector<std::vector<east::Quad>> decode_candidates_on_gpu(const HostTensor&, const HostTensor&, float) { no_cuda(); }
std::vector<std::vector<east::Quad>> decode_boxes_on_gpu(const HostTensor&, const HostTensor&, float, float) { no_cuda(); }
void ExecutionContext::synchronize() { no_cuda(); }
HostTensor ExecutionContext::output(const std::string&) const { no_cuda(); }
std::map<std::string, HostTensor> ExecutionContext::run(const std::map<std::string, HostTensor>&) { no_cuda(); }
void ExecutionContext::set_cuda_graph(bool) { no_cuda(); }
std::vector<double> ExecutionContext::time_enqueue(int, int) { no_cuda(); }
std::vector<double> ExecutionContext::profile_steps(int, int) { no_cuda(); }
void ExecutionContext::poison(float) { no_cuda(); }
void ExecutionContext::poison() { no_cuda(); }
void* ExecutionContext::stream() const { no_cuda(); }
void* ExecutionContext::device_binding(const std::string&) const { no_cuda(); }
int64_t gpu_memory_used(int) { no_cuda(); }

}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
