// libFuzzer target: arbitrary bytes as an ONNX model, through parsing and conversion to a Network. Any
// eastrt::Error is a correct answer; a crash, a hang, a leak or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "eastrt/error.h"
#include "eastrt/onnx_import.h"

namespace {

void import(const std::string& bytes, const eastrt::OnnxImportOptions& options) {
  try {
    eastrt::Network network = eastrt::import_onnx_bytes(bytes, "fuzz input", options);
    (void)network.macs();
  } catch (const eastrt::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eastrt;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  import(bytes, {});
  // Models with dynamic dimensions (most real ones) convert only with a shape: one N,C,H,W and one
  // N,H,W,C (tf2onnx's) for a model of one input, with the NHWC options the detector uses for the first.
  import(bytes, {OnnxLayout::kNhwc, {{"", {1, 32, 32, 3}}}, {}, OnnxLayout::kNhwc});
  import(bytes, {OnnxLayout::kNchw, {{"", {2, 32, 32, 3}}}, {}, OnnxLayout::kNchw});
  return 0;
}
