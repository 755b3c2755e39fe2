// The hardware JPEG decoder through nvJPEG, opened with dlopen: the library's functions resolved once per
// process, a probe per device (a hardware-backend handle made and dropped), and per decoder a handle, a
// decoding state, a stream and a pool of device buffers that images hand back when released.
#ifdef EASTRT_HAVE_CUDA
#include "eastrt/gpu_jpeg.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "cuda/cuda_check.h"
#include "cuda/nvjpeg_api.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"

namespace eastrt::east {
namespace {

struct Library {
  std::string error;  // "" when loaded with every required function
  std::string version;
  nvjpeg::CreateEx create_ex = nullptr;
  nvjpeg::Destroy destroy = nullptr;
  nvjpeg::JpegStateCreate state_create = nullptr;
  nvjpeg::JpegStateDestroy state_destroy = nullptr;
  nvjpeg::DecodeBatchedInitialize batched_initialize = nullptr;
  nvjpeg::DecodeBatched decode_batched = nullptr;
  nvjpeg::JpegStreamCreate stream_create = nullptr;
  nvjpeg::JpegStreamDestroy stream_destroy = nullptr;
  nvjpeg::JpegStreamParseHeader parse_header = nullptr;  // optional: parse() reads the whole stream instead
  nvjpeg::JpegStreamParse parse = nullptr;
  nvjpeg::JpegStreamGetFrameDimensions frame_dimensions = nullptr;
  nvjpeg::JpegStreamGetComponentsNum components = nullptr;
  nvjpeg::DecodeBatchedSupported batched_supported = nullptr;
  nvjpeg::GetProperty get_property = nullptr;  // optional
};

template <typename F>
bool resolve(void* handle, const char* name, F* f, std::string* missing) {
  *f = reinterpret_cast<F>(dlsym(handle, name));
  if (!*f && missing && missing->empty()) *missing = name;
  return *f != nullptr;
}

Library load_library() {
  Library lib;
  void* handle = nullptr;
  std::string tried;
  for (const char* name : {"libnvjpeg.so.13", "libnvjpeg.so"}) {
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle) break;
    const char* why = dlerror();
    if (tried.empty()) tried = why ? why : name;
  }
  if (!handle) {
    lib.error = "libnvjpeg.so.13 not found (" + tried + ")";
    return lib;
  }
  // Never closed: images and handles may outlive any owner that could close it.
  std::string missing;
  resolve(handle, "nvjpegCreateEx", &lib.create_ex, &missing);
  resolve(handle, "nvjpegDestroy", &lib.destroy, &missing);
  resolve(handle, "nvjpegJpegStateCreate", &lib.state_create, &missing);
  resolve(handle, "nvjpegJpegStateDestroy", &lib.state_destroy, &missing);
  resolve(handle, "nvjpegDecodeBatchedInitialize", &lib.batched_initialize, &missing);
  resolve(handle, "nvjpegDecodeBatched", &lib.decode_batched, &missing);
  resolve(handle, "nvjpegJpegStreamCreate", &lib.stream_create, &missing);
  resolve(handle, "nvjpegJpegStreamDestroy", &lib.stream_destroy, &missing);
  resolve(handle, "nvjpegJpegStreamParse", &lib.parse, &missing);
  resolve(handle, "nvjpegJpegStreamGetFrameDimensions", &lib.frame_dimensions, &missing);
  resolve(handle, "nvjpegJpegStreamGetComponentsNum", &lib.components, &missing);
  resolve(handle, "nvjpegDecodeBatchedSupported", &lib.batched_supported, &missing);
  resolve(handle, "nvjpegJpegStreamParseHeader", &lib.parse_header, nullptr);
  resolve(handle, "nvjpegGetProperty", &lib.get_property, nullptr);
  if (!missing.empty()) {
    lib.error = "the nvJPEG library found lacks " + missing;
    return lib;
  }
  lib.version = "nvJPEG";
  int major = 0, minor = 0, patch = 0;
  if (lib.get_property && lib.get_property(0, &major) == nvjpeg::kSuccess && lib.get_property(1, &minor) == nvjpeg::kSuccess &&
      lib.get_property(2, &patch) == nvjpeg::kSuccess)
    lib.version += " " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  return lib;
}

const Library& library() {
  static const Library lib = load_library();
  return lib;
}

// A hardware-backend handle, with chroma upsampling by interpolation where the library knows the flag.
int create_hardware_handle(const Library& lib, nvjpeg::Handle* handle) {
  int status = lib.create_ex(nvjpeg::kBackendHardware, nullptr, nullptr, nvjpeg::kFlagUpsamplingWithInterpolation, handle);
  if (status != nvjpeg::kSuccess) status = lib.create_ex(nvjpeg::kBackendHardware, nullptr, nullptr, nvjpeg::kFlagsDefault, handle);
  return status;
}

std::string probe(int device) {
  const GpuInfo gpu = query_gpu(device);
  if (!gpu.available) return "no usable GPU " + std::to_string(device) + ": " + gpu.reason;
  const Library& lib = library();
  if (!lib.error.empty()) return lib.error;
  if (cudaSetDevice(device) != cudaSuccess) return "cannot select GPU " + std::to_string(device);
  nvjpeg::Handle handle = nullptr;
  const int status = create_hardware_handle(lib, &handle);
  if (status != nvjpeg::kSuccess)
    return std::string("no hardware JPEG decoder on ") + gpu.name + " (nvjpegCreateEx with the hardware backend: " +
           nvjpeg::status_name(status) + ")";
  lib.destroy(handle);
  return "";
}

void check(int status, const char* call) {
  if (status != nvjpeg::kSuccess) throw_error("nvJPEG: ", call, " failed: ", nvjpeg::status_name(status));
}

// Device buffers for decoded images, reused: an image hands its buffer back when released, and the buffer is
// written again only after the image's `consumed` event (recorded by whoever read it last).
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  explicit DevicePool(int device) : device_(device) {}
  ~DevicePool() {
    // Nothing here may throw: errors at teardown are not actionable.
    for (Buffer& b : free_) {
      cudaEventSynchronize(b.consumed);
      cudaEventDestroy(b.consumed);
      cudaFree(b.memory);
    }
  }

  std::shared_ptr<const DeviceImage> acquire(int width, int height) {
    const size_t need = static_cast<size_t>(width) * height * 3;
    Buffer buffer{};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->bytes >= need && (best == free_.end() || it->bytes < best->bytes)) best = it;
      if (best != free_.end()) {
        buffer = *best;
        free_.erase(best);
      }
    }
    if (buffer.memory) {
      EASTRT_CUDA(cudaEventSynchronize(buffer.consumed));
    } else {
      buffer.bytes = (need + (size_t(1) << 20) - 1) & ~((size_t(1) << 20) - 1);  // whole MiB: sizes vary a little
      EASTRT_CUDA(cudaMalloc(&buffer.memory, buffer.bytes));
      if (cudaEventCreateWithFlags(&buffer.consumed, cudaEventDisableTiming) != cudaSuccess) {
        cudaFree(buffer.memory);
        throw_error("CUDA: cannot create an event for a decoded image");
      }
    }
    auto* image = new DeviceImage{width, height, device_, static_cast<const uint8_t*>(buffer.memory), buffer.consumed};
    std::shared_ptr<DevicePool> self = shared_from_this();
    return std::shared_ptr<const DeviceImage>(image, [self, buffer](const DeviceImage* released) {
      delete released;
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->free_.push_back(buffer);
    });
  }

 private:
  struct Buffer {
    void* memory = nullptr;
    size_t bytes = 0;
    cudaEvent_t consumed = nullptr;
  };
  int device_;
  std::mutex mutex_;
  std::vector<Buffer> free_;
};

}  // namespace

std::string gpu_jpeg_unavailable(int device) {
  static std::mutex mutex;
  static std::map<int, std::string> known;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = known.find(device);
  if (it == known.end()) it = known.emplace(device, probe(device)).first;
  return it->second;
}

struct GpuJpegDecoder::Impl {
  const Library& lib = library();
  int device = 0, max_batch = 1;
  nvjpeg::Handle handle = nullptr;
  nvjpeg::JpegState state = nullptr;
  nvjpeg::JpegStream parsed = nullptr;
  cudaStream_t stream = nullptr;
  int initialized_batch = 0;  // the batch size nvjpegDecodeBatchedInitialize was last called with
  std::shared_ptr<DevicePool> pool;

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    if (parsed) lib.stream_destroy(parsed);
    if (state) lib.state_destroy(state);
    if (handle) lib.destroy(handle);
    if (stream) cudaStreamDestroy(stream);
  }

  // The size of a JPEG the hardware batch takes, or false for the CPU decoder. The EOI test sends a
  // truncated file to libjpeg, which reports it (the hardware may decode the part that is there).
  bool accepts(const GpuJpegDecoder::Input& in, int* width, int* height) {
    const uint8_t* d = in.data;
    if (in.size < 4 || d[0] != 0xFF || d[1] != 0xD8 || d[2] != 0xFF) return false;
    if (d[in.size - 2] != 0xFF || d[in.size - 1] != 0xD9) return false;
    const int status = lib.parse_header ? lib.parse_header(handle, d, in.size, parsed) : lib.parse(handle, d, in.size, 0, 0, parsed);
    if (status != nvjpeg::kSuccess) return false;
    unsigned w = 0, h = 0, components = 0;
    if (lib.frame_dimensions(parsed, &w, &h) != nvjpeg::kSuccess || lib.components(parsed, &components) != nvjpeg::kSuccess)
      return false;
    // CMYK and grey go to libjpeg, which converts them as OpenCV does.
    if (components != 3 || w == 0 || h == 0 || int64_t(w) * h > kMaxImagePixels) return false;
    int unsupported = 1;
    if (lib.batched_supported(handle, parsed, &unsupported) != nvjpeg::kSuccess || unsupported != 0) return false;
    *width = static_cast<int>(w);
    *height = static_cast<int>(h);
    return true;
  }

  // After a failed batch the state may hold anything: start again from a fresh one.
  void reset_state() {
    if (state) lib.state_destroy(state);
    state = nullptr;
    initialized_batch = 0;
    check(lib.state_create(handle, &state), "nvjpegJpegStateCreate");
  }
};

GpuJpegDecoder::GpuJpegDecoder(int device, int max_batch) : impl_(std::make_unique<Impl>()) {
  const std::string why = gpu_jpeg_unavailable(device);
  EASTRT_CHECK(why.empty(), "the GPU JPEG decoder is unavailable: ", why);
  EASTRT_CHECK(max_batch >= 1, "the GPU JPEG decoder needs batches of at least 1, not ", max_batch);
  Impl& d = *impl_;
  d.device = device;
  d.max_batch = max_batch;
  EASTRT_CUDA(cudaSetDevice(device));
  EASTRT_CUDA(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
  check(create_hardware_handle(d.lib, &d.handle), "nvjpegCreateEx (hardware backend)");
  check(d.lib.state_create(d.handle, &d.state), "nvjpegJpegStateCreate");
  check(d.lib.stream_create(d.handle, &d.parsed), "nvjpegJpegStreamCreate");
  d.pool = std::make_shared<DevicePool>(device);
}

GpuJpegDecoder::~GpuJpegDecoder() = default;

int GpuJpegDecoder::max_batch() const { return impl_->max_batch; }

std::string GpuJpegDecoder::description() const { return impl_->lib.version + ", hardware backend"; }

std::vector<GpuJpegDecoder::Output> GpuJpegDecoder::decode(const std::vector<Input>& inputs, bool copy_to_host) {
  Impl& d = *impl_;
  EASTRT_CHECK(static_cast<int>(inputs.size()) <= d.max_batch, "the GPU JPEG decoder was made for batches of at most ",
               d.max_batch, ", not ", inputs.size());
  EASTRT_CUDA(cudaSetDevice(d.device));
  std::vector<Output> out(inputs.size());
  std::vector<size_t> taken;
  std::vector<std::pair<int, int>> sizes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    int width = 0, height = 0;
    if (!d.accepts(inputs[i], &width, &height)) continue;
    taken.push_back(i);
    sizes.emplace_back(width, height);
  }
  if (taken.empty()) return out;
  const int count = static_cast<int>(taken.size());
  if (count != d.initialized_batch) {
    const int status = d.lib.batched_initialize(d.handle, d.state, count, 1, nvjpeg::kOutputRgbInterleaved);
    if (status != nvjpeg::kSuccess) {
      d.reset_state();
      return out;
    }
    d.initialized_batch = count;
  }
  std::vector<std::shared_ptr<const DeviceImage>> images;
  std::vector<const unsigned char*> data;
  std::vector<size_t> lengths;
  std::vector<nvjpeg::Image> destinations(taken.size());
  for (size_t k = 0; k < taken.size(); ++k) {
    images.push_back(d.pool->acquire(sizes[k].first, sizes[k].second));
    data.push_back(inputs[taken[k]].data);
    lengths.push_back(inputs[taken[k]].size);
    std::memset(&destinations[k], 0, sizeof(nvjpeg::Image));
    destinations[k].channel[0] = const_cast<unsigned char*>(images[k]->pixels);
    destinations[k].pitch[0] = static_cast<size_t>(sizes[k].first) * 3;
  }
  const int status = d.lib.decode_batched(d.handle, d.state, data.data(), lengths.data(), destinations.data(), d.stream);
  // A CUDA error is the GPU's failure, not the image's: it is thrown. nvJPEG's own failure sends the batch
  // to libjpeg.
  EASTRT_CUDA(cudaStreamSynchronize(d.stream));
  if (status != nvjpeg::kSuccess) {
    d.reset_state();
    return out;
  }
  for (size_t k = 0; k < taken.size(); ++k) {
    Output& o = out[taken[k]];
    o.decoded = true;
    o.image.width = sizes[k].first;
    o.image.height = sizes[k].second;
    if (copy_to_host) {
      o.image.rgb.resize(static_cast<size_t>(o.image.width) * o.image.height * 3);
      EASTRT_CUDA(cudaMemcpyAsync(o.image.rgb.data(), images[k]->pixels, o.image.rgb.size(), cudaMemcpyDeviceToHost, d.stream));
    }
    o.image.device = std::move(images[k]);
  }
  if (copy_to_host) EASTRT_CUDA(cudaStreamSynchronize(d.stream));
  return out;
}

}  // namespace eastrt::east
#endif
