// The calibration flags `eastrt calibrate` and `eastrt build --precision int8|fp8` share (--calib DIR and
// friends), and the run they describe: the calibration set through the model, ranges chosen, progress shown.
#pragma once
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "args.h"
#include "eastrt/calibration.h"
#include "model_loader.h"

namespace eastrt::tool {

inline constexpr const char* kCalibrationFlagsHelp =
    "  --calib DIR           calibration images, run through the detector's preprocessing (EAST's resize\n"
    "                        rule; PaddleOCR's for an .onnx DBNet). ICDAR 2015 img_251..img_500 are the\n"
    "                        held-out split and refused: use img_1..img_250\n"
    "  --calibrator C        entropy (KL divergence, default), minmax, percentile or mse\n"
    "  --percentile P        the percentile calibrator's share in % (default 99.99)\n"
    "  --images N            the first N images of DIR in natural order (default: all)\n"
    "  --batch B             images per batch (default 1); images of another size start a new batch\n"
    "  --size HxW            EAST: resize every image to H×W (multiples of 32) instead of the resize rule\n"
    "  --allow-held-out      take img_251..img_500 all the same (never for figures you report)\n"
    "  --threads N           CPU threads (default: all)\n";

inline const std::set<std::string> kCalibrationValuedFlags = {"--calib",  "--calibrator", "--percentile", "--images",
                                                              "--batch",  "--size",       "--threads"};
inline const std::set<std::string> kCalibrationSwitches = {"--allow-held-out"};

struct CalibrationRow {
  std::string tensor, first_reader;
  int readers = 0;
  float max_abs = 0, amax = 0, scale = 0;
};

struct CalibrationOutcome {
  quant::CalibrationCache cache;
  std::vector<CalibrationRow> rows;
  std::vector<HostTensor> first_batches;  // the batches holding the first `keep_images` images
  size_t images = 0;
  double seconds = 0;
};

// Runs the calibration the flags describe on the model, with a progress line on stderr; keeps the first
// batches (at least keep_images images) for a sensitivity measurement.
CalibrationOutcome calibrate_from_flags(const Args& args, const LoadedModel& model, quant::QuantType precision,
                                        size_t keep_images = 0);

// The table of ranges: tensor, its readers, the largest magnitude seen, the chosen amax and scale.
void print_ranges(std::ostream& out, const CalibrationOutcome& outcome);

}  // namespace eastrt::tool
