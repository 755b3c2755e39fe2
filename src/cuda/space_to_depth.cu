// The space-to-depth tactic's device kernel: X' of an unpadded NHWC input, the convolution's padding and
// the channel rounding done in the same pass (space_to_depth.h says what X' is).
#include <algorithm>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_math.cuh"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

// One thread per X' pixel and pack of V channels: EAST's conv1 in FP16 is 3 channels -> 12, rounded to 16,
// two 16-byte stores per pixel. kC: the input's channel count where it is known at compile time (EAST's 3:
// the per-channel divisions fold away), 0 for c at run time; Index: int where every offset fits
// (dispatch_index).
template <int V, int kC, typename Index, typename In, typename Out>
__global__ void space_to_depth_kernel(const In* x, const float* shift, Out* y, int n, int h, int w, int runtime_c,
                                      int top, int left, int oh, int ow, int oc) {
  const int c = kC > 0 ? kC : runtime_c;
  const int packs = oc / V;
  const Index count = Index(n) * oh * ow * packs;
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < count; i += Index(gridDim.x) * blockDim.x) {
    const int first = static_cast<int>(i % packs) * V;
    const Index pixel = i / packs;
    const int col = static_cast<int>(pixel % ow);
    const Index rest = pixel / ow;
    const int row = static_cast<int>(rest % oh);
    const Index image = rest / oh;
    float v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const int channel = first + j;
      const int phase = channel / c;  // py * 2 + px; 4 and above are the rounding's zeros
      const int source_row = 2 * row + phase / 2 - top, source_col = 2 * col + phase % 2 - left;
      const bool inside = phase < 4 && source_row >= 0 && source_row < h && source_col >= 0 && source_col < w;
      v[j] = inside ? load(x, ((image * h + source_row) * w + source_col) * c + channel % c) +
                          (shift ? shift[channel % c] : 0.0f)
                    : 0.0f;
    }
    store_pack<V>(y + pixel * oc + first, v);
  }
}

}  // namespace

void launch_space_to_depth(const void* x, DType xt, const float* shift, void* y, DType yt, int n, int h, int w, int c,
                           int top, int left, int oh, int ow, int oc, cudaStream_t stream) {
  const int64_t count = int64_t(n) * oh * ow * oc;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    constexpr int V = 16 / sizeof(Out);
    const bool packed = oc % V == 0 && aligned_to(y, 16);
    const auto run = [&](auto pack, auto channels, auto index) {
      constexpr int kV = decltype(pack)::value, kC = decltype(channels)::value;
      using Index = decltype(index);
      space_to_depth_kernel<kV, kC, Index><<<grid_for(count / kV), kThreads, 0, stream>>>(
          static_cast<const In*>(x), shift, static_cast<Out*>(y), n, h, w, c, top, left, oh, ow, oc);
    };
    using Three = std::integral_constant<int, 3>;
    using Any = std::integral_constant<int, 0>;
    dispatch_index(std::max(int64_t(n) * h * w * c, count), [&](auto index) {
      if (packed && c == 3)
        run(std::integral_constant<int, V>{}, Three{}, index);
      else if (packed)
        run(std::integral_constant<int, V>{}, Any{}, index);
      else
        run(std::integral_constant<int, 1>{}, Any{}, index);
    });
  });
  EASTRT_LAUNCHED("space_to_depth_kernel");
}

}  // namespace eastrt::cuda
