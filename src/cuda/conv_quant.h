// The INT8 and FP8 (E4M3) convolution of quantised engines (issue 7, docs/QUANTIZATION.md): an implicit
// GEMM on the tensor cores with 8-bit NHWC input and 8-bit KRSC weights, INT32 (INT8) or FP32 (E4M3)
// accumulation, and the whole epilogue in the same pass:
//   v = act(acc · scale[k] + bias[k] + residual),   scale[k] = s_x · s_w[k],
// written as 8-bit codes of v / out_scale (saturated, round to nearest even) or as FP16/FP32 — so that
// quantised tensors flow between quantised layers without a round trip through FP16.
// Also the quantise / dequantise passes where a high-precision layer meets a quantised one.
// C++17 (nvcc compiles the users).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels.h"

namespace eastrt::cuda {

// The element types around a quantised convolution.
enum class QType : int {
  kInt8 = 0,  // symmetric INT8, codes −127..127
  kE4m3 = 1,  // OCP FP8 E4M3 (e4m3fn), saturating to ±448
  kF16 = 2,
  kF32 = 3,
};
inline bool is_8bit(QType type) { return type == QType::kInt8 || type == QType::kE4m3; }
inline size_t qtype_size(QType type) { return type == QType::kF32 ? 4 : type == QType::kF16 ? 2 : 1; }

struct QuantConvArgs {
  // Input x [n, h, w, c], dense NHWC, in `in_type` (kInt8 or kE4m3); the filter is [k, r, s, c] (KRSC) in the
  // same type.
  int n = 0, h = 0, w = 0, c = 0;
  int k = 0, r = 1, s = 1;
  // Output [n, oh, ow, k]; padding top/left as given, bottom/right whatever oh/ow imply (zeros outside x).
  int oh = 0, ow = 0;
  int stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  QType in_type = QType::kInt8;

  const void* x = nullptr;
  const void* filter = nullptr;
  const float* scale = nullptr;  // k values: s_x · s_w[k]
  const float* bias = nullptr;   // k values, or null

  // Optional residual [n, oh, ow, k], dense, added before the activation: 8-bit codes times residual_scale,
  // or FP16/FP32 values (residual_scale unused).
  const void* residual = nullptr;
  QType residual_type = QType::kF16;
  float residual_scale = 1;

  Activation act;  // ReLU or none (others are refused by quant_conv_supports)

  // Output: 8-bit codes of v / out_scale, or FP16/FP32 values. Pixel (n, i, j) channel kk goes to
  // y[((n·oh + i)·ow + j)·y_pixel_stride + y_channel_offset + kk] (a slice of a wider NHWC buffer, e.g. a
  // concatenation; y_pixel_stride = k for a dense output).
  void* y = nullptr;
  QType out_type = QType::kInt8;
  float out_scale = 1;
  int y_pixel_stride = 0;  // 0 means k
  int y_channel_offset = 0;
};

// The epilogue's float arithmetic, each step rounded once (conv_quant_kernel.cuh; a CPU reference that does
// the same gets the same codes from INT8 inputs, whose accumulation is exact):
//   v = fmaf(float(acc), scale[k], bias ? bias[k] : 0);  v = v + (residual code · residual_scale, or value);
//   v = v > 0 ? v : 0 (ReLU);  8-bit output: quantize_int8 / float_to_e4m3 (saturating) of v · (1 / out_scale),
// the reciprocal rounded once: a product, not quantize_int8's quotient, so a value within an ulp of a
// rounding boundary may take the code beside the quotient's (about one in 10^7; the standalone quantise
// pass divides, as quantize.cpp does).
// Accepted (conv_quant.cu): INT8 or E4M3 input (E4M3 from compute capability 8.9), c a multiple of 16 (so
// that a pixel's channels are whole 16-byte copies), any k, any r, s, strides, paddings ≥ 0; x and the filter
// 16-byte aligned.

// Whether launch_quant_conv takes these arguments (channel counts, types, activation) on the current GPU;
// when it does not, `why` (if given) says what is refused. Without any GPU it answers for the arguments
// alone (plans lowered on the host, in tests).
bool quant_conv_supports(const QuantConvArgs& args, const char** why = nullptr);

// Tile configurations of the kernel the builder may time against each other: 0 .. quant_conv_variants() − 1.
// Some run on Hopper's wgmma (sm_90a: compute capability 9.0 alone); the generic one applies to everything
// quant_conv_supports takes.
int quant_conv_variants();
const char* quant_conv_variant_name(int variant);
int quant_conv_generic_variant();
bool quant_conv_variant_uses_wgmma(int variant);
// Whether `variant`'s kernel can run these arguments on the current GPU (the input type, wgmma): what
// launch_quant_conv requires. An engine runs its choice at every batch up to the one it was built for.
bool quant_conv_variant_runs(const QuantConvArgs& args, int variant);
// Whether `variant` is a candidate for these arguments: it runs them, and its tile is not mostly waste
// (a 128-wide tile on fewer than 65 pixels or filters is not offered).
bool quant_conv_variant_applies(const QuantConvArgs& args, int variant);

// Runs the convolution. Throws an Error when quant_conv_supports says no or the variant cannot run.
void launch_quant_conv(const QuantConvArgs& args, int variant, cudaStream_t stream);

// y = 8-bit codes of x / scale (x FP16 or FP32, `count` values, any layout).
void launch_quantize(const void* x, QType xt, void* y, QType yt, int64_t count, float scale, cudaStream_t stream);
// y = codes · scale, as FP16 or FP32.
void launch_dequantize(const void* x, QType xt, void* y, QType yt, int64_t count, float scale, cudaStream_t stream);

}  // namespace eastrt::cuda
