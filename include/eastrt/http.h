// The HTTP/1.1 that `eastrt serve` speaks, on POSIX sockets: an incremental parser for requests and
// responses (Content-Length bodies only), response formatting, and a small blocking client for loopback.
#pragma once
#include <cstddef>
#include <map>
#include <string>

namespace eastrt::http {

struct Request {
  std::string method;   // "GET", "POST"
  std::string target;   // as sent: "/detect?x=1"
  std::string path;     // target without the query: "/detect"
  std::string query;    // after '?', undecoded
  int minor_version = 1;  // HTTP/1.<minor>
  std::map<std::string, std::string> headers;  // names lower-cased; values trimmed
  std::string body;

  std::string header(const std::string& lower_name) const;
  bool keep_alive() const;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
};

struct Response {
  int status = 200;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct Limits {
  size_t max_header_bytes = 16 << 10;  // start line and headers; more is 431
  size_t max_body_bytes = 16 << 20;    // a larger Content-Length is 413, refused before the body is read
};

// Reads one message at a time from bytes as they arrive. A request parser refuses what a server must
// refuse, with the status to answer and a message naming the problem; bytes after a complete message
// (a pipelined request) are kept for the next one.
class Parser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class State { kIncomplete, kComplete, kError };

  explicit Parser(Kind kind, Limits limits = {});

  State feed(const char* data, size_t size);
  // The end of the stream: an incomplete message becomes an error naming what is missing.
  State finish();
  State state() const { return state_; }
  bool started() const { return !buffer_.empty() || state_ != State::kIncomplete; }

  int error_status() const { return error_status_; }  // 400, 413, 431, 411, 501, 505
  const std::string& error() const { return error_; }

  // After kComplete: the message, and the parser is ready for the next one (parsing any bytes kept).
  Request take_request();
  Response take_response();

 private:
  State fail(int status, std::string message);
  State parse();
  bool parse_start_line(const std::string& line);
  State parse_headers(size_t end);

  Kind kind_;
  Limits limits_;
  State state_ = State::kIncomplete;
  std::string buffer_;
  bool have_head_ = false;
  size_t body_start_ = 0, content_length_ = 0;
  Request request_;
  Response response_;
  int error_status_ = 0;
  std::string error_;
};

const char* reason_phrase(int status);

// The bytes of a response: status line, Content-Length, Content-Type, Connection and the extra headers.
std::string format_response(int status, const std::string& content_type, const std::string& body, bool keep_alive,
                            const std::map<std::string, std::string>& extra_headers = {});

// One request on a fresh connection (Connection: close) to a numeric host; the whole response, or an
// eastrt::Error saying what failed (connect, send, a timeout, a malformed response) after timeout_ms.
Response call(const std::string& host, int port, const std::string& method, const std::string& target,
              const std::string& body = "", int timeout_ms = 30000,
              const std::map<std::string, std::string>& headers = {});

// True for 127.0.0.0/8, ::1 and "localhost": where the load test and the tests may connect.
bool is_loopback(const std::string& host);

}  // namespace eastrt::http
