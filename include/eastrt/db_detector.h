// The DBNet text detector (PaddleOCR PP-OCRv4 det as an ONNX model): PaddleOCR's preprocessing, the network on
// a Runner (the CPU engine or GPU engines), and DBPostProcess (binarise, contours, min-area boxes, box score, unclip) with its defaults.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/detector.h"
#include "eastrt/detector_ops.h"
#include "eastrt/runner.h"

namespace eastrt::db {

using east::Detection;
using east::Image;
using east::Point;
using east::Quad;
using east::ResizePlan;

// PP-OCRv4 det inference's settings (tools/infer/utility.py defaults, DBPostProcess with score_mode 'fast'
// and box_type 'quad').
struct DbOptions {
  int limit_side_len = 960;   // DetResizeForTest, limit_type 'max'
  float thresh = 0.3f;        // binarisation: probability > thresh
  float box_thresh = 0.6f;    // boxes whose mean probability is below this are dropped
  int max_candidates = 1000;  // contours looked at, in findContours' order
  double unclip_ratio = 1.5;  // offset distance = area * unclip_ratio / perimeter
};

// ---- Preprocessing ----

// DetResizeForTest (limit_type 'max'): a longer side above limit_side_len scales the image down (sides
// truncated to integers), then each side becomes max(round(side / 32) * 32, 32), round half to even as
// Python's round. Ratios are network size over the (padded, see preprocess) image size.
ResizePlan plan_resize(int height, int width, int limit_side_len = 960);

// DetResizeForTest then NormalizeImage: images with height + width < 64 are first padded with black to at
// least 32 × 32 (bottom and right); cv2.resize INTER_LINEAR to the plan's size; then per channel, in cv2's
// BGR order, (v * float(1/255) - mean) / std in float32, mean (0.485, 0.456, 0.406), std (0.229, 0.224,
// 0.225). Returned NHWC [1, height, width, 3] (channels B, G, R), ready for a network imported with
// OnnxLayout::kNhwc input.
HostTensor preprocess(const Image& image, ResizePlan* plan, int limit_side_len = 960);

// ---- Post-processing building blocks ----

struct IntPoint {
  int x = 0, y = 0;
};

// Every border of the bitmap (height × width, nonzero = foreground) as cv2.findContours(RETR_LIST,
// CHAIN_APPROX_NONE) finds it: Suzuki–Abe border following (8-connected foreground, outer borders and hole
// borders), the image surrounded by background. Borders come in cv2's order (reverse order of discovery in
// the raster scan), each traced from its first pixel in raster order. CHAIN_APPROX_SIMPLE, which PaddleOCR
// uses, only drops the middle points of straight runs, so it changes no convex hull and no box below.
std::vector<std::vector<IntPoint>> find_contours(const std::vector<uint8_t>& bitmap, int height, int width);

// cv2.minAreaRect of the points (convex hull, then the rectangle of least area with a side on a hull edge)
// with its corners in get_mini_boxes' order: sorted by x (stable), then the left pair gives top-left and
// bottom-left, the right pair top-right and bottom-right, each pair split by y (the later point on ties);
// returned top-left, top-right, bottom-right, bottom-left. min_side is the shorter side (0 for fewer than
// three non-collinear points).
struct MiniBox {
  std::array<Point, 4> corners{};
  float min_side = 0;
};
MiniBox mini_box(const std::vector<Point>& points);

// box_score_fast: the mean of prob (height × width, row-major) over cv2.fillPoly of the box within its
// bounding box (floor/ceil of the corners clipped to the map; corners shifted to the box's origin and
// truncated to int32). 0 when no pixel is covered.
float box_score_fast(const float* prob, int height, int width, const std::array<Point, 4>& box);

// unclip: offsets the polygon outwards by area * ratio / perimeter (shapely's area and length of the float
// corners) with Clipper's ClipperOffset (JT_ROUND, ET_CLOSEDPOLYGON, miter limit 2, arc tolerance 0.25, as
// pyclipper's defaults), the corners converted to Clipper's integers by truncation as pyclipper does.
// Returns the points of every resulting path, one after another.
std::vector<Point> unclip(const std::array<Point, 4>& box, double ratio);

// The whole of DBPostProcess.boxes_from_bitmap followed by predict_det's filter_tag_det_res:
// prob is the [1, h, w, 1] (or [h, w]) probability map; boxes come back in original image pixels
// (x * src_width / w and y * src_height / h, rounded half to even, clipped to 0..src_width - 1 and
// 0..src_height - 1 and truncated), ordered top-left, top-right, bottom-right, bottom-left (clockwise on
// screen, as ICDAR 2015 wants), boxes with a side shorter than 4 px dropped, scored by box_score_fast.
std::vector<Quad> detect_boxes(const HostTensor& prob, int src_height, int src_width, const DbOptions& options = {});

// ---- The detector ----

// The ONNX model as the detector runs it: NHWC input and output, shape-inferred at 1×640×640×3 (the CPU
// engine re-infers at each image's size). Errors from the importer name the file.
Network load_network(const std::string& onnx_path);

class Detector {
 public:
  // `network` has one input (NHWC, BGR-normalised) and one output (the [1, h, w, 1] probability map).
  Detector(Network network, CpuOptions cpu = {}, DbOptions options = {});
  explicit Detector(std::unique_ptr<Runner> runner, DbOptions options = {});

  Detection detect(const Image& image);
  const DbOptions& options() const { return options_; }
  Runner& runner() { return *runner_; }

 private:
  std::unique_ptr<Runner> runner_;
  DbOptions options_;
  std::string input_name_, output_name_;
};

}  // namespace eastrt::db
