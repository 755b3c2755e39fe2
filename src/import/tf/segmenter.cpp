// Partial conversion, as TF-TRT does it: convertible nodes are grouped into segments by contracting edges
// that create no cycle; each big-enough segment runs as one Network on the CPU engine, every other node
// on the fallback executor (the host interpreter, or a one-node Network).
#include <algorithm>
#include <numeric>
#include <sstream>

#include "eastrt/cpu_engine.h"
#include "import/tf/tf_ops.h"

namespace eastrt {

using tfimport::GraphIndex;
using tfimport::TensorRef;
using tfimport::Value;

namespace {

// The graph being contracted: node ids of the closure, adjacency by id; a contracted node absorbs the
// edges of the nodes merged into it.
class ContractionGraph {
 public:
  explicit ContractionGraph(size_t n) : in_(n), out_(n), alive_(n, true) {}
  void add_edge(int from, int to) {
    if (from == to) return;
    out_[from].insert(to);
    in_[to].insert(from);
  }
  const std::set<int>& outs(int n) const { return out_[n]; }

  // Merging `to` into `from` creates a cycle when another path from → … → to exists.
  bool can_contract(int from, int to) const {
    std::vector<int> stack;
    std::vector<bool> seen(alive_.size(), false);
    for (int p : in_[to])
      if (p != from) stack.push_back(p);
    while (!stack.empty()) {
      int n = stack.back();
      stack.pop_back();
      if (n == from) return false;
      if (seen[n]) continue;
      seen[n] = true;
      for (int p : in_[n]) stack.push_back(p);
    }
    return true;
  }

  void contract(int from, int to) {
    for (int p : in_[to]) {
      out_[p].erase(to);
      if (p != from) add_edge(p, from);
    }
    for (int s : out_[to]) {
      in_[s].erase(to);
      add_edge(from, s);
    }
    in_[to].clear();
    out_[to].clear();
    alive_[to] = false;
  }

 private:
  std::vector<std::set<int>> in_, out_;
  std::vector<bool> alive_;
};

int find_root(std::vector<int>& parent, int n) {
  while (parent[n] != n) n = parent[n] = parent[parent[n]];
  return n;
}

bool is_shape_op(const std::string& op) { return op == "Shape" || op == "ShapeN" || op == "Size" || op == "Rank"; }

std::string shape_key(const Value& v, bool with_values) {
  std::ostringstream key;
  key << to_string(v.shape) << (v.is_float() ? "f" : "i");
  if (with_values)
    for (int64_t k = 0; k < v.size() && k < 64; ++k) key << "," << v.at(k);
  return key.str();
}

}  // namespace

std::string SegmentReport::summary() const {
  std::ostringstream out;
  out << nodes_before << " → " << nodes_after << " nodes, ";
  if (segments.empty()) return out.str() + "no segments";
  out << "segment" << (segments.size() == 1 ? "" : "s") << " of ";
  for (size_t i = 0; i < segments.size(); ++i) out << (i ? "/" : "") << segments[i];
  return out.str();
}

// One step of a run: a placeholder, a node for the host interpreter, or nodes run as one Network.
struct Unit {
  enum Kind { kPlaceholder, kHost, kNetwork } kind = kHost;
  std::vector<const tf::NodeDef*> nodes;  // topological order
  std::vector<std::string> inputs;        // tensors read from outside the unit
  std::vector<std::string> outputs;       // tensors used outside the unit or asked for
  struct Compiled {
    std::unique_ptr<CpuEngine> engine;
    std::map<std::string, Value> constants;
  };
  std::map<std::string, Compiled> cache;  // by the shapes (and constant values) of the inputs
};

struct SegmentedGraph::State {
  TfGraph graph;
  std::unique_ptr<GraphIndex> index;
  SegmentOptions options;
  SegmentReport report;
  std::vector<Unit> units;            // in an order that runs producers first
  std::set<std::string> static_nodes; // nodes whose values do not depend on the inputs' values
  std::vector<std::string> outputs;   // canonical tensor names of options.outputs

  void partition();
  void run_network(Unit& unit, std::map<std::string, Value>& values);
};

void SegmentedGraph::State::partition() {
  const GraphIndex& g = *index;
  std::vector<std::string> roots;
  for (const std::string& name : options.outputs) {
    TensorRef ref = g.resolve_output(name);
    roots.push_back(ref.node);
    outputs.push_back(tfimport::tensor_name(ref.node, ref.index));
  }
  const std::vector<const tf::NodeDef*> nodes = g.closure(roots, false);
  const int n = static_cast<int>(nodes.size());
  std::map<std::string, int> id;
  for (int i = 0; i < n; ++i) id[nodes[i]->name()] = i;

  // A node is static when its value is fixed once the input shapes are (constants, shapes, arithmetic on
  // them); such nodes fold at conversion whatever their op, as long as the interpreter knows it.
  std::vector<bool> candidate(n);
  std::vector<std::vector<TensorRef>> inputs(n);
  for (int i = 0; i < n; ++i) {
    const tf::NodeDef& node = *nodes[i];
    inputs[i] = g.data_inputs(node);
    bool is_static = node.op() != "Placeholder";
    if (!is_shape_op(node.op()))
      for (const TensorRef& ref : inputs[i]) is_static = is_static && static_nodes.count(ref.node);
    if (is_static) static_nodes.insert(node.name());
    candidate[i] = node.op() != "Placeholder" &&
                   ((is_static && tfimport::host_op_supported(node.op())) || tfimport::converter_supports(node));
  }

  // TF-TRT's segmentation: from the outputs backwards, merge each candidate with its candidate consumers
  // wherever the contraction leaves the graph acyclic.
  ContractionGraph graph(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    for (const TensorRef& ref : inputs[i]) graph.add_edge(id.at(ref.node), i);
  std::vector<int> parent(static_cast<size_t>(n));
  std::iota(parent.begin(), parent.end(), 0);
  for (int u = n - 1; u >= 0; --u) {
    if (!candidate[u]) continue;
    for (bool merged = true; merged;) {
      merged = false;
      for (int v : std::vector<int>(graph.outs(u).begin(), graph.outs(u).end())) {
        if (!candidate[v] || !graph.can_contract(u, v)) continue;
        graph.contract(u, v);
        parent[find_root(parent, v)] = find_root(parent, u);
        merged = true;
      }
    }
  }
  std::map<int, std::vector<int>> groups;
  for (int i = 0; i < n; ++i)
    if (candidate[i]) groups[find_root(parent, i)].push_back(i);

  // Units: segments big enough, and every other node alone.
  std::vector<int> unit_of(static_cast<size_t>(n), -1);
  std::vector<Unit> unordered;
  report.nodes_before = g.def().node_size();
  for (auto& [root, members] : groups) {
    if (static_cast<int>(members.size()) < options.min_segment_size) continue;
    Unit unit;
    unit.kind = Unit::kNetwork;
    for (int m : members) {
      unit_of[m] = static_cast<int>(unordered.size());
      unit.nodes.push_back(nodes[m]);
    }
    report.segments.push_back(static_cast<int>(members.size()));
    unordered.push_back(std::move(unit));
  }
  for (int i = 0; i < n; ++i) {
    if (unit_of[i] >= 0) continue;
    const tf::NodeDef& node = *nodes[i];
    Unit unit;
    unit.nodes = {&node};
    if (node.op() == "Placeholder") {
      unit.kind = Unit::kPlaceholder;
    } else {
      report.fallback.push_back(node.name() + " (" + node.op() + ")");
      if (tfimport::host_op_supported(node.op())) unit.kind = Unit::kHost;
      else if (tfimport::converter_supports(node)) unit.kind = Unit::kNetwork;
      else
        throw_error(g.source(), ": ", tfimport::describe(node), " has no converter and the fallback executor cannot ",
                    "run it");
    }
    unit_of[i] = static_cast<int>(unordered.size());
    unordered.push_back(std::move(unit));
  }
  std::sort(report.segments.rbegin(), report.segments.rend());
  report.nodes_after = static_cast<int>(unordered.size());

  // Unit inputs and outputs, then an order of the units (Kahn's algorithm on the contracted graph).
  const size_t u_count = unordered.size();
  std::vector<std::set<int>> successors(u_count);
  std::vector<int> indegree(u_count, 0);
  std::vector<std::set<std::string>> ins(u_count), outs(u_count);
  for (int i = 0; i < n; ++i)
    for (const TensorRef& ref : inputs[i]) {
      const int from = unit_of[id.at(ref.node)], to = unit_of[i];
      if (from == to) continue;
      const std::string tensor = tfimport::tensor_name(ref.node, ref.index);
      ins[to].insert(tensor);
      outs[from].insert(tensor);
      if (successors[from].insert(to).second) ++indegree[to];
    }
  for (const std::string& tensor : outputs) outs[unit_of[id.at(tfimport::parse_tensor_name(tensor).node)]].insert(tensor);
  std::vector<int> ready, order;
  for (size_t u = 0; u < u_count; ++u)
    if (indegree[u] == 0) ready.push_back(static_cast<int>(u));
  while (!ready.empty()) {
    int u = ready.back();
    ready.pop_back();
    order.push_back(u);
    for (int s : successors[u])
      if (--indegree[s] == 0) ready.push_back(s);
  }
  EASTRT_CHECK(order.size() == u_count, g.source(), ": the segments form a cycle (a segmenter bug)");
  for (int u : order) {
    Unit& unit = unordered[u];
    unit.inputs.assign(ins[u].begin(), ins[u].end());
    unit.outputs.assign(outs[u].begin(), outs[u].end());
    std::sort(unit.nodes.begin(), unit.nodes.end(),
              [&](const tf::NodeDef* a, const tf::NodeDef* b) { return id.at(a->name()) < id.at(b->name()); });
    units.push_back(std::move(unit));
  }
}

void SegmentedGraph::State::run_network(Unit& unit, std::map<std::string, Value>& values) {
  std::string key;
  for (const std::string& input : unit.inputs) {
    const bool is_static = static_nodes.count(tfimport::parse_tensor_name(input).node) > 0;
    key += input + "=" + shape_key(values.at(input), is_static) + ";";
  }
  auto it = unit.cache.find(key);
  if (it == unit.cache.end()) {
    tfimport::ConvertRequest request;
    request.nodes = unit.nodes;
    request.outputs = unit.outputs;
    request.constant_outputs_as_layers = false;
    for (const std::string& input : unit.inputs) {
      const Value& v = values.at(input);
      if (static_nodes.count(tfimport::parse_tensor_name(input).node)) request.constants[input] = v;
      else request.runtime_inputs[input] = v.shape;
    }
    tfimport::ConvertResult converted = tfimport::convert_nodes(*index, request);
    Unit::Compiled compiled;
    compiled.constants = std::move(converted.constants);
    if (!converted.network.outputs().empty())
      compiled.engine = std::make_unique<CpuEngine>(std::move(converted.network));
    it = unit.cache.emplace(key, std::move(compiled)).first;
  }
  Unit::Compiled& compiled = it->second;
  for (const auto& [name, value] : compiled.constants) values[name] = value;
  if (!compiled.engine) return;
  std::map<std::string, HostTensor> feeds;
  for (int id : compiled.engine->network().inputs()) {
    const std::string& name = compiled.engine->network().tensor(id).name;
    feeds[name] = values.at(name).to_host();
  }
  for (auto& [name, tensor] : compiled.engine->run(feeds)) values[name] = Value::floats(tensor.shape, std::move(tensor.data));
}

SegmentedGraph::SegmentedGraph(const TfGraph& graph, const SegmentOptions& options) : state_(std::make_unique<State>()) {
  EASTRT_CHECK(!options.outputs.empty(), "segmented graph: no outputs given");
  EASTRT_CHECK(options.min_segment_size >= 1, "the minimum segment size must be at least 1, got ", options.min_segment_size);
  state_->graph = graph;
  state_->options = options;
  state_->index = std::make_unique<GraphIndex>(state_->graph.def(), "TensorFlow graph");
  state_->partition();
}

SegmentedGraph::~SegmentedGraph() = default;
SegmentedGraph::SegmentedGraph(SegmentedGraph&&) noexcept = default;

const SegmentReport& SegmentedGraph::report() const { return state_->report; }

std::map<std::string, HostTensor> SegmentedGraph::run(const std::map<std::string, HostTensor>& inputs) {
  State& s = *state_;
  std::map<std::string, Value> values;
  for (Unit& unit : s.units) {
    const tf::NodeDef& node = *unit.nodes.front();
    if (unit.kind == Unit::kPlaceholder) {
      auto it = inputs.find(node.name());
      EASTRT_CHECK(it != inputs.end(), "input '", node.name(), "' was not given");
      const std::optional<Shape> known = tfimport::attr_shape(node, "shape");
      bool fits = !known || known->size() == it->second.shape.size();
      for (size_t d = 0; fits && known && d < known->size(); ++d) fits = (*known)[d] < 0 || (*known)[d] == it->second.shape[d];
      EASTRT_CHECK(fits && it->second.size() == volume(it->second.shape), "input '", node.name(), "' has shape ",
                   to_string(it->second.shape), ", which the graph's placeholder does not accept");
      values[node.name()] = Value::floats(it->second.shape, it->second.data);
    } else if (unit.kind == Unit::kHost) {
      std::vector<Value> args;
      for (const TensorRef& ref : s.index->data_inputs(node)) args.push_back(values.at(tfimport::tensor_name(ref.node, ref.index)));
      std::vector<Value> results = tfimport::run_host_op(node, args);
      for (size_t k = 0; k < results.size(); ++k) values[tfimport::tensor_name(node.name(), static_cast<int>(k))] = std::move(results[k]);
    } else {
      s.run_network(unit, values);
    }
  }
  std::map<std::string, HostTensor> result;
  for (size_t k = 0; k < s.outputs.size(); ++k) result[s.options.outputs[k]] = values.at(s.outputs[k]).to_host();
  return result;
}

}  // namespace eastrt
