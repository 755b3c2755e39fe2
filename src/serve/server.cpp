// The server: an acceptor thread, a thread per connection (parse, route, answer, keep-alive), one bounded
// queue of detection jobs and a worker thread per stream that batches them onto its engine.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/error.h"
#include "eastrt/http.h"
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

// What a worker hands back for one job: the network's maps, or the answer when there are none (504, 500).
// The connection thread decodes the maps into boxes, so that decoding, on the CPU, overlaps the next batch.
struct NetworkOutcome {
  std::optional<Reply> refusal;
  EastMaps maps;
  east::ResizePlan plan;
  int batch = 0;
  double queue_ms = 0, preprocess_ms = 0, network_ms = 0;
};

NetworkOutcome refused(Reply reply) {
  NetworkOutcome outcome;
  outcome.refusal = std::move(reply);
  return outcome;
}

// One POST /detect between its connection thread and a worker.
struct Job {
  east::Image image;
  Clock::time_point received, enqueued;
  std::promise<NetworkOutcome> outcome;
};
using JobPtr = std::shared_ptr<Job>;

class JobQueue {
 public:
  explicit JobQueue(size_t capacity) : capacity_(capacity) {}

  bool try_push(JobPtr job) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || jobs_.size() >= capacity_) return false;
    jobs_.push_back(std::move(job));
    ready_.notify_one();
    return true;
  }

  // Waits for a first job, then takes more until max_batch or until max_delay after the first was queued
  // (a job that already waited that long goes at once). Empty once closed and drained.
  std::vector<JobPtr> take_batch(int max_batch, std::chrono::microseconds max_delay) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !jobs_.empty(); });
    std::vector<JobPtr> batch;
    if (jobs_.empty()) return batch;
    const Clock::time_point deadline = jobs_.front()->enqueued + max_delay;
    while (static_cast<int>(batch.size()) < max_batch) {
      if (jobs_.empty() && (closed_ || !ready_.wait_until(lock, deadline, [&] { return closed_ || !jobs_.empty(); })))
        break;
      if (jobs_.empty()) break;
      batch.push_back(std::move(jobs_.front()));
      jobs_.pop_front();
    }
    return batch;
  }

  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    ready_.notify_all();
  }

  size_t depth() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<JobPtr> jobs_;
  bool closed_ = false;
};

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

std::string detection_json(const std::vector<east::Quad>& boxes, const east::Image& image,
                           const NetworkOutcome& outcome, double image_decode_ms, double box_decode_ms,
                           double total_ms) {
  nlohmann::json list = nlohmann::json::array();
  for (const east::Quad& q : boxes) {
    nlohmann::json points = nlohmann::json::array();
    for (const east::Point& p : q.points) points.push_back({p.x, p.y});
    list.push_back({{"points", points}, {"score", q.score}});
  }
  nlohmann::json out{{"boxes", list},
                     {"width", image.width},
                     {"height", image.height},
                     {"batch", outcome.batch},
                     {"timings_ms",
                      {{"queue", outcome.queue_ms},
                       {"preprocess", image_decode_ms + outcome.preprocess_ms},
                       {"network", outcome.network_ms},
                       {"decode", box_decode_ms},
                       {"total", total_ms}}}};
  return out.dump() + "\n";
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::vector<std::unique_ptr<BatchEngine>> engines;
  std::string description;
  JobQueue queue;
  Metrics metrics;
  int listen_fd = -1, port = 0;
  int wake[2] = {-1, -1};  // written once at shutdown; its read end stays readable and wakes every poll
  std::atomic<bool> stopping{false};
  std::thread acceptor;
  std::vector<std::thread> workers;
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Connection> connections;  // touched by the acceptor only, until shutdown joins them
  std::mutex shutdown_mutex;
  bool shut_down = false;

  Impl(ServerOptions o, const EngineFactory& factory)
      : options(std::move(o)), queue(static_cast<size_t>(std::max(options.queue, 1))) {
    EASTRT_CHECK(options.streams >= 1 && options.max_batch >= 1 && options.queue >= 1 && options.max_delay_ms >= 0 &&
                     options.timeout_ms >= 1,
                 "serve: streams, max batch, queue and timeout must be at least 1, max delay at least 0");
    for (int s = 0; s < options.streams; ++s) engines.push_back(factory(s));
    description = engines[0]->description();
    if (options.streams > 1) description += " × " + std::to_string(options.streams) + " streams";
    listen_on(options.host, options.port);
    EASTRT_CHECK(pipe2(wake, O_CLOEXEC) == 0, "serve: pipe: ", std::strerror(errno));
    for (auto& engine : engines) workers.emplace_back([this, e = engine.get()] { work(*e); });
    acceptor = std::thread([this] { accept_loop(); });
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
      return {200, "text/plain; version=0.0.4", metrics.render(queue.depth(), queue.capacity()), {}};
    if (options.selftest_image.empty())
      return error_reply(404, "no self-test image: start the server with --selftest-image FILE");
    return {200, "application/octet-stream", options.selftest_image, {{"Cache-Control", "no-store"}}};
  }

  Reply detect(const http::Request& request, Clock::time_point received) {
    if (request.body.empty()) return error_reply(400, "empty body: POST the bytes of a JPEG, PNG or BMP image");
    auto job = std::make_shared<Job>();
    job->received = received;
    try {
      job->image = east::decode_image(reinterpret_cast<const uint8_t*>(request.body.data()), request.body.size(),
                                      "request body");
    } catch (const Error& e) {
      return error_reply(400, e.what());
    }
    job->enqueued = Clock::now();
    std::future<NetworkOutcome> future = job->outcome.get_future();
    if (!queue.try_push(job))
      return error_reply(503, "the queue is full (" + std::to_string(queue.capacity()) + " requests): retry later",
                         {{"Retry-After", "1"}});
    const NetworkOutcome outcome = future.get();  // every queued job gets one: maps, or a 504 or 500
    if (outcome.refusal) return *outcome.refusal;
    const Clock::time_point decode_start = Clock::now();
    const std::vector<east::Quad> boxes =
        east::detect_boxes(outcome.maps.score, outcome.maps.geometry, outcome.plan.ratio_h, outcome.plan.ratio_w,
                           options.detect);
    const Clock::time_point done = Clock::now();
    return {200, "application/json",
            detection_json(boxes, job->image, outcome, ms_between(received, job->enqueued),
                           ms_between(decode_start, done), ms_between(received, done)),
            {}};
  }

  void work(BatchEngine& engine) {
    const int max_batch = std::min(options.max_batch, engine.max_batch());
    const auto delay = std::chrono::microseconds(static_cast<int64_t>(options.max_delay_ms * 1000));
    for (std::vector<JobPtr> jobs; !(jobs = queue.take_batch(max_batch, delay)).empty();) run_batch(engine, jobs);
  }

  // Images of different sizes are grouped by their network input size, one network run per group, rather
  // than padded to a common size: padding would change what the network sees at the image's right and
  // bottom edges (and the re-scoring inside boxes), so a batched answer would differ from east::Detector's
  // on the same image. The CPU engine runs any size at no cost; traffic of one image size, the common case
  // for a service, batches fully either way.
  void run_batch(BatchEngine& engine, const std::vector<JobPtr>& jobs) {
    const Clock::time_point start = Clock::now();
    std::map<std::pair<int, int>, std::vector<std::pair<JobPtr, east::ResizePlan>>> groups;
    for (const JobPtr& job : jobs) {
      const double waited = ms_between(job->enqueued, start);
      if (waited > options.timeout_ms) {
        const std::string message = "the request waited " + std::to_string(static_cast<int>(waited)) +
                                    " ms in the queue, longer than the timeout of " +
                                    std::to_string(options.timeout_ms) + " ms";
        job->outcome.set_value(refused(error_reply(504, message)));
        continue;
      }
      const east::ResizePlan plan = engine.plan(job->image);
      groups[{plan.height, plan.width}].emplace_back(job, plan);
    }
    for (auto& [size, group] : groups) {
      const Clock::time_point group_start = Clock::now();
      std::vector<const east::Image*> images;
      for (const auto& item : group) images.push_back(&item.first->image);
      BatchTimes times;
      std::vector<EastMaps> maps;
      try {
        maps = engine.run(images, size.first, size.second, &times);
      } catch (const std::exception& e) {
        for (auto& item : group) item.first->outcome.set_value(refused(error_reply(500, std::string("network: ") + e.what())));
        continue;
      }
      metrics.observe_batch(static_cast<int>(group.size()));
      for (size_t i = 0; i < group.size(); ++i) {
        const auto& [job, plan] = group[i];
        job->outcome.set_value({std::nullopt, std::move(maps[i]), plan, static_cast<int>(group.size()),
                                ms_between(job->enqueued, group_start), times.preprocess_ms, times.network_ms});
      }
    }
  }

  void shutdown() {
    std::lock_guard<std::mutex> lock(shutdown_mutex);
    if (shut_down) return;
    shut_down = true;
    stopping = true;
    if (write(wake[1], "x", 1) < 0) {}  // a full pipe is already readable
    acceptor.join();
    for (Connection& c : connections) c.thread.join();  // each answers what it accepted; workers still run
    queue.close();
    for (std::thread& w : workers) w.join();
    close(wake[0]);
    close(wake[1]);
  }
};

Server::Server(ServerOptions options, const EngineFactory& engines)
    : impl_(std::make_unique<Impl>(std::move(options), engines)) {}
Server::~Server() { shutdown(); }
int Server::port() const { return impl_->port; }
const std::string& Server::engine_description() const { return impl_->description; }
void Server::shutdown() { impl_->shutdown(); }

}  // namespace eastrt::serve
