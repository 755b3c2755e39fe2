// Tests of the detector's CPU stages (eastrt/detector_ops.h) against independent references: lanms-neo and
// OpenCV outputs (tests/fixtures/lanms/, made by make_lanms_fixture.py), a transcription of argman/EAST's
// restore, hand-computed values, and libjpeg/libpng round trips.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

#include <jpeglib.h>  // after <cstdio>: it needs FILE and size_t

namespace fs = std::filesystem;
using namespace eastrt::east;
using eastrt::HostTensor;

namespace {

nlohmann::json read_fixture(const std::string& name) {
  const std::string path = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/lanms/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing fixture " + path + " (run make_lanms_fixture.py)");
  return nlohmann::json::parse(in);
}

// The message of the eastrt::Error that f throws, or "" when it throws none.
template <typename F>
std::string error_message(F f) {
  try {
    f();
  } catch (const eastrt::Error& e) {
    return e.what();
  }
  return "";
}

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("eastrt_east_ops_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

Image pattern_image(int width, int height) {
  Image image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>((x * 7 + y * 13) % 256);
    }
  return image;
}

// A JPEG made by libjpeg itself, so decode tests have a real encoder's output.
std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = image.width;
  cinfo.image_height = image.height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.rgb.data()) + static_cast<size_t>(cinfo.next_scanline) * image.width * 3;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

void put_le(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A BMP written by hand: BITMAPFILEHEADER + BITMAPINFOHEADER, rows padded to 4 bytes.
std::vector<uint8_t> encode_bmp(const Image& image, int bits, bool top_down) {
  const int bpp = bits / 8;
  const int stride = (image.width * bits + 31) / 32 * 4;
  std::vector<uint8_t> out = {'B', 'M'};
  put_le(out, 54 + stride * image.height, 4);
  put_le(out, 0, 4);
  put_le(out, 54, 4);
  put_le(out, 40, 4);
  put_le(out, image.width, 4);
  put_le(out, static_cast<uint32_t>(top_down ? -image.height : image.height), 4);
  put_le(out, 1, 2);
  put_le(out, bits, 2);
  for (int i = 0; i < 6; ++i) put_le(out, 0, 4);
  for (int r = 0; r < image.height; ++r) {
    const int y = top_down ? r : image.height - 1 - r;
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = image.rgb.data() + (static_cast<size_t>(y) * image.width + x) * 3;
      out.insert(out.end(), {p[2], p[1], p[0]});
      if (bpp == 4) out.push_back(255);
    }
    for (int pad = image.width * bpp; pad < stride; ++pad) out.push_back(0);
  }
  return out;
}

// make_lanms_fixture.py's pseudo-random image: x = (1103515245 x + 12345) mod 2^31, bytes (x >> 16) & 255.
Image lcg_image(int width, int height, uint64_t seed) {
  Image image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  uint64_t x = seed;
  for (uint8_t& v : image.rgb) {
    x = (1103515245u * x + 12345u) % (uint64_t(1) << 31);
    v = static_cast<uint8_t>((x >> 16) & 255);
  }
  return image;
}

Quad make_quad(std::array<float, 8> xy, float score) {
  Quad q;
  for (int i = 0; i < 4; ++i) q.points[i] = {xy[2 * i], xy[2 * i + 1]};
  q.score = score;
  return q;
}

// Corners (TL, TR, BR, BL) of a w x h rectangle centred at (cx, cy) whose top edge runs along
// (cos a, -sin a) on screen, the orientation EAST's angle describes.
std::array<Point, 4> rectangle_corners(double cx, double cy, double w, double h, double a) {
  const double c = std::cos(a), s = std::sin(a);
  const double local[4][2] = {{-w / 2, -h / 2}, {w / 2, -h / 2}, {w / 2, h / 2}, {-w / 2, h / 2}};
  std::array<Point, 4> out;
  for (int i = 0; i < 4; ++i)
    out[i] = {static_cast<float>(cx + c * local[i][0] + s * local[i][1]),
              static_cast<float>(cy - s * local[i][0] + c * local[i][1])};
  return out;
}

double distance_to_line(Point p, Point a, Point b) {
  const double ux = b.x - a.x, uy = b.y - a.y;
  return std::abs(ux * (p.y - a.y) - uy * (p.x - a.x)) / std::hypot(ux, uy);
}

// argman/EAST icdar.py restore_rectangle_rbox transcribed step by step (its two branches, the local
// rectangle p, the rotation rows, p3_in_origin), as an independent check of our one-formula version.
std::array<Point, 4> reference_restore(double ox, double oy, const float g[5]) {
  const double d0 = g[0], d1 = g[1], d2 = g[2], d3 = g[3], a = g[4];
  double p[5][2], rx[2], ry[2];
  if (a >= 0) {
    const double local[5][2] = {{0, -d0 - d2}, {d1 + d3, -d0 - d2}, {d1 + d3, 0}, {0, 0}, {d3, -d2}};
    std::copy(&local[0][0], &local[0][0] + 10, &p[0][0]);
    rx[0] = std::cos(a), rx[1] = std::sin(a);
    ry[0] = -std::sin(a), ry[1] = std::cos(a);
  } else {
    const double local[5][2] = {{-d1 - d3, -d0 - d2}, {0, -d0 - d2}, {0, 0}, {-d1 - d3, 0}, {-d1, -d2}};
    std::copy(&local[0][0], &local[0][0] + 10, &p[0][0]);
    rx[0] = std::cos(-a), rx[1] = -std::sin(-a);
    ry[0] = std::sin(-a), ry[1] = std::cos(-a);
  }
  double rotated[5][2];
  for (int i = 0; i < 5; ++i) {
    rotated[i][0] = rx[0] * p[i][0] + rx[1] * p[i][1];
    rotated[i][1] = ry[0] * p[i][0] + ry[1] * p[i][1];
  }
  const double shift_x = ox - rotated[4][0], shift_y = oy - rotated[4][1];
  std::array<Point, 4> out;
  for (int i = 0; i < 4; ++i)
    out[i] = {static_cast<float>(rotated[i][0] + shift_x), static_cast<float>(rotated[i][1] + shift_y)};
  return out;
}

void expect_points_near(const std::array<Point, 4>& got, const std::array<Point, 4>& want, double tolerance,
                        const std::string& what) {
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i].x, want[i].x, tolerance) << what << " vertex " << i;
    EXPECT_NEAR(got[i].y, want[i].y, tolerance) << what << " vertex " << i;
  }
}

// Score and geometry maps ([1, h, w, 1] and [1, h, w, 5]) with rotated rectangles painted in: each pixel
// whose origin (4x, 4y) lies inside a rectangle gets score 0.95 and its exact distances to the edges.
struct Rect {
  double cx, cy, w, h, a;
};
void paint(HostTensor& score, HostTensor& geometry, const Rect& r) {
  const int h = static_cast<int>(score.shape[1]), w = static_cast<int>(score.shape[2]);
  const double c = std::cos(r.a), s = std::sin(r.a);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dx = 4.0 * x - r.cx, dy = 4.0 * y - r.cy;
      const double u = c * dx - s * dy, v = s * dx + c * dy;  // R(a)^-1 (P - centre)
      if (std::abs(u) >= r.w / 2 || std::abs(v) >= r.h / 2) continue;
      const size_t i = static_cast<size_t>(y) * w + x;
      score.data[i] = 0.95f;
      const float g[5] = {static_cast<float>(v + r.h / 2), static_cast<float>(r.w / 2 - u),
                          static_cast<float>(r.h / 2 - v), static_cast<float>(u + r.w / 2), static_cast<float>(r.a)};
      std::copy(g, g + 5, geometry.data.begin() + i * 5);
    }
}

HostTensor make_map(int h, int w, int channels, float value) {
  HostTensor t;
  t.shape = {1, h, w, channels};
  t.data.assign(static_cast<size_t>(h) * w * channels, value);
  return t;
}

}  // namespace

// ---- restore ----

TEST(EastRestore, RecoversAKnownRectangleForBothAngleSigns) {
  for (const double angle : {0.0, 0.35, -0.35, 0.7853, -0.7853, -0.05}) {
    const auto corners = rectangle_corners(300, 200, 160, 40, angle);
    // A point inside, off-centre, and its distances to the four edge lines (top, right, bottom, left).
    const double c = std::cos(angle), s = std::sin(angle);
    const Point origin{static_cast<float>(300 + c * 30 + s * -7), static_cast<float>(200 - s * 30 + c * -7)};
    const float g[5] = {static_cast<float>(distance_to_line(origin, corners[0], corners[1])),
                        static_cast<float>(distance_to_line(origin, corners[1], corners[2])),
                        static_cast<float>(distance_to_line(origin, corners[2], corners[3])),
                        static_cast<float>(distance_to_line(origin, corners[3], corners[0])),
                        static_cast<float>(angle)};
    EXPECT_NEAR(g[0], 13, 1e-3);  // 20 - 7 from the top edge
    EXPECT_NEAR(g[3], 110, 1e-3);  // 80 + 30 from the left edge
    const Quad q = restore_rbox(origin.x, origin.y, g, 0.9f);
    expect_points_near(q.points, corners, 2e-3, "angle " + std::to_string(angle));
    EXPECT_EQ(q.score, 0.9f);
  }
}

TEST(EastRestore, MatchesTranscribedReferenceOnRandomGeometry) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(0, 512), angle(-0.7854f, 0.7854f), pos(0, 1280);
  for (int i = 0; i < 500; ++i) {
    const float g[5] = {dist(rng), dist(rng), dist(rng), dist(rng), i % 7 == 0 ? 0.0f : angle(rng)};
    const float ox = std::floor(pos(rng) / 4) * 4, oy = std::floor(pos(rng) / 4) * 4;
    const Quad q = restore_rbox(ox, oy, g, 1);
    expect_points_near(q.points, reference_restore(ox, oy, g), 1e-3, "case " + std::to_string(i));
  }
}

TEST(EastDecode, KeepsEachPixelsOwnScoreInRowOrder) {
  // Row 0: a negative-angle pixel then a positive one; the public code would pair their scores wrongly.
  HostTensor score = make_map(2, 3, 1, 0.1f), geometry = make_map(2, 3, 5, 10);
  score.data = {0.91f, 0.5f, 0.92f, 0.1f, 0.93f, 0.85f};
  for (int i = 0; i < 6; ++i) geometry.data[i * 5 + 4] = (i % 2 == 0) ? -0.3f : 0.2f;
  geometry.data[5 * 5 + 0] = NAN;  // non-finite geometry: skipped
  const std::vector<Quad> quads = decode_quads(score, geometry, 0.8f);
  ASSERT_EQ(quads.size(), 3u);
  const float want_scores[3] = {0.91f, 0.92f, 0.93f};
  const float want_origin[3][2] = {{0, 0}, {8, 0}, {4, 4}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(quads[i].score, want_scores[i]);
    const float* g = geometry.data.data() + (i == 0 ? 0 : i == 1 ? 2 : 4) * 5;
    const Quad expected = restore_rbox(want_origin[i][0], want_origin[i][1], g, 0);
    expect_points_near(quads[i].points, expected.points, 0, "quad " + std::to_string(i));
  }
  EXPECT_NE(error_message([&] { decode_quads(make_map(2, 3, 1, 0), make_map(2, 4, 5, 0)); }), "");
  HostTensor bad;
  bad.shape = {1, 2, 3, 2};
  bad.data.resize(12);
  EXPECT_NE(error_message([&] { decode_quads(bad, geometry); }).find("score map"), std::string::npos);
}

// ---- LANMS ----

TEST(EastLanms, IouOfSimpleQuads) {
  const Quad a = make_quad({0, 0, 10, 0, 10, 10, 0, 10}, 1);
  EXPECT_NEAR(quad_iou(a, a), 1.0f, 1e-6);
  EXPECT_NEAR(quad_iou(a, make_quad({5, 0, 15, 0, 15, 10, 5, 10}, 1)), 1.0f / 3, 1e-6);
  EXPECT_EQ(quad_iou(a, make_quad({20, 0, 30, 0, 30, 10, 20, 10}, 1)), 0.0f);
}

TEST(EastLanms, MatchesLanmsNeoFixture) {
  const nlohmann::json doc = read_fixture("lanms_cases.json");
  const float threshold = doc["threshold"];
  int compared = 0;
  for (size_t s = 0; s < doc["sets"].size(); ++s) {
    const auto& set = doc["sets"][s];
    std::vector<Quad> input;
    for (const auto& row : set["input"]) {
      std::array<float, 8> xy;
      for (int k = 0; k < 8; ++k) xy[k] = row[k];
      input.push_back(make_quad(xy, row[8]));
    }
    const std::vector<Quad> got = locality_aware_nms(input, threshold);
    const auto& want = set["output"];
    ASSERT_EQ(got.size(), want.size()) << "set " << s;
    // Same order too: both sort the kept quads by score with std::sort. The tolerance is half a fixed-point
    // unit (1e-4): the float rounding of lanms' merger is reproduced, so vertices agree exactly.
    for (size_t i = 0; i < got.size(); ++i) {
      for (int k = 0; k < 4; ++k) {
        const float wx = want[i][2 * k], wy = want[i][2 * k + 1];
        EXPECT_NEAR(got[i].points[k].x, wx, 5e-5 + 1e-7 * std::abs(wx)) << "set " << s << " quad " << i;
        EXPECT_NEAR(got[i].points[k].y, wy, 5e-5 + 1e-7 * std::abs(wy)) << "set " << s << " quad " << i;
      }
      const float ws = want[i][8];
      EXPECT_NEAR(got[i].score, ws, 1e-5 * std::abs(ws)) << "set " << s << " quad " << i;
      ++compared;
    }
  }
  EXPECT_GT(compared, 50);
}

TEST(EastLanms, MergesByWeightedAverageAndSumsScores) {
  // Two overlapping boxes in a row merge (score-weighted, in 1e-4 fixed point), a distant one stays.
  const std::vector<Quad> out = locality_aware_nms({make_quad({0, 0, 10, 0, 10, 10, 0, 10}, 0.75f),
                                                    make_quad({2, 0, 12, 0, 12, 10, 2, 10}, 0.25f),
                                                    make_quad({50, 0, 60, 0, 60, 10, 50, 10}, 0.9f)},
                                                   0.2f);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[0].score, 1.0f, 1e-6);
  EXPECT_NEAR(out[0].points[0].x, 0.5f, 1e-3);
  EXPECT_NEAR(out[0].points[1].x, 10.5f, 1e-3);
  EXPECT_NEAR(out[1].points[0].x, 50.0f, 1e-3);
}

// ---- resize ----

TEST(EastResize, RuleOfTheReference) {
  ResizePlan p = plan_resize(720, 1280);
  EXPECT_EQ(p.height, 672);
  EXPECT_EQ(p.width, 1280);
  EXPECT_DOUBLE_EQ(p.ratio_h, 672.0 / 720);
  EXPECT_DOUBLE_EQ(p.ratio_w, 1.0);
  p = plan_resize(2500, 100);  // longer side scaled to 2400, the other by the same 0.96
  EXPECT_EQ(p.height, 2400);
  EXPECT_EQ(p.width, 96);
  p = plan_resize(100, 2500);
  EXPECT_EQ(p.height, 96);
  EXPECT_EQ(p.width, 2400);
  p = plan_resize(4000, 3000);  // 2400 x 1800, and 1800 is not a multiple of 32: (56 - 1) * 32
  EXPECT_EQ(p.height, 2400);
  EXPECT_EQ(p.width, 1760);
  for (auto [h, w] : {std::pair{1, 1}, {10, 20}, {31, 33}, {63, 40}}) {
    p = plan_resize(h, w);
    EXPECT_EQ(p.height, 32) << h << "x" << w;
    EXPECT_EQ(p.width, 32) << h << "x" << w;
  }
  EXPECT_EQ(plan_resize(64, 65).width, 32);  // 65 // 32 - 1 = 1
  EXPECT_NE(error_message([] { plan_resize(0, 10); }), "");
}

TEST(EastResize, BilinearHandComputed) {
  // 2x2 -> 4x4: sample centres at -0.25, 0.25, 0.75, 1.25 in source pixels; outside positions repeat the
  // edge. Values are multiples of 16, so the quarter weights give exact integers.
  const int r[2][2] = {{0, 160}, {240, 64}};
  Image image{2, 2, std::vector<uint8_t>(12)};
  for (int i = 0; i < 4; ++i) {
    image.rgb[i * 3 + 0] = static_cast<uint8_t>(r[i / 2][i % 2]);
    image.rgb[i * 3 + 1] = 255;
    image.rgb[i * 3 + 2] = 0;
  }
  const HostTensor t = resize_bilinear(image, 4, 4);
  ASSERT_EQ(t.shape, (eastrt::Shape{1, 4, 4, 3}));
  // Rows: the top row, 3/4 top + 1/4 bottom, 1/4 top + 3/4 bottom, the bottom row; same along x.
  const float want[4][4] = {{0, 40, 120, 160}, {60, 79, 117, 136}, {180, 157, 111, 88}, {240, 196, 108, 64}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      EXPECT_EQ(t.data[(y * 4 + x) * 3 + 0], want[y][x]) << y << "," << x;
      EXPECT_EQ(t.data[(y * 4 + x) * 3 + 1], 255.0f);
      EXPECT_EQ(t.data[(y * 4 + x) * 3 + 2], 0.0f);
    }
}

TEST(EastResize, MatchesOpenCvFixture) {
  const nlohmann::json doc = read_fixture("opencv_cases.json");
  for (const auto& c : doc["resize"]) {
    Image image{c["width"], c["height"], from_hex(c["input_hex"])};
    const int oh = c["out_height"], ow = c["out_width"];
    const std::vector<uint8_t> want = from_hex(c["output_hex"]);
    const HostTensor t = resize_bilinear(image, oh, ow);
    ASSERT_EQ(t.data.size(), want.size());
    int mismatches = 0;
    for (size_t i = 0; i < want.size(); ++i) mismatches += t.data[i] != want[i];
    EXPECT_EQ(mismatches, 0) << image.height << "x" << image.width << " -> " << oh << "x" << ow;
  }
  for (const auto& c : doc["resize_checksums"]) {
    const Image image = lcg_image(c["width"], c["height"], c["seed"]);
    const HostTensor t = resize_bilinear(image, c["out_height"], c["out_width"]);
    int64_t sum = 0;
    for (size_t i = 0; i < t.data.size(); ++i) sum += static_cast<int64_t>(t.data[i]) * static_cast<int64_t>(i % 251 + 1);
    EXPECT_EQ(sum, c["checksum"].get<int64_t>()) << image.height << "x" << image.width;
  }
}

// ---- images ----

TEST(EastImage, PngRoundTrip) {
  const Image image = pattern_image(13, 7);
  const std::string path = temp_path("round_trip.png");
  write_png(path, image);
  const Image back = decode_image(path);
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.rgb, image.rgb);
  const std::string unwritable = temp_path("no_such_dir") + "/x.png";
  EXPECT_NE(error_message([&] { write_png(unwritable, image); }).find(unwritable), std::string::npos);
}

TEST(EastImage, BmpBothRowOrdersAndDepths) {
  const Image image = pattern_image(5, 3);  // width 5: 24-bit rows need padding
  for (int bits : {24, 32})
    for (bool top_down : {false, true}) {
      const std::vector<uint8_t> bmp = encode_bmp(image, bits, top_down);
      const Image back = decode_image(bmp.data(), bmp.size(), "test.bmp");
      EXPECT_EQ(back.width, 5);
      EXPECT_EQ(back.height, 3);
      EXPECT_EQ(back.rgb, image.rgb) << bits << " bits, top_down " << top_down;
    }
  std::vector<uint8_t> truncated = encode_bmp(image, 24, false);
  truncated.resize(truncated.size() - 20);
  EXPECT_NE(error_message([&] { decode_image(truncated.data(), truncated.size(), "short.bmp"); }).find("short.bmp"),
            std::string::npos);
}

TEST(EastImage, DecodesLikeOpenCvImread) {
  // JPEG 4:2:0 and grey, PNG 16-bit, with alpha, grey 8- and 16-bit: the pixels cv2.imread gives.
  const nlohmann::json doc = read_fixture("opencv_cases.json");
  int compared = 0;
  for (const auto& c : doc["decode"]) {
    const std::string name = c["name"];
    const std::vector<uint8_t> file = from_hex(c["file_hex"]);
    const Image image = decode_image(file.data(), file.size(), name);
    EXPECT_EQ(image.width, c["width"].get<int>()) << name;
    EXPECT_EQ(image.height, c["height"].get<int>()) << name;
    EXPECT_EQ(image.rgb, from_hex(c["rgb_hex"])) << name;
    ++compared;
  }
  EXPECT_GE(compared, 7);
}

TEST(EastImage, JpegRoundTrip) {
  Image image = pattern_image(40, 24);
  for (size_t i = 2; i < image.rgb.size(); i += 3) image.rgb[i] = 100;  // smooth: JPEG keeps it well
  const std::vector<uint8_t> jpeg = encode_jpeg(image, 95);
  const Image back = decode_image(jpeg.data(), jpeg.size(), "test.jpg");
  ASSERT_EQ(back.width, 40);
  ASSERT_EQ(back.height, 24);
  double error = 0;
  for (size_t i = 0; i < image.rgb.size(); ++i) error += std::abs(int(back.rgb[i]) - int(image.rgb[i]));
  EXPECT_LT(error / image.rgb.size(), 4.0);
}

TEST(EastImage, CmykJpegConvertedAsOpenCvDoes) {
  // A flat CMYK JPEG (as Adobe writes them, inverted); OpenCV maps each channel to k - ((255 - v) * k >> 8).
  const int width = 16, height = 8;
  std::vector<uint8_t> cmyk(width * height * 4);
  for (size_t i = 0; i < cmyk.size(); i += 4) cmyk[i] = 50, cmyk[i + 1] = 100, cmyk[i + 2] = 200, cmyk[i + 3] = 230;
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = 4;
  cinfo.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = cmyk.data() + cinfo.next_scanline * width * 4;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  const std::vector<uint8_t> jpeg(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  const Image image = decode_image(jpeg.data(), jpeg.size(), "cmyk.jpg");
  ASSERT_EQ(image.width, width);
  const int want[3] = {230 - ((205 * 230) >> 8), 230 - ((155 * 230) >> 8), 230 - ((55 * 230) >> 8)};
  for (size_t i = 0; i < image.rgb.size(); ++i) EXPECT_NEAR(image.rgb[i], want[i % 3], 2) << i;
}

TEST(EastImage, CorruptFilesThrowNamingTheFile) {
  const Image image = pattern_image(40, 24);
  const std::vector<uint8_t> jpeg = encode_jpeg(image, 90);
  const std::string png_path = temp_path("good.png");
  write_png(png_path, image);
  const std::vector<uint8_t> png = read_bytes(png_path);

  std::vector<std::pair<std::string, std::vector<uint8_t>>> cases;
  cases.push_back({"truncated_scan.jpg", {jpeg.begin(), jpeg.begin() + jpeg.size() * 6 / 10}});
  cases.push_back({"truncated_header.jpg", {jpeg.begin(), jpeg.begin() + 20}});
  std::vector<uint8_t> bad_sof = jpeg;
  for (size_t i = 0; i + 8 < bad_sof.size(); ++i)
    if (bad_sof[i] == 0xFF && bad_sof[i + 1] == 0xC0) {
      std::fill(bad_sof.begin() + i + 5, bad_sof.begin() + i + 9, 0);  // height and width 0
      break;
    }
  cases.push_back({"zero_size.jpg", bad_sof});
  cases.push_back({"truncated.png", {png.begin(), png.begin() + png.size() - 30}});
  cases.push_back({"header_only.png", {png.begin(), png.begin() + 20}});
  std::vector<uint8_t> bad_crc = png;
  bad_crc[png.size() / 2] ^= 0x5A;  // inside IDAT: its CRC no longer matches
  cases.push_back({"bad_crc.png", bad_crc});
  const std::string text = "hello, this is not an image\n";
  cases.push_back({"notes.txt.jpg", {text.begin(), text.end()}});
  cases.push_back({"empty.png", {}});

  for (const auto& [name, bytes] : cases) {
    const std::string path = temp_path(name);
    write_bytes(path, bytes);
    const std::string message = error_message([&] { decode_image(path); });
    EXPECT_NE(message.find(path), std::string::npos) << name << ": " << message;
  }
  const std::string missing = temp_path("missing.jpg");
  EXPECT_NE(error_message([&] { decode_image(missing); }).find(missing), std::string::npos);
}

TEST(EastImage, DrawQuadsClipsToTheImage) {
  Image image{20, 10, std::vector<uint8_t>(20 * 10 * 3, 0)};
  draw_quads(image, {make_quad({2, 2, 30, 2, 30, 7, 2, 7}, 1)}, {255, 0, 0}, 1);
  auto red = [&](int x, int y) { return image.rgb[(y * 20 + x) * 3] == 255; };
  EXPECT_TRUE(red(2, 2));
  EXPECT_TRUE(red(19, 2));
  EXPECT_TRUE(red(2, 5));
  EXPECT_FALSE(red(5, 5));
}

// ---- post-processing ----

TEST(EastPostprocess, FillPolyAndMeanMatchOpenCvFixture) {
  const nlohmann::json doc = read_fixture("opencv_cases.json");
  const auto& fp = doc["fillpoly"];
  const int h = fp["height"], w = fp["width"];
  // The score map: channel 0 of the LCG image, divided by 256.
  const Image bytes = lcg_image(w, h, fp["score_seed"]);
  HostTensor score = make_map(h, w, 1, 0);
  for (size_t i = 0; i < score.data.size(); ++i) score.data[i] = bytes.rgb[i * 3] / 256.0f;
  int index = 0;
  for (const auto& c : fp["cases"]) {
    std::array<int, 8> xy;
    for (int k = 0; k < 8; ++k) xy[k] = c["xy"][k];
    std::vector<uint8_t> want(static_cast<size_t>(h) * w, 0);
    for (const auto& run : c["runs"])
      for (int x = run[1]; x <= run[2]; ++x) want[static_cast<size_t>(run[0].get<int>()) * w + x] = 1;
    EXPECT_EQ(rasterize_quad(h, w, xy), want) << "case " << index;
    std::array<float, 8> box;
    for (int k = 0; k < 8; ++k) box[k] = c["box"][k];
    EXPECT_NEAR(mean_score_inside(score, make_quad(box, 0)), c["mean"].get<double>(), 1e-6) << "case " << index;
    ++index;
  }
  EXPECT_GE(index, 50);
}

TEST(EastPostprocess, VertexOrderOfTheReference) {
  // Clockwise, listed from the bottom-left: rotated to start at the smallest x + y.
  Quad q = sort_vertices(make_quad({10, 80, 10, 50, 110, 50, 110, 80}, 1));
  expect_points_near(q.points, make_quad({10, 50, 110, 50, 110, 80, 10, 80}, 0).points, 0, "clockwise");
  // Counter-clockwise: the first edge would be vertical, so the direction is reversed.
  q = sort_vertices(make_quad({110, 50, 10, 50, 10, 80, 110, 80}, 1));
  expect_points_near(q.points, make_quad({10, 50, 110, 50, 110, 80, 10, 80}, 0).points, 0, "counter-clockwise");
  // A tall box whose first edge is horizontal keeps its order.
  q = sort_vertices(make_quad({0, 0, 10, 0, 10, 100, 0, 100}, 1));
  expect_points_near(q.points, make_quad({0, 0, 10, 0, 10, 100, 0, 100}, 0).points, 0, "tall");
  EXPECT_EQ(format_box(make_quad({-3, 4, 5, 6, 7, 8, 9, 10}, 0)), "-3,4,5,6,7,8,9,10");
}

TEST(EastPostprocess, DetectBoxesOnSyntheticMaps) {
  // A 1024x512 image resized to 512x256: the maps are 64x128. Two rectangles and one 2-pixel-high strip.
  HostTensor score = make_map(64, 128, 1, 0.01f), geometry = make_map(64, 128, 5, 0);
  const Rect a{120, 60, 160, 40, 0.0}, b{350, 180, 120, 36, 0.2}, strip{80, 220, 80, 2, 0.0};
  for (const Rect& r : {a, b, strip}) paint(score, geometry, r);
  const double ratio = 0.5;
  const std::vector<Quad> boxes = detect_boxes(score, geometry, ratio, ratio);
  ASSERT_EQ(boxes.size(), 2u) << "the strip is 4 px high in the original image and must be dropped";
  // NMS order is by summed score: the larger rectangle first.
  const Rect want[2] = {a, b};
  for (int i = 0; i < 2; ++i) {
    auto corners = rectangle_corners(want[i].cx / ratio, want[i].cy / ratio, want[i].w / ratio, want[i].h / ratio,
                                     want[i].a);
    expect_points_near(boxes[i].points, corners, 2.0, "box " + std::to_string(i));
    for (const Point& p : boxes[i].points) {
      EXPECT_EQ(p.x, std::floor(p.x));
      EXPECT_EQ(p.y, std::floor(p.y));
    }
    EXPECT_GT(boxes[i].score, 0.5f);
    EXPECT_LT(boxes[i].score, 0.95f);
  }
  // Without the edge filter the strip comes back, 4 px high.
  DetectOptions keep_small;
  keep_small.min_edge = 0;
  EXPECT_EQ(detect_boxes(score, geometry, ratio, ratio, keep_small).size(), 3u);
  // A map with nothing above the threshold gives nothing.
  EXPECT_TRUE(detect_boxes(make_map(64, 128, 1, 0.5f), geometry, 1, 1).empty());
}
