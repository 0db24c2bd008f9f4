// Writer side of torch.save: a small python object tree (Py) and a protocol-2 pickler that emits it
// the way CPython's pickle.Pickler does under torch 1.13's torch.save: memoized strings, tuples,
// lists, dicts, globals and objects; OrderedDict/set via REDUCE; module objects via NEWOBJ + BUILD;
// tensors as torch._utils._rebuild_tensor_v2 (parameters wrapped in _rebuild_parameter) whose
// storages are persistent ids ('storage', torch.<T>Storage, key, 'cpu', numel), keys numbered in
// order of first use. Shared nodes (the same PyRef twice) are pickled once and referenced (BINGET).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace y7::io {

struct PickleValue;

struct Py;
using PyRef = std::shared_ptr<Py>;

struct Py {
  enum class T : uint8_t {
    None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, OrderedDict, Set,
    Object,     // module.name instance: NEWOBJ with no args, BUILD with `state` (a dict) when set
    Global,     // module.name as a value
    Tensor,     // a torch tensor (parameter: wrapped in _rebuild_parameter)
    NumpyF64,   // numpy.float64 scalar (numpy.core.multiarray.scalar)
  };
  T t = T::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s, s2;  // Str/Bytes payload; Object/Global: module (s) and name (s2)
  std::vector<PyRef> items;                          // Tuple/List/Set
  std::vector<std::pair<PyRef, PyRef>> entries;      // Dict/OrderedDict, insertion order
  PyRef state;                                       // Object
  Tensor tensor;
  bool parameter = false, requires_grad = false;

  // Dict/OrderedDict helpers: appends (no duplicate check) / finds a string key.
  Py& set(const std::string& key, PyRef v);
  PyRef get(std::string_view key) const;
};

namespace py {
PyRef none();
PyRef boolean(bool v);
PyRef integer(int64_t v);
PyRef real(double v);
PyRef str(std::string v);
PyRef bytes(std::string v);
PyRef tuple(std::vector<PyRef> v = {});
PyRef list(std::vector<PyRef> v = {});
PyRef dict();
PyRef odict();
PyRef set(std::vector<PyRef> v = {});
PyRef object(std::string module, std::string name, PyRef state = nullptr);
PyRef global(std::string module, std::string name);
PyRef tensor(const Tensor& t, bool parameter = false, bool requires_grad = false);
PyRef numpy_f64(double v);
PyRef ints(const std::vector<int64_t>& v, bool as_tuple);
// Converts a value read by our unpickler back to a writable tree (plain data, tensors, objects
// with their state; numpy scalars come back as python floats/ints, OrderedDicts as dicts).
// Shared nodes of the source stay shared.
PyRef from_pickle(const PickleValue& v);
}  // namespace py

// One tensor storage referenced by the pickle: the bytes to store under data/<key>.
struct StorageRecord {
  std::string key;
  std::shared_ptr<Storage> storage;
  DType dtype;
  int64_t numel;
};

struct PickledData {
  std::string pickle;                   // data.pkl
  std::vector<StorageRecord> storages;  // in key order "0", "1", ...
};

// Pickles `root` (protocol 2). Throws y7::Error for tensors it cannot store (non-CPU, unsupported
// dtype) or trees nested deeper than 10000.
PickledData pickle_torch(const Py& root);

// The torch storage class for a dtype ("HalfStorage"); throws for unsupported dtypes.
const char* torch_storage_class(DType t);

}  // namespace y7::io
