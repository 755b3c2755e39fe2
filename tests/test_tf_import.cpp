// TensorFlow import against TensorFlow itself: frozen and eastrt-frozen EAST graphs, the training graph,
// per-op graphs (tests/fixtures/tf_ops), partial conversion with the fallback executor, and bad input.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <google/protobuf/util/message_differencer.h>
#include <nlohmann/json.hpp>

#include "eastrt/checkpoint.h"
#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/tf_import.h"
#include "import/tf/tf_graph.pb.h"
#include "test_support.h"

using namespace eastrt::test_support;

using namespace eastrt;

namespace {

const std::string kTf = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/tf/";
const std::string kOps = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/tf_ops/";
const std::vector<std::string> kEastOutputs{east::kScoreOutput, east::kGeometryOutput};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_bytes(path)); }

HostTensor read_tensor(const std::string& dir, const nlohmann::json& entry) {
  const std::string bytes = read_bytes(dir + entry["file"].get<std::string>());
  HostTensor t(entry["shape"].get<Shape>());
  if (entry.value("dtype", "float32") == "uint8") {
    EXPECT_EQ(bytes.size(), t.data.size());
    for (size_t i = 0; i < t.data.size() && i < bytes.size(); ++i) t.data[i] = static_cast<uint8_t>(bytes[i]);
  } else {
    EXPECT_EQ(bytes.size(), t.data.size() * 4);
    std::memcpy(t.data.data(), bytes.data(), std::min(bytes.size(), t.data.size() * 4));
  }
  return t;
}

// Largest |a − b| / max(1, |b|) with `relative`, else largest |a − b|.
double max_error(const HostTensor& a, const HostTensor& b, bool relative) {
  EXPECT_EQ(a.shape, b.shape);
  if (a.shape != b.shape) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    double e = std::fabs(static_cast<double>(a.data[i]) - b.data[i]);
    if (relative) e /= std::max(1.0, std::fabs(static_cast<double>(b.data[i])));
    worst = std::max(worst, std::isnan(e) ? INFINITY : e);
  }
  return worst;
}

struct EastCase {
  std::string name;
  HostTensor input, score, geometry;
};

std::vector<EastCase> east_cases() {
  std::vector<EastCase> cases;
  const nlohmann::json description = read_json(kTf + "outputs.json");
  for (const auto& c : description["east"]["cases"])
    cases.push_back({c["name"], read_tensor(kTf, c["input"]), read_tensor(kTf, c["score"]), read_tensor(kTf, c["geometry"])});
  return cases;
}

// The graph converted at the case's input shape, run on the CPU engine, against TensorFlow's outputs.
void expect_east_outputs(const TfGraph& graph, const std::string& what) {
  const std::vector<EastCase> cases = east_cases();
  ASSERT_EQ(cases.size(), 2u);
  for (const EastCase& c : cases) {
    Network network = tf_to_network(graph, {kEastOutputs, {{east::kInputName, c.input.shape}}});
    CpuEngine engine(std::move(network));
    auto out = engine.run({{east::kInputName, c.input}});
    EXPECT_LE(max_error(out.at(east::kScoreOutput), c.score, false), 1e-4) << what << " " << c.name;
    EXPECT_LE(max_error(out.at(east::kGeometryOutput), c.geometry, true), 1e-3) << what << " " << c.name;
  }
}


std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("eastrt_tf_" + std::to_string(getpid()) + "_" + name)).string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

tf::NodeDef* find_node(TfGraph& graph, const std::string& name) {
  for (tf::NodeDef& node : *graph.def().mutable_node())
    if (node.name() == name) return &node;
  ADD_FAILURE() << "no node " << name;
  return nullptr;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

// ---------------------------------------------------------------- EAST against TensorFlow

TEST(TfImport, FrozenEastMatchesTensorFlow) { expect_east_outputs(TfGraph::load(kTf + "frozen.pb"), "frozen.pb"); }

// Converted once, the graph runs at every size: EAST's resize sizes are tf.shape(x)[1:3] * 2, which the
// import keeps as scales of the input, so a network converted at one case's shape gives TensorFlow's
// outputs at the other's (another batch and width).
TEST(TfImport, FrozenEastConvertedOnceRunsAtEverySize) {
  const TfGraph graph = TfGraph::load(kTf + "frozen.pb");
  const std::vector<EastCase> cases = east_cases();
  ASSERT_EQ(cases.size(), 2u);
  for (int converted = 0; converted < 2; ++converted) {
    const EastCase& c = cases[1 - converted];
    ASSERT_NE(cases[converted].input.shape, c.input.shape);
    CpuEngine engine(tf_to_network(graph, {kEastOutputs, {{east::kInputName, cases[converted].input.shape}}}));
    auto out = engine.run({{east::kInputName, c.input}});
    EXPECT_LE(max_error(out.at(east::kScoreOutput), c.score, false), 1e-4) << c.name;
    EXPECT_LE(max_error(out.at(east::kGeometryOutput), c.geometry, true), 1e-3) << c.name;
  }
}

TEST(TfImport, FreezeMatchesConvertVariablesToConstants) {
  auto meta = load_meta_graph(kTf + "infer/model.ckpt.meta");
  TfGraph ours = freeze_graph(*meta, CheckpointReader(kTf + "infer/model.ckpt"), {kEastOutputs});
  TfGraph theirs = TfGraph::load(kTf + "frozen.pb");
  // The same nodes in the same order, and every constant holding the same values as TensorFlow's.
  ASSERT_EQ(ours.node_count(), theirs.node_count());
  for (int i = 0; i < ours.node_count(); ++i) {
    const tf::NodeDef& a = ours.def().node(i);
    const tf::NodeDef& b = theirs.def().node(i);
    ASSERT_EQ(a.name(), b.name());
    ASSERT_EQ(a.op(), b.op()) << a.name();
    ASSERT_EQ(a.input_size(), b.input_size()) << a.name();
    if (a.op() != "Const") continue;
    const tf::TensorProto& x = a.attr().at("value").tensor();
    const tf::TensorProto& y = b.attr().at("value").tensor();
    EXPECT_EQ(x.dtype(), y.dtype()) << a.name();
    if (!y.tensor_content().empty()) EXPECT_EQ(x.tensor_content(), y.tensor_content()) << a.name();
  }
  expect_east_outputs(ours, "infer meta + checkpoint frozen by eastrt");
}

TEST(TfImport, TrainingGraphGivesInferenceOutputs) {
  auto meta = load_meta_graph(kTf + "train/model.ckpt.meta");
  int training_batch_norms = 0;
  for (const tf::NodeDef& node : meta->graph_def().node())
    if (node.op() == "FusedBatchNormV3" && node.attr().at("is_training").b()) ++training_batch_norms;
  ASSERT_GT(training_batch_norms, 0) << "the training fixture has no training-mode batch norm";

  TfGraph frozen = freeze_graph(*meta, CheckpointReader(kTf + "train/model.ckpt", {true}), {kEastOutputs});
  testing::internal::CaptureStderr();
  Network network = tf_to_network(frozen, {kEastOutputs, {{east::kInputName, {1, 64, 96, 3}}}});
  std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(warnings.begin(), warnings.end(), '\n'), training_batch_norms) << warnings;
  EXPECT_CONTAINS(warnings, "training mode");
  EXPECT_CONTAINS(warnings, "resnet_v1_50/conv1/BatchNorm/moving_mean");
  testing::internal::CaptureStderr();
  expect_east_outputs(frozen, "training meta + EMA checkpoint");
  testing::internal::GetCapturedStderr();

  // Where a training batch norm is fed empty statistics (as Keras does), they are found by TF-slim's
  // naming instead: <scope>/moving_mean and <scope>/moving_variance.
  tf::NodeDef* empty = frozen.def().add_node();
  empty->set_name("empty_statistics");
  empty->set_op("Const");
  (*empty->mutable_attr())["dtype"].set_type(tf::DT_FLOAT);
  tf::TensorProto* value = (*empty->mutable_attr())["value"].mutable_tensor();
  value->set_dtype(tf::DT_FLOAT);
  value->mutable_tensor_shape()->add_dim()->set_size(0);
  for (tf::NodeDef& node : *frozen.def().mutable_node())
    if (node.op() == "FusedBatchNormV3") {
      node.set_input(3, "empty_statistics");
      node.set_input(4, "empty_statistics");
    }
  testing::internal::CaptureStderr();
  expect_east_outputs(frozen, "training graph, statistics found by name");
  warnings = testing::internal::GetCapturedStderr();
  EXPECT_CONTAINS(warnings, "with resnet_v1_50/conv1/BatchNorm/moving_mean and resnet_v1_50/conv1/BatchNorm/moving_variance");

  // The raw training variables are not the deployed model: the comparison above can fail.
  TfGraph raw = freeze_graph(*meta, CheckpointReader(kTf + "train/model.ckpt"), {kEastOutputs});
  const EastCase c = east_cases()[0];
  testing::internal::CaptureStderr();
  CpuEngine engine(tf_to_network(raw, {kEastOutputs, {{east::kInputName, c.input.shape}}}));
  testing::internal::GetCapturedStderr();
  EXPECT_GT(max_error(engine.run({{east::kInputName, c.input}}).at(east::kScoreOutput), c.score, false), 1e-2);
}

TEST(TfImport, EastBuiltFromCheckpointMatchesImportedGraph) {
  CheckpointReader checkpoint(kTf + "infer/model.ckpt");
  TfGraph graph = TfGraph::load(kTf + "frozen.pb");
  for (const EastCase& c : east_cases()) {
    east::NetworkOptions options{c.input.shape[0], c.input.shape[1], c.input.shape[2], 8};
    auto built = CpuEngine(east::build(checkpoint, options)).run({{east::kInputName, c.input}});
    auto imported = CpuEngine(tf_to_network(graph, {kEastOutputs, {{east::kInputName, c.input.shape}}}))
                        .run({{east::kInputName, c.input}});
    EXPECT_LE(max_error(built.at(east::kScoreOutput), imported.at(east::kScoreOutput), false), 1e-5) << c.name;
    EXPECT_LE(max_error(built.at(east::kGeometryOutput), imported.at(east::kGeometryOutput), true), 1e-5) << c.name;
    EXPECT_LE(max_error(built.at(east::kScoreOutput), c.score, false), 1e-4) << c.name;
  }
}

TEST(TfImport, OutputNamesFollowTensorFlow) {
  TfGraph graph = TfGraph::load(kTf + "frozen.pb");
  Network network = tf_to_network(graph, {{"feature_fusion/concat_3:0", "split:2"}, {{east::kInputName, {1, 64, 64, 3}}}});
  ASSERT_NE(network.find_tensor("feature_fusion/concat_3:0"), nullptr);
  EXPECT_EQ(network.find_tensor("feature_fusion/concat_3:0")->shape, (Shape{1, 16, 16, 5}));
  EXPECT_EQ(network.find_tensor("split:2")->shape, (Shape{1, 64, 64, 1}));
  EXPECT_CONTAINS(error_of([&] { tf_to_network(graph, {{"split:3"}, {{east::kInputName, {1, 64, 64, 3}}}}); }),
                  "has 3 outputs");
  // TensorFlow makes names unique with _1, _2, ...: an unknown name gets those as suggestions.
  EXPECT_CONTAINS(error_of([&] { tf_to_network(graph, {{"feature_fusion/concat_9"}, {}}); }), "feature_fusion/concat_1");
  EXPECT_CONTAINS(error_of([&] { tf_to_network(graph, {kEastOutputs, {}}); }), "give its full shape");
  EXPECT_CONTAINS(error_of([&] { tf_to_network(graph, {kEastOutputs, {{east::kInputName, {1, 64, 64, 4}}}}); }),
                  "does not fit");
}

// ---------------------------------------------------------------- per-op graphs against TensorFlow

TEST(TfImport, OpGraphsMatchTensorFlow) {
  const nlohmann::json cases = read_json(kOps + "cases.json");
  ASSERT_GE(cases.size(), 10u);
  for (const auto& [family, c] : cases.items()) {
    SCOPED_TRACE(family);
    TfGraph graph = TfGraph::load(kOps + c["graph"].get<std::string>());
    std::map<std::string, HostTensor> inputs;
    std::map<std::string, Shape> shapes;
    for (const auto& [name, entry] : c["inputs"].items()) {
      inputs[name] = read_tensor(kOps, entry);
      shapes[name] = inputs[name].shape;
    }
    std::vector<std::string> outputs;
    std::map<std::string, HostTensor> expected;
    for (const auto& [name, entry] : c["outputs"].items()) {
      outputs.push_back(name);
      expected[name] = read_tensor(kOps, entry);
    }
    auto check = [&](const std::map<std::string, HostTensor>& got, const std::string& how) {
      for (const std::string& name : outputs) {
        ASSERT_TRUE(got.count(name)) << how << " " << name;
        EXPECT_LE(max_error(got.at(name), expected.at(name), true), 1e-4) << how << " " << name;
      }
    };
    if (c["partial"].get<bool>()) {
      EXPECT_CONTAINS(error_of([&] { tf_to_network(graph, {outputs, shapes}); }), "not supported by the converter");
    } else {
      check(CpuEngine(tf_to_network(graph, {outputs, shapes})).run(inputs), "converted");
    }
    // Partial conversion: as segments, and with every node on the fallback executor.
    for (int min_size : {1, 3, 100000}) {
      SegmentedGraph segmented(graph, {outputs, min_size});
      check(segmented.run(inputs), "segments of at least " + std::to_string(min_size));
      if (min_size == 100000) EXPECT_TRUE(segmented.report().segments.empty());
    }
  }
}

// ---------------------------------------------------------------- the segmenter and the fallback executor

TEST(TfImport, SegmentsOfEast) {
  SegmentedGraph segmented(TfGraph::load(kTf + "frozen.pb"), {kEastOutputs, 3});
  const SegmentReport& r = segmented.report();
  EXPECT_EQ(r.nodes_before, 897);
  EXPECT_EQ(r.nodes_after, 2);  // the placeholder and one segment
  EXPECT_EQ(r.segments, std::vector<int>{896});
  EXPECT_EQ(r.summary(), "897 → 2 nodes, segment of 896");
  const EastCase c = east_cases()[1];
  auto out = segmented.run({{east::kInputName, c.input}});
  EXPECT_LE(max_error(out.at(east::kScoreOutput), c.score, false), 1e-4);
  EXPECT_LE(max_error(out.at(east::kGeometryOutput), c.geometry, true), 1e-3);
}

TEST(TfImport, UnsupportedOpRunsOnTheFallbackExecutor) {
  const nlohmann::json u = read_json(kTf + "outputs.json")["unsupported"];
  TfGraph graph = TfGraph::load(kTf + u["graph"].get<std::string>());
  const std::string output = u["output"];
  const HostTensor input = read_tensor(kTf, u["case"]["input"]);
  const HostTensor expected = read_tensor(kTf, u["case"]["output"]);

  std::string error = error_of([&] { tf_to_network(graph, {{output}, {{"input_images", input.shape}}}); });
  EXPECT_CONTAINS(error, "'" + u["unsupported_node"].get<std::string>() + "'");
  EXPECT_CONTAINS(error, u["unsupported_op"].get<std::string>());

  SegmentedGraph segmented(graph, {{output}, 3});
  const SegmentReport& r = segmented.report();
  EXPECT_EQ(r.nodes_before, graph.node_count());
  EXPECT_EQ(r.segments.size(), 2u);  // before and after the Cumsum
  EXPECT_EQ(r.nodes_after, 5);       // placeholder, cumsum and its axis, two segments
  auto out = segmented.run({{"input_images", input}});
  EXPECT_LE(max_error(out.at(output), expected, false), 1e-4);

  // An op neither the converter nor the fallback executor knows.
  find_node(graph, "cumsum")->set_op("FancyScan");
  error = error_of([&] { SegmentedGraph(graph, {{output}, 3}); });
  EXPECT_CONTAINS(error, "'cumsum' (FancyScan)");
  EXPECT_CONTAINS(error, "fallback executor cannot run it");
}

// ---------------------------------------------------------------- bad input

TEST(TfImport, TruncatedOrCorruptFilesAreClearErrors) {
  const std::string bytes = read_bytes(kTf + "frozen.pb");
  EXPECT_CONTAINS(error_of([&] { TfGraph::parse(bytes.substr(0, bytes.size() / 2), "GraphDef file cut.pb"); }),
                  "cut.pb is not a valid TensorFlow GraphDef: the protobuf is truncated or corrupt");
  std::string corrupt = bytes;
  for (size_t i = 100; i < corrupt.size(); i += 997) corrupt[i] = static_cast<char>(0xff);
  EXPECT_CONTAINS(error_of([&] { TfGraph::parse(corrupt, "bad.pb"); }), "bad.pb");
  EXPECT_CONTAINS(error_of([&] { TfGraph::parse("", "empty.pb"); }), "empty.pb is empty");
  EXPECT_CONTAINS(error_of([&] { TfGraph::load("/nonexistent/model.pb"); }), "/nonexistent/model.pb");
  EXPECT_CONTAINS(error_of([&] { TfGraph::parse(read_bytes(kTf + "infer/model.ckpt.meta"), "m.pb"); }), "MetaGraphDef");
  const std::string meta = read_bytes(kTf + "infer/model.ckpt.meta");
  const std::string cut_meta = temp_path("cut.meta");
  write_file(cut_meta, meta.substr(0, meta.size() - 1000));
  EXPECT_CONTAINS(error_of([&] { load_meta_graph(cut_meta); }), "truncated or corrupt");

  const std::string cut = temp_path("cut.pb");
  write_file(cut, bytes.substr(0, bytes.size() / 3));
  ToolResult r = run_tool("convert " + cut + " --outputs score");
  EXPECT_NE(r.status, 0);
  EXPECT_CONTAINS(r.output, cut);
  r = run_tool("inspect --model " + cut);
  EXPECT_NE(r.status, 0);
  EXPECT_CONTAINS(r.output, "truncated or corrupt");
  std::filesystem::remove(cut);
  std::filesystem::remove(cut_meta);
}

TEST(TfImport, BadGraphsAreClearErrors) {
  const TfGraph original = TfGraph::load(kTf + "frozen.pb");
  const TfImportOptions options{kEastOutputs, {{east::kInputName, {1, 64, 64, 3}}}};
  const std::string conv = "resnet_v1_50/conv1/Conv2D";

  TfGraph unknown = original;
  find_node(unknown, conv)->set_op("Conv2DWithMagic");
  std::string error = error_of([&] { tf_to_network(unknown, options); });
  EXPECT_CONTAINS(error, "'" + conv + "' (Conv2DWithMagic)");
  EXPECT_CONTAINS(error, "not supported");

  // A cycle: the first convolution reads the last unit's output, which depends on it.
  TfGraph cyclic = original;
  find_node(cyclic, conv)->set_input(0, "resnet_v1_50/block4/unit_3/bottleneck_v1/Relu");
  error = error_of([&] { tf_to_network(cyclic, options); });
  EXPECT_CONTAINS(error, "cycle");
  EXPECT_CONTAINS(error, conv);
  EXPECT_CONTAINS(error_of([&] { SegmentedGraph(cyclic, {kEastOutputs, 3}); }), "cycle");

  TfGraph missing = original;
  find_node(missing, conv)->set_input(1, "resnet_v1_50/conv1/weights_that_are_not_there");
  error = error_of([&] { tf_to_network(missing, options); });
  EXPECT_CONTAINS(error, conv);
  EXPECT_CONTAINS(error, "weights_that_are_not_there");
  EXPECT_CONTAINS(error, "names no node");

  TfGraph bare = original;  // found by the fuzzer: an op without its inputs
  find_node(bare, conv)->clear_input();
  EXPECT_CONTAINS(error_of([&] { tf_to_network(bare, options); }), "(Conv2D) has 0 data inputs; it needs 2");

  // A zero pad that feeds a max pool cannot be folded: the zeros would win over negative values.
  TfGraph pad = original;
  find_node(pad, "resnet_v1_50/pool1/MaxPool")->set_input(0, "resnet_v1_50/Pad");
  EXPECT_CONTAINS(error_of([&] { tf_to_network(pad, options); }), "reads Pad node 'resnet_v1_50/Pad'");

  TfGraph duplicate = original;
  *duplicate.def().add_node() = duplicate.def().node(3);
  EXPECT_CONTAINS(error_of([&] { TfGraph::parse(duplicate.def().SerializeAsString(), "dup.pb"); }), "two nodes are named");

  // The tool: one line naming the problem, non-zero exit.
  const std::string path = temp_path("cyclic.pb");
  cyclic.save(path);
  ToolResult r = run_tool("convert " + path + " --outputs feature_fusion/Conv_7/Sigmoid");
  EXPECT_NE(r.status, 0);
  EXPECT_CONTAINS(r.output, "cycle");
  unknown.save(path);
  r = run_tool("inspect --model " + path + " --input 1x64x64x3");
  EXPECT_NE(r.status, 0);
  EXPECT_CONTAINS(r.output, "Conv2DWithMagic");
  std::filesystem::remove(path);
}

TEST(TfImport, FreezeErrors) {
  auto meta = load_meta_graph(kTf + "infer/model.ckpt.meta");
  EXPECT_CONTAINS(error_of([&] { freeze_graph(*meta, CheckpointReader(kTf + "dtypes/model.ckpt"), {kEastOutputs}); }),
                  "has no value for variable 'resnet_v1_50/conv1/weights'");
  EXPECT_CONTAINS(error_of([&] { freeze_graph(*meta, CheckpointReader(kTf + "infer/model.ckpt"), {{"no_such_node"}}); }),
                  "no_such_node");
  // Outputs that depend on a variable update cannot be frozen.
  auto train = load_meta_graph(kTf + "train/model.ckpt.meta");
  std::string assign;
  for (const tf::NodeDef& node : train->graph_def().node())
    if (node.op().rfind("Assign", 0) == 0) assign = node.name();
  ASSERT_FALSE(assign.empty());
  EXPECT_CONTAINS(error_of([&] { freeze_graph(*train, CheckpointReader(kTf + "train/model.ckpt"), {{assign}}); }),
                  "cannot update variables");
}

// ---------------------------------------------------------------- the tool

TEST(TfImport, ToolFreezesAndConverts) {
  const std::string out = temp_path("frozen.pb");
  ToolResult r = run_tool("freeze --meta " + kTf + "train/model.ckpt.meta --ckpt " + kTf +
                      "train/model.ckpt --moving-average --outputs feature_fusion/Conv_7/Sigmoid,feature_fusion/concat_3 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_tool("convert " + out + " --outputs feature_fusion/Conv_7/Sigmoid,feature_fusion/concat_3 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json report = nlohmann::json::parse(r.output);
  EXPECT_GT(report["nodes_before"].get<int>(), report["nodes_after"].get<int>());
  EXPECT_EQ(report["nodes_after"], 2);
  EXPECT_EQ(report["segments"].size(), 1u);
  r = run_tool("convert " + kTf + "frozen_cumsum.pb --outputs score/Sigmoid --min-segment-size 3");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "59 → 5 nodes, segments of 36/20");
  r = run_tool("convert " + kTf + "frozen_cumsum.pb --outputs score/Sigmoid --run --input 1x32x48x3");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "output score/Sigmoid 1x32x48x1");
  r = run_tool("run --model " + kTf + "frozen.pb --input 1x64x64x3 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_tool("freeze --meta " + kTf + "infer/model.ckpt.meta --ckpt /nonexistent/ckpt --outputs x -o " + out);
  EXPECT_NE(r.status, 0);
  std::filesystem::remove(out);
}

TEST(TfImport, SaveIsDeterministicAndLoadsBack) {
  TfGraph graph = TfGraph::load(kTf + "frozen_cumsum.pb");
  const std::string a = temp_path("a.pb"), b = temp_path("b.pb");
  graph.save(a);
  TfGraph::load(a).save(b);
  EXPECT_EQ(read_bytes(a), read_bytes(b));
  // Not byte-equal to TensorFlow's file (map entries and unknown fields are ordered otherwise), but equal.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(TfGraph::load(a).def(), graph.def()));
  EXPECT_EQ(read_bytes(a).size(), read_bytes(kTf + "frozen_cumsum.pb").size());
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}
