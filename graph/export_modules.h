// The module object tree that upstream PyTorch pickles for a models.yolo.Model, rebuilt from a
// graph::Model: every torch.nn.Module's __dict__ (training flag, _parameters/_buffers/_modules
// OrderedDicts, hook dicts, the per-class attributes of Conv2d, BatchNorm2d, MaxPool2d, Upsample,
// activations, and of upstream's Conv, RepConv, MP, SP, SPPCSPC, DownC, Concat, Shortcut, ReOrg,
// ImplicitA/M, Detect/IDetect/IAuxDetect, Model), so that torch.load plus upstream's code gives a
// working model (attempt_load(): .float().fuse().eval() and forward).
//
// Fused graphs are written in a form upstream can run and attempt_load() can fuse again without
// harm: a fused Conv becomes nn.Sequential(OrderedDict(conv=Conv2d(bias), act=...)) (same state_dict
// names as upstream's fused Conv, whose bound-method `forward` cannot be pickled safely), a fused
// RepConv has deploy=True with rbr_reparam, and a fused IDetect/IAuxDetect becomes a
// models.yolo.Detect (same forward as their fuseforward) that keeps ia/im/m2 as unused children.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/dtype.h"
#include "io/pickle_writer.h"

namespace y7::graph {

class Model;

struct ExportOptions {
  DType dtype = DType::F16;    // floating parameters and buffers (upstream saves .half())
  bool training = false;       // every module's `training` flag
  bool requires_grad = false;  // parameters' requires_grad (strip_optimizer sets False)
  std::string yaml_file;       // Model.yaml_file (set when upstream built the model from a cfg file)
  // Extra Model attributes appended after `stride` (train.py sets nc, hyp, gr, class_weights).
  std::vector<std::pair<std::string, io::PyRef>> model_attrs;
};

io::PyRef export_model(const Model& model, const ExportOptions& opt = {});

// The cfg dict as python data (ints, floats, bools, None, strings, lists, dicts), typed the way
// PyYAML's safe loader types plain scalars.
io::PyRef yaml_to_py(const YAML::Node& node);

}  // namespace y7::graph
