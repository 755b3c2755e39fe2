// The EAST detector: image in, text boxes out — the resize rule, the network on an engine, and the
// post-processing of detector_ops.h, composed once so the tool, the server and the tests share it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/detector_ops.h"

namespace eastrt::east {

struct Detection {
  std::vector<Quad> boxes;   // integral vertices in original image pixels, reference vertex order
  ResizePlan plan;           // the network input size used and the ratios
  double network_ms = 0;     // time in the engine
  double post_ms = 0;        // time in decode + NMS + re-scoring
};

class Detector {
 public:
  // `network` is EAST (outputs kScoreOutput and kGeometryOutput); it runs at whatever size each image needs.
  Detector(Network network, CpuOptions cpu = {}, DetectOptions options = {});

  Detection detect(const Image& image);
  const DetectOptions& options() const { return options_; }
  int threads() const { return engine_.threads(); }

 private:
  CpuEngine engine_;
  DetectOptions options_;
};

}  // namespace eastrt::east
