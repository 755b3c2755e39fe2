// Tests of the ICDAR 2015 Task 4.1 evaluator against the competition's script: hand-checked cases, values
// measured with its Polygon3 library, and the published figures of the argman/EAST ResNet-50 detections.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "eastrt/error.h"
#include "eastrt/eval.h"

namespace fs = std::filesystem;
using namespace eastrt::eval;

namespace {

// Axis-aligned box, corners clockwise from top-left in image coordinates.
Quad box(int x0, int y0, int x1, int y1) { return {x0, y0, x1, y0, x1, y1, x0, y1}; }

GroundTruthRegion care(Quad q) { return {q, "text", false}; }
GroundTruthRegion dont_care(Quad q) { return {q, "###", true}; }

// The message of the Error that `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const eastrt::Error& e) {
    return e.what();
  }
  return "";
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("eastrt_test_eval_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_ / "gt");
    fs::create_directories(path_ / "det");
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path gt() const { return path_ / "gt"; }
  fs::path det() const { return path_ / "det"; }
  void write(const fs::path& file, const std::string& text) const {
    std::ofstream(file, std::ios::binary) << text;
  }

 private:
  fs::path path_;
};

// Runs a shell command, returning its exit status and what it printed (stdout and stderr).
int run_command(const std::string& command, std::string& output) {
  output.clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const fs::path kFixtures = fs::path(EASTRT_SOURCE_DIR) / "tests/fixtures/eval";
const fs::path kIcdar2015 = fs::path(EASTRT_SOURCE_DIR) / "../shared/data/icdar2015";

}  // namespace

TEST(EvalPolygon, AreasOfConvexQuads) {
  EXPECT_EQ(quad_area(box(0, 0, 10, 5)), 50);
  EXPECT_EQ(intersection_area(box(0, 0, 10, 10), box(5, 5, 20, 20)), 25);
  EXPECT_EQ(intersection_area(box(0, 0, 10, 10), box(10, 0, 20, 10)), 0);  // touching edges
  EXPECT_EQ(intersection_area(box(0, 0, 10, 10), box(2, 2, 4, 4)), 4);     // contained
  // A diamond with corners on the square's edge midpoints covers half of it.
  const Quad diamond = {5, 0, 10, 5, 5, 10, 0, 5};
  EXPECT_EQ(quad_area(diamond), 50);
  EXPECT_DOUBLE_EQ(intersection_area(box(0, 0, 10, 10), diamond), 50);
  // A diamond of area 18 cut by the line y = 1: only its tip, a triangle of area 1, is outside the box.
  EXPECT_DOUBLE_EQ(intersection_area(Quad{3, 0, 6, 3, 3, 6, 0, 3}, box(0, 1, 6, 6)), 17);
  EXPECT_DOUBLE_EQ(intersection_over_union(box(0, 0, 10, 10), box(5, 0, 15, 10)), 50.0 / 150.0);
}

TEST(EvalPolygon, NonConvexAndSelfIntersectingFollowPolygonLibrary) {
  // Values printed by Polygon3 (the script's library) for these quads: area() is the unsigned shoelace
  // area of the contour, `&` clips with the even-odd rule.
  const Quad square = box(0, 0, 10, 10);
  const Quad bow_tie = {0, 0, 10, 10, 10, 0, 0, 10};   // left and right triangles, 25 each
  const Quad bow_tie2 = {0, 0, 10, 0, 0, 10, 10, 10};  // top and bottom triangles
  const Quad dart = {0, 0, 10, 5, 0, 10, 3, 5};        // non-convex arrow head
  EXPECT_EQ(quad_area(bow_tie), 0);                    // the lobes cancel
  EXPECT_DOUBLE_EQ(intersection_area(bow_tie, square), 50);
  EXPECT_DOUBLE_EQ(intersection_area(bow_tie, bow_tie), 50);
  EXPECT_NEAR(intersection_area(bow_tie, bow_tie2), 0, 1e-12);
  EXPECT_DOUBLE_EQ(quad_area(dart), 35);
  EXPECT_DOUBLE_EQ(intersection_area(dart, square), 35);
  // A zero-area quad intersects nothing, and its IoU with itself is 0 (a zero union).
  const Quad flat = {0, 0, 10, 0, 10, 0, 0, 0};
  EXPECT_EQ(intersection_area(flat, square), 0);
  EXPECT_EQ(intersection_over_union(flat, flat), 0);
}

TEST(EvalParse, BomCrlfAndCommasInTranscription) {
  const std::string text =
      "\xEF\xBB\xBF"
      "377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
      "374,155,409,155,409,170,374,170,###\r\n"
      "\r\n"
      "1,2,30,2,30,20,1,20,one, two,,three\r\n";
  const auto regions = parse_ground_truth(text, "gt_img_1.txt");
  ASSERT_EQ(regions.size(), 3u);
  EXPECT_EQ(regions[0].quad, (Quad{377, 117, 463, 117, 465, 130, 378, 130}));
  EXPECT_EQ(regions[0].transcription, "Genaxis Theatre");
  EXPECT_FALSE(regions[0].dont_care);
  EXPECT_TRUE(regions[1].dont_care);
  EXPECT_EQ(regions[2].transcription, "one, two,,three");
  // The same lines with LF and no BOM read the same.
  const auto plain = parse_ground_truth("374,155,409,155,409,170,374,170,###\n", "x");
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_TRUE(plain[0].dont_care);
}

TEST(EvalParse, TranscriptionFollowsTheScript) {
  // Quotes are removed and \" \\ unescaped, so "###" in quotes is do-not-care; a space after the comma is
  // part of the transcription, so " ###" is not.
  const auto regions = parse_ground_truth(
      "0,0,1,0,1,1,0,1,\"###\"\n0,0,1,0,1,1,0,1, ###\n0,0,1,0,1,1,0,1,\"say \\\"hi\\\", a\\\\b\"\n", "g");
  ASSERT_EQ(regions.size(), 3u);
  EXPECT_TRUE(regions[0].dont_care);
  EXPECT_FALSE(regions[1].dont_care);
  EXPECT_EQ(regions[1].transcription, " ###");
  EXPECT_EQ(regions[2].transcription, "say \"hi\", a\\b");
}

TEST(EvalParse, DetectionsAcceptSpacesNotConfidences) {
  const auto quads = parse_detections(" 1 , 2,3 ,2,3,4,1 ,4 \r\n\n-5,0,5,0,5,9,-5,9", "res_img_1.txt");
  ASSERT_EQ(quads.size(), 2u);
  EXPECT_EQ(quads[0], (Quad{1, 2, 3, 2, 3, 4, 1, 4}));
  EXPECT_EQ(quads[1], (Quad{-5, 0, 5, 0, 5, 9, -5, 9}));
  // The Task 4.1 script reads exactly 8 integers: no confidence, no decimals, no trailing comma.
  EXPECT_NE(error_of([] { parse_detections("1,2,3,2,3,4,1,4,0.9\n", "d"); }), "");
  EXPECT_NE(error_of([] { parse_detections("1,2,3,2,3,4,1,4.5\n", "d"); }), "");
  EXPECT_NE(error_of([] { parse_detections("1,2,3,2,3,4,1,4,\n", "d"); }), "");
  EXPECT_NE(error_of([] { parse_detections("1,2,3,2,3,4,1,99999999999\n", "d"); }), "");
}

TEST(EvalParse, MalformedLineNamesFileAndLine) {
  const std::string gt_error = error_of([] {
    parse_ground_truth("0,0,1,0,1,1,0,1,ok\n0,0,1,0,1,1,0,1,ok\n0,0,1,0,1,1,0,ok\n", "gt/gt_img_7.txt");
  });
  EXPECT_NE(gt_error.find("gt/gt_img_7.txt:3:"), std::string::npos) << gt_error;
  EXPECT_NE(gt_error.find("0,0,1,0,1,1,0,ok"), std::string::npos) << gt_error;
  // Line numbers count the empty lines too, as an editor does.
  const std::string det_error =
      error_of([] { parse_detections("\r\n1,2,3,2,3,4,1,4\r\nnonsense\r\n", "res_img_9.txt"); });
  EXPECT_NE(det_error.find("res_img_9.txt:3:"), std::string::npos) << det_error;
  // The script rejects counter-clockwise corners (validate_clockwise_points).
  const std::string ccw_error = error_of([] { parse_detections("0,0,0,10,10,10,10,0\n", "res_img_2.txt"); });
  EXPECT_NE(ccw_error.find("res_img_2.txt:1:"), std::string::npos) << ccw_error;
  EXPECT_NE(ccw_error.find("clockwise"), std::string::npos) << ccw_error;
}

TEST(EvalImage, DetectionOnDoNotCareRegionIsLeftOut) {
  // Detection 0 lies 60 % inside the ### region: left out of both counts. Detection 1 lies exactly 50 %
  // inside: not left out (the rule is > 0.5), so it is a false positive.
  const std::vector<GroundTruthRegion> gt = {dont_care(box(0, 0, 100, 10)), care(box(0, 100, 10, 110))};
  const ImageResult r = evaluate_image(gt, {box(40, 0, 140, 10), box(50, 0, 150, 10)});
  EXPECT_EQ(r.dont_care_dets, std::vector<int>{0});
  EXPECT_EQ(r.care_gt, 1);
  EXPECT_EQ(r.care_det, 1);
  EXPECT_EQ(r.matched, 0);
  EXPECT_EQ(r.precision, 0);
  EXPECT_EQ(r.recall, 0);
  EXPECT_EQ(r.hmean, 0);
  // A detection that would match a ### region exactly is never a match either.
  const ImageResult only = evaluate_image({dont_care(box(0, 0, 10, 10))}, {box(0, 0, 10, 10)});
  EXPECT_EQ(only.care_det, 0);
  EXPECT_EQ(only.matched, 0);
}

TEST(EvalImage, TwoDetectionsOnOneGroundTruth) {
  const ImageResult r = evaluate_image({care(box(0, 0, 10, 10))}, {box(0, 0, 10, 10), box(1, 0, 10, 10)});
  EXPECT_EQ(r.matched, 1);
  ASSERT_EQ(r.matches.size(), 1u);
  EXPECT_EQ(r.matches[0].det, 0);  // the first in file order, though both pass
  EXPECT_EQ(r.care_det, 2);
  EXPECT_EQ(r.precision, 0.5);
  EXPECT_EQ(r.recall, 1);
  EXPECT_DOUBLE_EQ(r.hmean, 2.0 / 3.0);
}

TEST(EvalImage, OneDetectionOnTwoGroundTruths) {
  // The detection has IoU 1 with region 1 and 80/120 with region 0; greedy matching in ground-truth order
  // gives it to region 0 and region 1 stays unmatched, even though a better assignment exists.
  const std::vector<GroundTruthRegion> gt = {care(box(0, 0, 10, 10)), care(box(2, 0, 12, 10))};
  const ImageResult r = evaluate_image(gt, {box(2, 0, 12, 10)});
  EXPECT_EQ(r.matched, 1);
  ASSERT_EQ(r.matches.size(), 1u);
  EXPECT_EQ(r.matches[0].gt, 0);
  EXPECT_EQ(r.precision, 1);
  EXPECT_EQ(r.recall, 0.5);
}

TEST(EvalImage, IouMustExceedHalfStrictly) {
  // IoU exactly 0.5 (100/200) does not match; 101/200 does.
  const std::vector<GroundTruthRegion> gt = {care(box(0, 0, 200, 1))};
  EXPECT_EQ(intersection_over_union(box(0, 0, 100, 1), box(0, 0, 200, 1)), 0.5);
  EXPECT_EQ(evaluate_image(gt, {box(0, 0, 100, 1)}).matched, 0);
  EXPECT_EQ(evaluate_image(gt, {box(0, 0, 101, 1)}).matched, 1);
  // The same boundary with a detection larger than the region: 10/20.
  EXPECT_EQ(evaluate_image({care(box(0, 0, 10, 1))}, {box(0, 0, 20, 1)}).matched, 0);
}

TEST(EvalImage, ImagesWithoutCareGroundTruth) {
  const ImageResult empty = evaluate_image({}, {});
  EXPECT_EQ(empty.precision, 1);
  EXPECT_EQ(empty.recall, 1);
  EXPECT_EQ(empty.hmean, 1);
  const ImageResult only_dont_care = evaluate_image({dont_care(box(0, 0, 10, 10))}, {});
  EXPECT_EQ(only_dont_care.precision, 1);
  EXPECT_EQ(only_dont_care.recall, 1);
  const ImageResult false_alarm = evaluate_image({dont_care(box(0, 0, 10, 10))}, {box(50, 50, 60, 60)});
  EXPECT_EQ(false_alarm.care_det, 1);
  EXPECT_EQ(false_alarm.precision, 0);
  EXPECT_EQ(false_alarm.recall, 1);
  EXPECT_EQ(false_alarm.hmean, 0);
  // Care ground truth but no detection: precision 0 (not 1), recall 0.
  const ImageResult missed = evaluate_image({care(box(0, 0, 10, 10))}, {});
  EXPECT_EQ(missed.precision, 0);
  EXPECT_EQ(missed.recall, 0);

  // Totals come from the sums, so the per-image 1s above add nothing: 1 match of 1 care gt and 2 care dets.
  const ImageResult hit = evaluate_image({care(box(0, 0, 10, 10))}, {box(0, 0, 10, 10)});
  const Result total = summarize({empty, false_alarm, hit});
  EXPECT_EQ(total.matched, 1);
  EXPECT_EQ(total.care_gt, 1);
  EXPECT_EQ(total.care_det, 1 + 1);
  EXPECT_EQ(total.precision, 0.5);
  EXPECT_EQ(total.recall, 1);
  // Nothing to count at all gives zeros, as the script does.
  const Result nothing = summarize({empty});
  EXPECT_EQ(nothing.precision, 0);
  EXPECT_EQ(nothing.recall, 0);
  EXPECT_EQ(nothing.hmean, 0);
}

TEST(EvalDirectories, HandCheckedFixture) {
  const Result r = evaluate_directories(kFixtures / "gt", kFixtures / "det");
  ASSERT_EQ(r.images.size(), 3u);
  EXPECT_EQ(r.images[0].id, "1");
  EXPECT_EQ(r.images[0].care_gt, 2);
  EXPECT_EQ(r.images[0].care_det, 2);
  EXPECT_EQ(r.images[0].matched, 1);
  EXPECT_EQ(r.images[0].dont_care_dets, std::vector<int>{1});
  EXPECT_EQ(r.images[1].det_count, 0);  // no res_img_2.txt
  EXPECT_EQ(r.images[1].precision, 1);
  EXPECT_EQ(r.images[2].matched, 1);
  EXPECT_EQ(r.images[2].care_det, 2);
  EXPECT_EQ(r.matched, 2);
  EXPECT_EQ(r.care_gt, 3);
  EXPECT_EQ(r.care_det, 4);
  EXPECT_EQ(r.precision, 0.5);
  EXPECT_EQ(r.recall, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.hmean, 4.0 / 7.0);
}

TEST(EvalDirectories, FolderRules) {
  TempDir dir;
  dir.write(dir.gt() / "gt_img_10.txt", "0,0,10,0,10,10,0,10,a\n");
  dir.write(dir.gt() / "gt_img_9.txt", "0,0,10,0,10,10,0,10,b\n");
  dir.write(dir.gt() / "notes.txt", "not ground truth, ignored as the script ignores it\n");
  dir.write(dir.det() / "res_img_10.txt", "0,0,10,0,10,10,0,10\n");
  const Result r = evaluate_directories(dir.gt(), dir.det());
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].id, "9");  // numeric order
  EXPECT_EQ(r.images[0].det_count, 0);
  EXPECT_EQ(r.images[1].matched, 1);
  EXPECT_EQ(r.recall, 0.5);
  EXPECT_EQ(r.precision, 1);

  dir.write(dir.det() / "res_img_11.txt", "0,0,10,0,10,10,0,10\n");
  std::string message = error_of([&] { evaluate_directories(dir.gt(), dir.det()); });
  EXPECT_NE(message.find("res_img_11.txt"), std::string::npos) << message;
  fs::remove(dir.det() / "res_img_11.txt");

  dir.write(dir.det() / "readme.md", "x");
  message = error_of([&] { evaluate_directories(dir.gt(), dir.det()); });
  EXPECT_NE(message.find("readme.md"), std::string::npos) << message;
  fs::remove(dir.det() / "readme.md");

  dir.write(dir.det() / "res_img_9.txt", "0,0,10,0,10,10,0,10\nbroken\n");
  message = error_of([&] { evaluate_directories(dir.gt(), dir.det()); });
  EXPECT_NE(message.find("res_img_9.txt:2:"), std::string::npos) << message;

  message = error_of([&] { evaluate_directories(dir.gt() / "missing", dir.det()); });
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
}

TEST(EvalReference, ArgmanEastResnet50MatchesCompetitionScript) {
  if (!fs::is_directory(kIcdar2015 / "test/gt"))
    GTEST_SKIP() << "ICDAR 2015 data not found at " << kIcdar2015 << " (shared/ beside the clone)";
  const Result r = evaluate_directories(kIcdar2015 / "test/gt", kIcdar2015 / "reference/argman-east-resnet50");
  // The competition's script on the same files (shared/data/README.md).
  EXPECT_NEAR(r.precision, 0.8445732349841939, 1e-15);
  EXPECT_NEAR(r.recall, 0.7717862301396244, 1e-15);
  EXPECT_NEAR(r.hmean, 0.8065408805031448, 1e-15);
  EXPECT_EQ(r.images.size(), 500u);
  EXPECT_EQ(r.matched, 1603);
  EXPECT_EQ(r.care_gt, 2077);
  EXPECT_EQ(r.care_det, 1898);
}

TEST(EvalCli, MissingDirectoryFailsWithOneLine) {
  std::string output;
  const int status = run_command(std::string(EASTRT_TOOL) + " eval --gt /nonexistent/eastrt-gt --det " +
                                     (kFixtures / "det").string(), output);
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("/nonexistent/eastrt-gt"), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_NE(run_command(std::string(EASTRT_TOOL) + " eval --gt " + (kFixtures / "gt").string(), output), 0);
  EXPECT_EQ(run_command(std::string(EASTRT_TOOL) + " eval --help", output), 0);
  EXPECT_NE(output.find("--per-image"), std::string::npos) << output;
}

TEST(EvalCli, JsonOutput) {
  std::string output;
  const std::string command = std::string(EASTRT_TOOL) + " eval --json --per-image --gt " +
                              (kFixtures / "gt").string() + " --det " + (kFixtures / "det").string();
  ASSERT_EQ(run_command(command, output), 0) << output;
  const auto json = nlohmann::json::parse(output);
  EXPECT_EQ(json.at("precision").get<double>(), 0.5);
  EXPECT_EQ(json.at("recall").get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(json.at("hmean").get<double>(), 4.0 / 7.0);
  EXPECT_EQ(json.at("matched").get<int>(), 2);
  EXPECT_EQ(json.at("care_gt").get<int>(), 3);
  EXPECT_EQ(json.at("care_det").get<int>(), 4);
  ASSERT_EQ(json.at("per_image").size(), 3u);
  EXPECT_EQ(json.at("per_image")[0].at("id").get<std::string>(), "1");
}

TEST(EvalCli, ReferenceFiguresPrintedExactly) {
  if (!fs::is_directory(kIcdar2015 / "test/gt"))
    GTEST_SKIP() << "ICDAR 2015 data not found at " << kIcdar2015 << " (shared/ beside the clone)";
  std::string output;
  ASSERT_EQ(run_command(std::string(EASTRT_TOOL) + " eval --gt " + (kIcdar2015 / "test/gt").string() + " --det " +
                            (kIcdar2015 / "reference/argman-east-resnet50").string(),
                        output),
            0)
      << output;
  EXPECT_NE(output.find("precision  0.8445732349841939\n"), std::string::npos) << output;
  EXPECT_NE(output.find("recall     0.7717862301396244\n"), std::string::npos) << output;
  EXPECT_NE(output.find("hmean      0.8065408805031448\n"), std::string::npos) << output;
}
