// graph/ir: the flat op graph lowered from a fused Model. lower() + run() + decode() must give
// Model::forward's predictions (fused model) for every upstream fixture architecture and for a
// small cfg that uses every remaining cfg row type (nn.Conv2d, nn.BatchNorm2d, Shortcut,
// ImplicitA/M rows, ReOrg, DownC, SP, Sequential with a shared LeakyReLU).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "cli_util.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"

using namespace y7;
using namespace y7::test;

namespace {

// max |diff| on the box columns (0..3) and on the scores (4..)
std::pair<double, double> pred_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.sizes()), shape_str(b.sizes()));
  if (a.sizes() != b.sizes()) return {INFINITY, INFINITY};
  Tensor x = a.contiguous(), y = b.contiguous();
  const float *p = x.data<float>(), *q = y.data<float>();
  int64_t no = a.size(-1), rows = a.numel() / no;
  double box = 0, score = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < no; ++k) {
      double e = std::abs(double(p[r * no + k]) - double(q[r * no + k]));
      if (std::isnan(e)) e = INFINITY;
      (k < 4 ? box : score) = std::max(k < 4 ? box : score, e);
    }
  return {box, score};
}

class IrFixture : public testing::TestWithParam<std::string> {};

TEST_P(IrFixture, LoweredGraphMatchesFusedModel) {
  std::string dir = fixtures_dir() + "/" + GetParam();
  auto model = graph::load_model(dir + "/model.pt");
  Tensor x = io::read_npy(dir + "/input.npy");
  model->fuse();
  Tensor ref = model->forward(x).pred;
  graph::IrGraph g = graph::lower(*model, x.sizes());

  // structure: Input first, unique names, topological, every node shaped, outputs are head convs
  ASSERT_EQ(g.nodes[0].op, graph::IrOp::Input);
  EXPECT_EQ(g.nodes[0].name, "images");
  std::set<std::string> names;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_TRUE(names.insert(g.nodes[i].name).second) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].shape.size(), 4u) << g.nodes[i].name;
    for (int p : g.nodes[i].in) EXPECT_LT(p, int(i));
    if (g.nodes[i].op == graph::IrOp::Conv) {
      EXPECT_TRUE(g.nodes[i].bias.defined());
    }
  }
  ASSERT_EQ(int(g.outputs.size()), g.head.nl);
  int L = model->num_layers() - 1;
  for (int l = 0; l < g.head.nl; ++l) {
    const graph::IrNode& o = g.nodes[g.outputs[l]];
    EXPECT_EQ(o.op, graph::IrOp::Conv);
    EXPECT_EQ(o.name, "model." + std::to_string(L) + ".m." + std::to_string(l));
    EXPECT_EQ(o.shape[1], g.head.na * g.head.no);
  }

  // fused Conv->Act execution (no hook)
  Tensor pred = g.decode(g.run(x));
  auto d = pred_diff(pred, ref);
  // every node on its own (hook), plain NCHW
  int calls = 0;
  graph::IrGraph g2 = g;
  g2.channels_last = false;
  Tensor pred2 = g2.decode(g2.run(x, [&](int i, Tensor& t) {
    ++calls;
    EXPECT_EQ(shape_str(t.sizes()), shape_str(g2.nodes[i].shape)) << g2.nodes[i].name;
  }));
  EXPECT_EQ(calls, int(g2.nodes.size()));
  auto d2 = pred_diff(pred2, ref);
  double maxbox = 0;
  Tensor rc = ref.contiguous();
  for (int64_t r = 0; r < rc.numel() / rc.size(-1); ++r)
    for (int k = 0; k < 4; ++k) maxbox = std::max(maxbox, std::abs(double(rc.data<float>()[r * rc.size(-1) + k])));
  int convs = 0, acts = 0;
  for (auto& n : g.nodes) convs += n.op == graph::IrOp::Conv, acts += n.op == graph::IrOp::Act;
  std::printf("[ %s ] %zu nodes (%d Conv, %d Act): fused-act run box %.3g score %.3g; per-node NCHW run box %.3g "
              "score %.3g (max |box| %.4g)\n",
              GetParam().c_str(), g.nodes.size(), convs, acts, d.first, d.second, d2.first, d2.second, maxbox);
  EXPECT_LE(d.first, 1e-4);
  EXPECT_LE(d.second, 1e-5);
  // the plain-NCHW run uses other oneDNN kernels (another summation order): float rounding of
  // the raw maps, scaled by the box decode ((2s)^2 * anchor): relative to the largest box value
  EXPECT_LE(d2.first, 1e-4 + 2e-6 * maxbox);
  EXPECT_LE(d2.second, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Upstream, IrFixture, testing::ValuesIn(model_fixtures()), fixture_param_name);

// Every cfg row type the fixtures do not use, with random weights (BatchNorm statistics included).
const char* kAllRowsCfg = R"(
nc: 3
depth_multiple: 1.0
width_multiple: 1.0
anchors:
  - [10,13, 16,30, 33,23]
  - [30,61, 62,45, 59,119]
backbone:
  [[-1, 1, ReOrg, []],
   [-1, 1, Conv, [16, 3, 1]],
   [-1, 1, DownC, [32]],
   [-1, 2, Conv, [32, 3, 1, None, 1, nn.LeakyReLU(0.1)]],
   [-1, 1, nn.Conv2d, [32, 3, 1, 1]],
   [-1, 1, nn.BatchNorm2d, []],
   [[-1, 3], 1, Shortcut, [1]],
   [-1, 1, ImplicitA, [32]],
   [-1, 1, ImplicitM, [32]],
   [-1, 1, MP, []],
   [-1, 1, SPPCSPC, [32]],
   [-1, 1, SP, [5, 1]],
  ]
head:
  [[-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 8], 1, Concat, [1]],
   [-1, 1, RepConv, [32, 3, 1]],
   [11, 1, RepConv, [24, 3, 1]],
   [[14, 15], 1, IDetect, [nc, anchors]],
  ]
)";

TEST(Ir, EveryCfgRowTypeMatchesModel) {
  auto model = graph::Model::from_yaml(YAML::Load(kAllRowsCfg));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto sd = model->state_dict();
  for (auto& kv : sd) {
    if (kv.second.dtype() != DType::F32) continue;
    Tensor t = kv.second.clone();
    float* p = t.data<float>();
    bool var = kv.first.find("running_var") != std::string::npos;
    bool anch = kv.first.find("anchor") != std::string::npos;
    if (anch) continue;
    // conv weights ~ U(-1,1)/sqrt(fan_in) keep the activations O(1)
    float sc = t.dim() == 4 ? float(2.0 / std::sqrt(double(t.numel() / t.size(0)))) : 1.f;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = var ? 0.5f + u(rng) + 0.5f : (t.dim() == 4 ? 0.f : p[i]) + sc * u(rng);
    kv.second = t;
  }
  model->load_state_dict(sd);
  Tensor x = Tensor::empty({2, 3, 64, 96});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = u(rng) + 0.5f;
  Tensor unfused = model->forward(x).pred;
  model->fuse();
  Tensor ref = model->forward(x).pred;
  graph::IrGraph g = graph::lower(*model, x.sizes());
  std::set<graph::IrOp> ops;
  for (auto& n : g.nodes) ops.insert(n.op);
  for (auto op : {graph::IrOp::Conv, graph::IrOp::Act, graph::IrOp::MaxPool, graph::IrOp::Upsample,
                  graph::IrOp::Concat, graph::IrOp::Add, graph::IrOp::Mul, graph::IrOp::ReOrg})
    EXPECT_TRUE(ops.count(op)) << graph::ir_op_name(op);
  EXPECT_GE(g.find("model.3.1.conv"), 0);   // Sequential item
  EXPECT_GE(g.find("model.3.1.act"), 0);
  EXPECT_GE(g.find("model.5.scale"), 0);    // lone BatchNorm2d -> Mul + Add
  EXPECT_GE(g.find("model.10.cv7.conv"), 0);
  EXPECT_GE(g.find("model.14.rbr_reparam"), 0);
  EXPECT_EQ(g.nodes[g.find("model.3.1.act")].act, ops::Act::LeakyReLU);
  Tensor pred = g.decode(g.run(x));
  auto d = pred_diff(pred, ref);
  auto du = pred_diff(pred, unfused);
  std::printf("[ all rows ] %zu nodes: vs fused model box %.3g score %.3g; vs unfused box %.3g score %.3g\n",
              g.nodes.size(), d.first, d.second, du.first, du.second);
  EXPECT_LE(d.first, 1e-4);
  EXPECT_LE(d.second, 1e-5);
  EXPECT_LE(du.first, 1e-3);
  EXPECT_LE(du.second, 1e-4);
  // a different input size than the lowering one runs too
  Tensor x2 = Tensor::zeros({1, 3, 32, 64});
  EXPECT_EQ(shape_str(g.decode(g.run(x2)).sizes()), shape_str(model->forward(x2).pred.sizes()));
}

TEST(Ir, BadInputsAndGraphsGiveOneLineErrors) {
  auto model = graph::Model::from_yaml(YAML::Load(kAllRowsCfg));
  graph::IrGraph g = graph::lower(*model, {1, 3, 64, 64});
  EXPECT_THROW(g.run(Tensor::zeros({1, 4, 64, 64})), Error);  // channels
  EXPECT_THROW(g.run(Tensor::zeros({1, 3, 62, 64})), Error);  // ReOrg needs even sizes
  EXPECT_THROW(g.run(Tensor::zeros({3, 64, 64})), Error);
  EXPECT_THROW(graph::lower(*model, {1, 4, 64, 64}), Error);
  graph::IrGraph bad = g;
  bad.nodes[3].in = {5};
  EXPECT_THROW(bad.validate(), Error);
  bad = g;
  bad.nodes[g.find("model.1.conv")].bias = Tensor();
  EXPECT_THROW(bad.validate(), Error);
  try {
    bad = g;
    bad.nodes[g.find("model.1.conv")].weight = Tensor::zeros({16, 5, 3, 3});
    bad.run(Tensor::zeros({1, 3, 64, 64}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

}  // namespace
