// EAST's input on the GPU in one pass: an 8-bit RGB image of any size resized as cv2.resize(INTER_LINEAR)
// does it, bit for bit (11-bit fixed-point taps, OpenCV's x86 vertical rounding; see
// src/east/preprocess.cpp, the CPU twin it is tested against), written as float NHWC RGB 0..255.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

constexpr int kWeightOne = 2048;

// OpenCV's taps: centre (d + 0.5)·scale − 0.5 with scale = 1 / (dst / src) in double, rounded to float;
// along x a position outside the image snaps to the edge pixel with weight one, along y only the indices
// are clamped (the two axes differ in OpenCV, and its results show it).
void append_taps(std::vector<int>& taps, int src, int dst, bool clamp_fraction) {
  const double scale = 1.0 / (static_cast<double>(dst) / src);
  for (int d = 0; d < dst; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = static_cast<int>(std::floor(f));
    f -= static_cast<float>(s);
    if (clamp_fraction) {
      if (s < 0) f = 0, s = 0;
      if (s >= src - 1) f = 0, s = src - 1;
    }
    taps.push_back(std::clamp(s, 0, src - 1));
    taps.push_back(std::clamp(s + 1, 0, src - 1));
    taps.push_back(static_cast<int>(std::lrint((1.0f - f) * kWeightOne)));
    taps.push_back(static_cast<int>(std::lrint(f * kWeightOne)));
  }
}

// OpenCV's SIMD vertical pass: each horizontal sum drops 4 bits, is multiplied by its 11-bit weight keeping
// the high 16 bits, and the sum is rounded by 2 bits.
__device__ __forceinline__ int vertical_blend(int top, int bottom, int weight_top, int weight_bottom) {
  const int value = (((top >> 4) * weight_top) >> 16) + (((bottom >> 4) * weight_bottom) >> 16);
  return min(max((value + 2) >> 2, 0), 255);
}

__global__ void preprocess_kernel(const uint8_t* rgb, int src_h, int src_w, const int* taps, float* dst, int dst_h,
                                  int dst_w) {
  const int64_t count = int64_t(dst_h) * dst_w;
  const int* ty = taps + 4 * dst_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int x = static_cast<int>(i % dst_w), y = static_cast<int>(i / dst_w);
    const int* tx = taps + 4 * x;
    const int* tyy = ty + 4 * y;
    const uint8_t* row0 = rgb + int64_t(tyy[0]) * src_w * 3;
    const uint8_t* row1 = rgb + int64_t(tyy[1]) * src_w * 3;
    for (int c = 0; c < 3; ++c) {
      const int top = row0[tx[0] * 3 + c] * tx[2] + row0[tx[1] * 3 + c] * tx[3];
      const int bottom = row1[tx[0] * 3 + c] * tx[2] + row1[tx[1] * 3 + c] * tx[3];
      dst[i * 3 + c] = static_cast<float>(vertical_blend(top, bottom, tyy[2], tyy[3]));
    }
  }
}

}  // namespace

std::vector<int> linear_resize_taps(int src_height, int src_width, int dst_height, int dst_width) {
  std::vector<int> taps;
  taps.reserve(4 * static_cast<size_t>(dst_width + dst_height));
  append_taps(taps, src_width, dst_width, /*clamp_fraction=*/true);
  append_taps(taps, src_height, dst_height, /*clamp_fraction=*/false);
  return taps;
}

void launch_preprocess(const uint8_t* rgb, int src_height, int src_width, const int* taps, float* dst, int dst_height,
                       int dst_width, cudaStream_t stream) {
  const int64_t count = int64_t(dst_height) * dst_width;
  if (count == 0) return;
  preprocess_kernel<<<grid_for(count), kThreads, 0, stream>>>(rgb, src_height, src_width, taps, dst, dst_height,
                                                              dst_width);
  EASTRT_LAUNCHED("preprocess_kernel");
}

}  // namespace eastrt::cuda
