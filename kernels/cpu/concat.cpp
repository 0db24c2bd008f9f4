// Concatenation along any dim into a fresh contiguous tensor. Contiguous inputs are copied as
// blocks of prod(sizes[dim:]) elements (one memcpy per outer index); other inputs go through the
// generic strided copy.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
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
  Tensor y = Tensor::empty(shape, x0.dtype());
  if (y.numel() == 0) return y;

  const size_t es = dtype_size(x0.dtype());
  int64_t outer = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  const int64_t row = y.numel() / outer;  // elements of one outer index in y
  char* py = static_cast<char*>(y.raw_data());

  const int64_t inner = row / shape[dim];  // elements of one index along dim
  int64_t pos = 0;                         // where the current input starts along dim
  for (const Tensor& t : xs) {
    const int64_t n = t.size(dim) * inner;  // elements of one outer index in t
    const int64_t off = pos * inner;
    pos += t.size(dim);
    if (n == 0) continue;
    if (t.is_contiguous()) {
      const char* src = static_cast<const char*>(t.raw_data());
      const int64_t bytes = n * int64_t(es);
      parallel_for(outer, std::max<int64_t>(1, (1 << 16) / bytes), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o)
          std::memcpy(py + (o * row + off) * int64_t(es), src + o * bytes, size_t(bytes));
      });
    } else {
      y.slice(dim, pos - t.size(dim), pos).copy_(t);
    }
  }
  return y;
}

}  // namespace y7::ops
