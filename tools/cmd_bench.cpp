// yolo7 bench: end-to-end inference latency of a model (fused, as detect runs it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/autograd.h"
#include "core/thread_pool.h"
#include "graph/model.h"
#include "tools/cli.h"

namespace y7 {
namespace {

int run_bench(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"cfg", 1}, {"img-size", -1}, {"batch-size", 1}, {"threads", 1},
                     {"iters", 1}, {"warmup", 1}, {"no-fuse", 0}, {"device", 1}});
  Y7_CHECK(a.has("weights") || a.has("cfg"), "bench: give --weights W.pt (or --cfg model.yaml for random weights)");
  Y7_CHECK(parse_device(a.str("device", "cpu")).is_cpu(), "bench: only --device cpu is available in this build");
  if (a.has("threads")) set_num_threads(a.integer("threads", 0));
  auto model = a.has("weights") ? graph::load_model(a.str("weights")) : graph::Model::from_yaml_file(a.str("cfg"));
  if (!a.flag("no-fuse")) model->fuse();
  std::vector<int> sz = a.ints("img-size");
  int h = sz.empty() ? 640 : sz[0], w = sz.size() > 1 ? sz[1] : h;
  int bs = a.integer("batch-size", 1), iters = a.integer("iters", 20), warm = a.integer("warmup", 3);
  Y7_CHECK(bs > 0 && iters > 0 && warm >= 0 && h > 0 && w > 0, "bench: sizes and counts must be positive");
  Tensor x = Tensor::empty({bs, 3, h, w});
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float((i * 2654435761u) % 1000u) / 1000.0f;

  NoGradGuard ng;
  for (int i = 0; i < warm; ++i) model->forward(x);
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    model->forward(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double med = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  std::printf("%s %dx%d batch %d, %d threads, %s: median %.2f ms, min %.2f ms (%d iters), %.1f img/s\n",
              a.has("weights") ? a.str("weights").c_str() : a.str("cfg").c_str(), h, w, bs, num_threads(),
              a.flag("no-fuse") ? "unfused" : "fused", med, ms.front(), iters, 1000.0 * bs / med);
  return 0;
}

cli::Register reg("bench", "inference latency: median and min over --iters runs", run_bench);

}  // namespace
}  // namespace y7
