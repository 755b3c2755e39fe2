// `eastrt calibrate`: activation ranges for INT8 or FP8 from a calibration set, written as a calibration
// cache, and on request the per-layer sensitivity that picks the convolutions to keep in FP16.
#include <cstdio>
#include <iomanip>
#include <iostream>

#include "args.h"
#include "calibration_flags.h"
#include "command.h"
#include "eastrt/error.h"
#include "model_loader.h"

namespace eastrt::tool {

std::vector<std::string> with_long_output_flag(std::vector<std::string> argv);  // cmd_build.cpp

namespace {

void print_sensitivity(std::ostream& out, const quant::SensitivityReport& report) {
  size_t width = 5;
  for (const quant::LayerSensitivity& l : report.layers) width = std::max(width, l.layer.size());
  out << "\nsensitivity: relative error of the outputs with one convolution quantised (threshold "
      << report.threshold << ")\n"
      << std::left << std::setw(static_cast<int>(width)) << "layer" << std::right << std::setw(14) << "error"
      << "\n";
  for (const quant::LayerSensitivity& l : report.layers) {
    char error[32];
    std::snprintf(error, sizeof error, "%.3e", l.error);
    out << std::left << std::setw(static_cast<int>(width)) << l.layer << std::right << std::setw(14) << error
        << (l.error > report.threshold ? "  keep" : "") << "\n";
  }
  auto by_output = [](const std::map<std::string, double>& errors) {
    std::string text;
    for (const auto& [name, e] : errors) {
      char value[32];
      std::snprintf(value, sizeof value, "%.3e", e);
      text += (text.empty() ? "" : ", ") + name + " " + value;
    }
    return text;
  };
  out << "every convolution quantised: " << by_output(report.all_quantized_by_output) << "\n";
  out << report.keep_high_precision.size() << " kept in high precision:";
  for (const std::string& l : report.keep_high_precision) out << " " << l;
  out << "\nthe rest quantised: " << by_output(report.mixed_by_output) << "\n";
}

int calibrate(const std::vector<std::string>& argv) {
  std::set<std::string> valued = {"--builtin", "--model", "--input", "--width-divisor", "--precision", "--output",
                                  "--sensitivity-images", "--sensitivity-threshold"};
  valued.insert(kCalibrationValuedFlags.begin(), kCalibrationValuedFlags.end());
  std::set<std::string> switches = {"--sensitivity"};
  switches.insert(kCalibrationSwitches.begin(), kCalibrationSwitches.end());
  Args args(std::string("usage: eastrt calibrate (--builtin east | --model FILE) --calib DIR --precision int8|fp8\n"
                        "                        [options] -o CACHE\n\n"
                        "Runs the calibration images through the network on the CPU (with the graph passes the\n"
                        "GPU builder runs), keeps a 2048-bin histogram of every convolution input and writes the\n"
                        "chosen ranges as a calibration cache for `eastrt build --precision int8|fp8\n"
                        "--calib-cache CACHE`. With --sensitivity it also quantises one convolution at a time\n"
                        "(the fake-quantised CPU reference) and keeps those that move the outputs most in FP16.\n\n") +
                kModelFlagsHelp +
                "  --precision P         int8 or fp8 (E4M3)\n" + kCalibrationFlagsHelp +
                "  --sensitivity         measure each convolution's effect on the outputs, pick layers to keep\n"
                "  --sensitivity-images N  images for it, the first of the set (default 2)\n"
                "  --sensitivity-threshold T  keep a layer whose error alone exceeds T (default 0.01)\n"
                "  -o, --output CACHE    the calibration cache to write\n",
            valued, switches);
  if (!args.parse(with_long_output_flag(argv))) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional()[0], "'");
  EASTRT_CHECK(args.has("--output"), "no cache file: give -o CACHE");
  EASTRT_CHECK(args.has("--precision"), "no precision: give --precision int8 or --precision fp8");
  const quant::QuantType precision = quant::parse_quant_type(args.get("--precision"));
  const bool sensitivity = args.has("--sensitivity");
  const int sensitivity_images = args.get_int("--sensitivity-images", 2);
  const double threshold = args.get_double("--sensitivity-threshold", 0.01);
  EASTRT_CHECK(sensitivity_images >= 1, "--sensitivity-images must be at least 1");

  const LoadedModel model = load_model(args);
  CalibrationOutcome outcome =
      calibrate_from_flags(args, model, precision, sensitivity ? static_cast<size_t>(sensitivity_images) : 0);
  std::cout << model.description << " (fingerprint " << outcome.cache.model_fingerprint << ")\n"
            << quant::to_string(precision) << " ranges by " << quant::to_string(outcome.cache.calibrator)
            << " from " << outcome.images << " images in " << std::fixed << std::setprecision(1)
            << outcome.seconds << " s\n";
  std::cout.unsetf(std::ios::fixed);
  print_ranges(std::cout, outcome);

  if (sensitivity) {
    const int threads = args.get_int("--threads", 0);
    std::vector<HostTensor> inputs;  // the batches kept, cut to the images asked for
    size_t images = 0;
    for (const HostTensor& b : outcome.first_batches) {
      if (images >= static_cast<size_t>(sensitivity_images)) break;
      inputs.push_back(b);
      images += static_cast<size_t>(b.shape[0]);
    }
    std::fprintf(stderr, "sensitivity on %zu images\n", images);
    const quant::SensitivityReport report = quant::measure_sensitivity(
        model.network, outcome.cache, inputs, threshold, threads, [](size_t done, size_t total) {
          std::fprintf(stderr, "\r  %zu/%zu layers", done, total);
          std::fflush(stderr);
        });
    std::fprintf(stderr, "\n");
    print_sensitivity(std::cout, report);
    outcome.cache.keep_high_precision = report.keep_high_precision;
  }

  const std::string path = args.get("--output");
  quant::write_cache(path, outcome.cache);
  std::cout << "wrote " << path << " (" << outcome.cache.tensors.size() << " tensors, "
            << outcome.cache.keep_high_precision.size() << " layers kept in high precision)\n";
  return 0;
}

RegisterCommand registration("calibrate", "INT8/FP8 activation ranges from calibration images (a calibration cache)",
                             calibrate);

}  // namespace
}  // namespace eastrt::tool
