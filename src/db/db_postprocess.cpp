// DBNet post-processing as PaddleOCR's DBPostProcess (quad boxes, 'fast' score) and predict_det's final
// filter do it: contours of the binarised map, min-area boxes, box score, unclip with Clipper, mapping back.
#include <algorithm>
#include <cmath>

#include <polyclipping/clipper.hpp>

#include "eastrt/db_detector.h"
#include "eastrt/error.h"

namespace eastrt::db {

namespace {

// The 8 neighbours, counter-clockwise on screen (y down) starting at the right one: OpenCV's chain codes.
constexpr int kDx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
constexpr int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

// Suzuki–Abe step 3 from the border's first pixel `start` (an index into the padded label image of row
// length `stride`); `from` is the direction of the background pixel that started it. Labels the border's
// pixels (-nbd where the right neighbour is background and was examined, nbd where still 1) and returns
// the pixels in tracing order.
std::vector<IntPoint> follow_border(std::vector<int>& f, int stride, int start, int from, int nbd) {
  auto neighbour = [&](int p, int d) { return p + kDy[d] * stride + kDx[d]; };
  std::vector<IntPoint> points;
  auto push = [&](int p) { points.push_back({p % stride - 1, p / stride - 1}); };
  int first = -1;  // direction of (i1, j1): the first nonzero neighbour, clockwise from `from`
  for (int k = 0; k < 8 && first < 0; ++k)
    if (f[neighbour(start, (from - k + 8) & 7)] != 0) first = (from - k + 8) & 7;
  if (first < 0) {  // an isolated pixel
    f[start] = -nbd;
    push(start);
    return points;
  }
  const int p1 = neighbour(start, first);
  int p3 = start, back = first;  // back: direction from p3 to the previous border pixel p2
  while (true) {
    bool right_is_background = false;
    int d = back, p4 = -1;
    for (int k = 1; k <= 8; ++k) {  // counter-clockwise from the neighbour after p2
      d = (back + k) & 7;
      if (f[neighbour(p3, d)] != 0) {
        p4 = neighbour(p3, d);
        break;
      }
      if (d == 0) right_is_background = true;
    }
    if (right_is_background)
      f[p3] = -nbd;
    else if (f[p3] == 1)
      f[p3] = nbd;
    push(p3);
    if (p4 == start && p3 == p1) break;
    back = (d + 4) & 7;
    p3 = p4;
  }
  return points;
}

double cross(const Point& o, const Point& a, const Point& b) {
  return (double(a.x) - o.x) * (double(b.y) - o.y) - (double(a.y) - o.y) * (double(b.x) - o.x);
}

// Andrew's monotone chain; collinear points dropped, counter-clockwise in a y-up frame.
std::vector<Point> convex_hull(std::vector<Point> points) {
  std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.x < b.x || (a.x == b.x && a.y < b.y); });
  points.erase(std::unique(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.x == b.x && a.y == b.y; }),
               points.end());
  if (points.size() < 3) return points;
  std::vector<Point> hull(2 * points.size());
  size_t k = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    while (k >= 2 && cross(hull[k - 2], hull[k - 1], points[i]) <= 0) --k;
    hull[k++] = points[i];
  }
  for (size_t i = points.size() - 1, lower = k + 1; i-- > 0;) {
    while (k >= lower && cross(hull[k - 2], hull[k - 1], points[i]) <= 0) --k;
    hull[k++] = points[i];
  }
  hull.resize(k - 1);
  return hull;
}

// Python's round() and np.round: half to even (the default floating-point rounding mode).
double round_half_even(double v) { return std::nearbyint(v); }

}  // namespace

std::vector<std::vector<IntPoint>> find_contours(const std::vector<uint8_t>& bitmap, int height, int width) {
  EASTRT_CHECK(height > 0 && width > 0 && bitmap.size() == size_t(height) * width, "find_contours: bitmap of ",
               bitmap.size(), " values is not ", height, "x", width);
  // Labels of Suzuki–Abe: 0 background, 1 unvisited foreground, ±nbd border pixels; a frame of background
  // around the image, as cv2 pads it.
  const int stride = width + 2;
  std::vector<int> f(size_t(height + 2) * stride, 0);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) f[size_t(y + 1) * stride + x + 1] = bitmap[size_t(y) * width + x] != 0;
  std::vector<std::vector<IntPoint>> contours;
  int nbd = 1;
  for (int y = 1; y <= height; ++y)
    for (int x = 1; x <= width; ++x) {
      const int p = y * stride + x;
      if (f[p] == 1 && f[p - 1] == 0)
        contours.push_back(follow_border(f, stride, p, 4, ++nbd));  // outer border
      else if (f[p] >= 1 && f[p + 1] == 0)
        contours.push_back(follow_border(f, stride, p, 0, ++nbd));  // hole border
    }
  std::reverse(contours.begin(), contours.end());  // cv2 lists the last border found first
  return contours;
}

MiniBox mini_box(const std::vector<Point>& points) {
  const std::vector<Point> hull = convex_hull(points);
  std::array<Point, 4> corners{};
  float min_side = 0;
  if (hull.size() == 1) {
    corners.fill(hull[0]);
  } else if (hull.size() == 2) {
    corners = {hull[0], hull[1], hull[1], hull[0]};
  } else if (hull.size() >= 3) {
    // Rotating calipers: the minimal rectangle has a side on a hull edge.
    double best = INFINITY;
    const size_t n = hull.size();
    for (size_t i = 0; i < n; ++i) {
      const Point& a = hull[i];
      const Point& b = hull[(i + 1) % n];
      const double len = std::hypot(double(b.x) - a.x, double(b.y) - a.y);
      const double ux = (double(b.x) - a.x) / len, uy = (double(b.y) - a.y) / len;
      double u0 = INFINITY, u1 = -INFINITY, v0 = INFINITY, v1 = -INFINITY;
      for (const Point& p : hull) {
        const double u = p.x * ux + p.y * uy, v = -p.x * uy + p.y * ux;
        u0 = std::min(u0, u), u1 = std::max(u1, u), v0 = std::min(v0, v), v1 = std::max(v1, v);
      }
      const double area = (u1 - u0) * (v1 - v0);
      if (area < best) {
        best = area;
        auto at = [&](double u, double v) { return Point{float(u * ux - v * uy), float(u * uy + v * ux)}; };
        corners = {at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)};
        min_side = float(std::min(u1 - u0, v1 - v0));
      }
    }
  }
  // get_mini_boxes' order.
  std::stable_sort(corners.begin(), corners.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
  MiniBox box;
  const bool left_in_order = corners[1].y > corners[0].y, right_in_order = corners[3].y > corners[2].y;
  box.corners = {left_in_order ? corners[0] : corners[1], right_in_order ? corners[2] : corners[3],
                 right_in_order ? corners[3] : corners[2], left_in_order ? corners[1] : corners[0]};
  box.min_side = min_side;
  return box;
}

float box_score_fast(const float* prob, int height, int width, const std::array<Point, 4>& box) {
  float lo_x = box[0].x, hi_x = box[0].x, lo_y = box[0].y, hi_y = box[0].y;
  for (const Point& p : box)
    lo_x = std::min(lo_x, p.x), hi_x = std::max(hi_x, p.x), lo_y = std::min(lo_y, p.y), hi_y = std::max(hi_y, p.y);
  auto clip = [](double v, int hi) { return int(std::clamp(v, 0.0, double(hi))); };
  const int x0 = clip(std::floor(lo_x), width - 1), x1 = clip(std::ceil(hi_x), width - 1);
  const int y0 = clip(std::floor(lo_y), height - 1), y1 = clip(std::ceil(hi_y), height - 1);
  std::array<int, 8> xy;
  for (int i = 0; i < 4; ++i) {  // astype(np.int32): truncation toward zero
    xy[2 * i] = int(double(box[i].x) - x0);
    xy[2 * i + 1] = int(double(box[i].y) - y0);
  }
  const int mh = y1 - y0 + 1, mw = x1 - x0 + 1;
  const std::vector<uint8_t> mask = east::rasterize_quad(mh, mw, xy);
  double sum = 0;
  int64_t count = 0;
  for (int y = 0; y < mh; ++y)
    for (int x = 0; x < mw; ++x)
      if (mask[size_t(y) * mw + x]) sum += prob[size_t(y0 + y) * width + x0 + x], ++count;
  return count ? float(sum * (1.0 / count)) : 0.0f;  // cv2.mean: the sum times 1/count, in double
}

std::vector<Point> unclip(const std::array<Point, 4>& box, double ratio) {
  double area = 0, perimeter = 0;
  ClipperLib::Path path;
  for (int i = 0; i < 4; ++i) {
    const Point& a = box[i];
    const Point& b = box[(i + 1) % 4];
    area += double(a.x) * b.y - double(b.x) * a.y;
    perimeter += std::hypot(double(b.x) - a.x, double(b.y) - a.y);
    path.emplace_back(ClipperLib::cInt(a.x), ClipperLib::cInt(a.y));  // pyclipper converts by truncation
  }
  if (!(perimeter > 0)) return {};
  const double distance = std::abs(area) * 0.5 * ratio / perimeter;
  ClipperLib::ClipperOffset offset;  // miter limit 2, arc tolerance 0.25: pyclipper's defaults
  offset.AddPath(path, ClipperLib::jtRound, ClipperLib::etClosedPolygon);
  ClipperLib::Paths solution;
  offset.Execute(solution, distance);
  std::vector<Point> points;
  for (const ClipperLib::Path& p : solution)
    for (const ClipperLib::IntPoint& q : p) points.push_back({float(q.X), float(q.Y)});
  return points;
}

std::vector<Quad> detect_boxes(const HostTensor& prob, int src_height, int src_width, const DbOptions& options) {
  const auto [h, w] = east::map_size(prob, 1, "DB probability map");
  EASTRT_CHECK(src_height > 0 && src_width > 0, "detect_boxes: image size ", src_height, "x", src_width, " is empty");
  std::vector<uint8_t> bitmap(prob.data.size());
  for (size_t i = 0; i < bitmap.size(); ++i) bitmap[i] = prob.data[i] > options.thresh;
  const std::vector<std::vector<IntPoint>> contours = find_contours(bitmap, h, w);
  const size_t candidates = std::min(contours.size(), size_t(std::max(options.max_candidates, 0)));
  std::vector<Quad> boxes;
  for (size_t c = 0; c < candidates; ++c) {
    std::vector<Point> points;
    for (const IntPoint& p : contours[c]) points.push_back({float(p.x), float(p.y)});
    const MiniBox candidate = mini_box(points);
    if (candidate.min_side < 3) continue;
    const float score = box_score_fast(prob.data.data(), h, w, candidate.corners);
    if (options.box_thresh > score) continue;
    const std::vector<Point> expanded = unclip(candidate.corners, options.unclip_ratio);
    if (expanded.empty()) continue;
    const MiniBox grown = mini_box(expanded);
    if (grown.min_side < 3 + 2) continue;
    // boxes_from_bitmap: x / w (float32, as numpy keeps the array's type) times the image width, rounded
    // half to even, clipped to 0..width; then predict_det clips to 0..width - 1 and truncates.
    std::array<Point, 4> mapped;
    for (int i = 0; i < 4; ++i) {
      const double x = round_half_even(double(grown.corners[i].x / float(w)) * src_width);
      const double y = round_half_even(double(grown.corners[i].y / float(h)) * src_height);
      mapped[i] = {float(std::clamp(x, 0.0, double(src_width - 1))), float(std::clamp(y, 0.0, double(src_height - 1)))};
    }
    // order_points_clockwise: by x (numpy's argsort of 4 values is stable), then each pair by y.
    std::stable_sort(mapped.begin(), mapped.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
    auto by_y = [](const Point& a, const Point& b) { return a.y < b.y; };
    std::stable_sort(mapped.begin(), mapped.begin() + 2, by_y);
    std::stable_sort(mapped.begin() + 2, mapped.end(), by_y);
    Quad quad;
    quad.points = {mapped[0], mapped[2], mapped[3], mapped[1]};
    quad.score = score;
    const auto& q = quad.points;
    if (int(std::hypot(q[0].x - q[1].x, q[0].y - q[1].y)) <= 3 || int(std::hypot(q[0].x - q[3].x, q[0].y - q[3].y)) <= 3)
      continue;
    boxes.push_back(quad);
  }
  return boxes;
}

}  // namespace eastrt::db
