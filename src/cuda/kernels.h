// The GPU engine's own kernels, one launcher per operation, type-erased (float32 or float16 storage on
// each side, computed in float32). Implemented one family per file: elementwise.cu, pooling.cu, resize.cu,
// concat.cu, deconvolution.cu, preprocess.cu, the convolutions of our own (conv_direct.cu, conv_tensor_core.cu,
// conv_max_pool.cu) and the convolution helpers in conv_cudnn.cu and space_to_depth.cu. C++17 (nvcc compiles the users).
// Every launcher checks its launch; every tensor is NHWC or flat and dense unless a stride says otherwise.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace eastrt::cuda {

enum class DType : int { kF32 = 0, kF16 = 1 };
inline size_t dtype_size(DType type) { return type == DType::kF16 ? 2 : 4; }

// An activation as ActivationType numbers it (ReLU 0, Sigmoid 1, Tanh 2, Clip 3, HardSigmoid 4,
// HardSwish 5, LeakyReLU 6); -1 for none.
struct Activation {
  int type = -1;
  float alpha = 0, beta = 0;
};

// ---- elementwise.cu ----

// y = (x · scale + shift) ^ power over the last dimension of `channels`; a null pointer is 1, 0, 1; each
// value array holds `channels` values when its flag says per channel, else one.
struct ScaleArgs {
  const float* scale = nullptr;
  const float* shift = nullptr;
  const float* power = nullptr;
  bool scale_per_channel = false, shift_per_channel = false, power_per_channel = false;
};
void launch_scale(const void* x, DType xt, void* y, DType yt, int64_t count, int64_t channels, const ScaleArgs& args,
                  cudaStream_t stream);
void launch_activation(const void* x, DType xt, void* y, DType yt, int64_t count, Activation act, cudaStream_t stream);
// `op` as UnaryOp numbers it (Exp 0, Log, Sqrt, Rsqrt, Abs, Neg, Reciprocal, Floor, Ceil, Sin, Cos).
void launch_unary(const void* x, DType xt, void* y, DType yt, int64_t count, int op, cudaStream_t stream);
void launch_cast(const void* x, DType xt, void* y, DType yt, int64_t count, cudaStream_t stream);

// Numpy broadcasting: the output's dimensions and, for each operand, its element stride along each of them
// (0 where the operand broadcasts).
inline constexpr int kMaxRank = 8;
struct Broadcast {
  int rank = 0;
  int64_t out[kMaxRank] = {};
  int64_t a_stride[kMaxRank] = {};
  int64_t b_stride[kMaxRank] = {};
};
// `op` as ElementWiseOp numbers it (Add 0, Sub, Mul, Div, Max, Min, Pow).
void launch_elementwise(const void* a, DType at, const void* b, DType bt, void* y, DType yt, const Broadcast& shape,
                        int op, cudaStream_t stream);

// The convolution epilogue after a plain cuDNN convolution, in place: y = act(y + bias[c] + residual), bias
// (of y's type, `channels` values) and residual (y's type and shape) optional.
void launch_conv_epilogue(void* y, DType type, int64_t count, int64_t channels, const void* bias, const void* residual,
                          Activation act, cudaStream_t stream);

void launch_fill(void* y, DType type, int64_t count, float value, cudaStream_t stream);
// Uniform values in [lo, hi) from a counter-based hash of (seed, index): the same on every run.
void launch_fill_random(void* y, DType type, int64_t count, uint64_t seed, float lo, float hi, cudaStream_t stream);

// ---- timing.cu ----

// Occupies the stream for about `microseconds` (one thread spinning on the global timer).
void launch_busy_wait(int microseconds, cudaStream_t stream);
// Accumulates Σ(a − b)² into sums[0] and Σb² into sums[1] (device doubles, zeroed by the caller); NaN
// anywhere makes sums[0] NaN.
void launch_difference_norms(const void* a, const void* b, DType type, int64_t count, double* sums, cudaStream_t stream);

// ---- pooling.cu ----

struct PoolArgs {
  int n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int window_h = 1, window_w = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  bool average = false, count_include_pad = false;
};
void launch_pooling(const void* x, DType xt, void* y, DType yt, const PoolArgs& args, cudaStream_t stream);

// ---- resize.cu ----

// Bilinear or nearest, with ResizeCoordinates' rules (asymmetric 0, half pixel 1, align corners 2). The
// output may be a channel slice of a wider tensor (a concatenation written in place): output pixel p,
// channel c is at p · out_channel_stride + out_channel_offset + c.
struct ResizeArgs {
  int n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  bool nearest = false;
  int coordinates = 0;
  int64_t out_channel_stride = 0, out_channel_offset = 0;
};
void launch_resize(const void* x, DType xt, void* y, DType yt, const ResizeArgs& args, cudaStream_t stream);

// ---- deconvolution.cu ----

// ONNX ConvTranspose: x [n, h, w, c] → y [n, oh, ow, k], where (oh, ow) already include the crop of the
// padding and the output padding. Filter and bias are float32 whatever the storage types (accumulation is
// float32 too): the filter as [r][s][c][k / groups] (ONNX's [c][k / groups][r][s] reordered so that
// consecutive output channels read consecutive values), the bias k values or null.
struct DeconvArgs {
  int n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0, k = 0;
  int r = 1, s = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, groups = 1;
};
void launch_deconvolution(const void* x, DType xt, const float* w, const float* bias, void* y, DType yt,
                          const DeconvArgs& args, cudaStream_t stream);

// ---- concat.cu ----

// One input of a concatenation: for each of `outer` blocks, its `inner` values go to y at
// block · out_inner + offset.
void launch_concat_copy(const void* x, DType xt, void* y, DType yt, int64_t outer, int64_t inner, int64_t out_inner,
                        int64_t offset, cudaStream_t stream);

// ---- preprocess.cu ----

// The taps of cv2.resize(INTER_LINEAR) on 8-bit images, as src/east/preprocess.cpp computes them: for each
// output column (x0, x1, w0, w1), then for each output row (y0, y1, w0, w1), weights in 1/2048.
std::vector<int> linear_resize_taps(int src_height, int src_width, int dst_height, int dst_width);
// One pass: 8-bit HWC RGB (device) → float NHWC image of dst_height × dst_width × 3 at `dst` (device).
void launch_preprocess(const uint8_t* rgb, int src_height, int src_width, const int* taps, float* dst, int dst_height,
                       int dst_width, cudaStream_t stream);

// ---- east_decode.cu ----

// One candidate quad of EAST's decode: its vertices (restore_rbox's order), its pixel's score, and the pixel
// (y · width + x) it came from.
struct EastCandidate {
  float x[4], y[4];
  float score;
  int pixel;
};
// The chunks of pixels the decode counts candidates in, per image: the room launch_east_candidates needs
// in chunk_counts is batch times this.
int east_candidate_chunks(int height, int width);
// score [batch, height, width, 1] and geometry [batch, height, width, 5] (device, float32): the candidates of
// image b go to out[b · height · width ...] (room for every pixel) in row order, counts[b] of them.
void launch_east_candidates(const float* score, const float* geometry, int batch, int height, int width,
                            float threshold, EastCandidate* out, int* counts, int* chunk_counts, cudaStream_t stream);

// ---- lanms.cu: locality-aware NMS of the decode's candidates, by the rules of lanms_rules.h ----

// A kept quad: vertices and score, as the CPU's LANMS returns them.
struct EastBox {
  float x[4], y[4];
  float score;
};
// For each image b: its counts[b] candidates (at candidates + b · per_image, row order) merged into
// merged + b · per_image (room for per_image FixedQuads of 72 bytes; merged_counts[b] of them), then
// standard NMS into boxes + b · block_quads by decreasing score, box_counts[b] of them; or, when more than
// block_quads quads were merged, box_counts[b] = -1 and the merged quads are left for the host's NMS.
void launch_east_lanms(const EastCandidate* candidates, const int* counts, int batch, int64_t per_image,
                       float threshold, void* merged, int* merged_counts, EastBox* boxes, int block_quads,
                       int* box_counts, cudaStream_t stream);

// ---- conv_direct.cu ----

// A convolution for few input channels read unpadded (x of either type, any padding decided per tap),
// with bias (k values or null), residual (y's shape, or null) and the activation after them. The filter is
// KRSC in y's type with filter_c ≥ c channels per tap (the ones past c, zero padding, are not read). Also
// depthwise (groups = c = k, any c): one channel per tap, filter_c = 1, one output channel per thread.
struct DirectConvArgs {
  int n = 0, h = 0, w = 0, c = 0;
  int k = 0, r = 1, s = 1, filter_c = 0, groups = 1;
  int oh = 0, ow = 0;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1, pad_top = 0, pad_left = 0;
};
constexpr int kDirectConvMaxChannels = 4;
// Whether the direct convolution takes this shape (its filters must fit in one block's shared memory).
bool direct_conv_fits(int c, int k, int r, int s, int groups);
void launch_direct_conv(const void* x, DType xt, const void* filter, const void* bias, const void* residual, void* y,
                        DType type, const DirectConvArgs& args, Activation act, cudaStream_t stream);

// The direct tactic's pointwise variant: a 1x1 stride-1 unpadded convolution into 1-8 outputs, x of either
// type with a multiple of one 16-byte pack of channels (8 FP16 or 4 float, at most 512), 16-byte aligned;
// the filter [k][filter_c], bias, residual and activation as launch_direct_conv takes them.
constexpr int kPointwiseMaxOutputs = 8, kPointwiseMaxChannels = 512;
bool pointwise_conv_fits(const DirectConvArgs& a, DType xt);
void launch_pointwise_conv(const void* x, DType xt, const void* filter, const void* bias, const void* residual, void* y,
                           DType type, const DirectConvArgs& a, Activation act, cudaStream_t stream);

// ---- conv_tensor_core.cu ----

// The direct tactic on tensor cores: a 3x3 stride-1 convolution, FP16 in and out, of 32 input channels
// (the filter KRSC with filter_c = 32) into a multiple of 32, read unpadded with leading padding 0-2 (the
// rest follows from oh and ow), with bias, residual and activation as launch_direct_conv takes them.
bool tensor_core_conv_fits(const DirectConvArgs& a, DType xt, DType yt);
void launch_tensor_core_conv(const void* x, const void* filter, const void* bias, const void* residual, void* y,
                             const DirectConvArgs& a, Activation act, cudaStream_t stream);

// ---- conv_tensor_core_wgmma.cu (sm_90a) ----

// The same convolution into exactly 32 filters on wgmma, for compute capability 9.0 alone (the launcher
// refuses any other GPU), with x and the filter 16-byte aligned.
bool tensor_core_wgmma_conv_fits(const DirectConvArgs& a, DType xt, DType yt);
void launch_tensor_core_wgmma_conv(const void* x, const void* filter, const void* bias, const void* residual, void* y,
                                   const DirectConvArgs& a, Activation act, cudaStream_t stream);

// ---- conv_cudnn.cu ----

// Copies x [n, h, w, c] into y [n, oh, ow, oc] at row `top`, column `left`, channel 0, zero elsewhere: the
// part of an asymmetric padding cuDNN cannot express, and FP16 channels rounded up to a multiple of 8 (the
// tensor-core kernels' granularity). Converts xt to yt on the way, so that a convolution on a float32
// tensor in FP16 needs this one pass and no cast before it.
void launch_pad(const void* x, DType xt, void* y, DType yt, int n, int h, int w, int c, int top, int left, int oh,
                int ow, int oc, cudaStream_t stream);

// ---- space_to_depth.cu ----

// y [n, oh, ow, oc] = the 2x2 space-to-depth of x [n, h, w, c] padded by `top` and `left` (zeros elsewhere,
// and in channels 4c..oc): y[n, i, j, (py*2 + px)*c + ch] = x[n, 2i+py-top, 2j+px-left, ch] + shift[ch]
// (c float32 values, or null for none), the padding zeros left as they are.
void launch_space_to_depth(const void* x, DType xt, const float* shift, void* y, DType yt, int n, int h, int w, int c,
                           int top, int left, int oh, int ow, int oc, cudaStream_t stream);

// ---- conv_max_pool.cu ----

// A convolution and the max-pool after it in one pass, FP16 (EAST's conv1 and pool1): the 7x7 or 8x8 stride-2
// convolution of x [n, h, w, c] (float32 or FP16, c 3 or 4, plus `shift` per channel, or null) with
// `conv_top`/`conv_left` leading padding into oh x ow outputs, as the 4x4 stride-1 one of its space-to-depth
// X' (space_to_depth.h; the kernel builds X' in shared memory) with 64 filters (KRSC, [64][4][4][16]), plus
// the bias (64 values, or null) and ReLU if `relu`, max-pooled 3x3 / 2 with `pool_top` and `pool_left`
// padding (the rest clipped to the oh x ow output) into y [n, ph, pw, 64]. `short_last_row`: the original
// filter is 7 rows high, so the last tap row's X' channels 8-15 have zero weights and are skipped. The
// shapes it takes: conv_max_pool_fits (conv_max_pool.h).
struct ConvMaxPoolArgs {
  int n = 0, h = 0, w = 0, c = 0;
  int conv_top = 0, conv_left = 0, oh = 0, ow = 0;
  int pool_top = 0, pool_left = 0, ph = 0, pw = 0;
  bool relu = false;
};
void launch_conv_max_pool(const void* x, DType xt, const float* shift, const void* filter, const void* bias, void* y,
                          const ConvMaxPoolArgs& a, bool short_last_row, cudaStream_t stream);
// The same on Hopper's wgmma (conv_max_pool_wgmma.cu, sm_90a alone: throws on any other GPU), the filter's
// last tap row taken whole (a 7-row filter's zeros there multiply too). The builder times both on
// compute capability 9.0 (kConvMaxPoolWgmma, conv_max_pool.h).
void launch_conv_max_pool_wgmma(const void* x, DType xt, const float* shift, const void* filter, const void* bias,
                                void* y, const ConvMaxPoolArgs& a, cudaStream_t stream);

}  // namespace eastrt::cuda
