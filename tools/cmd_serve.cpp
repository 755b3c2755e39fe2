// `eastrt serve`: the HTTP detection server on the GPU engine where there is a GPU, else the CPU engine;
// runs until SIGINT or SIGTERM, then answers what it accepted and exits 0.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "args.h"
#include "command.h"
#include "eastrt/error.h"
#include "eastrt/gpu.h"
#include "eastrt/http.h"
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

int serve(const std::vector<std::string>& argv) {
  Args args(std::string("usage: eastrt serve [--model FILE | --builtin east] [options]\n\n"
                        "Serves EAST detection over HTTP/1.1 with dynamic batching:\n"
                        "  POST /detect   the image bytes (JPEG, PNG, BMP) → JSON boxes, size and timings\n"
                        "  GET /          a page to try it in a browser;  GET /healthz;  GET /metrics (Prometheus)\n"
                        "Runs on the GPU engine when there is a GPU (built at --input's size), else on the CPU\n"
                        "engine (any size, the EAST resize rule). SIGINT or SIGTERM: stop accepting, answer what\n"
                        "was accepted, exit 0.\n\n") +
                kModelFlagsHelp +
                "  --precision P         fp32 on the CPU; fp32, tf32 or fp16 on the GPU (default fp32)\n"
                "  --cpu                 use the CPU engine even where there is a GPU\n"
                "  --host ADDR           numeric address to listen on (default 127.0.0.1)\n"
                "  --port N              port (default 8080; 0: any free port, printed)\n"
                "  --streams N           worker streams, each with its own engine (default 1)\n"
                "  --threads N           CPU threads per stream (default: all cores / streams)\n"
                "  --max-batch B         images per network run, at most (default 8)\n"
                "  --max-delay-ms D      how long a batch waits for more after its first request (default 5)\n"
                "  --queue N             requests that may wait; beyond, 503 at once (default 64)\n"
                "  --max-body-mb M       larger request bodies are 413 (default 16)\n"
                "  --timeout-ms T        requests that waited longer in the queue are 504 (default 10000)\n"
                "  --score-threshold T   score-map threshold (default 0.8)\n"
                "  --nms-threshold T     locality-aware NMS IoU threshold (default 0.2)\n"
                "  --selftest-image FILE served at /selftest-image for the page's self-test (/?selftest=1)\n",
            {"--builtin", "--model", "--input", "--width-divisor", "--precision", "--host", "--port", "--streams",
             "--threads", "--max-batch", "--max-delay-ms", "--queue", "--max-body-mb", "--timeout-ms",
             "--score-threshold", "--nms-threshold", "--selftest-image"},
            {"--cpu"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");

  serve::ServerOptions options;
  options.host = args.get("--host", options.host);
  options.port = args.get_int("--port", 8080);
  options.streams = args.get_int("--streams", options.streams);
  options.max_batch = args.get_int("--max-batch", options.max_batch);
  options.max_delay_ms = args.get_double("--max-delay-ms", options.max_delay_ms);
  options.queue = args.get_int("--queue", options.queue);
  const double body_mb = args.get_double("--max-body-mb", 16);
  EASTRT_CHECK(body_mb > 0 && body_mb <= 1024, "--max-body-mb must be in (0, 1024], got ", body_mb);
  options.max_body_bytes = static_cast<size_t>(body_mb * (1 << 20));
  options.timeout_ms = args.get_int("--timeout-ms", options.timeout_ms);
  options.detect.score_threshold = static_cast<float>(args.get_double("--score-threshold", 0.8));
  options.detect.nms_threshold = static_cast<float>(args.get_double("--nms-threshold", 0.2));
  EASTRT_CHECK(options.port >= 0 && options.port <= 65535, "--port must be in 0..65535");
  EASTRT_CHECK(options.streams >= 1, "--streams must be at least 1");
  if (args.has("--selftest-image")) {
    options.selftest_image = read_file(args.get("--selftest-image"));
    EASTRT_CHECK(!options.selftest_image.empty(), "--selftest-image ", args.get("--selftest-image"), " is empty");
  }

  LoadedModel model = load_model(args);
  const std::string precision = args.get("--precision", "fp32");
  const GpuInfo gpu = query_gpu();
  serve::EngineFactory engines;
  if (gpu.available && !args.has("--cpu")) {
    BuildOptions build;
    build.precision = parse_precision(precision);
    build.max_batch = options.max_batch;
    std::cerr << "eastrt serve: building the GPU engine on " << gpu.name << "\n";
    engines = serve::gpu_engines(model.network, build);
  } else {
    EASTRT_CHECK(precision == "fp32", "precision ", precision, " needs the GPU engine (",
                 gpu.available ? "--cpu was given" : gpu.reason, "); the CPU engine runs fp32");
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    engines = serve::cpu_engines(model.network, CpuOptions{args.get_int("--threads", std::max(1, cores / options.streams))});
  }

  // The signals are taken by sigwait below, so every thread the server starts must have them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  serve::Server server(options, engines);
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
