// The reference kernels (see naive.h): one loop nest per layer kind, written to be checked by eye.
// Sums of products accumulate in double so that the reference is more accurate than what it checks.
#include "cpu/naive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "eastrt/error.h"

namespace eastrt::cpu::naive {
namespace {

struct Nhwc {
  int64_t n, h, w, c;
};

Nhwc nhwc_dims(const HostTensor& t, const char* kernel) {
  EASTRT_CHECK(t.shape.size() == 4, kernel, ": expected a 4-D N,H,W,C input, got ", to_string(t.shape));
  return {t.shape[0], t.shape[1], t.shape[2], t.shape[3]};
}

int64_t nhwc_index(const Nhwc& d, int64_t n, int64_t h, int64_t w, int64_t c) {
  return ((n * d.h + h) * d.w + w) * d.c + c;
}

// Output length of a sliding window over `in` cells padded by `before` and `after`.
int64_t window_output(const char* kernel, int64_t in, int64_t window, int stride, int dilation, int before,
                      int after) {
  EASTRT_CHECK(stride >= 1 && dilation >= 1 && before >= 0 && after >= 0, kernel,
               ": stride and dilation must be >= 1 and padding >= 0");
  const int64_t extent = static_cast<int64_t>(dilation) * (window - 1) + 1;
  const int64_t padded = in + before + after;
  EASTRT_CHECK(window >= 1 && padded >= extent, kernel, ": window of ", extent, " does not fit in ", in,
               " cells padded by ", before, "+", after);
  return (padded - extent) / stride + 1;
}

// Multi-index of flat index `i` in row-major `shape`.
std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = i % shape[d];
    i /= shape[d];
  }
  return index;
}

int64_t ravel(const std::vector<int64_t>& index, const Shape& shape) {
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d) i = i * shape[d] + index[d];
  return i;
}

int normalize_axis(int axis, size_t rank, const char* kernel) {
  const int r = static_cast<int>(rank);
  EASTRT_CHECK(axis >= -r && axis < r, kernel, ": axis ", axis, " out of range for rank ", r);
  return axis < 0 ? axis + r : axis;
}

float weight_or(const Weights& w, int64_t i, float fallback) {
  if (!w) return fallback;
  return w->size() == 1 ? w->data[0] : w->data[static_cast<size_t>(i)];
}

}  // namespace

HostTensor convolution(const HostTensor& input, const ConvolutionParams& p, const HostTensor* residual) {
  const Nhwc in = nhwc_dims(input, "convolution");
  const int64_t K = p.out_channels, G = p.groups, R = p.kernel[0], S = p.kernel[1];
  EASTRT_CHECK(G >= 1 && K >= 1 && in.c % G == 0 && K % G == 0, "convolution: ", in.c, " input and ", K,
               " output channels are not divisible into ", G, " groups");
  const int64_t Cg = in.c / G, Kg = K / G;
  EASTRT_CHECK(p.kernel_weights && p.kernel_weights->shape == (Shape{K, Cg, R, S}),
               "convolution: expected KCRS weights ", to_string(Shape{K, Cg, R, S}), ", got ",
               p.kernel_weights ? to_string(p.kernel_weights->shape) : "none");
  EASTRT_CHECK(!p.bias || p.bias->size() == K, "convolution: expected ", K, " biases");
  const int64_t OH = window_output("convolution", in.h, R, p.stride[0], p.dilation[0], p.padding.top,
                                   p.padding.bottom);
  const int64_t OW = window_output("convolution", in.w, S, p.stride[1], p.dilation[1], p.padding.left,
                                   p.padding.right);
  const Nhwc out{in.n, OH, OW, K};
  // Fused epilogue: the residual has the output's shape.
  EASTRT_CHECK(!residual || residual->shape == (Shape{out.n, OH, OW, K}), "convolution: the residual input is ",
               residual ? to_string(residual->shape) : "", ", the output ", to_string(Shape{out.n, OH, OW, K}));
  HostTensor result({out.n, OH, OW, K});
  const float* w = p.kernel_weights->data.data();
  for (int64_t n = 0; n < out.n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t g = k / Kg;
          double acc = p.bias ? p.bias->data[k] : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t ih = oh * p.stride[0] - p.padding.top + r * p.dilation[0];
                const int64_t iw = ow * p.stride[1] - p.padding.left + s * p.dilation[1];
                if (ih < 0 || ih >= in.h || iw < 0 || iw >= in.w) continue;  // zero padding
                acc += static_cast<double>(input.data[nhwc_index(in, n, ih, iw, g * Cg + c)]) *
                       w[((k * Cg + c) * R + r) * S + s];
              }
          // Fused epilogue: y = activation(conv + bias + residual).
          const int64_t o = nhwc_index(out, n, oh, ow, k);
          if (residual) acc += residual->data[o];
          result.data[o] = p.activation ? apply_activation(*p.activation, static_cast<float>(acc))
                                        : static_cast<float>(acc);
        }
  return result;
}

// ConvTranspose as ONNX defines it: every input cell scatters its kernel-weighted values into the full
// output of (in−1)·stride + kernel cells; padding crops that, output_padding adds cells at the end.
HostTensor deconvolution(const HostTensor& input, const DeconvolutionParams& p) {
  const Nhwc in = nhwc_dims(input, "deconvolution");
  const int64_t K = p.out_channels, G = p.groups, R = p.kernel[0], S = p.kernel[1];
  EASTRT_CHECK(G >= 1 && K >= 1 && in.c % G == 0 && K % G == 0, "deconvolution: ", in.c, " input and ", K,
               " output channels are not divisible into ", G, " groups");
  const int64_t Cg = in.c / G, Kg = K / G;
  EASTRT_CHECK(p.kernel_weights && p.kernel_weights->shape == (Shape{in.c, Kg, R, S}),
               "deconvolution: expected CKRS weights ", to_string(Shape{in.c, Kg, R, S}), ", got ",
               p.kernel_weights ? to_string(p.kernel_weights->shape) : "none");
  EASTRT_CHECK(!p.bias || p.bias->size() == K, "deconvolution: expected ", K, " biases");
  EASTRT_CHECK(p.stride[0] >= 1 && p.stride[1] >= 1, "deconvolution: stride must be >= 1");
  const int64_t OH = (in.h - 1) * p.stride[0] + R - p.padding.top - p.padding.bottom + p.output_padding[0];
  const int64_t OW = (in.w - 1) * p.stride[1] + S - p.padding.left - p.padding.right + p.output_padding[1];
  EASTRT_CHECK(OH >= 1 && OW >= 1, "deconvolution: padding leaves an empty output");
  const Nhwc out{in.n, OH, OW, K};
  std::vector<double> acc(static_cast<size_t>(out.n * OH * OW * K), 0.0);
  const float* w = p.kernel_weights->data.data();
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t ih = 0; ih < in.h; ++ih)
      for (int64_t iw = 0; iw < in.w; ++iw)
        for (int64_t ci = 0; ci < in.c; ++ci) {
          const int64_t g = ci / Cg;
          const double x = input.data[nhwc_index(in, n, ih, iw, ci)];
          for (int64_t k = 0; k < Kg; ++k)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t oh = ih * p.stride[0] + r - p.padding.top;
                const int64_t ow = iw * p.stride[1] + s - p.padding.left;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;  // cropped away
                acc[nhwc_index(out, n, oh, ow, g * Kg + k)] += x * w[((ci * Kg + k) * R + r) * S + s];
              }
        }
  HostTensor result({out.n, OH, OW, K});
  for (size_t i = 0; i < acc.size(); ++i)
    result.data[i] = static_cast<float>(acc[i] + (p.bias ? p.bias->data[i % K] : 0.0f));
  return result;
}

HostTensor scale(const HostTensor& input, const ScaleParams& p) {
  EASTRT_CHECK(!input.shape.empty(), "scale: expected an input of rank >= 1");
  const int64_t C = input.shape.back();
  for (const Weights* w : {&p.scale, &p.shift, &p.power}) {
    const bool fits = !*w || (*w)->size() == 1 || (p.mode == ScaleMode::kChannel && (*w)->size() == C);
    EASTRT_CHECK(fits, "scale: expected ", p.mode == ScaleMode::kChannel ? std::to_string(C) : "1",
                 " values per weight, got ", (*w)->size());
  }
  HostTensor result(input.shape);
  for (int64_t i = 0; i < input.size(); ++i) {
    const int64_t c = i % C;
    float y = input.data[i] * weight_or(p.scale, c, 1.0f) + weight_or(p.shift, c, 0.0f);
    if (p.power) y = std::pow(y, weight_or(p.power, c, 1.0f));
    result.data[i] = y;
  }
  return result;
}

// Max: padded cells never win (they are −inf). Average: the sum over real cells divided by their count,
// or by the whole window when count_include_pad (padding counts as zeros).
HostTensor pooling(const HostTensor& input, const PoolingParams& p) {
  const Nhwc in = nhwc_dims(input, "pooling");
  const int64_t WH = p.global ? in.h : p.window[0], WW = p.global ? in.w : p.window[1];
  const Padding pad = p.global ? Padding{} : p.padding;
  const std::array<int, 2> stride = p.global ? std::array<int, 2>{1, 1} : p.stride;
  const int64_t OH = window_output("pooling", in.h, WH, stride[0], 1, pad.top, pad.bottom);
  const int64_t OW = window_output("pooling", in.w, WW, stride[1], 1, pad.left, pad.right);
  const Nhwc out{in.n, OH, OW, in.c};
  HostTensor result({in.n, OH, OW, in.c});
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < in.c; ++c) {
          double sum = 0.0;
          float best = -std::numeric_limits<float>::infinity();
          int64_t cells = 0;
          for (int64_t r = 0; r < WH; ++r)
            for (int64_t s = 0; s < WW; ++s) {
              const int64_t ih = oh * stride[0] - pad.top + r, iw = ow * stride[1] - pad.left + s;
              if (ih < 0 || ih >= in.h || iw < 0 || iw >= in.w) continue;
              const float x = input.data[nhwc_index(in, n, ih, iw, c)];
              sum += x;
              best = std::max(best, x);
              ++cells;
            }
          float y = best;
          if (p.type == PoolingType::kAverage) {
            const int64_t divisor = p.count_include_pad ? WH * WW : cells;
            y = divisor > 0 ? static_cast<float>(sum / static_cast<double>(divisor)) : 0.0f;
          }
          result.data[nhwc_index(out, n, oh, ow, c)] = y;
        }
  return result;
}

float apply_activation(const ActivationParams& p, float x) {
  switch (p.type) {
    case ActivationType::kRelu: return x > 0.0f ? x : 0.0f;
    case ActivationType::kSigmoid: return 1.0f / (1.0f + std::exp(-x));
    case ActivationType::kTanh: return std::tanh(x);
    case ActivationType::kClip: return std::min(std::max(x, p.alpha), p.beta);
    case ActivationType::kHardSigmoid: return std::max(0.0f, std::min(1.0f, p.alpha * x + p.beta));
    case ActivationType::kHardSwish: return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f));
    case ActivationType::kLeakyRelu: return x >= 0.0f ? x : p.alpha * x;
  }
  throw_error("activation: unknown type ", static_cast<int>(p.type));
}

HostTensor activation(const HostTensor& input, const ActivationParams& p) {
  HostTensor result(input.shape);
  for (int64_t i = 0; i < input.size(); ++i) result.data[i] = apply_activation(p, input.data[i]);
  return result;
}

float apply_elementwise(ElementWiseOp op, float a, float b) {
  switch (op) {
    case ElementWiseOp::kAdd: return a + b;
    case ElementWiseOp::kSub: return a - b;
    case ElementWiseOp::kMul: return a * b;
    case ElementWiseOp::kDiv: return a / b;
    case ElementWiseOp::kMax: return std::max(a, b);
    case ElementWiseOp::kMin: return std::min(a, b);
    case ElementWiseOp::kPow: return std::pow(a, b);
  }
  throw_error("elementwise: unknown op ", static_cast<int>(op));
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    // Dimensions are aligned at the end; a missing dimension acts as 1.
    const int64_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const int64_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    EASTRT_CHECK(da == db || da == 1 || db == 1, "elementwise: shapes ", to_string(a), " and ", to_string(b),
                 " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

HostTensor elementwise(const HostTensor& a, const HostTensor& b, ElementWiseOp op) {
  const Shape shape = broadcast_shapes(a.shape, b.shape);
  // Index of the operand's element for an output multi-index: broadcast dimensions use index 0.
  auto source = [&](const Shape& s, const std::vector<int64_t>& index) {
    int64_t i = 0;
    const size_t skip = shape.size() - s.size();
    for (size_t d = 0; d < s.size(); ++d) i = i * s[d] + (s[d] == 1 ? 0 : index[d + skip]);
    return i;
  };
  HostTensor result(shape);
  for (int64_t i = 0; i < result.size(); ++i) {
    const std::vector<int64_t> index = unravel(i, shape);
    result.data[i] = apply_elementwise(op, a.data[source(a.shape, index)], b.data[source(b.shape, index)]);
  }
  return result;
}

float apply_unary(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::kExp: return std::exp(x);
    case UnaryOp::kLog: return std::log(x);
    case UnaryOp::kSqrt: return std::sqrt(x);
    case UnaryOp::kRsqrt: return 1.0f / std::sqrt(x);
    case UnaryOp::kAbs: return std::fabs(x);
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kReciprocal: return 1.0f / x;
    case UnaryOp::kFloor: return std::floor(x);
    case UnaryOp::kCeil: return std::ceil(x);
    case UnaryOp::kSin: return std::sin(x);
    case UnaryOp::kCos: return std::cos(x);
  }
  throw_error("unary: unknown op ", static_cast<int>(op));
}

HostTensor unary(const HostTensor& input, UnaryOp op) {
  HostTensor result(input.shape);
  for (int64_t i = 0; i < input.size(); ++i) result.data[i] = apply_unary(op, input.data[i]);
  return result;
}

HostTensor concatenation(const std::vector<const HostTensor*>& inputs, int axis) {
  EASTRT_CHECK(!inputs.empty(), "concatenation: no inputs");
  const Shape& first = inputs[0]->shape;
  const int a = normalize_axis(axis, first.size(), "concatenation");
  Shape shape = first;
  shape[a] = 0;
  for (const HostTensor* t : inputs) {
    bool fits = t->shape.size() == first.size();
    for (size_t d = 0; fits && d < first.size(); ++d) fits = static_cast<int>(d) == a || t->shape[d] == first[d];
    EASTRT_CHECK(fits, "concatenation: ", to_string(t->shape), " does not fit ", to_string(first), " on axis ", a);
    shape[a] += t->shape[a];
  }
  // Row-major: the output is, for each index of the dimensions before the axis, every input's block.
  const int64_t outer = std::accumulate(first.begin(), first.begin() + a, int64_t{1}, std::multiplies<>());
  HostTensor result(shape);
  float* dst = result.data.data();
  for (int64_t o = 0; o < outer; ++o)
    for (const HostTensor* t : inputs) {
      const int64_t block = t->size() / std::max<int64_t>(outer, 1);
      dst = std::copy_n(t->data.data() + o * block, block, dst);
    }
  return result;
}

float resize_source(ResizeCoordinates coordinates, int64_t dst, int64_t in_size, int64_t out_size) {
  const float x = static_cast<float>(dst);
  switch (coordinates) {
    case ResizeCoordinates::kAsymmetric:
      return x * (static_cast<float>(in_size) / static_cast<float>(out_size));
    case ResizeCoordinates::kHalfPixel:
      return std::max(0.0f, (x + 0.5f) * (static_cast<float>(in_size) / static_cast<float>(out_size)) - 0.5f);
    case ResizeCoordinates::kAlignCorners:
      return out_size > 1 ? x * (static_cast<float>(in_size - 1) / static_cast<float>(out_size - 1)) : 0.0f;
  }
  throw_error("resize: unknown coordinate rule ", static_cast<int>(coordinates));
}

// Asymmetric: floor (TF1 resize_nearest_neighbor). Align corners: round half away from zero (TF).
// Half pixel: ONNX's default nearest_mode round_prefer_floor of the unclamped half-pixel source, i.e.
// ceil(src − 0.5); TF2's half_pixel_centers takes floor((dst+0.5)·scale) instead, which differs only
// where the source lands exactly halfway between two cells.
int64_t resize_nearest_index(ResizeCoordinates coordinates, int64_t dst, int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float x = static_cast<float>(dst);
  float index = 0.0f;
  switch (coordinates) {
    case ResizeCoordinates::kAsymmetric: index = std::floor(x * scale); break;
    case ResizeCoordinates::kAlignCorners: index = std::round(resize_source(coordinates, dst, in_size, out_size)); break;
    case ResizeCoordinates::kHalfPixel: index = std::ceil((x + 0.5f) * scale - 0.5f - 0.5f); break;
  }
  return std::clamp<int64_t>(static_cast<int64_t>(index), 0, in_size - 1);
}

// Bilinear with TensorFlow's interpolation order: across the row first, then between the two rows; the
// upper neighbour is clamped to the last cell, which repeats the edge.
HostTensor resize(const HostTensor& input, const ResizeParams& p) {
  const Nhwc in = nhwc_dims(input, "resize");
  const auto [out_h, out_w] = resize_output_size(p, in.h, in.w);
  EASTRT_CHECK(out_h >= 1 && out_w >= 1 && in.h >= 1 && in.w >= 1, "resize: empty size ", out_h, "x", out_w);
  const Nhwc out{in.n, out_h, out_w, in.c};
  HostTensor result({out.n, out.h, out.w, out.c});
  for (int64_t n = 0; n < out.n; ++n)
    for (int64_t oh = 0; oh < out.h; ++oh)
      for (int64_t ow = 0; ow < out.w; ++ow)
        for (int64_t c = 0; c < out.c; ++c) {
          float y;
          if (p.mode == ResizeMode::kNearest) {
            const int64_t ih = resize_nearest_index(p.coordinates, oh, in.h, out.h);
            const int64_t iw = resize_nearest_index(p.coordinates, ow, in.w, out.w);
            y = input.data[nhwc_index(in, n, ih, iw, c)];
          } else {
            const float sy = resize_source(p.coordinates, oh, in.h, out.h);
            const float sx = resize_source(p.coordinates, ow, in.w, out.w);
            const int64_t y0 = std::min<int64_t>(static_cast<int64_t>(std::floor(sy)), in.h - 1);
            const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(std::floor(sx)), in.w - 1);
            const int64_t y1 = std::min(y0 + 1, in.h - 1), x1 = std::min(x0 + 1, in.w - 1);
            const float fy = sy - static_cast<float>(y0), fx = sx - static_cast<float>(x0);
            auto at = [&](int64_t h, int64_t w) { return input.data[nhwc_index(in, n, h, w, c)]; };
            const float top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
            const float bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
            y = top + (bottom - top) * fy;
          }
          result.data[nhwc_index(out, n, oh, ow, c)] = y;
        }
  return result;
}

HostTensor slice(const HostTensor& input, const SliceParams& p) {
  const size_t rank = input.shape.size();
  const Shape stride = p.stride.empty() ? Shape(rank, 1) : p.stride;
  EASTRT_CHECK(p.start.size() == rank && p.size.size() == rank && stride.size() == rank, "slice: expected ",
               rank, " starts, sizes and strides for input ", to_string(input.shape));
  const Shape size = slice_output_shape({p.start, p.size, stride}, input.shape);
  for (size_t d = 0; d < rank; ++d) {
    EASTRT_CHECK(stride[d] != 0 && size[d] >= 0, "slice: dimension ", d, " has stride 0 or a negative size");
    const int64_t last = p.start[d] + (size[d] - 1) * stride[d];
    EASTRT_CHECK(size[d] == 0 || (p.start[d] >= 0 && p.start[d] < input.shape[d] && last >= 0 &&
                                  last < input.shape[d]),
                 "slice: dimension ", d, " reads outside 0..", input.shape[d] - 1);
  }
  HostTensor result(size);
  for (int64_t i = 0; i < result.size(); ++i) {
    std::vector<int64_t> index = unravel(i, size);
    for (size_t d = 0; d < rank; ++d) index[d] = p.start[d] + index[d] * stride[d];
    result.data[i] = input.data[ravel(index, input.shape)];
  }
  return result;
}

HostTensor shuffle(const HostTensor& input, const ShuffleParams& p) {
  const size_t rank = input.shape.size();
  std::vector<int> perm = p.permutation;
  if (perm.empty()) {
    perm.resize(rank);
    std::iota(perm.begin(), perm.end(), 0);
  }
  std::vector<int> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  bool is_permutation = perm.size() == rank;
  for (size_t d = 0; is_permutation && d < rank; ++d) is_permutation = sorted[d] == static_cast<int>(d);
  EASTRT_CHECK(is_permutation, "shuffle: the permutation is not one of the ", rank, " input dimensions");
  Shape transposed(rank);
  for (size_t d = 0; d < rank; ++d) transposed[d] = input.shape[perm[d]];
  HostTensor result(transposed);
  for (int64_t i = 0; i < result.size(); ++i) {
    const std::vector<int64_t> out_index = unravel(i, transposed);
    std::vector<int64_t> in_index(rank);
    for (size_t d = 0; d < rank; ++d) in_index[perm[d]] = out_index[d];
    result.data[i] = input.data[ravel(in_index, input.shape)];
  }
  if (!p.reshape.empty()) {
    try {
      result.shape = resolve_reshape(transposed, p.reshape);
    } catch (const Error& e) {
      throw_error("shuffle: ", e.what());
    }
  }
  return result;
}

HostTensor constant(const ConstantParams& p) {
  EASTRT_CHECK(p.value != nullptr, "constant: no value");
  return *p.value;
}

// Empty axes reduce nothing (TensorFlow's rule, and the shape inference's): the result is the input.
HostTensor reduce(const HostTensor& input, const ReduceParams& p) {
  const size_t rank = input.shape.size();
  std::vector<bool> reduced(rank, false);
  for (int axis : p.axes) reduced[normalize_axis(axis, rank, "reduce")] = true;
  Shape kept(rank);  // the output shape with reduced dimensions kept as 1
  Shape shape;
  int64_t cells = 1;
  for (size_t d = 0; d < rank; ++d) {
    kept[d] = reduced[d] ? 1 : input.shape[d];
    if (reduced[d]) cells *= input.shape[d];
    if (!reduced[d] || p.keep_dims) shape.push_back(kept[d]);
  }
  const double start = p.op == ReduceOp::kMax   ? -std::numeric_limits<double>::infinity()
                       : p.op == ReduceOp::kMin ? std::numeric_limits<double>::infinity()
                                                : 0.0;
  std::vector<double> acc(static_cast<size_t>(volume(kept)), start);
  for (int64_t i = 0; i < input.size(); ++i) {
    std::vector<int64_t> index = unravel(i, input.shape);
    for (size_t d = 0; d < rank; ++d)
      if (reduced[d]) index[d] = 0;
    double& a = acc[ravel(index, kept)];
    const double x = input.data[i];
    a = p.op == ReduceOp::kMax ? std::max(a, x) : p.op == ReduceOp::kMin ? std::min(a, x) : a + x;
  }
  HostTensor result(shape);
  for (size_t i = 0; i < acc.size(); ++i)
    result.data[i] = static_cast<float>(p.op == ReduceOp::kMean ? acc[i] / static_cast<double>(cells) : acc[i]);
  return result;
}

std::vector<HostTensor> run_layer(const Layer& layer, const std::vector<const HostTensor*>& inputs) {
  auto expect = [&](size_t count) {
    EASTRT_CHECK(inputs.size() == count, to_string(layer.kind()), " layer '", layer.name, "' expects ", count,
                 " inputs, got ", inputs.size());
  };
  switch (layer.kind()) {
    case LayerKind::kConvolution:  // a second input is the fused residual
      EASTRT_CHECK(inputs.size() == 1 || inputs.size() == 2, "Convolution layer '", layer.name,
                   "' expects 1 or 2 inputs, got ", inputs.size());
      return {convolution(*inputs[0], layer.as<ConvolutionParams>(), inputs.size() == 2 ? inputs[1] : nullptr)};
    case LayerKind::kDeconvolution: expect(1); return {deconvolution(*inputs[0], layer.as<DeconvolutionParams>())};
    case LayerKind::kScale: expect(1); return {scale(*inputs[0], layer.as<ScaleParams>())};
    case LayerKind::kPooling: expect(1); return {pooling(*inputs[0], layer.as<PoolingParams>())};
    case LayerKind::kActivation: expect(1); return {activation(*inputs[0], layer.as<ActivationParams>())};
    case LayerKind::kElementWise:
      expect(2);
      return {elementwise(*inputs[0], *inputs[1], layer.as<ElementWiseParams>().op)};
    case LayerKind::kUnary: expect(1); return {unary(*inputs[0], layer.as<UnaryParams>().op)};
    case LayerKind::kConcatenation: return {concatenation(inputs, layer.as<ConcatenationParams>().axis)};
    case LayerKind::kResize: expect(1); return {resize(*inputs[0], layer.as<ResizeParams>())};
    case LayerKind::kSlice: expect(1); return {slice(*inputs[0], layer.as<SliceParams>())};
    case LayerKind::kShuffle: expect(1); return {shuffle(*inputs[0], layer.as<ShuffleParams>())};
    case LayerKind::kConstant: expect(0); return {constant(layer.as<ConstantParams>())};
    case LayerKind::kReduce: expect(1); return {reduce(*inputs[0], layer.as<ReduceParams>())};
  }
  throw_error("layer '", layer.name, "': unknown kind ", static_cast<int>(layer.kind()));
}

}  // namespace eastrt::cpu::naive
