// BatchNorm inference: y = (x - mean) / sqrt(var + eps) * w + b, evaluated as torch's CPU kernel
// does, x * scale + shift with scale = w / sqrt(var + eps) and shift = b - mean * scale.
#include <cmath>

#include "core/autograd.h"
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

// Training mode: batch mean and biased variance per channel (double accumulation, as torch's CPU
// kernel accumulates float in double), y = (x - mean) * invstd * w + b.
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, double momentum, double eps) {
  const char* op = "batch_norm_train";
  detail::check_f32(x, op, "input");
  Y7_CHECK(x.dim() >= 2, op, ": input must have at least 2 dims, got ", x.str());
  Y7_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t inner = C > 0 && N > 0 ? x.numel() / (N * C) : 0, M = N * inner;
  Y7_CHECK(M > 1, op, ": expected more than 1 value per channel in training, got input ", x.str());
  auto check = [&](const Tensor& t, const char* what) {
    if (!t.defined()) return;
    detail::check_f32(t, op, what);
    Y7_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " must be [", C, "], got ", t.str());
  };
  check(weight, "weight");
  check(bias, "bias");
  check(running_mean, "running_mean");
  check(running_var, "running_var");
  Tensor xc = x.contiguous();
  const float* px = xc.data<float>();
  std::vector<double> mean(C), var(C), invstd(C);
  parallel_for(C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = px + (n * C + c) * inner;
        for (int64_t i = 0; i < inner; ++i) s += p[i];
      }
      const double m = s / double(M);
      double q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* p = px + (n * C + c) * inner;
        for (int64_t i = 0; i < inner; ++i) q += (p[i] - m) * (p[i] - m);
      }
      mean[c] = m;
      var[c] = q / double(M);
      invstd[c] = 1.0 / std::sqrt(var[c] + eps);
    }
  });
  Tensor wc = weight.defined() ? weight.contiguous() : Tensor(), bc = bias.defined() ? bias.contiguous() : Tensor();
  std::vector<float> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    const double w = wc.defined() ? wc.data<float>()[c] : 1.0, bb = bc.defined() ? bc.data<float>()[c] : 0.0;
    scale[c] = float(invstd[c] * w);
    shift[c] = float(bb - mean[c] * invstd[c] * w);
  }
  Tensor y = Tensor::empty(x.sizes());
  float* py = y.data<float>();
  parallel_for(N * C, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float s = scale[p % C], h = shift[p % C];
      const float* in = px + p * inner;
      float* o = py + p * inner;
      for (int64_t i = 0; i < inner; ++i) o[i] = in[i] * s + h;
    }
  });
  if (running_mean.defined() && running_var.defined()) {
    Y7_CHECK(running_mean.is_contiguous() && running_var.is_contiguous(), op, ": running stats must be contiguous");
    float* rm = running_mean.data<float>();
    float* rv = running_var.data<float>();
    for (int64_t c = 0; c < C; ++c) {
      rm[c] = float((1 - momentum) * rm[c] + momentum * mean[c]);
      rv[c] = float((1 - momentum) * rv[c] + momentum * var[c] * double(M) / double(M - 1));
    }
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor sx = x, sw = weight;
    sx.set_autograd(nullptr);
    sw.set_autograd(nullptr);
    const bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad(),
               gb = bias.defined() && bias.requires_grad();
    record_fn("BatchNormTrainBackward", {&x, &weight, &bias}, y,
              [sx, sw, mean, invstd, gx, gw, gb](const std::vector<Tensor>& g) {
                BatchNormGrads r = batch_norm_train_backward(g[0], sx, sw, mean, invstd);
                return std::vector<Tensor>{gx ? r.dx : Tensor(), gw ? r.dw : Tensor(), gb ? r.db : Tensor()};
              });
  }
  return y;
}

// dx = w * invstd / M * (M g - sum(g) - xhat * sum(g xhat)); dw = sum(g xhat); db = sum(g).
BatchNormGrads batch_norm_train_backward(const Tensor& gy, const Tensor& x, const Tensor& weight,
                                         const std::vector<double>& mean, const std::vector<double>& invstd) {
  const char* op = "batch_norm_train_backward";
  detail::check_f32(gy, op, "gradient");
  detail::check_f32(x, op, "input");
  Y7_CHECK(gy.sizes() == x.sizes() && x.dim() >= 2, op, ": gradient ", gy.str(), " vs input ", x.str());
  const int64_t N = x.size(0), C = x.size(1), inner = C > 0 && N > 0 ? x.numel() / (N * C) : 0, M = N * inner;
  Y7_CHECK(int64_t(mean.size()) == C && int64_t(invstd.size()) == C, op, ": statistics for ", mean.size(),
           " channels, input has ", C);
  Tensor xc = x.contiguous(), gc = gy.contiguous();
  Tensor wc = weight.defined() ? weight.contiguous() : Tensor();
  const float *px = xc.data<float>(), *pg = gc.data<float>();
  BatchNormGrads r;
  r.dx = Tensor::empty(x.sizes());
  r.dw = Tensor::empty({C});
  r.db = Tensor::empty({C});
  float *pdx = r.dx.data<float>(), *pdw = r.dw.data<float>(), *pdb = r.db.data<float>();
  parallel_for(C, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const double m = mean[c], is = invstd[c];
      double sg = 0, sgx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float *xp = px + (n * C + c) * inner, *gp = pg + (n * C + c) * inner;
        for (int64_t i = 0; i < inner; ++i) {
          sg += gp[i];
          sgx += gp[i] * (xp[i] - m);
        }
      }
      const double w = wc.defined() ? wc.data<float>()[c] : 1.0;
      pdb[c] = float(sg);
      pdw[c] = float(sgx * is);
      // dx = w*is*(g - sg/M - xhat * (sgx*is)/M), xhat = (x-m)*is
      const double k = w * is, a = sg / double(M), bcoef = sgx * is * is / double(M);
      for (int64_t n = 0; n < N; ++n) {
        const float *xp = px + (n * C + c) * inner, *gp = pg + (n * C + c) * inner;
        float* dp = pdx + (n * C + c) * inner;
        for (int64_t i = 0; i < inner; ++i) dp[i] = float(k * (gp[i] - a - (xp[i] - m) * bcoef));
      }
    }
  });
  return r;
}

}  // namespace y7::ops
