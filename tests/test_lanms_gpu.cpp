// Locality-aware NMS as the GPU runs it. On the CPU: its rules (src/cuda/lanms_rules.h) against the CPU's
// LANMS (Clipper, which matches lanms-neo), on the lanms-neo fixture and on EAST-like candidate sets. On the
// GPU: the kernels against the host build of the same rules, bit for bit, and the pipeline's boxes with
// LANMS on the GPU against LANMS on the CPU threads.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "cuda/lanms.h"
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

using east::Quad;

// Corners TL, TR, BR, BL of a w × h rectangle centred at (cx, cy), rotated as EAST's restore does.
Quad rectangle(double cx, double cy, double w, double h, double a, float score) {
  const double c = std::cos(a), s = std::sin(a);
  const double local[4][2] = {{-w / 2, -h / 2}, {w / 2, -h / 2}, {w / 2, h / 2}, {-w / 2, h / 2}};
  Quad q;
  for (int i = 0; i < 4; ++i)
    q.points[i] = {static_cast<float>(cx + c * local[i][0] + s * local[i][1]),
                   static_cast<float>(cy - s * local[i][0] + c * local[i][1])};
  q.score = score;
  return q;
}

// What EAST's decode hands LANMS: for each text box, one candidate per 4-pixel cell inside it (the box seen
// from that pixel, with noise in size, angle and vertices, its own score), one per cell, in row order.
std::vector<Quad> east_like_candidates(std::mt19937& rng, int boxes) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 1);
  std::map<std::pair<int, int>, Quad> cells;  // (row, column) → candidate, ordered as the decode walks
  for (int b = 0; b < boxes; ++b) {
    const double cx = 40 + 1200 * u(rng), cy = 40 + 640 * u(rng);
    const double w = 20 + 280 * u(rng), h = 8 + 52 * u(rng), a = (u(rng) - 0.5) * 1.2;
    const double c = std::cos(a), s = std::sin(a);
    for (double ly = -h / 2 + 2; ly < h / 2 - 1; ly += 4)
      for (double lx = -w / 2 + 2; lx < w / 2 - 1; lx += 4) {
        const int col = static_cast<int>((cx + c * lx + s * ly) / 4), row = static_cast<int>((cy - s * lx + c * ly) / 4);
        Quad q = rectangle(cx + noise(rng), cy + noise(rng), w * (1 + 0.04 * noise(rng)), h * (1 + 0.04 * noise(rng)),
                           a + 0.02 * noise(rng), static_cast<float>(0.8 + 0.2 * u(rng)));
        for (east::Point& p : q.points) p.x += static_cast<float>(0.5 * noise(rng)), p.y += static_cast<float>(0.5 * noise(rng));
        cells[{row, col}] = q;
      }
  }
  std::vector<Quad> out;
  for (const auto& [cell, q] : cells) out.push_back(q);
  return out;
}

lanms::FixedQuad fixed(const Quad& q) {
  float x[4], y[4];
  for (int i = 0; i < 4; ++i) x[i] = q.points[i].x, y[i] = q.points[i].y;
  return lanms::to_fixed(x, y, q.score);
}

void expect_same_quads(const std::vector<Quad>& got, const std::vector<Quad>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(got[i].points[k].x, want[i].points[k].x) << what << " quad " << i << " vertex " << k;
      EXPECT_EQ(got[i].points[k].y, want[i].points[k].y) << what << " quad " << i << " vertex " << k;
    }
    EXPECT_EQ(got[i].score, want[i].score) << what << " quad " << i;
  }
}

// Score and geometry maps of text boxes as a trained EAST draws them: inside each rotated box the pixels
// score 0.8-1 and their geometry points at the box's edges (with noise); outside, scores below 0.5.
void east_like_maps(int batch, int height, int width, int boxes, std::mt19937& rng, HostTensor* score,
                    HostTensor* geometry) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 1);
  *score = HostTensor({batch, height, width, 1});
  *geometry = HostTensor({batch, height, width, 5});
  for (float& s : score->data) s = static_cast<float>(0.5 * u(rng));
  for (float& g : geometry->data) g = static_cast<float>(10 * u(rng));
  for (int b = 0; b < batch; ++b)
    for (int k = 0; k < (b == 1 ? 0 : boxes); ++k) {  // image 1 has no text
      const double cx = 4 * width * u(rng), cy = 4 * height * u(rng);
      const double w = 20 + 200 * u(rng), h = 8 + 40 * u(rng), a = (u(rng) - 0.5) * 1.5;
      const double c = std::cos(a), s = std::sin(a);
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
          // The pixel's origin in the box's frame (restore turns local offsets by [[c, s], [-s, c]]).
          const double dx = 4.0 * x - cx, dy = 4.0 * y - cy;
          const double lx = c * dx - s * dy, ly = s * dx + c * dy;
          if (std::abs(lx) >= w / 2 || std::abs(ly) >= h / 2) continue;
          const int64_t i = (int64_t(b) * height + y) * width + x;
          score->data[i] = static_cast<float>(0.8 + 0.2 * u(rng));
          float* g = geometry->data.data() + i * 5;
          g[0] = static_cast<float>(h / 2 + ly + noise(rng));  // top
          g[1] = static_cast<float>(w / 2 - lx + noise(rng));  // right
          g[2] = static_cast<float>(h / 2 - ly + noise(rng));  // bottom
          g[3] = static_cast<float>(w / 2 + lx + noise(rng));  // left
          g[4] = static_cast<float>(a + 0.02 * noise(rng));
        }
    }
}

// What the host rules keep of the CPU decode's candidates, image by image.
std::vector<std::vector<Quad>> host_lanms(const HostTensor& score, const HostTensor& geometry, float threshold,
                                          float nms_threshold) {
  std::vector<std::vector<Quad>> out;
  for (int64_t b = 0; b < score.shape[0]; ++b)
    out.push_back(gpu::lanms_as_on_gpu(east::decode_quads(batch_item(score, b), batch_item(geometry, b), threshold),
                                       nms_threshold));
  return out;
}

// ---- the rules, on the CPU ----

TEST(LanmsRules, IouAgreesWithClipper) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  double worst = 0;
  int overlapping = 0;
  for (int i = 0; i < 4000; ++i) {
    const double w = 3 + 300 * u(rng), h = 2 + 60 * u(rng), a = (u(rng) - 0.5) * 3;
    const Quad p = rectangle(500, 300, w, h, a, 1);
    // A shifted, scaled and turned copy: from nearly the same box to one barely touching it.
    const double reach = i % 4 == 0 ? 0.05 : 0.6;
    const Quad q = rectangle(500 + (u(rng) - 0.5) * w * reach * 2, 300 + (u(rng) - 0.5) * h * reach * 2,
                             w * (0.5 + u(rng)), h * (0.5 + u(rng)), a + (u(rng) - 0.5) * 0.6, 1);
    const float want = east::quad_iou(p, q);
    const float got = lanms::iou(fixed(p), fixed(q));
    worst = std::max(worst, static_cast<double>(std::abs(got - want)));
    overlapping += want > 0;
  }
  EXPECT_GT(overlapping, 3000);
  // Clipper rounds each edge crossing to 1e-4 pixel: up to ~1e-5 on boxes a few pixels wide, less on larger.
  EXPECT_LE(worst, 1e-5) << "the largest IoU difference from Clipper's";
  // Disjoint, nested and identical quads exactly.
  const Quad a = rectangle(100, 100, 40, 20, 0.3, 1);
  EXPECT_EQ(lanms::iou(fixed(a), fixed(rectangle(300, 100, 40, 20, 0.3, 1))), 0.0f);
  EXPECT_NEAR(lanms::iou(fixed(a), fixed(a)), 1.0f, 1e-6);
  EXPECT_NEAR(lanms::iou(fixed(a), fixed(rectangle(100, 100, 20, 10, 0.3, 1))), 0.25f, 1e-5);
}

TEST(LanmsRules, NmsKeysOrderByDecreasingScoreThenIndex) {
  const float scores[] = {0.5f, 0.9f, 0.5f, 2.0f, 0.0f, -1.0f};
  std::vector<std::pair<uint64_t, int>> keys;
  for (int i = 0; i < 6; ++i) keys.push_back({lanms::nms_key(scores[i], static_cast<uint32_t>(i)), i});
  std::sort(keys.begin(), keys.end());
  std::vector<int> order;
  for (const auto& k : keys) order.push_back(k.second);
  EXPECT_EQ(order, (std::vector<int>{3, 1, 0, 2, 4, 5}));
}

TEST(LanmsRules, MatchesTheCpuLanmsOnTheLanmsNeoFixture) {
  std::ifstream in(std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/lanms/lanms_cases.json");
  ASSERT_TRUE(in) << "missing tests/fixtures/lanms/lanms_cases.json";
  const nlohmann::json doc = nlohmann::json::parse(in);
  const float threshold = doc["threshold"];
  for (size_t s = 0; s < doc["sets"].size(); ++s) {
    std::vector<Quad> input;
    for (const auto& row : doc["sets"][s]["input"]) {
      Quad q;
      for (int k = 0; k < 4; ++k) q.points[k] = {row[2 * k], row[2 * k + 1]};
      q.score = row[8];
      input.push_back(q);
    }
    expect_same_quads(gpu::lanms_as_on_gpu(input, threshold), east::locality_aware_nms(input, threshold),
                      "fixture set " + std::to_string(s));
  }
}

TEST(LanmsRules, MatchesTheCpuLanmsOnEastLikeCandidates) {
  std::mt19937 rng(11);
  size_t candidates = 0, kept = 0;
  for (int set = 0; set < 12; ++set) {
    const std::vector<Quad> input = east_like_candidates(rng, 2 + set);
    candidates += input.size();
    const std::vector<Quad> want = east::locality_aware_nms(input, 0.2f);
    kept += want.size();
    expect_same_quads(gpu::lanms_as_on_gpu(input, 0.2f), want, "set " + std::to_string(set));
  }
  EXPECT_GT(candidates, 3000u);
  EXPECT_GT(kept, 20u);
  EXPECT_LT(kept, candidates / 20) << "the candidates hardly merged: not EAST-like";
}

// The maps the GPU test decodes: the rules keep what the CPU's LANMS keeps of their candidates.
TEST(LanmsRules, MatchesTheCpuLanmsOnEastLikeMaps) {
  std::mt19937 rng(31);
  HostTensor score, geometry;
  east_like_maps(3, 168, 320, 25, rng, &score, &geometry);
  const auto got = host_lanms(score, geometry, 0.8f, 0.2f);
  size_t candidates = 0, kept = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const auto quads = east::decode_quads(batch_item(score, b), batch_item(geometry, b), 0.8f);
    candidates += quads.size();
    const auto want = east::locality_aware_nms(quads, 0.2f);
    kept += want.size();
    expect_same_quads(got[b], want, "image " + std::to_string(b));
  }
  EXPECT_GT(candidates, 2000u);
  EXPECT_GT(kept, 20u);
  EXPECT_LT(kept, candidates / 20) << "the candidates hardly merged: not EAST-like maps";
}

// A pipeline with `options` on `runner` is refused with an Error saying `fragment`.
void expect_refused(Runner& runner, const east::PipelineOptions& options, const std::string& fragment) {
  try {
    east::Pipeline pipeline(runner, options);
    ADD_FAILURE() << "the pipeline was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(LanmsRules, TheCpuRunnerRefusesLanmsOnTheGpu) {
  auto runner = make_cpu_runner(small_east());
  east::PipelineOptions options;
  options.device_lanms = true;
  expect_refused(*runner, options, "--lanms gpu needs --device gpu");
  EXPECT_TRUE(east::parse_lanms_on_device("gpu"));
  EXPECT_FALSE(east::parse_lanms_on_device("cpu"));
  EXPECT_THROW(east::parse_lanms_on_device("tpu"), Error);
}

TEST(LanmsRules, EmptyAndSingleInputs) {
  EXPECT_TRUE(gpu::lanms_as_on_gpu({}, 0.2f).empty());
  const Quad a = rectangle(50, 50, 30, 10, 0.1, 0.9f);
  expect_same_quads(gpu::lanms_as_on_gpu({a}, 0.2f), east::locality_aware_nms({a}, 0.2f), "one quad");
}

// ---- the kernels, on the GPU ----


TEST(GpuLanms, KernelsEqualTheHostRulesBitForBit) {
  REQUIRE_GPU();
  std::mt19937 rng(31);
  size_t kept = 0;
  // A 720x1280 image's maps with many boxes, awkward sizes, batch > 1 with an image without text.
  for (const auto& [batch, height, width, boxes] :
       std::vector<std::array<int, 4>>{{2, 168, 320, 25}, {3, 37, 53, 4}, {1, 1, 1, 1}, {4, 90, 61, 8}}) {
    SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(height) + "x" + std::to_string(width));
    HostTensor score, geometry;
    east_like_maps(batch, height, width, boxes, rng, &score, &geometry);
    const auto got = decode_boxes_on_gpu(score, geometry, 0.8f, 0.2f);
    const auto want = host_lanms(score, geometry, 0.8f, 0.2f);
    ASSERT_EQ(got.size(), want.size());
    for (size_t b = 0; b < want.size(); ++b) {
      expect_same_quads(got[b], want[b], "image " + std::to_string(b));
      kept += want[b].size();
    }
  }
  EXPECT_GT(kept, 30u) << "the comparison needs kept quads";
}

TEST(GpuLanms, MoreMergedQuadsThanOneBlockSortsFinishOnTheHost) {
  REQUIRE_GPU();
  // Every pixel a candidate of its own tiny box: nothing merges, 80 x 80 = 6400 quads > kLanmsBlockQuads.
  HostTensor score({2, 80, 80, 1}), geometry({2, 80, 80, 5});
  for (size_t i = 0; i < score.data.size(); ++i) {
    score.data[i] = 0.81f + 0.0001f * static_cast<float>(i % 97);
    for (int k = 0; k < 4; ++k) geometry.data[i * 5 + k] = 0.3f;
    geometry.data[i * 5 + 4] = 0.1f;
  }
  static_assert(80 * 80 > gpu::kLanmsBlockQuads, "the test must overflow the NMS block");
  const auto got = decode_boxes_on_gpu(score, geometry, 0.8f, 0.2f);
  const auto want = host_lanms(score, geometry, 0.8f, 0.2f);
  ASSERT_EQ(got.size(), 2u);
  for (size_t b = 0; b < 2; ++b) {
    EXPECT_EQ(want[b].size(), 6400u);
    expect_same_quads(got[b], want[b], "image " + std::to_string(b));
  }
}

// The pipeline on the GPU with LANMS on the GPU and on the CPU threads gives the same boxes. Images queued
// together, one decoding thread, and batches that leave only when full or at the end make both runs compose
// the same batches (as in GpuDecode.PipelineBoxesEqualWithTheCpuDecode).
TEST(GpuLanms, PipelineBoxesEqualWithLanmsOnTheCpu) {
  REQUIRE_GPU();
  auto runner = three_stream_runner();
  const std::vector<east::Image> images = mixed_size_images(13, 500);
  std::vector<std::vector<east::PipelineResult>> runs;
  for (bool device_lanms : {true, false}) {
    east::PipelineOptions options = same_batches_options();
    options.post_workers = 2;
    options.device_lanms = device_lanms;
    // The random-weight network's scores sit around 0.5: a threshold there leaves candidates to merge.
    options.detect.score_threshold = 0.5f;
    options.detect.box_threshold = 0.0f;
    runs.push_back(run_pipeline(*runner, options, images));
  }
  const size_t boxes = expect_same_boxes(runs[0], runs[1]);
  EXPECT_GT(boxes, 0u) << "the comparison needs boxes";
}

TEST(GpuLanms, NeedsTheDecodeOnTheGpu) {
  REQUIRE_GPU();
  auto runner = make_gpu_runner(small_east(), {});
  east::PipelineOptions options;
  options.device_lanms = true;
  options.device_decode = false;
  expect_refused(*runner, options, "--lanms gpu needs --device gpu and no --cpu-decode");
}

}  // namespace
}  // namespace eastrt
