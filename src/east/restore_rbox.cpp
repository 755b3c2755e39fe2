// Decoding EAST's output maps: the rotated rectangle (RBOX) of every pixel above the score threshold.
#include <cmath>
#include <sstream>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

namespace eastrt::east {

std::array<int, 2> map_size(const HostTensor& map, int channels, const char* what) {
  const Shape& s = map.shape;
  const size_t n = s.size();
  // [1, h, w, c], [h, w, c], or [h, w] for a one-channel map.
  const bool known = (n == 4 && s[0] == 1 && s[3] == channels) || (n == 3 && s[2] == channels) ||
                     (n == 2 && channels == 1);
  const size_t h_axis = n == 4 ? 1 : 0;
  std::array<int, 2> hw{};
  bool ok = known && s[h_axis] > 0 && s[h_axis + 1] > 0 && s[h_axis] < (1 << 20) && s[h_axis + 1] < (1 << 20);
  if (ok) {
    hw = {static_cast<int>(s[h_axis]), static_cast<int>(s[h_axis + 1])};
    ok = map.data.size() == static_cast<size_t>(hw[0]) * hw[1] * channels;
  }
  if (!ok) {
    std::ostringstream shape;
    for (size_t i = 0; i < n; ++i) shape << (i ? "x" : "") << s[i];
    throw_error(what, ": expected a [1, h, w, ", channels, "] map, got shape [", shape.str(), "] with ",
                map.data.size(), " values");
  }
  return hw;
}

// argman/EAST's restore_rectangle_rbox builds the rectangle in its own frame with the origin at
// (d_left, -d_bottom) from one corner, rotates it, and moves it so that the origin lands on the pixel; for
// a < 0 it builds the mirrored rectangle and rotates by cos(-a), -sin(-a). Written out, both branches give
// the same corners: the origin plus R(a) applied to (-d_left, -d_top), (d_right, -d_top), (d_right, d_bottom)
// and (-d_left, d_bottom), with R(a) = [[cos a, sin a], [-sin a, cos a]]. So one formula serves both signs.
Quad restore_rbox(float origin_x, float origin_y, const float geometry[5], float score) {
  const double top = geometry[0], right = geometry[1], bottom = geometry[2], left = geometry[3];
  const double c = std::cos(static_cast<double>(geometry[4])), s = std::sin(static_cast<double>(geometry[4]));
  const double local[4][2] = {{-left, -top}, {right, -top}, {right, bottom}, {-left, bottom}};
  Quad quad;
  for (int i = 0; i < 4; ++i) {
    quad.points[i].x = static_cast<float>(origin_x + c * local[i][0] + s * local[i][1]);
    quad.points[i].y = static_cast<float>(origin_y - s * local[i][0] + c * local[i][1]);
  }
  quad.score = score;
  return quad;
}

std::vector<Quad> decode_quads(const HostTensor& score, const HostTensor& geometry, float score_threshold) {
  const auto [h, w] = map_size(score, 1, "score map");
  const auto [gh, gw] = map_size(geometry, 5, "geometry map");
  EASTRT_CHECK(gh == h && gw == w, "geometry map is ", gh, "x", gw, " but the score map is ", h, "x", w);
  std::vector<Quad> quads;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float s = score.data[static_cast<size_t>(y) * w + x];
      if (!(s > score_threshold)) continue;
      const float* g = geometry.data.data() + (static_cast<size_t>(y) * w + x) * 5;
      bool finite = true;
      for (int k = 0; k < 5; ++k) finite = finite && std::isfinite(g[k]);
      // Each quad keeps its own pixel's score. (The public implementation emits all a >= 0 quads before the
      // a < 0 ones while the scores stay in pixel order; that misalignment is a defect, not reproduced.)
      if (finite) quads.push_back(restore_rbox(4.0f * x, 4.0f * y, g, s));
    }
  }
  return quads;
}

}  // namespace eastrt::east
