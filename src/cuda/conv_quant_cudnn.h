// The quantised convolution of conv_quant.h (the same arguments and arithmetic) through cuDNN's graph API:
// INT8 x INT8 summed in INT32, or E4M3 x E4M3 summed in float32, then the epilogue as pointwise operations on
// float32 intermediates,
//   v = act(acc · scale[k] + bias[k] + residual),   written as codes of v · (1 / out_scale) or as FP16/FP32,
// so that cuDNN's 8-bit engines are one more tactic beside our kernel's variants. Each step is rounded once
// (the product and the bias separately, where our kernel fuses them), so a code may differ from the
// kernel's by one step near a rounding boundary. Dense outputs only (no channel slice). C++17.
#pragma once
#include <cudnn.h>

#include <string>
#include <vector>

#include "cuda/conv_cudnn_graph.h"
#include "cuda/conv_quant.h"

namespace eastrt::cuda {

// Whether eastrt runs these arguments through cuDNN: INT8 input (cuDNN's E4M3 engine sums in less than
// FP32's precision: on the H200 about one code in a thousand off by a step against exact sums, as Hopper's
// wgmma E4M3 products in our kernel, so E4M3 stays on the kernel's mma.sync variants), a dense output, ReLU
// or no activation. Otherwise false with the reason in `*why`.
bool cudnn_quant_conv_applies(const QuantConvArgs& args, const char** why = nullptr);

class CudnnQuantConvolution {
 public:
  // Describes and finalises the graph of `args` with a bias and a residual as said (the arguments' pointers
  // are not looked at: they are given to run()): shapes, types, the activation and the scalars
  // (residual_scale, out_scale), which the graph reads from a small device buffer it owns. Throws an Error
  // when the arguments are not what the graph describes (a channel slice, an activation other than ReLU) or
  // cuDNN refuses the graph.
  CudnnQuantConvolution(cudnnHandle_t handle, const QuantConvArgs& args, bool bias, bool residual);
  ~CudnnQuantConvolution();
  CudnnQuantConvolution(const CudnnQuantConvolution&) = delete;
  CudnnQuantConvolution& operator=(const CudnnQuantConvolution&) = delete;

  // The configurations to try (graph_engine_configs).
  std::vector<GraphEngineConfig> candidate_configs(std::string* why);
  // A plan of `config`, or -1 with the reason: cuDNN refuses it, or it is nondeterministic, or sums in
  // reduced precision, or (unless allowed) compiles its kernels at run time.
  int add_plan(const GraphEngineConfig& config, bool allow_run_time_compilation, std::string* why);
  size_t workspace_size(int plan) const;
  // Runs plan `plan` on the handle's stream with the tensors of `args` (of the shape and types described;
  // a null bias or residual the graph has is refused).
  cudnnStatus_t run(int plan, const QuantConvArgs& args, void* workspace, size_t workspace_bytes);

 private:
  cudnnHandle_t handle_;
  QuantConvArgs shape_;
  bool bias_, residual_;
  float* scalars_ = nullptr;  // device: residual_scale, 1 / out_scale, −127
  std::vector<BackendDescriptor> parts_;  // tensors, operations and (last) the finalised operation graph
  std::vector<GraphPlan> plans_;
};

}  // namespace eastrt::cuda
