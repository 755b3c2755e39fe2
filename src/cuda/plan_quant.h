// A plan's INT8/FP8 convolution step as the 8-bit kernel sees it (conv_quant.h): its arguments from the
// plan's shapes, types and scales, and whether the kernel takes it. Host code; needs the CUDA headers.
#pragma once
#include "cuda/conv_quant.h"
#include "cuda/plan.h"

namespace eastrt::gpu {

cuda::QType qtype(StorageType type);

// The arguments of quantised convolution step `step` at `batch`: geometry, element types, the output's and
// the residual's scales, the activation. The pointers (x, filter, scale, bias, residual, y) are left null.
cuda::QuantConvArgs quant_conv_args(const PlanData& plan, const PlanStep& step, int batch);

// Why the 8-bit kernel cannot run the convolution step (a grouped or dilated convolution, which its
// arguments cannot say, or quant_conv_supports' reason), or empty when it can.
std::string quant_conv_refusal(const PlanData& plan, const PlanStep& step);

}  // namespace eastrt::gpu
