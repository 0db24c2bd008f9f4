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
  bool from_list = false;  // `from` was a list in the cfg (upstream prints [-1, -2] rather than -1)
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
  Output forward(const Tensor& x);  // eval-mode inference (x: [B,3,H,W] float32), without autograd

  // Training mode (upstream model.train()): train(true) makes every parameter (not the buffers)
  // a leaf that requires grad; forward_train then runs BatchNorm on batch statistics (updating
  // running_mean/var with momentum 0.03 and num_batches_tracked) and returns the raw per-level
  // head maps [B,na,H,W,no] that upstream's Detect returns in training mode (lead levels, then
  // IAuxDetect's aux levels), connected to the autograd graph (y7::backward). forward() stays
  // the eval path whatever the mode. A fused model cannot be trained.
  void train(bool on = true);
  bool training() const { return training_; }
  std::vector<Tensor> forward_train(const Tensor& x);
  // Parameters (no buffers) by state_dict name; the pointers stay valid for the model's life
  // (until load_state_dict/fuse replace the tensors). grad() of each is its accumulated gradient.
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  void zero_grad();
  // Drops cached oneDNN weights after the parameters were changed in place (optimizer steps).
  void reset_caches();
  // Run the activations channels-last (NHWC memory, NCHW sizes), the layout the oneDNN
  // convolutions compute in; false keeps plain NCHW (results agree to float rounding).
  bool channels_last = true;

  int nc() const { return nc_; }
  int num_anchors() const;
  const std::vector<float>& stride() const { return stride_; }
  std::vector<std::string> names;  // class names (defaults "0".."nc-1")
  const YAML::Node& yaml() const { return yaml_; }

  std::vector<LayerInfo> layers() const;
  int64_t num_parameters() const;
  // Upstream model_info()'s GFLOPS: 2 x the multiply-accumulates of every convolution in the
  // graph (including IAuxDetect's auxiliary heads, as upstream profiles the whole model), counted
  // at a stride-sized input and scaled to img_h x img_w. BatchNorm/activations are not counted.
  double gflops(int img_h = 640, int img_w = 640) const;
  // len(list(model.modules())) of the upstream model ("Model Summary: N layers").
  int num_modules() const;

  int in_channels() const { return ch_; }
  int num_layers() const { return int(layers_.size()); }
  Layer& layer(int i) const { return *layers_.at(i); }
  const std::vector<int>& save_list() const { return save_list_; }  // upstream Model.save
  // Re-initialises every parameter like a freshly constructed upstream model (torch default conv
  // init, BatchNorm 1/0/0/1, implicit N(0|1, .02), Detect prior biases), deterministically.
  void init_weights(uint64_t seed = 0);

 private:
  Model();
  struct Plan;
  const Plan& plan_for(const Shape& in);
  std::vector<Shape> infer_shapes(const Shape& in, bool all_layers) const;

  YAML::Node yaml_;
  int nc_ = 80;
  int ch_ = 3;
  std::vector<float> stride_;
  bool fused_ = false;
  bool training_ = false;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> save_;
  std::vector<int> save_list_;
  std::vector<std::vector<int>> inputs_;  // resolved input layer indices per layer (-1 = the image)
  std::vector<bool> live_;                // layers needed for the lead detection outputs
  std::shared_ptr<Plan> plan_;
  friend struct ModelBuilder;
};

// Loads a .pt checkpoint (ckpt['ema'] if present, else ckpt['model']) into a Model (float32,
// eval mode). The one call behind --weights; the C++ replacement for hubconf.py / attempt_load.
// The model comes back unfused (it reproduces upstream's eval outputs, and can be trained on);
// upstream attempt_load() also calls .fuse(), so detect/test-style inference should call fuse().
// Checkpoints saved after Model.fuse() (conv biases, rbr_reparam) load into a fused model.
std::unique_ptr<Model> load_model(const std::string& weights_path);

}  // namespace y7::graph
