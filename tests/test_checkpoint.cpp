// CheckpointReader against checkpoints written by real TensorFlow (tests/fixtures/tf, see make_fixtures.py):
// names, shapes and values as TensorFlow's own reader saw them, EMA shadows, dtypes, shards, and damage.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "eastrt/checkpoint.h"
#include "eastrt/error.h"

using namespace eastrt;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/tf/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  return nlohmann::json::parse(in);
}
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void dump(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A fresh copy of fixture checkpoint `sub` (e.g. "dtypes") in a temp dir; returns the copy's prefix.
std::string copy_checkpoint(const std::string& sub, const std::string& test) {
  fs::path dir = fs::temp_directory_path() / "eastrt_test_checkpoint" / test;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& file : fs::directory_iterator(kFixtures + sub))
    if (file.path().filename().string().rfind("model.ckpt.", 0) == 0)
      fs::copy_file(file.path(), dir / file.path().filename());
  return (dir / "model.ckpt").string();
}

// Runs `f`, expecting an eastrt::Error whose message holds every one of `parts`.
template <typename F>
void expect_error(F f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning " << *parts.begin();
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// TensorFlow's Python dtype names (as tensors.json has them) and the DataType enum names in the bundle.
const std::map<std::string, std::string> kTfDtypeNames = {
    {"float32", "DT_FLOAT"}, {"float16", "DT_HALF"}, {"bfloat16", "DT_BFLOAT16"}, {"int32", "DT_INT32"},
    {"int64", "DT_INT64"},   {"bool", "DT_BOOL"},    {"float64", "DT_DOUBLE"},    {"string", "DT_STRING"}};

// Checks every tensor of `reader` against what TensorFlow's reader recorded in tensors.json.
void expect_matches_tensorflow(const CheckpointReader& reader, const nlohmann::json& tensors) {
  std::vector<std::string> expected_names;
  for (const auto& [name, t] : tensors.items()) expected_names.push_back(name);
  ASSERT_EQ(reader.names(), expected_names);
  for (const auto& [name, t] : tensors.items()) {
    SCOPED_TRACE(name);
    const CheckpointEntry& e = reader.entry(name);
    EXPECT_EQ(e.dtype_name, kTfDtypeNames.at(t["dtype"].get<std::string>()));
    EXPECT_EQ(e.shape, t["shape"].get<Shape>());
    if (!e.type) continue;  // double and string: listed, but get() refuses them (tested below)
    HostTensor value = reader.get(name);
    ASSERT_EQ(value.shape, e.shape);
    std::vector<double> exact(value.data.begin(), value.data.end());
    if (*e.type == DataType::kInt32 || *e.type == DataType::kInt64 || *e.type == DataType::kBool) {
      std::vector<int64_t> integers = reader.get_integers(name);
      exact.assign(integers.begin(), integers.end());  // float32 cannot hold every int64
    }
    const auto& listed = t.contains("values") ? t["values"] : t["first"];
    for (size_t i = 0; i < listed.size(); ++i) EXPECT_EQ(exact.at(i), listed[i].get<double>()) << i;
    double sum = 0, magnitude = 0;
    for (double v : exact) sum += v, magnitude += std::fabs(v);
    EXPECT_NEAR(sum, t["sum"].get<double>(), 1e-9 * (1 + magnitude));
  }
}

uint64_t varint(const std::string& bytes, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    uint8_t b = static_cast<uint8_t>(bytes.at(pos++));
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

// A minimal bundle writer for layouts the TensorFlow fixtures do not reach (TF's 256 KiB blocks hold a whole
// EAST index): LevelDB blocks with a restart point every 16 keys, several data blocks, float tensors.
std::string put_varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += static_cast<char>(v | 0x80);
  return out + static_cast<char>(v);
}
std::string put_fixed32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string put_block(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string data, restarts, last;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [key, value] = entries[i];
    size_t shared = 0;
    if (i % 16 == 0) restarts += put_fixed32(static_cast<uint32_t>(data.size()));
    else while (shared < std::min(last.size(), key.size()) && last[shared] == key[shared]) ++shared;
    data += put_varint(shared) + put_varint(key.size() - shared) + put_varint(value.size());
    data += key.substr(shared) + value;
    last = key;
  }
  if (restarts.empty()) restarts = put_fixed32(0);
  return data + restarts + put_fixed32(static_cast<uint32_t>(restarts.size() / 4));
}
// Appends `block` with its trailer to `file`; returns its handle.
std::string append_block(std::string& file, const std::string& block) {
  std::string handle = put_varint(file.size()) + put_varint(block.size());
  std::string typed = block + '\0';
  file += typed + put_fixed32(crc32c_mask(crc32c(typed.data(), typed.size())));
  return handle;
}
// Writes PREFIX.index and PREFIX.data-00000-of-00001 holding `count` tensors "t/NNN" = {i, i, i}, their
// entries spread over data blocks of `per_block` entries. `swap_blocks` lists the first two blocks out of
// order; `unsorted` names the second block's tensors "a/NNN", below the first block's keys.
void write_bundle(const std::string& prefix, int count, int per_block, bool swap_blocks = false,
                  bool unsorted = false) {
  std::string data;
  std::vector<std::pair<std::string, std::string>> entries = {{"", "\x08\x01\x1a\x02\x08\x01"}};  // 1 shard, v1
  for (int i = 0; i < count; ++i) {
    char name[16];
    const bool second_block = i + 1 >= per_block && i + 1 < 2 * per_block;
    std::snprintf(name, sizeof name, unsorted && second_block ? "a/%03d" : "t/%03d", i);
    float values[3] = {float(i), float(i), float(i)};
    std::string bytes(reinterpret_cast<const char*>(values), sizeof values);
    std::string entry = "\x08\x01\x12\x04\x12\x02\x08\x03";  // DT_FLOAT, shape {3}
    entry += "\x20" + put_varint(data.size()) + "\x28" + put_varint(bytes.size()) + "\x35" +
             put_fixed32(crc32c_mask(crc32c(bytes.data(), bytes.size())));
    data += bytes;
    entries.emplace_back(name, entry);
  }
  std::string file;
  std::vector<std::pair<std::string, std::string>> index;
  for (size_t begin = 0; begin < entries.size(); begin += per_block) {
    const size_t end = std::min(entries.size(), begin + per_block);
    std::vector<std::pair<std::string, std::string>> part(entries.begin() + begin, entries.begin() + end);
    // the reader checks only that index keys ascend, so plain block numbers serve as separators
    index.emplace_back("block" + std::to_string(index.size()), append_block(file, put_block(part)));
  }
  if (swap_blocks) std::swap(index[0].second, index[1].second);
  std::string footer = append_block(file, put_block({}));  // metaindex
  footer += append_block(file, put_block(index));
  footer.resize(40, '\0');
  const uint64_t magic = 0xdb4775248b80fb57ull;
  file += footer + std::string(reinterpret_cast<const char*>(&magic), 8);
  dump(prefix + ".index", file);
  dump(prefix + ".data-00000-of-00001", data);
}

}  // namespace

TEST(Crc32c, KnownValuesAndMask) {
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xe3069283u);  // chains
  for (uint32_t v : {0u, 1u, 0xe3069283u, 0xffffffffu}) EXPECT_EQ(crc32c_unmask(crc32c_mask(v)), v);
  EXPECT_NE(crc32c_mask(0xe3069283u), 0xe3069283u);
}

TEST(CheckpointReader, TrainingCheckpointMatchesTensorFlow) {
  CheckpointReader reader(kFixtures + "train/model.ckpt");
  EXPECT_EQ(reader.num_shards(), 1);
  expect_matches_tensorflow(reader, load_json(kFixtures + "train/tensors.json"));
  // TF-slim's names and the divisor-8 widths
  EXPECT_EQ(reader.get("resnet_v1_50/conv1/weights").shape, (Shape{7, 7, 3, 8}));
  EXPECT_EQ(reader.get("resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/weights").shape, (Shape{1, 1, 8, 32}));
  EXPECT_EQ(reader.get("resnet_v1_50/block4/unit_3/bottleneck_v1/conv3/BatchNorm/moving_variance").shape, Shape{256});
  EXPECT_EQ(reader.get("feature_fusion/Conv_8/weights", {1, 1, 4, 4}).shape, (Shape{1, 1, 4, 4}));
  EXPECT_TRUE(reader.contains("feature_fusion/Conv_9/biases/ExponentialMovingAverage"));
  EXPECT_FALSE(reader.contains("resnet_v1_50/conv1/BatchNorm/moving_mean/ExponentialMovingAverage"));
  EXPECT_EQ(reader.stored_type("global_step"), DataType::kInt64);
  EXPECT_EQ(reader.get_integers("global_step"), std::vector<int64_t>{12345});
  EXPECT_EQ(reader.describe(), "TensorFlow checkpoint " + kFixtures + "train/model.ckpt");
  expect_error([&] { reader.get("feature_fusion/Conv_8/weights", {1, 1, 4, 5}); }, {"Conv_8/weights", "1x1x4x5"});
}

TEST(CheckpointReader, PreferMovingAverageGivesTheInferenceWeights) {
  CheckpointReader raw(kFixtures + "train/model.ckpt.index");  // the .index path works as well as the prefix
  CheckpointReader ema(kFixtures + "train/model.ckpt", {.prefer_moving_average = true});
  CheckpointReader infer(kFixtures + "infer/model.ckpt");
  expect_matches_tensorflow(infer, load_json(kFixtures + "infer/tensors.json"));
  EXPECT_EQ(ema.names(), raw.names());
  size_t shadowed = 0;
  for (const std::string& name : infer.names()) {
    SCOPED_TRACE(name);
    const bool has_shadow = raw.contains(name + "/ExponentialMovingAverage");
    EXPECT_EQ(ema.resolve(name), has_shadow ? name + "/ExponentialMovingAverage" : name);
    EXPECT_EQ(ema.get(name).data, infer.get(name).data);
    if (has_shadow) {
      ++shadowed;
      EXPECT_NE(raw.get(name).data, infer.get(name).data);  // ignoring the shadows gives other weights
    } else {
      EXPECT_EQ(raw.get(name).data, infer.get(name).data);  // BN statistics and global_step have none
    }
  }
  EXPECT_EQ(shadowed, 63u + 2 * 60 + 3);  // conv weights, BN gamma and beta, head biases
  EXPECT_EQ(shadowed + infer.names().size(), raw.names().size());
}

TEST(CheckpointReader, EveryDtype) {
  CheckpointReader reader(kFixtures + "dtypes/model.ckpt");
  expect_matches_tensorflow(reader, load_json(kFixtures + "dtypes/tensors.json"));
  EXPECT_EQ(reader.stored_type("dtypes/half"), DataType::kFloat16);
  EXPECT_EQ(reader.stored_type("dtypes/bfloat16"), DataType::kBFloat16);
  EXPECT_EQ(reader.stored_type("dtypes/bool"), DataType::kBool);
  EXPECT_EQ(reader.read_bytes("dtypes/half").size(), 3u * 4 * 2);
  EXPECT_EQ(reader.get_integers("dtypes/int64"), std::vector<int64_t>{-1234567890123});
  EXPECT_EQ(reader.get("dtypes/float_scalar").shape, Shape{});
  EXPECT_EQ(reader.get("dtypes/float_scalar").data, std::vector<float>{3.25f});
  EXPECT_TRUE(reader.get("dtypes/float_empty").empty());
  EXPECT_EQ(reader.entry("dtypes/double").dtype_name, "DT_DOUBLE");
  EXPECT_EQ(reader.read_bytes("dtypes/double").size(), 3u * 8);  // raw bytes need no conversion
  expect_error([&] { reader.get("dtypes/double"); },
               {"dtypes/double", "unsupported dtype DT_DOUBLE", "dtypes/model.ckpt"});
  expect_error([&] { reader.get("dtypes/string"); }, {"dtypes/string", "DT_STRING"});
  expect_error([&] { reader.get_integers("dtypes/half"); }, {"dtypes/half", "not integers"});
  expect_error([&] { reader.get("dtypes/missing"); }, {"no tensor 'dtypes/missing'", "dtypes/model.ckpt"});
}

TEST(CheckpointReader, TwoShards) {
  CheckpointReader reader(kFixtures + "sharded/model.ckpt");
  EXPECT_EQ(reader.num_shards(), 2);
  expect_matches_tensorflow(reader, load_json(kFixtures + "sharded/tensors.json"));
  EXPECT_EQ(reader.entry("first/weights").shard + reader.entry("second/weights").shard, 1);
  EXPECT_EQ(reader.shard_path(1), kFixtures + "sharded/model.ckpt.data-00001-of-00002");
}

TEST(CheckpointReader, FixtureOutputsAreWhereTheirDescriptionSays) {
  auto description = load_json(kFixtures + "outputs.json");
  EXPECT_EQ(description["east"]["outputs"]["score"], "feature_fusion/Conv_7/Sigmoid");
  EXPECT_EQ(description["east"]["outputs"]["geometry"], "feature_fusion/concat_3");
  for (const auto& c : description["east"]["cases"])
    for (const char* part : {"input", "score", "geometry"}) {
      const auto& a = c[part];
      size_t bytes = a["dtype"] == "uint8" ? 1 : 4;
      for (int64_t d : a["shape"].get<Shape>()) bytes *= static_cast<size_t>(d);
      EXPECT_EQ(fs::file_size(kFixtures + a["file"].get<std::string>()), bytes) << a["file"];
    }
}

TEST(CheckpointReader, DamagedIndexGivesErrorsNamingTheFile) {
  const std::string prefix = copy_checkpoint("dtypes", "index"), index = prefix + ".index";
  const std::string good = slurp(index);

  std::string bad = good;
  bad[bad.size() - 3] ^= 0x40;  // the footer magic
  dump(index, bad);
  expect_error([&] { CheckpointReader r(prefix); }, {index, "magic"});

  bad = good;
  bad[20] ^= 0x01;  // inside the first data block
  dump(index, bad);
  expect_error([&] { CheckpointReader r(prefix); }, {index, "bad block checksum", "data block"});

  dump(index, good.substr(0, 30));
  expect_error([&] { CheckpointReader r(prefix); }, {index, "truncated"});
  dump(index, good.substr(0, good.size() - 1));
  expect_error([&] { CheckpointReader r(prefix); }, {index});

  // Mark the index block Snappy-compressed with a valid checksum: refused for what it is.
  size_t pos = good.size() - 48;
  varint(good, pos), varint(good, pos);  // metaindex handle
  const size_t offset = varint(good, pos), size = varint(good, pos);
  bad = good;
  bad[offset + size] = 1;
  uint32_t crc = crc32c_mask(crc32c(bad.data() + offset, size + 1));
  std::memcpy(&bad[offset + size + 1], &crc, 4);
  dump(index, bad);
  expect_error([&] { CheckpointReader r(prefix); }, {index, "Snappy"});

  fs::remove(index);
  expect_error([&] { CheckpointReader r(prefix); }, {"cannot open", index});
}

TEST(CheckpointReader, DamagedDataGivesErrorsNamingTheShard) {
  const std::string prefix = copy_checkpoint("dtypes", "data"), data = prefix + ".data-00000-of-00001";
  const std::string good = slurp(data);
  const CheckpointEntry e = CheckpointReader(prefix).entry("dtypes/float");

  std::string bad = good;
  bad[e.offset + 3] ^= 0x10;
  dump(data, bad);
  CheckpointReader reader(prefix);  // the index is fine; only that tensor is damaged
  expect_error([&] { reader.get("dtypes/float"); }, {"dtypes/float", data, "checksum"});
  EXPECT_EQ(reader.get_integers("dtypes/int64"), std::vector<int64_t>{-1234567890123});

  dump(data, good.substr(0, good.size() - 1));
  expect_error([&] { CheckpointReader r(prefix); }, {data, "truncated"});
  fs::remove(data);
  expect_error([&] { CheckpointReader r(prefix); }, {data, "missing"});

  // Shards deleted after opening are reported when read, by name too.
  const std::string sharded = copy_checkpoint("sharded", "shards");
  CheckpointReader two(sharded);
  fs::remove(sharded + ".data-00001-of-00002");
  expect_error([&] { CheckpointReader r(sharded); }, {"model.ckpt.data-00001-of-00002", "missing", "shard 1 of 2"});
  const std::string lost = two.entry("first/weights").shard == 1 ? "first/weights" : "second/weights";
  expect_error([&] { two.get(lost); }, {"model.ckpt.data-00001-of-00002", "missing", lost});
}

TEST(CheckpointReader, EveryFlippedByteOrTruncationIsAnErrorOrHarmless) {
  for (const char* sub : {"dtypes", "sharded"}) {
    const std::string good = slurp(kFixtures + sub + "/model.ckpt.index");
    const std::string prefix = kFixtures + sub + "/model.ckpt";
    for (size_t i = 0; i <= good.size(); ++i) {
      for (int variant = 0; variant < 3; ++variant) {
        std::string bad = good;
        if (variant == 0 && i < good.size()) bad[i] ^= 0x01;
        else if (variant == 1 && i < good.size()) bad[i] ^= 0x80;
        else if (variant == 2) bad.resize(i);
        else continue;
        try {
          CheckpointReader r = CheckpointReader::from_index_bytes(bad, prefix);
          for (const std::string& name : r.names()) {
            try {
              r.get(name);
            } catch (const Error&) {
            }
          }
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find(prefix), std::string::npos) << e.what();
        }
      }
    }
  }
}

TEST(CheckpointReader, IndexOfSeveralBlocksWithRestarts) {
  fs::path dir = fs::temp_directory_path() / "eastrt_test_checkpoint" / "blocks";
  fs::create_directories(dir);
  const std::string prefix = (dir / "model.ckpt").string();
  write_bundle(prefix, 100, 37);
  CheckpointReader reader(prefix);
  ASSERT_EQ(reader.names().size(), 100u);
  EXPECT_EQ(reader.names()[42], "t/042");
  for (int i : {0, 15, 16, 36, 37, 73, 99}) {
    char name[16];
    std::snprintf(name, sizeof name, "t/%03d", i);
    EXPECT_EQ(reader.get(name).data, std::vector<float>(3, float(i))) << name;
  }
  write_bundle(prefix, 100, 37, /*swap_blocks=*/true);
  expect_error([&] { CheckpointReader r(prefix); }, {prefix + ".index", "data block overlaps"});
  write_bundle(prefix, 100, 37, false, /*unsorted=*/true);
  expect_error([&] { CheckpointReader r(prefix); }, {prefix + ".index", "keys out of order across blocks at 'a/036'"});
}
