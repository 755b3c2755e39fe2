// The GPU decode's host side: buffers, the copies back, row order restored; and the maps-in-host-memory entry
// point that tests compare with decode_quads.
#ifdef EASTRT_HAVE_CUDA
#include "cuda/east_candidates.h"

#include <algorithm>

#include "eastrt/error.h"
#include "eastrt/gpu_engine.h"

namespace eastrt::gpu {

std::vector<std::vector<east::Quad>> CandidateDecoder::decode(const float* score, const float* geometry, int batch,
                                                              int height, int width, float threshold,
                                                              cudaStream_t stream) {
  EASTRT_CHECK(batch >= 1 && height >= 1 && width >= 1, "GPU decode: maps of ", batch, "x", height, "x", width);
  const size_t per_image = static_cast<size_t>(height) * width;
  const size_t room = per_image * batch * sizeof(cuda::EastCandidate);
  if (candidates_.size() < room) {
    EASTRT_CUDA(cudaStreamSynchronize(stream));  // a previous decode may still read the old buffer
    candidates_.allocate(room);
  }
  if (counts_.size() < batch * sizeof(int)) {
    EASTRT_CUDA(cudaStreamSynchronize(stream));
    counts_.allocate(batch * sizeof(int));
    host_counts_.allocate(batch * sizeof(int));
  }
  auto* device = candidates_.as<cuda::EastCandidate>();
  cuda::launch_east_candidates(score, geometry, batch, height, width, threshold, device, counts_.as<int>(), stream);
  EASTRT_CUDA(cudaMemcpyAsync(host_counts_.get(), counts_.get(), batch * sizeof(int), cudaMemcpyDeviceToHost, stream));
  EASTRT_CUDA(cudaStreamSynchronize(stream));
  const int* counts = host_counts_.as<int>();
  size_t total = 0;
  for (int b = 0; b < batch; ++b) total += static_cast<size_t>(counts[b]);
  if (host_candidates_.size() < std::max<size_t>(total, 1) * sizeof(cuda::EastCandidate))
    host_candidates_.allocate(std::max<size_t>(total, 1) * sizeof(cuda::EastCandidate));
  auto* host = host_candidates_.as<cuda::EastCandidate>();
  std::vector<size_t> first(batch);
  for (int b = 0, at = 0; b < batch; at += counts[b], ++b) {
    first[b] = static_cast<size_t>(at);
    if (counts[b] > 0)
      EASTRT_CUDA(cudaMemcpyAsync(host + at, device + b * per_image, counts[b] * sizeof(cuda::EastCandidate),
                                  cudaMemcpyDeviceToHost, stream));
  }
  EASTRT_CUDA(cudaStreamSynchronize(stream));
  std::vector<std::vector<east::Quad>> quads(batch);
  for (int b = 0; b < batch; ++b) {
    // The atomic counter hands out places in no particular order; LANMS walks the quads in row order.
    cuda::EastCandidate* begin = host + first[b];
    std::sort(begin, begin + counts[b],
              [](const cuda::EastCandidate& a, const cuda::EastCandidate& c) { return a.pixel < c.pixel; });
    quads[b].resize(static_cast<size_t>(counts[b]));
    for (int i = 0; i < counts[b]; ++i) {
      east::Quad& q = quads[b][i];
      for (int v = 0; v < 4; ++v) q.points[v] = {begin[i].x[v], begin[i].y[v]};
      q.score = begin[i].score;
    }
  }
  return quads;
}

}  // namespace eastrt::gpu

namespace eastrt {

std::vector<std::vector<east::Quad>> decode_candidates_on_gpu(const HostTensor& score, const HostTensor& geometry,
                                                              float threshold) {
  EASTRT_CHECK(score.shape.size() == 4 && score.shape[3] == 1 && geometry.shape.size() == 4 && geometry.shape[3] == 5 &&
                   score.shape[0] == geometry.shape[0] && score.shape[1] == geometry.shape[1] &&
                   score.shape[2] == geometry.shape[2] && score.size() == volume(score.shape) &&
                   geometry.size() == volume(geometry.shape),
               "decode_candidates_on_gpu: maps ", to_string(score.shape), " and ", to_string(geometry.shape),
               " are not [n, h, w, 1] and [n, h, w, 5]");
  gpu::DeviceBuffer s, g;
  s.allocate(std::max<size_t>(score.data.size() * sizeof(float), 4));
  g.allocate(std::max<size_t>(geometry.data.size() * sizeof(float), 4));
  EASTRT_CUDA(cudaMemcpy(s.get(), score.data.data(), score.data.size() * sizeof(float), cudaMemcpyHostToDevice));
  EASTRT_CUDA(cudaMemcpy(g.get(), geometry.data.data(), geometry.data.size() * sizeof(float), cudaMemcpyHostToDevice));
  gpu::CandidateDecoder decoder;
  return decoder.decode(s.as<float>(), g.as<float>(), static_cast<int>(score.shape[0]), static_cast<int>(score.shape[1]),
                        static_cast<int>(score.shape[2]), threshold, nullptr);
}

}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
