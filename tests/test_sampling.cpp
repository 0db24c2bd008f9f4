// --image-weights: class/image weights against upstream's utils/general.py on a small label set
// (values printed by labels_to_class_weights / labels_to_image_weights), and the weighted draw.
#include <gtest/gtest.h>

#include "train/sampling.h"

using namespace y7::train;

TEST(ImageWeights, MatchUpstreamFormulas) {
  std::vector<NBoxes> labels = {
      {{0, .5f, .5f, .1f, .1f}, {2, .3f, .3f, .1f, .1f}}, {{2, .1f, .1f, .1f, .1f}}, {},
      {{1, .2f, .2f, .2f, .2f}, {2, .4f, .4f, .1f, .1f}, {2, .6f, .6f, .1f, .1f}}};
  // upstream: array([0.23529, 0.23529, 0.058824, 0.23529, 0.23529]) = [1, 1, 1/4, 1, 1] / 4.25
  auto cw = labels_to_class_weights(labels, 5);
  const double expect_cw[5] = {1 / 4.25, 1 / 4.25, 0.25 / 4.25, 1 / 4.25, 1 / 4.25};
  for (int c = 0; c < 5; ++c) EXPECT_NEAR(cw[c], expect_cw[c], 1e-15);
  // upstream: array([0.29412, 0.058824, 0, 0.35294])
  auto iw = labels_to_image_weights(labels, 5, cw);
  const double expect_iw[4] = {1.25 / 4.25, 0.25 / 4.25, 0, 1.5 / 4.25};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(iw[i], expect_iw[i], 1e-15);
  EXPECT_THROW(labels_to_class_weights(labels, 2), y7::Error);  // class 2 outside nc=2
}

TEST(ImageWeights, WeightedChoicesFollowTheWeights) {
  std::mt19937_64 rng(1);
  std::vector<double> w = {1, 0, 3, 6};
  auto idx = weighted_choices(w, 100000, rng);
  std::vector<int> n(4, 0);
  for (size_t i : idx) ++n[i];
  EXPECT_EQ(n[1], 0);  // zero weight: never drawn
  EXPECT_NEAR(n[0] / 1e5, 0.1, 0.005);
  EXPECT_NEAR(n[2] / 1e5, 0.3, 0.005);
  EXPECT_NEAR(n[3] / 1e5, 0.6, 0.005);
  EXPECT_THROW(weighted_choices({0, 0}, 3, rng), y7::Error);
}
