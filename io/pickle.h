// A restricted pickle virtual machine (protocols 0-5 binary opcodes, the text opcodes torch-era
// pickles use) that builds a generic object tree and never executes anything: GLOBAL/STACK_GLOBAL
// resolve only an allowlist of names (containers, numpy scalars/arrays, torch tensor rebuilders and
// storages, nn.Module classes of torch.nn and of upstream YOLOv7), REDUCE applies only those with
// their data semantics, and everything else is a y7::Error ("pickle: global 'os.system' is not
// allowed"). The VM is iterative; the finished object graph is checked for cycles and for nesting
// deeper than PickleLimits::max_depth, so recursive consumers are safe.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace y7::io {

// s with control bytes replaced by '?' and cut to max characters ("..." appended), for error messages.
std::string printable(std::string_view s, size_t max = 120);

struct PickleValue {
  enum class Kind : uint8_t {
    None, Bool, Int, Float, String, Bytes,
    List, Tuple, Dict, Set,  // Set also holds frozensets
    Object,                  // instance of an allowlisted class: class_name, args (constructor), state (BUILD)
    Global,                  // an allowlisted global used as a value: class_name
    Tensor,                  // torch tensor (also numpy arrays rebuilt as tensors)
    Storage,                 // a torch storage (persistent id)
  };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;                                      // String/Bytes payload; Object/Global: "module.name"
  std::vector<PickleValue*> items;                      // List/Tuple/Set elements; Object: constructor args
  std::vector<std::pair<PickleValue*, PickleValue*>> entries;  // Dict, in insertion order
  PickleValue* state = nullptr;                         // BUILD state (an object's __dict__)
  Tensor tensor;                                        // Tensor
  std::shared_ptr<Storage> storage;                     // Storage
  DType storage_dtype = DType::F32;                     // Storage element type
  int64_t storage_numel = 0;                            // Storage: declared elements

  // ---- convenience (all const, never throw unless stated)
  bool is(Kind k) const { return kind == k; }
  bool is_none() const { return kind == Kind::None; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  double number() const;          // Int/Float/Bool as double; throws otherwise
  int64_t as_int() const;         // Int/Bool; throws otherwise
  const std::string& as_string() const;  // String; throws otherwise
  // Dict: value of a string key; Object: value of a string key in its state dict. nullptr if absent.
  const PickleValue* get(std::string_view key) const;
  // The attribute dict of an Object (its state when that is a dict, or the dict part of a
  // (dict, slots) tuple); nullptr otherwise.
  const PickleValue* attrs() const;
  const char* kind_name() const;  // "int", "dict", "object models.common.Conv", ...
  std::string describe() const;   // kind_name plus class name for objects/globals

  // Dicts with many entries: index of hashable keys for O(1) SETITEM replacement and get().
  std::unique_ptr<std::unordered_map<std::string, size_t>> key_index;
  // Scratch for the VM's graph check (height of the subtree, 0 = not yet computed).
  uint32_t height_ = 0;
  bool on_path_ = false;
};

const char* pickle_kind_name(PickleValue::Kind k);

struct PickleLimits {
  size_t max_depth = 1000;            // nesting of the finished object graph, and of MARKs
  size_t max_memo = size_t(1) << 24;  // memo entries
  size_t max_stack = size_t(1) << 26; // values on the VM stack
  size_t max_bytes = size_t(256) << 20;  // memory for values created by the VM (nodes, strings)
};

// Owns every node of one unpickled object graph (cycles are impossible to leak; destruction is flat).
class PickleArena {
 public:
  PickleValue* make(PickleValue::Kind k);
  size_t size() const { return nodes_.size(); }

 private:
  std::deque<PickleValue> nodes_;
};

// A persistent-id resolver: gets the pid value (for torch: a tuple ('storage', <Global>, key,
// location, numel)) and returns a node made in the arena (a Storage node for torch).
using PersistentLoader = std::function<PickleValue*(const PickleValue& pid, PickleArena& arena)>;

struct PickleResult {
  std::shared_ptr<PickleArena> arena;
  PickleValue* root = nullptr;
  // A shared_ptr to the root that keeps the arena alive.
  std::shared_ptr<PickleValue> shared_root() const { return std::shared_ptr<PickleValue>(arena, root); }
};

// Runs the VM on `data`. `what` names the stream in error messages.
PickleResult unpickle(std::string_view data, const PersistentLoader& loader = nullptr,
                      const PickleLimits& limits = {}, const std::string& what = "pickle");

// True if "module.name" is resolvable by GLOBAL/STACK_GLOBAL.
bool pickle_global_allowed(std::string_view module, std::string_view name);

// Maps a torch storage class name ("torch.HalfStorage") to its dtype; false if unknown.
bool torch_storage_dtype(std::string_view qualified_name, DType* out);

}  // namespace y7::io
