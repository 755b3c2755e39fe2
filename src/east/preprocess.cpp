// The detector's input: EAST's resize rule and a bilinear resize that reproduces cv2.resize(INTER_LINEAR)
// on uint8 images bit for bit, returned as the network's float NHWC input.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "eastrt/detector_ops.h"
#include "eastrt/error.h"
#include "east/opencv_resize.h"

namespace eastrt::east {
namespace {

// OpenCV's SIMD vertical pass (VResizeLinearVec_32s8u, used for every pixel on x86): each horizontally
// interpolated value (weights summing to 2048) drops 4 bits, is multiplied by its 11-bit weight keeping the
// high 16 bits, and the sum is rounded by 2 bits. This differs from exact rounding by one in about one
// value in ten, so it is reproduced rather than improved.
inline int vertical_blend(int top, int bottom, int weight_top, int weight_bottom) {
  const int value = (((top >> 4) * weight_top) >> 16) + (((bottom >> 4) * weight_bottom) >> 16);
  return std::clamp((value + 2) >> 2, 0, 255);
}

}  // namespace

ResizeTaps opencv_linear_taps(int src, int dst, bool clamp_fraction) {
  ResizeTaps taps;
  const double scale = 1.0 / (static_cast<double>(dst) / src);
  for (int d = 0; d < dst; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = static_cast<int>(std::floor(f));
    f -= static_cast<float>(s);
    if (clamp_fraction) {
      if (s < 0) f = 0, s = 0;
      if (s >= src - 1) f = 0, s = src - 1;
    }
    taps.first.push_back(std::clamp(s, 0, src - 1));
    taps.second.push_back(std::clamp(s + 1, 0, src - 1));
    taps.weight0.push_back(static_cast<int>(std::lrint((1.0f - f) * kOpenCvWeightOne)));
    taps.weight1.push_back(static_cast<int>(std::lrint(f * kOpenCvWeightOne)));
  }
  return taps;
}


ResizePlan plan_resize(int height, int width, int max_side) {
  EASTRT_CHECK(height > 0 && width > 0, "plan_resize: image size ", height, "x", width, " is empty");
  EASTRT_CHECK(max_side >= 32, "plan_resize: max_side ", max_side, " is below 32");
  // Written as argman/EAST eval.py's resize_image computes it, in double, with Python's int() truncation.
  double ratio = 1.0;
  if (std::max(height, width) > max_side)
    ratio = height > width ? static_cast<double>(max_side) / height : static_cast<double>(max_side) / width;
  int resize_h = static_cast<int>(height * ratio);
  int resize_w = static_cast<int>(width * ratio);
  resize_h = resize_h % 32 == 0 ? resize_h : (resize_h / 32 - 1) * 32;
  resize_w = resize_w % 32 == 0 ? resize_w : (resize_w / 32 - 1) * 32;
  ResizePlan plan;
  plan.height = std::max(32, resize_h);
  plan.width = std::max(32, resize_w);
  plan.ratio_h = plan.height / static_cast<double>(height);
  plan.ratio_w = plan.width / static_cast<double>(width);
  return plan;
}

HostTensor resize_bilinear(const Image& image, int height, int width) {
  EASTRT_CHECK(image.width > 0 && image.height > 0 &&
                   image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
               "resize_bilinear: image is ", image.width, "x", image.height, " with ", image.rgb.size(), " bytes");
  EASTRT_CHECK(height > 0 && width > 0, "resize_bilinear: target size ", height, "x", width, " is empty");
  const ResizeTaps tx = opencv_linear_taps(image.width, width, /*clamp_fraction=*/true);
  const ResizeTaps ty = opencv_linear_taps(image.height, height, /*clamp_fraction=*/false);

  // Horizontal passes of the two source rows an output row blends, kept in two slots: consecutive output
  // rows mostly share their source rows.
  const size_t row_len = static_cast<size_t>(width) * 3;
  std::vector<int> rows[2] = {std::vector<int>(row_len), std::vector<int>(row_len)};
  int cached[2] = {-1, -1};
  auto fill = [&](int slot, int sy) {
    const uint8_t* src = image.rgb.data() + static_cast<size_t>(sy) * image.width * 3;
    int* out = rows[slot].data();
    for (int x = 0; x < width; ++x) {
      const uint8_t* a = src + tx.first[x] * 3;
      const uint8_t* b = src + tx.second[x] * 3;
      for (int c = 0; c < 3; ++c) out[x * 3 + c] = a[c] * tx.weight0[x] + b[c] * tx.weight1[x];
    }
    cached[slot] = sy;
  };
  auto slot_of = [&](int sy) { return cached[0] == sy ? 0 : cached[1] == sy ? 1 : -1; };

  HostTensor tensor;
  tensor.shape = {1, height, width, 3};
  tensor.data.resize(static_cast<size_t>(height) * row_len);
  for (int y = 0; y < height; ++y) {
    int k0 = slot_of(ty.first[y]);
    if (k0 < 0) fill(k0 = cached[0] == ty.second[y] ? 1 : 0, ty.first[y]);
    int k1 = slot_of(ty.second[y]);
    if (k1 < 0) fill(k1 = 1 - k0, ty.second[y]);
    const int* top = rows[k0].data();
    const int* bottom = rows[k1].data();
    float* out = tensor.data.data() + y * row_len;
    for (size_t i = 0; i < row_len; ++i)
      out[i] = static_cast<float>(vertical_blend(top[i], bottom[i], ty.weight0[y], ty.weight1[y]));
  }
  return tensor;
}

HostTensor preprocess(const Image& image, ResizePlan* plan, int max_side) {
  const ResizePlan p = plan_resize(image.height, image.width, max_side);
  if (plan) *plan = p;
  return resize_bilinear(image, p.height, p.width);
}

}  // namespace eastrt::east
