// EAST end to end on the CPU engine: the fast kernels against the naive reference on a reduced-width
// network, and the outputs' ranges (score in (0,1), distances in (0,512), angle in [−π/4, π/4]).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"

using namespace eastrt;

TEST(EastCpu, FastMatchesNaive) {
  east::NetworkOptions options{2, 64, 96, 8};
  Network network = east::build(east::random_weights(options, 3), options);
  HostTensor image({2, 64, 96, 3});
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> pixel(0, 255);
  for (float& v : image.data) v = pixel(rng);

  CpuEngine fast(network, {2, false});
  CpuEngine naive(network, {1, true});
  auto a = fast.run({{east::kInputName, image}});
  auto b = naive.run({{east::kInputName, image}});
  ASSERT_EQ(a.size(), 2u);
  for (const char* name : {east::kScoreOutput, east::kGeometryOutput}) {
    const HostTensor& x = a.at(name);
    const HostTensor& y = b.at(name);
    ASSERT_EQ(x.shape, y.shape);
    double max_ref = 0, max_err = 0;
    for (size_t i = 0; i < x.data.size(); ++i) {
      ASSERT_TRUE(std::isfinite(x.data[i]));
      max_ref = std::max<double>(max_ref, std::fabs(y.data[i]));
      max_err = std::max<double>(max_err, std::fabs(x.data[i] - y.data[i]));
    }
    // Each kernel matches its reference to 1e-5 (test_cpu_kernels); over 63 convolutions with different
    // summation orders the differences compound, so end to end the bound is 1e-4 of the output's range.
    EXPECT_LE(max_err, 1e-4 * std::max(1.0, max_ref)) << name;
  }
  const HostTensor& score = a.at(east::kScoreOutput);
  const HostTensor& geometry = a.at(east::kGeometryOutput);
  float lo = 1, hi = 0;
  for (float s : score.data) lo = std::min(lo, s), hi = std::max(hi, s);
  EXPECT_GT(hi - lo, 1e-3f) << "the score map is flat: the test would not see a wrong kernel";
  for (size_t i = 0; i < geometry.data.size(); i += 5) {
    for (int k = 0; k < 4; ++k) ASSERT_TRUE(geometry.data[i + k] >= 0 && geometry.data[i + k] <= 512);
    ASSERT_LE(std::fabs(geometry.data[i + 4]), std::acos(0.0f) / 2 + 1e-6f);
  }
}

TEST(EastCpu, RunsAtAnotherSizeThanBuilt) {
  east::NetworkOptions options{1, 64, 64, 8};
  CpuEngine engine(east::build(east::random_weights(options), options), {});
  HostTensor image({3, 96, 32, 3}, std::vector<float>(3 * 96 * 32 * 3, 100.0f));
  auto out = engine.run({{east::kInputName, image}});
  EXPECT_EQ(out.at(east::kScoreOutput).shape, (Shape{3, 24, 8, 1}));
  EXPECT_EQ(out.at(east::kGeometryOutput).shape, (Shape{3, 24, 8, 5}));
}
