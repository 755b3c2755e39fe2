// Internals of the TensorFlow importer shared by its files: the graph index, node attributes, host tensor
// values, and the host interpreter that folds constants at import and runs fallback nodes.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "eastrt/error.h"
#include "eastrt/network.h"
#include "eastrt/tf_import.h"
#include "import/tf/tf_graph.pb.h"

namespace eastrt::tfimport {

// A tensor value on the host. Floating types are held as float32, integer and bool types as int64.
struct Value {
  DataType type = DataType::kFloat32;  // kFloat32, kInt32, kInt64 or kBool
  Shape shape;
  std::vector<float> f;
  std::vector<int64_t> i;

  bool is_float() const { return type == DataType::kFloat32; }
  int64_t size() const { return is_float() ? static_cast<int64_t>(f.size()) : static_cast<int64_t>(i.size()); }
  double at(int64_t k) const { return is_float() ? f[k] : static_cast<double>(i[k]); }
  static Value floats(Shape shape, std::vector<float> data);
  static Value ints(DataType type, Shape shape, std::vector<int64_t> data);
  HostTensor to_host() const;
};

// Largest tensor the importer materialises on the host: a guard against absurd shapes in a bad file (a
// Const of a huge shape takes a few bytes when one value is repeated). EAST's largest host tensors, at
// 2400×2400, are well below it.
inline constexpr int64_t kMaxHostElements = int64_t{1} << 26;

// A float converted to an integer as C++ would truncate it, but saturating (and NaN to 0) instead of UB.
inline int64_t saturate_to_int64(double x) {
  if (!(x == x)) return 0;
  if (x >= 9.2e18) return INT64_MAX;
  if (x <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(x);
}

// "node" / "node:1" / "^node".
struct TensorRef {
  std::string node;
  int index = 0;
  bool control = false;
};
TensorRef parse_tensor_name(const std::string& name);
std::string tensor_name(const std::string& node, int index);  // index 0 gives the bare node name

// Name lookup, edges and ordering over a GraphDef.
class GraphIndex {
 public:
  GraphIndex(const tf::GraphDef& def, std::string source);
  const tf::GraphDef& def() const { return def_; }
  const std::string& source() const { return source_; }
  const tf::NodeDef* find(const std::string& name) const;
  // Data inputs (control inputs dropped); an input naming no node is an Error naming both.
  std::vector<TensorRef> data_inputs(const tf::NodeDef& node) const;
  // The nodes the given nodes depend on, themselves included, in a topological order (inputs first); a cycle
  // is an Error naming the nodes on it.
  std::vector<const tf::NodeDef*> closure(const std::vector<std::string>& nodes, bool with_control) const;
  // A user's output name resolved TensorFlow's way; an unknown node is an Error with suggestions.
  TensorRef resolve_output(const std::string& name) const;

 private:
  const tf::GraphDef& def_;
  std::string source_;
  std::map<std::string, int> by_name_;
};

// Number of outputs of a node (1 for most ops).
int output_count(const tf::NodeDef& node);

// ---- attributes (TensorFlow's defaults where a graph omits one; a missing required one is an Error)
const tf::AttrValue* find_attr(const tf::NodeDef& node, const std::string& name);
int64_t attr_int(const tf::NodeDef& node, const std::string& name, std::optional<int64_t> fallback = {});
float attr_float(const tf::NodeDef& node, const std::string& name, std::optional<float> fallback = {});
bool attr_bool(const tf::NodeDef& node, const std::string& name, std::optional<bool> fallback = {});
std::string attr_string(const tf::NodeDef& node, const std::string& name,
                        std::optional<std::string> fallback = {});
std::vector<int64_t> attr_ints(const tf::NodeDef& node, const std::string& name,
                               std::optional<std::vector<int64_t>> fallback = {});
int attr_type(const tf::NodeDef& node, const std::string& name, std::optional<int> fallback = {});
// A shape attribute; unknown dimensions are -1, an unknown rank gives nullopt.
std::optional<Shape> attr_shape(const tf::NodeDef& node, const std::string& name);

const char* dtype_name(int dtype);  // "float32", "int32", ... for messages
// The Value type a TensorFlow dtype is computed in; an unsupported dtype is an Error naming `context`.
DataType value_type(int dtype, const std::string& context);

// TensorProto <-> Value (the typed fields' "last value repeats" rule is honoured).
Value decode_tensor(const tf::TensorProto& proto, const std::string& context);
void encode_tensor(const Value& value, int dtype, tf::TensorProto* proto);

// Node message prefix: "node 'name' (Op)".
std::string describe(const tf::NodeDef& node);

// ---- shape helpers shared by the converter and the interpreter

// TensorFlow's StridedSlice resolved against an input shape: per input dimension a start, a stride
// (possibly negative) and a length, then the output shape after new and shrunk axes.
struct StridedSliceSpec {
  Shape start, stride, size;
  Shape output;
};
StridedSliceSpec strided_slice_spec(const tf::NodeDef& node, const Shape& input, const std::vector<int64_t>& begin,
                                    const std::vector<int64_t>& end, const std::vector<int64_t>& strides);

// Output shape of Reshape (one -1 inferred), Squeeze, ExpandDims; Errors name the node.
Shape reshape_shape(const tf::NodeDef& node, const Shape& input, const std::vector<int64_t>& requested);
Shape squeeze_shape(const tf::NodeDef& node, const Shape& input);
Shape expand_dims_shape(const tf::NodeDef& node, const Shape& input, int64_t axis);
int normalise_axis(const tf::NodeDef& node, int64_t axis, size_t rank);
// The sizes of the pieces of Split / SplitV along `axis` of `extent`.
std::vector<int64_t> split_sizes(const tf::NodeDef& node, int64_t extent, const Value* size_splits);

// ---- the host interpreter

// The number of data inputs an op needs at least; checked for every node before it is converted or run.
int min_inputs(const std::string& op);
void check_input_count(const tf::NodeDef& node, size_t count);

// Whether run_host_op can evaluate the op (on host values of any size).
bool host_op_supported(const std::string& op);
// Runs one node on its data inputs; returns every output. Errors name the node.
std::vector<Value> run_host_op(const tf::NodeDef& node, const std::vector<Value>& inputs);

// ---- conversion of a set of nodes (tf_to_network.cpp)

struct ConvertRequest {
  std::vector<const tf::NodeDef*> nodes;        // topological order
  std::map<std::string, Value> constants;        // tensors from outside the nodes, known values
  std::map<std::string, Shape> runtime_inputs;   // tensors from outside the nodes, network inputs (float32)
  std::map<std::string, Shape> placeholder_shapes;
  std::vector<std::string> outputs;              // tensor names
  bool constant_outputs_as_layers = true;        // else returned in ConvertResult::constants
};
struct ConvertResult {
  Network network;
  std::map<std::string, Value> constants;  // outputs that folded to constants (when not made layers)
};
ConvertResult convert_nodes(const GraphIndex& graph, const ConvertRequest& request);

// Whether the converter has a rule for the node (op and attributes, checked without shapes).
bool converter_supports(const tf::NodeDef& node);

}  // namespace eastrt::tfimport
