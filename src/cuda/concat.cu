// The concatenation family: each input copied into its block of the output (a channel slice for NHWC
// channel concatenations). Inputs written in place by their producer (views) are never copied.
#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

template <typename In, typename Out>
__global__ void concat_copy_kernel(const In* x, Out* y, int64_t outer, int64_t inner, int64_t out_inner,
                                   int64_t offset) {
  const int64_t count = outer * inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t block = i / inner, j = i % inner;
    store(y, block * out_inner + offset + j, load(x, i));
  }
}

}  // namespace

void launch_concat_copy(const void* x, DType xt, void* y, DType yt, int64_t outer, int64_t inner, int64_t out_inner,
                        int64_t offset, cudaStream_t stream) {
  const int64_t count = outer * inner;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    concat_copy_kernel<<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), outer,
                                                                 inner, out_inner, offset);
  });
  EASTRT_LAUNCHED("concat_copy_kernel");
}

}  // namespace eastrt::cuda
