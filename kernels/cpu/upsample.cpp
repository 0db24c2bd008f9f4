// Nearest-neighbour upsampling by an integer factor: out[oh][ow] = in[oh / s][ow / s], which is
// what torch's 'nearest' mode computes for an integer scale_factor.
#include <algorithm>

#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

Tensor upsample_nearest2d(const Tensor& x, int scale, Tensor* out) {
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

}  // namespace y7::ops
