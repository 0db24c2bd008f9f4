// Internal helpers shared by the CPU kernels: argument checks, `out` handling, a strided
// elementwise loop driver, and a vectorizable float exp. No op math lives here.
#pragma once
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace y7::ops::detail {

inline void check_f32(const Tensor& t, const char* op, const char* what) {
  Y7_CHECK(t.defined(), op, ": ", what, " is undefined");
  Y7_CHECK(t.dtype() == DType::F32, op, ": ", what, " must be float32, got ", t.str());
  Y7_CHECK(t.device().is_cpu(), op, ": ", what, " must be a CPU tensor");
}

inline void check_rank(const Tensor& t, int64_t rank, const char* op, const char* what) {
  check_f32(t, op, what);
  Y7_CHECK(t.dim() == rank, op, ": ", what, " must have ", rank, " dims, got ", t.str());
}

// True when a and b start at the same element of the same storage (ops use it to reject in-place
// calls that would read what they already wrote; general overlap is the caller's business).
inline bool same_start(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.numel() > 0 && b.numel() > 0;
}

// True for a 4-D tensor laid out channels-last (NHWC memory order, NCHW sizes) and not also
// plain contiguous (the two coincide when C == 1 or H*W == 1).
inline bool is_channels_last(const Tensor& t) {
  if (t.dim() != 4 || t.is_contiguous()) return false;
  const Shape& s = t.sizes();
  const Shape want = {s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
  for (int d = 0; d < 4; ++d)
    if (s[d] != 1 && t.stride(d) != want[d]) return false;
  return true;
}

// A fresh float32 tensor of `shape` in the memory format of `like` (channels-last when `like` is,
// plain contiguous otherwise), so that channels-last pipelines stay channels-last.
inline Tensor empty_like_format(const Shape& shape, const Tensor& like, DType dtype = DType::F32) {
  if (shape.size() == 4 && like.defined() && is_channels_last(like))
    return Tensor::empty({shape[0], shape[2], shape[3], shape[1]}, dtype).permute({0, 3, 1, 2});
  return Tensor::empty(shape, dtype);
}

// The tensor an op writes its result of `shape` into: *out when given and defined (checked),
// otherwise a fresh tensor in the memory format of `like` (assigned to *out when out is non-null).
inline Tensor prepare_out(Tensor* out, const Shape& shape, const char* op, const Tensor& like = Tensor()) {
  if (out && out->defined()) {
    check_f32(*out, op, "out");
    Y7_CHECK(out->sizes() == shape, op, ": out has shape ", shape_str(out->sizes()), ", expected ",
             shape_str(shape));
    return *out;
  }
  Tensor t = empty_like_format(shape, like);
  if (out) *out = t;
  return t;
}

// Calls f(off, n, inner) for every innermost run of a K-operand strided loop over `sizes`:
// off[k] is operand k's element offset of the run start, inner[k] its stride along the run
// (0 for broadcast operands). Dims are ordered by operand 0's strides (largest outermost, so a
// channels-last output gets channel runs) and coalesced; runs are split over the thread pool when
// the loop has at least `grain` elements per chunk.
template <size_t K, typename F>
void for_each_run(const Shape& sizes, const std::array<Shape, K>& strides, int64_t grain, F&& f) {
  std::vector<size_t> order(sizes.size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = d;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::abs(strides[0][a]) > std::abs(strides[0][b]);
  });
  // drop size-1 dims, then merge dims that are contiguous for every operand
  std::vector<int64_t> sz;
  std::array<std::vector<int64_t>, K> st;
  for (size_t d : order) {
    if (sizes[d] == 0) return;
    if (sizes[d] == 1) continue;
    bool merge = !sz.empty();
    for (size_t k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][d] * sizes[d];
    if (merge) {
      sz.back() *= sizes[d];
      for (size_t k = 0; k < K; ++k) st[k].back() = strides[k][d];
    } else {
      sz.push_back(sizes[d]);
      for (size_t k = 0; k < K; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (sz.empty()) {  // a single element
    sz.push_back(1);
    for (size_t k = 0; k < K; ++k) st[k].push_back(0);
  }
  const int64_t nd = int64_t(sz.size());
  const int64_t inner_n = sz[nd - 1];
  std::array<int64_t, K> inner;
  for (size_t k = 0; k < K; ++k) inner[k] = st[k][nd - 1];
  int64_t outer = 1;
  for (int64_t d = 0; d < nd - 1; ++d) outer *= sz[d];
  // operand offsets of the start of row r (rows = all indices but the innermost)
  auto row_offsets = [&](int64_t r, std::vector<int64_t>& idx, std::array<int64_t, K>& off) {
    off.fill(0);
    for (int64_t d = nd - 2; d >= 0; --d) {
      idx[d] = r % sz[d];
      r /= sz[d];
      for (size_t k = 0; k < K; ++k) off[k] += idx[d] * st[k][d];
    }
  };
  // few long rows (e.g. a contiguous tensor coalesced into one run): split the rows into pieces
  const int64_t pieces = outer < 16 ? std::clamp<int64_t>(inner_n / std::max<int64_t>(grain, 1), 1, 256) : 1;
  if (pieces > 1) {
    const int64_t seg = (inner_n + pieces - 1) / pieces;
    parallel_for(outer * pieces, 1, [&](int64_t b, int64_t e) {
      std::vector<int64_t> idx(nd > 1 ? nd - 1 : 1, 0);
      std::array<int64_t, K> off;
      for (int64_t t = b; t < e; ++t) {
        const int64_t s0 = (t % pieces) * seg, n = std::min(seg, inner_n - s0);
        if (n <= 0) continue;
        row_offsets(t / pieces, idx, off);
        for (size_t k = 0; k < K; ++k) off[k] += s0 * inner[k];
        f(off, n, inner);
      }
    });
    return;
  }
  int64_t rows_grain = std::max<int64_t>(1, grain / std::max<int64_t>(inner_n, 1));
  parallel_for(outer, rows_grain, [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(nd > 1 ? nd - 1 : 1, 0);
    std::array<int64_t, K> off;
    row_offsets(b, idx, off);
    for (int64_t row = b; row < e; ++row) {
      f(off, inner_n, inner);
      for (int64_t d = nd - 2; d >= 0; --d) {
        ++idx[d];
        for (size_t k = 0; k < K; ++k) off[k] += st[k][d];
        if (idx[d] < sz[d]) break;
        for (size_t k = 0; k < K; ++k) off[k] -= st[k][d] * sz[d];
        idx[d] = 0;
      }
    }
  });
}

// In-place activation of a contiguous float run (kernels/cpu/activation.cpp); used by kernels
// that fuse their activation (the portable conv epilogue).
void act_inplace(float* p, int64_t n, Act a, float alpha);

// 8-lane float vectors (GCC/Clang vector extensions: one AVX register on x86-64-v3, split by the
// compiler on narrower targets). Element math written on these vectorizes without -ffast-math.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

inline v8f splat(float a) { return v8f{a, a, a, a, a, a, a, a}; }
inline v8f loadu(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storeu(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }

// exp(x), accurate to ~2 ulp over the finite range; saturates to 0 / +inf outside
// [-103.9, 88.7]; NaN propagates.
inline v8f exp_v8(v8f x) {
  const v8f hi = splat(88.72283f), lo = splat(-103.97208f);
  v8f xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // x = n*ln2 + r, |r| <= ln2/2; adding and subtracting 1.5*2^23 rounds to nearest
  const v8f magic = splat(12582912.0f);
  const v8f n = (xc * splat(1.44269504088896341f) + magic) - magic;
  v8f r = xc - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  v8f p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  // scale by 2^n in two steps so that n in [-150, 128] stays representable
  const v8i ni = __builtin_convertvector(n, v8i);
  const v8i n1 = ni >> 1, n2 = ni - n1;
  const v8i b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  v8f s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  v8f y = p * s1 * s2;
  y = x > hi ? splat(INFINITY) : y;
  y = x < lo ? splat(0.0f) : y;
  return x != x ? x : y;
}

}  // namespace y7::ops::detail
