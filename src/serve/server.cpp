// The server: an acceptor thread, a thread per connection (parse, route, answer, keep-alive), and the
// detection pipelines, one per runner (per GPU): every POST /detect enters the least loaded one with its bytes
// and a deadline and leaves through a future.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/error.h"
#include "eastrt/http.h"
#include "eastrt/pipeline.h"
#include "eastrt/serve.h"
#include "serve/metrics.h"

namespace eastrt::serve {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// A connection waits this long for the next request, and a started request this long for its last byte.
constexpr int kIdleTimeoutMs = 30000;
constexpr int kRequestReadTimeoutMs = 10000;
// Connections served at once; one more is answered 503 and closed, so overload never exhausts threads.
constexpr size_t kMaxConnections = 512;

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
};

Reply error_reply(int status, const std::string& message, std::map<std::string, std::string> headers = {}) {
  return {status, "application/json", nlohmann::json{{"error", message}}.dump() + "\n", std::move(headers)};
}

void send_all(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the peer went away; nothing to tell it
    sent += static_cast<size_t>(n);
  }
}

// Closes after the last answer. Unread request bytes (a refused large body) would make close() send a
// reset that can destroy the answer in flight, so the rest is read and dropped for a moment first.
void close_after_reply(int fd) {
  shutdown(fd, SHUT_WR);
  char sink[64 << 10];
  const auto until = Clock::now() + std::chrono::seconds(2);
  for (size_t drained = 0; drained < (size_t(64) << 20) && Clock::now() < until;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) break;
    const ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  close(fd);
}

// The JSON of a detection. Its timings, per request: queue, waiting for a decoding thread, a batch and a
// post-processing thread; preprocess, decoding the image (and resizing it, on the CPU); network, the whole run
// of the batch it was in; decode, the boxes from the maps (decode on the CPU, or only NMS and re-scoring).
std::string detection_json(const east::PipelineResult& r, double total_ms) {
  nlohmann::json list = nlohmann::json::array();
  for (const east::Quad& q : r.detection.boxes) {
    nlohmann::json points = nlohmann::json::array();
    for (const east::Point& p : q.points) points.push_back({p.x, p.y});
    list.push_back({{"points", points}, {"score", q.score}});
  }
  const east::StageTimes& t = r.times;
  nlohmann::json out{{"boxes", list},
                     {"width", r.width},
                     {"height", r.height},
                     {"network_input", {r.detection.plan.height, r.detection.plan.width}},
                     {"batch", r.batch},
                     {"timings_ms",
                      {{"queue", t.decode_wait_ms + t.batch_wait_ms + t.post_wait_ms},
                       {"preprocess", t.decode_ms + t.preprocess_ms},
                       {"network", t.network_ms * r.batch},
                       {"decode", t.post_ms},
                       {"total", total_ms}}}};
  return out.dump() + "\n";
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::vector<std::unique_ptr<east::Pipeline>> pipelines;  // one per runner; until shutdown, used by the connections
  std::atomic<size_t> next_pipeline{0};                    // where the search for the least loaded one starts
  std::string description;
  Metrics metrics;
  int listen_fd = -1, port = 0;
  int wake[2] = {-1, -1};  // written once at shutdown; its read end stays readable and wakes every poll
  std::atomic<bool> stopping{false};
  std::thread acceptor;
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Connection> connections;  // touched by the acceptor only, until shutdown joins them
  std::mutex shutdown_mutex;
  bool shut_down = false;

  Impl(ServerOptions o, const std::vector<Runner*>& runners) : options(checked(std::move(o))) {
    EASTRT_CHECK(!runners.empty(), "serve: no runner to serve with");
    for (Runner* runner : runners) {
      EASTRT_CHECK(runner, "serve: a null runner");
      pipelines.push_back(std::make_unique<east::Pipeline>(*runner, pipeline_options(options, runners.size())));
    }
    description = runners_description(runners) + "; " + (runners.size() > 1 ? "each " : "") +
                  pipelines[0]->description() + "; decoders: " + pipelines[0]->decoder_description();
    listen_on(options.host, options.port);
    EASTRT_CHECK(pipe2(wake, O_CLOEXEC) == 0, "serve: pipe: ", std::strerror(errno));
    acceptor = std::thread([this] { accept_loop(); });
  }

  static ServerOptions checked(ServerOptions o) {
    EASTRT_CHECK(o.streams >= 0 && o.workers >= 0, "serve: streams and workers must be at least 0 (0: by the runner "
                 "and the cores)");
    EASTRT_CHECK(o.max_batch >= 1 && o.queue >= 1 && o.max_delay_ms >= 0 && o.timeout_ms >= 1,
                 "serve: max batch, queue and timeout must be at least 1, max delay at least 0");
    return o;
  }

  static std::string runners_description(const std::vector<Runner*>& runners) {
    if (runners.size() == 1) return runners[0]->description();
    std::string d = std::to_string(runners.size()) + " pipelines: ";
    for (size_t i = 0; i < runners.size(); ++i) {
      d += (i ? "; " : "") + runners[i]->description();
      if (runners[i]->gpu_device() >= 0) d += " (GPU " + std::to_string(runners[i]->gpu_device()) + ")";
    }
    return d;
  }

  // The pipeline with the fewest requests waiting; ties go round robin, so an idle server spreads its requests.
  east::Pipeline& least_loaded() {
    const size_t n = pipelines.size(), start = next_pipeline++ % n;
    size_t best = start;
    int best_waiting = pipelines[start]->waiting();
    for (size_t k = 1; k < n && best_waiting > 0; ++k) {
      const size_t i = (start + k) % n;
      if (const int w = pipelines[i]->waiting(); w < best_waiting) best = i, best_waiting = w;
    }
    return *pipelines[best];
  }

  std::string render_metrics() const {
    std::vector<east::PipelineStats> stats;
    int waiting = 0;
    for (const auto& p : pipelines) {
      stats.push_back(p->stats());
      waiting += p->waiting();
    }
    return metrics.render(stats, waiting, options.queue * static_cast<int>(pipelines.size()));
  }

  // With several pipelines the default decoding threads (half the cores each) are shared out among them.
  static east::PipelineOptions pipeline_options(const ServerOptions& o, size_t pipelines) {
    east::PipelineOptions p;
    p.max_batch = o.max_batch;
    p.max_delay_ms = o.max_delay_ms;
    p.hold_partial_batches = true;  // the next request may be on its way
    p.max_waiting = o.queue;
    p.in_flight = o.streams;
    p.workers = o.workers;
    if (p.workers == 0 && pipelines > 1)
      p.workers = std::max(2, static_cast<int>(std::thread::hardware_concurrency() / (2 * pipelines)));
    p.detect = o.detect;
    p.decoder = o.decoder;
    p.device_lanms = o.device_lanms;
    return p;
  }

  void listen_on(const std::string& host, int requested_port) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    const std::string where = host + ":" + std::to_string(requested_port);
    if (int rc = getaddrinfo(host.c_str(), std::to_string(requested_port).c_str(), &hints, &found); rc != 0)
      throw_error("serve: cannot listen on ", where, ": ", gai_strerror(rc), " (give a numeric address)");
    listen_fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool ok = listen_fd >= 0 && bind(listen_fd, found->ai_addr, found->ai_addrlen) == 0 &&
                    ::listen(listen_fd, SOMAXCONN) == 0;
    const int error = errno;
    freeaddrinfo(found);
    if (!ok) {
      if (listen_fd >= 0) close(listen_fd);
      throw_error("serve: cannot listen on ", where, ": ", std::strerror(error));
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &length);
    port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  void accept_loop() {
    while (!stopping) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 || stopping || !(fds[0].revents & POLLIN)) continue;
      const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      connections.remove_if([](Connection& c) {
        if (!c.done) return false;
        c.thread.join();
        return true;
      });
      if (connections.size() >= kMaxConnections) {
        answer(fd, error_reply(503, "too many connections (" + std::to_string(kMaxConnections) + "): retry later",
                               {{"Retry-After", "1"}}),
               false);
        close_after_reply(fd);
        continue;
      }
      Connection& c = connections.emplace_back();
      c.thread = std::thread([this, fd, &c] {
        serve_connection(fd);
        c.done = true;
      });
    }
    close(listen_fd);
  }

  void answer(int fd, const Reply& reply, bool keep_alive) {
    metrics.count_response(reply.status);
    send_all(fd, http::format_response(reply.status, reply.content_type, reply.body, keep_alive, reply.headers));
  }

  // Reads until the parser holds a complete request (true). False when the connection is to close: the peer
  // closed or idled out, the server is stopping with no request started, or the request was refused (answered
  // here with the parser's status and message).
  bool read_request(int fd, http::Parser& parser) {
    Clock::time_point first_byte = Clock::now();
    char chunk[64 << 10];
    while (parser.state() == http::Parser::State::kIncomplete) {
      // Stopping, an idle connection closes unless its next request's bytes have already arrived.
      const bool idle = !parser.started(), closing = idle && stopping;
      const int timeout = closing ? 0
                          : idle  ? kIdleTimeoutMs
                                  : kRequestReadTimeoutMs - static_cast<int>(ms_between(first_byte, Clock::now()));
      pollfd fds[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      const int ready = poll(fds, idle && !closing ? 2 : 1, std::max(timeout, 0));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        if (!idle) answer(fd, error_reply(408, "the request was not complete within " +
                                                   std::to_string(kRequestReadTimeoutMs) + " ms"), false);
        return false;
      }
      if (!fds[0].revents) continue;  // woken by shutdown
      const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (parser.finish() == http::Parser::State::kError) answer(fd, error_reply(400, parser.error()), false);
        return false;
      }
      if (idle) first_byte = Clock::now();
      parser.feed(chunk, static_cast<size_t>(n));
    }
    if (parser.state() == http::Parser::State::kError) {
      answer(fd, error_reply(parser.error_status(), parser.error()), false);
      return false;
    }
    return true;
  }

  void serve_connection(int fd) {
    http::Parser parser(http::Parser::Kind::kRequest, {16 << 10, options.max_body_bytes});
    bool keep_alive = true;
    while (keep_alive && read_request(fd, parser)) {
      const http::Request request = parser.take_request();
      const Clock::time_point received = Clock::now();
      Reply reply;
      try {
        reply = route(request, received);
      } catch (const std::exception& e) {
        reply = error_reply(500, e.what());
      }
      keep_alive = request.keep_alive() && !stopping;
      answer(fd, reply, keep_alive);
      if (request.path == "/detect" && reply.status == 200)
        metrics.observe_latency(ms_between(received, Clock::now()) / 1000);
    }
    close_after_reply(fd);
  }

  Reply route(const http::Request& request, Clock::time_point received) {
    static const std::map<std::string, std::string> kMethods = {
        {"/", "GET"}, {"/detect", "POST"}, {"/healthz", "GET"}, {"/metrics", "GET"}, {"/selftest-image", "GET"}};
    auto known = kMethods.find(request.path);
    if (known == kMethods.end())
      return error_reply(404, "no such path '" + request.path + "' (there are /, /detect, /healthz and /metrics)");
    if (request.method != known->second)
      return error_reply(405, request.method + " is not allowed on " + request.path + ": use " + known->second,
                         {{"Allow", known->second}});
    if (request.path == "/detect") return detect(request, received);
    if (request.path == "/") return {200, "text/html; charset=utf-8", web_page(), {}};
    if (request.path == "/healthz")
      return {200, "application/json",
              nlohmann::json{{"status", stopping ? "stopping" : "ok"}, {"engine", description}}.dump() + "\n", {}};
    if (request.path == "/metrics")
      return {200, "text/plain; version=0.0.4", render_metrics(), {}};
    if (options.selftest_image.empty())
      return error_reply(404, "no self-test image: start the server with --selftest-image FILE");
    return {200, "application/octet-stream", options.selftest_image, {{"Cache-Control", "no-store"}}};
  }

  Reply detect(const http::Request& request, Clock::time_point received) {
    if (request.body.empty()) return error_reply(400, "empty body: POST the bytes of a JPEG, PNG or BMP image");
    const Clock::time_point deadline = received + std::chrono::milliseconds(options.timeout_ms);
    std::optional<std::future<east::PipelineResult>> future = least_loaded().try_submit_bytes(
        std::vector<uint8_t>(request.body.begin(), request.body.end()), "request body", deadline);
    if (!future)
      return error_reply(503, "the queue is full (" + std::to_string(options.queue) + " requests" +
                                  (pipelines.size() > 1 ? " in each of " + std::to_string(pipelines.size()) + " pipelines" : "") +
                                  "): retry later",
                         {{"Retry-After", "1"}});
    const east::PipelineResult result = future->get();  // every submitted input gets one: boxes or a failure
    const double total_ms = ms_between(received, Clock::now());
    switch (result.failure) {
      case east::Failure::kNone:
        return {200, "application/json", detection_json(result, total_ms), {}};
      case east::Failure::kInput:
        return error_reply(400, result.error);
      case east::Failure::kDeadline:
        return error_reply(504, "the request waited " + std::to_string(static_cast<int>(total_ms)) +
                                    " ms without reaching the network, longer than the timeout of " +
                                    std::to_string(options.timeout_ms) + " ms");
      default:
        return error_reply(500, result.error);
    }
  }

  void shutdown() {
    std::lock_guard<std::mutex> lock(shutdown_mutex);
    if (shut_down) return;
    shut_down = true;
    stopping = true;
    if (write(wake[1], "x", 1) < 0) {}  // a full pipe is already readable
    acceptor.join();
    for (Connection& c : connections) c.thread.join();  // each answers what it accepted; the pipelines still run
    pipelines.clear();                                  // nothing left in them; their threads stop
    close(wake[0]);
    close(wake[1]);
  }
};

Server::Server(ServerOptions options, Runner& runner) : Server(std::move(options), std::vector<Runner*>{&runner}) {}
Server::Server(ServerOptions options, const std::vector<Runner*>& runners)
    : impl_(std::make_unique<Impl>(std::move(options), runners)) {}
Server::~Server() { shutdown(); }
int Server::port() const { return impl_->port; }
const std::string& Server::engine_description() const { return impl_->description; }
void Server::shutdown() { impl_->shutdown(); }

}  // namespace eastrt::serve
