// Helpers for tests that run the yolo7 binary and compare against upstream fixtures.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/tensor.h"

namespace y7::test {

struct CliResult {
  int code = -1;
  std::string out;  // stdout and stderr together
};

inline CliResult run_cli(const std::string& args) {
  std::string cmd = std::string(Y7_CLI) + " " + args + " 2>&1";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// A file of the repository (cfg/, data/), located from the tests' data folder.
inline std::string repo_file(const std::string& rel) { return std::string(Y7_TEST_DATA) + "/../../" + rel; }

// yolov7-tiny at width 0.25 with nc 6 (the small model of the training tests), written to dir.
inline std::string write_tiny_cfg(const std::filesystem::path& dir) {
  YAML::Node cfg = YAML::LoadFile(repo_file("cfg/training/yolov7-tiny.yaml"));
  cfg["width_multiple"] = 0.25;
  cfg["nc"] = 6;
  std::filesystem::create_directories(dir);
  std::string p = (dir / "tiny25.yaml").string();
  std::ofstream(p) << YAML::Dump(cfg);
  return p;
}

inline std::string fixtures() { return Y7_SHARED_FIXTURES; }

// Defined in test_model.cpp: the fixture folder, the fixture model names (for TEST_P), a
// parameter-name printer, and the per-column comparison of decoded predictions.
std::string fixtures_dir();
std::vector<std::string> model_fixtures();
std::string fixture_param_name(const testing::TestParamInfo<std::string>& info);
std::vector<double> compare_pred(const Tensor& got, const Tensor& ref);

// A fresh scratch directory under the test temp dir.
inline std::string scratch(const std::string& name) {
  auto d = std::filesystem::path(testing::TempDir()) / ("y7_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// Compares NMS rows (img, x1, y1, x2, y2, conf, cls) against a reference. A reference row matches
// a row of ours with the same image and class, coordinates within xy_tol and conf within conf_tol.
// Both lists are sorted by conf within each image (checked for ours), so matching by content is
// "the same order" up to rows whose confidences tie within the tolerance, which float noise may
// legitimately reorder.
struct NmsAgreement {
  int64_t ref_rows = 0, got_rows = 0, matched = 0;
  double max_xy = 0, max_conf = 0;
  bool sorted = true;
  std::string first_mismatch;
  bool exact() const { return sorted && matched == ref_rows && got_rows == ref_rows; }
  double fraction() const { return double(matched) / double(std::max<int64_t>({ref_rows, got_rows, 1})); }
};

inline NmsAgreement compare_nms_rows(const Tensor& got, const Tensor& ref, double xy_tol = 1e-3, double conf_tol = 1e-4) {
  NmsAgreement a;
  Tensor g = got.to(DType::F32).contiguous(), r = ref.to(DType::F32).contiguous();
  if (g.dim() != 2 || g.size(1) != 7 || r.dim() != 2 || r.size(1) != 7) {
    a.first_mismatch = "bad shapes " + g.str() + " vs " + r.str();
    return a;
  }
  const float *G = g.data<float>(), *R = r.data<float>();
  a.ref_rows = r.size(0);
  a.got_rows = g.size(0);
  for (int64_t i = 1; i < a.got_rows; ++i)
    if (G[i * 7] == G[(i - 1) * 7] && G[i * 7 + 5] > G[(i - 1) * 7 + 5]) a.sorted = false;
  std::vector<bool> used(a.got_rows, false);
  for (int64_t j = 0; j < a.ref_rows; ++j) {
    const float* rr = R + j * 7;
    int64_t best = -1;
    double best_dc = 0, best_dxy = 0;
    for (int64_t i = 0; i < a.got_rows; ++i) {
      const float* gg = G + i * 7;
      if (used[i] || gg[0] != rr[0] || gg[6] != rr[6]) continue;
      double dc = std::fabs(gg[5] - rr[5]), dxy = 0;
      for (int k = 1; k < 5; ++k) dxy = std::max(dxy, double(std::fabs(gg[k] - rr[k])));
      if (dc <= conf_tol && dxy <= xy_tol && (best < 0 || std::llabs(i - j) < std::llabs(best - j))) {
        best = i, best_dc = dc, best_dxy = dxy;
      }
    }
    if (best >= 0) {
      used[best] = true;
      ++a.matched;
      a.max_xy = std::max(a.max_xy, best_dxy);
      a.max_conf = std::max(a.max_conf, best_dc);
    } else if (a.first_mismatch.empty()) {
      a.first_mismatch = "reference row " + std::to_string(j) + " (conf " + std::to_string(rr[5]) + ") unmatched";
    }
  }
  if (a.first_mismatch.empty() && a.got_rows != a.ref_rows)
    a.first_mismatch = std::to_string(a.got_rows) + " rows vs " + std::to_string(a.ref_rows);
  return a;
}

// Checks that NMS rows of ours (img, x1, y1, x2, y2, conf, cls) are a valid result of upstream's
// greedy non_max_suppression (multi_label off, not agnostic) over the REFERENCE predictions
// `pred` [B,N,5+nc], for some processing order that differs from upstream's only among candidates
// whose confidences tie within conf_tol (float noise of that size reorders them, and a reordered
// tie can flip which of two overlapping boxes survives). Concretely, per image:
//  - every row maps to a distinct reference candidate (same class, coords within xy_tol, conf
//    within conf_tol) that passes the confidence thresholds;
//  - no two kept boxes of one class overlap with IoU > iou_thres (+1e-5);
//  - every candidate that was not kept is explained: a kept box of its class with conf not below
//    its conf - conf_tol overlaps it with IoU > iou_thres (-1e-5), or it lies below the max_det
//    cut (conf <= lowest kept conf + conf_tol), or its conf is within conf_tol of conf_thres.
// Returns "" when valid, else the first violation.
inline std::string nms_valid_under_ties(const Tensor& rows_in, const Tensor& pred_in, double conf_thres, double iou_thres,
                                        int max_det = 300, double xy_tol = 1e-3, double conf_tol = 1e-4) {
  Tensor rows = rows_in.to(DType::F32).contiguous(), pred = pred_in.to(DType::F32).contiguous();
  const float* P = pred.data<float>();
  const float* Rw = rows.data<float>();
  int64_t B = pred.size(0), N = pred.size(1), no = pred.size(2), nr = rows.size(0);
  struct Cand { float x1, y1, x2, y2, conf; int cls; };
  auto iou = [](const Cand& a, const Cand& b) {
    double iw = std::max(0.0, double(std::min(a.x2, b.x2)) - std::max(a.x1, b.x1));
    double ih = std::max(0.0, double(std::min(a.y2, b.y2)) - std::max(a.y1, b.y1));
    double inter = iw * ih;
    double ua = double(a.x2 - a.x1) * (a.y2 - a.y1) + double(b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    return ua > 0 ? inter / ua : 0.0;
  };
  for (int64_t b = 0; b < B; ++b) {
    std::vector<Cand> cands;
    for (int64_t n = 0; n < N; ++n) {
      const float* q = P + (b * N + n) * no;
      if (!(q[4] > float(conf_thres))) continue;
      int best = 0;
      float bc = q[5] * q[4];
      for (int64_t c = 1; c < no - 5; ++c)
        if (q[5 + c] * q[4] > bc) bc = q[5 + c] * q[4], best = int(c);
      if (!(bc > float(conf_thres))) continue;
      cands.push_back({q[0] - q[2] / 2, q[1] - q[3] / 2, q[0] + q[2] / 2, q[1] + q[3] / 2, bc, best});
    }
    std::vector<int> kept;
    std::vector<bool> is_kept(cands.size(), false);
    float min_conf = 2;
    for (int64_t r = 0; r < nr; ++r) {
      const float* w = Rw + r * 7;
      if (int64_t(w[0]) != b) continue;
      int hit = -1;
      for (size_t c = 0; c < cands.size() && hit < 0; ++c) {
        const Cand& k = cands[c];
        if (is_kept[c] || k.cls != int(w[6]) || std::fabs(k.conf - w[5]) > conf_tol) continue;
        if (std::fabs(k.x1 - w[1]) <= xy_tol && std::fabs(k.y1 - w[2]) <= xy_tol && std::fabs(k.x2 - w[3]) <= xy_tol &&
            std::fabs(k.y2 - w[4]) <= xy_tol)
          hit = int(c);
      }
      if (hit < 0) return "image " + std::to_string(b) + ": row " + std::to_string(r) + " matches no reference candidate";
      is_kept[hit] = true;
      kept.push_back(hit);
      min_conf = std::min(min_conf, cands[hit].conf);
    }
    if (int(kept.size()) > max_det) return "more than max_det rows";
    for (size_t i = 0; i < kept.size(); ++i)
      for (size_t j = i + 1; j < kept.size(); ++j) {
        const Cand &a = cands[kept[i]], &c = cands[kept[j]];
        if (a.cls == c.cls && iou(a, c) > iou_thres + 1e-5)
          return "image " + std::to_string(b) + ": kept boxes overlap (IoU " + std::to_string(iou(a, c)) + ")";
      }
    for (size_t c = 0; c < cands.size(); ++c) {
      if (is_kept[c]) continue;
      const Cand& k = cands[c];
      if (std::fabs(k.conf - conf_thres) <= conf_tol) continue;
      if (int(kept.size()) == max_det && k.conf <= min_conf + conf_tol) continue;
      bool explained = false;
      for (int s : kept) {
        const Cand& a = cands[s];
        if (a.cls == k.cls && a.conf >= k.conf - conf_tol && iou(a, k) > iou_thres - 1e-5) {
          explained = true;
          break;
        }
      }
      if (!explained)
        return "image " + std::to_string(b) + ": candidate (conf " + std::to_string(k.conf) + ", cls " + std::to_string(k.cls) +
               ") is neither kept nor suppressed";
    }
  }
  return "";
}

}  // namespace y7::test
