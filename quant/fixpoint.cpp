// Fix-point kernels (see fixpoint.h for the NNDCT files each piece mirrors). Float32 arithmetic in
// the order NNDCT's kernels use, so that x * 2^fp and q * 2^-fp are exact and the rounding decisions
// are those of its CPU kernel.
#include "quant/fixpoint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/thread_pool.h"

namespace y7::quant {

// Mirrors _vai_round_cpu (include/cpu/nndct_fix_kernels_cpu.h), methods 2, 3, 4 and 8.
float round_nndct(float x, Round m) {
  switch (m) {
    case Round::HalfUp:
      if (x < 0 && (x - std::floor(x)) == 0.5f) return std::ceil(x);
      return std::round(x);
    case Round::StdRound:
      return std::round(x);
    case Round::Floor:
      return std::floor(x);
    case Round::HalfEven: {
      const float f = std::floor(x);
      if ((x - f) == 0.5f) return std::fmod(f, 2.0f) == 0.0f ? f : f + 1.0f;  // |x| < 2^23 here
      return std::round(x);
    }
  }
  fail("fix point: unknown round method ", int(m));
}

namespace {

inline float amp_of(int fix_point) { return std::ldexp(1.0f, fix_point); }

void check_fp(int fix_point, int bit_width) {
  Y7_CHECK(bit_width >= 2 && bit_width <= 16, "fix point: bit width ", bit_width, " out of range 2..16");
  Y7_CHECK(fix_point >= -64 && fix_point <= 64, "fix point: fix_point ", fix_point, " out of range -64..64");
}

// Mirrors _fix_neuron_v2_cpu + the keep_scale branch of _fix_neuron_v2: one element.
inline float fix_one(float x, float amp, float inv, float qmin, float qmax, Round m) {
  float r = round_nndct(x * amp, m);
  if (r > qmax) r = qmax;
  else if (r < qmin) r = qmin;
  r += 0.0f;  // NNDCT holds the result in an int: -0 becomes +0
  return r * inv;
}

// Base pointer and element count when the tensor's elements fill one dense block of memory (any
// permutation of dimensions, e.g. channels-last), else nullptr.
float* dense_block(const Tensor& t, int64_t& count) {
  count = t.numel();
  if (count == 0) return nullptr;
  std::vector<int> order(size_t(t.dim()));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return t.stride(a) < t.stride(b); });
  int64_t expect = 1;
  for (int d : order) {
    if (t.size(d) == 1) continue;
    if (t.stride(d) != expect) return nullptr;
    expect *= t.size(d);
  }
  return static_cast<float*>(t.raw_data());
}

}  // namespace

// The DPU's half-up rounding of activations in float without branches: f = floor(v), then up when
// v - f >= 0.5 (v - f is exact in float), identical to _vai_round_cpu's method 2 and vectorizable.
namespace {
inline float half_up_clamped(float v, float qmin, float qmax) {
  const float f = std::floor(v);
  float r = f + ((v - f) >= 0.5f ? 1.0f : 0.0f);  // NaN stays NaN; -0 + 0 = +0
  r = r > qmax ? qmax : r;
  return r < qmin ? qmin : r;
}
}  // namespace

void fix_neuron(const float* x, float* y, int64_t n, int fix_point, int bit_width, Round m) {
  check_fp(fix_point, bit_width);
  const float amp = amp_of(fix_point), inv = 1.0f / amp;
  const float qmax = float((1 << (bit_width - 1)) - 1), qmin = -float(1 << (bit_width - 1));
  constexpr int64_t kBlock = 1 << 15;
  parallel_for((n + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    const int64_t e = std::min(n, b1 * kBlock);
    if (m == Round::HalfUp) {
      for (int64_t i = b0 * kBlock; i < e; ++i) y[i] = half_up_clamped(x[i] * amp, qmin, qmax) * inv;
    } else {
      for (int64_t i = b0 * kBlock; i < e; ++i) y[i] = fix_one(x[i], amp, inv, qmin, qmax, m);
    }
  });
}

void quantize_int8(const float* x, int8_t* q, int64_t n, int fix_point, Round m) {
  check_fp(fix_point, 8);
  const float amp = amp_of(fix_point);
  for (int64_t i = 0; i < n; ++i) {
    Y7_CHECK(!std::isnan(x[i]), "fix point: NaN cannot be quantized to int8");
    float r = round_nndct(x[i] * amp, m);
    q[i] = int8_t(std::clamp(r, -128.0f, 127.0f));
  }
}

void dequantize_int8(const int8_t* q, float* y, int64_t n, int fix_point) {
  check_fp(fix_point, 8);
  const float inv = 1.0f / amp_of(fix_point);
  for (int64_t i = 0; i < n; ++i) y[i] = float(q[i]) * inv;
}

void fake_quant_(Tensor& x, int fix_point, int bit_width, Round m) {
  Y7_CHECK(x.dtype() == DType::F32, "fix point: expected a float32 tensor, got ", x.str());
  int64_t n = 0;
  if (float* p = dense_block(x, n)) {
    fix_neuron(p, p, n, fix_point, bit_width, m);
    return;
  }
  if (n == 0) return;
  Tensor c = x.contiguous();
  fix_neuron(c.data<float>(), c.data<float>(), n, fix_point, bit_width, m);
  x.copy_(c);
}

Tensor fake_quant(const Tensor& x, int fix_point, int bit_width, Round m) {
  Tensor y = x.to(DType::F32).clone();
  fake_quant_(y, fix_point, bit_width, m);
  return y;
}

double fix_error(const float* x, int64_t n, int fix_point, int bit_width, Round m) {
  check_fp(fix_point, bit_width);
  const float amp = amp_of(fix_point), inv = 1.0f / amp;
  const float qmax = float((1 << (bit_width - 1)) - 1), qmin = -float(1 << (bit_width - 1));
  // fixed blocks summed in order: the same result for any thread count
  constexpr int64_t kBlock = 1 << 14;
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(size_t(nb), 0.0);
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double s = 0;
      const int64_t e = std::min(n, (b + 1) * kBlock);
      if (m == Round::HalfUp) {
        // 8 float lanes over runs of 256, then double (the order is fixed: thread-count independent)
        for (int64_t i0 = b * kBlock; i0 < e; i0 += 256) {
          const int64_t i1 = std::min(e, i0 + 256);
          float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          int64_t i = i0;
          for (; i + 8 <= i1; i += 8)
            for (int k = 0; k < 8; ++k) {
              const float d = x[i + k] - half_up_clamped(x[i + k] * amp, qmin, qmax) * inv;
              acc[k] += d * d;
            }
          for (; i < i1; ++i) {
            const float d = x[i] - half_up_clamped(x[i] * amp, qmin, qmax) * inv;
            acc[0] += d * d;
          }
          for (float a : acc) s += a;
        }
      } else {
        for (int64_t i = b * kBlock; i < e; ++i) {
          const float d = x[i] - fix_one(x[i], amp, inv, qmin, qmax, m);
          s += double(d) * double(d);
        }
      }
      part[size_t(b)] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// Mirrors diffs_fix_pos (pytorch_nndct/nn/modules/fix_ops.py), the python twin of cpu_diff_S
// (csrc/cpu/nndct_fix_kernels_cpu.cc) that torchquantizer.calibrate_int calls.
int diffs_fix_pos(const float* x, int64_t n, int bit_width, int scope, Round m) {
  Y7_CHECK(n > 0, "calibration: empty tensor");
  Y7_CHECK(bit_width >= 2 && bit_width <= 16, "calibration: bit width ", bit_width, " out of range 2..16");
  Y7_CHECK(scope >= 1 && scope <= 32, "calibration: diffs scope ", scope, " out of range 1..32");
  float lo = x[0], hi = x[0];
  for (int64_t i = 0; i < n; ++i) {
    Y7_CHECK(std::isfinite(x[i]), "calibration: tensor holds a non-finite value (", x[i], ")");
    lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  }
  const float abs_max = float(1 << (bit_width - 1));
  const float fix_lb = -abs_max - 0.5f, fix_ub = abs_max - 0.5f;
  const float step = std::max(lo / fix_lb, hi / fix_ub);
  int max_scale = kFixPointAllZero;
  if (step > 0) {
    const float inv = 1.0f / step;  // float32, as torch computes 1.0/step on a float tensor
    max_scale = std::isfinite(inv) ? int(std::floor(std::log2(inv))) : int(std::floor(std::log2(1.0 / double(step))));
    max_scale = std::clamp(max_scale, -64, 64 - scope);
  }
  if (scope <= 1) return max_scale;
  int best = max_scale;
  double best_err = std::numeric_limits<double>::max();
  for (int s = max_scale; s < max_scale + scope; ++s) {
    const double e = fix_error(x, n, s, bit_width, m);
    if (e < best_err) best = s, best_err = e;
  }
  return best;
}

int diffs_fix_pos(const Tensor& x, int bit_width, int scope, Round m) {
  Y7_CHECK(x.dtype() == DType::F32, "calibration: expected a float32 tensor, got ", x.str());
  int64_t n = 0;
  if (const float* p = dense_block(x, n)) return diffs_fix_pos(p, n, bit_width, scope, m);
  Tensor c = x.contiguous();
  return diffs_fix_pos(c.data<float>(), c.numel(), bit_width, scope, m);
}

int modal_fix_pos(const std::vector<int>& history) {
  Y7_CHECK(!history.empty(), "calibration: no fix point recorded");
  std::map<int, int> count;  // ordered: the first maximum is the smallest value
  for (int v : history) ++count[v];
  int best = count.begin()->first, n = 0;
  for (auto& [v, c] : count)
    if (c > n) best = v, n = c;
  return best;
}

// Mirrors deephi_Hardsigmoid.forward (pytorch_nndct/nn/modules/hardsigmoid.py), quant branch.
float dpu_hsigmoid(float x) {
  float t = x + 3.0f;
  t = std::min(std::max(t, 0.0f), 6.0f);  // F.relu6
  return t * kDpuOneSixth;
}

// Mirrors deephi_Hardswish.forward (pytorch_nndct/nn/modules/hardswish.py), quant branch: the
// hsigmoid factor is fake-quantized at scale 1/128 (fix_point 7, method 2) before the multiply.
float dpu_hswish(float x) {
  const float h = half_up_clamped(dpu_hsigmoid(x) * 128.0f, -128.0f, 127.0f) * (1.0f / 128.0f);
  return x * h;
}

void dpu_hard_act(const Tensor& x, Tensor& out, bool swish) {
  Y7_CHECK(x.dtype() == DType::F32 && out.dtype() == DType::F32 && x.sizes() == out.sizes(),
           "dpu activation: expected float32 tensors of one shape, got ", x.str(), " and ", out.str());
  int64_t n = 0, m = 0;
  const float* a = dense_block(x, n);
  float* b = dense_block(out, m);
  if (!a || !b || x.strides() != out.strides()) {
    out.copy_(x);
    dpu_hard_act_(out, swish);
    return;
  }
  parallel_for((n + 32767) / 32768, 1, [&](int64_t b0, int64_t b1) {
    const int64_t e = std::min(n, b1 * 32768);
    if (swish)
      for (int64_t i = b0 * 32768; i < e; ++i) b[i] = dpu_hswish(a[i]);
    else
      for (int64_t i = b0 * 32768; i < e; ++i) b[i] = dpu_hsigmoid(a[i]);
  });
}

void dpu_hard_act_(Tensor& x, bool swish) {
  Y7_CHECK(x.dtype() == DType::F32, "dpu activation: expected a float32 tensor, got ", x.str());
  int64_t n = 0;
  float* p = dense_block(x, n);
  Tensor c;
  if (!p && n > 0) c = x.contiguous(), p = c.data<float>();
  if (swish)
    for (int64_t i = 0; i < n; ++i) p[i] = dpu_hswish(p[i]);
  else
    for (int64_t i = 0; i < n; ++i) p[i] = dpu_hsigmoid(p[i]);
  if (c.defined()) x.copy_(c);
}

}  // namespace y7::quant
