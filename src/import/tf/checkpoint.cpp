// TensorFlow tensor-bundle checkpoints: the .index SSTable (LevelDB table format), its protobuf entries
// decoded by hand, and the data shards, every block and tensor checked against its crc32c.
#include "eastrt/checkpoint.h"

#include <array>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string_view>

#include "eastrt/error.h"

namespace eastrt {

static_assert(std::endian::native == std::endian::little, "the bundle reader assumes a little-endian host");

namespace {

constexpr uint64_t kTableMagic = 0xdb4775248b80fb57ull;
constexpr size_t kFooterSize = 48;        // two varint block handles padded to 40 bytes, then the magic
constexpr size_t kBlockTrailerSize = 5;   // compression type byte, then masked crc32c of block + type
constexpr const char* kMovingAverage = "/ExponentialMovingAverage";
// Bounds that no real bundle reaches and that keep a hostile index from costing unbounded memory: keys
// are prefix-compressed, so a small file could otherwise spell out gigabytes of names.
constexpr size_t kMaxKeySize = 64 << 10;
constexpr size_t kMaxTotalKeyBytes = 64 << 20;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
constexpr bool kVerifyChecksums = false;  // lets mutated inputs reach the parsers behind the checksums
#else
constexpr bool kVerifyChecksums = true;
#endif

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // Castagnoli, reflected
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// TensorFlow's DataType enum: names, and the byte size of one element (0: variable-length types).
struct TfType {
  const char* name;
  size_t element_size;
  std::optional<DataType> type;
};
TfType tf_type(int dtype) {
  switch (dtype) {
    case 1: return {"DT_FLOAT", 4, DataType::kFloat32};
    case 2: return {"DT_DOUBLE", 8, {}};
    case 3: return {"DT_INT32", 4, DataType::kInt32};
    case 4: return {"DT_UINT8", 1, DataType::kUInt8};
    case 5: return {"DT_INT16", 2, {}};
    case 6: return {"DT_INT8", 1, DataType::kInt8};
    case 7: return {"DT_STRING", 0, {}};
    case 8: return {"DT_COMPLEX64", 8, {}};
    case 9: return {"DT_INT64", 8, DataType::kInt64};
    case 10: return {"DT_BOOL", 1, DataType::kBool};
    case 14: return {"DT_BFLOAT16", 2, DataType::kBFloat16};
    case 17: return {"DT_UINT16", 2, {}};
    case 18: return {"DT_COMPLEX128", 16, {}};
    case 19: return {"DT_HALF", 2, DataType::kFloat16};
    case 20: return {"DT_RESOURCE", 0, {}};
    case 21: return {"DT_VARIANT", 0, {}};
    case 22: return {"DT_UINT32", 4, {}};
    case 23: return {"DT_UINT64", 8, {}};
    default: return {nullptr, 0, {}};
  }
}

// A bounds-checked cursor over bytes; `context` names the file and the structure being read.
struct Cursor {
  const uint8_t* p = nullptr;
  const uint8_t* end = nullptr;
  std::shared_ptr<const std::string> context;

  [[noreturn]] void fail(const std::string& what) const { throw_error(*context, ": ", what); }

  size_t left() const { return static_cast<size_t>(end - p); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) fail("truncated varint");
      uint8_t byte = *p++;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail("varint longer than 10 bytes");
    return 0;
  }
  uint32_t varint32() {
    uint64_t v = varint();
    if (v > std::numeric_limits<uint32_t>::max()) fail("varint32 out of range");
    return static_cast<uint32_t>(v);
  }
  const uint8_t* take(uint64_t n) {
    if (n > left()) fail("length " + std::to_string(n) + " runs past the end");
    const uint8_t* start = p;
    p += n;
    return start;
  }
};

// Protobuf wire format, just enough for BundleHeaderProto / BundleEntryProto and what they nest.
struct ProtoField {
  uint32_t number = 0;
  int wire = 0;
  uint64_t value = 0;  // varint or fixed value
  Cursor bytes{};      // length-delimited payload
};

bool next_field(Cursor& in, ProtoField& f) {
  if (in.p == in.end) return false;
  uint64_t tag = in.varint();
  f.number = static_cast<uint32_t>(tag >> 3);
  f.wire = static_cast<int>(tag & 7);
  if (f.number == 0) in.fail("field number 0");
  switch (f.wire) {
    case 0: f.value = in.varint(); break;
    case 1: { const uint8_t* q = in.take(8); std::memcpy(&f.value, q, 8); break; }
    case 2: { uint64_t n = in.varint(); const uint8_t* q = in.take(n); f.bytes = {q, q + n, in.context}; break; }
    case 5: f.value = load_u32(in.take(4)); break;
    default: in.fail("unsupported wire type " + std::to_string(f.wire));
  }
  return true;
}

void expect_wire(const Cursor& in, const ProtoField& f, int wire, const char* field) {
  if (f.wire != wire) in.fail(std::string("field ") + field + " has wire type " + std::to_string(f.wire));
}

// LevelDB block: entries (shared key bytes, unshared key bytes, value length, key delta, value), then the
// restart offsets (uint32 each) and their count. Calls `visit(key, value)` in key order; returns the last key.
std::string for_each_block_entry(Cursor block, const std::function<void(const std::string&, Cursor)>& visit) {
  size_t size = block.left();
  if (size < 4) block.fail("block shorter than its restart count");
  uint32_t num_restarts = load_u32(block.end - 4);
  if (num_restarts == 0 || num_restarts > (size - 4) / 4)
    block.fail("bad restart count " + std::to_string(num_restarts));
  size_t limit = size - 4 - 4 * static_cast<size_t>(num_restarts);
  const uint8_t* restarts = block.p + limit;
  Cursor in{block.p, block.p + limit, block.context};
  std::string key;
  size_t next_restart = 0;
  while (in.p < in.end) {
    size_t offset = static_cast<size_t>(in.p - block.p);
    uint32_t shared = in.varint32(), unshared = in.varint32(), value_size = in.varint32();
    if (next_restart < num_restarts && load_u32(restarts + 4 * next_restart) == offset) {
      if (shared != 0) block.fail("restart entry shares key bytes");
      ++next_restart;
    }
    if (shared > key.size()) block.fail("entry shares more key bytes than the previous key has");
    if (static_cast<size_t>(shared) + unshared > kMaxKeySize) block.fail("key longer than 64 KiB");
    const uint8_t* delta = in.take(unshared);
    const uint8_t* value = in.take(value_size);
    // The new key is the old one's first `shared` bytes then `delta`: compare the tails, without a copy.
    std::string_view tail(reinterpret_cast<const char*>(delta), unshared);
    if (offset != 0 && !(std::string_view(key).substr(shared) < tail)) block.fail("keys out of order");
    key.resize(shared);
    key.append(tail);
    visit(key, Cursor{value, value + value_size, block.context});
  }
  bool empty_block = limit == 0 && num_restarts == 1 && load_u32(restarts) == 0;
  if (next_restart != num_restarts && !empty_block) block.fail("restart points do not match the entries");
  return key;
}

std::string quoted(const std::string& name) {
  std::string out = "'";
  for (unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "'";
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

CheckpointReader::CheckpointReader(const std::string& path, CheckpointOptions options) : options_(options) {
  prefix_ = path;
  const std::string suffix = ".index";
  if (prefix_.size() > suffix.size() && prefix_.compare(prefix_.size() - suffix.size(), suffix.size(), suffix) == 0)
    prefix_.resize(prefix_.size() - suffix.size());
  std::string index_path = prefix_ + suffix;
  std::ifstream in(index_path, std::ios::binary);
  EASTRT_CHECK(in, "cannot open TensorFlow checkpoint index ", index_path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EASTRT_CHECK(!in.bad(), "cannot read TensorFlow checkpoint index ", index_path);
  parse_index(bytes, index_path);
  check_shards();
}

CheckpointReader CheckpointReader::from_index_bytes(const std::string& index_bytes, const std::string& prefix,
                                                    CheckpointOptions options) {
  CheckpointReader reader(Unopened{}, prefix, options);
  reader.parse_index(index_bytes, prefix + ".index");
  return reader;
}

void CheckpointReader::parse_index(const std::string& bytes, const std::string& index_path) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  auto context = [&index_path](const std::string& where) {
    return std::make_shared<const std::string>("TensorFlow checkpoint index " + index_path + ": " + where);
  };
  EASTRT_CHECK(size >= kFooterSize, "TensorFlow checkpoint index ", index_path, " is truncated: ", size,
               " bytes, shorter than the 48-byte table footer");
  uint64_t magic;
  std::memcpy(&magic, data + size - 8, 8);
  EASTRT_CHECK(magic == kTableMagic, "TensorFlow checkpoint index ", index_path,
               ": bad table magic in the footer (not a tensor-bundle index, or truncated)");

  // A block lies before the footer, followed by its trailer; the checksum covers the block and type byte.
  const size_t blocks_end = size - kFooterSize;
  auto read_block = [&](Cursor& handle, const std::string& what) -> Cursor {
    uint64_t offset = handle.varint(), length = handle.varint();
    if (offset > blocks_end || length > blocks_end - offset || blocks_end - offset - length < kBlockTrailerSize)
      throw_error("TensorFlow checkpoint index ", index_path, " is truncated or corrupt: ", what, " at offset ",
                  offset, " (", length, " bytes) runs past the end of the blocks (", blocks_end, " bytes)");
    const uint8_t* block = data + offset;
    uint32_t stored = crc32c_unmask(load_u32(block + length + 1));
    if (crc32c(block, length + 1) != stored && kVerifyChecksums)
      throw_error("TensorFlow checkpoint index ", index_path, ": bad block checksum in ", what, " at offset ",
                  offset);
    uint8_t type = block[length];
    if (type == 1)
      throw_error("TensorFlow checkpoint index ", index_path, ": ", what, " at offset ", offset,
                  " is Snappy-compressed; TensorFlow writes uncompressed bundles and eastrt reads no other");
    if (type != 0)
      throw_error("TensorFlow checkpoint index ", index_path, ": ", what, " at offset ", offset,
                  " has unknown compression type ", static_cast<int>(type));
    return Cursor{block, block + length, context(what + " at offset " + std::to_string(offset))};
  };

  Cursor footer{data + blocks_end, data + size - 8, context("table footer")};
  read_block(footer, "metaindex block");  // TensorFlow writes it empty; only its checksum matters
  Cursor index = read_block(footer, "index block");

  bool have_header = false;
  std::optional<std::string> last_key;  // of the blocks before; each block checks its own order
  size_t key_bytes = 0;
  const uint8_t* blocks_done = data;  // data blocks follow one another; none is read twice
  for_each_block_entry(index, [&](const std::string&, Cursor handle) {
    Cursor block = read_block(handle, "data block");
    if (block.p < blocks_done) block.fail("data block overlaps the one before it");
    blocks_done = block.end + kBlockTrailerSize;
    bool block_start = true;
    std::string last = for_each_block_entry(block, [&](const std::string& key, Cursor value) {
      if (block_start && last_key && !(*last_key < key))
        value.fail("keys out of order across blocks at " + quoted(key));
      block_start = false;
      if (key.empty()) {
        value.context = context("BundleHeaderProto");
        ProtoField f;
        int endianness = 0;
        int64_t min_consumer = 0;
        while (next_field(value, f)) {
          if (f.number == 1) { expect_wire(value, f, 0, "num_shards"); num_shards_ = static_cast<int32_t>(f.value); }
          if (f.number == 2) { expect_wire(value, f, 0, "endianness"); endianness = static_cast<int>(f.value); }
          if (f.number == 3) {
            expect_wire(value, f, 2, "version");
            ProtoField v;
            while (next_field(f.bytes, v))
              if (v.number == 2 && v.wire == 0) min_consumer = static_cast<int32_t>(v.value);
          }
        }
        if (endianness != 0) value.fail("big-endian bundles are not supported");
        if (num_shards_ < 0 || num_shards_ > 99999) value.fail("bad num_shards " + std::to_string(num_shards_));
        if (min_consumer > 1)
          value.fail("needs a bundle reader of version " + std::to_string(min_consumer) + ", this one is version 1");
        have_header = true;
        return;
      }
      if (key[0] == '\0') return;  // an encoded slice key of a partitioned variable; its full entry is refused
      value.context = context("BundleEntryProto of tensor " + quoted(key));
      CheckpointEntry e;
      bool sliced = false;
      ProtoField f;
      while (next_field(value, f)) {
        switch (f.number) {
          case 1: expect_wire(value, f, 0, "dtype"); e.tf_dtype = static_cast<int>(f.value); break;
          case 2: {
            expect_wire(value, f, 2, "shape");
            ProtoField s;
            while (next_field(f.bytes, s)) {
              if (s.number == 3 && s.wire == 0 && s.value != 0) value.fail("shape of unknown rank");
              if (s.number != 2) continue;
              expect_wire(f.bytes, s, 2, "dim");
              int64_t dim = 0;
              ProtoField d;
              while (next_field(s.bytes, d))
                if (d.number == 1) { expect_wire(s.bytes, d, 0, "dim.size"); dim = static_cast<int64_t>(d.value); }
              if (dim < 0) value.fail("negative dimension " + std::to_string(dim));
              e.shape.push_back(dim);
            }
            break;
          }
          case 3: expect_wire(value, f, 0, "shard_id"); e.shard = static_cast<int32_t>(f.value); break;
          case 4: expect_wire(value, f, 0, "offset"); e.offset = f.value; break;
          case 5: expect_wire(value, f, 0, "size"); e.size = f.value; break;
          case 6: expect_wire(value, f, 5, "crc32c"); e.crc32c = crc32c_unmask(static_cast<uint32_t>(f.value)); break;
          case 7: sliced = true; break;
          default: break;
        }
      }
      if (sliced) value.fail("partitioned (sliced) variables are not supported");
      TfType t = tf_type(e.tf_dtype);
      e.dtype_name = t.name ? t.name : "DT_" + std::to_string(e.tf_dtype) + " (unknown)";
      e.type = t.type;
      if (e.shard < 0) value.fail("negative shard_id " + std::to_string(e.shard));
      if (e.offset > std::numeric_limits<uint64_t>::max() - e.size) value.fail("offset + size overflows");
      if (t.element_size) {
        // size must equal volume x element size; compare by division so huge shapes cannot overflow
        uint64_t elements = 1;
        for (int64_t dim : e.shape) {
          if (dim != 0 && elements > (e.size / t.element_size) / static_cast<uint64_t>(dim)) {
            elements = std::numeric_limits<uint64_t>::max();
            break;
          }
          elements *= static_cast<uint64_t>(dim);
        }
        if (elements == std::numeric_limits<uint64_t>::max() || elements * t.element_size != e.size)
          value.fail("size " + std::to_string(e.size) + " does not match shape " + to_string(e.shape) + " of " +
                     e.dtype_name);
      }
      key_bytes += key.size();
      if (key_bytes > kMaxTotalKeyBytes) value.fail("more than 64 MiB of tensor names");
      entries_.emplace(key, std::move(e));
    });
    if (!block_start) last_key = std::move(last);
  });
  EASTRT_CHECK(have_header, "TensorFlow checkpoint index ", index_path, ": no bundle header (empty key)");
  for (const auto& [name, e] : entries_)
    EASTRT_CHECK(e.shard < num_shards_, "TensorFlow checkpoint index ", index_path, ": tensor ", quoted(name),
                 " is in shard ", e.shard, " but the bundle has ", num_shards_, " shards");
}

std::string CheckpointReader::shard_path(int shard) const {
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, ".data-%05d-of-%05d", shard, num_shards_);
  return prefix_ + suffix;
}

void CheckpointReader::check_shards() const {
  std::vector<uint64_t> sizes(static_cast<size_t>(num_shards_));
  for (int s = 0; s < num_shards_; ++s) {
    std::error_code ec;
    sizes[s] = std::filesystem::file_size(shard_path(s), ec);
    EASTRT_CHECK(!ec, describe(), ": data shard ", shard_path(s), " is missing (shard ", s, " of ", num_shards_, ")");
  }
  for (const auto& [name, e] : entries_)
    EASTRT_CHECK(e.offset + e.size <= sizes[e.shard], describe(), ": data shard ", shard_path(e.shard),
                 " is truncated: tensor ", quoted(name), " needs bytes [", e.offset, ", ", e.offset + e.size,
                 ") but the file has ", sizes[e.shard]);
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

std::string CheckpointReader::resolve(const std::string& name) const {
  if (options_.prefer_moving_average && entries_.count(name + kMovingAverage)) return name + kMovingAverage;
  return name;
}

bool CheckpointReader::contains(const std::string& name) const { return entries_.count(resolve(name)) != 0; }

const CheckpointEntry& CheckpointReader::entry(const std::string& name) const {
  auto it = entries_.find(resolve(name));
  if (it == entries_.end()) throw_error(describe(), ": no tensor ", quoted(name), " (it holds ", entries_.size(), ")");
  return it->second;
}

DataType CheckpointReader::stored_type(const std::string& name) const {
  const CheckpointEntry& e = entry(name);
  if (!e.type)
    throw_error(describe(), ": tensor ", quoted(resolve(name)), " has unsupported dtype ", e.dtype_name,
                " (eastrt reads DT_FLOAT, DT_HALF, DT_BFLOAT16, DT_INT32, DT_INT64, DT_BOOL, DT_INT8, DT_UINT8)");
  return *e.type;
}

std::vector<uint8_t> CheckpointReader::read_bytes(const std::string& name) const {
  const CheckpointEntry& e = entry(name);
  const std::string stored = resolve(name);
  if (!tf_type(e.tf_dtype).element_size)
    throw_error(describe(), ": tensor ", quoted(stored), " has unsupported dtype ", e.dtype_name,
                " (not fixed-size)");
  const std::string path = shard_path(e.shard);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EASTRT_CHECK(in, describe(), ": data shard ", path, " is missing (shard ", e.shard, " of ", num_shards_,
               "), needed for tensor ", quoted(stored));
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  EASTRT_CHECK(e.offset + e.size <= file_size, describe(), ": data shard ", path, " is truncated: tensor ",
               quoted(stored), " needs bytes [", e.offset, ", ", e.offset + e.size, ") but the file has ", file_size);
  std::vector<uint8_t> bytes(e.size);
  in.seekg(static_cast<std::streamoff>(e.offset));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(e.size));
  EASTRT_CHECK(in || e.size == 0, describe(), ": cannot read tensor ", quoted(stored), " from ", path);
  uint32_t actual = crc32c(bytes.data(), bytes.size());
  if (actual != e.crc32c && kVerifyChecksums) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "stored crc32c 0x%08x, data 0x%08x", e.crc32c, actual);
    throw_error(describe(), ": tensor ", quoted(stored), " in ", path, " fails its checksum (", buf, ")");
  }
  return bytes;
}

HostTensor CheckpointReader::get(const std::string& name) const {
  const DataType type = stored_type(name);
  const std::vector<uint8_t> bytes = read_bytes(name);
  const size_t n = bytes.size() / element_size(type);
  std::vector<float> values(n);
  const uint8_t* p = bytes.data();
  for (size_t i = 0; i < n; ++i) {
    switch (type) {
      case DataType::kFloat32: std::memcpy(&values[i], p + 4 * i, 4); break;
      case DataType::kFloat16: values[i] = half_to_float(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8)); break;
      case DataType::kBFloat16:
        values[i] = bfloat16_to_float(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
        break;
      case DataType::kInt32: { int32_t v; std::memcpy(&v, p + 4 * i, 4); values[i] = static_cast<float>(v); break; }
      case DataType::kInt64: { int64_t v; std::memcpy(&v, p + 8 * i, 8); values[i] = static_cast<float>(v); break; }
      case DataType::kInt8: values[i] = static_cast<int8_t>(p[i]); break;
      case DataType::kUInt8: values[i] = p[i]; break;
      case DataType::kBool: values[i] = p[i] ? 1.0f : 0.0f; break;
    }
  }
  return HostTensor(entry(name).shape, std::move(values));
}

std::vector<int64_t> CheckpointReader::get_integers(const std::string& name) const {
  const DataType type = stored_type(name);
  if (type != DataType::kInt32 && type != DataType::kInt64 && type != DataType::kBool && type != DataType::kInt8 &&
      type != DataType::kUInt8)
    throw_error(describe(), ": tensor ", quoted(resolve(name)), " holds ", entry(name).dtype_name,
                ", not integers");
  const std::vector<uint8_t> bytes = read_bytes(name);
  const size_t n = bytes.size() / element_size(type);
  std::vector<int64_t> values(n);
  for (size_t i = 0; i < n; ++i) {
    if (type == DataType::kInt32) {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      values[i] = v;
    } else if (type == DataType::kInt64) {
      std::memcpy(&values[i], bytes.data() + 8 * i, 8);
    } else if (type == DataType::kInt8) {
      values[i] = static_cast<int8_t>(bytes[i]);
    } else {
      values[i] = type == DataType::kBool ? (bytes[i] != 0) : bytes[i];
    }
  }
  return values;
}

}  // namespace eastrt
