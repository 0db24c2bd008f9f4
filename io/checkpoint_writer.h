// Writes .pt checkpoints that torch.load (1.13) opens and upstream YOLOv7 code runs: a torch.save
// zip archive ("<archive>/data.pkl", "<archive>/data/<key>" storages aligned to 64 bytes,
// "<archive>/version" = 3), written atomically. The model object tree comes from
// graph/export_modules.h; our own reader (io/checkpoint.h) reads the files back.
#pragma once
#include <optional>
#include <string>

#include "io/pickle_writer.h"

namespace y7::graph {
class Model;
}

namespace y7::io {

// torch.save(obj, path): pickles `root` and stores its tensor storages. `archive_name` is the top
// folder inside the zip (torch uses the file's stem); empty = derived from `path` the same way.
void save_torch(const std::string& path, const Py& root, const std::string& archive_name = "");
// The same into memory (bytes of the zip).
std::string save_torch_to_memory(const Py& root, const std::string& archive_name = "archive");

// A checkpoint as upstream's strip_optimizer() leaves it: {'model': Model (fp16 unless !half),
// 'optimizer': None, 'training_results': None, 'epoch': -1, 'ema': None, 'updates': None,
// 'wandb_id': None}, parameters with requires_grad False, modules in eval mode.
void save_stripped_checkpoint(const std::string& path, const graph::Model& model, bool half = true);

// train.py's checkpoint dict. `model` is saved in training mode with requires_grad parameters (as
// deepcopy(model).half() of a training model), `ema` in eval mode without gradients.
struct TrainingCheckpoint {
  int64_t epoch = 0;
  std::optional<double> best_fitness;  // written as a numpy.float64 scalar; None when absent
  std::string training_results;        // the results.txt text
  const graph::Model* model = nullptr;
  const graph::Model* ema = nullptr;   // optional
  std::optional<int64_t> updates;      // EMA updates
  PyRef optimizer;                     // optimizer.state_dict() tree (None when null)
  PyRef wandb_id;                      // None when null
  bool half = true;
  std::string yaml_file;  // Model.yaml_file (empty: not written)
  // Extra Model attributes (train.py sets nc, hyp, gr, class_weights on the model).
  std::vector<std::pair<std::string, PyRef>> model_attrs;
};
void save_training_checkpoint(const std::string& path, const TrainingCheckpoint& ck);

// The tree that save_training_checkpoint() pickles (exposed for tests).
PyRef training_checkpoint_tree(const TrainingCheckpoint& ck);

}  // namespace y7::io
