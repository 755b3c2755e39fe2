// The reference kernel of every layer kind: short, single-threaded, obviously right. Every fast CPU path
// and every GPU kernel is tested against these. Activations are N,H,W,C row-major HostTensors.
#pragma once
#include <vector>

#include "eastrt/network.h"

namespace eastrt::cpu::naive {

// Each kernel computes its own output shape from its inputs and parameters and throws an Error when
// they do not fit (a wrong weight shape, a window larger than the padded input, ...).
// The fused epilogue (ConvolutionParams::activation, and `residual` as the layer's optional second input):
// y = activation(conv(x) + bias + residual).
HostTensor convolution(const HostTensor& input, const ConvolutionParams& params,
                       const HostTensor* residual = nullptr);
HostTensor deconvolution(const HostTensor& input, const DeconvolutionParams& params);
HostTensor scale(const HostTensor& input, const ScaleParams& params);
HostTensor pooling(const HostTensor& input, const PoolingParams& params);
HostTensor activation(const HostTensor& input, const ActivationParams& params);
HostTensor elementwise(const HostTensor& a, const HostTensor& b, ElementWiseOp op);
HostTensor unary(const HostTensor& input, UnaryOp op);
HostTensor concatenation(const std::vector<const HostTensor*>& inputs, int axis);
HostTensor resize(const HostTensor& input, const ResizeParams& params);
HostTensor slice(const HostTensor& input, const SliceParams& params);
HostTensor shuffle(const HostTensor& input, const ShuffleParams& params);
HostTensor constant(const ConstantParams& params);
HostTensor reduce(const HostTensor& input, const ReduceParams& params);

// Scalar rules shared with the fast kernels, so both compute bit-identical values where they can.
float apply_activation(const ActivationParams& params, float x);
float apply_elementwise(ElementWiseOp op, float a, float b);
float apply_unary(UnaryOp op, float x);
Shape broadcast_shapes(const Shape& a, const Shape& b);  // numpy rules; throws an Error on mismatch

// The source coordinate of output index `dst` when resizing `in_size` to `out_size` (TensorFlow's
// arithmetic: a float scale in/out, then src = dst·scale, (dst+0.5)·scale−0.5 clamped at 0, or
// dst·(in−1)/(out−1)); and the nearest-neighbour source index under each rule.
float resize_source(ResizeCoordinates coordinates, int64_t dst, int64_t in_size, int64_t out_size);
int64_t resize_nearest_index(ResizeCoordinates coordinates, int64_t dst, int64_t in_size, int64_t out_size);

// Runs one layer of any kind on its inputs (in the layer's order); returns its outputs.
std::vector<HostTensor> run_layer(const Layer& layer, const std::vector<const HostTensor*>& inputs);

}  // namespace eastrt::cpu::naive
