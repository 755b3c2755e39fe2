// Post-training quantisation of a network on the CPU: which tensors a quantised engine stores in INT8/FP8,
// activation statistics over a calibration set of images, the calibration cache file, the fake-quantised
// CPU reference (the oracle of the GPU INT8/FP8 kernels) and per-layer sensitivity. docs/QUANTIZATION.md.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "eastrt/cpu_engine.h"
#include "eastrt/network.h"
#include "eastrt/quant.h"

namespace eastrt::quant {

// ---- What is quantised ----

// The network as the GPU builder and the fast CPU engine run it: a copy with the default graph passes
// (batch norms folded, activations and residual adds fused). Quantisation is defined on this network:
// weights after folding, tensor names after fusion.
Network prepare_network(const Network& network);

// A tensor stored quantised: the data input (the first) of one or more convolutions of the prepared
// network. Deconvolutions, residual inputs read only by fused epilogues and the network outputs stay in
// high precision.
struct QuantizedTensor {
  std::string name;
  int id = -1;                         // in the prepared network
  std::vector<std::string> consumers;  // the convolutions reading it as their input, in network order
};
std::vector<QuantizedTensor> quantized_tensors(const Network& prepared);

// A hash of the network as given (before the passes): every layer's name, kind, parameters and weight
// values, and the tensor names that connect them; not the input size, so the same model calibrated at one
// size may be built at another. 16 hex digits.
std::string model_fingerprint(const Network& network);

// ---- Statistics ----

// Runs the prepared network on the CPU engine and keeps a histogram of magnitudes (quant.h) for every
// quantized tensor.
class ActivationStatistics {
 public:
  explicit ActivationStatistics(const Network& network, int threads = 0, int bins = Histogram::kDefaultBins);
  // One batch for the network's single input (NHWC as the network takes it).
  void add_batch(const HostTensor& input);
  const std::vector<QuantizedTensor>& tensors() const { return tensors_; }
  const Histogram& histogram(const std::string& tensor) const;
  int64_t images() const { return images_; }

 private:
  CpuEngine engine_;
  std::vector<QuantizedTensor> tensors_;
  std::map<int, Histogram> histograms_;  // by tensor id
  int64_t images_ = 0;
};

// ---- The calibration set ----

// ICDAR 2015 img_251 .. img_500 are the held-out test split (shared/data/README.md): never for tuning.
bool is_held_out_image(const std::string& path);  // by the file's name: img_N.* with 251 <= N <= 500

enum class Preprocessing {
  kEast,   // east::preprocess: the EAST resize rule (or a fixed size), RGB 0..255
  kDbNet,  // db::preprocess: PaddleOCR's DetResizeForTest and normalisation, BGR
};

struct CalibrationSetOptions {
  std::string directory;
  int max_images = 0;           // the first N in natural name order; 0: all
  bool allow_held_out = false;  // take img_251 .. img_500 all the same
  Preprocessing preprocessing = Preprocessing::kEast;
  std::optional<std::array<int, 2>> size;  // kEast only: every image resized to height × width instead
};

// The images (.jpg, .jpeg, .png, .bmp) of a directory in natural order (img_2 before img_10), the first
// max_images of them. Refuses an empty selection and, unless allowed, a held-out image (naming it).
class CalibrationSet {
 public:
  explicit CalibrationSet(CalibrationSetOptions options);
  const std::vector<std::string>& files() const { return files_; }

  // Decodes and preprocesses the images in order and calls `use` with batches of at most `batch` of them:
  // consecutive images with the same network input size share a batch, a change of size starts a new one.
  // `done` counts the images given so far. The same set always gives the same batches.
  void for_each_batch(int batch, const std::function<void(const HostTensor& batch, size_t done)>& use) const;

 private:
  HostTensor load(const std::string& file) const;
  CalibrationSetOptions options_;
  std::vector<std::string> files_;
};

// ---- The calibration cache ----

inline constexpr int kCacheFormatVersion = 1;

struct TensorRange {
  std::string name;  // a tensor of the prepared network
  float amax = 0;    // the clipping magnitude
  float scale = 0;   // scale_for_amax(amax, precision)
};

struct CalibrationCache {
  int format_version = kCacheFormatVersion;
  std::string eastrt_version;      // of the writer (informational)
  std::string model_fingerprint;   // model_fingerprint() of the network calibrated
  QuantType precision = QuantType::kInt8;
  Calibrator calibrator = Calibrator::kEntropy;
  double percentile = 0;           // kPercentile's share, else 0
  int64_t images = 0;
  std::vector<TensorRange> tensors;
  std::vector<std::string> keep_high_precision;  // convolutions (by layer name) left in FP16 on the GPU

  const TensorRange* find(const std::string& tensor) const;
};

// The ranges of every quantized tensor from the statistics.
CalibrationCache make_cache(const Network& network, const ActivationStatistics& statistics, QuantType precision,
                            Calibrator calibrator, const CalibratorOptions& options = {});

// Text, one item a line (docs/QUANTIZATION.md): a header (format, eastrt, model, calibrator, precision,
// images), then "tensor NAME AMAX SCALE" lines, "keep LAYER" lines and "end". Numbers have 9 significant
// digits, which float values survive exactly.
std::string to_text(const CalibrationCache& cache);
void write_cache(const std::string& path, const CalibrationCache& cache);
// Refuses (an Error naming the file, the line and what is wrong) another format version, a truncated or
// corrupt file, and a scale that is not amax / 127 (or / 448).
CalibrationCache parse_cache(const std::string& text, const std::string& path);
CalibrationCache read_cache(const std::string& path);

// Refuses a cache for another model (fingerprint), another precision, or one that does not cover every
// quantized tensor of the network (a cache from an eastrt whose passes named tensors otherwise); `path`
// names the file in the message.
void check_cache_matches(const CalibrationCache& cache, const std::string& path, const Network& network,
                         QuantType precision);

// ---- The fake-quantised reference ----

struct FakeQuantOptions {
  int threads = 0;
  // Convolutions (prepared-network layer names) left in FP32. Their input tensor is then not quantised,
  // which leaves every other convolution reading that tensor in FP32 too: a quantised convolution needs a
  // quantised input (see FakeQuantEngine::high_precision_layers for the closed set).
  std::set<std::string> high_precision_layers;
  // When set: exactly these convolutions are quantised (weights and their input tensor), whatever reads
  // that tensor besides; the measurement mode of the sensitivity analysis.
  std::optional<std::set<std::string>> only_layers;
};

// Runs the prepared network on the CPU with every quantised convolution's weights fake-quantised per output
// channel and every quantized tensor fake-quantised with its cache scale as soon as it is computed (so all
// its readers, a fused residual included, see the stored values). Arithmetic stays FP32 (double in naive
// kernels): an INT8 kernel that accumulates q_x·q_w exactly and rescales by s_x·s_w[k] in FP32 agrees to
// rounding.
class FakeQuantEngine {
 public:
  FakeQuantEngine(const Network& network, const CalibrationCache& cache, FakeQuantOptions options = {});
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs);

  const Network& network() const { return engine_.network(); }  // prepared, weights fake-quantised
  const std::vector<std::string>& quantized_layers() const { return quantized_layers_; }
  const std::set<std::string>& high_precision_layers() const { return high_precision_; }

 private:
  Network quantize(const Network& network, const CalibrationCache& cache, const FakeQuantOptions& options);
  QuantType precision_;
  std::vector<float> scales_;  // by tensor id; 0 where not quantised
  std::vector<std::string> quantized_layers_;
  std::set<std::string> high_precision_;
  CpuEngine engine_;
};

// ---- Sensitivity ----

struct LayerSensitivity {
  std::string layer;   // a convolution of the prepared network
  std::string tensor;  // its input tensor
  double error = 0;    // the largest relative error over the outputs
};

struct SensitivityReport {
  double threshold = 0;
  std::vector<LayerSensitivity> layers;      // in network order
  std::vector<std::string> keep_high_precision;  // error above the threshold, then closed (FakeQuantOptions)
  double all_quantized_error = 0;  // every convolution quantised
  double mixed_error = 0;          // keep_high_precision left in FP32, the rest quantised
  std::map<std::string, double> all_quantized_by_output, mixed_by_output;
};

// Relative error of an output: ‖y − y_fp32‖₂ / ‖y_fp32‖₂ over all the inputs together. For each quantised
// convolution alone (FakeQuantOptions::only_layers), then for all, then for all but the layers whose own
// error exceeds `threshold`. `progress(done, total)` is called after each layer.
SensitivityReport measure_sensitivity(const Network& network, const CalibrationCache& cache,
                                      const std::vector<HostTensor>& inputs, double threshold, int threads = 0,
                                      const std::function<void(size_t, size_t)>& progress = {});

}  // namespace eastrt::quant
