// EAST's decode on the device up to the candidate quads: every pixel above the score threshold with a finite
// geometry becomes the rotated rectangle restore_rbox (src/east/restore_rbox.cpp, the CPU twin it is tested
// against) gives, appended to its image's list through an atomic counter.
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

__global__ void east_candidates_kernel(const float* score, const float* geometry, int batch, int height, int width,
                                       float threshold, EastCandidate* out, int* counts) {
  const int64_t per_image = int64_t(height) * width, count = per_image * batch;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float s = score[i];
    if (!(s > threshold)) continue;
    const float* g = geometry + i * 5;
    bool finite = true;
    for (int k = 0; k < 5; ++k) finite = finite && isfinite(g[k]);
    if (!finite) continue;
    const int b = static_cast<int>(i / per_image), pixel = static_cast<int>(i % per_image);
    const double origin_x = 4.0f * (pixel % width), origin_y = 4.0f * (pixel / width);
    // The same arithmetic as restore_rbox: double, then rounded to float once.
    const double top = g[0], right = g[1], bottom = g[2], left = g[3];
    const double c = cos(static_cast<double>(g[4])), sn = sin(static_cast<double>(g[4]));
    const double local[4][2] = {{-left, -top}, {right, -top}, {right, bottom}, {-left, bottom}};
    EastCandidate q;
    for (int v = 0; v < 4; ++v) {
      q.x[v] = static_cast<float>(origin_x + c * local[v][0] + sn * local[v][1]);
      q.y[v] = static_cast<float>(origin_y - sn * local[v][0] + c * local[v][1]);
    }
    q.score = s;
    q.pixel = pixel;
    const int slot = atomicAdd(counts + b, 1);
    out[b * per_image + slot] = q;
  }
}

}  // namespace

void launch_east_candidates(const float* score, const float* geometry, int batch, int height, int width,
                            float threshold, EastCandidate* out, int* counts, cudaStream_t stream) {
  EASTRT_CUDA(cudaMemsetAsync(counts, 0, sizeof(int) * batch, stream));
  const int64_t count = int64_t(batch) * height * width;
  if (count == 0) return;
  east_candidates_kernel<<<grid_for(count), kThreads, 0, stream>>>(score, geometry, batch, height, width, threshold,
                                                                   out, counts);
  EASTRT_LAUNCHED("east_candidates_kernel");
}

}  // namespace eastrt::cuda
