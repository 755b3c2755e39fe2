// Locality-aware NMS on the device (the rules of lanms_rules.h, which lanms.h's host functions share): one
// thread per image walks its candidates in row order merging each into the last kept quad, as lanms does
// (a sequential pass: each step depends on the one before); then one block per image sorts the merged
// quads by decreasing score in shared memory and suppresses, for each kept quad in turn, every later one
// overlapping it, the block's threads sharing the IoUs. Compiled without FMA contraction (CMakeLists.txt)
// so that every product and sum rounds as on the host.
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/lanms.h"

namespace eastrt::cuda {
namespace {

constexpr int kNmsThreads = 256;
constexpr int kBlockQuads = gpu::kLanmsBlockQuads;

__global__ void merge_kernel(const EastCandidate* candidates, const int* counts, int64_t per_image, float threshold,
                             lanms::FixedQuad* merged, int* merged_counts) {
  const int b = blockIdx.x;
  static_assert(sizeof(EastCandidate) % sizeof(float) == 0, "candidates are read as floats");
  merged_counts[b] = lanms::merge_in_row_order(reinterpret_cast<const float*>(candidates + b * per_image), counts[b],
                                               sizeof(EastCandidate) / sizeof(float), threshold, merged + b * per_image);
}

__global__ void nms_kernel(const lanms::FixedQuad* merged, const int* merged_counts, int64_t per_image,
                           float threshold, EastBox* boxes, int* box_counts) {
  __shared__ uint64_t keys[kBlockQuads];
  __shared__ unsigned char suppressed[kBlockQuads];
  const int b = blockIdx.x, n = merged_counts[b];
  if (n > kBlockQuads) {
    if (threadIdx.x == 0) box_counts[b] = -1;
    return;
  }
  const lanms::FixedQuad* quads = merged + b * per_image;
  int size = 1;
  while (size < n) size <<= 1;
  for (int i = threadIdx.x; i < size; i += blockDim.x) {
    keys[i] = i < n ? lanms::nms_key(quads[i].score, static_cast<uint32_t>(i)) : ~uint64_t(0);
    suppressed[i] = 0;
  }
  __syncthreads();
  // Bitonic sort, ascending keys: decreasing score, then increasing index.
  for (int k = 2; k <= size; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += blockDim.x) {
        const int other = i ^ j;
        if (other <= i) continue;
        const bool ascending = (i & k) == 0;
        if ((keys[i] > keys[other]) == ascending) {
          const uint64_t t = keys[i];
          keys[i] = keys[other];
          keys[other] = t;
        }
      }
      __syncthreads();
    }
  // Every thread reads suppressed[i] after the barrier that closed the step writing it: the branch is uniform.
  int kept = 0;
  EastBox* out = boxes + int64_t(b) * kBlockQuads;
  for (int i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    const lanms::FixedQuad best = quads[keys[i] & 0xffffffffu];
    if (threadIdx.x == 0) {
      for (int v = 0; v < 4; ++v) out[kept].x[v] = lanms::to_float(best.x[v]), out[kept].y[v] = lanms::to_float(best.y[v]);
      out[kept].score = best.score;
    }
    ++kept;
    for (int j = i + 1 + threadIdx.x; j < n; j += blockDim.x)
      if (!suppressed[j] && lanms::iou(best, quads[keys[j] & 0xffffffffu]) > threshold) suppressed[j] = 1;
    __syncthreads();
  }
  if (threadIdx.x == 0) box_counts[b] = kept;
}

}  // namespace

void launch_east_lanms(const EastCandidate* candidates, const int* counts, int batch, int64_t per_image,
                       float threshold, void* merged, int* merged_counts, EastBox* boxes, int block_quads,
                       int* box_counts, cudaStream_t stream) {
  EASTRT_CHECK(block_quads == kBlockQuads, "launch_east_lanms: room for ", block_quads, " boxes an image, the kernel writes ",
               kBlockQuads);
  if (batch == 0) return;
  auto* fixed = static_cast<lanms::FixedQuad*>(merged);
  merge_kernel<<<batch, 1, 0, stream>>>(candidates, counts, per_image, threshold, fixed, merged_counts);
  EASTRT_LAUNCHED("lanms merge_kernel");
  nms_kernel<<<batch, kNmsThreads, 0, stream>>>(fixed, merged_counts, per_image, threshold, boxes, box_counts);
  EASTRT_LAUNCHED("lanms nms_kernel");
}

}  // namespace eastrt::cuda
