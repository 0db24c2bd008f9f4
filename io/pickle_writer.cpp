// Protocol-2 pickler for torch.save-compatible data.pkl streams (see pickle_writer.h).
#include "io/pickle_writer.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "io/pickle.h"

namespace y7::io {

Py& Py::set(const std::string& key, PyRef v) {
  Y7_CHECK(t == T::Dict || t == T::OrderedDict, "pickle writer: set() on a non-dict");
  entries.emplace_back(py::str(key), std::move(v));
  return *this;
}

PyRef Py::get(std::string_view key) const {
  for (auto& [k, v] : entries)
    if (k->t == T::Str && k->s == key) return v;
  return nullptr;
}

namespace py {
namespace {
PyRef make(Py::T t) {
  auto p = std::make_shared<Py>();
  p->t = t;
  return p;
}
}  // namespace
PyRef none() { return make(Py::T::None); }
PyRef boolean(bool v) { auto p = make(Py::T::Bool); p->b = v; return p; }
PyRef integer(int64_t v) { auto p = make(Py::T::Int); p->i = v; return p; }
PyRef real(double v) { auto p = make(Py::T::Float); p->f = v; return p; }
PyRef str(std::string v) { auto p = make(Py::T::Str); p->s = std::move(v); return p; }
PyRef bytes(std::string v) { auto p = make(Py::T::Bytes); p->s = std::move(v); return p; }
PyRef tuple(std::vector<PyRef> v) { auto p = make(Py::T::Tuple); p->items = std::move(v); return p; }
PyRef list(std::vector<PyRef> v) { auto p = make(Py::T::List); p->items = std::move(v); return p; }
PyRef dict() { return make(Py::T::Dict); }
PyRef odict() { return make(Py::T::OrderedDict); }
PyRef set(std::vector<PyRef> v) { auto p = make(Py::T::Set); p->items = std::move(v); return p; }
PyRef object(std::string module, std::string name, PyRef state) {
  auto p = make(Py::T::Object);
  p->s = std::move(module), p->s2 = std::move(name), p->state = std::move(state);
  return p;
}
PyRef global(std::string module, std::string name) {
  auto p = make(Py::T::Global);
  p->s = std::move(module), p->s2 = std::move(name);
  return p;
}
PyRef tensor(const Tensor& t, bool parameter, bool requires_grad) {
  Y7_CHECK(t.defined(), "pickle writer: undefined tensor");
  auto p = make(Py::T::Tensor);
  p->tensor = t, p->parameter = parameter, p->requires_grad = requires_grad;
  return p;
}
PyRef numpy_f64(double v) { auto p = make(Py::T::NumpyF64); p->f = v; return p; }
PyRef ints(const std::vector<int64_t>& v, bool as_tuple) {
  std::vector<PyRef> items;
  for (int64_t x : v) items.push_back(integer(x));
  return as_tuple ? tuple(std::move(items)) : list(std::move(items));
}

namespace {
std::pair<std::string, std::string> split_qualified(const std::string& q) {
  size_t dot = q.rfind('.');
  if (dot == std::string::npos) return {"builtins", q};
  return {q.substr(0, dot), q.substr(dot + 1)};
}
struct FromPickle {
  std::unordered_map<const PickleValue*, PyRef> done;
  PyRef conv(const PickleValue* v, int depth) {
    Y7_CHECK(depth < 5000, "pickle writer: value nested too deeply");
    if (!v) return none();
    if (auto it = done.find(v); it != done.end()) return it->second;
    using K = PickleValue::Kind;
    PyRef r;
    switch (v->kind) {
      case K::None: r = none(); break;
      case K::Bool: r = boolean(v->boolean); break;
      case K::Int: r = integer(v->integer); break;
      case K::Float: r = real(v->real); break;
      case K::String: r = str(v->str); break;
      case K::Bytes: r = bytes(v->str); break;
      case K::List: case K::Tuple: case K::Set: {
        r = v->kind == K::List ? list() : v->kind == K::Tuple ? tuple() : set();
        done[v] = r;
        for (auto* x : v->items) r->items.push_back(conv(x, depth + 1));
        break;
      }
      case K::Dict: {
        r = dict();
        done[v] = r;
        for (auto& [k, x] : v->entries) r->entries.emplace_back(conv(k, depth + 1), conv(x, depth + 1));
        break;
      }
      case K::Object: {
        auto [m, n] = split_qualified(v->str);
        r = object(m, n);
        done[v] = r;
        Y7_CHECK(v->items.empty(), "pickle writer: cannot re-pickle '", v->str, "' built from constructor arguments");
        if (v->state) r->state = conv(v->state, depth + 1);
        break;
      }
      case K::Global: {
        auto [m, n] = split_qualified(v->str);
        r = global(m, n);
        break;
      }
      case K::Tensor: r = tensor(v->tensor); break;
      case K::Storage: fail("pickle writer: a bare storage cannot be re-pickled");
    }
    done[v] = r;
    return r;
  }
};
}  // namespace

PyRef from_pickle(const PickleValue& v) {
  FromPickle fp;
  return fp.conv(&v, 0);
}
}  // namespace py

const char* torch_storage_class(DType t) {
  switch (t) {
    case DType::F32: return "FloatStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::F64: return "DoubleStorage";
    case DType::I8: return "CharStorage";
    case DType::U8: return "ByteStorage";
    case DType::I32: return "IntStorage";
    case DType::I64: return "LongStorage";
    case DType::Bool: return "BoolStorage";
  }
  fail("pickle writer: unsupported dtype");
}

namespace {

// Opcodes (protocol 2 subset).
enum : uint8_t {
  MARK = '(', STOP = '.', BINPERSID = 'Q', NONE = 'N', BININT = 'J', BININT1 = 'K', BININT2 = 'M',
  REDUCE = 'R', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', EMPTY_DICT = '}', APPENDS = 'e',
  BINGET = 'h', LONG_BINGET = 'j', EMPTY_LIST = ']', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's',
  TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G', PROTO = 0x80, NEWOBJ = 0x81,
  TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a,
};

class Pickler {
 public:
  PickledData run(const Py& root) {
    op(PROTO);
    op(2);
    save(root, 0);
    op(STOP);
    return std::move(data_);
  }

 private:
  PickledData& out() { return data_; }
  void op(uint8_t c) { data_.pickle.push_back(char(c)); }
  void raw(const void* p, size_t n) { data_.pickle.append(static_cast<const char*>(p), n); }
  void u32(uint32_t v) {
    unsigned char b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    raw(b, 4);
  }

  uint32_t put() {
    uint32_t idx = next_memo_++;
    if (idx < 256) {
      op(BINPUT);
      op(uint8_t(idx));
    } else {
      op(LONG_BINPUT);
      u32(idx);
    }
    return idx;
  }
  void get(uint32_t idx) {
    if (idx < 256) {
      op(BINGET);
      op(uint8_t(idx));
    } else {
      op(LONG_BINGET);
      u32(idx);
    }
  }

  void save_int(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      op(BININT1);
      op(uint8_t(v));
    } else if (v >= 0 && v <= 0xffff) {
      op(BININT2);
      op(uint8_t(v));
      op(uint8_t(v >> 8));
    } else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
      op(BININT);
      u32(uint32_t(int32_t(v)));
    } else {
      // LONG1: minimal little-endian two's complement
      unsigned char b[9];
      int n = 0;
      uint64_t u = uint64_t(v);
      for (int i = 0; i < 8; ++i) b[i] = uint8_t(u >> (8 * i));
      n = 8;
      while (n > 1 && ((b[n - 1] == 0x00 && !(b[n - 2] & 0x80)) || (b[n - 1] == 0xff && (b[n - 2] & 0x80)))) --n;
      op(LONG1);
      op(uint8_t(n));
      raw(b, size_t(n));
    }
  }
  void save_float(double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    op(BINFLOAT);
    for (int i = 7; i >= 0; --i) op(uint8_t(u >> (8 * i)));
  }
  void save_str(const std::string& s) {
    if (auto it = str_memo_.find(s); it != str_memo_.end()) return get(it->second);
    Y7_CHECK(s.size() < 0xffffffffULL, "pickle writer: string too long");
    op(BINUNICODE);
    u32(uint32_t(s.size()));
    raw(s.data(), s.size());
    str_memo_[s] = put();
  }
  void save_global(const std::string& module, const std::string& name) {
    std::string m = module == "builtins" ? "__builtin__" : module;
    std::string key = m + "\n" + name + "\n";
    if (auto it = global_memo_.find(key); it != global_memo_.end()) return get(it->second);
    op(GLOBAL);
    raw(key.data(), key.size());
    global_memo_[key] = put();
  }
  // Latin-1 decoded bytes as UTF-8 text (what `_codecs.encode(s, 'latin1')` gets back).
  static std::string latin1_to_utf8(const std::string& b) {
    std::string s;
    for (unsigned char c : b) {
      if (c < 0x80) s.push_back(char(c));
      else {
        s.push_back(char(0xc0 | (c >> 6)));
        s.push_back(char(0x80 | (c & 0x3f)));
      }
    }
    return s;
  }
  // _codecs.encode(text, 'latin1') REDUCEd; the caller memoizes the result.
  void save_bytes(const std::string& b) {
    save_global("_codecs", "encode");
    save_str(latin1_to_utf8(b));
    save_str("latin1");
    op(TUPLE2);
    put();
    op(REDUCE);
  }
  void save_items_tuple(const std::vector<const Py*>& items, int depth) {
    size_t n = items.size();
    if (n == 0) return op(EMPTY_TUPLE);
    if (n > 3) op(MARK);
    for (auto* x : items) save(*x, depth + 1);
    op(n == 1 ? TUPLE1 : n == 2 ? TUPLE2 : n == 3 ? TUPLE3 : TUPLE);
    put();
  }
  void batch_setitems(const Py& d, int depth) {
    const auto& e = d.entries;
    for (size_t i = 0; i < e.size(); i += 1000) {
      size_t n = std::min<size_t>(1000, e.size() - i);
      if (n > 1) op(MARK);
      for (size_t j = i; j < i + n; ++j) {
        save(*e[j].first, depth + 1);
        save(*e[j].second, depth + 1);
      }
      op(n > 1 ? SETITEMS : SETITEM);
    }
  }
  void batch_appends(const std::vector<PyRef>& items, int depth) {
    for (size_t i = 0; i < items.size(); i += 1000) {
      size_t n = std::min<size_t>(1000, items.size() - i);
      if (n > 1) op(MARK);
      for (size_t j = i; j < i + n; ++j) save(*items[j], depth + 1);
      op(n > 1 ? APPENDS : APPEND);
    }
  }
  void empty_odict() {
    save_global("collections", "OrderedDict");
    op(EMPTY_TUPLE);
    op(REDUCE);
    put();
  }

  const StorageRecord& storage_of(const Tensor& t) {
    Storage* key = t.storage().get();
    if (auto it = storage_index_.find(key); it != storage_index_.end()) {
      const StorageRecord& r = data_.storages[it->second];
      Y7_CHECK(r.dtype == t.dtype(), "pickle writer: one storage viewed with two dtypes");
      return r;
    }
    Y7_CHECK(t.device().is_cpu(), "pickle writer: only CPU tensors can be saved");
    size_t es = dtype_size(t.dtype());
    StorageRecord r{std::to_string(data_.storages.size()), t.storage(), t.dtype(), int64_t(t.storage()->nbytes() / es)};
    storage_index_[key] = data_.storages.size();
    data_.storages.push_back(std::move(r));
    return data_.storages.back();
  }

  void save_tensor_v2(const Tensor& t, bool requires_grad, int depth) {
    save_global("torch._utils", "_rebuild_tensor_v2");
    op(MARK);
    {  // storage: persistent id tuple then BINPERSID
      const StorageRecord& r = storage_of(t);
      std::string key = r.key;
      int64_t numel = r.numel;
      op(MARK);
      save_str("storage");
      save_global("torch", torch_storage_class(t.dtype()));
      save_str(key);
      save_str("cpu");
      save_int(numel);
      op(TUPLE);
      put();
      op(BINPERSID);
    }
    save_int(t.offset());
    auto shape_tuple = [&](const Shape& s) {
      std::vector<PyRef> keep;
      std::vector<const Py*> items;
      for (int64_t x : s) keep.push_back(py::integer(x));
      for (auto& k : keep) items.push_back(k.get());
      save_items_tuple(items, depth + 1);
    };
    shape_tuple(t.sizes());
    shape_tuple(t.strides());
    op(requires_grad ? NEWTRUE : NEWFALSE);
    empty_odict();
    op(TUPLE);
    put();
    op(REDUCE);
  }

  void save(const Py& v, int depth) {
    Y7_CHECK(depth < 10000, "pickle writer: tree nested deeper than 10000");
    using T = Py::T;
    switch (v.t) {
      case T::None: return op(NONE);
      case T::Bool: return op(v.b ? NEWTRUE : NEWFALSE);
      case T::Int: return save_int(v.i);
      case T::Float: return save_float(v.f);
      case T::Str: return save_str(v.s);
      default: break;
    }
    if (auto it = memo_.find(&v); it != memo_.end()) return get(it->second);
    switch (v.t) {
      case T::Bytes: save_bytes(v.s); break;
      case T::Tuple: {
        std::vector<const Py*> items;
        for (auto& x : v.items) items.push_back(x.get());
        save_items_tuple(items, depth);  // memoizes non-empty tuples itself
        if (!items.empty()) memo_[&v] = next_memo_ - 1;
        return;
      }
      case T::List:
        op(EMPTY_LIST);
        memo_[&v] = put();
        batch_appends(v.items, depth);
        return;
      case T::Dict:
        op(EMPTY_DICT);
        memo_[&v] = put();
        batch_setitems(v, depth);
        return;
      case T::OrderedDict:
        empty_odict();
        memo_[&v] = next_memo_ - 1;
        batch_setitems(v, depth);
        return;
      case T::Set: {
        save_global("builtins", "set");
        op(EMPTY_LIST);
        put();
        batch_appends(v.items, depth);
        op(TUPLE1);
        put();
        op(REDUCE);
        break;
      }
      case T::Object:
        save_global(v.s, v.s2);
        op(EMPTY_TUPLE);
        op(NEWOBJ);
        memo_[&v] = put();
        if (v.state) {
          save(*v.state, depth + 1);
          op(BUILD);
        }
        return;
      case T::Global: save_global(v.s, v.s2); memo_[&v] = next_memo_ - 1; return;
      case T::Tensor:
        if (v.parameter) {
          save_global("torch._utils", "_rebuild_parameter");
          save_tensor_v2(v.tensor, false, depth);
          put();
          op(v.requires_grad ? NEWTRUE : NEWFALSE);
          empty_odict();
          op(TUPLE3);
          put();
          op(REDUCE);
        } else {
          save_tensor_v2(v.tensor, v.requires_grad, depth);
        }
        break;
      case T::NumpyF64: {
        save_global("numpy.core.multiarray", "scalar");
        save_global("numpy", "dtype");
        save_str("f8");
        op(NEWFALSE);
        op(NEWTRUE);
        op(TUPLE3);
        put();
        op(REDUCE);
        put();
        op(MARK);
        save_int(3);
        save_str("<");
        op(NONE);
        op(NONE);
        op(NONE);
        save_int(-1);
        save_int(-1);
        save_int(0);
        op(TUPLE);
        put();
        op(BUILD);
        std::string b(8, '\0');
        std::memcpy(b.data(), &v.f, 8);  // little-endian host
        save_bytes(b);
        put();
        op(TUPLE2);
        put();
        op(REDUCE);
        break;
      }
      default: break;
    }
    memo_[&v] = put();
  }

  PickledData data_;
  uint32_t next_memo_ = 0;
  std::unordered_map<const Py*, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> str_memo_, global_memo_;
  std::unordered_map<Storage*, size_t> storage_index_;
};

}  // namespace

PickledData pickle_torch(const Py& root) {
  Pickler p;
  return p.run(root);
}

}  // namespace y7::io
