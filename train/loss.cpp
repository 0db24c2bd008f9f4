// YOLOv7 training losses with analytic gradients w.r.t. the raw head maps. See loss.h for the
// semantics; the comments here refer to upstream utils/loss.py and utils/general.py bbox_iou.
#include "train/loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/thread_pool.h"
#include "graph/modules.h"

namespace y7::train {
namespace {

struct Map {
  const float* p = nullptr;
  float* g = nullptr;  // gradient (same layout) or null
  int64_t B = 0, A = 0, H = 0, W = 0, no = 0;
  int64_t cells() const { return B * A * H * W; }
  int64_t cell(int64_t b, int64_t a, int64_t gj, int64_t gi) const { return ((b * A + a) * H + gj) * W + gi; }
};

// One positive / candidate: image, anchor, grid cell, anchor size (grid units), target row, and the
// box target (grid units, relative to the cell) the plain loss uses.
struct Cand {
  int64_t b, a, gj, gi;
  float aw, ah;
  int64_t t;  // row of the (filtered) targets array
  float tx, ty, tw, th;
};

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline double sigmoidd(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// upstream find_3_positive (g = 0.5) / find_5_positive (g = 1.0) / ComputeLoss.build_targets, in
// float32 and in upstream's order: offset-major, then anchor, then target.
std::vector<std::vector<Cand>> find_positive(const std::vector<Map>& lead, const float* tg, int64_t nt,
                                             const float* anchors, int64_t na, float anchor_t, float g) {
  const int64_t nl = int64_t(lead.size());
  std::vector<std::vector<Cand>> out(nl);
  if (nt == 0) return out;
  struct Row {
    float x, y, w, h;
    int64_t a, t;
  };
  std::vector<Row> rows;
  for (int64_t i = 0; i < nl; ++i) {
    const Map& m = lead[i];
    const float gw = float(m.W), gh = float(m.H);
    rows.clear();
    for (int64_t a = 0; a < na; ++a) {
      const float aw = anchors[(i * na + a) * 2], ah = anchors[(i * na + a) * 2 + 1];
      for (int64_t t = 0; t < nt; ++t) {
        const float* r = tg + t * 6;
        const float x = r[2] * gw, y = r[3] * gh, w = r[4] * gw, h = r[5] * gh;
        const float rw = w / aw, rh = h / ah;
        const float mx = std::max(std::max(rw, 1.0f / rw), std::max(rh, 1.0f / rh));
        if (mx < anchor_t) rows.push_back({x, y, w, h, a, t});
      }
    }
    auto& o = out[i];
    for (int k = 0; k < 5; ++k) {
      const float ox = k == 1 ? g : k == 3 ? -g : 0.0f;
      const float oy = k == 2 ? g : k == 4 ? -g : 0.0f;
      for (const Row& r : rows) {
        bool take = true;
        if (k == 1) take = std::fmod(r.x, 1.0f) < g && r.x > 1.0f;
        if (k == 2) take = std::fmod(r.y, 1.0f) < g && r.y > 1.0f;
        if (k == 3) {
          const float xi = gw - r.x;
          take = std::fmod(xi, 1.0f) < g && xi > 1.0f;
        }
        if (k == 4) {
          const float yi = gh - r.y;
          take = std::fmod(yi, 1.0f) < g && yi > 1.0f;
        }
        if (!take) continue;
        int64_t gi = int64_t(r.x - ox), gj = int64_t(r.y - oy);  // .long() truncates
        gi = std::clamp<int64_t>(gi, 0, m.W - 1);
        gj = std::clamp<int64_t>(gj, 0, m.H - 1);
        const float* tr = tg + r.t * 6;
        Cand c;
        c.b = int64_t(tr[0]);
        c.a = r.a;
        c.gj = gj;
        c.gi = gi;
        c.aw = anchors[(i * na + r.a) * 2];
        c.ah = anchors[(i * na + r.a) * 2 + 1];
        c.t = r.t;
        c.tx = r.x - float(gi);
        c.ty = r.y - float(gj);
        c.tw = r.w;
        c.th = r.h;
        o.push_back(c);
      }
    }
  }
  return out;
}

// torch's binary_cross_entropy_with_logits (no weights) in float32, upstream's operation order.
inline float bce_logits_f(float x, float t) {
  const float mv = std::max(-x, 0.0f);
  return ((1.0f - t) * x + mv) + std::log(std::exp(-mv) + std::exp(-x - mv));
}

// Orders NaN last, then by value, ties by index: a strict weak order even on NaN costs.
inline bool cost_less(float a, int64_t ia, float b, int64_t ib) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na != nb) return nb;
  if (!na && a != b) return a < b;
  return ia < ib;
}

// upstream ComputeLossOTA.build_targets / ComputeLossAuxOTA.build_targets(2): per lead level, the
// matched candidates (with `t` the matched target row) in upstream's order. No gradients.
std::vector<std::vector<Cand>> ota_assign(const std::vector<Map>& lead, const float* tg, int64_t nt,
                                          const std::vector<std::vector<Cand>>& cands,
                                          const std::vector<float>& stride, int64_t img_h, int64_t nc,
                                          int64_t topk) {
  const int64_t nl = int64_t(lead.size());
  std::vector<std::vector<Cand>> out(nl);
  if (nt == 0) return out;
  const int64_t B = lead[0].B;
  const float imgh = float(img_h);
  // Images are independent: assign them in parallel, then concatenate in image order.
  std::vector<std::vector<std::vector<Cand>>> per(static_cast<size_t>(B),
                                                  std::vector<std::vector<Cand>>(static_cast<size_t>(nl)));
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> gts;
    std::vector<Cand> col;
    std::vector<int> col_level;
    std::vector<float> pxyxy, txyxy, iou, cost, b0, b1, tmp;
    std::vector<int64_t> idx;
    for (int64_t bi = lo; bi < hi; ++bi) {
      gts.clear();
      for (int64_t t = 0; t < nt; ++t)
        if (tg[t * 6] == float(bi)) gts.push_back(t);
      if (gts.empty()) continue;
      const int64_t G = int64_t(gts.size());
      txyxy.assign(G * 4, 0.0f);
      for (int64_t k = 0; k < G; ++k) {
        const float* r = tg + gts[k] * 6;
        const float x = r[2] * imgh, y = r[3] * imgh, w = r[4] * imgh, h = r[5] * imgh;
        txyxy[k * 4 + 0] = x - w / 2.0f;
        txyxy[k * 4 + 1] = y - h / 2.0f;
        txyxy[k * 4 + 2] = x + w / 2.0f;
        txyxy[k * 4 + 3] = y + h / 2.0f;
      }
      col.clear();
      col_level.clear();
      pxyxy.clear();
      for (int64_t i = 0; i < nl; ++i) {
        const Map& m = lead[i];
        const float s = stride[i];
        for (const Cand& c : cands[i]) {
          if (c.b != bi) continue;
          const float* p = m.p + m.cell(c.b, c.a, c.gj, c.gi) * m.no;
          const float px = (sigmoidf(p[0]) * 2.0f - 0.5f + float(c.gi)) * s;
          const float py = (sigmoidf(p[1]) * 2.0f - 0.5f + float(c.gj)) * s;
          const float sw = sigmoidf(p[2]) * 2.0f, sh = sigmoidf(p[3]) * 2.0f;
          const float pw = sw * sw * c.aw * s, ph = sh * sh * c.ah * s;
          pxyxy.push_back(px - pw / 2.0f);
          pxyxy.push_back(py - ph / 2.0f);
          pxyxy.push_back(px + pw / 2.0f);
          pxyxy.push_back(py + ph / 2.0f);
          col.push_back(c);
          col_level.push_back(int(i));
        }
      }
      const int64_t N = int64_t(col.size());
      if (N == 0) continue;
      // IoU (utils.general.box_iou) and its cost.
      iou.assign(G * N, 0.0f);
      cost.assign(G * N, 0.0f);
      for (int64_t k = 0; k < G; ++k) {
        const float* a = &txyxy[k * 4];
        const float area1 = (a[2] - a[0]) * (a[3] - a[1]);
        for (int64_t n = 0; n < N; ++n) {
          const float* b = &pxyxy[n * 4];
          const float area2 = (b[2] - b[0]) * (b[3] - b[1]);
          const float iw = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.0f);
          const float ih = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.0f);
          const float inter = iw * ih;
          iou[k * N + n] = inter / (area1 + area2 - inter);
        }
      }
      // dynamic k: int(sum of the top-min(topk, N) IoUs), at least 1.
      std::vector<int64_t> dyn_k(G);
      const int64_t kk = std::min<int64_t>(topk, N);
      for (int64_t k = 0; k < G; ++k) {
        tmp.assign(iou.begin() + k * N, iou.begin() + (k + 1) * N);
        std::partial_sort(tmp.begin(), tmp.begin() + kk, tmp.end(), [](float x, float y) {
          if (std::isnan(x) != std::isnan(y)) return std::isnan(x);
          return x > y;
        });
        float sum = 0.0f;
        for (int64_t j = 0; j < kk; ++j) sum += tmp[j];
        int64_t d = std::isfinite(sum) ? int64_t(sum) : 1;  // .int() truncates
        dyn_k[k] = std::clamp<int64_t>(d, 1, N);
      }
      // Class cost: BCE(logit(sqrt(sig(cls) * sig(obj))), one_hot) summed over the classes.
      b0.assign(N * nc, 0.0f);
      b1.assign(N * nc, 0.0f);
      for (int64_t n = 0; n < N; ++n) {
        const Cand& c = col[n];
        const Map& m = lead[col_level[n]];
        const float* p = m.p + m.cell(c.b, c.a, c.gj, c.gi) * m.no;
        const float so = sigmoidf(p[4]);
        for (int64_t j = 0; j < nc; ++j) {
          const float y = std::sqrt(sigmoidf(p[5 + j]) * so);
          const float lg = std::log(y / (1.0f - y));
          b0[n * nc + j] = bce_logits_f(lg, 0.0f);
          b1[n * nc + j] = bce_logits_f(lg, 1.0f);
        }
      }
      for (int64_t k = 0; k < G; ++k) {
        const int64_t cls = int64_t(tg[gts[k] * 6 + 1]);
        for (int64_t n = 0; n < N; ++n) {
          const float* r0 = &b0[n * nc];
          float s = 0.0f;
          for (int64_t j = 0; j < nc; ++j) s += j == cls ? b1[n * nc + j] : r0[j];
          cost[k * N + n] = s + 3.0f * -std::log(iou[k * N + n] + 1e-8f);
        }
      }
      // Each target takes its dynamic-k cheapest columns; a column taken by several targets goes to
      // the cheapest of them (first on ties, as torch.min).
      std::vector<int64_t> owner(N, -1), count(N, 0);
      idx.resize(N);
      for (int64_t k = 0; k < G; ++k) {
        std::iota(idx.begin(), idx.end(), 0);
        const float* cr = &cost[k * N];
        std::partial_sort(idx.begin(), idx.begin() + dyn_k[k], idx.end(),
                          [cr](int64_t x, int64_t y) { return cost_less(cr[x], x, cr[y], y); });
        for (int64_t j = 0; j < dyn_k[k]; ++j) {
          ++count[idx[j]];
          owner[idx[j]] = k;
        }
      }
      for (int64_t n = 0; n < N; ++n) {
        if (count[n] <= 1) continue;
        int64_t best = 0;
        for (int64_t k = 1; k < G; ++k) {
          const float a = cost[k * N + n], b = cost[best * N + n];
          if (a < b || (std::isnan(a) && !std::isnan(b))) best = k;  // torch.min: NaN wins, first min
        }
        owner[n] = best;
      }
      for (int64_t n = 0; n < N; ++n) {
        if (owner[n] < 0) continue;
        Cand c = col[n];
        c.t = gts[owner[n]];
        per[size_t(bi)][size_t(col_level[n])].push_back(c);
      }
    }
  });
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t i = 0; i < nl; ++i) out[i].insert(out[i].end(), per[bi][i].begin(), per[bi][i].end());
  return out;
}

// Element-wise (Focal)BCEWithLogits with pos_weight, in double: value and d/dx.
struct Bce {
  double pw, gamma;
  void eval(double x, double t, double& l, double& d) const {
    const double e = std::exp(-std::fabs(x));
    const double sp = std::max(-x, 0.0) + std::log1p(e);  // softplus(-x)
    const double lw = 1.0 + (pw - 1.0) * t;
    const double p = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    l = (1.0 - t) * x + lw * sp;
    d = (1.0 - t) - lw * (1.0 - p);
    if (gamma > 0) {  // FocalLoss (alpha 0.25)
      const double pt = t * p + (1.0 - t) * (1.0 - p);
      const double af = t * 0.25 + (1.0 - t) * 0.75;
      const double base = 1.0 - pt;
      const double mf = std::pow(base, gamma);
      const double dmf = base > 0 ? gamma * std::pow(base, gamma - 1.0) * (-(2.0 * t - 1.0) * p * (1.0 - p)) : 0.0;
      d = af * (d * mf + l * dmf);
      l = l * af * mf;
    }
  }
};

// torch.minimum / maximum backward: ties split the gradient in half.
inline double dmin_first(double a, double b) { return a < b ? 1.0 : a == b ? 0.5 : 0.0; }
inline double dmax_first(double a, double b) { return a > b ? 1.0 : a == b ? 0.5 : 0.0; }

// bbox_iou(box1=pred xywh, box2=target xywh, CIoU=True, eps=1e-7). Returns CIoU; g_* receive
// dCIoU/d(pred x, y, w, h) (alpha held constant, as upstream computes it under no_grad).
double ciou_grad(double px, double py, double pw, double ph, double tx, double ty, double tw, double th,
                 double* gp, double* alpha_io, bool alpha_in) {
  constexpr double eps = 1e-7;
  const double ax1 = px - pw / 2, ax2 = px + pw / 2, ay1 = py - ph / 2, ay2 = py + ph / 2;
  const double bx1 = tx - tw / 2, bx2 = tx + tw / 2, by1 = ty - th / 2, by2 = ty + th / 2;
  const double iw = std::min(ax2, bx2) - std::max(ax1, bx1), ih = std::min(ay2, by2) - std::max(ay1, by1);
  const double iwc = std::max(iw, 0.0), ihc = std::max(ih, 0.0);
  const double inter = iwc * ihc;
  const double w1 = ax2 - ax1, h1 = ay2 - ay1 + eps, w2 = bx2 - bx1, h2 = by2 - by1 + eps;
  const double uni = w1 * h1 + w2 * h2 - inter + eps;
  const double iou = inter / uni;
  const double cw = std::max(ax2, bx2) - std::min(ax1, bx1), ch = std::max(ay2, by2) - std::min(ay1, by1);
  const double c2 = cw * cw + ch * ch + eps;
  const double sx = bx1 + bx2 - ax1 - ax2, sy = by1 + by2 - ay1 - ay2;
  const double rho2 = (sx * sx + sy * sy) / 4;
  const double K = 4.0 / (M_PI * M_PI);
  const double r1 = w1 / (h1 + eps);
  const double da = std::atan(w2 / (h2 + eps)) - std::atan(r1);
  const double v = K * da * da;
  const double alpha = alpha_in ? *alpha_io : v / (v - iou + (1 + eps));
  if (alpha_io && !alpha_in) *alpha_io = alpha;
  const double ciou = iou - (rho2 / c2 + v * alpha);
  if (gp) {
    // Reverse mode, seed dCIoU = 1.
    const double d_iou = 1.0, d_rho2 = -1.0 / c2, d_c2 = rho2 / (c2 * c2), d_v = -alpha;
    double d_inter = d_iou / uni;
    const double d_uni = -d_iou * inter / (uni * uni);
    double d_w1 = d_uni * h1, d_h1 = d_uni * w1;
    d_inter += -d_uni;
    // v
    const double d_da = d_v * 2.0 * K * da;
    const double d_r1 = -d_da / (1.0 + r1 * r1);
    d_w1 += d_r1 / (h1 + eps);
    d_h1 += -d_r1 * w1 / ((h1 + eps) * (h1 + eps));
    double dax1 = 0, dax2 = 0, day1 = 0, day2 = 0;
    // inter = clamp(iw, 0) * clamp(ih, 0); clamp passes the gradient where the input >= 0
    const double d_iw = iw >= 0 ? d_inter * ihc : 0.0, d_ih = ih >= 0 ? d_inter * iwc : 0.0;
    dax2 += d_iw * dmin_first(ax2, bx2);
    dax1 -= d_iw * dmax_first(ax1, bx1);
    day2 += d_ih * dmin_first(ay2, by2);
    day1 -= d_ih * dmax_first(ay1, by1);
    // c2
    const double d_cw = d_c2 * 2.0 * cw, d_ch = d_c2 * 2.0 * ch;
    dax2 += d_cw * dmax_first(ax2, bx2);
    dax1 -= d_cw * dmin_first(ax1, bx1);
    day2 += d_ch * dmax_first(ay2, by2);
    day1 -= d_ch * dmin_first(ay1, by1);
    // rho2
    const double d_sx = d_rho2 * sx / 2.0, d_sy = d_rho2 * sy / 2.0;
    dax1 -= d_sx;
    dax2 -= d_sx;
    day1 -= d_sy;
    day2 -= d_sy;
    // w1, h1
    dax2 += d_w1;
    dax1 -= d_w1;
    day2 += d_h1;
    day1 -= d_h1;
    gp[0] = dax1 + dax2;
    gp[1] = day1 + day2;
    gp[2] = (dax2 - dax1) / 2;
    gp[3] = (day2 - day1) / 2;
  }
  return ciou;
}

struct Accum {
  double lbox = 0, lobj = 0, lcls = 0;
};

// One map's box/class/objectness terms (upstream's loop body), scaled by `w` (0.25 for aux maps).
// `ota`: targets come from the target rows (scaled by the level's grid); else from the Cand box.
void level_loss(const Map& m, const std::vector<Cand>& pos, const float* tg, bool ota, double w, double balance,
                const LossConfig& cfg, double bs, Accum& acc, std::vector<float>& tobj, detail::Frozen* fz,
                size_t& fi) {
  const Hyp& h = cfg.hyp;
  const Bce bce_cls{h.cls_pw, h.fl_gamma}, bce_obj{h.obj_pw, h.fl_gamma};
  const double cp = 1.0 - 0.5 * h.label_smoothing, cn = 0.5 * h.label_smoothing;
  const int64_t nc = cfg.nc, no = m.no;
  tobj.assign(size_t(m.cells()), 0.0f);
  const int64_t n = int64_t(pos.size());
  if (n) {
    double sbox = 0, scls = 0;
    const double gbox = -w * h.box * bs / double(n);           // d(loss)/d(ciou_k)
    const double gcls = w * h.cls * bs / double(n * nc);        // d(loss)/d(bce element)
    for (const Cand& c : pos) {
      const int64_t cell = m.cell(c.b, c.a, c.gj, c.gi);
      const float* p = m.p + cell * no;
      double tx, ty, tw, th;
      if (ota) {
        const float* r = tg + c.t * 6;
        tx = double(r[2] * float(m.W) - float(c.gi));
        ty = double(r[3] * float(m.H) - float(c.gj));
        tw = double(r[4] * float(m.W));
        th = double(r[5] * float(m.H));
      } else {
        tx = c.tx, ty = c.ty, tw = c.tw, th = c.th;
      }
      const double s0 = sigmoidd(p[0]), s1 = sigmoidd(p[1]), s2 = sigmoidd(p[2]), s3 = sigmoidd(p[3]);
      const double px = s0 * 2 - 0.5, py = s1 * 2 - 0.5;
      const double pw = (s2 * 2) * (s2 * 2) * double(c.aw), ph = (s3 * 2) * (s3 * 2) * double(c.ah);
      double gp[4];
      double alpha = fz && fz->replay ? fz->alpha.at(fi) : 0.0;
      const double ciou = ciou_grad(px, py, pw, ph, tx, ty, tw, th, m.g ? gp : nullptr, &alpha, fz && fz->replay);
      sbox += 1.0 - ciou;
      double to = (1.0 - cfg.gr) + cfg.gr * std::max(ciou, 0.0);
      if (fz && fz->replay) {
        to = fz->tobj.at(fi);
      } else if (fz) {
        fz->alpha.push_back(alpha);
        fz->tobj.push_back(to);
      }
      ++fi;
      tobj[size_t(cell)] = float(to);
      float* g = m.g ? m.g + cell * no : nullptr;
      if (g) {
        g[0] += float(gbox * gp[0] * 2 * s0 * (1 - s0));
        g[1] += float(gbox * gp[1] * 2 * s1 * (1 - s1));
        g[2] += float(gbox * gp[2] * 8 * s2 * double(c.aw) * s2 * (1 - s2));
        g[3] += float(gbox * gp[3] * 8 * s3 * double(c.ah) * s3 * (1 - s3));
      }
      if (nc > 1) {
        const int64_t cls = int64_t(tg[c.t * 6 + 1]);
        for (int64_t j = 0; j < nc; ++j) {
          double l, d;
          bce_cls.eval(p[5 + j], j == cls ? cp : cn, l, d);
          scls += l;
          if (g) g[5 + j] += float(gcls * d);
        }
      }
    }
    acc.lbox += w * sbox / double(n);
    if (nc > 1) acc.lcls += w * scls / double(n * nc);
  }
  // Objectness over every cell: fixed chunks summed in order, so the result does not depend on the
  // number of threads.
  const int64_t N = m.cells();
  const double gobj = w * balance * h.obj * bs / double(N);
  constexpr int64_t kChunk = 8192;
  const int64_t nchunks = (N + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(nchunks), 0.0);
  const float* tob = tobj.data();
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0;
      const int64_t k1 = std::min(N, (c + 1) * kChunk);
      for (int64_t k = c * kChunk; k < k1; ++k) {
        double l, d;
        bce_obj.eval(m.p[k * no + 4], tob[k], l, d);
        sum += l;
        if (m.g) m.g[k * no + 4] += float(gobj * d);
      }
      part[size_t(c)] = sum;
    }
  });
  double sobj = 0;
  for (double v : part) sobj += v;
  acc.lobj += w * balance * sobj / double(N);
}

}  // namespace

LossConfig loss_config_for(const graph::DetectLayer& det, const Hyp& hyp, double gr) {
  LossConfig c;
  c.kind = det.kind == graph::DetectLayer::Aux ? LossKind::AuxOTA
           : hyp.loss_ota == 0                 ? LossKind::Plain
                                               : LossKind::OTA;
  c.nc = det.nc;
  c.anchors = det.anchors;
  c.stride = det.stride;
  c.hyp = hyp;
  c.gr = gr;
  return c;
}

LossResult compute_loss(const std::vector<Tensor>& raw, const Tensor& targets, int64_t img_h,
                        const LossConfig& cfg, bool want_grads, detail::Frozen* frozen) {
  // ---- validation
  Y7_CHECK(cfg.nc >= 1, "loss: nc must be >= 1, got ", cfg.nc);
  Y7_CHECK(cfg.anchors.defined() && cfg.anchors.dtype() == DType::F32 && cfg.anchors.dim() == 3 &&
               cfg.anchors.size(2) == 2 && cfg.anchors.size(0) >= 1 && cfg.anchors.size(1) >= 1,
           "loss: anchors must be float32 [nl,na,2], got ",
           cfg.anchors.defined() ? cfg.anchors.str() : std::string("undefined"));
  const Tensor anc = cfg.anchors.contiguous();
  const int64_t nl = anc.size(0), na = anc.size(1);
  Y7_CHECK(nl <= 5, "loss: at most 5 detection levels are supported (upstream's balance list), got ", nl);
  for (int64_t k = 0; k < anc.numel(); ++k)
    Y7_CHECK(std::isfinite(anc.data<float>()[k]) && anc.data<float>()[k] > 0, "loss: anchors must be positive");
  Y7_CHECK(int64_t(cfg.stride.size()) == nl, "loss: ", cfg.stride.size(), " strides for ", nl, " levels");
  for (float s : cfg.stride) Y7_CHECK(std::isfinite(s) && s > 0, "loss: strides must be positive");
  const bool aux = cfg.kind == LossKind::AuxOTA;
  const int64_t nmaps = aux ? 2 * nl : nl;
  Y7_CHECK(int64_t(raw.size()) == nmaps, "loss: expected ", nmaps, " head maps (", nl, " levels",
           aux ? ", lead then aux" : "", "), got ", raw.size());
  const int64_t no = cfg.nc + 5;
  std::vector<Tensor> rc(nmaps);
  std::vector<Map> maps(nmaps);
  for (int64_t i = 0; i < nmaps; ++i) {
    const Tensor& r = raw[i];
    Y7_CHECK(r.defined() && r.dtype() == DType::F32 && r.dim() == 5 && r.size(1) == na && r.size(4) == no &&
                 r.size(0) >= 1 && r.size(2) >= 1 && r.size(3) >= 1,
             "loss: head map ", i, " must be float32 [B,", na, ",H,W,", no, "], got ",
             r.defined() ? r.str() : std::string("undefined"));
    Y7_CHECK(r.size(0) == raw[0].size(0), "loss: head maps disagree on the batch size");
    if (i >= nl)
      Y7_CHECK(r.sizes() == raw[i - nl].sizes(), "loss: aux map ", i, " ", r.str(), " differs from its lead map ",
               raw[i - nl].str());
    rc[i] = r.contiguous();
    Map& m = maps[i];
    m.p = rc[i].data<float>();
    m.B = r.size(0), m.A = na, m.H = r.size(2), m.W = r.size(3), m.no = no;
  }
  const int64_t B = maps[0].B;
  Y7_CHECK(!targets.defined() || targets.numel() == 0 ||
               (targets.dtype() == DType::F32 && targets.dim() == 2 && targets.size(1) == 6),
           "loss: targets must be float32 [n,6] (img, cls, cx, cy, w, h), got ", targets.str());
  Tensor tgc = targets.defined() && targets.numel() > 0 ? targets.contiguous() : Tensor();
  const int64_t nt = tgc.defined() ? tgc.size(0) : 0;
  const float* tg = tgc.defined() ? tgc.data<float>() : nullptr;
  for (int64_t t = 0; t < nt; ++t) {
    const float* r = tg + t * 6;
    Y7_CHECK(r[0] >= 0 && r[0] < float(B) && r[0] == std::floor(r[0]), "loss: target ", t, ": image index ", r[0],
             " not an integer in [0, ", B, ")");
    Y7_CHECK(r[1] >= 0 && r[1] < float(cfg.nc) && r[1] == std::floor(r[1]), "loss: target ", t, ": class ", r[1],
             " not an integer in [0, ", cfg.nc, ")");
    for (int k = 2; k < 6; ++k)
      Y7_CHECK(r[k] >= 0 && r[k] <= 1, "loss: target ", t, ": box values must be normalized to [0, 1], got ", r[k]);
  }
  if (cfg.kind != LossKind::Plain) Y7_CHECK(img_h > 0, "loss: image height must be positive, got ", img_h);
  const Hyp& h = cfg.hyp;
  Y7_CHECK(h.anchor_t > 0 && h.fl_gamma >= 0 && std::isfinite(cfg.gr), "loss: bad hyp (anchor_t, fl_gamma) or gr");

  LossResult res;
  if (want_grads) {
    res.grads.resize(nmaps);
    for (int64_t i = 0; i < nmaps; ++i) {
      res.grads[i] = Tensor::zeros(rc[i].sizes());
      maps[i].g = res.grads[i].data<float>();
    }
  }
  std::vector<Map> lead(maps.begin(), maps.begin() + nl);
  const float* ap = anc.data<float>();
  const double bs = double(B);
  static const double kBal3[3] = {4.0, 1.0, 0.4};
  static const double kBal5[5] = {4.0, 1.0, 0.25, 0.06, 0.02};
  const double* bal = nl == 3 ? kBal3 : kBal5;

  // ---- assignment (no gradients)
  std::vector<std::vector<Cand>> pos, pos_aux;
  const bool ota = cfg.kind != LossKind::Plain;
  if (cfg.kind == LossKind::Plain) {
    pos = find_positive(lead, tg, nt, ap, na, float(h.anchor_t), 0.5f);
  } else {
    const int64_t topk = aux ? 20 : 10;
    if (aux) {
      auto c5 = find_positive(lead, tg, nt, ap, na, float(h.anchor_t), 1.0f);
      pos_aux = ota_assign(lead, tg, nt, c5, cfg.stride, img_h, cfg.nc, topk);
    }
    auto c3 = find_positive(lead, tg, nt, ap, na, float(h.anchor_t), 0.5f);
    pos = ota_assign(lead, tg, nt, c3, cfg.stride, img_h, cfg.nc, topk);
  }

  // ---- losses and gradients
  Accum acc;
  std::vector<float> tobj;
  size_t fi = 0;
  if (frozen && !frozen->replay) frozen->alpha.clear(), frozen->tobj.clear();
  for (int64_t i = 0; i < nl; ++i) {
    level_loss(maps[i], pos[i], tg, ota, 1.0, bal[i], cfg, bs, acc, tobj, frozen, fi);
    res.num_positives.push_back(int64_t(pos[i].size()));
  }
  if (aux)
    for (int64_t i = 0; i < nl; ++i) {
      level_loss(maps[nl + i], pos_aux[i], tg, true, 0.25, bal[i], cfg, bs, acc, tobj, frozen, fi);
      res.num_positives.push_back(int64_t(pos_aux[i].size()));
    }
  res.lbox = acc.lbox * h.box;
  res.lobj = acc.lobj * h.obj;
  res.lcls = acc.lcls * h.cls;
  res.total = res.lbox + res.lobj + res.lcls;
  res.loss = res.total * bs;
  return res;
}

}  // namespace y7::train
