#include "train/trainer_loss.h"

#include "graph/modules.h"
#include "train/hyp.h"
#include "train/loss.h"

namespace y7::train {

struct TrainLoss::Impl {
  LossConfig cfg;
};

TrainLoss::TrainLoss(const std::string& hyp_path, double label_smoothing, const graph::DetectLayer& det, int nc,
                     int imgsz)
    : impl_(std::make_unique<Impl>()) {
  Hyp h = load_hyp(hyp_path);
  scale_hyp(h, det.nl, nc, imgsz);
  h.label_smoothing = label_smoothing;
  impl_->cfg = loss_config_for(det, h, 1.0);
}

TrainLoss::~TrainLoss() = default;

std::array<double, 3> TrainLoss::val_loss(const std::vector<Tensor>& raw, const Tensor& targets) const {
  LossConfig plain = impl_->cfg;
  plain.kind = LossKind::Plain;
  const size_t nl = plain.stride.size();  // lead levels (IAuxDetect's eval forward has no aux maps)
  std::vector<Tensor> lead(raw.begin(), raw.begin() + std::min(nl, raw.size()));
  LossResult r = compute_loss(lead, targets, 0, plain, false);
  return {r.lbox, r.lobj, r.lcls};
}

StepLoss TrainLoss::operator()(const std::vector<Tensor>& raw, const Tensor& targets, int64_t img_h) const {
  LossResult r = compute_loss(raw, targets, img_h, impl_->cfg, true);
  StepLoss s;
  s.lbox = r.lbox, s.lobj = r.lobj, s.lcls = r.lcls, s.total = r.total, s.loss = r.loss;
  s.grads = std::move(r.grads);
  return s;
}

}  // namespace y7::train
