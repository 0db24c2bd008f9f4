// yolo7 loss: one training step's loss and gradients, without the optimizer: the train-mode
// forward (BatchNorm on batch statistics), upstream's loss (ComputeLossOTA for Detect/IDetect,
// ComputeLossAuxOTA for IAuxDetect, plain ComputeLoss with --plain), and the backward of the value
// train.py backpropagates (total * batch size) through the autograd engine to every parameter.
// Writes float32 [lbox, lobj, lcls, total] (upstream's second return value) and, with --grads,
// every parameter's gradient by state_dict name (an .npz, or a directory of <name>.npy files).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/autograd.h"
#include "core/thread_pool.h"
#include "graph/model.h"
#include "graph/modules.h"
#include "io/npy.h"
#include "io/zip_writer.h"
#include "tools/cli.h"
#include "train/hyp.h"
#include "train/loss.h"

namespace y7 {
namespace {

int run_loss(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"input", 1}, {"targets", 1}, {"hyp", 1}, {"img-size", 1}, {"out", 1},
                     {"grads", 1}, {"plain", 0}, {"threads", 1}});
  for (const char* k : {"weights", "input", "targets", "hyp", "out"})
    Y7_CHECK(a.has(k), "loss: --", k, " is required");
  if (a.has("threads")) set_num_threads(a.integer("threads", 0));

  Tensor x = io::read_npy(a.str("input"));
  Y7_CHECK(x.dim() == 4 && x.size(1) == 3 && x.numel() > 0, "loss: input must be [B,3,H,W], got ",
           shape_str(x.sizes()));
  x = x.to(DType::F32).contiguous();
  Tensor targets = io::read_npy(a.str("targets"));
  Y7_CHECK(targets.dim() == 2 && targets.size(1) == 6, "loss: targets must be [n,6] rows (img, cls, cx, cy, w, h), got ",
           shape_str(targets.sizes()));
  targets = targets.to(DType::F32).contiguous();
  const int imgsz = a.integer("img-size", int(std::max(x.size(2), x.size(3))));
  Y7_CHECK(imgsz > 0, "loss: --img-size must be positive");

  auto model = graph::load_model(a.str("weights"));
  Y7_CHECK(!model->fused(), "loss: ", a.str("weights"), " holds a fused model, which cannot be trained");
  int smax = 0;
  for (float s : model->stride()) smax = std::max(smax, int(s));
  Y7_CHECK(smax > 0 && x.size(2) % smax == 0 && x.size(3) % smax == 0, "loss: input size ", x.size(2), "x",
           x.size(3), " must be a multiple of the model's max stride ", smax);
  auto& det = dynamic_cast<graph::DetectLayer&>(model->layer(model->num_layers() - 1));

  train::Hyp hyp = train::load_hyp(a.str("hyp"));
  train::scale_hyp(hyp, det.nl, det.nc, imgsz);  // as train.py does before building the loss
  train::LossConfig cfg = train::loss_config_for(det, hyp, 1.0);
  if (a.flag("plain")) {
    Y7_CHECK(det.kind != graph::DetectLayer::Aux, "loss: --plain (ComputeLoss) needs a Detect/IDetect model");
    cfg.kind = train::LossKind::Plain;
  }

  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  model->train();
  const auto t0 = clock::now();
  std::vector<Tensor> maps = model->forward_train(x);
  const auto t1 = clock::now();
  train::LossResult r = train::compute_loss(maps, targets, x.size(2), cfg, true);
  Y7_CHECK(r.grads.size() == maps.size(), "loss: ", r.grads.size(), " map gradients for ", maps.size(), " maps");
  const auto t2 = clock::now();
  backward(maps, r.grads);
  const auto t3 = clock::now();
  std::printf("forward %.3f s, loss %.3f s, backward %.3f s\n", secs(t0, t1), secs(t1, t2), secs(t2, t3));

  io::write_npy(a.str("out"), Tensor::from_vector<float>({float(r.lbox), float(r.lobj), float(r.lcls), float(r.total)}, {4}));
  std::printf("loss %.7g (lbox %.7g lobj %.7g lcls %.7g) x bs %lld = %.7g\n", r.total, r.lbox, r.lobj, r.lcls,
              (long long)x.size(0), r.loss);
  if (a.has("grads")) {
    const std::string g = a.str("grads");
    auto params = model->named_parameters();
    auto grad_of = [](const Tensor* t) { return t->grad().defined() ? t->grad() : Tensor::zeros(t->sizes()); };
    if (g.size() > 4 && g.compare(g.size() - 4, 4, ".npz") == 0) {
      io::ZipWriter z(g);
      for (auto& [name, t] : params) {
        std::string b = io::encode_npy(grad_of(t).to(DType::F32));
        z.add(name + ".npy", b.data(), b.size());
      }
      z.finish();
    } else {
      std::error_code ec;
      std::filesystem::create_directories(g, ec);
      Y7_CHECK(std::filesystem::is_directory(g), "loss: cannot create directory ", g);
      for (auto& [name, t] : params) io::write_npy(g + "/" + name + ".npy", grad_of(t));
    }
    std::printf("%zu parameter gradients -> %s\n", params.size(), g.c_str());
  }
  return 0;
}

cli::Register reg("loss",
                  "train-mode forward, loss (OTA / AuxOTA / --plain) and backward: write [lbox,lobj,lcls,total] "
                  "and --grads by state_dict name",
                  run_loss);

}  // namespace
}  // namespace y7
