// yolo7 metrics: scores saved detections against labels with upstream test.py's matching and
// ap_per_class (train/metrics.h), printing test.py's table and writing the results as JSON.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include <cmath>
#include "io/npy.h"
#include "tools/cli.h"
#include "train/metrics.h"

namespace y7 {
namespace {

Tensor read_rows(const std::string& path, int64_t cols, const char* what) {
  Tensor t = io::read_npy(path);
  if (t.numel() == 0) return Tensor::zeros({0, cols});
  Y7_CHECK(t.dim() == 2 && t.size(1) == cols, what, " ", path, ": expected rows of ", cols, " values, got shape ",
           shape_str(t.sizes()));
  return t.to(DType::F32).contiguous();
}

void check_finite(const float* v, int64_t n, const std::string& path) {
  for (int64_t i = 0; i < n; ++i)
    Y7_CHECK(std::isfinite(v[i]), path, ": non-finite value at element ", i);
}

int64_t image_index(float v, const std::string& path) {
  Y7_CHECK(v >= 0 && v < 2147483648.0f && v == float(int64_t(v)), path, ": image index ", v,
           " is not a non-negative integer below 2^31");
  return int64_t(v);
}

int run_metrics(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"detections", 1}, {"labels", 1}, {"nc", 1}, {"images", 1}, {"v5-metric", 0}, {"out", 1},
                     {"verbose", 0}, {"continuous", 0}});
  Y7_CHECK(a.has("detections") && a.has("labels"),
           "metrics: give --detections D.npy (rows img,x1,y1,x2,y2,conf,cls) and --labels L.npy (rows img,cls,x1,y1,x2,y2)");
  const std::string dpath = a.str("detections"), lpath = a.str("labels");
  Tensor D = read_rows(dpath, 7, "detections"), L = read_rows(lpath, 6, "labels");
  check_finite(D.data<float>(), D.numel(), dpath);
  check_finite(L.data<float>(), L.numel(), lpath);
  const float* d = D.data<float>();
  const float* l = L.data<float>();

  std::map<int64_t, std::vector<train::Detection>> preds;
  std::map<int64_t, std::vector<train::Label>> labels;
  int64_t n_images = 0;
  int max_cls = -1;
  for (int64_t i = 0; i < D.size(0); ++i) {
    const float* r = d + i * 7;
    const int64_t img = image_index(r[0], dpath);
    Y7_CHECK(r[6] >= 0 && r[6] < 1e6f && r[6] == float(int64_t(r[6])), dpath, ": class ", r[6], " is not a non-negative integer");
    preds[img].push_back({r[1], r[2], r[3], r[4], r[5], r[6]});
    n_images = std::max(n_images, img + 1);
    max_cls = std::max(max_cls, int(r[6]));
  }
  for (int64_t i = 0; i < L.size(0); ++i) {
    const float* r = l + i * 6;
    const int64_t img = image_index(r[0], lpath);
    Y7_CHECK(r[1] >= 0 && r[1] < 1e6 && r[1] == float(int64_t(r[1])), lpath, ": class ", r[1],
             " is not a non-negative integer");
    labels[img].push_back({r[1], r[2], r[3], r[4], r[5]});
    n_images = std::max(n_images, img + 1);
    max_cls = std::max(max_cls, int(r[1]));
  }
  if (a.has("images")) {
    const int64_t ni = a.integer("images", 0);
    Y7_CHECK(ni >= n_images, "metrics: --images ", ni, " is less than the largest image index + 1 (", n_images, ")");
    n_images = ni;
  }
  const int nc = a.has("nc") ? a.integer("nc", 0) : max_cls + 1;
  Y7_CHECK(nc > 0 || max_cls < 0, "metrics: --nc must be positive");
  Y7_CHECK(nc <= 1000000, "metrics: --nc ", nc, " is too large");
  Y7_CHECK(max_cls < nc, "metrics: class ", max_cls, " is not below --nc ", nc);

  train::MetricStats stats;
  const std::vector<train::Detection> none_d;
  const std::vector<train::Label> none_l;
  std::set<int64_t> images;  // images with neither rows only count as seen
  for (const auto& kv : preds) images.insert(kv.first);
  for (const auto& kv : labels) images.insert(kv.first);
  for (int64_t img : images) {
    auto pit = preds.find(img);
    auto lit = labels.find(img);
    std::vector<train::Detection> p = pit == preds.end() ? none_d : pit->second;
    // NMS output order: descending confidence (stable, so pre-sorted input keeps its order)
    std::stable_sort(p.begin(), p.end(), [](const auto& x, const auto& y) { return x.conf > y.conf; });
    stats.add_image(p, lit == labels.end() ? none_l : lit->second);
  }
  stats.seen = n_images;
  const bool v5 = a.flag("v5-metric");
  const auto method = a.flag("continuous") ? train::ApMethod::Continuous : train::ApMethod::Interp;
  const auto e = train::summarize(stats, std::max(nc, 1), v5, method);

  if (v5) std::printf("Testing with YOLOv5 AP metric...\n");
  std::printf("%s\n", train::table_header().c_str());
  std::printf("%s\n", train::table_row("all", e.seen, e.n_labels, e.mp, e.mr, e.map50, e.map).c_str());
  if (a.flag("verbose") && nc > 1)
    for (size_t i = 0; i < e.per_class.classes.size(); ++i) {
      const int c = e.per_class.classes[i];
      std::printf("%s\n", train::table_row(std::to_string(c), e.seen, e.nt[size_t(c)], e.per_class.p[i],
                                           e.per_class.r[i], e.per_class.ap50[i], e.per_class.ap_mean[i])
                              .c_str());
    }
  if (a.has("out")) {
    const std::string out = a.str("out");
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    Y7_CHECK(f.good(), "metrics: cannot write ", out);
    f << train::results_json(e, {}, v5);
    f.close();
    Y7_CHECK(f.good(), "metrics: error writing ", out);
    std::printf("Results saved to %s\n", out.c_str());
  }
  return 0;
}

cli::Register reg("metrics",
                  "score saved detections against labels (upstream test.py matching, P/R/mAP@.5/mAP@.5:.95)",
                  run_metrics);

}  // namespace
}  // namespace y7
