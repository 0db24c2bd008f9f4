// Non-maximum suppression and box helpers with upstream YOLOv7 semantics
// (utils/general.py non_max_suppression / xywh2xyxy / box_iou, torchvision.ops.nms on CPU).
//
// Exactness notes (all verified against the upstream fixtures and torch 1.13):
//  * Every box quantity is computed in float32 exactly as upstream does (x1 = x - w/2, the class
//    offset boxes + cls*4096, areas (x2-x1)*(y2-y1), IoU = inter / (area_i + area_j - inter)),
//    with floating-point contraction disabled so that no FMA changes the rounding.
//  * conf_thres is compared in float32 (torch compares a float32 tensor with a Python float after
//    casting the scalar to float32); iou_thres is compared in double (torchvision does
//    `float ovr > double iou_threshold`).
//  * Score order on ties: torchvision.ops.nms sorts stably (equal scores keep their input order),
//    which we do. Upstream's max_nms cap uses Tensor.argsort(descending=True), which in torch 1.13
//    on CPU is NOT stable above 16 elements: it is libstdc++ std::sort over (score, index) pairs
//    with the comparator "a is NaN and b is not, or a > b"; we run that very sort there.
//  * The 10 s time limit of upstream is not reproduced (it only makes output nondeterministic).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace y7::ops {

struct NmsParams {
  double conf_thres = 0.25;  // candidates need obj > conf_thres and obj*cls > conf_thres
  double iou_thres = 0.45;   // IoU > iou_thres suppresses
  std::vector<int> classes;  // keep only these classes; empty = all
  bool agnostic = false;     // class-agnostic NMS (no per-class 4096 px offset)
  bool multi_label = false;  // every (box, class) pair above conf_thres (ignored when nc == 1)
  int max_det = 300;         // detections kept per image
  int max_nms = 30000;       // at most this many boxes (highest conf first) enter NMS
  // Optional a-priori labels for autolabelling (upstream `labels=`), one tensor per image (or an
  // empty vector): rows (cls, cx, cy, w, h) in pixels; appended with conf 1 after the candidate filter.
  std::vector<Tensor> labels;
};

// pred: [B, N, 5+nc] (xywh pixels, obj, nc class scores), any float dtype/strides.
// Returns B float32 tensors [n, 6]: rows (x1, y1, x2, y2, conf, cls), highest conf first.
std::vector<Tensor> non_max_suppression(const Tensor& pred, const NmsParams& p = {});

// torchvision.ops.nms: boxes [n,4] xyxy, scores [n]; returns kept indices (int64 [k]) in
// descending score order.
Tensor nms_indices(const Tensor& boxes, const Tensor& scores, double iou_thres);

// Box format conversions on [n,4] (float32 result, upstream arithmetic).
Tensor xywh2xyxy(const Tensor& boxes);
Tensor xyxy2xywh(const Tensor& boxes);
// Pairwise IoU [N,M] of xyxy boxes a [N,4] and b [M,4] (upstream box_iou, no +1).
Tensor box_iou(const Tensor& a, const Tensor& b);

}  // namespace y7::ops
