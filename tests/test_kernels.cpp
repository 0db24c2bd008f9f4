// CPU kernels against independent references: ops::ref (direct double-precision loops),
// mathematical definitions evaluated in double, hand-computed examples, and upstream PyTorch
// fixtures (Detect decode of yolov7-tiny).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "core/thread_pool.h"
#include "io/npy.h"
#include "kernels/cpu/dnnl_util.h"
#include "kernels/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

Tensor iota(const Shape& s) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i);
  return t;
}

// Same values, channels-last memory order (NCHW sizes, NHWC strides).
Tensor to_cl(const Tensor& t) { return t.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2}); }
bool is_cl(const Tensor& t) {
  return t.stride(1) == 1 && t.stride(3) == t.size(1) && t.stride(2) == t.size(1) * t.size(3);
}

// max |a-b| / max(1, max|b|)
double rel_err(const Tensor& a, const Tensor& b) { return max_abs_diff(a, b) / std::max(1.0, max_abs(b)); }

const Act kActs[] = {Act::None, Act::SiLU, Act::LeakyReLU, Act::Sigmoid, Act::Hardswish, Act::Hardsigmoid, Act::ReLU};

double act_double(Act a, double x, double alpha) {
  switch (a) {
    case Act::None: return x;
    case Act::SiLU: return x / (1 + std::exp(-x));
    case Act::LeakyReLU: return x > 0 ? x : alpha * x;
    case Act::Sigmoid: return 1 / (1 + std::exp(-x));
    case Act::Hardswish: return x <= -3 ? 0 : x >= 3 ? x : x * (x + 3) / 6;
    case Act::Hardsigmoid: return x <= -3 ? 0 : x >= 3 ? 1 : x / 6 + 0.5;
    case Act::ReLU: return x > 0 ? x : 0;
  }
  return NAN;
}

}  // namespace

// ------------------------------------------------------------------ activations

TEST(KernelsActivation, MatchesDoubleDefinitions) {
  std::vector<float> xs;
  for (float v = -30.0f; v <= 30.0f; v += 0.0137f) xs.push_back(v);
  for (float v : {0.0f, -0.0f, 3.0f, -3.0f, 1e-8f, -1e-8f, 80.0f, -80.0f, 88.0f, -87.0f, 200.0f, -200.0f})
    xs.push_back(v);
  Tensor x = Tensor::from_vector(xs, {int64_t(xs.size())});
  for (Act a : kActs) {
    const float alpha = 0.1f;
    Tensor y = ops::activation(x, a, alpha);
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      double want = act_double(a, xs[i], alpha), got = y.data<float>()[i];
      double err = std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
      if (std::fabs(want) < 1e-30) err = std::fabs(got - want);
      worst = std::max(worst, err);
      EXPECT_EQ(got, ops::act_scalar(a, xs[i], alpha)) << ops::act_name(a) << " x=" << xs[i];
    }
    EXPECT_LT(worst, 1e-6) << ops::act_name(a);
  }
  EXPECT_STREQ(ops::act_name(Act::Hardsigmoid), "Hardsigmoid");
  EXPECT_EQ(ops::act_scalar(Act::LeakyReLU, -2.0f, 0.25f), -0.5f);
  EXPECT_TRUE(std::isnan(ops::act_scalar(Act::SiLU, NAN, 0.1f)));
  EXPECT_TRUE(std::isnan(ops::act_scalar(Act::ReLU, NAN, 0.1f)));
  EXPECT_EQ(ops::act_scalar(Act::Sigmoid, -200.0f, 0.1f), 0.0f);
  EXPECT_EQ(ops::act_scalar(Act::Sigmoid, 200.0f, 0.1f), 1.0f);
}

TEST(KernelsActivation, StridedAndInPlace) {
  Tensor big = randn({2, 6, 5, 7}, 1, 3.0f);
  Tensor keep = big.clone();
  Tensor slice = big.slice(1, 2, 4);  // strided view
  Tensor want = ops::ref::activation(slice, Act::SiLU);
  Tensor got = ops::activation(slice, Act::SiLU);
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_LT(rel_err(got, want), 1e-6);
  ops::activation_(slice, Act::SiLU);
  EXPECT_LT(rel_err(slice, want), 1e-6);
  EXPECT_EQ(max_abs_diff(big.slice(1, 0, 2), keep.slice(1, 0, 2)), 0.0);
  EXPECT_EQ(max_abs_diff(big.slice(1, 4, 6), keep.slice(1, 4, 6)), 0.0);
  Tensor perm = keep.permute({0, 3, 1, 2});
  EXPECT_LT(rel_err(ops::activation(perm, Act::Hardswish), ops::ref::activation(perm, Act::Hardswish)), 1e-6);
  Tensor large = randn({1, 64, 64, 64}, 2, 4.0f);  // exercises the threaded path
  EXPECT_LT(rel_err(ops::activation(large, Act::Sigmoid), ops::ref::activation(large, Act::Sigmoid)), 1e-6);
  Tensor cl = to_cl(keep);
  Tensor acl = ops::activation(cl, Act::Hardsigmoid);
  EXPECT_TRUE(is_cl(acl));
  EXPECT_LT(rel_err(acl, ops::ref::activation(keep, Act::Hardsigmoid)), 1e-6);
  Tensor i32 = Tensor::zeros({3}, DType::I32);
  EXPECT_THROW(ops::activation(i32, Act::ReLU), Error);
}

// ------------------------------------------------------------------ conv2d

namespace {

struct ConvCase {
  int64_t n, ci, co, h, w, k;
  int stride, pad, dil, groups;
};

const ConvCase kConvCases[] = {
    {1, 16, 24, 9, 11, 1, 1, 0, 1, 1},   // 1x1
    {2, 8, 16, 13, 17, 3, 2, 1, 1, 1},   // 3x3 stride 2, odd sizes
    {1, 3, 16, 20, 24, 3, 1, 1, 1, 1},   // first layer, 3 input channels
    {2, 12, 18, 10, 9, 3, 1, 1, 1, 3},   // groups 3
    {1, 8, 8, 11, 12, 3, 1, 1, 1, 8},    // depthwise
    {1, 6, 10, 15, 13, 3, 1, 2, 2, 1},   // dilation 2
    {2, 5, 7, 7, 5, 5, 1, 2, 1, 1},      // 5x5 on a small odd input
    {1, 32, 40, 8, 8, 3, 2, 0, 1, 1},    // no padding, stride 2
    {1, 64, 48, 6, 10, 1, 2, 0, 1, 1},   // 1x1 stride 2
    {1, 40, 33, 12, 12, 3, 1, 1, 1, 1},  // channels not multiples of the SIMD width
    {1, 20, 12, 16, 17, 1, 1, 0, 1, 1},  // 1x1 over several column blocks (portable: direct B)
    {2, 8, 6, 12, 12, 1, 1, 0, 1, 2},    // grouped 1x1
};

std::string case_str(const ConvCase& c) {
  return "n" + std::to_string(c.n) + " ci" + std::to_string(c.ci) + " co" + std::to_string(c.co) + " " +
         std::to_string(c.h) + "x" + std::to_string(c.w) + " k" + std::to_string(c.k) + " s" +
         std::to_string(c.stride) + " p" + std::to_string(c.pad) + " d" + std::to_string(c.dil) + " g" +
         std::to_string(c.groups);
}

using ConvFn = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&, const ops::Conv2dParams&,
                                    ops::ConvCache*, Tensor*)>;

// Runs every case with every activation (or only `acts`), with and without bias, through `fn`;
// returns the worst relative error against ops::ref::conv2d.
double check_conv_cases(const ConvFn& fn, std::vector<Act> acts = {std::begin(kActs), std::end(kActs)}) {
  double worst = 0;
  uint32_t seed = 10;
  for (const ConvCase& c : kConvCases) {
    Tensor x = randn({c.n, c.ci, c.h, c.w}, seed++);
    Tensor w = randn({c.co, c.ci / c.groups, c.k, c.k}, seed++, 0.3f);
    Tensor b = randn({c.co}, seed++);
    auto cache = ops::ConvCache::create();
    for (Act a : acts)
      for (bool bias : {true, false}) {
        ops::Conv2dParams p;
        p.stride = c.stride, p.pad = c.pad, p.dilation = c.dil, p.groups = c.groups, p.act = a, p.alpha = 0.15f;
        Tensor bb = bias ? b : Tensor();
        Tensor want = ops::ref::conv2d(x, w, bb, p);
        Tensor got = fn(x, w, bb, p, cache.get(), nullptr);
        EXPECT_EQ(got.sizes(), want.sizes()) << case_str(c);
        if (got.sizes() != want.sizes()) continue;
        double e = rel_err(got, want);
        EXPECT_LT(e, 1e-5) << case_str(c) << " act " << ops::act_name(a) << " bias " << bias;
        worst = std::max(worst, e);
        cache->reset();
      }
  }
  return worst;
}

ConvFn fast_conv = [](const Tensor& x, const Tensor& w, const Tensor& b, const ops::Conv2dParams& p,
                      ops::ConvCache* c, Tensor* out) { return ops::conv2d(x, w, b, p, c, out); };
ConvFn portable_conv = [](const Tensor& x, const Tensor& w, const Tensor& b, const ops::Conv2dParams& p,
                          ops::ConvCache*, Tensor* out) { return ops::conv2d_portable(x, w, b, p, out); };

#ifdef Y7_USE_DNNL
struct LayoutGuard {
  ops::dnnl_util::ConvLayout saved = ops::dnnl_util::conv_layout();
  explicit LayoutGuard(ops::dnnl_util::ConvLayout l) { ops::dnnl_util::set_conv_layout(l); }
  ~LayoutGuard() { ops::dnnl_util::set_conv_layout(saved); }
};
#endif

}  // namespace

TEST(KernelsConv, MatchesReference) {
#ifdef Y7_USE_DNNL
  using L = ops::dnnl_util::ConvLayout;
  for (L l : {L::Auto, L::Plain, L::Blocked, L::ChannelsLast}) {
    LayoutGuard g(l);
    // every activation in the default layout, a few in the others
    double worst = l == L::Auto ? check_conv_cases(fast_conv)
                                : check_conv_cases(fast_conv, {Act::None, Act::SiLU, Act::Hardsigmoid});
    std::printf("conv2d (oneDNN, layout %d) worst relative error %.3g\n", int(l), worst);
  }
#else
  double worst = check_conv_cases(fast_conv);
  std::printf("conv2d worst relative error %.3g\n", worst);
#endif
}

TEST(KernelsConv, PortableMatchesReference) {
  double worst = check_conv_cases(portable_conv);
  std::printf("conv2d_portable worst relative error %.3g\n", worst);
}

TEST(KernelsConv, LargerPortableBlocks) {
  // spans several K and column blocks of the packed GEMM, and the thread pool
  Tensor x = randn({1, 48, 23, 29}, 3);
  Tensor w = randn({70, 48, 3, 3}, 4, 0.1f);
  Tensor b = randn({70}, 5);
  ops::Conv2dParams p;
  p.pad = 1, p.act = Act::SiLU;
  Tensor want = ops::ref::conv2d(x, w, b, p);
  EXPECT_LT(rel_err(ops::conv2d_portable(x, w, b, p), want), 1e-5);
  EXPECT_LT(rel_err(ops::conv2d(x, w, b, p), want), 1e-5);
}

TEST(KernelsConv, WritesIntoStridedViews) {
  // out = channel slice [N, 5:5+Co, H, W] of a concat buffer; input = channel slice of another
  for (const ConvFn& fn : {fast_conv, portable_conv}) {
    for (int64_t n : {1, 2}) {
      Tensor xbig = randn({n, 20, 14, 15}, 7);
      Tensor x = xbig.slice(1, 4, 16);  // 12 channels, strided when n > 1
      Tensor w = randn({9, 12, 3, 3}, 8, 0.3f);
      Tensor b = randn({9}, 9);
      ops::Conv2dParams p;
      p.pad = 1, p.act = Act::LeakyReLU;
      Tensor buf = Tensor::full({n, 20, 14, 15}, 123.0);
      Tensor out = buf.slice(1, 5, 14);
      auto cache = ops::ConvCache::create();
      for (int rep = 0; rep < 2; ++rep) {  // second run reuses the cached primitive
        Tensor r = fn(x, w, b, p, cache.get(), &out);
        EXPECT_EQ(r.storage(), buf.storage());
      }
      Tensor want = ops::ref::conv2d(x, w, b, p);
      EXPECT_LT(rel_err(out, want), 1e-5) << "n=" << n;
      EXPECT_EQ(max_abs_diff(buf.slice(1, 0, 5), Tensor::full({n, 5, 14, 15}, 123.0)), 0.0);
      EXPECT_EQ(max_abs_diff(buf.slice(1, 14, 20), Tensor::full({n, 6, 14, 15}, 123.0)), 0.0);
      // a non-contiguous (permuted) input works too
      Tensor xp = x.contiguous().permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});
      EXPECT_LT(rel_err(fn(xp, w, b, p, nullptr, nullptr), want), 1e-5);
    }
  }
}

TEST(KernelsConv, CacheAcrossShapesAndWeightChanges) {
  auto cache = ops::ConvCache::create();
  Tensor w = randn({8, 4, 3, 3}, 11, 0.3f);
  Tensor b = randn({8}, 12);
  ops::Conv2dParams p;
  p.pad = 1, p.act = Act::SiLU;
  for (int64_t h : {8, 12, 8}) {
    Tensor x = randn({1, 4, h, h + 1}, 13 + uint32_t(h));
    EXPECT_LT(rel_err(ops::conv2d(x, w, b, p, cache.get()), ops::ref::conv2d(x, w, b, p)), 1e-5);
  }
  // another weight tensor through the same cache is detected; in-place changes need reset()
  Tensor x = randn({1, 4, 8, 9}, 20);
  Tensor w2 = randn({8, 4, 3, 3}, 21, 0.3f);
  EXPECT_LT(rel_err(ops::conv2d(x, w2, b, p, cache.get()), ops::ref::conv2d(x, w2, b, p)), 1e-5);
  w2.copy_(w);
  cache->reset();
  EXPECT_LT(rel_err(ops::conv2d(x, w2, b, p, cache.get()), ops::ref::conv2d(x, w, b, p)), 1e-5);
  // out allocated into an undefined tensor
  Tensor o;
  Tensor r = ops::conv2d(x, w, b, p, cache.get(), &o);
  EXPECT_TRUE(o.defined());
  EXPECT_EQ(o.sizes(), (Shape{1, 8, 8, 9}));
  EXPECT_EQ(o.storage(), r.storage());
}

TEST(KernelsConv, HandComputed) {
  // 1 channel 3x3 input, 2x2 kernel of ones, bias 0.5, stride 1, no padding
  Tensor x = iota({1, 1, 3, 3});
  Tensor w = Tensor::full({1, 1, 2, 2}, 1.0);
  Tensor b = Tensor::full({1}, 0.5);
  Tensor y = ops::conv2d(x, w, b, {});
  ASSERT_EQ(y.sizes(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.item({0, 0, 0, 0}), 0 + 1 + 3 + 4 + 0.5);
  EXPECT_EQ(y.item({0, 0, 1, 1}), 4 + 5 + 7 + 8 + 0.5);
  ops::Conv2dParams p;
  p.act = Act::ReLU;
  Tensor yn = ops::conv2d(x, Tensor::full({1, 1, 2, 2}, -1.0), Tensor(), p);
  EXPECT_EQ(max_abs(yn), 0.0);
}

TEST(KernelsConv, RejectsBadArguments) {
  Tensor x = randn({1, 4, 8, 8}, 1);
  Tensor w = randn({6, 4, 3, 3}, 2);
  ops::Conv2dParams p;
  EXPECT_THROW(ops::conv2d(x, randn({6, 3, 3, 3}, 3), Tensor(), p), Error);  // channel mismatch
  EXPECT_THROW(ops::conv2d(x, w, randn({5}, 4), p), Error);                  // bias size
  EXPECT_THROW(ops::conv2d(randn({4, 8, 8}, 5), w, Tensor(), p), Error);     // rank
  EXPECT_THROW(ops::conv2d(x, randn({6, 4, 9, 9}, 6), Tensor(), p), Error);  // kernel > input
  ops::Conv2dParams bad = p;
  bad.stride = 0;
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), bad), Error);
  bad = p, bad.pad = -1;
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), bad), Error);
  bad = p, bad.groups = 3;
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), bad), Error);
  bad = p, bad.dilation = 0;
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), bad), Error);
  Tensor wrong = Tensor::empty({1, 6, 5, 5});
  EXPECT_THROW(ops::conv2d(x, w, Tensor(), p, nullptr, &wrong), Error);  // out shape
  Tensor xi = Tensor::zeros({1, 4, 8, 8}, DType::F64);
  EXPECT_THROW(ops::conv2d(xi, w, Tensor(), p), Error);  // dtype
  EXPECT_THROW(ops::conv2d_portable(x, randn({6, 3, 3, 3}, 3), Tensor(), p), Error);
  try {
    ops::conv2d(x, randn({6, 3, 3, 3}, 3), Tensor(), p);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(KernelsConv, HardsigmoidPostOpComposition) {
  // oneDNN 2.6 has no hardsigmoid; the composed post-op must match the definition at its knees
  Tensor x = Tensor::from_vector<float>({-4, -3, -2.999f, -1, 0, 1, 2.999f, 3, 4, 100}, {1, 1, 1, 10});
  Tensor w = Tensor::full({1, 1, 1, 1}, 1.0);
  ops::Conv2dParams p;
  p.act = Act::Hardsigmoid;
  Tensor y = ops::conv2d(x, w, Tensor(), p);
  for (int i = 0; i < 10; ++i) {
    double v = x.item({0, 0, 0, i});
    EXPECT_NEAR(y.item({0, 0, 0, i}), act_double(Act::Hardsigmoid, v, 0), 1e-7) << v;
  }
}

TEST(KernelsConv, ChannelsLastInAndOut) {
  // channels-last inputs give channels-last results (no layout reorders in oneDNN), including
  // writing into a channel slice of a channels-last concat buffer
  for (const ConvFn& fn : {fast_conv, portable_conv}) {
    Tensor x = to_cl(randn({2, 16, 12, 13}, 30));
    Tensor w = randn({24, 16, 3, 3}, 31, 0.2f), b = randn({24}, 32);
    ops::Conv2dParams p;
    p.pad = 1, p.stride = 2, p.act = Act::SiLU;
    Tensor want = ops::ref::conv2d(x, w, b, p);
    Tensor y = fn(x, w, b, p, nullptr, nullptr);
    EXPECT_TRUE(is_cl(y));
    EXPECT_LT(rel_err(y, want), 1e-5);
    Tensor buf = to_cl(Tensor::full({2, 40, 6, 7}, 5.0));
    Tensor out = buf.slice(1, 8, 32);
    fn(x, w, b, p, nullptr, &out);
    EXPECT_LT(rel_err(out, want), 1e-5);
    EXPECT_EQ(max_abs_diff(buf.slice(1, 0, 8), Tensor::full({2, 8, 6, 7}, 5.0)), 0.0);
    EXPECT_EQ(max_abs_diff(buf.slice(1, 32, 40), Tensor::full({2, 8, 6, 7}, 5.0)), 0.0);
    Tensor xs = buf.slice(1, 8, 24);  // a strided channels-last slice as input
    Tensor w2 = randn({4, 16, 1, 1}, 33);
    EXPECT_LT(rel_err(fn(xs, w2, Tensor(), {}, nullptr, nullptr), ops::ref::conv2d(xs, w2, Tensor(), {})), 1e-5);
  }
}

// ------------------------------------------------------------------ pooling, upsample, concat, reorg

TEST(KernelsPool, MatchesReference) {
  struct C {
    int64_t h, w;
    int k, s, p;
  };
  for (C c : {C{8, 8, 2, 2, 0}, C{9, 7, 2, 2, 0}, C{10, 11, 3, 1, 1}, C{20, 20, 5, 1, 2}, C{20, 20, 9, 1, 4},
              C{20, 20, 13, 1, 6}, C{7, 9, 3, 2, 1}, C{5, 5, 5, 3, 0}}) {
    Tensor x = randn({2, 3, c.h, c.w}, uint32_t(c.k * 100 + c.h));
    Tensor want = ops::ref::max_pool2d(x, c.k, c.s, c.p);
    EXPECT_EQ(max_abs_diff(ops::max_pool2d(x, c.k, c.s, c.p), want), 0.0) << c.h << "x" << c.w << " k" << c.k;
    Tensor xs = x.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});  // strided input
    EXPECT_EQ(max_abs_diff(ops::max_pool2d(xs, c.k, c.s, c.p), want), 0.0);
    Tensor buf = Tensor::zeros({2, 7, want.size(2), want.size(3)});
    Tensor out = buf.slice(1, 2, 5);
    ops::max_pool2d(x, c.k, c.s, c.p, &out);
    EXPECT_EQ(max_abs_diff(out, want), 0.0);
    EXPECT_EQ(max_abs(buf.slice(1, 0, 2)), 0.0);
  }
}

TEST(KernelsPool, ChannelsLast) {
  for (int k : {2, 3, 5, 13}) {
    const int s = k == 2 ? 2 : 1, p = k == 2 ? 0 : k / 2;
    Tensor x = randn({2, 19, 15, 14}, uint32_t(200 + k));
    x.data<float>()[77] = NAN;
    Tensor want = ops::ref::max_pool2d(x, k, s, p);
    Tensor y = ops::max_pool2d(to_cl(x), k, s, p);
    EXPECT_TRUE(is_cl(y));
    // NaN-aware exact comparison
    Tensor yc = y.contiguous();
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float a = yc.data<float>()[i], b = want.data<float>()[i];
      ASSERT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << "k" << k << " at " << i;
    }
  }
}

TEST(KernelsPool, HandComputedAndNaN) {
  Tensor x = iota({1, 1, 4, 4});  // 0..15
  Tensor y = ops::max_pool2d(x, 2, 2, 0);
  EXPECT_EQ(y.item({0, 0, 0, 0}), 5);
  EXPECT_EQ(y.item({0, 0, 1, 1}), 15);
  Tensor z = ops::max_pool2d(x.slice(3, 0, 3), 3, 1, 1);  // 4x3; padding never wins
  EXPECT_EQ(z.sizes(), (Shape{1, 1, 4, 3}));
  EXPECT_EQ(z.item({0, 0, 0, 0}), 5);
  EXPECT_EQ(z.item({0, 0, 3, 2}), 14);
  Tensor neg = Tensor::full({1, 1, 3, 3}, -7.0);
  EXPECT_EQ(ops::max_pool2d(neg, 3, 1, 1).item({0, 0, 0, 0}), -7);
  x.data<float>()[5] = NAN;
  Tensor yn = ops::max_pool2d(x, 2, 2, 0);
  EXPECT_TRUE(std::isnan(yn.item({0, 0, 0, 0})));
  EXPECT_EQ(yn.item({0, 0, 0, 1}), 7);
  EXPECT_THROW(ops::max_pool2d(x, 3, 1, 2), Error);  // pad > kernel/2
  EXPECT_THROW(ops::max_pool2d(x, 0, 1, 0), Error);
  EXPECT_THROW(ops::max_pool2d(x, 6, 1, 0), Error);  // kernel > input
  EXPECT_THROW(ops::max_pool2d(iota({4, 4}), 2, 2, 0), Error);
}

TEST(KernelsUpsample, MatchesReference) {
  Tensor x = randn({2, 3, 5, 4}, 31);
  for (int s : {1, 2, 3}) {
    Tensor want = ops::ref::upsample_nearest2d(x, s);
    EXPECT_EQ(max_abs_diff(ops::upsample_nearest2d(x, s), want), 0.0);
    Tensor xs = x.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});
    EXPECT_EQ(max_abs_diff(ops::upsample_nearest2d(xs, s), want), 0.0);
    Tensor buf = Tensor::zeros({2, 8, 5 * s, 4 * s});
    Tensor out = buf.slice(1, 4, 7);
    ops::upsample_nearest2d(x, s, &out);
    EXPECT_EQ(max_abs_diff(out, want), 0.0);
    EXPECT_EQ(max_abs(buf.slice(1, 0, 4)), 0.0);
  }
  Tensor ycl = ops::upsample_nearest2d(to_cl(x), 3);
  EXPECT_TRUE(is_cl(ycl));
  EXPECT_EQ(max_abs_diff(ycl, ops::ref::upsample_nearest2d(x, 3)), 0.0);
  Tensor y = ops::upsample_nearest2d(iota({1, 1, 2, 2}), 2);
  EXPECT_EQ(y.item({0, 0, 0, 1}), 0);
  EXPECT_EQ(y.item({0, 0, 1, 2}), 1);
  EXPECT_EQ(y.item({0, 0, 3, 3}), 3);
  EXPECT_THROW(ops::upsample_nearest2d(x, 0), Error);
}

TEST(KernelsConcat, AnyDimAndStrides) {
  Tensor a = iota({2, 3, 4, 5});
  Tensor b = randn({2, 2, 4, 5}, 41);
  Tensor c = ops::concat({a, b}, 1);
  ASSERT_EQ(c.sizes(), (Shape{2, 5, 4, 5}));
  EXPECT_EQ(max_abs_diff(c.slice(1, 0, 3), a), 0.0);
  EXPECT_EQ(max_abs_diff(c.slice(1, 3, 5), b), 0.0);
  // non-contiguous pieces, negative dim, last dim
  Tensor p = randn({2, 3, 5, 4}, 42).permute({0, 1, 3, 2});
  Tensor d = ops::concat({a, p, a}, -1);
  ASSERT_EQ(d.sizes(), (Shape{2, 3, 4, 15}));
  EXPECT_EQ(max_abs_diff(d.slice(3, 5, 10), p), 0.0);
  EXPECT_EQ(max_abs_diff(d.slice(3, 10, 15), a), 0.0);
  Tensor e = ops::concat({a, a.slice(0, 1, 2)}, 0);
  EXPECT_EQ(e.size(0), 3);
  EXPECT_EQ(max_abs_diff(e.slice(0, 2, 3), a.slice(0, 1, 2)), 0.0);
  // other dtypes, empty pieces
  Tensor i1 = Tensor::from_vector<int64_t>({1, 2}, {2}), i2 = Tensor::from_vector<int64_t>({3}, {1});
  Tensor ic = ops::concat({i1, Tensor::empty({0}, DType::I64), i2}, 0);
  EXPECT_EQ(ic.dtype(), DType::I64);
  EXPECT_EQ(ic.item({2}), 3);
  // a large concat (threaded memcpy path)
  Tensor l1 = randn({1, 64, 80, 80}, 43), l2 = randn({1, 32, 80, 80}, 44);
  Tensor lc = ops::concat({l1, l2}, 1);
  EXPECT_EQ(max_abs_diff(lc.slice(1, 64, 96), l2), 0.0);
  // channels-last pieces give a channels-last result
  Tensor c1 = to_cl(randn({2, 3, 4, 5}, 45)), c2 = randn({2, 6, 4, 5}, 46);
  Tensor ccl = ops::concat({c1, c2, c1}, 1);
  EXPECT_TRUE(is_cl(ccl));
  EXPECT_EQ(max_abs_diff(ccl.slice(1, 0, 3), c1), 0.0);
  EXPECT_EQ(max_abs_diff(ccl.slice(1, 3, 9), c2), 0.0);
  EXPECT_EQ(max_abs_diff(ccl.slice(1, 9, 12), c1), 0.0);
  EXPECT_THROW(ops::concat({}, 0), Error);
  EXPECT_THROW(ops::concat({a, b}, 2), Error);
  EXPECT_THROW(ops::concat({a, b}, 4), Error);
  EXPECT_THROW(ops::concat({a, i1}, 0), Error);
}

TEST(KernelsReorg, UpstreamChannelOrder) {
  Tensor x = iota({1, 2, 4, 4});  // value = c*16 + h*4 + w
  Tensor y = ops::reorg(x);
  ASSERT_EQ(y.sizes(), (Shape{1, 8, 2, 2}));
  // block q: (row offset, col offset) = (0,0), (1,0), (0,1), (1,1); channel c inside each block
  const int dy[4] = {0, 1, 0, 1}, dx[4] = {0, 0, 1, 1};
  for (int q = 0; q < 4; ++q)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          EXPECT_EQ(y.item({0, q * 2 + c, i, j}), c * 16 + (2 * i + dy[q]) * 4 + (2 * j + dx[q]));
  EXPECT_EQ(y.item({0, 2, 0, 0}), 4);  // x[..., 1::2, ::2] starts at row 1, col 0
  Tensor xs = randn({2, 3, 6, 8}, 51).slice(1, 1, 3);
  Tensor ys = ops::reorg(xs);
  EXPECT_EQ(max_abs_diff(ys.slice(1, 2, 4), xs.slice(2, 1, 6, 2).slice(3, 0, 8, 2)), 0.0);
  Tensor xr = randn({2, 5, 6, 4}, 52);
  Tensor ycl = ops::reorg(to_cl(xr));
  EXPECT_TRUE(is_cl(ycl));
  EXPECT_EQ(max_abs_diff(ycl, ops::reorg(xr)), 0.0);
  EXPECT_THROW(ops::reorg(iota({1, 1, 3, 4})), Error);
}

// ------------------------------------------------------------------ elementwise, batch norm

TEST(KernelsElementwise, AddMulBroadcast) {
  Tensor a = randn({2, 4, 3, 5}, 61), b = randn({2, 4, 3, 5}, 62), c = randn({1, 4, 1, 1}, 63);
  Tensor s = ops::add(a, b), m = ops::mul(a, c), mr = ops::mul(c, a), ar = ops::add(c, a.slice(0, 1, 2));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t ch = 0; ch < 4; ++ch)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 5; ++j) {
          const double va = a.item({n, ch, i, j}), vc = c.item({0, ch, 0, 0});
          EXPECT_EQ(s.item({n, ch, i, j}), float(va + b.item({n, ch, i, j})));
          EXPECT_EQ(m.item({n, ch, i, j}), float(va * vc));
          EXPECT_EQ(mr.item({n, ch, i, j}), float(va * vc));
          if (n == 1) {
            EXPECT_EQ(ar.item({0, ch, i, j}), float(va + vc));
          }
        }
  Tensor p = a.permute({0, 2, 3, 1});
  EXPECT_EQ(max_abs_diff(ops::add(p, p), ops::mul(p, Tensor::full({1}, 2.0))), 0.0);
  Tensor acl = ops::add(to_cl(a), c);  // channels-last with a per-channel operand
  EXPECT_TRUE(is_cl(acl));
  EXPECT_EQ(max_abs_diff(acl, ops::add(a, c)), 0.0);
  EXPECT_THROW(ops::add(a, randn({1, 3, 1, 1}, 64)), Error);
  EXPECT_THROW(ops::mul(a, Tensor::zeros({1}, DType::I32)), Error);
}

TEST(KernelsBatchNorm, MatchesTorchFormula) {
  Tensor x = randn({2, 5, 4, 3}, 71, 2.0f);
  Tensor mean = randn({5}, 72), w = randn({5}, 73), b = randn({5}, 74);
  Tensor var = Tensor::empty({5});
  for (int i = 0; i < 5; ++i) var.data<float>()[i] = 0.1f + i;
  const double eps = 1e-3;
  for (bool affine : {true, false}) {
    Tensor y = ops::batch_norm_eval(x.permute({0, 1, 3, 2}), mean, var, affine ? w : Tensor(),
                                    affine ? b : Tensor(), eps);
    double worst = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 5; ++c)
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 4; ++j) {
            double want = (x.item({n, c, j, i}) - mean.item({c})) / std::sqrt(var.item({c}) + eps);
            if (affine) want = want * w.item({c}) + b.item({c});
            worst = std::max(worst, std::fabs(y.item({n, c, i, j}) - want) / std::max(1.0, std::fabs(want)));
          }
    EXPECT_LT(worst, 2e-6);
  }
  Tensor ycl = ops::batch_norm_eval(to_cl(x), mean, var, w, b, eps);
  EXPECT_TRUE(is_cl(ycl));
  EXPECT_EQ(max_abs_diff(ycl, ops::batch_norm_eval(x, mean, var, w, b, eps)), 0.0);
  EXPECT_THROW(ops::batch_norm_eval(x, randn({4}, 1), var, w, b, eps), Error);
}

// ------------------------------------------------------------------ detect decode

TEST(KernelsDetect, HandComputed) {
  // na=1, no=6, a 1x2 grid, stride 8, anchor (10, 20)
  const int no = 6;
  Tensor raw = Tensor::zeros({1, no, 1, 2});
  raw.data<float>()[0 * 2 + 1] = 2.0f;   // x logit at gx=1
  raw.data<float>()[3 * 2 + 0] = -1.0f;  // h logit at gx=0
  raw.data<float>()[5 * 2 + 1] = 4.0f;   // class logit at gx=1
  Tensor ag = Tensor::from_vector<float>({10, 20}, {1, 2});
  Tensor perm;
  Tensor y = ops::detect_decode(raw, 1, no, 8.0f, ag, &perm);
  ASSERT_EQ(y.sizes(), (Shape{1, 2, 6}));
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  // cell (gx=0, gy=0): all logits 0 except h
  EXPECT_NEAR(y.item({0, 0, 0}), (2 * 0.5 - 0.5 + 0) * 8, 1e-6);  // 4
  EXPECT_NEAR(y.item({0, 0, 1}), 4.0, 1e-6);
  EXPECT_NEAR(y.item({0, 0, 2}), 1.0 * 10, 1e-6);  // (2*0.5)^2 * 10
  EXPECT_NEAR(y.item({0, 0, 3}), std::pow(2 * sig(-1.0), 2) * 20, 1e-5);
  EXPECT_NEAR(y.item({0, 0, 4}), 0.5, 1e-7);
  // cell gx=1
  EXPECT_NEAR(y.item({0, 1, 0}), (2 * sig(2.0) - 0.5 + 1) * 8, 1e-5);
  EXPECT_NEAR(y.item({0, 1, 1}), (2 * 0.5 - 0.5 + 0) * 8, 1e-6);
  EXPECT_NEAR(y.item({0, 1, 5}), sig(4.0), 1e-7);
  ASSERT_EQ(perm.sizes(), (Shape{1, 1, 1, 2, 6}));
  EXPECT_EQ(perm.item({0, 0, 0, 1, 0}), 2.0);
  EXPECT_EQ(perm.item({0, 0, 0, 0, 3}), -1.0);
  EXPECT_THROW(ops::detect_decode(raw, 2, no, 8.0f, ag), Error);
  EXPECT_THROW(ops::detect_decode(raw, 1, no, 8.0f, Tensor::zeros({2, 2})), Error);
}

TEST(KernelsDetect, MatchesReferenceAndRowOrder) {
  const int na = 3, no = 9;
  Tensor raw = randn({2, na * no, 5, 7}, 81, 2.0f);
  Tensor ag = Tensor::from_vector<float>({10, 13, 16, 30, 33, 23}, {3, 2});
  Tensor want = ops::ref::detect_decode(raw, na, no, 16.0f, ag);
  Tensor buf = Tensor::zeros({2, na, 5, 7, no + 2});
  Tensor perm = buf.slice(4, 1, 1 + no);  // strided raw_out
  Tensor got = ops::detect_decode(raw, na, no, 16.0f, ag, &perm);
  EXPECT_LT(rel_err(got, want), 1e-6);
  // row (a, y, x) of the result comes from raw[n, a*no + k, y, x]
  EXPECT_NEAR(got.item({1, (2 * 5 + 3) * 7 + 4, 6}), 1 / (1 + std::exp(-raw.item({1, 2 * no + 6, 3, 4}))), 1e-6);
  EXPECT_EQ(perm.item({1, 2, 3, 4, 6}), raw.item({1, 2 * no + 6, 3, 4}));
  EXPECT_EQ(max_abs(buf.slice(4, 0, 1)), 0.0);
  Tensor rs = raw.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});  // strided input
  EXPECT_LT(rel_err(ops::detect_decode(rs, na, no, 16.0f, ag), want), 1e-6);
}

TEST(KernelsDetect, MatchesUpstreamYolov7Tiny) {
  // upstream IDetect eval output: eval_pred = cat over levels of the decoded eval_raw<i>
  const std::string dir = std::string(Y7_SHARED_FIXTURES) + "/yolov7-tiny/";
  Tensor pred = io::read_npy(dir + "eval_pred.npy");
  const float anchors[3][6] = {{10, 13, 16, 30, 33, 23}, {30, 61, 62, 45, 59, 119}, {116, 90, 156, 198, 373, 326}};
  const float strides[3] = {8, 16, 32};
  int64_t row = 0;
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    Tensor r5 = io::read_npy(dir + "eval_raw" + std::to_string(i) + ".npy");  // [2,3,h,w,85]
    const int64_t N = r5.size(0), na = r5.size(1), H = r5.size(2), W = r5.size(3), no = r5.size(4);
    Tensor raw = r5.permute({0, 1, 4, 2, 3}).contiguous().view({N, na * no, H, W});
    Tensor ag = Tensor::from_vector<float>(std::vector<float>(anchors[i], anchors[i] + 6), {3, 2});
    Tensor perm;
    Tensor y = ops::detect_decode(raw, int(na), int(no), strides[i], ag, &perm);
    EXPECT_EQ(max_abs_diff(perm, r5), 0.0);
    Tensor want = pred.slice(1, row, row + na * H * W);
    double e = rel_err(y, want);
    worst = std::max(worst, e);
    EXPECT_LT(e, 1e-6) << "level " << i;
    row += na * H * W;
  }
  EXPECT_EQ(row, pred.size(1));
  std::printf("detect_decode vs upstream yolov7-tiny eval_pred: worst relative error %.3g\n", worst);
}

// ------------------------------------------------------------------ threads

TEST(KernelsThreads, SetNumThreadsControlsOneDnn) {
#if defined(Y7_USE_DNNL) && defined(_OPENMP)
  const int before = omp_get_max_threads();
  set_num_threads(1);
  EXPECT_EQ(ops::dnnl_util::max_threads(), 1);
  EXPECT_EQ(num_threads(), 1);
  // a primitive created under one thread count is not reused under another
  Tensor x = randn({1, 16, 20, 20}, 91), w = randn({16, 16, 3, 3}, 92, 0.2f);
  ops::Conv2dParams p;
  p.pad = 1;
  auto cache = ops::ConvCache::create();
  Tensor y1 = ops::conv2d(x, w, Tensor(), p, cache.get());
  set_num_threads(2);
  EXPECT_EQ(ops::dnnl_util::max_threads(), 2);
  Tensor y2 = ops::conv2d(x, w, Tensor(), p, cache.get());
  EXPECT_LT(rel_err(y1, y2), 1e-6);
  set_num_threads(before);
#else
  GTEST_SKIP() << "built without oneDNN/OpenMP";
#endif
}
