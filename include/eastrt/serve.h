// `eastrt serve`: EAST detection over HTTP with dynamic batching. Requests wait in one bounded queue;
// each worker stream takes batches from it and runs them on its own BatchEngine (the CPU engine here, a
// GPU execution context where there is a GPU). docs/SERVING.md describes the design and the figures.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/detector_ops.h"
#include "eastrt/gpu_engine.h"

namespace eastrt::serve {

// The network's two outputs for one image: score [1, h/4, w/4, 1] and geometry [1, h/4, w/4, 5].
struct EastMaps {
  HostTensor score, geometry;
};

struct BatchTimes {
  double preprocess_ms = 0;  // resizing the images into the batch
  double network_ms = 0;
};

// What a worker runs a batch of images on: the seam between the batcher and an engine. One instance per
// worker stream, used by that worker's thread only.
class BatchEngine {
 public:
  virtual ~BatchEngine() = default;
  virtual std::string description() const = 0;  // "CPU engine, 2 threads"
  virtual int max_batch() const = 0;             // the most images one run() takes
  // The network input size for an image: the EAST resize rule on an engine that runs any size, the built
  // size (aspect not kept) on a fixed-shape one.
  virtual east::ResizePlan plan(const east::Image& image) const = 0;
  // Resizes the images, whose plans all give height × width, into one batch, runs the network and splits
  // its outputs per image.
  virtual std::vector<EastMaps> run(const std::vector<const east::Image*>& images, int height, int width,
                                    BatchTimes* times) = 0;
};

// Makes the engine of worker `stream` (0, 1, ...); called once per stream when the server starts.
using EngineFactory = std::function<std::unique_ptr<BatchEngine>(int stream)>;

// The CPU engine, one per stream, each running the network (EAST; any input size) with `cpu`'s threads.
EngineFactory cpu_engines(const Network& network, CpuOptions cpu);

// The GPU engine, built once here at the network's input height and width for options.max_batch, with one
// execution context per stream. Throws where there is no GPU or CUDA.
EngineFactory gpu_engines(const Network& network, const BuildOptions& options);

struct ServerOptions {
  std::string host = "127.0.0.1";  // numeric address to listen on
  int port = 0;                    // 0: any free port (Server::port() says which)
  int streams = 1;                 // worker streams, each with its own engine
  int max_batch = 8;               // images per network run, at most
  double max_delay_ms = 5;         // how long a batch waits for more requests after its first arrived
  int queue = 64;                  // requests waiting for a worker, at most; beyond, 503 at once
  size_t max_body_bytes = 16 << 20;  // larger bodies are 413
  int timeout_ms = 10000;          // a request that waited longer in the queue is answered 504
  east::DetectOptions detect;
  std::string selftest_image;      // bytes served at GET /selftest-image for the page's self-test ("" → 404)
};

// Listens as soon as it is made (an Error names the address on failure) and serves until shutdown().
// Endpoints: POST /detect (image bytes → JSON boxes and timings), GET / (the web page), GET /healthz,
// GET /metrics (Prometheus text).
class Server {
 public:
  Server(ServerOptions options, const EngineFactory& engines);
  ~Server();  // shuts down
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  const std::string& engine_description() const;

  // Stops accepting connections and answers every request already accepted (those queued included), then
  // stops the workers. Idempotent; returns when all of that is done.
  void shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The web page served at GET / (web/index.html, embedded at build time).
const std::string& web_page();

}  // namespace eastrt::serve
