#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace y7 {

namespace {

class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return int(workers_.size()) + 1; }

  void run(int64_t chunks, const std::function<void(int64_t)>& body) {
    std::unique_lock<std::mutex> l(run_m_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> g(m_);
      body_ = &body;
      chunks_ = chunks;
      next_ = 0;
      pending_ = chunks;
      ++gen_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> g(m_);
    done_cv_.wait(g, [this] { return pending_ == 0; });
    body_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= chunks_) return;
      (*body_)(i);
      if (pending_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> g(m_);
        done_cv_.notify_all();
      }
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [&] { return stop_ || (gen_ != seen && body_ != nullptr); });
        if (stop_) return;
        seen = gen_;
      }
      work();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex m_, run_m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* body_ = nullptr;
  std::atomic<int64_t> next_{0}, pending_{0};
  int64_t chunks_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

std::mutex g_pool_m;
std::unique_ptr<Pool> g_pool;
int g_threads = 0;
thread_local bool t_in_parallel = false;

Pool& pool() {
  std::lock_guard<std::mutex> l(g_pool_m);
  if (!g_pool) {
    int n = g_threads > 0 ? g_threads : int(std::max(1u, std::thread::hardware_concurrency()));
    g_pool = std::make_unique<Pool>(n);
  }
  return *g_pool;
}

}  // namespace

void set_num_threads(int n) {
  std::lock_guard<std::mutex> l(g_pool_m);
  g_threads = n;
  g_pool.reset();
#ifdef _OPENMP
  omp_set_num_threads(n > 0 ? n : int(std::max(1u, std::thread::hardware_concurrency())));
#endif
}

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return pool().size();
#endif
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
#ifdef _OPENMP
  // With OpenMP (which oneDNN also runs on) one team serves both: a second pool would
  // oversubscribe the cores while OpenMP's workers spin between oneDNN primitives.
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(nt) * 4);
  if (chunks <= 1 || nt <= 1) {
    f(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) f(c * per, std::min(n, (c + 1) * per));
#else
  Pool& p = pool();
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(p.size()) * 4);
  if (chunks <= 1 || t_in_parallel || p.size() == 1) {
    f(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  p.run(chunks, [&](int64_t c) {
    bool prev = t_in_parallel;
    t_in_parallel = true;
    f(c * per, std::min(n, (c + 1) * per));
    t_in_parallel = prev;
  });
#endif
}

}  // namespace y7
