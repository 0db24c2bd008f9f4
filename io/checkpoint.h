// Upstream .pt checkpoints: torch.save zip archives (data.pkl + data/<key> storages), read without
// executing anything. Only allowlisted globals are resolved (io/pickle.h); tensors are views over
// the mmap'ed archive.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/tensor.h"

namespace y7::io {

struct PickleValue;  // generic object tree (io/pickle.h)

// A models.yolo.Model object found in a checkpoint.
struct ModelRecord {
  YAML::Node yaml;                        // Model.yaml: the cfg dict (nc, depth/width_multiple, anchors, backbone, head)
  std::map<std::string, Tensor> state;    // state_dict names -> tensors as stored (fp16/fp32), parameters + buffers
  std::vector<std::string> names;         // class names (Model.names), may be empty
  std::vector<float> stride;              // Model.stride, may be empty
  std::string detect_type;                // "Detect", "IDetect", "IAuxDetect"
  bool has_fused_layers = false;          // true when the pickled model was already fused (no bn in Conv)
};

struct Checkpoint {
  std::optional<ModelRecord> model;  // ckpt['model']
  std::optional<ModelRecord> ema;    // ckpt['ema'] (training checkpoints)
  int64_t epoch = -1;
  std::optional<double> best_fitness;
  std::optional<int64_t> updates;
  std::shared_ptr<PickleValue> root;  // the whole unpickled tree (optimizer state etc.)
};

// Throws y7::Error with a one-line message on any malformed or hostile input.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace y7::io
