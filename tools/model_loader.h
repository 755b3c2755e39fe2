// Turns the model flags every subcommand shares (--builtin east, --model FILE, --input NxHxWxC) into a
// Network, whatever the file's kind.
#pragma once
#include <string>

#include "args.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/network.h"

namespace eastrt::tool {

inline constexpr const char* kModelFlagsHelp =
    "  --builtin east        the built-in EAST network (seeded random weights unless --model gives them)\n"
    "  --model FILE          a frozen TensorFlow graph (.pb), an ONNX model (.onnx), or EAST weights:\n"
    "                        a .safetensors file or a TF checkpoint prefix (TF-slim names);\n"
    "                        default: the bundled models/east.safetensors\n"
    "  --input NxHxWxC       input shape, NHWC (default 1x672x1280x3); an NCHW ONNX model is fed NHWC,\n"
    "                        one that is already NHWC (tf2onnx's) in its own order\n"
    "  --width-divisor D     EAST channel counts divided by D (reduced test models; default 1)\n";

struct LoadedModel {
  Network network;
  std::string description;  // "built-in EAST, random weights (seed 1)", "EAST from models/east.safetensors"
};

// Without --builtin or --model: the bundled default model, models/east.safetensors beside the folder the
// tool is in (the build or install folder).
LoadedModel load_model(const Args& args);
std::string bundled_model();

// The calibration cache an INT8/FP8 engine is built with: --calib-cache FILE, else for the bundled model (no
// --model, no --builtin) the one shipped beside it, models/east.<int8|fp8>.cache. An Error naming the flag
// when there is neither; "" for the other precisions.
std::string calibration_cache_for(const Args& args, Precision precision);

}  // namespace eastrt::tool
