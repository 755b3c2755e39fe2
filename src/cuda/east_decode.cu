// EAST's decode on the device up to the candidate quads: every pixel above the score threshold with a finite
// geometry becomes the rotated rectangle restore_rbox (src/east/restore_rbox.cpp, the CPU twin it is tested
// against) gives, written in row order (locality-aware NMS walks them so): the pixels are taken in chunks,
// each chunk's candidates counted, the counts summed into each chunk's first place, and then each candidate
// written at its chunk's place plus the candidates before it in the chunk.
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

constexpr int kChunk = 1024;  // pixels per chunk: one block of as many threads, one pixel each
constexpr int kWarps = kChunk / 32;

__device__ bool is_candidate(const float* score, const float* geometry, int64_t i, float threshold) {
  if (!(score[i] > threshold)) return false;
  const float* g = geometry + i * 5;
  bool finite = true;
  for (int k = 0; k < 5; ++k) finite = finite && isfinite(g[k]);
  return finite;
}

// The count of candidates among the threads' pixels (one each) before this thread's, and in all the block.
__device__ int block_exclusive_count(bool flag, int* total) {
  __shared__ int warp_counts[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  if (lane == 0) warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = __popc(ballot & ((1u << lane) - 1u)), all = 0;
  for (int w = 0; w < kWarps; ++w) {
    before += w < warp ? warp_counts[w] : 0;
    all += warp_counts[w];
  }
  *total = all;
  return before;
}

// Grid: chunks × batch; chunk_counts[b · chunks + c] = the candidates of chunk c of image b.
__global__ void count_chunks_kernel(const float* score, const float* geometry, int64_t per_image, int chunks,
                                    float threshold, int* chunk_counts) {
  const int64_t pixel = int64_t(blockIdx.x) * kChunk + threadIdx.x;
  const int64_t i = int64_t(blockIdx.y) * per_image + pixel;
  const bool flag = pixel < per_image && is_candidate(score, geometry, i, threshold);
  int total = 0;
  block_exclusive_count(flag, &total);
  if (threadIdx.x == 0) chunk_counts[int64_t(blockIdx.y) * chunks + blockIdx.x] = total;
}

// One thread per image: each chunk's count becomes the count of the chunks before it; counts[b] = the total.
__global__ void place_chunks_kernel(int* chunk_counts, int chunks, int batch, int* counts) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  int* c = chunk_counts + int64_t(b) * chunks;
  int sum = 0;
  for (int k = 0; k < chunks; ++k) {
    const int here = c[k];
    c[k] = sum;
    sum += here;
  }
  counts[b] = sum;
}

__global__ void write_candidates_kernel(const float* score, const float* geometry, int width, int64_t per_image,
                                        int chunks, float threshold, const int* chunk_places, EastCandidate* out) {
  const int64_t pixel = int64_t(blockIdx.x) * kChunk + threadIdx.x;
  const int64_t i = int64_t(blockIdx.y) * per_image + pixel;
  const bool flag = pixel < per_image && is_candidate(score, geometry, i, threshold);
  int total = 0;
  const int before = block_exclusive_count(flag, &total);
  if (!flag) return;
  const float* g = geometry + i * 5;
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
  q.score = score[i];
  q.pixel = static_cast<int>(pixel);
  out[int64_t(blockIdx.y) * per_image + chunk_places[int64_t(blockIdx.y) * chunks + blockIdx.x] + before] = q;
}

}  // namespace

int east_candidate_chunks(int height, int width) { return static_cast<int>((int64_t(height) * width + kChunk - 1) / kChunk); }

void launch_east_candidates(const float* score, const float* geometry, int batch, int height, int width,
                            float threshold, EastCandidate* out, int* counts, int* chunk_counts, cudaStream_t stream) {
  const int64_t per_image = int64_t(height) * width;
  if (batch == 0) return;
  if (per_image == 0) {
    EASTRT_CUDA(cudaMemsetAsync(counts, 0, sizeof(int) * batch, stream));
    return;
  }
  const int chunks = east_candidate_chunks(height, width);
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(batch));
  count_chunks_kernel<<<grid, kChunk, 0, stream>>>(score, geometry, per_image, chunks, threshold, chunk_counts);
  EASTRT_LAUNCHED("count_chunks_kernel");
  place_chunks_kernel<<<(batch + 31) / 32, 32, 0, stream>>>(chunk_counts, chunks, batch, counts);
  EASTRT_LAUNCHED("place_chunks_kernel");
  write_candidates_kernel<<<grid, kChunk, 0, stream>>>(score, geometry, width, per_image, chunks, threshold,
                                                       chunk_counts, out);
  EASTRT_LAUNCHED("write_candidates_kernel");
}

}  // namespace eastrt::cuda
