// A small fixed-size thread pool with a blocking parallel_for. Kernels call parallel_for; the pool
// size follows set_num_threads() (the CLI's --threads), which also sets oneDNN's OpenMP threads.
#pragma once
#include <cstdint>
#include <functional>

namespace y7 {

void set_num_threads(int n);  // n <= 0: hardware concurrency
int num_threads();

// Runs f(begin, end) over [0, n) split into chunks of at least `grain` items, on the pool and the
// calling thread; returns when all chunks are done. Nested calls run serially.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace y7
