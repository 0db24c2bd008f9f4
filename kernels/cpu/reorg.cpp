// ReOrg (space-to-depth) in upstream's channel order: the result is the channel concatenation of
// x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2] (row offset varies
// fastest between the four blocks). The result keeps the input's memory format (NCHW or
// channels-last).
#include <algorithm>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {
Tensor reorg_impl(const Tensor& x);
}

Tensor reorg(const Tensor& x) {
  Tensor y = reorg_impl(x);
  if (any_requires_grad({&x}))
    record_fn("ReorgBackward", {&x}, y,
              [](const std::vector<Tensor>& g) { return std::vector<Tensor>{reorg_backward(g[0])}; });
  return y;
}

// The inverse scatter: channel q*C + c of the gradient goes back to rows q % 2 :: 2, columns q / 2 :: 2.
Tensor reorg_backward(const Tensor& gy) {
  detail::check_rank(gy, 4, "reorg_backward", "gradient");
  Y7_CHECK(gy.size(1) % 4 == 0, "reorg_backward: channels of ", gy.str(), " are not a multiple of 4");
  const int64_t N = gy.size(0), C = gy.size(1) / 4, OH = gy.size(2), OW = gy.size(3), H = 2 * OH, W = 2 * OW;
  Tensor gc = gy.contiguous();
  Tensor dx = Tensor::empty({N, C, H, W});
  const float* pg = gc.data<float>();
  float* pd = dx.data<float>();
  parallel_for(N * 4 * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / (4 * C), oc = plane % (4 * C), q = oc / C, c = oc % C;
      const float* g = pg + plane * OH * OW;
      float* d = pd + (n * C + c) * H * W + (q % 2) * W + q / 2;
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) d[2 * i * W + 2 * j] = g[i * OW + j];
    }
  });
  return dx;
}

namespace {
Tensor reorg_impl(const Tensor& x) {
  const char* op = "reorg";
  detail::check_rank(x, 4, op, "input");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Y7_CHECK(H % 2 == 0 && W % 2 == 0, op, ": height and width must be even, got ", x.str());
  const int64_t OH = H / 2, OW = W / 2;
  Tensor y = detail::empty_like_format({N, 4 * C, OH, OW}, x);
  if (y.numel() == 0) return y;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2), xs3 = x.stride(3);
  if (detail::is_channels_last(y) && xs1 == 1) {  // copy C contiguous floats per pixel and block
    parallel_for(N * OH, std::max<int64_t>(1, 16384 / (OW * 4 * C)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / OH, i = r % OH;
        float* o = py + n * y.stride(0) + i * y.stride(2);
        for (int64_t j = 0; j < OW; ++j)
          for (int64_t q = 0; q < 4; ++q) {
            const float* in = px + n * xs0 + (2 * i + q % 2) * xs2 + (2 * j + q / 2) * xs3;
            std::copy(in, in + C, o + j * y.stride(3) + q * C);
          }
      }
    });
    return y;
  }
  // output channel q*C + c with block q = 0..3 reads row offset q % 2 and column offset q / 2
  parallel_for(N * 4 * C, std::max<int64_t>(1, 16384 / (OH * OW)), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / (4 * C), oc = plane % (4 * C), q = oc / C, c = oc % C;
      const int64_t dy = q % 2, dx = q / 2;
      const float* in = px + n * xs0 + c * xs1 + dy * xs2 + dx * xs3;
      float* o = py + n * y.stride(0) + oc * y.stride(1);
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) o[i * y.stride(2) + j * y.stride(3)] = in[2 * i * xs2 + 2 * j * xs3];
    }
  });
  return y;
}

}  // namespace

}  // namespace y7::ops
