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
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/db_detector.h"
#include "eastrt/detector.h"
#include "eastrt/east.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/pipeline.h"
#include "eastrt/run_record.h"
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
    "  --precision P         fp32, tf32, fp16, int8 or fp8 (default: fp16 on the GPU; the CPU runs fp32)\n"
    "  --calib-cache FILE    int8/fp8: the calibration cache (made by eastrt calibrate; default for the\n"
    "                        bundled model: models/east.int8.cache / east.fp8.cache shipped beside it)\n"
    "  --batch N             EAST: images of one size run through the network N at a time (default 1)\n"
    "  --workers N           EAST: threads decoding images, and as many post-processing (default: half\n"
    "                        the cores each with the GPU, a quarter on the CPU)\n"
    "  --in-flight N         EAST on the GPU: batches on the GPU at once, each on its own stream (default 3)\n"
    "  --bench               EAST: time the run end to end (on the GPU after one untimed pass that builds\n"
    "                        the engines), show where the time went and the network alone at the same\n"
    "                        batch; writes result files only with --out\n"
    "  --record FILE         with --bench: append the figures as one JSON line to FILE\n"
    "  --decoder D           EAST: where JPEGs are decoded: gpu (the GPU's hardware JPEG decoder, nvJPEG,\n"
    "                        for every JPEG it takes, libjpeg for the rest; an error where nvJPEG cannot\n"
    "                        run), cpu (libjpeg only), auto (gpu when the network runs on a GPU that has\n"
    "                        the decoder, else cpu) or hybrid (both, whichever is free: the most images/s\n"
    "                        when the cores have time to spare, but an image's boxes may then differ a\n"
    "                        little from run to run) (default: auto)\n"
    "  --cpu-decode          EAST on the GPU: copy both maps back and decode them on the CPU threads\n"
    "                        (default: candidate quads decoded on the GPU, only those copied back)\n"
    "  --lanms P             EAST: where locality-aware NMS runs: cpu (the post-processing threads) or\n"
    "                        gpu (after the device decode, only the kept quads copied back; IoUs within\n"
    "                        ~1e-5 of the CPU's) (default: cpu)\n"
    "  --threads N           CPU threads (default: all)\n"
    "  --score-threshold T   EAST: score-map threshold (default 0.8)\n"
    "  --nms-threshold T     EAST: locality-aware NMS IoU threshold (default 0.2)\n";

// Files as given, folders' images (east::image_files_in: natural order), globs expanded.
std::vector<fs::path> expand_inputs(const std::vector<std::string>& paths) {
  std::vector<fs::path> files;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      for (const std::string& f : east::image_files_in(p)) files.emplace_back(f);
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

// --bench's report: the wall time against the time each stage spent (summed over its threads), and the network
// alone at the most common input size and the same batch.
void report_bench(const east::Pipeline& pipeline, Runner& runner, double seconds, std::pair<int, int> size, int batch,
                  const std::string& description, const std::string& record) {
  const east::PipelineStats st = pipeline.stats();
  const east::PipelineOptions& o = pipeline.options();
  const int64_t ok = st.images - st.failed;
  const double per = ok > 0 ? 1.0 / static_cast<double>(ok) : 0.0, wall_ms = seconds * 1000;
  const double end_to_end = seconds > 0 ? ok / seconds : 0.0;
  std::printf("\nend to end: %lld images in %.3f s, %.1f images/s (%s; %lld network runs)\n",
              static_cast<long long>(ok), seconds, end_to_end, pipeline.description().c_str(),
              static_cast<long long>(st.batches));
  std::printf("%-34s %12s %10s %14s\n", "stage", "total ms", "ms/image", "threads busy");
  auto row = [&](const char* name, double total, int threads) {
    std::printf("%-34s %12.1f %10.3f %8.2f of %d\n", name, total, total * per, wall_ms > 0 ? total / wall_ms : 0.0,
                threads);
  };
  std::printf("decoders: %s\n", pipeline.decoder_description().c_str());
  row("decode on the CPU (file to RGB)", st.cpu_decode_ms, o.workers);
  if (pipeline.decodes_jpegs_on_gpu())
    row("decode on the GPU (nvJPEG batches)", st.gpu_decode_busy_ms, o.gpu_decode_threads);
  std::printf("images decoded: %lld by libjpeg, %lld by nvJPEG (%lld passed from the GPU threads to libjpeg)\n",
              static_cast<long long>(st.decoded_on_cpu), static_cast<long long>(st.decoded_on_gpu),
              static_cast<long long>(st.gpu_declined));
  if (runner.resizes_images())
    std::printf("%-34s %12s %10s %14s\n", "preprocess", "on the GPU", "", "(in network)");
  else
    row("preprocess (resize, CPU)", st.total.preprocess_ms, o.workers);
  row(runner.resizes_images() ? "network (copies, resize, engine)" : "network (engine)", st.network_busy_ms,
      o.in_flight);
  row(pipeline.runs_lanms_on_device() ? "re-scoring (decode, LANMS on GPU)"
      : pipeline.decodes_on_device() ? "LANMS + re-scoring (decode on GPU)" : "decode maps + LANMS", st.total.post_ms,
      o.post_workers);
  std::printf("%-34s %12.1f %10.3f\n", "waiting: for a batch to start", st.total.batch_wait_ms, st.total.batch_wait_ms * per);
  std::printf("%-34s %12.1f %10.3f\n", "waiting: for a post thread", st.total.post_wait_ms, st.total.post_wait_ms * per);
  double network_alone = 0;
  if (size.first > 0) {
    const double ms = runner.time_network(east::kInputName, {batch, size.first, size.second, 3}, runner.on_gpu() ? 20 : 2);
    network_alone = ms > 0 ? batch * 1000.0 / ms : 0.0;
    std::printf("network alone at %dx%d, batch %d: %.2f ms a run, %.1f images/s; end to end is %.0f%% of it\n",
                size.first, size.second, batch, ms, network_alone,
                network_alone > 0 ? 100.0 * end_to_end / network_alone : 0.0);
  }
  if (!record.empty()) {
    nlohmann::json line = {{"benchmark", "detect"}, {"date", utc_timestamp()}, {"commit", build_commit()},
                           {"engine", runner.description()}, {"cpu", cpu_name()}, {"model", description},
                           {"images", ok}, {"failed", st.failed}, {"seconds", seconds},
                           {"images_per_s", end_to_end}, {"network_images_per_s", network_alone},
                           {"network_input", {size.first, size.second}}, {"batch", o.max_batch},
                           {"in_flight", o.in_flight}, {"workers", o.workers}, {"post_workers", o.post_workers},
                           {"network_runs", st.batches}, {"decode_ms", st.total.decode_ms},
                           {"preprocess_ms", st.total.preprocess_ms}, {"network_busy_ms", st.network_busy_ms},
                           {"post_ms", st.total.post_ms}, {"decode_on_gpu", pipeline.decodes_on_device()},
                           {"decoder", to_string(o.decoder)}, {"decoders", pipeline.decoder_description()},
                           {"lanms", pipeline.runs_lanms_on_device() ? "gpu" : "cpu"},
                           {"decoded_on_cpu", st.decoded_on_cpu}, {"decoded_on_gpu", st.decoded_on_gpu},
                           {"cpu_decode_ms", st.cpu_decode_ms}, {"gpu_decode_busy_ms", st.gpu_decode_busy_ms}, {"batch_wait_ms", st.total.batch_wait_ms},
                           {"post_wait_ms", st.total.post_wait_ms}};
    std::ofstream out(record, std::ios::app);
    out << line.dump() << "\n";
    EASTRT_CHECK(out, "cannot append to ", record);
  }
}

int detect(const std::vector<std::string>& argv) {
  Args args(kUsage,
            {"--model", "--builtin", "--out", "--device", "--precision", "--batch", "--threads", "--score-threshold",
             "--nms-threshold", "--input", "--width-divisor", "--workers", "--in-flight", "--record", "--calib-cache",
             "--decoder", "--lanms"},
            {"--force", "--draw", "--json", "--bench", "--cpu-decode"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(!args.positional().empty(), "no input images (eastrt detect --help)");
  const std::string device = args.get("--device", "auto");
  EASTRT_CHECK(device == "auto" || device == "gpu" || device == "cpu", "unknown --device '", device,
               "' (choose auto, gpu or cpu)");
  const bool on_gpu = device == "gpu" || (device == "auto" && query_gpu().available);
  const Precision precision = parse_precision(args.get("--precision", on_gpu ? "fp16" : "fp32"));
  const std::string calibration_cache = calibration_cache_for(args, precision);
  const int batch = args.get_int("--batch", 1);
  EASTRT_CHECK(batch >= 1, "--batch must be at least 1, not ", batch);
  const int workers = args.get_int("--workers", 0), in_flight = args.get_int("--in-flight", 3);
  EASTRT_CHECK(workers >= 0, "--workers must be at least 0 (0: by the cores), not ", workers);
  EASTRT_CHECK(in_flight >= 1, "--in-flight must be at least 1, not ", in_flight);
  const bool bench = args.has("--bench");
  std::vector<std::string> model_argv;  // load_model falls back to the bundled model
  for (const char* flag : {"--model", "--builtin", "--width-divisor"})
    if (args.has(flag)) model_argv.insert(model_argv.end(), {flag, args.get(flag)});
  model_argv.insert(model_argv.end(), {"--input", args.get("--input", "1x64x64x3")});
  Args model_args("", {"--model", "--builtin", "--width-divisor", "--input"}, {});
  model_args.parse(model_argv);
  LoadedModel model = load_model(model_args);
  // EAST wherever the network has EAST's outputs (however it was imported); any other ONNX model is taken
  // as a DBNet probability map.
  const bool is_db = ends_with(args.get("--model"), ".onnx") && !model.network.find_tensor(east::kScoreOutput) &&
                     !model.network.find_tensor(east::kGeometryOutput);
  EASTRT_CHECK(!bench || !is_db, "--bench times the EAST pipeline; DBNet runs one image at a time");

  std::vector<fs::path> files = expand_inputs(args.positional());
  // Under --bench results are written only when asked for with --out.
  const bool write = !bench || args.has("--out");
  fs::path out_dir = args.get("--out", "detections");
  const bool force = args.has("--force"), draw = args.has("--draw") && write;
  if (write) {
    fs::create_directories(out_dir);
    // Refuse before any work, so a run never half-overwrites an earlier one.
    if (!force)
      for (const fs::path& f : files) {
        fs::path result = out_dir / ("res_" + f.stem().string() + ".txt");
        EASTRT_CHECK(!fs::exists(result), "result file ", result.string(), " exists (use --force to overwrite)");
      }
  }

  const bool bar = isatty(STDERR_FILENO) && !args.has("--json");
  nlohmann::json json = nlohmann::json::array();
  size_t boxes = 0, done = 0;
  std::vector<std::string> failures;
  std::map<std::pair<int, int>, int> sizes;  // network input sizes seen, for --bench's network-alone figure
  double preprocess_ms = 0, network_ms = 0, post_ms = 0;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto fail = [&](const std::string& file, const std::string& message) {
    failures.push_back(message);
    if (bar) std::fprintf(stderr, "\r%-100s\r", "");
    std::cerr << "eastrt detect: skipped " << file << ": " << message << "\n";
  };
  // Every result, in input order: written, drawn, counted.
  auto emit = [&](east::PipelineResult& r) {
    ++done;
    if (bar && (done % 8 == 0 || done == files.size())) progress(done, files.size(), elapsed(), fs::path(r.name).filename().string());
    if (!r.ok()) return fail(r.name, r.error);
    const fs::path file = r.name;
    const east::Detection& d = r.detection;
    try {
      preprocess_ms += d.preprocess_ms;
      network_ms += d.network_ms;
      post_ms += d.post_ms;
      boxes += d.boxes.size();
      ++sizes[{d.plan.height, d.plan.width}];
      nlohmann::json image_boxes = nlohmann::json::array();
      for (const east::Quad& q : d.boxes)
        image_boxes.push_back({{"points", {q.points[0].x, q.points[0].y, q.points[1].x, q.points[1].y,
                                           q.points[2].x, q.points[2].y, q.points[3].x, q.points[3].y}},
                               {"score", q.score}});
      if (write) {
        std::ofstream result(out_dir / ("res_" + file.stem().string() + ".txt"), std::ios::binary);
        for (const east::Quad& q : d.boxes) result << east::format_box(q) << "\r\n";  // CRLF, as the reference's
        EASTRT_CHECK(result, "cannot write results for ", file.string(), " into ", out_dir.string());
      }
      if (draw) {
        east::draw_quads(r.image, d.boxes, {255, 40, 40}, 2);
        east::write_png((out_dir / (file.stem().string() + ".png")).string(), r.image);
      }
      json.push_back({{"image", file.string()}, {"width", r.width}, {"height", r.height},
                      {"network_input", {d.plan.height, d.plan.width}}, {"boxes", image_boxes}});
    } catch (const std::exception& e) {
      fail(file.string(), e.what());
    }
  };

  std::string description, engine;
  const CpuOptions cpu{args.get_int("--threads", 0), false};
  double seconds = 0;
  if (is_db) {
    auto runner = make_runner(std::move(model.network), on_gpu ? "gpu" : "cpu", precision, cpu, 1, 1, false,
                              calibration_cache);
    engine = runner->description();
    db::Detector detector(std::move(runner));
    description = "DBNet (PP-OCRv4 det post-processing) from " + model.description;
    for (const fs::path& f : files) {
      east::PipelineResult r;
      r.name = f.string();
      try {
        east::Image image = east::decode_image(f.string());
        r.width = image.width, r.height = image.height;
        r.detection = detector.detect(image);
        if (draw) r.image = std::move(image);
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      emit(r);
    }
    seconds = elapsed();
  } else {
    description = model.description;
    auto runner = make_runner(std::move(model.network), on_gpu ? "gpu" : "cpu", precision, cpu, batch, in_flight,
                              false, calibration_cache);
    engine = runner->description();

    east::PipelineOptions options;
    options.max_batch = batch;
    options.workers = workers;
    options.in_flight = in_flight;
    // Every image is submitted ahead of need, so a part-filled batch only waits for images of its size
    // still being decoded; when none are, it leaves at once.
    options.max_delay_ms = 200;
    options.keep_images = draw;
    options.device_decode = !args.has("--cpu-decode");
    options.decoder = east::parse_decoder(args.get("--decoder", "auto"));
    options.device_lanms = east::parse_lanms_on_device(args.get("--lanms", "cpu"));
    options.detect.score_threshold = static_cast<float>(args.get_double("--score-threshold", options.detect.score_threshold));
    options.detect.nms_threshold = static_cast<float>(args.get_double("--nms-threshold", options.detect.nms_threshold));
    std::vector<std::string> paths;
    for (const fs::path& f : files) paths.push_back(f.string());
    if (bench && runner->on_gpu()) {
      // Untimed: builds the engine of every input size and captures the graph of every batch size.
      east::Pipeline warm_up(*runner, options);
      east::detect_in_order(warm_up, paths, [](east::PipelineResult&) {});
    }
    east::Pipeline pipeline(*runner, options);
    engine += "; decoders: " + pipeline.decoder_description();
    start = std::chrono::steady_clock::now();
    east::detect_in_order(pipeline, paths, emit);
    seconds = elapsed();
    if (bench) {
      std::pair<int, int> common{0, 0};
      int most = 0;
      for (const auto& [size, count] : sizes)
        if (count > most) most = count, common = size;
      if (bar) std::fprintf(stderr, "\n");
      report_bench(pipeline, *runner, seconds, common, batch, description, args.get("--record", ""));
    }
  }

  if (bar) {
    progress(files.size(), files.size(), seconds, "");
    std::fprintf(stderr, "\n");
  }
  size_t ok = files.size() - failures.size();
  if (args.has("--json")) std::cout << json.dump(2) << "\n";
  std::fprintf(args.has("--json") ? stderr : stdout,
               "%s\n%zu images: %zu detected, %zu failed; %zu boxes; %.2f s (%.2f images/s; preprocessing %.0f ms, "
               "network %.0f ms, post-processing %.0f ms in all) on %s, batch %d; results %s\n",
               description.c_str(), files.size(), ok, failures.size(), boxes, seconds,
               seconds > 0 ? ok / seconds : 0.0, preprocess_ms, network_ms, post_ms, engine.c_str(), batch,
               write ? ("in " + out_dir.string()).c_str() : "not written");
  return failures.empty() ? 0 : 1;
}

RegisterCommand registration("detect", "detect text in images: res_img_N.txt files, JSON, drawn boxes", detect);

}  // namespace
}  // namespace eastrt::tool
