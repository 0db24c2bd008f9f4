// Quantization-aware training (quant/qat.h): NNDCT TQT threshold <-> fix point, the STE / TQT
// gradients against independent computations (finite differences of the straight-through
// relaxation), the QAT graph's forward against the PTQ FakeQuantGraph, loss descent on a fixed batch,
// and the yolo7 train_qat -> yolo7 quant --nndct_qat CLI round trip with its errors.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli_util.h"
#include "core/autograd.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "graph/modules.h"
#include "io/checkpoint_writer.h"
#include "kernels/ops.h"
#include "quant/qat.h"
#include "quant/quantizer.h"
#include "quant/xmodel.h"
#include "train/shapes.h"
#include "train/trainer_loss.h"

using namespace y7;
using namespace y7::quant;
namespace fs = std::filesystem;

namespace {

// the QAT hyp without augmentation, lr0 / nbs as given
std::string write_hyp(const fs::path& dir, double lr0, int nbs) {
  YAML::Node h = YAML::LoadFile(test::repo_file("data/hyp.scratch.p5_qat.yaml"));
  for (const char* k : {"hsv_h", "hsv_s", "hsv_v", "translate", "scale", "fliplr", "mosaic", "mixup", "paste_in"})
    h[k] = 0.0;
  h["lr0"] = lr0;
  h["nbs"] = nbs;
  std::string p = (dir / "hyp_qat.yaml").string();
  std::ofstream(p) << YAML::Dump(h);
  return p;
}

Tensor random_tensor(const Shape& s, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
  return t;
}

}  // namespace

TEST(Qat, LogThresholdToFixPoint) {
  // NNDCT TQT: scale = 2^ceil(lt) / 2^(bw-1) and fix_point = bw - 1 - ceil(lt)
  EXPECT_EQ(tqt_fix_point(2.3f), 4);
  EXPECT_EQ(tqt_fix_point(3.0f), 4);
  EXPECT_EQ(tqt_fix_point(3.0001f), 3);
  EXPECT_EQ(tqt_fix_point(-0.5f), 7);
  EXPECT_EQ(tqt_fix_point(-5.2f), 12);
  EXPECT_EQ(tqt_fix_point(1.5f, 4), 1);
  for (int fp = -4; fp <= 14; ++fp) {
    const float lt = tqt_init_log_threshold(fp);
    EXPECT_EQ(tqt_fix_point(lt), fp);
    EXPECT_EQ(std::ldexp(1.0, int(std::ceil(lt))) / 128.0, std::ldexp(1.0, -fp));  // scale == 2^-fp
    // the threshold is the largest magnitude of the grid (up to one step): 2^ceil(lt) = 128 * 2^-fp
    EXPECT_EQ(std::exp2(std::ceil(lt)), 128.0 * std::ldexp(1.0, -fp));
  }
  EXPECT_THROW(tqt_fix_point(NAN), Error);
}

TEST(Qat, FakeQuantForwardIsTheFixNeuron) {
  Tensor x = random_tensor({2, 3, 5, 7}, 3.f, 1);
  for (float lt : {-1.5f, 0.2f, 2.0f, 4.7f}) {
    Tensor y = tqt_fake_quant(x, Tensor::full({1}, lt), 8, kActRound);
    Tensor r = fake_quant(x, tqt_fix_point(lt), 8, kActRound);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.data<float>()[i], r.data<float>()[i]);
  }
}

TEST(Qat, SteAndTqtGradientsVsFiniteDifferences) {
  // values across the clip range and beyond, a random upstream gradient g; loss = sum(g * y)
  const int64_t n = 400;
  Tensor x = random_tensor({n}, 2.5f, 7), g = random_tensor({n}, 1.f, 8);
  for (Round m : {kActRound, kParamRound})
    for (float lt : {-0.3f, 1.6f}) {
      const int fp = tqt_fix_point(lt);
      const double s = std::ldexp(1.0, -fp);
      TqtGrads r = tqt_backward(g, x, lt, 8, m);
      // the straight-through relaxation: y(x, t) = x + 2^(t-7) * c inside the range (c = round(x/s) - x/s
      // held constant), 2^(t-7) * qmin / qmax where round(x/s) clips; d/dt at t = ceil(lt) by central
      // differences, d/dx = 1 inside, 0 outside
      std::vector<double> c(n);
      std::vector<int> zone(n);
      for (int64_t i = 0; i < n; ++i) {
        const double sx = double(x.data<float>()[i]) / s;
        const double q = double(round_nndct(float(sx), m));
        zone[size_t(i)] = q < -128 ? -1 : q > 127 ? 1 : 0;
        c[size_t(i)] = q - sx;
      }
      auto f = [&](double t) {
        const double st = std::exp2(t - 7);
        double acc = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double y = zone[size_t(i)] < 0 ? -128 * st : zone[size_t(i)] > 0 ? 127 * st : x.data<float>()[i] + st * c[size_t(i)];
          acc += double(g.data<float>()[i]) * y;
        }
        return acc;
      };
      const double t0 = std::ceil(lt), h = 1e-4;
      const double fd = (f(t0 + h) - f(t0 - h)) / (2 * h);
      EXPECT_NEAR(r.dlt, fd, 1e-4 * std::max(1.0, std::abs(fd))) << "lt " << lt;
      int clipped = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float want = zone[size_t(i)] == 0 ? g.data<float>()[i] : 0.f;
        ASSERT_EQ(r.dx.data<float>()[i], want) << i;
        clipped += zone[size_t(i)] != 0;
      }
      if (lt < 0) {
        EXPECT_GT(clipped, 10);  // the range [-0.5, 0.5) clips many values
      }
    }
  // through autograd: leaves x and lt, loss = sum(g * y)
  Tensor xl = x.clone(), ltl = Tensor::full({1}, 0.7f);
  xl.set_requires_grad(true), ltl.set_requires_grad(true);
  Tensor loss = ops::sum(ops::mul(tqt_fake_quant(xl, ltl, 8, kActRound), g));
  backward(loss);
  TqtGrads r = tqt_backward(g, x, 0.7f, 8, kActRound);
  ASSERT_TRUE(xl.grad().defined() && ltl.grad().defined());
  EXPECT_NEAR(ltl.grad().contiguous().data<float>()[0], r.dlt, 1e-5 * std::max(1.0, std::abs(r.dlt)));
  Tensor gx = xl.grad().contiguous();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(gx.data<float>()[i], r.dx.data<float>()[i]);
}

namespace {

struct TinySetup {
  std::unique_ptr<graph::Model> model;
  graph::IrGraph g;
  Tensor imgs, targets;
};

TinySetup tiny_setup(const fs::path& dir, int B, int S) {
  TinySetup t;
  t.model = graph::Model::from_yaml_file(test::write_tiny_cfg(dir), 3, 6);
  t.model->init_weights(0);
  t.imgs = Tensor::empty({B, 3, S, S});
  std::vector<float> rows;
  for (int b = 0; b < B; ++b) {
    auto im = train::make_shape_image(S, 200 + b);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          t.imgs.data<float>()[((b * 3 + c) * S + y) * S + x] = im.img.data[(y * S + x) * 3 + c] / 255.f;
    for (auto& o : im.objects)
      rows.insert(rows.end(), {float(b), float(o.cls), (o.x0 + o.x1) / 2.f / S, (o.y0 + o.y1) / 2.f / S,
                               float(o.x1 - o.x0) / S, float(o.y1 - o.y0) / S});
  }
  t.targets = Tensor::from_vector(rows, {int64_t(rows.size() / 6), 6});
  return t;
}

}  // namespace

TEST(Qat, ForwardMatchesFakeQuantGraphAndTrainingLowersLoss) {
  const fs::path dir = test::scratch("qat_graph");
  const int B = 4, S = 64;
  TinySetup t = tiny_setup(dir, B, S);
  t.model = graph::load_model(test::fixtures() + "/yolov7-tiny/model.pt");  // trained weights: real activation ranges
  auto& det = dynamic_cast<graph::DetectLayer&>(t.model->layer(t.model->num_layers() - 1));
  train::TrainLoss loss(write_hyp(dir, 0.02, 4), 0.0, det, det.nc, S);
  const int na = det.na, no = det.no;
  t.model->fuse();
  graph::IrGraph g = graph::lower(*t.model, {1, 3, S, S});
  QuantOptions qo;
  qo.bias_correction = false;
  Calibrator cal(g, qo);
  {
    NoGradGuard ng;
    cal.add_batch(t.imgs);
  }
  QuantConfig c = cal.finish(S);
  QatGraph q(g, c, qo);
  // with the calibrated thresholds, the QAT forward is the PTQ test-mode graph
  {
    NoGradGuard ng;
    FakeQuantGraph fq(g, c, qo);
    auto a = q.forward_train(t.imgs), b = fq.run(t.imgs);
    ASSERT_EQ(a.size(), b.size());
    for (size_t l = 0; l < a.size(); ++l) {
      Tensor x = a[l].contiguous(), y = b[l].contiguous();
      ASSERT_EQ(x.sizes(), y.sizes());
      const double step = std::ldexp(1.0, -c.output_fp(g.nodes[size_t(g.outputs[l])].name));
      int64_t differ = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double d = std::abs(double(x.data<float>()[i]) - double(y.data<float>()[i]));
        ASSERT_LE(d, step * 1.0001);  // at most one grid step (float summation order at a tie)
        differ += d > 0;
      }
      EXPECT_LE(differ, x.numel() / 100 + 1) << "level " << l;
    }
  }
  for (const auto& [k, v] : c.output) EXPECT_EQ(q.fix_point(k), v) << k;
  // plain SGD steps on one batch lower the OTA loss; thresholds receive gradients
  std::vector<double> curve;
  bool lt_grad = false;
  for (int it = 0; it < 8; ++it) {
    auto raw = q.forward_train(t.imgs);
    std::vector<Tensor> maps;
    for (auto& r : raw)
      maps.push_back(ops::contiguous(ops::permute(ops::reshape(r, {r.size(0), na, no, r.size(2), r.size(3)}), {0, 1, 3, 4, 2})));
    train::StepLoss l = loss(maps, t.targets, S);
    curve.push_back(l.total);
    backward(maps, l.grads);
    auto sgd = [](const std::vector<Tensor*>& ps, float lr) {
      for (Tensor* p : ps) {
        Tensor gr = p->grad();
        if (!gr.defined()) continue;
        gr = gr.contiguous();
        for (int64_t i = 0; i < p->numel(); ++i) p->data<float>()[i] -= lr * gr.data<float>()[i];
      }
    };
    for (Tensor* p : q.thresholds()) lt_grad = lt_grad || (p->grad().defined() && p->grad().data<float>()[0] != 0.f);
    sgd(q.weights(), 0.05f), sgd(q.biases(), 0.05f), sgd(q.thresholds(), 1e-4f);
    q.zero_grad();
  }
  std::printf("  QAT loss per step:");
  for (double v : curve) std::printf(" %.4f", v);
  std::printf("\n");
  EXPECT_TRUE(lt_grad);
  EXPECT_LT((curve[5] + curve[6] + curve[7]) / 3, 0.995 * curve.front());  // pretrained model, small steps
  // the exported config is complete for the graph (FakeQuantGraph accepts it)
  QuantConfig e = q.export_config(S);
  int moved = 0;
  for (const auto& [k, v] : e.output) moved += c.output.at(k) != v;
  std::printf("  %d of %zu activation fix points moved\n", moved, e.output.size());
  EXPECT_NO_THROW(FakeQuantGraph(g, e, qo));
}

TEST(Qat, CliTrainQatThenQuantTest) {
  const fs::path dir = test::scratch("qat_cli");
  train::ShapesOptions so;
  so.n_train = 8, so.n_val = 4, so.size = 64, so.seed = 11;
  const std::string data = train::write_shapes_dataset((dir / "shapes").string(), so);
  auto m = graph::Model::from_yaml_file(test::write_tiny_cfg(dir), 3, 6);
  m->init_weights(1);
  m->names = {"circle", "square", "triangle", "cross", "ring", "star"};
  const std::string w = (dir / "float.pt").string();
  io::save_stripped_checkpoint(w, *m, false);
  const std::string hyp = write_hyp(dir, 0.01, 4);
  const std::string common = " --data " + data + " --hyp " + hyp + " --img-size 64 --batch-size 4 --workers 0 --project " +
                             (dir / "runs").string() + " --name q --exist-ok --quiet";
  auto r = test::run_cli("train_qat --weights " + w + common + " --epochs 2");
  ASSERT_EQ(r.code, 0) << r.out;
  const fs::path qd = dir / "runs" / "q" / "qat";
  EXPECT_TRUE(fs::exists(qd / "quant_info.json"));
  EXPECT_TRUE(fs::exists(qd / "log_thresholds.txt"));
  EXPECT_TRUE(fs::exists(qd / "params" / "model.77.m.0.weight.npy") || fs::is_directory(qd / "params"));
  QuantConfig c = load_config((qd / "quant_info.json").string());
  EXPECT_EQ(c.img_size, 64);
  const std::string qcommon = " --data " + data + " --img-size 64 --batch-size 4 --workers 0 --project " +
                              (dir / "runs").string() + " --output_dir " + qd.string();
  r = test::run_cli("quant --nndct_qat --weights " + w + qcommon + " --quant_mode test");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("all"), std::string::npos) << r.out;
  if (xmodel_supported()) {  // the deployable model of the QAT result
    r = test::run_cli("quant --nndct_qat --weights " + w + qcommon + " --quant_mode test --dump_model");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(fs::exists(qd / "Model_int.xmodel"));
  }
  auto one_line_error = [](const test::CliResult& r) {
    const auto p = r.out.find("yolo7: error: ");
    return r.code == 1 && p != std::string::npos && r.out.find('\n', p) == r.out.size() - 1;
  };
  // errors: no --weights, SiLU model without the convert flag, a QAT dir for another model, calib mode
  r = test::run_cli("train_qat" + common + " --epochs 1");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  EXPECT_NE(r.out.find("--weights"), std::string::npos) << r.out;
  r = test::run_cli("train_qat --weights " + test::fixtures() + "/yolov7/model.pt" + common + " --epochs 1");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  EXPECT_NE(r.out.find("--nndct_convert_silu_to_hswish"), std::string::npos) << r.out;
  r = test::run_cli("train_qat --weights " + w + common + " --epochs 0");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --nndct_qat --weights " + test::fixtures() + "/yolov7-tiny/model.pt" + qcommon +
                    " --quant_mode test");
  EXPECT_TRUE(one_line_error(r)) << r.out;
  r = test::run_cli("quant --nndct_qat --weights " + w + qcommon + " --quant_mode calib");
  EXPECT_TRUE(one_line_error(r)) << r.out;
}
