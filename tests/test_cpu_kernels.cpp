// Tests of the CPU kernels and executor: the naive kernels against hand-computed values, every fast path
// against the naive kernel on fresh random inputs of awkward shapes, and CpuEngine fast against naive.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "cpu/fast.h"
#include "cpu/naive.h"
#include "cpu/thread_pool.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/error.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt::cpu {
namespace {


// Fills with garbage, as a recycled buffer would be: a fast kernel must write every element.
HostTensor output_like(const HostTensor& reference) {
  HostTensor t(reference.shape);
  std::fill(t.data.begin(), t.data.end(), std::nanf(""));
  return t;
}

// max |got − want| / max |want|: the measure every fast-vs-naive comparison uses.
double relative_error(const HostTensor& got, const HostTensor& want) {
  EXPECT_EQ(to_string(got.shape), to_string(want.shape));
  if (got.size() != want.size()) return INFINITY;
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got.data[i]) - want.data[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::fabs(static_cast<double>(want.data[i])));
  }
  return diff / std::max(scale, 1e-30);
}

constexpr double kTolerance = 1e-5;

void expect_values(const HostTensor& got, const Shape& shape, const std::vector<float>& want, float tol = 1e-6f) {
  ASSERT_EQ(to_string(got.shape), to_string(shape));
  ASSERT_EQ(got.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.data[i], want[i], tol) << "element " << i;
}

ThreadPool& test_pool() { return ThreadPool::shared(3); }  // 3 threads: uneven chunks on any machine

// ---- the naive kernels against hand-computed values ----

TEST(NaiveResize, AsymmetricBilinearDoublesAsTf1) {
  // TF1 resize_bilinear(align_corners=False): out(2i) = in(i), out(2i+1) = the mean of in(i), in(i+1),
  // and past the last cell the edge is repeated.
  const HostTensor in({1, 2, 2, 1}, {1, 2, 3, 4});
  ResizeParams p;
  p.out_height = 4, p.out_width = 4;
  expect_values(naive::resize(in, p), {1, 4, 4, 1},
                {1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4});
  p.out_height = p.out_width = 0, p.scale_height = p.scale_width = 2.0f;  // the same, as a scale
  expect_values(naive::resize(in, p), {1, 4, 4, 1},
                {1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4});
}

TEST(NaiveResize, HalfPixelAndAlignCornersBilinear) {
  const HostTensor in({1, 1, 2, 1}, {0, 8});
  ResizeParams p;
  p.out_height = 1, p.out_width = 4;
  p.coordinates = ResizeCoordinates::kHalfPixel;  // sources −0.25 (clamped to 0), 0.25, 0.75, 1.25
  expect_values(naive::resize(in, p), {1, 1, 4, 1}, {0, 2, 6, 8});
  p.out_width = 3;
  p.coordinates = ResizeCoordinates::kAlignCorners;  // sources 0, 0.5, 1
  expect_values(naive::resize(in, p), {1, 1, 3, 1}, {0, 4, 8});
}

TEST(NaiveResize, NearestUnderEachCoordinateRule) {
  const HostTensor in({1, 1, 2, 1}, {5, 7});
  ResizeParams p;
  p.mode = ResizeMode::kNearest;
  p.out_height = 1, p.out_width = 4;
  expect_values(naive::resize(in, p), {1, 1, 4, 1}, {5, 5, 7, 7});  // floor(dst/2)
  p.out_width = 3;
  p.coordinates = ResizeCoordinates::kHalfPixel;  // sources −1/6, 0.5 (a tie: prefer floor), 7/6
  expect_values(naive::resize(in, p), {1, 1, 3, 1}, {5, 5, 7});
  p.out_width = 4;
  p.coordinates = ResizeCoordinates::kAlignCorners;  // sources 0, 1/3, 2/3, 1 rounded
  expect_values(naive::resize(in, p), {1, 1, 4, 1}, {5, 5, 7, 7});
}

TEST(NaivePooling, TfSameMaxPoolNeverPicksPadding) {
  // 3×3 window, stride 2 on 4×4, TF SAME: 2×2 out, one padded row and column after, none before.
  PoolingParams p;
  p.window = {3, 3}, p.stride = {2, 2}, p.padding = {0, 0, 1, 1};
  HostTensor in({1, 4, 4, 1});
  for (int i = 0; i < 16; ++i) in.data[i] = static_cast<float>(i + 1);
  expect_values(naive::pooling(in, p), {1, 2, 2, 1}, {11, 12, 15, 16});
  for (float& v : in.data) v = -v;  // all negative: a zero from the padding would win if it counted
  expect_values(naive::pooling(in, p), {1, 2, 2, 1}, {-1, -3, -9, -11});
}

TEST(NaivePooling, AverageCountIncludePadBothWays) {
  PoolingParams p;
  p.type = PoolingType::kAverage;
  p.window = {3, 3}, p.stride = {1, 1}, p.padding = Padding::symmetric(1);
  HostTensor in({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Corner: 1+2+4+5 over 4 real cells; edge: 1+…+6 over 6; centre: 45 over 9.
  expect_values(naive::pooling(in, p), {1, 3, 3, 1}, {3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7});
  p.count_include_pad = true;  // always over the 9 cells of the window
  expect_values(naive::pooling(in, p), {1, 3, 3, 1},
                {12 / 9.f, 21 / 9.f, 16 / 9.f, 27 / 9.f, 5, 33 / 9.f, 24 / 9.f, 39 / 9.f, 28 / 9.f}, 1e-5f);
  p.global = true;
  expect_values(naive::pooling(in, p), {1, 1, 1, 1}, {5});
}

TEST(NaiveConvolution, SamePaddedTwoByTwoByHand) {
  // TF SAME for a 2×2 kernel pads one row below and one column right.
  const HostTensor in({1, 2, 2, 1}, {1, 2, 3, 4});
  ConvolutionParams p;
  p.out_channels = 1, p.kernel = {2, 2}, p.padding = {0, 0, 1, 1};
  p.kernel_weights = make_weights({1, 1, 2, 2}, {1, 10, 100, 1000});
  p.bias = make_weights({1}, {0.5f});
  expect_values(naive::convolution(in, p), {1, 2, 2, 1}, {4321.5, 402.5, 43.5, 4.5});
}

TEST(NaiveConvolution, FusedEpilogueAddsTheResidualThenActivates) {
  const HostTensor in({1, 2, 2, 1}, {1, 2, 3, 4});
  ConvolutionParams p;
  p.out_channels = 1, p.kernel = {2, 2}, p.padding = {0, 0, 1, 1};
  p.kernel_weights = make_weights({1, 1, 2, 2}, {1, 10, 100, 1000});
  p.bias = make_weights({1}, {0.5f});
  p.activation = ActivationParams{};  // ReLU
  const HostTensor residual({1, 2, 2, 1}, {-5000, 1, -50, -4});
  expect_values(naive::convolution(in, p, &residual), {1, 2, 2, 1}, {0, 403.5, 0, 0.5});
}

TEST(NaiveConvolution, MatchesDirectSumOverExplicitlyPaddedInput) {
  // An independent route: materialise the zero-padded input, then a plain valid convolution.
  std::mt19937 rng(7);
  const int64_t N = 2, H = 6, W = 5, C = 4, K = 6, G = 2, R = 3, S = 2;
  const Padding pad{2, 0, 1, 1};
  const int sh = 2, sw = 1, dh = 1, dw = 2;
  const HostTensor in = random_tensor({N, H, W, C}, rng);
  ConvolutionParams p;
  p.out_channels = K, p.kernel = {R, S}, p.stride = {sh, sw}, p.dilation = {dh, dw}, p.groups = G, p.padding = pad;
  p.kernel_weights = random_weights({K, C / G, R, S}, rng);
  p.bias = random_weights({K}, rng);
  const HostTensor got = naive::convolution(in, p);

  const int64_t PH = H + pad.top + pad.bottom, PW = W + pad.left + pad.right;
  std::vector<double> padded(N * PH * PW * C, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w)
        for (int64_t c = 0; c < C; ++c)
          padded[((n * PH + h + pad.top) * PW + w + pad.left) * C + c] = in.data[((n * H + h) * W + w) * C + c];
  const int64_t OH = (PH - dh * (R - 1) - 1) / sh + 1, OW = (PW - dw * (S - 1) - 1) / sw + 1;
  ASSERT_EQ(to_string(got.shape), to_string(Shape{N, OH, OW, K}));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t k = 0; k < K; ++k) {
          double sum = p.bias->data[k];
          const int64_t g = k / (K / G);
          for (int64_t c = 0; c < C / G; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s)
                sum += padded[((n * PH + oh * sh + r * dh) * PW + ow * sw + s * dw) * C + g * (C / G) + c] *
                       p.kernel_weights->data[((k * (C / G) + c) * R + r) * S + s];
          EXPECT_NEAR(got.data[((n * OH + oh) * OW + ow) * K + k], sum, 1e-5);
        }
}

TEST(NaiveDeconvolution, StrideTwoOnTwoByTwo) {
  const HostTensor in({1, 2, 2, 1}, {1, 2, 3, 4});
  DeconvolutionParams p;
  p.out_channels = 1, p.kernel = {2, 2}, p.stride = {2, 2};
  p.kernel_weights = make_weights({1, 1, 2, 2}, {1, 2, 3, 4});
  // (2−1)·2 + 2 = 4: each input cell stamps the kernel scaled by itself into its own 2×2 block.
  expect_values(naive::deconvolution(in, p), {1, 4, 4, 1},
                {1, 2, 2, 4, 3, 4, 6, 8, 3, 6, 4, 8, 9, 12, 12, 16});

  // 3×3 kernel of ones, padding 1, output_padding 1: (2−1)·2 + 3 − 2 + 1 = 4. The full 5×5 output is
  // cropped to rows and columns 1..4; overlapping stamps add up.
  p.kernel = {3, 3}, p.padding = Padding::symmetric(1), p.output_padding = {1, 1};
  p.kernel_weights = make_weights({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  p.bias = make_weights({1}, {0.5f});
  std::vector<float> want = {1, 3, 2, 2, 4, 10, 6, 6, 3, 7, 4, 4, 3, 7, 4, 4};
  for (float& v : want) v += 0.5f;
  expect_values(naive::deconvolution(in, p), {1, 4, 4, 1}, want);
}

TEST(NaiveOps, ActivationScaleAndElementwiseByHand) {
  const HostTensor x({1, 1, 2, 2}, {-2, -0.5, 0.5, 4});
  ActivationParams a;
  a.type = ActivationType::kClip, a.alpha = -1, a.beta = 1;
  expect_values(naive::activation(x, a), x.shape, {-1, -0.5, 0.5, 1});
  a.type = ActivationType::kHardSigmoid, a.alpha = 0.2f, a.beta = 0.5f;
  expect_values(naive::activation(x, a), x.shape, {0.1f, 0.4f, 0.6f, 1});
  a.type = ActivationType::kHardSwish;
  expect_values(naive::activation(x, a), x.shape, {-2 * (1 / 6.f), -0.5f * (5 / 12.f), 0.5f * (7 / 12.f), 4});
  a.type = ActivationType::kLeakyRelu, a.alpha = 0.1f;
  expect_values(naive::activation(x, a), x.shape, {-0.2f, -0.05f, 0.5f, 4});

  ScaleParams s;  // per channel: (x·scale + shift)^power; null power stays 1
  s.scale = make_weights({2}, {2, 3});
  s.shift = make_weights({2}, {1, 0});
  expect_values(naive::scale(x, s), x.shape, {-3, -1.5, 2, 12});
  s.power = make_weights({2}, {2, 1});
  expect_values(naive::scale(x, s), x.shape, {9, -1.5, 4, 12});

  // Broadcasting [2,1] against [3]: a 2×3 result.
  const HostTensor col({2, 1}, {10, 20}), row({3}, {1, 2, 3});
  expect_values(naive::elementwise(col, row, ElementWiseOp::kSub), {2, 3}, {9, 8, 7, 19, 18, 17});
  expect_values(naive::elementwise(row, col, ElementWiseOp::kMax), {2, 3}, {10, 10, 10, 20, 20, 20});
  EXPECT_THROW(naive::elementwise(HostTensor({2}), HostTensor({3}), ElementWiseOp::kAdd), Error);
}

TEST(NaiveOps, SliceShuffleReduceConcatByHand) {
  HostTensor x({2, 3, 4});
  for (int i = 0; i < 24; ++i) x.data[i] = static_cast<float>(i);
  SliceParams sl{{1, 0, 3}, {1, 2, 2}, {1, 2, -2}};
  expect_values(naive::slice(x, sl), {1, 2, 2}, {15, 13, 23, 21});

  ShuffleParams sh;
  sh.permutation = {2, 0, 1};  // [4, 2, 3]
  sh.reshape = {0, -1};        // [4, 6]
  const HostTensor t = naive::shuffle(x, sh);
  ASSERT_EQ(to_string(t.shape), "4x6");
  EXPECT_EQ(t.data[0 * 6 + 4], 16.0f);  // in[a][b][c] lands at out[c][a·3+b]: c=0, a=1, b=1
  EXPECT_EQ(t.data[3 * 6 + 2], 11.0f);  // c=3, a=0, b=2

  ReduceParams r;
  r.op = ReduceOp::kSum, r.axes = {-1}, r.keep_dims = false;
  expect_values(naive::reduce(x, r), {2, 3}, {6, 22, 38, 54, 70, 86});
  r.op = ReduceOp::kMean, r.axes = {0, 2}, r.keep_dims = true;
  expect_values(naive::reduce(x, r), {1, 3, 1}, {7.5, 11.5, 15.5});
  r.op = ReduceOp::kMax, r.axes = {1};
  expect_values(naive::reduce(x, r), {2, 1, 4}, {8, 9, 10, 11, 20, 21, 22, 23});
  r.axes = {};  // reduces nothing, as the shape inference says
  EXPECT_EQ(naive::reduce(x, r).data, x.data);

  const HostTensor a({1, 2}, {1, 2}), b({1, 1}, {3});
  expect_values(naive::concatenation({&a, &b}, -1), {1, 3}, {1, 2, 3});
  expect_values(naive::concatenation({&a, &a}, 0), {2, 2}, {1, 2, 1, 2});
}

// ---- the fast kernels against the naive ones ----

struct ConvCase {
  int64_t n, h, w, c, k;
  int r, s, stride_h, stride_w, dilation_h, dilation_w, groups;
  Padding padding;
  bool bias;
};

TEST(FastConvolution, MatchesNaiveOnAwkwardShapes) {
  const std::vector<ConvCase> cases = {
      {2, 13, 11, 67, 5, 1, 1, 1, 1, 1, 1, 1, {}, true},                 // pointwise: one GEMM
      {3, 7, 9, 6, 10, 1, 1, 1, 1, 1, 1, 2, {}, false},                  // pointwise, 2 groups
      {2, 13, 9, 67, 13, 1, 1, 2, 2, 1, 1, 1, {}, true},                 // 1×1 stride 2
      {2, 9, 11, 13, 67, 3, 3, 1, 1, 1, 1, 1, Padding::symmetric(1), true},
      {2, 13, 9, 5, 13, 3, 3, 2, 2, 1, 1, 1, {0, 1, 1, 0}, true},        // stride 2, asymmetric padding
      {3, 15, 17, 13, 5, 3, 3, 1, 1, 2, 2, 1, Padding::symmetric(2), false},  // dilation 2
      {3, 17, 23, 3, 13, 7, 7, 2, 2, 1, 1, 1, {2, 3, 3, 2}, true},       // a ResNet stem
      {2, 11, 7, 10, 6, 3, 3, 1, 1, 1, 1, 2, {1, 1, 1, 1}, true},        // 2 groups
      {2, 12, 9, 13, 13, 3, 3, 2, 2, 1, 1, 13, {1, 0, 0, 1}, true},      // depthwise
      {3, 9, 13, 5, 5, 5, 5, 1, 1, 2, 2, 5, Padding::symmetric(4), false},  // depthwise, dilation 2
      {2, 7, 8, 5, 10, 3, 3, 1, 1, 1, 1, 5, Padding::symmetric(1), true},   // depth multiplier 2
      {2, 10, 11, 5, 7, 3, 1, 2, 1, 1, 2, 1, {1, 0, 2, 0}, true},        // 3×1, mixed stride/dilation
      {2, 45, 47, 64, 16, 3, 3, 1, 1, 1, 1, 1, Padding::symmetric(1), true},  // several im2col tiles
      {1, 5, 4, 3, 2, 7, 7, 1, 1, 1, 1, 1, Padding::symmetric(3), true},  // window mostly padding
  };
  std::mt19937 rng(1234);
  for (const ConvCase& t : cases) {
    ConvolutionParams p;
    p.out_channels = static_cast<int>(t.k), p.kernel = {t.r, t.s}, p.stride = {t.stride_h, t.stride_w};
    p.dilation = {t.dilation_h, t.dilation_w}, p.groups = t.groups, p.padding = t.padding;
    p.kernel_weights = random_weights({t.k, t.c / t.groups, t.r, t.s}, rng);
    if (t.bias) p.bias = random_weights({t.k}, rng);
    const HostTensor in = random_tensor({t.n, t.h, t.w, t.c}, rng);
    const HostTensor want = naive::convolution(in, p);
    HostTensor got = output_like(want);
    fast::convolution(in, p, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance)
        << to_string(in.shape) << " → " << t.k << ", " << t.r << "×" << t.s << " stride " << t.stride_h << ","
        << t.stride_w << " dilation " << t.dilation_h << "," << t.dilation_w << " groups " << t.groups;
    // A second run reuses the cached packed weights.
    fast::convolution(in, p, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance);
  }
}

TEST(FastConvolution, RejectsAWrongOutputShape) {
  ConvolutionParams p;
  p.out_channels = 2, p.kernel = {3, 3};
  p.kernel_weights = make_weights({2, 1, 3, 3}, std::vector<float>(18, 1.0f));
  const HostTensor in({1, 5, 5, 1});
  HostTensor out({1, 5, 5, 2});  // unpadded 3×3 gives 3×3
  EXPECT_THROW(fast::convolution(in, p, out, test_pool()), Error);
}

TEST(FastConvolution, FusedEpilogueMatchesNaive) {
  // Pointwise, im2col with groups, depthwise: each applies the epilogue on its own path.
  const std::vector<ConvCase> cases = {
      {2, 9, 7, 13, 67, 1, 1, 1, 1, 1, 1, 1, {}, true},
      {3, 11, 9, 10, 6, 3, 3, 2, 2, 1, 1, 2, {0, 1, 1, 0}, false},
      {2, 9, 11, 13, 13, 3, 3, 1, 1, 1, 1, 13, Padding::symmetric(1), true},
  };
  std::mt19937 rng(77);
  for (const ConvCase& t : cases)
    for (ActivationType type : {ActivationType::kRelu, ActivationType::kHardSwish, ActivationType::kSigmoid})
      for (bool with_residual : {false, true}) {
        ConvolutionParams p;
        p.out_channels = static_cast<int>(t.k), p.kernel = {t.r, t.s}, p.stride = {t.stride_h, t.stride_w};
        p.groups = t.groups, p.padding = t.padding;
        p.kernel_weights = random_weights({t.k, t.c / t.groups, t.r, t.s}, rng);
        if (t.bias) p.bias = random_weights({t.k}, rng);
        p.activation = ActivationParams{type, 0.0f, 0.0f};
        const HostTensor in = random_tensor({t.n, t.h, t.w, t.c}, rng);
        const HostTensor residual = random_tensor(naive::convolution(in, p).shape, rng, -2.0f, 2.0f);
        const HostTensor* r = with_residual ? &residual : nullptr;
        const HostTensor want = naive::convolution(in, p, r);
        HostTensor got = output_like(want);
        fast::convolution(in, p, got, test_pool(), r);
        EXPECT_LE(relative_error(got, want), kTolerance)
            << to_string(in.shape) << " groups " << t.groups << " " << to_string(type) << " residual " << with_residual;
      }
}

TEST(FastPooling, MatchesNaiveOnAwkwardShapes) {
  struct Case {
    Shape shape;
    PoolingType type;
    std::array<int, 2> window, stride;
    Padding padding;
    bool include_pad, global;
  };
  const std::vector<Case> cases = {
      {{2, 13, 11, 67}, PoolingType::kMax, {3, 3}, {2, 2}, {0, 1, 1, 0}, false, false},
      {{3, 9, 7, 5}, PoolingType::kMax, {2, 2}, {2, 2}, {}, false, false},
      {{2, 13, 11, 13}, PoolingType::kAverage, {3, 3}, {2, 2}, {0, 1, 1, 0}, false, false},
      {{2, 13, 11, 13}, PoolingType::kAverage, {3, 3}, {2, 2}, {0, 1, 1, 0}, true, false},
      {{2, 9, 10, 3}, PoolingType::kAverage, {7, 7}, {1, 1}, Padding::symmetric(3), false, false},
      {{3, 9, 10, 67}, PoolingType::kAverage, {1, 1}, {1, 1}, {}, false, true},
      {{2, 7, 5, 131}, PoolingType::kMax, {1, 1}, {1, 1}, {}, false, true},
  };
  std::mt19937 rng(99);
  for (const Case& t : cases) {
    PoolingParams p;
    p.type = t.type, p.window = t.window, p.stride = t.stride, p.padding = t.padding;
    p.count_include_pad = t.include_pad, p.global = t.global;
    const HostTensor in = random_tensor(t.shape, rng);
    const HostTensor want = naive::pooling(in, p);
    HostTensor got = output_like(want);
    fast::pooling(in, p, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance) << to_string(t.shape) << " window " << t.window[0];
  }
}

TEST(FastResize, MatchesNaiveOnAwkwardShapes) {
  std::mt19937 rng(5);
  const std::vector<std::pair<Shape, std::array<int, 2>>> sizes = {
      {{2, 7, 9, 13}, {14, 18}}, {{3, 7, 9, 3}, {10, 13}}, {{2, 13, 11, 5}, {5, 4}}, {{1, 1, 3, 67}, {4, 1}}};
  for (const auto& [shape, out] : sizes)
    for (ResizeMode mode : {ResizeMode::kBilinear, ResizeMode::kNearest})
      for (ResizeCoordinates coords :
           {ResizeCoordinates::kAsymmetric, ResizeCoordinates::kHalfPixel, ResizeCoordinates::kAlignCorners}) {
        ResizeParams p;
        p.mode = mode, p.coordinates = coords, p.out_height = out[0], p.out_width = out[1];
        if (out[0] == 14) p.out_height = p.out_width = 0, p.scale_height = p.scale_width = 2.0f;  // by scale
        const HostTensor in = random_tensor(shape, rng);
        const HostTensor want = naive::resize(in, p);
        HostTensor got = output_like(want);
        fast::resize(in, p, got, test_pool());
        EXPECT_LE(relative_error(got, want), kTolerance)
            << to_string(shape) << " mode " << static_cast<int>(mode) << " coordinates " << static_cast<int>(coords);
      }
}

TEST(FastElementWise, MatchesNaiveForEachBroadcastFastPath) {
  std::mt19937 rng(11);
  const Shape full{2, 7, 9, 13};
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {full, full}, {full, {1}}, {{1, 1, 1, 1}, full}, {full, {13}}, {{1, 1, 1, 13}, full}, {{3, 67}, {67}}};
  for (const auto& [sa, sb] : pairs)
    for (ElementWiseOp op : {ElementWiseOp::kAdd, ElementWiseOp::kSub, ElementWiseOp::kMul, ElementWiseOp::kDiv,
                             ElementWiseOp::kMax, ElementWiseOp::kMin, ElementWiseOp::kPow}) {
      // Positive operands keep pow real and division away from zero.
      const bool positive = op == ElementWiseOp::kPow || op == ElementWiseOp::kDiv;
      const HostTensor a = random_tensor(sa, rng, positive ? 0.5f : -1.0f, 2.0f);
      const HostTensor b = random_tensor(sb, rng, positive ? 0.5f : -1.0f, 2.0f);
      ASSERT_TRUE(fast::has_fast_elementwise(sa, sb)) << to_string(sa) << " " << to_string(sb);
      const HostTensor want = naive::elementwise(a, b, op);
      HostTensor got = output_like(want);
      fast::elementwise(a, b, op, got, test_pool());
      EXPECT_LE(relative_error(got, want), kTolerance) << to_string(sa) << " " << to_string(sb) << " op "
                                                       << static_cast<int>(op);
    }
  EXPECT_FALSE(fast::has_fast_elementwise({2, 1, 3}, {1, 4, 3}));  // general broadcast: naive only
}

TEST(FastActivation, MatchesNaiveForEachType) {
  std::mt19937 rng(3);
  const HostTensor in = random_tensor({3, 11, 13, 67}, rng, -8.0f, 8.0f);
  for (ActivationType type : {ActivationType::kRelu, ActivationType::kSigmoid, ActivationType::kTanh,
                              ActivationType::kClip, ActivationType::kHardSigmoid, ActivationType::kHardSwish,
                              ActivationType::kLeakyRelu}) {
    ActivationParams p;
    p.type = type, p.alpha = type == ActivationType::kClip ? -0.5f : 0.2f, p.beta = type == ActivationType::kClip ? 6.0f : 0.5f;
    const HostTensor want = naive::activation(in, p);
    HostTensor got = output_like(want);
    fast::activation(in, p, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance) << to_string(type);
  }
}

TEST(FastScaleAndUnary, MatchNaive) {
  std::mt19937 rng(8);
  const HostTensor in = random_tensor({2, 9, 7, 13}, rng, 0.1f, 2.0f);
  std::vector<ScaleParams> cases(4);
  cases[0].scale = random_weights({13}, rng), cases[0].shift = random_weights({13}, rng);
  cases[1].mode = ScaleMode::kUniform, cases[1].scale = random_weights({1}, rng);
  cases[2].shift = random_weights({13}, rng);
  cases[3].scale = random_weights({13}, rng, 0.5f, 1.5f), cases[3].power = random_weights({13}, rng, 0.5f, 2.0f);
  for (const ScaleParams& p : cases) {
    const HostTensor want = naive::scale(in, p);
    HostTensor got = output_like(want);
    fast::scale(in, p, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance);
  }
  for (UnaryOp op : {UnaryOp::kExp, UnaryOp::kLog, UnaryOp::kSqrt, UnaryOp::kRsqrt, UnaryOp::kAbs, UnaryOp::kNeg,
                     UnaryOp::kReciprocal, UnaryOp::kFloor, UnaryOp::kCeil, UnaryOp::kSin, UnaryOp::kCos}) {
    const HostTensor want = naive::unary(in, op);
    HostTensor got = output_like(want);
    fast::unary(in, op, got, test_pool());
    EXPECT_LE(relative_error(got, want), kTolerance) << to_string(op);
  }
}

TEST(FastConcatenation, MatchesNaiveOnEveryAxis) {
  std::mt19937 rng(21);
  for (int axis : {0, 1, 2, 3, -1}) {
    std::vector<HostTensor> parts;
    for (int64_t extent : {3, 1, 5}) {
      Shape shape{2, 5, 7, 13};
      shape[axis < 0 ? 3 : axis] = extent;
      parts.push_back(random_tensor(shape, rng));
    }
    const std::vector<const HostTensor*> inputs = {&parts[0], &parts[1], &parts[2]};
    const HostTensor want = naive::concatenation(inputs, axis);
    HostTensor got = output_like(want);
    fast::concatenation(inputs, axis, got, test_pool());
    EXPECT_EQ(relative_error(got, want), 0.0) << "axis " << axis;
  }
}

TEST(ThreadPool, CoversTheRangeOnceNestsAndRethrows) {
  ThreadPool& pool = test_pool();
  std::vector<int> hits(10007, 0);
  pool.parallel_for(static_cast<int64_t>(hits.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[i];
    pool.parallel_for(4, [](int64_t, int64_t) {});  // nested: runs inline, must not deadlock
  }, 7);
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), static_cast<long>(hits.size()));
  EXPECT_THROW(pool.parallel_for(100, [](int64_t b, int64_t) { if (b > 50) throw Error("chunk failed"); }, 1),
               Error);
}

// ---- the executor ----

// input → conv 3×3 → relu → max pool 2×2/2 → (itself, and a 1×1 conv of it) → concat → resize ×2.
Network small_network(uint32_t seed) {
  std::mt19937 rng(seed);
  Network net;
  Tensor* x = net.add_input("image", {2, 17, 19, 5});
  ConvolutionParams c1;
  c1.out_channels = 13, c1.kernel = {3, 3}, c1.padding = {0, 1, 1, 0};  // deliberately asymmetric
  c1.kernel_weights = random_weights({13, 5, 3, 3}, rng);
  c1.bias = random_weights({13}, rng);
  Tensor* y = net.add_convolution(x, c1, "conv1");
  y = net.add_activation(y, ActivationType::kRelu, "relu1");
  PoolingParams pool;
  pool.window = {2, 2}, pool.stride = {2, 2};
  Tensor* pooled = net.add_pooling(y, pool, "pool1");
  ConvolutionParams c2;
  c2.out_channels = 7;
  c2.kernel_weights = random_weights({7, 13, 1, 1}, rng);
  Tensor* branch = net.add_convolution(pooled, c2, "conv2");
  Tensor* cat = net.add_concatenation({pooled, branch}, 3, "concat");
  ResizeParams up;
  up.out_height = 16, up.out_width = 18;
  Tensor* out = net.add_resize(cat, up, "upsample");
  net.mark_output(out, "score");
  net.mark_output(branch, "branch");
  return net;
}

TEST(CpuEngine, FastMatchesNaiveOnASmallNetworkAtTwoSizes) {
  CpuEngine fast_engine(small_network(42), CpuOptions{3, false});
  CpuEngine naive_engine(small_network(42), CpuOptions{1, true});
  std::mt19937 rng(43);
  for (const Shape& shape : {Shape{2, 17, 19, 5}, Shape{3, 15, 21, 5}}) {
    const std::map<std::string, HostTensor> inputs = {{"image", random_tensor(shape, rng)}};
    const auto got = fast_engine.run(inputs);
    const auto want = naive_engine.run(inputs);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_EQ(want.size(), 2u);
    for (const auto& [name, tensor] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_LE(relative_error(got.at(name), tensor), kTolerance) << name << " at " << to_string(shape);
    }
    EXPECT_EQ(want.at("score").shape[0], shape[0]);
    EXPECT_EQ(want.at("branch").shape[1], (shape[1] - 1) / 2);  // conv: H+1−3+1 rows; the pool halves them
  }
}

TEST(CpuEngine, AMissingOrMisshapenInputIsAnErrorNamingIt) {
  CpuEngine engine(small_network(1));
  auto message = [&](const std::map<std::string, HostTensor>& inputs) {
    try {
      engine.run(inputs);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({}).find("'image'"), std::string::npos) << message({});
  EXPECT_NE(message({{"image", HostTensor({17, 19, 5})}}).find("'image'"), std::string::npos);
  EXPECT_NE(message({{"image", HostTensor({1, 17, 19, 5})}, {"imgae", HostTensor({1})}}).find("'imgae'"),
            std::string::npos);
  // After the errors the engine still runs.
  std::mt19937 rng(2);
  EXPECT_EQ(engine.run({{"image", random_tensor({1, 17, 19, 5}, rng)}}).size(), 2u);
}

// Not a pass/fail test: prints what the fast convolution reaches on a typical EAST layer.
TEST(FastConvolutionSpeed, PrintsGflopsOn168x320x256To256ThreeByThree) {
  std::mt19937 rng(17);
  ConvolutionParams p;
  p.out_channels = 256, p.kernel = {3, 3}, p.padding = Padding::symmetric(1);
  p.kernel_weights = random_weights({256, 256, 3, 3}, rng, -0.05f, 0.05f);
  p.bias = random_weights({256}, rng);
  const HostTensor in = random_tensor({1, 168, 320, 256}, rng);
  HostTensor out({1, 168, 320, 256});
  ThreadPool& pool = ThreadPool::shared(0);
  fast::convolution(in, p, out, pool);  // warm-up: packs the weights, starts OpenBLAS's threads
  const int runs = 3;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) fast::convolution(in, p, out, pool);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / runs;
  const double flops = 2.0 * 168 * 320 * 256 * 256 * 9;
  std::printf("[ speed    ] fast conv 1x168x320x256 -> 256, 3x3: %.1f ms, %.1f GFLOP/s on %d threads\n",
              seconds * 1e3, flops / seconds * 1e-9, pool.size());
  ConvolutionParams q = p;  // and the 1×1 layer that follows it in a bottleneck
  q.kernel = {1, 1}, q.padding = {};
  q.kernel_weights = random_weights({256, 256, 1, 1}, rng);
  fast::convolution(in, q, out, pool);
  const auto start1 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) fast::convolution(in, q, out, pool);
  const double seconds1 = std::chrono::duration<double>(std::chrono::steady_clock::now() - start1).count() / runs;
  std::printf("[ speed    ] fast conv 1x168x320x256 -> 256, 1x1: %.1f ms, %.1f GFLOP/s\n", seconds1 * 1e3,
              flops / 9 / seconds1 * 1e-9);
}

}  // namespace
}  // namespace eastrt::cpu
