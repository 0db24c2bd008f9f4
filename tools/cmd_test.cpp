// yolo7 test: upstream test.py (validation mAP of a checkpoint on a data yaml's val/test images).
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "graph/model.h"
#include "io/file_util.h"
#include "tools/cli.h"
#include "tools/inference_weights.h"
#include "train/evaluate.h"

namespace fs = std::filesystem;

namespace y7 {
namespace {

int run_test_cmd(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", -1}, {"data", 1}, {"batch-size", 1}, {"img-size", 1}, {"conf-thres", 1},
                     {"iou-thres", 1}, {"task", 1}, {"device", 1}, {"single-cls", 0}, {"augment", 0},
                     {"verbose", 0}, {"save-txt", 0}, {"save-hybrid", 0}, {"save-conf", 0}, {"save-json", 0},
                     {"project", 1}, {"name", 1}, {"exist-ok", 0}, {"no-trace", 0}, {"v5-metric", 0},
                     {"save-npy", 0}, {"workers", 1}});
  Y7_CHECK(a.has("weights"), "test: give --weights model.pt");
  const auto weights = a.list("weights");
  Y7_CHECK(weights.size() == 1, "test: ensembles (several --weights) are not supported yet");
  Y7_CHECK(!a.flag("augment"), "test: --augment (test-time augmentation) is not supported yet");
  const std::string device = a.str("device", "");
  Y7_CHECK(device.empty() || device == "cpu", "test: --device '", device, "' is not available (only cpu)");
  train::TestOptions o;
  o.data = a.str("data", "data/coco.yaml");
  o.weights = weights[0];
  o.task = a.str("task", "val");
  Y7_CHECK(o.task != "study", "test: --task study is not supported yet");
  o.batch_size = a.integer("batch-size", 32);
  o.img_size = a.integer("img-size", 640);
  Y7_CHECK(o.img_size > 0 && o.img_size <= 16384, "test: bad --img-size ", o.img_size);
  Y7_CHECK(o.batch_size > 0 && o.batch_size <= 4096, "test: bad --batch-size ", o.batch_size);
  o.conf_thres = a.num("conf-thres", 0.001);
  o.iou_thres = a.num("iou-thres", 0.65);
  o.single_cls = a.flag("single-cls");
  o.verbose = a.flag("verbose");
  o.save_hybrid = a.flag("save-hybrid");
  o.save_txt = a.flag("save-txt") || o.save_hybrid;
  o.save_conf = a.flag("save-conf");
  o.v5_metric = a.flag("v5-metric");
  o.save_npy = a.flag("save-npy");
  o.workers = a.integer("workers", 2);
  Y7_CHECK(o.workers >= 0 && o.workers <= 64, "test: bad --workers ", o.workers);
  const std::string& d = o.data;
  o.save_json = a.flag("save-json") || (d.size() >= 9 && d.compare(d.size() - 9, 9, "coco.yaml") == 0);
  if (o.task == "speed") o.conf_thres = 0.25, o.iou_thres = 0.45, o.save_json = false;
  Y7_CHECK(fs::is_regular_file(o.data), "test: data yaml ", o.data, " not found");

  o.save_dir = cli::run_dir(a, "runs/test", o.save_txt);

  auto w = tools::load_inference_weights(o.weights);  // .pt, or .onnx on our runtime
  if (w.onnx) {
    o.forward = w.forward;
    // a fixed-size ONNX graph gets square letterboxed batches (rect=False), as test_nndct.py does
    const Shape& is = w.onnx->input_shape();
    if (is[2] > 0 || is[3] > 0) o.rect = false;
  }
  auto r = train::run_test(*w.model, o);

  const auto& e = r.metrics;
  std::string json = train::results_json(e, r.names, o.v5_metric);
  // add the run's timing and settings
  char extra[512];
  std::snprintf(extra, sizeof extra,
                " \"speed_ms\": {\"inference\": %.6g, \"nms\": %.6g},\n \"img_size\": %d,\n \"batch_size\": %d,\n"
                " \"conf_thres\": %.17g,\n \"iou_thres\": %.17g,\n",
                r.t_inference / double(std::max<int64_t>(e.seen, 1)) * 1e3,
                r.t_nms / double(std::max<int64_t>(e.seen, 1)) * 1e3, r.img_size, r.batch_size, o.conf_thres,
                o.iou_thres);
  json.insert(2, extra);
  train::save_results_json(r, o, json);
  return 0;
}

cli::Register reg("test", "validation mAP of a checkpoint on a dataset (upstream test.py)", run_test_cmd);

}  // namespace
}  // namespace y7
