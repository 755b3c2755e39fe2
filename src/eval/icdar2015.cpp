// ICDAR 2015 Task 4.1 evaluation: the competition's file readers, its do-not-care rule, greedy matching
// and totals, reproduced rule for rule (rrc_evaluation_funcs.py and the task's script.py).
#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "eastrt/error.h"
#include "eastrt/eval.h"

namespace eastrt::eval {
namespace {

constexpr double kIouThreshold = 0.5;       // IOU_CONSTRAINT, strict
constexpr double kDontCareThreshold = 0.5;  // AREA_PRECISION_CONSTRAINT, strict

// Python's `\s` on ASCII (the script's patterns are str patterns); line breaks are already gone. Wider
// Unicode spaces (U+00A0 and friends) are not taken: no file of the competition has them.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || (c >= '\x1c' && c <= '\x1f'); }

std::string quoted_excerpt(std::string_view line) {
  constexpr size_t kMax = 80;
  std::string text(line.substr(0, kMax));
  return "'" + text + (line.size() > kMax ? "...'" : "'");
}

// Matches the script's `^\s*(-?[0-9]+)\s*,` x7 `\s*(-?[0-9]+)` and then either `\s*$` (detections) or
// `\s*,(.*)$` (ground truth, the rest is the transcription). Returns false when the line does not match.
bool match_coordinates(std::string_view line, bool with_transcription, std::array<std::string_view, 8>& numbers,
                       std::string_view& rest) {
  size_t pos = 0;
  auto skip_space = [&] {
    while (pos < line.size() && is_space(line[pos])) ++pos;
  };
  for (int i = 0; i < 8; ++i) {
    skip_space();
    const size_t start = pos;
    if (pos < line.size() && line[pos] == '-') ++pos;
    const size_t digits = pos;
    while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') ++pos;
    if (pos == digits) return false;
    numbers[i] = line.substr(start, pos - start);
    skip_space();
    if (i < 7 || with_transcription) {
      if (pos >= line.size() || line[pos] != ',') return false;
      ++pos;
    }
  }
  if (with_transcription) {
    rest = line.substr(pos);
    return true;
  }
  return pos == line.size();
}

// The script stores coordinates in an int32 array; anything wider would not survive there.
bool to_int32(std::string_view number, int32_t& value) {
  const bool negative = number.front() == '-';
  int64_t magnitude = 0;
  for (char c : number.substr(negative ? 1 : 0)) {
    magnitude = magnitude * 10 + (c - '0');
    if (magnitude > int64_t(INT32_MAX) + 1) return false;
  }
  const int64_t signed_value = negative ? -magnitude : magnitude;
  if (signed_value > INT32_MAX || signed_value < INT32_MIN) return false;
  value = int32_t(signed_value);
  return true;
}

// validate_clockwise_points: the sum of (x2 − x1)(y2 + y1) over the edges is positive for a
// counter-clockwise quad in image coordinates; 128-bit because int32 coordinates make 64-bit products.
bool is_clockwise(const Quad& q) {
  __int128 sum = 0;
  for (int i = 0; i < 4; ++i) {
    const int j = (i + 1) % 4;
    sum += __int128(int64_t(q[2 * j]) - q[2 * i]) * (int64_t(q[2 * j + 1]) + q[2 * i + 1]);
  }
  return sum <= 0;
}

// The script's transcription rule: `^\s*"(.*)"\s*$` is unquoted, then \\ → \ and \" → ".
std::string unquote(std::string_view text) {
  size_t first = 0, last = text.size();
  while (first < last && is_space(text[first])) ++first;
  while (last > first && is_space(text[last - 1])) --last;
  if (last - first < 2 || text[first] != '"' || text[last - 1] != '"') return std::string(text);
  auto replace_all = [](std::string s, std::string_view from, std::string_view to) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      if (s.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
      } else {
        out += s[i++];
      }
    }
    return out;
  };
  std::string inner(text.substr(first + 1, last - first - 2));
  return replace_all(replace_all(std::move(inner), "\\\\", "\\"), "\\\"", "\"");
}

// Calls `on_line(line, number)` for each non-empty line, with the script's splitting: a leading UTF-8 BOM
// is dropped, lines split at \n and every \r removed.
template <typename OnLine>
void for_each_line(std::string_view contents, OnLine on_line) {
  if (contents.substr(0, 3) == "\xEF\xBB\xBF") contents.remove_prefix(3);
  int number = 0;
  std::string line;
  while (true) {
    ++number;
    const size_t end = contents.find('\n');
    line.assign(contents.substr(0, end));
    line.erase(std::remove(line.begin(), line.end(), '\r'), line.end());
    if (!line.empty()) on_line(std::string_view(line), number);
    if (end == std::string_view::npos) break;
    contents.remove_prefix(end + 1);
  }
}

Quad parse_quad(std::string_view line, int number, const std::string& source, bool with_transcription,
                std::string_view& rest) {
  std::array<std::string_view, 8> numbers;
  if (!match_coordinates(line, with_transcription, numbers, rest))
    throw_error(source, ":", number, ": expected ",
                with_transcription ? "x1,y1,x2,y2,x3,y3,x4,y4,transcription" : "x1,y1,x2,y2,x3,y3,x4,y4",
                " (integers), got ", quoted_excerpt(line));
  Quad quad;
  for (int i = 0; i < 8; ++i)
    EASTRT_CHECK(to_int32(numbers[i], quad[i]), source, ":", number, ": coordinate ", numbers[i],
                 " does not fit in 32 bits");
  EASTRT_CHECK(is_clockwise(quad), source, ":", number,
               ": corners are not clockwise (image coordinates, y down), got ", quoted_excerpt(line));
  return quad;
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  EASTRT_CHECK(in, file.string(), ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  EASTRT_CHECK(!in.bad(), file.string(), ": read failed");
  return text.str();
}

// "gt_img_12.txt" with prefix "gt_img_" gives "12"; anything else gives "".
std::string sample_id(const std::string& name, std::string_view prefix) {
  constexpr std::string_view kSuffix = ".txt";
  if (name.size() <= prefix.size() + kSuffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return "";
  std::string id = name.substr(prefix.size(), name.size() - prefix.size() - kSuffix.size());
  return std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }) ? id : "";
}

bool numeric_less(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

double harmonic_mean(double precision, double recall) {
  return precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
}

}  // namespace

std::vector<GroundTruthRegion> parse_ground_truth(std::string_view contents, const std::string& source) {
  std::vector<GroundTruthRegion> regions;
  for_each_line(contents, [&](std::string_view line, int number) {
    std::string_view rest;
    GroundTruthRegion region;
    region.quad = parse_quad(line, number, source, true, rest);
    region.transcription = unquote(rest);
    region.dont_care = region.transcription == "###";
    regions.push_back(std::move(region));
  });
  return regions;
}

std::vector<Quad> parse_detections(std::string_view contents, const std::string& source) {
  std::vector<Quad> quads;
  for_each_line(contents, [&](std::string_view line, int number) {
    std::string_view rest;
    quads.push_back(parse_quad(line, number, source, false, rest));
  });
  return quads;
}

std::vector<GroundTruthRegion> read_ground_truth(const std::filesystem::path& file) {
  return parse_ground_truth(read_file(file), file.string());
}

std::vector<Quad> read_detections(const std::filesystem::path& file) {
  return parse_detections(read_file(file), file.string());
}

ImageResult evaluate_image(const std::vector<GroundTruthRegion>& gt, const std::vector<Quad>& det) {
  ImageResult result;
  result.gt_count = int(gt.size());
  result.det_count = int(det.size());

  std::vector<bool> det_dont_care(det.size(), false);
  for (size_t d = 0; d < det.size(); ++d) {
    const double area = quad_area(det[d]);
    for (const GroundTruthRegion& region : gt) {
      if (!region.dont_care) continue;
      const double covered = area == 0 ? 0 : intersection_area(region.quad, det[d]) / area;
      if (covered > kDontCareThreshold) {
        det_dont_care[d] = true;
        result.dont_care_dets.push_back(int(d));
        break;
      }
    }
  }

  // Greedy in file order, not by best IoU: the first free care detection above the threshold wins.
  std::vector<bool> det_taken(det.size(), false);
  for (size_t g = 0; g < gt.size(); ++g) {
    if (gt[g].dont_care) continue;
    for (size_t d = 0; d < det.size(); ++d) {
      if (det_taken[d] || det_dont_care[d]) continue;
      if (intersection_over_union(det[d], gt[g].quad) > kIouThreshold) {
        det_taken[d] = true;
        result.matches.push_back({int(g), int(d)});
        break;
      }
    }
  }

  result.matched = int(result.matches.size());
  result.care_gt = int(std::count_if(gt.begin(), gt.end(), [](const auto& r) { return !r.dont_care; }));
  result.care_det = result.det_count - int(result.dont_care_dets.size());
  if (result.care_gt == 0) {
    result.recall = 1;
    result.precision = result.care_det > 0 ? 0 : 1;
  } else {
    result.recall = double(result.matched) / result.care_gt;
    result.precision = result.care_det == 0 ? 0 : double(result.matched) / result.care_det;
  }
  result.hmean = harmonic_mean(result.precision, result.recall);
  return result;
}

Result summarize(std::vector<ImageResult> images) {
  Result result;
  for (const ImageResult& image : images) {
    result.matched += image.matched;
    result.care_gt += image.care_gt;
    result.care_det += image.care_det;
  }
  result.recall = result.care_gt == 0 ? 0 : double(result.matched) / double(result.care_gt);
  result.precision = result.care_det == 0 ? 0 : double(result.matched) / double(result.care_det);
  result.hmean = harmonic_mean(result.precision, result.recall);
  result.images = std::move(images);
  return result;
}

Result evaluate_directories(const std::filesystem::path& gt_dir, const std::filesystem::path& det_dir) {
  namespace fs = std::filesystem;
  EASTRT_CHECK(fs::is_directory(gt_dir), gt_dir.string(), ": not a directory (expected the gt_img_N.txt files)");
  EASTRT_CHECK(fs::is_directory(det_dir), det_dir.string(),
               ": not a directory (expected the res_img_N.txt files)");

  // Other files beside the ground truth are ignored, as the script's GT reader ignores them.
  std::map<std::string, fs::path, decltype(&numeric_less)> gt_files(&numeric_less);
  for (const fs::directory_entry& entry : fs::directory_iterator(gt_dir)) {
    const std::string id = sample_id(entry.path().filename().string(), "gt_img_");
    if (!id.empty() && entry.is_regular_file()) gt_files[id] = entry.path();
  }
  EASTRT_CHECK(!gt_files.empty(), gt_dir.string(), ": no gt_img_N.txt files");

  // The script rejects a submission with any entry that is not res_img_N.txt, or whose sample is not in
  // the ground truth.
  std::map<std::string, fs::path> det_files;
  for (const fs::directory_entry& entry : fs::directory_iterator(det_dir)) {
    const std::string name = entry.path().filename().string();
    const std::string id = sample_id(name, "res_img_");
    EASTRT_CHECK(!id.empty() && entry.is_regular_file(), entry.path().string(),
                 ": not a detection file (expected res_img_N.txt)");
    EASTRT_CHECK(gt_files.count(id), entry.path().string(), ": no ground truth gt_img_", id, ".txt in ",
                 gt_dir.string());
    det_files[id] = entry.path();
  }

  std::vector<ImageResult> images;
  for (const auto& [id, gt_path] : gt_files) {
    const auto det_path = det_files.find(id);
    ImageResult image = evaluate_image(read_ground_truth(gt_path),
                                       det_path == det_files.end() ? std::vector<Quad>{}
                                                                   : read_detections(det_path->second));
    image.id = id;
    images.push_back(std::move(image));
  }
  return summarize(std::move(images));
}

}  // namespace eastrt::eval
