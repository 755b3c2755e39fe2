// The IR and the definition API: shape inference, misuse errors, weight layouts, and the EAST network's
// shapes and arithmetic at several input sizes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/network.h"
#include "test_support.h"

using namespace eastrt::test_support;

using namespace eastrt;

namespace {

ConvolutionParams conv_params(int in, int out, int k, int stride, Padding pad) {
  ConvolutionParams p;
  p.out_channels = out;
  p.kernel = {k, k};
  p.stride = {stride, stride};
  p.padding = pad;
  p.kernel_weights = make_weights({out, in, k, k}, std::vector<float>(out * in * k * k, 0.5f));
  return p;
}


}  // namespace

TEST(Network, ConvolutionShapesWithAsymmetricPadding) {
  Network net;
  Tensor* x = net.add_input("x", {2, 7, 9, 5});
  Tensor* y = net.add_convolution(x, conv_params(5, 3, 3, 2, {0, 1, 1, 0}), "conv");
  // rows: (7 + 0 + 1 - 3) / 2 + 1 = 3; columns: (9 + 1 + 0 - 3) / 2 + 1 = 4
  EXPECT_EQ(y->shape, (Shape{2, 3, 4, 3}));
}

TEST(Network, ConvolutionOutputFormula) {
  // out = (in + pad_before + pad_after - dilation*(k-1) - 1) / stride + 1
  Network net;
  Tensor* x = net.add_input("x", {1, 10, 11, 4});
  auto p = conv_params(4, 6, 3, 2, {1, 0, 0, 1});
  p.dilation = {2, 1};
  Tensor* y = net.add_convolution(x, p, "c");
  EXPECT_EQ(y->shape, (Shape{1, (10 + 1 - 5) / 2 + 1, (11 + 1 - 3) / 2 + 1, 6}));
}

TEST(Network, MismatchNamesLayerAndShapes) {
  Network net;
  Tensor* x = net.add_input("x", {1, 8, 8, 4});
  std::string message = error_of([&] { net.add_convolution(x, conv_params(3, 6, 3, 1, {}), "bad_conv"); });
  EXPECT_NE(message.find("bad_conv"), std::string::npos) << message;
  EXPECT_NE(message.find("6x3x3x3"), std::string::npos) << message;
  EXPECT_NE(message.find("6x4x3x3"), std::string::npos) << message;

  Tensor* a = net.add_input("a", {1, 4, 4, 3});
  Tensor* b = net.add_input("b", {1, 5, 4, 3});
  message = error_of([&] { net.add_concatenation({a, b}, 3, "cat"); });
  EXPECT_NE(message.find("cat"), std::string::npos) << message;
  EXPECT_NE(message.find("1x5x4x3"), std::string::npos) << message;
  message = error_of([&] { net.add_elementwise(a, b, ElementWiseOp::kAdd, "sum"); });
  EXPECT_NE(message.find("sum"), std::string::npos) << message;
  EXPECT_NE(message.find("do not broadcast"), std::string::npos) << message;
}

TEST(Network, ApiMisuse) {
  Network net;
  Tensor* x = net.add_input("x", {1, 4, 4, 3});
  EXPECT_THROW(net.add_input("x", {1, 2}), Error);        // duplicate name
  EXPECT_THROW(net.add_input("y", {1, 0, 3}), Error);     // empty dimension
  net.add_activation(x, ActivationType::kRelu, "relu");
  EXPECT_THROW(net.add_activation(x, ActivationType::kRelu, "relu"), Error);  // duplicate layer
  EXPECT_THROW(net.validate(), Error);                    // no output marked
  Network other;
  Tensor* foreign = other.add_input("z", {1, 4, 4, 3});
  Tensor fake = *foreign;
  EXPECT_THROW(net.add_activation(&fake, ActivationType::kRelu), Error);
  EXPECT_THROW(net.set_input_shape("nope", {1, 2, 2, 3}), Error);
  EXPECT_THROW(net.set_input_shape("x", {1, 2, 3}), Error);
  SliceParams slice{{0, 0, 0, 0}, {1, 5, 4, 3}, {1, 1, 1, 1}};
  EXPECT_THROW(net.add_slice(x, slice, "slice"), Error);
}

TEST(Network, BroadcastReduceShuffleSlice) {
  Network net;
  Tensor* x = net.add_input("x", {2, 3, 5, 7});
  Tensor* c = net.add_constant(make_weights({7}, std::vector<float>(7, 1)), "bias");
  EXPECT_EQ(net.add_elementwise(x, c, ElementWiseOp::kMul)->shape, (Shape{2, 3, 5, 7}));
  EXPECT_EQ(net.add_reduce(x, {ReduceOp::kMean, {1, 2}, true})->shape, (Shape{2, 1, 1, 7}));
  EXPECT_EQ(net.add_reduce(x, {ReduceOp::kSum, {-1}, false})->shape, (Shape{2, 3, 5}));
  EXPECT_EQ(net.add_shuffle(x, {{0, 3, 1, 2}, {}})->shape, (Shape{2, 7, 3, 5}));
  EXPECT_EQ(net.add_shuffle(x, {{0, 3, 1, 2}, {0, -1}})->shape, (Shape{2, 105}));
  EXPECT_EQ(net.add_slice(x, {{0, 1, 0, 2}, {2, 2, 3, 3}, {1, 1, 2, 1}})->shape, (Shape{2, 2, 3, 3}));
  EXPECT_EQ(net.add_pooling(x, {PoolingType::kAverage, {1, 1}, {1, 1}, {}, true})->shape, (Shape{2, 1, 1, 7}));
  DeconvolutionParams d;
  d.out_channels = 4;
  d.kernel = {2, 2};
  d.stride = {2, 2};
  d.kernel_weights = make_weights({7, 4, 2, 2}, std::vector<float>(7 * 4 * 4, 0.1f));
  EXPECT_EQ(net.add_deconvolution(x, d)->shape, (Shape{2, 6, 10, 4}));
}

// A slice whose size is kToTheEnd follows the input: the network runs at other sizes; a fixed size does not
// stretch, and a start past the end of a smaller input is an error, not an empty tensor.
TEST(Network, SliceToTheEndFollowsTheInput) {
  Network net;
  Tensor* x = net.add_input("x", {2, 8, 6, 5});
  constexpr int64_t kEnd = SliceParams::kToTheEnd;
  Tensor* y = net.add_slice(x, {{0, 2, 0, 1}, {kEnd, kEnd, 3, 2}, {1, 3, 2, 1}}, "y");
  net.mark_output(y);
  EXPECT_EQ(y->shape, (Shape{2, 2, 3, 2}));  // rows 2 and 5 of 8
  net.set_input_shape("x", {1, 12, 9, 5});
  EXPECT_EQ(net.find_tensor("y")->shape, (Shape{1, 4, 3, 2}));  // rows 2, 5, 8, 11 of 12
  EXPECT_THROW(net.set_input_shape("x", {1, 2, 9, 5}), Error);
}

TEST(Network, FullyConnectedUsesTensorFlowLayout) {
  Network net;
  Tensor* x = net.add_input("x", {3, 5});
  HostTensor w({5, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});  // [C=5, K=2]
  Tensor* y = net.add_fully_connected(x, w, nullptr, "fc");
  EXPECT_EQ(y->shape, (Shape{3, 2}));
  const auto& conv = net.layers()[1].as<ConvolutionParams>();
  ASSERT_EQ(conv.kernel_weights->shape, (Shape{2, 5, 1, 1}));
  EXPECT_EQ(conv.kernel_weights->data[0], 1);   // k=0: column 0 of [C,K]
  EXPECT_EQ(conv.kernel_weights->data[1], 3);
  EXPECT_EQ(conv.kernel_weights->data[5], 2);   // k=1
}

TEST(Network, RsckToKcrs) {
  HostTensor rsck({2, 3, 4, 5});
  for (size_t i = 0; i < rsck.data.size(); ++i) rsck.data[i] = static_cast<float>(i);
  HostTensor kcrs = rsck_to_kcrs(rsck);
  ASSERT_EQ(kcrs.shape, (Shape{5, 4, 2, 3}));
  for (int r = 0; r < 2; ++r)
    for (int s = 0; s < 3; ++s)
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 5; ++k)
          EXPECT_EQ(kcrs.data[((k * 4 + c) * 2 + r) * 3 + s], rsck.data[((r * 3 + s) * 4 + c) * 5 + k]);
}

TEST(Network, TextAndDotDumps) {
  Network net;
  Tensor* x = net.add_input("x", {1, 8, 8, 3});
  Tensor* y = net.add_convolution(x, conv_params(3, 4, 3, 1, {1, 1, 1, 1}), "conv");
  net.mark_output(net.add_activation(y, ActivationType::kSigmoid, "out"));
  std::string text = to_text(net);
  EXPECT_NE(text.find("conv = Convolution(x) -> 1x8x8x4"), std::string::npos) << text;
  EXPECT_NE(text.find("output out 1x8x8x4"), std::string::npos) << text;
  std::string dot = to_dot(net);
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  EXPECT_NE(dot.find("\"l:conv\" -> \"l:out\""), std::string::npos) << dot;
}

TEST(East, OutputShapesAtSeveralSizes) {
  for (auto [n, h, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 672, 1280}, {2, 64, 96}, {3, 320, 32}, {1, 32, 32}}) {
    east::NetworkOptions options{n, h, w, 8};
    Network net = east::build(east::random_weights(options), options);
    ASSERT_EQ(net.outputs().size(), 2u);
    EXPECT_EQ(net.tensor(net.outputs()[0]).name, east::kScoreOutput);
    EXPECT_EQ(net.tensor(net.outputs()[0]).shape, (Shape{n, h / 4, w / 4, 1}));
    EXPECT_EQ(net.tensor(net.outputs()[1]).name, east::kGeometryOutput);
    EXPECT_EQ(net.tensor(net.outputs()[1]).shape, (Shape{n, h / 4, w / 4, 5}));
  }
}

TEST(East, FullSizeArithmeticAndParameters) {
  east::NetworkOptions options;  // 1x672x1280, full width
  std::vector<east::WeightSpec> specs = east::weight_specs(options);
  int64_t params = 0;
  for (const auto& s : specs) params += volume(s.shape);
  EXPECT_NEAR(params / 1e6, 24.0, 0.5);  // ≈24 M parameters, batch-norm statistics included
  Network net = east::build(east::random_weights(options), options);
  EXPECT_NEAR(net.macs() / 1e9, 63.3, 0.05);
  // Reshaping re-infers every shape.
  net.set_input_shape(east::kInputName, {2, 320, 640, 3});
  EXPECT_EQ(net.tensor(net.outputs()[1]).shape, (Shape{2, 80, 160, 5}));
}

TEST(East, MissingAndMisShapedWeightsAreNamed) {
  east::NetworkOptions options{1, 64, 64, 8};
  InMemoryWeights weights = east::random_weights(options);
  InMemoryWeights missing;
  for (const auto& name : weights.names())
    if (name != "resnet_v1_50/block3/unit_4/bottleneck_v1/conv2/BatchNorm/moving_variance")
      missing.set(name, weights.get(name));
  std::string message = error_of([&] { east::build(missing, options); });
  EXPECT_NE(message.find("resnet_v1_50/block3/unit_4/bottleneck_v1/conv2/BatchNorm/moving_variance"),
            std::string::npos) << message;

  weights.set("feature_fusion/Conv_7/weights", HostTensor({1, 1, 4, 2}));
  message = error_of([&] { east::build(weights, options); });
  EXPECT_NE(message.find("feature_fusion/Conv_7/weights"), std::string::npos) << message;
  EXPECT_NE(message.find("1x1x4x2"), std::string::npos) << message;
  EXPECT_NE(message.find("1x1x4x1"), std::string::npos) << message;

  EXPECT_THROW(east::build(weights, {1, 100, 64, 8}), Error);  // not a multiple of 32
}

TEST(East, TfSlimNames) {
  auto specs = east::weight_specs({1, 64, 64, 1});
  auto has = [&](const std::string& n) {
    return std::any_of(specs.begin(), specs.end(), [&](const auto& s) { return s.name == n; });
  };
  EXPECT_TRUE(has("resnet_v1_50/conv1/weights"));
  EXPECT_TRUE(has("resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/weights"));
  EXPECT_FALSE(has("resnet_v1_50/block1/unit_2/bottleneck_v1/shortcut/weights"));
  EXPECT_TRUE(has("resnet_v1_50/block4/unit_3/bottleneck_v1/conv3/BatchNorm/gamma"));
  EXPECT_TRUE(has("feature_fusion/Conv_6/BatchNorm/moving_mean"));
  EXPECT_TRUE(has("feature_fusion/Conv_9/biases"));
  EXPECT_FALSE(has("feature_fusion/Conv_10/weights"));
}
