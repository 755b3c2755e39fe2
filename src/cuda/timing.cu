// A kernel that keeps the stream busy for a while: timed work queued behind it starts the moment it ends,
// so device events around that work measure the GPU's time alone, not the host's launch latency.
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace eastrt::cuda {
namespace {

__device__ unsigned long long global_nanoseconds() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void busy_wait_kernel(unsigned long long nanoseconds) {
  const unsigned long long start = global_nanoseconds();
  while (global_nanoseconds() - start < nanoseconds) {
  }
}

}  // namespace

void launch_busy_wait(int microseconds, cudaStream_t stream) {
  busy_wait_kernel<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(microseconds) * 1000ull);
  EASTRT_LAUNCHED("busy_wait_kernel");
}

}  // namespace eastrt::cuda
