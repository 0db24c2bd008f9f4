// yolo7 convert: reads a checkpoint and writes it back with our torch.save-compatible writer
// (io/checkpoint_writer.h): a stripped checkpoint by default (as strip_optimizer leaves it), or with
// --full the whole training checkpoint (model, EMA, optimizer state, epoch, best_fitness, ...).
#include <cstdio>

#include "graph/model.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/pickle.h"
#include "tools/cli.h"

namespace y7 {
namespace {

std::unique_ptr<graph::Model> model_from(const io::ModelRecord& rec) {
  auto m = graph::Model::from_yaml(rec.yaml);
  m->load_state_dict(rec.state, true);
  if (!rec.names.empty()) m->names = rec.names;
  return m;
}

int run_convert(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"out", 1}, {"fp32", 0}, {"fuse", 0}, {"full", 0}});
  Y7_CHECK(a.has("weights"), "convert: --weights is required");
  Y7_CHECK(a.has("out"), "convert: --out is required");
  const std::string in = a.str("weights"), out = a.str("out");
  bool half = !a.flag("fp32");
  if (!a.flag("full")) {
    auto model = graph::load_model(in);
    if (a.flag("fuse")) model->fuse();
    io::save_stripped_checkpoint(out, *model, half);
    std::printf("wrote %s (%s%s)\n", out.c_str(), half ? "fp16" : "fp32", model->fused() ? ", fused" : "");
    return 0;
  }
  Y7_CHECK(!a.flag("fuse"), "convert: --full keeps the training state and cannot be combined with --fuse");
  io::Checkpoint ck = io::load_checkpoint(in);
  Y7_CHECK(ck.model, in, ": checkpoint holds no model");
  std::unique_ptr<graph::Model> model, ema;
  try {
    model = model_from(*ck.model);
    if (ck.ema) ema = model_from(*ck.ema);
  } catch (const Error& e) {
    fail(in, ": ", e.what());
  }
  io::TrainingCheckpoint t;
  t.epoch = ck.epoch;
  t.best_fitness = ck.best_fitness;
  t.updates = ck.updates;
  t.model = model.get();
  t.ema = ema.get();
  t.half = half;
  if (ck.root) {
    if (const io::PickleValue* r = ck.root->get("training_results"); r && r->kind == io::PickleValue::Kind::String)
      t.training_results = r->str;
    if (const io::PickleValue* o = ck.root->get("optimizer"); o && !o->is_none()) t.optimizer = io::py::from_pickle(*o);
    if (const io::PickleValue* w = ck.root->get("wandb_id"); w && !w->is_none()) t.wandb_id = io::py::from_pickle(*w);
    // train.py's extra Model attributes
    if (const io::PickleValue* m = ck.root->get("model")) {
      if (const io::PickleValue* y = m->get("yaml_file"); y && y->kind == io::PickleValue::Kind::String)
        t.yaml_file = y->str;
      for (const char* k : {"nc", "hyp", "gr", "class_weights"})
        if (const io::PickleValue* v = m->get(k)) t.model_attrs.emplace_back(k, io::py::from_pickle(*v));
    }
  }
  io::save_training_checkpoint(out, t);
  std::printf("wrote %s (training checkpoint, epoch %lld, %s)\n", out.c_str(), (long long)t.epoch, half ? "fp16" : "fp32");
  return 0;
}

cli::Register reg("convert", "rewrite a checkpoint with our torch.save-compatible writer (--fp32, --fuse, --full)",
                  run_convert);

}  // namespace
}  // namespace y7
