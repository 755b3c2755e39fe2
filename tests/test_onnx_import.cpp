// The ONNX importer against ONNX Runtime: PP-OCRv4 det (a real DBNet) and a tiny EAST-like model run on the
// CPU engine must give ONNX Runtime's outputs (tests/fixtures/onnx/make_onnx_fixtures.py made them); bad
// files and unsupported operators must give errors naming the file, the node and the op.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "eastrt/cpu_engine.h"
#include "eastrt/error.h"
#include "eastrt/onnx_import.h"
#include "import/onnx/onnx_model.pb.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {

const std::string kFixtures = EASTRT_SOURCE_DIR "/tests/fixtures/onnx/";
const std::string kPpocr = EASTRT_SOURCE_DIR "/../shared/models/ppocr/ch_PP-OCRv4_det_infer.onnx";
constexpr float kTolerance = 1e-4f;

// The fixture script's input generator: splitmix64 draws, top 24 bits mapped to [-1, 1).
HostTensor seeded_input(const Shape& shape, uint64_t seed) {
  HostTensor t(shape);
  uint64_t state = seed;
  for (float& v : t.data) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    v = static_cast<float>(z >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
  return t;
}

// The script's page-like input: dark bars of "characters" (-2) on a light ground (+2), plus 0.25 × the noise.
HostTensor text_input(const Shape& shape, uint64_t seed) {
  HostTensor t = seeded_input(shape, seed);
  const int64_t height = shape[2], width = shape[3];
  for (int64_t i = 0; i < t.size(); ++i) {
    const int64_t h = i / width % height, w = i % width;
    const bool dark = (h / 8) % 3 == 1 && (w / 5) % 4 != 0 && w >= 8 && w < width - 8;
    t.data[i] = (dark ? -2.0f : 2.0f) + 0.25f * t.data[i];
  }
  return t;
}

HostTensor case_input(const nlohmann::json& c) {
  const Shape shape = c["shape"].get<Shape>();
  const uint64_t seed = c["seed"].get<uint64_t>();
  return c["pattern"] == "text" ? text_input(shape, seed) : seeded_input(shape, seed);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

HostTensor read_f32(const std::string& path, const Shape& shape) {
  const std::string bytes = read_bytes(path);
  HostTensor t(shape);
  EXPECT_EQ(bytes.size(), t.data.size() * sizeof(float)) << path;
  std::memcpy(t.data.data(), bytes.data(), std::min(bytes.size(), t.data.size() * sizeof(float)));
  return t;
}

nlohmann::json cases_of(const std::string& model) {
  nlohmann::json index = nlohmann::json::parse(read_bytes(kFixtures + "index.json"));
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : index["cases"])
    if (c["model"] == model) cases.push_back(c);
  return cases;
}

float max_abs_error(const HostTensor& a, const HostTensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  if (a.shape != b.shape) return INFINITY;
  float worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i) worst = std::max(worst, std::abs(a.data[i] - b.data[i]));
  return worst;
}

// N,C,H,W ↔ N,H,W,C.
HostTensor permute4(const HostTensor& t, bool to_nhwc) {
  const auto& s = t.shape;
  HostTensor out(to_nhwc ? Shape{s[0], s[2], s[3], s[1]} : Shape{s[0], s[3], s[1], s[2]});
  const int64_t n = s[0], a = s[1], b = s[2], c = s[3];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t x = 0; x < a; ++x)
      for (int64_t y = 0; y < b; ++y)
        for (int64_t z = 0; z < c; ++z) {
          const int64_t src = ((i * a + x) * b + y) * c + z;
          const int64_t dst = to_nhwc ? ((i * b + y) * c + z) * a + x : ((i * c + z) * a + x) * b + y;
          out.data[dst] = t.data[src];
        }
  return out;
}

// Runs every recorded case of `model` on networks imported at the case's shape; returns the worst error.
float check_cases(const std::string& path, const std::string& model) {
  const nlohmann::json cases = cases_of(model);
  EXPECT_FALSE(cases.empty()) << "no cases for " << model << " in index.json";
  float worst = 0;
  for (const auto& c : cases) {
    const Shape shape = c["shape"].get<Shape>();
    OnnxImportOptions options;
    options.input_shapes[c["input"]] = shape;
    for (const auto& [name, expected] : c["outputs"].items()) options.outputs.push_back(name);
    CpuEngine engine(import_onnx(path, options));
    auto outputs = engine.run({{c["input"], case_input(c)}});
    for (const auto& [name, expected] : c["outputs"].items()) {
      EXPECT_TRUE(outputs.count(name)) << "no output " << name;
      const float error =
          max_abs_error(outputs[name], read_f32(kFixtures + expected["file"].get<std::string>(),
                                                expected["shape"].get<Shape>()));
      std::cout << model << " " << to_string(shape) << " " << name << ": max abs error " << error << "\n";
      EXPECT_LE(error, kTolerance) << model << " " << to_string(shape) << " output " << name;
      worst = std::max(worst, error);
    }
  }
  return worst;
}


TEST(OnnxImport, PpOcrDetMatchesOnnxRuntime) {
  if (!std::filesystem::exists(kPpocr)) GTEST_SKIP() << "PP-OCRv4 det model absent: " << kPpocr;
  const float worst = check_cases(kPpocr, "ppocr_det");
  RecordProperty("max_abs_error", std::to_string(worst));
}

TEST(OnnxImport, PpOcrDetImportedOnceRunsAtOtherSizes) {
  if (!std::filesystem::exists(kPpocr)) GTEST_SKIP() << "PP-OCRv4 det model absent: " << kPpocr;
  const nlohmann::json cases = cases_of("ppocr_det");
  ASSERT_GE(cases.size(), 2u);
  OnnxImportOptions options;
  options.input_shapes["x"] = cases[0]["shape"].get<Shape>();
  Network network = import_onnx(kPpocr, options);
  EXPECT_EQ(network.inputs().size(), 1u);
  EXPECT_EQ(network.tensor(network.outputs()[0]).name, "sigmoid_0.tmp_0");
  CpuEngine engine(std::move(network));
  const auto& c = cases[cases.size() - 1];
  const Shape shape = c["shape"].get<Shape>();
  auto out = engine.run({{"x", case_input(c)}});
  const auto& expected = c["outputs"]["sigmoid_0.tmp_0"];
  EXPECT_LE(max_abs_error(out["sigmoid_0.tmp_0"], read_f32(kFixtures + expected["file"].get<std::string>(),
                                                           expected["shape"].get<Shape>())),
            kTolerance);
}

TEST(OnnxImport, TinyEastMatchesOnnxRuntime) {
  const float worst = check_cases(kFixtures + "tiny_east.onnx", "tiny_east");
  RecordProperty("max_abs_error", std::to_string(worst));
}

TEST(OnnxImport, TinyEastMapsLayersAndAxes) {
  OnnxImportOptions options;
  options.input_shapes["x"] = {1, 3, 32, 32};
  Network network = import_onnx(kFixtures + "tiny_east.onnx", options);
  bool asymmetric_conv = false, batch_norm_scale = false, concat_on_channels = false, resize_by_scale = 0;
  for (const Layer& layer : network.layers()) {
    if (layer.name == "c1")
      asymmetric_conv = layer.as<ConvolutionParams>().padding == Padding{0, 0, 1, 1};
    if (layer.name == "bn1") batch_norm_scale = layer.kind() == LayerKind::kScale;
    if (layer.name == "cat") concat_on_channels = layer.as<ConcatenationParams>().axis == 3;
    // The full-size upsampling's sizes come from Shape(x): they become a scale, so it follows the input.
    if (layer.name == "score_full") resize_by_scale = layer.as<ResizeParams>().scale_height == 2.0f;
  }
  EXPECT_TRUE(asymmetric_conv);
  EXPECT_TRUE(batch_norm_scale);
  EXPECT_TRUE(concat_on_channels);
  EXPECT_TRUE(resize_by_scale);
  EXPECT_EQ(network.tensor(network.inputs()[0]).shape, (Shape{1, 3, 32, 32}));
  EXPECT_EQ(network.find_tensor("geometry")->shape, (Shape{1, 4, 16, 16}));
}

TEST(OnnxImport, NhwcInputAndOutputLayouts) {
  const nlohmann::json c = cases_of("tiny_east")[0];
  const Shape nchw = c["shape"].get<Shape>();
  OnnxImportOptions options;
  options.input_layout = OnnxLayout::kNhwc;
  options.output_layout = OnnxLayout::kNhwc;
  options.input_shapes["x"] = {nchw[0], nchw[2], nchw[3], nchw[1]};
  CpuEngine engine(import_onnx(kFixtures + "tiny_east.onnx", options));
  auto out = engine.run({{"x", permute4(case_input(c), true)}});
  const auto& expected = c["outputs"]["geometry"];
  HostTensor reference = read_f32(kFixtures + expected["file"].get<std::string>(), expected["shape"].get<Shape>());
  EXPECT_LE(max_abs_error(permute4(out["geometry"], false), reference), kTolerance);
}

TEST(OnnxImport, UnsupportedOperatorNamesNodeAndOp) {
  const std::string message = error_of([] { import_onnx(kFixtures + "unsupported_op.onnx"); });
  EXPECT_NE(message.find("my_einsum"), std::string::npos) << message;
  EXPECT_NE(message.find("Einsum"), std::string::npos) << message;
  EXPECT_NE(message.find("unsupported_op.onnx"), std::string::npos) << message;
}

TEST(OnnxImport, TruncatedCorruptAndMissingFilesNameTheFile) {
  const std::string bytes = read_bytes(kFixtures + "tiny_east.onnx");
  ASSERT_GT(bytes.size(), 100u);
  const std::string dir = testing::TempDir();
  const std::vector<std::pair<std::string, std::string>> bad{
      {dir + "truncated.onnx", bytes.substr(0, bytes.size() / 2)},
      {dir + "corrupt.onnx", std::string(300, '\xff')},
      {dir + "empty.onnx", ""}};
  for (const auto& [path, content] : bad) {
    std::ofstream(path, std::ios::binary) << content;
    const std::string message = error_of([&] { import_onnx(path); });
    EXPECT_NE(message.find(path), std::string::npos) << "for " << path << ": '" << message << "'";
  }
  const std::string missing = dir + "no_such_model.onnx";
  EXPECT_NE(error_of([&] { import_onnx(missing); }).find(missing), std::string::npos);
}

TEST(OnnxImport, RejectsOpsetsOutsideTheRangeAndExternalData) {
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(read_bytes(kFixtures + "tiny_east.onnx")));
  OnnxImportOptions options;
  options.input_shapes["x"] = {1, 3, 32, 32};
  onnx::ModelProto old = model;
  old.mutable_opset_import(0)->set_version(9);
  std::string message = error_of([&] { import_onnx_bytes(old.SerializeAsString(), "old.onnx", options); });
  EXPECT_NE(message.find("old.onnx"), std::string::npos) << message;
  EXPECT_NE(message.find("opset 9"), std::string::npos) << message;

  onnx::ModelProto external = model;
  external.mutable_graph()->mutable_initializer(0)->set_data_location(onnx::TensorProto::EXTERNAL);
  message = error_of([&] { import_onnx_bytes(external.SerializeAsString(), "external.onnx", options); });
  EXPECT_NE(message.find("external"), std::string::npos) << message;
  EXPECT_NE(message.find("w1"), std::string::npos) << message;
}

TEST(OnnxImport, DynamicInputWithoutShapeIsAnError) {
  const std::string message = error_of([] { import_onnx(kFixtures + "tiny_east.onnx"); });
  EXPECT_NE(message.find("input 'x'"), std::string::npos) << message;
  EXPECT_NE(message.find("input_shapes"), std::string::npos) << message;
  OnnxImportOptions options;
  options.input_shapes["x"] = {1, 4, 32, 32};  // the model fixes 3 channels
  EXPECT_NE(error_of([&] { import_onnx(kFixtures + "tiny_east.onnx", options); }).find("dimension 1"),
            std::string::npos);
}

// ---------------------------------------------------------------- small models made here

// A model of one float input and the given nodes, initializers and outputs, at `opset`.
struct ModelMaker {
  onnx::ModelProto model;
  ModelMaker(int64_t opset, const std::string& input, const Shape& shape) {
    model.set_ir_version(8);
    auto* o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    auto* in = model.mutable_graph()->add_input();
    in->set_name(input);
    in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) {  // a negative size: a dynamic dimension
      auto* dim = in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim();
      if (d < 0) dim->set_dim_param("d" + std::to_string(in->type().tensor_type().shape().dim_size()));
      else dim->set_dim_value(d);
    }
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
    auto* n = model.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + outputs[0]);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  void int64s(const std::string& name, const std::vector<int64_t>& values) {
    auto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
  }
  void floats(const std::string& name, const HostTensor& value) {
    auto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : value.shape) t->add_dims(d);
    for (float v : value.data) t->add_float_data(v);
  }
  void output(const std::string& name) { model.mutable_graph()->add_output()->set_name(name); }
  Network import(const OnnxImportOptions& options = {}) const {
    return import_onnx_bytes(model.SerializeAsString(), "made.onnx", options);
  }
};

// x[:, begin:begin+size] of an N,C,H,W tensor.
HostTensor channels(const HostTensor& x, int64_t begin, int64_t size) {
  const int64_t n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
  HostTensor out({n, size, x.shape[2], x.shape[3]});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < size; ++k)
      for (int64_t p = 0; p < hw; ++p) out.data[(i * size + k) * hw + p] = x.data[(i * c + begin + k) * hw + p];
  return out;
}

// Split's sizes as an attribute (opset 11), an input (13) and num_outputs with a smaller last piece (18).
TEST(OnnxImport, SplitAtEveryOpset) {
  std::mt19937 rng(5);
  const HostTensor x = random_tensor({2, 5, 3, 4}, rng);
  for (int64_t opset : {11, 13, 18}) {
    ModelMaker m(opset, "x", x.shape);
    onnx::NodeProto* split = m.node("Split", {"x"}, {"a", "b"});
    ModelMaker::integer(split, "axis", 1);
    if (opset == 11) ModelMaker::ints(split, "split", {2, 3});
    if (opset == 13) {
      m.int64s("sizes", {2, 3});
      split->add_input("sizes");
    }
    if (opset == 18) ModelMaker::integer(split, "num_outputs", 2);
    m.output("a");
    m.output("b");
    CpuEngine engine(m.import());
    auto out = engine.run({{"x", x}});
    const int64_t first = opset == 18 ? 3 : 2;  // ceil(5 / 2)
    EXPECT_EQ(max_abs_error(out["a"], channels(x, 0, first)), 0.0f) << "opset " << opset;
    EXPECT_EQ(max_abs_error(out["b"], channels(x, first, 5 - first)), 0.0f) << "opset " << opset;
  }
  // Imported at one size, run at another: the pieces are whole in every other dimension.
  ModelMaker sized(13, "x", {-1, 5, -1, -1});
  sized.int64s("sizes", {4, 1});
  onnx::NodeProto* split = sized.node("Split", {"x", "sizes"}, {"a", "b"});
  ModelMaker::integer(split, "axis", 1);
  sized.output("a");
  OnnxImportOptions options;
  options.input_shapes["x"] = x.shape;
  CpuEngine engine(sized.import(options));
  const HostTensor other = random_tensor({3, 5, 2, 7}, rng);
  EXPECT_EQ(max_abs_error(engine.run({{"x", other}})["a"], channels(other, 0, 4)), 0.0f);

  ModelMaker m(13, "x", x.shape);
  ModelMaker::integer(m.node("Split", {"x"}, {"a", "b"}), "axis", 1);
  m.output("a");
  const std::string message = error_of([&] { m.import(); });
  EXPECT_NE(message.find("cannot split 5 into 2 equal parts"), std::string::npos) << message;
  EXPECT_NE(message.find("(Split)"), std::string::npos) << message;
}

// An NHWC input transposed to NCHW for a convolution and back, as tf2onnx writes every TF conv: no
// shuffle at all, and the values of a 1×1 convolution over the last dimension.
TEST(OnnxImport, TransposesAroundConvolutionCostNothing) {
  std::mt19937 rng(9);
  const HostTensor x = random_tensor({2, 5, 7, 3}, rng), w = random_tensor({4, 3, 1, 1}, rng);
  ModelMaker m(13, "x", x.shape);
  ModelMaker::ints(m.node("Transpose", {"x"}, {"x_nchw"}), "perm", {0, 3, 1, 2});
  m.floats("w", w);
  m.node("Conv", {"x_nchw", "w"}, {"y_nchw"});
  ModelMaker::ints(m.node("Transpose", {"y_nchw"}, {"y"}), "perm", {0, 2, 3, 1});
  // And a second consumer of x that needs it in NCHW: one shuffle, shared with no one else.
  m.node("Relu", {"x_nchw"}, {"r"});
  m.output("y");
  m.output("r");
  Network network = m.import();
  int shuffles = 0;
  for (const Layer& layer : network.layers()) shuffles += layer.kind() == LayerKind::kShuffle;
  EXPECT_EQ(shuffles, 1) << to_text(network);  // r: computed on x as it is, brought to NCHW once for output
  CpuEngine engine(std::move(network));
  auto out = engine.run({{"x", x}});
  HostTensor want({2, 5, 7, 4});
  for (int64_t p = 0; p < 2 * 5 * 7; ++p)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t c = 0; c < 3; ++c) want.data[p * 4 + k] += x.data[p * 3 + c] * w.data[k * 3 + c];
  EXPECT_LE(max_abs_error(out["y"], want), 1e-6f);
  HostTensor relu = permute4(x, false);
  for (float& v : relu.data) v = std::max(v, 0.0f);
  EXPECT_EQ(max_abs_error(out["r"], relu), 0.0f);
}

// Transposes that cancel leave the input's own tensor: the outputs still get tensors of their own.
TEST(OnnxImport, OutputsOfCancellingTransposesKeepTheirNames) {
  std::mt19937 rng(3);
  const HostTensor x = random_tensor({1, 2, 3, 4}, rng);
  ModelMaker m(13, "x", x.shape);
  ModelMaker::ints(m.node("Transpose", {"x"}, {"t"}), "perm", {0, 2, 3, 1});
  ModelMaker::ints(m.node("Transpose", {"t"}, {"y"}), "perm", {0, 3, 1, 2});
  m.node("Identity", {"y"}, {"z"});
  m.output("y");
  m.output("z");
  Network network = m.import();
  EXPECT_EQ(network.tensor(network.inputs()[0]).name, "x");
  CpuEngine engine(std::move(network));
  auto out = engine.run({{"x", x}});
  EXPECT_EQ(max_abs_error(out["y"], x), 0.0f);
  EXPECT_EQ(max_abs_error(out["z"], x), 0.0f);
}

// Regression (fuzz_onnx, docs/FUZZING.md): a Reshape target whose entries multiply past int64 was
// signed overflow; it is an error naming the node.
TEST(OnnxImport, ReshapeTargetOverflowIsAnError) {
  ModelMaker m(13, "x", {1, 2, 3, 4});
  m.int64s("shape", {4856691293956341760, 6340608, -1});
  m.node("Reshape", {"x", "shape"}, {"y"});
  m.output("y");
  const std::string message = error_of([&] { m.import(); });
  EXPECT_NE(message.find("'Reshape_y' (Reshape)"), std::string::npos) << message;
  EXPECT_NE(message.find("multiply past"), std::string::npos) << message;
}

// The `eastrt onnx-check` command on a good model (NHWC, run once) and on one it cannot convert.
TEST(OnnxImport, OnnxCheckCommand) {
  auto run_tool = [](const std::string& arguments, int& status) {
    std::string command = std::string(EASTRT_TOOL) + " onnx-check " + arguments + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    std::array<char, 4096> buffer;
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
    status = WEXITSTATUS(pclose(pipe));
    return output;
  };
  int status = -1;
  std::string out = run_tool(kFixtures + "tiny_east.onnx --input 2x24x40x3 --layout nhwc --run", status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("output geometry 2x12x20x4"), std::string::npos) << out;
  EXPECT_NE(out.find("ran    score_full 2x24x40x1"), std::string::npos) << out;
  out = run_tool(kFixtures + "unsupported_op.onnx", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("'my_einsum' (Einsum)"), std::string::npos) << out;
}

}  // namespace
}  // namespace eastrt
