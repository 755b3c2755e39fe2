// ICDAR 2015 Task 4.1 (incidental scene text, localisation) evaluation, scored exactly as the competition's
// script scores it: the file readers, the polygon areas it uses, per-image figures and the totals.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace eastrt::eval {

// x1,y1,x2,y2,x3,y3,x4,y4: four corners, clockwise in image coordinates (y down). The script reads only
// integers and stores them as int32.
using Quad = std::array<int32_t, 8>;

struct GroundTruthRegion {
  Quad quad{};
  std::string transcription;  // surrounding double quotes removed and \\ \" unescaped, as the script does
  bool dont_care = false;     // transcription is exactly "###"
};

// Readers for one file's contents; `source` names the file in errors ("<source>:<line>: ...").
// Both accept a UTF-8 byte-order mark, LF or CRLF, and skip empty lines, like the script. A line that does
// not match the script's pattern, a coordinate outside int32 or a counter-clockwise quad is an Error.
// Ground truth: 8 integers, then a comma and the transcription (which may contain commas).
std::vector<GroundTruthRegion> parse_ground_truth(std::string_view contents, const std::string& source);
// Detections: exactly 8 integers a line (the Task 4.1 script takes no confidence).
std::vector<Quad> parse_detections(std::string_view contents, const std::string& source);
std::vector<GroundTruthRegion> read_ground_truth(const std::filesystem::path& file);
std::vector<Quad> read_detections(const std::filesystem::path& file);

// Areas as the script's Polygon (GPC) library computes them: quad_area is the unsigned shoelace area of
// the contour (0 for a symmetric bow tie); intersection_area is the area of `a & b` under the even-odd
// rule, also for non-convex and self-intersecting quads.
double quad_area(const Quad& q);
double intersection_area(const Quad& a, const Quad& b);
// |D∩G| / (|D| + |G| − |D∩G|), 0 when that union is 0.
double intersection_over_union(const Quad& det, const Quad& gt);

struct Match {
  int gt = 0;   // index into the image's ground truth, in file order
  int det = 0;  // index into the image's detections, in file order
};

struct ImageResult {
  std::string id;  // N of gt_img_N.txt / res_img_N.txt, as written in the file name
  int gt_count = 0, det_count = 0;
  int care_gt = 0, care_det = 0;  // excluding do-not-care regions and do-not-care detections
  int matched = 0;
  // Per image: with no care ground truth, recall is 1 and precision is 1 only if there is no care detection.
  double precision = 0, recall = 0, hmean = 0;
  std::vector<Match> matches;
  std::vector<int> dont_care_dets;  // detections left out because they lie on a do-not-care region
};

struct Result {
  // Over sums of the per-image counts (not a mean of the per-image figures); 0 where a sum is 0.
  double precision = 0, recall = 0, hmean = 0;
  int64_t matched = 0, care_gt = 0, care_det = 0;
  std::vector<ImageResult> images;  // in numeric order of id
};

// One image: a detection is do-not-care when its intersection with some do-not-care region over its own
// area is > 0.5; then greedy one-to-one matching, ground truths in file order then detections in file
// order, of care pairs with IoU > 0.5.
ImageResult evaluate_image(const std::vector<GroundTruthRegion>& gt, const std::vector<Quad>& det);

// Totals over already evaluated images.
Result summarize(std::vector<ImageResult> images);

// Every gt_dir/gt_img_N.txt against det_dir/res_img_N.txt. A missing detection file means no detections;
// any other entry of det_dir (a res_img_N.txt without its gt_img_N.txt, or a name that is not
// res_img_N.txt) is an Error naming it, as the script rejects such a submission.
Result evaluate_directories(const std::filesystem::path& gt_dir, const std::filesystem::path& det_dir);

}  // namespace eastrt::eval
