// Autograd-aware views and copies for the training graph (Tensor::view/reshape/permute drop
// autograd metadata by design), and a full sum.
#include <numeric>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

Tensor reshape(const Tensor& x, const Shape& shape) {
  Y7_CHECK(x.defined(), "reshape: input is undefined");
  Tensor y = x.reshape(shape);
  if (any_requires_grad({&x})) {
    Shape in = x.sizes();
    record_fn("ReshapeBackward", {&x}, y,
              [in](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].reshape(in)}; });
  }
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Y7_CHECK(x.defined(), "permute: input is undefined");
  Tensor y = x.permute(dims);
  if (any_requires_grad({&x})) {
    std::vector<int64_t> inv(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) inv[size_t(dims[i] < 0 ? dims[i] + x.dim() : dims[i])] = int64_t(i);
    record_fn("PermuteBackward", {&x}, y,
              [inv](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].permute(inv)}; });
  }
  return y;
}

Tensor contiguous(const Tensor& x) {
  Y7_CHECK(x.defined(), "contiguous: input is undefined");
  Tensor y = x.contiguous();
  if (any_requires_grad({&x}))
    record_fn("ContiguousBackward", {&x}, y, [](const std::vector<Tensor>& g) { return g; });
  return y;
}

Tensor sum(const Tensor& x) {
  detail::check_f32(x, "sum", "input");
  Tensor xc = x.contiguous();
  const float* p = xc.data<float>();
  double s = 0;
  for (int64_t i = 0; i < xc.numel(); ++i) s += p[i];
  Tensor y = Tensor::full({}, s);
  if (any_requires_grad({&x})) {
    Shape in = x.sizes();
    record_fn("SumBackward", {&x}, y, [in](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{Tensor::full(in, g[0].contiguous().data<float>()[0])};
    });
  }
  return y;
}

}  // namespace y7::ops
