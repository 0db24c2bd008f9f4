// Training hyperparameters, as upstream's data/hyp.*.yaml files hold them, plus the scaling that
// upstream train.py applies before building the losses.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace y7::train {

struct Hyp {
  // Optimizer / schedule.
  double lr0 = 0.01, lrf = 0.1, momentum = 0.937, weight_decay = 0.0005;
  double warmup_epochs = 3.0, warmup_momentum = 0.8, warmup_bias_lr = 0.1;
  // yolo7 extensions (optional keys, absent from upstream's files): the minimum warmup length and
  // the nominal batch size, fixed in train.py at 1000 iterations and 64 images. Small data sets
  // and quick runs (the shapes set) lower them to get more optimizer steps out of few images.
  double warmup_min_iters = 1000, nbs = 64;
  // Loss gains and settings (the loss reads these).
  double box = 0.05, cls = 0.3, cls_pw = 1.0, obj = 0.7, obj_pw = 1.0;
  double iou_t = 0.2, anchor_t = 4.0, fl_gamma = 0.0;
  double label_smoothing = 0.0;  // not in the yaml files: train.py sets it from --label-smoothing
  // Augmentation.
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4, degrees = 0.0, translate = 0.2, scale = 0.9;
  double shear = 0.0, perspective = 0.0, flipud = 0.0, fliplr = 0.5, mosaic = 1.0, mixup = 0.15;
  double copy_paste = 0.0, paste_in = 0.15;
  double loss_ota = 1.0;  // 1: ComputeLossOTA (train.py), 0: plain ComputeLoss

  // Every key read from the yaml (also unknown ones), in file order, with its numeric value.
  std::vector<std::pair<std::string, double>> values;
  bool has(const std::string& key) const;
  // Known keys read the field (so direct field edits show), others the yaml value; throws if absent.
  double get(const std::string& key) const;
  void set(const std::string& key, double v);  // known keys update the field too
};

// Parses a hyp yaml document (a flat map of numbers). The keys that upstream's train.py and loss
// read unconditionally (lr0 ... loss_ota, see hyp.cpp) are required, `label_smoothing` is optional
// (default 0). `what` names the source in error messages.
Hyp parse_hyp(const std::string& yaml_text, const std::string& what = "hyp");
Hyp load_hyp(const std::string& path);

// train.py's scaling: box *= 3/nl; cls *= nc/80 * 3/nl; obj *= (imgsz/640)^2 * 3/nl.
void scale_hyp(Hyp& h, int nl, int nc, int imgsz);

}  // namespace y7::train
