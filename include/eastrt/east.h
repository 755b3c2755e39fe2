// The EAST text detector's network (ResNet-50 v1 backbone, TF-slim layout) built with the definition API,
// asking for every weight by its TF-slim name. See docs/EAST.md in the shared docs for the exact network.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eastrt/network.h"
#include "eastrt/weights.h"

namespace eastrt::east {

inline constexpr const char* kInputName = "input_images";
inline constexpr const char* kScoreOutput = "feature_fusion/Conv_7/Sigmoid";
inline constexpr const char* kGeometryOutput = "feature_fusion/concat_3";

struct NetworkOptions {
  int64_t batch = 1, height = 672, width = 1280;  // NHWC input; height and width multiples of 32
  int width_divisor = 1;  // every channel count divided by this (test fixtures use reduced widths)
};

// Every weight the network asks for, with the shape it must have (TF layouts: conv filters RSCK).
struct WeightSpec {
  std::string name;
  Shape shape;
};
std::vector<WeightSpec> weight_specs(const NetworkOptions& options);

// Builds the network; a missing or mis-shaped weight is an Error naming it and the source.
Network build(const WeightSource& weights, const NetworkOptions& options = {});

// Seeded He-initialised weights with identity batch norms: the built-in network before a model is given.
InMemoryWeights random_weights(const NetworkOptions& options, uint32_t seed = 1);

}  // namespace eastrt::east
