#include "kernels/cpu/dnnl_util.h"

#ifdef Y7_USE_DNNL
#include <cstdlib>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace y7::ops::dnnl_util {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::desc md_of(const Tensor& t) {
  Y7_CHECK(t.dtype() == DType::F32, "oneDNN: expected a float32 tensor, got ", t.str());
  dnnl::memory::dims dims(t.sizes().begin(), t.sizes().end());
  dnnl::memory::dims strides(t.strides().begin(), t.strides().end());
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
}

dnnl::memory mem_of(const dnnl::memory::desc& md, const Tensor& t) {
  return dnnl::memory(md, engine(), t.raw_data());
}

dnnl::memory mem_of(const Tensor& t) { return mem_of(md_of(t), t); }

namespace {
struct Buf {
  void* p = nullptr;
  size_t n = 0;
  ~Buf() { std::free(p); }
};
}  // namespace

void* scratch(int slot, size_t bytes) {
  thread_local Buf bufs[4];
  Y7_CHECK(slot >= 0 && slot < 4, "scratch: bad slot ", slot);
  Buf& b = bufs[slot];
  if (b.n < bytes) {
    std::free(b.p);
    b.p = nullptr;
    b.n = 0;
    size_t n = (bytes + 63) / 64 * 64;
    b.p = std::aligned_alloc(64, n);
    Y7_CHECK(b.p != nullptr, "out of memory allocating ", n, " bytes of scratch");
    b.n = n;
  }
  return b.p;
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace y7::ops::dnnl_util
#endif
