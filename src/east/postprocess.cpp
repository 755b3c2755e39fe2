// The detector's last stages, as argman/EAST eval.py runs them: re-scoring the merged quads on the score
// map (with a copy of cv2.fillPoly's rasterisation), mapping back to the original image, vertex order and
// the small-box filter; detect_boxes composes everything after the network.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

namespace eastrt::east {
namespace {

// cv2.fillPoly works in 16.16 fixed point (XY_SHIFT in OpenCV's drawing.cpp).
constexpr int kShift = 16;
constexpr int64_t kOne = int64_t(1) << kShift;

bool outside(int64_t x, int64_t y, int width, int height) { return x < 0 || x >= width || y < 0 || y >= height; }

// OpenCV's clipLine: one pass against the horizontal borders, then the vertical ones, in integers. It may
// leave a line that misses the image partly clipped (and says so); fillPoly relies on the clipped values.
bool clip_line(int width, int height, int64_t& x1, int64_t& y1, int64_t& x2, int64_t& y2) {
  const int64_t right = width - 1, bottom = height - 1;
  int c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8;
  int c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8;
  if ((c1 & c2) == 0 && (c1 | c2) != 0) {
    if (c1 & 12) {
      const int64_t a = c1 < 8 ? 0 : bottom;
      x1 += (a - y1) * (x2 - x1) / (y2 - y1);
      y1 = a;
      c1 = (x1 < 0) + (x1 > right) * 2;
    }
    if (c2 & 12) {
      const int64_t a = c2 < 8 ? 0 : bottom;
      x2 += (a - y2) * (x2 - x1) / (y2 - y1);
      y2 = a;
      c2 = (x2 < 0) + (x2 > right) * 2;
    }
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
      if (c1) {
        const int64_t a = c1 == 1 ? 0 : right;
        y1 += (a - x1) * (y2 - y1) / (x2 - x1);
        x1 = a;
        c1 = 0;
      }
      if (c2) {
        const int64_t a = c2 == 1 ? 0 : right;
        y2 += (a - x2) * (y2 - y1) / (x2 - x1);
        x2 = a;
        c2 = 0;
      }
    }
  }
  return (c1 | c2) == 0;
}

// OpenCV's 8-connected line (LineIterator, left to right): Bresenham along the major axis, stepping the
// minor axis while the error term is negative.
void draw_line(std::vector<uint8_t>& mask, int width, int height, int64_t x1, int64_t y1, int64_t x2, int64_t y2) {
  if ((outside(x1, y1, width, height) || outside(x2, y2, width, height)) && !clip_line(width, height, x1, y1, x2, y2))
    return;
  if (x2 < x1) std::swap(x1, x2), std::swap(y1, y2);
  const int64_t dx = x2 - x1, dy = std::abs(y2 - y1), y_step = y2 < y1 ? -1 : 1;
  const bool steep = dy > dx;
  const int64_t major = steep ? dy : dx, minor = steep ? dx : dy;
  int64_t err = major - 2 * minor, x = x1, y = y1;
  for (int64_t i = 0; i <= major; ++i) {
    mask[static_cast<size_t>(y) * width + x] = 1;
    const bool diagonal = err < 0;
    err += -2 * minor + (diagonal ? 2 * major : 0);
    if (steep) {
      y += y_step;
      x += diagonal;
    } else {
      x += 1;
      y += diagonal ? y_step : 0;
    }
  }
}

struct Edge {
  int64_t y0, y1;  // rows [y0, y1)
  int64_t x, dx;   // 16.16 x at row y0 and its step per row
};

int truncate_to_int(float v) {  // np.int32 of a float32: towards zero
  if (!(v == v)) return 0;
  return static_cast<int>(std::clamp(v, -1073741824.0f, 1073741824.0f));
}

}  // namespace

// cv2.fillPoly(mask, [xy], 1) with the default LINE_8 and shift 0 (CollectPolyEdges + FillEdgeCollection):
// every edge is drawn as an 8-connected line, and each row y is filled between consecutive crossings of
// the edges active on it (y0 <= y < y1), from ceil(x_left) to floor(x_right) in 16.16 fixed point with the
// per-row step truncated. An edge with an end outside the mask takes its step from the clipped line.
std::vector<uint8_t> rasterize_quad(int height, int width, const std::array<int, 8>& xy) {
  EASTRT_CHECK(height > 0 && width > 0, "rasterize_quad: mask size ", height, "x", width, " is empty");
  std::vector<uint8_t> mask(static_cast<size_t>(height) * width, 0);
  std::vector<Edge> edges;
  for (int i = 0; i < 4; ++i) {
    const int prev = (i + 3) % 4;
    const int64_t x0 = xy[2 * prev], y0 = xy[2 * prev + 1], x1 = xy[2 * i], y1 = xy[2 * i + 1];
    draw_line(mask, width, height, x0, y0, x1, y1);
    int64_t cx0 = x0, cy0 = y0, cx1 = x1, cy1 = y1, top0 = y0, top1 = y1;
    if (outside(x0, y0, width, height) || outside(x1, y1, width, height)) {
      clip_line(width, height, cx0, cy0, cx1, cy1);
      if (cy0 != cy1) top0 = cy0, top1 = cy1;
    }
    if (y0 == y1) continue;
    const int64_t fx0 = cx0 * kOne, fx1 = cx1 * kOne;
    const int64_t dx = (fx1 - fx0) / (top1 - top0);
    if (y0 < y1)
      edges.push_back({y0, y1, fx0 + (y0 - top0) * dx, dx});
    else
      edges.push_back({y1, y0, fx1 + (y1 - top1) * dx, dx});
  }
  if (edges.size() < 2) return mask;
  int64_t y_begin = edges[0].y0, y_end = edges[0].y1;
  for (const Edge& e : edges) y_begin = std::min(y_begin, e.y0), y_end = std::max(y_end, e.y1);
  y_end = std::min<int64_t>(y_end, height);
  std::vector<int64_t> crossings;
  for (int64_t y = std::max<int64_t>(y_begin, 0); y < y_end; ++y) {
    crossings.clear();
    for (const Edge& e : edges)
      if (e.y0 <= y && y < e.y1) crossings.push_back(e.x + (y - e.y0) * e.dx);
    std::sort(crossings.begin(), crossings.end());
    for (size_t k = 0; k + 1 < crossings.size(); k += 2) {
      const int64_t left = std::max<int64_t>((crossings[k] + kOne - 1) >> kShift, 0);
      const int64_t right = std::min<int64_t>(crossings[k + 1] >> kShift, width - 1);
      for (int64_t x = left; x <= right; ++x) mask[static_cast<size_t>(y) * width + x] = 1;
    }
  }
  return mask;
}

float mean_score_inside(const HostTensor& score, const Quad& quad) {
  const auto [h, w] = map_size(score, 1, "score map");
  // eval.py: cv2.fillPoly(mask, box.astype(np.int32) // 4, 1); floor division, so -1 // 4 is -1.
  std::array<int, 8> xy{};
  for (int i = 0; i < 4; ++i) {
    xy[2 * i] = truncate_to_int(quad.points[i].x) >> 2;
    xy[2 * i + 1] = truncate_to_int(quad.points[i].y) >> 2;
  }
  const std::vector<uint8_t> mask = rasterize_quad(h, w, xy);
  double sum = 0;
  int64_t count = 0;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) sum += score.data[i], ++count;
  return count ? static_cast<float>(sum * (1.0 / count)) : 0.0f;  // cv2.mean: sum times 1/count, in double
}

Quad sort_vertices(const Quad& quad) {
  int start = 0;
  for (int i = 1; i < 4; ++i)
    if (quad.points[i].x + quad.points[i].y < quad.points[start].x + quad.points[start].y) start = i;
  Quad out = quad;
  for (int i = 0; i < 4; ++i) out.points[i] = quad.points[(start + i) % 4];
  const Point& p0 = out.points[0];
  const Point& p1 = out.points[1];
  if (!(std::abs(p0.x - p1.x) > std::abs(p0.y - p1.y))) std::swap(out.points[1], out.points[3]);
  return out;
}

std::vector<Quad> detect_boxes(const HostTensor& score, const HostTensor& geometry, double ratio_h, double ratio_w,
                               const DetectOptions& options) {
  return boxes_from_candidates(decode_quads(score, geometry, options.score_threshold), score, ratio_h, ratio_w,
                               options);
}

std::vector<Quad> boxes_from_candidates(const std::vector<Quad>& candidates, const HostTensor& score, double ratio_h,
                                        double ratio_w, const DetectOptions& options) {
  return boxes_from_merged(locality_aware_nms(candidates, options.nms_threshold), score, ratio_h, ratio_w, options);
}

std::vector<Quad> boxes_from_merged(const std::vector<Quad>& merged, const HostTensor& score, double ratio_h,
                                    double ratio_w, const DetectOptions& options) {
  EASTRT_CHECK(ratio_h > 0 && ratio_w > 0 && std::isfinite(ratio_h) && std::isfinite(ratio_w),
               "detect_boxes: resize ratios ", ratio_h, ", ", ratio_w, " must be positive");
  // eval.py divides the float32 boxes by the ratios in float32, casts to np.int32, then sorts and filters.
  const float rh = static_cast<float>(ratio_h), rw = static_cast<float>(ratio_w);
  std::vector<Quad> boxes;
  for (const Quad& q : merged) {
    const float mean = mean_score_inside(score, q);
    if (!(mean > options.box_threshold)) continue;
    Quad box;
    for (int i = 0; i < 4; ++i) {
      box.points[i].x = static_cast<float>(truncate_to_int(q.points[i].x / rw));
      box.points[i].y = static_cast<float>(truncate_to_int(q.points[i].y / rh));
    }
    box = sort_vertices(box);
    auto edge = [&](int a, int b) {
      return std::hypot(static_cast<double>(box.points[a].x) - box.points[b].x,
                        static_cast<double>(box.points[a].y) - box.points[b].y);
    };
    if (edge(0, 1) < options.min_edge || edge(3, 0) < options.min_edge) continue;
    box.score = mean;
    boxes.push_back(box);
  }
  return boxes;
}

std::string format_box(const Quad& quad) {
  std::ostringstream line;
  for (int i = 0; i < 4; ++i)
    line << (i ? "," : "") << std::llround(quad.points[i].x) << "," << std::llround(quad.points[i].y);
  return line.str();
}

}  // namespace eastrt::east
