// Elementwise activations: the scalar definitions (act_scalar) and the strided, vectorizable
// tensor loops built on them.
#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

using detail::splat;
using detail::v8f;

// The definitions, on 8 lanes. Comparisons are ordered so that NaN inputs give NaN, as in torch.
template <Act A>
inline v8f act_v8(v8f x, float alpha) {
  if constexpr (A == Act::None) {
    return x;
  } else if constexpr (A == Act::SiLU) {
    return x / (splat(1.0f) + detail::exp_v8(-x));
  } else if constexpr (A == Act::LeakyReLU) {
    return x > splat(0.0f) ? x : x * splat(alpha);
  } else if constexpr (A == Act::Sigmoid) {
    return splat(1.0f) / (splat(1.0f) + detail::exp_v8(-x));
  } else if constexpr (A == Act::Hardswish || A == Act::Hardsigmoid) {
    v8f t = x + splat(3.0f);  // relu6(x + 3)
    t = t < splat(0.0f) ? splat(0.0f) : t;
    t = t > splat(6.0f) ? splat(6.0f) : t;
    if constexpr (A == Act::Hardswish) return x * t / splat(6.0f);
    else return t / splat(6.0f);
  } else {  // ReLU
    return x < splat(0.0f) ? splat(0.0f) : x;
  }
}

// dst[i*ds] = act(src[i*ss]) for i < n; src may equal dst. Tails run through the same vector code
// so that every element gets bit-identical results whatever its position.
template <Act A>
void act_run(const float* src, int64_t ss, float* dst, int64_t ds, int64_t n, float alpha) {
  int64_t i = 0;
  if (ss == 1 && ds == 1) {
    for (; i + 8 <= n; i += 8) detail::storeu(dst + i, act_v8<A>(detail::loadu(src + i), alpha));
  } else {
    for (; i + 8 <= n; i += 8) {
      v8f v;
      for (int l = 0; l < 8; ++l) v[l] = src[(i + l) * ss];
      v = act_v8<A>(v, alpha);
      for (int l = 0; l < 8; ++l) dst[(i + l) * ds] = v[l];
    }
  }
  if (i < n) {
    v8f v = splat(0.0f);
    for (int64_t l = 0; l < n - i; ++l) v[l] = src[(i + l) * ss];
    v = act_v8<A>(v, alpha);
    for (int64_t l = 0; l < n - i; ++l) dst[(i + l) * ds] = v[l];
  }
}

using RunFn = void (*)(const float*, int64_t, float*, int64_t, int64_t, float);

RunFn run_fn(Act a) {
  switch (a) {
    case Act::None: return act_run<Act::None>;
    case Act::SiLU: return act_run<Act::SiLU>;
    case Act::LeakyReLU: return act_run<Act::LeakyReLU>;
    case Act::Sigmoid: return act_run<Act::Sigmoid>;
    case Act::Hardswish: return act_run<Act::Hardswish>;
    case Act::Hardsigmoid: return act_run<Act::Hardsigmoid>;
    case Act::ReLU: return act_run<Act::ReLU>;
  }
  fail("unknown activation ", int(a));
}

void apply(const Tensor& src, const Tensor& dst, Act a, float alpha) {
  RunFn fn = run_fn(a);
  const float* s = src.data<float>();
  float* d = dst.data<float>();
  detail::for_each_run<2>(dst.sizes(), {dst.strides(), src.strides()}, 1 << 15,
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            fn(s + off[1], st[1], d + off[0], st[0], n, alpha);
                          });
}

}  // namespace

void detail::act_inplace(float* p, int64_t n, Act a, float alpha) {
  if (a != Act::None) run_fn(a)(p, 1, p, 1, n, alpha);
}

const char* act_name(Act a) {
  switch (a) {
    case Act::None: return "None";
    case Act::SiLU: return "SiLU";
    case Act::LeakyReLU: return "LeakyReLU";
    case Act::Sigmoid: return "Sigmoid";
    case Act::Hardswish: return "Hardswish";
    case Act::Hardsigmoid: return "Hardsigmoid";
    case Act::ReLU: return "ReLU";
  }
  return "?";
}

float act_scalar(Act a, float x, float alpha) {
  float y;
  run_fn(a)(&x, 1, &y, 1, 1, alpha);
  return y;
}

Tensor activation(const Tensor& x, Act a, float alpha) {
  detail::check_f32(x, "activation", "input");
  Tensor y = detail::empty_like_format(x.sizes(), x);
  apply(x, y, a, alpha);
  if (a != Act::None && any_requires_grad({&x})) {
    Tensor sx = x;
    sx.set_autograd(nullptr);
    record_fn("ActivationBackward", {&x}, y, [sx, a, alpha](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{activation_backward(g[0], sx, a, alpha)};
    });
  } else if (a == Act::None && x.requires_grad() && grad_enabled()) {
    record_fn("IdentityBackward", {&x}, y, [](const std::vector<Tensor>& g) { return g; });
  }
  return y;
}

// Derivatives as torch's CPU backward kernels define them (at the kinks too).
Tensor activation_backward(const Tensor& gy, const Tensor& x, Act a, float alpha) {
  detail::check_f32(gy, "activation_backward", "gradient");
  detail::check_f32(x, "activation_backward", "input");
  Y7_CHECK(gy.sizes() == x.sizes(), "activation_backward: gradient ", gy.str(), " vs input ", x.str());
  Tensor gc = gy.contiguous(), xc = x.contiguous();
  Tensor r = Tensor::empty(x.sizes());
  const float *pg = gc.data<float>(), *px = xc.data<float>();
  float* pr = r.data<float>();
  const int64_t n = r.numel();
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = px[i], g = pg[i];
      float d;
      switch (a) {
        case Act::None: d = g; break;
        case Act::SiLU: {
          const float s = 1.0f / (1.0f + std::exp(-v));
          d = g * s * (1.0f + v * (1.0f - s));
          break;
        }
        case Act::LeakyReLU: d = v > 0.0f ? g : g * alpha; break;
        case Act::Sigmoid: {
          const float s = 1.0f / (1.0f + std::exp(-v));
          d = g * (1.0f - s) * s;
          break;
        }
        case Act::Hardswish: d = v < -3.0f ? 0.0f : (v <= 3.0f ? g * (v / 3.0f + 0.5f) : g); break;
        case Act::Hardsigmoid: d = (v > -3.0f && v < 3.0f) ? g / 6.0f : 0.0f; break;
        case Act::ReLU: d = v > 0.0f ? g : 0.0f; break;
        default: d = 0.0f;
      }
      pr[i] = d;
    }
  });
  return r;
}

void activation_(Tensor& x, Act a, float alpha) {
  detail::check_f32(x, "activation_", "input");
  Y7_CHECK(!any_requires_grad({&x}), "activation_: in-place on a tensor that requires grad; use activation()");
  if (a == Act::None) return;
  apply(x, x, a, alpha);
}

}  // namespace y7::ops
