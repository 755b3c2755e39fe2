// The GPU decode up to the candidate quads against decode_quads on the CPU (the same candidates, in row order,
// vertices within 1e-3 px), and the pipeline on the GPU with and without it (the same boxes). Skipped
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "eastrt/gpu.h"
#include "eastrt/gpu_engine.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {


// Random maps as the network makes them (scores in 0..1, distances 0..300, angles in ±π/4), with a few
// non-finite geometries above the threshold, which both decodes must skip.
void random_maps(int batch, int height, int width, std::mt19937& rng, HostTensor* score, HostTensor* geometry) {
  std::uniform_real_distribution<float> unit(0, 1), distance(0, 300), angle(-0.785398f, 0.785398f);
  *score = HostTensor({batch, height, width, 1});
  *geometry = HostTensor({batch, height, width, 5});
  for (float& s : score->data) s = unit(rng);
  for (size_t i = 0; i < score->data.size(); ++i) {
    float* g = geometry->data.data() + i * 5;
    for (int k = 0; k < 4; ++k) g[k] = distance(rng);
    g[4] = angle(rng);
    if (i % 97 == 5) g[i % 5] = (i % 2) ? NAN : INFINITY;
  }
}

TEST(GpuDecode, CandidatesEqualTheCpuDecode) {
  REQUIRE_GPU();
  std::mt19937 rng(21);
  // Awkward sizes (odd, not multiples of anything), batch > 1, and the size of a 720x1280 image's maps.
  for (const auto& [batch, height, width] : std::vector<std::array<int, 3>>{{1, 1, 1}, {3, 13, 37}, {2, 168, 320}, {5, 31, 7}}) {
    for (float threshold : {0.8f, 0.2f, 1.0f}) {
      SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(height) + "x" + std::to_string(width) + " at " +
                   std::to_string(threshold));
      HostTensor score, geometry;
      random_maps(batch, height, width, rng, &score, &geometry);
      const auto got = decode_candidates_on_gpu(score, geometry, threshold);
      ASSERT_EQ(got.size(), static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) {
        const auto want = east::decode_quads(batch_item(score, b), batch_item(geometry, b), threshold);
        ASSERT_EQ(got[b].size(), want.size()) << "image " << b;
        if (threshold < 1.0f && height * width > 100) EXPECT_GT(want.size(), 0u) << "a test needs candidates";
        double worst = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(got[b][i].score, want[i].score) << "candidate " << i << " (row order)";
          for (int v = 0; v < 4; ++v)
            worst = std::max({worst, std::abs(double(got[b][i].points[v].x) - want[i].points[v].x),
                              std::abs(double(got[b][i].points[v].y) - want[i].points[v].y)});
        }
        EXPECT_LE(worst, 1e-3) << "image " << b;
      }
    }
  }
  EXPECT_NE(error_of([] { decode_candidates_on_gpu(HostTensor({1, 4, 4, 1}), HostTensor({1, 4, 5, 5}), 0.5f); })
                .find("are not"),
            std::string::npos);
}


// run_images packs a batch of images of different source sizes into one pinned buffer and resizes them on
// the GPU: the same outputs as run() on the batch resized by the CPU (bit-exact inputs), on every slot.
TEST(GpuDecode, RunImagesEqualsRunOnCpuResizedInputs) {
  REQUIRE_GPU();
  GpuRunnerOptions gpu;
  gpu.build.max_batch = 3;
  gpu.build.time_tactics = false;  // cuDNN's heuristic tactics: the test is about the inputs
  gpu.slots = 2;
  auto runner = make_gpu_runner(small_east(), gpu);
  const std::vector<east::Image> images = {random_image(70, 100, 1), random_image(141, 203, 2), random_image(64, 96, 3)};
  HostTensor batch({3, 64, 96, 3});
  for (int i = 0; i < 3; ++i) {
    const HostTensor resized = east::resize_bilinear(images[i], 64, 96);
    std::copy(resized.data.begin(), resized.data.end(), batch.data.begin() + i * resized.data.size());
  }
  const auto want = runner->run({{east::kInputName, batch}});
  for (int slot : {0, 1}) {
    const auto got = runner->run_images(east::kInputName, {&images[0], &images[1], &images[2]}, 64, 96, slot);
    for (const char* name : {east::kScoreOutput, east::kGeometryOutput}) {
      ASSERT_EQ(got.at(name).shape, want.at(name).shape);
      EXPECT_LE(relative_error(got.at(name), want.at(name)), 1e-6) << name << " on slot " << slot;
    }
  }
  EXPECT_NE(error_of([&] { runner->run_images(east::kInputName, {&images[0]}, 64, 96, 2); }).find("slot 2"),
            std::string::npos);
}

// Batches of 3 of mixed sizes on 3 streams: the GPU decode gives the boxes the CPU decode gives of the same
// maps. Images queued together, one decoding thread, and batches that leave only when full or at the end make
// both runs compose the same batches.
TEST(GpuDecode, PipelineBoxesEqualWithTheCpuDecode) {
  REQUIRE_GPU();
  auto runner = three_stream_runner();
  const std::vector<east::Image> images = mixed_size_images(17, 300);
  std::vector<std::vector<east::PipelineResult>> runs;
  for (bool device_decode : {true, false}) {
    east::PipelineOptions options = same_batches_options();
    options.post_workers = 3;
    options.device_decode = device_decode;
    runs.push_back(run_pipeline(*runner, options, images));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(runs[0][i].name, std::to_string(i));
    EXPECT_EQ(runs[0][i].detection.plan.height, east::plan_resize(images[i].height, images[i].width).height);
  }
  const size_t boxes = expect_same_boxes(runs[0], runs[1]);
  EXPECT_GT(boxes, 0u) << "the comparison needs boxes";
}

}  // namespace
}  // namespace eastrt
