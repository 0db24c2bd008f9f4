// 2-D max pooling, torch semantics: implicit -inf padding (padded cells never win), floor output
// size, NaN propagates. Computed separably (max over the window's columns, then over its rows),
// which is exact for max and costs 2k instead of k^2 per output. Planar (NCHW) and channels-last
// layouts each have their own loop order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

inline float nanmax(float m, float v) { return (v > m || v != v) ? v : m; }

inline void nanmax_run(float* acc, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = nanmax(acc[i], v[i]);
}

// Channels-last layout (channel stride 1 in x and y): every step is a max over C contiguous
// floats. Overlapping windows go through a buffer of column-window maxima, as in the planar path.
void max_pool_channels_last(const Tensor& x, const Tensor& y, int64_t k, int64_t s, int64_t p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t xs0 = x.stride(0), xs2 = x.stride(2), xs3 = x.stride(3);
  const int64_t ys0 = y.stride(0), ys2 = y.stride(2), ys3 = y.stride(3);
  const float ninf = -std::numeric_limits<float>::infinity();
  // column pass: cm(n, ih, ow, :) = max over the window's columns of x(n, :, ih, iw)
  auto col_max = [&](const float* row, float* dst, int64_t ow) {
    std::fill(dst, dst + C, ninf);
    const int64_t w0 = std::max<int64_t>(0, ow * s - p), w1 = std::min<int64_t>(W, ow * s - p + k);
    for (int64_t iw = w0; iw < w1; ++iw) nanmax_run(dst, row + iw * xs3, C);
  };
  const int64_t grain = std::max<int64_t>(1, 16384 / (OW * C));
  if (k <= s) {  // windows do not overlap: direct
    parallel_for(N * OH, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / OH, oh = r % OH;
        const int64_t h0 = std::max<int64_t>(0, oh * s - p), h1 = std::min<int64_t>(H, oh * s - p + k);
        for (int64_t ow = 0; ow < OW; ++ow) {
          float* o = py + n * ys0 + oh * ys2 + ow * ys3;
          col_max(px + n * xs0 + h0 * xs2, o, ow);
          for (int64_t ih = h0 + 1; ih < h1; ++ih) {
            const float* row = px + n * xs0 + ih * xs2;
            const int64_t w0 = std::max<int64_t>(0, ow * s - p), w1 = std::min<int64_t>(W, ow * s - p + k);
            for (int64_t iw = w0; iw < w1; ++iw) nanmax_run(o, row + iw * xs3, C);
          }
        }
      }
    });
    return;
  }
  std::vector<float> cm(size_t(N * H * OW * C));
  parallel_for(N * H, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / H, ih = r % H;
      for (int64_t ow = 0; ow < OW; ++ow) col_max(px + n * xs0 + ih * xs2, cm.data() + (r * OW + ow) * C, ow);
    }
  });
  parallel_for(N * OH, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / OH, oh = r % OH;
      const int64_t h0 = std::max<int64_t>(0, oh * s - p), h1 = std::min<int64_t>(H, oh * s - p + k);
      for (int64_t ow = 0; ow < OW; ++ow) {
        float* o = py + n * ys0 + oh * ys2 + ow * ys3;
        const float* src = cm.data() + ((n * H + h0) * OW + ow) * C;
        std::copy(src, src + C, o);
        for (int64_t ih = h0 + 1; ih < h1; ++ih) nanmax_run(o, cm.data() + ((n * H + ih) * OW + ow) * C, C);
      }
    }
  });
}

}  // namespace

namespace {
Tensor max_pool2d_impl(const Tensor& x, int kernel, int stride, int pad, Tensor* out) {
  const char* op = "max_pool2d";
  detail::check_rank(x, 4, op, "input");
  Y7_CHECK(kernel >= 1 && stride >= 1 && pad >= 0, op, ": bad kernel ", kernel, " / stride ", stride,
           " / pad ", pad);
  Y7_CHECK(2 * pad <= kernel, op, ": pad ", pad, " must be at most half the kernel ", kernel);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Y7_CHECK(H + 2 * pad >= kernel && W + 2 * pad >= kernel, op, ": kernel ", kernel,
           " larger than the padded input ", x.str());
  const int64_t OH = (H + 2 * pad - kernel) / stride + 1, OW = (W + 2 * pad - kernel) / stride + 1;
  Tensor y = detail::prepare_out(out, {N, C, OH, OW}, op, x);
  Y7_CHECK(!detail::same_start(x, y), op, ": out must not alias the input");
  if (y.numel() == 0) return y;

  if (x.stride(1) == 1 && y.stride(1) == 1 && C > 1) {
    max_pool_channels_last(x, y, kernel, stride, pad);
    return y;
  }
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2), xs3 = x.stride(3);
  const int64_t ys0 = y.stride(0), ys1 = y.stride(1), ys2 = y.stride(2), ys3 = y.stride(3);
  const int64_t k = kernel, s = stride, p = pad;
  if (k == 2 && s == 2 && p == 0) {  // the MP layer: 2x2 blocks, no padding, no overlap
    parallel_for(N * C * OH, std::max<int64_t>(1, 16384 / (4 * OW)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t oh = r % OH, c = (r / OH) % C, n = r / (OH * C);
        const float* r0 = px + n * xs0 + c * xs1 + 2 * oh * xs2;
        const float* r1 = r0 + xs2;
        float* o = py + n * ys0 + c * ys1 + oh * ys2;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t i0 = 2 * ow * xs3, i1 = i0 + xs3;
          o[ow * ys3] = nanmax(nanmax(r0[i0], r0[i1]), nanmax(r1[i0], r1[i1]));
        }
      }
    });
    return y;
  }

  parallel_for(N * C, std::max<int64_t>(1, 16384 / (H * W + 1)), [&](int64_t b, int64_t e) {
    std::vector<float> hbuf(size_t(H * OW));  // column-window maxima of every input row
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / C, c = plane % C;
      const float* in = px + n * xs0 + c * xs1;
      float* o = py + n * ys0 + c * ys1;
      for (int64_t ih = 0; ih < H; ++ih) {
        const float* row = in + ih * xs2;
        float* hr = hbuf.data() + ih * OW;
        std::fill(hr, hr + OW, -std::numeric_limits<float>::infinity());
        for (int64_t j = 0; j < k; ++j) {
          // outputs whose window column ow*s - p + j lies inside [0, W)
          int64_t lo = std::max<int64_t>(0, (p - j + s - 1) / s);
          if (p - j < 0) lo = 0;
          int64_t hi = std::min<int64_t>(OW, (W - 1 + p - j) / s + 1);
          if (W - 1 + p - j < 0) hi = 0;
          const float* src = row + (lo * s - p + j) * xs3;
          if (s == 1 && xs3 == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) hr[ow] = nanmax(hr[ow], src[ow - lo]);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) hr[ow] = nanmax(hr[ow], src[(ow - lo) * s * xs3]);
          }
        }
      }
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = std::max<int64_t>(0, oh * s - p), h1 = std::min<int64_t>(H, oh * s - p + k);
        float* orow = o + oh * ys2;
        if (ys3 == 1) {
          std::copy(hbuf.data() + h0 * OW, hbuf.data() + (h0 + 1) * OW, orow);
          for (int64_t ih = h0 + 1; ih < h1; ++ih) {
            const float* hr = hbuf.data() + ih * OW;
            for (int64_t ow = 0; ow < OW; ++ow) orow[ow] = nanmax(orow[ow], hr[ow]);
          }
        } else {
          for (int64_t ow = 0; ow < OW; ++ow) {
            float m = hbuf[h0 * OW + ow];
            for (int64_t ih = h0 + 1; ih < h1; ++ih) m = nanmax(m, hbuf[ih * OW + ow]);
            orow[ow * ys3] = m;
          }
        }
      }
    }
  });
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad, Tensor* out) {
  if (!any_requires_grad({&x})) return max_pool2d_impl(x, kernel, stride, pad, out);
  Y7_CHECK(!out, "max_pool2d: out= is not supported when recording autograd");
  Tensor y = max_pool2d_impl(x, kernel, stride, pad, nullptr);
  Tensor sx = x;
  sx.set_autograd(nullptr);
  record_fn("MaxPool2dBackward", {&x}, y, [sx, kernel, stride, pad](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{max_pool2d_backward(g[0], sx, kernel, stride, pad)};
  });
  return y;
}

// Routes each output gradient to its window's maximum: the first one in row-major window order
// (torch's CPU kernel keeps the first maximum; a NaN wins), padded cells never.
Tensor max_pool2d_backward(const Tensor& gy, const Tensor& x, int kernel, int stride, int pad) {
  const char* op = "max_pool2d_backward";
  detail::check_rank(x, 4, op, "input");
  detail::check_rank(gy, 4, op, "gradient");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Y7_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && H + 2 * pad >= kernel && W + 2 * pad >= kernel, op,
           ": bad kernel ", kernel, " / stride ", stride, " / pad ", pad, " for ", x.str());
  const int64_t OH = (H + 2 * pad - kernel) / stride + 1, OW = (W + 2 * pad - kernel) / stride + 1;
  Y7_CHECK(gy.sizes() == Shape({N, C, OH, OW}), op, ": gradient ", gy.str(), " does not match the output");
  Tensor xc = x.contiguous(), gc = gy.contiguous();
  Tensor dx = Tensor::zeros(x.sizes());
  const float *px = xc.data<float>(), *pg = gc.data<float>();
  float* pd = dx.data<float>();
  parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const float* xp = px + pl * H * W;
      const float* gp = pg + pl * OH * OW;
      float* dp = pd + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t h0 = oh * stride - pad, w0 = ow * stride - pad;
          int64_t best = -1;
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t kh = 0; kh < kernel; ++kh) {
            const int64_t ih = h0 + kh;
            if (ih < 0 || ih >= H) continue;
            for (int64_t kw = 0; kw < kernel; ++kw) {
              const int64_t iw = w0 + kw;
              if (iw < 0 || iw >= W) continue;
              const float v = xp[ih * W + iw];
              if (best < 0 || v > m || std::isnan(v)) {
                m = v;
                best = ih * W + iw;
              }
            }
          }
          if (best >= 0) dp[best] += gp[oh * OW + ow];
        }
    }
  });
  return dx;
}

}  // namespace y7::ops
