// `eastrt eval`: scores a folder of res_img_N.txt detections against ICDAR 2015 ground truth with the
// competition's Task 4.1 protocol (see eastrt/eval.h).
#include <charconv>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/error.h"
#include "eastrt/eval.h"

namespace eastrt::tool {
namespace {

const char* const kUsage =
    "usage: eastrt eval --gt DIR --det DIR [--json] [--per-image]\n"
    "\n"
    "Scores detections with the ICDAR 2015 Task 4.1 (incidental scene text) protocol, exactly as the\n"
    "competition's script does: do-not-care (###) regions, greedy one-to-one matching at IoU > 0.5,\n"
    "precision and recall over the sums of all images, hmean = 2PR/(P+R).\n"
    "\n"
    "  --gt DIR      folder of gt_img_N.txt (x1,y1,...,x4,y4,transcription a line; BOM and CRLF accepted)\n"
    "  --det DIR     folder of res_img_N.txt (x1,y1,...,x4,y4 integers a line); a missing file means no\n"
    "                detections for that image, a file without ground truth is an error\n"
    "  --json        print one JSON object: precision, recall, hmean, matched, care_gt, care_det, images\n"
    "  --per-image   also list every image (with --json: key per_image)\n";

// The shortest text that reads back as the same double (what Python prints), so figures compare exactly.
std::string exact(double value) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  return std::string(buffer, end);
}

nlohmann::json image_json(const eval::ImageResult& image) {
  nlohmann::json matches = nlohmann::json::array();
  for (const eval::Match& m : image.matches) matches.push_back({m.gt, m.det});
  return {{"id", image.id},
          {"gt", image.gt_count},
          {"care_gt", image.care_gt},
          {"det", image.det_count},
          {"care_det", image.care_det},
          {"matched", image.matched},
          {"precision", image.precision},
          {"recall", image.recall},
          {"hmean", image.hmean},
          {"matches", matches},
          {"dont_care_det", image.dont_care_dets}};
}

int run_eval(const std::vector<std::string>& argv) {
  Args args(kUsage, {"--gt", "--det"}, {"--json", "--per-image"});
  if (!args.parse(argv)) return 0;
  EASTRT_CHECK(args.positional().empty(), "unexpected argument '", args.positional().front(),
               "' (--help lists the flags)");
  EASTRT_CHECK(args.has("--gt") && args.has("--det"), "both --gt DIR and --det DIR are needed (--help)");

  const eval::Result result = eval::evaluate_directories(args.get("--gt"), args.get("--det"));
  const bool per_image = args.has("--per-image");

  if (args.has("--json")) {
    nlohmann::json out = {{"precision", result.precision}, {"recall", result.recall},
                          {"hmean", result.hmean},         {"matched", result.matched},
                          {"care_gt", result.care_gt},     {"care_det", result.care_det},
                          {"images", result.images.size()}};
    if (per_image) {
      out["per_image"] = nlohmann::json::array();
      for (const eval::ImageResult& image : result.images) out["per_image"].push_back(image_json(image));
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  if (per_image) {
    std::printf("%-10s %6s %8s %6s %8s %7s  %-20s %-20s %s\n", "image", "gt", "care_gt", "det", "care_det",
                "matched", "precision", "recall", "hmean");
    for (const eval::ImageResult& image : result.images)
      std::printf("%-10s %6d %8d %6d %8d %7d  %-20s %-20s %s\n", ("img_" + image.id).c_str(), image.gt_count,
                  image.care_gt, image.det_count, image.care_det, image.matched, exact(image.precision).c_str(),
                  exact(image.recall).c_str(), exact(image.hmean).c_str());
    std::printf("\n");
  }
  std::printf("images     %zu\n", result.images.size());
  std::printf("care gt    %lld\n", static_cast<long long>(result.care_gt));
  std::printf("care det   %lld\n", static_cast<long long>(result.care_det));
  std::printf("matched    %lld\n", static_cast<long long>(result.matched));
  std::printf("precision  %s\n", exact(result.precision).c_str());
  std::printf("recall     %s\n", exact(result.recall).c_str());
  std::printf("hmean      %s\n", exact(result.hmean).c_str());
  return 0;
}

const RegisterCommand kRegister("eval", "score detections with the ICDAR 2015 Task 4.1 protocol", run_eval);

}  // namespace
}  // namespace eastrt::tool
