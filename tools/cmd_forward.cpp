// yolo7 forward: runs the network on an input tensor (.npy) and writes upstream's decoded output,
// or the NMS detections. This is how predictions are compared against PyTorch.
#include <cstdio>

#include "core/autograd.h"
#include "core/thread_pool.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"
#include "io/onnx_import.h"
#include "kernels/nms.h"
#include "quant/config.h"
#include "quant/int8_runner.h"
#include "quant/quantizer.h"
#include "tools/cli.h"

namespace y7 {
namespace {

using graph::Model;

int run_forward(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"input", 1}, {"out", 1}, {"fuse", 0}, {"nms", 0}, {"conf-thres", 1},
                     {"iou-thres", 1}, {"classes", -1}, {"agnostic-nms", 0}, {"multi-label", 0},
                     {"max-det", 1}, {"raw-out", 1}, {"threads", 1}, {"device", 1},
                     {"quant", 1}, {"int8", 0}});
  Y7_CHECK(a.has("weights"), "forward: --weights is required");
  Y7_CHECK(a.has("input"), "forward: --input is required");
  Y7_CHECK(a.has("out"), "forward: --out is required");
  Y7_CHECK(parse_device(a.str("device", "cpu")).is_cpu(), "forward: only --device cpu is available in this build");
  if (a.has("threads")) set_num_threads(a.integer("threads", 0));

  Tensor x = io::read_npy(a.str("input"));
  Y7_CHECK(x.dim() == 4 && x.size(1) == 3, "forward: input must be [B,3,H,W], got ", shape_str(x.sizes()));
  x = x.to(DType::F32);

  Y7_CHECK(!a.flag("int8") || a.has("quant"), "forward: --int8 needs --quant quantize_result/quant_info.json");
  Model::Output out;
  if (a.has("quant")) {  // the quantized model (yolo7 quant's config): fake-quantized floats, or --int8 integers
    Y7_CHECK(!io::is_onnx_path(a.str("weights")), "forward: --quant needs .pt weights");
    Y7_CHECK(!a.has("raw-out"), "forward: --raw-out is not available with --quant");
    const quant::QuantConfig cfg = quant::load_config(a.str("quant"));
    quant::QuantOptions qo;
    qo.convert_silu_to_hswish = cfg.convert_silu_to_hswish;
    qo.convert_sigmoid_to_hsigmoid = cfg.convert_sigmoid_to_hsigmoid;
    auto model = graph::load_model(a.str("weights"));
    int smax = 0;
    for (float s : model->stride()) smax = std::max(smax, int(s));
    Y7_CHECK(smax > 0 && x.size(2) % smax == 0 && x.size(3) % smax == 0, "forward: input size ", x.size(2), "x",
             x.size(3), " must be a multiple of the model's max stride ", smax);
    model->fuse();
    NoGradGuard ng;
    graph::IrGraph g = graph::lower(*model, x.sizes());
    out.pred = a.flag("int8") ? quant::Int8Graph(g, cfg, qo).forward(x) : quant::FakeQuantGraph(g, cfg, qo).forward(x);
  } else if (io::is_onnx_path(a.str("weights"))) {  // an ONNX file on our runtime (io/onnx_import.h)
    io::OnnxModel om = io::load_onnx(a.str("weights"));
    if (!om.can_predict()) {  // e.g. upstream's raw head maps without anchors: write the outputs as they are
      Y7_CHECK(!a.flag("nms"), "forward: --nms needs detections; this ONNX file's outputs are not decoded");
      std::vector<Tensor> outs = om.run(x);
      std::string base = a.str("out");
      for (size_t i = 0; i < outs.size(); ++i) {
        std::string f = outs.size() == 1 ? base : base.substr(0, base.size() - (base.ends_with(".npy") ? 4 : 0)) +
                                                      "_" + std::to_string(i) + ".npy";
        io::write_npy(f, outs[i].to(DType::F32));
        std::printf("%s -> %s %s (output '%s')\n", a.str("input").c_str(), f.c_str(),
                    shape_str(outs[i].sizes()).c_str(), om.output_names()[i].c_str());
      }
      return 0;
    }
    out.pred = om.predict(x);
    if (om.kind() == io::OnnxModel::Kind::NmsRows) {  // --end2end file: its rows (NMS is in the graph)
      io::write_npy(a.str("out"), out.pred);
      std::printf("%s -> %s: %lld detections (ONNX end2end rows: batch, x1, y1, x2, y2, class, score)\n",
                  a.str("input").c_str(), a.str("out").c_str(), (long long)out.pred.size(0));
      return 0;
    }
  } else {
    auto model = graph::load_model(a.str("weights"));
    int smax = 0;
    for (float s : model->stride()) smax = std::max(smax, int(s));
    Y7_CHECK(smax > 0 && x.size(2) % smax == 0 && x.size(3) % smax == 0, "forward: input size ", x.size(2), "x",
             x.size(3), " must be a multiple of the model's max stride ", smax);
    if (a.flag("fuse")) model->fuse();
    NoGradGuard ng;
    out = model->forward(x);
  }
  if (a.has("raw-out")) {
    for (size_t i = 0; i < out.raw.size(); ++i)
      io::write_npy(a.str("raw-out") + std::to_string(i) + ".npy", out.raw[i]);
  }
  if (!a.flag("nms")) {
    io::write_npy(a.str("out"), out.pred);
    std::printf("%s -> %s %s\n", a.str("input").c_str(), a.str("out").c_str(), shape_str(out.pred.sizes()).c_str());
    return 0;
  }
  ops::NmsParams p;
  p.conf_thres = a.num("conf-thres", 0.25);
  p.iou_thres = a.num("iou-thres", 0.45);
  p.classes = a.ints("classes");
  p.agnostic = a.flag("agnostic-nms");
  p.multi_label = a.flag("multi-label");
  p.max_det = a.integer("max-det", 300);
  auto dets = ops::non_max_suppression(out.pred, p);
  int64_t n = 0;
  for (auto& d : dets) n += d.size(0);
  Tensor rows = Tensor::empty({n, 7});
  float* r = rows.data<float>();
  for (size_t i = 0; i < dets.size(); ++i) {
    Tensor d = dets[i].contiguous();
    const float* q = d.data<float>();
    for (int64_t k = 0; k < d.size(0); ++k, r += 7) {
      r[0] = float(i);
      for (int j = 0; j < 6; ++j) r[1 + j] = q[k * 6 + j];
    }
  }
  io::write_npy(a.str("out"), rows);
  std::printf("%s -> %s: %lld detections\n", a.str("input").c_str(), a.str("out").c_str(), (long long)n);
  return 0;
}

cli::Register reg("forward", "run the network on a [B,3,H,W] .npy tensor; write predictions or NMS rows",
                  run_forward);

}  // namespace
}  // namespace y7
