// `eastrt serve`: the HTTP detection server on the pipeline and Runner `eastrt detect` uses (GPU engines per
// input size on every GPU, one runner and pipeline each, else the CPU engine); runs until SIGINT or SIGTERM,
// then answers what it accepted and exits 0.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "args.h"
#include "command.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/http.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"
#include "eastrt/serve.h"
#include "model_loader.h"

namespace eastrt::tool {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in, "cannot open ", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// --gpus: "all" (every GPU), N (the first N) or a list I,J,... of device numbers, checked against the `count`
// the machine has.
std::vector<int> parse_gpus(const std::string& text, int count) {
  const std::string machine = "this machine has " + std::to_string(count) + " GPU" + (count == 1 ? "" : "s") +
                              (count > 0 ? " (0.." + std::to_string(count - 1) + ")" : "");
  std::vector<int> devices;
  if (text == "all") {
    for (int d = 0; d < count; ++d) devices.push_back(d);
    EASTRT_CHECK(!devices.empty(), "--gpus all: ", machine, " (", query_gpu().reason, "); give --cpu for the CPU engine");
    return devices;
  }
  const bool list = text.find(',') != std::string::npos;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    EASTRT_CHECK(!item.empty() && item.size() <= 4 && item.find_first_not_of("0123456789") == std::string::npos,
                 "--gpus '", text, "': give all, a number of GPUs or a list of device numbers such as 0,1");
    devices.push_back(std::stoi(item));
  }
  EASTRT_CHECK(!devices.empty(), "--gpus '", text, "': give all, a number of GPUs or a list such as 0,1");
  if (!list) {
    const int n = devices[0];
    EASTRT_CHECK(n >= 1 && n <= count, "--gpus ", n, ": ", machine);
    devices.clear();
    for (int d = 0; d < n; ++d) devices.push_back(d);
    return devices;
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    EASTRT_CHECK(devices[i] < count, "--gpus ", text, ": there is no GPU ", devices[i], "; ", machine);
    for (size_t j = 0; j < i; ++j) EASTRT_CHECK(devices[j] != devices[i], "--gpus ", text, ": GPU ", devices[i], " twice");
  }
  return devices;
}

int serve(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt serve [--model FILE | --builtin east] [options]\n\n"
                        "Serves EAST detection over HTTP/1.1 with dynamic batching:\n"
                        "  POST /detect   the image bytes (JPEG, PNG, BMP) → JSON boxes, size and timings\n"
                        "  GET /          a page to try it in a browser;  GET /healthz;  GET /metrics (Prometheus)\n"
                        "Each image goes through the EAST resize rule and the pipeline of `eastrt detect`, so the\n"
                        "boxes are detect's for the same image: decoded on worker threads, batched by network input\n"
                        "size, on the GPU engine for that size (built on first use) where there is a GPU, else on the\n"
                        "CPU engine. SIGINT or SIGTERM: stop accepting, answer what was accepted, exit 0.\n\n") +
                kModelFlagsHelp +
                "  --precision P         fp32 on the CPU; fp32, tf32, fp16, int8 or fp8 on the GPU (default:\n"
                "                        fp16 on the GPU, as detect; fp32 on the CPU)\n"
                "  --calib-cache FILE    int8/fp8: the calibration cache (default for the bundled model: the\n"
                "                        one shipped beside it, models/east.int8.cache / east.fp8.cache)\n"
                "  --cpu                 use the CPU engine even where there is a GPU\n"
                "  --gpus G              all (default: every GPU), N (the first N) or I,J,... (those\n"
                "                        devices): one runner and pipeline per GPU, a request going to the\n"
                "                        one with the fewest waiting; without a GPU, the CPU engine\n"
                "  --host ADDR           numeric address to listen on (default 127.0.0.1)\n"
                "  --port N              port (default 8080; 0: any free port, printed)\n"
                "  --streams N           GPU: batches on the GPU at once, each on its own execution context\n"
                "                        and stream (default 3); the CPU engine runs one at a time\n"
                "  --workers N           threads decoding requests, and as many post-processing (default:\n"
                "                        half the cores with the GPU, a quarter on the CPU)\n"
                "  --threads N           CPU engine threads (default: all cores)\n"
                "  --decoder D           where JPEGs are decoded: auto (the GPU's hardware JPEG decoder,\n"
                "                        nvJPEG, for every JPEG it takes where there is one, else libjpeg),\n"
                "                        cpu, gpu (an error where nvJPEG cannot run) or hybrid (both, whichever\n"
                "                        is free) (default: auto)\n"
                "  --max-batch B         images per network run, at most (default 8)\n"
                "  --max-delay-ms D      how long a batch that is not full waits for more after its first\n"
                "                        image (default 5)\n"
                "  --queue N             requests that may wait for the network, per GPU; beyond, 503 at\n"
                "                        once (default 64)\n"
                "  --max-body-mb M       larger request bodies are 413 (default 16)\n"
                "  --timeout-ms T        requests not on the network this long after arriving are 504\n"
                "                        (default 10000)\n"
                "  --warmup FILE         detect this image once before listening, so that the GPU engine for\n"
                "                        its network input size is built before the first request\n"
                "  --score-threshold T   score-map threshold (default 0.8)\n"
                "  --nms-threshold T     locality-aware NMS IoU threshold (default 0.2)\n"
                "  --lanms P             where locality-aware NMS runs: cpu or gpu (see eastrt detect)\n"
                "                        (default: cpu)\n"
                "  --selftest-image FILE served at /selftest-image for the page's self-test (/?selftest=1)\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--precision", "--calib-cache", "--host", "--port", "--streams",
             "--workers", "--threads", "--max-batch", "--warmup", "--max-delay-ms", "--queue", "--max-body-mb", "--timeout-ms",
             "--score-threshold", "--nms-threshold", "--selftest-image", "--decoder", "--gpus", "--lanms"},
            {"--cpu"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");

  serve::ServerOptions options;
  options.host = args.get("--host", options.host);
  options.port = args.get_int("--port", 8080);
  options.streams = args.get_int("--streams", 3);
  options.workers = args.get_int("--workers", 0);
  options.max_batch = args.get_int("--max-batch", options.max_batch);
  options.max_delay_ms = args.get_double("--max-delay-ms", options.max_delay_ms);
  options.queue = args.get_int("--queue", options.queue);
  const double body_mb = args.get_double("--max-body-mb", 16);
  EASTRT_CHECK(body_mb > 0 && body_mb <= 1024, "--max-body-mb must be in (0, 1024], got ", body_mb);
  options.max_body_bytes = static_cast<size_t>(body_mb * (1 << 20));
  options.timeout_ms = args.get_int("--timeout-ms", options.timeout_ms);
  options.decoder = east::parse_decoder(args.get("--decoder", "auto"));
  options.device_lanms = east::parse_lanms_on_device(args.get("--lanms", "cpu"));
  options.detect.score_threshold = static_cast<float>(args.get_double("--score-threshold", 0.8));
  options.detect.nms_threshold = static_cast<float>(args.get_double("--nms-threshold", 0.2));
  EASTRT_CHECK(options.port >= 0 && options.port <= 65535, "--port must be in 0..65535");
  EASTRT_CHECK(options.streams >= 1, "--streams must be at least 1");
  EASTRT_CHECK(options.workers >= 0, "--workers must be at least 0 (0: by the cores)");
  if (args.has("--selftest-image")) {
    options.selftest_image = read_file(args.get("--selftest-image"));
    EASTRT_CHECK(!options.selftest_image.empty(), "--selftest-image ", args.get("--selftest-image"), " is empty");
  }

  EASTRT_CHECK(!(args.has("--cpu") && args.has("--gpus")), "--cpu and --gpus exclude each other");
  // The GPUs to serve on; none (the CPU engine) with --cpu, or by default where there is no GPU.
  const std::vector<int> gpus = args.has("--cpu")                      ? std::vector<int>{}
                                : args.has("--gpus") || gpu_count() > 0 ? parse_gpus(args.get("--gpus", "all"), gpu_count())
                                                                        : std::vector<int>{};
  LoadedModel model = load_model(args);
  const Precision precision = parse_precision(args.get("--precision", gpus.empty() ? "fp32" : "fp16"));
  // One runner per GPU, each building its GPU engines per input size on its own device (a line whenever one
  // is built), tactics in the default timing cache.
  std::vector<std::unique_ptr<Runner>> runners;
  for (size_t i = 0; i < std::max<size_t>(gpus.size(), 1); ++i)
    runners.push_back(make_runner(model.network, gpus.empty() ? "cpu" : "gpu", precision,
                                  CpuOptions{args.get_int("--threads", 0)}, options.max_batch, options.streams,
                                  /*verbose=*/true, calibration_cache_for(args, precision), gpus.empty() ? 0 : gpus[i]));
  if (args.has("--warmup"))
    for (std::unique_ptr<Runner>& runner : runners) {
      east::PipelineOptions warm;
      warm.detect = options.detect;
      warm.decoder = options.decoder;
      warm.device_lanms = options.device_lanms;
      east::Pipeline pipeline(*runner, warm);
      const east::PipelineResult r = pipeline.submit_file(args.get("--warmup")).get();
      EASTRT_CHECK(r.ok(), "--warmup: ", r.error);
      std::cerr << "eastrt serve: warmed up on " << r.name << " (" << r.width << "x" << r.height << ", network input "
                << r.detection.plan.height << "x" << r.detection.plan.width << ")"
                << (runner->gpu_device() >= 0 ? " on GPU " + std::to_string(runner->gpu_device()) : std::string())
                << "\n";
    }

  // The signals are taken by sigwait below, so every thread the server starts must have them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<Runner*> serving;
  for (std::unique_ptr<Runner>& runner : runners) serving.push_back(runner.get());
  serve::Server server(options, serving);
  if (!http::is_loopback(options.host))
    std::cerr << "eastrt serve: warning: listening on " << options.host << ", reachable beyond this machine\n";
  std::printf("eastrt serve: %s on %s; listening on http://%s:%d/\n", model.description.c_str(),
              server.engine_description().c_str(), options.host.c_str(), server.port());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::printf("eastrt serve: %s: answering accepted requests, then exiting\n", strsignal(signal_number));
  std::fflush(stdout);
  server.shutdown();
  std::printf("eastrt serve: stopped\n");
  return 0;
}

RegisterCommand registration("serve", "serve detection over HTTP with dynamic batching (web page, metrics)", serve);

}  // namespace
}  // namespace eastrt::tool
