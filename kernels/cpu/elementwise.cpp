// Binary elementwise ops (add, mul) with numpy broadcasting.
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

// Broadcast strides of t against `shape` (right-aligned; broadcast dims get stride 0).
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  int64_t lead = int64_t(shape.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d) st[lead + d] = t.size(d) == 1 ? 0 : t.stride(d);
  return st;
}

template <typename Op>
Tensor binary(const Tensor& a, const Tensor& b, const char* name, Op op) {
  detail::check_f32(a, name, "first operand");
  detail::check_f32(b, name, "second operand");
  int64_t nd = std::max(a.dim(), b.dim());
  Shape shape(nd);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t da = i - (nd - a.dim()), db = i - (nd - b.dim());
    int64_t sa = da >= 0 ? a.size(da) : 1, sb = db >= 0 ? b.size(db) : 1;
    Y7_CHECK(sa == sb || sa == 1 || sb == 1, name, ": shapes ", shape_str(a.sizes()), " and ",
             shape_str(b.sizes()), " do not broadcast");
    shape[i] = sa == 1 ? sb : sa;
  }
  Tensor y = detail::empty_like_format(shape, a.sizes() == shape ? a : b);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  detail::for_each_run<3>(
      shape, {y.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)}, 1 << 15,
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        float* o = py + off[0];
        const float* x = pa + off[1];
        const float* z = pb + off[2];
        if (st[1] == 1 && st[2] == 1) {
          for (int64_t i = 0; i < n; ++i) o[i] = op(x[i], z[i]);
        } else if (st[1] == 1 && st[2] == 0) {
          const float c = *z;
          for (int64_t i = 0; i < n; ++i) o[i] = op(x[i], c);
        } else if (st[1] == 0 && st[2] == 1) {
          const float c = *x;
          for (int64_t i = 0; i < n; ++i) o[i] = op(c, z[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i] = op(x[i * st[1]], z[i * st[2]]);
        }
      });
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(a, b, "add", [](float x, float y) { return x + y; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, "mul", [](float x, float y) { return x * y; });
}

}  // namespace y7::ops
