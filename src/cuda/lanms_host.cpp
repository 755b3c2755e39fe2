// The GPU's LANMS on the host (see lanms.h): the same functions the kernels call, one image at a time.
#include "cuda/lanms.h"

#include <algorithm>
#include <numeric>

namespace eastrt::gpu {

east::Quad to_quad(const lanms::FixedQuad& q) {
  east::Quad out;
  for (int i = 0; i < 4; ++i) out.points[i] = {lanms::to_float(q.x[i]), lanms::to_float(q.y[i])};
  out.score = q.score;
  return out;
}

std::vector<east::Quad> standard_nms_as_on_gpu(const lanms::FixedQuad* merged, int n, float threshold) {
  std::vector<uint64_t> keys(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) keys[i] = lanms::nms_key(merged[i].score, static_cast<uint32_t>(i));
  std::sort(keys.begin(), keys.end());
  std::vector<char> suppressed(static_cast<size_t>(n), 0);
  std::vector<east::Quad> kept;
  for (int i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    const lanms::FixedQuad& best = merged[keys[i] & 0xffffffffu];
    kept.push_back(to_quad(best));
    for (int j = i + 1; j < n; ++j)
      if (!suppressed[j] && lanms::iou(best, merged[keys[j] & 0xffffffffu]) > threshold) suppressed[j] = 1;
  }
  return kept;
}

std::vector<east::Quad> lanms_as_on_gpu(const std::vector<east::Quad>& candidates, float threshold) {
  constexpr int kStride = 9;
  std::vector<float> packed(candidates.size() * kStride);
  for (size_t i = 0; i < candidates.size(); ++i) {
    float* c = packed.data() + i * kStride;
    for (int v = 0; v < 4; ++v) c[v] = candidates[i].points[v].x, c[4 + v] = candidates[i].points[v].y;
    c[8] = candidates[i].score;
  }
  std::vector<lanms::FixedQuad> merged(candidates.size());
  const int n = lanms::merge_in_row_order(packed.data(), static_cast<int>(candidates.size()), kStride, threshold,
                                          merged.data());
  return standard_nms_as_on_gpu(merged.data(), n, threshold);
}

}  // namespace eastrt::gpu
