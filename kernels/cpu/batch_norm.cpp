// BatchNorm inference: y = (x - mean) / sqrt(var + eps) * w + b, evaluated as torch's CPU kernel
// does, x * scale + shift with scale = w / sqrt(var + eps) and shift = b - mean * scale.
#include <cmath>

#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  const char* op = "batch_norm_eval";
  detail::check_f32(x, op, "input");
  Y7_CHECK(x.dim() >= 2, op, ": input must have at least 2 dims, got ", x.str());
  Y7_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  const int64_t C = x.size(1);
  auto param = [&](const Tensor& t, const char* what, bool optional) -> Tensor {
    if (optional && !t.defined()) return Tensor();
    detail::check_f32(t, op, what);
    Y7_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " must be [", C, "], got ", t.str());
    return t.contiguous();
  };
  Tensor m = param(mean, "running_mean", false), v = param(var, "running_var", false);
  Tensor w = param(weight, "weight", true), b = param(bias, "bias", true);

  std::vector<float> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    float inv = float(1.0 / std::sqrt(double(v.data<float>()[c]) + eps));
    float s = w.defined() ? inv * w.data<float>()[c] : inv;
    scale[c] = s;
    shift[c] = (b.defined() ? b.data<float>()[c] : 0.0f) - m.data<float>()[c] * s;
  }

  if (detail::is_channels_last(x)) {  // keep the format; a per-channel vector op per pixel
    Tensor y = detail::empty_like_format(x.sizes(), x);
    const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
    const float* px = x.data<float>();
    float* py = y.data<float>();
    parallel_for(N * H, std::max<int64_t>(1, (1 << 15) / (W * C)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t w = 0; w < W; ++w) {
          const int64_t off = (r / H) * x.stride(0) + (r % H) * x.stride(2) + w * x.stride(3);
          const float* in = px + off;
          float* o = py + off;  // same strides: y was allocated like x
          for (int64_t c = 0; c < C; ++c) o[c] = in[c] * scale[c] + shift[c];
        }
    });
    return y;
  }
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.sizes());
  const int64_t N = x.size(0), inner = C > 0 && N > 0 ? x.numel() / (N * C) : 0;
  const float* px = xc.data<float>();
  float* py = y.data<float>();
  parallel_for(N * C, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(inner, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t p = b; p < e; ++p) {
                   const float s = scale[p % C], h = shift[p % C];
                   const float* in = px + p * inner;
                   float* o = py + p * inner;
                   for (int64_t i = 0; i < inner; ++i) o[i] = in[i] * s + h;
                 }
               });
  return y;
}

}  // namespace y7::ops
