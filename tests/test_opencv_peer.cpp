// Peer check: OpenCV's DNN module (Debian's) loads the same frozen EAST graph eastrt imports; both must
// agree with each other and with TensorFlow's recorded outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "eastrt/cpu_engine.h"
#include "eastrt/east.h"
#include "eastrt/tf_import.h"

#ifdef EASTRT_HAVE_OPENCV
#include <opencv2/dnn.hpp>
#endif

using namespace eastrt;

namespace {

const std::string kTf = std::string(EASTRT_SOURCE_DIR) + "/tests/fixtures/tf/";

HostTensor read_raw(const std::string& path, const Shape& shape, bool bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), {});
  HostTensor t(shape);
  EXPECT_EQ(data.size(), t.data.size() * (bytes ? 1 : 4)) << path;
  for (size_t i = 0; i < t.data.size() && data.size() == t.data.size() * (bytes ? 1 : 4); ++i) {
    if (bytes) {
      t.data[i] = static_cast<uint8_t>(data[i]);
    } else {
      std::memcpy(&t.data[i], data.data() + 4 * i, 4);
    }
  }
  return t;
}

double max_abs_difference(const HostTensor& a, const HostTensor& b) {
  double worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i) worst = std::max(worst, std::fabs(double(a.data[i]) - b.data[i]));
  return worst;
}

}  // namespace

TEST(OpenCvPeer, SameFrozenGraphSameOutputs) {
#ifndef EASTRT_HAVE_OPENCV
  GTEST_SKIP() << "OpenCV's DNN module is not installed (scripts/setup.sh installs libopencv-dnn-dev)";
#else
  const Shape shape{1, 64, 96, 3};
  HostTensor image = read_raw(kTf + "outputs/batch1_64x96.input.u8", shape, true);
  HostTensor tf_score = read_raw(kTf + "outputs/batch1_64x96.score.f32", {1, 16, 24, 1}, false);
  HostTensor tf_geometry = read_raw(kTf + "outputs/batch1_64x96.geometry.f32", {1, 16, 24, 5}, false);

  CpuEngine engine(tf_to_network(TfGraph::load(kTf + "frozen.pb"),
                                 {{east::kScoreOutput, east::kGeometryOutput}, {{east::kInputName, shape}}}));
  auto ours = engine.run({{east::kInputName, image}});

  // OpenCV takes NCHW blobs and returns NCHW outputs.
  cv::dnn::Net net = cv::dnn::readNetFromTensorflow(kTf + "frozen.pb");
  int dims[] = {1, 3, 64, 96};
  cv::Mat blob(4, dims, CV_32F);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 96; ++x) blob.ptr<float>(0, c, y)[x] = image.data[(y * 96 + x) * 3 + c];
  net.setInput(blob);
  std::vector<cv::Mat> outs;
  net.forward(outs, std::vector<cv::String>{east::kScoreOutput, east::kGeometryOutput});
  ASSERT_EQ(outs.size(), 2u);
  auto to_nhwc = [](const cv::Mat& m, int channels) {
    HostTensor t({1, 16, 24, channels});
    for (int c = 0; c < channels; ++c)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 24; ++x) t.data[(y * 24 + x) * channels + c] = m.ptr<float>(0, c, y)[x];
    return t;
  };
  HostTensor cv_score = to_nhwc(outs[0], 1), cv_geometry = to_nhwc(outs[1], 5);

  EXPECT_LE(max_abs_difference(ours.at(east::kScoreOutput), cv_score), 2e-4);
  EXPECT_LE(max_abs_difference(cv_score, tf_score), 2e-4);
  EXPECT_LE(max_abs_difference(ours.at(east::kScoreOutput), tf_score), 1e-4);
  EXPECT_LE(max_abs_difference(ours.at(east::kGeometryOutput), cv_geometry) / 512, 1e-4);
  EXPECT_LE(max_abs_difference(cv_geometry, tf_geometry) / 512, 1e-4);
#endif
}
