// yolo7 quant: Vitis AI model zoo's yolov7 test_nndct.py (vai_q_pytorch / NNDCT post-training
// quantization for the Xilinx DPU), natively. --quant_mode float evaluates the float graph; calib
// runs up to 1000 calibration batches of the --data val set through the fake-quantized graph and
// writes <output_dir>/quant_info.json; test evaluates mAP with the fake-quantized graph of that
// config; test --dump_model writes <output_dir>/Model_int.xmodel (quant::dump_xmodel, quant/xmodel.h).
// As test_nndct.py: square --img-size letterboxed batches (rect=False), the test.py table.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/file_util.h"
#include "quant/config.h"
#include "quant/qat.h"
#include "quant/quantizer.h"
#include "quant/xmodel.h"
#include "tools/cli.h"
#include "train/evaluate.h"


namespace fs = std::filesystem;

namespace y7 {
namespace {

int run_quant_cmd(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", -1}, {"data", 1}, {"batch-size", 1}, {"batch", 1}, {"img-size", 1}, {"img", 1},
                     {"conf-thres", 1}, {"conf", 1}, {"iou-thres", 1}, {"iou", 1}, {"task", 1}, {"device", 1},
                     {"single-cls", 0}, {"augment", 0}, {"verbose", 0}, {"save-txt", 0}, {"save-hybrid", 0},
                     {"save-conf", 0}, {"save-json", 0}, {"project", 1}, {"name", 1}, {"exist-ok", 0},
                     {"no-trace", 0}, {"v5-metric", 0}, {"workers", 1}, {"quant_mode", 1}, {"dump_model", 0},
                     {"nndct_convert_silu_to_hswish", 0}, {"nndct_convert_sigmoid_to_hsigmoid", 0},
                     {"nndct_qat", 0}, {"output_dir", 1}});
  Y7_CHECK(a.has("weights"), "quant: give --weights model.pt");
  const auto weights = a.list("weights");
  Y7_CHECK(weights.size() == 1, "quant: exactly one --weights file");
  Y7_CHECK(!a.flag("augment"), "quant: --augment is not supported");
  const std::string device = a.str("device", "");
  Y7_CHECK(device.empty() || device == "cpu", "quant: --device '", device, "' is not available (only cpu)");
  const std::string mode = a.str("quant_mode", "calib");  // NNDctModel's default
  Y7_CHECK(mode == "float" || mode == "calib" || mode == "test", "quant: --quant_mode must be float, calib or test, got '",
           mode, "'");
  const bool dump = a.flag("dump_model");
  Y7_CHECK(!dump || mode == "test", "quant: --dump_model needs --quant_mode test");
  Y7_CHECK(!dump || quant::xmodel_supported(), "quant: --dump_model needs a build with XIR (libxir)");
  // --nndct_qat: evaluate / export a `yolo7 train_qat` result: its trained parameters
  // (<output_dir>/params) replace the float model's, its quant_info.json gives the fix points
  const bool qat = a.flag("nndct_qat");
  Y7_CHECK(!qat || mode != "calib", "quant: --nndct_qat results are already quantized; use --quant_mode test or float");
  quant::QuantOptions qo;
  qo.convert_silu_to_hswish = a.flag("nndct_convert_silu_to_hswish");
  qo.convert_sigmoid_to_hsigmoid = a.flag("nndct_convert_sigmoid_to_hsigmoid");
  const fs::path out_dir = a.str("output_dir", "quantize_result");
  const std::string config_path = (out_dir / "quant_info.json").string();

  train::TestOptions o;
  o.data = a.str("data", "data/coco.yaml");
  o.weights = weights[0];
  o.task = a.str("task", "val");
  Y7_CHECK(o.task == "val" || o.task == "test" || o.task == "train", "quant: --task must be train, val or test");
  o.batch_size = a.integer("batch-size", a.integer("batch", 32));
  o.img_size = a.integer("img-size", a.integer("img", 640));
  Y7_CHECK(o.img_size > 0 && o.img_size <= 16384, "quant: bad --img-size ", o.img_size);
  Y7_CHECK(o.batch_size > 0 && o.batch_size <= 4096, "quant: bad --batch-size ", o.batch_size);
  o.conf_thres = a.num("conf-thres", a.num("conf", 0.001));
  o.iou_thres = a.num("iou-thres", a.num("iou", 0.65));
  o.single_cls = a.flag("single-cls");
  o.verbose = a.flag("verbose");
  o.save_hybrid = a.flag("save-hybrid");
  o.save_txt = a.flag("save-txt") || o.save_hybrid;
  o.save_conf = a.flag("save-conf");
  o.v5_metric = a.flag("v5-metric");
  o.workers = a.integer("workers", 2);
  Y7_CHECK(o.workers >= 0 && o.workers <= 64, "quant: bad --workers ", o.workers);
  const std::string& d = o.data;
  o.save_json = a.flag("save-json") || (d.size() >= 9 && d.compare(d.size() - 9, 9, "coco.yaml") == 0);
  o.rect = false;  // test_nndct.py: create_dataloader(..., pad=0.5, rect=False)
  Y7_CHECK(fs::is_regular_file(o.data), "quant: data yaml ", o.data, " not found");
  Y7_CHECK(fs::is_regular_file(o.weights), "quant: weights ", o.weights, " not found");

  auto model = graph::load_model(o.weights);
  model->fuse();
  float smax = 0;
  for (float s : model->stride()) smax = std::max(smax, s);
  const int gs = std::max(int(smax), 32);
  const int imgsz = int(std::ceil(double(o.img_size) / gs)) * gs;  // check_img_size, as run_test does
  graph::IrGraph g = graph::lower(*model, {1, model->in_channels(), imgsz, imgsz});
  if (qat) quant::load_qat_params(g, out_dir.string());

  // everything that can be refused is refused before the data is read
  std::unique_ptr<quant::Calibrator> cal;
  std::unique_ptr<quant::FakeQuantGraph> fq;
  quant::QuantConfig cfg;
  if (mode == "calib") {
    cal = std::make_unique<quant::Calibrator>(g, qo);
    if (const int n = quant::count_cle_pairs(cal->graph()))
      std::printf("WARNING: %d conv pairs would be rescaled by NNDCT's cross-layer equalization, which is not "
                  "implemented; calibrating without it\n", n);
    o.max_batches = 1000;  // test_nndct.py: at most 1000 calibration batches
    o.forward = [&](const Tensor& x) { return cal->graph().decode(cal->add_batch(x)); };
  } else if (mode == "test") {
    cfg = quant::load_config(config_path);
    fq = std::make_unique<quant::FakeQuantGraph>(g, cfg, qo);
    o.forward = [&](const Tensor& x) { return fq->forward(x); };
    if (dump) o.max_batches = 1;  // test_nndct.py: one batch, then export
  } else {
    o.forward = [&](const Tensor& x) { return g.decode(g.run(x)); };
  }

  o.save_dir = cli::run_dir(a, "runs/test", o.save_txt);
  if (dump) o.quiet = true;
  auto r = train::run_test(*model, o);

  if (mode == "calib") {
    cfg = cal->finish(imgsz);
    std::printf("[VAIQ_NOTE]: =>Exporting quant config.(%s)\n", config_path.c_str());
    quant::save_config(cfg, config_path);
    std::printf("Calibrated %lld fix points (%lld params) on %lld images in %lld batches\n",
                static_cast<long long>(cfg.output.size()), static_cast<long long>(cfg.param.size()),
                static_cast<long long>(cfg.calib_images), static_cast<long long>(cfg.calib_batches));
  }
  if (dump) {
    const std::string xpath = (out_dir / "Model_int.xmodel").string();
    fs::create_directories(out_dir);
    quant::dump_xmodel(g, cfg, qo, xpath);
    std::printf("[VAIQ_NOTE]: =>Converting to xmodel ...\n[VAIQ_NOTE]: =>Successfully convert 'Model' to xmodel.(%s)\n",
                xpath.c_str());
    return 0;
  }
  std::string json = train::results_json(r.metrics, r.names, o.v5_metric);
  train::save_results_json(r, o, json);
  return 0;
}

cli::Register reg("quant", "DPU fix-point quantization: calibrate / evaluate (Vitis AI test_nndct.py)", run_quant_cmd);

}  // namespace
}  // namespace y7
