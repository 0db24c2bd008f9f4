// yolo7 bench: end-to-end inference latency of a model (fused, as detect runs it), or with --train
// the time of one training step (train-mode forward, ComputeLossOTA/AuxOTA, backward, SGD step)
// on synthetic targets; tools/dev/bench_train_torch.py times the same step in PyTorch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/thread_pool.h"
#include "graph/model.h"
#include "graph/ir.h"
#include "graph/modules.h"
#include "quant/config.h"
#include "quant/int8_runner.h"
#include "quant/quantizer.h"
#include "tools/cli.h"
#include "train/optimizer.h"
#include "train/trainer_loss.h"

namespace y7 {
namespace {

int run_bench(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"cfg", 1}, {"img-size", -1}, {"batch-size", 1}, {"threads", 1},
                     {"iters", 1}, {"warmup", 1}, {"no-fuse", 0}, {"device", 1}, {"train", 0}, {"hyp", 1},
                     {"quant", 1}, {"int8", 0}});
  Y7_CHECK(a.has("weights") || a.has("cfg"), "bench: give --weights W.pt (or --cfg model.yaml for random weights)");
  Y7_CHECK(parse_device(a.str("device", "cpu")).is_cpu(), "bench: only --device cpu is available in this build");
  if (a.has("threads")) set_num_threads(a.integer("threads", 0));
  auto model = a.has("weights") ? graph::load_model(a.str("weights")) : graph::Model::from_yaml_file(a.str("cfg"));
  const bool train = a.flag("train");
  const bool quantized = a.has("quant"), int8 = a.flag("int8");
  Y7_CHECK(!int8 || quantized, "bench: --int8 needs --quant quantize_result/quant_info.json");
  Y7_CHECK(!quantized || (!train && !a.flag("no-fuse")), "bench: --quant times fused inference only");
  if (!a.flag("no-fuse") && !train) model->fuse();
  std::vector<int> sz = a.ints("img-size");
  int h = sz.empty() ? 640 : sz[0], w = sz.size() > 1 ? sz[1] : h;
  int bs = a.integer("batch-size", 1), iters = a.integer("iters", train ? 10 : 20), warm = a.integer("warmup", train ? 2 : 3);
  Y7_CHECK(bs > 0 && iters > 0 && warm >= 0 && h > 0 && w > 0, "bench: sizes and counts must be positive");
  Y7_CHECK(!train || h == w, "bench --train: square images only (the loss takes one image size)");
  Tensor x = Tensor::empty({bs, 3, h, w});
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float((i * 2654435761u) % 1000u) / 1000.0f;

  std::vector<double> ms;
  if (train) {
    // 6 boxes per image on a fixed pattern (same as the torch script), classes mod nc
    std::vector<float> rows;
    for (int b = 0; b < bs; ++b)
      for (int k = 0; k < 6; ++k)
        rows.insert(rows.end(), {float(b), float((b * 6 + k) % model->nc()), 0.15f + 0.13f * k, 0.2f + 0.1f * ((b + k) % 6),
                                 0.05f + 0.04f * k, 0.06f + 0.03f * ((b + 2 * k) % 5)});
    Tensor targets = Tensor::from_vector(rows, {int64_t(rows.size() / 6), 6});
    auto& det = dynamic_cast<graph::DetectLayer&>(model->layer(model->num_layers() - 1));
    train::TrainLoss loss(a.str("hyp", "data/hyp.scratch.p5.yaml"), 0.0, det, model->nc(), h);
    model->train(true);
    auto opt = train::make_optimizer(*model, false, 0.01, 0.937, 0.0005);
    auto step = [&] {
      auto c0 = std::chrono::steady_clock::now();
      std::vector<Tensor> raw = model->forward_train(x);
      auto c1 = std::chrono::steady_clock::now();
      train::StepLoss l = loss(raw, targets, h);
      auto c2 = std::chrono::steady_clock::now();
      backward(raw, l.grads);
      auto c3 = std::chrono::steady_clock::now();
      opt->step();
      model->zero_grad();
      model->reset_caches();
      auto c4 = std::chrono::steady_clock::now();
      if (std::getenv("Y7_BENCH_PHASES"))
        std::printf("  forward %.1f ms, loss %.1f ms, backward %.1f ms, optimizer %.1f ms\n",
                    std::chrono::duration<double, std::milli>(c1 - c0).count(),
                    std::chrono::duration<double, std::milli>(c2 - c1).count(),
                    std::chrono::duration<double, std::milli>(c3 - c2).count(),
                    std::chrono::duration<double, std::milli>(c4 - c3).count());
    };
    for (int i = 0; i < warm; ++i) step();
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      step();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  } else if (quantized) {
    // the quantized model: yolo7 quant's config on the fused graph, fake-quantized or in integers
    const quant::QuantConfig cfg = quant::load_config(a.str("quant"));
    quant::QuantOptions qo;
    qo.convert_silu_to_hswish = cfg.convert_silu_to_hswish;
    qo.convert_sigmoid_to_hsigmoid = cfg.convert_sigmoid_to_hsigmoid;
    NoGradGuard ng;
    graph::IrGraph g = graph::lower(*model, x.sizes());
    std::unique_ptr<quant::Int8Graph> ig;
    std::unique_ptr<quant::FakeQuantGraph> fq;
    if (int8) ig = std::make_unique<quant::Int8Graph>(g, cfg, qo);
    else fq = std::make_unique<quant::FakeQuantGraph>(g, cfg, qo);
    auto run = [&] { return int8 ? ig->forward(x) : fq->forward(x); };
    for (int i = 0; i < warm; ++i) run();
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      run();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  } else {
    NoGradGuard ng;
    for (int i = 0; i < warm; ++i) model->forward(x);
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      model->forward(x);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  std::sort(ms.begin(), ms.end());
  double med = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  std::printf("%s %dx%d batch %d, %d threads, %s: median %.2f ms, min %.2f ms (%d iters), %.1f img/s\n",
              a.has("weights") ? a.str("weights").c_str() : a.str("cfg").c_str(), h, w, bs, num_threads(),
              train ? "train step" : int8 ? "int8 (quantized)" : quantized ? "fake-quantized" : a.flag("no-fuse") ? "unfused" : "fused", med, ms.front(), iters, 1000.0 * bs / med);
  return 0;
}

cli::Register reg("bench", "inference latency (or --train: training-step time): median and min over --iters runs",
                  run_bench);

}  // namespace
}  // namespace y7
