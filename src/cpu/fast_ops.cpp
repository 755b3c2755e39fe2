// The fast CPU kernels other than convolution (see fast.h): the same arithmetic as the naive kernels,
// in the same order where it matters, with loops the compiler can vectorise, spread over the pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "cpu/fast.h"
#include "cpu/naive.h"
#include "eastrt/error.h"

namespace eastrt::cpu::fast {
namespace {

// Elements per chunk for streaming loops: enough work to amortise handing out a chunk.
constexpr int64_t kElementGrain = 1 << 14;

void check_output(const HostTensor& output, const Shape& expected, const char* kernel) {
  EASTRT_CHECK(output.shape == expected && output.size() == volume(expected), kernel, ": output is ",
               to_string(output.shape), ", expected ", to_string(expected));
}

// Applies f(begin, end) over [0, count) in parallel chunks of whole elements.
template <typename F>
void parallel_elements(ThreadPool& pool, int64_t count, F&& f) {
  pool.parallel_for(count, [&](int64_t begin, int64_t end) { f(begin, end); }, kElementGrain);
}

// Calls body(op) with op a lambda for the element-wise operation, so that each loop is compiled for one
// operation and vectorises, instead of switching per element.
template <typename Body>
void with_binary_op(ElementWiseOp op, Body&& body) {
  switch (op) {
    case ElementWiseOp::kAdd: return body([](float a, float b) { return a + b; });
    case ElementWiseOp::kSub: return body([](float a, float b) { return a - b; });
    case ElementWiseOp::kMul: return body([](float a, float b) { return a * b; });
    case ElementWiseOp::kDiv: return body([](float a, float b) { return a / b; });
    case ElementWiseOp::kMax: return body([](float a, float b) { return std::max(a, b); });
    case ElementWiseOp::kMin: return body([](float a, float b) { return std::min(a, b); });
    case ElementWiseOp::kPow: return body([](float a, float b) { return std::pow(a, b); });
  }
  throw_error("elementwise: unknown op ", static_cast<int>(op));
}

// How the smaller operand of a fast element-wise layer is indexed.
enum class Broadcast { kNone, kScalarA, kScalarB, kChannelA, kChannelB, kUnsupported };

Broadcast classify(const Shape& a, const Shape& b) {
  if (a == b) return Broadcast::kNone;
  Shape out;
  try {
    out = naive::broadcast_shapes(a, b);
  } catch (const Error&) {
    return Broadcast::kUnsupported;
  }
  if (out.empty()) return Broadcast::kUnsupported;
  const int64_t channels = out.back();
  if (b == out && volume(a) == 1) return Broadcast::kScalarA;
  if (a == out && volume(b) == 1) return Broadcast::kScalarB;
  if (b == out && !a.empty() && a.back() == channels && volume(a) == channels) return Broadcast::kChannelA;
  if (a == out && !b.empty() && b.back() == channels && volume(b) == channels) return Broadcast::kChannelB;
  return Broadcast::kUnsupported;
}

}  // namespace

bool has_fast_elementwise(const Shape& a, const Shape& b) { return classify(a, b) != Broadcast::kUnsupported; }

void elementwise(const HostTensor& a, const HostTensor& b, ElementWiseOp op, HostTensor& output, ThreadPool& pool) {
  const Broadcast mode = classify(a.shape, b.shape);
  EASTRT_CHECK(mode != Broadcast::kUnsupported, "elementwise: no fast path for ", to_string(a.shape), " and ",
               to_string(b.shape));
  check_output(output, naive::broadcast_shapes(a.shape, b.shape), "elementwise");
  const float* x = a.data.data();
  const float* y = b.data.data();
  float* o = output.data.data();
  const int64_t count = output.size();
  if (count == 0) return;
  const int64_t C = mode == Broadcast::kChannelA || mode == Broadcast::kChannelB ? output.shape.back() : 1;
  with_binary_op(op, [&](auto f) {
    switch (mode) {
      case Broadcast::kNone:
        return parallel_elements(pool, count, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) o[i] = f(x[i], y[i]);
        });
      case Broadcast::kScalarA:
        return parallel_elements(pool, count, [&, s = x[0]](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) o[i] = f(s, y[i]);
        });
      case Broadcast::kScalarB:
        return parallel_elements(pool, count, [&, s = y[0]](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) o[i] = f(x[i], s);
        });
      case Broadcast::kChannelA:
      case Broadcast::kChannelB: {
        const bool channel_a = mode == Broadcast::kChannelA;
        pool.parallel_for(count / C, [&](int64_t r0, int64_t r1) {
          for (int64_t row = r0; row < r1; ++row) {
            const int64_t base = row * C;
            if (channel_a)
              for (int64_t c = 0; c < C; ++c) o[base + c] = f(x[c], y[base + c]);
            else
              for (int64_t c = 0; c < C; ++c) o[base + c] = f(x[base + c], y[c]);
          }
        }, std::max<int64_t>(1, kElementGrain / C));
        return;
      }
      case Broadcast::kUnsupported: break;
    }
  });
}

void activate(const ActivationParams& p, const float* x, float* y, int64_t count) {
  auto run = [&](auto f) {
    for (int64_t i = 0; i < count; ++i) y[i] = f(x[i]);
  };
  const float alpha = p.alpha, beta = p.beta;
  // The same formulas as naive::apply_activation, one loop per type.
  switch (p.type) {
    case ActivationType::kRelu: return run([](float v) { return v > 0.0f ? v : 0.0f; });
    case ActivationType::kSigmoid: return run([](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    case ActivationType::kTanh: return run([](float v) { return std::tanh(v); });
    case ActivationType::kClip: return run([=](float v) { return std::min(std::max(v, alpha), beta); });
    case ActivationType::kHardSigmoid:
      return run([=](float v) { return std::max(0.0f, std::min(1.0f, alpha * v + beta)); });
    case ActivationType::kHardSwish:
      return run([](float v) { return v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f)); });
    case ActivationType::kLeakyRelu: return run([=](float v) { return v >= 0.0f ? v : alpha * v; });
  }
  throw_error("activation: unknown type ", static_cast<int>(p.type));
}

void activation(const HostTensor& input, const ActivationParams& p, HostTensor& output, ThreadPool& pool) {
  check_output(output, input.shape, "activation");
  const float* x = input.data.data();
  float* y = output.data.data();
  parallel_elements(pool, input.size(), [&](int64_t i0, int64_t i1) { activate(p, x + i0, y + i0, i1 - i0); });
}

void unary(const HostTensor& input, UnaryOp op, HostTensor& output, ThreadPool& pool) {
  check_output(output, input.shape, "unary");
  const float* x = input.data.data();
  float* y = output.data.data();
  parallel_elements(pool, input.size(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = naive::apply_unary(op, x[i]);
  });
}

void scale(const HostTensor& input, const ScaleParams& p, HostTensor& output, ThreadPool& pool) {
  EASTRT_CHECK(!input.shape.empty(), "scale: expected an input of rank >= 1");
  check_output(output, input.shape, "scale");
  const int64_t C = input.shape.back();
  // Each weight expanded to one value per channel (null: the identity value).
  auto expand = [&](const Weights& w, float fallback) {
    std::vector<float> values(static_cast<size_t>(C), fallback);
    if (!w) return values;
    EASTRT_CHECK(w->size() == 1 || (p.mode == ScaleMode::kChannel && w->size() == C), "scale: expected ",
                 p.mode == ScaleMode::kChannel ? std::to_string(C) : "1", " values per weight, got ", w->size());
    for (int64_t c = 0; c < C; ++c) values[c] = w->size() == 1 ? w->data[0] : w->data[c];
    return values;
  };
  const std::vector<float> mul = expand(p.scale, 1.0f), add = expand(p.shift, 0.0f), pw = expand(p.power, 1.0f);
  const float* x = input.data.data();
  float* y = output.data.data();
  const bool has_power = p.power != nullptr;
  pool.parallel_for(input.size() / std::max<int64_t>(C, 1), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float* xr = x + row * C;
      float* yr = y + row * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * mul[c] + add[c];
      if (has_power)
        for (int64_t c = 0; c < C; ++c) yr[c] = std::pow(yr[c], pw[c]);
    }
  }, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(C, 1)));
}

void pooling(const HostTensor& input, const PoolingParams& p, HostTensor& output, ThreadPool& pool) {
  EASTRT_CHECK(input.shape.size() == 4, "pooling: expected a 4-D N,H,W,C input, got ", to_string(input.shape));
  const int64_t N = input.shape[0], H = input.shape[1], W = input.shape[2], C = input.shape[3];
  const float* x = input.data.data();
  float* y = output.data.data();
  const bool average = p.type == PoolingType::kAverage;

  if (p.global) {
    // One output per (n, c): split the channels into blocks so even batch 1 uses every thread; sums are
    // kept in double because a global window has thousands of cells.
    check_output(output, {N, 1, 1, C}, "pooling");
    constexpr int64_t kBlock = 64;
    const int64_t blocks = (C + kBlock - 1) / kBlock;
    pool.parallel_for(N * blocks, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / blocks, c0 = t % blocks * kBlock, width = std::min(kBlock, C - c0);
        double acc[kBlock];
        std::fill_n(acc, width, average ? 0.0 : -std::numeric_limits<double>::infinity());
        for (int64_t i = 0; i < H * W; ++i) {
          const float* xp = x + (n * H * W + i) * C + c0;
          if (average)
            for (int64_t c = 0; c < width; ++c) acc[c] += xp[c];
          else
            for (int64_t c = 0; c < width; ++c) acc[c] = std::max(acc[c], static_cast<double>(xp[c]));
        }
        for (int64_t c = 0; c < width; ++c)
          y[n * C + c0 + c] = static_cast<float>(average ? acc[c] / static_cast<double>(H * W) : acc[c]);
      }
    }, 1);
    return;
  }

  const int64_t WH = p.window[0], WW = p.window[1];
  const int sh = p.stride[0], sw = p.stride[1];
  EASTRT_CHECK(sh >= 1 && sw >= 1 && WH >= 1 && WW >= 1, "pooling: window and stride must be >= 1");
  const int64_t OH = (H + p.padding.top + p.padding.bottom - WH) / sh + 1;
  const int64_t OW = (W + p.padding.left + p.padding.right - WW) / sw + 1;
  check_output(output, {N, OH, OW, C}, "pooling");
  pool.parallel_for(N * OH, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / OH, oh = row % OH;
      // The window clipped to the real cells: padding never enters a max, nor an average's count.
      const int64_t h0 = std::max<int64_t>(0, oh * sh - p.padding.top), h1 = std::min(H, oh * sh - p.padding.top + WH);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(0, ow * sw - p.padding.left);
        const int64_t w1 = std::min(W, ow * sw - p.padding.left + WW);
        float* acc = y + (row * OW + ow) * C;
        std::fill_n(acc, C, average ? 0.0f : -std::numeric_limits<float>::infinity());
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const float* xp = x + ((n * H + ih) * W + iw) * C;
            if (average)
              for (int64_t c = 0; c < C; ++c) acc[c] += xp[c];
            else
              for (int64_t c = 0; c < C; ++c) acc[c] = std::max(acc[c], xp[c]);
          }
        if (average) {
          const int64_t cells = std::max<int64_t>(0, h1 - h0) * std::max<int64_t>(0, w1 - w0);
          const int64_t divisor = p.count_include_pad ? WH * WW : cells;
          const float inverse = divisor > 0 ? 1.0f / static_cast<float>(divisor) : 0.0f;
          for (int64_t c = 0; c < C; ++c) acc[c] *= inverse;
        }
      }
    }
  }, 1);
}

void resize(const HostTensor& input, const ResizeParams& p, HostTensor& output, ThreadPool& pool) {
  EASTRT_CHECK(input.shape.size() == 4, "resize: expected a 4-D N,H,W,C input, got ", to_string(input.shape));
  const int64_t N = input.shape[0], H = input.shape[1], W = input.shape[2], C = input.shape[3];
  const std::array<int64_t, 2> out_size = resize_output_size(p, H, W);
  const int64_t OH = out_size[0], OW = out_size[1];  // named, not bound: lambdas capture them (clang 14)
  EASTRT_CHECK(OH >= 1 && OW >= 1 && H >= 1 && W >= 1, "resize: empty size ", OH, "x", OW);
  check_output(output, {N, OH, OW, C}, "resize");
  const float* x = input.data.data();
  float* y = output.data.data();

  if (p.mode == ResizeMode::kNearest) {
    std::vector<int64_t> ix(OW);
    for (int64_t ow = 0; ow < OW; ++ow) ix[ow] = naive::resize_nearest_index(p.coordinates, ow, W, OW);
    pool.parallel_for(N * OH, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t n = row / OH, ih = naive::resize_nearest_index(p.coordinates, row % OH, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow)
          std::memcpy(y + (row * OW + ow) * C, x + ((n * H + ih) * W + ix[ow]) * C, C * sizeof(float));
      }
    }, 1);
    return;
  }

  // Column neighbours and weights are the same for every row: computed once.
  std::vector<int64_t> x0(OW), x1(OW);
  std::vector<float> fx(OW);
  for (int64_t ow = 0; ow < OW; ++ow) {
    const float sx = naive::resize_source(p.coordinates, ow, W, OW);
    x0[ow] = std::min<int64_t>(static_cast<int64_t>(std::floor(sx)), W - 1);
    x1[ow] = std::min(x0[ow] + 1, W - 1);
    fx[ow] = sx - static_cast<float>(x0[ow]);
  }
  pool.parallel_for(N * OH, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / OH;
      const float sy = naive::resize_source(p.coordinates, row % OH, H, OH);
      const int64_t y0 = std::min<int64_t>(static_cast<int64_t>(std::floor(sy)), H - 1), y1 = std::min(y0 + 1, H - 1);
      const float fy = sy - static_cast<float>(y0);
      const float* top_row = x + (n * H + y0) * W * C;
      const float* bottom_row = x + (n * H + y1) * W * C;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const float *tl = top_row + x0[ow] * C, *tr = top_row + x1[ow] * C;
        const float *bl = bottom_row + x0[ow] * C, *br = bottom_row + x1[ow] * C;
        const float wx = fx[ow];
        float* o = y + (row * OW + ow) * C;
        // TensorFlow's order, as naive::resize: along the rows, then between them.
        for (int64_t c = 0; c < C; ++c) {
          const float top = tl[c] + (tr[c] - tl[c]) * wx;
          const float bottom = bl[c] + (br[c] - bl[c]) * wx;
          o[c] = top + (bottom - top) * fy;
        }
      }
    }
  }, 1);
}

void concatenation(const std::vector<const HostTensor*>& inputs, int axis, HostTensor& output, ThreadPool& pool) {
  EASTRT_CHECK(!inputs.empty(), "concatenation: no inputs");
  const Shape& first = inputs[0]->shape;
  const int rank = static_cast<int>(first.size());
  EASTRT_CHECK(axis >= -rank && axis < rank, "concatenation: axis ", axis, " out of range for rank ", rank);
  const int a = axis < 0 ? axis + rank : axis;
  Shape expected = first;
  expected[a] = 0;
  for (const HostTensor* t : inputs) {
    bool fits = static_cast<int>(t->shape.size()) == rank;
    for (int d = 0; fits && d < rank; ++d) fits = d == a || t->shape[d] == first[d];
    EASTRT_CHECK(fits, "concatenation: ", to_string(t->shape), " does not fit ", to_string(first), " on axis ", a);
    expected[a] += t->shape[a];
  }
  check_output(output, expected, "concatenation");
  const int64_t outer = std::accumulate(first.begin(), first.begin() + a, int64_t{1}, std::multiplies<>());
  if (outer == 0 || output.size() == 0) return;
  const int64_t out_block = output.size() / outer;
  // Where each input's block starts inside one output block.
  std::vector<int64_t> offset(inputs.size() + 1, 0);
  for (size_t i = 0; i < inputs.size(); ++i) offset[i + 1] = offset[i] + inputs[i]->size() / outer;
  float* y = output.data.data();
  if (outer >= 4 * pool.size()) {
    pool.parallel_for(outer, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o)
        for (size_t i = 0; i < inputs.size(); ++i) {
          const int64_t block = offset[i + 1] - offset[i];
          std::memcpy(y + o * out_block + offset[i], inputs[i]->data.data() + o * block, block * sizeof(float));
        }
    }, std::max<int64_t>(1, kElementGrain / out_block));
    return;
  }
  // Few large blocks (concatenating on the first axes): split each copy instead.
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < inputs.size(); ++i) {
      const int64_t block = offset[i + 1] - offset[i];
      const float* src = inputs[i]->data.data() + o * block;
      float* dst = y + o * out_block + offset[i];
      parallel_elements(pool, block, [&](int64_t e0, int64_t e1) {
        std::memcpy(dst + e0, src + e0, (e1 - e0) * sizeof(float));
      });
    }
}

bool has_fast_kernel(const Layer& layer, const std::vector<const HostTensor*>& inputs) {
  switch (layer.kind()) {
    case LayerKind::kConvolution:
    case LayerKind::kPooling:
    case LayerKind::kResize:
    case LayerKind::kActivation:
    case LayerKind::kScale:
    case LayerKind::kUnary:
    case LayerKind::kConcatenation:
      return true;
    case LayerKind::kElementWise:
      return inputs.size() == 2 && has_fast_elementwise(inputs[0]->shape, inputs[1]->shape);
    default:
      return false;  // deconvolution, slice, shuffle, constant, reduce: rare and cheap, naive is enough
  }
}

void run_layer(const Layer& layer, const std::vector<const HostTensor*>& inputs,
               const std::vector<HostTensor*>& outputs, ThreadPool& pool) {
  EASTRT_CHECK(outputs.size() == 1, "layer '", layer.name, "': expected one output");
  // A convolution's optional second input is its fused residual.
  const size_t expected_inputs = layer.kind() == LayerKind::kElementWise     ? 2
                                 : layer.kind() == LayerKind::kConcatenation ? inputs.size()
                                 : layer.kind() == LayerKind::kConvolution   ? std::clamp<size_t>(inputs.size(), 1, 2)
                                                                             : 1;
  EASTRT_CHECK(inputs.size() == expected_inputs && !inputs.empty(), to_string(layer.kind()), " layer '",
               layer.name, "' expects ", expected_inputs, " inputs, got ", inputs.size());
  HostTensor& out = *outputs[0];
  switch (layer.kind()) {
    case LayerKind::kConvolution:
      return convolution(*inputs[0], layer.as<ConvolutionParams>(), out, pool, inputs.size() == 2 ? inputs[1] : nullptr);
    case LayerKind::kPooling: return pooling(*inputs[0], layer.as<PoolingParams>(), out, pool);
    case LayerKind::kResize: return resize(*inputs[0], layer.as<ResizeParams>(), out, pool);
    case LayerKind::kActivation: return activation(*inputs[0], layer.as<ActivationParams>(), out, pool);
    case LayerKind::kScale: return scale(*inputs[0], layer.as<ScaleParams>(), out, pool);
    case LayerKind::kUnary: return unary(*inputs[0], layer.as<UnaryParams>().op, out, pool);
    case LayerKind::kConcatenation:
      return concatenation(inputs, layer.as<ConcatenationParams>().axis, out, pool);
    case LayerKind::kElementWise:
      return elementwise(*inputs[0], *inputs[1], layer.as<ElementWiseParams>().op, out, pool);
    default: throw_error("layer '", layer.name, "': no fast ", to_string(layer.kind()), " kernel");
  }
}

}  // namespace eastrt::cpu::fast
