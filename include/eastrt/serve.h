// `eastrt serve`: EAST detection over HTTP on east::Pipeline, the pipeline `eastrt detect` runs: requests are
// decoded on its threads, batched by network input size (the EAST resize rule), run on the Runner's slots and
// post-processed on its threads. docs/SERVING.md describes the design and the figures.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/detector_ops.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"

namespace eastrt::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // numeric address to listen on
  int port = 0;                    // 0: any free port (Server::port() says which)
  int max_batch = 8;               // images per network run, at most
  double max_delay_ms = 5;         // how long a batch that is not full waits for more after its first image
  int streams = 0;                 // batches on the runner at once, at most its slots; 0: all its slots
  int workers = 0;                 // threads decoding requests, and as many post-processing, per pipeline;
                                   // 0: by the cores (half of them, shared out among the pipelines)
  int queue = 64;                  // requests waiting for the network, at most, per pipeline; beyond, 503 at once
  size_t max_body_bytes = 16 << 20;  // larger bodies are 413
  int timeout_ms = 10000;          // a request not on the network this long after it arrived is answered 504
  east::DetectOptions detect;
  east::Decoder decoder = east::Decoder::kAuto;  // where JPEG requests are decoded (east::PipelineOptions)
  bool device_lanms = false;                     // LANMS on the GPU (east::PipelineOptions::device_lanms)
  std::string selftest_image;      // bytes served at GET /selftest-image for the page's self-test ("" → 404)
};

// Listens as soon as it is made (an Error names the address on failure) and serves until shutdown().
// Endpoints: POST /detect (image bytes → JSON boxes and timings), GET / (the web page), GET /healthz,
// GET /metrics (Prometheus text).
class Server {
 public:
  // `runner` runs EAST; it must outlive the server and be used by nothing else meanwhile. With max_batch
  // above 1 on the GPU it must have been made for batches that large (GpuRunnerOptions::build.max_batch).
  // The same holds for each of several runners.
  Server(ServerOptions options, Runner& runner);
  // One pipeline per runner (one per GPU), each with these options: a request goes to the one with the fewest
  // waiting (ties in turn), and is 503 only when that one's queue (ServerOptions::queue, per pipeline) is full.
  Server(ServerOptions options, const std::vector<Runner*>& runners);
  ~Server();  // shuts down
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // "the GPU engine on NVIDIA H200 (sm_90), fp16; batch 16, 3 in flight, ..."; with several runners
  // "2 pipelines: the GPU engine on ... (GPU 0); the GPU engine on ... (GPU 1)"
  const std::string& engine_description() const;

  // Stops accepting connections and answers every request already accepted (those queued included), then
  // stops the pipelines. Idempotent; returns when all of that is done.
  void shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The web page served at GET / (web/index.html, embedded at build time).
const std::string& web_page();

}  // namespace eastrt::serve
