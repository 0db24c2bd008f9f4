// quant/int8_runner: the integer execution equals the fake-quantized float simulation
// (FakeQuantGraph::run) bit for bit on the upstream fixture models and on a hand-made graph with
// every op kind; the DPU requantize against its definition; one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cli_util.h"
#include "quant_util.h"
#include "core/error.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"
#include "quant/config.h"
#include "quant/int8_runner.h"
#include "quant/quantizer.h"
#include "train/shapes.h"

using namespace y7;
using namespace y7::quant;
using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

namespace {

// Number of elements whose float32 bits differ (logical NCHW order on both sides).
int64_t bit_mismatches(const Tensor& a, const Tensor& b, double* max_diff = nullptr) {
  EXPECT_EQ(a.sizes(), b.sizes());
  Tensor x = a.contiguous(), y = b.contiguous();
  int64_t bad = 0;
  double md = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float u = x.data<float>()[i], v = y.data<float>()[i];
    if (std::memcmp(&u, &v, sizeof u) != 0) ++bad;
    md = std::max(md, std::abs(double(u) - double(v)));
  }
  if (max_diff) *max_diff = md;
  return bad;
}

TEST(Int8, DpuRequantizeMatchesDefinition) {
  // floor(v * 2^-s + 1/2) saturated: ties toward +inf for both signs
  EXPECT_EQ(dpu_requantize(5, 1), 3);    // 2.5 -> 3
  EXPECT_EQ(dpu_requantize(-5, 1), -2);  // -2.5 -> -2
  EXPECT_EQ(dpu_requantize(-3, 1), -1);  // -1.5 -> -1
  EXPECT_EQ(dpu_requantize(-7, 2), -2);  // -1.75 -> -2
  EXPECT_EQ(dpu_requantize(300, 0), 127);
  EXPECT_EQ(dpu_requantize(-300, 0), -128);
  EXPECT_EQ(dpu_requantize(3, -2), 12);
  EXPECT_EQ(dpu_requantize(40, -2), 127);
  EXPECT_EQ(dpu_requantize(-1, -9), -128);
  EXPECT_EQ(dpu_requantize(0, -20), 0);
  std::mt19937 rng(1);
  std::uniform_int_distribution<int64_t> U(-(int64_t(1) << 24), int64_t(1) << 24);
  for (int k = 0; k < 100000; ++k) {
    const int64_t v = U(rng);
    const int s = int(k % 20) - 3;
    const double ref = std::min(127.0, std::max(-128.0, std::floor(std::ldexp(double(v), -s) + 0.5)));
    ASSERT_EQ(double(dpu_requantize(v, s)), ref) << v << " >> " << s;
  }
}

void expect_equal_to_fake_quant(const test::CalibratedFixture& f, const char* what, size_t n_inputs = 3) {
  FakeQuantGraph fq(f.g, f.cfg, f.opt);
  Int8Graph ig(f.g, f.cfg, f.opt);
  // the calibration input, a brighter copy and a mirrored one (other values and saturations)
  Tensor bright = f.x.clone(), flip = f.x.contiguous().clone();
  for (int64_t i = 0; i < bright.numel(); ++i) bright.data<float>()[i] = std::min(1.5f, bright.data<float>()[i] * 1.7f);
  {
    const int64_t W = flip.size(3);
    Tensor s = f.x.contiguous();
    for (int64_t r = 0; r < flip.numel() / W; ++r)
      for (int64_t w = 0; w < W; ++w) flip.data<float>()[r * W + w] = s.data<float>()[r * W + (W - 1 - w)];
  }
  const std::vector<const Tensor*> inputs = {&f.x, &bright, &flip};
  for (size_t k = 0; k < n_inputs && k < inputs.size(); ++k) {
    const Tensor* in = inputs[k];
    auto ref = fq.run(*in);
    auto got = ig.run(*in);
    ASSERT_EQ(ref.size(), got.size());
    for (size_t l = 0; l < ref.size(); ++l) {
      double md = 0;
      const int64_t bad = bit_mismatches(got[l], ref[l], &md);
      int64_t nz = 0;
      Tensor r = ref[l].contiguous();
      for (int64_t i = 0; i < r.numel(); ++i) nz += r.data<float>()[i] != 0;
      std::printf("[ %s ] head %zu: %lld values, %lld nonzero, int8 vs fake-quant: %lld bit mismatches (max |diff| %g)\n",
                  what, l, static_cast<long long>(r.numel()), static_cast<long long>(nz), static_cast<long long>(bad), md);
      EXPECT_EQ(bad, 0) << what << " head " << l;
      EXPECT_GT(nz, r.numel() / 4);
    }
  }
  // decoded predictions agree too
  Tensor pf = fq.forward(f.x), pi = ig.forward(f.x);
  EXPECT_EQ(bit_mismatches(pi, pf), 0);
}

TEST(Int8, EqualsFakeQuantOnTinyFixture) {
  expect_equal_to_fake_quant(test::calibrated_fixture("yolov7-tiny", false), "yolov7-tiny");
}

TEST(Int8, EqualsFakeQuantOnHardswishFixture) {
  expect_equal_to_fake_quant(test::calibrated_fixture("yolov7", true), "yolov7 (hswish)", 2);
}

TEST(Int8, EqualsFakeQuantOnDeployFixture) {
  expect_equal_to_fake_quant(test::calibrated_fixture("yolov7-tiny-deploy", false), "yolov7-tiny-deploy", 1);
}

IrNode node(IrOp op, const std::string& name, std::vector<int> in) {
  IrNode n;
  n.op = op, n.name = name, n.in = std::move(in);
  return n;
}

// Every op kind, with fix points that differ across a concat and an add: conv+LeakyReLU (fused),
// a depthwise conv feeding a Hardsigmoid, a stride-2 conv, Add+LeakyReLU (fused), a stand-alone
// ReLU on a shared tensor, MaxPool, Upsample, Concat, Hardswish, the head conv.
TEST(Int8, EqualsFakeQuantOnEveryOpKind) {
  std::mt19937 rng(11);
  std::normal_distribution<float> N(0.f, 0.6f);
  auto randn = [&](Shape s, float sc = 1.0f) {
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = N(rng) * sc;
    return t;
  };
  IrGraph g;
  g.nodes.push_back(node(IrOp::Input, "images", {}));  // 0
  IrNode c1 = node(IrOp::Conv, "c1", {0});              // 1
  c1.weight = randn({8, 3, 3, 3}), c1.bias = randn({8}, 0.3f), c1.pad = 1;
  g.nodes.push_back(c1);
  IrNode a1 = node(IrOp::Act, "a1", {1});  // 2 fused
  a1.act = ops::Act::LeakyReLU;
  g.nodes.push_back(a1);
  IrNode dw = node(IrOp::Conv, "dw", {2});  // 3
  dw.weight = randn({8, 1, 3, 3}), dw.bias = randn({8}, 0.3f), dw.pad = 1, dw.groups = 8;
  g.nodes.push_back(dw);
  IrNode hs = node(IrOp::Act, "hsig", {3});  // 4
  hs.act = ops::Act::Sigmoid;
  g.nodes.push_back(hs);
  IrNode c2 = node(IrOp::Conv, "c2", {2});  // 5
  c2.weight = randn({8, 8, 1, 1}), c2.bias = randn({8}, 0.3f);
  g.nodes.push_back(c2);
  g.nodes.push_back(node(IrOp::Add, "add", {4, 5}));  // 6
  IrNode a2 = node(IrOp::Act, "a2", {6});              // 7 fused with the add
  a2.act = ops::Act::LeakyReLU;
  g.nodes.push_back(a2);
  IrNode mp = node(IrOp::MaxPool, "mp", {7});  // 8
  mp.k = 3, mp.s = 2, mp.p = 1;
  g.nodes.push_back(mp);
  IrNode c3 = node(IrOp::Conv, "c3", {8});  // 9
  c3.weight = randn({8, 8, 3, 3}, 0.3f), c3.bias = randn({8}, 0.3f), c3.pad = 1;
  g.nodes.push_back(c3);
  IrNode sw = node(IrOp::Act, "sw", {9});  // 10
  sw.act = ops::Act::SiLU;
  g.nodes.push_back(sw);
  IrNode up = node(IrOp::Upsample, "up", {10});  // 11
  g.nodes.push_back(up);
  IrNode r = node(IrOp::Act, "relu", {7});  // 12 stand-alone (7 has other users)
  r.act = ops::Act::ReLU;
  g.nodes.push_back(r);
  g.nodes.push_back(node(IrOp::Concat, "cat", {11, 12, 2}));  // 13
  IrNode hd = node(IrOp::Conv, "head", {13});                  // 14
  hd.weight = randn({6, 24, 1, 1}, 0.3f), hd.bias = randn({6}, 0.3f);
  g.nodes.push_back(hd);
  g.outputs = {14, 9};
  g.head.nl = 0;
  Tensor x = Tensor::empty({2, 3, 12, 10});
  std::uniform_real_distribution<float> U(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = U(rng);
  auto shapes = g.infer_shapes(x.sizes());
  for (size_t i = 0; i < g.nodes.size(); ++i) g.nodes[i].shape = shapes[i];
  QuantOptions o;
  o.convert_silu_to_hswish = o.convert_sigmoid_to_hsigmoid = true;
  Calibrator cal(g, o);
  cal.add_batch(x);
  QuantConfig c = cal.finish(12);
  Plan pl = make_plan(convert_for_dpu(g, o));
  EXPECT_FALSE(pl.has_fix[1]);  // c1 fused with its LeakyReLU
  EXPECT_FALSE(pl.has_fix[6]);  // add fused with its LeakyReLU
  // force different fix points into the concat and the add
  for (int trial = 0; trial < 3; ++trial) {
    QuantConfig t = c;
    if (trial >= 1) t.output["hsig"] = c.output.at("hsig") + 1, t.output["c2"] = c.output.at("c2") - 2;
    if (trial == 2) t.output["cat"] = c.output.at("cat") - 1, t.output["a2"] = c.output.at("a2") + 2;
    FakeQuantGraph fq(g, t, o);
    auto ref = fq.run(x);
    for (const char* conv : {"0", "1"}) {  // oneDNN's int8 convolutions, then the portable ones
      setenv("Y7_INT8_REFERENCE_CONV", conv, 1);
      Int8Graph ig(g, t, o);
      auto got = ig.run(x);
      ASSERT_EQ(ref.size(), 2u);
      for (size_t l = 0; l < 2; ++l) {
        double md = 0;
        const int64_t bad = bit_mismatches(got[l], ref[l], &md);
        EXPECT_EQ(bad, 0) << "trial " << trial << " output " << l << " max diff " << md << " reference conv " << conv;
      }
    }
    unsetenv("Y7_INT8_REFERENCE_CONV");
  }
}

TEST(Int8, BadInputsGiveOneLineErrors) {
  test::CalibratedFixture f = test::calibrated_fixture("yolov7-tiny", false);
  auto one_line = [](auto&& fn) {
    try {
      fn();
      return false;
    } catch (const Error& e) {
      return std::string(e.what()).find('\n') == std::string::npos;
    }
  };
  Int8Graph ig(f.g, f.cfg, f.opt);
  Tensor nan = f.x.clone();
  nan.data<float>()[5] = NAN;
  EXPECT_TRUE(one_line([&] { ig.run(nan); }));
  EXPECT_TRUE(one_line([&] { ig.run(Tensor::zeros({1, 4, 64, 64})); }));  // channels
  EXPECT_TRUE(one_line([&] { ig.run(Tensor::zeros({1, 3, 64}, DType::F32)); }));
  EXPECT_TRUE(one_line([&] { ig.run(Tensor()); }));
  QuantConfig bad = f.cfg;
  bad.graph_hash = "0123456789abcdef";
  EXPECT_TRUE(one_line([&] { Int8Graph(f.g, bad, f.opt); }));
  bad = f.cfg;
  bad.param.erase(bad.param.begin());
  EXPECT_TRUE(one_line([&] { Int8Graph(f.g, bad, f.opt); }));
}

// yolo7 quant calib -> forward --quant [--int8] (bit-equal outputs) and bench --quant --int8
TEST(Int8Cli, ForwardAndBenchWithQuantConfig) {
  const std::string d = test::scratch("int8_cli");
  train::ShapesOptions so;
  so.n_train = 1, so.n_val = 4, so.size = 64, so.seed = 3;
  const std::string yaml = train::write_shapes_dataset(d + "/data", so);
  const std::string tiny = test::fixtures() + "/yolov7-tiny/model.pt";
  auto r = test::run_cli("quant --weights " + tiny + " --data " + yaml + " --img-size 64 --batch-size 4 --project " + d +
                         "/runs --output_dir " + d + "/qr --workers 0 --quant_mode calib");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string cfg = d + "/qr/quant_info.json", in = test::fixtures() + "/yolov7-tiny/input.npy";
  r = test::run_cli("forward --weights " + tiny + " --input " + in + " --out " + d + "/fq.npy --quant " + cfg);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_cli("forward --weights " + tiny + " --input " + in + " --out " + d + "/i8.npy --quant " + cfg + " --int8");
  ASSERT_EQ(r.code, 0) << r.out;
  Tensor a = io::read_npy(d + "/fq.npy"), b = io::read_npy(d + "/i8.npy");
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_EQ(bit_mismatches(b, a), 0);
  // the same as the library's fake-quantized forward of that config
  auto m = graph::load_model(tiny);
  Tensor x = io::read_npy(in);
  IrGraph g = graph::lower(*m, x.sizes());
  EXPECT_EQ(bit_mismatches(a, FakeQuantGraph(g, load_config(cfg), {}).forward(x)), 0);
  r = test::run_cli("bench --weights " + tiny + " --img-size 64 --iters 2 --warmup 1 --quant " + cfg + " --int8");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("int8"), std::string::npos) << r.out;
  auto one_line_error = [](const test::CliResult& c) {
    const auto p = c.out.find("yolo7: error: ");
    return c.code == 1 && p != std::string::npos && c.out.find('\n', p) == c.out.size() - 1;
  };
  EXPECT_TRUE(one_line_error(test::run_cli("forward --weights " + tiny + " --input " + in + " --out " + d + "/z.npy --int8")));
  EXPECT_TRUE(one_line_error(test::run_cli("forward --weights " + tiny + " --input " + in + " --out " + d +
                                           "/z.npy --quant " + d + "/missing.json --int8")));
  EXPECT_TRUE(one_line_error(test::run_cli("forward --weights " + test::fixtures() + "/yolov7/model.pt --input " + in +
                                           " --out " + d + "/z.npy --quant " + cfg + " --int8")));  // another model
  EXPECT_TRUE(one_line_error(test::run_cli("bench --weights " + tiny + " --img-size 64 --iters 1 --int8")));
  EXPECT_TRUE(one_line_error(test::run_cli("bench --weights " + tiny + " --img-size 64 --iters 1 --train --quant " + cfg)));
}

}  // namespace
