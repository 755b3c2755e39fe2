// JPEG decoding on the GPU's hardware JPEG decoder (nvJPEG's hardware backend, loaded at run time: eastrt
// neither links against nvJPEG nor needs it to build or run): batches of JPEG bytes become RGB images in
// device memory, which the GPU runner resizes into the network's input without a trip through the host.
// What the hardware path does not take (not a JPEG, not three components, a stream the hardware refuses, a
// file that does not end in an EOI marker, a batch that fails) is handed back for the CPU decoder, which
// decodes it or reports what is wrong with it as it always has.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/detector_ops.h"

namespace eastrt::east {

// 8-bit RGB in device memory, rows width * 3 bytes apart (the layout of Image::rgb). Its memory returns to its
// decoder's pool when the last reference goes, and is written again only after `consumed` (a cudaEvent_t),
// which every reader records on its stream after its last read of the pixels.
struct DeviceImage {
  int width = 0, height = 0;
  int device = 0;
  const uint8_t* pixels = nullptr;
  void* consumed = nullptr;
};

// "" when the hardware JPEG decoder can be used on `device`, else why not: "built without CUDA", no usable
// GPU, libnvjpeg.so.13 not found, a library without a function used here, no hardware decoder on this GPU.
// Found out once per device, then remembered.
std::string gpu_jpeg_unavailable(int device = 0);

class GpuJpegDecoder {
 public:
  // Its own nvJPEG handle, decoding state and stream on `device`, for batches of at most max_batch. Throws
  // an Error saying why when gpu_jpeg_unavailable(device) is not "". One thread at a time.
  GpuJpegDecoder(int device, int max_batch);
  ~GpuJpegDecoder();
  GpuJpegDecoder(const GpuJpegDecoder&) = delete;
  GpuJpegDecoder& operator=(const GpuJpegDecoder&) = delete;

  struct Input {
    const uint8_t* data = nullptr;
    size_t size = 0;
  };
  struct Output {
    bool decoded = false;  // false: for the CPU decoder (see the file comment); `image` is empty
    Image image;           // width, height and device; rgb too with copy_to_host
  };
  // Decodes the inputs the hardware path takes in one batched call and waits for it. An Error only for a
  // failure of the GPU itself (a CUDA error); nvJPEG refusing or failing leaves the inputs undecoded.
  std::vector<Output> decode(const std::vector<Input>& inputs, bool copy_to_host = false);

  int max_batch() const;
  // "nvJPEG 13.0.1, hardware backend"
  std::string description() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace eastrt::east
