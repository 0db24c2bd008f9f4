#include "train/hyp.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace y7::train {
namespace {

struct Field {
  const char* key;
  double Hyp::*ptr;
  bool required;
};

const Field kFields[] = {
    {"lr0", &Hyp::lr0, true},
    {"lrf", &Hyp::lrf, true},
    {"momentum", &Hyp::momentum, true},
    {"weight_decay", &Hyp::weight_decay, true},
    {"warmup_epochs", &Hyp::warmup_epochs, true},
    {"warmup_momentum", &Hyp::warmup_momentum, true},
    {"warmup_bias_lr", &Hyp::warmup_bias_lr, true},
    {"box", &Hyp::box, true},
    {"cls", &Hyp::cls, true},
    {"cls_pw", &Hyp::cls_pw, true},
    {"obj", &Hyp::obj, true},
    {"obj_pw", &Hyp::obj_pw, true},
    {"iou_t", &Hyp::iou_t, true},
    {"anchor_t", &Hyp::anchor_t, true},
    {"fl_gamma", &Hyp::fl_gamma, true},
    {"hsv_h", &Hyp::hsv_h, true},
    {"hsv_s", &Hyp::hsv_s, true},
    {"hsv_v", &Hyp::hsv_v, true},
    {"degrees", &Hyp::degrees, true},
    {"translate", &Hyp::translate, true},
    {"scale", &Hyp::scale, true},
    {"shear", &Hyp::shear, true},
    {"perspective", &Hyp::perspective, true},
    {"flipud", &Hyp::flipud, true},
    {"fliplr", &Hyp::fliplr, true},
    {"mosaic", &Hyp::mosaic, true},
    {"mixup", &Hyp::mixup, true},
    {"copy_paste", &Hyp::copy_paste, true},
    {"paste_in", &Hyp::paste_in, true},
    {"loss_ota", &Hyp::loss_ota, true},
    {"label_smoothing", &Hyp::label_smoothing, false},
    {"warmup_min_iters", &Hyp::warmup_min_iters, false},
    {"nbs", &Hyp::nbs, false},
};

const Field* find_field(const std::string& k) {
  for (const Field& f : kFields)
    if (k == f.key) return &f;
  return nullptr;
}

}  // namespace

bool Hyp::has(const std::string& key) const {
  for (const auto& kv : values)
    if (kv.first == key) return true;
  return false;
}

double Hyp::get(const std::string& key) const {
  if (const Field* f = find_field(key)) return this->*(f->ptr);  // the field is authoritative
  for (const auto& kv : values)
    if (kv.first == key) return kv.second;
  fail("hyp: no key '", key, "'");
}

void Hyp::set(const std::string& key, double v) {
  if (const Field* f = find_field(key)) this->*(f->ptr) = v;
  for (auto& kv : values)
    if (kv.first == key) {
      kv.second = v;
      return;
    }
  values.emplace_back(key, v);
}

Hyp parse_hyp(const std::string& text, const std::string& what) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string m = e.what();
    for (char& c : m)
      if (c == '\n' || c == '\r') c = ' ';
    fail(what, ": invalid yaml: ", m);
  }
  Y7_CHECK(root.IsMap(), what, ": expected a map of hyperparameters");
  Hyp h;
  for (const auto& kv : root) {
    std::string key;
    try {
      key = kv.first.as<std::string>();
    } catch (const YAML::Exception&) {
      fail(what, ": a key is not a string");
    }
    Y7_CHECK(kv.second.IsScalar(), what, ": '", key, "' is not a number");
    double v = 0;
    try {
      v = kv.second.as<double>();
    } catch (const YAML::Exception&) {
      fail(what, ": '", key, "' is not a number: '", kv.second.Scalar(), "'");
    }
    Y7_CHECK(std::isfinite(v), what, ": '", key, "' is not finite");
    Y7_CHECK(!h.has(key), what, ": duplicate key '", key, "'");
    h.set(key, v);
  }
  for (const Field& f : kFields)
    Y7_CHECK(!f.required || h.has(f.key), what, ": missing key '", f.key, "'");
  Y7_CHECK(h.anchor_t > 0, what, ": anchor_t must be > 0");
  Y7_CHECK(h.fl_gamma >= 0, what, ": fl_gamma must be >= 0");
  Y7_CHECK(h.cls_pw >= 0 && h.obj_pw >= 0, what, ": cls_pw/obj_pw must be >= 0");
  Y7_CHECK(h.label_smoothing >= 0 && h.label_smoothing <= 1, what, ": label_smoothing must be in [0,1]");
  return h;
}

Hyp load_hyp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Y7_CHECK(f.good(), path, ": cannot open hyp file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_hyp(ss.str(), path);
}

void scale_hyp(Hyp& h, int nl, int nc, int imgsz) {
  Y7_CHECK(nl > 0 && nc > 0 && imgsz > 0, "scale_hyp: nl, nc and imgsz must be positive");
  // Same operation order as train.py (Python floats are doubles).
  h.set("box", h.box * (3.0 / nl));
  h.set("cls", h.cls * (double(nc) / 80.0 * 3.0 / nl));
  h.set("obj", h.obj * (std::pow(double(imgsz) / 640.0, 2) * 3.0 / nl));
}

}  // namespace y7::train
