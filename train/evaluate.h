// Validation with upstream test.py semantics: the validation loader of train/dataloader.h
// (LoadImagesAndLabels with rect=True, pad=0.5, augment=False), batched inference, NMS
// (multi_label), test.py's statistics (train/metrics.h), the printed table and speed line, and the
// optional outputs (--save-txt labels, --save-json COCO detections).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "train/metrics.h"

namespace y7::graph {
class Model;
}

namespace y7::train {

// ---- test.py

struct TestOptions {
  std::string data;            // data yaml
  std::string weights;         // for the --save-json file name
  std::string task = "val";    // train | val | test | speed
  int batch_size = 32, img_size = 640;
  double conf_thres = 0.001, iou_thres = 0.65;
  bool single_cls = false, verbose = false, save_txt = false, save_hybrid = false, save_conf = false,
       save_json = false, v5_metric = false;
  bool save_npy = false;       // write detections.npy / labels.npy (the `yolo7 metrics` inputs)
  int workers = 2;             // loader threads
  std::string save_dir;        // run folder (created by the caller); empty: write nothing
  bool quiet = false;          // no printing
  // Optional replacements used by `yolo7 quant` (test_nndct.py's loop): the forward pass
  // (images [B,3,H,W] -> decoded predictions [B,N,5+nc]) instead of model.forward, square
  // letterboxed batches (rect=False) instead of rect batches, and a cap on the number of batches
  // (0: all).
  std::function<Tensor(const Tensor&)> forward;
  bool rect = true;
  int64_t max_batches = 0;
  // train.py's compute_loss: when set, test.py adds compute_loss(train_out, targets)[1][:3] of each
  // batch (the raw lead maps of the eval forward, plain ComputeLoss) and reports the mean per batch.
  std::function<std::array<double, 3>(const std::vector<Tensor>& raw, const Tensor& targets, int64_t img_h)>
      compute_loss;
};

struct TestResults {
  EvalResults metrics;
  std::vector<std::string> names;
  double t_inference = 0, t_nms = 0;  // seconds, all batches
  int img_size = 0, batch_size = 0;
  int labels_saved = 0;               // --save-txt files written
  std::string json_path;              // --save-json output
  std::array<double, 3> loss{0, 0, 0};  // box, obj, cls val losses (TestOptions::compute_loss)
};

// Runs test.py's test() on a loaded (fused) model.
TestResults run_test(graph::Model& model, const TestOptions& opt);

// Writes `json` (results_json(), possibly extended) to <opt.save_dir>/results.json atomically and
// prints test.py's closing "Results saved to ..." line (with the label count for --save-txt).
void save_results_json(const TestResults& r, const TestOptions& opt, const std::string& json);

}  // namespace y7::train
