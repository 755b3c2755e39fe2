// Freezing, as TensorFlow's convert_variables_to_constants does it: the outputs' closure of a MetaGraphDef,
// with every variable replaced by a Const of its checkpoint value, so the graph runs without a checkpoint.
#include "import/tf/tf_ops.h"

namespace eastrt {

namespace {

bool is_variable(const std::string& op) { return op == "VariableV2" || op == "Variable" || op == "VarHandleOp"; }

// Nodes that change variables or touch files: a frozen graph cannot hold them.
bool is_stateful_update(const std::string& op) {
  return op.rfind("Assign", 0) == 0 || op.rfind("Apply", 0) == 0 || op.rfind("ResourceApply", 0) == 0 ||
         op == "SaveV2" || op == "RestoreV2" || op == "MergeV2Checkpoints" || op == "Save" || op == "Restore";
}

tf::NodeDef variable_to_const(const tf::NodeDef& node, const CheckpointReader& checkpoint) {
  const int dtype = tfimport::attr_type(node, "dtype") % 100;
  std::string key = node.name();
  if (!checkpoint.contains(key) && node.op() == "VarHandleOp") {
    const tf::AttrValue* shared = tfimport::find_attr(node, "shared_name");
    if (shared && !shared->s().empty()) key = shared->s();
  }
  EASTRT_CHECK(checkpoint.contains(key), checkpoint.describe(), " has no value for variable '", node.name(), "'");
  const CheckpointEntry& entry = checkpoint.entry(key);
  EASTRT_CHECK(entry.tf_dtype % 100 == dtype, checkpoint.describe(), ": variable '", node.name(), "' is ",
               tfimport::dtype_name(dtype), " in the graph but ", checkpoint.resolve(key), " is stored as ",
               entry.dtype_name);
  if (std::optional<Shape> shape = tfimport::attr_shape(node, "shape")) {
    bool fits = shape->size() == entry.shape.size();
    for (size_t d = 0; fits && d < shape->size(); ++d) fits = (*shape)[d] < 0 || (*shape)[d] == entry.shape[d];
    EASTRT_CHECK(fits, checkpoint.describe(), ": variable '", node.name(), "' has shape ", to_string(*shape),
                 " in the graph but ", checkpoint.resolve(key), " has ", to_string(entry.shape));
  }
  const std::vector<uint8_t> bytes = checkpoint.read_bytes(key);
  tf::NodeDef out;
  out.set_name(node.name());
  out.set_op("Const");
  (*out.mutable_attr())["dtype"].set_type(static_cast<tf::DataType>(dtype));
  tf::TensorProto* value = (*out.mutable_attr())["value"].mutable_tensor();
  value->set_dtype(static_cast<tf::DataType>(dtype));
  for (int64_t d : entry.shape) value->mutable_tensor_shape()->add_dim()->set_size(d);
  if (!bytes.empty()) value->set_tensor_content(std::string(bytes.begin(), bytes.end()));
  return out;
}

// Colocation constraints ("loc:@node") may name nodes the freeze dropped; TensorFlow refuses those.
void prune_colocation(tf::NodeDef& node, const std::set<std::string>& kept) {
  auto it = node.mutable_attr()->find("_class");
  if (it == node.mutable_attr()->end()) return;
  tf::AttrValue::ListValue list;
  for (const std::string& s : it->second.list().s())
    if (s.rfind("loc:@", 0) != 0 || kept.count(s.substr(5))) list.add_s(s);
  if (list.s_size() == 0) node.mutable_attr()->erase(it);
  else *it->second.mutable_list() = list;
}

}  // namespace

TfGraph freeze_graph(const tf::MetaGraphDef& meta, const CheckpointReader& checkpoint, const FreezeOptions& options) {
  EASTRT_CHECK(!options.outputs.empty(), "freeze: no outputs given");
  const tf::GraphDef& def = meta.graph_def();
  tfimport::GraphIndex index(def, "MetaGraphDef");
  std::vector<std::string> roots;
  for (const std::string& name : options.outputs) roots.push_back(index.resolve_output(name).node);
  std::vector<const tf::NodeDef*> closure = index.closure(roots, true);

  // Training-mode batch norms are converted to inference form later, from their moving statistics.
  size_t before = roots.size();
  for (const tf::NodeDef* node : closure) {
    if (node->op().rfind("FusedBatchNorm", 0) != 0 || !tfimport::attr_bool(*node, "is_training", true)) continue;
    const size_t slash = node->name().rfind('/');
    const std::string prefix = slash == std::string::npos ? "" : node->name().substr(0, slash + 1);
    for (const char* stat : {"moving_mean", "moving_variance"})
      if (index.find(prefix + stat)) roots.push_back(prefix + stat);
  }
  if (roots.size() > before) closure = index.closure(roots, true);

  std::set<std::string> kept;
  for (const tf::NodeDef* node : closure) {
    EASTRT_CHECK(!is_stateful_update(node->op()), "freeze: ", tfimport::describe(*node), " is among the inputs of the ",
                 "outputs; a frozen graph cannot update variables (ask for outputs that do not depend on it)");
    kept.insert(node->name());
  }

  tf::GraphDef out = def;  // keeps versions and what this schema leaves unparsed (the function library)
  out.clear_node();
  for (const tf::NodeDef& node : def.node()) {  // TensorFlow keeps the original node order
    if (!kept.count(node.name())) continue;
    tf::NodeDef frozen;
    if (is_variable(node.op())) {
      frozen = variable_to_const(node, checkpoint);
    } else if (node.op() == "ReadVariableOp") {
      frozen = node;
      frozen.set_op("Identity");
      (*frozen.mutable_attr())["T"].set_type(static_cast<tf::DataType>(tfimport::attr_type(node, "dtype")));
      frozen.mutable_attr()->erase("dtype");
    } else {
      for (const std::string& input : node.input()) {
        const tf::NodeDef* producer = index.find(tfimport::parse_tensor_name(input).node);
        EASTRT_CHECK(!producer || producer->op() != "VarHandleOp" || tfimport::parse_tensor_name(input).control,
                     "freeze: ", tfimport::describe(node), " uses resource variable '", producer->name(),
                     "' directly; only ReadVariableOp reads of resource variables can be frozen");
      }
      frozen = node;
    }
    prune_colocation(frozen, kept);
    *out.add_node() = std::move(frozen);
  }
  return TfGraph(out);
}

}  // namespace eastrt
