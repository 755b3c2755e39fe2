// Locality-aware NMS as the GPU runs it (lanms.cu), written once for the device and the host: the host
// build of these functions is the reference the GPU kernels are tested against bit for bit, and what an
// image whose merged quads are too many for one block's shared memory falls back to.
//
// The rules are lanms-neo's, as src/east/lanms.cpp reproduces them on the CPU: coordinates × 10000
// truncated to int64, the same score-weighted merger (its float rounding operation for operation) and
// vertex matching, IoU > threshold to merge into the last kept quad in row order, then standard NMS by
// decreasing score. One thing differs: the IoU. Clipper (the CPU's) rounds every edge crossing to an integer
// point; here the intersection is clipped in double (Sutherland-Hodgman against the other quad's edges),
// so an IoU may differ from the CPU's by about 1e-6 (tested), and a decision flips only for an IoU that
// close to the threshold. Ties in score are broken by the merged quads' order, on the CPU too. Quads are
// treated as convex (EAST's rectangles and their weighted averages are); a self-intersecting one gets
// another area than Clipper's even-odd rule gives.
//
// Build note: lanms.cu is compiled without FMA contraction, so that the device rounds every product and sum
// as the host does.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define EASTRT_HD __host__ __device__ __forceinline__
#else
#define EASTRT_HD inline
#endif

namespace eastrt::lanms {

constexpr float kPrecision = 10000.0f;

struct FixedQuad {
  int64_t x[4], y[4];
  float score;
};

EASTRT_HD float min_f(float a, float b) { return a < b ? a : b; }
EASTRT_HD float max_f(float a, float b) { return a > b ? a : b; }

// lanms scales the float32 coordinate by 10000 in float32 and truncates; the clamp keeps a corrupt
// geometry inside int64 (as the CPU does).
EASTRT_HD int64_t to_fixed(float v) {
  const float scaled = v * kPrecision;
  if (!(scaled == scaled)) return 0;
  return static_cast<int64_t>(min_f(max_f(scaled, -1e15f), 1e15f));
}

EASTRT_HD FixedQuad to_fixed(const float x[4], const float y[4], float score) {
  FixedQuad q;
  for (int i = 0; i < 4; ++i) q.x[i] = to_fixed(x[i]), q.y[i] = to_fixed(y[i]);
  q.score = score;
  return q;
}

EASTRT_HD float to_float(int64_t v) { return static_cast<float>(v) / kPrecision; }

// Twice the signed area (shoelace) of n vertices.
EASTRT_HD double twice_area(const double* x, const double* y, int n) {
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const int j = i + 1 == n ? 0 : i + 1;
    sum += x[i] * y[j] - x[j] * y[i];
  }
  return sum;
}

// Quads whose bounding boxes do not overlap (touching counts as apart) have IoU 0, as on the CPU.
EASTRT_HD bool boxes_disjoint(const FixedQuad& a, const FixedQuad& b) {
  int64_t ax0 = a.x[0], ax1 = a.x[0], ay0 = a.y[0], ay1 = a.y[0];
  int64_t bx0 = b.x[0], bx1 = b.x[0], by0 = b.y[0], by1 = b.y[0];
  for (int i = 1; i < 4; ++i) {
    ax0 = a.x[i] < ax0 ? a.x[i] : ax0, ax1 = a.x[i] > ax1 ? a.x[i] : ax1;
    ay0 = a.y[i] < ay0 ? a.y[i] : ay0, ay1 = a.y[i] > ay1 ? a.y[i] : ay1;
    bx0 = b.x[i] < bx0 ? b.x[i] : bx0, bx1 = b.x[i] > bx1 ? b.x[i] : bx1;
    by0 = b.y[i] < by0 ? b.y[i] : by0, by1 = b.y[i] > by1 ? b.y[i] : by1;
  }
  return ax1 <= bx0 || bx1 <= ax0 || ay1 <= by0 || by1 <= ay0;
}

// Intersection over union: `a` clipped by the half-planes of `b`'s edges (inside on the side of b's
// orientation), areas in double, the ratio in float as the CPU forms it (|I| / max(|U|, 1)).
EASTRT_HD float iou(const FixedQuad& a, const FixedQuad& b) {
  if (boxes_disjoint(a, b)) return 0.0f;
  double ax[4], ay[4], bx[4], by[4];
  for (int i = 0; i < 4; ++i) {
    ax[i] = static_cast<double>(a.x[i]), ay[i] = static_cast<double>(a.y[i]);
    bx[i] = static_cast<double>(b.x[i]), by[i] = static_cast<double>(b.y[i]);
  }
  const double area_a = twice_area(ax, ay, 4), area_b = twice_area(bx, by, 4);
  const double orientation = area_b < 0 ? -1.0 : 1.0;
  // Each clip by a half-plane adds at most one vertex: 4 + 4.
  double px[8], py[8], qx[8], qy[8];
  int n = 4;
  for (int i = 0; i < 4; ++i) px[i] = ax[i], py[i] = ay[i];
  for (int e = 0; e < 4 && n > 0; ++e) {
    const int f = e + 1 == 4 ? 0 : e + 1;
    const double ex = bx[f] - bx[e], ey = by[f] - by[e];
    int m = 0;
    for (int i = 0; i < n; ++i) {
      const int j = i + 1 == n ? 0 : i + 1;
      const double si = orientation * (ex * (py[i] - by[e]) - ey * (px[i] - bx[e]));
      const double sj = orientation * (ex * (py[j] - by[e]) - ey * (px[j] - bx[e]));
      if (si >= 0 && m < 8) qx[m] = px[i], qy[m] = py[i], ++m;
      if ((si >= 0) != (sj >= 0) && m < 8) {
        const double t = si / (si - sj);
        qx[m] = px[i] + t * (px[j] - px[i]);
        qy[m] = py[i] + t * (py[j] - py[i]);
        ++m;
      }
    }
    n = m;
    for (int i = 0; i < n; ++i) px[i] = qx[i], py[i] = qy[i];
  }
  const double both = n >= 3 ? twice_area(px, py, n) : 0.0;
  const double abs_both = both < 0 ? -both : both;
  const double abs_a = area_a < 0 ? -area_a : area_a, abs_b = area_b < 0 ? -area_b : area_b;
  const float intersection = static_cast<float>(0.5 * abs_both);
  const float union_area = static_cast<float>(0.5 * (abs_a + abs_b - abs_both));
  return intersection / max_f(union_area, 1.0f);
}

EASTRT_HD int64_t distance(int64_t ax, int64_t ay, int64_t bx, int64_t by) {
  return (ax - bx) * (ax - bx) + (ay - by) * (ay - by);
}

// The merger of lanms-neo, as src/east/lanms.cpp transcribes it (see the comments there): `kept` and
// `incoming` in, the merged quad out.
EASTRT_HD FixedQuad merge(const FixedQuad& kept, const FixedQuad& incoming) {
  int64_t sum[8];
  for (int i = 0; i < 4; ++i) {
    sum[2 * i] = static_cast<int64_t>(static_cast<float>(kept.x[i]) * kept.score);
    sum[2 * i + 1] = static_cast<int64_t>(static_cast<float>(kept.y[i]) * kept.score);
  }
  const float kept_inverse = 1.0f / max_f(1e-8f, kept.score);
  int64_t rx[4], ry[4];
  for (int i = 0; i < 4; ++i) {
    rx[i] = static_cast<int64_t>(static_cast<float>(sum[2 * i]) * kept_inverse);
    ry[i] = static_cast<int64_t>(static_cast<float>(sum[2 * i + 1]) * kept_inverse);
  }
  // Vertex matching (lanms-neo's normalize_poly, quirks included).
  int64_t best = INT64_MAX;
  int best_start = 0;
  bool best_backward = false;
  for (int j = 0; j < 4; ++j) {
    int64_t forward = 0, backward = 0;
    for (int k = 0; k < 4; ++k) {
      const int r = (j + k) % 4;
      forward += distance(rx[r], ry[r], incoming.x[r], incoming.y[r]);
      const int p = (j + 3 - k) % 4;
      backward += distance(rx[r], ry[r], incoming.x[p], incoming.y[p]);
    }
    if (forward < best) best = forward, best_start = j, best_backward = false;
    if (backward < best) best = backward, best_start = j, best_backward = true;
  }
  for (int i = 0; i < 4; ++i) {
    const int p = best_backward ? (best_start + 3 - i) % 4 : (best_start + i) % 4;
    sum[2 * i] = static_cast<int64_t>(static_cast<float>(sum[2 * i]) + static_cast<float>(incoming.x[p]) * incoming.score);
    sum[2 * i + 1] =
        static_cast<int64_t>(static_cast<float>(sum[2 * i + 1]) + static_cast<float>(incoming.y[p]) * incoming.score);
  }
  FixedQuad merged;
  merged.score = kept.score + incoming.score;
  const float inverse = 1.0f / max_f(1e-8f, merged.score);
  for (int i = 0; i < 4; ++i) {
    merged.x[i] = static_cast<int64_t>(static_cast<float>(sum[2 * i]) * inverse);
    merged.y[i] = static_cast<int64_t>(static_cast<float>(sum[2 * i + 1]) * inverse);
  }
  return merged;
}

// The locality-aware pass over n candidates in row order (x[4], y[4], score of each: the first 9 floats
// at stride `stride` floats): merged quads to `out`, returns their count. The quad being merged stays in
// registers until the next one starts (on the GPU one thread runs this per image).
EASTRT_HD int merge_in_row_order(const float* candidates, int n, int stride, float threshold, FixedQuad* out) {
  int kept = 0;
  FixedQuad last{};
  for (int i = 0; i < n; ++i) {
    const float* c = candidates + static_cast<int64_t>(i) * stride;
    const FixedQuad q = to_fixed(c, c + 4, c[8]);
    if (kept > 0 && iou(q, last) > threshold) {
      last = merge(last, q);
      continue;
    }
    if (kept > 0) out[kept - 1] = last;
    last = q;
    ++kept;
  }
  if (kept > 0) out[kept - 1] = last;
  return kept;
}

// The order standard NMS visits quads in: decreasing score, then increasing index. A key per quad that
// sorts ascending in that order (scores of lanms are sums of sigmoid outputs: positive, finite; a negative
// or NaN score is ordered as its bits fall, the same on both sides).
EASTRT_HD uint64_t nms_key(float score, uint32_t index) {
  uint32_t bits = 0;
  const unsigned char* from = reinterpret_cast<const unsigned char*>(&score);
  unsigned char* to = reinterpret_cast<unsigned char*>(&bits);
  for (int i = 0; i < 4; ++i) to[i] = from[i];
  // Floats as unsigned integers in value order (negative ones reversed), then descending.
  const uint32_t ordered = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(~ordered) << 32) | index;
}

}  // namespace eastrt::lanms
