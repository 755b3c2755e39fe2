// The EAST detection pipeline that `eastrt detect` and `eastrt serve` share: images decoded on worker threads,
// grouped into batches of one network input size, run through the Runner with several batches in flight (one
// per slot: a GPU execution context and stream each), then decoded and NMS'd on worker threads. Each input
// has its own future, so a caller sees its results in its own order. east::Detector is the serial reference
// it must equal, box for box.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eastrt/detector.h"
#include "eastrt/runner.h"

namespace eastrt::east {

// Where JPEGs are decoded. kCpu: libjpeg on the decoding threads. kGpu: the GPU's hardware JPEG decoder
// (nvJPEG, eastrt/gpu_jpeg.h) on gpu_decode_threads threads taking batches from the queue the decoding threads
// take from; the CPU threads then decode only what it does not take (PNG, BMP, progressive, grey or CMYK
// JPEGs, truncated files, a batch nvJPEG failed), and an Error names why when the GPU decoder cannot be used.
// kAuto: kGpu when the runner resizes on a GPU that has the decoder, else kCpu. Either way each image's
// decoder depends on the image alone, so a run's boxes do not depend on timing.
// kHybrid: both take JPEGs from one queue, whichever is free (the most throughput when the CPU threads have
// time to spare; libjpeg's and nvJPEG's pixels differ a little, so which boxes an image gets may vary from
// run to run); the CPU alone where the GPU decoder is unavailable.
enum class Decoder { kAuto, kCpu, kGpu, kHybrid };
const char* to_string(Decoder decoder);         // "auto", "cpu", "gpu", "hybrid"
Decoder parse_decoder(const std::string& text);  // inverse; throws an Error naming the choices
// Where LANMS runs, as the tools' --lanms says it: "cpu" (false) or "gpu" (true); else an Error.
bool parse_lanms_on_device(const std::string& text);

struct PipelineOptions {
  int max_batch = 1;         // images per network run, at most
  int workers = 0;           // threads decoding images (and resizing them, on the CPU); 0: half the cores when
                             // the runner resizes on the device, else a quarter
  int post_workers = 0;      // threads decoding the output maps and running NMS; 0: as many as `workers`
  int in_flight = 0;         // batches on the network at once, at most the runner's slots; 0: all its slots
  // A batch that is not full leaves once its first image has waited this long, or at once when no image is
  // being decoded (nothing could join it soon) unless hold_partial_batches.
  double max_delay_ms = 10;
  // For a service, where the next request may arrive at any moment: a batch that is not full always waits out
  // max_delay_ms (until the pipeline stops).
  bool hold_partial_batches = false;
  // Inputs waiting for the network (queued for a decoding thread, being decoded, or batched) at most;
  // try_submit_bytes refuses more. 0: no bound.
  int max_waiting = 0;
  int max_side = 2400;       // the resize rule's longest side
  DetectOptions detect;
  bool keep_images = false;  // results carry the decoded image (to draw on; GPU-decoded ones are copied back)
  // On a runner that decodes_on_device(), the decode up to the candidate quads runs there and only the
  // score map and the candidates come back; off: both maps come back and the CPU threads decode them.
  bool device_decode = true;
  // With the device decode: locality-aware NMS on the GPU too (src/cuda/lanms.h), only the kept quads coming
  // back for the CPU threads to re-score. Off: LANMS on the CPU threads.
  bool device_lanms = false;
  Decoder decoder = Decoder::kAuto;
  int gpu_decode_threads = 2;  // with the GPU decoder: threads feeding it batches, each with its own nvJPEG state
};

// Where one image's time went, in ms. network_ms is its batch's time shared out over the batch; on a runner
// that resizes on the device, preprocessing is inside it and preprocess_ms is 0.
struct StageTimes {
  double decode_wait_ms = 0; // from submission to a decoding thread taking it
  double decode_ms = 0;      // reading and decoding the file (on the GPU: its batch's time shared out)
  double preprocess_ms = 0;  // the resize rule and resize on the CPU
  double batch_wait_ms = 0;  // from ready for the network to its batch starting
  double network_ms = 0;
  double post_wait_ms = 0;   // from the maps' arrival to a post-processing thread taking them
  double post_ms = 0;        // decode of the maps (unless on the device), NMS, re-scoring
};

// Why an input has no boxes: its bytes are not an image, its deadline passed before its batch ran, the
// network failed on its batch, or the post-processing failed.
enum class Failure { kNone, kInput, kDeadline, kNetwork, kPostprocess };

struct PipelineResult {
  std::string name;   // the path, or the name given with the bytes
  std::string error;  // why it failed ("" when detected): the file and what is wrong with it
  Failure failure = Failure::kNone;
  int width = 0, height = 0;
  Detection detection;  // boxes and plan (its per-stage times as Detector's)
  StageTimes times;
  int batch = 0;        // images in the network run that held this one
  Image image;          // with PipelineOptions::keep_images
  bool decoded_on_gpu = false;  // by the GPU's JPEG decoder, not libjpeg
  bool ok() const { return error.empty(); }
};

// Totals since the pipeline was made: images and sums of their StageTimes; network_busy_ms is the sum over
// batches of their run times (slots overlap, so it may exceed the wall time).
struct PipelineStats {
  int64_t images = 0, failed = 0, batches = 0;
  int64_t expired = 0;                // of the failed: past their deadline before their batch ran
  std::vector<int64_t> batch_sizes;   // [n]: network runs of n images (size max_batch + 1)
  StageTimes total;
  double network_busy_ms = 0;
  // Images decoded by each decoder (inputs given decoded, and those that failed, in neither), and the time it
  // took: summed over images on the CPU, over batches (the GPU threads' busy time) on the GPU.
  int64_t decoded_on_cpu = 0, decoded_on_gpu = 0;
  double cpu_decode_ms = 0, gpu_decode_busy_ms = 0;
  int64_t gpu_declined = 0;  // inputs the GPU decoding threads took and passed to the CPU decoder
};

class Pipeline {
 public:
  // The runner must outlive the pipeline and be used by nothing else meanwhile.
  Pipeline(Runner& runner, PipelineOptions options);
  ~Pipeline();  // finishes everything submitted, then stops its threads
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  std::future<PipelineResult> submit_file(const std::string& path);
  std::future<PipelineResult> submit_bytes(std::vector<uint8_t> bytes, const std::string& name);
  std::future<PipelineResult> submit_image(Image image, const std::string& name);
  // Several at once, queued together: no batch leaves part-filled for want of the later ones.
  std::vector<std::future<PipelineResult>> submit_files(const std::vector<std::string>& paths);
  std::vector<std::future<PipelineResult>> submit_images(std::vector<Image> images, const std::vector<std::string>& names);
  // For a service: nothing (the caller answers "busy") when max_waiting inputs already wait, else the bytes
  // are queued. One still waiting for the network at `deadline` is not run: it fails with Failure::kDeadline.
  std::optional<std::future<PipelineResult>> try_submit_bytes(std::vector<uint8_t> bytes, const std::string& name,
                                                             std::chrono::steady_clock::time_point deadline);

  int pending() const;  // submitted, not yet finished
  int waiting() const;  // submitted, not yet on the network (what max_waiting bounds)
  PipelineStats stats() const;
  const PipelineOptions& options() const;  // with the defaults filled in
  bool decodes_on_device() const;           // candidates decoded on the device (see device_decode)
  bool runs_lanms_on_device() const;        // and LANMS run there (see device_lanms)
  // "batch 16, 3 in flight, 4 decoding and 4 post-processing threads"
  std::string description() const;
  // Which decoders run: "nvJPEG 13.0.1, hardware backend on 2 threads, and libjpeg on 8 threads", or
  // "libjpeg on 8 threads (GPU decoder: why not)"
  std::string decoder_description() const;
  bool decodes_jpegs_on_gpu() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Runs `paths` through the pipeline keeping at most `window` of them submitted ahead of the oldest unfinished
// one, and calls `each` with every result in the order of `paths` (on the calling thread).
void detect_in_order(Pipeline& pipeline, const std::vector<std::string>& paths,
                     const std::function<void(PipelineResult&)>& each, int window = 0);

}  // namespace eastrt::east
