// Detect head decode for one level, in upstream's formula order (float32 throughout):
//   s = sigmoid(raw) = 1 / (1 + exp(-raw)); xy = (s * 2 - 0.5 + grid) * stride; wh = (s * 2)^2 * anchor; rest = s,
// with grid x = column index and y = row index, rows ordered anchor, y, x.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

void check_decode_args(const Tensor& raw, int na, int no, const Tensor& anchor_grid, const char* op) {
  detail::check_rank(raw, 4, op, "raw head map");
  Y7_CHECK(na >= 1 && no >= 5, op, ": need na >= 1 and no >= 5, got na=", na, " no=", no);
  Y7_CHECK(raw.size(1) == int64_t(na) * no, op, ": raw map has ", raw.size(1), " channels, expected na*no = ",
           int64_t(na) * no, " (", raw.str(), ")");
  detail::check_f32(anchor_grid, op, "anchor_grid");
  Y7_CHECK(anchor_grid.dim() == 2 && anchor_grid.size(0) == na && anchor_grid.size(1) == 2, op,
           ": anchor_grid must be [", na, ",2], got ", anchor_grid.str());
}

}  // namespace

Tensor detect_decode(const Tensor& raw, int na, int no, float stride, const Tensor& anchor_grid,
                     Tensor* raw_out) {
  const char* op = "detect_decode";
  check_decode_args(raw, na, no, anchor_grid, op);
  const int64_t N = raw.size(0), H = raw.size(2), W = raw.size(3);
  Tensor y = Tensor::empty({N, na * H * W, no});
  Tensor perm;
  if (raw_out) {
    perm = detail::prepare_out(raw_out, {N, na, H, W, no}, op);
    Y7_CHECK(!detail::same_start(raw, perm), op, ": raw_out must not alias the raw map");
  }
  if (y.numel() == 0) return y;

  Tensor ag = anchor_grid.contiguous();
  const float* pa = ag.data<float>();
  const float* pr = raw.data<float>();
  float* py = y.data<float>();
  float* pp = perm.defined() ? perm.data<float>() : nullptr;
  const int64_t rs0 = raw.stride(0), rs1 = raw.stride(1), rs2 = raw.stride(2), rs3 = raw.stride(3);
  const Shape ps = perm.defined() ? perm.strides() : Shape(5, 0);
  const int64_t HW = H * W;

  // one task per (n, anchor, row): the [no][W] block of raw values is gathered channel by channel,
  // passed through the sigmoid in one vector run, and transposed into the [W][no] output rows
  parallel_for(N * na * H, std::max<int64_t>(1, 4096 / (W * no)), [&](int64_t b, int64_t e) {
    std::vector<float> rv(static_cast<size_t>(no * W)), sig(static_cast<size_t>(no * W));
    for (int64_t t = b; t < e; ++t) {
      const int64_t gy = t % H, a = (t / H) % na, n = t / (H * na);
      float* orow = py + ((n * na + a) * HW + gy * W) * no;
      for (int64_t k = 0; k < no; ++k) {
        const float* src = pr + n * rs0 + (a * no + k) * rs1 + gy * rs2;
        float* d = rv.data() + k * W;
        if (rs3 == 1) std::copy(src, src + W, d);
        else for (int64_t gx = 0; gx < W; ++gx) d[gx] = src[gx * rs3];
      }
      std::copy(rv.begin(), rv.end(), sig.begin());
      detail::act_inplace(sig.data(), no * W, Act::Sigmoid, 0.0f);
      if (pp) {
        float* dst = pp + n * ps[0] + a * ps[1] + gy * ps[2];
        for (int64_t gx = 0; gx < W; ++gx)
          for (int64_t k = 0; k < no; ++k) dst[gx * ps[3] + k * ps[4]] = rv[k * W + gx];
      }
      for (int64_t gx = 0; gx < W; ++gx)
        for (int64_t k = 0; k < no; ++k) orow[gx * no + k] = sig[k * W + gx];
      const float aw = pa[a * 2], ah = pa[a * 2 + 1];
      for (int64_t gx = 0; gx < W; ++gx) {
        float* o = orow + gx * no;
        o[0] = (o[0] * 2.0f - 0.5f + float(gx)) * stride;
        o[1] = (o[1] * 2.0f - 0.5f + float(gy)) * stride;
        const float w2 = o[2] * 2.0f, h2 = o[3] * 2.0f;
        o[2] = w2 * w2 * aw;
        o[3] = h2 * h2 * ah;
      }
    }
  });
  return y;
}

}  // namespace y7::ops
