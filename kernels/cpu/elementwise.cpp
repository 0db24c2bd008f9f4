// Binary elementwise ops (add, mul) with numpy broadcasting.
#include "core/autograd.h"
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
  Tensor y = binary(a, b, "add", [](float x, float y) { return x + y; });
  if (any_requires_grad({&a, &b})) {
    Shape sa = a.sizes(), sb = b.sizes();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record_fn("AddBackward", {&a, &b}, y, [sa, sb, ga, gb](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{ga ? sum_to(g[0], sa) : Tensor(), gb ? sum_to(g[0], sb) : Tensor()};
    });
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "mul", [](float x, float y) { return x * y; });
  if (any_requires_grad({&a, &b})) {
    Tensor sa = a, sb = b;  // saved operands (without their autograd metadata: no cycles)
    sa.set_autograd(nullptr);
    sb.set_autograd(nullptr);
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record_fn("MulBackward", {&a, &b}, y, [sa, sb, ga, gb](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{ga ? sum_to(mul(g[0], sb), sa.sizes()) : Tensor(),
                                 gb ? sum_to(mul(g[0], sa), sb.sizes()) : Tensor()};
    });
  }
  return y;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  detail::check_f32(g, "sum_to", "gradient");
  if (g.sizes() == shape) return g;
  const int64_t n = g.dim(), m = int64_t(shape.size());
  Y7_CHECK(m <= n, "sum_to: cannot reduce ", g.str(), " to ", shape_str(shape));
  Shape ts = contiguous_strides(shape), st(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t j = i - (n - m);
    if (j < 0) continue;
    Y7_CHECK(shape[j] == g.size(i) || shape[j] == 1, "sum_to: cannot reduce ", g.str(), " to ",
             shape_str(shape));
    if (shape[j] != 1) st[i] = ts[j];
  }
  Tensor gc = g.contiguous();
  const float* pg = gc.data<float>();
  std::vector<double> acc(size_t(shape_numel(shape)), 0.0);
  std::vector<int64_t> idx(n, 0);
  const int64_t total = gc.numel();
  int64_t toff = 0;
  for (int64_t e = 0; e < total; ++e) {
    acc[toff] += pg[e];
    for (int64_t d = n - 1; d >= 0; --d) {  // odometer step
      toff += st[d];
      if (++idx[d] < g.size(d)) break;
      toff -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
  Tensor r = Tensor::empty(shape);
  float* pr = r.data<float>();
  for (size_t i = 0; i < acc.size(); ++i) pr[i] = float(acc[i]);
  return r;
}

}  // namespace y7::ops
