// Locality-aware NMS as lanms-neo's merge_quadrangle_n9 (the reference's C++ LANMS) computes it: integer
// coordinates × 10000, polygon IoU by Clipper, pairwise score-weighted merging, then standard NMS.
#include <polyclipping/clipper.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "eastrt/detector_ops.h"

namespace eastrt::east {
namespace {

namespace cl = ClipperLib;

constexpr float kPrecision = 10000.0f;

struct FixedQuad {
  cl::Path poly;  // four vertices
  float score = 0;
};

// lanms multiplies the float32 coordinates by 10000 in float32 and truncates to int64. The clamp only keeps
// absurd inputs (a corrupt geometry map) inside what Clipper and int64 can hold.
cl::cInt to_fixed(float v) {
  const float scaled = v * kPrecision;
  if (!(scaled == scaled)) return 0;
  return static_cast<cl::cInt>(std::clamp(scaled, -1e15f, 1e15f));
}

FixedQuad to_fixed(const Quad& q) {
  FixedQuad f;
  for (const Point& p : q.points) f.poly.push_back({to_fixed(p.x), to_fixed(p.y)});
  f.score = q.score;
  return f;
}

Quad to_float(const FixedQuad& f) {
  Quad q;
  for (int i = 0; i < 4; ++i) {
    q.points[i].x = static_cast<float>(f.poly[i].X) / kPrecision;
    q.points[i].y = static_cast<float>(f.poly[i].Y) / kPrecision;
  }
  q.score = f.score;
  return q;
}

// Areas summed into a float, as lanms does.
float area_of(const cl::Paths& paths) {
  float area = 0;
  for (const cl::Path& p : paths) area += cl::Area(p);
  return area;
}

// Quads whose bounding boxes do not overlap have no intersection: IoU 0 exactly, without Clipper. This keeps
// NMS fast when a bad model emits thousands of scattered or degenerate candidates.
bool boxes_disjoint(const cl::Path& a, const cl::Path& b) {
  auto [ax0, ax1] = std::minmax({a[0].X, a[1].X, a[2].X, a[3].X});
  auto [bx0, bx1] = std::minmax({b[0].X, b[1].X, b[2].X, b[3].X});
  if (ax1 <= bx0 || bx1 <= ax0) return true;
  auto [ay0, ay1] = std::minmax({a[0].Y, a[1].Y, a[2].Y, a[3].Y});
  auto [by0, by1] = std::minmax({b[0].Y, b[1].Y, b[2].Y, b[3].Y});
  return ay1 <= by0 || by1 <= ay0;
}

float fixed_iou(const FixedQuad& a, const FixedQuad& b) {
  if (boxes_disjoint(a.poly, b.poly)) return 0;
  cl::Clipper clipper;
  clipper.AddPath(a.poly, cl::ptSubject, true);
  clipper.AddPath(b.poly, cl::ptClip, true);
  cl::Paths intersection, union_;
  clipper.Execute(cl::ctIntersection, intersection, cl::pftEvenOdd, cl::pftEvenOdd);
  clipper.Execute(cl::ctUnion, union_, cl::pftEvenOdd, cl::pftEvenOdd);
  return std::abs(area_of(intersection)) / std::max(std::abs(area_of(union_)), 1.0f);
}

int64_t sqr(int64_t v) { return v * v; }

int64_t distance(const cl::IntPoint& a, const cl::IntPoint& b) { return sqr(a.X - b.X) + sqr(a.Y - b.Y); }

// lanms-neo's normalize_poly: reorders p's vertices to match ref's. It means to try all four starts in both
// directions, but as written the forward sum pairs ref[i] with p[i] whatever the start, and the backward
// sum for start j pairs ref[(j + k) % 4] with p[(j + 3 - k) % 4], while the winning backward order is then
// applied as r[i] = p[(j + 3 - i) % 4]. Only the first strictly smaller sum wins. Reproduced as it is, since
// merged vertices must match the reference's.
cl::Path match_vertex_order(const cl::Path& ref, const cl::Path& p) {
  int64_t best = std::numeric_limits<int64_t>::max();
  int best_start = 0;
  bool best_backward = false;
  for (int j = 0; j < 4; ++j) {
    int64_t forward = 0, backward = 0;
    for (int k = 0; k < 4; ++k) {
      forward += distance(ref[(j + k) % 4], p[(j + k) % 4]);
      backward += distance(ref[(j + k) % 4], p[(j + 3 - k) % 4]);
    }
    if (forward < best) best = forward, best_start = j, best_backward = false;
    if (backward < best) best = backward, best_start = j, best_backward = true;
  }
  cl::Path r(4);
  for (int i = 0; i < 4; ++i) r[i] = p[best_backward ? (best_start + 3 - i) % 4 : (best_start + i) % 4];
  return r;
}

// lanms-neo's PolyMerger fed with the kept quad and then the new one. Its accumulators are int64 but every
// update goes through float (int64 * float is float), and each read-back truncates: that rounding decides
// the merged vertices' last digits, so it is kept operation for operation.
FixedQuad merge(const FixedQuad& kept, const FixedQuad& incoming) {
  int64_t sum[8];
  for (int i = 0; i < 4; ++i) {
    sum[2 * i] = static_cast<int64_t>(static_cast<float>(kept.poly[i].X) * kept.score);
    sum[2 * i + 1] = static_cast<int64_t>(static_cast<float>(kept.poly[i].Y) * kept.score);
  }
  auto read_back = [&](float score) {
    const float inverse = 1.0f / std::max(1e-8f, score);
    cl::Path poly(4);
    for (int i = 0; i < 4; ++i) {
      poly[i].X = static_cast<cl::cInt>(static_cast<float>(sum[2 * i]) * inverse);
      poly[i].Y = static_cast<cl::cInt>(static_cast<float>(sum[2 * i + 1]) * inverse);
    }
    return poly;
  };
  const cl::Path p = match_vertex_order(read_back(kept.score), incoming.poly);
  for (int i = 0; i < 4; ++i) {
    sum[2 * i] = static_cast<int64_t>(static_cast<float>(sum[2 * i]) + static_cast<float>(p[i].X) * incoming.score);
    sum[2 * i + 1] =
        static_cast<int64_t>(static_cast<float>(sum[2 * i + 1]) + static_cast<float>(p[i].Y) * incoming.score);
  }
  FixedQuad merged;
  merged.score = kept.score + incoming.score;
  merged.poly = read_back(merged.score);
  return merged;
}

// Standard NMS in decreasing score, equal scores in the merged quads' order. lanms sorts with std::sort,
// which leaves the order of equal scores to the standard library; FP16 scores tie often, and the GPU's
// LANMS (lanms_rules.h) orders them by index, so this does too.
std::vector<FixedQuad> standard_nms(const std::vector<FixedQuad>& polys, float iou_threshold) {
  std::vector<size_t> order(polys.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return polys[i].score > polys[j].score; });
  std::vector<FixedQuad> kept;
  while (!order.empty()) {
    const size_t best = order[0];
    kept.push_back(polys[best]);
    size_t n = 0;
    for (size_t i = 1; i < order.size(); ++i)
      if (!(fixed_iou(polys[best], polys[order[i]]) > iou_threshold)) order[n++] = order[i];
    order.resize(n);
  }
  return kept;
}

}  // namespace

float quad_iou(const Quad& a, const Quad& b) { return fixed_iou(to_fixed(a), to_fixed(b)); }

std::vector<Quad> locality_aware_nms(const std::vector<Quad>& quads, float iou_threshold) {
  std::vector<FixedQuad> kept;
  for (const Quad& q : quads) {
    FixedQuad f = to_fixed(q);
    if (!kept.empty() && fixed_iou(f, kept.back()) > iou_threshold)
      kept.back() = merge(kept.back(), f);
    else
      kept.push_back(std::move(f));
  }
  std::vector<Quad> out;
  for (const FixedQuad& f : standard_nms(kept, iou_threshold)) out.push_back(to_float(f));
  return out;
}

}  // namespace eastrt::east
