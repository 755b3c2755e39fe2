// The GPU's hardware JPEG decoder (nvJPEG) against libjpeg: the same sizes and pixels within IDCT and
// upsampling differences on the examples and on JPEGs of awkward sizes written here; bad files in a batch
// reported by name; the pipeline with either decoder finding the same boxes, near enough. GpuJpeg* tests
// need a GPU; the PipelineDecoder tests run anywhere.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

// jpeglib.h needs size_t and FILE declared before it.
#include <jpeglib.h>

#include "eastrt/detector_ops.h"
#include "eastrt/east.h"
#include "eastrt/gpu_jpeg.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"
#include "eastrt/weights.h"
#include "test_support.h"

using namespace eastrt::test_support;
namespace fs = std::filesystem;

namespace eastrt {
namespace {

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<fs::path> example_jpegs() {
  const fs::path root = EASTRT_SOURCE_DIR;
  std::vector<fs::path> files;
  for (int i = 1; i <= 3; ++i) files.push_back(root / "examples/images" / ("img_" + std::to_string(i) + ".jpg"));
  return files;
}

// A baseline 4:2:0 JPEG of a smooth picture with edges (random pixels would make every codec's rounding
// show), encoded by libjpeg at quality 90.
std::vector<uint8_t> encode_jpeg(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      const bool box = (x / 16 + y / 16) % 5 == 0;
      p[0] = static_cast<uint8_t>(box ? 230 : (x * 255) / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>(box ? 30 : (y * 255) / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>(((x + y) * 2) & 0xff);
    }
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &out, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = &rgb[static_cast<size_t>(cinfo.next_scanline) * width * 3];
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> bytes(out, out + size);
  std::free(out);
  return bytes;
}

#define REQUIRE_GPU_JPEG()                                                                          \
  do {                                                                                              \
    REQUIRE_GPU();                                                                                  \
    const std::string why = east::gpu_jpeg_unavailable(0);                                          \
    ASSERT_TRUE(why.empty()) << "the GPU is there but its JPEG decoder is not: " << why;           \
  } while (0)

// Mean and largest absolute difference of nvJPEG's pixels from libjpeg's, for each JPEG. The examples and the
// larger synthetic JPEGs must go through the hardware; the smallest may be declined (libjpeg then decodes
// them in the pipeline), which the output says.
TEST(GpuJpeg, DecodesLikeLibjpeg) {
  REQUIRE_GPU_JPEG();
  std::vector<std::pair<std::string, std::vector<uint8_t>>> jpegs;
  for (const fs::path& f : example_jpegs()) jpegs.emplace_back(f.filename().string(), file_bytes(f));
  for (auto [w, h] : {std::pair{333, 1001}, std::pair{1281, 719}, std::pair{97, 61}, std::pair{17, 9}})
    jpegs.emplace_back("synthetic " + std::to_string(w) + "x" + std::to_string(h), encode_jpeg(w, h));
  east::GpuJpegDecoder decoder(0, static_cast<int>(jpegs.size()));
  std::cout << "decoder: " << decoder.description() << "\n";
  std::vector<east::GpuJpegDecoder::Input> inputs;
  for (const auto& [name, bytes] : jpegs) inputs.push_back({bytes.data(), bytes.size()});
  // Twice: the second batch reuses the first one's device buffers.
  for (int round = 0; round < 2; ++round) {
    const std::vector<east::GpuJpegDecoder::Output> got = decoder.decode(inputs, /*copy_to_host=*/true);
    ASSERT_EQ(got.size(), jpegs.size());
    for (size_t i = 0; i < jpegs.size(); ++i) {
      SCOPED_TRACE(jpegs[i].first);
      const east::Image want = east::decode_image(jpegs[i].second.data(), jpegs[i].second.size(), jpegs[i].first);
      const bool may_decline = want.width < 100;
      if (!got[i].decoded && may_decline) {
        if (round == 0) std::cout << "nvJPEG's hardware path declined " << jpegs[i].first << "\n";
        continue;
      }
      ASSERT_TRUE(got[i].decoded) << "nvJPEG's hardware path refused " << want.width << "x" << want.height;
      const east::Image& image = got[i].image;
      ASSERT_EQ(image.width, want.width);
      ASSERT_EQ(image.height, want.height);
      ASSERT_TRUE(image.device);
      ASSERT_EQ(image.rgb.size(), want.rgb.size());
      double sum = 0;
      int worst = 0;
      for (size_t k = 0; k < want.rgb.size(); ++k) {
        const int d = std::abs(int(image.rgb[k]) - int(want.rgb[k]));
        sum += d;
        worst = std::max(worst, d);
      }
      const double mean = sum / static_cast<double>(want.rgb.size());
      if (round == 0)
        std::cout << "nvJPEG vs libjpeg, " << jpegs[i].first << " (" << want.width << "x" << want.height
                  << "): mean abs difference " << mean << ", max " << worst << "\n";
      EXPECT_LE(mean, 1.5);
      EXPECT_LE(worst, 32);
    }
  }
}

// What the hardware path does not take comes back undecoded, for libjpeg; the rest of the batch decodes.
TEST(GpuJpeg, DeclinesWhatItCannotTakeAndDecodesTheRest) {
  REQUIRE_GPU_JPEG();
  const std::vector<uint8_t> good = file_bytes(example_jpegs()[0]);
  std::vector<uint8_t> truncated(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
  std::vector<uint8_t> garbage = {0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37, 0xFF, 0xD9};
  const fs::path png = fs::temp_directory_path() / ("eastrt_test_gpu_jpeg_" + std::to_string(getpid()) + ".png");
  east::write_png(png.string(), random_image(20, 30, 3));
  const std::vector<uint8_t> png_bytes = file_bytes(png);
  fs::remove(png);
  east::GpuJpegDecoder decoder(0, 8);
  const auto got = decoder.decode({{good.data(), good.size()},
                                   {truncated.data(), truncated.size()},
                                   {garbage.data(), garbage.size()},
                                   {png_bytes.data(), png_bytes.size()},
                                   {good.data(), good.size()}});
  ASSERT_EQ(got.size(), 5u);
  EXPECT_TRUE(got[0].decoded);
  EXPECT_FALSE(got[1].decoded) << "truncated";
  EXPECT_FALSE(got[2].decoded) << "garbage after the SOI marker";
  EXPECT_FALSE(got[3].decoded) << "PNG";
  EXPECT_TRUE(got[4].decoded);
  EXPECT_TRUE(got[0].image.rgb.empty()) << "no host copy unless asked for";
}

// The runner the pipeline tests share: the bundled model on the GPU, FP32, batches of up to 4 on 2 slots.
std::unique_ptr<Runner> bundled_gpu_runner() {
  SafetensorsReader weights((fs::path(EASTRT_SOURCE_DIR) / "models/east.safetensors").string());
  GpuRunnerOptions options;
  options.build.max_batch = 4;
  options.build.time_tactics = false;  // cuDNN's heuristic tactics: the tests are about the decoders
  options.slots = 2;
  return make_gpu_runner(east::build(weights, {}), options);
}

// decoder=gpu: a truncated JPEG and a JPEG whose header is garbage among the examples are reported by name
// (libjpeg's messages); the examples are decoded on the GPU and detected.
TEST(GpuJpeg, PipelineReportsBadJpegsByName) {
  REQUIRE_GPU_JPEG();
  const fs::path dir = fs::temp_directory_path() / ("eastrt_test_gpu_jpeg_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::vector<std::string> paths;
  for (const fs::path& f : example_jpegs()) paths.push_back(f.string());
  const std::vector<uint8_t> good = file_bytes(example_jpegs()[1]);
  write_bytes(dir / "img_truncated.jpg", std::vector<uint8_t>(good.begin(), good.begin() + 20000));
  write_bytes(dir / "img_garbage.jpg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0x17, 0x42, 0xFF, 0xD9});
  paths.insert(paths.begin() + 1, (dir / "img_truncated.jpg").string());
  paths.push_back((dir / "img_garbage.jpg").string());
  auto runner = bundled_gpu_runner();
  east::PipelineOptions options;
  options.max_batch = 4;
  options.decoder = east::Decoder::kGpu;
  east::Pipeline pipeline(*runner, options);
  EXPECT_TRUE(pipeline.decodes_jpegs_on_gpu());
  EXPECT_NE(pipeline.decoder_description().find("nvJPEG"), std::string::npos) << pipeline.decoder_description();
  std::vector<std::future<east::PipelineResult>> futures = pipeline.submit_files(paths);
  for (size_t i = 0; i < paths.size(); ++i) {
    SCOPED_TRACE(paths[i]);
    const east::PipelineResult r = futures[i].get();
    EXPECT_EQ(r.name, paths[i]);
    if (paths[i].find("img_truncated") != std::string::npos || paths[i].find("img_garbage") != std::string::npos) {
      EXPECT_FALSE(r.ok());
      EXPECT_EQ(r.failure, east::Failure::kInput);
      EXPECT_NE(r.error.find(fs::path(paths[i]).filename().string()), std::string::npos) << r.error;
      EXPECT_NE(r.error.find("corrupt JPEG"), std::string::npos) << r.error;
    } else {
      ASSERT_TRUE(r.ok()) << r.error;
      EXPECT_TRUE(r.decoded_on_gpu);
      EXPECT_GT(r.detection.boxes.size(), 0u);
    }
  }
  const east::PipelineStats stats = pipeline.stats();
  EXPECT_EQ(stats.decoded_on_gpu, 3);
  EXPECT_EQ(stats.failed, 2);
  fs::remove_all(dir);
}

// decoder=gpu against decoder=cpu on the examples, each twice, and a PNG: every input answered, the same
// sizes, and boxes within 5 % in number (nvJPEG's pixels are not libjpeg's, so not box for box).
TEST(GpuJpeg, PipelineBoxesNearTheCpuDecoders) {
  REQUIRE_GPU_JPEG();
  const fs::path png = fs::temp_directory_path() / ("eastrt_test_gpu_jpeg_" + std::to_string(getpid()) + ".png");
  east::write_png(png.string(), east::decode_image(example_jpegs()[2].string()));
  std::vector<std::string> paths;
  for (int copy = 0; copy < 2; ++copy)
    for (const fs::path& f : example_jpegs()) paths.push_back(f.string());
  paths.push_back(png.string());
  auto runner = bundled_gpu_runner();
  std::map<east::Decoder, std::vector<east::PipelineResult>> runs;
  std::map<east::Decoder, east::PipelineStats> stats;
  for (east::Decoder decoder : {east::Decoder::kCpu, east::Decoder::kGpu, east::Decoder::kAuto, east::Decoder::kHybrid}) {
    east::PipelineOptions options;
    options.max_batch = 4;
    options.decoder = decoder;
    east::Pipeline pipeline(*runner, options);
    std::cout << "decoder " << east::to_string(decoder) << ": " << pipeline.decoder_description() << "\n";
    east::detect_in_order(pipeline, paths, [&](east::PipelineResult& r) { runs[decoder].push_back(std::move(r)); });
    stats[decoder] = pipeline.stats();
  }
  fs::remove(png);
  const int n = static_cast<int>(paths.size());
  EXPECT_EQ(stats[east::Decoder::kCpu].decoded_on_cpu, n);
  EXPECT_EQ(stats[east::Decoder::kGpu].decoded_on_gpu, n - 1) << "every JPEG on the GPU";
  EXPECT_EQ(stats[east::Decoder::kGpu].decoded_on_cpu, 1) << "the PNG on the CPU";
  EXPECT_EQ(stats[east::Decoder::kAuto].decoded_on_gpu, n - 1) << "auto is gpu here: every JPEG on the GPU";
  EXPECT_EQ(stats[east::Decoder::kHybrid].decoded_on_cpu + stats[east::Decoder::kHybrid].decoded_on_gpu, n);
  for (east::Decoder decoder : {east::Decoder::kGpu, east::Decoder::kAuto, east::Decoder::kHybrid}) {
    SCOPED_TRACE(east::to_string(decoder));
    const std::vector<east::PipelineResult>& got = runs[decoder];
    const std::vector<east::PipelineResult>& want = runs[east::Decoder::kCpu];
    ASSERT_EQ(got.size(), want.size());
    size_t got_boxes = 0, want_boxes = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_TRUE(got[i].ok()) << got[i].error;
      ASSERT_TRUE(want[i].ok()) << want[i].error;
      EXPECT_EQ(got[i].name, want[i].name);
      EXPECT_EQ(got[i].width, want[i].width);
      EXPECT_EQ(got[i].height, want[i].height);
      EXPECT_EQ(got[i].detection.plan.height, want[i].detection.plan.height);
      got_boxes += got[i].detection.boxes.size();
      want_boxes += want[i].detection.boxes.size();
    }
    std::cout << "boxes: decoder " << east::to_string(decoder) << " " << got_boxes << ", decoder cpu " << want_boxes << "\n";
    ASSERT_GT(want_boxes, 0u);
    EXPECT_LE(std::abs(double(got_boxes) - double(want_boxes)), 0.05 * want_boxes);
  }
}

// Without a GPU runner (or without a GPU, or nvJPEG) "gpu" is an Error saying why and "auto" is the CPU
// decoder; the GPU decoder itself refuses to be made where it is unavailable, with the same reason.
TEST(PipelineDecoder, GpuWithoutItIsAnErrorAndAutoFallsBack) {
  auto runner = make_cpu_runner(small_east(), CpuOptions{1});
  east::PipelineOptions options;
  options.decoder = east::Decoder::kGpu;
  const std::string error = error_of([&] { east::Pipeline pipeline(*runner, options); });
  EXPECT_NE(error.find("decoder gpu"), std::string::npos) << error;
  EXPECT_NE(error.find("does not run on a GPU"), std::string::npos) << error;

  options.decoder = east::Decoder::kAuto;
  options.workers = 2;
  east::Pipeline pipeline(*runner, options);
  EXPECT_FALSE(pipeline.decodes_jpegs_on_gpu());
  EXPECT_NE(pipeline.decoder_description().find("libjpeg on 2 threads (GPU decoder: "), std::string::npos)
      << pipeline.decoder_description();
  std::vector<std::string> paths;
  for (const fs::path& f : example_jpegs()) paths.push_back(f.string());
  std::vector<std::future<east::PipelineResult>> futures = pipeline.submit_files(paths);
  for (auto& f : futures) {
    const east::PipelineResult r = f.get();
    EXPECT_TRUE(r.ok()) << r.error;
    EXPECT_FALSE(r.decoded_on_gpu);
  }
  EXPECT_EQ(pipeline.stats().decoded_on_cpu, 3);
  EXPECT_EQ(pipeline.stats().decoded_on_gpu, 0);
  EXPECT_GT(pipeline.stats().cpu_decode_ms, 0);

  if (!the_gpu().available) {
    const std::string why = east::gpu_jpeg_unavailable(0);
    EXPECT_FALSE(why.empty());
    EXPECT_NE(error_of([] { east::GpuJpegDecoder decoder(0, 4); }).find(why), std::string::npos);
  }
  EXPECT_EQ(east::parse_decoder("gpu"), east::Decoder::kGpu);
  EXPECT_EQ(east::parse_decoder("hybrid"), east::Decoder::kHybrid);
  EXPECT_NE(error_of([] { east::parse_decoder("npu"); }).find("choose auto, cpu, gpu or hybrid"), std::string::npos);
}

// The tool: --decoder gpu on the CPU is a clear error; the summary says which decoder ran.
TEST(PipelineDecoder, DetectSaysWhichDecoderRan) {
  const std::string image = example_jpegs()[0].string();
  const std::string model = "detect --builtin east --width-divisor 8 --device cpu --threads 2 ";
  const ToolResult gpu = run_tool(model + "--decoder gpu --bench " + image);
  EXPECT_NE(gpu.status, 0);
  EXPECT_NE(gpu.output.find("decoder gpu"), std::string::npos) << gpu.output;
  const ToolResult bad = run_tool(model + "--decoder npu --bench " + image);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("choose auto, cpu, gpu or hybrid"), std::string::npos) << bad.output;
  const ToolResult cpu = run_tool(model + "--decoder cpu --bench " + image);
  EXPECT_EQ(cpu.status, 0) << cpu.output;
  EXPECT_NE(cpu.output.find("decoders: libjpeg on"), std::string::npos) << cpu.output;
  EXPECT_NE(cpu.output.find("images decoded: 1 by libjpeg, 0 by nvJPEG"), std::string::npos) << cpu.output;
}

}  // namespace
}  // namespace eastrt
