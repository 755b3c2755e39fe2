// The `eastrt` tool as a user meets it: help, errors with a non-zero exit, and inspect's JSON for EAST.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>
#include "test_support.h"

using namespace eastrt::test_support;

namespace {


}  // namespace

TEST(Cli, HelpListsCommands) {
  ToolResult r = run_tool("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("inspect"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("run"), std::string::npos) << r.output;
  r = run_tool("inspect --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--builtin"), std::string::npos) << r.output;
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
  ToolResult r = run_tool("frobnicate");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unknown command"), std::string::npos) << r.output;
  r = run_tool("inspect --builtin east --bogus");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--bogus"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = run_tool("inspect --model /nonexistent/model.safetensors");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("/nonexistent/model.safetensors"), std::string::npos) << r.output;
  r = run_tool("inspect --builtin east --input 1x100x100x3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("multiples of 32"), std::string::npos) << r.output;
  r = run_tool("inspect --builtin east --input 1xbanana");
  EXPECT_NE(r.status, 0);
}

TEST(Cli, InspectEastJson) {
  ToolResult r = run_tool("inspect --builtin east --input 1x672x1280x3 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  EXPECT_NEAR(json["gmacs"].get<double>(), 63.3, 0.05);
  EXPECT_GT(json["layers"].get<int>(), 100);
  EXPECT_NEAR(json["params"].get<double>() / 1e6, 24.0, 0.6);
  EXPECT_EQ(json["layout"], "NHWC");
  ASSERT_EQ(json["outputs"].size(), 2u);
  EXPECT_EQ(json["outputs"][0]["name"], "feature_fusion/Conv_7/Sigmoid");
  EXPECT_EQ(json["outputs"][0]["shape"], nlohmann::json({1, 168, 320, 1}));
  EXPECT_EQ(json["outputs"][1]["name"], "feature_fusion/concat_3");
  EXPECT_EQ(json["outputs"][1]["shape"], nlohmann::json({1, 168, 320, 5}));
}

TEST(Cli, RunSmallEastOnCpu) {
  ToolResult r = run_tool("run --builtin east --input 2x64x96x3 --width-divisor 8 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  ASSERT_EQ(json["outputs"].size(), 2u);
  for (const auto& o : json["outputs"]) EXPECT_TRUE(o["finite"].get<bool>()) << o;
}

// Every kind of model file the tool takes gives the same EAST outputs' names and shapes.
TEST(Cli, InspectTakesEveryModelKind) {
  const std::string fixtures = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/";
  for (const std::string& model : {fixtures + "tf/frozen.pb", fixtures + "tf/infer/model.ckpt",
                                   fixtures + "tf/train/model.ckpt.index"}) {
    ToolResult r = run_tool("inspect --model " + model + " --width-divisor 8 --input 1x64x96x3 --json");
    ASSERT_EQ(r.status, 0) << model << "\n" << r.output;
    auto json = nlohmann::json::parse(r.output.substr(r.output.find('{')));
    ASSERT_EQ(json["outputs"].size(), 2u) << model;
    EXPECT_EQ(json["outputs"][0]["shape"], nlohmann::json({1, 16, 24, 1})) << model;
    EXPECT_EQ(json["outputs"][1]["shape"], nlohmann::json({1, 16, 24, 5})) << model;
  }
  ToolResult r = run_tool("inspect --model " + fixtures + "onnx/tiny_east.onnx --input 1x64x64x3 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_tool("inspect --model " + fixtures + "tf/outputs.json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unrecognised kind"), std::string::npos) << r.output;
}
