// upstream utils/autoanchor.py: check_anchors (best possible recall of the model's anchors over the
// data set's label sizes, ratio threshold anchor_t) and kmean_anchors (k-means on whitened sizes,
// then a genetic evolution: 1000 generations, mutation probability 0.9, sigma 0.1). Random draws
// are seeded (std::mt19937_64), so results are reproducible but not numpy's.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace y7::graph {
class Model;
}

namespace y7::train {

class Dataset;

struct AnchorMetric {
  double bpr = 0, aat = 0;  // best possible recall, anchors above threshold per target
};
// wh: label sizes in pixels; anchors in pixels; thr = anchor_t.
AnchorMetric anchor_metric(const std::vector<std::array<float, 2>>& wh, const std::vector<std::array<float, 2>>& anchors,
                           double thr);
// Label sizes as check_anchors sees them (letterboxed to img_size, scale jitter 0.9-1.1 when
// jitter is set).
std::vector<std::array<float, 2>> label_sizes(const Dataset& ds, int img_size, bool jitter, uint64_t seed);
// n anchors sorted by area (ascending).
std::vector<std::array<float, 2>> kmean_anchors(const std::vector<std::array<float, 2>>& wh0, int n, double thr,
                                                int gen = 1000, uint64_t seed = 0, bool verbose = false);
// Prints the metric; when bpr < 0.98 computes new anchors and installs them in the Detect head if
// they recall better. Returns the final metric.
AnchorMetric check_anchors(const Dataset& ds, graph::Model& model, double thr = 4.0, int img_size = 640,
                           uint64_t seed = 0);

}  // namespace y7::train
