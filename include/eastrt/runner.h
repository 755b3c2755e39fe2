// Where a network runs, behind one interface: the CPU engine, or GPU engines built on demand, one per input
// size (a detector sees images of many sizes; each GPU engine is built and tactic-timed for its size, then
// kept for the next image of that size). The detectors and the tools run networks only through a Runner.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/detector_ops.h"
#include "eastrt/gpu_engine.h"

namespace eastrt {

class Runner {
 public:
  virtual ~Runner() = default;
  // Inputs by name, NHWC float32 of any batch and size the network accepts; every output by name.
  virtual std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs) = 0;
  virtual const Network& network() const = 0;
  // "the CPU engine, 2 threads, fp32" or "the GPU engine on NVIDIA H200 (sm_90), fp16"
  virtual std::string description() const = 0;
  virtual bool on_gpu() const = 0;
  // The CUDA device it runs on, -1 for none: images decoded on this device (Image::device) can go straight
  // into run_images and run_to_candidates when it also resizes_images().
  virtual int gpu_device() const { return -1; }

  // Independent execution slots: run_images calls on different slots may run at once, from different
  // threads (a GPU runner gives each slot its own execution context and stream); calls on one slot, and
  // run(), must not overlap. The CPU engine has one slot: it already spreads one run over every thread.
  virtual int slots() const { return 1; }
  // Whether run_images resizes on the device; if not, callers do better resizing on their own threads
  // (east::resize_bilinear) and calling run().
  virtual bool resizes_images() const { return false; }
  // EAST's input and the network in one call: each 8-bit RGB image resized as cv2 INTER_LINEAR does to
  // height × width into image i of input `input`, the network run, every output by name ([batch, ...]).
  // This version resizes on the CPU and calls run().
  virtual std::map<std::string, HostTensor> run_images(const std::string& input,
                                                       const std::vector<const east::Image*>& images, int height,
                                                       int width, int slot);
  // EAST: run_images, then the decode up to the candidate quads (decode_quads at `threshold`): per image its
  // score map [1, h/4, w/4, 1] (re-scoring reads it) and its candidates in row order. A runner that
  // decodes_on_device() does it there and copies back only the score map and the candidates; this version
  // fetches both maps and decodes on the CPU. Given `nms_threshold`, a runner that decodes on the device runs
  // locality-aware NMS there too (ExecutionContext::decode_candidates) and returns what it keeps, saying
  // so in `merged`; this version ignores it.
  struct Candidates {
    HostTensor score;
    std::vector<east::Quad> quads;
    bool merged = false;  // the quads are what LANMS kept, by decreasing score
  };
  virtual bool decodes_on_device() const { return false; }
  virtual std::vector<Candidates> run_to_candidates(const std::vector<const east::Image*>& images, int height,
                                                    int width, int slot, float threshold,
                                                    std::optional<float> nms_threshold = std::nullopt);
  // Milliseconds of the network alone on one run with an input of this shape (the device's time, by
  // events, where there is a device): the median of `iterations` after a warm-up run.
  virtual double time_network(const std::string& input, const Shape& shape, int iterations);
};

std::unique_ptr<Runner> make_cpu_runner(Network network, CpuOptions options = {});

struct GpuRunnerOptions {
  BuildOptions build;       // precision, workspace, device; max_batch is the most images one run may hold
  bool cuda_graph = true;   // capture each engine's run once per batch size and replay it
  int max_engines = 16;     // sizes kept; the least recently used engine is dropped beyond this
  bool verbose = false;     // a line on stderr whenever an engine is built
  int slots = 1;            // execution contexts per engine, one per slot (see Runner::slots)
};
// Throws an Error when there is no usable GPU or eastrt was built without CUDA.
std::unique_ptr<Runner> make_gpu_runner(Network network, GpuRunnerOptions options = {});

// Where the tools keep tactic timings between runs, so that an engine for a size met before builds without
// timing: $EASTRT_TIMING_CACHE (set but empty: none), else $XDG_CACHE_HOME/eastrt/timing_cache.vN.json, else
// $HOME/.cache/eastrt/timing_cache.vN.json (N: the cache's format version, so that a newer eastrt starts its
// own file rather than refuse the old one); "" when none of these is set.
std::string default_timing_cache();

// "gpu", "cpu" or "auto" (the GPU when query_gpu() finds one, else the CPU). The precision applies to the
// GPU, whose engines use default_timing_cache(); the CPU runs fp32 and refuses another precision with an
// Error. INT8/FP8 need `calibration_cache` (a file of eastrt calibrate), read and checked against the
// network here. The GPU is CUDA device `gpu_device`.
std::unique_ptr<Runner> make_runner(Network network, const std::string& device, Precision precision,
                                    CpuOptions cpu = {}, int max_batch = 1, int gpu_slots = 1, bool verbose = false,
                                    const std::string& calibration_cache = "", int gpu_device = 0);

}  // namespace eastrt
