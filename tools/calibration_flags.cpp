// The calibration run shared by `eastrt calibrate` and `eastrt build --precision int8|fp8`.
#include "calibration_flags.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iomanip>

#include "eastrt/error.h"

namespace eastrt::tool {
CalibrationOutcome calibrate_from_flags(const Args& args, const LoadedModel& model, quant::QuantType precision,
                                        size_t keep_images) {
  EASTRT_CHECK(args.has("--calib"), "no calibration images: give --calib DIR");
  quant::CalibrationSetOptions set_options;
  set_options.directory = args.get("--calib");
  set_options.max_images = args.get_int("--images", 0);
  set_options.allow_held_out = args.has("--allow-held-out");
  // An .onnx model is DBNet (the only ONNX detector eastrt runs), fed as its own detector preprocesses.
  const bool dbnet = !args.has("--builtin") && ends_with(args.get("--model"), ".onnx");
  set_options.preprocessing = dbnet ? quant::Preprocessing::kDbNet : quant::Preprocessing::kEast;
  if (args.has("--size")) {
    const Shape hw = parse_shape(args.get("--size"));
    EASTRT_CHECK(hw.size() == 2, "--size expects HxW, got '", args.get("--size"), "'");
    set_options.size = std::array<int, 2>{static_cast<int>(hw[0]), static_cast<int>(hw[1])};
  }
  const quant::Calibrator calibrator = quant::parse_calibrator(args.get("--calibrator", "entropy"));
  quant::CalibratorOptions calibrator_options;
  calibrator_options.percentile = args.get_double("--percentile", calibrator_options.percentile);
  const int batch = args.get_int("--batch", 1);
  const int threads = args.get_int("--threads", 0);

  const quant::CalibrationSet set(set_options);
  quant::ActivationStatistics statistics(model.network, threads);
  CalibrationOutcome outcome;
  const size_t total = set.files().size();
  const bool tty = isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  std::fprintf(stderr, "calibrating %s on %zu images of %s (%s preprocessing), batch %d, %zu tensors\n",
               quant::to_string(precision), total, set_options.directory.c_str(), dbnet ? "DBNet" : "EAST", batch,
               statistics.tensors().size());
  set.for_each_batch(batch, [&](const HostTensor& input, size_t done) {
    statistics.add_batch(input);
    if (outcome.images < keep_images) outcome.first_batches.push_back(input);
    outcome.images = done;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%s  %zu/%zu images  %s  %.2f images/s%s", tty ? "\r" : "", done, total,
                 to_string(input.shape).c_str(), done / std::max(s, 1e-9), tty ? "" : "\n");
    std::fflush(stderr);
  });
  if (tty) std::fprintf(stderr, "\n");
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  outcome.cache = quant::make_cache(model.network, statistics, precision, calibrator, calibrator_options);
  for (const quant::QuantizedTensor& t : statistics.tensors()) {
    const quant::TensorRange* r = outcome.cache.find(t.name);
    outcome.rows.push_back({t.name, t.consumers[0], static_cast<int>(t.consumers.size()),
                            statistics.histogram(t.name).max_abs(), r->amax, r->scale});
  }
  return outcome;
}

void print_ranges(std::ostream& out, const CalibrationOutcome& outcome) {
  size_t width = 6;
  for (const CalibrationRow& r : outcome.rows) width = std::max(width, r.tensor.size());
  out << std::left << std::setw(static_cast<int>(width)) << "tensor" << "  " << std::setw(44) << "read by"
      << std::right << std::setw(12) << "max |x|" << std::setw(12) << "amax" << std::setw(8) << "amax/max"
      << std::setw(14) << "scale" << "\n";
  for (const CalibrationRow& r : outcome.rows) {
    std::string readers = r.first_reader + (r.readers > 1 ? " +" + std::to_string(r.readers - 1) : "");
    char ratio[16];
    std::snprintf(ratio, sizeof ratio, "%.3f", r.max_abs > 0 ? r.amax / r.max_abs : 0.0);
    out << std::left << std::setw(static_cast<int>(width)) << r.tensor << "  " << std::setw(44) << readers
        << std::right << std::setw(12) << std::setprecision(5) << r.max_abs << std::setw(12) << r.amax
        << std::setw(8) << ratio << std::setw(14) << std::setprecision(6) << r.scale << "\n";
  }
}

}  // namespace eastrt::tool
