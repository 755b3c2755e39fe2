// `eastrt detect`: text boxes for image files with EAST, or with DBNet from an .onnx model — res_<name>.txt per
// image (the ICDAR 2015 format), JSON and annotated images on request, a progress bar on a terminal, and a
// summary that accounts for every input.
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/db_detector.h"
#include "eastrt/detector.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/runner.h"
#include "model_loader.h"

namespace fs = std::filesystem;

namespace eastrt::tool {
namespace {

const char* const kUsage =
    "usage: eastrt detect [--model FILE | --builtin east] [options] PATHS...\n"
    "\n"
    "Detects text in images (JPEG, PNG, BMP; files, folders and globs) with EAST: the resize rule,\n"
    "the network, decode, locality-aware NMS and re-scoring of the reference implementation; or, for an\n"
    ".onnx model without EAST's outputs, with DBNet as PaddleOCR's PP-OCRv4 det inference runs it (longer\n"
    "side at most 960, DBPostProcess with thresh 0.3, box_thresh 0.6, unclip_ratio 1.5).\n"
    "For img_N.jpg it writes res_img_N.txt, one box a line: x1,y1,x2,y2,x3,y3,x4,y4.\n"
    "\n"
    "  --model FILE          EAST: weights (.safetensors with TF-slim names, a TF checkpoint prefix), a\n"
    "                        frozen .pb or a tf2onnx .onnx; or a DBNet .onnx model (PP-OCRv4 det);\n"
    "                        default: the bundled models/east.safetensors\n"
    "  --builtin east        the network with seeded random weights (no meaningful boxes; for testing)\n"
    "  --out DIR             where results go (default: detections/)\n"
    "  --force               overwrite existing result files\n"
    "  --draw                also write <name>.png with the boxes drawn\n"
    "  --json                print the boxes of every image as JSON on stdout\n"
    "  --device D            auto (the GPU if there is one, else the CPU), gpu or cpu (default: auto)\n"
    "  --precision P         fp32, tf32 or fp16 (default: fp16 on the GPU; the CPU runs fp32)\n"
    "  --batch N             EAST: images of one size run through the network N at a time (default 1)\n"
    "  --threads N           CPU threads (default: all)\n"
    "  --score-threshold T   EAST: score-map threshold (default 0.8)\n"
    "  --nms-threshold T     EAST: locality-aware NMS IoU threshold (default 0.2)\n";

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Files as given, folders' images (sorted by natural order of their names), globs expanded.
std::vector<fs::path> expand_inputs(const std::vector<std::string>& paths) {
  std::vector<fs::path> files;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(p))
        if (entry.is_regular_file() && is_image_name(entry.path())) in_dir.push_back(entry.path());
      auto natural = [](const fs::path& a, const fs::path& b) {
        std::string x = a.filename().string(), y = b.filename().string();
        auto digits = [](const std::string& s) {
          size_t i = s.find_first_of("0123456789");
          return i == std::string::npos ? -1L : std::atol(s.c_str() + i);
        };
        long dx = digits(x), dy = digits(y);
        return dx != dy ? dx < dy : x < y;
      };
      std::sort(in_dir.begin(), in_dir.end(), natural);
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (p.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      if (glob(p.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) files.emplace_back(g.gl_pathv[i]);
      globfree(&g);
      EASTRT_CHECK(!files.empty(), "no file matches '", p, "'");
    } else {
      files.emplace_back(p);  // a missing file is reported as a failed input, with the others processed
    }
  }
  return files;
}

void progress(size_t done, size_t total, double seconds, const std::string& name) {
  const int width = 30;
  int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f img/s  %-30.30s", filled, "##############################",
               width - filled, "", done, total, seconds > 0 ? done / seconds : 0.0, name.c_str());
  std::fflush(stderr);
}

int detect(const std::vector<std::string>& argv) {
  Args args(kUsage,
            {"--model", "--builtin", "--out", "--device", "--precision", "--batch", "--threads", "--score-threshold",
             "--nms-threshold", "--input", "--width-divisor"},
            {"--force", "--draw", "--json"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(!args.positional().empty(), "no input images (eastrt detect --help)");
  const std::string device = args.get("--device", "auto");
  EASTRT_CHECK(device == "auto" || device == "gpu" || device == "cpu", "unknown --device '", device,
               "' (choose auto, gpu or cpu)");
  const bool on_gpu = device == "gpu" || (device == "auto" && query_gpu().available);
  const Precision precision = parse_precision(args.get("--precision", on_gpu ? "fp16" : "fp32"));
  const int batch = args.get_int("--batch", 1);
  EASTRT_CHECK(batch >= 1, "--batch must be at least 1, not ", batch);

  // A detector is a function from an image to its boxes; EAST and DBNet only differ in how they are made.
  std::function<std::vector<east::Detection>(const std::vector<east::Image>&)> detect_images;
  std::string description, engine;
  const CpuOptions cpu{args.get_int("--threads", 0), false};
  auto runner = [&](Network network, int max_batch) {
    auto r = make_runner(std::move(network), on_gpu ? "gpu" : "cpu", precision, cpu, max_batch);
    engine = r->description();
    return r;
  };
  std::vector<std::string> model_argv;
  if (!args.has("--model") && !args.has("--builtin")) model_argv = {"--model", bundled_model()};
  for (const char* flag : {"--model", "--builtin", "--width-divisor"})
    if (args.has(flag)) model_argv.insert(model_argv.end(), {flag, args.get(flag)});
  model_argv.insert(model_argv.end(), {"--input", args.get("--input", "1x64x64x3")});
  Args model_args("", {"--model", "--builtin", "--width-divisor", "--input"}, {});
  model_args.parse(model_argv);
  LoadedModel model = load_model(model_args);

  // EAST wherever the network has EAST's outputs (however it was imported); any other one-output ONNX
  // model is taken as a DBNet probability map.
  const bool east_outputs = model.network.find_tensor(east::kScoreOutput) && model.network.find_tensor(east::kGeometryOutput);
  if (!east_outputs && ends_with(args.get("--model"), ".onnx")) {
    auto detector = std::make_shared<db::Detector>(runner(std::move(model.network), 1));
    detect_images = [detector](const std::vector<east::Image>& images) {
      std::vector<east::Detection> out;
      for (const east::Image& image : images) out.push_back(detector->detect(image));
      return out;
    };
    description = "DBNet (PP-OCRv4 det post-processing) from " + model.description;
  } else {
    east::DetectOptions options;
    options.score_threshold = static_cast<float>(args.get_double("--score-threshold", options.score_threshold));
    options.nms_threshold = static_cast<float>(args.get_double("--nms-threshold", options.nms_threshold));
    auto detector = std::make_shared<east::Detector>(runner(std::move(model.network), batch), options);
    detect_images = [detector, batch](const std::vector<east::Image>& images) {
      return detector->detect_batch(images, batch);
    };
    description = model.description;
  }

  std::vector<fs::path> files = expand_inputs(args.positional());
  fs::path out_dir = args.get("--out", "detections");
  fs::create_directories(out_dir);
  const bool force = args.has("--force"), draw = args.has("--draw");
  // Refuse before any work, so a run never half-overwrites an earlier one.
  if (!force)
    for (const fs::path& f : files) {
      fs::path result = out_dir / ("res_" + f.stem().string() + ".txt");
      EASTRT_CHECK(!fs::exists(result), "result file ", result.string(), " exists (use --force to overwrite)");
    }

  const bool bar = isatty(STDERR_FILENO) && !args.has("--json");
  nlohmann::json json = nlohmann::json::array();
  size_t boxes = 0;
  std::vector<std::string> failures;
  double preprocess_ms = 0, network_ms = 0, post_ms = 0;
  auto start = std::chrono::steady_clock::now();
  auto fail = [&](const fs::path& file, const std::exception& e) {
    failures.push_back(e.what());
    if (bar) std::fprintf(stderr, "\r%-100s\r", "");
    std::cerr << "eastrt detect: skipped " << file.string() << ": " << e.what() << "\n";
  };
  // `batch` images at a time: decoded, detected together, then written.
  for (size_t first = 0; first < files.size(); first += batch) {
    if (bar) progress(first, files.size(),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                      files[first].filename().string());
    std::vector<fs::path> names;
    std::vector<east::Image> images;
    for (size_t i = first; i < std::min(files.size(), first + batch); ++i) {
      try {
        images.push_back(east::decode_image(files[i].string()));
        names.push_back(files[i]);
      } catch (const std::exception& e) {
        fail(files[i], e);
      }
    }
    std::vector<east::Detection> found;
    try {
      found = detect_images(images);
    } catch (const std::exception& e) {
      for (const fs::path& file : names) fail(file, e);
      continue;
    }
    for (size_t j = 0; j < names.size(); ++j) {
      const fs::path& file = names[j];
      east::Image& image = images[j];
      const east::Detection& d = found[j];
      try {
        preprocess_ms += d.preprocess_ms;
        network_ms += d.network_ms;
        post_ms += d.post_ms;
        boxes += d.boxes.size();
        std::ofstream result(out_dir / ("res_" + file.stem().string() + ".txt"), std::ios::binary);
        nlohmann::json image_boxes = nlohmann::json::array();
        for (const east::Quad& q : d.boxes) {
          result << east::format_box(q) << "\r\n";  // CRLF, as the reference's result files
          image_boxes.push_back({{"points", {q.points[0].x, q.points[0].y, q.points[1].x, q.points[1].y,
                                             q.points[2].x, q.points[2].y, q.points[3].x, q.points[3].y}},
                                 {"score", q.score}});
        }
        EASTRT_CHECK(result, "cannot write results for ", file.string(), " into ", out_dir.string());
        if (draw) {
          east::draw_quads(image, d.boxes, {255, 40, 40}, 2);
          east::write_png((out_dir / (file.stem().string() + ".png")).string(), image);
        }
        json.push_back({{"image", file.string()}, {"width", image.width}, {"height", image.height},
                        {"network_input", {d.plan.height, d.plan.width}}, {"boxes", image_boxes}});
      } catch (const std::exception& e) {
        fail(file, e);
      }
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (bar) {
    progress(files.size(), files.size(), seconds, "");
    std::fprintf(stderr, "\n");
  }
  size_t ok = files.size() - failures.size();
  if (args.has("--json")) std::cout << json.dump(2) << "\n";
  std::fprintf(args.has("--json") ? stderr : stdout,
               "%s\n%zu images: %zu detected, %zu failed; %zu boxes; %.2f s (%.2f images/s; preprocessing %.0f ms, "
               "network %.0f ms, post-processing %.0f ms in all) on %s, batch %d; results in %s\n",
               description.c_str(), files.size(), ok, failures.size(), boxes, seconds,
               seconds > 0 ? ok / seconds : 0.0, preprocess_ms, network_ms, post_ms, engine.c_str(), batch,
               out_dir.string().c_str());
  return failures.empty() ? 0 : 1;
}

RegisterCommand registration("detect", "detect text in images: res_img_N.txt files, JSON, drawn boxes", detect);

}  // namespace
}  // namespace eastrt::tool
