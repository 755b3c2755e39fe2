// The host side of the GPU decode (east_decode.cu) and the GPU's LANMS (lanms.cu): device room for a batch's
// candidates and merged quads, pinned staging, and the copies back (the counts, then only what they count).
#pragma once
#include <optional>
#include <vector>

#include "cuda/engine_impl.h"
#include "eastrt/detector_ops.h"

namespace eastrt::gpu {

class CandidateDecoder {
 public:
  // Decodes the device maps (float32 [batch, height, width, 1] and [.., 5]) on `stream`, synchronises it, and
  // returns each image's candidates in row order, as decode_quads gives them; with `nms_threshold`, what
  // locality-aware NMS at that IoU keeps of them instead, computed on the GPU (lanms.h), by decreasing score.
  std::vector<std::vector<east::Quad>> decode(const float* score, const float* geometry, int batch, int height,
                                              int width, float threshold, std::optional<float> nms_threshold,
                                              cudaStream_t stream);

 private:
  // Grows `buffer` to at least `bytes`, after the stream has finished with the old one.
  template <typename Buffer>
  static void reserve(Buffer& buffer, size_t bytes, cudaStream_t stream);

  DeviceBuffer candidates_, counts_, chunk_counts_, merged_, boxes_;
  PinnedBuffer host_candidates_, host_counts_, host_boxes_;
};

}  // namespace eastrt::gpu
