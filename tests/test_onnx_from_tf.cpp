// EAST converted from TensorFlow by tf2onnx (tests/fixtures/tf/tf2onnx, opsets 13 and 18, H and W left
// unknown) through the ONNX importer: on the CPU engine it must give ONNX Runtime's recorded outputs and
// what eastrt's own TensorFlow import of the same frozen graph gives on the same input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/onnx_import.h"
#include "eastrt/tf_import.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt {
namespace {

const std::string kTf = EASTRT_SOURCE_DIR "/tests/fixtures/tf/";
const std::string kTf2Onnx = kTf + "tf2onnx/";
constexpr float kTolerance = 1e-4f;
// The geometry is sigmoid · 512 (distances) and (sigmoid − ½) · π/2 (angle): it is compared relative to
// that scale, so 1e-4 means the same on the sigmoid as on the score. ONNX Runtime and TensorFlow themselves
// differ by 2e-5 of it (tf2onnx.json).
constexpr float kGeometryScale = 512.0f;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json description() { return nlohmann::json::parse(read_bytes(kTf2Onnx + "tf2onnx.json")); }

// A fixture array (float32, or uint8 pixels fed as their float values).
HostTensor read_array(const std::string& path, const nlohmann::json& entry) {
  const std::string bytes = read_bytes(path);
  HostTensor t(entry["shape"].get<Shape>());
  if (entry.value("dtype", "float32") == "uint8") {
    EXPECT_EQ(bytes.size(), t.data.size()) << path;
    for (size_t i = 0; i < t.data.size() && i < bytes.size(); ++i) t.data[i] = static_cast<uint8_t>(bytes[i]);
  } else {
    EXPECT_EQ(bytes.size(), t.data.size() * sizeof(float)) << path;
    std::memcpy(t.data.data(), bytes.data(), std::min(bytes.size(), t.data.size() * sizeof(float)));
  }
  return t;
}

float max_abs_error(const HostTensor& a, const HostTensor& b, float scale = 1.0f) {
  EXPECT_EQ(a.shape, b.shape);
  if (a.shape != b.shape) return INFINITY;
  float worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const float e = std::abs(a.data[i] - b.data[i]) / scale;
    worst = std::max(worst, std::isnan(e) ? INFINITY : e);
  }
  return worst;
}

// The tf2onnx model imported at the case's input shape, run on the CPU engine.
std::map<std::string, HostTensor> run_onnx(const std::string& file, const HostTensor& input) {
  const nlohmann::json d = description();
  OnnxImportOptions options;
  options.input_shapes[d["input"]] = input.shape;
  CpuEngine engine(import_onnx(kTf2Onnx + file, options));
  return engine.run({{d["input"], input}});
}

TEST(OnnxFromTf, EastMatchesOnnxRuntimeAndTfImport) {
  const nlohmann::json d = description();
  const std::string score = d["outputs"]["score"], geometry = d["outputs"]["geometry"];
  TfGraph frozen = TfGraph::load(kTf + d["source"].get<std::string>());
  const std::vector<std::string> tf_outputs{east::kScoreOutput, east::kGeometryOutput};
  ASSERT_EQ(d["models"].size(), 2u);
  float worst_ort = 0, worst_tf = 0;
  for (const auto& model : d["models"]) {
    ASSERT_EQ(model["cases"].size(), 2u);
    for (const auto& c : model["cases"]) {
      const std::string what = model["file"].get<std::string>() + " " + c["name"].get<std::string>();
      const HostTensor input = read_array(kTf + c["input"]["file"].get<std::string>(), c["input"]);
      auto out = run_onnx(model["file"], input);
      ASSERT_TRUE(out.count(score) && out.count(geometry)) << what;

      const HostTensor ort_score = read_array(kTf2Onnx + c["score"]["file"].get<std::string>(), c["score"]);
      const HostTensor ort_geometry = read_array(kTf2Onnx + c["geometry"]["file"].get<std::string>(), c["geometry"]);
      const float e_score = max_abs_error(out[score], ort_score);
      const float e_geometry = max_abs_error(out[geometry], ort_geometry, kGeometryScale);
      EXPECT_LE(e_score, kTolerance) << what << ": score against ONNX Runtime";
      EXPECT_LE(e_geometry, kTolerance) << what << ": geometry / 512 against ONNX Runtime";

      CpuEngine tf_engine(tf_to_network(frozen, {tf_outputs, {{east::kInputName, input.shape}}}));
      auto tf_out = tf_engine.run({{east::kInputName, input}});
      const float t_score = max_abs_error(out[score], tf_out.at(east::kScoreOutput));
      const float t_geometry = max_abs_error(out[geometry], tf_out.at(east::kGeometryOutput), kGeometryScale);
      EXPECT_LE(t_score, kTolerance) << what << ": score against eastrt's TF import";
      EXPECT_LE(t_geometry, kTolerance) << what << ": geometry / 512 against eastrt's TF import";
      std::cout << what << ": vs ONNX Runtime score " << e_score << ", geometry/512 " << e_geometry
                << "; vs TF import score " << t_score << ", geometry/512 " << t_geometry << " (geometry max abs "
                << max_abs_error(out[geometry], tf_out.at(east::kGeometryOutput)) << ")\n";
      worst_ort = std::max({worst_ort, e_score, e_geometry});
      worst_tf = std::max({worst_tf, t_score, t_geometry});
    }
  }
  RecordProperty("max_error_vs_onnxruntime", std::to_string(worst_ort));
  RecordProperty("max_error_vs_tf_import", std::to_string(worst_tf));
}

// Imported once, the network runs at every size (the detector sees many): tf2onnx writes the score's
// NCHW → NHWC as a 5-D Reshape and a Squeeze, which must follow the input, not keep the import's H and W.
// Imported at each case's size in turn, run at the other's, it must still give ONNX Runtime's outputs.
TEST(OnnxFromTf, EastImportedOnceRunsAtAnotherSize) {
  const nlohmann::json d = description();
  const std::string score = d["outputs"]["score"], geometry = d["outputs"]["geometry"];
  for (const auto& model : d["models"]) {
    const auto& cases = model["cases"];
    for (int imported = 0; imported < 2; ++imported) {
      OnnxImportOptions options;
      options.input_shapes[d["input"]] = cases[imported]["input"]["shape"].get<Shape>();
      CpuEngine engine(import_onnx(kTf2Onnx + model["file"].get<std::string>(), options));
      const auto& c = cases[1 - imported];
      const HostTensor input = read_array(kTf + c["input"]["file"].get<std::string>(), c["input"]);
      ASSERT_NE(input.shape, options.input_shapes[d["input"]]) << "the two cases must differ in size";
      auto out = engine.run({{d["input"], input}});
      const HostTensor ort_score = read_array(kTf2Onnx + c["score"]["file"].get<std::string>(), c["score"]);
      const HostTensor ort_geometry = read_array(kTf2Onnx + c["geometry"]["file"].get<std::string>(), c["geometry"]);
      const std::string what = model["file"].get<std::string>() + " imported at " +
                               to_string(options.input_shapes[d["input"]]) + ", run at " + to_string(input.shape);
      EXPECT_LE(max_abs_error(out.at(score), ort_score), kTolerance) << what;
      EXPECT_LE(max_abs_error(out.at(geometry), ort_geometry, kGeometryScale), kTolerance) << what;
    }
  }
}

// tf2onnx wraps every NHWC TensorFlow op in Transposes to ONNX's NCHW and back; on the IR's NHWC they
// must cancel: the network is the TF import's layers (batch norms already folded by tf2onnx) and no
// shuffle but the score's reshape.
TEST(OnnxFromTf, TransposesCancel) {
  const nlohmann::json d = description();
  for (const auto& model : d["models"]) {
    OnnxImportOptions options;
    options.input_shapes[d["input"]] = {1, 64, 96, 3};
    Network network = import_onnx(kTf2Onnx + model["file"].get<std::string>(), options);
    int shuffles = 0, convolutions = 0, slices = 0;
    for (const Layer& layer : network.layers()) {
      shuffles += layer.kind() == LayerKind::kShuffle;
      convolutions += layer.kind() == LayerKind::kConvolution;
      slices += layer.kind() == LayerKind::kSlice;
    }
    EXPECT_EQ(convolutions, 63) << model["file"];
    EXPECT_EQ(slices, 3) << model["file"] << ": the mean subtraction's Split";
    // The score's: tf2onnx writes its NCHW → NHWC Transpose of one channel as a 5-D Reshape and a Squeeze.
    EXPECT_EQ(shuffles, 2) << model["file"] << "\n" << to_text(network);
    // Inputs and outputs keep TensorFlow's NHWC, which is the ONNX model's own order.
    EXPECT_EQ(network.tensor(network.inputs()[0]).shape, (Shape{1, 64, 96, 3}));
    EXPECT_EQ(network.find_tensor(d["outputs"]["score"])->shape, (Shape{1, 16, 24, 1}));
    EXPECT_EQ(network.find_tensor(d["outputs"]["geometry"])->shape, (Shape{1, 16, 24, 5}));
  }
}

TEST(OnnxFromTf, UnknownHeightAndWidthNeedAShape) {
  const nlohmann::json d = description();
  const std::string file = kTf2Onnx + d["models"][0]["file"].get<std::string>();
  std::string message = error_of([&] { import_onnx(file); });
  EXPECT_NE(message.find("input 'input_images:0'"), std::string::npos) << message;
  EXPECT_NE(message.find("dynamic"), std::string::npos) << message;
  OnnxImportOptions options;
  options.input_shapes[""] = {1, 64, 96, 4};  // the model fixes 3 channels (its last dimension)
  message = error_of([&] { import_onnx(file, options); });
  EXPECT_NE(message.find("dimension 3"), std::string::npos) << message;
}

}  // namespace
}  // namespace eastrt
