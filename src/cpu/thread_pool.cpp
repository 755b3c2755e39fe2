// The fixed worker pool behind the fast CPU kernels (see thread_pool.h).
#include "cpu/thread_pool.h"

#include <algorithm>
#include <map>
#include <memory>

namespace eastrt::cpu {
namespace {
// True on pool workers and on a caller while it runs its own job: a nested parallel_for then runs
// serially instead of waiting for workers that are busy with the outer one.
thread_local bool inside_pool_job = false;
}  // namespace

ThreadPool::ThreadPool(int threads)
    : size_(threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::worker_loop() {
  inside_pool_job = true;
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_chunks();
    std::lock_guard<std::mutex> lock(mutex_);
    if (--busy_ == 0) done_.notify_one();
  }
}

void ThreadPool::run_chunks() {
  for (;;) {
    const int64_t begin = next_.fetch_add(chunk_);
    if (begin >= count_) return;
    try {
      (*body_)(begin, std::min(count_, begin + chunk_));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(count_);  // stop handing out chunks
    }
  }
}

void ThreadPool::parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body,
                              int64_t grain) {
  if (count <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (size_ == 1 || count <= grain || inside_pool_job || !job_mutex_.try_lock()) {
    body(0, count);
    return;
  }
  std::lock_guard<std::mutex> job(job_mutex_, std::adopt_lock);
  // About four chunks per thread: small enough to even out uneven chunks, big enough to amortise the
  // atomic increment.
  body_ = &body;
  count_ = count;
  chunk_ = std::max(grain, (count + 4 * size_ - 1) / (4 * size_));
  next_.store(0);
  error_ = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  inside_pool_job = true;
  run_chunks();
  inside_pool_job = false;
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return busy_ == 0; });
  body_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

ThreadPool& ThreadPool::shared(int threads) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  std::lock_guard<std::mutex> lock(mutex);
  auto& pool = pools[threads];
  if (!pool) pool = std::make_unique<ThreadPool>(threads);
  return *pool;
}

}  // namespace eastrt::cpu
