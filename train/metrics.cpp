// Detection metrics, upstream test.py / utils/metrics.py semantics (see metrics.h).
// Floating-point contraction is disabled: upstream's float32 IoU and numpy's double arithmetic
// have no fused multiply-adds.
#pragma GCC optimize("fp-contract=off")
#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

#include "core/error.h"
#include "io/json.h"

namespace y7::train {

const std::array<float, kNumIou>& iou_vector() {
  // torch.linspace(0.5, 0.95, 10) (float32): start + i*step for the first half, end - (n-1-i)*step
  // for the second, step = (end - start) / 9 in float32.
  static const std::array<float, kNumIou> v = [] {
    std::array<float, kNumIou> a{};
    const float start = 0.5f, end = 0.95f, step = (end - start) / 9.0f;
    for (int i = 0; i < kNumIou; ++i)
      a[i] = i < kNumIou / 2 ? start + step * float(i) : end - step * float(kNumIou - 1 - i);
    return a;
  }();
  return v;
}

float box_iou(const float* a, const float* b) {
  const float area1 = (a[2] - a[0]) * (a[3] - a[1]);
  const float area2 = (b[2] - b[0]) * (b[3] - b[1]);
  const float w = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.0f);
  const float h = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.0f);
  const float inter = w * h;
  const float denom = area1 + area2 - inter;
  return inter / denom;
}

std::vector<uint8_t> match_image(const std::vector<Detection>& pred, const std::vector<Label>& labels) {
  const auto& iouv = iou_vector();
  std::vector<uint8_t> correct(pred.size() * kNumIou, 0);
  const size_t nl = labels.size();
  if (nl == 0 || pred.empty()) return correct;
  std::set<float> classes;  // torch.unique: sorted ascending
  for (const auto& l : labels) classes.insert(l.cls);
  size_t detected = 0;  // upstream's `detected` list length
  for (float cls : classes) {
    std::vector<size_t> ti, pi;
    for (size_t t = 0; t < nl; ++t)
      if (labels[t].cls == cls) ti.push_back(t);
    for (size_t p = 0; p < pred.size(); ++p)
      if (pred[p].cls == cls) pi.push_back(p);
    if (pi.empty()) continue;
    std::set<size_t> detected_set;
    for (size_t j = 0; j < pi.size(); ++j) {
      const Detection& d = pred[pi[j]];
      const float db[4] = {d.x1, d.y1, d.x2, d.y2};
      // best IoU over this class's targets; first index on ties (torch max(1) on CPU)
      float best = 0;
      size_t bi = 0;
      for (size_t k = 0; k < ti.size(); ++k) {
        const Label& l = labels[ti[k]];
        const float lb[4] = {l.x1, l.y1, l.x2, l.y2};
        const float iou = box_iou(db, lb);
        if (k == 0 || iou > best || (std::isnan(iou) && !std::isnan(best))) best = iou, bi = k;
      }
      if (!(best > iouv[0])) continue;
      const size_t target = ti[bi];
      if (detected_set.count(target)) continue;
      detected_set.insert(target);
      ++detected;
      for (int t = 0; t < kNumIou; ++t) correct[pi[j] * kNumIou + t] = best > iouv[t];
      if (detected == nl) break;  // all targets already located in the image
    }
  }
  return correct;
}

void MetricStats::add_image(const std::vector<Detection>& pred, const std::vector<Label>& labels) {
  ++seen;
  if (pred.empty()) {
    if (!labels.empty()) {
      any_image = true;
      for (const auto& l : labels) tcls.push_back(double(l.cls));
    }
    return;
  }
  any_image = true;
  auto c = match_image(pred, labels);
  correct.insert(correct.end(), c.begin(), c.end());
  for (const auto& d : pred) {
    conf.push_back(d.conf);
    pcls.push_back(d.cls);
  }
  for (const auto& l : labels) tcls.push_back(double(l.cls));
}

bool MetricStats::any_correct() const {
  return std::any_of(correct.begin(), correct.end(), [](uint8_t v) { return v != 0; });
}

// ---- numpy-compatible primitives

static double pairwise(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double np_sum(const double* v, size_t n) { return 0.0 + pairwise(v, n); }

static double np_mean(const std::vector<double>& v) {
  return v.empty() ? std::nan("") : np_sum(v.data(), v.size()) / double(v.size());
}

// np.linspace(0, 1, n)
static std::vector<double> linspace01(size_t n) {
  std::vector<double> x(n);
  const double step = 1.0 / double(n - 1);
  for (size_t i = 0; i < n; ++i) x[i] = double(i) * step;
  x[n - 1] = 1.0;
  return x;
}

double np_interp(double x, const std::vector<double>& xp, const std::vector<double>& fp, double left, double right) {
  const size_t n = xp.size();
  Y7_CHECK(n > 0 && fp.size() == n, "interp: empty or mismatched sample points");
  if (std::isnan(x)) return x;
  if (x > xp[n - 1]) return right;
  if (x < xp[0]) return left;
  // last j with xp[j] <= x
  size_t j = size_t(std::upper_bound(xp.begin(), xp.end(), x) - xp.begin()) - 1;
  if (j == n - 1) return fp[j];
  if (xp[j] == x) return fp[j];
  const double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
  double r = slope * (x - xp[j]) + fp[j];
  if (std::isnan(r)) {
    r = slope * (x - xp[j + 1]) + fp[j + 1];
    if (std::isnan(r) && fp[j] == fp[j + 1]) r = fp[j];
  }
  return r;
}

ApCurve compute_ap(const std::vector<double>& recall, const std::vector<double>& precision, bool v5_metric,
                   ApMethod method) {
  Y7_CHECK(!recall.empty() && recall.size() == precision.size(), "compute_ap: empty or mismatched curves");
  ApCurve c;
  c.mrec.reserve(recall.size() + 2);
  c.mrec.push_back(0.0);
  c.mrec.insert(c.mrec.end(), recall.begin(), recall.end());
  c.mrec.push_back(v5_metric ? 1.0 : recall.back() + 0.01);
  c.mpre.push_back(1.0);
  c.mpre.insert(c.mpre.end(), precision.begin(), precision.end());
  c.mpre.push_back(0.0);
  // precision envelope: reversed running maximum
  for (size_t i = c.mpre.size() - 1; i-- > 0;) c.mpre[i] = std::max(c.mpre[i], c.mpre[i + 1]);
  if (method == ApMethod::Interp) {
    const auto x = linspace01(101);
    std::vector<double> y(x.size()), terms(x.size() - 1);
    for (size_t i = 0; i < x.size(); ++i) y[i] = np_interp(x[i], c.mrec, c.mpre, c.mpre.front(), c.mpre.back());
    for (size_t i = 0; i + 1 < x.size(); ++i) terms[i] = (x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0;
    c.ap = np_sum(terms.data(), terms.size());
  } else {
    std::vector<double> terms;
    for (size_t i = 0; i + 1 < c.mrec.size(); ++i)
      if (c.mrec[i + 1] != c.mrec[i]) terms.push_back((c.mrec[i + 1] - c.mrec[i]) * c.mpre[i + 1]);
    c.ap = np_sum(terms.data(), terms.size());
  }
  return c;
}

// numpy 1.24's argsort(kind='quicksort') for float32 (npysort/quicksort.cpp aquicksort_: introsort
// with median-of-3 partitions, insertion sort below 16 elements, heapsort past the depth limit;
// NaNs last). Not stable: equal keys come out in this algorithm's order, which we reproduce.
namespace {

inline bool f_less(float a, float b) { return a < b || (b != b && a == a); }

void aheapsort(const float* v, int64_t* tosort, int64_t n) {
  int64_t* a = tosort - 1;  // 1-based heap
  int64_t i, j, l, tmp;
  for (l = n >> 1; l > 0; --l) {
    tmp = a[l];
    for (i = l, j = l << 1; j <= n;) {
      if (j < n && f_less(v[a[j]], v[a[j + 1]])) j += 1;
      if (f_less(v[tmp], v[a[j]])) {
        a[i] = a[j];
        i = j;
        j += j;
      } else {
        break;
      }
    }
    a[i] = tmp;
  }
  for (; n > 1;) {
    tmp = a[n];
    a[n] = a[1];
    n -= 1;
    for (i = 1, j = 2; j <= n;) {
      if (j < n && f_less(v[a[j]], v[a[j + 1]])) j++;
      if (f_less(v[tmp], v[a[j]])) {
        a[i] = a[j];
        i = j;
        j += j;
      } else {
        break;
      }
    }
    a[i] = tmp;
  }
}

int msb(uint64_t n) {
  int d = 0;
  while (n >>= 1) ++d;
  return d;
}

}  // namespace

std::vector<int64_t> np_argsort(const std::vector<float>& values) {
  const int64_t num = int64_t(values.size());
  std::vector<int64_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  if (num < 2) return idx;
  const float* v = values.data();
  constexpr int kSmall = 15, kStack = 128;
  int64_t* pl = idx.data();
  int64_t* pr = pl + num - 1;
  int64_t* stack[kStack];
  int64_t** sptr = stack;
  int depth[kStack];
  int* psdepth = depth;
  int cdepth = msb(uint64_t(num)) * 2;
  for (;;) {
    if (cdepth < 0) {
      aheapsort(v, pl, pr - pl + 1);
      goto stack_pop;
    }
    while ((pr - pl) > kSmall) {
      int64_t* pm = pl + ((pr - pl) >> 1);
      if (f_less(v[*pm], v[*pl])) std::swap(*pm, *pl);
      if (f_less(v[*pr], v[*pm])) std::swap(*pr, *pm);
      if (f_less(v[*pm], v[*pl])) std::swap(*pm, *pl);
      const float vp = v[*pm];
      int64_t* pi = pl;
      int64_t* pj = pr - 1;
      std::swap(*pm, *pj);
      for (;;) {
        do ++pi;
        while (f_less(v[*pi], vp));
        do --pj;
        while (f_less(vp, v[*pj]));
        if (pi >= pj) break;
        std::swap(*pi, *pj);
      }
      int64_t* pk = pr - 1;
      std::swap(*pi, *pk);
      if (pi - pl < pr - pi) {
        *sptr++ = pi + 1;
        *sptr++ = pr;
        pr = pi - 1;
      } else {
        *sptr++ = pl;
        *sptr++ = pi - 1;
        pl = pi + 1;
      }
      *psdepth++ = --cdepth;
    }
    for (int64_t* pi = pl + 1; pi <= pr; ++pi) {
      const int64_t vi = *pi;
      const float vp = v[vi];
      int64_t* pj = pi;
      int64_t* pk = pi - 1;
      while (pj > pl && f_less(vp, v[*pk])) *pj-- = *pk--;
      *pj = vi;
    }
  stack_pop:
    if (sptr == stack) break;
    pr = *(--sptr);
    pl = *(--sptr);
    cdepth = *(--psdepth);
  }
  return idx;
}

ApPerClass ap_per_class(const MetricStats& s, bool v5_metric, ApMethod method) {
  const size_t n = s.conf.size();
  Y7_CHECK(s.pcls.size() == n && s.correct.size() == n * kNumIou, "ap_per_class: inconsistent statistics");
  // np.argsort(-conf): numpy's (unstable) quicksort order, ties included
  std::vector<float> neg(n);
  for (size_t k = 0; k < n; ++k) neg[k] = -s.conf[k];
  std::vector<size_t> order;
  order.reserve(n);
  for (int64_t k : np_argsort(neg)) order.push_back(size_t(k));

  ApPerClass out;
  std::set<double> uc(s.tcls.begin(), s.tcls.end());
  const size_t nc = uc.size();
  const auto px = linspace01(1000);
  std::vector<std::vector<double>> p(nc, std::vector<double>(1000, 0.0)), r = p;
  out.ap.assign(nc, {});
  size_t ci = 0;
  for (double c : uc) {
    out.classes.push_back(int(c));
    int64_t n_l = 0;
    for (double t : s.tcls) n_l += (t == c);
    std::vector<size_t> idx;
    for (size_t k : order)
      if (double(s.pcls[k]) == c) idx.push_back(k);
    const size_t n_p = idx.size();
    if (n_p == 0 || n_l == 0) {
      ++ci;
      continue;
    }
    // cumulative TP/FP per IoU threshold
    std::vector<std::vector<double>> recall(kNumIou, std::vector<double>(n_p)), precision = recall;
    std::vector<double> negconf(n_p);
    for (int t = 0; t < kNumIou; ++t) {
      int64_t tpc = 0, fpc = 0;
      for (size_t m = 0; m < n_p; ++m) {
        const bool tp = s.correct[idx[m] * kNumIou + t] != 0;
        tpc += tp;
        fpc += !tp;
        recall[t][m] = double(tpc) / (double(n_l) + 1e-16);
        precision[t][m] = double(tpc) / double(tpc + fpc);
      }
    }
    for (size_t m = 0; m < n_p; ++m) negconf[m] = double(-s.conf[idx[m]]);
    for (size_t k = 0; k < 1000; ++k) {
      r[ci][k] = np_interp(-px[k], negconf, recall[0], 0.0, recall[0].back());
      p[ci][k] = np_interp(-px[k], negconf, precision[0], 1.0, precision[0].back());
    }
    for (int t = 0; t < kNumIou; ++t) out.ap[ci][t] = compute_ap(recall[t], precision[t], v5_metric, method).ap;
    ++ci;
  }
  // F1 and the max mean-F1 index (f1.mean(0): sequential sum over classes)
  int best = 0;
  double best_v = 0;
  for (size_t k = 0; k < 1000; ++k) {
    double sum = 0;
    for (size_t c = 0; c < nc; ++c) sum += 2 * p[c][k] * r[c][k] / (p[c][k] + r[c][k] + 1e-16);
    const double mean = sum / double(nc);
    if (k == 0 || mean > best_v || (std::isnan(mean) && !std::isnan(best_v))) best_v = mean, best = int(k);
  }
  out.best_index = best;
  for (size_t c = 0; c < nc; ++c) {
    out.p.push_back(p[c][best]);
    out.r.push_back(r[c][best]);
    out.f1.push_back(2 * p[c][best] * r[c][best] / (p[c][best] + r[c][best] + 1e-16));
    out.ap50.push_back(out.ap[c][0]);
    out.ap_mean.push_back(np_sum(out.ap[c].data(), kNumIou) / double(kNumIou));
  }
  return out;
}

EvalResults summarize(const MetricStats& s, int nc, bool v5_metric, ApMethod method) {
  Y7_CHECK(nc <= 1000000, "metrics: nc ", nc, " is too large");
  EvalResults e;
  e.seen = s.seen;
  e.nt = {0};
  if (s.any_image && s.any_correct()) {
    e.computed = true;
    e.per_class = ap_per_class(s, v5_metric, method);
    e.mp = np_mean(e.per_class.p);
    e.mr = np_mean(e.per_class.r);
    e.map50 = np_mean(e.per_class.ap50);
    e.map = np_mean(e.per_class.ap_mean);
    e.nt.assign(size_t(std::max(nc, 0)), 0);
    for (double t : s.tcls) {
      Y7_CHECK(t >= 0 && t < 1e6, "metrics: label class ", t, " is negative or out of range");
      const auto c = size_t(int64_t(t));
      if (c >= e.nt.size()) e.nt.resize(c + 1, 0);
      ++e.nt[c];
    }
  }
  e.n_labels = std::accumulate(e.nt.begin(), e.nt.end(), int64_t(0));
  e.maps.assign(size_t(std::max(nc, 0)), e.map);
  for (size_t i = 0; i < e.per_class.classes.size(); ++i) {
    const int c = e.per_class.classes[i];
    if (c >= 0 && size_t(c) < e.maps.size()) e.maps[size_t(c)] = e.per_class.ap_mean[i];
  }
  return e;
}

double fitness(double p, double r, double map50, double map) {
  return p * 0.0 + r * 0.0 + map50 * 0.1 + map * 0.9;
}

std::string table_header() {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%20s%12s%12s%12s%12s%12s%12s", "Class", "Images", "Labels", "P", "R", "mAP@.5",
                "mAP@.5:.95");
  return buf;
}

std::string table_row(const std::string& name, int64_t images, int64_t labels, double p, double r, double map50,
                      double map) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%20s%12lld%12lld%12.3g%12.3g%12.3g%12.3g", name.c_str(), (long long)images,
                (long long)labels, p, r, map50, map);
  return buf;
}

static std::string jnum(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string results_json(const EvalResults& e, const std::vector<std::string>& names, bool v5_metric) {
  std::string o = "{\n";
  o += " \"seen\": " + std::to_string(e.seen) + ",\n";
  o += " \"labels\": " + std::to_string(e.n_labels) + ",\n";
  o += " \"mp\": " + jnum(e.mp) + ",\n \"mr\": " + jnum(e.mr) + ",\n";
  o += " \"map50\": " + jnum(e.map50) + ",\n \"map\": " + jnum(e.map) + ",\n";
  o += " \"fitness\": " + jnum(fitness(e.mp, e.mr, e.map50, e.map)) + ",\n";
  o += std::string(" \"v5_metric\": ") + (v5_metric ? "true" : "false") + ",\n";
  o += std::string(" \"computed\": ") + (e.computed ? "true" : "false") + ",\n";
  o += " \"per_class\": {";
  const auto& pc = e.per_class;
  for (size_t i = 0; i < pc.classes.size(); ++i) {
    const int c = pc.classes[i];
    const std::string name = (c >= 0 && size_t(c) < names.size()) ? names[size_t(c)] : std::to_string(c);
    const int64_t nl = (c >= 0 && size_t(c) < e.nt.size()) ? e.nt[size_t(c)] : 0;
    o += std::string(i ? "," : "") + "\n  " + io::json_quote(std::to_string(c)) + ": {\"name\": " + io::json_quote(name) +
         ", \"labels\": " + std::to_string(nl) + ", \"p\": " + jnum(pc.p[i]) + ", \"r\": " + jnum(pc.r[i]) +
         ", \"ap50\": " + jnum(pc.ap50[i]) + ", \"ap\": " + jnum(pc.ap_mean[i]) + "}";
  }
  o += pc.classes.empty() ? "},\n" : "\n },\n";
  o += " \"maps\": [";
  for (size_t i = 0; i < e.maps.size(); ++i) o += (i ? ", " : "") + jnum(e.maps[i]);
  o += "]\n}\n";
  return o;
}

}  // namespace y7::train
