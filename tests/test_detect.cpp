// `eastrt detect` as a user runs it: result files per image, no overwriting without --force, corrupt and
// missing inputs reported by name and skipped with a non-zero exit, JSON output.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "eastrt/detector.h"
#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "test_support.h"

using namespace eastrt::test_support;

namespace fs = std::filesystem;

namespace {


fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("eastrt_test_detect_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_image(const fs::path& path, int width, int height) {
  eastrt::east::Image image{width, height, std::vector<uint8_t>(size_t(width) * height * 3)};
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<uint8_t>((i * 37) % 251);
  eastrt::east::write_png(path.string(), image);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* kModel = "--builtin east --width-divisor 8 --score-threshold 0.99";

}  // namespace

TEST(DetectCli, WritesResultsAndRefusesToOverwrite) {
  fs::path in = fresh_dir("in"), out = fresh_dir("out");
  write_image(in / "img_1.png", 100, 70);
  write_image(in / "img_2.png", 64, 64);
  ToolResult r = run_tool(std::string("detect ") + kModel + " --out " + out.string() + " --draw " + in.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "res_img_1.txt"));
  EXPECT_TRUE(fs::exists(out / "res_img_2.txt"));
  EXPECT_TRUE(fs::exists(out / "img_1.png"));
  EXPECT_NE(r.output.find("2 images: 2 detected, 0 failed"), std::string::npos) << r.output;

  r = run_tool(std::string("detect ") + kModel + " --out " + out.string() + " " + in.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  r = run_tool(std::string("detect ") + kModel + " --force --json --out " + out.string() + " " + (in / "img_1.png").string(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["width"], 100);
  EXPECT_EQ(json[0]["network_input"], nlohmann::json({32, 64}));  // 70 → 32, 100 → 64 by the resize rule
}

TEST(DetectCli, BadInputsAreReportedAndCounted) {
  fs::path in = fresh_dir("bad"), out = fresh_dir("bad_out");
  write_image(in / "img_1.png", 64, 64);
  std::ofstream(in / "img_2.jpg") << "this is not a jpeg";
  {
    std::ifstream good(in / "img_1.png", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(good)), {});
    std::ofstream(in / "img_3.png", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  ToolResult r = run_tool(std::string("detect ") + kModel + " --out " + out.string() + " " + in.string() + " " +
                      (in / "missing.jpg").string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("img_2.jpg"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("img_3.png"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing.jpg"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("4 images: 1 detected, 3 failed"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(out / "res_img_1.txt"));
  EXPECT_FALSE(fs::exists(out / "res_img_2.txt"));
}

TEST(DetectCli, NoInputsOrUnknownFlag) {
  EXPECT_NE(run_tool(std::string("detect ") + kModel).status, 0);
  EXPECT_NE(run_tool(std::string("detect ") + kModel + " --bogus x.png").status, 0);
  EXPECT_NE(run_tool(std::string("detect ") + kModel + " --precision int4 x.png").status, 0);
}

// The README's main job: the bundled default model (found beside the build folder, no --model) finds the
// text of the example images (synthetic scenes made by examples/make_examples.py, not ICDAR images).
TEST(DetectCli, BundledModelFindsTheExamplesText) {
  const fs::path root = EASTRT_SOURCE_DIR, out = fresh_dir("bundled");
  ToolResult r = run_tool("detect --device cpu --batch 2 --out " + out.string() + " " + (root / "examples/images").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3 images: 3 detected, 0 failed"), std::string::npos) << r.output;
  r = run_tool("eval --json --gt " + (root / "examples/gt").string() + " --det " + out.string(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto scores = nlohmann::json::parse(r.output);
  EXPECT_GE(scores["hmean"].get<double>(), 0.75) << r.output;
}

TEST(DetectCli, DeviceAndPrecisionAreChecked) {
  fs::path in = fresh_dir("in_device"), out = fresh_dir("out_device");
  write_image(in / "img_1.png", 64, 64);
  ToolResult r = run_tool(std::string("detect ") + kModel + " --device cpu --precision fp16 --out " + out.string() + " " +
                          in.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("needs the GPU engine"), std::string::npos) << r.output;
  r = run_tool(std::string("detect ") + kModel + " --device tpu --out " + out.string() + " " + in.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unknown --device 'tpu'"), std::string::npos) << r.output;
  r = run_tool(std::string("detect ") + kModel + " --batch 0 --out " + out.string() + " " + in.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--batch must be at least 1"), std::string::npos) << r.output;
}

// A frozen graph is imported once, at detect's default --input, and runs at every size: its resize sizes
// come from tf.shape and follow the input. The boxes are those of the graph imported at the image's size.
TEST(DetectCli, FrozenGraphRunsAtEverySize) {
  const fs::path root = EASTRT_SOURCE_DIR, in = fresh_dir("in_pb"), out = fresh_dir("out_pb"),
                 sized = fresh_dir("out_pb_sized");
  write_image(in / "img_1.png", 200, 200);  // network input 160x160 by the resize rule, above the 64x64 imported
  write_image(in / "img_2.png", 130, 70);   // 128x64
  const std::string pb = (root / "tests/fixtures/tf/frozen.pb").string();
  const std::string flags = "detect --device cpu --score-threshold 0.5 --model " + pb;
  ToolResult r = run_tool(flags + " --out " + out.string() + " " + in.string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const auto& [name, input] : {std::pair{"img_1", "1x160x160x3"}, std::pair{"img_2", "1x64x128x3"}}) {
    r = run_tool(flags + " --input " + input + " --force --out " + sized.string() + " " + (in / name).string() + ".png");
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string file = std::string("res_") + name + ".txt";
    EXPECT_EQ(read_text(out / file), read_text(sized / file)) << name;
  }
}

// A network whose maps do not follow the input (here a resize to a fixed size) gives maps of the wrong size
// at other sizes: an error naming the sizes, never boxes decoded from the wrong pixels.
TEST(Detector, MapsOfTheWrongSizeAreAnError) {
  using namespace eastrt;
  Network net;
  Tensor* x = net.add_input(east::kInputName, {1, 64, 64, 3});
  ResizeParams fixed;
  fixed.out_height = 16, fixed.out_width = 16;
  Tensor* small = net.add_resize(x, fixed, "fixed_resize");
  for (const auto& [name, channels] : {std::pair{east::kScoreOutput, 1}, std::pair{east::kGeometryOutput, 5}}) {
    ConvolutionParams c;
    c.out_channels = channels;
    c.kernel_weights = std::make_shared<HostTensor>(Shape{channels, 3, 1, 1});
    net.mark_output(net.add_convolution(small, c, name), name);
  }
  east::Detector detector(std::move(net));
  east::Image image{200, 200, std::vector<uint8_t>(200 * 200 * 3, 128)};
  const std::string message = error_of([&] { detector.detect(image); });
  EXPECT_NE(message.find("cannot run at this size"), std::string::npos) << message;
  EXPECT_NE(message.find("1x160x160x3"), std::string::npos) << message;
}

// The three import paths of one EAST give the same boxes from `eastrt detect`: the frozen graph and its
// tf2onnx conversion (NHWC, TensorFlow's tensor names, H and W left open), each imported once and run at
// the images' sizes.
TEST(DetectCli, Tf2OnnxEastGivesTheFrozenGraphsBoxes) {
  const fs::path root = EASTRT_SOURCE_DIR, in = fresh_dir("in_onnx"), from_pb = fresh_dir("out_from_pb"),
                 from_onnx = fresh_dir("out_from_onnx");
  write_image(in / "img_1.png", 200, 200);
  write_image(in / "img_2.png", 130, 70);
  const std::string flags = "detect --device cpu --score-threshold 0.5 --model ";
  ToolResult r = run_tool(flags + (root / "tests/fixtures/tf/frozen.pb").string() + " --out " + from_pb.string() +
                          " " + in.string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_tool(flags + (root / "tests/fixtures/tf/tf2onnx/east_opset13.onnx").string() + " --out " +
               from_onnx.string() + " " + in.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("NHWC, as tf2onnx writes it"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("DBNet"), std::string::npos) << r.output;
  int boxes = 0;
  for (const char* name : {"res_img_1.txt", "res_img_2.txt"}) {
    const std::string want = read_text(from_pb / name);
    EXPECT_EQ(read_text(from_onnx / name), want) << name;
    boxes += static_cast<int>(std::count(want.begin(), want.end(), '\n'));
  }
  EXPECT_GT(boxes, 0) << "the comparison needs boxes";
}

// --bench runs the inputs through the pipeline, reports the stages and the network alone, and writes
// nothing unless given --out.
TEST(DetectCli, BenchReportsStagesAndWritesNothing) {
  fs::path in = fresh_dir("in_bench");
  write_image(in / "img_1.png", 100, 70);
  write_image(in / "img_2.png", 100, 70);
  write_image(in / "img_3.png", 64, 64);
  const fs::path cwd = fs::current_path(), work = fresh_dir("bench_cwd");
  const fs::path record = work / "bench.jsonl";
  ToolResult r = run_tool("detect " + std::string(kModel) + " --device cpu --bench --batch 2 --workers 2 --record " +
                          record.string() + " " + in.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("end to end: 3 images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("decode maps + LANMS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("network alone at 32x64, batch 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("results not written"), std::string::npos) << r.output;
  std::ifstream lines(record);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["images"], 3);
  EXPECT_EQ(json["batch"], 2);
  EXPECT_GT(json["images_per_s"].get<double>(), 0);
  EXPECT_NE(run_tool("detect " + std::string(kModel) + " --workers -1 " + in.string()).output.find("--workers"),
            std::string::npos);
}

// One listing of a folder's images for detect and calibration: image extensions in any case, natural order.
TEST(DetectCli, FolderImagesInNaturalOrder) {
  const fs::path dir = fresh_dir("natural");
  for (const char* name : {"img_10.jpg", "img_2.PNG", "img_1.bmp", "notes.txt", "cover.jpeg", "img_2b.png"})
    std::ofstream(dir / name) << "x";
  fs::create_directories(dir / "img_3.jpg");  // a folder, not a file
  std::vector<std::string> names;
  for (const std::string& f : eastrt::east::image_files_in(dir.string())) names.push_back(fs::path(f).filename());
  EXPECT_EQ(names, (std::vector<std::string>{"cover.jpeg", "img_1.bmp", "img_2.PNG", "img_2b.png", "img_10.jpg"}));
}
