// Quadrilateral area and intersection area with the semantics of the Polygon library (GPC) that the
// ICDAR 2015 script calls: `area()` of one contour, and the area of `a & b` under the even-odd rule.
#include <algorithm>
#include <cmath>
#include <vector>

#include "eastrt/eval.h"

namespace eastrt::eval {
namespace {

struct Point {
  double x, y;
};

struct Edge {
  Point a, b;
  int owner;  // 0: first polygon, 1: second
};

std::array<Point, 4> corners(const Quad& q) {
  return {Point{double(q[0]), double(q[1])}, Point{double(q[2]), double(q[3])},
          Point{double(q[4]), double(q[5])}, Point{double(q[6]), double(q[7])}};
}

// x of the point where two segments cross inside both, if they do; touching at an end point adds nothing
// because every end point's x is a slab boundary already.
bool crossing_x(const Edge& e, const Edge& f, double& x) {
  const double dx1 = e.b.x - e.a.x, dy1 = e.b.y - e.a.y;
  const double dx2 = f.b.x - f.a.x, dy2 = f.b.y - f.a.y;
  const double det = dx1 * dy2 - dy1 * dx2;
  if (det == 0) return false;  // parallel (collinear overlaps share their end points' x)
  const double ex = f.a.x - e.a.x, ey = f.a.y - e.a.y;
  const double t = (ex * dy2 - ey * dx2) / det;
  const double u = (ex * dy1 - ey * dx1) / det;
  if (!(t > 0 && t < 1 && u > 0 && u < 1)) return false;
  x = e.a.x + t * dx1;
  return true;
}

}  // namespace

double quad_area(const Quad& q) {
  // The shoelace formula of the one contour, unsigned: what Polygon's area() gives even for a
  // self-intersecting quad (a bow tie's two lobes cancel), and the script divides by it.
  const auto p = corners(q);
  double twice = 0;
  for (int i = 0; i < 4; ++i) {
    const Point& s = p[i];
    const Point& t = p[(i + 1) % 4];
    twice += s.x * t.y - t.x * s.y;
  }
  return std::fabs(twice) / 2;
}

double intersection_area(const Quad& first, const Quad& second) {
  // Slab decomposition: cut the plane at every vertex x and every x where two edges cross. Inside a slab no
  // edges cross, so each polygon's region is a stack of trapezoids between consecutive edges (even-odd
  // rule, as GPC clips), and the length of the common part at the slab's middle times the slab's width is
  // the exact area there. This handles non-convex and self-intersecting quads without special cases.
  const auto pa = corners(first), pb = corners(second);
  double min_a = pa[0].x, max_a = pa[0].x, min_b = pb[0].x, max_b = pb[0].x;
  double ymin_a = pa[0].y, ymax_a = pa[0].y, ymin_b = pb[0].y, ymax_b = pb[0].y;
  for (int i = 1; i < 4; ++i) {
    min_a = std::min(min_a, pa[i].x), max_a = std::max(max_a, pa[i].x);
    min_b = std::min(min_b, pb[i].x), max_b = std::max(max_b, pb[i].x);
    ymin_a = std::min(ymin_a, pa[i].y), ymax_a = std::max(ymax_a, pa[i].y);
    ymin_b = std::min(ymin_b, pb[i].y), ymax_b = std::max(ymax_b, pb[i].y);
  }
  const double lo = std::max(min_a, min_b), hi = std::min(max_a, max_b);
  if (lo >= hi || std::max(ymin_a, ymin_b) >= std::min(ymax_a, ymax_b)) return 0;

  std::vector<Edge> edges;
  std::vector<double> cuts = {lo, hi};
  for (int owner = 0; owner < 2; ++owner) {
    const auto& p = owner == 0 ? pa : pb;
    for (int i = 0; i < 4; ++i) {
      Edge e{p[i], p[(i + 1) % 4], owner};
      if (e.a.x > e.b.x) std::swap(e.a, e.b);
      if (e.a.x != e.b.x) edges.push_back(e);  // a vertical edge bounds no slab's interior
      if (p[i].x > lo && p[i].x < hi) cuts.push_back(p[i].x);
    }
  }
  for (size_t i = 0; i < edges.size(); ++i)
    for (size_t j = i + 1; j < edges.size(); ++j) {
      double x;
      if (crossing_x(edges[i], edges[j], x) && x > lo && x < hi) cuts.push_back(x);
    }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

  struct Crossing {
    double y;
    int owner;
  };
  std::vector<Crossing> column;
  double area = 0;
  for (size_t k = 0; k + 1 < cuts.size(); ++k) {
    const double x0 = cuts[k], x1 = cuts[k + 1], mid = (x0 + x1) / 2;
    column.clear();
    for (const Edge& e : edges)
      if (e.a.x < mid && mid < e.b.x)
        column.push_back({e.a.y + (mid - e.a.x) * (e.b.y - e.a.y) / (e.b.x - e.a.x), e.owner});
    std::sort(column.begin(), column.end(), [](const Crossing& l, const Crossing& r) { return l.y < r.y; });
    bool inside[2] = {false, false};
    double length = 0;
    for (size_t i = 0; i < column.size(); ++i) {
      inside[column[i].owner] = !inside[column[i].owner];
      if (inside[0] && inside[1] && i + 1 < column.size()) length += column[i + 1].y - column[i].y;
    }
    area += (x1 - x0) * length;
  }
  return area;
}

double intersection_over_union(const Quad& det, const Quad& gt) {
  // The script's formula, including its quirks: the union uses the unsigned shoelace areas (so it can be
  // off for a bow tie) and a zero union gives 0 (its ZeroDivisionError is caught).
  const double inter = intersection_area(det, gt);
  const double uni = quad_area(det) + quad_area(gt) - inter;
  return uni == 0 ? 0 : inter / uni;
}

}  // namespace eastrt::eval
