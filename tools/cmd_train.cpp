// yolo7 train / yolo7 train_aux: upstream train.py / train_aux.py (train/trainer.h).
//   yolo7 train --cfg cfg/training/yolov7-tiny.yaml --data data.yaml --hyp data/hyp.scratch.tiny.yaml
//       [--weights ''|x.pt] [--epochs 300] [--batch-size 16] [--img-size 640 640] [--rect] [--nosave]
//       [--notest] [--noautoanchor] [--multi-scale] [--single-cls] [--adam] [--linear-lr]
//       [--label-smoothing 0] [--freeze 0] [--workers 8] [--project runs/train] [--name exp]
//       [--exist-ok] [--save_period -1] [--seed 0] [--quiet]
//   yolo7 train --resume [--weights runs/train/exp/weights/last.pt]   (default: the newest last*.pt
//       under --project; the options come from the run's opt.yaml and hyp.yaml)
#include <cstdio>

#include "core/error.h"
#include "tools/cli.h"
#include "train/trainer.h"

namespace y7 {
namespace {

int run(const std::vector<std::string>& argv, bool aux) {
  cli::Args a(argv, {{"weights", 1}, {"cfg", 1}, {"data", 1}, {"hyp", 1}, {"epochs", 1}, {"batch-size", 1},
                     {"img-size", -1}, {"rect", 0}, {"resume", 0}, {"nosave", 0}, {"notest", 0},
                     {"noautoanchor", 0}, {"multi-scale", 0}, {"single-cls", 0}, {"adam", 0}, {"linear-lr", 0},
                     {"label-smoothing", 1}, {"freeze", -1}, {"workers", 1}, {"project", 1}, {"name", 1},
                     {"exist-ok", 0}, {"save_period", 1}, {"seed", 1}, {"quiet", 0}, {"device", 1},
                     {"cache-images", 0}, {"image-weights", 0}, {"sync-bn", 0}, {"local_rank", 1},
                     {"v5-metric", 0}, {"bucket", 1}, {"entity", 1}, {"upload_dataset", 0},
                     {"bbox_interval", 1}, {"artifact_alias", 1}, {"evolve", 0}, {"quad", 0}});
  Y7_CHECK(!a.has("evolve"), "--evolve is not supported");
  train::TrainOptions o;
  o.aux = aux;
  o.weights = a.str("weights", "");
  o.cfg = a.str("cfg", "");
  o.data = a.str("data", "data/coco.yaml");
  o.hyp = a.str("hyp", aux ? "data/hyp.scratch.p6.yaml" : "data/hyp.scratch.p5.yaml");
  o.epochs = a.integer("epochs", 300);
  o.batch_size = a.integer("batch-size", 16);
  if (a.has("img-size")) {
    auto v = a.ints("img-size");
    Y7_CHECK(v.size() <= 2, "--img-size takes one or two values (train, test)");
    o.img_size = v[0];
    o.img_size_test = v.size() > 1 ? v[1] : v[0];
  } else {
    o.img_size = o.img_size_test = aux ? 1280 : 640;
  }
  o.rect = a.flag("rect"), o.resume = a.flag("resume"), o.nosave = a.flag("nosave"), o.notest = a.flag("notest");
  o.noautoanchor = a.flag("noautoanchor"), o.multi_scale = a.flag("multi-scale"), o.single_cls = a.flag("single-cls");
  o.image_weights = a.flag("image-weights"), o.quad = a.flag("quad");
  o.adam = a.flag("adam"), o.linear_lr = a.flag("linear-lr"), o.exist_ok = a.flag("exist-ok");
  o.label_smoothing = a.num("label-smoothing", 0.0);
  Y7_CHECK(o.label_smoothing >= 0 && o.label_smoothing < 1, "--label-smoothing must be in [0, 1)");
  if (a.has("freeze")) o.freeze = a.ints("freeze");
  o.workers = a.integer("workers", 8);
  Y7_CHECK(o.workers >= 0, "--workers must be >= 0");
  o.project = a.str("project", aux ? "runs/train" : "runs/train");
  o.name = a.str("name", "exp");
  o.save_period = a.integer("save_period", -1);
  const double seed = a.num("seed", 0);
  Y7_CHECK(seed >= 0 && seed < 9.0e15 && seed == double(uint64_t(seed)), "--seed must be a non-negative integer");
  o.seed = uint64_t(seed);
  o.quiet = a.flag("quiet");
  train::TrainResult r = train::run_train(o);
  std::printf("Results saved to %s\n", r.save_dir.c_str());
  return 0;
}

cli::Register reg("train", "train a model (upstream train.py): --cfg --data --hyp --epochs --batch-size ...",
                  [](const std::vector<std::string>& v) { return run(v, false); });
cli::Register reg_aux("train_aux", "train a P6 model with auxiliary heads (upstream train_aux.py)",
                      [](const std::vector<std::string>& v) { return run(v, true); });

}  // namespace
}  // namespace y7
