// yolo7 train_qat: Vitis AI model zoo's yolov7 train_qat.py (NNDCT quantization-aware training for
// the DPU) on the graph IR; see quant/qat.h. Writes <project>/<name>/qat/{quant_info.json, params/,
// log_thresholds.txt}, which `yolo7 quant --nndct_qat --quant_mode test [--dump_model]` evaluates.
#include <cstdio>

#include "core/error.h"
#include "quant/qat.h"
#include "tools/cli.h"

namespace y7 {
namespace {

int run_train_qat_cmd(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"cfg", 1}, {"data", 1}, {"hyp", 1}, {"epochs", 1}, {"batch-size", 1},
                     {"img-size", -1}, {"log_threshold_scale", 1}, {"nndct_convert_silu_to_hswish", 0},
                     {"nndct_convert_sigmoid_to_hsigmoid", 0}, {"workers", 1}, {"project", 1}, {"name", 1},
                     {"exist-ok", 0}, {"device", 1}, {"seed", 1}, {"calib_batches", 1}, {"quiet", 0}});
  quant::QatOptions o;
  Y7_CHECK(a.has("weights"), "train_qat: --weights (the float checkpoint to quantize) is required");
  o.weights = a.str("weights");
  o.cfg = a.str("cfg", "");
  o.data = a.str("data", "data/coco.yaml");
  o.hyp = a.str("hyp", "data/hyp.scratch.p5_qat.yaml");
  o.epochs = a.integer("epochs", 300);
  o.batch_size = a.integer("batch-size", 16);
  if (a.has("img-size")) {
    auto s = a.ints("img-size");
    Y7_CHECK(!s.empty() && s.size() <= 2, "train_qat: --img-size takes [train, test] sizes");
    o.img_size = s[0];
  }
  o.log_threshold_scale = a.num("log_threshold_scale", 100);
  o.quant.convert_silu_to_hswish = a.flag("nndct_convert_silu_to_hswish");
  o.quant.convert_sigmoid_to_hsigmoid = a.flag("nndct_convert_sigmoid_to_hsigmoid");
  o.workers = a.integer("workers", 2);
  Y7_CHECK(o.workers >= 0 && o.workers <= 64, "train_qat: bad --workers ", o.workers);
  o.project = a.str("project", "runs/train_qat");
  o.name = a.str("name", "exp");
  o.exist_ok = a.flag("exist-ok");
  o.seed = uint64_t(a.integer("seed", 0));
  o.calib_batches = a.integer("calib_batches", 4);
  o.quiet = a.flag("quiet");
  const std::string device = a.str("device", "");
  Y7_CHECK(device.empty() || device == "cpu", "train_qat: --device '", device, "' is not available (only cpu)");
  quant::run_train_qat(o);
  return 0;
}

cli::Register reg("train_qat", "DPU quantization-aware training (Vitis AI train_qat.py, NNDCT TQT)", run_train_qat_cmd);

}  // namespace
}  // namespace y7
