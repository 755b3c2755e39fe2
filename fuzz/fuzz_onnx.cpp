// libFuzzer target: arbitrary bytes as an ONNX model, through parsing and conversion to a Network. Any
// eastrt::Error is a correct answer; a crash, a hang, a leak or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "eastrt/error.h"
#include "eastrt/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eastrt;
  try {
    Network network = import_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
    (void)network.macs();
  } catch (const Error&) {
  }
  return 0;
}
