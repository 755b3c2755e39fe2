// EAST's input on the GPU in one pass: an 8-bit RGB image of any size resized as cv2.resize(INTER_LINEAR)
// does it, bit for bit (11-bit fixed-point taps, OpenCV's x86 vertical rounding; see
// src/east/preprocess.cpp, the CPU twin it is tested against), written as float NHWC RGB 0..255.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "east/opencv_resize.h"

namespace eastrt::cuda {
namespace {

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
  // The kernel reads four ints per destination column, then four per row: first, second, weight0, weight1.
  std::vector<int> taps;
  taps.reserve(4 * static_cast<size_t>(dst_width + dst_height));
  for (const east::ResizeTaps& axis : {east::opencv_linear_taps(src_width, dst_width, /*clamp_fraction=*/true),
                                       east::opencv_linear_taps(src_height, dst_height, /*clamp_fraction=*/false)})
    for (size_t d = 0; d < axis.first.size(); ++d)
      taps.insert(taps.end(), {axis.first[d], axis.second[d], axis.weight0[d], axis.weight1[d]});
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
