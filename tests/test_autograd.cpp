// Autograd engine and the backward of every op: analytic gradients against central finite
// differences of the float forward (loss = sum(y * R) for a fixed random R, evaluated in double),
// plus hand-computed cases (max-pool ties, broadcasting sums, graph accumulation) and batch-norm
// statistics against double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/autograd.h"
#include "kernels/ops.h"

using namespace y7;
using ops::Act;

namespace {

Tensor randn(const Shape& s, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Tensor t = Tensor::empty(s);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

Tensor channels_last(const Tensor& t) {
  Tensor o = Tensor::empty({t.size(0), t.size(2), t.size(3), t.size(1)}).permute({0, 3, 1, 2});
  o.copy_(t);
  return o;
}

// storage offset of flat (row-major over sizes) element i
int64_t elem_offset(const Tensor& t, int64_t i) {
  int64_t off = t.offset();
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (i % t.size(d)) * t.stride(d);
    i /= t.size(d);
  }
  return off;
}

float& at(const Tensor& t, int64_t i) { return static_cast<float*>(t.storage()->data())[elem_offset(t, i)]; }

double dot(const Tensor& y, const Tensor& r) {
  Tensor yc = y.contiguous(), rc = r.contiguous();
  double s = 0;
  for (int64_t i = 0; i < yc.numel(); ++i) s += double(yc.data<float>()[i]) * rc.data<float>()[i];
  return s;
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d sum(f(in) * R) / d in[k] for every input marked in `check` (all elements up to
// max_elems, else an evenly spread sample). Tolerance: tol * (max|grad| + 1).
void gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const std::vector<bool>& check, double eps = 1e-2,
               double tol = 3e-3, int64_t max_elems = 400) {
  std::vector<Tensor> in;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor t = inputs[k];
    t.set_autograd(nullptr);
    if (check[k]) t.set_requires_grad(true);
    in.push_back(t);
  }
  Tensor y = f(in);
  ASSERT_TRUE(y.requires_grad());
  Tensor R = randn(y.sizes(), 99);
  Tensor loss = ops::sum(ops::mul(y, R));
  backward(loss);
  for (size_t k = 0; k < in.size(); ++k) {
    if (!check[k]) continue;
    Tensor g = in[k].grad();
    ASSERT_TRUE(g.defined()) << "input " << k;
    ASSERT_EQ(g.sizes(), in[k].sizes()) << "input " << k;
    Tensor gc = g.contiguous();
    double gmax = 0;
    for (int64_t i = 0; i < gc.numel(); ++i) gmax = std::max(gmax, double(std::fabs(gc.data<float>()[i])));
    const int64_t n = in[k].numel();
    const int64_t step = n <= max_elems ? 1 : n / max_elems;
    double worst = 0;
    NoGradGuard ng;
    for (int64_t i = 0; i < n; i += step) {
      float& v = at(in[k], i);
      const float v0 = v;
      v = v0 + float(eps);
      const double lp = dot(f(in), R);
      v = v0 - float(eps);
      const double lm = dot(f(in), R);
      v = v0;
      const double num = (lp - lm) / (2 * eps);
      worst = std::max(worst, std::fabs(num - gc.data<float>()[i]));
    }
    EXPECT_LE(worst, tol * (gmax + 1)) << "input " << k << ": max |numeric - analytic| " << worst
                                       << " (max |grad| " << gmax << ")";
  }
}

}  // namespace

// ------------------------------------------------------------------ engine

TEST(Autograd, AccumulatesOverSharedUsesAndMultipleRoots) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  a.set_requires_grad(true);
  Tensor b = Tensor::from_vector<float>({4, 5, 6}, {3});
  b.set_requires_grad(true);
  // y = a*b + a  (a used twice) ; loss = sum(y)
  Tensor y = ops::add(ops::mul(a, b), a);
  backward(ops::sum(y));
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(a.grad().data<float>()[i], b.data<float>()[i] + 1);
    EXPECT_FLOAT_EQ(b.grad().data<float>()[i], a.data<float>()[i]);
  }
  // second backward accumulates; multi-root with explicit gradients
  Tensor y1 = ops::mul(a, a), y2 = ops::add(a, b);
  backward({y1, y2}, {Tensor::full({3}, 1.0), Tensor::full({3}, 2.0)});
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(a.grad().data<float>()[i], b.data<float>()[i] + 1 + 2 * a.data<float>()[i] + 2);
    EXPECT_FLOAT_EQ(b.grad().data<float>()[i], a.data<float>()[i] + 2);
  }
  // a leaf root gets the gradient itself
  Tensor c = Tensor::full({2}, 1.0);
  c.set_requires_grad(true);
  backward(c, Tensor::full({2}, 3.0));
  EXPECT_FLOAT_EQ(c.grad().data<float>()[1], 3.0f);
}

TEST(Autograd, NoRecordingWithoutGradAndClearErrors) {
  Tensor a = randn({1, 4, 5, 5}, 1);
  a.set_requires_grad(true);
  {
    NoGradGuard ng;
    Tensor y = ops::activation(a, Act::SiLU);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_FALSE(y.autograd());
  }
  Tensor plain = randn({1, 4, 5, 5}, 2);
  EXPECT_FALSE(ops::activation(plain, Act::SiLU).autograd());
  EXPECT_FALSE(ops::max_pool2d(plain, 2, 2, 0).autograd());
  // inference-only entry points refuse tensors that require grad
  EXPECT_THROW(ops::activation_(a, Act::SiLU), Error);
  Tensor out = Tensor::empty({1, 4, 2, 2});
  EXPECT_THROW(ops::max_pool2d(a, 2, 2, 0, &out), Error);
  // a non-scalar root needs its gradient
  Tensor y = ops::activation(a, Act::ReLU);
  EXPECT_THROW(backward(y), Error);
  EXPECT_THROW(backward(y, Tensor::full({3}, 1.0)), Error);
  EXPECT_THROW(backward(plain, Tensor::full(plain.sizes(), 1.0)), Error);
}

// ------------------------------------------------------------------ conv2d

struct ConvCase {
  Shape x, w;
  int stride, pad, dil, groups;
  bool bias;
  Act act;
  bool cl;
};

TEST(AutogradConv, MatchesFiniteDifferences) {
  const ConvCase cases[] = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1, 1, 1, true, Act::None, false},
      {{1, 4, 9, 8}, {6, 2, 3, 3}, 2, 1, 1, 2, false, Act::SiLU, false},
      {{2, 3, 8, 7}, {5, 3, 1, 1}, 1, 0, 1, 1, true, Act::SiLU, true},
      {{2, 3, 8, 7}, {5, 3, 1, 1}, 1, 0, 1, 1, true, Act::None, false},
      {{1, 2, 9, 9}, {3, 2, 3, 3}, 1, 2, 2, 1, true, Act::None, true},
      {{1, 4, 10, 9}, {4, 1, 3, 3}, 2, 1, 1, 4, true, Act::Sigmoid, false},
      {{1, 3, 6, 5}, {2, 3, 2, 2}, 2, 0, 1, 1, false, Act::None, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.x) + " w" + shape_str(c.w) + " s" + std::to_string(c.stride) + " p" +
                 std::to_string(c.pad) + " d" + std::to_string(c.dil) + " g" + std::to_string(c.groups));
    Tensor x = randn(c.x, 3), w = randn(c.w, 4, 0.5f), b = randn({c.w[0]}, 5);
    if (c.cl) x = channels_last(x);
    ops::Conv2dParams p;
    p.stride = c.stride, p.pad = c.pad, p.dilation = c.dil, p.groups = c.groups, p.act = c.act;
    auto f = [&](const std::vector<Tensor>& in) {
      return ops::conv2d(in[0], in[1], c.bias ? in[2] : Tensor(), p);
    };
    gradcheck(f, {x, w, b}, {true, true, c.bias}, 1e-2);
    auto fp = [&](const std::vector<Tensor>& in) {
      return ops::conv2d_portable(in[0], in[1], c.bias ? in[2] : Tensor(), p);
    };
    gradcheck(fp, {x, w, b}, {true, false, false}, 1e-2);
  }
}

TEST(AutogradConv, BackwardKernelAgainstDirectSums) {
  // dx, dw, db against the defining sums in double for a strided, padded, grouped conv, for the
  // default kernels (oneDNN convolution_backward_data/_weights in oneDNN builds) and the portable loops
  Tensor x = randn({2, 4, 7, 8}, 11), w = randn({6, 2, 3, 3}, 12);
  ops::Conv2dParams p;
  p.stride = 2, p.pad = 1, p.groups = 2;
  Tensor y = ops::conv2d(x, w, Tensor(), p);
  Tensor gy = randn(y.sizes(), 13);
  const int64_t OH = y.size(2), OW = y.size(3);
  std::vector<double> dx(x.numel(), 0.0), dw(w.numel(), 0.0), db(6, 0.0);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t co = 0; co < 6; ++co)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const double gv = gy.item({n, co, oh, ow});
          db[co] += gv;
          for (int64_t cl = 0; cl < 2; ++cl)
            for (int64_t kh = 0; kh < 3; ++kh)
              for (int64_t kw = 0; kw < 3; ++kw) {
                const int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw, ci = (co / 3) * 2 + cl;
                if (ih < 0 || ih >= 7 || iw < 0 || iw >= 8) continue;
                dx[((n * 4 + ci) * 7 + ih) * 8 + iw] += gv * w.item({co, cl, kh, kw});
                dw[((co * 2 + cl) * 3 + kh) * 3 + kw] += gv * x.item({n, ci, ih, iw});
              }
        }
  for (bool portable : {false, true}) {
    SCOPED_TRACE(portable ? "portable" : "default");
    auto bwd = portable ? ops::conv2d_backward_portable : ops::conv2d_backward;
    ops::Conv2dGrads g = bwd(gy, channels_last(x), w, true, true, true, p);
    double ex = 0, ew = 0, eb = 0;
    for (int64_t i = 0; i < x.numel(); ++i) ex = std::max(ex, std::fabs(dx[i] - g.dx.data<float>()[i]));
    for (int64_t i = 0; i < w.numel(); ++i) ew = std::max(ew, std::fabs(dw[i] - g.dw.data<float>()[i]));
    for (int64_t i = 0; i < 6; ++i) eb = std::max(eb, std::fabs(db[i] - g.db.data<float>()[i]));
    EXPECT_LT(ex, 1e-4);
    EXPECT_LT(ew, 1e-4);
    EXPECT_LT(eb, 1e-4);
    // only what is asked for
    ops::Conv2dGrads only_w = bwd(gy, x, w, false, true, false, p);
    EXPECT_FALSE(only_w.dx.defined());
    EXPECT_FALSE(only_w.db.defined());
    EXPECT_LT(max_abs_diff(only_w.dw, g.dw), 1e-5);
    EXPECT_THROW(bwd(randn({2, 6, 3, 3}, 1), x, w, true, true, true, p), Error);
  }
}

// ------------------------------------------------------------------ elementwise, activations

TEST(AutogradElementwise, ActivationsMatchFiniteDifferences) {
  // values kept away from the kinks (0 for ReLU/LeakyReLU, +-3 for the hard ones)
  Tensor x = randn({2, 3, 4, 5}, 21, 2.0f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    float& v = x.data<float>()[i];
    if (std::fabs(v) < 0.05f) v += 0.1f;
    if (std::fabs(std::fabs(v) - 3.0f) < 0.05f) v += 0.1f;
  }
  for (Act a : {Act::SiLU, Act::LeakyReLU, Act::Sigmoid, Act::Hardswish, Act::Hardsigmoid, Act::ReLU}) {
    SCOPED_TRACE(ops::act_name(a));
    gradcheck([&](const std::vector<Tensor>& in) { return ops::activation(in[0], a, 0.1f); }, {x}, {true}, 1e-3);
    gradcheck([&](const std::vector<Tensor>& in) { return ops::activation(in[0], a, 0.1f); }, {channels_last(x)},
              {true}, 1e-3);
  }
  // torch's values at the kinks: relu'(0) = 0, leaky'(0) = alpha, hardswish'(-3) = 0 ... (3) = 1.5
  Tensor k = Tensor::from_vector<float>({0.f, -3.f, 3.f}, {3});
  Tensor ones = Tensor::full({3}, 1.0);
  EXPECT_EQ(ops::activation_backward(ones, k, Act::ReLU).data<float>()[0], 0.0f);
  EXPECT_FLOAT_EQ(ops::activation_backward(ones, k, Act::LeakyReLU, 0.1f).data<float>()[0], 0.1f);
  Tensor hs = ops::activation_backward(ones, k, Act::Hardswish);
  EXPECT_FLOAT_EQ(hs.data<float>()[1], -0.5f);  // x=-3 is inside [-3,3]: x/3+0.5
  EXPECT_FLOAT_EQ(hs.data<float>()[2], 1.5f);
  Tensor hsg = ops::activation_backward(ones, k, Act::Hardsigmoid);
  EXPECT_EQ(hsg.data<float>()[1], 0.0f);
  EXPECT_EQ(hsg.data<float>()[2], 0.0f);
}

TEST(AutogradElementwise, BroadcastAddMul) {
  Tensor x = randn({2, 3, 4, 5}, 31), v = randn({1, 3, 1, 1}, 32), r = randn({5}, 33);
  gradcheck([](const std::vector<Tensor>& in) { return ops::add(in[1], in[0]); }, {x, v}, {true, true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::mul(in[1], in[0]); }, {x, v}, {true, true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::mul(in[0], in[1]); }, {channels_last(x), v},
            {true, true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::mul(in[0], in[1]); }, {x, r}, {true, true});
  // sum_to by hand
  Tensor g = Tensor::full({2, 3, 4}, 1.0);
  Tensor s = ops::sum_to(g, {3, 1});
  ASSERT_EQ(s.sizes(), Shape({3, 1}));
  EXPECT_FLOAT_EQ(s.data<float>()[2], 8.0f);
  EXPECT_THROW(ops::sum_to(g, {2, 3}), Error);
}

// ------------------------------------------------------------------ pooling, upsample, concat, reorg, views

TEST(AutogradShapeOps, MatchFiniteDifferences) {
  Tensor x = randn({2, 3, 8, 6}, 41);
  for (auto [k, s, p] : {std::tuple{2, 2, 0}, std::tuple{5, 1, 2}, std::tuple{3, 2, 1}, std::tuple{9, 1, 4}}) {
    SCOPED_TRACE("pool k" + std::to_string(k));
    gradcheck([&](const std::vector<Tensor>& in) { return ops::max_pool2d(in[0], k, s, p); }, {x}, {true}, 1e-3);
    gradcheck([&](const std::vector<Tensor>& in) { return ops::max_pool2d(in[0], k, s, p); }, {channels_last(x)},
              {true}, 1e-3);
  }
  gradcheck([](const std::vector<Tensor>& in) { return ops::upsample_nearest2d(in[0], 2); }, {x}, {true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::upsample_nearest2d(in[0], 3); }, {channels_last(x)},
            {true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::reorg(in[0]); }, {x}, {true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::reorg(in[0]); }, {channels_last(x)}, {true});
  Tensor y = randn({2, 5, 8, 6}, 42);
  gradcheck([](const std::vector<Tensor>& in) { return ops::concat({in[0], in[1], in[0]}, 1); },
            {channels_last(x), y}, {true, true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::concat({in[0], in[1]}, -1); },
            {x, randn({2, 3, 8, 2}, 43)}, {true, true});
  // the head's view chain: [B, na*no, H, W] -> [B, na, no, H, W] -> permute -> contiguous
  Tensor h = randn({2, 3 * 7, 4, 5}, 44);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor v = ops::reshape(in[0], {2, 3, 7, 4, 5});
        return ops::contiguous(ops::permute(v, {0, 1, 3, 4, 2}));
      },
      {h}, {true});
  gradcheck([](const std::vector<Tensor>& in) { return ops::permute(in[0], {0, 2, 3, 1}); }, {channels_last(x)},
            {true});
}

TEST(AutogradShapeOps, MaxPoolTiesGoToTheFirstMaximum) {
  // torch's CPU max_pool2d keeps the first maximum in row-major window order
  Tensor x = Tensor::full({1, 1, 4, 4}, 1.0);
  x.data<float>()[5] = 2.0f;  // (1,1)
  x.data<float>()[6] = 2.0f;  // (1,2): tie with (1,1)
  Tensor g = ops::max_pool2d_backward(Tensor::full({1, 1, 2, 2}, 1.0), x, 2, 2, 0);
  const float want[16] = {0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(g.data<float>()[i], want[i]) << i;
  // overlapping windows (k3 s1 p1) over a constant plane: each window routes to its top-left cell
  Tensor c = Tensor::full({1, 1, 3, 3}, 0.5);
  Tensor gc = ops::max_pool2d_backward(Tensor::full({1, 1, 3, 3}, 1.0), c, 3, 1, 1);
  const float want2[9] = {4, 2, 0, 2, 1, 0, 0, 0, 0};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(gc.data<float>()[i], want2[i]) << i;
}

// ------------------------------------------------------------------ batch norm (train)

TEST(AutogradBatchNorm, StatisticsRunningUpdateAndGradients) {
  Tensor x = randn({3, 4, 5, 6}, 51, 2.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 1.5f;
  Tensor w = randn({4}, 52), b = randn({4}, 53);
  Tensor rm = randn({4}, 54), rv = Tensor::full({4}, 2.0);
  Tensor rm0 = rm.clone(), rv0 = rv.clone();
  Tensor y = ops::batch_norm_train(channels_last(x), w, b, rm, rv, 0.03, 1e-3);
  const int64_t M = 3 * 30;
  for (int64_t c = 0; c < 4; ++c) {
    double s = 0, q = 0;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t i = 0; i < 30; ++i) s += x.item({n, c, i / 6, i % 6});
    const double m = s / M;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t i = 0; i < 30; ++i) q += std::pow(x.item({n, c, i / 6, i % 6}) - m, 2);
    const double var = q / M;
    EXPECT_NEAR(rm.item({c}), 0.97 * rm0.item({c}) + 0.03 * m, 1e-6);
    EXPECT_NEAR(rv.item({c}), 0.97 * rv0.item({c}) + 0.03 * q / (M - 1), 1e-6);
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t i = 0; i < 30; i += 7) {
        const double want = (x.item({n, c, i / 6, i % 6}) - m) / std::sqrt(var + 1e-3) * w.item({c}) + b.item({c});
        EXPECT_NEAR(y.item({n, c, i / 6, i % 6}), want, 1e-5);
      }
  }
  auto f = [](const std::vector<Tensor>& in) {
    return ops::batch_norm_train(in[0], in[1], in[2], Tensor(), Tensor(), 0.03, 1e-3);
  };
  gradcheck(f, {x, w, b}, {true, true, true}, 1e-2, 3e-3);
  gradcheck(f, {channels_last(x), w, b}, {true, false, false}, 1e-2, 3e-3);
  EXPECT_THROW(ops::batch_norm_train(randn({1, 4, 1, 1}, 1), w, b, rm, rv, 0.03, 1e-3), Error);
}

// A small network through the ops at once: conv -> BN(train) -> SiLU -> reorg/upsample/concat ->
// implicit add/mul -> head views, against finite differences w.r.t. input and every weight (max
// pooling is left to its own test: finite differences across argmax switches are meaningless).
TEST(AutogradGraph, SmallNetworkMatchesFiniteDifferences) {
  Tensor x = randn({2, 3, 8, 8}, 61), w1 = randn({4, 3, 3, 3}, 62, 0.4f), g1 = randn({4}, 63),
         b1 = randn({4}, 64), w2 = randn({6, 20, 1, 1}, 65, 0.4f), b2 = randn({6}, 66), ia = randn({1, 20, 1, 1}, 67),
         im = randn({1, 6, 1, 1}, 68);
  auto f = [](const std::vector<Tensor>& in) {
    ops::Conv2dParams p;
    p.pad = 1;
    Tensor h = ops::conv2d(in[0], in[1], Tensor(), p);
    h = ops::activation(ops::batch_norm_train(h, in[2], in[3], Tensor(), Tensor(), 0.03, 1e-3), Act::SiLU);
    Tensor u = ops::upsample_nearest2d(ops::reorg(h), 2);
    Tensor c = ops::concat({h, u}, 1);
    Tensor r = ops::conv2d(ops::add(in[6], c), in[4], in[5], ops::Conv2dParams{});
    r = ops::mul(in[7], r);
    Tensor v = ops::reshape(r, {2, 3, 2, 8, 8});
    return ops::contiguous(ops::permute(v, {0, 1, 3, 4, 2}));
  };
  gradcheck(f, {x, w1, g1, b1, w2, b2, ia, im}, {true, true, true, true, true, true, true, true}, 1e-2, 3e-3, 150);
}
