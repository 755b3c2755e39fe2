// TensorFlow graphs in (the reference's TF-TRT path): load a frozen GraphDef, freeze a MetaGraphDef with its
// checkpoint, convert a graph to a Network, or partition it into segments with a fallback for the rest.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/checkpoint.h"
#include "eastrt/network.h"

namespace eastrt {

namespace tf {
class GraphDef;      // generated from src/import/tf/tf_graph.proto ("import/tf/tf_graph.pb.h")
class MetaGraphDef;
}  // namespace tf

// A GraphDef held by pointer, so that users of this header need no protobuf headers. Copies are deep.
class TfGraph {
 public:
  TfGraph();
  explicit TfGraph(const tf::GraphDef& def);
  TfGraph(const TfGraph& other);
  TfGraph& operator=(const TfGraph& other);
  TfGraph(TfGraph&&) noexcept = default;
  TfGraph& operator=(TfGraph&&) noexcept = default;

  // A binary GraphDef file (.pb). A missing, truncated or corrupt file, or one with no nodes, duplicate or
  // empty node names, is an Error naming the file.
  static TfGraph load(const std::string& path);
  static TfGraph parse(const std::string& bytes, const std::string& source);
  // Writes deterministically (the same graph gives the same bytes).
  void save(const std::string& path) const;

  const tf::GraphDef& def() const { return *def_; }
  tf::GraphDef& def() { return *def_; }
  int node_count() const;
  bool has_node(const std::string& name) const;
  std::vector<std::string> placeholders() const;
  // Nodes no other node reads (constants, placeholders and no-ops aside), in graph order: the natural outputs.
  std::vector<std::string> terminal_nodes() const;

 private:
  std::unique_ptr<tf::GraphDef, void (*)(tf::GraphDef*)> def_;
};

// What a conversion is asked for. Output names follow TensorFlow: "node" is "node:0", "node:1" the second
// output of a multi-output node; the Network's output tensors carry the names as given here.
struct TfImportOptions {
  std::vector<std::string> outputs;
  // Shapes of placeholders (NHWC), needed where the graph leaves dimensions unknown; a given shape must
  // agree with the dimensions the graph does know.
  std::map<std::string, Shape> input_shapes;
};

// Converts the outputs' closure to a Network with every shape known. Weights, shape arithmetic and any
// subgraph of constants are folded at import. An op without a converter is an Error naming the node and
// the op (SegmentedGraph runs such graphs); so are a cycle, an input naming no node and an unknown output.
// A training-mode FusedBatchNorm is rewritten to inference form, with one warning per node on stderr:
// with its mean and variance inputs where they are constants (TF-slim wires the moving statistics there),
// else with the constants `<scope>/moving_mean` and `<scope>/moving_variance` of the graph.
Network tf_to_network(const TfGraph& graph, const TfImportOptions& options);

// ---- Freezing: a MetaGraphDef (.meta) and a checkpoint become a frozen GraphDef

struct FreezeOptions {
  std::vector<std::string> outputs;  // nodes (or tensors) to keep, with their closure
};

// Loads a MetaGraphDef file; a truncated or corrupt file is an Error naming it.
std::shared_ptr<tf::MetaGraphDef> load_meta_graph(const std::string& path);

// As TensorFlow's convert_variables_to_constants: keeps the outputs' closure (data and control inputs),
// turns each variable (VariableV2, VarHandleOp) into a Const holding the checkpoint's stored bytes and each
// ReadVariableOp into an Identity. The moving statistics of training-mode batch norms are kept too, so the
// frozen graph can still be converted to inference form. A reader made with prefer_moving_average gives
// the `<var>/ExponentialMovingAverage` shadows in place of the variables, as evaluation restores them. A
// variable missing from the checkpoint, or of another shape or type, is an Error naming both; so is a
// node that would update a variable (Assign*, Apply*) among the outputs' inputs.
TfGraph freeze_graph(const tf::MetaGraphDef& meta, const CheckpointReader& checkpoint, const FreezeOptions& options);

// ---- Partial conversion (TF-TRT's segmenter) and the fallback executor

// Input shapes come with each run: a segment is converted for the shapes it meets (and kept for them).
struct SegmentOptions {
  std::vector<std::string> outputs;
  int min_segment_size = 3;  // smaller segments stay outside and run on the fallback executor
};

struct SegmentReport {
  int nodes_before = 0;  // nodes of the GraphDef
  int nodes_after = 0;   // nodes of the outputs' closure outside segments, plus one per segment
  std::vector<int> segments;  // segment sizes in nodes, largest first
  std::vector<std::string> fallback;  // "node (Op)" for every node outside segments, placeholders aside
  std::string summary() const;  // "59 → 5 nodes, segments of 36/20"
};

// A graph split into segments of convertible nodes, each run as one Network on the CPU engine, and
// nodes outside segments run by a host interpreter (constants, shape arithmetic, element-wise ops, Cumsum,
// LRN, ...) or, for a convertible node left out of a small segment, as a one-node Network. A node that
// neither can run is an Error naming it and its op when the graph is built.
class SegmentedGraph {
 public:
  SegmentedGraph(const TfGraph& graph, const SegmentOptions& options);
  ~SegmentedGraph();
  SegmentedGraph(SegmentedGraph&&) noexcept;

  const SegmentReport& report() const;
  // Runs on float32 inputs by placeholder name; returns the outputs by the names asked for.
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace eastrt
