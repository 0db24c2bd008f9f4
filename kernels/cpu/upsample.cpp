// Nearest-neighbour upsampling by an integer factor: out[oh][ow] = in[oh / s][ow / s], which is
// what torch's 'nearest' mode computes for an integer scale_factor.
#include <algorithm>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {
Tensor upsample_impl(const Tensor& x, int scale, Tensor* out);
}

Tensor upsample_nearest2d(const Tensor& x, int scale, Tensor* out) {
  if (!any_requires_grad({&x})) return upsample_impl(x, scale, out);
  Y7_CHECK(!out, "upsample_nearest2d: out= is not supported when recording autograd");
  Tensor y = upsample_impl(x, scale, nullptr);
  record_fn("UpsampleNearest2dBackward", {&x}, y, [scale](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{upsample_nearest2d_backward(g[0], scale)};
  });
  return y;
}

// Each input cell receives the sum of its scale x scale output block.
Tensor upsample_nearest2d_backward(const Tensor& gy, int scale) {
  const char* op = "upsample_nearest2d_backward";
  detail::check_rank(gy, 4, op, "gradient");
  Y7_CHECK(scale >= 1 && gy.size(2) % scale == 0 && gy.size(3) % scale == 0, op, ": gradient ", gy.str(),
           " is not a multiple of scale ", scale);
  const int64_t N = gy.size(0), C = gy.size(1), OH = gy.size(2), OW = gy.size(3), s = scale;
  const int64_t H = OH / s, W = OW / s;
  Tensor gc = gy.contiguous();
  Tensor dx = Tensor::zeros({N, C, H, W});
  const float* pg = gc.data<float>();
  float* pd = dx.data<float>();
  parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl)
      for (int64_t oh = 0; oh < OH; ++oh) {
        const float* g = pg + (pl * OH + oh) * OW;
        float* d = pd + (pl * H + oh / s) * W;
        for (int64_t ow = 0; ow < OW; ++ow) d[ow / s] += g[ow];
      }
  });
  return dx;
}

namespace {
Tensor upsample_impl(const Tensor& x, int scale, Tensor* out) {
  const char* op = "upsample_nearest2d";
  detail::check_rank(x, 4, op, "input");
  Y7_CHECK(scale >= 1 && scale <= 64, op, ": scale must be in [1, 64], got ", scale);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t s = scale, OH = H * s, OW = W * s;
  Tensor y = detail::prepare_out(out, {N, C, OH, OW}, op, x);
  Y7_CHECK(!detail::same_start(x, y), op, ": out must not alias the input");
  if (y.numel() == 0) return y;

  const float* px = x.data<float>();
  float* py = y.data<float>();
  if (x.stride(1) == 1 && y.stride(1) == 1 && C > 1) {  // channels-last: copy C floats per pixel
    parallel_for(N * OH, std::max<int64_t>(1, 8192 / (OW * C)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / OH, oh = r % OH;
        const float* in = px + n * x.stride(0) + (oh / s) * x.stride(2);
        float* o = py + n * y.stride(0) + oh * y.stride(2);
        for (int64_t ow = 0; ow < OW; ++ow) std::copy(in + (ow / s) * x.stride(3), in + (ow / s) * x.stride(3) + C,
                                                      o + ow * y.stride(3));
      }
    });
    return y;
  }
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2), xs3 = x.stride(3);
  const int64_t ys0 = y.stride(0), ys1 = y.stride(1), ys2 = y.stride(2), ys3 = y.stride(3);
  parallel_for(N * C * H, std::max<int64_t>(1, 8192 / (OW * s)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t ih = r % H, c = (r / H) % C, n = r / (H * C);
      const float* in = px + n * xs0 + c * xs1 + ih * xs2;
      float* o0 = py + n * ys0 + c * ys1 + ih * s * ys2;
      if (ys3 == 1) {
        if (s == 2 && xs3 == 1) {
          for (int64_t iw = 0; iw < W; ++iw) o0[2 * iw] = o0[2 * iw + 1] = in[iw];
        } else {
          for (int64_t ow = 0; ow < OW; ++ow) o0[ow] = in[(ow / s) * xs3];
        }
        for (int64_t k = 1; k < s; ++k) std::copy(o0, o0 + OW, o0 + k * ys2);
      } else {
        for (int64_t k = 0; k < s; ++k)
          for (int64_t ow = 0; ow < OW; ++ow) o0[k * ys2 + ow * ys3] = in[(ow / s) * xs3];
      }
    }
  });
  return y;
}

}  // namespace

}  // namespace y7::ops
