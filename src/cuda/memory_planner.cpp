// The activation memory planner (see memory_planner.h).
#include "cuda/memory_planner.h"

#include <algorithm>
#include <numeric>

#include "eastrt/error.h"

namespace eastrt::gpu {

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, int64_t alignment) {
  EASTRT_CHECK(alignment > 0, "plan_memory: alignment must be positive");
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Largest first: the big tensors of the early layers fix the shape of the buffer, the small ones fill gaps.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
    return requests[a].first < requests[b].first;
  });
  auto align = [&](int64_t v) { return (v + alignment - 1) / alignment * alignment; };

  std::vector<size_t> placed;
  for (size_t i : order) {
    const BufferRequest& r = requests[i];
    EASTRT_CHECK(r.bytes >= 0 && r.first <= r.last, "plan_memory: request ", i, " has ", r.bytes, " bytes over steps ",
                 r.first, "..", r.last);
    // The placed buffers alive at the same time, by offset; the request goes in the first gap it fits.
    std::vector<std::pair<int64_t, int64_t>> busy;  // [begin, end)
    for (size_t j : placed) {
      const BufferRequest& q = requests[j];
      if (q.first <= r.last && r.first <= q.last) busy.emplace_back(plan.offsets[j], plan.offsets[j] + align(q.bytes));
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + align(r.bytes) <= begin) break;
      offset = std::max(offset, end);
    }
    plan.offsets[i] = offset;
    plan.total_bytes = std::max(plan.total_bytes, offset + align(r.bytes));
    placed.push_back(i);
  }
  return plan;
}

}  // namespace eastrt::gpu
