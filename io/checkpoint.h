// Upstream .pt checkpoints: torch.save zip archives (data.pkl + data/<key> storages), read without
// executing anything. Only allowlisted globals are resolved (io/pickle.h); tensors are views over
// the mmap'ed archive.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <set>
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
  // Additions: state_dict order (as upstream's model.state_dict() lists it), which of the entries are
  // buffers (the rest are parameters), and Model.nc (falls back to yaml['nc']; -1 if neither).
  std::vector<std::string> order;
  std::set<std::string> buffers;
  int64_t nc = -1;
  int64_t num_parameters() const;         // elements over parameters (buffers excluded)
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
// The same from a buffer (copied once into private aligned memory that the tensors keep alive).
Checkpoint load_checkpoint_from_memory(const void* data, size_t size, const std::string& name = "<memory>");

// A plain {name: tensor} dict saved with torch.save (e.g. the fixtures' grads.pt).
std::map<std::string, Tensor> load_tensor_dict(const std::string& path);

// ---- lower level (also used by the fuzz target)
class ZipArchive;
struct PickleResult;
// Unpickles "<prefix>data.pkl" of a torch.save archive; storages become views of "<prefix>data/<key>".
PickleResult load_torch_pickle(const ZipArchive& zip);
// Interprets an unpickled tree: a dict with model/ema/epoch/... (or a bare models.yolo.Model).
Checkpoint checkpoint_from_pickle(const PickleResult& r);
// A models.yolo.Model object -> record (state_dict names, yaml, names, stride, ...).
ModelRecord model_record_from(const PickleValue& model);
// Converts a python value of plain data (None, bool, int, float, str, list, tuple, dict) to YAML.
YAML::Node pickle_to_yaml(const PickleValue& v);

}  // namespace y7::io
