// The tactic timing cache file, host side (runs in CI without a GPU): what is written reads back the same,
// lookups are per device and layer, and a file that is not a cache of this version is an error naming it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cuda/timing_cache.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace eastrt::gpu {
namespace {

std::string temporary_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("eastrt_" + std::to_string(::getpid()) + "_" + name)).string();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

ConvTactic tactic(ConvTactic::Kind kind, int algo, int math, int64_t workspace, double ms) {
  ConvTactic t;
  t.kind = kind, t.algo = algo, t.math = math, t.workspace = workspace, t.ms = ms;
  return t;
}

// Each text written to `path` fails to load with an Error naming the file and containing its fragment.
void expect_load_errors(const std::string& path, const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [text, fragment] : cases) {
    SCOPED_TRACE(text);
    write_file(path, text);
    const std::string message = error_of([&] { TimingCache::load(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

// A cache file's text up to its version number, this format's: `{"format": ..., "version": N`.
std::string head_of_cache() {
  return R"({"format": "eastrt timing cache", "version": )" + std::to_string(TimingCache::kFormatVersion);
}

void expect_same(const ConvTactic& a, const ConvTactic& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.algo, b.algo);
  EXPECT_EQ(a.math, b.math);
  EXPECT_EQ(a.workspace, b.workspace);
  EXPECT_DOUBLE_EQ(a.ms, b.ms);
}

TEST(TimingCache, DeviceKeyNamesGpuComputeCapabilityCudnnAndVersion) {
  EXPECT_EQ(timing_device("NVIDIA H200", 9, 0, 91000, "0.1.0"),
            "NVIDIA H200 sm_90 cudnn 91000 eastrt 0.1.0 candidates " + std::to_string(kCandidateRevision));
  EXPECT_NE(timing_device("NVIDIA H200", 9, 0, 91000, "0.1.0"), timing_device("NVIDIA H200", 9, 0, 91100, "0.1.0"));
}

TEST(TimingCache, RoundTripsEveryFieldAndLooksUpByDeviceAndLayer) {
  const std::string path = temporary_path("round_trip.json");
  std::remove(path.c_str());
  const std::string h200 = timing_device("NVIDIA H200", 9, 0, 91000, "0.1.0");
  const std::string h100 = timing_device("NVIDIA H100 80GB HBM3", 9, 0, 91000, "0.1.0");
  TimingCache cache = TimingCache::load(path);  // absent: empty, not an error
  EXPECT_EQ(cache.size(), 0u);
  TimingEntry a;
  a.chosen = tactic(ConvTactic::Kind::kCudnnFused, 1, 1, 4096, 0.125);
  a.timed = {a.chosen, tactic(ConvTactic::Kind::kCudnnSplit, 6, 1, 1 << 20, 0.25),
             tactic(ConvTactic::Kind::kSpaceToDepthFused, 1, 1, 3 << 20, 0.0625),
             tactic(ConvTactic::Kind::kSpaceToDepthSplit, 0, 3, 1 << 21, 0.5)};
  TimingEntry b;
  b.chosen = tactic(ConvTactic::Kind::kCudnnSplit, 0, 3, 0, 1.5);
  b.timed = {b.chosen};
  cache.insert(h200, "conv n2 h13 w17 c3", a);
  cache.insert(h200, "conv n1 h8 w8 c64", b);
  cache.insert(h100, "conv n2 h13 w17 c3", b);
  cache.save(path);

  const TimingCache back = TimingCache::load(path);
  EXPECT_EQ(back.size(), 3u);
  const TimingEntry* got = back.find(h200, "conv n2 h13 w17 c3");
  ASSERT_NE(got, nullptr);
  expect_same(got->chosen, a.chosen);
  ASSERT_EQ(got->timed.size(), 4u);
  for (size_t i = 1; i < 4; ++i) expect_same(got->timed[i], a.timed[i]);
  ASSERT_NE(back.find(h100, "conv n2 h13 w17 c3"), nullptr);
  expect_same(back.find(h100, "conv n2 h13 w17 c3")->chosen, b.chosen);
  EXPECT_EQ(back.find(h200, "conv n2 h13 w17 c4"), nullptr);
  EXPECT_EQ(back.find(timing_device("NVIDIA H200", 9, 0, 91100, "0.1.0"), "conv n2 h13 w17 c3"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::remove(path.c_str());
}

TEST(TimingCache, CorruptForeignAndOtherVersionFilesAreErrorsNamingTheFile) {
  const std::string path = temporary_path("corrupt.json");
  const std::string entry =
      R"({"device": "d", "layer": "l", "chosen": {"kind": 1, "algo": 1, "math": 1, "workspace": 0, "ms": 0.5},)"
      R"( "timed": []})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is not valid JSON"},
      {"{\"format\": \"eastrt timing cache\", \"version\": 1, \"entries\": [", "is not valid JSON"},
      {"\x89PNG\r\n\x1a\n", "is not valid JSON"},
      {R"({"format": "eastrt plan", "version": 1, "entries": []})", "is not an eastrt timing cache"},
      {R"([1, 2, 3])", "is not an eastrt timing cache"},
      {R"({"format": "eastrt timing cache", "entries": []})", "has no format version"},
      // Version 1 was timed without the cuDNN graph tactics.
      {R"({"format": "eastrt timing cache", "version": 1, "entries": []})", "has format version 1"},
      {R"({"format": "eastrt timing cache", "version": 99, "entries": []})", "has format version 99"},
      {head_of_cache() + R"(})", "has no \"entries\" list"},
      {head_of_cache() + R"(, "entries": [{"device": "d"}]})", "entry 0 lacks"},
      {head_of_cache() + R"(, "entries": [)" + entry + "," +
           R"({"device": "d", "layer": "m", "chosen": {"kind": 10, "algo": 1, "math": 1, "workspace": 0, "ms": 0.5},)"
           R"( "timed": []}]})",
       "entry 1 has a tactic of unknown kind 10"},
      {head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
       R"("chosen": {"kind": 1, "algo": 1, "math": 1, "workspace": 0}, "timed": []}]})",
       "without a numeric 'ms'"},
      {head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
       R"("chosen": {"kind": 1, "algo": -3, "math": 1, "workspace": 0, "ms": 1}, "timed": []}]})",
       "negative"},
      // Found by fuzz_timing_cache: a float where an integer belongs was converted (undefined beyond the
      // integer's range); it is refused, and so is an integer beyond the field's range.
      {head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
       R"("chosen": {"kind": 1, "algo": 1.7e80, "math": 1, "workspace": 0, "ms": 1}, "timed": []}]})",
       "without an integer 'algo'"},
      {head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
       R"("chosen": {"kind": 1, "algo": 4294967296, "math": 1, "workspace": 0, "ms": 1}, "timed": []}]})",
       "without an integer 'algo'"},
      {head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
       R"("chosen": {"kind": 1.5, "algo": 1, "math": 1, "workspace": 0, "ms": 1}, "timed": []}]})",
       "without an integer 'kind'"},
  };
  expect_load_errors(path, cases);
  // The well-formed single entry of the cases above does load.
  write_file(path, head_of_cache() + R"(, "entries": [)" + entry + "]}");
  EXPECT_EQ(TimingCache::load(path).size(), 1u);
  std::remove(path.c_str());
}

// A cuBLASLt tactic carries its algorithm's 64 opaque bytes (words with the top bit set included, which
// JSON must keep as unsigned), the cuBLASLt version and the configuration: all of it comes back.
ConvTactic cublaslt_tactic() {
  ConvTactic t = tactic(ConvTactic::Kind::kCublasLt, 3, 77, 65536, 0.0625);
  t.lt.data = {0x0123456789abcdefull, 0xfedcba9876543210ull, 0, 1, 0x8000000000000000ull, 42, 0xffffffffffffffffull, 7};
  t.lt.version = 130100, t.lt.id = 21, t.lt.tile = 18, t.lt.stages = 9, t.lt.split_k = 2;
  return t;
}

void expect_same_lt(const ConvTactic& a, const ConvTactic& b) {
  expect_same(a, b);
  EXPECT_EQ(a.lt.data, b.lt.data);
  EXPECT_EQ(a.lt.version, b.lt.version);
  EXPECT_EQ(a.lt.id, b.lt.id);
  EXPECT_EQ(a.lt.tile, b.lt.tile);
  EXPECT_EQ(a.lt.stages, b.lt.stages);
  EXPECT_EQ(a.lt.split_k, b.lt.split_k);
}

TEST(TimingCache, CublasLtTacticsRoundTripWithTheirAlgorithm) {
  const std::string path = temporary_path("cublaslt.json");
  std::remove(path.c_str());
  TimingCache cache;
  TimingEntry e;
  e.chosen = cublaslt_tactic();
  e.timed = {tactic(ConvTactic::Kind::kCudnnSplit, 1, 1, 0, 0.125), e.chosen};
  cache.insert("d", "conv n2 h7 w9 c13 k11 r1 s1", e);
  cache.save(path);
  const TimingCache back = TimingCache::load(path);
  const TimingEntry* got = back.find("d", "conv n2 h7 w9 c13 k11 r1 s1");
  ASSERT_NE(got, nullptr);
  expect_same_lt(got->chosen, e.chosen);
  ASSERT_EQ(got->timed.size(), 2u);
  expect_same_lt(got->timed[1], e.chosen);
  EXPECT_EQ(describe(got->chosen), "cublaslt#3 (algo 21, tile 18, stages 9, split-k 2, tf32, 64 KiB workspace)");

  // A cuBLASLt tactic without its algorithm, or with a short one, is an error naming the file.
  const std::string head = head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
                           R"("chosen": {"kind": 4, "algo": 0, "math": 68, "workspace": 0, "ms": 1)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {head + R"(}, "timed": []}]})", "without its 8 'cublaslt.data' words"},
      {head + R"(, "cublaslt": {"data": [1, 2, 3], "version": 1, "id": 1, "tile": 1, "stages": 1, "split_k": 1}}, "timed": []}]})",
       "without its 8 'cublaslt.data' words"},
      {head + R"(, "cublaslt": {"data": [1, 2, 3, 4, 5, 6, 7, 8], "version": 1, "id": 1, "tile": 1, "stages": 1}}, "timed": []}]})",
       "without an integer 'cublaslt.split_k'"},
  };
  expect_load_errors(path, cases);
  std::remove(path.c_str());
}

// A cuDNN graph tactic carries its engine's knob choices (negative and 64-bit values included) and the cuDNN
// version that numbered them: all of it comes back, for both kinds.
TEST(TimingCache, CudnnGraphTacticsRoundTripWithTheirConfiguration) {
  const std::string path = temporary_path("graph.json");
  std::remove(path.c_str());
  ConvTactic fused = tactic(ConvTactic::Kind::kCudnnGraphFused, 12, 0, 65536, 0.0625);
  fused.graph.knobs = {{2, 3}, {14, 4}, {25, -1}, {40, int64_t(1) << 40}};
  fused.graph.version = 91900;
  ConvTactic split = tactic(ConvTactic::Kind::kCudnnGraphSplit, 0, 0, 0, 0.125);
  split.graph.version = 91900;  // an engine without knobs
  ConvTactic quantized = tactic(ConvTactic::Kind::kQuantCudnn, 4, 0, 1024, 0.03125);  // an INT8 graph's
  quantized.graph.knobs = {{3, 1}};
  quantized.graph.version = 91900;
  ConvTactic matmul = tactic(ConvTactic::Kind::kQuantCublasLt, 1, 72, 0, 0.015625);  // an INT8 matmul's
  for (size_t w = 0; w < matmul.lt.data.size(); ++w) matmul.lt.data[w] = 0xfedcba9876543210ull - w;
  matmul.lt.version = 130100, matmul.lt.id = 21, matmul.lt.tile = 18, matmul.lt.stages = 9;
  TimingCache cache;
  TimingEntry e;
  e.chosen = fused;
  e.timed = {tactic(ConvTactic::Kind::kCudnnSplit, 1, 1, 0, 0.25), split, fused, quantized, matmul};
  cache.insert("d", "conv n2 h7 w9 c13 k11 r3 s3", e);
  cache.save(path);
  const TimingCache loaded = TimingCache::load(path);
  const TimingEntry* got = loaded.find("d", "conv n2 h7 w9 c13 k11 r3 s3");
  ASSERT_NE(got, nullptr);
  ASSERT_EQ(got->timed.size(), 5u);
  EXPECT_EQ(got->timed[4].kind, ConvTactic::Kind::kQuantCublasLt);
  EXPECT_EQ(got->timed[4].lt.data, matmul.lt.data);
  EXPECT_EQ(got->timed[4].lt.version, 130100);
  EXPECT_EQ(got->timed[4].lt.id, 21);
  for (const auto& [back, want] : {std::pair{&got->chosen, &fused}, std::pair{&got->timed[1], &split},
                                   std::pair{&got->timed[2], &fused}, std::pair{&got->timed[3], &quantized}}) {
    expect_same(*back, *want);
    EXPECT_EQ(back->graph.knobs, want->graph.knobs);
    EXPECT_EQ(back->graph.version, want->graph.version);
  }
  EXPECT_EQ(describe(got->chosen), "cudnn graph fused engine 12 (knobs 2=3 14=4 25=-1 40=1099511627776, 64 KiB workspace)");

  // A graph tactic without its configuration, or with a knob that is not a pair of integers, is an error
  // naming the file.
  const std::string head = head_of_cache() + R"(, "entries": [{"device": "d", "layer": "l", )"
                           R"("chosen": {"kind": 8, "algo": 3, "math": 0, "workspace": 0, "ms": 1)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {head + R"(}, "timed": []}]})", "without its 'graph.version' and 'graph.knobs'"},
      {head + R"(, "graph": {"knobs": []}}, "timed": []}]})", "without its 'graph.version' and 'graph.knobs'"},
      {head + R"(, "graph": {"version": 91900, "knobs": [[2, 3], [14]]}}, "timed": []}]})",
       "knob that is not an integer pair"},
      {head + R"(, "graph": {"version": 91900, "knobs": [[2, 0.5]]}}, "timed": []}]})",
       "knob that is not an integer pair"},
  };
  expect_load_errors(path, cases);
  std::remove(path.c_str());
}

TEST(TimingCache, UnwritableDestinationIsAnErrorNamingIt) {
  const std::string path = temporary_path("no_such_dir") + "/cache.json";
  const std::string message = error_of([&] { TimingCache().save(path); });
  EXPECT_NE(message.find("cannot write the timing cache"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

}  // namespace
}  // namespace eastrt::gpu
