// Weight sources: safetensors round trips in float32 and float16, half conversions, and bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eastrt/error.h"
#include "eastrt/weights.h"
#include "test_support.h"

using namespace eastrt;

namespace {
std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "eastrt_test_weights";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST(Half, ConversionsRoundToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(5.9604645e-8f), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  // a tie rounds to even
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);
  for (uint32_t h = 0; h < 0x7c00; ++h)
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h) << h;
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_EQ(bfloat16_to_float(0x3f80), 1.0f);
}

TEST(Safetensors, RoundTripFloat32AndFloat16) {
  std::map<std::string, HostTensor> tensors;
  tensors["a/weights"] = HostTensor({2, 3}, {1, -2, 3.5f, 4, 0.125f, -6});
  tensors["b"] = HostTensor({1}, {0.1f});
  for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
    std::string path = temp_path(type == DataType::kFloat32 ? "f32.safetensors" : "f16.safetensors");
    write_safetensors(path, tensors, type);
    SafetensorsReader reader(path);
    EXPECT_EQ(reader.names(), (std::vector<std::string>{"a/weights", "b"}));
    EXPECT_EQ(reader.stored_type("b"), type);
    HostTensor a = reader.get("a/weights", {2, 3});
    EXPECT_EQ(a.data, tensors["a/weights"].data);
    float b = reader.get("b").data[0];
    EXPECT_NEAR(b, 0.1f, type == DataType::kFloat32 ? 0 : 1e-4);
    EXPECT_THROW(reader.get("a/weights", {3, 2}), Error);
    try {
      reader.get("missing");
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    }
  }
}

TEST(Safetensors, BadFilesAreClearErrors) {
  std::string good = temp_path("good.safetensors");
  write_safetensors(good, {{"x", HostTensor({4}, {1, 2, 3, 4})}});
  std::string bytes = read_bytes(good);
  auto expect_error = [&](const std::string& name, const std::string& content, const std::string& needle) {
    std::string path = temp_path(name);
    write_bytes(path, content);
    try {
      SafetensorsReader reader(path);
      FAIL() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("empty.safetensors", "", "truncated");
  expect_error("truncated.safetensors", bytes.substr(0, bytes.size() - 3), "");
  expect_error("header.safetensors", bytes.substr(0, 12), "header length");
  std::string not_json = bytes;
  not_json[8] = '#';
  expect_error("notjson.safetensors", not_json, "JSON");
  std::string bad_type = bytes;
  bad_type.replace(bad_type.find("F32"), 3, "I64");
  expect_error("type.safetensors", bad_type, "I64");
  EXPECT_THROW(SafetensorsReader(temp_path("does_not_exist.safetensors")), Error);
}

// The int8 group-quantised form train/checkpoint.py writes (the bundled model's), read back as the float
// filters its own dequantisation gives (tests/fixtures/int8/make_fixture.py).
TEST(Safetensors, GroupQuantisedFiltersReadAsTheirFloatValues) {
  const std::string dir = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/int8/";
  SafetensorsReader quantised(dir + "int8.safetensors");
  SafetensorsReader expected(dir + "expected.safetensors");
  EXPECT_EQ(quantised.names(), expected.names());  // the #q / #scale parts are not names of their own
  EXPECT_FALSE(quantised.contains("conv_a/weights#q"));
  for (const std::string& name : expected.names()) {
    SCOPED_TRACE(name);
    const HostTensor got = quantised.get(name), want = expected.get(name);
    ASSERT_EQ(got.shape, want.shape);
    EXPECT_EQ(got.data, want.data);  // the same float32 products, bit for bit
  }
  EXPECT_EQ(quantised.stored_type("conv_b/weights"), DataType::kInt8);
  EXPECT_EQ(quantised.stored_type("bn/gamma"), DataType::kFloat32);
  // The outlier survives; its group's other values are coarse but within half a step of the scale.
  EXPECT_NEAR(quantised.get("conv_a/weights").data[0], 40.0f, 40.0f / 254);
  EXPECT_NE(test_support::error_of([&] { SafetensorsReader bad(dir + "no_scale.safetensors"); }).find("conv_b/weights#scale"),
            std::string::npos);
  EXPECT_NE(test_support::error_of([&] { SafetensorsReader bad(dir + "no_shape.safetensors"); }).find("conv_c/weights"),
            std::string::npos);
}
