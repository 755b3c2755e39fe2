// A fixed pool of worker threads with one primitive, parallel_for, used by the fast CPU kernels.
// The caller's thread works too, so a pool of size n runs n threads in all.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace eastrt::cpu {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Calls body(begin, end) on disjoint chunks covering [0, count), each at least `grain` long (except the
  // last), spread over the pool; returns when all are done. The first exception a chunk throws is
  // rethrown here. A call made from inside a body, or while another thread's call is running, runs
  // serially on the calling thread: the pool never has more than size() threads busy.
  void parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body, int64_t grain = 1);

  // A process-wide pool of the given size (created on first use), so engines need not own threads.
  static ThreadPool& shared(int threads);

 private:
  void worker_loop();
  void run_chunks();

  int size_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the one caller whose job the pool is running

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;  // bumped for every job; a worker runs each generation once
  bool stopping_ = false;
  int busy_ = 0;             // workers still inside the current job

  // The current job.
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0, chunk_ = 1;
  std::atomic_int64_t next_{0};
  std::exception_ptr error_;
};

}  // namespace eastrt::cpu
