// yolo7 inspect --weights W.pt: what an upstream checkpoint holds (read without executing anything).
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "tools/cli.h"

namespace {

void print_model(const char* key, const y7::io::ModelRecord& m, bool list_entries) {
  std::printf("%s: models.yolo.Model\n", key);
  std::printf("  detect: %s\n", m.detect_type.empty() ? "?" : m.detect_type.c_str());
  std::printf("  nc: %lld\n", static_cast<long long>(m.nc));
  std::printf("  names: %zu", m.names.size());
  for (size_t i = 0; i < m.names.size() && i < 5; ++i) std::printf("%s%s", i ? ", " : " (", m.names[i].c_str());
  std::printf("%s\n", m.names.empty() ? "" : (m.names.size() > 5 ? ", ...)" : ")"));
  std::printf("  stride:");
  for (float s : m.stride) std::printf(" %g", s);
  std::printf("\n  fused: %s\n", m.has_fused_layers ? "yes" : "no");
  std::printf("  state_dict: %zu entries (%zu buffers), %lld parameters\n", m.state.size(), m.buffers.size(),
              static_cast<long long>(m.num_parameters()));
  if (!list_entries) return;
  for (const std::string& name : m.order) {
    const y7::Tensor& t = m.state.at(name);
    std::printf("    %-40s %-8s %s%s\n", name.c_str(), y7::dtype_name(t.dtype()), y7::shape_str(t.sizes()).c_str(),
                m.buffers.count(name) ? "  (buffer)" : "");
  }
}

int run(const std::vector<std::string>& argv) {
  y7::cli::Args args(argv, {{"weights", 1}, {"summary", 0}});
  std::string w = args.str("weights");
  Y7_CHECK(!w.empty(), "inspect: --weights is required");
  bool all = !args.flag("summary");
  y7::io::Checkpoint ck = y7::io::load_checkpoint(w);
  std::printf("file: %s\n", w.c_str());
  std::printf("epoch: %lld\n", static_cast<long long>(ck.epoch));
  if (ck.best_fitness) std::printf("best_fitness: %.17g\n", *ck.best_fitness);
  if (ck.updates) std::printf("updates: %lld\n", static_cast<long long>(*ck.updates));
  if (ck.model) print_model("model", *ck.model, all);
  else std::printf("model: none\n");
  if (ck.ema) print_model("ema", *ck.ema, all);
  if (!ck.model && !ck.ema && ck.root && ck.root->kind == y7::io::PickleValue::Kind::Dict) {
    // not a model checkpoint: list tensors at the top level (e.g. a dict of gradients)
    size_t n = 0;
    for (auto& [k, v] : ck.root->entries) {
      if (k->kind != y7::io::PickleValue::Kind::String) continue;
      if (v->kind == y7::io::PickleValue::Kind::Tensor) {
        ++n;
        if (all)
          std::printf("    %-40s %-8s %s\n", k->str.c_str(), y7::dtype_name(v->tensor.dtype()),
                      y7::shape_str(v->tensor.sizes()).c_str());
      } else {
        std::printf("  %s: %s\n", k->str.c_str(), v->describe().c_str());
      }
    }
    std::printf("tensors: %zu\n", n);
  }
  return 0;
}

y7::cli::Register reg("inspect", "print what an upstream .pt checkpoint holds (--weights W.pt [--summary])", run);

}  // namespace
