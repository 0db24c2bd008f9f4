// YOLOv7 training losses (upstream utils/loss.py: ComputeLoss, ComputeLossOTA, ComputeLossAuxOTA)
// on the raw head maps, with hand-written gradients w.r.t. those maps.
//
// Inputs follow upstream's training-mode Detect output: one float32 tensor [B, na, H, W, nc+5] per
// level (raw, before sigmoid), the lead levels first, then (AuxOTA only) the aux levels in the same
// order. Targets are float32 [n, 6] rows (image, class, cx, cy, w, h), normalized to [0, 1].
//
// Semantics mirror upstream exactly, including its quirks:
//  * OTA: candidates from find_3_positive (lead; and find_5_positive for the aux assignment, both on
//    the LEAD maps), cost = BCE(logit(sqrt(sig(cls)*sig(obj))), one_hot) summed over classes
//    + 3 * -log(IoU + 1e-8), dynamic k = max(1, int(sum of the top-10 IoUs)) (top-20 in AuxOTA),
//    a column matched by several targets goes to its cheapest one. The assignment is computed in
//    float32 in upstream's operation order and carries no gradient.
//  * The OTA target boxes are scaled to pixels by the image HEIGHT for both x and y (upstream uses
//    imgs[i].shape[1]); pass the real image height.
//  * CIoU's alpha is a constant for the gradient (computed under no_grad upstream); the objectness
//    target (1-gr) + gr*clamp(iou, 0) is detached; several positives on one cell: the last one's
//    objectness target wins, and each contributes its own box/class terms.
//  * Balance per level: nl=3 -> [4, 1, 0.4], else [4, 1, 0.25, 0.06, 0.02]; autobalance off.
//    AuxOTA weighs aux box/class/objectness terms by 0.25.
//  * Label smoothing (hyp.label_smoothing), pos_weight (cls_pw, obj_pw), FocalLoss (fl_gamma > 0,
//    alpha 0.25) wrap both the class and the objectness BCE, as upstream.
//  * With no target at all, only the objectness term (against zeros) remains (upstream's OTA path
//    fails on CPU there; on GPU it computes exactly this).
#pragma once
#include <vector>

#include "core/tensor.h"
#include "train/hyp.h"

namespace y7::graph {
class DetectLayer;
}

namespace y7::train {

enum class LossKind { Plain, OTA, AuxOTA };

struct LossConfig {
  LossKind kind = LossKind::OTA;
  int nc = 80;
  Tensor anchors;              // float32 [nl, na, 2], grid units (Detect's `anchors` buffer)
  std::vector<float> stride;   // per lead level, e.g. {8, 16, 32}
  Hyp hyp;                     // already scaled (scale_hyp), as train.py hands it to the loss
  double gr = 1.0;             // model.gr, the objectness target's IoU ratio
};

// Kind from the layer (IAuxDetect -> AuxOTA, else OTA, or Plain when hyp.loss_ota == 0), with its
// nc, anchors and strides.
LossConfig loss_config_for(const graph::DetectLayer& det, const Hyp& hyp, double gr = 1.0);

struct LossResult {
  // Upstream's second return value: per-image losses (hyp gains applied) and their sum.
  double lbox = 0, lobj = 0, lcls = 0, total = 0;
  // Upstream's first return value, the one train.py backpropagates: total * batch size.
  double loss = 0;
  // When requested: d(loss)/d(raw[i]), float32, shape of raw[i] (contiguous).
  std::vector<Tensor> grads;
  // Number of positives (assigned cells) per map, lead then aux.
  std::vector<int64_t> num_positives;
};

namespace detail {
// Test hook for finite-difference checks: the quantities upstream detaches (CIoU's alpha and the
// objectness target of each positive, in evaluation order). replay=false records them, replay=true
// uses the recorded values instead of recomputing them.
struct Frozen {
  bool replay = false;
  std::vector<double> alpha, tobj;
};
}  // namespace detail

// img_h: height in pixels of the (letterboxed) network input; only OTA/AuxOTA use it (see above).
LossResult compute_loss(const std::vector<Tensor>& raw, const Tensor& targets, int64_t img_h,
                        const LossConfig& cfg, bool want_grads,
                        detail::Frozen* frozen = nullptr);

}  // namespace y7::train
