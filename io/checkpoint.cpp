#include "io/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "io/pickle.h"
#include "io/zip.h"

namespace y7::io {

using K = PickleValue::Kind;

namespace {

constexpr size_t kMaxModules = 1 << 20;     // module objects visited while collecting a state_dict
constexpr size_t kMaxYamlNodes = 1 << 20;   // nodes emitted while converting Model.yaml
constexpr size_t kMaxStateEntries = 1 << 20;

bool storage_key_ok(std::string_view k) {
  if (k.empty() || k.size() > 64) return false;
  for (char c : k)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' || c == '.'))
      return false;
  return k != "." && k != "..";
}

// Persistent ids of torch.save: ('storage', <torch.XStorage>, key, location, numel).
class StorageResolver {
 public:
  StorageResolver(const ZipArchive& zip, std::string prefix) : zip_(zip), prefix_(std::move(prefix)) {}

  PickleValue* operator()(const PickleValue& pid, PickleArena& arena) {
    const char* bad = "checkpoint: malformed storage persistent id";
    Y7_CHECK(pid.kind == K::Tuple && pid.items.size() >= 5, bad);
    const auto& it = pid.items;
    Y7_CHECK(it[0]->kind == K::String && it[0]->str == "storage", "checkpoint: unsupported persistent id type");
    Y7_CHECK(it[1]->kind == K::Global, bad, " (storage type is a ", it[1]->describe(), ")");
    DType dt;
    Y7_CHECK(torch_storage_dtype(it[1]->str, &dt), "checkpoint: storage type '", it[1]->str, "' is not supported");
    Y7_CHECK(it[2]->kind == K::String, bad, " (key is a ", it[2]->describe(), ")");
    const std::string& key = it[2]->str;
    Y7_CHECK(storage_key_ok(key), "checkpoint: bad storage key '", printable(key, 40), "'");
    Y7_CHECK(it[4]->kind == K::Int && it[4]->integer >= 0, bad, " (element count)");
    int64_t numel = it[4]->integer;

    auto c = cache_.find(key);
    if (c != cache_.end()) {
      Y7_CHECK(c->second->storage_dtype == dt && c->second->storage_numel == numel, "checkpoint: storage 'data/", key,
               "' is used with two different types or sizes");
      return c->second;
    }
    std::string name = prefix_ + "data/" + key;
    const ZipEntry* e = zip_.find(name);
    Y7_CHECK(e, "checkpoint: storage '", name, "' is missing from the archive");
    uint64_t isz = dtype_size(dt);
    Y7_CHECK(uint64_t(numel) <= e->size / isz, "checkpoint: storage '", name, "' declares ", numel, " ", dtype_name(dt),
             " elements but its entry holds only ", e->size, " bytes");
    PickleValue* v = arena.make(K::Storage);
    v->storage = zip_.storage(*e, uint64_t(numel) * isz, size_t(isz));
    v->storage_dtype = dt;
    v->storage_numel = numel;
    cache_.emplace(key, v);
    return v;
  }

 private:
  const ZipArchive& zip_;
  std::string prefix_;
  std::unordered_map<std::string, PickleValue*> cache_;
};

// Python float repr (shortest round trip, always with a '.' or exponent); YAML spellings for inf/nan.
std::string float_repr(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

YAML::Node to_yaml(const PickleValue& v, size_t& budget) {
  Y7_CHECK(budget-- > 0, "checkpoint: yaml has more than ", kMaxYamlNodes, " nodes");
  switch (v.kind) {
    case K::None: return YAML::Node(YAML::NodeType::Null);
    case K::Bool: return YAML::Node(v.boolean);
    case K::Int: return YAML::Node(v.integer);
    case K::Float: return YAML::Node(float_repr(v.real));
    case K::String: return YAML::Node(v.str);
    case K::List:
    case K::Tuple:
    case K::Set: {
      YAML::Node n(YAML::NodeType::Sequence);
      for (auto* x : v.items) n.push_back(to_yaml(*x, budget));
      return n;
    }
    case K::Dict: {
      YAML::Node n(YAML::NodeType::Map);
      for (auto& [k, x] : v.entries) {
        std::string key;
        switch (k->kind) {
          case K::String: key = k->str; break;
          case K::Int: key = std::to_string(k->integer); break;
          case K::Bool: key = k->boolean ? "true" : "false"; break;
          case K::Float: key = float_repr(k->real); break;
          case K::None: key = "null"; break;
          default: fail("checkpoint: yaml has a dict key of type ", k->describe());
        }
        n[key] = to_yaml(*x, budget);
      }
      return n;
    }
    default: fail("checkpoint: yaml holds a ", v.describe(), " (plain data expected)");
  }
}

std::string short_class(const std::string& q) {
  auto p = q.rfind('.');
  return p == std::string::npos ? q : q.substr(p + 1);
}

template <typename Where>
const PickleValue* dict_attr(const PickleValue& mod, const char* key, const Where& where) {
  const PickleValue* d = mod.get(key);
  if (!d || d->is_none()) return nullptr;
  Y7_CHECK(d->kind == K::Dict, "checkpoint: ", where(), ".", key, " is a ", d->describe(), " (dict expected)");
  return d;
}

struct Walker {
  ModelRecord& rec;
  size_t modules = 0;

  void add(const std::string& name, const PickleValue& t, bool buffer) {
    Y7_CHECK(t.kind == K::Tensor, "checkpoint: '", printable(name), "' is a ", t.describe(), ", not a tensor");
    Y7_CHECK(rec.state.size() < kMaxStateEntries, "checkpoint: more than ", kMaxStateEntries, " state_dict entries");
    auto [it, inserted] = rec.state.emplace(name, t.tensor);
    Y7_CHECK(inserted, "checkpoint: duplicate state_dict name '", printable(name), "'");
    rec.order.push_back(name);
    if (buffer) rec.buffers.insert(name);
  }

  void walk(const PickleValue& mod, const std::string& prefix) {
    Y7_CHECK(++modules <= kMaxModules, "checkpoint: more than ", kMaxModules, " modules");
    auto where = [&] {
      return prefix.empty() ? std::string("model") : "module '" + printable(prefix.substr(0, prefix.size() - 1)) + "'";
    };
    Y7_CHECK(mod.kind == K::Object && mod.attrs(), "checkpoint: ", where(), " is a ", mod.describe(),
             " without an attribute dict");
    if (const PickleValue* params = dict_attr(mod, "_parameters", where))
      for (auto& [k, v] : params->entries) {
        Y7_CHECK(k->kind == K::String, "checkpoint: ", where(), " has a parameter named by a ", k->describe());
        if (!v->is_none()) add(prefix + k->str, *v, false);
      }
    if (const PickleValue* bufs = dict_attr(mod, "_buffers", where)) {
      std::vector<std::string_view> skip;
      if (const PickleValue* np = mod.get("_non_persistent_buffers_set"); np && np->kind == K::Set)
        for (auto* s : np->items)
          if (s->kind == K::String) skip.push_back(s->str);
      for (auto& [k, v] : bufs->entries) {
        Y7_CHECK(k->kind == K::String, "checkpoint: ", where(), " has a buffer named by a ", k->describe());
        if (v->is_none() || std::find(skip.begin(), skip.end(), k->str) != skip.end()) continue;
        add(prefix + k->str, *v, true);
      }
    }
    const PickleValue* subs = dict_attr(mod, "_modules", where);
    const std::string cls = short_class(mod.str);
    auto has_child = [&](const char* n) {
      if (!subs) return false;
      const PickleValue* c = subs->get(n);
      return c && !c->is_none();
    };
    if (mod.str == "models.common.Conv" && !has_child("bn")) rec.has_fused_layers = true;
    if (mod.str == "models.common.RepConv" && has_child("rbr_reparam")) rec.has_fused_layers = true;
    if (!subs) return;
    for (auto& [k, v] : subs->entries) {
      Y7_CHECK(k->kind == K::String, "checkpoint: ", where(), " has a submodule named by a ", k->describe());
      if (v->is_none()) continue;
      Y7_CHECK(v->kind == K::Object, "checkpoint: submodule '", printable(prefix + k->str), "' is a ", v->describe());
      walk(*v, prefix + k->str + ".");
    }
  }
};

std::optional<double> number_or_tensor(const PickleValue* v, const char* what) {
  if (!v || v->is_none()) return std::nullopt;
  if (v->is_number()) return v->number();
  if (v->kind == K::Tensor) {
    Y7_CHECK(v->tensor.numel() == 1, "checkpoint: '", what, "' is a tensor of ", v->tensor.numel(), " elements");
    return v->tensor.reshape({1}).item({0});
  }
  fail("checkpoint: '", what, "' is a ", v->describe(), " (number expected)");
}

}  // namespace

int64_t ModelRecord::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : state)
    if (!buffers.count(name)) n += t.numel();
  return n;
}

YAML::Node pickle_to_yaml(const PickleValue& v) {
  size_t budget = kMaxYamlNodes;
  return to_yaml(v, budget);
}

ModelRecord model_record_from(const PickleValue& model) {
  Y7_CHECK(model.kind == K::Object && model.str == "models.yolo.Model", "checkpoint: expected a models.yolo.Model, got a ",
           model.describe());
  ModelRecord rec;
  Walker w{rec};
  w.walk(model, "");

  if (const PickleValue* y = model.get("yaml"); y && !y->is_none()) {
    Y7_CHECK(y->kind == K::Dict, "checkpoint: Model.yaml is a ", y->describe(), " (dict expected)");
    rec.yaml = pickle_to_yaml(*y);
  }
  if (const PickleValue* n = model.get("names"); n && !n->is_none()) {
    if (n->kind == K::List || n->kind == K::Tuple) {
      for (auto* x : n->items) {
        if (x->kind == K::String) rec.names.push_back(x->str);
        else if (x->kind == K::Int) rec.names.push_back(std::to_string(x->integer));
        else fail("checkpoint: Model.names holds a ", x->describe());
      }
    } else if (n->kind == K::Dict) {
      for (auto& [k, x] : n->entries) {
        Y7_CHECK(x->kind == K::String, "checkpoint: Model.names holds a ", x->describe());
        rec.names.push_back(x->str);
      }
    } else {
      fail("checkpoint: Model.names is a ", n->describe());
    }
  }
  if (const PickleValue* s = model.get("stride"); s && !s->is_none()) {
    if (s->kind == K::Tensor) {
      Y7_CHECK(s->tensor.numel() <= 64, "checkpoint: Model.stride has ", s->tensor.numel(), " elements");
      Tensor f = s->tensor.reshape({-1});
      for (int64_t i = 0; i < f.numel(); ++i) rec.stride.push_back(float(f.item({i})));
    } else if (s->kind == K::List || s->kind == K::Tuple) {
      for (auto* x : s->items) {
        Y7_CHECK(x->is_number(), "checkpoint: Model.stride holds a ", x->describe());
        rec.stride.push_back(float(x->number()));
      }
    } else {
      fail("checkpoint: Model.stride is a ", s->describe());
    }
  }
  // detect type: class of the last layer of Model.model (a Sequential)
  if (const PickleValue* seq = model.get("_modules"); seq && seq->kind == K::Dict)
    if (const PickleValue* m = seq->get("model"); m && m->kind == K::Object)
      if (const PickleValue* layers = m->get("_modules"); layers && layers->kind == K::Dict && !layers->entries.empty())
        if (const PickleValue* last = layers->entries.back().second; last->kind == K::Object)
          rec.detect_type = short_class(last->str);
  if (const PickleValue* nc = model.get("nc"); nc && nc->kind == K::Int) rec.nc = nc->integer;
  else if (const YAML::Node& y = rec.yaml; y.IsMap() && y["nc"] && y["nc"].IsScalar()) {  // const: no insertion
    const std::string& s = y["nc"].Scalar();
    int64_t v = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) rec.nc = v;
  }
  return rec;
}

PickleResult load_torch_pickle(const ZipArchive& zip) {
  TorchArchiveLayout layout = find_torch_layout(zip);
  std::string_view pkl = zip.bytes(*layout.pickle);
  StorageResolver resolver(zip, layout.prefix);
  PersistentLoader loader = [&resolver](const PickleValue& pid, PickleArena& arena) { return resolver(pid, arena); };
  return unpickle(pkl, loader);
}

Checkpoint checkpoint_from_pickle(const PickleResult& r) {
  Checkpoint ck;
  ck.root = r.shared_root();
  const PickleValue& root = *r.root;
  if (root.kind == K::Object && root.str == "models.yolo.Model") {
    ck.model = model_record_from(root);
    return ck;
  }
  Y7_CHECK(root.kind == K::Dict, "checkpoint: the top-level object is a ", root.describe(), " (a dict was expected)");
  auto model_of = [&](const char* key) -> std::optional<ModelRecord> {
    const PickleValue* m = root.get(key);
    if (!m || m->is_none()) return std::nullopt;
    Y7_CHECK(m->kind == K::Object, "checkpoint: '", key, "' is a ", m->describe(), " (a models.yolo.Model was expected)");
    return model_record_from(*m);
  };
  ck.model = model_of("model");
  ck.ema = model_of("ema");
  if (const PickleValue* e = root.get("epoch"); e && !e->is_none()) {
    Y7_CHECK(e->kind == K::Int, "checkpoint: 'epoch' is a ", e->describe());
    ck.epoch = e->integer;
  }
  ck.best_fitness = number_or_tensor(root.get("best_fitness"), "best_fitness");
  if (const PickleValue* u = root.get("updates"); u && !u->is_none()) {
    Y7_CHECK(u->kind == K::Int, "checkpoint: 'updates' is a ", u->describe());
    ck.updates = u->integer;
  }
  return ck;
}

// Runs f; errors that do not name the file yet get "'<name>': " in front.
template <typename F>
auto with_file_context(const std::string& name, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("'" + name + "'", 0) == 0) throw;
    throw Error("'" + name + "': " + msg);
  }
}

Checkpoint load_checkpoint(const std::string& path) {
  return with_file_context(path, [&] {
    ZipArchive zip = ZipArchive::open(path);
    return checkpoint_from_pickle(load_torch_pickle(zip));
  });
}

Checkpoint load_checkpoint_from_memory(const void* data, size_t size, const std::string& name) {
  return with_file_context(name, [&] {
    ZipArchive zip = ZipArchive::from_memory(data, size, name);
    return checkpoint_from_pickle(load_torch_pickle(zip));
  });
}

std::map<std::string, Tensor> load_tensor_dict(const std::string& path) {
  return with_file_context(path, [&] {
    ZipArchive zip = ZipArchive::open(path);
    PickleResult r = load_torch_pickle(zip);
    const PickleValue& root = *r.root;
    Y7_CHECK(root.kind == K::Dict, "the top-level object is a ", root.describe(), " (a dict of tensors was expected)");
    std::map<std::string, Tensor> out;
    for (auto& [k, v] : root.entries) {
      Y7_CHECK(k->kind == K::String, "a key is a ", k->describe(), " (str expected)");
      Y7_CHECK(v->kind == K::Tensor, "'", printable(k->str), "' is a ", v->describe(), ", not a tensor");
      out[k->str] = v->tensor;
    }
    return out;
  });
}

}  // namespace y7::io
