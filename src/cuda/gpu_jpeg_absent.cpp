// The GPU JPEG decoder in a build without the CUDA toolkit: never available, and saying so.
#ifndef EASTRT_HAVE_CUDA
#include "eastrt/error.h"
#include "eastrt/gpu_jpeg.h"

namespace eastrt::east {

std::string gpu_jpeg_unavailable(int) { return "built without CUDA"; }

struct GpuJpegDecoder::Impl {};

GpuJpegDecoder::GpuJpegDecoder(int, int) { throw_error("the GPU JPEG decoder is unavailable: built without CUDA"); }
GpuJpegDecoder::~GpuJpegDecoder() = default;
std::vector<GpuJpegDecoder::Output> GpuJpegDecoder::decode(const std::vector<Input>&, bool) { return {}; }
int GpuJpegDecoder::max_batch() const { return 0; }
std::string GpuJpegDecoder::description() const { return "unavailable"; }

}  // namespace eastrt::east
#endif
