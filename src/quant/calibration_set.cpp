// The calibration set: a folder of images in natural order, kept off the held-out ICDAR 2015 split, run
// through the detector's own preprocessing and batched.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "eastrt/calibration.h"
#include "eastrt/db_detector.h"
#include "eastrt/detector_ops.h"
#include "eastrt/error.h"

namespace fs = std::filesystem;

namespace eastrt::quant {
namespace {

// The number in img_N.ext, or -1.
long icdar_number(const std::string& path) {
  const std::string stem = fs::path(path).stem().string();
  if (stem.size() < 5 || stem.compare(0, 4, "img_") != 0) return -1;
  long n = 0;
  for (size_t i = 4; i < stem.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(stem[i])) || n > 100000000) return -1;
    n = n * 10 + (stem[i] - '0');
  }
  return n;
}

}  // namespace

bool is_held_out_image(const std::string& path) {
  const long n = icdar_number(path);
  return n >= 251 && n <= 500;
}

CalibrationSet::CalibrationSet(CalibrationSetOptions options) : options_(std::move(options)) {
  const std::string& dir = options_.directory;
  EASTRT_CHECK(fs::is_directory(dir), "calibration set: ", dir, " is not a directory");
  EASTRT_CHECK(options_.max_images >= 0, "calibration set: --images must be at least 1 (or 0 for all)");
  EASTRT_CHECK(!options_.size || options_.preprocessing == Preprocessing::kEast,
               "calibration set: a fixed --size applies to EAST's preprocessing; DBNet's uses its own resize rule");
  if (options_.size)
    EASTRT_CHECK((*options_.size)[0] >= 32 && (*options_.size)[1] >= 32 && (*options_.size)[0] % 32 == 0 &&
                     (*options_.size)[1] % 32 == 0,
                 "calibration set: --size ", (*options_.size)[0], "x", (*options_.size)[1],
                 " must be multiples of 32, at least 32");
  std::vector<std::string> found = east::image_files_in(dir);
  EASTRT_CHECK(!found.empty(), "calibration set: no image (.jpg, .jpeg, .png, .bmp) in ", dir);
  if (options_.max_images > 0 && found.size() > static_cast<size_t>(options_.max_images))
    found.resize(static_cast<size_t>(options_.max_images));
  for (const std::string& p : found) {
    EASTRT_CHECK(options_.allow_held_out || !is_held_out_image(p), "calibration set: ", p,
                 " is in the held-out ICDAR 2015 split (img_251 to img_500 are only for reported accuracy; "
                 "calibrate on img_1 to img_250, e.g. --images 250 on the test folder, or override with "
                 "--allow-held-out)");
    files_.push_back(p);
  }
}

HostTensor CalibrationSet::load(const std::string& file) const {
  const east::Image image = east::decode_image(file);
  east::ResizePlan plan;
  if (options_.preprocessing == Preprocessing::kDbNet) return db::preprocess(image, &plan);
  if (options_.size) return east::resize_bilinear(image, (*options_.size)[0], (*options_.size)[1]);
  return east::preprocess(image, &plan);
}

void CalibrationSet::for_each_batch(int batch, const std::function<void(const HostTensor&, size_t)>& use) const {
  EASTRT_CHECK(batch >= 1, "calibration set: the batch must be at least 1, got ", batch);
  HostTensor pending;
  size_t done = 0;
  auto flush = [&]() {
    if (pending.empty()) return;
    done += static_cast<size_t>(pending.shape[0]);
    use(pending, done);
    pending = HostTensor();
  };
  for (const std::string& file : files_) {
    HostTensor image = load(file);  // [1, H, W, 3]
    if (!pending.empty() && (pending.shape[0] == batch || !std::equal(pending.shape.begin() + 1, pending.shape.end(),
                                                                       image.shape.begin() + 1, image.shape.end())))
      flush();
    if (pending.empty()) {
      pending = std::move(image);
    } else {
      pending.shape[0] += 1;
      pending.data.insert(pending.data.end(), image.data.begin(), image.data.end());
    }
  }
  flush();
}

}  // namespace eastrt::quant
