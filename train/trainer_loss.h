// The loss side of the trainer: reads the loss hyp (train/hyp.h) and wraps train/loss.h for the
// training step, so the trainer itself only sees the numbers it needs.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace y7::graph {
class DetectLayer;
}

namespace y7::train {

struct StepLoss {
  double lbox = 0, lobj = 0, lcls = 0, total = 0, loss = 0;
  std::vector<Tensor> grads;
};

class TrainLoss {
 public:
  // Loads the hyp file, sets label_smoothing, applies train.py's scaling for (nl, nc, imgsz).
  TrainLoss(const std::string& hyp_path, double label_smoothing, const graph::DetectLayer& det, int nc, int imgsz);
  ~TrainLoss();
  StepLoss operator()(const std::vector<Tensor>& raw, const Tensor& targets, int64_t img_h) const;
  // train.py's validation loss: plain ComputeLoss (no OTA) on the eval forward's raw lead maps,
  // [box, obj, cls] per image as test.py sums them.
  std::array<double, 3> val_loss(const std::vector<Tensor>& raw, const Tensor& targets) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace y7::train
