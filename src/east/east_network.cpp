// EAST with a ResNet-50 v1 backbone, exactly as TF-slim and the reference EAST code define it: stride on
// the last unit of each block, explicit padding for strided convolutions, TF `SAME` pooling, asymmetric
// bilinear upsampling, batch norm as a per-channel scale.
#include "eastrt/east.h"

#include <cmath>
#include <numbers>
#include <random>

#include "eastrt/error.h"

namespace eastrt::east {

namespace {

constexpr float kBatchNormEpsilon = 1e-5f;

struct BlockSpec {
  const char* name;
  int base_depth, units, stride;
};
constexpr BlockSpec kBlocks[] = {{"block1", 64, 3, 2}, {"block2", 128, 4, 2}, {"block3", 256, 6, 2},
                                 {"block4", 512, 3, 1}};
constexpr int kMergeDepths[] = {128, 64, 32};

// Walks the network once, either collecting weight specs or building layers: one description of EAST.
class EastWalker {
 public:
  EastWalker(const NetworkOptions& options, const WeightSource* weights, Network* network)
      : options_(options), weights_(weights), network_(network) {}

  std::vector<WeightSpec> specs;

  Tensor* run(Tensor* input) {
    const int d = options_.width_divisor;
    // Mean subtraction (no division), as the reference graph does it before the backbone.
    Tensor* x = scale(input, {-123.68f, -116.78f, -103.94f}, "mean_subtraction");

    x = conv_bn(x, "resnet_v1_50/conv1", 3, 64 / d, 7, 2, Padding::symmetric(3), true);
    x = pool_same(x, "resnet_v1_50/pool1");
    std::vector<Tensor*> ends{x};  // pool2, pool3, pool4, pool5
    int channels = 64 / d;
    std::vector<int> end_channels{channels};
    for (const BlockSpec& block : kBlocks) {
      int depth = 4 * block.base_depth / d, bottleneck = block.base_depth / d;
      for (int unit = 1; unit <= block.units; ++unit) {
        int stride = unit == block.units ? block.stride : 1;
        std::string scope = std::string("resnet_v1_50/") + block.name + "/unit_" + std::to_string(unit) +
                            "/bottleneck_v1";
        x = bottleneck_unit(x, scope, channels, depth, bottleneck, stride);
        channels = depth;
      }
      if (std::string(block.name) != "block3") {
        ends.push_back(x);
        end_channels.push_back(channels);
      }
    }

    // Merge branch: h = pool5; g = up(h); h = conv3x3(conv1x1(concat[g, f])) for pool4, pool3, pool2.
    Tensor* h = ends[3];
    int h_channels = channels;
    int conv = 0;
    auto next_conv = [&]() { return "feature_fusion/" + std::string(conv ? "Conv_" + std::to_string(conv) : "Conv"); };
    for (int i = 0; i < 3; ++i) {
      Tensor* f = ends[2 - i];
      int f_channels = end_channels[2 - i];
      Tensor* g = upsample(h, "feature_fusion/unpool_" + std::to_string(i));
      Tensor* c = concat({g, f}, i == 0 ? "feature_fusion/concat" : "feature_fusion/concat_" + std::to_string(i));
      int out = kMergeDepths[i] / d;
      h = conv_bn(c, next_conv(), h_channels + f_channels, out, 1, 1, {}, true);
      ++conv;
      h = conv_bn(h, next_conv(), out, out, 3, 1, Padding::symmetric(1), true);
      ++conv;
      h_channels = out;
    }
    Tensor* g3 = conv_bn(h, next_conv(), h_channels, 32 / d, 3, 1, Padding::symmetric(1), true);

    // Heads: 1×1 convolutions with bias and no batch norm.
    Tensor* score = head(g3, "feature_fusion/Conv_7", 32 / d, 1);
    Tensor* distances = head(g3, "feature_fusion/Conv_8", 32 / d, 4);
    Tensor* angle = head(g3, "feature_fusion/Conv_9", 32 / d, 1);
    if (!network_) return nullptr;
    distances = network_->add_scale(distances, uniform(512.0f, 0.0f), "feature_fusion/mul");
    // (sigmoid − 0.5) · π/2, written as one affine map.
    constexpr float half_pi = std::numbers::pi_v<float> / 2;
    angle = network_->add_scale(angle, uniform(half_pi, -0.5f * half_pi), "feature_fusion/mul_1");
    Tensor* geometry = network_->add_concatenation({distances, angle}, 3, kGeometryOutput);
    network_->mark_output(score, kScoreOutput);
    network_->mark_output(geometry);
    return score;
  }

 private:
  HostTensor weight(const std::string& name, Shape shape) {
    specs.push_back({name, shape});
    if (!weights_) return {};
    return weights_->get(name, shape);
  }

  static ScaleParams uniform(float s, float shift) {
    return {ScaleMode::kUniform, make_weights({1}, {s}), make_weights({1}, {shift}), nullptr};
  }

  Tensor* scale(Tensor* x, std::vector<float> shift, const std::string& name) {
    if (!network_) return x;
    int64_t c = static_cast<int64_t>(shift.size());
    return network_->add_scale(x, {ScaleMode::kChannel, nullptr, make_weights({c}, std::move(shift)), nullptr},
                               name);
  }

  Tensor* conv_bn(Tensor* x, const std::string& scope, int in, int out, int k, int stride, Padding padding,
                  bool relu) {
    HostTensor filter = weight(scope + "/weights", {k, k, in, out});
    HostTensor gamma = weight(scope + "/BatchNorm/gamma", {out});
    HostTensor beta = weight(scope + "/BatchNorm/beta", {out});
    HostTensor mean = weight(scope + "/BatchNorm/moving_mean", {out});
    HostTensor variance = weight(scope + "/BatchNorm/moving_variance", {out});
    if (!network_) return x;
    ConvolutionParams p;
    p.out_channels = out;
    p.kernel = {k, k};
    p.stride = {stride, stride};
    p.padding = padding;
    HostTensor kcrs = rsck_to_kcrs(filter);
    p.kernel_weights = make_weights(kcrs.shape, std::move(kcrs.data));
    x = network_->add_convolution(x, std::move(p), scope + "/Conv2D");
    // Inference batch norm: y = gamma (x − mean) / sqrt(var + eps) + beta.
    std::vector<float> s(out), b(out);
    for (int i = 0; i < out; ++i) {
      s[i] = gamma.data[i] / std::sqrt(variance.data[i] + kBatchNormEpsilon);
      b[i] = beta.data[i] - mean.data[i] * s[i];
    }
    x = network_->add_scale(x, {ScaleMode::kChannel, make_weights({out}, s), make_weights({out}, b), nullptr},
                            scope + "/BatchNorm");
    if (relu) x = network_->add_activation(x, ActivationType::kRelu, scope + "/Relu");
    return x;
  }

  Tensor* head(Tensor* x, const std::string& scope, int in, int out) {
    HostTensor filter = weight(scope + "/weights", {1, 1, in, out});
    HostTensor bias = weight(scope + "/biases", {out});
    if (!network_) return x;
    ConvolutionParams p;
    p.out_channels = out;
    HostTensor kcrs = rsck_to_kcrs(filter);
    p.kernel_weights = make_weights(kcrs.shape, std::move(kcrs.data));
    p.bias = make_weights(bias.shape, std::move(bias.data));
    x = network_->add_convolution(x, std::move(p), scope + "/Conv2D");
    return network_->add_activation(x, ActivationType::kSigmoid, scope + "/Sigmoid");
  }

  // TF `SAME` 3×3/2 max pooling: for even sizes nothing before and one row/column after.
  Tensor* pool_same(Tensor* x, const std::string& name) {
    if (!network_) return x;
    auto pad = [](int64_t size) {
      int64_t out = (size + 1) / 2;
      int64_t total = std::max<int64_t>((out - 1) * 2 + 3 - size, 0);
      return std::pair<int, int>(static_cast<int>(total / 2), static_cast<int>(total - total / 2));
    };
    auto [top, bottom] = pad(x->shape[1]);
    auto [left, right] = pad(x->shape[2]);
    return network_->add_pooling(x, {PoolingType::kMax, {3, 3}, {2, 2}, {top, left, bottom, right}}, name);
  }

  Tensor* bottleneck_unit(Tensor* x, const std::string& scope, int in, int depth, int bottleneck, int stride) {
    Tensor* shortcut = x;
    if (depth != in) {
      shortcut = conv_bn(x, scope + "/shortcut", in, depth, 1, stride, {}, false);
    } else if (stride > 1 && network_) {
      // TF-slim subsamples the identity with a 1×1 max pool of the unit's stride: every s-th pixel.
      shortcut = network_->add_pooling(x, {PoolingType::kMax, {1, 1}, {stride, stride}, {}}, scope + "/shortcut");
    }
    Tensor* r = conv_bn(x, scope + "/conv1", in, bottleneck, 1, 1, {}, true);
    r = conv_bn(r, scope + "/conv2", bottleneck, bottleneck, 3, stride, Padding::symmetric(1), true);
    r = conv_bn(r, scope + "/conv3", bottleneck, depth, 1, 1, {}, false);
    if (!network_) return x;
    Tensor* sum = network_->add_elementwise(shortcut, r, ElementWiseOp::kAdd, scope + "/add");
    return network_->add_activation(sum, ActivationType::kRelu, scope + "/Relu");
  }

  Tensor* upsample(Tensor* x, const std::string& name) {
    if (!network_) return x;
    ResizeParams p{ResizeMode::kBilinear, ResizeCoordinates::kAsymmetric, 0, 0, 2.0f, 2.0f};
    return network_->add_resize(x, p, name);
  }

  Tensor* concat(const std::vector<Tensor*>& parts, const std::string& name) {
    if (!network_) return parts[0];
    return network_->add_concatenation(parts, 3, name);
  }

  NetworkOptions options_;
  const WeightSource* weights_;
  Network* network_;
};

void check_options(const NetworkOptions& o) {
  EASTRT_CHECK(o.batch > 0 && o.height >= 32 && o.width >= 32 && o.height % 32 == 0 && o.width % 32 == 0,
               "EAST input must be N×H×W×3 with H and W positive multiples of 32, got ", o.batch, "x", o.height,
               "x", o.width, "x3");
  EASTRT_CHECK(o.width_divisor >= 1 && 32 % o.width_divisor == 0, "EAST width divisor must divide 32, got ",
               o.width_divisor);
}

}  // namespace

std::vector<WeightSpec> weight_specs(const NetworkOptions& options) {
  check_options(options);
  EastWalker walker(options, nullptr, nullptr);
  walker.run(nullptr);
  return walker.specs;
}

Network build(const WeightSource& weights, const NetworkOptions& options) {
  check_options(options);
  Network network;
  Tensor* input = network.add_input(kInputName, {options.batch, options.height, options.width, 3});
  EastWalker walker(options, &weights, &network);
  walker.run(input);
  network.validate();
  return network;
}

InMemoryWeights random_weights(const NetworkOptions& options, uint32_t seed) {
  std::mt19937 rng(seed);
  InMemoryWeights weights;
  for (const WeightSpec& spec : weight_specs(options)) {
    HostTensor t(spec.shape);
    const std::string& n = spec.name;
    auto ends_with = [&](const char* suffix) {
      std::string s(suffix);
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with("/weights")) {
      double fan_in = static_cast<double>(spec.shape[0] * spec.shape[1] * spec.shape[2]);
      std::normal_distribution<float> normal(0.0f, static_cast<float>(std::sqrt(2.0 / fan_in)));
      for (float& v : t.data) v = normal(rng);
    } else if (ends_with("/conv3/BatchNorm/gamma")) {
      // A small last gamma in each residual branch keeps activations bounded through the 16 units.
      std::fill(t.data.begin(), t.data.end(), 0.2f);
    } else if (ends_with("/gamma") || ends_with("/moving_variance")) {
      std::fill(t.data.begin(), t.data.end(), 1.0f);
    }  // beta, moving_mean and biases stay 0
    weights.set(spec.name, std::move(t));
  }
  return weights;
}

}  // namespace eastrt::east
