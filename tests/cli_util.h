// Helpers for tests that run the yolo7 binary and compare against upstream fixtures.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

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

inline std::string fixtures() { return Y7_SHARED_FIXTURES; }

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

}  // namespace y7::test
