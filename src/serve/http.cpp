// HTTP/1.1 messages: the incremental parser (RFC 9112's grammar, strictly: CRLF line ends, no folding,
// one agreed Content-Length), response formatting and the blocking loopback client.
#include "eastrt/http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "eastrt/error.h"

namespace eastrt::http {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t"), end = s.find_last_not_of(" \t");
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

// RFC 9110's tchar: what a method or a header name may contain.
bool is_token(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c))) return false;
  return true;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool has_control(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

// "HTTP/1.1" → 1; -1 for another major or minor version, -2 for text that is not a version at all.
int parse_version(const std::string& text) {
  if (text.size() != 8 || text.compare(0, 5, "HTTP/") != 0 || !std::isdigit(static_cast<unsigned char>(text[5])) ||
      text[6] != '.' || !std::isdigit(static_cast<unsigned char>(text[7])))
    return -2;
  if (text[5] != '1' || (text[7] != '0' && text[7] != '1')) return -1;
  return text[7] - '0';
}

}  // namespace

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

bool Request::keep_alive() const {
  const std::string connection = lower(header("connection"));
  if (minor_version == 0) return connection.find("keep-alive") != std::string::npos;
  return connection.find("close") == std::string::npos;
}

Parser::Parser(Kind kind, Limits limits) : kind_(kind), limits_(limits) {}

Parser::State Parser::fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_ = std::move(message);
  return state_;
}

Parser::State Parser::feed(const char* data, size_t size) {
  if (state_ == State::kError) return state_;
  buffer_.append(data, size);
  return state_ == State::kComplete ? state_ : parse();
}

Parser::State Parser::finish() {
  if (state_ != State::kIncomplete || buffer_.empty()) return state_;
  if (!have_head_)
    return fail(400, "truncated request: the connection closed before the blank line that ends the headers");
  if (kind_ == Kind::kResponse && content_length_ == SIZE_MAX) {  // a body delimited by the close
    response_.body = buffer_.substr(body_start_);
    buffer_.clear();
    return state_ = State::kComplete;
  }
  return fail(400, "truncated body: the connection closed after " + std::to_string(buffer_.size() - body_start_) +
                       " of the " + std::to_string(content_length_) + " bytes of Content-Length");
}

bool Parser::parse_start_line(const std::string& line) {
  const size_t a = line.find(' '), b = a == std::string::npos ? a : line.find(' ', a + 1);
  if (b == std::string::npos) {
    fail(400, "malformed start line '" + line.substr(0, 80) + "': expected three parts separated by spaces");
    return false;
  }
  const std::string first = line.substr(0, a), second = line.substr(a + 1, b - a - 1), third = line.substr(b + 1);
  if (kind_ == Kind::kResponse) {
    response_.status = second.size() == 3 && all_digits(second) ? std::stoi(second) : 0;
    response_.reason = third;
    if (parse_version(first) < 0 || response_.status < 100) {
      fail(400, "malformed status line '" + line.substr(0, 80) + "'");
      return false;
    }
    return true;
  }
  if (!is_token(first)) {
    fail(400, "malformed request line: method '" + first.substr(0, 40) + "' is not a token");
    return false;
  }
  if (second.empty() || second[0] != '/' || has_control(second) || second.find(' ') != std::string::npos) {
    fail(400, "malformed request line: the target must be a path starting with '/', got '" + second.substr(0, 80) + "'");
    return false;
  }
  const int minor = parse_version(third);
  if (minor < 0) {
    if (minor == -1) fail(505, "HTTP version '" + third + "' is not supported (HTTP/1.0 and HTTP/1.1 are)");
    else fail(400, "malformed request line: expected HTTP/1.1 at its end, got '" + third.substr(0, 40) + "'");
    return false;
  }
  request_.method = first;
  request_.target = second;
  const size_t q = second.find('?');
  request_.path = second.substr(0, q);
  request_.query = q == std::string::npos ? "" : second.substr(q + 1);
  request_.minor_version = minor;
  return true;
}

Parser::State Parser::parse_headers(size_t end) {
  std::map<std::string, std::string>& headers = kind_ == Kind::kRequest ? request_.headers : response_.headers;
  size_t pos = 0;
  bool first_line = true;
  while (pos < end) {
    size_t eol = buffer_.find("\r\n", pos);
    const std::string line = buffer_.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.find_first_of("\r\n") != std::string::npos || line.find('\0') != std::string::npos)
      return fail(400, "malformed header block: a bare CR, LF or NUL inside a line (lines end with CRLF)");
    if (first_line) {
      first_line = false;
      if (!parse_start_line(line)) return state_;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') return fail(400, "malformed header: folded (obsolete) header lines are refused");
    const size_t colon = line.find(':');
    const std::string name = lower(line.substr(0, colon));
    if (colon == std::string::npos || !is_token(name))
      return fail(400, "malformed header line '" + line.substr(0, 80) + "': expected 'Name: value'");
    const std::string value = trim(line.substr(colon + 1));
    if (has_control(value)) return fail(400, "malformed header " + name + ": control characters in its value");
    auto [it, inserted] = headers.emplace(name, value);
    if (!inserted) {
      if (name == "content-length" && it->second != value)
        return fail(400, "conflicting Content-Length headers ('" + it->second + "' and '" + value + "')");
      if (name != "content-length") it->second += ", " + value;  // RFC 9110: repeated fields join with commas
    }
  }
  if (kind_ == Kind::kRequest && request_.minor_version == 1 && !headers.count("host"))
    return fail(400, "missing Host header (required in HTTP/1.1)");
  if (headers.count("transfer-encoding"))
    return fail(501, "Transfer-Encoding '" + headers["transfer-encoding"] +
                         "' is not supported: send the body with a Content-Length");
  if (auto it = headers.find("content-length"); it != headers.end()) {
    const std::string& text = it->second;
    if (text.size() > 18 || !all_digits(text))
      return fail(400, "malformed Content-Length '" + text.substr(0, 40) + "': expected a decimal byte count");
    content_length_ = std::stoull(text);
    if (kind_ == Kind::kRequest && content_length_ > limits_.max_body_bytes)
      return fail(413, "body of " + text + " bytes is larger than the limit of " +
                           std::to_string(limits_.max_body_bytes) + " bytes");
  } else {
    // Requests without Content-Length have no body; responses then run to the end of the connection.
    content_length_ = kind_ == Kind::kRequest ? 0 : SIZE_MAX;
  }
  have_head_ = true;
  body_start_ = end + 4;
  return state_;
}

Parser::State Parser::parse() {
  if (!have_head_) {
    const size_t end = buffer_.find("\r\n\r\n");
    if ((end == std::string::npos ? buffer_.size() : end + 4) > limits_.max_header_bytes)
      return fail(431, "request line and headers are longer than the limit of " +
                           std::to_string(limits_.max_header_bytes) + " bytes");
    if (end == std::string::npos) return state_;
    if (parse_headers(end) == State::kError) return state_;
  }
  if (content_length_ != SIZE_MAX && buffer_.size() - body_start_ >= content_length_) {
    (kind_ == Kind::kRequest ? request_.body : response_.body) = buffer_.substr(body_start_, content_length_);
    state_ = State::kComplete;
  }
  return state_;
}

Request Parser::take_request() {
  EASTRT_CHECK(state_ == State::kComplete && kind_ == Kind::kRequest, "http::Parser: no complete request to take");
  Request request = std::move(request_);
  buffer_.erase(0, body_start_ + content_length_);
  request_ = {};
  have_head_ = false;
  state_ = State::kIncomplete;
  if (!buffer_.empty()) parse();
  return request;
}

Response Parser::take_response() {
  EASTRT_CHECK(state_ == State::kComplete && kind_ == Kind::kResponse, "http::Parser: no complete response to take");
  Response response = std::move(response_);
  buffer_.clear();  // one response per connection: the client closes after it
  response_ = {};
  have_head_ = false;
  state_ = State::kIncomplete;
  return response;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string format_response(int status, const std::string& content_type, const std::string& body, bool keep_alive,
                            const std::map<std::string, std::string>& extra_headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [name, value] : extra_headers) out += name + ": " + value + "\r\n";
  return out + "\r\n" + body;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Response call(const std::string& host, int port, const std::string& method, const std::string& target,
              const std::string& body, int timeout_ms, const std::map<std::string, std::string>& headers) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw_error("cannot resolve ", host, ": ", gai_strerror(rc));
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool connected = fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0;
  const int connect_errno = errno;
  freeaddrinfo(found);
  struct Closer {
    int fd;
    ~Closer() { if (fd >= 0) close(fd); }
  } closer{fd};
  EASTRT_CHECK(connected, "cannot connect to ", where, ": ", std::strerror(connect_errno));

  auto wait_for = [&](short events, const char* what) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now()).count());
    pollfd p{fd, events, 0};
    EASTRT_CHECK(left > 0 && poll(&p, 1, left) > 0, "timed out after ", timeout_ms, " ms ", what, " ", where);
  };
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + where + "\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n" + body;
  // A server may answer before reading the whole body (413) and close; the answer is still read below.
  for (size_t sent = 0; sent < request.size();) {
    wait_for(POLLOUT, "sending to");
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  Parser parser(Parser::Kind::kResponse);
  char chunk[64 << 10];
  while (parser.state() == Parser::State::kIncomplete) {
    wait_for(POLLIN, "waiting for the response of");
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    EASTRT_CHECK(n >= 0 || parser.started(), "connection to ", where, " failed: ", std::strerror(errno));
    if (n <= 0) {
      parser.finish();
      EASTRT_CHECK(parser.started(), "connection to ", where, " closed without a response");
      break;
    }
    parser.feed(chunk, static_cast<size_t>(n));
  }
  EASTRT_CHECK(parser.state() == Parser::State::kComplete, "malformed response from ", where, ": ", parser.error());
  return parser.take_response();
}

}  // namespace eastrt::http
