#include "train/sampling.h"

#include <algorithm>

#include "core/error.h"

namespace y7::train {

std::vector<double> labels_to_class_weights(const std::vector<NBoxes>& labels, int nc) {
  Y7_CHECK(nc > 0, "class weights: nc must be positive");
  std::vector<double> w(size_t(nc), 0.0);
  for (const auto& img : labels)
    for (const auto& r : img) {
      const int c = int(r[0]);
      Y7_CHECK(c >= 0 && c < nc, "class weights: label class ", c, " outside [0, ", nc, ")");
      w[size_t(c)] += 1;
    }
  double s = 0;
  for (double& v : w) {
    if (v == 0) v = 1;  // classes without labels
    v = 1.0 / v;
    s += v;
  }
  for (double& v : w) v /= s;
  return w;
}

std::vector<double> labels_to_image_weights(const std::vector<NBoxes>& labels, int nc,
                                            const std::vector<double>& class_weights) {
  Y7_CHECK(int(class_weights.size()) == nc, "image weights: ", class_weights.size(), " class weights for nc=", nc);
  std::vector<double> out;
  out.reserve(labels.size());
  for (const auto& img : labels) {
    double s = 0;
    for (const auto& r : img) {
      const int c = int(r[0]);
      Y7_CHECK(c >= 0 && c < nc, "image weights: label class ", c, " outside [0, ", nc, ")");
      s += class_weights[size_t(c)];
    }
    out.push_back(s);
  }
  return out;
}

std::vector<size_t> weighted_choices(const std::vector<double>& weights, size_t k, std::mt19937_64& rng) {
  std::vector<double> cum(weights.size());
  double t = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    Y7_CHECK(weights[i] >= 0, "weighted choice: negative weight");
    cum[i] = (t += weights[i]);
  }
  Y7_CHECK(t > 0, "weighted choice: all weights are zero");
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<size_t> out(k);
  for (size_t j = 0; j < k; ++j) {
    const double x = u(rng) * t;
    // bisect_right(cum, x), clamped like random.choices' hi = n - 1
    size_t i = size_t(std::upper_bound(cum.begin(), cum.end(), x) - cum.begin());
    out[j] = std::min(i, weights.size() - 1);
  }
  return out;
}

}  // namespace y7::train
