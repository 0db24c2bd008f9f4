// Concatenation along any dim into a fresh tensor, contiguous (or channels-last when the first
// input is). Contiguous inputs into a contiguous result are copied as blocks of prod(sizes[dim:])
// elements (one memcpy per outer index); everything else goes through a strided run copy.
#include <algorithm>
#include <cstring>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

// dst = src (same shape, same dtype of `es` bytes, any strides), in unit-stride runs where possible.
void copy_strided(const Tensor& dst, const Tensor& src, size_t es) {
  char* pd = static_cast<char*>(dst.raw_data());
  const char* ps = static_cast<const char*>(src.raw_data());
  const int64_t e = int64_t(es);
  detail::for_each_run<2>(dst.sizes(), {dst.strides(), src.strides()}, 1 << 14,
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            char* d = pd + off[0] * e;
                            const char* s = ps + off[1] * e;
                            if (st[0] == 1 && st[1] == 1) {
                              std::memcpy(d, s, size_t(n * e));
                            } else if (e == 4) {
                              for (int64_t i = 0; i < n; ++i)
                                std::memcpy(d + i * st[0] * 4, s + i * st[1] * 4, 4);
                            } else {
                              for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * st[0] * e, s + i * st[1] * e, es);
                            }
                          });
}

}  // namespace

namespace {
Tensor concat_impl(const std::vector<Tensor>& xs, int64_t dim);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  Tensor y = concat_impl(xs, dim);
  if (any_requires_grad(xs)) {
    const int64_t d = dim < 0 ? dim + xs[0].dim() : dim;
    std::vector<int64_t> len;
    std::vector<bool> need;
    std::vector<const Tensor*> ins;
    for (const Tensor& t : xs) {
      len.push_back(t.size(d));
      need.push_back(t.requires_grad());
      ins.push_back(&t);
    }
    record_fn("ConcatBackward", ins, y, [d, len, need](const std::vector<Tensor>& g) {
      std::vector<Tensor> r;
      int64_t off = 0;
      for (size_t i = 0; i < len.size(); ++i) {
        r.push_back(need[i] ? g[0].slice(d, off, off + len[i]) : Tensor());
        off += len[i];
      }
      return r;
    });
  }
  return y;
}

namespace {
Tensor concat_impl(const std::vector<Tensor>& xs, int64_t dim) {
  Y7_CHECK(!xs.empty(), "concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) {
    Y7_CHECK(xs[i].defined(), "concat: tensor ", i, " is undefined");
    Y7_CHECK(xs[i].device().is_cpu(), "concat: tensor ", i, " is not on the CPU");
  }
  const Tensor& x0 = xs[0];
  Y7_CHECK(x0.dim() >= 1, "concat: cannot concatenate 0-dim tensors");
  const int64_t nd = x0.dim();
  Y7_CHECK(dim >= -nd && dim < nd, "concat: dim ", dim, " out of range for rank ", nd);
  if (dim < 0) dim += nd;
  Shape shape = x0.sizes();
  shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    Y7_CHECK(t.dtype() == x0.dtype(), "concat: tensor ", i, " is ", t.str(), " but tensor 0 is ", x0.str());
    Y7_CHECK(t.dim() == nd, "concat: tensor ", i, " is ", t.str(), ", rank differs from ", x0.str());
    for (int64_t d = 0; d < nd; ++d)
      Y7_CHECK(d == dim || t.size(d) == x0.size(d), "concat: tensor ", i, " ", t.str(),
               " does not match ", x0.str(), " outside dim ", dim);
    shape[dim] += t.size(dim);
  }
  Tensor y = detail::empty_like_format(shape, x0, x0.dtype());
  if (y.numel() == 0) return y;
  const size_t es = dtype_size(x0.dtype());
  char* py = static_cast<char*>(y.raw_data());

  if (y.is_contiguous()) {
    // contiguous inputs: one block of prod(sizes[dim:]) elements per outer index
    int64_t outer = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
    const int64_t row = y.numel() / outer;   // elements of one outer index in y
    const int64_t inner = row / shape[dim];  // elements of one index along dim
    int64_t pos = 0;                         // where the current input starts along dim
    for (const Tensor& t : xs) {
      const int64_t n = t.size(dim) * inner;
      const int64_t off = pos * inner;
      pos += t.size(dim);
      if (n == 0) continue;
      if (!t.is_contiguous()) {
        copy_strided(y.slice(dim, pos - t.size(dim), pos), t, es);
        continue;
      }
      const char* src = static_cast<const char*>(t.raw_data());
      const int64_t bytes = n * int64_t(es);
      // blocks of at most 256 KiB so that a few large blocks (N = 1) still spread over threads
      const int64_t chunk = std::min<int64_t>(bytes, 1 << 18), per = (bytes + chunk - 1) / chunk;
      parallel_for(outer * per, std::max<int64_t>(1, (1 << 16) / chunk), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / per, c0 = (t % per) * chunk, len = std::min(chunk, bytes - c0);
          std::memcpy(py + (o * row + off) * int64_t(es) + c0, src + o * bytes + c0, size_t(len));
        }
      });
    }
  } else {  // channels-last output
    int64_t pos = 0;
    for (const Tensor& t : xs) {
      pos += t.size(dim);
      if (t.numel() == 0) continue;
      if (dim == 1 && detail::is_channels_last(t)) {
        // pixel p: C_t contiguous elements into the output's row of C_total at channel offset
        const int64_t ct = t.size(1), ctot = shape[1], pixels = t.numel() / ct;
        const char* src = static_cast<const char*>(t.raw_data());
        char* dst = py + (pos - ct) * int64_t(es);
        const int64_t bytes = ct * int64_t(es);
        parallel_for(pixels, std::max<int64_t>(1, (1 << 16) / bytes), [&](int64_t b, int64_t e) {
          for (int64_t q = b; q < e; ++q) std::memcpy(dst + q * ctot * int64_t(es), src + q * bytes, size_t(bytes));
        });
      } else {
        copy_strided(y.slice(dim, pos - t.size(dim), pos), t, es);
      }
    }
  }
  return y;
}

}  // namespace

}  // namespace y7::ops
