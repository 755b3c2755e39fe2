// Locality-aware NMS as the GPU runs it (the rules in lanms_rules.h), on the host: the reference the
// kernels of lanms.cu are tested against, and the standard-NMS step for an image whose merged quads are
// more than one block of the NMS kernel sorts (kLanmsBlockQuads). Needs no GPU.
#pragma once
#include <vector>

#include "cuda/lanms_rules.h"
#include "eastrt/detector_ops.h"

namespace eastrt::gpu {

// The most merged quads of one image the NMS kernel sorts in shared memory; more go to standard_nms_as_on_gpu.
inline constexpr int kLanmsBlockQuads = 4096;

// locality_aware_nms with lanms_rules.h's IoU and tie order: candidates in row order in, kept quads by
// decreasing score out.
std::vector<east::Quad> lanms_as_on_gpu(const std::vector<east::Quad>& candidates, float threshold);

// The second step alone, on n merged quads.
std::vector<east::Quad> standard_nms_as_on_gpu(const lanms::FixedQuad* merged, int n, float threshold);

east::Quad to_quad(const lanms::FixedQuad& q);

}  // namespace eastrt::gpu
