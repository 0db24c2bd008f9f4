// Reference kernels: direct loops over the definitions, accumulating and evaluating in double.
// Slow and obviously correct; the tests compare the fast kernels against these.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops::ref {

namespace {

double act_double(Act a, double x, double alpha) {
  switch (a) {
    case Act::None: return x;
    case Act::SiLU: return x / (1.0 + std::exp(-x));
    case Act::LeakyReLU: return x > 0 ? x : x * alpha;
    case Act::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case Act::Hardswish: return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case Act::Hardsigmoid: return std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case Act::ReLU: return x < 0 ? 0.0 : x;
  }
  fail("unknown activation ", int(a));
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const char* op = "ref::conv2d";
  detail::check_rank(x, 4, op, "input");
  detail::check_rank(w, 4, op, "weight");
  const int64_t N = x.size(0), Ci = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Co = w.size(0), Cig = w.size(1), KH = w.size(2), KW = w.size(3);
  const int64_t G = p.groups, S = p.stride, P = p.pad, D = p.dilation;
  Y7_CHECK(G >= 1 && S >= 1 && P >= 0 && D >= 1, op, ": bad parameters");
  Y7_CHECK(Ci % G == 0 && Co % G == 0 && Cig == Ci / G, op, ": weight ", w.str(), " does not fit input ",
           x.str(), " with groups ", G);
  if (b.defined()) Y7_CHECK(b.dim() == 1 && b.size(0) == Co, op, ": bias ", b.str(), " for ", Co, " channels");
  const int64_t OH = (H + 2 * P - D * (KH - 1) - 1) / S + 1, OW = (W + 2 * P - D * (KW - 1) - 1) / S + 1;
  Y7_CHECK(OH >= 1 && OW >= 1, op, ": empty output");
  const int64_t Cog = Co / G;
  Tensor y = Tensor::empty({N, Co, OH, OW});
  float* py = y.data<float>();
  Tensor xd = x.to(DType::F64), wd = w.to(DType::F64);  // contiguous copies
  const double* X = xd.data<double>();
  const double* Wt = wd.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < Co; ++co) {
      const int64_t g = co / Cog;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b.defined() ? b.item({co}) : 0.0;
          for (int64_t ci = 0; ci < Cig; ++ci)
            for (int64_t kh = 0; kh < KH; ++kh) {
              const int64_t ih = oh * S - P + kh * D;
              if (ih < 0 || ih >= H) continue;
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t iw = ow * S - P + kw * D;
                if (iw < 0 || iw >= W) continue;
                acc += X[((n * Ci + g * Cig + ci) * H + ih) * W + iw] * Wt[((co * Cig + ci) * KH + kh) * KW + kw];
              }
            }
          py[((n * Co + co) * OH + oh) * OW + ow] = float(act_double(p.act, acc, p.alpha));
        }
    }
  return y;
}

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad) {
  const char* op = "ref::max_pool2d";
  detail::check_rank(x, 4, op, "input");
  Y7_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= kernel, op, ": bad parameters");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * pad - kernel) / stride + 1, OW = (W + 2 * pad - kernel) / stride + 1;
  Y7_CHECK(OH >= 1 && OW >= 1, op, ": empty output");
  Tensor y = Tensor::empty({N, C, OH, OW});
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t kh = 0; kh < kernel; ++kh)
            for (int64_t kw = 0; kw < kernel; ++kw) {
              const int64_t ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double v = x.item({n, c, ih, iw});
              if (v > m || std::isnan(v)) m = v;
              if (std::isnan(m)) break;
            }
          py[((n * C + c) * OH + oh) * OW + ow] = float(m);
        }
  return y;
}

Tensor upsample_nearest2d(const Tensor& x, int scale) {
  detail::check_rank(x, 4, "ref::upsample_nearest2d", "input");
  Y7_CHECK(scale >= 1, "ref::upsample_nearest2d: bad scale ", scale);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), s = scale;
  Tensor y = Tensor::empty({N, C, H * s, W * s});
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < H * s; ++oh)
        for (int64_t ow = 0; ow < W * s; ++ow)
          *py++ = float(x.item({n, c, oh / s, ow / s}));
  return y;
}

Tensor activation(const Tensor& x, Act a, float alpha) {
  detail::check_f32(x, "ref::activation", "input");
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.sizes());
  const float* px = xc.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = float(act_double(a, double(px[i]), double(alpha)));
  return y;
}

Tensor detect_decode(const Tensor& raw, int na, int no, float stride, const Tensor& anchor_grid) {
  const char* op = "ref::detect_decode";
  detail::check_rank(raw, 4, op, "raw head map");
  Y7_CHECK(na >= 1 && no >= 5 && raw.size(1) == int64_t(na) * no, op, ": bad na/no for ", raw.str());
  Y7_CHECK(anchor_grid.dim() == 2 && anchor_grid.size(0) == na && anchor_grid.size(1) == 2, op,
           ": bad anchor_grid ", anchor_grid.str());
  const int64_t N = raw.size(0), H = raw.size(2), W = raw.size(3);
  Tensor y = Tensor::empty({N, na * H * W, no});
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t a = 0; a < na; ++a)
      for (int64_t gy = 0; gy < H; ++gy)
        for (int64_t gx = 0; gx < W; ++gx)
          for (int64_t k = 0; k < no; ++k) {
            const double s = 1.0 / (1.0 + std::exp(-raw.item({n, a * no + k, gy, gx})));
            double v = s;
            if (k == 0) v = (2 * s - 0.5 + double(gx)) * stride;
            if (k == 1) v = (2 * s - 0.5 + double(gy)) * stride;
            if (k == 2) v = 4 * s * s * anchor_grid.item({a, 0});
            if (k == 3) v = 4 * s * s * anchor_grid.item({a, 1});
            *py++ = float(v);
          }
  return y;
}

}  // namespace y7::ops::ref
