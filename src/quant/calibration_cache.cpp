// The calibration cache: a versioned text file of per-tensor ranges, refused when it belongs to another
// model, format or precision, or does not parse.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "eastrt/calibration.h"
#include "eastrt/error.h"

namespace eastrt::quant {
namespace {

constexpr const char* kMagic = "# eastrt calibration cache";

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

// Splits at whitespace.
std::vector<std::string> fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

class CacheParser {
 public:
  CacheParser(const std::string& text, const std::string& path) : in_(text), path_(path) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw_error("calibration cache ", path_, ", line ", line_number_, ": ", what);
  }

  // The next line; false at the end of the text.
  bool next(std::string& line) {
    if (!std::getline(in_, line)) return false;
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }

  // The next line, which must be "key VALUE..."; returns the value part.
  std::string expect(const std::string& key) {
    std::string line;
    if (!next(line)) fail("the file ends where '" + key + "' was expected (truncated?)");
    if (line.compare(0, key.size() + 1, key + " ") != 0) fail("expected '" + key + " ...', found '" + line + "'");
    return line.substr(key.size() + 1);
  }

  double parse_number(const std::string& text, const std::string& what) const {
    try {
      size_t used = 0;
      const double v = std::stod(text, &used);
      if (used == text.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    fail(what + " '" + text + "' is not a finite number");
  }

  int64_t parse_count(const std::string& text, const std::string& what) const {
    const double v = parse_number(text, what);
    if (v < 0 || v != std::floor(v) || v > 1e15) fail(what + " '" + text + "' is not a count");
    return static_cast<int64_t>(v);
  }

 private:
  std::istringstream in_;
  std::string path_;
  int line_number_ = 0;
};

}  // namespace

std::string to_text(const CalibrationCache& cache) {
  std::ostringstream out;
  out << kMagic << ": activation ranges for INT8/FP8 (docs/QUANTIZATION.md)\n";
  out << "format " << cache.format_version << "\n";
  out << "eastrt " << cache.eastrt_version << "\n";
  out << "model " << cache.model_fingerprint << "\n";
  out << "calibrator " << to_string(cache.calibrator);
  if (cache.calibrator == Calibrator::kPercentile) out << " " << number(cache.percentile);
  out << "\n";
  out << "precision " << to_string(cache.precision) << "\n";
  out << "images " << cache.images << "\n";
  out << "tensors " << cache.tensors.size() << "\n";
  for (const TensorRange& t : cache.tensors) {
    EASTRT_CHECK(!t.name.empty() && t.name.find_first_of("\r\n") == std::string::npos,
                 "calibration cache: tensor name '", t.name, "' cannot be written on one line");
    out << "tensor " << t.name << " " << number(t.amax) << " " << number(t.scale) << "\n";
  }
  out << "keep " << cache.keep_high_precision.size() << "\n";
  for (const std::string& layer : cache.keep_high_precision) {
    EASTRT_CHECK(!layer.empty() && layer.find_first_of("\r\n") == std::string::npos,
                 "calibration cache: layer name '", layer, "' cannot be written on one line");
    out << "layer " << layer << "\n";
  }
  out << "end\n";
  return out.str();
}

void write_cache(const std::string& path, const CalibrationCache& cache) {
  const std::string text = to_text(cache);
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  EASTRT_CHECK(out, "calibration cache ", path, ": cannot write the file");
}

CalibrationCache parse_cache(const std::string& text, const std::string& path) {
  CacheParser p(text, path);
  CalibrationCache cache;
  std::string line;
  if (!p.next(line) || line.compare(0, std::strlen(kMagic), kMagic) != 0)
    p.fail(std::string("not an eastrt calibration cache (the first line is not '") + kMagic + "...')");

  const std::string format = p.expect("format");
  if (format != std::to_string(kCacheFormatVersion))
    p.fail("format version " + format + ", but this eastrt reads version " + std::to_string(kCacheFormatVersion) +
           ": calibrate again");
  cache.eastrt_version = p.expect("eastrt");
  cache.model_fingerprint = p.expect("model");
  if (cache.model_fingerprint.size() != 16 ||
      cache.model_fingerprint.find_first_not_of("0123456789abcdef") != std::string::npos)
    p.fail("model fingerprint '" + cache.model_fingerprint + "' is not 16 hex digits");
  const std::vector<std::string> calibrator = fields(p.expect("calibrator"));
  try {
    if (calibrator.empty()) throw Error("no calibrator named");
    cache.calibrator = parse_calibrator(calibrator[0]);
    cache.precision = parse_quant_type(p.expect("precision"));
  } catch (const Error& e) {
    p.fail(e.what());
  }
  if (cache.calibrator == Calibrator::kPercentile) {
    if (calibrator.size() != 2) p.fail("the percentile calibrator needs its share: 'calibrator percentile 99.99'");
    cache.percentile = p.parse_number(calibrator[1], "percentile");
  } else if (calibrator.size() != 1) {
    p.fail("unexpected text after the calibrator's name");
  }
  cache.images = p.parse_count(p.expect("images"), "image count");
  const int64_t tensors = p.parse_count(p.expect("tensors"), "tensor count");
  for (int64_t i = 0; i < tensors; ++i) {
    // "tensor NAME AMAX SCALE": the two numbers are the last fields, so a name may hold spaces.
    const std::string rest = p.expect("tensor");
    const size_t s2 = rest.find_last_of(' ');
    const size_t s1 = s2 == std::string::npos || s2 == 0 ? std::string::npos : rest.find_last_of(' ', s2 - 1);
    if (s1 == std::string::npos || s1 == 0) p.fail("expected 'tensor NAME AMAX SCALE'");
    TensorRange r;
    r.name = rest.substr(0, s1);
    r.amax = static_cast<float>(p.parse_number(rest.substr(s1 + 1, s2 - s1 - 1), "amax"));
    r.scale = static_cast<float>(p.parse_number(rest.substr(s2 + 1), "scale"));
    if (r.amax < 0) p.fail("amax of '" + r.name + "' is negative");
    const float expected = scale_for_amax(r.amax, cache.precision);
    if (!(std::fabs(r.scale - expected) <= 1e-6f * expected))
      p.fail("scale " + number(r.scale) + " of '" + r.name + "' is not amax / " +
             number(max_representable(cache.precision)) + " = " + number(expected) + " (corrupt or edited)");
    if (cache.find(r.name)) p.fail("tensor '" + r.name + "' appears twice");
    cache.tensors.push_back(r);
  }
  const int64_t keep = p.parse_count(p.expect("keep"), "count of kept layers");
  for (int64_t i = 0; i < keep; ++i) cache.keep_high_precision.push_back(p.expect("layer"));
  if (!p.next(line) || line != "end") p.fail("expected 'end' (the file is truncated or has extra lines)");
  while (p.next(line))
    if (!line.empty()) p.fail("text after 'end'");
  return cache;
}

CalibrationCache read_cache(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in, "calibration cache ", path, ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_cache(text.str(), path);
}

void check_cache_matches(const CalibrationCache& cache, const std::string& path, const Network& network,
                         QuantType precision) {
  const std::string fingerprint = model_fingerprint(network);
  EASTRT_CHECK(cache.model_fingerprint == fingerprint, "calibration cache ", path, " was made for model ",
               cache.model_fingerprint, ", but this model is ", fingerprint,
               " (another network or other weights): calibrate this model");
  EASTRT_CHECK(cache.precision == precision, "calibration cache ", path, " holds ", to_string(cache.precision),
               " ranges, but ", to_string(precision), " was asked for: calibrate with --precision ",
               to_string(precision));
  const Network prepared = prepare_network(network);
  for (const QuantizedTensor& t : quantized_tensors(prepared))
    EASTRT_CHECK(cache.find(t.name), "calibration cache ", path, " has no range for tensor '", t.name,
                 "' (the input of ", t.consumers[0], "): it was written by eastrt ", cache.eastrt_version,
                 " whose graph passes named tensors otherwise; calibrate again");
  for (const std::string& layer : cache.keep_high_precision) {
    bool found = false;
    for (const Layer& l : prepared.layers()) found = found || (l.name == layer && l.kind() == LayerKind::kConvolution);
    EASTRT_CHECK(found, "calibration cache ", path, " keeps layer '", layer,
                 "' in high precision, but the network has no such convolution");
  }
}

}  // namespace eastrt::quant
