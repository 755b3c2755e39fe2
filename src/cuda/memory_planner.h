// The activation memory planner: buffers whose lifetimes do not overlap share memory. Greedy by size
// (largest first), each at the lowest offset that overlaps no placed buffer alive at the same time.
#pragma once
#include <cstdint>
#include <vector>

namespace eastrt::gpu {

struct BufferRequest {
  int64_t bytes = 0;
  int first = 0, last = 0;  // steps, inclusive
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per request
  int64_t total_bytes = 0;
};

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, int64_t alignment = 256);

}  // namespace eastrt::gpu
