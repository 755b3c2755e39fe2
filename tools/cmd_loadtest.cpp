// `eastrt loadtest`: N concurrent clients POST one image to a running `eastrt serve` on loopback, for a
// bounded number of requests and time; reports throughput, latency percentiles and every answer's fate.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "eastrt/detector_ops.h"
#include "eastrt/error.h"
#include "eastrt/http.h"

namespace fs = std::filesystem;

namespace eastrt::tool {
namespace {

using Clock = std::chrono::steady_clock;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in, "cannot open ", path.string());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A PNG of a seeded pattern (the content does not matter to the timing of the network, only its size).
std::string synthetic_png(int width, int height) {
  east::Image image{width, height, std::vector<uint8_t>(size_t(width) * height * 3)};
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<uint8_t>((i * 37 + i / 7) % 251);
  const fs::path path = fs::temp_directory_path() / ("eastrt_loadtest_" + std::to_string(getpid()) + ".png");
  east::write_png(path.string(), image);
  std::string bytes = read_bytes(path);
  fs::remove(path);
  return bytes;
}

// The value of an unlabelled sample line "name value" in Prometheus text, or NaN.
double metric(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return NAN;
}

int loadtest(const std::vector<std::string>& argv) {
  Args args("usage: eastrt loadtest --port N [options]\n\n"
            "Load-tests a running `eastrt serve` on this machine: --clients connections at once POST one image\n"
            "to /detect until --requests were sent or --duration-s passed. Prints throughput, p50/p99 latency\n"
            "and how many answers were 200, 503 or other, and how many requests got no answer at all (lost;\n"
            "any lost request makes the exit status 1).\n\n"
            "  --host ADDR           a loopback address (default 127.0.0.1)\n"
            "  --port N              the server's port\n"
            "  --image FILE          the image to send (default: a synthetic PNG of --size)\n"
            "  --size WxH            synthetic image size (default 256x256)\n"
            "  --clients N           concurrent clients (default 8, at most 512)\n"
            "  --requests N          requests in all (default 200, at most 100000)\n"
            "  --duration-s S        stop sending after this long (default 60, at most 600)\n"
            "  --timeout-ms T        a request not answered within this is lost (default 60000)\n"
            "  --json                print one JSON object instead of the table\n",
            {"--host", "--port", "--image", "--size", "--clients", "--requests", "--duration-s", "--timeout-ms"},
            {"--json"});
  if (!args.parse(argv)) return 0;
  const std::string host = args.get("--host", "127.0.0.1");
  EASTRT_CHECK(http::is_loopback(host), "--host ", host, " is not a loopback address: the load test stays on this machine");
  EASTRT_CHECK(args.has("--port"), "--port is required (the port `eastrt serve` printed)");
  const int port = args.get_int("--port", 0);
  const int clients = args.get_int("--clients", 8), requests = args.get_int("--requests", 200);
  const double duration_s = args.get_double("--duration-s", 60);
  const int timeout_ms = args.get_int("--timeout-ms", 60000);
  EASTRT_CHECK(clients >= 1 && clients <= 512, "--clients must be in 1..512");
  EASTRT_CHECK(requests >= 1 && requests <= 100000, "--requests must be in 1..100000");
  EASTRT_CHECK(duration_s > 0 && duration_s <= 600, "--duration-s must be in (0, 600]");
  std::string body;
  std::string what;
  if (args.has("--image")) {
    body = read_bytes(args.get("--image"));
    what = args.get("--image");
  } else {
    const Shape size = parse_shape(args.get("--size", "256x256"));
    EASTRT_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0 && size[0] * size[1] <= (1 << 26),
                 "--size must be WxH, got ", args.get("--size"));
    body = synthetic_png(static_cast<int>(size[0]), static_cast<int>(size[1]));
    what = "synthetic " + args.get("--size", "256x256") + " PNG";
  }
  const std::string before = http::call(host, port, "GET", "/metrics", "", timeout_ms).body;

  std::atomic<int> issued{0};
  std::mutex mutex;
  std::vector<double> latencies_ok, latencies_all;
  std::map<int, int> statuses;
  int lost = 0;
  std::string first_loss;
  const Clock::time_point start = Clock::now(), stop = start + std::chrono::duration_cast<Clock::duration>(
                                                                   std::chrono::duration<double>(duration_s));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      while (Clock::now() < stop && issued.fetch_add(1) < requests) {
        const Clock::time_point sent = Clock::now();
        int status = 0;
        std::string error;
        try {
          status = http::call(host, port, "POST", "/detect", body, timeout_ms).status;
        } catch (const std::exception& e) {
          error = e.what();
        }
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        std::lock_guard<std::mutex> lock(mutex);
        if (status == 0) {
          if (lost++ == 0) first_loss = error;
          continue;
        }
        ++statuses[status];
        latencies_all.push_back(ms);
        if (status == 200) latencies_ok.push_back(ms);
      }
    });
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  const std::string after = http::call(host, port, "GET", "/metrics", "", timeout_ms).body;
  const double runs = metric(after, "eastrt_batch_size_count") - metric(before, "eastrt_batch_size_count");
  const double images = metric(after, "eastrt_batch_size_sum") - metric(before, "eastrt_batch_size_sum");
  int other = 0;
  for (const auto& [status, count] : statuses)
    if (status != 200 && status != 503) other += count;
  const int sent = static_cast<int>(latencies_all.size()) + lost;
  nlohmann::json report{{"image", what},
                        {"image_bytes", body.size()},
                        {"clients", clients},
                        {"requests", sent},
                        {"seconds", seconds},
                        {"ok_per_s", latencies_ok.size() / seconds},
                        {"p50_ms", percentile(latencies_ok, 0.5)},
                        {"p99_ms", percentile(latencies_ok, 0.99)},
                        {"p99_all_ms", percentile(latencies_all, 0.99)},
                        {"status_200", statuses[200]},
                        {"status_503", statuses[503]},
                        {"status_other", other},
                        {"lost", lost},
                        {"mean_batch", runs > 0 ? images / runs : 0.0}};
  if (args.has("--json")) {
    std::cout << report.dump() << "\n";
  } else {
    std::printf("%s, %zu bytes; %d clients; %d requests in %.2f s\n", what.c_str(), body.size(), clients, sent, seconds);
    std::printf("  answered 200: %d (%.2f per s), 503: %d, other: %d, lost: %d\n", statuses[200],
                latencies_ok.size() / seconds, statuses[503], other, lost);
    std::printf("  latency of 200s: p50 %.1f ms, p99 %.1f ms; of all answers p99 %.1f ms\n",
                percentile(latencies_ok, 0.5), percentile(latencies_ok, 0.99), percentile(latencies_all, 0.99));
    std::printf("  network runs: %.0f, mean batch %.2f images\n", runs, runs > 0 ? images / runs : 0.0);
    for (const auto& [status, count] : statuses)
      if (status != 200 && status != 503) std::printf("  status %d: %d\n", status, count);
  }
  if (lost) std::cerr << "eastrt loadtest: " << lost << " requests got no answer; the first: " << first_loss << "\n";
  return lost ? 1 : 0;
}

RegisterCommand registration("loadtest", "load-test a running `eastrt serve` on loopback: throughput, latency",
                             loadtest);

}  // namespace
}  // namespace eastrt::tool
