// A YOLOv7 network built from its cfg (the yaml dict of upstream's models.yolo.Model), with every
// module of cfg/training and cfg/deploy, weights bound by upstream state_dict names.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/tensor.h"

namespace y7::graph {

class Layer;  // one entry of the cfg's backbone+head list (graph/modules.h)

struct LayerInfo {
  int index;
  std::vector<int> from;
  int repeats;
  int64_t params;
  std::string type;  // upstream's module type string, e.g. "models.common.Conv"
  std::string args;  // arguments as upstream prints them
};

class Model {
 public:
  // Builds from a cfg dict. nc_override > 0 replaces the cfg's nc (as upstream's Model(cfg, nc=)).
  static std::unique_ptr<Model> from_yaml(const YAML::Node& cfg, int ch = 3, int nc_override = -1);
  static std::unique_ptr<Model> from_yaml_file(const std::string& path, int ch = 3, int nc_override = -1);
  ~Model();

  // Binds weights by upstream state_dict names (any float dtype; stored as float32). strict: every
  // model parameter/buffer must be present with the right shape, and no unknown keys.
  void load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true);
  std::map<std::string, Tensor> state_dict() const;

  // Upstream Model.fuse(): RepConv re-parameterization, Conv+BN folding, implicit folding into the
  // head convs. Idempotent.
  void fuse();
  bool fused() const { return fused_; }

  struct Output {
    Tensor pred;              // [B, N, 5+nc] decoded predictions
    std::vector<Tensor> raw;  // per lead level [B, na, H, W, 5+nc], before sigmoid
  };
  Output forward(const Tensor& x);  // eval-mode inference (x: [B,3,H,W] float32)

  int nc() const { return nc_; }
  int num_anchors() const;
  const std::vector<float>& stride() const { return stride_; }
  std::vector<std::string> names;  // class names (defaults "0".."nc-1")
  const YAML::Node& yaml() const { return yaml_; }

  std::vector<LayerInfo> layers() const;
  int64_t num_parameters() const;
  double gflops(int img_h = 640, int img_w = 640) const;  // 2*MACs of the convs at that input size

 private:
  Model();
  YAML::Node yaml_;
  int nc_ = 80;
  std::vector<float> stride_;
  bool fused_ = false;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> save_;
  friend struct ModelBuilder;
};

// Loads a .pt checkpoint (ckpt['ema'] if present, else ckpt['model']) into a Model (float32,
// eval mode). The one call behind --weights; the C++ replacement for hubconf.py / attempt_load.
std::unique_ptr<Model> load_model(const std::string& weights_path);

}  // namespace y7::graph
