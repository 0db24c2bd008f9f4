// NMS against upstream non_max_suppression (real torchvision.ops.nms) outputs:
//  - every shared fixture folder's nms.npy (conf .25, iou .45 on eval_pred.npy),
//  - option variants made by tools/dev/make_resize_fixture.py into tests/data/nms/,
//  plus hand-made unit cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "io/npy.h"
#include "kernels/nms.h"

using namespace y7;
namespace fs = std::filesystem;

namespace {

const std::string kFix = Y7_SHARED_FIXTURES;
const std::string kData = std::string(Y7_TEST_DATA) + "/nms";

struct Agreement {
  double coord = 0, conf = 0;
};

// ref: rows (img, x1, y1, x2, y2, conf, cls). Same boxes in the same order per image.
Agreement compare(const std::vector<Tensor>& got, const Tensor& ref_in, const std::string& what) {
  Tensor ref = ref_in.to(DType::F32).contiguous();
  Agreement a;
  const float* r = ref.data<float>();
  int64_t nr = ref.numel() ? ref.size(0) : 0;
  int64_t row = 0;
  for (size_t b = 0; b < got.size(); ++b) {
    const Tensor& g = got[b];
    EXPECT_EQ(g.dim(), 2) << what;
    EXPECT_EQ(g.size(1), 6) << what;
    int64_t n_ref = 0;
    for (int64_t k = 0; k < nr; ++k) n_ref += int64_t(r[k * 7]) == int64_t(b);
    EXPECT_EQ(g.size(0), n_ref) << what << " image " << b;
    const float* gp = g.data<float>();
    for (int64_t i = 0; i < std::min(g.size(0), n_ref); ++i, ++row) {
      const float* rr = r + row * 7;
      EXPECT_EQ(int64_t(rr[0]), int64_t(b)) << what;
      for (int k = 0; k < 4; ++k) a.coord = std::max(a.coord, double(std::fabs(gp[i * 6 + k] - rr[1 + k])));
      a.conf = std::max(a.conf, double(std::fabs(gp[i * 6 + 4] - rr[5])));
      EXPECT_EQ(gp[i * 6 + 5], rr[6]) << what << " image " << b << " row " << i;
    }
    row += std::max<int64_t>(0, n_ref - g.size(0));
  }
  EXPECT_EQ(row, nr) << what;
  EXPECT_LE(a.coord, 1e-3) << what;
  EXPECT_LE(a.conf, 1e-4) << what;
  return a;
}

Tensor make_pred(const std::vector<std::vector<float>>& rows) {
  int64_t no = int64_t(rows.at(0).size());
  std::vector<float> v;
  for (auto& r : rows) v.insert(v.end(), r.begin(), r.end());
  return Tensor::from_vector(v, {1, int64_t(rows.size()), no});
}

}  // namespace

TEST(Nms, AllUpstreamFixtures) {
  int folders = 0;
  Agreement worst;
  int64_t boxes = 0;
  for (const auto& e : fs::directory_iterator(kFix)) {
    if (!e.is_directory() || !fs::exists(e.path() / "nms.npy")) continue;
    ++folders;
    Tensor pred = io::read_npy((e.path() / "eval_pred.npy").string());
    Tensor ref = io::read_npy((e.path() / "nms.npy").string());
    auto got = ops::non_max_suppression(pred, {});
    ASSERT_EQ(int64_t(got.size()), pred.size(0));
    Agreement a = compare(got, ref, e.path().filename().string());
    worst.coord = std::max(worst.coord, a.coord);
    worst.conf = std::max(worst.conf, a.conf);
    boxes += ref.numel() ? ref.size(0) : 0;
  }
  EXPECT_GE(folders, 10);
  std::printf("[nms] %d fixture folders, %lld boxes: max |coord| diff %.3g px, max |conf| diff %.3g\n", folders,
              (long long)boxes, worst.coord, worst.conf);
}

TEST(Nms, UpstreamOptionVariants) {
  Tensor pred = io::read_npy(kFix + "/yolov7-tiny/eval_pred.npy");
  struct Case {
    const char* file;
    ops::NmsParams p;
  };
  ops::NmsParams classes, agn, ml, c10, combo;
  classes.classes = {33, 5, 70};
  agn.agnostic = true;
  ml.multi_label = true;
  c10.conf_thres = 0.10;
  c10.iou_thres = 0.60;
  combo.conf_thres = 0.40;
  combo.iou_thres = 0.30;
  combo.agnostic = combo.multi_label = true;
  for (const Case& c : {Case{"tiny_classes", classes}, Case{"tiny_agnostic", agn}, Case{"tiny_multilabel", ml},
                        Case{"tiny_c10_i60", c10}, Case{"tiny_c40_i30_agn_ml", combo}}) {
    Tensor ref = io::read_npy(kData + "/" + c.file + ".npy");
    Agreement a = compare(ops::non_max_suppression(pred, c.p), ref, c.file);
    std::printf("[nms] %-22s %4lld boxes: max |coord| %.3g, |conf| %.3g\n", c.file,
                (long long)(ref.numel() ? ref.size(0) : 0), a.coord, a.conf);
  }
}

// Many equal scores and coincident boxes: the order and the survivors depend on torch's
// (unstable) sort, which we reproduce.
TEST(Nms, TiesMatchTorchOrder) {
  Tensor pred = io::read_npy(kData + "/ties_pred.npy");
  ops::NmsParams base, agn, ml;
  base.conf_thres = 0.2;
  agn.conf_thres = 0.2;
  agn.iou_thres = 0.3;
  agn.agnostic = true;
  ml.conf_thres = 0.2;
  ml.multi_label = true;
  compare(ops::non_max_suppression(pred, base), io::read_npy(kData + "/ties.npy"), "ties");
  compare(ops::non_max_suppression(pred, agn), io::read_npy(kData + "/ties_agnostic.npy"), "ties_agnostic");
  compare(ops::non_max_suppression(pred, ml), io::read_npy(kData + "/ties_multilabel.npy"), "ties_multilabel");
}

// More than max_nms (30000) candidates: same closed-form input as the generator's synth_maxnms().
TEST(Nms, MaxNmsCap) {
  const int64_t n = 31000, nc = 3, no = 5 + nc;
  Tensor p = Tensor::zeros({1, n, no});
  float* d = p.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    float* r = d + i * no;
    r[0] = float((i * 37) % 600) + 0.5f;
    r[1] = float((i * 53) % 400) + 0.25f;
    r[2] = float((i % 7) * 6 + 10);
    r[3] = float((i % 5) * 8 + 12);
    r[4] = 1.0f;
    for (int64_t c = 0; c < nc; ++c) r[5 + c] = float(((i * (7919 + 104 * c)) % 61) + 20) / 80.0f;
  }
  ops::NmsParams prm;
  prm.iou_thres = 0.5;
  compare(ops::non_max_suppression(p, prm), io::read_npy(kData + "/maxnms.npy"), "maxnms");
}

TEST(Nms, MaxDetIsPrefix) {
  Tensor pred = io::read_npy(kFix + "/yolov7/eval_pred.npy");
  auto full = ops::non_max_suppression(pred, {});
  ops::NmsParams p;
  p.max_det = 17;
  auto cut = ops::non_max_suppression(pred, p);
  ASSERT_EQ(cut.size(), full.size());
  for (size_t b = 0; b < full.size(); ++b) {
    ASSERT_EQ(cut[b].size(0), std::min<int64_t>(17, full[b].size(0)));
    EXPECT_EQ(max_abs_diff(cut[b], full[b].slice(0, 0, cut[b].size(0))), 0.0);
  }
  p.max_det = 0;
  for (auto& t : ops::non_max_suppression(pred, p)) EXPECT_EQ(t.size(0), 0);
}

TEST(Nms, HandMadeCases) {
  // nc = 2. Box A (cls 0, conf .9*.8=.72), B overlaps A heavily (cls 0, conf .6), C same place as A
  // but class 1, D far away with low obj (dropped by obj <= conf_thres).
  Tensor pred = make_pred({
      {50, 50, 20, 20, 0.9f, 0.8f, 0.1f},   // A: xyxy 40,40,60,60
      {52, 50, 20, 20, 0.8f, 0.75f, 0.2f},  // B: IoU with A = 18*20/(800-360) = 0.818
      {50, 50, 20, 20, 0.7f, 0.1f, 0.9f},   // C: class 1
      {200, 200, 10, 10, 0.2f, 1.0f, 0.0f}, // D: obj .2 <= .25
  });
  auto r = ops::non_max_suppression(pred, {});
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].size(0), 2);
  EXPECT_FLOAT_EQ(r[0].item({0, 0}), 40.f);
  EXPECT_FLOAT_EQ(r[0].item({0, 2}), 60.f);
  EXPECT_FLOAT_EQ(r[0].item({0, 4}), 0.72f);
  EXPECT_EQ(r[0].item({0, 5}), 0.0);
  EXPECT_FLOAT_EQ(r[0].item({1, 4}), 0.63f);
  EXPECT_EQ(r[0].item({1, 5}), 1.0);

  ops::NmsParams agn;
  agn.agnostic = true;  // C is now suppressed by A
  r = ops::non_max_suppression(pred, agn);
  ASSERT_EQ(r[0].size(0), 1);

  ops::NmsParams cls;
  cls.classes = {1};
  r = ops::non_max_suppression(pred, cls);
  ASSERT_EQ(r[0].size(0), 1);
  EXPECT_EQ(r[0].item({0, 5}), 1.0);

  ops::NmsParams ml;
  ml.multi_label = true;
  ml.iou_thres = 0.9;  // B survives now (IoU .818)
  r = ops::non_max_suppression(pred, ml);
  // A cls0 .72, B cls0 .6, C cls1 .63 -> sorted .72, .63, .6
  ASSERT_EQ(r[0].size(0), 3);
  EXPECT_FLOAT_EQ(r[0].item({0, 4}), 0.72f);
  EXPECT_FLOAT_EQ(r[0].item({1, 4}), 0.63f);
  EXPECT_FLOAT_EQ(r[0].item({2, 4}), 0.6f);

  // IoU exactly at the threshold does not suppress (strict >): A vs a box of IoU 0.5.
  Tensor half = make_pred({{50, 50, 20, 20, 0.9f, 1.0f}, {50, 55, 20, 10, 0.8f, 1.0f}});
  ops::NmsParams h;
  h.iou_thres = 0.5;
  EXPECT_EQ(ops::non_max_suppression(half, h)[0].size(0), 2);
  h.iou_thres = 0.49;
  EXPECT_EQ(ops::non_max_suppression(half, h)[0].size(0), 1);

  // nc == 1: conf is obj itself (upstream skips the obj * cls product), multi_label is ignored
  Tensor one = make_pred({{50, 50, 20, 20, 0.6f, 0.1f}, {150, 50, 20, 20, 0.3f, 0.9f}});
  ops::NmsParams one_ml;
  one_ml.multi_label = true;
  for (const auto& prm : {ops::NmsParams{}, one_ml}) {
    r = ops::non_max_suppression(one, prm);
    ASSERT_EQ(r[0].size(0), 2);
    EXPECT_EQ(r[0].item({0, 4}), double(0.6f));
    EXPECT_EQ(r[0].item({1, 4}), double(0.3f));
    EXPECT_EQ(r[0].item({1, 5}), 0.0);
  }

  // a-priori labels (autolabelling): one label box appended with conf 1.
  ops::NmsParams lab;
  lab.labels = {Tensor::from_vector<float>({1, 300, 300, 10, 10}, {1, 5})};
  r = ops::non_max_suppression(pred, lab);
  ASSERT_EQ(r[0].size(0), 3);
  EXPECT_EQ(r[0].item({0, 4}), 1.0);
  EXPECT_EQ(r[0].item({0, 5}), 1.0);
  EXPECT_EQ(r[0].item({0, 0}), 295.0);
}

TEST(Nms, EmptyAndBadInput) {
  // nothing above threshold, zero boxes, zero images
  Tensor low = Tensor::full({2, 5, 10}, 0.1);
  auto r = ops::non_max_suppression(low, {});
  ASSERT_EQ(r.size(), 2u);
  for (auto& t : r) EXPECT_EQ(t.sizes(), (Shape{0, 6}));
  EXPECT_EQ(ops::non_max_suppression(Tensor::zeros({1, 0, 85}), {})[0].size(0), 0);
  EXPECT_EQ(ops::non_max_suppression(Tensor::zeros({0, 10, 85}), {}).size(), 0u);
  // NaN rows are dropped, not kept
  Tensor nan = make_pred({{10, 10, 5, 5, NAN, 1, 1}, {10, 10, 5, 5, 0.9f, NAN, 0.9f}, {10, 10, 5, 5, 0.9f, 0.9f, 0.1f}});
  r = ops::non_max_suppression(nan, {});
  ASSERT_EQ(r[0].size(0), 1);
  EXPECT_FLOAT_EQ(r[0].item({0, 4}), 0.81f);

  EXPECT_THROW(ops::non_max_suppression(Tensor::zeros({4, 85}), {}), Error);
  EXPECT_THROW(ops::non_max_suppression(Tensor::zeros({1, 4, 5}), {}), Error);
  EXPECT_THROW(ops::non_max_suppression(Tensor(), {}), Error);
  ops::NmsParams bad;
  bad.max_det = -1;
  EXPECT_THROW(ops::non_max_suppression(low, bad), Error);
}

TEST(Nms, BoxHelpers) {
  Tensor xywh = Tensor::from_vector<float>({10, 20, 4, 6, 0, 0, 2, 2}, {2, 4});
  Tensor xyxy = ops::xywh2xyxy(xywh);
  EXPECT_EQ(max_abs_diff(xyxy, Tensor::from_vector<float>({8, 17, 12, 23, -1, -1, 1, 1}, {2, 4})), 0.0);
  EXPECT_EQ(max_abs_diff(ops::xyxy2xywh(xyxy), xywh), 0.0);
  Tensor iou = ops::box_iou(Tensor::from_vector<float>({0, 0, 10, 10}, {1, 4}),
                            Tensor::from_vector<float>({0, 0, 10, 10, 5, 0, 15, 10, 20, 20, 30, 30}, {3, 4}));
  EXPECT_FLOAT_EQ(iou.item({0, 0}), 1.f);
  EXPECT_FLOAT_EQ(iou.item({0, 1}), 50.f / 150.f);
  EXPECT_FLOAT_EQ(iou.item({0, 2}), 0.f);
  Tensor keep = ops::nms_indices(Tensor::from_vector<float>({0, 0, 10, 10, 1, 0, 11, 10, 20, 20, 30, 30}, {3, 4}),
                                 Tensor::from_vector<float>({0.5f, 0.9f, 0.1f}, {3}), 0.5);
  ASSERT_EQ(keep.size(0), 2);
  EXPECT_EQ(keep.item({0}), 1.0);
  EXPECT_EQ(keep.item({1}), 2.0);
}
