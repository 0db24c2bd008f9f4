// upstream train.py / train_aux.py: the training loop (train-mode forward -> OTA/AuxOTA loss ->
// backward -> gradient accumulation to the nominal batch 64 -> SGD/Adam step -> EMA), warmup and
// one_cycle/linear LR schedule, per-epoch validation of the EMA (train/evaluate.h), the run folder
// (weights/last.pt, best.pt, results.txt, hyp.yaml, opt.yaml) and strip_optimizer at the end.
#pragma once
#include <array>
#include <string>
#include <vector>

namespace y7::train {

struct TrainOptions {
  std::string weights;  // '' = from scratch; a .pt = fine-tune (intersected state dicts)
  std::string cfg, data, hyp;
  int epochs = 300, batch_size = 16;
  int img_size = 640, img_size_test = 640;
  bool rect = false, resume = false, nosave = false, notest = false, noautoanchor = false;
  bool multi_scale = false, single_cls = false, adam = false, linear_lr = false, exist_ok = false;
  bool image_weights = false;
  bool quad = false;  // --quad: collate_fn4 batches (4 images -> one of twice the size)  // --image-weights: images drawn by class rarity and last per-class mAP
  double label_smoothing = 0.0;
  std::vector<int> freeze{0};
  int workers = 8;
  std::string project = "runs/train", name = "exp";
  int save_period = -1;
  uint64_t seed = 0;
  bool aux = false;    // train_aux.py (IAuxDetect models, ComputeLossAuxOTA)
  bool quiet = false;  // no per-batch progress lines
};

struct TrainResult {
  std::string save_dir;
  std::vector<std::array<double, 4>> mloss;   // per epoch: mean box, obj, cls, total
  std::vector<std::array<double, 7>> results; // per epoch: P, R, mAP@.5, mAP@.5:.95, val box/obj/cls
  double best_fitness = 0;
  double seconds = 0;
};

TrainResult run_train(const TrainOptions& opt);

}  // namespace y7::train
