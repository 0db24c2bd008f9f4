// NMS with upstream YOLOv7 semantics; see kernels/nms.h for the exactness notes.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "kernels/nms.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace y7::ops {

namespace {

// torch's descending comparator: NaN first, then larger first.
struct DescNanFirst {
  bool operator()(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) const {
    return (std::isnan(a.first) && !std::isnan(b.first)) || (a.first > b.first);
  }
};

// torch 1.13 CPU Tensor.sort/argsort(descending=True) (upstream's max_nms cap) is libstdc++
// std::sort over (key, index) pairs with that comparator: NOT stable for more than 16 elements.
void torch_sort_desc(std::vector<std::pair<float, int64_t>>& v) { std::sort(v.begin(), v.end(), DescNanFirst()); }

// torchvision.ops.nms orders its input with a stable descending sort (checked on torchvision
// 0.14: equal scores keep their input order).
void torchvision_sort_desc(std::vector<std::pair<float, int64_t>>& v) {
  std::stable_sort(v.begin(), v.end(), DescNanFirst());
}

// One detection row during NMS.
struct Det {
  float x1, y1, x2, y2, conf, cls;
};

// Greedy suppression exactly like torchvision's CPU nms_kernel, on boxes already offset by class.
// A box is kept iff no earlier *kept* box overlaps it by more than iou_thres, which is what the
// torchvision loop computes; checking candidates against the kept list costs O(n * kept) and we
// stop once `limit` boxes are kept (later keeps would be cut by max_det anyway).
std::vector<int64_t> greedy_nms(const float* x1, const float* y1, const float* x2, const float* y2,
                                const float* scores, int64_t n, double iou_thres, int64_t limit) {
  std::vector<int64_t> keep;
  if (n == 0 || limit <= 0) return keep;
  std::vector<float> area(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float w = x2[i] - x1[i];
    float h = y2[i] - y1[i];
    area[size_t(i)] = w * h;
  }
  std::vector<std::pair<float, int64_t>> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = {scores[i], i};
  torchvision_sort_desc(order);

  // Kept boxes as structure-of-arrays for a tight inner loop.
  std::vector<float> kx1, ky1, kx2, ky2, karea;
  for (const auto& o : order) {
    const int64_t j = o.second;
    const float jx1 = x1[j], jy1 = y1[j], jx2 = x2[j], jy2 = y2[j], jarea = area[size_t(j)];
    bool suppressed = false;
    for (size_t k = 0; k < kx1.size(); ++k) {
      // torchvision: xx1 = max(ix1, x1[j]) ... with i the kept box; same argument order.
      float xx1 = std::max(kx1[k], jx1);
      float yy1 = std::max(ky1[k], jy1);
      float xx2 = std::min(kx2[k], jx2);
      float yy2 = std::min(ky2[k], jy2);
      float w = std::max(0.0f, xx2 - xx1);
      float h = std::max(0.0f, yy2 - yy1);
      float inter = w * h;
      float denom = karea[k] + jarea;
      denom = denom - inter;
      float ovr = inter / denom;
      if (double(ovr) > iou_thres) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    keep.push_back(j);
    if (int64_t(keep.size()) >= limit) break;
    kx1.push_back(jx1);
    ky1.push_back(jy1);
    kx2.push_back(jx2);
    ky2.push_back(jy2);
    karea.push_back(jarea);
  }
  return keep;
}

Tensor rows_to_tensor(const std::vector<Det>& d) {
  Tensor t = Tensor::empty({int64_t(d.size()), 6});
  float* o = t.data<float>();
  for (size_t i = 0; i < d.size(); ++i) {
    o[i * 6 + 0] = d[i].x1;
    o[i * 6 + 1] = d[i].y1;
    o[i * 6 + 2] = d[i].x2;
    o[i * 6 + 3] = d[i].y2;
    o[i * 6 + 4] = d[i].conf;
    o[i * 6 + 5] = d[i].cls;
  }
  return t;
}

Tensor as_f32_2d(const Tensor& t, int64_t cols, const char* what) {
  Y7_CHECK(t.defined(), what, ": undefined tensor");
  Y7_CHECK(t.dim() == 2 && t.size(1) == cols, what, ": expected [n,", cols, "], got ", t.str());
  Y7_CHECK(t.device().is_cpu(), what, ": expected a CPU tensor");
  return t.to(DType::F32).contiguous();
}

}  // namespace

std::vector<Tensor> non_max_suppression(const Tensor& pred_in, const NmsParams& p) {
  Y7_CHECK(pred_in.defined(), "non_max_suppression: undefined prediction tensor");
  Y7_CHECK(pred_in.dim() == 3 && pred_in.size(2) >= 6,
           "non_max_suppression: expected predictions [B,N,5+nc] with nc >= 1, got ", pred_in.str());
  Y7_CHECK(pred_in.device().is_cpu(), "non_max_suppression: expected a CPU tensor");
  Y7_CHECK(p.max_det >= 0 && p.max_nms >= 0, "non_max_suppression: max_det and max_nms must be >= 0");
  Y7_CHECK(p.labels.empty() || int64_t(p.labels.size()) == pred_in.size(0),
           "non_max_suppression: ", p.labels.size(), " label tensors for a batch of ", pred_in.size(0));
  const Tensor pred = pred_in.to(DType::F32).contiguous();
  const int64_t B = pred.size(0), N = pred.size(1), no = pred.size(2), nc = no - 5;
  const float conf_thres = float(p.conf_thres);  // torch casts the Python scalar to float32
  const bool multi_label = p.multi_label && nc > 1;
  const float max_wh = 4096.0f;

  std::vector<Tensor> out;
  out.reserve(size_t(B));
  std::vector<float> row(static_cast<size_t>(no));
  for (int64_t b = 0; b < B; ++b) {
    const float* xb = pred.data<float>() + b * N * no;
    std::vector<Det> dets;  // detections matrix (xyxy, conf, cls) before NMS
    auto process_row = [&](const float* x) {
      // conf = obj * cls (nc == 1: conf = obj)
      for (int64_t c = 0; c < nc; ++c) row[size_t(c)] = nc == 1 ? x[4] : x[5 + c] * x[4];
      float hw = x[2] / 2.0f, hh = x[3] / 2.0f;
      float bx1 = x[0] - hw, by1 = x[1] - hh, bx2 = x[0] + hw, by2 = x[1] + hh;
      if (multi_label) {
        for (int64_t c = 0; c < nc; ++c)
          if (row[size_t(c)] > conf_thres) dets.push_back({bx1, by1, bx2, by2, row[size_t(c)], float(c)});
      } else {
        // torch max(1): first maximum; NaN wins (and then fails the threshold).
        int64_t best = 0;
        float bv = row[0];
        for (int64_t c = 1; c < nc && !std::isnan(bv); ++c) {
          float v = row[size_t(c)];
          if (std::isnan(v) || v > bv) {
            bv = v;
            best = c;
          }
        }
        if (bv > conf_thres) dets.push_back({bx1, by1, bx2, by2, bv, float(best)});
      }
    };
    for (int64_t i = 0; i < N; ++i) {
      const float* x = xb + i * no;
      if (x[4] > conf_thres) process_row(x);
    }
    if (!p.labels.empty() && p.labels[size_t(b)].defined() && p.labels[size_t(b)].numel() > 0) {
      Tensor l = as_f32_2d(p.labels[size_t(b)], 5, "non_max_suppression labels");
      const float* lp = l.data<float>();
      std::vector<float> v(static_cast<size_t>(no));
      for (int64_t r = 0; r < l.size(0); ++r) {
        std::fill(v.begin(), v.end(), 0.0f);
        for (int k = 0; k < 4; ++k) v[size_t(k)] = lp[r * 5 + 1 + k];
        v[4] = 1.0f;
        float cf = lp[r * 5];
        Y7_CHECK(std::isfinite(cf) && cf >= 0 && int64_t(cf) < nc, "non_max_suppression: label class ", cf,
                 " out of range for nc=", nc);
        v[size_t(5 + int64_t(cf))] = 1.0f;
        process_row(v.data());
      }
    }
    if (!p.classes.empty()) {
      std::vector<Det> kept;
      for (const Det& d : dets)
        for (int c : p.classes)
          if (d.cls == float(c)) {
            kept.push_back(d);
            break;
          }
      dets.swap(kept);
    }
    if (dets.empty()) {
      out.push_back(Tensor::empty({0, 6}));
      continue;
    }
    if (int64_t(dets.size()) > p.max_nms) {  // keep the max_nms most confident, in sorted order
      std::vector<std::pair<float, int64_t>> order(dets.size());
      for (size_t i = 0; i < dets.size(); ++i) order[i] = {dets[i].conf, int64_t(i)};
      torch_sort_desc(order);
      std::vector<Det> top(static_cast<size_t>(p.max_nms));
      for (int64_t i = 0; i < p.max_nms; ++i) top[size_t(i)] = dets[size_t(order[size_t(i)].second)];
      dets.swap(top);
    }
    const int64_t n = int64_t(dets.size());
    std::vector<float> x1(static_cast<size_t>(n)), y1(static_cast<size_t>(n)), x2(static_cast<size_t>(n)), y2(static_cast<size_t>(n)), sc(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const Det& d = dets[size_t(i)];
      float off = d.cls * (p.agnostic ? 0.0f : max_wh);
      x1[size_t(i)] = d.x1 + off;
      y1[size_t(i)] = d.y1 + off;
      x2[size_t(i)] = d.x2 + off;
      y2[size_t(i)] = d.y2 + off;
      sc[size_t(i)] = d.conf;
    }
    std::vector<int64_t> keep =
        greedy_nms(x1.data(), y1.data(), x2.data(), y2.data(), sc.data(), n, p.iou_thres, p.max_det);
    std::vector<Det> res;
    res.reserve(keep.size());
    for (int64_t k : keep) res.push_back(dets[size_t(k)]);
    out.push_back(rows_to_tensor(res));
  }
  return out;
}

Tensor nms_indices(const Tensor& boxes_in, const Tensor& scores_in, double iou_thres) {
  Tensor boxes = as_f32_2d(boxes_in, 4, "nms");
  Y7_CHECK(scores_in.defined() && scores_in.dim() == 1 && scores_in.size(0) == boxes.size(0),
           "nms: expected scores [", boxes.size(0), "], got ", scores_in.defined() ? scores_in.str() : "undefined");
  Tensor scores = scores_in.to(DType::F32).contiguous();
  const int64_t n = boxes.size(0);
  std::vector<float> x1(static_cast<size_t>(n)), y1(static_cast<size_t>(n)), x2(static_cast<size_t>(n)), y2(static_cast<size_t>(n));
  const float* bp = boxes.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    x1[size_t(i)] = bp[i * 4];
    y1[size_t(i)] = bp[i * 4 + 1];
    x2[size_t(i)] = bp[i * 4 + 2];
    y2[size_t(i)] = bp[i * 4 + 3];
  }
  std::vector<int64_t> keep =
      greedy_nms(x1.data(), y1.data(), x2.data(), y2.data(), scores.data<float>(), n, iou_thres, n);
  Tensor t = Tensor::empty({int64_t(keep.size())}, DType::I64);
  std::copy(keep.begin(), keep.end(), t.data<int64_t>());
  return t;
}

Tensor xywh2xyxy(const Tensor& in) {
  Tensor b = as_f32_2d(in, 4, "xywh2xyxy");
  Tensor o = Tensor::empty(b.sizes());
  const float* s = b.data<float>();
  float* d = o.data<float>();
  for (int64_t i = 0; i < b.size(0); ++i) {
    const float* x = s + i * 4;
    d[i * 4 + 0] = x[0] - x[2] / 2.0f;
    d[i * 4 + 1] = x[1] - x[3] / 2.0f;
    d[i * 4 + 2] = x[0] + x[2] / 2.0f;
    d[i * 4 + 3] = x[1] + x[3] / 2.0f;
  }
  return o;
}

Tensor xyxy2xywh(const Tensor& in) {
  Tensor b = as_f32_2d(in, 4, "xyxy2xywh");
  Tensor o = Tensor::empty(b.sizes());
  const float* s = b.data<float>();
  float* d = o.data<float>();
  for (int64_t i = 0; i < b.size(0); ++i) {
    const float* x = s + i * 4;
    d[i * 4 + 0] = (x[0] + x[2]) / 2.0f;
    d[i * 4 + 1] = (x[1] + x[3]) / 2.0f;
    d[i * 4 + 2] = x[2] - x[0];
    d[i * 4 + 3] = x[3] - x[1];
  }
  return o;
}

Tensor box_iou(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = as_f32_2d(a_in, 4, "box_iou"), b = as_f32_2d(b_in, 4, "box_iou");
  const int64_t N = a.size(0), M = b.size(0);
  Tensor o = Tensor::empty({N, M});
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* d = o.data<float>();
  std::vector<float> area2(static_cast<size_t>(M));
  for (int64_t j = 0; j < M; ++j) {
    float w = pb[j * 4 + 2] - pb[j * 4];
    float h = pb[j * 4 + 3] - pb[j * 4 + 1];
    area2[size_t(j)] = w * h;
  }
  // torch.min/max propagate NaN; clamp(0) keeps NaN.
  auto tmin = [](float u, float v) { return (std::isnan(u) || std::isnan(v)) ? NAN : std::min(u, v); };
  auto tmax = [](float u, float v) { return (std::isnan(u) || std::isnan(v)) ? NAN : std::max(u, v); };
  auto clamp0 = [](float u) { return std::isnan(u) ? u : std::max(u, 0.0f); };
  for (int64_t i = 0; i < N; ++i) {
    const float* x = pa + i * 4;
    float w1 = x[2] - x[0], h1 = x[3] - x[1];
    float area1 = w1 * h1;
    for (int64_t j = 0; j < M; ++j) {
      const float* y = pb + j * 4;
      float iw = clamp0(tmin(x[2], y[2]) - tmax(x[0], y[0]));
      float ih = clamp0(tmin(x[3], y[3]) - tmax(x[1], y[1]));
      float inter = iw * ih;
      float denom = area1 + area2[size_t(j)];
      denom = denom - inter;
      d[i * M + j] = inter / denom;
    }
  }
  return o;
}

}  // namespace y7::ops
