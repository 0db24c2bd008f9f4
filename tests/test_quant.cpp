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

#include "core/error.h"
#include "quant/config.h"
#include "quant/fixpoint.h"

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
  const std::string js = config_to_json(c);
  QuantConfig d = config_from_json(js);
  EXPECT_EQ(d.graph_hash, c.graph_hash);
  EXPECT_EQ(d.output, c.output);
  EXPECT_EQ(d.param, c.param);
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

}  // namespace
