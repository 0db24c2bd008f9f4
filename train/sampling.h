// --image-weights: upstream's utils/general.py labels_to_class_weights / labels_to_image_weights and
// train.py's per-epoch weighted draw (random.choices(range(n), weights=iw, k=n)).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "train/dataset.h"

namespace y7::train {

// Inverse class frequencies over all labels, normalized to sum 1 (absent classes count as 1).
std::vector<double> labels_to_class_weights(const std::vector<NBoxes>& labels, int nc);
// Per image: sum over its labels of class_weights[cls].
std::vector<double> labels_to_image_weights(const std::vector<NBoxes>& labels, int nc,
                                            const std::vector<double>& class_weights);
// k draws with replacement, P(i) proportional to weights[i] (random.choices: a uniform draw times
// the total, bisected into the cumulative weights). Throws if no weight is positive.
std::vector<size_t> weighted_choices(const std::vector<double>& weights, size_t k, std::mt19937_64& rng);

}  // namespace y7::train
