// Detection metrics with upstream YOLOv7 semantics (test.py's per-image matching and
// utils/metrics.py ap_per_class / compute_ap / fitness).
//
// Exactness notes:
//  * IoU is computed in float32 like utils/general.py box_iou (inter / (area1 + area2 - inter)),
//    without FMA contraction, and compared with the float32 torch.linspace(0.5, 0.95, 10).
//  * The matching loop is test.py's, quirks included: per target class (ascending), detections of
//    that class (in input order, i.e. descending confidence after NMS) take their best-IoU target of
//    the class; a detection whose best target was already taken is NOT re-matched to another target,
//    and the whole image stops as soon as every label of the image was taken once (the shared
//    `detected` list). The correct row of a matched detection is `best_iou > iouv` at all 10
//    thresholds, even those the best IoU does not reach.
//  * ap_per_class works in double like numpy: np.argsort(-conf) reproduced with numpy 1.24's own
//    (unstable) introsort, so tied confidences keep upstream's order (a weak model gives many ties;
//    later numpy versions on AVX-512 machines use a different argsort),
//    np.interp-exact recall/precision at px = linspace(0, 1, 1000), max mean-F1 index for P and R,
//    compute_ap with the 101-point 'interp' (default, as upstream) or 'continuous' integration, and
//    numpy's pairwise summation for trapz and means.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace y7::train {

constexpr int kNumIou = 10;
// torch.linspace(0.5, 0.95, 10) in float32.
const std::array<float, kNumIou>& iou_vector();

struct Detection {  // a prediction row (x1, y1, x2, y2, conf, cls), pixels
  float x1, y1, x2, y2, conf, cls;
};
struct Label {  // a target row (cls, x1, y1, x2, y2), pixels
  float cls, x1, y1, x2, y2;
};

// box_iou for one pair, float32 upstream arithmetic.
float box_iou(const float* a, const float* b);

// test.py's correct matrix for one image: pred.size() rows of kNumIou flags (row-major).
std::vector<uint8_t> match_image(const std::vector<Detection>& pred, const std::vector<Label>& labels);

// The accumulated (correct, conf, pcls, tcls) statistics of test.py.
struct MetricStats {
  std::vector<uint8_t> correct;  // n x kNumIou
  std::vector<float> conf, pcls;
  std::vector<double> tcls;      // label classes (Python floats upstream)
  int64_t seen = 0;              // images seen
  bool any_image = false;        // upstream's len(stats) != 0

  // Matches one image and appends like test.py (an image with neither predictions nor labels adds
  // nothing but still counts in seen).
  void add_image(const std::vector<Detection>& pred, const std::vector<Label>& labels);
  size_t num_predictions() const { return conf.size(); }
  bool any_correct() const;
};

enum class ApMethod { Interp, Continuous };

struct ApCurve {
  double ap = 0;
  std::vector<double> mpre, mrec;  // envelope precision and recall with sentinels
};
// compute_ap(recall, precision, v5_metric): sentinels (0, ..., recall[-1] + 0.01) for the recall
// (or (0, ..., 1.0) with v5_metric) and (1, ..., 0) for the precision, precision envelope, then
// the area under it.
ApCurve compute_ap(const std::vector<double>& recall, const std::vector<double>& precision, bool v5_metric = false,
                   ApMethod method = ApMethod::Interp);

struct ApPerClass {
  std::vector<int> classes;                       // unique target classes, ascending
  std::vector<double> p, r, f1;                   // at the max mean-F1 confidence
  std::vector<std::array<double, kNumIou>> ap;    // per class and IoU threshold
  std::vector<double> ap50, ap_mean;              // ap[:, 0] and ap.mean(1)
  int best_index = 0;                             // index into px of the max mean F1
};
ApPerClass ap_per_class(const MetricStats& s, bool v5_metric = false, ApMethod method = ApMethod::Interp);

// test.py's summary of the statistics: ap_per_class only when any prediction is correct at
// IoU 0.5 (else all zeros and, as upstream prints, 0 labels).
struct EvalResults {
  int64_t seen = 0;
  std::vector<int64_t> nt;  // labels per class (np.bincount(tcls, minlength=nc)); {0} when not computed
  int64_t n_labels = 0;     // nt.sum()
  double mp = 0, mr = 0, map50 = 0, map = 0;
  bool computed = false;
  ApPerClass per_class;
  std::vector<double> maps;  // per class mAP@.5:.95 (nc entries, the mean for absent classes)
};
EvalResults summarize(const MetricStats& s, int nc, bool v5_metric = false, ApMethod method = ApMethod::Interp);

// utils/metrics.py fitness: 0.1 * mAP@.5 + 0.9 * mAP@.5:.95 (weights 0, 0, 0.1, 0.9).
double fitness(double p, double r, double map50, double map);

// test.py's printed lines: ('%20s' + '%12s' * 6) header and ('%20s' + '%12i' * 2 + '%12.3g' * 4) rows.
std::string table_header();
std::string table_row(const std::string& name, int64_t images, int64_t labels, double p, double r, double map50,
                      double map);

// Machine-readable results: {"seen", "labels", "mp", "mr", "map50", "map", "fitness", "v5_metric",
// "computed", "per_class": {"<cls>": {"name", "labels", "p", "r", "ap50", "ap"}}, "maps": [...]},
// numbers printed with 17 significant digits. names may be empty (class indices are used).
std::string results_json(const EvalResults& e, const std::vector<std::string>& names, bool v5_metric);

// numpy-compatible helpers (exposed for tests).
double np_interp(double x, const std::vector<double>& xp, const std::vector<double>& fp, double left, double right);
double np_sum(const double* v, size_t n);  // numpy pairwise summation order
// np.argsort(v) (default kind, numpy 1.24 introsort for float32): the same permutation on ties.
std::vector<int64_t> np_argsort(const std::vector<float>& v);

}  // namespace y7::train
