// graph/: every YOLOv7 architecture built from its cfg, upstream weights bound by state_dict
// names, eval-mode forward against the upstream fixtures (eval_pred.npy, eval_raw<i>.npy).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "graph/model.h"
#include "io/checkpoint.h"
#include "io/npy.h"

namespace y7::test {

std::string fixtures_dir() { return Y7_SHARED_FIXTURES; }

// Every fixture folder holding a model.pt and input.npy (yolov7-tiny, ..., *-deploy), sorted.
std::vector<std::string> model_fixtures() {
  std::vector<std::string> v;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(fixtures_dir(), ec))
    if (e.is_directory() && std::filesystem::exists(e.path() / "model.pt") &&
        std::filesystem::exists(e.path() / "input.npy"))
      v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string fixture_param_name(const testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

// Boxes (cols 0..3, xywh pixels) within 1e-5 x the largest reference box value + 1e-3 px, scores
// (cols 4..) within 1e-4 absolute. Returns {box diff, box tolerance, score diff}.
std::vector<double> compare_pred(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(shape_str(got.sizes()), shape_str(ref.sizes()));
  if (got.sizes() != ref.sizes()) return {INFINITY, 0, INFINITY};
  Tensor g = got.contiguous().to(DType::F32), r = ref.contiguous().to(DType::F32);
  const float *pg = g.data<float>(), *pr = r.data<float>();
  int64_t no = ref.size(-1), rows = ref.numel() / no;
  double maxbox = 0, box = 0, score = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int k = 0; k < 4; ++k) maxbox = std::max(maxbox, std::abs(double(pr[i * no + k])));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < no; ++k) {
      double e = std::abs(double(pg[i * no + k]) - double(pr[i * no + k]));
      if (std::isnan(e)) e = INFINITY;
      (k < 4 ? box : score) = std::max(k < 4 ? box : score, e);
    }
  double box_tol = 1e-5 * maxbox + 1e-3;
  EXPECT_LE(box, box_tol);
  EXPECT_LE(score, 1e-4);
  return {box, box_tol, score};
}

bool all_finite(const Tensor& t) {
  Tensor c = t.contiguous();
  const float* p = c.data<float>();
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

}  // namespace y7::test

using namespace y7;
using namespace y7::test;

namespace {

// One-line error message check.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ModelFixture : public testing::TestWithParam<std::string> {};

TEST_P(ModelFixture, EvalForwardMatchesUpstream) {
  std::string dir = fixtures_dir() + "/" + GetParam();
  auto model = graph::load_model(dir + "/model.pt");
  ASSERT_FALSE(model->fused());
  Tensor x = io::read_npy(dir + "/input.npy");
  graph::Model::Output out = model->forward(x);
  Tensor ref = io::read_npy(dir + "/eval_pred.npy");
  auto d = compare_pred(out.pred, ref);
  std::printf("[ %s eval ] pred %s: max |box diff| %.3g px (tol %.3g), max |score diff| %.3g\n", GetParam().c_str(),
              shape_str(ref.sizes()).c_str(), d[0], d[1], d[2]);
  int nraw = 0;
  while (std::filesystem::exists(dir + "/eval_raw" + std::to_string(nraw) + ".npy")) ++nraw;
  ASSERT_EQ(int(out.raw.size()), nraw);
  for (int i = 0; i < nraw; ++i) {
    Tensor r = io::read_npy(dir + "/eval_raw" + std::to_string(i) + ".npy");
    ASSERT_EQ(shape_str(out.raw[i].sizes()), shape_str(r.sizes()));
    double diff = max_abs_diff(out.raw[i], r), tol = 1e-4 * max_abs(r);
    std::printf("[ %s eval ] raw%d %s: max |diff| %.3g (tol %.3g, max |ref| %.3g)\n", GetParam().c_str(), i,
                shape_str(r.sizes()).c_str(), diff, tol, max_abs(r));
    EXPECT_LE(diff, tol) << "raw level " << i;
  }
}

TEST_P(ModelFixture, StateDictMatchesCheckpointAndStrideAnchors) {
  std::string dir = fixtures_dir() + "/" + GetParam();
  io::Checkpoint ck = io::load_checkpoint(dir + "/model.pt");
  ASSERT_TRUE(ck.model.has_value());
  const io::ModelRecord& rec = *ck.model;
  auto model = graph::Model::from_yaml(rec.yaml);
  auto sd = model->state_dict();
  // same names and shapes as upstream's state_dict
  ASSERT_EQ(sd.size(), rec.state.size());
  for (auto& kv : rec.state) {
    auto it = sd.find(kv.first);
    ASSERT_NE(it, sd.end()) << kv.first;
    EXPECT_EQ(shape_str(it->second.sizes()), shape_str(kv.second.sizes())) << kv.first;
  }
  // the strides computed from the architecture equal upstream's Model.stride
  ASSERT_EQ(model->stride().size(), rec.stride.size());
  for (size_t i = 0; i < rec.stride.size(); ++i) EXPECT_EQ(model->stride()[i], rec.stride[i]);
  // freshly built anchors equal the checkpoint's buffers (anchors in grid units, anchor_grid in px)
  int last = model->num_layers() - 1;
  for (std::string b : {"anchors", "anchor_grid"}) {
    std::string key = "model." + std::to_string(last) + "." + b;
    ASSERT_TRUE(rec.state.count(key)) << key;
    EXPECT_LE(max_abs_diff(sd[key], rec.state.at(key)), 1e-3 * max_abs(sd[key])) << key;
  }
  // parameter count (parameters only, not buffers) equals upstream's
  if (!rec.order.empty()) {
    EXPECT_EQ(model->num_parameters(), rec.num_parameters());
  }
  EXPECT_EQ(model->nc(), 80);
  EXPECT_EQ(model->num_anchors(), 3);
}

INSTANTIATE_TEST_SUITE_P(Upstream, ModelFixture, testing::ValuesIn(model_fixtures()), fixture_param_name);

TEST(Model, AllFixtureArchitecturesPresent) {
  auto v = model_fixtures();
  for (std::string n : {"yolov7-tiny", "yolov7", "yolov7x", "yolov7-w6", "yolov7-e6", "yolov7-d6", "yolov7-e6e",
                        "yolov7-tiny-deploy", "yolov7-deploy", "yolov7-w6-deploy"})
    EXPECT_NE(std::find(v.begin(), v.end(), n), v.end()) << n;
}

// train-run/epoch_000.pt: a full training checkpoint; both its EMA and its raw model build and run.
TEST(Model, TrainingCheckpointEmaAndModel) {
  std::string dir = fixtures_dir() + "/train-run";
  io::Checkpoint ck = io::load_checkpoint(dir + "/epoch_000.pt");
  ASSERT_TRUE(ck.model.has_value());
  ASSERT_TRUE(ck.ema.has_value());
  Tensor x = io::read_npy(fixtures_dir() + "/yolov7-tiny/input.npy");  // [2,3,128,192]
  for (const io::ModelRecord* rec : {&*ck.ema, &*ck.model}) {
    auto m = graph::Model::from_yaml(rec->yaml);
    m->load_state_dict(rec->state);
    auto out = m->forward(x);
    // 3 anchors x (16x24 + 8x12 + 4x6) cells, 5 + nc outputs (the run's dataset has 6 classes)
    EXPECT_EQ(m->nc(), 6);
    EXPECT_EQ(shape_str(out.pred.sizes()), "[2,1512,11]");
    ASSERT_EQ(out.raw.size(), 3u);
    EXPECT_EQ(shape_str(out.raw[0].sizes()), "[2,3,16,24,11]");
    EXPECT_TRUE(all_finite(out.pred));
  }
  // load_model picks the EMA (upstream attempt_load)
  auto m = graph::load_model(dir + "/epoch_000.pt");
  auto ema = graph::Model::from_yaml(ck.ema->yaml);
  ema->load_state_dict(ck.ema->state);
  EXPECT_EQ(max_abs_diff(m->forward(x).pred, ema->forward(x).pred), 0.0);
  auto last = graph::load_model(dir + "/last.pt");
  auto out = last->forward(x);
  EXPECT_EQ(shape_str(out.pred.sizes()), "[2,1512,11]");
  EXPECT_TRUE(all_finite(out.pred));
  EXPECT_EQ(last->names.size(), size_t(last->nc()));
}

// Full-width cfgs (the fixtures' cfg with width_multiple 1): parse_model's printed table, the
// parameter and module counts of upstream's "Model Summary", and GFLOPS. The GFLOPS reference is
// 2 x the Conv2d multiply-accumulates that torch forward hooks count on the upstream model at a
// stride-sized input, scaled to 640x640 (what model_info() does with thop's conv count).
TEST(Model, FullWidthInfoMatchesUpstream) {
  struct Row {
    int index;
    const char* type;
    int64_t params;
    const char* args;
  };
  struct Ref {
    const char* fixture;
    int64_t params;
    int modules;
    double gflops;
    int64_t fused_params;
    std::vector<Row> rows;
  };
  const Ref refs[] = {
      {"yolov7-tiny", 6228762, 263, 13.7007, 6221370,
       {{0, "models.common.Conv", 928, "[3, 32, 3, 2, None, 1, LeakyReLU(negative_slope=0.1)]"},
        {6, "models.common.Concat", 0, "[1]"},
        {8, "models.common.MP", 0, "[]"},
        {31, "models.common.SP", 0, "[5]"},
        {39, "torch.nn.modules.upsampling.Upsample", 0, "[None, 2, 'nearest']"},
        {76, "models.common.Conv", 1180672, "[256, 512, 3, 1, None, 1, LeakyReLU(negative_slope=0.1)]"},
        {77, "models.yolo.IDetect", 230906,
         "[80, [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]], [128, 256, "
         "512]]"}}},
      {"yolov7", 37622682, 415, 105.7694, 36907898,
       {{0, "models.common.Conv", 928, "[3, 32, 3, 1]"},
        {51, "models.common.SPPCSPC", 7609344, "[1024, 512, 1]"},
        {102, "models.common.RepConv", 328704, "[128, 256, 3, 1]"},
        {104, "models.common.RepConv", 5246976, "[512, 1024, 3, 1]"},
        {105, "models.yolo.IDetect", 460282,
         "[80, [[12, 16, 19, 36, 40, 28], [36, 75, 76, 55, 72, 146], [142, 110, 192, 243, 459, 401]], [256, 512, "
         "1024]]"}}},
  };
  for (const Ref& r : refs) {
    io::Checkpoint ck = io::load_checkpoint(fixtures_dir() + "/" + r.fixture + "/model.pt");
    YAML::Node cfg = YAML::Clone(ck.model->yaml);
    cfg["width_multiple"] = 1.0;
    auto m = graph::Model::from_yaml(cfg);
    EXPECT_EQ(m->num_parameters(), r.params) << r.fixture;
    EXPECT_EQ(m->num_modules(), r.modules) << r.fixture;
    EXPECT_NEAR(m->gflops(640, 640), r.gflops, 1e-4) << r.fixture;
    std::printf("[ %s full width ] %lld parameters, %d modules, %.4f GFLOPS at 640\n", r.fixture,
                (long long)m->num_parameters(), m->num_modules(), m->gflops(640, 640));
    auto info = m->layers();
    for (const Row& row : r.rows) {
      ASSERT_LT(row.index, int(info.size()));
      const auto& li = info[row.index];
      EXPECT_EQ(li.index, row.index);
      EXPECT_EQ(li.type, row.type) << r.fixture << " layer " << row.index;
      EXPECT_EQ(li.params, row.params) << r.fixture << " layer " << row.index;
      EXPECT_EQ(li.args, row.args) << r.fixture << " layer " << row.index;
      EXPECT_EQ(li.repeats, 1);
    }
    m->fuse();
    EXPECT_EQ(m->num_parameters(), r.fused_params) << r.fixture;
  }
}

// save list and `from` bookkeeping on the e6e graph (IAuxDetect, Shortcut, DownC, ReOrg)
TEST(Model, E6eGraphBookkeeping) {
  io::Checkpoint ck = io::load_checkpoint(fixtures_dir() + "/yolov7-e6e/model.pt");
  auto m = graph::Model::from_yaml(ck.model->yaml);
  auto info = m->layers();
  ASSERT_EQ(info.size(), 266u);
  EXPECT_EQ(info[0].type, "models.common.ReOrg");
  EXPECT_EQ(info[23].type, "models.common.Shortcut");
  EXPECT_EQ(info[23].from, (std::vector<int>{-1, -11}));
  EXPECT_TRUE(info[23].from_list);
  EXPECT_FALSE(info[22].from_list);
  EXPECT_EQ(info[265].type, "models.yolo.IAuxDetect");
  EXPECT_EQ(info[265].from, (std::vector<int>{257, 258, 259, 260, 261, 262, 263, 264}));
  // upstream save list: every non -1 `from`, modulo the layer index, sorted
  const auto& save = m->save_list();
  EXPECT_TRUE(std::is_sorted(save.begin(), save.end()));
  EXPECT_NE(std::find(save.begin(), save.end(), 12), save.end());  // layer 23 reads -11
  EXPECT_EQ(m->stride(), (std::vector<float>{8, 16, 32, 64}));
}

// The less common cfg features on a synthetic cfg: depth_multiple with banker's rounding
// (n=3 -> 2, n=5 -> 2 at 0.5: nn.Sequential names "model.1.0.conv.weight"), nn.Conv2d,
// nn.BatchNorm2d (its stale-c2 quirk), ImplicitA/M rows, Shortcut, act=False (Identity), an explicit
// padding, an nn.SiLU() argument, `anchors: 1` (anchor count), a head reading stride 4 and 2 levels
// (anchor order check). The references come from upstream's Model on this cfg with every tensor
// set by the formula below (models/yolo.py parse_model, torch 1.13): counts, strides, the printed
// table, and the outputs.
TEST(Model, SyntheticCfgMatchesUpstream) {
  const char* text = R"(
nc: 2
depth_multiple: 0.5
width_multiple: 0.5
anchors: 1
backbone:
  [[-1, 1, Conv, [16, 3, 2]],
   [-1, 3, Conv, [16, 3, 1]],
   [-1, 5, nn.Conv2d, [16, 1, 1]],
   [-1, 1, nn.BatchNorm2d, []],
   [-1, 1, ImplicitA, [8]],
   [-1, 1, ImplicitM, [8]],
   [[-1, 1], 1, Shortcut, [1]],
   [-1, 1, RepConv, [16, 3, 1]],
   [-1, 1, SP, [5]],
   [-1, 1, MP, []],
   [-1, 1, Conv, [16, 1, 1, None, 1, False]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 7], 1, Concat, [1]],
   [-1, 1, Conv, [32, 3, 2, 1, 1, nn.SiLU()]],
  ]
head:
  [[[13, 12], 1, IDetect, [nc, anchors]]]
)";
  auto m = graph::Model::from_yaml(YAML::Load(text));
  EXPECT_EQ(m->num_parameters(), 4980);
  EXPECT_EQ(m->num_modules(), 55);
  EXPECT_EQ(m->stride(), (std::vector<float>{4, 2}));
  auto info = m->layers();
  ASSERT_EQ(info.size(), 15u);
  const char* args[] = {"[3, 8, 3, 2]", "[8, 8, 3, 1]", "[8, 8, 1, 1]", "[8]", "[8]", "[8]", "[1]", "[8, 8, 3, 1]",
                        "[5]", "[]", "[8, 8, 1, 1, None, 1, False]", "[None, 2, 'nearest']", "[1]",
                        "[16, 16, 3, 2, 1, 1, SiLU()]", "[2, [[0, 1], [0, 1]], [16, 16]]"};
  const int64_t params[] = {232, 1184, 144, 16, 8, 8, 0, 688, 0, 0, 80, 0, 0, 2336, 284};
  const int reps[] = {1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(info[i].args, args[i]) << "layer " << i;
    EXPECT_EQ(info[i].params, params[i]) << "layer " << i;
    EXPECT_EQ(info[i].repeats, reps[i]) << "layer " << i;
  }
  EXPECT_EQ(info[2].type, "torch.nn.modules.conv.Conv2d");
  EXPECT_EQ(info[3].type, "torch.nn.modules.batchnorm.BatchNorm2d");
  auto sd = m->state_dict();
  EXPECT_EQ(sd.size(), 68u);
  for (const char* k : {"model.1.1.conv.weight", "model.2.1.bias", "model.3.running_var", "model.4.implicit",
                        "model.7.rbr_identity.weight", "model.14.im.1.implicit"})
    EXPECT_TRUE(sd.count(k)) << k;
  EXPECT_EQ(max_abs_diff(sd["model.14.anchors"], Tensor::from_vector<float>({0, 0.25f, 0, 0.5f}, {2, 1, 2})), 0.0);

  // deterministic weights: tensor t (in sorted-name order) element i = 0.3 sin(0.37 i + 1.3 t)
  std::map<std::string, Tensor> w;
  int t = 0;
  for (auto& kv : sd) {
    const std::string& k = kv.first;
    Tensor v = kv.second.clone();
    bool skip = k.find("num_batches_tracked") != std::string::npos || k.find("anchor") != std::string::npos;
    if (!skip) {
      float* p = v.data<float>();
      for (int64_t i = 0; i < v.numel(); ++i) {
        double x = 0.3 * std::sin(double(i) * 0.37 + double(t) * 1.3);
        if (k.size() > 11 && k.compare(k.size() - 11, 11, "running_var") == 0) x = 0.5 + x * x * 4;
        if ((k.find(".im") != std::string::npos && k.find("implicit") != std::string::npos) ||
            k.find("model.5.") != std::string::npos)
          x = 1 + x;
        p[i] = float(x);
      }
    }
    w[k] = v;
    ++t;
  }
  m->load_state_dict(w);
  Tensor x = Tensor::empty({2, 3, 64, 96});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = float((i * 7919) % 1000) / 1000.f;
  auto check = [&](const graph::Model::Output& o, const char* what) {
    ASSERT_EQ(shape_str(o.pred.sizes()), "[2,1920,7]");
    double sum = 0, asum = 0;
    Tensor pc = o.pred.contiguous();
    for (int64_t i = 0; i < pc.numel(); ++i) sum += pc.data<float>()[i], asum += std::abs(pc.data<float>()[i]);
    EXPECT_NEAR(sum, 313952.611, 0.05) << what;
    EXPECT_NEAR(asum, 313996.388, 0.05) << what;
    const double row[] = {19.7719669, 19.4372349, 0, 0.922310293, 0.365349144, 0.283707976, 0.244863242};
    for (int k = 0; k < 7; ++k) EXPECT_NEAR(o.pred.item({1, 100, k}), row[k], 1e-4) << what << " col " << k;
    ASSERT_EQ(o.raw.size(), 2u);
    EXPECT_EQ(shape_str(o.raw[0].sizes()), "[2,1,16,24,7]");
    EXPECT_EQ(shape_str(o.raw[1].sizes()), "[2,1,32,48,7]");
    const double rsum[] = {-475.880812, -767.476218};
    for (int l = 0; l < 2; ++l) {
      Tensor r = o.raw[l].contiguous();
      double s = 0;
      for (int64_t i = 0; i < r.numel(); ++i) s += r.data<float>()[i];
      EXPECT_NEAR(s, rsum[l], 2e-3) << what << " raw " << l;
    }
  };
  check(m->forward(x), "unfused");
  m->fuse();
  EXPECT_EQ(m->num_parameters(), 4828);
  EXPECT_EQ(m->num_modules(), 44);
  check(m->forward(x), "fused");
}

TEST(Model, StrictLoadingErrors) {
  io::Checkpoint ck = io::load_checkpoint(fixtures_dir() + "/yolov7-tiny/model.pt");
  auto model = graph::Model::from_yaml(ck.model->yaml);
  std::map<std::string, Tensor> sd = ck.model->state;
  ASSERT_NO_THROW(model->load_state_dict(sd));

  auto missing = sd;
  missing.erase("model.3.conv.weight");
  std::string e = error_of([&] { model->load_state_dict(missing); });
  EXPECT_EQ(e, "missing key model.3.conv.weight");
  EXPECT_NO_THROW(model->load_state_dict(missing, /*strict=*/false));

  auto wrong = sd;
  wrong["model.0.conv.weight"] = Tensor::zeros({8, 3, 1, 1});
  e = error_of([&] { model->load_state_dict(wrong); });
  EXPECT_NE(e.find("shape mismatch for model.0.conv.weight: checkpoint [8,3,1,1] vs model"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);

  auto extra = sd;
  extra["model.99.foo"] = Tensor::zeros({1});
  e = error_of([&] { model->load_state_dict(extra); });
  EXPECT_EQ(e, "unexpected key model.99.foo");

  auto bad = sd;
  bad["model.0.bn.weight"] = Tensor::full(sd["model.0.bn.weight"].sizes(), NAN);
  e = error_of([&] { model->load_state_dict(bad); });
  EXPECT_NE(e.find("non-finite"), std::string::npos) << e;
}

TEST(Model, BadInputAndBadCfgErrors) {
  io::Checkpoint ck = io::load_checkpoint(fixtures_dir() + "/yolov7-tiny/model.pt");
  auto model = graph::Model::from_yaml(ck.model->yaml);
  std::string e = error_of([&] { model->forward(Tensor::zeros({1, 4, 64, 64})); });
  EXPECT_NE(e.find("model input must be [B,3,H,W]"), std::string::npos) << e;
  e = error_of([&] { model->forward(Tensor::zeros({1, 3, 64, 64}, DType::F64)); });
  EXPECT_NE(e.find("float32"), std::string::npos) << e;
  e = error_of([&] { model->forward(Tensor::zeros({1, 3, 4, 4})); });  // too small for the graph
  EXPECT_FALSE(e.empty());
  EXPECT_EQ(e.find('\n'), std::string::npos);

  YAML::Node cfg = YAML::Clone(ck.model->yaml);
  cfg["backbone"][3][2] = "Bottleneck";
  e = error_of([&] { graph::Model::from_yaml(cfg); });
  EXPECT_EQ(e, "cfg layer 3: unsupported module 'Bottleneck'");
  cfg = YAML::Clone(ck.model->yaml);
  cfg["backbone"][3][0] = 7;
  e = error_of([&] { graph::Model::from_yaml(cfg); });
  EXPECT_EQ(e, "cfg layer 3: 'from' 7 does not name an earlier layer");
  cfg = YAML::Clone(ck.model->yaml);
  cfg.remove("head");
  e = error_of([&] { graph::Model::from_yaml(cfg); });
  EXPECT_EQ(e, "model cfg has no 'head'");
  e = error_of([&] { graph::Model::from_yaml_file("/nonexistent/x.yaml"); });
  EXPECT_EQ(e, "cannot open model cfg '/nonexistent/x.yaml'");
  e = error_of([&] { graph::load_model(fixtures_dir() + "/yolov7-tiny/input.npy"); });
  EXPECT_FALSE(e.empty());
}

}  // namespace
