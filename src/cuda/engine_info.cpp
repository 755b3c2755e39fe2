// Names of precisions and the text form of an engine's inspection (host code, built with or without CUDA).
#include <iomanip>
#include <sstream>

#include "eastrt/error.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/quant.h"

namespace eastrt {

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return "fp32";
    case Precision::kTf32: return "tf32";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
    case Precision::kFp8: return "fp8";
  }
  return "?";
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::kFp32;
  if (text == "tf32") return Precision::kTf32;
  if (text == "fp16") return Precision::kFp16;
  if (text == "int8") return Precision::kInt8;
  if (text == "fp8") return Precision::kFp8;
  throw_error("unknown precision '", text, "' (there is: fp32, tf32, fp16, int8, fp8)");
}

quant::QuantType quant_type(Precision precision) {
  EASTRT_CHECK(is_quantized(precision), "precision ", to_string(precision), " is not an 8-bit one (int8 or fp8)");
  return precision == Precision::kInt8 ? quant::QuantType::kInt8 : quant::QuantType::kFp8;
}

std::string to_text(const EngineInfo& info) {
  std::ostringstream out;
  auto mib = [](int64_t bytes) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(1) << bytes / 1048576.0 << " MiB";
    return s.str();
  };
  out << "engine: " << to_string(info.precision) << ", batch 1.." << info.max_batch << ", built for " << info.gpu_name
      << " (compute capability " << info.compute_major << "." << info.compute_minor << ") by eastrt "
      << info.eastrt_version << "\n";
  for (const auto& [name, shape] : info.inputs) out << "input  " << name << " " << to_string(shape) << " fp32\n";
  for (const auto& [name, shape] : info.outputs) out << "output " << name << " " << to_string(shape) << " fp32\n";
  if (!info.model_fingerprint.empty())
    out << "calibration: model " << info.model_fingerprint << ", " << info.calibrator << "\n";
  for (const std::string& p : info.passes) out << "pass   " << p << "\n";
  out << "memory: weights " << mib(info.weight_bytes) << ", activations " << mib(info.activation_bytes)
      << ", workspace " << mib(info.workspace_bytes) << ", bindings " << mib(info.io_bytes) << " per context\n";
  out << info.layers.size() << " layers:\n";
  for (const EngineLayerInfo& l : info.layers) {
    out << "  " << std::left << std::setw(56) << l.name << " " << std::setw(13) << l.kind << " " << std::setw(4)
        << l.precision << " " << to_string(l.output_shape) << "  " << l.tactic;
    if (l.tactic_ms > 0) out << std::fixed << std::setprecision(3) << "  " << l.tactic_ms << " ms";
    if (l.side_stream) out << "  [side stream]";
    if (!l.note.empty()) out << "  (" << l.note << ")";
    out << "\n";
  }
  return out.str();
}

}  // namespace eastrt
