// Optimizer (torch.optim.SGD nesterov / Adam), train.py's parameter groups, LR/momentum schedules
// and ModelEMA against upstream/torch reference numbers.
//
// Reference values come from torch 1.13 (/usr/bin/python3):
//   ps[i] = cos(0.3*j + i) over shapes [5], [2,3,1,1], [3]; groups SGD(ps[0], lr, momentum=0.937,
//   nesterov=True) (or Adam(betas=(0.937, 0.999))), add_param_group(ps[1], weight_decay=0.001),
//   add_param_group(ps[2]); 4 steps with per-step group lrs (0,0,.1) (.002,.002,.08) (.01,.01,.01)
//   (.005,.004,.003) and momentum (Adam: beta1) .8 .85 .9 .937; grad[j] = sin(0.7*j + 1.3*s + 0.1*i)
//   (x10 for ps[1]). Schedule values are upstream's one_cycle / np.interp expressions evaluated
//   in python.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "graph/model.h"
#include "train/ema.h"
#include "train/optimizer.h"
#include "train/schedule.h"

using namespace y7;
using namespace y7::train;

namespace {

std::string cfg_path(const std::string& name) { return std::string(Y7_TEST_DATA) + "/../../cfg/training/" + name; }

void run_reference(OptKind kind, const std::vector<double>& expect) {
  std::vector<Shape> shapes = {{5}, {2, 3, 1, 1}, {3}};
  std::vector<Tensor> ps;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor t = Tensor::empty(shapes[i]);
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = float(std::cos(0.3 * j + double(i)));
    t.set_requires_grad(true);
    ps.push_back(t);
  }
  Optimizer opt(kind, 0.01, 0.937, true);
  opt.add_group({"a"}, {&ps[0]}, 0.0);
  opt.add_group({"b"}, {&ps[1]}, 0.0005 * 2);
  opt.add_group({"c"}, {&ps[2]}, 0.0);
  const double lrs[4][3] = {{0, 0, .1}, {.002, .002, .08}, {.01, .01, .01}, {.005, .004, .003}};
  const double moms[4] = {.8, .85, .9, .937};
  for (int s = 0; s < 4; ++s) {
    for (int j = 0; j < 3; ++j) opt.groups()[j].lr = lrs[s][j], opt.groups()[j].momentum = moms[s];
    for (size_t i = 0; i < ps.size(); ++i) {
      Tensor g = Tensor::empty(ps[i].sizes());
      for (int64_t j = 0; j < g.numel(); ++j)
        g.data<float>()[j] = float(std::sin(0.7 * j + 1.3 * s + 0.1 * double(i)) * (i == 1 ? 10 : 1));
      ps[i].autograd()->grad = g;
    }
    opt.step();
  }
  size_t k = 0;
  double worst = 0;
  for (auto& p : ps)
    for (int64_t j = 0; j < p.numel(); ++j, ++k) worst = std::max(worst, std::abs(p.data<float>()[j] - expect[k]));
  ASSERT_EQ(k, expect.size());
  std::printf("  max |param - torch| after 4 steps: %.3g\n", worst);
  EXPECT_LT(worst, 2e-7);
}

}  // namespace

TEST(Optimizer, SgdNesterovMatchesTorch) {
  run_reference(OptKind::SGD, {0.9794266223907471, 0.9467980265617371, 0.8328478336334229, 0.641639769077301,
                               0.3854847848415375, 0.3442718982696533, 0.194316565990448, 0.05487936735153198,
                               -0.12149249762296677, -0.3638872802257538, -0.6593397855758667, -0.625724196434021,
                               -0.9742680788040161, -1.1184420585632324});
}

TEST(Optimizer, AdamMatchesTorch) {
  run_reference(OptKind::Adam, {0.9835631251335144, 0.937635600566864, 0.8146576881408691, 0.6211282014846802,
                                0.37414032220840454, 0.523809015750885, 0.2512039840221405, -0.03825220838189125,
                                -0.3222859799861908, -0.5759329199790955, -0.7833696007728577, -0.6041083931922913,
                                -0.870955228805542, -1.0440162420272827});
}

TEST(Optimizer, SkipsParametersWithoutGradientAndSerialises) {
  Tensor a = Tensor::full({3}, 1.0), b = Tensor::full({2}, 2.0);
  a.set_requires_grad(true), b.set_requires_grad(true);
  Optimizer opt(OptKind::SGD, 0.1, 0.9, true);
  opt.add_group({"a", "b"}, {&a, &b}, 0.0);
  a.autograd()->grad = Tensor::full({3}, 1.0);
  opt.step();
  // first step: buf = g, d = g + m*buf = 1.9 -> a = 1 - 0.19
  EXPECT_FLOAT_EQ(a.data<float>()[0], 1.f - 0.1f * 1.9f);
  EXPECT_EQ(b.data<float>()[0], 2.f);
  auto sd = opt.state_dict();
  auto st = sd->get("state");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->entries.size(), 1u);  // only the updated parameter has a momentum buffer
  auto groups = sd->get("param_groups");
  ASSERT_EQ(groups->items.size(), 1u);
  EXPECT_EQ(groups->items[0]->get("params")->items.size(), 2u);
  EXPECT_TRUE(groups->items[0]->get("nesterov")->b);
}

TEST(Optimizer, UpstreamParameterGroups) {
  // len(pg0), len(pg1), len(pg2) and their element counts from train.py's loop on upstream models
  struct Case {
    const char* cfg;
    size_t n0, n1, n2;
    int64_t e0, e1, e2;
  } cases[] = {{"yolov7-tiny.yaml", 61, 58, 58, 9053, 6211552, 8157},
               {"yolov7.yaml", 98, 95, 95, 27421, 37569632, 25629}};
  for (auto& c : cases) {
    auto m = graph::Model::from_yaml_file(cfg_path(c.cfg));
    ParamGroups pg = group_parameters(*m);
    int64_t e[3] = {0, 0, 0};
    for (int g = 0; g < 3; ++g)
      for (auto* t : pg.params[g]) e[g] += t->numel();
    EXPECT_EQ(pg.params[0].size(), c.n0) << c.cfg;
    EXPECT_EQ(pg.params[1].size(), c.n1) << c.cfg;
    EXPECT_EQ(pg.params[2].size(), c.n2) << c.cfg;
    EXPECT_EQ(e[0], c.e0) << c.cfg;
    EXPECT_EQ(e[1], c.e1) << c.cfg;
    EXPECT_EQ(e[2], c.e2) << c.cfg;
    // upstream order at the end of pg0: the head's im.0..2 then ia.0..2 (optimizer state indices)
    const auto& n0 = pg.names[0];
    ASSERT_GE(n0.size(), 6u);
    EXPECT_NE(n0[n0.size() - 6].find(".im.0.implicit"), std::string::npos) << n0[n0.size() - 6];
    EXPECT_NE(n0[n0.size() - 3].find(".ia.0.implicit"), std::string::npos) << n0[n0.size() - 3];
  }
}

TEST(Schedule, LambdasMatchUpstream) {
  LrLambda cyc{false, 0.1, 300}, lin{true, 0.1, 300};
  const double xs[4] = {0, 1, 150, 299};
  const double ec[4] = {1.0, 0.9999753262144805, 0.55, 0.10002467378551949};
  const double el[4] = {1.0, 0.9969899665551839, 0.5484949832775919, 0.1};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(cyc(xs[i]), ec[i], 1e-15);
    EXPECT_NEAR(lin(xs[i]), el[i], 1e-15);
  }
  EXPECT_EQ(warmup_iterations(3, 37), 1000);
  EXPECT_EQ(warmup_iterations(3, 500), 1500);
  EXPECT_EQ(warmup_iterations(0.5, 2001), 1000);
  EXPECT_EQ(warmup_iterations(3, 37, 50), 111);
  EXPECT_EQ(warmup_iterations(1, 20, 50), 50);
  EXPECT_EQ(nominal_accumulate(12), 5);
  EXPECT_EQ(nominal_accumulate(128), 1);
  EXPECT_EQ(nominal_accumulate(40), 2);
  EXPECT_EQ(nominal_accumulate(64), 1);
  EXPECT_THROW(nominal_accumulate(0), Error);
}

TEST(Schedule, WarmupMatchesUpstream) {
  Tensor a = Tensor::zeros({1}), b = Tensor::zeros({1}), c = Tensor::zeros({1});
  Optimizer opt(OptKind::SGD, 0.01, 0.937, true);
  opt.add_group({"a"}, {&a}, 0), opt.add_group({"b"}, {&b}, 0.0005), opt.add_group({"c"}, {&c}, 0);
  LrLambda lf{false, 0.1, 300};
  struct Row {
    int64_t ni;
    int acc;
    double lr01, lr2, mom;
  } rows[] = {{0, 1, 0.0, 0.1, 0.8},
              {1, 1, 1e-05, 0.09991, 0.8001370000000001},
              {250, 2, 0.0024977800694818055, 0.07749778006948181, 0.83425},
              {999, 5, 0.009811500263960696, 0.00991150026396069, 0.936863},
              {1000, 5, 0.009821321585546243, 0.009821321585546243, 0.937}};
  for (auto& r : rows) {
    int acc = apply_warmup(opt, r.ni, 1000, int(r.ni / 37), lf, 0.1, 0.8, 0.937, 12);
    EXPECT_EQ(acc, r.acc) << r.ni;
    EXPECT_NEAR(opt.groups()[0].lr, r.lr01, 1e-15) << r.ni;
    EXPECT_NEAR(opt.groups()[1].lr, r.lr01, 1e-15) << r.ni;
    EXPECT_NEAR(opt.groups()[2].lr, r.lr2, 1e-15) << r.ni;
    for (auto& g : opt.groups()) EXPECT_NEAR(g.momentum, r.mom, 1e-15) << r.ni;
  }
  set_epoch_lr(opt, lf, 150);
  for (auto& g : opt.groups()) EXPECT_NEAR(g.lr, 0.01 * 0.55, 1e-15);
}

TEST(ModelEMA, FollowsFormula) {
  auto m = graph::Model::from_yaml_file(cfg_path("yolov7-tiny.yaml"), 3, 6);
  ModelEMA ema(*m);
  auto e0 = ema.ema().state_dict();
  std::map<std::string, std::vector<float>> before;
  for (auto& [k, v] : e0)
    if (v.dtype() == DType::F32) before[k].assign(v.data<float>(), v.data<float>() + v.numel());
  // change the model: every float entry + 0.5 (in place)
  for (auto& [k, v] : m->state_dict())
    if (v.dtype() == DType::F32)
      for (int64_t i = 0; i < v.numel(); ++i) v.data<float>()[i] += 0.5f;
  ema.update(*m);
  ema.update(*m);
  EXPECT_EQ(ema.updates, 2);
  const double d1 = 0.9999 * (1 - std::exp(-1.0 / 2000)), d2 = 0.9999 * (1 - std::exp(-2.0 / 2000));
  EXPECT_NEAR(ema.decay_at(1), d1, 1e-16);
  auto msd = m->state_dict();
  double worst = 0;
  for (auto& [k, v] : ema.ema().state_dict()) {
    if (v.dtype() != DType::F32) continue;
    for (int64_t i = 0; i < v.numel(); ++i) {
      double x = before[k][size_t(i)], t = msd[k].data<float>()[i];
      double e = d2 * (d1 * x + (1 - d1) * t) + (1 - d2) * t;
      worst = std::max(worst, std::abs(v.data<float>()[i] - e) / (1 + std::abs(e)));
    }
  }
  EXPECT_LT(worst, 1e-6);
}
