// Turns the model flags every subcommand shares (--builtin east, --model FILE, --input NxHxWxC) into a
// Network, whatever the file's kind.
#pragma once
#include <string>

#include "args.h"
#include "eastrt/network.h"

namespace eastrt::tool {

inline constexpr const char* kModelFlagsHelp =
    "  --builtin east        the built-in EAST network (seeded random weights unless --model gives them)\n"
    "  --model FILE          weights: an EAST .safetensors file with TF-slim names\n"
    "  --input NxHxWxC       input shape, NHWC (default 1x672x1280x3)\n"
    "  --width-divisor D     EAST channel counts divided by D (reduced test models; default 1)\n";

struct LoadedModel {
  Network network;
  std::string description;  // "built-in EAST, random weights (seed 1)", "EAST from models/east.safetensors"
};

LoadedModel load_model(const Args& args);

}  // namespace eastrt::tool
