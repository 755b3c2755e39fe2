// The taps of OpenCV's 8-bit linear resize (cv2.resize INTER_LINEAR), shared by the CPU preprocessing and
// the GPU kernel's host side so both reproduce cv2 from one rule.
#pragma once
#include <vector>

namespace eastrt::east {

// OpenCV's 8-bit linear resize works in fixed point: each weight is rounded to 11 bits (2048 = 1.0).
inline constexpr int kOpenCvWeightOne = 2048;

struct ResizeTaps {
  std::vector<int> first, second;     // source indices of each destination index
  std::vector<int> weight0, weight1;  // their weights, in 1/2048
};

// As OpenCV's resizeGeneric computes them: the centre maps to (d + 0.5) * scale - 0.5 with
// scale = 1 / (dst / src) in double, rounded to float. Along x (clamp_fraction) a position left of the first
// pixel or right of the last snaps to that pixel with weight 1; along y the fraction is kept and only the
// row indices are clamped (OpenCV treats the two axes differently, and the result shows it).
ResizeTaps opencv_linear_taps(int src, int dst, bool clamp_fraction);

}  // namespace eastrt::east
