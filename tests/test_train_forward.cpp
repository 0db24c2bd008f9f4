// Training-mode forward (Model::train / forward_train) against upstream: the raw head maps of
// model.float().train()(input) as tests/data/loss/<model>/ stores them (tools/dev/make_loss_fixture.py:
// the full objectness channel obj<i> [B,na,H,W] and the full rows<i> [k,no] at cells<i> of every
// level, lead then aux), BatchNorm on batch statistics. Plus the autograd connection: every
// parameter gets a gradient, buffers do not, and BatchNorm running statistics move.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "cli_util.h"
#include "core/autograd.h"
#include "io/checkpoint.h"
#include "io/zip.h"
#include "graph/model.h"
#include "io/npy.h"
#include "kernels/ops.h"

using namespace y7;

namespace {

std::string shared(const std::string& model, const std::string& f) {
  return std::string(Y7_SHARED_FIXTURES) + "/" + model + "/" + f;
}
std::string loss_data(const std::string& model, const std::string& f) {
  return std::string(Y7_TEST_DATA) + "/loss/" + model + "/" + f;
}

// max |a-b| / max|b| over the objectness channel and the stored rows of level i
void compare_level(const Tensor& map, const std::string& model, int i, double tol, double* rel_out) {
  Tensor obj = io::read_npy(loss_data(model, "obj" + std::to_string(i) + ".npy"));
  Tensor cells = io::read_npy(loss_data(model, "cells" + std::to_string(i) + ".npy"));
  Tensor rows = io::read_npy(loss_data(model, "rows" + std::to_string(i) + ".npy"));
  ASSERT_EQ(map.dim(), 5);
  const int64_t no = map.size(4);
  Shape want = obj.sizes();
  want.push_back(no);
  ASSERT_EQ(map.sizes(), want) << "level " << i;
  Tensor m = map.contiguous();
  const float* pm = m.data<float>();
  const float* po = obj.data<float>();
  double maxref = 0, maxdiff = 0;
  for (int64_t c = 0; c < obj.numel(); ++c) {
    maxref = std::max(maxref, double(std::fabs(po[c])));
    maxdiff = std::max(maxdiff, double(std::fabs(pm[c * no + 4] - po[c])));
  }
  ASSERT_EQ(rows.dim(), 2);
  ASSERT_EQ(rows.size(0), cells.numel());
  const float* pr = rows.data<float>();
  const int64_t* pc = cells.data<int64_t>();
  for (int64_t k = 0; k < cells.numel(); ++k) {
    ASSERT_GE(pc[k], 0);
    ASSERT_LT(pc[k], obj.numel());
    for (int64_t j = 0; j < no; ++j) {
      maxref = std::max(maxref, double(std::fabs(pr[k * no + j])));
      maxdiff = std::max(maxdiff, double(std::fabs(pm[pc[k] * no + j] - pr[k * no + j])));
    }
  }
  const double rel = maxdiff / std::max(maxref, 1e-12);
  *rel_out = rel;
  EXPECT_LE(rel, tol) << model << " level " << i << ": max diff " << maxdiff << ", max |value| " << maxref;
}

void check_model(const std::string& name, int levels, double tol = 1e-4) {
  auto model = graph::load_model(shared(name, "model.pt"));
  Tensor x = io::read_npy(shared(name, "input.npy"));
  model->train();
  ASSERT_TRUE(model->training());
  // a BatchNorm's running stats before the pass
  std::map<std::string, Tensor> sd = model->state_dict();
  std::string rm_name;
  for (auto& kv : sd)
    if (kv.first.size() > 13 && kv.first.compare(kv.first.size() - 13, 13, ".running_mean") == 0) {
      rm_name = kv.first;
      break;
    }
  ASSERT_FALSE(rm_name.empty());
  Tensor rm_before = sd[rm_name].clone();
  std::string nbt_name = rm_name.substr(0, rm_name.size() - 12) + "num_batches_tracked";
  const double nbt_before = sd.at(nbt_name).item();

  std::vector<Tensor> maps = model->forward_train(x);
  ASSERT_EQ(int(maps.size()), levels);
  double worst = 0;
  for (int i = 0; i < levels; ++i) {
    EXPECT_TRUE(maps[i].requires_grad()) << "level " << i;
    double rel = 0;
    compare_level(maps[i], name, i, tol, &rel);
    worst = std::max(worst, rel);
  }
  std::printf("[ train forward ] %s: %d levels, worst max|diff|/max|ref| = %.3g\n", name.c_str(), levels, worst);

  // running statistics moved (momentum 0.03), num_batches_tracked counted the pass
  sd = model->state_dict();
  EXPECT_GT(max_abs_diff(sd[rm_name], rm_before), 0.0) << rm_name;
  EXPECT_EQ(sd.at(nbt_name).item(), nbt_before + 1);

  // backward of sum over all maps reaches every parameter and no buffer
  std::vector<Tensor> grads;
  for (auto& m : maps) grads.push_back(Tensor::full(m.sizes(), 1.0));
  backward(maps, grads);
  int with_grad = 0, total = 0;
  for (auto& [pname, t] : model->named_parameters()) {
    ++total;
    if (t->grad().defined()) {
      ++with_grad;
      EXPECT_EQ(t->grad().sizes(), t->sizes()) << pname;
    } else {
      ADD_FAILURE() << pname << " got no gradient";
    }
  }
  EXPECT_EQ(with_grad, total);
  for (auto& kv : model->state_dict())
    if (kv.first.find("running_") != std::string::npos) EXPECT_FALSE(kv.second.requires_grad()) << kv.first;
  model->zero_grad();
  EXPECT_FALSE(model->named_parameters().front().second->grad().defined());
}

}  // namespace

TEST(TrainForward, Yolov7TinyMatchesUpstreamTrainMode) { check_model("yolov7-tiny", 3); }
TEST(TrainForward, Yolov7MatchesUpstreamTrainMode) { check_model("yolov7", 3); }
TEST(TrainForward, Yolov7W6AuxMatchesUpstreamTrainMode) { check_model("yolov7-w6", 8); }
// yolov7-e6e is deep and its last levels are 2x3 maps, so BatchNorm on batch statistics amplifies
// float rounding: upstream's own float32 train-mode maps differ from its float64 ones by up to
// 1.6e-4 x max|value| (levels 0..3: 7.1e-5, 8.2e-5, 1.1e-4, 1.6e-4; measured with torch 1.13), and
// ours sit within 3.5e-4 of upstream's float32 ones (about the sum of the two rounding errors).
TEST(TrainForward, Yolov7E6EAuxMatchesUpstreamTrainMode) { check_model("yolov7-e6e", 8, 5e-4); }

// cfg/deploy models (plain Detect, RepConv as rbr_reparam) train too: no upstream train-mode maps
// exist for them, so check the connection only: every parameter gets a gradient.
TEST(TrainForward, DeployModelsReachEveryParameter) {
  for (const char* name : {"yolov7-tiny-deploy", "yolov7-deploy"}) {
    auto model = graph::load_model(shared(name, "model.pt"));
    model->train();
    std::vector<Tensor> maps = model->forward_train(io::read_npy(shared(name, "input.npy")));
    ASSERT_EQ(maps.size(), 3u) << name;
    std::vector<Tensor> grads;
    for (auto& m : maps) grads.push_back(Tensor::full(m.sizes(), 1.0));
    backward(maps, grads);
    for (auto& [pname, t] : model->named_parameters()) {
      ASSERT_TRUE(t->grad().defined()) << name << " " << pname;
      EXPECT_GT(max_abs(t->grad()), 0.0) << name << " " << pname;
    }
  }
}

TEST(TrainForward, EvalPathUnchangedAndErrors) {
  auto model = graph::load_model(shared("yolov7-tiny", "model.pt"));
  Tensor x = io::read_npy(shared("yolov7-tiny", "input.npy"));
  EXPECT_THROW(model->forward_train(x), Error);  // not in training mode
  model->train();
  // the eval forward records nothing even though the parameters require grad now
  graph::Model::Output o = model->forward(x);
  EXPECT_FALSE(o.pred.requires_grad());
  Tensor ref = io::read_npy(shared("yolov7-tiny", "eval_pred.npy"));
  EXPECT_LT(max_abs_diff(o.pred, ref) / max_abs(ref), 1e-4);
  EXPECT_THROW(model->forward_train(Tensor::zeros({1, 4, 64, 64})), Error);
  model->train(false);
  EXPECT_FALSE(model->training());
  auto fused = graph::load_model(shared("yolov7-tiny", "model.pt"));
  fused->fuse();
  EXPECT_THROW(fused->train(), Error);
}

// ------------------------------------------------------------------ yolo7 loss vs upstream

namespace {

// The fixture's meta.json holds the hyp as train.py scaled it (nl levels, nc, 128 px); the CLI
// scales what it reads, so write the unscaled values (box/(3/nl), cls/(nc/80*3/nl), obj/((128/640)^2*3/nl)).
std::string write_unscaled_hyp(const YAML::Node& meta, const std::string& dir, int nl) {
  const YAML::Node h = meta["hyp"];
  std::ostringstream o;
  o.precision(17);
  const double nc = meta["nc"].as<double>();
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string k = it->first.as<std::string>();
    double v = it->second.as<double>();
    if (k == "box") v /= 3.0 / nl;
    if (k == "cls") v /= nc / 80.0 * 3.0 / nl;
    if (k == "obj") v /= (128.0 / 640.0) * (128.0 / 640.0) * 3.0 / nl;
    o << k << ": " << v << "\n";
  }
  const std::string path = dir + "/hyp.yaml";
  std::ofstream(path) << o.str();
  return path;
}

// Relative gradient tolerance per model. The default 1e-3 x |ref| (plus 1e-4 x the largest
// gradient norm of the model, for the near-zero gradients that are pure rounding) holds for every
// fixture but yolov7: there upstream's own float32 gradients (grads.pt) are up to 4.5e-3 x |ref|
// away from the same computation in float64 (model.73.bn.bias; measured with torch 1.13), while ours
// are within 1.1e-4 of that float64 result, so the comparison with the fixture is limited by the
// fixture's rounding.
double grad_tol(const std::string& model) { return model == "yolov7" ? 5e-3 : 1e-3; }

void check_loss_cli(const std::string& model) {
  const std::string d = test::fixtures() + "/" + model;
  const YAML::Node meta = YAML::LoadFile(d + "/meta.json");
  const int nl = int(meta["stride"].size());
  const std::string dir = test::scratch("loss_" + model);
  const std::string hyp = write_unscaled_hyp(meta, dir, nl);
  auto r = test::run_cli("loss --weights " + d + "/model.pt --input " + d + "/input.npy --targets " + d +
                         "/targets.npy --hyp " + hyp + " --img-size 128 --out " + dir + "/loss.npy --grads " + dir +
                         "/grads");
  ASSERT_EQ(r.code, 0) << r.out;
  Tensor got = io::read_npy(dir + "/loss.npy"), want = io::read_npy(d + "/loss.npy");
  ASSERT_EQ(got.sizes(), Shape({4}));
  const double lrel = max_abs_diff(got, want) / max_abs(want);
  EXPECT_LE(lrel, 1e-4) << model << ": loss " << got.item({3}) << " vs " << want.item({3});

  std::map<std::string, Tensor> ref = io::load_tensor_dict(d + "/grads.pt");
  double maxnorm = 0;
  auto norm2 = [](const Tensor& t) {
    Tensor c = t.to(DType::F32).contiguous();
    double s = 0;
    for (int64_t i = 0; i < c.numel(); ++i) s += double(c.data<float>()[i]) * c.data<float>()[i];
    return std::sqrt(s);
  };
  for (auto& kv : ref) maxnorm = std::max(maxnorm, norm2(kv.second));
  double worst_rel = 0, worst_big = 0;
  std::string worst_name;
  int n = 0;
  for (auto& [name, rt] : ref) {
    const std::string f = dir + "/grads/" + name + ".npy";
    ASSERT_TRUE(std::filesystem::exists(f)) << model << ": no gradient written for " << name;
    Tensor g = io::read_npy(f);
    ASSERT_EQ(g.sizes(), rt.sizes()) << name;
    Tensor rc = rt.to(DType::F32).contiguous();
    double e = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double dd = double(g.data<float>()[i]) - rc.data<float>()[i];
      e += dd * dd;
    }
    e = std::sqrt(e);
    const double rn = norm2(rc);
    EXPECT_LE(e, grad_tol(model) * rn + 1e-4 * maxnorm)
        << model << " " << name << ": |g - ref| " << e << ", |ref| " << rn << ", largest |ref| " << maxnorm;
    if (e / std::max(rn, 1e-30) > worst_rel) worst_rel = e / std::max(rn, 1e-30), worst_name = name;
    if (rn >= 1e-2 * maxnorm) worst_big = std::max(worst_big, e / rn);
    ++n;
  }
  std::printf("[ yolo7 loss ] %s: loss max rel diff %.3g; %d gradients, worst |g-ref|/|ref| %.3g (%s), "
              "worst among |ref| >= 1%% of the largest %.3g\n",
              model.c_str(), lrel, n, worst_rel, worst_name.c_str(), worst_big);
}

}  // namespace

TEST(LossCli, Yolov7TinyOTA) { check_loss_cli("yolov7-tiny"); }
TEST(LossCli, Yolov7OTA) { check_loss_cli("yolov7"); }
TEST(LossCli, Yolov7xOTA) { check_loss_cli("yolov7x"); }
TEST(LossCli, Yolov7W6AuxOTA) { check_loss_cli("yolov7-w6"); }
TEST(LossCli, Yolov7E6AuxOTA) { check_loss_cli("yolov7-e6"); }
TEST(LossCli, Yolov7D6AuxOTA) { check_loss_cli("yolov7-d6"); }
TEST(LossCli, Yolov7E6EAuxOTA) { check_loss_cli("yolov7-e6e"); }

TEST(LossCli, PlainLossNpzAndErrors) {
  const std::string d = test::fixtures() + "/yolov7-tiny";
  const YAML::Node meta = YAML::LoadFile(d + "/meta.json");
  const std::string dir = test::scratch("loss_plain");
  const std::string hyp = write_unscaled_hyp(meta, dir, 3);
  const std::string base = "loss --weights " + d + "/model.pt --input " + d + "/input.npy --targets " + d +
                           "/targets.npy --hyp " + hyp + " --img-size 128 --out " + dir + "/loss.npy";
  auto r = test::run_cli(base + " --plain --grads " + dir + "/g.npz");
  ASSERT_EQ(r.code, 0) << r.out;
  Tensor got = io::read_npy(dir + "/loss.npy"), want = io::read_npy(d + "/loss_plain.npy");
  const double rel = max_abs_diff(got, want) / max_abs(want);
  EXPECT_LE(rel, 1e-4);
  std::printf("[ yolo7 loss --plain ] yolov7-tiny: max rel diff %.3g\n", rel);
  // the npz holds one float32 .npy per parameter
  io::ZipArchive z = io::ZipArchive::open(dir + "/g.npz");
  const io::ZipEntry& e = z.at("model.0.conv.weight.npy");
  std::string_view b = z.bytes(e);
  Tensor w0 = io::parse_npy(b.data(), b.size());
  EXPECT_EQ(w0.dim(), 4);
  EXPECT_EQ(z.entries().size(), 177u);
  // bad input: one-line errors
  r = test::run_cli("loss --weights " + d + "/model.pt --input " + d + "/input.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error: loss: --targets is required"), std::string::npos) << r.out;
  r = test::run_cli("loss --weights " + d + "/model.pt --input " + d + "/input.npy --targets " + d +
                    "/input.npy --hyp " + hyp + " --out " + dir + "/x.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error: loss: targets must be [n,6]"), std::string::npos) << r.out;
  r = test::run_cli("loss --weights " + test::fixtures() + "/yolov7-e6e/model.pt --input " + d + "/input.npy --targets " +
                    d + "/targets.npy --hyp " + hyp + " --out " + dir + "/x.npy --plain");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--plain"), std::string::npos) << r.out;
}
