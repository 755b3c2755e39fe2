// A plan's INT8/FP8 convolution step as the 8-bit kernel sees it (see plan_quant.h).
#ifdef EASTRT_HAVE_CUDA
#include "cuda/plan_quant.h"

#include "eastrt/error.h"

namespace eastrt::gpu {

cuda::QType qtype(StorageType type) {
  switch (type) {
    case StorageType::kInt8: return cuda::QType::kInt8;
    case StorageType::kFp8: return cuda::QType::kE4m3;
    case StorageType::kFloat16: return cuda::QType::kF16;
    case StorageType::kFloat32: return cuda::QType::kF32;
  }
  throw_error("a storage type of value ", static_cast<int>(type));
}

cuda::QuantConvArgs quant_conv_args(const PlanData& plan, const PlanStep& step, int batch) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  const PlanTensor& x = plan.tensors[step.inputs[0]];
  const PlanTensor& y = plan.tensors[step.outputs[0]];
  cuda::QuantConvArgs a;
  a.n = batch;
  a.h = static_cast<int>(x.shape[1]), a.w = static_cast<int>(x.shape[2]), a.c = static_cast<int>(x.shape[3]);
  a.k = p.out_channels, a.r = p.kernel[0], a.s = p.kernel[1];
  a.oh = static_cast<int>(y.shape[1]), a.ow = static_cast<int>(y.shape[2]);
  a.stride_h = p.stride[0], a.stride_w = p.stride[1];
  a.pad_top = p.padding.top, a.pad_left = p.padding.left;
  a.in_type = qtype(x.type);
  if (step.inputs.size() > 1) {
    const PlanTensor& r = plan.tensors[step.inputs[1]];
    a.residual_type = qtype(r.type);
    a.residual_scale = is_8bit(r.type) ? r.scale : 1.0f;
  }
  if (p.activation) a.act = {static_cast<int>(p.activation->type), p.activation->alpha, p.activation->beta};
  a.out_type = qtype(y.type);
  a.out_scale = is_8bit(y.type) ? y.scale : 1.0f;
  a.y_pixel_stride = 0, a.y_channel_offset = 0;  // dense: a quantised convolution's output is never a view
  return a;
}

std::string quant_conv_refusal(const PlanData& plan, const PlanStep& step) {
  const auto& p = std::get<ConvolutionParams>(step.params);
  if (p.groups != 1) return "a grouped convolution";
  if (p.dilation[0] != 1 || p.dilation[1] != 1) return "a dilated convolution";
  if (plan.tensors[step.inputs[0]].place == TensorPlace::kView || plan.tensors[step.outputs[0]].place == TensorPlace::kView)
    return "reads or writes a channel view";
  const char* why = nullptr;
  if (cuda::quant_conv_supports(quant_conv_args(plan, step, plan.max_batch), &why)) return "";
  return why ? why : "quant_conv_supports says no";
}

}  // namespace eastrt::gpu
#endif  // EASTRT_HAVE_CUDA
