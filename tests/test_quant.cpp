// quant/: DPU fix-point kernels against an independent scalar reference (exact double arithmetic),
// the 'diffs' calibration against a brute-force search, the DPU Hardswish/Hardsigmoid forms against
// their definitions, the quant_info.json round trip and its errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cli_util.h"
#include "core/error.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"
#include "quant/config.h"
#include "quant/fixpoint.h"
#include "quant/quantizer.h"
#include "train/shapes.h"

using namespace y7;
using namespace y7::quant;

namespace {

// ---- independent scalar reference: exact in double (float inputs and power-of-two scales are
// exact there), the tie rules written as their definitions.
double ref_round(double v, Round m) {
  switch (m) {
    case Round::HalfUp: return std::floor(v + 0.5);                                       // ties to +inf
    case Round::StdRound: return v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5);     // ties away from 0
    case Round::Floor: return std::floor(v);
    case Round::HalfEven: {
      double f = std::floor(v), d = v - f;
      if (d < 0.5) return f;
      if (d > 0.5) return f + 1;
      return std::fmod(f, 2.0) == 0 ? f : f + 1;
    }
  }
  return NAN;
}
double ref_fix(float x, int fp, int bw, Round m) {
  const double q = std::min(std::max(ref_round(double(x) * std::ldexp(1.0, fp), m), -std::ldexp(1.0, bw - 1)),
                            std::ldexp(1.0, bw - 1) - 1);
  return q * std::ldexp(1.0, -fp);
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(QuantFixPoint, RoundTiesAndModes) {
  // the DPU's half-up: ties toward +inf, also for negatives (-2.5 -> -2), unlike std::round
  EXPECT_EQ(round_nndct(2.5f, Round::HalfUp), 3.0f);
  EXPECT_EQ(round_nndct(-2.5f, Round::HalfUp), -2.0f);
  EXPECT_EQ(round_nndct(-0.5f, Round::HalfUp), 0.0f);
  EXPECT_EQ(round_nndct(-1.5f, Round::HalfUp), -1.0f);
  EXPECT_EQ(round_nndct(-2.5f, Round::StdRound), -3.0f);
  EXPECT_EQ(round_nndct(2.5f, Round::HalfEven), 2.0f);
  EXPECT_EQ(round_nndct(3.5f, Round::HalfEven), 4.0f);
  EXPECT_EQ(round_nndct(-2.5f, Round::HalfEven), -2.0f);
  EXPECT_EQ(round_nndct(-3.5f, Round::HalfEven), -4.0f);
  // 0.49999997f: floor(x + 0.5f) in float would give 1; the kernel's frac test gives 0
  EXPECT_EQ(round_nndct(0.49999997f, Round::HalfUp), 0.0f);
  EXPECT_EQ(round_nndct(-0.49999997f, Round::HalfUp), 0.0f);
  for (Round m : {Round::HalfUp, Round::StdRound, Round::Floor, Round::HalfEven})
    for (float v = -6.0f; v <= 6.0f; v += 0.25f) EXPECT_EQ(double(round_nndct(v, m)), ref_round(v, m)) << v;
}

TEST(QuantFixPoint, FixNeuronMatchesScalarReference) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> U(-3.f, 3.f);
  std::vector<float> x;
  // edge cases at fix_point 4 (step 1/16): exact ties on both signs, saturation, zeros
  for (int k = -2100; k <= 2100; ++k) x.push_back(float(k) / 32.0f);  // every half step: ties
  for (float v : {7.96875f, 7.9375f, 7.97f, 8.0f, -8.0f, -8.03125f, -8.0625f, -100.f, 100.f, 1e30f, -1e30f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), 0.0f, -0.0f,
                  -0.03125f, -0.01f, 1e-30f, -1e-30f, std::numeric_limits<float>::denorm_min()})
    x.push_back(v);
  for (int i = 0; i < 20000; ++i) x.push_back(U(rng));
  std::vector<float> y(x.size());
  size_t checked = 0;
  for (Round m : {Round::HalfUp, Round::StdRound, Round::HalfEven, Round::Floor})
    for (int fp : {-2, 0, 4, 7, 12}) {
      fix_neuron(x.data(), y.data(), int64_t(x.size()), fp, 8, m);
      for (size_t i = 0; i < x.size(); ++i, ++checked) {
        const double r = ref_fix(x[i], fp, 8, m);
        ASSERT_EQ(double(y[i]), r) << "x=" << x[i] << " fp=" << fp << " method " << int(m);
        if (r == 0) {
          ASSERT_FALSE(std::signbit(y[i])) << "negative zero out for x=" << x[i];
        }
      }
    }
  EXPECT_GT(checked, 400000u);
  // saturation: [-128, 127] * 2^-fp
  float s[4] = {1000.f, -1000.f, 127.5f / 16, -128.5f / 16}, o[4];
  fix_neuron(s, o, 4, 4, 8, Round::HalfUp);
  EXPECT_EQ(o[0], 127.f / 16);
  EXPECT_EQ(o[1], -128.f / 16);
  EXPECT_EQ(o[2], 127.f / 16);   // 127.5 -> 128 -> saturates to 127
  EXPECT_EQ(o[3], -128.f / 16);  // -128.5 -> -128 (half up)
  // negative zero in, +0 out; tiny negatives round to +0; NaN passes through
  float z[3] = {-0.0f, -1e-6f, NAN}, zo[3];
  fix_neuron(z, zo, 3, 7, 8, Round::HalfUp);
  EXPECT_TRUE(same_bits(zo[0], 0.0f));
  EXPECT_TRUE(same_bits(zo[1], 0.0f));
  EXPECT_TRUE(std::isnan(zo[2]));
  // other bit widths
  float w[2] = {5.0f, -5.0f}, wo[2];
  fix_neuron(w, wo, 2, 0, 4, Round::HalfUp);
  EXPECT_EQ(wo[0], 5.0f);
  fix_neuron(w, wo, 2, 1, 4, Round::HalfUp);
  EXPECT_EQ(wo[0], 3.5f);
  EXPECT_EQ(wo[1], -4.0f);
}

TEST(QuantFixPoint, Int8RoundTripAndTensorLayouts) {
  std::vector<float> x = {0.3f, -0.3f, 1.0f, -1.0f, 0.0078125f, -0.00390625f, 2.0f};
  std::vector<int8_t> q(x.size());
  quantize_int8(x.data(), q.data(), int64_t(x.size()), 7);
  EXPECT_EQ(std::vector<int>(q.begin(), q.end()), (std::vector<int>{38, -38, 127, -128, 1, 0, 127}));
  std::vector<float> y(x.size());
  dequantize_int8(q.data(), y.data(), int64_t(q.size()), 7);
  std::vector<float> f(x.size());
  fix_neuron(x.data(), f.data(), int64_t(x.size()), 7);
  EXPECT_EQ(y, f);  // int8 path == fake-quant path

  // fake_quant_ on a channels-last view and on a non-dense slice give the element-wise result
  Tensor t = Tensor::empty({2, 3, 4, 5});
  std::mt19937 rng(3);
  std::normal_distribution<float> N(0.f, 2.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = N(rng);
  Tensor ref = fake_quant(t, 5);
  Tensor cl = t.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});  // NHWC memory, NCHW sizes
  fake_quant_(cl, 5);
  EXPECT_EQ(max_abs_diff(cl, ref), 0.0);
  Tensor sl = t.clone().slice(3, 0, 5, 2);
  Tensor sref = fake_quant(sl.contiguous(), 5);
  fake_quant_(sl, 5);
  EXPECT_EQ(max_abs_diff(sl, sref), 0.0);
  for (int64_t i = 0; i < ref.numel(); ++i) {
    float v = t.data<float>()[i];
    ASSERT_EQ(double(ref.data<float>()[i]), ref_fix(v, 5, 8, Round::HalfUp));
  }
  EXPECT_THROW(fix_neuron(x.data(), y.data(), 1, 100), Error);
  Tensor f64 = Tensor::zeros({2}, DType::F64);
  EXPECT_THROW(fake_quant_(f64, 3), Error);
}

// brute force over the same window as NNDCT, with the reference quantizer
int ref_diffs(const std::vector<float>& x, Round m, int scope = 5) {
  double lo = x[0], hi = x[0];
  for (float v : x) lo = std::min(lo, double(v)), hi = std::max(hi, double(v));
  const double step = std::max(lo / -128.5, hi / 127.5);
  int ms = step > 0 ? int(std::floor(std::log2(1.0 / step))) : 18;
  int best = ms;
  double be = INFINITY;
  for (int s = ms; s < ms + scope; ++s) {
    double e = 0;
    for (float v : x) e += (v - ref_fix(v, s, 8, m)) * (v - ref_fix(v, s, 8, m));
    if (e < be) be = e, best = s;
  }
  return best;
}

TEST(QuantCalib, DiffsPicksErrorMinimizingFixPoint) {
  // max 1.0: the overflow-free fix point is 6 (1.0 * 64 = 64 <= 127.5); with only 1.0 and 0.5
  // the error is 0 there and grows after (1.0 saturates at 7), so 6 wins
  EXPECT_EQ(diffs_fix_pos(std::vector<float>{1.0f, 0.5f, -0.25f}.data(), 3), 6);
  // many small values and one outlier: clipping the outlier is cheaper, a finer step wins
  std::vector<float> a(1000, 0.01f);
  a.push_back(1.0f);
  const int fa = diffs_fix_pos(a.data(), int64_t(a.size()));
  EXPECT_GT(fa, 6);
  EXPECT_LE(fa, 10);
  EXPECT_EQ(fa, ref_diffs(a, Round::HalfUp));
  for (int s = 6; s <= 10; ++s)  // the chosen one has the least error in the window
    EXPECT_LE(fix_error(a.data(), int64_t(a.size()), fa, 8), fix_error(a.data(), int64_t(a.size()), s, 8));
  // a single outlier among a few values: keeping the range wins
  std::vector<float> b = {3.0f, 0.01f};
  EXPECT_EQ(diffs_fix_pos(b.data(), 2), 5);  // 3.0 * 32 = 96; at 6: 192 -> clipped
  // negative-dominated range: min/-128.5
  std::vector<float> c = {-8.0f, 1.0f};
  EXPECT_EQ(diffs_fix_pos(c.data(), 2, 8, 1), 4);  // 8/128.5 -> log2(16.06) -> 4
  // all zeros: NNDCT's 18 (callers cap at 12)
  std::vector<float> z(10, 0.0f);
  EXPECT_EQ(diffs_fix_pos(z.data(), 10, 8, 1), kFixPointAllZero);
  EXPECT_EQ(diffs_fix_pos(z.data(), 10), kFixPointAllZero);  // equal errors: the first is kept
  // exact power-of-two boundary: max = 127.5 * 2^-3 -> step 2^-3 -> 3
  std::vector<float> d = {127.5f / 8};
  EXPECT_EQ(diffs_fix_pos(d.data(), 1, 8, 1), 3);
  // random tensors of several scales, both round methods, against the brute force
  std::mt19937 rng(11);
  for (int t = 0; t < 40; ++t) {
    std::normal_distribution<float> N(0.f, std::ldexp(1.0f, t % 9 - 5));
    std::vector<float> x(500);
    for (auto& v : x) v = N(rng);
    if (t % 3 == 0) x[7] = 9.f * std::ldexp(1.0f, t % 9 - 5);  // an outlier
    for (Round m : {Round::HalfUp, Round::StdRound})
      EXPECT_EQ(diffs_fix_pos(x.data(), int64_t(x.size()), 8, 5, m), ref_diffs(x, m)) << t;
  }
  std::vector<float> bad = {1.0f, NAN};
  EXPECT_THROW(diffs_fix_pos(bad.data(), 2), Error);
  EXPECT_THROW(diffs_fix_pos(bad.data(), 0), Error);
}

TEST(QuantCalib, ModalFixPointOverBatches) {
  EXPECT_EQ(modal_fix_pos({5, 6, 6, 5, 7, 6}), 6);
  EXPECT_EQ(modal_fix_pos({7, 5, 7, 5}), 5);  // scipy.stats.mode: smallest of the most frequent
  EXPECT_EQ(modal_fix_pos({-2}), -2);
  EXPECT_THROW(modal_fix_pos({}), Error);
}

TEST(QuantDpuAct, HardswishHardsigmoidForms) {
  // definitions: hsigmoid(x) = relu6(x+3) * 2731/16384 (1/6 as the DPU computes it);
  // hswish(x) = x * Q7(hsigmoid(x)) with Q7 = round-half-up at 1/128, saturating at 127/128
  EXPECT_EQ(kDpuOneSixth, 0.16668701171875f);
  for (int k = -1024; k <= 1024; ++k) {
    const float x = float(k) / 64.0f;  // inputs on a fix-point grid (fix_point 6), [-16, 16]
    const double hs = std::min(std::max(double(x) + 3.0, 0.0), 6.0) * 2731.0 / 16384.0;
    ASSERT_NEAR(dpu_hsigmoid(x), hs, 1e-7) << x;
    const double q7 = std::min(std::floor(double(dpu_hsigmoid(x)) * 128.0 + 0.5), 127.0) / 128.0;
    ASSERT_EQ(double(dpu_hswish(x)), double(x) * q7) << x;
    // within the DPU's approximation error of the float definitions
    const double hsig = std::min(std::max(double(x) + 3.0, 0.0), 6.0) / 6.0;
    ASSERT_NEAR(dpu_hsigmoid(x), hsig, 1.3e-4);
    ASSERT_NEAR(dpu_hswish(x), double(x) * hsig, std::abs(x) * (1.0 / 128 + 1e-4) + 1e-9);
  }
  EXPECT_EQ(dpu_hsigmoid(-3.0f), 0.0f);
  EXPECT_EQ(dpu_hsigmoid(3.0f), 6.0f * kDpuOneSixth);  // 1.00012207 (not 1)
  EXPECT_EQ(dpu_hswish(4.0f), 4.0f * 127.0f / 128.0f);  // the 1/128 factor saturates at 127
  EXPECT_EQ(dpu_hswish(-4.0f), 0.0f);
  EXPECT_EQ(dpu_hswish(0.0f), 0.0f);
  EXPECT_EQ(dpu_hswish(1.0f), 1.0f * 85.0f / 128.0f);  // 4*2731/16384*128 = 85.34 -> 85
  Tensor t = Tensor::from_vector<float>({-4.f, -1.f, 0.5f, 2.f, 7.f}, {5});
  Tensor u = t.clone();
  dpu_hard_act_(u, true);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(u.data<float>()[i], dpu_hswish(t.data<float>()[i]));
  dpu_hard_act_(t, false);
  EXPECT_EQ(t.data<float>()[3], dpu_hsigmoid(2.f));
}

TEST(QuantConfigJson, RoundTripAndErrors) {
  QuantConfig c;
  c.graph_hash = "0123456789abcdef";
  c.convert_silu_to_hswish = true;
  c.img_size = 640, c.calib_batches = 3, c.calib_images = 12;
  c.output = {{"images", 6}, {"model.0.act", 3}, {"model.77", -1}, {"we\"ird\\name", 12}};
  c.param = {{"model.0.conv.weight", 7}, {"model.0.conv.bias", 5}};
  c.bias_corr = {{"model.0.conv", {0.1f, -3.3333333e-5f, 1e-30f, 0.0f}}, {"model.9.conv", {}}};
  const std::string js = config_to_json(c);
  QuantConfig d = config_from_json(js);
  EXPECT_EQ(d.graph_hash, c.graph_hash);
  EXPECT_EQ(d.output, c.output);
  EXPECT_EQ(d.param, c.param);
  EXPECT_EQ(d.bias_corr, c.bias_corr);  // floats round-trip exactly
  EXPECT_TRUE(d.convert_silu_to_hswish);
  EXPECT_FALSE(d.convert_sigmoid_to_hsigmoid);
  EXPECT_EQ(d.img_size, 640);
  EXPECT_EQ(d.calib_images, 12);
  EXPECT_EQ(d.output_fp("model.77"), -1);
  EXPECT_EQ(d.weight_fp("model.0.conv"), 7);
  EXPECT_EQ(d.bias_fp("model.0.conv"), 5);
  EXPECT_THROW(d.output_fp("nope"), Error);
  // malformed / foreign / incomplete inputs: one-line errors
  auto one_line_error = [](const std::string& text) {
    try {
      config_from_json(text);
    } catch (const Error& e) {
      return std::string(e.what()).find('\n') == std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(one_line_error(""));
  EXPECT_TRUE(one_line_error("{"));
  EXPECT_TRUE(one_line_error("[1,2]"));
  EXPECT_TRUE(one_line_error("{\"param\": {}, \"output\": {}}"));  // NNDCT's own file: not ours
  EXPECT_TRUE(one_line_error(js.substr(0, js.size() / 2)));
  std::string bad = js;
  bad.replace(bad.find("[8, 7]"), 6, "[8, 7.5]");
  EXPECT_TRUE(one_line_error(bad));
  bad = js;
  bad.replace(bad.find("[8, 7]"), 6, "[4, 7]");
  EXPECT_TRUE(one_line_error(bad));
  bad = js;
  bad.replace(bad.find("\"bit_width\": 8"), 14, "\"bit_width\": 16");
  EXPECT_TRUE(one_line_error(bad));
  EXPECT_TRUE(one_line_error(std::string(100, '[')));
  EXPECT_THROW(load_config("/nonexistent/quant_info.json"), Error);
}


// ---------------------------------------------------------------- the quantizer on a hand-built graph

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

Tensor randn(const Shape& s, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> N(0.f, scale);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = N(rng);
  return t;
}

IrNode node(IrOp op, const std::string& name, std::vector<int> in) {
  IrNode n;
  n.op = op, n.name = name, n.in = std::move(in);
  return n;
}

// images -> c1 (3x3) -> a1 SiLU -> c2 (1x1) -> a2 LeakyReLU -> mp (3x3/1) -> cat(mp, a1) -> c3 (1x1, output)
IrGraph small_graph() {
  IrGraph g;
  g.nodes.push_back(node(IrOp::Input, "images", {}));
  IrNode c1 = node(IrOp::Conv, "c1", {0});
  c1.weight = randn({3, 2, 3, 3}, 0.4f, 1), c1.bias = randn({3}, 0.2f, 2), c1.pad = 1;
  g.nodes.push_back(c1);
  IrNode a1 = node(IrOp::Act, "a1", {1});
  a1.act = ops::Act::SiLU;
  g.nodes.push_back(a1);
  IrNode c2 = node(IrOp::Conv, "c2", {2});
  c2.weight = randn({2, 3, 1, 1}, 0.5f, 3), c2.bias = randn({2}, 0.1f, 4);
  g.nodes.push_back(c2);
  IrNode a2 = node(IrOp::Act, "a2", {3});
  a2.act = ops::Act::LeakyReLU, a2.alpha = 0.1f;
  g.nodes.push_back(a2);
  IrNode mp = node(IrOp::MaxPool, "mp", {4});
  mp.k = 3, mp.s = 1, mp.p = 1;
  g.nodes.push_back(mp);
  g.nodes.push_back(node(IrOp::Concat, "cat", {5, 2}));
  IrNode c3 = node(IrOp::Conv, "c3", {6});
  c3.weight = randn({2, 5, 1, 1}, 0.3f, 5), c3.bias = randn({2}, 0.1f, 6);
  g.nodes.push_back(c3);
  g.outputs = {7};
  g.infer_shapes({1, 2, 5, 5});
  return g;
}

// plain loops in double over NCHW; inputs on fix-point grids keep every sum exact
std::vector<double> ref_conv(const std::vector<double>& x, int C, int H, int W, const Tensor& w, const Tensor& b, int pad) {
  const int O = int(w.size(0)), K = int(w.size(2));
  std::vector<double> y(size_t(O * H * W));
  for (int o = 0; o < O; ++o)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        double s = b.data<float>()[o];
        for (int c = 0; c < C; ++c)
          for (int u = 0; u < K; ++u)
            for (int v = 0; v < K; ++v) {
              const int ii = i + u - pad, jj = j + v - pad;
              if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
              s += x[size_t((c * H + ii) * W + jj)] * w.data<float>()[((o * C + c) * K + u) * K + v];
            }
        y[size_t((o * H + i) * W + j)] = s;
      }
  return y;
}
void ref_fix_all(std::vector<double>& v, int fp) {
  for (auto& e : v) e = ref_fix(float(e), fp, 8, Round::HalfUp);
}
Tensor ref_fix_tensor(const Tensor& t, int fp) {
  Tensor r = t.clone();
  for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] = float(ref_fix(t.data<float>()[i], fp, 8, Round::StdRound));
  return r;
}

TEST(Quantizer, PlanMirrorsNndctGroupsAndConcatSharing) {
  IrGraph g = small_graph();
  EXPECT_THROW(quant::convert_for_dpu(g, {}), Error);  // SiLU without the flag
  quant::QuantOptions o;
  o.convert_silu_to_hswish = true;
  IrGraph q = quant::convert_for_dpu(g, o);
  EXPECT_EQ(q.nodes[2].act, ops::Act::Hardswish);
  EXPECT_EQ(q.nodes[4].alpha, 0.1015625f);  // the DPU's LeakyReLU slope
  quant::Plan pl = quant::make_plan(q);
  //                                images  c1    a1    c2     a2    mp     cat   c3
  EXPECT_EQ(pl.has_fix, (std::vector<bool>{true, true, true, false, true, false, true, true}));
  EXPECT_EQ(pl.fix_at, (std::vector<int>{0, 1, 2, 4, 4, 6, 6, 7}));
  EXPECT_EQ(pl.group_end[3], 4);  // c2 runs fused with its LeakyReLU
  EXPECT_EQ(pl.scope[0], 1);
  EXPECT_EQ(pl.scope[1], 5);
  EXPECT_TRUE(pl.dpu_act[2]);
  EXPECT_EQ(pl.num_fix(), 6);
  EXPECT_EQ(quant::count_cle_pairs(q), 0);  // every conv is followed by a non-ReLU activation
  IrGraph r = q;
  r.nodes[4].act = ops::Act::ReLU;  // c2 -> ReLU -> MaxPool -> Concat: still no conv reached
  EXPECT_EQ(quant::count_cle_pairs(r), 0);
  r.nodes[6] = node(IrOp::Conv, "cat", {5});  // c2 -> ReLU -> MaxPool -> Conv, and that Conv -> c3
  r.nodes[6].weight = randn({5, 2, 1, 1}, 0.3f, 7), r.nodes[6].bias = randn({5}, 0.1f, 8);
  EXPECT_EQ(quant::count_cle_pairs(r), 2);
  // an extra consumer of c2 breaks its group with the LeakyReLU
  IrGraph g2 = g;
  IrNode add = node(IrOp::Add, "add", {3, 3});
  g2.nodes.push_back(add);
  g2.outputs = {7, 8};
  quant::Plan p2 = quant::make_plan(quant::convert_for_dpu(g2, o));
  EXPECT_TRUE(p2.has_fix[3]);
  EXPECT_EQ(p2.fix_at[3], 3);
  // ops the DPU cannot run: one-line errors naming the node
  for (IrOp bad : {IrOp::Mul, IrOp::ReOrg}) {
    IrGraph b = g;
    b.nodes.push_back(node(bad, "bad", bad == IrOp::Mul ? std::vector<int>{7, 7} : std::vector<int>{7}));
    try {
      quant::convert_for_dpu(b, o);
      ADD_FAILURE() << "no error for " << graph::ir_op_name(bad);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(Quantizer, FakeQuantForwardMatchesScalarReference) {
  IrGraph g = small_graph();
  quant::QuantOptions o;
  o.convert_silu_to_hswish = true;
  QuantConfig c;
  c.convert_silu_to_hswish = true;
  c.graph_hash = quant::graph_identity(g);
  c.output = {{"images", 6}, {"c1", 4}, {"a1", 5}, {"a2", 4}, {"cat", 4}, {"c3", 5}};
  c.param = {{"c1.weight", 6}, {"c1.bias", 6}, {"c2.weight", 7}, {"c2.bias", 7}, {"c3.weight", 7}, {"c3.bias", 6}};
  Tensor x = Tensor::empty({1, 2, 5, 5});
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> U(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = U(rng);

  // reference: the NNDCT semantics written out
  std::vector<double> v(x.data<float>(), x.data<float>() + x.numel());
  ref_fix_all(v, 6);
  auto h1 = ref_conv(v, 2, 5, 5, ref_fix_tensor(g.nodes[1].weight, 6), ref_fix_tensor(g.nodes[1].bias, 6), 1);
  ref_fix_all(h1, 4);
  std::vector<double> a1(h1.size());
  for (size_t i = 0; i < h1.size(); ++i) {
    const float t = std::min(std::max(float(h1[i]) + 3.0f, 0.0f), 6.0f) * (2731.0f / 16384.0f);
    a1[i] = h1[i] * std::min(std::floor(double(t) * 128 + 0.5), 127.0) / 128;
  }
  ref_fix_all(a1, 5);
  auto h2 = ref_conv(a1, 3, 5, 5, ref_fix_tensor(g.nodes[3].weight, 7), ref_fix_tensor(g.nodes[3].bias, 7), 0);
  for (auto& e : h2) e = e < 0 ? e * 0.1015625 : e;  // no fix between c2 and its LeakyReLU
  ref_fix_all(h2, 4);
  std::vector<double> cat;
  for (int ch = 0; ch < 2; ++ch)  // maxpool 3x3 stride 1 pad 1, no fix (feeds only the concat)
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j) {
        double m = -INFINITY;
        for (int u = -1; u <= 1; ++u)
          for (int w = -1; w <= 1; ++w)
            if (i + u >= 0 && i + u < 5 && j + w >= 0 && j + w < 5) m = std::max(m, h2[size_t((ch * 5 + i + u) * 5 + j + w)]);
        cat.push_back(m);
      }
  cat.insert(cat.end(), a1.begin(), a1.end());
  ref_fix_all(cat, 4);
  auto y = ref_conv(cat, 5, 5, 5, ref_fix_tensor(g.nodes[7].weight, 7), ref_fix_tensor(g.nodes[7].bias, 6), 0);
  ref_fix_all(y, 5);

  for (bool cl : {true, false}) {
    g.channels_last = cl;
    quant::FakeQuantGraph fq(g, c, o);
    Tensor out = fq.run(x)[0].contiguous();
    ASSERT_EQ(out.numel(), int64_t(y.size()));
    int nonzero = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_EQ(double(out.data<float>()[i]), y[i]) << "element " << i << (cl ? " channels-last" : " nchw");
      nonzero += y[i] != 0;
    }
    EXPECT_GT(nonzero, 20);
  }
  // config checks: another model, other flags, a missing entry
  QuantConfig bad = c;
  bad.graph_hash = "0000000000000000";
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, o), Error);
  bad = c;
  bad.convert_sigmoid_to_hsigmoid = true;
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, o), Error);
  bad = c;
  bad.output.erase("cat");
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, o), Error);
  bad = c;
  bad.param.erase("c2.bias");
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, o), Error);
}

TEST(Quantizer, CalibrationModalFixPointsAndParams) {
  IrGraph g = small_graph();
  quant::QuantOptions o;
  o.convert_silu_to_hswish = true;
  quant::Calibrator cal(g, o);
  EXPECT_THROW(cal.finish(5), Error);  // no batch yet
  Tensor x = Tensor::empty({2, 2, 5, 5});
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> U(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = U(rng);
  auto scaled = [&](float s) {
    Tensor t = x.clone();
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= s;
    return t;
  };
  // input fix points per batch (scope 1: floor(log2(127.5 / max))): 7, 4, 4 -> modal 4
  float mx = 0;
  for (int64_t i = 0; i < x.numel(); ++i) mx = std::max(mx, x.data<float>()[i]);
  std::vector<int> fps;
  for (float sc : {1.0f, 4.5f, 4.4f}) fps.push_back(int(std::floor(std::log2(127.5 / (double(mx) * sc)))));
  EXPECT_EQ(fps, (std::vector<int>{7, 4, 4}));
  cal.add_batch(x);
  cal.add_batch(scaled(4.5f));
  auto outs = cal.add_batch(scaled(4.4f));
  ASSERT_EQ(outs.size(), 1u);
  QuantConfig c = cal.finish(5);
  EXPECT_EQ(c.calib_batches, 3);
  EXPECT_EQ(c.calib_images, 6);
  EXPECT_EQ(c.output.at("images"), 4);
  EXPECT_EQ(int(c.output.size()), 6);
  EXPECT_EQ(int(c.param.size()), 6);
  for (int i : {1, 3, 7}) {  // weights: diffs with std_round (before the shift adjustments)
    const IrNode& n = g.nodes[size_t(i)];
    std::vector<float> w(n.weight.data<float>(), n.weight.data<float>() + n.weight.numel());
    const int ref = std::min(12, ref_diffs(w, Round::StdRound));
    EXPECT_GE(c.param.at(n.name + ".weight"), ref - 16);
    EXPECT_LE(c.param.at(n.name + ".weight"), ref);
  }
  // the calibrated config drives a fake-quantized run and round-trips through JSON
  QuantConfig d = config_from_json(config_to_json(c));
  quant::FakeQuantGraph fq(g, d, o);
  Tensor y = fq.run(x)[0];
  const int fp = d.output.at("c3");
  Tensor yc = y.contiguous();
  for (int64_t i = 0; i < yc.numel(); ++i) {  // the output lies on its fix-point grid
    const double q = double(yc.data<float>()[i]) * std::ldexp(1.0, fp);
    ASSERT_EQ(q, std::round(q));
    ASSERT_LE(std::abs(q), 128.0);
  }
}

TEST(Quantizer, BiasCorrectionReducesTheMeanError) {
  // one conv whose weights all quantize the same way: a systematic per-channel output error
  IrGraph g;
  g.nodes.push_back(node(IrOp::Input, "images", {}));
  IrNode cv = node(IrOp::Conv, "cv", {0});
  cv.weight = Tensor::full({4, 3, 3, 3}, 0.0f), cv.bias = Tensor::from_vector<float>({0.1f, -0.2f, 0.05f, 0.3f}, {4});
  for (int64_t i = 0; i < cv.weight.numel(); ++i)
    cv.weight.data<float>()[i] = (i % 2 ? 0.2017f : -0.1489f) * float(1 + i % 3);
  cv.pad = 1;
  g.nodes.push_back(cv);
  g.outputs = {1};
  Tensor x = Tensor::empty({2, 3, 8, 8});
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> U(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = U(rng);
  quant::QuantOptions off;
  off.bias_correction = false;
  quant::Calibrator c0(g, off);
  c0.add_batch(x);
  EXPECT_TRUE(c0.finish(8).bias_corr.empty());
  quant::Calibrator cal(g, {});
  for (int k = 0; k < 12; ++k) cal.add_batch(x);
  QuantConfig c = cal.finish(8);
  ASSERT_EQ(c.bias_corr.count("cv"), 1u);
  ASSERT_EQ(c.bias_corr.at("cv").size(), 4u);
  Tensor ref = g.run(x)[0].contiguous();
  auto mean_abs_channel_err = [&](const QuantConfig& cfg) {
    Tensor y = quant::FakeQuantGraph(g, cfg, {}).run(x)[0].contiguous();
    double tot = 0;
    for (int ch = 0; ch < 4; ++ch) {
      double m = 0;
      for (int b = 0; b < 2; ++b)
        for (int k = 0; k < 64; ++k) {
          const int64_t o = (b * 4 + ch) * 64 + k;
          m += double(y.data<float>()[o]) - double(ref.data<float>()[o]);
        }
      tot += std::abs(m / 128);
    }
    return tot;
  };
  QuantConfig nc = c;
  nc.bias_corr.clear();
  const double before = mean_abs_channel_err(nc), after = mean_abs_channel_err(c);
  std::printf("[ bias correction ] sum over channels of |mean output error|: %.4g uncorrected, %.4g corrected\n", before,
              after);
  EXPECT_LT(after, 0.8 * before);
  QuantConfig bad = c;
  bad.bias_corr["cv"].pop_back();
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, {}), Error);
  bad = c;
  bad.bias_corr["nope"] = {1.f};
  EXPECT_THROW(quant::FakeQuantGraph(g, bad, {}), Error);
}

TEST(Quantizer, ExportAdjustmentsMirrorFixPosChecker) {
  // images -> c1 -> Sigmoid (-> Hardsigmoid) -> up (x2) -> c2 ; and a Hardswish branch c3 -> hs
  IrGraph g;
  g.nodes.push_back(node(IrOp::Input, "images", {}));
  IrNode c1 = node(IrOp::Conv, "c1", {0});
  c1.weight = randn({2, 2, 1, 1}, 0.5f, 1), c1.bias = randn({2}, 0.1f, 2);
  g.nodes.push_back(c1);
  IrNode s = node(IrOp::Act, "sig", {1});
  s.act = ops::Act::Sigmoid;
  g.nodes.push_back(s);
  IrNode up = node(IrOp::Upsample, "up", {2});
  g.nodes.push_back(up);
  IrNode c2 = c1;
  c2.name = "c2", c2.in = {3};
  g.nodes.push_back(c2);
  IrNode c3 = c1;
  c3.name = "c3", c3.in = {0};
  g.nodes.push_back(c3);
  IrNode hs = node(IrOp::Act, "hs", {5});
  hs.act = ops::Act::Hardswish;
  g.nodes.push_back(hs);
  g.outputs = {4, 6};
  quant::QuantOptions o;
  EXPECT_THROW(quant::convert_for_dpu(g, o), Error);  // Sigmoid without the flag
  o.convert_sigmoid_to_hsigmoid = true;
  IrGraph q = quant::convert_for_dpu(g, o);
  quant::Plan pl = quant::make_plan(q);
  QuantConfig c;
  c.output = {{"images", 6}, {"c1", -2}, {"sig", 5}, {"up", 3}, {"c2", 14}, {"c3", 2}, {"hs", 12}};
  c.param = {{"c1.weight", 6}, {"c1.bias", 9},  {"c2.weight", 12}, {"c2.bias", -10},
             {"c3.weight", 6}, {"c3.bias", 6}};
  quant::adjust_fix_points(q, pl, c);
  // c1: shift_cut = 6 + 6 - (-2) = 14 ok; shift_bias = 6 + 6 - 9 = 3 ok
  EXPECT_EQ(c.param.at("c1.weight"), 6);
  EXPECT_EQ(c.output.at("c1"), 0);   // Hardsigmoid input >= 0
  EXPECT_EQ(c.output.at("sig"), 7);  // Hardsigmoid output >= 7
  EXPECT_EQ(c.output.at("up"), 7);   // nearest upsample output = its input's fix point
  // c2: input 7, shift_cut = 12 + 7 - 14 = 5; shift_bias = 12 + 7 + 10 = 29 > 16 -> weight 12 - 29 + 16 = -1
  EXPECT_EQ(c.param.at("c2.weight"), -1);
  EXPECT_EQ(c.param.at("c2.bias"), -10);
  EXPECT_EQ(c.output.at("c2"), 14);
  // c3: shift_cut = 6 + 6 - 2 = 10 ok; hs: input 2 -> output <= 9
  EXPECT_EQ(c.output.at("hs"), 9);
  // shift_cut < 0 lowers the output; > 16 lowers the weight; shift_bias < min raises the bias... lowers it
  QuantConfig e = c;
  e.output["c3"] = 15;  // shift_cut = 6 + 6 - 15 = -3 -> output 12
  e.param["c3.bias"] = 40;  // shift_bias = 6 + 6 - 40 = -28 < min(0, -3 - 16) = -19 -> bias 40 - 28 + 19 = 31
  quant::adjust_fix_points(q, pl, e);
  EXPECT_EQ(e.output.at("c3"), 12);
  EXPECT_EQ(e.param.at("c3.bias"), 31);
  QuantConfig f = c;
  f.output["c3"] = -6;  // shift_cut = 6 + 6 + 6 = 18 -> weight 6 - 18 + 16 = 4
  quant::adjust_fix_points(q, pl, f);
  EXPECT_EQ(f.param.at("c3.weight"), 4);
}

// ---------------------------------------------------------------- on upstream fixtures

TEST(QuantModel, FoldedBnGraphMatchesUnfoldedModel) {
  for (const char* arch : {"yolov7-tiny", "yolov7"}) {
    const std::string dir = test::fixtures_dir() + "/" + arch;
    auto unfused = graph::load_model(dir + "/model.pt");
    auto folded = graph::load_model(dir + "/model.pt");
    ASSERT_FALSE(unfused->fused());
    Tensor x = io::read_npy(dir + "/input.npy");
    Tensor ref = unfused->forward(x).pred;  // Conv + BatchNorm (+ implicit) as separate ops
    IrGraph g = graph::lower(*folded, x.sizes());  // BN folded into the convs
    quant::QuantOptions o;
    o.convert_silu_to_hswish = true;
    EXPECT_EQ(quant::count_cle_pairs(quant::convert_for_dpu(g, o)), 0) << arch;  // NNDCT's CLE: a no-op here
    int convs = 0;
    for (const auto& n : g.nodes) convs += n.op == IrOp::Conv;
    EXPECT_GT(convs, 20);
    Tensor got = g.decode(g.run(x));
    auto d = test::compare_pred(got, ref);
    std::printf("[ %s ] folded-BN graph vs unfolded model: max |box diff| %.3g px, max |score diff| %.3g\n", arch, d[0],
                d[2]);
    auto u = test::compare_pred(got, io::read_npy(dir + "/eval_pred.npy"));  // upstream's unfused eval output
    std::printf("[ %s ] folded-BN graph vs upstream eval_pred: max |box diff| %.3g px, max |score diff| %.3g\n", arch,
                u[0], u[2]);
  }
}

TEST(QuantModel, FakeQuantStaysCloseToFloatOnFixture) {
  const std::string dir = test::fixtures_dir() + "/yolov7";
  auto m = graph::load_model(dir + "/model.pt");
  Tensor x = io::read_npy(dir + "/input.npy");
  IrGraph g = graph::lower(*m, x.sizes());
  quant::QuantOptions o;
  o.convert_silu_to_hswish = o.convert_sigmoid_to_hsigmoid = true;
  quant::Calibrator cal(g, o);
  cal.add_batch(x);
  QuantConfig c = cal.finish(int(x.size(2)));
  quant::FakeQuantGraph fq(g, c, o);
  auto qo = fq.run(x);
  auto fo = quant::convert_for_dpu(g, o).run(x);  // float graph with float Hardswish
  for (size_t l = 0; l < qo.size(); ++l) {
    const double diff = max_abs_diff(qo[l], fo[l]), ref = max_abs(fo[l]);
    std::printf("[ yolov7 ] head %zu: max |fake-quant - float| %.3g (max |float| %.3g, output step 2^-%d)\n", l, diff, ref,
                c.output.at(g.nodes[size_t(g.outputs[l])].name));
    EXPECT_LT(diff, 0.25 * ref);
  }
}

// The fake-quantized graph vs an independent PyTorch run of the upstream modules with the same
// config (tools/dev/make_quant_fixture.py; tests/data/quant/<arch>: the config is yolo7's
// calibration of the cropped input, the reference the head convs' fix-point integers).
TEST(QuantModel, FakeQuantMatchesTorchReference) {
  for (const char* arch : {"yolov7-tiny", "yolov7"}) {
    const std::string ref_dir = std::string(Y7_TEST_DATA) + "/quant/" + arch;
    const std::string dir = test::fixtures_dir() + "/" + arch;
    auto m = graph::load_model(dir + "/model.pt");
    Tensor x = io::read_npy(dir + "/input.npy").slice(0, 0, 1).slice(2, 0, 64).slice(3, 0, 64).contiguous();
    IrGraph g = graph::lower(*m, x.sizes());
    QuantConfig c = load_config(ref_dir + "/quant_info.json");
    quant::QuantOptions o;
    o.convert_silu_to_hswish = c.convert_silu_to_hswish;
    quant::FakeQuantGraph fq(g, c, o);
    auto outs = fq.run(x);
    for (size_t l = 0; l < outs.size(); ++l) {
      Tensor ref = io::read_npy(ref_dir + "/qraw" + std::to_string(l) + ".npy");
      Tensor got = outs[l].contiguous();
      ASSERT_EQ(shape_str(got.sizes()), shape_str(ref.sizes()));
      const int fp = c.output_fp(g.nodes[size_t(g.outputs[l])].name);
      int64_t same = 0, off1 = 0;
      double worst = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        const double q = double(got.data<float>()[i]) * std::ldexp(1.0, fp);
        const double r = double(ref.data<int8_t>()[i]);
        ASSERT_EQ(q, std::round(q));  // on the grid
        same += q == r, off1 += std::abs(q - r) == 1;
        worst = std::max(worst, std::abs(q - r));
      }
      std::printf("[ %s ] head %zu: %lld of %lld fix-point integers equal the torch reference, %lld off by one, max |diff| %g\n",
                  arch, l, static_cast<long long>(same), static_cast<long long>(got.numel()), static_cast<long long>(off1),
                  worst);
      // bit-exact on these graphs (measured: every integer equal); the margin allows for float32
      // conv sums of 8-bit x 8-bit products past 2^24 steps, where summation orders may round a
      // tie apart by one step (the DPU sums in integers)
      EXPECT_GE(double(same), 0.99 * double(got.numel()));
      EXPECT_LE(worst, 1.0);
    }
  }
}

// ---------------------------------------------------------------- yolo7 quant CLI

TEST(QuantCli, FloatCalibTestAndErrors) {
  const std::string d = test::scratch("quant_cli");
  train::ShapesOptions so;
  so.n_train = 1, so.n_val = 6, so.size = 64, so.seed = 5;
  const std::string yaml = train::write_shapes_dataset(d + "/data", so);
  const std::string tiny = test::fixtures() + "/yolov7-tiny/model.pt", v7 = test::fixtures() + "/yolov7/model.pt";
  const std::string common = " --data " + yaml + " --img-size 64 --batch-size 4 --project " + d + "/runs --output_dir " +
                             d + "/qr --workers 0";
  auto one_line_error = [](const test::CliResult& r) {
    const auto p = r.out.find("yolo7: error: ");
    return r.code == 1 && p != std::string::npos && r.out.find('\n', p) == r.out.size() - 1;
  };
  // test before calibration: missing config
  auto r = test::run_cli("quant --weights " + tiny + common + " --quant_mode test");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  EXPECT_NE(r.out.find("calib"), std::string::npos) << r.out;
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode float");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("mAP@.5:.95"), std::string::npos);
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode calib");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("quant_info.json"), std::string::npos) << r.out;
  QuantConfig c = load_config(d + "/qr/quant_info.json");
  EXPECT_EQ(c.calib_images, 6);
  EXPECT_EQ(c.calib_batches, 2);
  EXPECT_EQ(c.img_size, 64);
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode test");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("all"), std::string::npos);
  // a config from another model, other flags, --dump_model (writer not built in), bad modes
  r = test::run_cli("quant --weights " + v7 + common + " --quant_mode test --nndct_convert_silu_to_hswish");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  EXPECT_NE(r.out.find("another model"), std::string::npos) << r.out;
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode test --nndct_convert_silu_to_hswish");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --weights " + v7 + common + " --quant_mode calib");  // SiLU without conversion
  EXPECT_TRUE(one_line_error(r)) << r.out;
  EXPECT_NE(r.out.find("--nndct_convert_silu_to_hswish"), std::string::npos) << r.out;
  r = test::run_cli("quant --weights " + test::fixtures() + "/yolov7-w6/model.pt" + common +
                    " --quant_mode calib --nndct_convert_silu_to_hswish");  // ReOrg
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode calib --dump_model");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode bogus");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode test --nndct_qat");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  {  // a corrupt config
    FILE* f = std::fopen((d + "/qr/quant_info.json").c_str(), "w");
    std::fputs("{\"format\": \"yolo7 quant_info\", \"version\": 1, ", f);
    std::fclose(f);
  }
  r = test::run_cli("quant --weights " + tiny + common + " --quant_mode test");
  EXPECT_TRUE(one_line_error(r)) << r.out;
}

}  // namespace
