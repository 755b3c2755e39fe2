// The one error type of eastrt: a message a user can act on (the file, the layer, what was expected).
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace eastrt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: throw_error("layer ", name, ": expected ", a).
template <typename... Parts>
[[noreturn]] void throw_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw Error(out.str());
}

#define EASTRT_CHECK(cond, ...)                  \
  do {                                           \
    if (!(cond)) ::eastrt::throw_error(__VA_ARGS__); \
  } while (0)

}  // namespace eastrt
