// The fast CPU kernels: convolution through OpenBLAS sgemm, the other hot layers multithreaded over the
// pool. Each writes into an output already shaped by shape inference (contents unspecified on entry,
// every element written) and is tested against its naive twin (cpu/naive.h).
#pragma once
#include <vector>

#include "cpu/thread_pool.h"
#include "eastrt/network.h"

namespace eastrt::cpu::fast {

// NHWC convolution: 1×1 stride-1 unpadded as one GEMM [N·H·W, C]×[C, K]; otherwise im2col in tiles of
// output rows (bounded scratch, padding and dilation resolved while gathering) followed by a GEMM per
// tile and group; depthwise (one input and one output channel per group) as a direct loop. The row tiles
// are spread over the pool, each thread running single-threaded sgemm (OpenBLAS is set to one thread),
// so exactly pool.size() threads compute.
// The fused epilogue y = activation(conv + bias + residual) is applied per tile while it is in cache;
// `residual` (the layer's optional second input) has the output's shape.
void convolution(const HostTensor& input, const ConvolutionParams& params, HostTensor& output, ThreadPool& pool,
                 const HostTensor* residual = nullptr);

void pooling(const HostTensor& input, const PoolingParams& params, HostTensor& output, ThreadPool& pool);
void resize(const HostTensor& input, const ResizeParams& params, HostTensor& output, ThreadPool& pool);
void activation(const HostTensor& input, const ActivationParams& params, HostTensor& output, ThreadPool& pool);
// The activation over count values (x == y allowed), one vectorisable loop per type; also the convolution
// epilogue's.
void activate(const ActivationParams& params, const float* x, float* y, int64_t count);
void scale(const HostTensor& input, const ScaleParams& params, HostTensor& output, ThreadPool& pool);
void unary(const HostTensor& input, UnaryOp op, HostTensor& output, ThreadPool& pool);
void concatenation(const std::vector<const HostTensor*>& inputs, int axis, HostTensor& output, ThreadPool& pool);

// Broadcasting fast paths: equal shapes, one operand a scalar, or one operand varying only along the last
// dimension of the other (a per-channel [C], [1,1,1,C], ...). Other broadcasts have no fast path.
bool has_fast_elementwise(const Shape& a, const Shape& b);
void elementwise(const HostTensor& a, const HostTensor& b, ElementWiseOp op, HostTensor& output, ThreadPool& pool);

// Whether run_layer has a fast kernel for this layer on inputs of these shapes; where not, the executor
// uses the naive kernel.
bool has_fast_kernel(const Layer& layer, const std::vector<const HostTensor*>& inputs);
void run_layer(const Layer& layer, const std::vector<const HostTensor*>& inputs,
               const std::vector<HostTensor*>& outputs, ThreadPool& pool);

}  // namespace eastrt::cpu::fast
