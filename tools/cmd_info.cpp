// yolo7 info: the model summary upstream prints when it builds a model (parse_model's layer table
// and model_info's totals).
#include <cstdio>

#include "graph/model.h"
#include "tools/cli.h"

namespace y7 {
namespace {

std::string from_str(const std::vector<int>& f) {
  if (f.size() == 1) return std::to_string(f[0]);
  std::string s = "[";
  for (size_t i = 0; i < f.size(); ++i) s += (i ? ", " : "") + std::to_string(f[i]);
  return s + "]";
}

int run_info(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"cfg", 1}, {"img-size", -1}, {"fuse", 0}, {"verbose", 0}});
  Y7_CHECK(a.has("weights") || a.has("cfg"), "info: give --weights W.pt or --cfg model.yaml");
  auto model = a.has("weights") ? graph::load_model(a.str("weights")) : graph::Model::from_yaml_file(a.str("cfg"));
  if (a.flag("fuse")) model->fuse();
  std::vector<int> sz = a.ints("img-size");
  int h = sz.empty() ? 640 : sz[0], w = sz.size() > 1 ? sz[1] : h;

  std::printf("\n%3s%18s%3s%10s  %-40s%-30s\n", "", "from", "n", "params", "module", "arguments");
  for (const auto& l : model->layers())
    std::printf("%3d%18s%3d%10lld  %-40s%-30s\n", l.index, from_str(l.from).c_str(), l.repeats, (long long)l.params,
                l.type.c_str(), l.args.c_str());
  long long np = model->num_parameters();
  std::printf("Model Summary: %lld layers, %lld parameters, %lld gradients, %.1f GFLOPS at %dx%d\n",
              (long long)model->num_modules(), np, np, model->gflops(h, w), h, w);
  std::printf("nc=%d, strides=", model->nc());
  for (size_t i = 0; i < model->stride().size(); ++i) std::printf("%s%g", i ? "," : "", model->stride()[i]);
  std::printf(", anchors per level=%d%s\n", model->num_anchors(), model->fused() ? ", fused" : "");
  return 0;
}

cli::Register reg("info", "model summary: layers, parameters, GFLOPs (like upstream's model_info)", run_info);

}  // namespace
}  // namespace y7
