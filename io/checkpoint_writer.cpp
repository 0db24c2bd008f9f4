// torch.save-compatible checkpoint writer (see checkpoint_writer.h).
#include "io/checkpoint_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "graph/export_modules.h"
#include "graph/model.h"
#include "io/zip_writer.h"

namespace y7::io {

namespace {

std::string stem(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  std::string out;
  for (char c : base) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
  return out.empty() ? "archive" : out;
}

template <class Sink>
void write_archive(Sink& add, const Py& root, const std::string& archive) {
  PickledData d = pickle_torch(root);
  add(archive + "/data.pkl", d.pickle.data(), d.pickle.size());
  std::vector<const StorageRecord*> recs;
  for (auto& r : d.storages) recs.push_back(&r);
  std::sort(recs.begin(), recs.end(), [](auto* a, auto* b) { return a->key < b->key; });  // as torch orders them
  for (auto* r : recs) {
    size_t nbytes = size_t(r->numel) * dtype_size(r->dtype);
    add(archive + "/data/" + r->key, r->storage->data(), nbytes);
  }
  add(archive + "/version", "3\n", 2);
}

PyRef model_tree(const graph::Model& m, bool half, bool training, bool requires_grad,
                 const std::vector<std::pair<std::string, PyRef>>& attrs = {}, const std::string& yaml_file = "") {
  graph::ExportOptions o;
  o.dtype = half ? DType::F16 : DType::F32;
  o.training = training;
  o.requires_grad = requires_grad;
  o.model_attrs = attrs;
  o.yaml_file = yaml_file;
  return graph::export_model(m, o);
}

}  // namespace

void save_torch(const std::string& path, const Py& root, const std::string& archive_name) {
  ZipWriter z(path);
  auto add = [&](const std::string& n, const void* p, size_t s) { z.add(n, p, s); };
  write_archive(add, root, archive_name.empty() ? stem(path) : archive_name);
  z.finish();
}

std::string save_torch_to_memory(const Py& root, const std::string& archive_name) {
  // Through a temporary file so that the bytes are exactly what save_torch writes.
  char tmpl[] = "/tmp/y7_ckpt_XXXXXX";
  int fd = mkstemp(tmpl);
  Y7_CHECK(fd >= 0, "checkpoint writer: cannot create a temporary file");
  close(fd);
  std::string path = tmpl;
  try {
    save_torch(path, root, archive_name);
  } catch (...) {
    std::remove(path.c_str());
    throw;
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  std::string out;
  if (f) {
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  std::remove(path.c_str());
  return out;
}

void save_stripped_checkpoint(const std::string& path, const graph::Model& model, bool half) {
  PyRef ck = py::dict();
  ck->set("model", model_tree(model, half, false, false));
  ck->set("optimizer", py::none());
  ck->set("training_results", py::none());
  ck->set("epoch", py::integer(-1));
  ck->set("ema", py::none());
  ck->set("updates", py::none());
  ck->set("wandb_id", py::none());
  save_torch(path, *ck);
}

PyRef training_checkpoint_tree(const TrainingCheckpoint& c) {
  Y7_CHECK(c.model, "checkpoint writer: a training checkpoint needs a model");
  PyRef ck = py::dict();
  ck->set("epoch", py::integer(c.epoch));
  ck->set("best_fitness", c.best_fitness ? py::numpy_f64(*c.best_fitness) : py::none());
  ck->set("training_results", py::str(c.training_results));
  ck->set("model", model_tree(*c.model, c.half, true, true, c.model_attrs, c.yaml_file));
  ck->set("ema", c.ema ? model_tree(*c.ema, c.half, false, false, c.model_attrs, c.yaml_file) : py::none());
  ck->set("updates", c.updates ? py::integer(*c.updates) : py::none());
  ck->set("optimizer", c.optimizer ? c.optimizer : py::none());
  ck->set("wandb_id", c.wandb_id ? c.wandb_id : py::none());
  return ck;
}

void save_training_checkpoint(const std::string& path, const TrainingCheckpoint& ck) {
  save_torch(path, *training_checkpoint_tree(ck));
}

}  // namespace y7::io
