#include "train/autoanchor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "graph/model.h"
#include "graph/modules.h"
#include "train/dataset.h"

namespace y7::train {

using WH = std::vector<std::array<float, 2>>;

namespace {
// per target: best over anchors of min over (w,h) of min(r, 1/r)
void best_ratios(const WH& wh, const WH& k, double thr, double& mean_best_fit, double& bpr, double& aat) {
  double sfit = 0, sb = 0, sa = 0;
  const double it = 1.0 / thr;
  for (auto& t : wh) {
    float best = 0;
    int above = 0;
    for (auto& a : k) {
      float r0 = t[0] / a[0], r1 = t[1] / a[1];
      float x = std::min(std::min(r0, 1.f / r0), std::min(r1, 1.f / r1));
      best = std::max(best, x);
      above += x > it;
    }
    sb += best > it;
    sa += above;
    sfit += best > it ? best : 0;
  }
  const double n = std::max<size_t>(wh.size(), 1);
  mean_best_fit = sfit / n, bpr = sb / n, aat = sa / n;
}
}  // namespace

AnchorMetric anchor_metric(const WH& wh, const WH& anchors, double thr) {
  AnchorMetric m;
  double f;
  best_ratios(wh, anchors, thr, f, m.bpr, m.aat);
  return m;
}

WH label_sizes(const Dataset& ds, int img_size, bool jitter, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.9, 1.1);
  WH wh;
  for (size_t i = 0; i < ds.size(); ++i) {
    const auto& sh = ds.shapes()[i];  // (w, h)
    const double mx = std::max(sh[0], sh[1]);
    const double sc = jitter ? u(rng) : 1.0;
    const double sw = img_size * sh[0] / mx * sc, shh = img_size * sh[1] / mx * sc;
    for (auto& l : ds.labels()[i]) wh.push_back({float(l[3] * sw), float(l[4] * shh)});
  }
  return wh;
}

WH kmean_anchors(const WH& wh0, int n, double thr, int gen, uint64_t seed, bool verbose) {
  Y7_CHECK(n > 0, "kmean_anchors: n must be positive");
  WH wh;
  int small = 0;
  for (auto& t : wh0) {
    small += t[0] < 3.0f || t[1] < 3.0f;
    if (t[0] >= 2.0f || t[1] >= 2.0f) wh.push_back(t);
  }
  if (small) std::printf("autoanchor: WARNING: Extremely small objects found. %d of %zu labels are < 3 pixels in size.\n", small, wh0.size());
  Y7_CHECK(int(wh.size()) >= n, "autoanchor: ", wh.size(), " labels are too few for ", n, " anchors");
  std::mt19937_64 rng(seed);
  // whiten, k-means (30 Lloyd iterations from random observations), un-whiten
  double m[2] = {0, 0}, sd[2] = {0, 0};
  for (auto& t : wh) m[0] += t[0], m[1] += t[1];
  m[0] /= wh.size(), m[1] /= wh.size();
  for (auto& t : wh) sd[0] += (t[0] - m[0]) * (t[0] - m[0]), sd[1] += (t[1] - m[1]) * (t[1] - m[1]);
  sd[0] = std::sqrt(sd[0] / wh.size()), sd[1] = std::sqrt(sd[1] / wh.size());
  for (double& v : sd) v = v > 0 ? v : 1;
  std::vector<std::array<double, 2>> c(n);
  std::vector<size_t> idx(wh.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  for (int j = 0; j < n; ++j) c[j] = {wh[idx[j]][0] / sd[0], wh[idx[j]][1] / sd[1]};
  std::vector<int> asg(wh.size());
  for (int it = 0; it < 30; ++it) {
    for (size_t i = 0; i < wh.size(); ++i) {
      double bx = 1e300;
      for (int j = 0; j < n; ++j) {
        double dx = wh[i][0] / sd[0] - c[j][0], dy = wh[i][1] / sd[1] - c[j][1], d = dx * dx + dy * dy;
        if (d < bx) bx = d, asg[i] = j;
      }
    }
    std::vector<std::array<double, 3>> acc(n, {0, 0, 0});
    for (size_t i = 0; i < wh.size(); ++i)
      acc[asg[i]][0] += wh[i][0] / sd[0], acc[asg[i]][1] += wh[i][1] / sd[1], acc[asg[i]][2] += 1;
    for (int j = 0; j < n; ++j)
      if (acc[j][2] > 0) c[j] = {acc[j][0] / acc[j][2], acc[j][1] / acc[j][2]};
  }
  WH k(n);
  for (int j = 0; j < n; ++j) k[j] = {float(c[j][0] * sd[0]), float(c[j][1] * sd[1])};
  auto fitness = [&](const WH& kk) {
    double f, b, a;
    best_ratios(wh, kk, thr, f, b, a);
    return f;
  };
  // evolve
  double f = fitness(k);
  std::uniform_real_distribution<double> u01(0, 1);
  std::normal_distribution<double> nrm(0, 1);
  for (int g = 0; g < gen; ++g) {
    std::vector<double> v(size_t(n) * 2, 1.0);
    while (std::all_of(v.begin(), v.end(), [](double x) { return x == 1.0; })) {
      std::vector<bool> mask(v.size());
      for (size_t i = 0; i < v.size(); ++i) mask[i] = u01(rng) < 0.9;
      const double r = u01(rng);
      for (size_t i = 0; i < v.size(); ++i) v[i] = std::clamp((mask[i] ? 1.0 : 0.0) * r * nrm(rng) * 0.1 + 1, 0.3, 3.0);
    }
    WH kg(n);
    for (int j = 0; j < n; ++j)
      kg[j] = {std::max(float(k[j][0] * v[2 * j]), 2.0f), std::max(float(k[j][1] * v[2 * j + 1]), 2.0f)};
    double fg = fitness(kg);
    if (fg > f) {
      f = fg, k = kg;
      if (verbose) std::printf("autoanchor: generation %d fitness %.4f\n", g, f);
    }
  }
  std::sort(k.begin(), k.end(), [](auto& a, auto& b) { return a[0] * a[1] < b[0] * b[1]; });
  return k;
}

AnchorMetric check_anchors(const Dataset& ds, graph::Model& model, double thr, int img_size, uint64_t seed) {
  auto& det = dynamic_cast<graph::DetectLayer&>(model.layer(model.num_layers() - 1));
  WH wh = label_sizes(ds, img_size, true, seed);
  WH cur;
  const float* g = det.anchor_grid.data<float>();
  for (int64_t i = 0; i < det.anchor_grid.numel() / 2; ++i) cur.push_back({g[2 * i], g[2 * i + 1]});
  AnchorMetric m = anchor_metric(wh, cur, thr);
  std::printf("autoanchor: Analyzing anchors... anchors/target = %.2f, Best Possible Recall (BPR) = %.4f", m.aat, m.bpr);
  if (m.bpr < 0.98 && !wh.empty()) {
    std::printf(". Attempting to improve anchors, please wait...\n");
    WH k = kmean_anchors(label_sizes(ds, img_size, false, seed), int(cur.size()), thr, 1000, seed);
    AnchorMetric nm = anchor_metric(wh, k, thr);
    if (nm.bpr > m.bpr) {
      for (size_t i = 0; i < k.size(); ++i) det.anchors_px[2 * i] = k[i][0], det.anchors_px[2 * i + 1] = k[i][1];
      det.set_stride(det.stride);
      model.reset_caches();
      std::printf("autoanchor: New anchors saved to model. Update model *.yaml to use these anchors in the future.\n");
      m = nm;
    } else {
      std::printf("autoanchor: Original anchors better than new anchors. Proceeding with original anchors.\n");
    }
  } else {
    std::printf("\n");
  }
  return m;
}

}  // namespace y7::train
