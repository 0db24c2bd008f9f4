// quant/xmodel: the .xmodel of a calibrated fixture model loads in libxir (xir::Graph::deserialize),
// its ops by type agree with our graph and config, every fix op carries the config's fix_point,
// weights are the fake-quantized ones in OHWI, shapes are NHWC, and `xir dump_txt` prints it; the
// CLI's --dump_model writes it; bad inputs give one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "cli_util.h"
#include "quant_util.h"
#include "core/error.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/file_util.h"
#include "io/npy.h"
#include "quant/config.h"
#include "quant/quantizer.h"
#include "quant/xmodel.h"
#include "train/shapes.h"

#ifdef Y7_HAVE_XIR
#include <xir/attrs/attrs.hpp>
#include <xir/graph/graph.hpp>
#include <xir/op/op.hpp>
#include <xir/tensor/tensor.hpp>
#endif

using namespace y7;
using namespace y7::quant;
using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

namespace {

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }

#ifdef Y7_HAVE_XIR

std::map<std::string, int> count_types(const xir::Graph& x) {
  std::map<std::string, int> m;
  for (const xir::Op* op : x.get_ops()) ++m[op->get_type()];
  return m;
}

// Expected fix ops (name -> fix_point) from our graph and config.
std::map<std::string, int> expected_fixes(const IrGraph& g, const QuantConfig& c, const QuantOptions& o) {
  IrGraph q = convert_for_dpu(g, o);
  Plan pl = make_plan(q);
  std::map<std::string, int> e;
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    const IrNode& n = q.nodes[i];
    if (pl.has_fix[i]) e[xmodel_op_name(n.name) + "_fix"] = c.output.at(n.name);
    if (n.op == IrOp::Conv) {
      e[xmodel_op_name(n.name + ".weight") + "_fix"] = c.param.at(n.name + ".weight");
      e[xmodel_op_name(n.name + ".bias") + "_fix"] = c.param.at(n.name + ".bias");
    }
    if (n.op == IrOp::Act && n.act == ops::Act::Hardswish) e[xmodel_op_name(n.name) + "_mul_fix"] = 7;
  }
  return e;
}

void check_xmodel(const test::CalibratedFixture& c, const std::string& path, const char* arch) {
  auto x = xir::Graph::deserialize(path);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->get_name(), "Model");
  IrGraph q = convert_for_dpu(c.g, c.opt);
  Plan pl = make_plan(q);
  std::map<std::string, int> want;
  int convs = 0;
  for (const IrNode& n : q.nodes) {
    switch (n.op) {
      case IrOp::Input: ++want["data"]; break;
      case IrOp::Conv: ++want["conv2d"], want["const"] += 2, ++convs; break;
      case IrOp::MaxPool: ++want["maxpool2d"]; break;
      case IrOp::Upsample: ++want["resize"]; break;
      case IrOp::Concat: ++want["concat"]; break;
      case IrOp::Add: ++want["add"]; break;
      case IrOp::Act:
        if (n.act == ops::Act::LeakyReLU) ++want["leaky-relu"];
        if (n.act == ops::Act::ReLU) ++want["relu"];
        if (n.act == ops::Act::Hardswish) ++want["hard-sigmoid"], ++want["const"], want["mul"] += 2;
        if (n.act == ops::Act::Hardsigmoid) ++want["hard-sigmoid"], ++want["const"], ++want["mul"];
        break;
      default: ADD_FAILURE() << "unexpected node " << n.name;
    }
  }
  const auto fixes = expected_fixes(c.g, c.cfg, c.opt);
  want["fix"] = int(fixes.size());
  // one fix per config entry, plus each Hardswish's hsigmoid-factor fix (#hswish = #mul - #hard-sigmoid)
  EXPECT_EQ(int(fixes.size()), int(c.cfg.output.size() + c.cfg.param.size()) + want["mul"] - want["hard-sigmoid"]);
  for (auto it = want.begin(); it != want.end();) it = it->second == 0 ? want.erase(it) : std::next(it);
  auto got = count_types(*x);
  EXPECT_EQ(got, want) << arch;
  int total = 0;
  for (auto& [t, k] : want) total += k;
  EXPECT_EQ(x->get_op_num(), total);
  std::printf("[ %s ] xmodel: %d ops (%d conv2d, %d fix, %d const)\n", arch, total, want["conv2d"], want["fix"],
              want["const"]);

  // every fix op: the config's fix_point, 8 bits signed, DPU_ROUND
  int checked = 0;
  for (const xir::Op* op : x->get_ops()) {
    if (op->get_type() != "fix") continue;
    auto it = fixes.find(op->get_name());
    ASSERT_NE(it, fixes.end()) << "unexpected fix op " << op->get_name();
    EXPECT_EQ(op->get_attr<int>("fix_point"), it->second) << op->get_name();
    EXPECT_EQ(op->get_attr<int>("bit_width"), 8);
    EXPECT_TRUE(op->get_attr<bool>("if_signed"));
    EXPECT_EQ(op->get_attr<std::string>("round_mode"), "DPU_ROUND");
    ++checked;
  }
  EXPECT_EQ(checked, int(fixes.size()));

  // convs: real quantized weights in OHWI on their grid, NHWC shapes, wired to the producer's fix
  FakeQuantGraph fq(c.g, c.cfg, c.opt);
  const auto shapes = q.infer_shapes({1, c.g.nodes[0].shape[1], c.g.nodes[0].shape[2], c.g.nodes[0].shape[3]});
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    const IrNode& n = fq.graph().nodes[i];
    const xir::Op* op = x->get_op(xmodel_op_name(n.name));
    ASSERT_NE(op, nullptr) << n.name;
    const auto s = op->get_output_tensor()->get_shape();
    const Shape& e = shapes[i];
    EXPECT_EQ(s, (std::vector<int32_t>{1, int32_t(e[2]), int32_t(e[3]), int32_t(e[1])})) << n.name;
    if (n.op != IrOp::Conv) continue;
    auto ins = op->get_input_ops("input");
    ASSERT_EQ(ins.size(), 1u);
    const IrNode& p = q.nodes[size_t(n.in[0])];
    EXPECT_EQ(ins[0]->get_name(), xmodel_op_name(p.name) + (pl.has_fix[size_t(n.in[0])] ? "_fix" : "")) << n.name;
    EXPECT_EQ(op->get_attr<std::vector<int32_t>>("stride"), (std::vector<int32_t>{n.stride, n.stride}));
    EXPECT_EQ(op->get_attr<std::vector<int32_t>>("pad"), (std::vector<int32_t>{n.pad, n.pad, n.pad, n.pad}));
    auto wf = op->get_input_ops("weights");
    ASSERT_EQ(wf.size(), 1u);
    EXPECT_EQ(wf[0]->get_type(), "fix");
    const xir::Op* wc = wf[0]->get_input_op("input", 0);
    ASSERT_EQ(wc->get_type(), "const");
    auto bytes = wc->get_attr<std::vector<char>>("data");
    Tensor w = n.weight.contiguous();
    const int64_t O = w.size(0), I = w.size(1), kh = w.size(2), kw = w.size(3);
    ASSERT_EQ(int64_t(bytes.size()), w.numel() * 4) << n.name;
    EXPECT_EQ(wc->get_output_tensor()->get_shape(), (std::vector<int32_t>{int32_t(O), int32_t(kh), int32_t(kw), int32_t(I)}));
    const float* xw = reinterpret_cast<const float*>(bytes.data());
    const int fw = c.cfg.param.at(n.name + ".weight");
    for (int64_t o = 0; o < O; ++o)
      for (int64_t ci = 0; ci < I; ++ci)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t xx = 0; xx < kw; ++xx) {
            const float v = xw[((o * kh + y) * kw + xx) * I + ci];
            ASSERT_EQ(v, w.data<float>()[((o * I + ci) * kh + y) * kw + xx]) << n.name;
            const double qv = std::ldexp(double(v), fw);
            ASSERT_EQ(qv, std::round(qv));
            ASSERT_LE(std::abs(qv), 128.0);
          }
  }
  // the graph ends at the head convs' fix ops
  for (int o : c.g.outputs) {
    const xir::Op* op = x->get_op(xmodel_op_name(c.g.nodes[size_t(o)].name) + "_fix");
    ASSERT_NE(op, nullptr);
    EXPECT_EQ(op->get_fanout_num(), 0);
    EXPECT_EQ(op->get_output_tensor()->get_shape().back(), int32_t(c.g.nodes[size_t(o)].weight.size(0)));
  }
}

TEST(Xmodel, TinyFixtureLoadsInLibxirAndDumpTxtPrintsIt) {
  ASSERT_TRUE(xmodel_supported());
  test::CalibratedFixture c = test::calibrated_fixture("yolov7-tiny", false);  // LeakyReLU: DPU-ready as is
  const std::string d = test::scratch("xmodel_tiny");
  const std::string path = d + "/Model_int.xmodel";
  dump_xmodel(c.g, c.cfg, c.opt, path);
  check_xmodel(c, path, "yolov7-tiny");
  // the leaky-relu slope is the DPU's 26/256
  auto x = xir::Graph::deserialize(path);
  for (const xir::Op* op : x->get_ops())
    if (op->get_type() == "leaky-relu") EXPECT_EQ(op->get_attr<float>("alpha"), 0.1015625f);
  // `xir dump_txt` (libxir-utils) prints it
  const std::string txt = d + "/model.txt";
  const int rc = std::system(("xir dump_txt " + path + " " + txt + " > " + d + "/dump.log 2>&1").c_str());
  ASSERT_EQ(rc, 0) << "xir dump_txt failed";
  auto t = io::read_file(txt);
  const std::string s(t.begin(), t.end());
  EXPECT_NE(s.find("graph_name: \"Model\""), std::string::npos);
  EXPECT_NE(s.find("op_name: \"model_0_conv\""), std::string::npos);
  EXPECT_NE(s.find("op_name: \"model_0_conv_weight_fix\""), std::string::npos);
  EXPECT_NE(s.find("op_type: \"conv2d\""), std::string::npos);
  EXPECT_NE(s.find("op_type: \"leaky-relu\""), std::string::npos);
  EXPECT_NE(s.find("op_type: \"resize\""), std::string::npos);
  EXPECT_NE(s.find("DPU_ROUND"), std::string::npos);
}

TEST(Xmodel, HardswishModelFollowsNndctMacroOps) {
  test::CalibratedFixture c = test::calibrated_fixture("yolov7", true);  // SiLU -> Hardswish
  const std::string d = test::scratch("xmodel_v7");
  const std::string path = d + "/Model_int.xmodel";
  dump_xmodel(c.g, c.cfg, c.opt, path);
  check_xmodel(c, path, "yolov7");
  auto x = xir::Graph::deserialize(path);
  IrGraph q = convert_for_dpu(c.g, c.opt);
  int hs = 0;
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    const IrNode& n = q.nodes[i];
    if (n.op != IrOp::Act || n.act != ops::Act::Hardswish) continue;
    ++hs;
    const std::string nm = xmodel_op_name(n.name);
    const xir::Op* mul = x->get_op(nm);
    ASSERT_NE(mul, nullptr);
    EXPECT_EQ(mul->get_type(), "mul");
    auto ins = mul->get_input_ops("input");
    ASSERT_EQ(ins.size(), 2u);
    EXPECT_EQ(ins[0]->get_name(), nm + "_mul_fix");
    EXPECT_EQ(ins[1]->get_name(), xmodel_op_name(q.nodes[size_t(n.in[0])].name) + "_fix");
    const xir::Op* k = x->get_op(nm + "_i1");
    ASSERT_NE(k, nullptr);
    auto kb = k->get_attr<std::vector<char>>("data");
    ASSERT_EQ(kb.size(), 4u);
    EXPECT_EQ(*reinterpret_cast<const float*>(kb.data()), 6.0f * 2731.0f / 16384.0f);
    EXPECT_EQ(x->get_op(nm + "_i0")->get_type(), "hard-sigmoid");
  }
  EXPECT_GT(hs, 10);
}

// A hand-made graph with what the fixtures lack: a depthwise conv, ReLU, Hardsigmoid, an Add.
TEST(Xmodel, DepthwiseReluHardsigmoidAdd) {
  IrGraph g;
  auto node = [](IrOp op, const std::string& name, std::vector<int> in) {
    IrNode n;
    n.op = op, n.name = name, n.in = std::move(in);
    return n;
  };
  std::mt19937 rng(3);
  std::normal_distribution<float> N01(0.f, 0.5f);
  auto randn = [&](Shape s) {
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = N01(rng);
    return t;
  };
  g.nodes.push_back(node(IrOp::Input, "images", {}));
  IrNode c1 = node(IrOp::Conv, "c1", {0});
  c1.weight = randn({4, 3, 3, 3}), c1.bias = randn({4}), c1.pad = 1;
  g.nodes.push_back(c1);
  IrNode r = node(IrOp::Act, "r1", {1});
  r.act = ops::Act::ReLU;
  g.nodes.push_back(r);
  IrNode dw = node(IrOp::Conv, "dw", {2});
  dw.weight = randn({8, 1, 3, 3}), dw.bias = randn({8}), dw.pad = 1, dw.groups = 4, dw.stride = 2;
  g.nodes.push_back(dw);
  IrNode hs = node(IrOp::Act, "hsig", {3});
  hs.act = ops::Act::Sigmoid;
  g.nodes.push_back(hs);
  IrNode c2 = node(IrOp::Conv, "c2", {3});
  c2.weight = randn({8, 8, 1, 1}), c2.bias = randn({8});
  g.nodes.push_back(c2);
  g.nodes.push_back(node(IrOp::Add, "add", {4, 5}));
  IrNode up = node(IrOp::Upsample, "up", {6});
  g.nodes.push_back(up);
  IrNode c3 = node(IrOp::Conv, "head", {7});
  c3.weight = randn({6, 8, 1, 1}), c3.bias = randn({6});
  g.nodes.push_back(c3);
  g.outputs = {8};
  g.head.nl = 0;
  Tensor x = Tensor::empty({1, 3, 8, 8});
  std::uniform_real_distribution<float> U(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = U(rng);
  auto shapes = g.infer_shapes(x.sizes());
  for (size_t i = 0; i < g.nodes.size(); ++i) g.nodes[i].shape = shapes[i];
  test::CalibratedFixture c;
  c.g = g;
  c.opt.convert_sigmoid_to_hsigmoid = true;
  Calibrator cal(g, c.opt);
  cal.add_batch(x);
  c.cfg = cal.finish(8);
  const std::string path = test::scratch("xmodel_dw") + "/m.xmodel";
  dump_xmodel(g, c.cfg, c.opt, path);
  auto xg = xir::Graph::deserialize(path);
  auto t = count_types(*xg);
  EXPECT_EQ(t["depthwise-conv2d"], 1);
  EXPECT_EQ(t["conv2d"], 2 + 1);  // c1, c2 and the head
  EXPECT_EQ(t["relu"], 1);
  EXPECT_EQ(t["hard-sigmoid"], 1);
  EXPECT_EQ(t["mul"], 1);
  EXPECT_EQ(t["add"], 1);
  EXPECT_EQ(t["resize"], 1);
  const xir::Op* d = xg->get_op("dw");
  EXPECT_EQ(d->get_input_op("weights", 0)->get_input_op("input", 0)->get_output_tensor()->get_shape(),
            (std::vector<int32_t>{2, 3, 3, 4}));
  EXPECT_EQ(d->get_output_tensor()->get_shape(), (std::vector<int32_t>{1, 4, 4, 8}));
  // c1 is grouped with its ReLU: conv2d -> relu -> fix
  EXPECT_EQ(xg->get_op("r1")->get_input_op("input", 0)->get_name(), "c1");
  EXPECT_EQ(xg->get_op("r1_fix")->get_attr<int>("fix_point"), c.cfg.output.at("r1"));
  const auto fixes = expected_fixes(g, c.cfg, c.opt);
  int nfix = 0;
  for (const xir::Op* op : xg->get_ops())
    if (op->get_type() == "fix") {
      ++nfix;
      ASSERT_TRUE(fixes.count(op->get_name())) << op->get_name();
      EXPECT_EQ(op->get_attr<int>("fix_point"), fixes.at(op->get_name()));
    }
  EXPECT_EQ(nfix, int(fixes.size()));
}

#endif  // Y7_HAVE_XIR

TEST(Xmodel, BadInputsGiveOneLineErrors) {
  test::CalibratedFixture c = test::calibrated_fixture("yolov7-tiny", false);
  const std::string d = test::scratch("xmodel_bad");
  auto expect_error = [&](const QuantConfig& cfg, const QuantOptions& o, const std::string& path, const char* what) {
    try {
      dump_xmodel(c.g, cfg, o, path);
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_TRUE(one_line(e.what())) << e.what();
    }
  };
  QuantConfig bad = c.cfg;
  bad.graph_hash = "0123456789abcdef";
  expect_error(bad, c.opt, d + "/a.xmodel", "another model");
  bad = c.cfg;
  bad.output.erase(bad.output.begin());
  expect_error(bad, c.opt, d + "/a.xmodel", "missing entry");
  QuantOptions o2 = c.opt;
  o2.convert_silu_to_hswish = true;
  expect_error(c.cfg, o2, d + "/a.xmodel", "other flags");
  if (xmodel_supported()) {
    expect_error(c.cfg, c.opt, d + "/no/such/dir/a.xmodel", "unwritable path");
    expect_error(c.cfg, c.opt, "", "empty path");
  } else {
    expect_error(c.cfg, c.opt, d + "/a.xmodel", "no libxir");
  }
  EXPECT_FALSE(std::filesystem::exists(d + "/a.xmodel"));
}

TEST(XmodelCli, QuantTestDumpModelWritesModelInt) {
  if (!xmodel_supported()) GTEST_SKIP() << "built without libxir";
  const std::string d = test::scratch("xmodel_cli");
  train::ShapesOptions so;
  so.n_train = 1, so.n_val = 4, so.size = 64, so.seed = 7;
  const std::string yaml = train::write_shapes_dataset(d + "/data", so);
  const std::string tiny = test::fixtures() + "/yolov7-tiny/model.pt";
  const std::string common = " --weights " + tiny + " --data " + yaml + " --img-size 64 --batch-size 4 --project " + d +
                             "/runs --output_dir " + d + "/qr --workers 0";
  auto r = test::run_cli("quant" + common + " --quant_mode calib");
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_cli("quant" + common + " --quant_mode test --dump_model");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Model_int.xmodel"), std::string::npos) << r.out;
  ASSERT_TRUE(std::filesystem::exists(d + "/qr/Model_int.xmodel"));
#ifdef Y7_HAVE_XIR
  auto x = xir::Graph::deserialize(d + "/qr/Model_int.xmodel");
  QuantConfig cfg = load_config(d + "/qr/quant_info.json");
  int fix = 0, conv = 0;
  for (const xir::Op* op : x->get_ops()) fix += op->get_type() == "fix", conv += op->get_type() == "conv2d";
  EXPECT_EQ(fix, int(cfg.output.size() + cfg.param.size()));
  EXPECT_EQ(2 * conv, int(cfg.param.size()));
  const xir::Op* in = x->get_op("images");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->get_output_tensor()->get_shape(), (std::vector<int32_t>{1, 64, 64, 3}));
#endif
  // --dump_model needs test mode
  r = test::run_cli("quant" + common + " --quant_mode calib --dump_model");
  EXPECT_EQ(r.code, 1) << r.out;
}

}  // namespace
