// What many test files need: run the built tool, seeded random tensors, and an Error's message.
#pragma once
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "eastrt/error.h"
#include "eastrt/tensor.h"

namespace eastrt::test_support {

struct ToolResult {
  int status;
  std::string output;
};

// Runs the built `eastrt` with the arguments; captures stdout (and stderr unless with_stderr is false).
inline ToolResult run_tool(const std::string& arguments, bool with_stderr = true) {
  std::string command = std::string(EASTRT_TOOL) + " " + arguments + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe.release());
  return {WEXITSTATUS(status), output};
}

inline HostTensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  HostTensor t(shape);
  for (float& v : t.data) v = dist(rng);
  return t;
}

inline Weights random_weights(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  return std::make_shared<const HostTensor>(random_tensor(shape, rng, lo, hi));
}

// ‖got − want‖₂ / ‖want‖₂; a NaN or a shape mismatch is infinitely wrong.
inline double relative_error(const HostTensor& got, const HostTensor& want) {
  if (got.shape != want.shape || got.size() != want.size()) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got.data[i]) - want.data[i];
    if (std::isnan(d)) return INFINITY;
    diff += d * d;
    norm += static_cast<double>(want.data[i]) * want.data[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// The message of the Error f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace eastrt::test_support
