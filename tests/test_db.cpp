// The DB detector against independent references: cv2 (findContours, minAreaRect) and pyclipper outputs and a
// Python DBPostProcess (tests/fixtures/db/make_db_fixtures.py), hand-computed rectangles and resize rules, and
// `eastrt detect` with PP-OCRv4 det on real ICDAR 2015 images against PaddleOCR's pipeline on ONNX Runtime.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eastrt/db_detector.h"

namespace fs = std::filesystem;
using namespace eastrt;
using db::Point;

namespace {

const std::string kFixtures = EASTRT_SOURCE_DIR "/tests/fixtures/db/";
const std::string kPpocr = EASTRT_SOURCE_DIR "/../shared/models/ppocr/ch_PP-OCRv4_det_infer.onnx";
const std::string kImages = EASTRT_SOURCE_DIR "/../shared/data/icdar2015/test/images";

const nlohmann::json& fixtures() {
  static const nlohmann::json json = [] {
    std::ifstream in(kFixtures + "db_fixtures.json");
    EXPECT_TRUE(in) << "missing " << kFixtures << "db_fixtures.json";
    return nlohmann::json::parse(in);
  }();
  return json;
}

std::array<Point, 4> corners_of(const nlohmann::json& j) {
  std::array<Point, 4> c;
  for (int i = 0; i < 4; ++i) c[i] = {j[i][0].get<float>(), j[i][1].get<float>()};
  return c;
}

// The largest coordinate difference between a quad and 8 integers.
float distance(const db::Quad& q, const std::vector<int>& xy) {
  float worst = 0;
  for (int i = 0; i < 4; ++i)
    worst = std::max({worst, std::abs(q.points[i].x - xy[2 * i]), std::abs(q.points[i].y - xy[2 * i + 1])});
  return worst;
}

}  // namespace

TEST(DbMiniBox, AxisAlignedRectangle) {
  const db::MiniBox box = db::mini_box({{10, 7}, {2, 3}, {10, 3}, {5, 5}, {2, 7}, {6, 3}});
  const std::array<Point, 4> expected = {{{2, 3}, {10, 3}, {10, 7}, {2, 7}}};  // TL, TR, BR, BL
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(box.corners[i].x, expected[i].x) << i;
    EXPECT_FLOAT_EQ(box.corners[i].y, expected[i].y) << i;
  }
  EXPECT_FLOAT_EQ(box.min_side, 4);
}

TEST(DbMiniBox, RotatedThirtyDegrees) {
  // A 20 × 8 rectangle centred at (50, 40), turned 30° clockwise on screen: corners and points on its edges
  // and inside. Corners by hand: (50 ± 8.660 ∓ 2, 40 ± 5 ± 3.464).
  const double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
  std::vector<Point> points;
  for (double u = -10; u <= 10; u += 2.5)
    for (double v : {-4.0, -1.0, 4.0}) points.push_back({float(50 + c * u - s * v), float(40 + s * u + c * v)});
  const db::MiniBox box = db::mini_box(points);
  const std::array<Point, 4> expected = {{{43.3397f, 31.5359f}, {60.6603f, 41.5359f}, {56.6603f, 48.4641f},
                                          {39.3397f, 38.4641f}}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(box.corners[i].x, expected[i].x, 1e-3) << i;
    EXPECT_NEAR(box.corners[i].y, expected[i].y, 1e-3) << i;
  }
  EXPECT_NEAR(box.min_side, 8, 1e-4);
}

TEST(DbMiniBox, DegeneratePointSets) {
  EXPECT_EQ(db::mini_box({}).min_side, 0);
  EXPECT_EQ(db::mini_box({{3, 4}}).min_side, 0);
  EXPECT_EQ(db::mini_box({{0, 0}, {5, 5}, {10, 10}}).min_side, 0);  // collinear
}

TEST(DbMiniBox, MatchesCv2MinAreaRect) {
  for (const auto& c : fixtures()["min_area_rect"]) {
    std::vector<Point> points;
    for (const auto& p : c["points"]) points.push_back({p[0].get<float>(), p[1].get<float>()});
    const db::MiniBox box = db::mini_box(points);
    const std::array<Point, 4> expected = corners_of(c["corners"]);
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(box.corners[i].x, expected[i].x, 1e-3) << points.size() << " points, corner " << i;
      EXPECT_NEAR(box.corners[i].y, expected[i].y, 1e-3) << points.size() << " points, corner " << i;
    }
    EXPECT_NEAR(box.min_side, c["min_side"].get<float>(), 1e-3);
  }
}

TEST(DbContours, MatchCv2FindContoursExactly) {
  // Outer borders, hole borders (a ring, a one-pixel hole), an island in a hole, a single pixel, an
  // 8-connected diagonal and a blob on the image edge: every point and the order of the borders.
  const auto& c = fixtures()["contours"];
  const int height = int(c["bitmap"].size()), width = int(c["bitmap"][0].get<std::string>().size());
  std::vector<uint8_t> bitmap;
  for (const auto& row : c["bitmap"])
    for (char ch : row.get<std::string>()) bitmap.push_back(ch == '1');
  const auto contours = db::find_contours(bitmap, height, width);
  ASSERT_EQ(contours.size(), c["expected"].size());
  for (size_t i = 0; i < contours.size(); ++i) {
    const auto& expected = c["expected"][i];
    ASSERT_EQ(contours[i].size(), expected.size()) << "contour " << i;
    for (size_t k = 0; k < expected.size(); ++k) {
      EXPECT_EQ(contours[i][k].x, expected[k][0].get<int>()) << "contour " << i << " point " << k;
      EXPECT_EQ(contours[i][k].y, expected[k][1].get<int>()) << "contour " << i << " point " << k;
    }
  }
}

TEST(DbUnclip, MatchesPyclipper) {
  for (const auto& c : fixtures()["unclip"]) {
    const std::vector<Point> grown = db::unclip(corners_of(c["quad"]), 1.5);
    std::vector<Point> expected;
    for (const auto& path : c["paths"])
      for (const auto& p : path) expected.push_back({p[0].get<float>(), p[1].get<float>()});
    ASSERT_EQ(grown.size(), expected.size()) << c["quad"].dump();
    for (size_t i = 0; i < grown.size(); ++i) {
      EXPECT_EQ(grown[i].x, expected[i].x) << c["quad"].dump() << " point " << i;
      EXPECT_EQ(grown[i].y, expected[i].y) << c["quad"].dump() << " point " << i;
    }
  }
}

TEST(DbResize, PaddleRule) {
  db::ResizePlan p = db::plan_resize(720, 1280);  // ICDAR 2015: 960 × 540 → 544 (540 / 32 = 16.875 → 17)
  EXPECT_EQ(p.height, 544);
  EXPECT_EQ(p.width, 960);
  EXPECT_DOUBLE_EQ(p.ratio_w, 0.75);
  p = db::plan_resize(80, 48);  // 2.5 and 1.5 round half to even: 2 and 2
  EXPECT_EQ(p.height, 64);
  EXPECT_EQ(p.width, 64);
  p = db::plan_resize(10, 400);  // small side rounds to 0 → 32
  EXPECT_EQ(p.height, 32);
  EXPECT_EQ(p.width, 384);
  p = db::plan_resize(2000, 1000);  // 960 × 480
  EXPECT_EQ(p.height, 960);
  EXPECT_EQ(p.width, 480);
}

TEST(DbPreprocess, BgrNormalisedNhwc) {
  db::Image image{40, 40, std::vector<uint8_t>(40 * 40 * 3)};
  for (size_t i = 0; i < image.rgb.size(); i += 3) image.rgb[i] = 10, image.rgb[i + 1] = 20, image.rgb[i + 2] = 30;
  db::ResizePlan plan;
  const HostTensor x = db::preprocess(image, &plan);
  ASSERT_EQ(x.shape, (Shape{1, 32, 32, 3}));
  // (v * float32(1/255) - mean) / std, channels B, G, R.
  EXPECT_FLOAT_EQ(x.data[0], (30 * float(1.0 / 255) - 0.485f) / 0.229f);
  EXPECT_FLOAT_EQ(x.data[1], (20 * float(1.0 / 255) - 0.456f) / 0.224f);
  EXPECT_FLOAT_EQ(x.data[2], (10 * float(1.0 / 255) - 0.406f) / 0.225f);
  // height + width < 64: padded with black to 32 × 32 before resizing.
  db::Image tiny{20, 10, std::vector<uint8_t>(20 * 10 * 3, 255)};
  const HostTensor t = db::preprocess(tiny, &plan);
  ASSERT_EQ(t.shape, (Shape{1, 32, 32, 3}));
  EXPECT_FLOAT_EQ(t.data[0], (255 * float(1.0 / 255) - 0.485f) / 0.229f);
  EXPECT_FLOAT_EQ(t.data[(31 * 32 + 31) * 3], (0 - 0.485f) / 0.229f);
}

TEST(DbPostprocess, MatchesPythonDbPostProcess) {
  // Two rotated text lines, a blob too small and one too faint, on a noisy 96 × 128 map, mapped to 250 × 190.
  const auto& c = fixtures()["postprocess"];
  const int h = c["height"], w = c["width"];
  HostTensor prob(Shape{1, h, w, 1});
  std::ifstream in(kFixtures + c["map"].get<std::string>(), std::ios::binary);
  in.read(reinterpret_cast<char*>(prob.data.data()), std::streamsize(prob.data.size() * sizeof(float)));
  ASSERT_TRUE(in) << "cannot read " << c["map"];
  const std::vector<db::Quad> boxes = db::detect_boxes(prob, c["src_height"], c["src_width"]);
  ASSERT_EQ(boxes.size(), c["boxes"].size());
  ASSERT_EQ(boxes.size(), 2u);
  for (size_t i = 0; i < boxes.size(); ++i) {
    EXPECT_LE(distance(boxes[i], c["boxes"][i]["box"].get<std::vector<int>>()), 1.0f)
        << i << ": " << east::format_box(boxes[i]) << " vs " << c["boxes"][i]["box"].dump();
    EXPECT_NEAR(boxes[i].score, c["boxes"][i]["score"].get<double>(), 1e-5);
  }
}

TEST(DbPostprocess, EmptyAndBadMaps) {
  EXPECT_TRUE(db::detect_boxes(HostTensor(Shape{1, 32, 32, 1}), 100, 100).empty());
  EXPECT_THROW(db::detect_boxes(HostTensor(Shape{1, 32, 32, 2}), 100, 100), std::exception);
}

TEST(DbDetectCli, PpocrOnIcdarImagesMatchesPaddlePipeline) {
  if (!fs::exists(kPpocr) || !fs::exists(kImages + "/img_1.jpg")) GTEST_SKIP() << "no PP-OCRv4 model or ICDAR images";
  const fs::path out = fs::temp_directory_path() / "eastrt_test_db_detect";
  fs::remove_all(out);
  const std::string command = std::string(EASTRT_TOOL) + " detect --model " + kPpocr + " --threads 2 --out " +
                              out.string() + " " + kImages + "/img_1.jpg " + kImages + "/img_2.jpg 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) output.append(buffer, n);
  const int status = pclose(pipe.release());
  ASSERT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_NE(output.find("2 images: 2 detected, 0 failed"), std::string::npos) << output;

  // PaddleOCR's pipeline with ONNX Runtime gives these boxes; our engine differs from it by ~1e-5 in the
  // probabilities, so a box may move by a pixel.
  for (const auto& expected : fixtures()["icdar2015"]) {
    const fs::path result = out / ("res_" + fs::path(expected["image"].get<std::string>()).stem().string() + ".txt");
    std::ifstream in(result);
    ASSERT_TRUE(in) << result;
    std::vector<db::Quad> boxes;
    for (std::string line; std::getline(in, line);) {
      db::Quad q;
      std::istringstream s(line);
      char comma;
      for (int i = 0; i < 4; ++i) s >> q.points[i].x >> comma >> q.points[i].y >> comma;
      double twice_area = 0;  // positive: clockwise on screen, as ICDAR 2015 requires
      for (int i = 0; i < 4; ++i)
        twice_area += double(q.points[i].x) * q.points[(i + 1) % 4].y - double(q.points[(i + 1) % 4].x) * q.points[i].y;
      EXPECT_GT(twice_area, 0) << result << ": " << line;
      boxes.push_back(q);
    }
    EXPECT_FALSE(boxes.empty()) << result;
    EXPECT_EQ(boxes.size(), expected["boxes"].size()) << result;
    for (const auto& e : expected["boxes"]) {
      float best = INFINITY;
      for (const db::Quad& q : boxes) best = std::min(best, distance(q, e["box"].get<std::vector<int>>()));
      EXPECT_LE(best, 1.0f) << result << ": no box near " << e["box"].dump();
    }
  }
}
