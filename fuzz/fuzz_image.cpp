// libFuzzer target for the image decoder: any bytes must decode to a consistent image or throw
// eastrt::Error; a crash, a hang, a leak or any other exception is a bug.
#include <cstddef>
#include <cstdint>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const eastrt::east::Image image = eastrt::east::decode_image(data, size, "fuzz input");
    if (image.width <= 0 || image.height <= 0 ||
        image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
      __builtin_trap();
  } catch (const eastrt::Error&) {
  }
  return 0;
}
