// libFuzzer target for the checkpoint reader: zip parsing, the restricted pickle VM and the
// checkpoint interpretation (state_dict walk, yaml conversion, numpy scalars). Inputs that start like
// a zip go through load_checkpoint_from_memory; anything else is also run as a bare pickle whose
// storages are small fresh buffers, so that the fuzzer reaches the VM without the zip framing.
// Only y7::Error may escape the parser; every other exception, crash, leak or sanitizer report is a
// bug. Build and run: see fuzz/README.md.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/zip.h"

namespace {

using y7::io::PickleValue;
using K = PickleValue::Kind;

// Reads the first and last element of every tensor so that ASan sees any view outside its memory.
void touch(const y7::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return;
  y7::Shape first(size_t(t.dim()), 0), last(size_t(t.dim()));
  for (int64_t d = 0; d < t.dim(); ++d) last[size_t(d)] = t.size(d) - 1;
  volatile double s = t.item(first) + t.item(last);
  (void)s;
}

void touch(const y7::io::ModelRecord& m) {
  for (auto& [name, t] : m.state) touch(t);
  volatile size_t n = m.yaml.size() + m.names.size() + m.stride.size() + size_t(m.num_parameters());
  (void)n;
}

void touch(const y7::io::Checkpoint& ck) {
  if (ck.model) touch(*ck.model);
  if (ck.ema) touch(*ck.ema);
}

// Persistent ids of a bare pickle: ('storage', <torch.XStorage>, key, location, numel) -> zeroed storage.
PickleValue* fake_storage(const PickleValue& pid, y7::io::PickleArena& arena) {
  Y7_CHECK(pid.kind == K::Tuple && pid.items.size() >= 5 && pid.items[1]->kind == K::Global &&
               pid.items[4]->kind == K::Int,
           "fuzz: bad persistent id");
  y7::DType dt;
  Y7_CHECK(y7::io::torch_storage_dtype(pid.items[1]->str, &dt), "fuzz: storage type");
  int64_t numel = pid.items[4]->integer;
  Y7_CHECK(numel >= 0 && numel <= (1 << 16), "fuzz: storage size");
  PickleValue* v = arena.make(K::Storage);
  v->storage = y7::Storage::allocate(size_t(numel) * y7::dtype_size(dt));
  std::memset(v->storage->data(), 0, v->storage->nbytes());
  v->storage_dtype = dt;
  v->storage_numel = numel;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    y7::io::Checkpoint ck = y7::io::load_checkpoint_from_memory(data, size, "fuzz.pt");
    touch(ck);
  } catch (const y7::Error&) {
  }
  if (size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0) return 0;
  try {
    y7::io::PickleResult r =
        y7::io::unpickle(std::string_view(reinterpret_cast<const char*>(data), size), fake_storage);
    touch(y7::io::checkpoint_from_pickle(r));
  } catch (const y7::Error&) {
  }
  return 0;
}
