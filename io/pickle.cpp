#include "io/pickle.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "core/error.h"

namespace y7::io {

using K = PickleValue::Kind;

// ---------------------------------------------------------------- PickleValue

const char* pickle_kind_name(K k) {
  switch (k) {
    case K::None: return "None";
    case K::Bool: return "bool";
    case K::Int: return "int";
    case K::Float: return "float";
    case K::String: return "str";
    case K::Bytes: return "bytes";
    case K::List: return "list";
    case K::Tuple: return "tuple";
    case K::Dict: return "dict";
    case K::Set: return "set";
    case K::Object: return "object";
    case K::Global: return "global";
    case K::Tensor: return "tensor";
    case K::Storage: return "storage";
  }
  return "?";
}

const char* PickleValue::kind_name() const { return pickle_kind_name(kind); }

std::string PickleValue::describe() const {
  if (kind == K::Object || kind == K::Global) return std::string(kind_name()) + " " + str;
  return kind_name();
}

double PickleValue::number() const {
  switch (kind) {
    case K::Int: return double(integer);
    case K::Float: return real;
    case K::Bool: return boolean ? 1.0 : 0.0;
    default: fail("expected a number, got a ", describe());
  }
}

int64_t PickleValue::as_int() const {
  if (kind == K::Int) return integer;
  if (kind == K::Bool) return boolean ? 1 : 0;
  fail("expected an int, got a ", describe());
}

const std::string& PickleValue::as_string() const {
  Y7_CHECK(kind == K::String, "expected a str, got a ", describe());
  return str;
}

const PickleValue* PickleValue::attrs() const {
  if (kind != K::Object || !state) return nullptr;
  if (state->kind == K::Dict) return state;
  if (state->kind == K::Tuple && !state->items.empty() && state->items[0]->kind == K::Dict) return state->items[0];
  return nullptr;
}

const PickleValue* PickleValue::get(std::string_view key) const {
  if (kind == K::Object) {
    const PickleValue* a = attrs();
    return a ? a->get(key) : nullptr;
  }
  if (kind != K::Dict) return nullptr;
  if (!key_index) {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it)
      if (it->first->kind == K::String && it->first->str == key) return it->second;
    return nullptr;
  }
  std::string k;
  k.reserve(key.size() + 1);
  k += 's';
  k += key;
  auto it = key_index->find(k);
  return it == key_index->end() ? nullptr : entries[it->second].second;
}

PickleValue* PickleArena::make(K k) {
  nodes_.emplace_back();
  nodes_.back().kind = k;
  return &nodes_.back();
}

// ---------------------------------------------------------------- allowlist

namespace {


const char* const kTorchNn[] = {
    "conv.Conv2d", "conv.ConvTranspose2d", "batchnorm.BatchNorm2d", "batchnorm.SyncBatchNorm",
    "activation.SiLU", "activation.LeakyReLU", "activation.ReLU", "activation.ReLU6", "activation.Sigmoid",
    "activation.Hardswish", "activation.Hardsigmoid", "activation.Tanh", "activation.Mish", "activation.Softmax",
    "activation.Identity", "activation.MultiheadAttention", "pooling.MaxPool2d", "pooling.AvgPool2d",
    "pooling.AdaptiveAvgPool2d", "upsampling.Upsample", "container.Sequential", "container.ModuleList",
    "container.ModuleDict", "linear.Identity", "linear.Linear", "linear.NonDynamicallyQuantizableLinear",
    "dropout.Dropout", "flatten.Flatten", "normalization.LayerNorm",
};
const char* const kModelsCommon[] = {
    "MP", "SP", "ReOrg", "Concat", "Chuncat", "Shortcut", "Foldcut", "Conv", "RobustConv", "RobustConv2",
    "GhostConv", "Stem", "DownC", "SPP", "Bottleneck", "Res", "ResX", "Ghost", "SPPCSPC", "GhostSPPCSPC",
    "GhostStem", "BottleneckCSPA", "BottleneckCSPB", "BottleneckCSPC", "ResCSPA", "ResCSPB", "ResCSPC",
    "ResXCSPA", "ResXCSPB", "ResXCSPC", "GhostCSPA", "GhostCSPB", "GhostCSPC", "ImplicitA", "ImplicitM",
    "RepConv", "RepBottleneck", "RepBottleneckCSPA", "RepBottleneckCSPB", "RepBottleneckCSPC", "RepRes",
    "RepResCSPA", "RepResCSPB", "RepResCSPC", "RepResX", "RepResXCSPA", "RepResXCSPB", "RepResXCSPC",
    "TransformerLayer", "TransformerBlock", "Focus", "SPPF", "Contract", "Expand", "Classify", "ConvBN",
    "OREPA_3x3_RepConv", "RepConv_OREPA", "WindowAttention", "Mlp", "SwinTransformerLayer",
    "SwinTransformerBlock", "STCSPA", "STCSPB", "STCSPC", "WindowAttention_v2", "Mlp_v2",
    "SwinTransformerLayer_v2", "SwinTransformer2Block", "ST2CSPA", "ST2CSPB", "ST2CSPC",
};
const char* const kModelsOther[] = {
    "models.yolo.Model", "models.yolo.Detect", "models.yolo.IDetect", "models.yolo.IAuxDetect",
    "models.yolo.IKeypoint", "models.yolo.IBin", "models.experimental.CrossConv", "models.experimental.Sum",
    "models.experimental.MixConv2d", "models.experimental.Ensemble",
};

// Names with data semantics (REDUCE/NEWOBJ handled specially) or used as plain values.
const char* const kSpecial[] = {
    "collections.OrderedDict", "builtins.set", "builtins.frozenset", "_codecs.encode",
    "numpy.core.multiarray.scalar", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch.HalfStorage", "torch.FloatStorage", "torch.DoubleStorage", "torch.LongStorage", "torch.IntStorage",
    "torch.ByteStorage", "torch.CharStorage", "torch.BoolStorage", "torch.BFloat16Storage",
};

struct Allowlist {
  std::unordered_set<std::string> classes;  // instantiated as generic objects
  std::unordered_set<std::string> special;
  Allowlist() {
    for (auto* s : kTorchNn) classes.insert(std::string("torch.nn.modules.") + s);
    for (auto* s : kModelsCommon) classes.insert(std::string("models.common.") + s);
    for (auto* s : kModelsOther) classes.insert(s);
    for (auto* s : kSpecial) special.insert(s);
  }
};
const Allowlist& allowlist() {
  static const Allowlist a;
  return a;
}

// Canonical "module.name" (python 2 and numpy 2 spellings folded).
std::string canonical_global(std::string_view module, std::string_view name) {
  std::string m(module);
  if (m == "__builtin__") m = "builtins";
  else if (m == "numpy._core.multiarray") m = "numpy.core.multiarray";
  return m + "." + std::string(name);
}

}  // namespace

bool pickle_global_allowed(std::string_view module, std::string_view name) {
  std::string q = canonical_global(module, name);
  return allowlist().classes.count(q) || allowlist().special.count(q);
}

bool torch_storage_dtype(std::string_view q, DType* out) {
  static const std::pair<const char*, DType> kMap[] = {
      {"torch.HalfStorage", DType::F16},  {"torch.FloatStorage", DType::F32}, {"torch.DoubleStorage", DType::F64},
      {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},   {"torch.ByteStorage", DType::U8},
      {"torch.CharStorage", DType::I8},   {"torch.BoolStorage", DType::Bool}, {"torch.BFloat16Storage", DType::BF16},
  };
  for (auto& [n, t] : kMap)
    if (q == n) {
      *out = t;
      return true;
    }
  return false;
}

// ---------------------------------------------------------------- VM

namespace {

enum Op : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I', BININT = 'J',
  BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', PERSID = 'P', BINPERSID = 'Q', REDUCE = 'R',
  STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U', UNICODE = 'V', BINUNICODE = 'X', APPEND = 'a',
  BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i',
  LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r',
  SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G', BINBYTES = 'B',
  SHORT_BINBYTES = 'C', PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85,
  TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90,
  FROZENSET = 0x91, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96,
  NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98,
};

const char* op_name(uint8_t op) {
  switch (op) {
    case MARK: return "MARK"; case STOP: return "STOP"; case POP: return "POP"; case POP_MARK: return "POP_MARK";
    case DUP: return "DUP"; case FLOAT: return "FLOAT"; case INT: return "INT"; case BININT: return "BININT";
    case BININT1: return "BININT1"; case LONG: return "LONG"; case BININT2: return "BININT2"; case NONE: return "NONE";
    case PERSID: return "PERSID"; case BINPERSID: return "BINPERSID"; case REDUCE: return "REDUCE";
    case STRING: return "STRING"; case BINSTRING: return "BINSTRING"; case SHORT_BINSTRING: return "SHORT_BINSTRING";
    case UNICODE: return "UNICODE"; case BINUNICODE: return "BINUNICODE"; case APPEND: return "APPEND";
    case BUILD: return "BUILD"; case GLOBAL: return "GLOBAL"; case DICT: return "DICT"; case EMPTY_DICT: return "EMPTY_DICT";
    case APPENDS: return "APPENDS"; case GET: return "GET"; case BINGET: return "BINGET"; case INST: return "INST";
    case LONG_BINGET: return "LONG_BINGET"; case LIST: return "LIST"; case EMPTY_LIST: return "EMPTY_LIST";
    case OBJ: return "OBJ"; case PUT: return "PUT"; case BINPUT: return "BINPUT"; case LONG_BINPUT: return "LONG_BINPUT";
    case SETITEM: return "SETITEM"; case TUPLE: return "TUPLE"; case EMPTY_TUPLE: return "EMPTY_TUPLE";
    case SETITEMS: return "SETITEMS"; case BINFLOAT: return "BINFLOAT"; case BINBYTES: return "BINBYTES";
    case SHORT_BINBYTES: return "SHORT_BINBYTES"; case PROTO: return "PROTO"; case NEWOBJ: return "NEWOBJ";
    case EXT1: return "EXT1"; case EXT2: return "EXT2"; case EXT4: return "EXT4"; case TUPLE1: return "TUPLE1";
    case TUPLE2: return "TUPLE2"; case TUPLE3: return "TUPLE3"; case NEWTRUE: return "NEWTRUE";
    case NEWFALSE: return "NEWFALSE"; case LONG1: return "LONG1"; case LONG4: return "LONG4";
    case SHORT_BINUNICODE: return "SHORT_BINUNICODE"; case BINUNICODE8: return "BINUNICODE8";
    case BINBYTES8: return "BINBYTES8"; case EMPTY_SET: return "EMPTY_SET"; case ADDITEMS: return "ADDITEMS";
    case FROZENSET: return "FROZENSET"; case NEWOBJ_EX: return "NEWOBJ_EX"; case STACK_GLOBAL: return "STACK_GLOBAL";
    case MEMOIZE: return "MEMOIZE"; case FRAME: return "FRAME"; case BYTEARRAY8: return "BYTEARRAY8";
    case NEXT_BUFFER: return "NEXT_BUFFER"; case READONLY_BUFFER: return "READONLY_BUFFER";
  }
  return nullptr;
}

// Appends the UTF-8 encoding of a code point.
void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) out += char(cp);
  else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
  else { out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
}

// Decodes UTF-8 into code points; false on malformed input.
bool utf8_to_latin1(std::string_view s, std::string& out, bool* over255) {
  *over255 = false;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80) cp = c, len = 1;
    else if ((c & 0xE0) == 0xC0) cp = c & 0x1F, len = 2;
    else if ((c & 0xF0) == 0xE0) cp = c & 0x0F, len = 3;
    else if ((c & 0xF8) == 0xF0) cp = c & 0x07, len = 4;
    else return false;
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp > 0xFF) {
      *over255 = true;
      return true;
    }
    out += char(cp);
    i += len;
  }
  return true;
}

class VM {
 public:
  VM(std::string_view in, const PersistentLoader& loader, const PickleLimits& lim, const std::string& what)
      : in_(in), loader_(loader), lim_(lim), what_(what), arena_(std::make_shared<PickleArena>()) {
    none_ = node(K::None);
    true_ = node(K::Bool);
    true_->boolean = true;
    false_ = node(K::Bool);
    empty_tuple_ = node(K::Tuple);
  }

  PickleResult run() {
    for (;;) {
      if (pos_ >= in_.size()) fail(what_, ": truncated stream (no STOP opcode)");
      op_pos_ = pos_;
      op_ = static_cast<uint8_t>(in_[pos_++]);
      if (step()) break;
    }
    check_graph(result_);
    return PickleResult{arena_, result_};
  }

 private:
  // ---- errors
  template <typename... A>
  [[noreturn]] void err(const A&... a) {
    const char* n = op_name(op_);
    if (n) fail(what_, ": ", a..., " (opcode ", n, " at offset ", op_pos_, ")");
    fail(what_, ": ", a..., " (at offset ", op_pos_, ")");
  }

  // ---- memory accounting
  void charge(size_t n) {
    if (n > lim_.max_bytes - bytes_) err("object graph exceeds the ", lim_.max_bytes >> 20, " MiB limit");
    bytes_ += n;
  }
  PickleValue* node(K k) {
    charge(sizeof(PickleValue));
    return arena_->make(k);
  }
  PickleValue* make_string(K k, std::string_view s) {
    charge(s.size());
    PickleValue* v = node(k);
    v->str.assign(s.data(), s.size());
    return v;
  }
  PickleValue* make_int(int64_t i) {
    PickleValue* v = node(K::Int);
    v->integer = i;
    return v;
  }
  PickleValue* make_float(double d) {
    PickleValue* v = node(K::Float);
    v->real = d;
    return v;
  }

  // ---- input
  void need(uint64_t n) {
    if (n > in_.size() - pos_) err("truncated stream (", n, " bytes needed, ", in_.size() - pos_, " left)");
  }
  uint8_t u8() { need(1); return static_cast<uint8_t>(in_[pos_++]); }
  uint64_t uint_le(int n) {
    need(n);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string_view take(uint64_t n) {
    need(n);
    std::string_view s = in_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }
  std::string_view line() {
    size_t e = in_.find('\n', pos_);
    if (e == std::string_view::npos) err("truncated stream (unterminated line)");
    std::string_view s = in_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }
  int64_t parse_int_text(std::string_view s) {
    if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range) err("integer too large");
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) err("bad integer '", printable(s, 40), "'");
    return v;
  }
  // Little-endian two's complement (LONG1/LONG4); longer than 8 bytes only as a sign extension.
  int64_t decode_long(std::string_view b) {
    if (b.empty()) return 0;
    size_t n = std::min<size_t>(b.size(), 8);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(static_cast<uint8_t>(b[i])) << (8 * i);
    bool neg = static_cast<uint8_t>(b[n - 1]) & 0x80;
    if (n < 8 && neg) v |= ~uint64_t(0) << (8 * n);
    for (size_t i = 8; i < b.size(); ++i)
      if (static_cast<uint8_t>(b[i]) != (neg ? 0xFF : 0x00)) err("integer too large (", b.size(), " bytes)");
    int64_t out;
    std::memcpy(&out, &v, 8);
    return out;
  }

  // ---- stack
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(PickleValue* v) {
    if (stack_.size() >= lim_.max_stack) err("stack exceeds ", lim_.max_stack, " values");
    stack_.push_back(v);
  }
  PickleValue* pop() {
    if (stack_.size() <= base()) err("stack underflow");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue* top() {
    if (stack_.size() <= base()) err("stack underflow");
    return stack_.back();
  }
  std::vector<PickleValue*> pop_mark() {
    if (marks_.empty()) err("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    charge(items.size() * sizeof(PickleValue*));
    return items;
  }
  PickleValue* pop_n_tuple(size_t n) {
    if (stack_.size() - base() < n) err("stack underflow");
    PickleValue* t = node(K::Tuple);
    charge(n * sizeof(PickleValue*));
    t->items.assign(stack_.end() - ptrdiff_t(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return t;
  }

  // ---- memo
  void memo_put(uint64_t idx, PickleValue* v) {
    if (idx < in_.size() + 256) {  // keys written by pickle are dense: a vector (bounded by the input)
      if (idx >= memo_vec_.size()) {
        size_t n = std::max<size_t>(size_t(idx) + 1, memo_vec_.size() * 2);
        n = std::min<size_t>(n, in_.size() + 256);
        charge((n - memo_vec_.size()) * sizeof(PickleValue*));
        memo_vec_.resize(n, nullptr);
      }
      if (!memo_vec_[idx]) {
        if (++memo_count_ > lim_.max_memo) err("memo exceeds ", lim_.max_memo, " entries");
      }
      memo_vec_[idx] = v;
      return;
    }
    auto it = memo_.find(idx);
    if (it != memo_.end()) {
      it->second = v;
      return;
    }
    if (++memo_count_ > lim_.max_memo) err("memo exceeds ", lim_.max_memo, " entries");
    charge(48);
    memo_.emplace(idx, v);
  }
  PickleValue* memo_get(uint64_t idx) {
    if (idx < memo_vec_.size() && memo_vec_[idx]) return memo_vec_[idx];
    auto it = memo_.find(idx);
    if (it == memo_.end()) err("memo key ", idx, " not found");
    return it->second;
  }

  // ---- containers
  static std::string key_of(const PickleValue* k, bool* ok) {
    *ok = true;
    switch (k->kind) {
      case K::String: return "s" + k->str;
      case K::Bytes: return "b" + k->str;
      case K::Int: return "i" + std::to_string(k->integer);
      case K::Bool: return k->boolean ? "i1" : "i0";
      case K::None: return "n";
      case K::Float:
        if (k->real == double(int64_t(k->real)) && k->real > -9.2e18 && k->real < 9.2e18)
          return "i" + std::to_string(int64_t(k->real));
        else {
          char buf[64];
          auto r = std::to_chars(buf, buf + sizeof(buf), k->real);
          return "f" + std::string(buf, r.ptr);
        }
      default: *ok = false; return {};
    }
  }
  // Python equality of two hashable keys (str, bytes, numbers, None); false for anything else.
  static bool same_key(const PickleValue* a, const PickleValue* b) {
    if (a == b) return true;
    if (a->is_number() && b->is_number()) return a->number() == b->number() &&
                                                 (a->kind != K::Int || b->kind != K::Int || a->integer == b->integer);
    if (a->kind != b->kind) return false;
    return (a->kind == K::String || a->kind == K::Bytes) && a->str == b->str;
  }
  static constexpr size_t kIndexFrom = 16;  // dicts up to this size are searched linearly
  void dict_set(PickleValue* d, PickleValue* k, PickleValue* v) {
    if (!d->key_index) {
      bool hashable = k->kind == K::String || k->kind == K::Bytes || k->kind == K::None || k->is_number();
      if (hashable)
        for (auto& e : d->entries)
          if (same_key(e.first, k)) {
            e.second = v;
            return;
          }
      charge(2 * sizeof(PickleValue*));
      d->entries.emplace_back(k, v);
      if (d->entries.size() >= kIndexFrom) {  // switch to a hash index
        d->key_index = std::make_unique<std::unordered_map<std::string, size_t>>();
        for (size_t i = 0; i < d->entries.size(); ++i) {
          std::string key = key_of(d->entries[i].first, &hashable);
          if (hashable) {
            charge(key.size() + 64);
            (*d->key_index)[std::move(key)] = i;
          }
        }
      }
      return;
    }
    bool hashable;
    std::string key = key_of(k, &hashable);
    if (hashable) {
      auto it = d->key_index->find(key);
      if (it != d->key_index->end()) {
        d->entries[it->second].second = v;
        return;
      }
      charge(key.size() + 64);
      d->key_index->emplace(std::move(key), d->entries.size());
    }
    charge(2 * sizeof(PickleValue*));
    d->entries.emplace_back(k, v);
  }
  PickleValue* make_dict(const std::vector<PickleValue*>& kv) {
    if (kv.size() % 2) err("odd number of items for a dict");
    PickleValue* d = node(K::Dict);
    for (size_t i = 0; i < kv.size(); i += 2) dict_set(d, kv[i], kv[i + 1]);
    return d;
  }
  PickleValue* make_seq(K k, std::vector<PickleValue*>&& items) {
    PickleValue* v = node(k);
    v->items = std::move(items);
    return v;
  }

  // ---- globals and calls
  PickleValue* resolve_global(std::string_view module, std::string_view name) {
    std::string q = canonical_global(module, name);
    const Allowlist& a = allowlist();
    if (!a.classes.count(q) && !a.special.count(q))
      fail(what_, ": global '", printable(std::string(module) + "." + std::string(name)), "' is not allowed");
    charge(q.size());
    PickleValue* g = node(K::Global);
    g->str = std::move(q);
    return g;
  }
  bool is_class_global(const PickleValue* g) const { return allowlist().classes.count(g->str) > 0; }

  const PickleValue* arg(const PickleValue* args, size_t i, const char* fn) {
    if (i >= args->items.size()) err(fn, ": missing argument ", i + 1);
    return args->items[i];
  }
  std::vector<int64_t> int_list(const PickleValue* v, const char* what) {
    if (v->kind != K::Tuple && v->kind != K::List) err(what, " must be a tuple, got a ", v->describe());
    if (v->items.size() > 64) err(what, " has ", v->items.size(), " dimensions");
    std::vector<int64_t> out;
    for (auto* x : v->items) {
      if (x->kind != K::Int) err(what, " must hold ints, got a ", x->describe());
      out.push_back(x->integer);
    }
    return out;
  }

  PickleValue* rebuild_tensor(const PickleValue* args) {
    const char* fn = "_rebuild_tensor_v2";
    const PickleValue* st = arg(args, 0, fn);
    if (st->kind != K::Storage) err(fn, ": expected a storage, got a ", st->describe());
    const PickleValue* off = arg(args, 1, fn);
    if (off->kind != K::Int) err(fn, ": storage offset must be an int");
    Shape size = int_list(arg(args, 2, fn), "tensor size");
    Shape stride = int_list(arg(args, 3, fn), "tensor stride");
    if (size.size() != stride.size()) err(fn, ": ", size.size(), " sizes but ", stride.size(), " strides");
    int64_t offset = off->integer;
    if (offset < 0) err(fn, ": negative storage offset ", offset);
    // Bounds in 128-bit arithmetic so that hostile sizes cannot overflow.
    using u128 = unsigned __int128;
    bool empty = false;
    u128 hi = u128(uint64_t(offset)), numel = 1;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0) err(fn, ": negative size in ", shape_str(size));
      if (stride[i] < 0) err(fn, ": negative stride in ", shape_str(stride));
      if (size[i] == 0) empty = true;
      if (size[i] > (int64_t(1) << 40) || stride[i] > (int64_t(1) << 40)) err(fn, ": size/stride too large in ", shape_str(size));
      if (size[i] > 1) hi += u128(uint64_t(size[i] - 1)) * u128(uint64_t(stride[i]));
      numel *= u128(uint64_t(size[i]));
      if (numel > (u128(1) << 48)) err(fn, ": tensor ", shape_str(size), " is too large");
    }
    int64_t cap = st->storage_numel;
    if (!empty && hi >= u128(uint64_t(cap)))
      err("tensor ", shape_str(size), " at offset ", offset, " reaches element ", uint64_t(hi > u128(UINT64_MAX) ? UINT64_MAX : uint64_t(hi)),
          " outside its storage of ", cap, " elements");
    PickleValue* t = node(K::Tensor);
    t->tensor = Tensor::from_storage(st->storage, st->storage_dtype, size, stride, offset);
    return t;
  }

  // numpy dtype object -> (kind char, itemsize, big endian)
  struct NpType {
    char kind;
    int size;
    bool big;
  };
  NpType numpy_type(const PickleValue* dt) {
    if (dt->kind != K::Object || dt->str != "numpy.dtype" || dt->items.empty() || dt->items[0]->kind != K::String)
      err("expected a numpy dtype, got a ", dt->describe());
    std::string_view spec = dt->items[0]->str;
    char order = '=';
    if (!spec.empty() && (spec[0] == '<' || spec[0] == '>' || spec[0] == '|' || spec[0] == '=')) {
      order = spec[0];
      spec.remove_prefix(1);
    }
    // BUILD state: (version, byteorder, ...)
    if (dt->state && dt->state->kind == K::Tuple && dt->state->items.size() > 1 && dt->state->items[1]->kind == K::String &&
        dt->state->items[1]->str.size() == 1)
      order = dt->state->items[1]->str[0];
    if (spec.size() != 2 || std::string_view("fiub").find(spec[0]) == std::string_view::npos ||
        std::string_view("1248").find(spec[1]) == std::string_view::npos)
      err("numpy dtype '", printable(dt->items[0]->str, 20), "' is not supported");
    return NpType{spec[0], spec[1] - '0', order == '>'};
  }
  // Reads one numpy element (native order copy in `buf`).
  static void load_elem(const char* src, int size, bool big, unsigned char* buf) {
    if (size < 1 || size > 8) return;
    for (int i = 0; i < size; ++i) buf[i] = static_cast<unsigned char>(src[big ? size - 1 - i : i]);
  }
  PickleValue* numpy_scalar(const PickleValue* args) {
    const char* fn = "numpy scalar";
    NpType t = numpy_type(arg(args, 0, fn));
    const PickleValue* b = arg(args, 1, fn);
    if (b->kind != K::Bytes && b->kind != K::String) err(fn, ": expected bytes, got a ", b->describe());
    if (b->str.size() != size_t(t.size)) err(fn, ": ", b->str.size(), " bytes for an item of ", t.size);
    unsigned char buf[8] = {0};
    load_elem(b->str.data(), t.size, t.big, buf);
    switch (t.kind) {
      case 'f': {
        if (t.size == 8) { double d; std::memcpy(&d, buf, 8); return make_float(d); }
        if (t.size == 4) { float f; std::memcpy(&f, buf, 4); return make_float(f); }
        if (t.size == 2) { uint16_t h; std::memcpy(&h, buf, 2); return make_float(half_to_float(h)); }
        break;
      }
      case 'i': {
        int64_t v = 0;
        if (t.size == 8) { std::memcpy(&v, buf, 8); }
        else if (t.size == 4) { int32_t x; std::memcpy(&x, buf, 4); v = x; }
        else if (t.size == 2) { int16_t x; std::memcpy(&x, buf, 2); v = x; }
        else { v = static_cast<int8_t>(buf[0]); }
        return make_int(v);
      }
      case 'u': {
        uint64_t v = 0;
        std::memcpy(&v, buf, size_t(t.size));
        if (v > uint64_t(INT64_MAX)) err(fn, ": uint64 value too large");
        return make_int(int64_t(v));
      }
      case 'b':
        if (t.size == 1) return buf[0] ? true_ : false_;
        break;
    }
    err(fn, ": unsupported dtype");
  }
  // BUILD of an ndarray made by numpy.core.multiarray._reconstruct: becomes a Tensor (copied).
  void numpy_array_build(PickleValue* obj, const PickleValue* state) {
    const char* fn = "numpy array";
    if (state->kind != K::Tuple || state->items.size() < 5) err(fn, ": bad state");
    Shape shape = int_list(state->items[1], "numpy shape");
    NpType t = numpy_type(state->items[2]);
    const PickleValue* fortran = state->items[3];
    const PickleValue* data = state->items[4];
    if (data->kind != K::Bytes && data->kind != K::String) err(fn, ": object arrays are not supported");
    DType dt;
    if (t.kind == 'f' && t.size == 4) dt = DType::F32;
    else if (t.kind == 'f' && t.size == 8) dt = DType::F64;
    else if (t.kind == 'f' && t.size == 2) dt = DType::F16;
    else if (t.kind == 'i' && t.size == 8) dt = DType::I64;
    else if (t.kind == 'i' && t.size == 4) dt = DType::I32;
    else if (t.kind == 'i' && t.size == 1) dt = DType::I8;
    else if (t.kind == 'u' && t.size == 1) dt = DType::U8;
    else if (t.kind == 'b' && t.size == 1) dt = DType::Bool;
    else err(fn, ": dtype ", t.kind, t.size, " is not supported");
    unsigned __int128 numel = 1;
    for (int64_t s : shape) {
      if (s < 0) err(fn, ": negative size");
      numel *= uint64_t(s);
      if (numel > (unsigned __int128)(1) << 40) err(fn, ": too large");
    }
    if (uint64_t(numel) * uint64_t(t.size) != data->str.size())
      err(fn, ": ", data->str.size(), " bytes for shape ", shape_str(shape));
    charge(data->str.size());
    bool is_fortran = fortran->kind == K::Bool && fortran->boolean;
    Shape phys = shape;
    if (is_fortran) std::reverse(phys.begin(), phys.end());
    Tensor x = Tensor::empty(phys, dt);
    auto* dst = static_cast<unsigned char*>(x.raw_data());
    for (uint64_t i = 0; i < uint64_t(numel); ++i) load_elem(data->str.data() + i * t.size, t.size, t.big, dst + i * t.size);
    if (is_fortran && phys.size() > 1) {
      std::vector<int64_t> perm(phys.size());
      for (size_t i = 0; i < perm.size(); ++i) perm[i] = int64_t(perm.size() - 1 - i);
      x = x.permute(perm);
    }
    obj->kind = K::Tensor;
    obj->tensor = x;
    obj->items.clear();
    obj->str.clear();
  }

  PickleValue* call(PickleValue* fn, PickleValue* args) {
    if (fn->kind != K::Global) err("REDUCE on a ", fn->describe(), ", not a global");
    if (args->kind != K::Tuple) err("REDUCE arguments must be a tuple, got a ", args->describe());
    const std::string& f = fn->str;
    const auto& a = args->items;
    if (f == "collections.OrderedDict") {
      PickleValue* d = node(K::Dict);
      if (!a.empty()) {
        if (a[0]->kind != K::List && a[0]->kind != K::Tuple) err("OrderedDict: expected a list of pairs");
        for (auto* p : a[0]->items) {
          if ((p->kind != K::Tuple && p->kind != K::List) || p->items.size() != 2) err("OrderedDict: expected pairs");
          dict_set(d, p->items[0], p->items[1]);
        }
      }
      return d;
    }
    if (f == "builtins.set" || f == "builtins.frozenset") {
      PickleValue* s = node(K::Set);
      if (!a.empty()) {
        if (a[0]->kind != K::List && a[0]->kind != K::Tuple && a[0]->kind != K::Set) err("set: expected a list");
        charge(a[0]->items.size() * sizeof(PickleValue*));
        s->items = a[0]->items;
      }
      return s;
    }
    if (f == "_codecs.encode") {
      if (a.size() != 2 || a[0]->kind != K::String || a[1]->kind != K::String) err("_codecs.encode: expected (str, encoding)");
      const std::string& enc = a[1]->str;
      if (enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1") {
        std::string out;
        bool over = false;
        if (!utf8_to_latin1(a[0]->str, out, &over)) err("_codecs.encode: malformed UTF-8");
        if (over) err("_codecs.encode: character beyond latin-1");
        return make_string(K::Bytes, out);
      }
      if (enc == "utf-8" || enc == "utf8") return make_string(K::Bytes, a[0]->str);
      err("_codecs.encode: encoding '", printable(enc, 20), "' is not supported");
    }
    if (f == "numpy.dtype") {
      if (a.empty() || a[0]->kind != K::String) err("numpy.dtype: expected a type string");
      PickleValue* o = node(K::Object);
      o->str = f;
      o->items = {a[0]};
      return o;
    }
    if (f == "numpy.core.multiarray.scalar") return numpy_scalar(args);
    if (f == "numpy.core.multiarray._reconstruct") {
      if (a.empty() || a[0]->kind != K::Global || a[0]->str != "numpy.ndarray") err("_reconstruct: expected numpy.ndarray");
      PickleValue* o = node(K::Object);
      o->str = "numpy.ndarray";
      return o;
    }
    if (f == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != K::Tensor) err(f, ": expected a tensor");
      PickleValue* t = node(K::Tensor);
      t->tensor = a[0]->tensor;
      return t;
    }
    if (is_class_global(fn)) return new_object(fn, args);
    err("calling '", f, "' is not supported");
  }

  PickleValue* new_object(PickleValue* cls, PickleValue* args) {
    if (cls->kind != K::Global) err("NEWOBJ on a ", cls->describe(), ", not a class");
    if (args->kind != K::Tuple) err("NEWOBJ arguments must be a tuple");
    if (cls->str == "collections.OrderedDict" || cls->str == "builtins.set" || cls->str == "builtins.frozenset")
      return call(cls, args);
    if (!is_class_global(cls) && cls->str != "numpy.ndarray") err("cannot instantiate '", cls->str, "'");
    PickleValue* o = node(K::Object);
    o->str = cls->str;
    charge(args->items.size() * sizeof(PickleValue*));
    o->items = args->items;
    return o;
  }

  void build(PickleValue* obj, PickleValue* state) {
    if (obj->kind == K::Object && obj->str == "numpy.ndarray") return numpy_array_build(obj, state);
    switch (obj->kind) {
      case K::Object:
      case K::Dict:
      case K::List:
      case K::Set:
      case K::Tensor:
        obj->state = state;
        return;
      default: err("BUILD on a ", obj->describe());
    }
  }

  PickleValue* persistent(PickleValue* pid) {
    if (!loader_) err("persistent id without a loader");
    PickleValue* v = loader_(*pid, *arena_);
    if (!v) err("persistent id could not be resolved");
    charge(sizeof(PickleValue));
    return v;
  }

  // ---- one opcode; true at STOP
  bool step() {
    switch (op_) {
      case MARK:
        if (marks_.size() >= lim_.max_depth) err("MARK nesting deeper than ", lim_.max_depth);
        marks_.push_back(stack_.size());
        return false;
      case STOP:
        result_ = pop();
        return true;
      case POP:
        if (stack_.size() > base()) stack_.pop_back();
        else pop_mark();
        return false;
      case POP_MARK: pop_mark(); return false;
      case DUP: push(top()); return false;
      case FLOAT: {
        std::string_view s = line();
        double d = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec != std::errc() || p != s.data() + s.size()) err("bad float '", printable(s, 40), "'");
        push(make_float(d));
        return false;
      }
      case INT: {
        std::string_view s = line();
        if (s == "01") push(true_);
        else if (s == "00") push(false_);
        else push(make_int(parse_int_text(s)));
        return false;
      }
      case LONG: push(make_int(parse_int_text(line()))); return false;
      case BININT: push(make_int(int32_t(uint32_t(uint_le(4))))); return false;
      case BININT1: push(make_int(int64_t(uint_le(1)))); return false;
      case BININT2: push(make_int(int64_t(uint_le(2)))); return false;
      case LONG1: push(make_int(decode_long(take(u8())))); return false;
      case LONG4: {
        int32_t n = int32_t(uint32_t(uint_le(4)));
        if (n < 0) err("negative length");
        push(make_int(decode_long(take(uint64_t(n)))));
        return false;
      }
      case NONE: push(none_); return false;
      case NEWTRUE: push(true_); return false;
      case NEWFALSE: push(false_); return false;
      case BINFLOAT: {
        uint64_t bits = 0;
        std::string_view b = take(8);
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(b[i]);
        double d;
        std::memcpy(&d, &bits, 8);
        push(make_float(d));
        return false;
      }
      case STRING: err("text STRING opcode is not supported");
      case UNICODE: {
        // raw-unicode-escape: latin-1 bytes plus \uXXXX / \UXXXXXXXX escapes
        std::string_view s = line();
        std::string out;
        for (size_t i = 0; i < s.size(); ++i) {
          unsigned char c = static_cast<unsigned char>(s[i]);
          if (c == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            size_t nd = s[i + 1] == 'u' ? 4 : 8;
            if (s.size() - i - 2 < nd) err("bad \\u escape");
            uint32_t cp = 0;
            auto [p, ec] = std::from_chars(s.data() + i + 2, s.data() + i + 2 + nd, cp, 16);
            if (ec != std::errc() || p != s.data() + i + 2 + nd || cp > 0x10FFFF) err("bad \\u escape");
            put_utf8(out, cp);
            i += 1 + nd;
          } else {
            put_utf8(out, c);
          }
        }
        push(make_string(K::String, out));
        return false;
      }
      case BINSTRING: {
        int32_t n = int32_t(uint32_t(uint_le(4)));
        if (n < 0) err("negative length");
        push(make_string(K::String, take(uint64_t(n))));
        return false;
      }
      case SHORT_BINSTRING: push(make_string(K::String, take(u8()))); return false;
      case BINUNICODE: push(make_string(K::String, take(uint_le(4)))); return false;
      case SHORT_BINUNICODE: push(make_string(K::String, take(u8()))); return false;
      case BINUNICODE8: push(make_string(K::String, take(uint_le(8)))); return false;
      case BINBYTES: push(make_string(K::Bytes, take(uint_le(4)))); return false;
      case SHORT_BINBYTES: push(make_string(K::Bytes, take(u8()))); return false;
      case BINBYTES8:
      case BYTEARRAY8: push(make_string(K::Bytes, take(uint_le(8)))); return false;
      case NEXT_BUFFER:
      case READONLY_BUFFER: err("out-of-band buffers are not supported");
      case EMPTY_LIST: push(node(K::List)); return false;
      case EMPTY_DICT: push(node(K::Dict)); return false;
      case EMPTY_TUPLE: push(empty_tuple_); return false;
      case EMPTY_SET: push(node(K::Set)); return false;
      case LIST: push(make_seq(K::List, pop_mark())); return false;
      case TUPLE: push(make_seq(K::Tuple, pop_mark())); return false;
      case FROZENSET: push(make_seq(K::Set, pop_mark())); return false;
      case DICT: push(make_dict(pop_mark())); return false;
      case TUPLE1: push(pop_n_tuple(1)); return false;
      case TUPLE2: push(pop_n_tuple(2)); return false;
      case TUPLE3: push(pop_n_tuple(3)); return false;
      case APPEND: {
        PickleValue* v = pop();
        PickleValue* l = top();
        if (l->kind != K::List) err("APPEND to a ", l->describe());
        charge(sizeof(PickleValue*));
        l->items.push_back(v);
        return false;
      }
      case APPENDS: {
        std::vector<PickleValue*> items = pop_mark();
        PickleValue* l = top();
        if (l->kind != K::List) err("APPENDS to a ", l->describe());
        l->items.insert(l->items.end(), items.begin(), items.end());
        return false;
      }
      case ADDITEMS: {
        std::vector<PickleValue*> items = pop_mark();
        PickleValue* s = top();
        if (s->kind != K::Set) err("ADDITEMS to a ", s->describe());
        s->items.insert(s->items.end(), items.begin(), items.end());
        return false;
      }
      case SETITEM: {
        PickleValue* v = pop();
        PickleValue* k = pop();
        PickleValue* d = top();
        if (d->kind != K::Dict) err("SETITEM on a ", d->describe());
        dict_set(d, k, v);
        return false;
      }
      case SETITEMS: {
        std::vector<PickleValue*> items = pop_mark();
        if (items.size() % 2) err("odd number of items for SETITEMS");
        PickleValue* d = top();
        if (d->kind != K::Dict) err("SETITEMS on a ", d->describe());
        for (size_t i = 0; i < items.size(); i += 2) dict_set(d, items[i], items[i + 1]);
        return false;
      }
      case GET: {
        int64_t i = parse_int_text(line());
        if (i < 0) err("negative memo key");
        push(memo_get(uint64_t(i)));
        return false;
      }
      case BINGET: push(memo_get(uint_le(1))); return false;
      case LONG_BINGET: push(memo_get(uint_le(4))); return false;
      case PUT: {
        int64_t i = parse_int_text(line());
        if (i < 0) err("negative memo key");
        memo_put(uint64_t(i), top());
        return false;
      }
      case BINPUT: memo_put(uint_le(1), top()); return false;
      case LONG_BINPUT: memo_put(uint_le(4), top()); return false;
      case MEMOIZE: memo_put(memo_count_, top()); return false;
      case GLOBAL: {
        std::string_view module = line();
        std::string_view name = line();
        push(resolve_global(module, name));
        return false;
      }
      case STACK_GLOBAL: {
        PickleValue* name = pop();
        PickleValue* module = pop();
        if (module->kind != K::String || name->kind != K::String) err("STACK_GLOBAL expects two strings");
        push(resolve_global(module->str, name->str));
        return false;
      }
      case INST:
      case OBJ:
      case EXT1:
      case EXT2:
      case EXT4: err("opcode is not supported");
      case PERSID: {
        PickleValue* pid = make_string(K::String, line());
        push(persistent(pid));
        return false;
      }
      case BINPERSID: push(persistent(pop())); return false;
      case REDUCE: {
        PickleValue* args = pop();
        PickleValue* fn = pop();
        push(call(fn, args));
        return false;
      }
      case NEWOBJ: {
        PickleValue* args = pop();
        PickleValue* cls = pop();
        push(new_object(cls, args));
        return false;
      }
      case NEWOBJ_EX: {
        PickleValue* kwargs = pop();
        PickleValue* args = pop();
        PickleValue* cls = pop();
        if (kwargs->kind != K::Dict) err("NEWOBJ_EX keyword arguments must be a dict");
        push(new_object(cls, args));
        return false;
      }
      case BUILD: {
        PickleValue* state = pop();
        build(top(), state);
        return false;
      }
      case PROTO: {
        uint8_t v = u8();
        if (v > 5) err("unsupported protocol ", int(v));
        return false;
      }
      case FRAME: {
        uint64_t n = uint_le(8);
        if (n > in_.size() - pos_) err("frame of ", n, " bytes overruns the stream");
        return false;
      }
      default: {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "0x%02x", op_);
        err("unknown opcode ", buf);
      }
    }
  }

  // ---- the finished graph: no cycles, bounded nesting (iterative post-order DFS)
  static size_t child_count(const PickleValue* v) {
    return v->items.size() + 2 * v->entries.size() + (v->state ? 1 : 0);
  }
  static PickleValue* child(const PickleValue* v, size_t i) {
    if (i < v->items.size()) return v->items[i];
    i -= v->items.size();
    if (i < 2 * v->entries.size()) return i % 2 ? v->entries[i / 2].second : v->entries[i / 2].first;
    return v->state;
  }
  void check_graph(PickleValue* root) {
    // Iterative post-order DFS; height_ caches finished subtrees, on_path_ marks the current path.
    struct Frame {
      PickleValue* v;
      size_t next;
      uint32_t h;
    };
    auto too_deep = [&] { fail(what_, ": objects nested deeper than ", lim_.max_depth, " levels"); };
    std::vector<Frame> path;
    path.push_back({root, 0, 1});
    root->on_path_ = true;
    while (!path.empty()) {
      Frame& f = path.back();
      if (f.next < child_count(f.v)) {
        PickleValue* c = child(f.v, f.next++);
        if (child_count(c) == 0) continue;  // leaves
        if (c->height_) {
          f.h = std::max(f.h, c->height_ + 1);
          if (f.h > lim_.max_depth) too_deep();
          continue;
        }
        if (c->on_path_) fail(what_, ": the object graph contains a cycle");
        if (path.size() >= lim_.max_depth) too_deep();
        c->on_path_ = true;
        path.push_back({c, 0, 1});
        continue;
      }
      PickleValue* v = f.v;
      uint32_t h = f.h;
      v->height_ = h;
      v->on_path_ = false;
      path.pop_back();
      if (!path.empty()) {
        path.back().h = std::max(path.back().h, h + 1);
        if (path.back().h > lim_.max_depth) too_deep();
      }
    }
  }

  std::string_view in_;
  size_t pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  const PersistentLoader& loader_;
  const PickleLimits& lim_;
  const std::string& what_;
  std::shared_ptr<PickleArena> arena_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;  // sparse keys
  std::vector<PickleValue*> memo_vec_;                // dense keys
  size_t memo_count_ = 0;
  size_t bytes_ = 0;
  PickleValue *none_, *true_, *false_, *empty_tuple_;
  PickleValue* result_ = nullptr;
};

}  // namespace

PickleResult unpickle(std::string_view data, const PersistentLoader& loader, const PickleLimits& limits,
                      const std::string& what) {
  VM vm(data, loader, limits, what);
  return vm.run();
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u >= 32 && u != 127) ? c : '?';
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace y7::io
