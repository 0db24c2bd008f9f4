// Metrics vs upstream: test.py's matching + utils/metrics.py ap_per_class on the shared metrics
// fixture (random detections/labels scored by upstream code), both interpolations, overall and per
// class; numpy-primitive checks against values computed by numpy/torch by hand.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_util.h"
#include "io/npy.h"
#include "core/tensor.h"
#include "train/metrics.h"

using namespace y7;
using namespace y7::train;

namespace {

std::string metrics_dir() { return std::string(Y7_SHARED_FIXTURES) + "/metrics"; }

// Groups the fixture rows into per-image detections/labels (detections are stored per image in
// descending confidence, as upstream NMS returns them).
MetricStats fixture_stats() {
  Tensor D = io::read_npy(metrics_dir() + "/detections.npy").to(DType::F32).contiguous();
  Tensor L = io::read_npy(metrics_dir() + "/labels.npy").to(DType::F32).contiguous();
  std::map<int, std::vector<Detection>> preds;
  std::map<int, std::vector<Label>> labels;
  int n = 0;
  for (int64_t i = 0; i < D.size(0); ++i) {
    const float* r = D.data<float>() + i * 7;
    preds[int(r[0])].push_back({r[1], r[2], r[3], r[4], r[5], r[6]});
    n = std::max(n, int(r[0]) + 1);
  }
  for (int64_t i = 0; i < L.size(0); ++i) {
    const float* r = L.data<float>() + i * 6;
    labels[int(r[0])].push_back({r[1], r[2], r[3], r[4], r[5]});
    n = std::max(n, int(r[0]) + 1);
  }
  MetricStats s;
  for (int i = 0; i < n; ++i) s.add_image(preds[i], labels[i]);
  return s;
}

}  // namespace

TEST(Metrics, IouVectorIsTorchLinspace) {
  // torch.linspace(0.5, 0.95, 10) (float32), printed by torch 1.13 as float.hex()
  const double ref[10] = {0x1.0000000000000p-1, 0x1.19999a0000000p-1, 0x1.3333340000000p-1, 0x1.4ccccc0000000p-1,
                          0x1.6666660000000p-1, 0x1.8000000000000p-1, 0x1.99999a0000000p-1, 0x1.b333340000000p-1,
                          0x1.cccccc0000000p-1, 0x1.e666660000000p-1};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(double(iou_vector()[i]), ref[i]) << i;
}

TEST(Metrics, NumpyPrimitives) {
  // np.interp(x, [0, 1, 1, 2], [0, 10, 20, 30]) at -1, 0.5, 1, 1.5, 3 with left=-5, right=99
  std::vector<double> xp = {0, 1, 1, 2}, fp = {0, 10, 20, 30};
  EXPECT_EQ(np_interp(-1, xp, fp, -5, 99), -5);
  EXPECT_EQ(np_interp(0.5, xp, fp, -5, 99), 5);
  EXPECT_EQ(np_interp(1, xp, fp, -5, 99), 20);
  EXPECT_EQ(np_interp(1.5, xp, fp, -5, 99), 25);
  EXPECT_EQ(np_interp(2, xp, fp, -5, 99), 30);
  EXPECT_EQ(np_interp(3, xp, fp, -5, 99), 99);
  // numpy pairwise sum of 0.1 * i, i < 300 (np.sum(np.arange(300) * 0.1).hex() = 0x1.1850000000000p+12)
  std::vector<double> v(300);
  for (int i = 0; i < 300; ++i) v[size_t(i)] = 0.1 * i;
  EXPECT_EQ(np_sum(v.data(), v.size()), 0x1.1850000000000p+12);
}

TEST(Metrics, ComputeApHandValues) {
  // recall [0.5, 1.0], precision [1.0, 0.5]: envelope (1, 1, 0.5, 0)
  // continuous, v5: 0.5*1 + 0.5*0.5 = 0.75; continuous default: + 0.01*0 = 0.75
  EXPECT_NEAR(compute_ap({0.5, 1.0}, {1.0, 0.5}, true, ApMethod::Continuous).ap, 0.75, 1e-15);
  EXPECT_NEAR(compute_ap({0.5, 1.0}, {1.0, 0.5}, false, ApMethod::Continuous).ap, 0.75, 1e-15);
  // recall [0.5], precision [1]: continuous v5 = 0.5*1 + 0.5*0 = 0.5
  EXPECT_NEAR(compute_ap({0.5}, {1.0}, true, ApMethod::Continuous).ap, 0.5, 1e-15);
  // interp (101 points, trapezoid), recall [0.5], precision [1], default sentinels (0, .5, .51):
  // upstream compute_ap gives 0.5049999999999999 (numpy), v5 sentinels (0, .5, 1): 0.75
  EXPECT_NEAR(compute_ap({0.5}, {1.0}, false).ap, 0.505, 1e-12);
  EXPECT_NEAR(compute_ap({0.5}, {1.0}, true).ap, 0.75, 1e-12);
}

TEST(Metrics, MatchingQuirkFirstComeBestTarget) {
  // Two detections whose best target is the same: the second is not re-matched to the other target.
  std::vector<Label> labels = {{0, 0, 0, 10, 10}, {0, 1, 0, 11, 10}};
  std::vector<Detection> pred = {{0, 0, 10, 10, 0.9f, 0}, {0, 0, 10, 10, 0.8f, 0}, {50, 50, 60, 60, 0.7f, 0}};
  auto c = match_image(pred, labels);
  ASSERT_EQ(c.size(), 30u);
  for (int t = 0; t < 10; ++t) EXPECT_EQ(c[size_t(t)], 1) << t;      // IoU 1 with label 0
  for (int t = 0; t < 10; ++t) EXPECT_EQ(c[size_t(10 + t)], 0) << t; // same best target: unmatched
  for (int t = 0; t < 10; ++t) EXPECT_EQ(c[size_t(20 + t)], 0) << t;
  // IoU 0.9/1.0 * ... : a box at IoU 81/100 -> correct at thresholds 0.5..0.8 only
  std::vector<Detection> p2 = {{0, 0, 9, 9, 0.9f, 0}};
  auto c2 = match_image(p2, {{0, 0, 0, 10, 10}});
  for (int t = 0; t < 10; ++t) EXPECT_EQ(c2[size_t(t)], iou_vector()[t] < 0.81f ? 1 : 0) << t;
}

TEST(Metrics, FixtureMatchesUpstream) {
  YAML::Node ref = YAML::LoadFile(metrics_dir() + "/expected.json");
  MetricStats s = fixture_stats();
  double worst = 0;
  for (const char* mode : {"default", "v5_metric"}) {
    const bool v5 = std::string(mode) == "v5_metric";
    auto e = summarize(s, 5, v5);
    ASSERT_TRUE(e.computed);
    const auto& r = ref[mode];
    auto chk = [&](double got, double want, const std::string& what) {
      EXPECT_NEAR(got, want, 1e-6) << mode << " " << what;
      worst = std::max(worst, std::fabs(got - want));
    };
    chk(e.mp, r["mp"].as<double>(), "mp");
    chk(e.mr, r["mr"].as<double>(), "mr");
    chk(e.map50, r["map50"].as<double>(), "map50");
    chk(e.map, r["map"].as<double>(), "map");
    ASSERT_EQ(e.per_class.classes.size(), r["per_class"].size());
    for (size_t i = 0; i < e.per_class.classes.size(); ++i) {
      const auto& pc = r["per_class"][std::to_string(e.per_class.classes[i])];
      ASSERT_TRUE(pc.IsSequence()) << e.per_class.classes[i];
      const std::string c = "class " + std::to_string(e.per_class.classes[i]);
      chk(e.per_class.p[i], pc[0].as<double>(), c + " p");
      chk(e.per_class.r[i], pc[1].as<double>(), c + " r");
      chk(e.per_class.ap50[i], pc[2].as<double>(), c + " ap50");
      chk(e.per_class.ap_mean[i], pc[3].as<double>(), c + " ap");
    }
  }
  std::printf("metrics fixture: max |ours - upstream| = %.3g\n", worst);
  EXPECT_NEAR(fitness(0, 0, 0.5, 0.25), 0.1 * 0.5 + 0.9 * 0.25, 1e-15);
}

TEST(Metrics, CliMatchesUpstream) {
  YAML::Node ref = YAML::LoadFile(metrics_dir() + "/expected.json");
  const std::string dir = y7::test::scratch("metrics_cli");
  for (const char* mode : {"default", "v5_metric"}) {
    const bool v5 = std::string(mode) == "v5_metric";
    const std::string out = dir + "/" + mode + ".json";
    auto res = y7::test::run_cli("metrics --detections " + metrics_dir() + "/detections.npy --labels " +
                                 metrics_dir() + "/labels.npy --nc 5 --verbose --out " + out + (v5 ? " --v5-metric" : ""));
    ASSERT_EQ(res.code, 0) << res.out;
    EXPECT_NE(res.out.find("               Class      Images      Labels           P           R      mAP@.5  mAP@.5:.95"),
              std::string::npos)
        << res.out;
    EXPECT_NE(res.out.find("                 all          40"), std::string::npos) << res.out;
    YAML::Node got = YAML::LoadFile(out);
    const auto& r = ref[mode];
    for (const char* k : {"mp", "mr", "map50", "map"}) EXPECT_NEAR(got[k].as<double>(), r[k].as<double>(), 1e-6) << k;
    for (const auto& kv : r["per_class"]) {
      const auto& g = got["per_class"][kv.first.as<std::string>()];
      ASSERT_TRUE(g.IsMap()) << kv.first.as<std::string>();
      EXPECT_NEAR(g["p"].as<double>(), kv.second[0].as<double>(), 1e-6);
      EXPECT_NEAR(g["r"].as<double>(), kv.second[1].as<double>(), 1e-6);
      EXPECT_NEAR(g["ap50"].as<double>(), kv.second[2].as<double>(), 1e-6);
      EXPECT_NEAR(g["ap"].as<double>(), kv.second[3].as<double>(), 1e-6);
    }
  }
  auto bad = y7::test::run_cli("metrics --detections " + metrics_dir() + "/labels.npy --labels " + metrics_dir() +
                               "/labels.npy");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("yolo7: error: detections"), std::string::npos) << bad.out;
}

// ---- yolo7 test (upstream test.py) end to end on the train-run fixture (yolov7-tiny at width 0.25
// after 2 epochs: a weak model, so the numbers are tiny but non-zero at 640 px).
//
// References: upstream test.test() on the same dataset and last.pt, torch 1.13 CPU, no trace,
// printed with full precision (dev run, see the report):
//   640 px:            mp 0.00021505376344086021, mr 0.08333333333333333, map50 0.00011333652146190188,
//                      map 1.1333652146190189e-05 (--v5-metric: map50 0.00016602469350491264)
//   128 --save-hybrid: mp 1, mr 1, map50 0.9950745690957774, map 0.9950745690957777
// At 640 every image fills max_det=300 with confidences that all round to 0.0025, so the order of
// the near-tied tail depends on float rounding of the convolutions (ours vs PyTorch): measured here
// mp 0.000214225 (-0.39%), map50 0.000113629 (+0.26%); the hybrid run is exact.
namespace {

std::string train_run() { return std::string(Y7_SHARED_FIXTURES) + "/train-run"; }

YAML::Node run_test_cli(const std::string& name, const std::string& extra, std::string* out = nullptr) {
  const std::string dir = y7::test::scratch("test_cli_" + name);
  auto r = y7::test::run_cli("test --weights " + train_run() + "/last.pt --data " + train_run() +
                             "/dataset/data.yaml --project " + dir + " --name exp " + extra);
  EXPECT_EQ(r.code, 0) << r.out;
  if (out) *out = r.out;
  return YAML::LoadFile(dir + "/exp/results.json");
}

}  // namespace

TEST(MetricsTestCmd, WeakModel640VsUpstream) {
  std::string out;
  YAML::Node j = run_test_cli("640", "--img-size 640 --save-json --save-txt --save-conf --verbose --save-npy", &out);
  EXPECT_NE(out.find("               Class      Images      Labels           P           R      mAP@.5  mAP@.5:.95"),
            std::string::npos) << out;
  EXPECT_NE(out.find("                 all           4          15"), std::string::npos) << out;
  EXPECT_NE(out.find("Speed: "), std::string::npos);
  EXPECT_NE(out.find("ms inference/NMS/total per 640x640 image at batch-size 32"), std::string::npos) << out;
  EXPECT_EQ(j["seen"].as<int>(), 4);
  EXPECT_EQ(j["labels"].as<int>(), 15);
  EXPECT_NEAR(j["mr"].as<double>(), 0.08333333333333333, 1e-12);
  EXPECT_NEAR(j["mp"].as<double>(), 0.00021505376344086021, 0.05 * 0.00021505376344086021);
  EXPECT_NEAR(j["map50"].as<double>(), 0.00011333652146190188, 0.05 * 0.00011333652146190188);
  EXPECT_NEAR(j["map"].as<double>(), 1.1333652146190189e-05, 0.05 * 1.1333652146190189e-05);
  // per-class label counts as upstream prints them (circle..star)
  const int nt[6] = {1, 2, 3, 1, 2, 6};
  for (int c = 0; c < 6; ++c) EXPECT_EQ(j["per_class"][std::to_string(c)]["labels"].as<int>(), nt[c]) << c;
  EXPECT_EQ(j["per_class"]["1"]["name"].as<std::string>(), "square");
  EXPECT_NEAR(j["per_class"]["1"]["r"].as<double>(), 0.5, 1e-12);
  // internal consistency: fitness and means
  EXPECT_NEAR(j["fitness"].as<double>(), 0.1 * j["map50"].as<double>() + 0.9 * j["map"].as<double>(), 1e-15);
  // --save-json: 4 images x max_det 300 detections (upstream writes 1200 too); --save-txt: 4 files
  const std::string dir = std::filesystem::path(testing::TempDir()) / "y7_test_cli_640/exp";
  std::ifstream f(dir + "/last_predictions.json");
  std::stringstream ss;
  ss << f.rdbuf();
  YAML::Node preds = YAML::Load(ss.str());
  ASSERT_TRUE(preds.IsSequence());
  EXPECT_EQ(preds.size(), 1200u);
  EXPECT_EQ(preds[0]["image_id"].as<int>(), 0);
  EXPECT_EQ(preds[0]["bbox"].size(), 4u);
  int txt = 0;
  for (auto& e : std::filesystem::directory_iterator(dir + "/labels")) txt += e.path().extension() == ".txt";
  EXPECT_EQ(txt, 4);

  // --save-npy vs upstream's own per-image data (tests/data/metrics): the native-space label boxes
  // are bit-identical (loader, letterbox, xywhn/xyxy conversions, scale_coords); detections that
  // both keep agree to float noise, but the max_det=300 cut through hundreds of near-tied
  // confidences keeps a partly different tail (measured: 771 of 1200 rows shared).
  const std::string ref = std::string(Y7_TEST_DATA) + "/metrics";
  Tensor ul = io::read_npy(ref + "/weak640_labels.npy"), ol = io::read_npy(dir + "/labels.npy");
  ASSERT_EQ(ul.sizes(), ol.sizes());
  for (int64_t k = 0; k < ul.numel(); ++k) EXPECT_EQ(ul.data<float>()[k], ol.data<float>()[k]) << k;
  Tensor ud = io::read_npy(ref + "/weak640_detections.npy"), od = io::read_npy(dir + "/detections.npy");
  ASSERT_EQ(od.size(0), 1200);
  int shared = 0;
  double max_conf = 0;
  for (int64_t a = 0; a < ud.size(0); ++a) {
    const float* r = ud.data<float>() + a * 7;
    for (int64_t b = 0; b < od.size(0); ++b) {
      const float* q = od.data<float>() + b * 7;
      if (q[0] != r[0] || q[6] != r[6]) continue;
      float d = 0;
      for (int c = 1; c < 5; ++c) d = std::max(d, std::fabs(q[c] - r[c]));
      if (d < 1e-3f) {
        ++shared;
        max_conf = std::max(max_conf, double(std::fabs(q[5] - r[5])));
        break;
      }
    }
  }
  std::printf("yolo7 test vs upstream at 640: %d of 1200 detections shared, max conf diff %.3g\n", shared, max_conf);
  EXPECT_GE(shared, 600);
  EXPECT_LT(max_conf, 1e-6);
}

TEST(MetricsTestCmd, V5MetricVsUpstream) {
  YAML::Node j = run_test_cli("640v5", "--img-size 640 --v5-metric");
  EXPECT_TRUE(j["v5_metric"].as<bool>());
  EXPECT_NEAR(j["map50"].as<double>(), 0.00016602469350491264, 0.05 * 0.00016602469350491264);
}

TEST(MetricsTestCmd, SaveHybridExactVsUpstream) {
  YAML::Node j = run_test_cli("hyb", "--img-size 128 --save-hybrid --save-conf");
  EXPECT_NEAR(j["mp"].as<double>(), 1.0, 1e-12);
  EXPECT_NEAR(j["mr"].as<double>(), 1.0, 1e-12);
  EXPECT_NEAR(j["map50"].as<double>(), 0.9950745690957774, 1e-12);
  EXPECT_NEAR(j["map"].as<double>(), 0.9950745690957777, 1e-12);
  // the labels enter as conf-1 rows: 15 of them across the 4 label files, like upstream
  const std::string dir = std::filesystem::path(testing::TempDir()) / "y7_test_cli_hyb/exp/labels";
  int conf1 = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(e.path());
    std::string line;
    while (std::getline(f, line)) conf1 += line.size() > 2 && line.substr(line.size() - 2) == " 1";
  }
  EXPECT_EQ(conf1, 15);
}

TEST(MetricsTestCmd, Errors) {
  auto r = y7::test::run_cli("test --weights " + train_run() + "/last.pt --data " + train_run() +
                             "/dataset/data.yaml --augment");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error: test: --augment"), std::string::npos) << r.out;
  r = y7::test::run_cli("test --weights " + train_run() + "/last.pt --data /nonexistent/data.yaml");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error:"), std::string::npos) << r.out;
  r = y7::test::run_cli("test --weights " + train_run() + "/last.pt --data " + train_run() +
                        "/dataset/data.yaml --device 0");
  EXPECT_EQ(r.code, 1);
}

TEST(Metrics, NumpyArgsortTieOrder) {
  // np.argsort (numpy 1.24.2) of [(i*7)%5*0.25 for i in range(40)] with v[3] = nan, and of
  // -[0.5]*20 + -[0.25]*13 (float32): the unstable introsort's order on ties
  std::vector<float> v(40);
  for (int i = 0; i < 40; ++i) v[size_t(i)] = float((i * 7) % 5) * 0.25f;
  v[3] = std::nanf("");
  const std::vector<int64_t> ref1 = {0,  20, 15, 10, 5,  30, 25, 35, 33, 8,  23, 13, 38, 18, 28, 26, 21, 1,  6, 11,
                                     31, 16, 36, 34, 29, 19, 14, 9,  4,  24, 39, 22, 27, 17, 12, 32, 7,  2,  37, 3};
  EXPECT_EQ(np_argsort(v), ref1);
  std::vector<float> w;
  for (int i = 0; i < 20; ++i) w.push_back(-0.5f);
  for (int i = 0; i < 13; ++i) w.push_back(-0.25f);
  const std::vector<int64_t> ref2 = {0,  19, 18, 17, 15, 14, 13, 12, 11, 10, 16, 8,  7,  6,  5,  4, 3,
                                     2,  1,  9,  30, 29, 28, 27, 26, 21, 24, 23, 22, 20, 31, 25, 32};
  EXPECT_EQ(np_argsort(w), ref2);
}

TEST(Metrics, TiedConfidencesMatchUpstream) {
  // upstream test.py's own per-image data for a weak model (tests/data/metrics/README.md)
  const std::string dir = std::string(Y7_TEST_DATA) + "/metrics";
  auto res = y7::test::run_cli("metrics --detections " + dir + "/weak640_detections.npy --labels " + dir +
                               "/weak640_labels.npy --nc 6 --out " + y7::test::scratch("metrics_ties") + "/r.json");
  ASSERT_EQ(res.code, 0) << res.out;
  YAML::Node j = YAML::LoadFile(std::filesystem::path(testing::TempDir()) / "y7_metrics_ties/r.json");
  EXPECT_NEAR(j["mp"].as<double>(), 0.00021505376344086021, 1e-15);
  EXPECT_NEAR(j["mr"].as<double>(), 0.08333333333333333, 1e-15);
  EXPECT_NEAR(j["map50"].as<double>(), 0.00011333652146190188, 1e-15);
  EXPECT_NEAR(j["map"].as<double>(), 1.1333652146190189e-05, 1e-16);
  EXPECT_NEAR(j["maps"][1].as<double>(), 6.800191287714114e-05, 1e-16);
}
