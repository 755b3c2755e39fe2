// The EAST detector: image in, text boxes out — the resize rule, the network on a Runner (the CPU engine or
// GPU engines per input size), and the post-processing of detector_ops.h, composed once so the tool, the
// server and the tests share it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/detector_ops.h"
#include "eastrt/runner.h"

namespace eastrt::east {

struct Detection {
  std::vector<Quad> boxes;   // integral vertices in original image pixels, reference vertex order
  ResizePlan plan;           // the network input size used and the ratios
  double preprocess_ms = 0;  // resize and conversion to the network's input
  double network_ms = 0;     // time in the engine (for a batch: the batch's time shared out per image)
  double post_ms = 0;        // time in decode + NMS + re-scoring
};

// Throws an Error unless `outputs` holds EAST's score and geometry maps for a batch of `count` images of
// height × width: a network imported at one fixed size gives maps of the wrong size at another, and boxes
// decoded from them would be wrong.
void check_output_maps(const std::map<std::string, HostTensor>& outputs, int64_t count, int height, int width);

class Detector {
 public:
  // `network` is EAST (outputs kScoreOutput and kGeometryOutput); it runs at whatever size each image needs.
  Detector(Network network, CpuOptions cpu = {}, DetectOptions options = {});
  explicit Detector(std::unique_ptr<Runner> runner, DetectOptions options = {});

  Detection detect(const Image& image);
  // The images of one size run through the network together, in batches of at most `max_batch`; results
  // come back in the order of `images` and equal detect() on each.
  std::vector<Detection> detect_batch(const std::vector<Image>& images, int max_batch);

  const DetectOptions& options() const { return options_; }
  Runner& runner() { return *runner_; }

 private:
  std::unique_ptr<Runner> runner_;
  DetectOptions options_;
};

}  // namespace eastrt::east
