// GraphDef files in and out, and what every part of the importer reads from a graph: the name index, edges,
// topological order with cycle detection, attributes and TensorProto values.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>

#include "import/tf/tf_ops.h"

namespace eastrt {

namespace tfimport {
namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in, "cannot open ", what, " ", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  EASTRT_CHECK(!in.bad(), "cannot read ", what, " ", path);
  return bytes.str();
}

// Protobuf reports malformed UTF-8 on its log; the parse failure itself is what the user gets.
template <typename Message>
bool quiet_parse(Message* message, const std::string& bytes) {
  google::protobuf::LogHandler* previous = google::protobuf::SetLogHandler(nullptr);
  bool ok = message->ParseFromString(bytes);
  google::protobuf::SetLogHandler(previous);
  return ok;
}

void check_nodes(const tf::GraphDef& def, const std::string& source) {
  EASTRT_CHECK(def.node_size() > 0, source, " holds no nodes (is it a GraphDef?)");
  std::set<std::string> names;
  for (int i = 0; i < def.node_size(); ++i) {
    const tf::NodeDef& node = def.node(i);
    EASTRT_CHECK(!node.name().empty(), source, ": node ", i, " has no name");
    EASTRT_CHECK(!node.op().empty(), source, ": node '", node.name(), "' has no op");
    EASTRT_CHECK(names.insert(node.name()).second, source, ": two nodes are named '", node.name(), "'");
  }
}

}  // namespace

std::shared_ptr<tf::MetaGraphDef> parse_meta_graph(const std::string& bytes, const std::string& source) {
  auto meta = std::make_shared<tf::MetaGraphDef>();
  EASTRT_CHECK(!bytes.empty(), source, " is empty");
  EASTRT_CHECK(quiet_parse(meta.get(), bytes), source, " is not a valid TensorFlow MetaGraphDef: the protobuf is ",
               "truncated or corrupt (", bytes.size(), " bytes)");
  check_nodes(meta->graph_def(), source + " (its graph_def)");
  return meta;
}

}  // namespace tfimport

// ---------------------------------------------------------------- TfGraph

namespace {
void delete_graph_def(tf::GraphDef* def) { delete def; }
}  // namespace

TfGraph::TfGraph() : def_(new tf::GraphDef, delete_graph_def) {}
TfGraph::TfGraph(const tf::GraphDef& def) : def_(new tf::GraphDef(def), delete_graph_def) {}
TfGraph::TfGraph(const TfGraph& other) : TfGraph(*other.def_) {}
TfGraph& TfGraph::operator=(const TfGraph& other) {
  if (this != &other) *def_ = *other.def_;
  return *this;
}

TfGraph TfGraph::parse(const std::string& bytes, const std::string& source) {
  TfGraph graph;
  EASTRT_CHECK(!bytes.empty(), source, " is empty");
  if (!tfimport::quiet_parse(graph.def_.get(), bytes)) {
    tf::MetaGraphDef meta;
    bool is_meta = tfimport::quiet_parse(&meta, bytes) && meta.graph_def().node_size() > 0;
    throw_error(source, " is not a valid TensorFlow GraphDef: the protobuf is truncated or corrupt (",
                bytes.size(), " bytes)",
                is_meta ? "; it reads as a MetaGraphDef (.meta): freeze it first with `eastrt freeze`" : "");
  }
  tfimport::check_nodes(*graph.def_, source);
  return graph;
}

TfGraph TfGraph::load(const std::string& path) {
  return parse(tfimport::read_file(path, "GraphDef file"), "GraphDef file " + path);
}

void TfGraph::save(const std::string& path) const {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    EASTRT_CHECK(def_->SerializeToCodedStream(&coded), "cannot serialise the GraphDef for ", path);
  }
  std::ofstream out(path, std::ios::binary);
  EASTRT_CHECK(out, "cannot write ", path);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EASTRT_CHECK(out.good(), "cannot write ", path);
}

int TfGraph::node_count() const { return def_->node_size(); }

bool TfGraph::has_node(const std::string& name) const {
  for (const tf::NodeDef& node : def_->node())
    if (node.name() == name) return true;
  return false;
}

std::vector<std::string> TfGraph::placeholders() const {
  std::vector<std::string> names;
  for (const tf::NodeDef& node : def_->node())
    if (node.op() == "Placeholder") names.push_back(node.name());
  return names;
}

std::vector<std::string> TfGraph::terminal_nodes() const {
  std::set<std::string> read;
  for (const tf::NodeDef& node : def_->node())
    for (const std::string& input : node.input()) read.insert(tfimport::parse_tensor_name(input).node);
  std::vector<std::string> names;
  for (const tf::NodeDef& node : def_->node())
    if (!read.count(node.name()) && node.op() != "Const" && node.op() != "Placeholder" && node.op() != "NoOp")
      names.push_back(node.name());
  return names;
}

std::shared_ptr<tf::MetaGraphDef> load_meta_graph(const std::string& path) {
  return tfimport::parse_meta_graph(tfimport::read_file(path, "MetaGraphDef file"), "MetaGraphDef file " + path);
}

namespace tfimport {

// ---------------------------------------------------------------- names and the graph index

TensorRef parse_tensor_name(const std::string& name) {
  TensorRef ref;
  std::string s = name;
  if (!s.empty() && s[0] == '^') {
    ref.control = true;
    s = s.substr(1);
  }
  size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() &&
      std::all_of(s.begin() + colon + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      s.size() - colon - 1 <= 6) {
    ref.index = std::stoi(s.substr(colon + 1));
    s = s.substr(0, colon);
  }
  ref.node = s;
  return ref;
}

std::string tensor_name(const std::string& node, int index) {
  return index == 0 ? node : node + ":" + std::to_string(index);
}

std::string describe(const tf::NodeDef& node) { return "node '" + node.name() + "' (" + node.op() + ")"; }

GraphIndex::GraphIndex(const tf::GraphDef& def, std::string source) : def_(def), source_(std::move(source)) {
  for (int i = 0; i < def.node_size(); ++i) {
    EASTRT_CHECK(!def.node(i).name().empty(), source_, ": node ", i, " has no name");
    EASTRT_CHECK(by_name_.emplace(def.node(i).name(), i).second, source_, ": two nodes are named '",
                 def.node(i).name(), "'");
  }
}

const tf::NodeDef* GraphIndex::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &def_.node(it->second);
}

std::vector<TensorRef> GraphIndex::data_inputs(const tf::NodeDef& node) const {
  std::vector<TensorRef> inputs;
  for (const std::string& input : node.input()) {
    TensorRef ref = parse_tensor_name(input);
    const tf::NodeDef* producer = find(ref.node);
    EASTRT_CHECK(producer != nullptr, source_, ": ", describe(node), " has input '", input,
                 "', which names no node in the graph");
    if (ref.control) continue;
    int count = output_count(*producer);
    EASTRT_CHECK(count < 0 || ref.index < count, source_, ": ", describe(node), " reads output ", ref.index, " of ",
                 describe(*producer), ", which has ", count, " output", count == 1 ? "" : "s");
    inputs.push_back(ref);
  }
  return inputs;
}

std::vector<const tf::NodeDef*> GraphIndex::closure(const std::vector<std::string>& nodes, bool with_control) const {
  // Iterative depth-first search (graphs can be deep chains); grey nodes are on the current path.
  enum Colour : uint8_t { kWhite, kGrey, kBlack };
  std::vector<Colour> colour(static_cast<size_t>(def_.node_size()), kWhite);
  std::vector<const tf::NodeDef*> order;
  struct Frame {
    int node;
    int next_input;
  };
  for (const std::string& root : nodes) {
    auto it = by_name_.find(root);
    EASTRT_CHECK(it != by_name_.end(), source_, ": no node named '", root, "'");
    if (colour[it->second] != kWhite) continue;
    std::vector<Frame> stack{{it->second, 0}};
    colour[it->second] = kGrey;
    while (!stack.empty()) {
      Frame& frame = stack.back();
      const tf::NodeDef& node = def_.node(frame.node);
      if (frame.next_input == node.input_size()) {
        colour[frame.node] = kBlack;
        order.push_back(&node);
        stack.pop_back();
        continue;
      }
      const std::string& input = node.input(frame.next_input++);
      TensorRef ref = parse_tensor_name(input);
      if (ref.control && !with_control) continue;
      auto producer = by_name_.find(ref.node);
      EASTRT_CHECK(producer != by_name_.end(), source_, ": ", describe(node), " has input '", input,
                   "', which names no node in the graph");
      if (colour[producer->second] == kGrey) {
        std::string cycle;
        bool on = false;
        for (const Frame& f : stack) {
          on = on || f.node == producer->second;
          if (on) cycle += def_.node(f.node).name() + " → ";
        }
        throw_error(source_, ": the graph has a cycle: ", cycle, ref.node,
                    " (control-flow loops are not supported)");
      }
      if (colour[producer->second] == kWhite) {
        colour[producer->second] = kGrey;
        stack.push_back({producer->second, 0});
      }
    }
  }
  return order;
}

TensorRef GraphIndex::resolve_output(const std::string& name) const {
  TensorRef ref = parse_tensor_name(name);
  EASTRT_CHECK(!ref.control && !ref.node.empty(), "output '", name, "' is not a tensor name");
  const tf::NodeDef* node = find(ref.node);
  if (!node) {
    // TensorFlow makes names unique by appending _1, _2, ...: offer the name's siblings under that rule
    // ("a/concat_9" → a/concat, a/concat_1, ...) and nodes of the same last part in other scopes.
    auto unsuffixed = [](const std::string& s) {
      size_t end = s.size();
      while (end > 0 && std::isdigit(static_cast<unsigned char>(s[end - 1]))) --end;
      return end < s.size() && end > 0 && s[end - 1] == '_' ? s.substr(0, end - 1) : s;
    };
    const std::string base = unsuffixed(ref.node);
    const std::string leaf = ref.node.substr(ref.node.rfind('/') + 1);
    std::vector<std::string> similar;
    for (const tf::NodeDef& n : def_.node()) {
      const std::string& other = n.name();
      bool sibling = unsuffixed(other) == base;
      bool same_leaf = other.size() > leaf.size() && other.compare(other.size() - leaf.size(), leaf.size(), leaf) == 0 &&
                       other[other.size() - leaf.size() - 1] == '/';
      if ((sibling || same_leaf) && similar.size() < 6) similar.push_back(other);
    }
    std::string hint;
    for (const std::string& s : similar) hint += (hint.empty() ? " (similar: " : ", ") + s;
    throw_error(source_, ": output '", name, "' names no node in the graph", hint, hint.empty() ? "" : ")");
  }
  int count = output_count(*node);
  EASTRT_CHECK(count < 0 || ref.index < count, source_, ": output '", name, "': ", describe(*node), " has ", count,
               " output", count == 1 ? "" : "s");
  return ref;
}

int output_count(const tf::NodeDef& node) {
  const std::string& op = node.op();
  if (op == "Split" || op == "SplitV") return static_cast<int>(attr_int(node, "num_split"));
  if (op == "Unpack") return static_cast<int>(attr_int(node, "num"));
  if (op == "FusedBatchNorm" || op == "FusedBatchNormV2") return 5;
  if (op == "FusedBatchNormV3") return 6;
  if (op == "ShapeN") return static_cast<int>(attr_int(node, "N"));
  if (op == "IdentityN") {
    const tf::AttrValue* t = find_attr(node, "T");
    return t ? t->list().type_size() : -1;
  }
  if (op == "NoOp" || op == "AssignVariableOp" || op == "SaveV2") return 0;
  return 1;
}

// ---------------------------------------------------------------- attributes

const tf::AttrValue* find_attr(const tf::NodeDef& node, const std::string& name) {
  auto it = node.attr().find(name);
  return it == node.attr().end() ? nullptr : &it->second;
}

namespace {
template <typename T>
T attr_or(const tf::NodeDef& node, const std::string& name, const std::optional<T>& fallback,
          tf::AttrValue::ValueCase expected, T (*read)(const tf::AttrValue&)) {
  const tf::AttrValue* a = find_attr(node, name);
  if (!a) {
    EASTRT_CHECK(fallback.has_value(), describe(node), ": attribute '", name, "' is missing");
    return *fallback;
  }
  EASTRT_CHECK(a->value_case() == expected, describe(node), ": attribute '", name, "' has the wrong kind");
  return read(*a);
}
}  // namespace

int64_t attr_int(const tf::NodeDef& node, const std::string& name, std::optional<int64_t> fallback) {
  return attr_or<int64_t>(node, name, fallback, tf::AttrValue::kI, [](const tf::AttrValue& a) { return int64_t{a.i()}; });
}
float attr_float(const tf::NodeDef& node, const std::string& name, std::optional<float> fallback) {
  return attr_or<float>(node, name, fallback, tf::AttrValue::kF, [](const tf::AttrValue& a) { return a.f(); });
}
bool attr_bool(const tf::NodeDef& node, const std::string& name, std::optional<bool> fallback) {
  return attr_or<bool>(node, name, fallback, tf::AttrValue::kB, [](const tf::AttrValue& a) { return a.b(); });
}
std::string attr_string(const tf::NodeDef& node, const std::string& name, std::optional<std::string> fallback) {
  return attr_or<std::string>(node, name, fallback, tf::AttrValue::kS, [](const tf::AttrValue& a) { return a.s(); });
}
int attr_type(const tf::NodeDef& node, const std::string& name, std::optional<int> fallback) {
  return attr_or<int>(node, name, fallback, tf::AttrValue::kType,
                      [](const tf::AttrValue& a) { return static_cast<int>(a.type()); });
}
std::vector<int64_t> attr_ints(const tf::NodeDef& node, const std::string& name,
                               std::optional<std::vector<int64_t>> fallback) {
  const tf::AttrValue* a = find_attr(node, name);
  if (!a) {
    EASTRT_CHECK(fallback.has_value(), describe(node), ": attribute '", name, "' is missing");
    return *fallback;
  }
  EASTRT_CHECK(a->value_case() == tf::AttrValue::kList || a->value_case() == tf::AttrValue::VALUE_NOT_SET,
               describe(node), ": attribute '", name, "' is not a list");
  return {a->list().i().begin(), a->list().i().end()};
}

std::optional<Shape> attr_shape(const tf::NodeDef& node, const std::string& name) {
  const tf::AttrValue* a = find_attr(node, name);
  if (!a || a->value_case() != tf::AttrValue::kShape || a->shape().unknown_rank()) return std::nullopt;
  Shape shape;
  for (const auto& dim : a->shape().dim()) shape.push_back(dim.size() < 0 ? -1 : dim.size());
  return shape;
}

// ---------------------------------------------------------------- data types and tensors

const char* dtype_name(int dtype) {
  switch (dtype % 100) {
    case tf::DT_FLOAT: return "float32";
    case tf::DT_DOUBLE: return "float64";
    case tf::DT_HALF: return "float16";
    case tf::DT_BFLOAT16: return "bfloat16";
    case tf::DT_INT32: return "int32";
    case tf::DT_INT64: return "int64";
    case tf::DT_INT16: return "int16";
    case tf::DT_INT8: return "int8";
    case tf::DT_UINT8: return "uint8";
    case tf::DT_UINT16: return "uint16";
    case tf::DT_UINT32: return "uint32";
    case tf::DT_UINT64: return "uint64";
    case tf::DT_BOOL: return "bool";
    case tf::DT_STRING: return "string";
    case tf::DT_RESOURCE: return "resource";
    case tf::DT_VARIANT: return "variant";
    case tf::DT_COMPLEX64: return "complex64";
    case tf::DT_COMPLEX128: return "complex128";
    default: return "an unknown type";
  }
}

DataType value_type(int dtype, const std::string& context) {
  switch (dtype % 100) {  // reference types are the value type + 100
    case tf::DT_FLOAT: case tf::DT_DOUBLE: case tf::DT_HALF: case tf::DT_BFLOAT16: return DataType::kFloat32;
    case tf::DT_INT32: case tf::DT_INT16: case tf::DT_INT8: case tf::DT_UINT8: case tf::DT_UINT16:
      return DataType::kInt32;
    case tf::DT_INT64: case tf::DT_UINT32: case tf::DT_UINT64: return DataType::kInt64;
    case tf::DT_BOOL: return DataType::kBool;
    default: throw_error(context, ": tensors of type ", dtype_name(dtype), " are not supported");
  }
}

Value Value::floats(Shape shape, std::vector<float> data) {
  Value v;
  v.type = DataType::kFloat32;
  v.shape = std::move(shape);
  v.f = std::move(data);
  return v;
}

Value Value::ints(DataType type, Shape shape, std::vector<int64_t> data) {
  Value v;
  v.type = type;
  v.shape = std::move(shape);
  v.i = std::move(data);
  return v;
}

HostTensor Value::to_host() const {
  if (is_float()) return HostTensor(shape, f);
  std::vector<float> data(i.begin(), i.end());
  return HostTensor(shape, std::move(data));
}

namespace {

size_t stored_size(int dtype) {
  switch (dtype) {
    case tf::DT_FLOAT: case tf::DT_INT32: case tf::DT_UINT32: return 4;
    case tf::DT_DOUBLE: case tf::DT_INT64: case tf::DT_UINT64: return 8;
    case tf::DT_HALF: case tf::DT_BFLOAT16: case tf::DT_INT16: case tf::DT_UINT16: return 2;
    default: return 1;  // int8, uint8, bool
  }
}

template <typename T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // TensorFlow writes little-endian; so is every machine eastrt runs on
  return v;
}

// The value of element k of raw content in `dtype`, widened.
double raw_element(int dtype, const char* p, int64_t& as_int) {
  switch (dtype) {
    case tf::DT_FLOAT: return load_le<float>(p);
    case tf::DT_DOUBLE: return load_le<double>(p);
    case tf::DT_HALF: return half_to_float(load_le<uint16_t>(p));
    case tf::DT_BFLOAT16: return bfloat16_to_float(load_le<uint16_t>(p));
    case tf::DT_INT32: return static_cast<double>(as_int = load_le<int32_t>(p));
    case tf::DT_UINT32: return static_cast<double>(as_int = load_le<uint32_t>(p));
    case tf::DT_INT64: return static_cast<double>(as_int = load_le<int64_t>(p));
    case tf::DT_UINT64: return static_cast<double>(as_int = static_cast<int64_t>(load_le<uint64_t>(p)));
    case tf::DT_INT16: return static_cast<double>(as_int = load_le<int16_t>(p));
    case tf::DT_UINT16: return static_cast<double>(as_int = load_le<uint16_t>(p));
    case tf::DT_INT8: return static_cast<double>(as_int = load_le<int8_t>(p));
    case tf::DT_UINT8: return static_cast<double>(as_int = load_le<uint8_t>(p));
    case tf::DT_BOOL: return static_cast<double>(as_int = p[0] != 0);
  }
  return 0;
}

uint16_t float_to_bfloat16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

Value decode_tensor(const tf::TensorProto& proto, const std::string& context) {
  const int dtype = proto.dtype();
  Value v;
  v.type = value_type(dtype, context);
  int64_t n = 1;
  for (const auto& dim : proto.tensor_shape().dim()) {
    EASTRT_CHECK(dim.size() >= 0 && dim.size() <= kMaxHostElements, context, ": tensor dimension ", dim.size(),
                 " is invalid");
    v.shape.push_back(dim.size());
    n *= dim.size();
    EASTRT_CHECK(n <= kMaxHostElements, context, ": tensor of ", to_string(v.shape), "... elements is too large");
  }
  if (v.is_float()) v.f.resize(static_cast<size_t>(n));
  else v.i.resize(static_cast<size_t>(n));
  auto set = [&](int64_t k, double x, int64_t as_int) {
    if (v.is_float()) v.f[k] = static_cast<float>(x);
    else v.i[k] = as_int;
  };

  if (!proto.tensor_content().empty()) {
    const std::string& content = proto.tensor_content();
    const size_t size = stored_size(dtype);
    EASTRT_CHECK(content.size() == static_cast<size_t>(n) * size, context, ": tensor content has ", content.size(),
                 " bytes, expected ", n, " elements of ", size, " bytes for shape ", to_string(v.shape));
    for (int64_t k = 0; k < n; ++k) {
      int64_t as_int = 0;
      double x = raw_element(dtype, content.data() + k * size, as_int);
      set(k, x, as_int);
    }
    return v;
  }
  // Typed fields: fewer values than elements means the last one repeats (a splat); none means zeros.
  int64_t count = 0;
  auto element = [&](int64_t k, int64_t& as_int) -> double {
    switch (dtype) {
      case tf::DT_FLOAT: return proto.float_val(static_cast<int>(k));
      case tf::DT_DOUBLE: return proto.double_val(static_cast<int>(k));
      case tf::DT_HALF: return half_to_float(static_cast<uint16_t>(proto.half_val(static_cast<int>(k))));
      case tf::DT_BFLOAT16: return bfloat16_to_float(static_cast<uint16_t>(proto.half_val(static_cast<int>(k))));
      case tf::DT_INT64: return static_cast<double>(as_int = proto.int64_val(static_cast<int>(k)));
      case tf::DT_UINT32: return static_cast<double>(as_int = proto.uint32_val(static_cast<int>(k)));
      case tf::DT_UINT64: return static_cast<double>(as_int = static_cast<int64_t>(proto.uint64_val(static_cast<int>(k))));
      case tf::DT_BOOL: return static_cast<double>(as_int = proto.bool_val(static_cast<int>(k)));
      default: return static_cast<double>(as_int = proto.int_val(static_cast<int>(k)));
    }
  };
  switch (dtype) {
    case tf::DT_FLOAT: count = proto.float_val_size(); break;
    case tf::DT_DOUBLE: count = proto.double_val_size(); break;
    case tf::DT_HALF: case tf::DT_BFLOAT16: count = proto.half_val_size(); break;
    case tf::DT_INT64: count = proto.int64_val_size(); break;
    case tf::DT_UINT32: count = proto.uint32_val_size(); break;
    case tf::DT_UINT64: count = proto.uint64_val_size(); break;
    case tf::DT_BOOL: count = proto.bool_val_size(); break;
    default: count = proto.int_val_size(); break;
  }
  EASTRT_CHECK(count <= n, context, ": tensor holds ", count, " values for shape ", to_string(v.shape));
  for (int64_t k = 0; k < n && count > 0; ++k) {
    int64_t as_int = 0;
    double x = element(std::min(k, count - 1), as_int);
    set(k, x, as_int);
  }
  return v;
}

void encode_tensor(const Value& value, int dtype, tf::TensorProto* proto) {
  proto->Clear();
  proto->set_dtype(static_cast<tf::DataType>(dtype));
  for (int64_t d : value.shape) proto->mutable_tensor_shape()->add_dim()->set_size(d);
  const size_t size = stored_size(dtype);
  std::string content(static_cast<size_t>(value.size()) * size, '\0');
  for (int64_t k = 0; k < value.size(); ++k) {
    char* p = content.data() + k * size;
    const double x = value.at(k);
    const int64_t n = value.is_float() ? saturate_to_int64(x) : value.i[k];
    auto store = [&](auto v) { std::memcpy(p, &v, sizeof(v)); };
    switch (dtype) {
      case tf::DT_FLOAT: store(static_cast<float>(x)); break;
      case tf::DT_DOUBLE: store(x); break;
      case tf::DT_HALF: store(float_to_half(static_cast<float>(x))); break;
      case tf::DT_BFLOAT16: store(float_to_bfloat16(static_cast<float>(x))); break;
      case tf::DT_INT32: store(static_cast<int32_t>(n)); break;
      case tf::DT_UINT32: store(static_cast<uint32_t>(n)); break;
      case tf::DT_INT64: store(n); break;
      case tf::DT_UINT64: store(static_cast<uint64_t>(n)); break;
      case tf::DT_INT16: store(static_cast<int16_t>(n)); break;
      case tf::DT_UINT16: store(static_cast<uint16_t>(n)); break;
      case tf::DT_INT8: store(static_cast<int8_t>(n)); break;
      case tf::DT_UINT8: store(static_cast<uint8_t>(n)); break;
      case tf::DT_BOOL: store(static_cast<uint8_t>(n != 0)); break;
      default: throw_error("cannot store a tensor of type ", dtype_name(dtype));
    }
  }
  if (!content.empty()) proto->set_tensor_content(std::move(content));
}

}  // namespace tfimport
}  // namespace eastrt
