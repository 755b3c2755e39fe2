// `eastrt serve`: the HTTP parser against malformed and fuzzed input, and the server in-process on loopback
// (free ports) — detection equal to east::Detector's and `eastrt detect`'s, batching, 503/504/413/400, metrics,
// graceful shutdown, the tool's SIGTERM exit and the web page's self-test in headless Chromium.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/detector.h"
#include "eastrt/east.h"
#include "eastrt/gpu.h"
#include "eastrt/http.h"
#include "eastrt/pipeline.h"
#include "eastrt/runner.h"
#include "eastrt/serve.h"
#include "eastrt/weights.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace eastrt;
using http::Parser;

namespace {

// ---- Fixtures ----

// The built-in EAST at 1/8 width: the same layers, fast enough for many requests per test.
const Network& small_east() {
  static const Network network = [] {
    east::NetworkOptions options{1, 64, 64, 8};
    return east::build(east::random_weights(options, 1), options);
  }();
  return network;
}

std::string png_bytes(int width, int height, int seed = 0) {
  east::Image image{width, height, std::vector<uint8_t>(size_t(width) * height * 3)};
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<uint8_t>((i * 37 + seed * 11 + i / 5) % 251);
  const fs::path path = fs::temp_directory_path() / ("eastrt_test_serve_" + std::to_string(getpid()) + ".png");
  east::write_png(path.string(), image);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  fs::remove(path);
  return bytes;
}

serve::ServerOptions small_options() {
  serve::ServerOptions options;
  options.detect.score_threshold = 0.9f;  // random weights: keeps the candidate boxes, and decode, few
  return options;
}

// A runner that holds every run until the test opens the gate, so queue states can be made at will.
struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  bool open = false;
  int entered = 0;

  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
    changed.notify_all();
  }
  bool wait_entered(int count) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(10), [&] { return entered >= count; });
  }
};

class GatedRunner : public Runner {
 public:
  explicit GatedRunner(Gate& gate) : gate_(gate) {}
  std::map<std::string, HostTensor> run(const std::map<std::string, HostTensor>& inputs) override {
    const Shape& shape = inputs.at(east::kInputName).shape;  // [n, h, w, 3]
    std::unique_lock<std::mutex> lock(gate_.mutex);
    ++gate_.entered;
    gate_.changed.notify_all();
    gate_.changed.wait(lock, [&] { return gate_.open; });
    // All-zero maps: no pixel passes the threshold, so no boxes.
    return {{east::kScoreOutput, HostTensor({shape[0], shape[1] / 4, shape[2] / 4, 1})},
            {east::kGeometryOutput, HostTensor({shape[0], shape[1] / 4, shape[2] / 4, 5})}};
  }
  const Network& network() const override { return small_east(); }
  std::string description() const override { return "a gated test runner"; }
  bool on_gpu() const override { return false; }

 private:
  Gate& gate_;
};

std::unique_ptr<Runner> cpu_runner(int threads) { return make_cpu_runner(small_east(), CpuOptions{threads}); }

http::Response post_detect(int port, const std::string& body) {
  return http::call("127.0.0.1", port, "POST", "/detect", body, 20000);
}

// Sends raw bytes (closing the sending side when asked) and returns everything the server sent back.
std::string raw_exchange(int port, const std::string& bytes, bool close_sending = true) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "<connect failed>";
  }
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (close_sending) shutdown(fd, SHUT_WR);
  std::string reply;
  char chunk[4096];
  for (pollfd p{fd, POLLIN, 0}; poll(&p, 1, 5000) > 0;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    reply.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

int status_of(const std::string& raw_reply) {
  return raw_reply.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(raw_reply.c_str() + 9) : 0;
}

double metric(const std::string& text, const std::string& sample) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  return NAN;
}

bool eventually(const std::function<bool()>& condition, int timeout_ms = 10000) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

double queue_depth(int port) {
  return metric(http::call("127.0.0.1", port, "GET", "/metrics").body, "eastrt_queue_depth");
}

// ---- The parser ----

TEST(HttpParser, ParsesRequestsInAnyPiecesAndPipelined) {
  const std::string one = "POST /detect?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Thing:  padded  \r\n\r\nhello";
  const std::string two = "GET /healthz HTTP/1.0\r\n\r\n";
  const std::string both = one + two;
  for (size_t piece : {size_t(1), size_t(3), size_t(7), both.size()}) {
    Parser parser(Parser::Kind::kRequest);
    std::vector<http::Request> got;
    for (size_t i = 0; i < both.size(); i += piece) {
      parser.feed(both.data() + i, std::min(piece, both.size() - i));
      while (parser.state() == Parser::State::kComplete) got.push_back(parser.take_request());
      ASSERT_NE(parser.state(), Parser::State::kError) << parser.error();
    }
    ASSERT_EQ(got.size(), 2u) << "piece " << piece;
    EXPECT_EQ(got[0].method, "POST");
    EXPECT_EQ(got[0].path, "/detect");
    EXPECT_EQ(got[0].query, "a=1");
    EXPECT_EQ(got[0].body, "hello");
    EXPECT_EQ(got[0].header("x-thing"), "padded");
    EXPECT_TRUE(got[0].keep_alive());
    EXPECT_EQ(got[1].path, "/healthz");
    EXPECT_EQ(got[1].minor_version, 0);
    EXPECT_FALSE(got[1].keep_alive());
    EXPECT_FALSE(parser.started());
  }
}

TEST(HttpParser, RefusesMalformedRequestsNamingTheProblem) {
  struct Case {
    std::string bytes;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", 400, "three parts"},
      {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "target"},
      {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method"},
      {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "target"},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version"},
      {"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400, "HTTP/1.1"},
      {"GET / HTTP/1.1\r\n\r\n", 400, "Host"},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folded"},
      {"GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "bare CR, LF"},
      {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "Name: value"},
      {"GET / HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n", 400, "Name: value"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "conflicting"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413, "limit"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "Content-Length"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", 431, "limit"},
      {"GET / HTTP/1.1\r\nHost: " + std::string(20000, 'a'), 431, "limit"},  // refused before it ends
  };
  for (const Case& c : cases) {
    Parser parser(Parser::Kind::kRequest, {16 << 10, 1 << 20});
    EXPECT_EQ(parser.feed(c.bytes.data(), c.bytes.size()), Parser::State::kError) << c.bytes.substr(0, 60);
    EXPECT_EQ(parser.error_status(), c.status) << c.bytes.substr(0, 60) << ": " << parser.error();
    EXPECT_NE(parser.error().find(c.message), std::string::npos) << c.bytes.substr(0, 60) << ": " << parser.error();
  }
}

TEST(HttpParser, TruncatedMessagesAtTheEndOfTheStream) {
  Parser body(Parser::Kind::kRequest);
  const std::string bytes = "POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
  EXPECT_EQ(body.feed(bytes.data(), bytes.size()), Parser::State::kIncomplete);
  EXPECT_EQ(body.finish(), Parser::State::kError);
  EXPECT_EQ(body.error_status(), 400);
  EXPECT_NE(body.error().find("after 3 of the 10 bytes"), std::string::npos) << body.error();

  Parser head(Parser::Kind::kRequest);
  head.feed("GET / HTTP/1.1\r\nHo", 19);
  EXPECT_EQ(head.finish(), Parser::State::kError);
  EXPECT_NE(head.error().find("before the blank line"), std::string::npos) << head.error();

  Parser nothing(Parser::Kind::kRequest);
  EXPECT_EQ(nothing.finish(), Parser::State::kIncomplete);  // a connection closed between requests
  EXPECT_FALSE(nothing.started());

  Parser response(Parser::Kind::kResponse);  // no Content-Length: the body runs to the close
  response.feed("HTTP/1.1 200 OK\r\n\r\npartial", 26);
  EXPECT_EQ(response.finish(), Parser::State::kComplete);
  EXPECT_EQ(response.take_response().body, "partial");
}

// Mutated and random inputs, fed in random pieces: the parser ends in a definite state, never crashes,
// never accepts a body larger than the limit, and reports only the statuses it documents.
TEST(HttpParser, FuzzedInputNeverCrashesOrOverruns) {
  std::mt19937 rng(42);
  const std::string seed = "POST /detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n\r\nimage bytes!";
  const std::string alphabet = "\r\n :/0123456789GETPOSHTCLa-\t\x7f\x00";
  int complete = 0, errors = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::string input = seed;
    if (iteration % 4 == 3) {
      input.assign(rng() % 200, ' ');
      for (char& c : input) c = static_cast<char>(rng());
    } else {
      for (int m = 0, count = 1 + rng() % 6; m < count && !input.empty(); ++m) {
        const size_t at = rng() % input.size();
        switch (rng() % 3) {
          case 0: input[at] = alphabet[rng() % alphabet.size()]; break;
          case 1: input.erase(at, 1 + rng() % 4); break;
          default: input.insert(at, std::string(1 + rng() % 3, alphabet[rng() % alphabet.size()]));
        }
      }
    }
    Parser parser(Parser::Kind::kRequest, {256, 64});
    for (size_t i = 0; i < input.size() && parser.state() != Parser::State::kError;) {
      const size_t piece = 1 + rng() % 16;
      parser.feed(input.data() + i, std::min(piece, input.size() - i));
      i += piece;
      while (parser.state() == Parser::State::kComplete) {
        const http::Request request = parser.take_request();
        EXPECT_LE(request.body.size(), 64u);
        EXPECT_EQ(request.path.empty() ? '/' : request.path[0], '/');
        ++complete;
      }
    }
    if (parser.finish() == Parser::State::kError) {
      ++errors;
      const int status = parser.error_status();
      EXPECT_TRUE(status == 400 || status == 413 || status == 431 || status == 501 || status == 505) << status;
      EXPECT_FALSE(parser.error().empty());
    }
  }
  EXPECT_GT(complete, 100);  // the mutations leave many requests valid, and the rest are refused
  EXPECT_GT(errors, 1000);
}

// ---- The server ----

TEST(Serve, DetectEqualsTheDetectorOnTheSameImage) {
  serve::ServerOptions options = small_options();
  auto runner = cpu_runner(2);
  serve::Server server(options, *runner);
  east::Detector detector(small_east(), CpuOptions{2}, options.detect);
  for (auto [width, height] : {std::pair{96, 70}, std::pair{64, 64}}) {
    const std::string image = png_bytes(width, height);
    const http::Response response = post_detect(server.port(), image);
    ASSERT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.headers.at("content-type"), "application/json");
    const nlohmann::json json = nlohmann::json::parse(response.body);
    const east::Detection want =
        detector.detect(east::decode_image(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "test"));
    EXPECT_EQ(json["width"], width);
    EXPECT_EQ(json["height"], height);
    ASSERT_EQ(json["boxes"].size(), want.boxes.size());
    for (size_t b = 0; b < want.boxes.size(); ++b) {
      EXPECT_FLOAT_EQ(json["boxes"][b]["score"].get<float>(), want.boxes[b].score);
      for (int v = 0; v < 4; ++v) {
        EXPECT_EQ(json["boxes"][b]["points"][v][0].get<float>(), want.boxes[b].points[v].x);
        EXPECT_EQ(json["boxes"][b]["points"][v][1].get<float>(), want.boxes[b].points[v].y);
      }
    }
    for (const char* stage : {"queue", "preprocess", "network", "decode", "total"})
      EXPECT_GE(json["timings_ms"][stage].get<double>(), 0.0) << stage;
    EXPECT_GE(json["timings_ms"]["total"].get<double>(), json["timings_ms"]["network"].get<double>());
  }
}

// The bundled model on the example images: serve answers with the boxes `eastrt detect` writes for the same
// files and east::Detector finds in the same images (the EAST resize rule, the same pipeline).
TEST(Serve, ExampleImagesGiveDetectsBoxes) {
  const fs::path root = EASTRT_SOURCE_DIR;
  const fs::path out = fs::temp_directory_path() / ("eastrt_test_serve_detect_" + std::to_string(getpid()));
  std::vector<std::string> files;
  for (int i = 1; i <= 3; ++i) files.push_back((root / "examples/images" / ("img_" + std::to_string(i) + ".jpg")).string());
  std::string arguments = "detect --device cpu --threads 2 --json --force --out " + out.string();
  for (const std::string& f : files) arguments += " " + f;
  const test_support::ToolResult detected = test_support::run_tool(arguments, false);
  fs::remove_all(out);
  ASSERT_EQ(detected.status, 0) << detected.output;
  const nlohmann::json want_json = nlohmann::json::parse(detected.output);
  ASSERT_EQ(want_json.size(), files.size());

  SafetensorsReader weights((root / "models/east.safetensors").string());
  const Network network = east::build(weights, {});
  serve::ServerOptions options;
  options.max_batch = 2;
  auto runner = make_cpu_runner(network, CpuOptions{2});
  serve::Server server(options, *runner);
  east::Detector detector(network, CpuOptions{2});
  size_t boxes = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(files[i]);
    std::ifstream in(files[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const http::Response response = post_detect(server.port(), bytes);
    ASSERT_EQ(response.status, 200) << response.body;
    const nlohmann::json got = nlohmann::json::parse(response.body);
    const nlohmann::json& want = want_json[i];
    const east::Detection reference = detector.detect(east::decode_image(files[i]));
    EXPECT_EQ(got["width"], want["width"]);
    EXPECT_EQ(got["height"], want["height"]);
    EXPECT_EQ(got["network_input"], want["network_input"]);
    EXPECT_EQ(got["network_input"][0], reference.plan.height);
    EXPECT_EQ(got["network_input"][1], reference.plan.width);
    ASSERT_EQ(got["boxes"].size(), want["boxes"].size());
    ASSERT_EQ(got["boxes"].size(), reference.boxes.size());
    for (size_t b = 0; b < reference.boxes.size(); ++b) {
      const nlohmann::json& g = got["boxes"][b];
      EXPECT_FLOAT_EQ(g["score"].get<float>(), reference.boxes[b].score) << "box " << b;
      EXPECT_FLOAT_EQ(g["score"].get<float>(), want["boxes"][b]["score"].get<float>()) << "box " << b;
      for (int v = 0; v < 4; ++v) {
        EXPECT_EQ(g["points"][v][0].get<float>(), reference.boxes[b].points[v].x) << "box " << b;
        EXPECT_EQ(g["points"][v][1].get<float>(), reference.boxes[b].points[v].y) << "box " << b;
        EXPECT_EQ(g["points"][v][0].get<float>(), want["boxes"][b]["points"][2 * v].get<float>()) << "box " << b;
        EXPECT_EQ(g["points"][v][1].get<float>(), want["boxes"][b]["points"][2 * v + 1].get<float>()) << "box " << b;
      }
    }
    boxes += reference.boxes.size();
  }
  EXPECT_GT(boxes, 0u) << "the bundled model finds text in the examples";
}

// On the GPU (FP16, engines per size, candidates decoded there): the three examples sent at once form one
// batch, and their boxes are those of detect's pipeline on the same runner (the same engine) for the files.
TEST(GpuServe, ConcurrentExamplesGiveDetectsPipelineBoxes) {
  const GpuInfo gpu = query_gpu();
  if (!gpu.available) GTEST_SKIP() << "no usable GPU (" << gpu.reason << "): GPU test skipped";
  const fs::path root = EASTRT_SOURCE_DIR;
  std::vector<std::string> files, bodies;
  for (int i = 1; i <= 3; ++i) {
    files.push_back((root / "examples/images" / ("img_" + std::to_string(i) + ".jpg")).string());
    std::ifstream in(files.back(), std::ios::binary);
    bodies.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  SafetensorsReader weights((root / "models/east.safetensors").string());
  GpuRunnerOptions gpu_options;
  gpu_options.build.precision = Precision::kFp16;
  gpu_options.build.max_batch = 3;
  gpu_options.build.time_tactics = false;  // cuDNN's heuristic tactics: served and detected boxes share them
  gpu_options.slots = 2;
  auto runner = make_gpu_runner(east::build(weights, {}), gpu_options);

  std::vector<nlohmann::json> served(files.size());
  {
    serve::ServerOptions options;
    options.max_batch = 3;
    options.max_delay_ms = 5000;  // the batch leaves full
    options.timeout_ms = 120000;  // the first request waits for the engine's build
    options.decoder = east::Decoder::kCpu;  // box for box: nvJPEG's pixels differ from libjpeg's a little
    serve::Server server(options, *runner);
    std::vector<std::future<http::Response>> replies;
    for (const std::string& body : bodies)
      replies.push_back(std::async(std::launch::async, [&server, &body] { return post_detect(server.port(), body); }));
    for (size_t i = 0; i < files.size(); ++i) {
      const http::Response response = replies[i].get();
      ASSERT_EQ(response.status, 200) << response.body;
      served[i] = nlohmann::json::parse(response.body);
      EXPECT_EQ(served[i]["batch"], 3);
    }
  }
  east::PipelineOptions options;
  options.max_batch = 3;
  options.max_delay_ms = 5000;  // the batch leaves full, not when the first image has waited 10 ms
  options.decoder = east::Decoder::kCpu;
  east::Pipeline pipeline(*runner, options);
  ASSERT_TRUE(pipeline.decodes_on_device());
  std::vector<std::future<east::PipelineResult>> futures = pipeline.submit_files(files);
  size_t boxes = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    SCOPED_TRACE(files[i]);
    const east::PipelineResult want = futures[i].get();
    ASSERT_TRUE(want.ok()) << want.error;
    EXPECT_EQ(want.batch, 3);
    ASSERT_EQ(served[i]["boxes"].size(), want.detection.boxes.size());
    for (size_t b = 0; b < want.detection.boxes.size(); ++b) {
      const east::Quad& q = want.detection.boxes[b];
      EXPECT_FLOAT_EQ(served[i]["boxes"][b]["score"].get<float>(), q.score) << "box " << b;
      for (int v = 0; v < 4; ++v) {
        EXPECT_EQ(served[i]["boxes"][b]["points"][v][0].get<float>(), q.points[v].x) << "box " << b;
        EXPECT_EQ(served[i]["boxes"][b]["points"][v][1].get<float>(), q.points[v].y) << "box " << b;
      }
    }
    boxes += want.detection.boxes.size();
  }
  EXPECT_GT(boxes, 0u) << "the bundled model finds text in the examples";
}

TEST(Serve, ConcurrentRequestsAreBatched) {
  serve::ServerOptions options = small_options();
  options.max_batch = 4;
  options.max_delay_ms = 1000;  // long enough for all four to arrive; a full batch goes at once
  auto runner = cpu_runner(2);
  serve::Server server(options, *runner);
  const std::string image = png_bytes(64, 64, 3);
  std::vector<std::future<http::Response>> replies;
  for (int i = 0; i < 4; ++i) replies.push_back(std::async(std::launch::async, [&] { return post_detect(server.port(), image); }));
  std::vector<nlohmann::json> results;
  for (auto& reply : replies) {
    const http::Response response = reply.get();
    ASSERT_EQ(response.status, 200) << response.body;
    results.push_back(nlohmann::json::parse(response.body));
  }
  const std::string metrics = http::call("127.0.0.1", server.port(), "GET", "/metrics").body;
  EXPECT_EQ(metric(metrics, "eastrt_batch_size_sum"), 4);
  EXPECT_LT(metric(metrics, "eastrt_batch_size_count"), 4) << metrics;  // some run held more than one image
  EXPECT_LT(metric(metrics, "eastrt_batch_size_bucket{le=\"1\"}"), metric(metrics, "eastrt_batch_size_count"));
  // A batched answer is the single-image answer: the same image gives the same boxes in any batch.
  east::Detector detector(small_east(), CpuOptions{2}, options.detect);
  const east::Detection want =
      detector.detect(east::decode_image(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "test"));
  for (const nlohmann::json& result : results) {
    ASSERT_EQ(result["boxes"].size(), want.boxes.size());
    for (size_t b = 0; b < want.boxes.size(); ++b)
      EXPECT_EQ(result["boxes"][b]["points"][0][0].get<float>(), want.boxes[b].points[0].x);
  }
}

TEST(Serve, FullQueueAnswers503AtOnceAndLongWaitsAnswer504) {
  Gate gate;
  serve::ServerOptions options = small_options();
  options.max_batch = 1;
  options.queue = 1;
  options.timeout_ms = 100;
  GatedRunner runner(gate);
  serve::Server server(options, runner);
  const std::string image = png_bytes(32, 32);
  auto first = std::async(std::launch::async, [&] { return post_detect(server.port(), image); });
  ASSERT_TRUE(gate.wait_entered(1));  // the runner holds the first
  auto second = std::async(std::launch::async, [&] { return post_detect(server.port(), image); });
  ASSERT_TRUE(eventually([&] { return queue_depth(server.port()) == 1; }));  // the second waits in the queue

  const auto start = std::chrono::steady_clock::now();
  const http::Response third = post_detect(server.port(), image);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(third.status, 503);
  EXPECT_EQ(third.headers.at("retry-after"), "1");
  EXPECT_NE(nlohmann::json::parse(third.body)["error"].get<std::string>().find("queue is full"), std::string::npos);

  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the second now waited past the timeout
  gate.release();
  EXPECT_EQ(first.get().status, 200);
  const http::Response late = second.get();
  EXPECT_EQ(late.status, 504);
  EXPECT_NE(late.body.find("longer than the timeout of 100 ms"), std::string::npos) << late.body;
  const std::string metrics = http::call("127.0.0.1", server.port(), "GET", "/metrics").body;
  EXPECT_EQ(metric(metrics, "eastrt_http_responses_total{status=\"503\"}"), 1);
  EXPECT_EQ(metric(metrics, "eastrt_http_responses_total{status=\"504\"}"), 1);
  EXPECT_EQ(metric(metrics, "eastrt_expired_total"), 1);
  EXPECT_EQ(metric(metrics, "eastrt_batch_size_count"), 1) << "the expired request never reached the runner";
  std::lock_guard<std::mutex> lock(gate.mutex);
  EXPECT_EQ(gate.entered, 1);
}

TEST(Serve, BadRequestsAreRefusedWithAMessage) {
  serve::ServerOptions options = small_options();
  options.max_body_bytes = 4096;
  auto runner = cpu_runner(1);
  serve::Server server(options, *runner);
  const int port = server.port();
  auto error_of = [](const http::Response& r) { return nlohmann::json::parse(r.body)["error"].get<std::string>(); };

  http::Response r = post_detect(port, std::string(10000, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(error_of(r).find("limit of 4096 bytes"), std::string::npos) << r.body;
  r = post_detect(port, "this is not an image");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("request body"), std::string::npos) << r.body;
  const std::string png = png_bytes(40, 40);
  r = post_detect(port, png.substr(0, png.size() / 2));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("request body"), std::string::npos) << r.body;
  r = http::call("127.0.0.1", port, "POST", "/detect", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("empty body"), std::string::npos);
  r = http::call("127.0.0.1", port, "GET", "/detect");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers.at("allow"), "POST");
  r = http::call("127.0.0.1", port, "GET", "/nowhere");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(error_of(r).find("/nowhere"), std::string::npos);
  r = http::call("127.0.0.1", port, "GET", "/selftest-image");
  EXPECT_EQ(r.status, 404);

  // Over a raw socket: a huge Content-Length is refused before any body, without waiting for it.
  std::string reply = raw_exchange(port, "POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", false);
  EXPECT_EQ(status_of(reply), 413) << reply;
  reply = raw_exchange(port, "POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort");
  EXPECT_EQ(status_of(reply), 400) << reply;
  EXPECT_NE(reply.find("truncated body"), std::string::npos) << reply;
  reply = raw_exchange(port, "HELLO\r\n\r\n");
  EXPECT_EQ(status_of(reply), 400) << reply;
  EXPECT_NE(reply.find("\"error\""), std::string::npos) << reply;
  // Keep-alive: two requests on one connection get two answers.
  reply = raw_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(std::count(reply.begin(), reply.end(), '{'), 2) << reply;
  // The server still answers after all of that.
  EXPECT_EQ(http::call("127.0.0.1", port, "GET", "/healthz").status, 200);
}

TEST(Serve, HealthzAndPrometheusMetrics) {
  auto runner = cpu_runner(1);
  serve::Server server(small_options(), *runner);
  const http::Response health = http::call("127.0.0.1", server.port(), "GET", "/healthz");
  ASSERT_EQ(health.status, 200);
  EXPECT_EQ(nlohmann::json::parse(health.body)["status"], "ok");
  ASSERT_EQ(post_detect(server.port(), png_bytes(64, 64)).status, 200);
  http::call("127.0.0.1", server.port(), "GET", "/nowhere");

  const http::Response response = http::call("127.0.0.1", server.port(), "GET", "/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4");
  const std::string& text = response.body;
  // Every line is a comment (# HELP / # TYPE) or a sample: name, optional labels, a number.
  const std::regex sample(R"(^[a-z_]+(\{[a-z]+="[^"]*"\})? (-?[0-9.e+-]+|\+Inf|NaN)$)");
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0 || std::regex_match(line, sample)) << line;
  EXPECT_NE(text.find("# TYPE eastrt_batch_size histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE eastrt_detect_latency_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE eastrt_queue_depth gauge"), std::string::npos);
  EXPECT_EQ(metric(text, "eastrt_http_responses_total{status=\"200\"}"), 2);  // /healthz and /detect
  EXPECT_EQ(metric(text, "eastrt_http_responses_total{status=\"404\"}"), 1);
  EXPECT_EQ(metric(text, "eastrt_batch_size_bucket{le=\"+Inf\"}"), metric(text, "eastrt_batch_size_count"));
  EXPECT_EQ(metric(text, "eastrt_detect_latency_seconds_count"), 1);
  EXPECT_EQ(metric(text, "eastrt_detect_latency_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_EQ(metric(text, "eastrt_queue_depth"), 0);
  // Buckets are cumulative.
  double previous = 0;
  for (const char* le : {"0.005", "0.01", "0.1", "1", "10", "+Inf"}) {
    const double count = metric(text, std::string("eastrt_detect_latency_seconds_bucket{le=\"") + le + "\"}");
    EXPECT_GE(count, previous) << le;
    previous = count;
  }
}

TEST(Serve, ShutdownAnswersEveryAcceptedRequest) {
  Gate gate;
  serve::ServerOptions options = small_options();
  options.max_batch = 1;
  GatedRunner runner(gate);
  auto server = std::make_unique<serve::Server>(options, runner);
  const int port = server->port();
  const std::string image = png_bytes(32, 32);
  std::vector<std::future<http::Response>> replies;
  for (int i = 0; i < 3; ++i) replies.push_back(std::async(std::launch::async, [&] { return post_detect(port, image); }));
  ASSERT_TRUE(gate.wait_entered(1));
  ASSERT_TRUE(eventually([&] { return queue_depth(port) == 2; }));
  auto stopped = std::async(std::launch::async, [&] { server->shutdown(); });
  // No new connection is accepted once shutdown has begun (the listening socket is closed).
  EXPECT_TRUE(eventually([&] { return test_support::error_of([&] { http::call("127.0.0.1", port, "GET", "/healthz"); }).find("cannot connect") != std::string::npos; }));
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);  // still answering
  gate.release();
  for (auto& reply : replies) EXPECT_EQ(reply.get().status, 200);
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  server.reset();
}

// ---- Several pipelines (one per GPU on the machine; here two CPU runners stand in for two GPUs) ----

TEST(Serve, SeveralPipelinesShareTheRequestsAndGiveOnePipelinesBoxes) {
  serve::ServerOptions options = small_options();
  options.max_batch = 2;
  options.max_delay_ms = 2;
  options.workers = 1;
  auto first = cpu_runner(1), second = cpu_runner(1);
  serve::Server server(options, std::vector<Runner*>{first.get(), second.get()});
  EXPECT_EQ(server.engine_description().rfind("2 pipelines: the CPU engine", 0), 0u) << server.engine_description();
  const std::vector<std::string> images = {png_bytes(64, 64, 1), png_bytes(96, 70, 2), png_bytes(40, 72, 3)};
  std::vector<east::Detection> want;
  east::Detector detector(small_east(), CpuOptions{1}, options.detect);
  for (const std::string& image : images)
    want.push_back(detector.detect(east::decode_image(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "test")));

  constexpr int kClients = 4, kEach = 6;
  std::vector<std::future<std::vector<std::pair<size_t, http::Response>>>> clients;
  for (int c = 0; c < kClients; ++c)
    clients.push_back(std::async(std::launch::async, [&, c] {
      std::vector<std::pair<size_t, http::Response>> replies;
      for (int i = 0; i < kEach; ++i) {
        const size_t which = static_cast<size_t>(c + i) % images.size();
        replies.emplace_back(which, post_detect(server.port(), images[which]));
      }
      return replies;
    }));
  for (auto& client : clients)
    for (const auto& [which, response] : client.get()) {
      ASSERT_EQ(response.status, 200) << response.body;
      const nlohmann::json json = nlohmann::json::parse(response.body);
      const east::Detection& d = want[which];
      ASSERT_EQ(json["boxes"].size(), d.boxes.size()) << "image " << which;
      for (size_t b = 0; b < d.boxes.size(); ++b) {
        EXPECT_FLOAT_EQ(json["boxes"][b]["score"].get<float>(), d.boxes[b].score);
        for (int v = 0; v < 4; ++v) {
          EXPECT_EQ(json["boxes"][b]["points"][v][0].get<float>(), d.boxes[b].points[v].x);
          EXPECT_EQ(json["boxes"][b]["points"][v][1].get<float>(), d.boxes[b].points[v].y);
        }
      }
    }
  const std::string metrics = http::call("127.0.0.1", server.port(), "GET", "/metrics").body;
  const double on_first = metric(metrics, "eastrt_pipeline_images_total{pipeline=\"0\"}"),
               on_second = metric(metrics, "eastrt_pipeline_images_total{pipeline=\"1\"}");
  EXPECT_GT(on_first, 0) << metrics;
  EXPECT_GT(on_second, 0) << metrics;
  EXPECT_EQ(on_first + on_second, kClients * kEach);
  EXPECT_EQ(metric(metrics, "eastrt_batch_size_sum"), kClients * kEach) << "the totals are summed over the pipelines";
  EXPECT_EQ(metric(metrics, "eastrt_images_decoded_total{decoder=\"cpu\"}"), kClients * kEach);
  EXPECT_EQ(metric(metrics, "eastrt_http_responses_total{status=\"200\"}"), kClients * kEach);
  EXPECT_EQ(metric(metrics, "eastrt_queue_capacity"), 2 * options.queue);
  EXPECT_EQ(metric(metrics, "eastrt_queue_depth"), 0);
}

// Requests go to the least loaded pipeline, 503 only once every pipeline's queue is full, and shutdown answers
// what every pipeline holds.
TEST(Serve, SeveralPipelinesFillInTurnAndShutdownDrainsThemAll) {
  Gate gate;
  serve::ServerOptions options = small_options();
  options.max_batch = 1;
  options.queue = 1;
  GatedRunner first(gate), second(gate);
  auto server = std::make_unique<serve::Server>(options, std::vector<Runner*>{&first, &second});
  const int port = server->port();
  const std::string image = png_bytes(32, 32);
  std::vector<std::future<http::Response>> replies;
  for (int i = 0; i < 2; ++i) replies.push_back(std::async(std::launch::async, [&] { return post_detect(port, image); }));
  ASSERT_TRUE(gate.wait_entered(2)) << "each pipeline runs one: one pipeline alone runs one at a time";
  for (int i = 0; i < 2; ++i) replies.push_back(std::async(std::launch::async, [&] { return post_detect(port, image); }));
  ASSERT_TRUE(eventually([&] { return queue_depth(port) == 2; }));  // one waiting in each
  const http::Response refused = post_detect(port, image);
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("in each of 2 pipelines"), std::string::npos) << refused.body;

  auto stopped = std::async(std::launch::async, [&] { server->shutdown(); });
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);  // still answering
  gate.release();
  for (auto& reply : replies) EXPECT_EQ(reply.get().status, 200);
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  std::lock_guard<std::mutex> lock(gate.mutex);
  EXPECT_EQ(gate.entered, 4);
}

// ---- The tool ----

TEST(ServeCli, GpusThatAreNotThereAreAClearError) {
  const int count = gpu_count();
  const std::string many = std::to_string(count + 4);
  test_support::ToolResult r = test_support::run_tool("serve --builtin east --port 0 --gpus " + many);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--gpus " + many + ": this machine has " + std::to_string(count) + " GPU"), std::string::npos)
      << r.output;
  r = test_support::run_tool("serve --builtin east --port 0 --gpus " + many + ",0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("there is no GPU " + many), std::string::npos) << r.output;
  r = test_support::run_tool("serve --builtin east --port 0 --gpus 1,x");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("a list of device numbers"), std::string::npos) << r.output;
}

TEST(ServeCli, ServesUntilSigtermThenExitsZero) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(EASTRT_TOOL, EASTRT_TOOL, "serve", "--builtin", "east", "--width-divisor", "8", "--input", "1x64x64x3",
          "--port", "0", "--cpu", "--threads", "1", "--score-threshold", "0.9", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* stdout_of_server = fdopen(out[0], "r");
  char line[512] = {};
  ASSERT_NE(fgets(line, sizeof line, stdout_of_server), nullptr);
  const std::string first(line);
  const size_t at = first.find("http://127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << first;
  const int port = std::atoi(first.c_str() + at + 17);
  EXPECT_EQ(http::call("127.0.0.1", port, "GET", "/healthz").status, 200);
  EXPECT_EQ(post_detect(port, png_bytes(64, 64)).status, 200);
  EXPECT_EQ(http::call("127.0.0.1", port, "GET", "/").body, serve::web_page());
  // eastrt loadtest against it: every request answered, the batches read from /metrics.
  const test_support::ToolResult load = test_support::run_tool(
      "loadtest --port " + std::to_string(port) + " --clients 4 --requests 12 --size 64x48 --json", false);
  ASSERT_EQ(load.status, 0) << load.output;
  const nlohmann::json report = nlohmann::json::parse(load.output);
  EXPECT_EQ(report["requests"], 12);
  EXPECT_EQ(report["status_200"], 12);
  EXPECT_EQ(report["lost"], 0);
  EXPECT_GE(report["mean_batch"].get<double>(), 1.0);
  kill(pid, SIGTERM);
  std::string rest;
  while (fgets(line, sizeof line, stdout_of_server)) rest += line;
  fclose(stdout_of_server);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(rest.find("stopped"), std::string::npos) << rest;
}

TEST(ServePage, SelfTestInHeadlessChromium) {
  std::string browser;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    const std::string command = std::string("command -v ") + name + " >/dev/null 2>&1";
    if (std::system(command.c_str()) == 0) {
      browser = name;
      break;
    }
  }
  if (browser.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it): page self-test not run";

  serve::ServerOptions options = small_options();
  options.selftest_image = png_bytes(96, 64, 5);
  options.detect.score_threshold = 0.5f;  // enough boxes to draw
  auto runner = cpu_runner(2);
  serve::Server server(options, *runner);
  const size_t boxes = nlohmann::json::parse(post_detect(server.port(), options.selftest_image).body)["boxes"].size();

  const fs::path profile = fs::temp_directory_path() / ("eastrt_test_chromium_" + std::to_string(getpid()));
  const std::string command = browser + " --headless --disable-gpu --no-sandbox --no-first-run --user-data-dir=" +
                              profile.string() + " --virtual-time-budget=20000 --dump-dom http://127.0.0.1:" +
                              std::to_string(server.port()) + "/?selftest=1 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string dom;
  char chunk[4096];
  for (size_t n; (n = fread(chunk, 1, sizeof chunk, pipe.get())) > 0;) dom.append(chunk, n);
  pipe.reset();
  fs::remove_all(profile);

  const std::string expected = "selftest: ok boxes=" + std::to_string(boxes) + " ";
  ASSERT_NE(dom.find(expected), std::string::npos) << "expected '" << expected << "' in the DOM:\n" << dom;
  EXPECT_NE(dom.find("data-state=\"drawn\""), std::string::npos) << dom;
  const size_t at = dom.find("drawn_pixels=");
  ASSERT_NE(at, std::string::npos);
  const long drawn = std::atol(dom.c_str() + at + 13);
  if (boxes > 0) {
    EXPECT_GT(drawn, 0) << dom;
  }
  EXPECT_NE(dom.find("size=96x64"), std::string::npos) << dom;
}

}  // namespace
