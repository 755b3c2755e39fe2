// The host side of the GPU decode (east_decode.cu): device room for the candidates of a batch, pinned staging,
// and the two copies back (the counts, then only that many candidates), sorted into row order.
#pragma once
#include <vector>

#include "cuda/engine_impl.h"
#include "eastrt/detector_ops.h"

namespace eastrt::gpu {

class CandidateDecoder {
 public:
  // Decodes the device maps (float32 [batch, height, width, 1] and [.., 5]) on `stream`, synchronises it, and
  // returns each image's candidates in row order, as decode_quads gives them.
  std::vector<std::vector<east::Quad>> decode(const float* score, const float* geometry, int batch, int height,
                                              int width, float threshold, cudaStream_t stream);

 private:
  DeviceBuffer candidates_, counts_;
  PinnedBuffer host_candidates_, host_counts_;
};

}  // namespace eastrt::gpu
