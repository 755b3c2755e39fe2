// The GPU decode's and LANMS's host side: buffers and the copies back; and the maps-in-host-memory entry
// points that tests compare with decode_quads and the host LANMS.
#ifdef EASTRT_HAVE_CUDA
#include "cuda/east_candidates.h"

#include <algorithm>

#include "cuda/lanms.h"
#include "eastrt/error.h"
#include "eastrt/gpu_engine.h"

namespace eastrt::gpu {

template <typename Buffer>
void CandidateDecoder::reserve(Buffer& buffer, size_t bytes, cudaStream_t stream) {
  if (buffer.size() >= bytes) return;
  EASTRT_CUDA(cudaStreamSynchronize(stream));  // a previous decode may still use the old buffer
  buffer.allocate(bytes);
}

std::vector<std::vector<east::Quad>> CandidateDecoder::decode(const float* score, const float* geometry, int batch,
                                                              int height, int width, float threshold,
                                                              std::optional<float> nms_threshold, cudaStream_t stream) {
  EASTRT_CHECK(batch >= 1 && height >= 1 && width >= 1, "GPU decode: maps of ", batch, "x", height, "x", width);
  const int64_t per_image = int64_t(height) * width;
  reserve(candidates_, per_image * batch * sizeof(cuda::EastCandidate), stream);
  reserve(counts_, 3 * batch * sizeof(int), stream);  // candidates, merged quads, kept boxes
  reserve(host_counts_, 3 * batch * sizeof(int), stream);
  reserve(chunk_counts_, static_cast<size_t>(cuda::east_candidate_chunks(height, width)) * batch * sizeof(int), stream);
  auto* device = candidates_.as<cuda::EastCandidate>();
  int* counts = counts_.as<int>();
  cuda::launch_east_candidates(score, geometry, batch, height, width, threshold, device, counts, chunk_counts_.as<int>(),
                               stream);
  if (nms_threshold) {
    reserve(merged_, per_image * batch * sizeof(lanms::FixedQuad), stream);
    reserve(boxes_, static_cast<size_t>(kLanmsBlockQuads) * batch * sizeof(cuda::EastBox), stream);
    cuda::launch_east_lanms(device, counts, batch, per_image, *nms_threshold, merged_.get(), counts + batch,
                            boxes_.as<cuda::EastBox>(), kLanmsBlockQuads, counts + 2 * batch, stream);
  }
  EASTRT_CUDA(cudaMemcpyAsync(host_counts_.get(), counts, 3 * batch * sizeof(int), cudaMemcpyDeviceToHost, stream));
  EASTRT_CUDA(cudaStreamSynchronize(stream));
  const int* found = host_counts_.as<int>();
  std::vector<std::vector<east::Quad>> quads(batch);

  if (!nms_threshold) {
    size_t total = 0;
    for (int b = 0; b < batch; ++b) total += static_cast<size_t>(found[b]);
    reserve(host_candidates_, std::max<size_t>(total, 1) * sizeof(cuda::EastCandidate), stream);
    auto* host = host_candidates_.as<cuda::EastCandidate>();
    for (int b = 0, at = 0; b < batch; at += found[b], ++b)
      if (found[b] > 0)
        EASTRT_CUDA(cudaMemcpyAsync(host + at, device + b * per_image, found[b] * sizeof(cuda::EastCandidate),
                                    cudaMemcpyDeviceToHost, stream));
    EASTRT_CUDA(cudaStreamSynchronize(stream));
    for (int b = 0, at = 0; b < batch; at += found[b], ++b)
      for (int i = 0; i < found[b]; ++i) {
        east::Quad q;
        for (int v = 0; v < 4; ++v) q.points[v] = {host[at + i].x[v], host[at + i].y[v]};
        q.score = host[at + i].score;
        quads[b].push_back(q);
      }
    return quads;
  }

  // The kept boxes of each image; where the NMS kernel left an image's merged quads (too many for one
  // block), the merged quads, for the same NMS on the host.
  const int* merged = found + batch;
  const int* kept = found + 2 * batch;
  reserve(host_boxes_, static_cast<size_t>(kLanmsBlockQuads) * batch * sizeof(cuda::EastBox), stream);
  auto* boxes = host_boxes_.as<cuda::EastBox>();
  std::vector<std::vector<lanms::FixedQuad>> left(batch);
  for (int b = 0; b < batch; ++b) {
    if (kept[b] > 0)
      EASTRT_CUDA(cudaMemcpyAsync(boxes + int64_t(b) * kLanmsBlockQuads, boxes_.as<cuda::EastBox>() + int64_t(b) * kLanmsBlockQuads,
                                  kept[b] * sizeof(cuda::EastBox), cudaMemcpyDeviceToHost, stream));
    if (kept[b] < 0) {
      left[b].resize(static_cast<size_t>(merged[b]));
      EASTRT_CUDA(cudaMemcpyAsync(left[b].data(), merged_.as<lanms::FixedQuad>() + b * per_image,
                                  merged[b] * sizeof(lanms::FixedQuad), cudaMemcpyDeviceToHost, stream));
    }
  }
  EASTRT_CUDA(cudaStreamSynchronize(stream));
  for (int b = 0; b < batch; ++b) {
    if (kept[b] < 0) {
      quads[b] = standard_nms_as_on_gpu(left[b].data(), merged[b], *nms_threshold);
      continue;
    }
    for (int i = 0; i < kept[b]; ++i) {
      const cuda::EastBox& box = boxes[int64_t(b) * kLanmsBlockQuads + i];
      east::Quad q;
      for (int v = 0; v < 4; ++v) q.points[v] = {box.x[v], box.y[v]};
      q.score = box.score;
      quads[b].push_back(q);
    }
  }
  return quads;
}

}  // namespace eastrt::gpu

namespace eastrt {
namespace {

std::vector<std::vector<east::Quad>> decode_on_gpu(const HostTensor& score, const HostTensor& geometry, float threshold,
                                                   std::optional<float> nms_threshold, const char* what) {
  EASTRT_CHECK(score.shape.size() == 4 && score.shape[3] == 1 && geometry.shape.size() == 4 && geometry.shape[3] == 5 &&
                   score.shape[0] == geometry.shape[0] && score.shape[1] == geometry.shape[1] &&
                   score.shape[2] == geometry.shape[2] && score.size() == volume(score.shape) &&
                   geometry.size() == volume(geometry.shape),
               what, ": maps ", to_string(score.shape), " and ", to_string(geometry.shape),
               " are not [n, h, w, 1] and [n, h, w, 5]");
  gpu::DeviceBuffer s, g;
  s.allocate(std::max<size_t>(score.data.size() * sizeof(float), 4));
  g.allocate(std::max<size_t>(geometry.data.size() * sizeof(float), 4));
  EASTRT_CUDA(cudaMemcpy(s.get(), score.data.data(), score.data.size() * sizeof(float), cudaMemcpyHostToDevice));
  EASTRT_CUDA(cudaMemcpy(g.get(), geometry.data.data(), geometry.data.size() * sizeof(float), cudaMemcpyHostToDevice));
  gpu::CandidateDecoder decoder;
  return decoder.decode(s.as<float>(), g.as<float>(), static_cast<int>(score.shape[0]), static_cast<int>(score.shape[1]),
                        static_cast<int>(score.shape[2]), threshold, nms_threshold, nullptr);
}

}  // namespace

std::vector<std::vector<east::Quad>> decode_candidates_on_gpu(const HostTensor& score, const HostTensor& geometry,
                                                              float threshold) {
  return decode_on_gpu(score, geometry, threshold, std::nullopt, "decode_candidates_on_gpu");
}

std::vector<std::vector<east::Quad>> decode_boxes_on_gpu(const HostTensor& score, const HostTensor& geometry,
                                                         float threshold, float nms_threshold) {
  return decode_on_gpu(score, geometry, threshold, nms_threshold, "decode_boxes_on_gpu");
}

}  // namespace eastrt
#endif  // EASTRT_HAVE_CUDA
