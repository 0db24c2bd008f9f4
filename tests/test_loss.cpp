// Training losses (train/loss.h) and hyperparameters (train/hyp.h) vs upstream PyTorch.
// References in tests/data/loss/<model>/ come from tools/dev/make_loss_fixture.py: the raw
// train-mode head maps of the shared fixture models (compacted: the objectness channel everywhere,
// full rows at the candidate cells, zeros elsewhere; the loss does not read the rest), upstream's
// loss values and d(total*bs)/d(raw) for several loss variants. The same maps reproduce the shared
// fixtures' loss.npy / loss_plain.npy, which is checked too.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "graph/modules.h"
#include "io/npy.h"
#include "train/hyp.h"
#include "train/loss.h"

using namespace y7;
using namespace y7::train;

namespace {

std::string loss_dir(const std::string& name) { return std::string(Y7_TEST_DATA) + "/loss/" + name; }

const char* kTinyHyp =
    "lr0: 0.01\nlrf: 0.01\nmomentum: 0.937\nweight_decay: 0.0005\nwarmup_epochs: 3.0\n"
    "warmup_momentum: 0.8\nwarmup_bias_lr: 0.1\nbox: 0.05\ncls: 0.5\ncls_pw: 1.0\nobj: 1.0\n"
    "obj_pw: 1.0\niou_t: 0.20\nanchor_t: 4.0\nfl_gamma: 0.0\nhsv_h: 0.015\nhsv_s: 0.7\nhsv_v: 0.4\n"
    "degrees: 0.0\ntranslate: 0.1\nscale: 0.5\nshear: 0.0\nperspective: 0.0\nflipud: 0.0\nfliplr: 0.5\n"
    "mosaic: 1.0\nmixup: 0.05\ncopy_paste: 0.0\npaste_in: 0.05\nloss_ota: 1 # use ComputeLossOTA\n";

const char* kP6Hyp =
    "lr0: 0.01\nlrf: 0.2\nmomentum: 0.937\nweight_decay: 0.0005\nwarmup_epochs: 3.0\n"
    "warmup_momentum: 0.8\nwarmup_bias_lr: 0.1\nbox: 0.05\ncls: 0.3\ncls_pw: 1.0\nobj: 0.7\n"
    "obj_pw: 1.0\niou_t: 0.20\nanchor_t: 4.0\nfl_gamma: 0.0\nhsv_h: 0.015\nhsv_s: 0.7\nhsv_v: 0.4\n"
    "degrees: 0.0\ntranslate: 0.2\nscale: 0.9\nshear: 0.0\nperspective: 0.0\nflipud: 0.0\nfliplr: 0.5\n"
    "mosaic: 1.0\nmixup: 0.15\ncopy_paste: 0.0\npaste_in: 0.15\nloss_ota: 1\n";

struct Case {
  YAML::Node meta;
  std::vector<Tensor> raw;
  std::vector<Tensor> cells;  // int64 flat cell indices per map
  Tensor targets, crowd;
  int64_t img_h = 0;
};

Case load_case(const std::string& name) {
  Case c;
  const std::string d = loss_dir(name);
  c.meta = YAML::LoadFile(d + "/meta.json");
  c.targets = io::read_npy(d + "/targets.npy");
  if (std::filesystem::exists(d + "/targets_crowd.npy")) c.crowd = io::read_npy(d + "/targets_crowd.npy");
  c.img_h = c.meta["input_shape"][2].as<int64_t>();
  const auto levels = c.meta["levels"];
  for (size_t i = 0; i < levels.size(); ++i) {
    Shape s;
    for (const auto& v : levels[i]) s.push_back(v.as<int64_t>());
    if (std::filesystem::exists(d + "/raw" + std::to_string(i) + ".npy")) {  // synthetic: stored in full
      c.raw.push_back(io::read_npy(d + "/raw" + std::to_string(i) + ".npy"));
      EXPECT_EQ(c.raw.back().sizes(), s);
      continue;
    }
    Tensor r = Tensor::zeros(s);
    const int64_t no = s[4];
    Tensor obj = io::read_npy(d + "/obj" + std::to_string(i) + ".npy");
    Tensor cells = io::read_npy(d + "/cells" + std::to_string(i) + ".npy");
    Tensor rows = io::read_npy(d + "/rows" + std::to_string(i) + ".npy");
    EXPECT_EQ(obj.numel() * no, r.numel());
    float* p = r.data<float>();
    for (int64_t k = 0; k < obj.numel(); ++k) p[k * no + 4] = obj.data<float>()[k];
    const int64_t* ci = cells.data<int64_t>();
    for (int64_t k = 0; k < cells.numel(); ++k)
      for (int64_t j = 0; j < no; ++j) p[ci[k] * no + j] = rows.data<float>()[k * no + j];
    c.raw.push_back(r);
    c.cells.push_back(cells);
  }
  return c;
}

Hyp hyp_from(const YAML::Node& n) {
  Hyp h;
  for (const auto& kv : n) h.set(kv.first.as<std::string>(), kv.second.as<double>());
  return h;
}

LossConfig config_for(const Case& c, const YAML::Node& variant) {
  LossConfig cfg;
  const std::string kind = variant["loss"].as<std::string>();
  cfg.kind = kind == "plain" ? LossKind::Plain : kind == "aux" ? LossKind::AuxOTA : LossKind::OTA;
  cfg.nc = c.meta["nc"].as<int>();
  const int64_t nl = c.meta["nl"].as<int64_t>(), na = c.meta["na"].as<int64_t>();
  std::vector<float> a;
  for (const auto& l : c.meta["anchors"])
    for (const auto& p : l)
      for (const auto& v : p) a.push_back(v.as<float>());
  cfg.anchors = Tensor::from_vector(a, {nl, na, 2});
  for (const auto& s : c.meta["stride"]) cfg.stride.push_back(s.as<float>());
  cfg.hyp = hyp_from(variant["hyp"]);
  cfg.gr = variant["gr"].as<double>();
  return cfg;
}

Tensor targets_for(const Case& c, const std::string& mode) {
  if (mode == "none") return Tensor::zeros({0, 6});
  if (mode == "all") return c.targets;
  if (mode == "crowd") return c.crowd;
  std::vector<float> rows;
  const float* t = c.targets.data<float>();
  for (int64_t k = 0; k < c.targets.size(0); ++k)
    if (t[k * 6] == 1.0f) rows.insert(rows.end(), t + k * 6, t + k * 6 + 6);
  return Tensor::from_vector(rows, {int64_t(rows.size() / 6), 6});
}

double rel_err(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }

// Checks one variant against its references; returns (max loss rel err, max grad err / max|grad|).
std::pair<double, double> check_variant(const std::string& name, const Case& c, const YAML::Node& v) {
  const std::string vn = v["name"].as<std::string>();
  SCOPED_TRACE(name + " " + vn);
  const LossConfig cfg = config_for(c, v);
  const LossResult r = compute_loss(c.raw, targets_for(c, v["targets"].as<std::string>()), c.img_h, cfg, true);
  const std::string d = loss_dir(name);
  Tensor ref = io::read_npy(d + "/" + vn + "_loss.npy");
  const double got[4] = {r.lbox, r.lobj, r.lcls, r.total};
  double lerr = 0;
  for (int k = 0; k < 4; ++k) {
    const double e = ref.data<float>()[k];
    EXPECT_NEAR(got[k], e, std::max(1e-6, 1e-4 * std::fabs(e))) << "item " << k;
    if (e != 0) lerr = std::max(lerr, rel_err(got[k], e));
  }
  EXPECT_NEAR(r.loss, v["backward_loss"].as<double>(), 1e-4 * std::fabs(v["backward_loss"].as<double>()));
  EXPECT_EQ(r.grads.size(), c.raw.size());
  double gmax = 0, dmax = 0, dn2 = 0, rn2 = 0;
  for (size_t i = 0; i < c.raw.size(); ++i) {
    Tensor gref = Tensor::zeros(c.raw[i].sizes());
    const int64_t no = c.raw[i].size(4);
    const std::string full = d + "/" + vn + "_grad" + std::to_string(i) + ".npy";
    if (std::filesystem::exists(full)) gref = io::read_npy(full);
    float* p = gref.data<float>();
    if (!std::filesystem::exists(full)) {
      Tensor go = io::read_npy(d + "/" + vn + "_grad_obj" + std::to_string(i) + ".npy");
      Tensor gr = io::read_npy(d + "/" + vn + "_grad_rows" + std::to_string(i) + ".npy");
      for (int64_t k = 0; k < go.numel(); ++k) p[k * no + 4] = go.data<float>()[k];
      Tensor gc = io::read_npy(d + "/" + vn + "_grad_cells" + std::to_string(i) + ".npy");
      const int64_t* ci = gc.data<int64_t>();
      for (int64_t k = 0; k < gc.numel(); ++k)
        for (int64_t j = 0; j < no; ++j) p[ci[k] * no + j] = gr.data<float>()[k * no + j];
    }
    const float* q = r.grads[i].data<float>();
    for (int64_t k = 0; k < gref.numel(); ++k) {
      const double df = double(q[k]) - double(p[k]);
      dmax = std::max(dmax, std::fabs(df));
      gmax = std::max(gmax, std::fabs(double(p[k])));
      dn2 += df * df;
      rn2 += double(p[k]) * p[k];
    }
  }
  const double gerr = dmax / std::max(gmax, 1e-30);
  EXPECT_LT(gerr, 1e-4) << "max |grad diff| " << dmax << " vs max |grad| " << gmax;
  EXPECT_LT(std::sqrt(dn2 / std::max(rn2, 1e-60)), 1e-4);
  std::printf("[loss] %-11s %-9s loss max rel err %.2e, grad max err/max %.2e, L2 rel %.2e\n", name.c_str(),
              vn.c_str(), lerr, gerr, std::sqrt(dn2 / std::max(rn2, 1e-60)));
  return {lerr, gerr};
}

void check_model(const std::string& name) {
  const Case c = load_case(name);
  for (const auto& v : c.meta["variants"]) check_variant(name, c, v);
#ifdef Y7_SHARED_FIXTURES
  // The same raw maps reproduce the shared fixture (made on the full maps by the shared generator).
  const std::string sd = std::string(Y7_SHARED_FIXTURES) + "/" + name;
  for (const auto& v : c.meta["variants"]) {
    const std::string vn = v["name"].as<std::string>();
    if (vn != "ota" && vn != "plain" && vn != "aux") continue;
    const std::string f = sd + (vn == "plain" ? "/loss_plain.npy" : "/loss.npy");
    if (!std::filesystem::exists(f)) continue;
    const LossResult r = compute_loss(c.raw, c.targets, c.img_h, config_for(c, v), false);
    Tensor ref = io::read_npy(f);
    const double got[4] = {r.lbox, r.lobj, r.lcls, r.total};
    double worst = 0;
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(got[k], ref.data<float>()[k], std::max(1e-6, 1e-4 * std::fabs(ref.data<float>()[k])))
          << name << " shared " << vn << " item " << k;
      worst = std::max(worst, rel_err(got[k], ref.data<float>()[k]));
    }
    std::printf("[loss] %-11s %-9s vs shared %s: max rel err %.2e\n", name.c_str(), vn.c_str(),
                vn == "plain" ? "loss_plain.npy" : "loss.npy", worst);
  }
#endif
}

}  // namespace

TEST(Loss, TinyOtaPlainVariants) { check_model("yolov7-tiny"); }
TEST(Loss, Yolov7OtaPlain) { check_model("yolov7"); }
TEST(Loss, W6AuxOta) { check_model("yolov7-w6"); }
TEST(Loss, E6eAuxOta) { check_model("yolov7-e6e"); }
// Random maps: nc=1 (no class loss), nc=3 with focal/smoothing/pos_weight/gr, a 4-level AuxOTA.
TEST(Loss, SyntheticNc1) { check_model("synthetic/nc1"); }
TEST(Loss, SyntheticNc3) { check_model("synthetic/nc3"); }
TEST(Loss, SyntheticNc3Aux) { check_model("synthetic/nc3_aux"); }

// ---- finite differences of the analytic gradient on small random cases

namespace {

struct Rand {
  std::mt19937_64 g;
  explicit Rand(uint64_t s) : g(s) {}
  double u(double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
};

void fd_check(LossKind kind, const Hyp& hyp, double gr, uint64_t seed) {
  Rand rnd(seed);
  const int64_t B = 2, na = 3, nc = 4, no = nc + 5, img = 64;
  const std::vector<float> stride = {8, 16, 32};
  std::vector<float> an = {1.25f, 1.625f, 2.0f, 3.75f, 4.125f, 2.875f,   // grid units
                           1.875f, 3.8125f, 3.875f, 2.8125f, 3.6875f, 7.4375f,
                           3.625f, 2.8125f, 4.875f, 6.1875f, 11.65625f, 10.1875f};
  LossConfig cfg;
  cfg.kind = kind;
  cfg.nc = int(nc);
  cfg.anchors = Tensor::from_vector(an, {3, na, 2});
  cfg.stride = stride;
  cfg.hyp = hyp;
  cfg.gr = gr;
  const int64_t nmaps = kind == LossKind::AuxOTA ? 6 : 3;
  std::vector<Tensor> raw;
  for (int64_t i = 0; i < nmaps; ++i) {
    const int64_t s = img / int64_t(stride[i % 3]);
    Tensor t = Tensor::empty({B, na, s, s, no});
    for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = float(rnd.u(-2.5, 1.5));
    raw.push_back(t);
  }
  std::vector<float> tg;
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < 3; ++k) {
      const double w = rnd.u(0.1, 0.5), h = rnd.u(0.1, 0.5);
      tg.insert(tg.end(), {float(b), float(int(rnd.u(0, nc))), float(rnd.u(w / 2, 1 - w / 2)),
                           float(rnd.u(h / 2, 1 - h / 2)), float(w), float(h)});
    }
  const Tensor targets = Tensor::from_vector(tg, {int64_t(tg.size() / 6), 6});
  train::detail::Frozen fz;
  const LossResult r0 = compute_loss(raw, targets, img, cfg, true, &fz);
  fz.replay = true;
  ASSERT_GT(r0.num_positives[0] + r0.num_positives[1] + r0.num_positives[2], 0);
  // Entries: every channel of the positive cells (where the gradient is non-zero on a box/class
  // channel) plus a sample of objectness entries.
  double worst = 0, gscale = 0;
  int checked = 0;
  for (int64_t i = 0; i < nmaps; ++i) {
    const float* g = r0.grads[i].data<float>();
    for (int64_t k = 0; k < raw[i].numel(); ++k) gscale = std::max(gscale, std::fabs(double(g[k])));
  }
  for (int64_t i = 0; i < nmaps; ++i) {
    const int64_t cells = raw[i].numel() / no;
    const float* g = r0.grads[i].data<float>();
    for (int64_t cidx = 0; cidx < cells; ++cidx) {
      const bool pos = g[cidx * no + 0] != 0 || g[cidx * no + 5] != 0;
      if (!pos && cidx % 7 != 0) continue;
      for (int64_t j = 0; j < no; ++j) {
        if (!pos && j != 4) continue;
        const int64_t k = cidx * no + j;
        float* x = raw[i].data<float>() + k;
        const float x0 = *x;
        const float xp = x0 + 2e-4f, xm = x0 - 2e-4f;
        *x = xp;
        const double lp = compute_loss(raw, targets, img, cfg, false, &fz).loss;
        *x = xm;
        const double lm = compute_loss(raw, targets, img, cfg, false, &fz).loss;
        *x = x0;
        const double fd = (lp - lm) / (double(xp) - double(xm));
        if (std::fabs(fd - double(g[k])) > 1e-3 * gscale)
          std::printf("  map %d cell %d ch %d: fd %.6g grad %.6g lp %.9g lm %.9g\n", int(i), int(cidx), int(j), fd, double(g[k]), lp, lm);
        worst = std::max(worst, std::fabs(fd - double(g[k])));
        ++checked;
      }
    }
  }
  std::printf("[loss] finite differences (kind %d, fl_gamma %.2g, ls %.2g): %d entries, max |fd - grad| / max|grad| %.2e\n",
              int(kind), hyp.fl_gamma, hyp.label_smoothing, checked, worst / gscale);
  EXPECT_GT(checked, 50);
  EXPECT_LT(worst / gscale, 1e-5);
}

Hyp base_hyp() {
  Hyp h = parse_hyp(kP6Hyp);
  scale_hyp(h, 3, 4, 64);
  return h;
}

}  // namespace

TEST(Loss, FiniteDifferencesOta) { fd_check(LossKind::OTA, base_hyp(), 1.0, 1); }
TEST(Loss, FiniteDifferencesPlain) { fd_check(LossKind::Plain, base_hyp(), 1.0, 2); }
TEST(Loss, FiniteDifferencesAuxOta) { fd_check(LossKind::AuxOTA, base_hyp(), 1.0, 3); }
TEST(Loss, FiniteDifferencesFocalSmoothing) {
  Hyp h = base_hyp();
  h.set("fl_gamma", 1.5);
  h.set("label_smoothing", 0.1);
  h.set("cls_pw", 1.4);
  h.set("obj_pw", 0.7);
  fd_check(LossKind::OTA, h, 0.6, 4);
}

// ---- bad input

TEST(Loss, BadInput) {
  const Case c = load_case("yolov7-tiny");
  YAML::Node v = c.meta["variants"][0];
  const LossConfig cfg = config_for(c, v);
  auto expect_err = [&](auto fn, const char* what) {
    try {
      fn();
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  };
  expect_err([&] { compute_loss({c.raw[0], c.raw[1]}, c.targets, c.img_h, cfg, false); }, "2 maps");
  expect_err([&] { compute_loss(c.raw, Tensor::zeros({3, 5}), c.img_h, cfg, false); }, "targets shape");
  expect_err([&] {
    Tensor t = c.targets.clone();
    t.data<float>()[1] = 80;
    compute_loss(c.raw, t, c.img_h, cfg, false);
  }, "class");
  expect_err([&] {
    Tensor t = c.targets.clone();
    t.data<float>()[0] = 2;
    compute_loss(c.raw, t, c.img_h, cfg, false);
  }, "image");
  expect_err([&] {
    Tensor t = c.targets.clone();
    t.data<float>()[4] = std::nanf("");
    compute_loss(c.raw, t, c.img_h, cfg, false);
  }, "nan box");
  expect_err([&] { compute_loss(c.raw, c.targets, 0, cfg, false); }, "img_h");
  expect_err([&] {
    LossConfig b = cfg;
    b.stride = {8, 16};
    compute_loss(c.raw, c.targets, c.img_h, b, false);
  }, "strides");
  expect_err([&] {
    LossConfig b = cfg;
    b.kind = LossKind::AuxOTA;
    compute_loss(c.raw, c.targets, c.img_h, b, false);
  }, "aux maps");
  // NaN in the maps: no crash (the loss is NaN, as upstream's would be).
  std::vector<Tensor> raw = {c.raw[0].clone(), c.raw[1], c.raw[2]};
  for (int64_t k = 0; k < raw[0].numel(); k += 3) raw[0].data<float>()[k] = std::nanf("");
  const LossResult r = compute_loss(raw, c.targets, c.img_h, cfg, true);
  EXPECT_TRUE(std::isnan(r.total));
}

// ---- hyperparameters

TEST(Hyp, ParseAndScaleLikeTrainPy) {
  // train.py's scaling reproduces the hyp the shared fixtures used (exactly, as doubles).
  Hyp tiny = parse_hyp(kTinyHyp, "tiny");
  EXPECT_EQ(tiny.lrf, 0.01);
  EXPECT_EQ(tiny.loss_ota, 1.0);
  EXPECT_EQ(tiny.label_smoothing, 0.0);
  EXPECT_FALSE(tiny.has("label_smoothing"));
  scale_hyp(tiny, 3, 80, 128);
  Hyp p6 = parse_hyp(kP6Hyp, "p6");
  scale_hyp(p6, 4, 80, 128);
  const std::pair<Hyp*, const char*> cases[] = {{&tiny, "yolov7-tiny"}, {&p6, "yolov7-w6"}};
  for (const auto& [h, name] : cases) {
    const YAML::Node meta = YAML::LoadFile(loss_dir(name) + "/meta.json")["hyp"];
    for (const char* k : {"box", "cls", "obj", "cls_pw", "obj_pw", "anchor_t", "fl_gamma", "lr0", "mosaic"})
      EXPECT_EQ(h->get(k), meta[k].as<double>()) << name << " " << k;
    EXPECT_EQ(h->box, meta["box"].as<double>());
    EXPECT_EQ(h->obj, meta["obj"].as<double>());
  }
  Hyp h = parse_hyp(std::string(kTinyHyp) + "label_smoothing: 0.1\nextra_key: 3\n");
  EXPECT_EQ(h.label_smoothing, 0.1);
  EXPECT_EQ(h.get("extra_key"), 3.0);
#ifdef Y7_SHARED_FIXTURES
  const std::string run = std::string(Y7_SHARED_FIXTURES) + "/train-run/hyp.yaml";
  if (std::filesystem::exists(run)) EXPECT_EQ(load_hyp(run).lr0, 0.01);
#endif
}

TEST(Hyp, BadInput) {
  auto expect_err = [](const std::string& text) {
    try {
      parse_hyp(text, "h.yaml");
      ADD_FAILURE() << "no error for: " << text;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos);
      EXPECT_EQ(m.rfind("h.yaml", 0), 0u) << m;
    }
  };
  expect_err("- 1\n- 2\n");
  expect_err("box: [1\n");
  expect_err(std::string(kTinyHyp) + "extra: abc\n");
  expect_err(std::string(kTinyHyp) + "box: 0.1\n");  // duplicate
  std::string missing = kTinyHyp;
  missing.erase(missing.find("box: 0.05\n"), 10);
  expect_err(missing);
  expect_err(std::string(kTinyHyp) + "nested: {a: 1}\n");
  expect_err(std::string(kTinyHyp) + "label_smoothing: 2\n");
  EXPECT_THROW(load_hyp("/nonexistent/hyp.yaml"), Error);
}

// ---- configuration from a Detect layer

TEST(Loss, ConfigFromDetectLayer) {
  const Case c = load_case("yolov7-w6");
  // yolov7-w6's cfg anchors (pixels); the layer divides them by the strides.
  const std::vector<std::vector<float>> anchors = {{19, 27, 44, 40, 38, 94},
                                                   {96, 68, 86, 152, 180, 137},
                                                   {140, 301, 303, 264, 238, 542},
                                                   {436, 615, 739, 380, 925, 792}};
  graph::DetectLayer det(graph::DetectLayer::Aux, 80, anchors, {8, 8, 8, 8, 8, 8, 8, 8});
  det.set_stride({8, 16, 32, 64});
  const YAML::Node v = c.meta["variants"][0];
  const LossConfig ref = config_for(c, v);
  const LossConfig cfg = loss_config_for(det, hyp_from(v["hyp"]));
  EXPECT_EQ(cfg.kind, LossKind::AuxOTA);
  EXPECT_EQ(cfg.nc, 80);
  EXPECT_EQ(cfg.stride, ref.stride);
  EXPECT_EQ(max_abs_diff(cfg.anchors, ref.anchors), 0.0);
  const LossResult a = compute_loss(c.raw, c.targets, c.img_h, cfg, false);
  const LossResult b = compute_loss(c.raw, c.targets, c.img_h, ref, false);
  EXPECT_EQ(a.total, b.total);
  Hyp plain = cfg.hyp;
  plain.set("loss_ota", 0);
  graph::DetectLayer idet(graph::DetectLayer::Implicit, 80, anchors, {8, 8, 8, 8});
  idet.set_stride({8, 16, 32, 64});
  EXPECT_EQ(loss_config_for(idet, plain).kind, LossKind::Plain);
  EXPECT_EQ(loss_config_for(idet, cfg.hyp).kind, LossKind::OTA);
}
