#include "io/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "core/autograd.h"
#include "graph/modules.h"
#include "kernels/ops.h"

#ifdef Y7_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace y7::io {

bool is_onnx_path(const std::string& p) {
  if (p.size() < 5) return false;
  std::string e = p.substr(p.size() - 5);
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  return e == ".onnx";
}

#ifdef Y7_HAVE_ONNX

namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// ---------------------------------------------------------------- generic tensor helpers (tail)

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32); }
Tensor as_i64(const Tensor& t) { return t.dtype() == DType::I64 ? t.contiguous() : t.to(DType::I64); }

std::vector<int64_t> ints_of(const Tensor& t) {
  Tensor c = as_i64(t);
  return std::vector<int64_t>(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}
std::vector<float> floats_of(const Tensor& t) {
  Tensor c = as_f32(t);
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

Shape broadcast_shape(const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape o(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t y = i < r - b.size() ? 1 : b[i - (r - b.size())];
    Y7_CHECK(x == y || x == 1 || y == 1, "shapes ", shape_str(a), " and ", shape_str(b), " do not broadcast");
    o[i] = x == 1 ? y : x;
  }
  return o;
}

// element strides of `t` (contiguous) broadcast to `out` (0 on broadcast dims)
std::vector<int64_t> bstrides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  Shape cs = contiguous_strides(s);
  size_t off = out.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) st[off + i] = s[i] == 1 ? 0 : cs[i];
  return st;
}

template <typename F>
void for_each_index(const Shape& out, const std::vector<std::vector<int64_t>>& strides, F f) {
  int64_t n = shape_numel(out);
  size_t r = out.size(), k = strides.size();
  std::vector<int64_t> idx(r, 0), off(k, 0);
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) {
        for (size_t j = 0; j < k; ++j) off[j] += strides[j][d];
        break;
      }
      for (size_t j = 0; j < k; ++j) off[j] -= strides[j][d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

enum class Bin { Add, Sub, Mul, Div, Pow };

Tensor binary(const Tensor& a0, const Tensor& b0, Bin op) {
  bool f = a0.dtype() == DType::F32 || b0.dtype() == DType::F32 || op == Bin::Pow;
  Shape o = broadcast_shape(a0.sizes(), b0.sizes());
  std::vector<std::vector<int64_t>> st = {bstrides(a0.sizes(), o), bstrides(b0.sizes(), o)};
  if (f) {
    Tensor a = as_f32(a0), b = as_f32(b0), r = Tensor::empty(o);
    const float *pa = a.data<float>(), *pb = b.data<float>();
    float* pr = r.data<float>();
    for_each_index(o, st, [&](int64_t i, const std::vector<int64_t>& off) {
      float x = pa[off[0]], y = pb[off[1]];
      switch (op) {
        case Bin::Add: pr[i] = x + y; break;
        case Bin::Sub: pr[i] = x - y; break;
        case Bin::Mul: pr[i] = x * y; break;
        case Bin::Div: pr[i] = x / y; break;
        case Bin::Pow: pr[i] = y == 2.f ? x * x : std::pow(x, y); break;
      }
    });
    return r;
  }
  Tensor a = as_i64(a0), b = as_i64(b0), r = Tensor::empty(o, DType::I64);
  const int64_t *pa = a.data<int64_t>(), *pb = b.data<int64_t>();
  int64_t* pr = r.data<int64_t>();
  for_each_index(o, st, [&](int64_t i, const std::vector<int64_t>& off) {
    int64_t x = pa[off[0]], y = pb[off[1]];
    switch (op) {
      case Bin::Add: pr[i] = x + y; break;
      case Bin::Sub: pr[i] = x - y; break;
      case Bin::Mul: pr[i] = x * y; break;
      case Bin::Div:
        Y7_CHECK(y != 0, "integer division by zero");
        pr[i] = x / y;
        break;
      case Bin::Pow: break;
    }
  });
  return r;
}

Tensor expand_to(const Tensor& t, const Shape& shape) {
  Shape o = broadcast_shape(t.sizes(), shape);
  Tensor c = t.contiguous(), r = Tensor::empty(o, c.dtype());
  size_t es = dtype_size(c.dtype());
  const char* src = static_cast<const char*>(c.raw_data());
  char* dst = static_cast<char*>(r.raw_data());
  for_each_index(o, {bstrides(c.sizes(), o)},
                 [&](int64_t i, const std::vector<int64_t>& off) { std::memcpy(dst + i * es, src + off[0] * es, es); });
  return r;
}

// a shape computed from file data: every dim >= 0 and at most 2^31 elements in all
Shape checked_shape(const std::vector<int64_t>& v, const char* what) {
  int64_t n = 1;
  for (int64_t d : v) {
    Y7_CHECK(d >= 0 && d < (int64_t(1) << 31), what, ": bad dimension ", d);
    n = d == 0 ? 0 : n;
    if (n) {
      Y7_CHECK(n <= (int64_t(1) << 31) / std::max<int64_t>(d, 1), what, ": shape too large");
      n *= d;
    }
  }
  return Shape(v.begin(), v.end());
}

int64_t norm_axis(int64_t a, int64_t r, const char* what) {
  if (a < 0) a += r;
  Y7_CHECK(a >= 0 && a < r, what, ": axis out of range for rank ", r);
  return a;
}

// ---------------------------------------------------------------- non-maximum suppression

float iou_corners(const float* a, const float* b) {
  float ax1 = std::min(a[0], a[2]), ax2 = std::max(a[0], a[2]), ay1 = std::min(a[1], a[3]), ay2 = std::max(a[1], a[3]);
  float bx1 = std::min(b[0], b[2]), bx2 = std::max(b[0], b[2]), by1 = std::min(b[1], b[3]), by2 = std::max(b[1], b[3]);
  float aa = (ax2 - ax1) * (ay2 - ay1), ab = (bx2 - bx1) * (by2 - by1);
  if (aa <= 0 || ab <= 0) return 0.f;
  float iw = std::min(ax2, bx2) - std::max(ax1, bx1), ih = std::min(ay2, by2) - std::max(ay1, by1);
  if (iw <= 0 || ih <= 0) return 0.f;
  float inter = iw * ih;
  return inter / (aa + ab - inter);
}

// greedy NMS over candidate indices (score > thres), sorted by score (stable); returns kept indices
std::vector<int64_t> greedy_nms(const float* boxes4, const float* scores, int64_t stride_s, int64_t n, float iou,
                                float thres, bool use_thres, int64_t max_keep) {
  std::vector<int64_t> cand;
  for (int64_t i = 0; i < n; ++i)
    if (!use_thres || scores[i * stride_s] > thres) cand.push_back(i);
  std::stable_sort(cand.begin(), cand.end(),
                   [&](int64_t a, int64_t b) { return scores[a * stride_s] > scores[b * stride_s]; });
  std::vector<int64_t> keep;
  for (int64_t c : cand) {
    if (int64_t(keep.size()) >= max_keep) break;
    bool ok = true;
    for (int64_t k : keep)
      if (iou_corners(boxes4 + c * 4, boxes4 + k * 4) > iou) {
        ok = false;
        break;
      }
    if (ok) keep.push_back(c);
  }
  return keep;
}

}  // namespace

namespace {

struct Attr {
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  Tensor t;
  bool has_t = false;
};

struct TailOp {
  std::string type, name, domain;
  std::vector<int> in, out;  // slot ids; -1 = missing optional input
  std::map<std::string, Attr> attrs;
  const Attr* get(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? nullptr : &it->second;
  }
  int64_t i(const std::string& k, int64_t d) const { return get(k) ? get(k)->i : d; }
  float f(const std::string& k, float d) const { return get(k) ? get(k)->f : d; }
  std::string s(const std::string& k, const std::string& d) const { return get(k) ? get(k)->s : d; }
};

}  // namespace

struct OnnxModel::Impl {
  graph::IrGraph ir;
  std::vector<TailOp> tail;
  int nslots = 0;
  std::vector<std::pair<int, Tensor>> consts;  // slot -> constant
  std::vector<std::pair<int, int>> ir_slots;   // slot <- ir.outputs[k]
  std::vector<int> outputs;                    // slots of the graph outputs
  std::vector<std::string> output_names;
  std::string input_name;
  Shape input_shape;
  std::vector<Shape> output_decl;  // declared output shapes (may be empty)
  Kind kind = Kind::Other;
  graph::IrHead head;
  std::vector<std::string> names;
  int nc = -1;
  int opset = 12;
};

namespace {

const std::set<std::string> kTailOps = {
    "Identity", "Shape", "Gather", "GatherND", "Unsqueeze", "Squeeze", "Flatten", "Reshape", "Expand",
    "Transpose", "Slice", "Split", "Concat", "Cast", "Add", "Sub", "Mul", "Div", "Pow", "Sigmoid", "Relu",
    "LeakyRelu", "HardSigmoid", "HardSwish", "Exp", "Sqrt", "Neg", "Tanh", "ReduceMax", "ArgMax", "MatMul",
    "NonMaxSuppression", "Conv", "MaxPool", "Resize", "Upsample", "ConstantOfShape", "EfficientNMS_TRT"};

DType dtype_from_onnx(int t, const std::string& what) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DType::F32;
    case onnx::TensorProto::FLOAT16: return DType::F16;
    case onnx::TensorProto::DOUBLE: return DType::F64;
    case onnx::TensorProto::INT64: return DType::I64;
    case onnx::TensorProto::INT32: return DType::I32;
    case onnx::TensorProto::INT8: return DType::I8;
    case onnx::TensorProto::UINT8: return DType::U8;
    case onnx::TensorProto::BOOL: return DType::U8;
    default: fail(what, ": unsupported tensor data type ", t);
  }
}

// A TensorProto as a float32 (floating types) or int64 (integer types) tensor.
Tensor tensor_from_proto(const onnx::TensorProto& tp, const std::string& dir) {
  const std::string what = "tensor '" + tp.name() + "'";
  Shape shape = checked_shape(std::vector<int64_t>(tp.dims().begin(), tp.dims().end()), what.c_str());
  int64_t n = shape_numel(shape);
  Y7_CHECK(n >= 0 && n < (int64_t(1) << 31), what, ": too many elements");
  DType dt = dtype_from_onnx(tp.data_type(), what);
  size_t es = dtype_size(dt);
  std::string raw;
  bool have_raw = false;
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string loc;
    int64_t off = 0, len = -1;
    for (auto& kv : tp.external_data()) {
      if (kv.key() == "location") loc = kv.value();
      else if (kv.key() == "offset") off = std::stoll(kv.value());
      else if (kv.key() == "length") len = std::stoll(kv.value());
    }
    Y7_CHECK(!dir.empty(), what, ": external data is not allowed here");
    Y7_CHECK(!loc.empty(), what, ": external data without a location");
    namespace fs = std::filesystem;
    fs::path lp(loc);
    Y7_CHECK(lp.is_relative() && !lp.has_root_name(), what, ": external data location '", loc, "' must be relative");
    std::error_code ec;
    fs::path base = fs::weakly_canonical(fs::path(dir), ec);
    fs::path full = fs::weakly_canonical(base / lp, ec);
    Y7_CHECK(!ec, what, ": cannot resolve external data '", loc, "'");
    auto rel = full.lexically_relative(base);
    Y7_CHECK(!rel.empty() && *rel.begin() != ".." && rel.is_relative(), what, ": external data '", loc,
             "' points outside the model's folder");
    std::ifstream f(full, std::ios::binary);
    Y7_CHECK(f.good(), what, ": cannot open external data '", loc, "'");
    f.seekg(0, std::ios::end);
    int64_t fsz = int64_t(f.tellg());
    if (len < 0) len = fsz - off;
    Y7_CHECK(off >= 0 && len >= 0 && off + len <= fsz, what, ": external data range out of file '", loc, "'");
    Y7_CHECK(len == n * int64_t(es), what, ": external data has ", len, " bytes, expected ", n * int64_t(es));
    raw.resize(size_t(len));
    f.seekg(off);
    f.read(raw.data(), len);
    Y7_CHECK(f.good(), what, ": cannot read external data '", loc, "'");
    have_raw = true;
  } else if (tp.has_raw_data()) {
    raw = tp.raw_data();
    have_raw = true;
  }
  if (!have_raw) {  // typed fields: check the count before allocating anything
    int64_t cnt = 0;
    switch (tp.data_type()) {
      case onnx::TensorProto::FLOAT: cnt = tp.float_data_size(); break;
      case onnx::TensorProto::DOUBLE: cnt = tp.double_data_size(); break;
      case onnx::TensorProto::INT64: cnt = tp.int64_data_size(); break;
      default: cnt = tp.int32_data_size();
    }
    Y7_CHECK(cnt == n, what, ": ", cnt, " values for ", n, " elements");
  } else {
    Y7_CHECK(int64_t(raw.size()) == n * int64_t(es), what, ": raw data has ", raw.size(), " bytes, expected ",
             n * int64_t(es));
  }
  Tensor t = Tensor::empty(shape, dt);
  if (have_raw) {
    Y7_CHECK(int64_t(raw.size()) == n * int64_t(es), what, ": raw data has ", raw.size(), " bytes, expected ",
             n * int64_t(es));
    if (n) std::memcpy(t.raw_data(), raw.data(), raw.size());
  } else {
    switch (tp.data_type()) {
      case onnx::TensorProto::FLOAT:
        Y7_CHECK(tp.float_data_size() == n, what, ": ", tp.float_data_size(), " values for ", n, " elements");
        if (n) std::memcpy(t.raw_data(), tp.float_data().data(), size_t(n) * 4);
        break;
      case onnx::TensorProto::DOUBLE:
        Y7_CHECK(tp.double_data_size() == n, what, ": ", tp.double_data_size(), " values for ", n, " elements");
        if (n) std::memcpy(t.raw_data(), tp.double_data().data(), size_t(n) * 8);
        break;
      case onnx::TensorProto::INT64:
        Y7_CHECK(tp.int64_data_size() == n, what, ": ", tp.int64_data_size(), " values for ", n, " elements");
        if (n) std::memcpy(t.raw_data(), tp.int64_data().data(), size_t(n) * 8);
        break;
      case onnx::TensorProto::FLOAT16: {
        Y7_CHECK(tp.int32_data_size() == n, what, ": ", tp.int32_data_size(), " values for ", n, " elements");
        uint16_t* p = static_cast<uint16_t*>(t.raw_data());
        for (int64_t k = 0; k < n; ++k) p[k] = uint16_t(tp.int32_data(int(k)));
        break;
      }
      default: {
        Y7_CHECK(tp.int32_data_size() == n, what, ": ", tp.int32_data_size(), " values for ", n, " elements");
        Tensor i = Tensor::empty(shape, DType::I64);
        for (int64_t k = 0; k < n; ++k) i.data<int64_t>()[k] = tp.int32_data(int(k));
        t = i;
      }
    }
  }
  bool fl = t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::F64;
  return fl ? as_f32(t) : as_i64(t);
}

Attr attr_from_proto(const onnx::AttributeProto& a, const std::string& dir) {
  Attr r;
  r.i = a.i();
  r.f = a.f();
  r.s = a.s();
  r.ints.assign(a.ints().begin(), a.ints().end());
  r.floats.assign(a.floats().begin(), a.floats().end());
  if (a.has_t()) {
    r.t = tensor_from_proto(a.t(), dir);
    r.has_t = true;
  }
  return r;
}

// The mapped part being built
struct Mapper {
  OnnxModel::Impl& m;
  const std::string dir;
  struct Val {
    enum Kind { Const, Ir, Slot, PendingSlice } kind = Const;
    Tensor c;
    int ir = -1, slot = -1;
    // PendingSlice: a Slice of IR node `ir` (H/W starts for ReOrg detection)
    int64_t sh = 0, sw = 0;
    bool reorg_slice = false;
    std::string slice_node;  // original node index for materialization
  };
  std::map<std::string, Val> vals;
  std::vector<Shape> shapes;  // IR node shapes (declared input, symbolic dims substituted)
  std::map<int, int> ir_exported;  // IR node -> slot
  std::map<std::string, onnx::NodeProto> pending_nodes;
  Shape in_shape;

  int new_slot() { return m.nslots++; }

  int add_ir(graph::IrNode n) {
    std::set<std::string>* dummy = nullptr;
    (void)dummy;
    for (int k = 1; m.ir.find(n.name) >= 0; ++k) n.name = n.name + "_" + std::to_string(k);
    Shape s = graph::ir_node_shape(n, shapes, in_shape);
    m.ir.nodes.push_back(std::move(n));
    shapes.push_back(s);
    return int(m.ir.nodes.size()) - 1;
  }

  int slot_of(const std::string& name);

  const Val& val(const std::string& name) {
    auto it = vals.find(name);
    Y7_CHECK(it != vals.end(), "value '", name, "' is used before it is produced");
    return it->second;
  }
  bool is_ir(const std::string& n) { return !n.empty() && vals.count(n) && vals[n].kind == Val::Ir; }
  bool is_const(const std::string& n) { return !n.empty() && vals.count(n) && vals[n].kind == Val::Const; }

  void tail_node(const onnx::NodeProto& node);
  bool try_ir(const onnx::NodeProto& node);
};

std::string node_label(const onnx::NodeProto& n) {
  return "onnx node '" + (n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name()) + "' (" +
         n.op_type() + ")";
}

int Mapper::slot_of(const std::string& name) {
  if (name.empty()) return -1;
  Val& v = vals.at(name);
  switch (v.kind) {
    case Val::Slot: return v.slot;
    case Val::Const: {
      v.slot = new_slot();
      m.consts.push_back({v.slot, v.c});
      v.kind = Val::Slot;
      return v.slot;
    }
    case Val::Ir: {
      auto it = ir_exported.find(v.ir);
      if (it != ir_exported.end()) return it->second;
      int s = new_slot();
      m.ir_slots.push_back({s, int(m.ir.outputs.size())});
      m.ir.outputs.push_back(v.ir);
      ir_exported[v.ir] = s;
      return s;
    }
    case Val::PendingSlice: {
      // materialize the Slice in the interpreter
      onnx::NodeProto n = pending_nodes.at(name);
      pending_nodes.erase(name);
      vals.erase(name);
      vals[n.input(0)];  // the source is an IR value
      tail_node(n);
      return vals.at(name).slot;
    }
  }
  return -1;
}

void Mapper::tail_node(const onnx::NodeProto& node) {
  TailOp op;
  op.type = node.op_type();
  op.name = node.name();
  op.domain = node.domain();
  for (auto& a : node.attribute()) op.attrs[a.name()] = attr_from_proto(a, dir);
  for (const std::string& in : node.input()) op.in.push_back(in.empty() ? -1 : (val(in), slot_of(in)));
  for (const std::string& o : node.output()) {
    if (o.empty()) {
      op.out.push_back(-1);
      continue;
    }
    Y7_CHECK(!vals.count(o), node_label(node), ": value '", o, "' is produced twice");
    Val v;
    v.kind = Val::Slot;
    v.slot = new_slot();
    vals[o] = v;
    op.out.push_back(v.slot);
  }
  m.tail.push_back(std::move(op));
}

bool Mapper::try_ir(const onnx::NodeProto& node) {
  const std::string& t = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx") return false;
  if (node.input_size() < 1 || node.output_size() < 1) return false;
  std::map<std::string, const onnx::AttributeProto*> at;
  for (auto& a : node.attribute()) at[a.name()] = &a;
  auto ai = [&](const std::string& k, int64_t d) { return at.count(k) ? at[k]->i() : d; };
  auto aints = [&](const std::string& k) {
    return at.count(k) ? std::vector<int64_t>(at[k]->ints().begin(), at[k]->ints().end()) : std::vector<int64_t>{};
  };
  auto as = [&](const std::string& k, const std::string& d) { return at.count(k) ? at[k]->s() : d; };
  const std::string& x = node.input(0);
  std::string nm = node.name().empty() ? node.output(0) : node.name();
  auto done = [&](int ir) {
    Val v;
    v.kind = Val::Ir;
    v.ir = ir;
    vals[node.output(0)] = v;
    return true;
  };
  auto act = [&](ops::Act a, float alpha, int src) {
    graph::IrNode n;
    n.op = graph::IrOp::Act;
    n.name = nm;
    n.in = {src};
    n.act = a;
    n.alpha = alpha;
    return done(add_ir(std::move(n)));
  };
  // ReOrg: Concat(axis 1) of the four strided slices of one IR value, in upstream's order
  if (t == "Concat" && node.input_size() == 4) {
    int64_t axis = ai("axis", 0);
    const int64_t st[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    bool ok = axis == 1 || axis == -3;
    int src = -1;
    for (int k = 0; k < 4 && ok; ++k) {
      auto it = vals.find(node.input(k));
      ok = it != vals.end() && it->second.kind == Val::PendingSlice && it->second.reorg_slice &&
           it->second.sh == st[k][0] && it->second.sw == st[k][1] && (src < 0 || src == it->second.ir);
      if (ok) src = it->second.ir;
    }
    if (ok) {
      for (int k = 0; k < 4; ++k) pending_nodes.erase(node.input(k));
      graph::IrNode n;
      n.op = graph::IrOp::ReOrg;
      n.name = nm;
      n.in = {src};
      return done(add_ir(std::move(n)));
    }
  }
  if ((t == "Add" || t == "Mul") && node.input_size() == 2 && !is_ir(x) && is_ir(node.input(1)) &&
      is_const(x)) {  // constant * x: swap (commutative)
    onnx::NodeProto sw = node;
    sw.set_input(0, node.input(1));
    sw.set_input(1, node.input(0));
    return try_ir(sw);
  }
  if (!is_ir(x)) return false;
  int xi = vals[x].ir;
  if (node.output_size() != 1) return false;
  if (t == "Conv") {
    if (node.input_size() < 2 || !is_const(node.input(1))) return false;
    if (node.input_size() > 2 && !node.input(2).empty() && !is_const(node.input(2))) return false;
    Tensor w = vals[node.input(1)].c;
    if (w.dim() != 4 || w.dtype() != DType::F32) return false;
    auto ks = aints("kernel_shape"), st = aints("strides"), pd = aints("pads"), dl = aints("dilations");
    if (as("auto_pad", "NOTSET") != "NOTSET") return false;
    if (!ks.empty() && (ks.size() != 2 || ks[0] != w.size(2) || ks[1] != w.size(3))) return false;
    auto all_eq = [](const std::vector<int64_t>& v, size_t n, int64_t d) -> int64_t {
      if (v.empty()) return d;
      if (v.size() != n) return -1;
      for (int64_t e : v)
        if (e != v[0]) return -1;
      return v[0];
    };
    int64_t s = all_eq(st, 2, 1), p = all_eq(pd, 4, 0), d = all_eq(dl, 2, 1), g = ai("group", 1);
    if (s < 1 || p < 0 || d < 1 || g < 1 || s > 64 || p > 64 || d > 64) return false;
    graph::IrNode n;
    n.op = graph::IrOp::Conv;
    n.name = nm;
    n.in = {xi};
    n.weight = w;
    if (node.input_size() > 2 && !node.input(2).empty()) {
      n.bias = vals[node.input(2)].c;
      if (n.bias.dtype() != DType::F32 || n.bias.dim() != 1 || n.bias.size(0) != w.size(0)) return false;
    } else {
      n.bias = Tensor::zeros({w.size(0)});
    }
    n.stride = int(s), n.pad = int(p), n.dilation = int(d), n.groups = int(g);
    if (w.size(0) % g != 0) return false;
    return done(add_ir(std::move(n)));
  }
  if (t == "Sigmoid") return act(ops::Act::Sigmoid, 0.1f, xi);
  if (t == "Relu") return act(ops::Act::ReLU, 0.1f, xi);
  if (t == "HardSwish") return act(ops::Act::Hardswish, 0.1f, xi);
  if (t == "LeakyRelu") return act(ops::Act::LeakyReLU, at.count("alpha") ? at["alpha"]->f() : 0.01f, xi);
  if (t == "HardSigmoid") {
    float a = at.count("alpha") ? at["alpha"]->f() : 0.2f, b = at.count("beta") ? at["beta"]->f() : 0.5f;
    if (std::abs(a - 1.f / 6.f) > 1e-6f || std::abs(b - 0.5f) > 1e-6f) return false;
    return act(ops::Act::Hardsigmoid, 0.1f, xi);
  }
  if ((t == "Mul" || t == "Add") && node.input_size() == 2) {
    const std::string& y = node.input(1);
    bool mul = t == "Mul";
    if (is_ir(y)) {
      int yi = vals[y].ir;
      if (mul) {  // x * sigmoid(x) -> SiLU, x * hardsigmoid(x) -> Hardswish
        for (auto [a, b] : {std::pair{xi, yi}, std::pair{yi, xi}}) {
          const graph::IrNode& bn = m.ir.nodes[b];
          if (bn.op == graph::IrOp::Act && bn.in[0] == a &&
              (bn.act == ops::Act::Sigmoid || bn.act == ops::Act::Hardsigmoid))
            return act(bn.act == ops::Act::Sigmoid ? ops::Act::SiLU : ops::Act::Hardswish, 0.1f, a);
        }
      }
      if (shapes[xi] != shapes[yi]) return false;
      graph::IrNode n;
      n.op = mul ? graph::IrOp::Mul : graph::IrOp::Add;
      n.name = nm;
      n.in = {xi, yi};
      return done(add_ir(std::move(n)));
    }
    int src = xi;
    std::string cn = y;
    if (!is_const(cn)) return false;
    Tensor c = vals[cn].c;
    if (c.dtype() != DType::F32 || c.dim() > 4) return false;
    int64_t C = shapes[src][1];
    Tensor w;
    if (c.numel() == 1) {
      w = Tensor::full({1, C, 1, 1}, c.contiguous().data<float>()[0]);
    } else {
      Shape cs = c.sizes();
      while (cs.size() < 4) cs.insert(cs.begin(), 1);
      if (!(cs[0] == 1 && cs[1] == C && cs[2] == 1 && cs[3] == 1)) return false;
      w = c.contiguous().reshape({1, C, 1, 1});
    }
    graph::IrNode n;
    n.op = mul ? graph::IrOp::Mul : graph::IrOp::Add;
    n.name = nm;
    n.in = {src};
    n.weight = w;
    return done(add_ir(std::move(n)));
  }
  if (t == "MaxPool") {
    auto ks = aints("kernel_shape"), st = aints("strides"), pd = aints("pads");
    if (as("auto_pad", "NOTSET") != "NOTSET" || ai("ceil_mode", 0) != 0 || ai("storage_order", 0) != 0) return false;
    if (!aints("dilations").empty()) {
      for (int64_t d : aints("dilations"))
        if (d != 1) return false;
    }
    if (ks.size() != 2 || ks[0] != ks[1]) return false;
    int64_t s = st.empty() ? 1 : (st.size() == 2 && st[0] == st[1] ? st[0] : -1);
    int64_t p = pd.empty() ? 0 : (pd.size() == 4 && pd[0] == pd[1] && pd[1] == pd[2] && pd[2] == pd[3] ? pd[0] : -1);
    if (s < 1 || p < 0 || 2 * p > ks[0] || ks[0] < 1 || ks[0] > 64 || s > 64) return false;
    graph::IrNode n;
    n.op = graph::IrOp::MaxPool;
    n.name = nm;
    n.in = {xi};
    n.k = int(ks[0]), n.s = int(s), n.p = int(p);
    return done(add_ir(std::move(n)));
  }
  if (t == "Resize" || t == "Upsample") {
    if (as("mode", "nearest") != "nearest") return false;
    std::string ctm = as("coordinate_transformation_mode", "half_pixel");
    std::string nmode = as("nearest_mode", "round_prefer_floor");
    if (t == "Resize" && !(ctm == "asymmetric" && (nmode == "floor" || nmode == "round_prefer_floor"))) {
      // integer upscaling: asymmetric + floor is exact; half_pixel with round_prefer_ceil too is not
      return false;
    }
    std::vector<float> sc;
    if (t == "Upsample") {
      if (node.input_size() >= 2 && is_const(node.input(1))) sc = floats_of(vals[node.input(1)].c);
      else if (at.count("scales")) sc.assign(at["scales"]->floats().begin(), at["scales"]->floats().end());
    } else if (node.input_size() >= 3 && !node.input(2).empty() && is_const(node.input(2))) {
      sc = floats_of(vals[node.input(2)].c);
    }
    if (sc.empty() && t == "Resize" && node.input_size() >= 4 && is_const(node.input(3))) {
      auto sz = ints_of(vals[node.input(3)].c);
      const Shape& s = shapes[xi];
      if (sz.size() == 4 && sz[0] == s[0] && sz[1] == s[1] && s[2] > 0 && s[3] > 0 && sz[2] % s[2] == 0 &&
          sz[3] % s[3] == 0)
        sc = {1.f, 1.f, float(sz[2] / s[2]), float(sz[3] / s[3])};
    }
    if (sc.size() != 4 || sc[0] != 1 || sc[1] != 1 || sc[2] != sc[3] || sc[2] < 1 || sc[2] > 64 ||
        sc[2] != std::floor(sc[2]))
      return false;
    graph::IrNode n;
    n.op = graph::IrOp::Upsample;
    n.name = nm;
    n.in = {xi};
    n.scale = int(sc[2]);
    return done(add_ir(std::move(n)));
  }
  if (t == "Concat") {
    int64_t axis = ai("axis", 0);
    if (axis < 0) axis += 4;
    if (axis != 1) return false;
    graph::IrNode n;
    n.op = graph::IrOp::Concat;
    n.name = nm;
    n.axis = 1;
    for (const std::string& in : node.input()) {
      if (!is_ir(in)) return false;
      n.in.push_back(vals[in].ir);
    }
    for (int k : n.in)
      if (shapes[k][0] != shapes[n.in[0]][0] || shapes[k][2] != shapes[n.in[0]][2] || shapes[k][3] != shapes[n.in[0]][3])
        return false;
    return done(add_ir(std::move(n)));
  }
  if (t == "Slice" && node.input_size() >= 3) {
    // candidate ReOrg piece: starts s, ends >= dim, axes [2,3], steps [2,2]
    std::vector<int64_t> s, e, ax, stp;
    for (int k = 1; k < node.input_size(); ++k)
      if (!node.input(k).empty() && !is_const(node.input(k))) return false;
    s = ints_of(vals[node.input(1)].c);
    e = ints_of(vals[node.input(2)].c);
    if (node.input_size() > 3 && !node.input(3).empty()) ax = ints_of(vals[node.input(3)].c);
    if (node.input_size() > 4 && !node.input(4).empty()) stp = ints_of(vals[node.input(4)].c);
    const Shape& sh = shapes[xi];
    if (s.size() == 2 && e.size() == 2 && ax == std::vector<int64_t>{2, 3} && stp == std::vector<int64_t>{2, 2} &&
        (s[0] == 0 || s[0] == 1) && (s[1] == 0 || s[1] == 1) && e[0] >= sh[2] && e[1] >= sh[3]) {
      Val v;
      v.kind = Val::PendingSlice;
      v.ir = xi;
      v.sh = s[0], v.sw = s[1];
      v.reorg_slice = true;
      vals[node.output(0)] = v;
      pending_nodes[node.output(0)] = node;
      return true;
    }
    return false;
  }
  return false;
}

// ---------------------------------------------------------------- interpreter

Tensor conv_any(const Tensor& x, const Tensor& w, const Tensor& b, const TailOp& op) {
  auto get = [&](const std::string& k) { return op.get(k) ? op.get(k)->ints : std::vector<int64_t>{}; };
  auto st = get("strides"), pd = get("pads"), dl = get("dilations");
  auto uni = [](const std::vector<int64_t>& v, int64_t d) {
    if (v.empty()) return d;
    for (int64_t e : v) Y7_CHECK(e == v[0], "only equal strides/pads/dilations are supported");
    return v[0];
  };
  Y7_CHECK(op.s("auto_pad", "NOTSET") == "NOTSET", "auto_pad is not supported");
  ops::Conv2dParams p;
  p.stride = int(uni(st, 1)), p.pad = int(uni(pd, 0)), p.dilation = int(uni(dl, 1)), p.groups = int(op.i("group", 1));
  return ops::conv2d(as_f32(x), as_f32(w), b.defined() ? as_f32(b) : Tensor(), p);
}

std::vector<Tensor> run_tail_op(const TailOp& op, const std::vector<Tensor>& in, int opset) {
  const std::string& t = op.type;
  auto X = [&](size_t k) -> const Tensor& {
    Y7_CHECK(k < in.size() && in[k].defined(), "missing input ", k);
    return in[k];
  };
  auto has = [&](size_t k) { return k < in.size() && in[k].defined(); };
  auto attr_ints = [&](const std::string& k) { return op.get(k) ? op.get(k)->ints : std::vector<int64_t>{}; };
  if (t == "Identity") return {X(0)};
  if (t == "Add") return {binary(X(0), X(1), Bin::Add)};
  if (t == "Sub") return {binary(X(0), X(1), Bin::Sub)};
  if (t == "Mul") return {binary(X(0), X(1), Bin::Mul)};
  if (t == "Div") return {binary(X(0), X(1), Bin::Div)};
  if (t == "Pow") return {binary(X(0), X(1), Bin::Pow)};
  if (t == "Sigmoid" || t == "Relu" || t == "LeakyRelu" || t == "HardSigmoid" || t == "HardSwish" || t == "Exp" ||
      t == "Sqrt" || t == "Neg" || t == "Tanh") {
    Tensor x = as_f32(X(0)).clone();
    float* p = x.data<float>();
    float al = op.f("alpha", t == "LeakyRelu" ? 0.01f : 0.2f), be = op.f("beta", 0.5f);
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = p[i];
      if (t == "Sigmoid") p[i] = ops::act_scalar(ops::Act::Sigmoid, v, 0);
      else if (t == "Relu") p[i] = v > 0 ? v : 0;
      else if (t == "LeakyRelu") p[i] = v >= 0 ? v : v * al;
      else if (t == "HardSigmoid") p[i] = std::max(0.f, std::min(1.f, al * v + be));
      else if (t == "HardSwish") p[i] = v * std::max(0.f, std::min(1.f, v / 6.f + 0.5f));
      else if (t == "Exp") p[i] = std::exp(v);
      else if (t == "Sqrt") p[i] = std::sqrt(v);
      else if (t == "Neg") p[i] = -v;
      else p[i] = std::tanh(v);
    }
    return {x};
  }
  if (t == "Shape") {
    const Shape& s = X(0).sizes();
    int64_t r = int64_t(s.size()), a = op.i("start", 0), b = op.get("end") ? op.i("end", r) : r;
    if (a < 0) a += r;
    if (b < 0) b += r;
    a = std::clamp<int64_t>(a, 0, r), b = std::clamp<int64_t>(b, 0, r);
    std::vector<int64_t> v(s.begin() + a, s.begin() + std::max(a, b));
    return {Tensor::from_vector(v, {int64_t(v.size())})};
  }
  if (t == "ConstantOfShape") {
    Shape s = checked_shape(ints_of(X(0)), "ConstantOfShape");
    Tensor v = op.get("value") && op.get("value")->has_t ? op.get("value")->t : Tensor::zeros({1});
    Tensor r = Tensor::empty(s, v.dtype());
    Tensor one = v.contiguous();
    size_t es = dtype_size(one.dtype());
    for (int64_t i = 0; i < r.numel(); ++i)
      std::memcpy(static_cast<char*>(r.raw_data()) + i * es, one.raw_data(), es);
    return {r};
  }
  if (t == "Cast") {
    int64_t to = op.i("to", 1);
    bool fl = to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE || to == onnx::TensorProto::FLOAT16;
    if (fl) return {as_f32(X(0))};
    if (to == onnx::TensorProto::BOOL) {
      Tensor f = as_f32(X(0)), r = Tensor::empty(f.sizes(), DType::I64);
      for (int64_t i = 0; i < f.numel(); ++i) r.data<int64_t>()[i] = f.data<float>()[i] != 0;
      return {r};
    }
    return {as_i64(X(0))};  // integer types are carried as int64
  }
  if (t == "Reshape") {
    const Tensor& x = X(0);
    auto s = ints_of(X(1));
    Shape o(s.begin(), s.end());
    int64_t known = 1, neg = -1;
    for (size_t i = 0; i < o.size(); ++i) {
      if (o[i] == 0 && op.i("allowzero", 0) == 0) {
        Y7_CHECK(int64_t(i) < x.dim(), "Reshape: 0 for a missing input dim");
        o[i] = x.size(int64_t(i));
      }
      if (o[i] == -1) {
        Y7_CHECK(neg < 0, "Reshape: several -1");
        neg = int64_t(i);
      } else {
        Y7_CHECK(o[i] >= 0, "Reshape: bad target ", shape_str(o));
        known *= o[i];
      }
    }
    if (neg >= 0) {
      Y7_CHECK(known > 0 && x.numel() % known == 0, "Reshape: cannot reshape ", x.str(), " to ", shape_str(o));
      o[size_t(neg)] = x.numel() / known;
    }
    Y7_CHECK(shape_numel(o) == x.numel(), "Reshape: cannot reshape ", x.str(), " to ", shape_str(o));
    return {x.contiguous().view(o)};
  }
  if (t == "Flatten") {
    const Tensor& x = X(0);
    int64_t a = op.i("axis", 1);
    if (a < 0) a += x.dim();
    Y7_CHECK(a >= 0 && a <= x.dim(), "Flatten: bad axis");
    int64_t l = 1;
    for (int64_t i = 0; i < a; ++i) l *= x.size(i);
    return {x.contiguous().view({l, l ? x.numel() / l : 0})};
  }
  if (t == "Transpose") {
    const Tensor& x = X(0);
    auto p = attr_ints("perm");
    if (p.empty())
      for (int64_t i = x.dim() - 1; i >= 0; --i) p.push_back(i);
    Y7_CHECK(int64_t(p.size()) == x.dim(), "Transpose: perm of size ", p.size(), " for ", x.str());
    std::vector<int64_t> seen(p.size(), 0);
    for (int64_t v : p) {
      Y7_CHECK(v >= 0 && v < x.dim() && !seen[size_t(v)], "Transpose: bad perm");
      seen[size_t(v)] = 1;
    }
    return {x.permute(p).contiguous()};
  }
  if (t == "Unsqueeze" || t == "Squeeze") {
    const Tensor& x = X(0);
    std::vector<int64_t> axes = (opset >= 13 && has(1)) ? ints_of(X(1)) : attr_ints("axes");
    Shape s = x.sizes();
    if (t == "Unsqueeze") {
      int64_t r = x.dim() + int64_t(axes.size());
      std::vector<int64_t> a;
      for (int64_t v : axes) a.push_back(norm_axis(v, r, "Unsqueeze"));
      std::sort(a.begin(), a.end());
      for (int64_t v : a) s.insert(s.begin() + v, 1);
    } else {
      std::vector<int64_t> a;
      for (int64_t v : axes) a.push_back(norm_axis(v, x.dim(), "Squeeze"));
      Shape o;
      for (int64_t i = 0; i < x.dim(); ++i) {
        bool drop = axes.empty() ? s[size_t(i)] == 1 : std::count(a.begin(), a.end(), i) > 0;
        if (drop) Y7_CHECK(s[size_t(i)] == 1, "Squeeze: dimension ", i, " is not 1");
        if (!drop) o.push_back(s[size_t(i)]);
      }
      s = o;
    }
    return {x.contiguous().view(s)};
  }
  if (t == "Expand") {
    Shape s = checked_shape(ints_of(X(1)), "Expand");
    Y7_CHECK(shape_numel(broadcast_shape(X(0).sizes(), s)) <= (int64_t(1) << 31), "Expand: result too large");
    return {expand_to(X(0), s)};
  }
  if (t == "Concat") {
    std::vector<Tensor> xs;
    for (size_t k = 0; k < in.size(); ++k)
      if (has(k)) xs.push_back(in[k]);
    Y7_CHECK(!xs.empty(), "Concat: no inputs");
    bool anyf = false;
    for (auto& x : xs) anyf |= x.dtype() == DType::F32;
    for (auto& x : xs) x = anyf ? as_f32(x) : as_i64(x);
    int64_t a = norm_axis(op.i("axis", 0), xs[0].dim(), "Concat");
    if (xs.size() == 1) return {xs[0]};
    // empty tensors (e.g. no detections) are fine as long as the other dims agree
    return {ops::concat(xs, a).contiguous()};
  }
  if (t == "Slice") {
    const Tensor& x = X(0);
    std::vector<int64_t> st, en, ax, sp;
    if (opset < 10 && op.get("starts")) {
      st = attr_ints("starts"), en = attr_ints("ends"), ax = attr_ints("axes");
    } else {
      st = ints_of(X(1)), en = ints_of(X(2));
      if (has(3)) ax = ints_of(in[3]);
      if (has(4)) sp = ints_of(in[4]);
    }
    Y7_CHECK(st.size() == en.size(), "Slice: starts/ends differ in length");
    if (ax.empty())
      for (size_t i = 0; i < st.size(); ++i) ax.push_back(int64_t(i));
    if (sp.empty()) sp.assign(st.size(), 1);
    Y7_CHECK(ax.size() == st.size() && sp.size() == st.size(), "Slice: axes/steps lengths");
    Tensor v = x;
    for (size_t i = 0; i < st.size(); ++i) {
      int64_t a = norm_axis(ax[i], x.dim(), "Slice"), d = x.size(a), s = st[i], e = en[i], k = sp[i];
      Y7_CHECK(k != 0, "Slice: step 0");
      if (s < 0) s += d;
      if (e < 0 && e > std::numeric_limits<int64_t>::min() / 2) e += d;
      if (k > 0) {
        s = std::clamp<int64_t>(s, 0, d), e = std::clamp<int64_t>(e, 0, d);
        if (e < s) e = s;
        v = v.slice(a, s, e, k);
      } else {
        s = std::clamp<int64_t>(s, 0, d - 1), e = std::clamp<int64_t>(e, -1, d - 1);
        // negative steps: gather explicitly
        std::vector<int64_t> idx;
        for (int64_t j = s; j > e; j += k) idx.push_back(j);
        std::vector<Tensor> parts;
        for (int64_t j : idx) parts.push_back(v.slice(a, j, j + 1));
        Y7_CHECK(!parts.empty(), "Slice: empty negative-step slice");
        v = ops::concat(parts, a);
      }
    }
    return {v.contiguous()};
  }
  if (t == "Split") {
    const Tensor& x = X(0);
    int64_t a = norm_axis(op.i("axis", 0), x.dim(), "Split");
    std::vector<int64_t> sp = (opset >= 13 && has(1)) ? ints_of(X(1)) : attr_ints("split");
    size_t nout = op.out.size();
    if (sp.empty()) {
      Y7_CHECK(nout > 0 && x.size(a) % int64_t(nout) == 0, "Split: ", x.size(a), " not divisible into ", nout);
      sp.assign(nout, x.size(a) / int64_t(nout));
    }
    Y7_CHECK(sp.size() == nout, "Split: ", sp.size(), " sizes for ", nout, " outputs");
    int64_t sum = 0;
    for (int64_t v : sp) {
      Y7_CHECK(v >= 0, "Split: negative size");
      sum += v;
    }
    Y7_CHECK(sum == x.size(a), "Split: sizes sum to ", sum, ", dimension is ", x.size(a));
    std::vector<Tensor> r;
    int64_t o = 0;
    for (int64_t v : sp) {
      r.push_back(x.slice(a, o, o + v).contiguous());
      o += v;
    }
    return r;
  }
  if (t == "Gather") {
    const Tensor& x = X(0);
    Tensor idx = as_i64(X(1));
    int64_t a = norm_axis(op.i("axis", 0), x.dim(), "Gather"), d = x.size(a);
    Shape o;
    for (int64_t i = 0; i < a; ++i) o.push_back(x.size(i));
    for (int64_t s : idx.sizes()) o.push_back(s);
    for (int64_t i = a + 1; i < x.dim(); ++i) o.push_back(x.size(i));
    Tensor xc = x.contiguous(), r = Tensor::empty(o, xc.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= x.size(i);
    for (int64_t i = a + 1; i < x.dim(); ++i) inner *= x.size(i);
    size_t es = dtype_size(xc.dtype());
    const char* src = static_cast<const char*>(xc.raw_data());
    char* dst = static_cast<char*>(r.raw_data());
    int64_t ni = idx.numel();
    for (int64_t oi = 0; oi < outer; ++oi)
      for (int64_t j = 0; j < ni; ++j) {
        int64_t k = idx.data<int64_t>()[j];
        if (k < 0) k += d;
        Y7_CHECK(k >= 0 && k < d, "Gather: index ", idx.data<int64_t>()[j], " out of range ", d);
        std::memcpy(dst + ((oi * ni + j) * inner) * es, src + ((oi * d + k) * inner) * es, size_t(inner) * es);
      }
    return {r};
  }
  if (t == "GatherND") {
    const Tensor& x = X(0);
    Tensor idx = as_i64(X(1));
    Y7_CHECK(op.i("batch_dims", 0) == 0, "GatherND: batch_dims not supported");
    Y7_CHECK(idx.dim() >= 1, "GatherND: indices must have rank >= 1");
    int64_t q = idx.size(-1);
    Y7_CHECK(q >= 1 && q <= x.dim(), "GatherND: last index dim ", q, " for ", x.str());
    Shape o(idx.sizes().begin(), idx.sizes().end() - 1);
    int64_t inner = 1;
    for (int64_t i = q; i < x.dim(); ++i) {
      o.push_back(x.size(i));
      inner *= x.size(i);
    }
    Tensor xc = x.contiguous(), r = Tensor::empty(o, xc.dtype());
    Shape cs = contiguous_strides(x.sizes());
    size_t es = dtype_size(xc.dtype());
    int64_t n = q ? idx.numel() / q : 0;
    for (int64_t j = 0; j < n; ++j) {
      int64_t off = 0;
      for (int64_t k = 0; k < q; ++k) {
        int64_t v = idx.data<int64_t>()[j * q + k], d = x.size(k);
        if (v < 0) v += d;
        Y7_CHECK(v >= 0 && v < d, "GatherND: index out of range");
        off += v * cs[size_t(k)];
      }
      std::memcpy(static_cast<char*>(r.raw_data()) + j * inner * int64_t(es),
                  static_cast<const char*>(xc.raw_data()) + off * int64_t(es), size_t(inner) * es);
    }
    return {r};
  }
  if (t == "ReduceMax" || t == "ArgMax") {
    Tensor x = as_f32(X(0));
    int64_t keep = op.i("keepdims", 1);
    std::vector<int64_t> axes;
    if (t == "ArgMax") axes = {norm_axis(op.i("axis", 0), x.dim(), "ArgMax")};
    else {
      axes = (opset >= 18 && has(1)) ? ints_of(X(1)) : attr_ints("axes");
      for (auto& a : axes) a = norm_axis(a, x.dim(), "ReduceMax");
      if (axes.empty())
        for (int64_t i = 0; i < x.dim(); ++i) axes.push_back(i);
    }
    Y7_CHECK(axes.size() == 1, t, ": only one reduced axis is supported");
    int64_t a = axes[0], d = x.size(a), outer = 1, inner = 1;
    Y7_CHECK(d > 0, t, ": empty axis");
    for (int64_t i = 0; i < a; ++i) outer *= x.size(i);
    for (int64_t i = a + 1; i < x.dim(); ++i) inner *= x.size(i);
    Shape o = x.sizes();
    if (keep) o[size_t(a)] = 1;
    else o.erase(o.begin() + a);
    bool arg = t == "ArgMax";
    bool last = op.i("select_last_index", 0) != 0;
    Tensor r = Tensor::empty(o, arg ? DType::I64 : DType::F32);
    const float* p = x.data<float>();
    for (int64_t oi = 0; oi < outer; ++oi)
      for (int64_t ii = 0; ii < inner; ++ii) {
        float best = p[(oi * d) * inner + ii];
        int64_t bi = 0;
        for (int64_t k = 1; k < d; ++k) {
          float v = p[(oi * d + k) * inner + ii];
          if (v > best || (last && v == best) || (std::isnan(v) && !std::isnan(best))) best = v, bi = k;
        }
        if (arg) r.data<int64_t>()[oi * inner + ii] = bi;
        else r.data<float>()[oi * inner + ii] = best;
      }
    return {r};
  }
  if (t == "MatMul") {
    Tensor a = as_f32(X(0)), b = as_f32(X(1));
    Y7_CHECK(a.dim() >= 2 && b.dim() == 2, "MatMul: only [...,M,K] x [K,N] is supported");
    int64_t K = a.size(-1), N = b.size(1);
    Y7_CHECK(b.size(0) == K, "MatMul: ", a.str(), " x ", b.str());
    Shape o = a.sizes();
    o.back() = N;
    Tensor r = Tensor::zeros(o);
    int64_t M = a.numel() / K;
    const float *pa = a.data<float>(), *pb = b.data<float>();
    float* pr = r.data<float>();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) {
        float v = pa[i * K + k];
        for (int64_t j = 0; j < N; ++j) pr[i * N + j] += v * pb[k * N + j];
      }
    return {r};
  }
  if (t == "NonMaxSuppression") {
    Tensor boxes = as_f32(X(0)), scores = as_f32(X(1));
    Y7_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "NonMaxSuppression: boxes must be [B,N,4], got ", boxes.str());
    Y7_CHECK(scores.dim() == 3 && scores.size(0) == boxes.size(0) && scores.size(2) == boxes.size(1),
             "NonMaxSuppression: scores ", scores.str(), " for boxes ", boxes.str());
    Y7_CHECK(op.i("center_point_box", 0) == 0, "NonMaxSuppression: center_point_box=1 is not supported");
    int64_t maxk = has(2) ? ints_of(in[2]).at(0) : 0;
    float iou = has(3) ? floats_of(in[3]).at(0) : 0.f;
    bool use_thr = has(4);
    float thr = use_thr ? floats_of(in[4]).at(0) : 0.f;
    int64_t B = boxes.size(0), C = scores.size(1), N = boxes.size(1);
    std::vector<int64_t> rows;
    if (maxk > 0)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
          auto keep = greedy_nms(boxes.data<float>() + b * N * 4, scores.data<float>() + (b * C + c) * N, 1, N, iou,
                                 thr, use_thr, maxk);
          for (int64_t k : keep) rows.insert(rows.end(), {b, c, k});
        }
    return {Tensor::from_vector(rows, {int64_t(rows.size() / 3), 3})};
  }
  if (t == "EfficientNMS_TRT") {
    Tensor boxes = as_f32(X(0)), scores = as_f32(X(1));
    Y7_CHECK(boxes.dim() == 3 && boxes.size(2) == 4 && scores.dim() == 3 && scores.size(0) == boxes.size(0) &&
                 scores.size(1) == boxes.size(1),
             "EfficientNMS_TRT: boxes ", boxes.str(), " scores ", scores.str());
    int64_t B = boxes.size(0), N = boxes.size(1), C = scores.size(2), K = op.i("max_output_boxes", 100);
    Y7_CHECK(K > 0 && K < 100000, "EfficientNMS_TRT: bad max_output_boxes");
    float iou = op.f("iou_threshold", 0.45f), thr = op.f("score_threshold", 0.25f);
    bool center = op.i("box_coding", 0) == 1;
    Y7_CHECK(op.i("score_activation", 0) == 0, "EfficientNMS_TRT: score_activation is not supported");
    Tensor nd = Tensor::zeros({B, 1}, DType::I64), db = Tensor::zeros({B, K, 4}), ds = Tensor::zeros({B, K}),
           dc = Tensor::zeros({B, K}, DType::I64);
    std::vector<float> corners(size_t(N * 4));
    for (int64_t b = 0; b < B; ++b) {
      const float* bx = boxes.data<float>() + b * N * 4;
      for (int64_t i = 0; i < N; ++i) {
        const float* q = bx + i * 4;
        float* c = corners.data() + i * 4;
        if (center) c[0] = q[0] - q[2] / 2, c[1] = q[1] - q[3] / 2, c[2] = q[0] + q[2] / 2, c[3] = q[1] + q[3] / 2;
        else std::copy(q, q + 4, c);
      }
      struct Det { float s; int64_t c, i; };
      std::vector<Det> all;
      for (int64_t c = 0; c < C; ++c) {
        auto keep = greedy_nms(corners.data(), scores.data<float>() + b * N * C + c, C, N, iou, thr, true, K);
        for (int64_t k : keep) all.push_back({scores.data<float>()[(b * N + k) * C + c], c, k});
      }
      std::stable_sort(all.begin(), all.end(), [](const Det& x, const Det& y) { return x.s > y.s; });
      if (int64_t(all.size()) > K) all.resize(size_t(K));
      nd.data<int64_t>()[b] = int64_t(all.size());
      for (size_t j = 0; j < all.size(); ++j) {
        std::copy(corners.data() + all[j].i * 4, corners.data() + all[j].i * 4 + 4, db.data<float>() + (b * K + int64_t(j)) * 4);
        ds.data<float>()[b * K + int64_t(j)] = all[j].s;
        dc.data<int64_t>()[b * K + int64_t(j)] = all[j].c;
      }
    }
    return {nd, db, ds, dc};
  }
  if (t == "Conv") return {conv_any(X(0), X(1), has(2) ? in[2] : Tensor(), op)};
  if (t == "MaxPool") {
    auto ks = attr_ints("kernel_shape"), st = attr_ints("strides"), pd = attr_ints("pads");
    Y7_CHECK(ks.size() == 2 && ks[0] == ks[1], "MaxPool: only square kernels");
    Y7_CHECK(op.i("ceil_mode", 0) == 0 && op.s("auto_pad", "NOTSET") == "NOTSET", "MaxPool: unsupported mode");
    int64_t s = st.empty() ? 1 : st[0], p = pd.empty() ? 0 : pd[0];
    for (int64_t v : st) Y7_CHECK(v == s, "MaxPool: unequal strides");
    for (int64_t v : pd) Y7_CHECK(v == p, "MaxPool: unequal pads");
    Y7_CHECK(op.out.size() == 1 || op.out[1] < 0, "MaxPool: the Indices output is not supported");
    return {ops::max_pool2d(as_f32(X(0)), int(ks[0]), int(s), int(p)).contiguous()};
  }
  if (t == "Resize" || t == "Upsample") {
    Tensor x = as_f32(X(0));
    Y7_CHECK(x.dim() == 4, t, ": only 4-D inputs");
    Y7_CHECK(op.s("mode", "nearest") == "nearest", t, ": only mode 'nearest'");
    std::vector<float> sc;
    if (t == "Upsample") sc = has(1) ? floats_of(in[1]) : (op.get("scales") ? op.get("scales")->floats : sc);
    else if (has(2) && in[2].numel()) sc = floats_of(in[2]);
    else if (has(3)) {
      auto sz = ints_of(in[3]);
      Y7_CHECK(sz.size() == 4, "Resize: sizes must have 4 values");
      sc = {1, 1, float(sz[2]) / float(x.size(2)), float(sz[3]) / float(x.size(3))};
    }
    Y7_CHECK(sc.size() == 4 && sc[0] == 1 && sc[1] == 1 && sc[2] == sc[3] && sc[2] >= 1 && sc[2] <= 64 &&
                 sc[2] == std::floor(sc[2]),
             t, ": only integer nearest upscaling of H and W is supported");
    return {ops::upsample_nearest2d(x, int(sc[2])).contiguous()};
  }
  fail("unsupported ONNX op '", t, "'");
}

}  // namespace

OnnxModel parse_onnx(const std::string& bytes, const std::string& dir) {
  onnx::ModelProto mp;
  {
    google::protobuf::io::ArrayInputStream ais(bytes.data(), int(std::min<size_t>(bytes.size(), INT32_MAX)));
    google::protobuf::io::CodedInputStream cis(&ais);
    cis.SetTotalBytesLimit(INT32_MAX);
    Y7_CHECK(bytes.size() < size_t(INT32_MAX) && mp.ParseFromCodedStream(&cis) && cis.ConsumedEntireMessage(),
             "not a valid ONNX file (protobuf parse failed: truncated or corrupt)");
  }
  Y7_CHECK(mp.has_graph(), "ONNX file has no graph");
  auto impl = std::make_shared<OnnxModel::Impl>();
  OnnxModel::Impl& m = *impl;
  for (auto& os : mp.opset_import())
    if (os.domain().empty() || os.domain() == "ai.onnx") m.opset = int(os.version());
  Y7_CHECK(m.opset >= 7 && m.opset <= 21, "ONNX opset ", m.opset, " is not supported");
  const onnx::GraphProto& g = mp.graph();
  try {
    Mapper mp2{m, dir, {}, {}, {}, {}, {}};
    Mapper& mp_ = mp2;
    for (auto& init : g.initializer()) {
      Mapper::Val v;
      v.kind = Mapper::Val::Const;
      v.c = tensor_from_proto(init, dir);
      mp_.vals[init.name()] = v;
    }
    // the image input: the one graph input that is not an initializer
    for (auto& in : g.input()) {
      if (mp_.vals.count(in.name())) continue;
      Y7_CHECK(m.input_name.empty(), "ONNX graph has several inputs ('", m.input_name, "', '", in.name(),
               "'); one image input is supported");
      m.input_name = in.name();
      Y7_CHECK(in.type().has_tensor_type(), "ONNX input '", in.name(), "' is not a tensor");
      Y7_CHECK(in.type().tensor_type().elem_type() == onnx::TensorProto::FLOAT, "ONNX input '", in.name(),
               "' must be float32");
      for (auto& d : in.type().tensor_type().shape().dim()) m.input_shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
    Y7_CHECK(!m.input_name.empty(), "ONNX graph has no input");
    Y7_CHECK(m.input_shape.size() == 4, "ONNX input '", m.input_name, "' must be 4-D [B,C,H,W], got rank ",
             m.input_shape.size());
    Y7_CHECK(m.input_shape[1] > 0 && m.input_shape[1] <= 64, "ONNX input '", m.input_name,
             "' needs a fixed channel count, got ", shape_str(m.input_shape));
    for (int64_t d : m.input_shape) Y7_CHECK(d == -1 || (d > 0 && d <= 65536), "ONNX input dimension ", d);
    // shapes for mapping decisions: symbolic dims substituted (batch 1, H/W 640)
    mp_.in_shape = m.input_shape;
    if (mp_.in_shape[0] < 0) mp_.in_shape[0] = 1;
    if (mp_.in_shape[2] < 0) mp_.in_shape[2] = 640;
    if (mp_.in_shape[3] < 0) mp_.in_shape[3] = 640;
    graph::IrNode inode;
    inode.op = graph::IrOp::Input;
    inode.name = m.input_name;
    inode.shape = {mp_.in_shape[0], mp_.in_shape[1], mp_.in_shape[2], mp_.in_shape[3]};
    m.ir.nodes.push_back(inode);
    mp_.shapes.push_back(inode.shape);
    m.ir.head.nl = 0;
    Mapper::Val iv;
    iv.kind = Mapper::Val::Ir;
    iv.ir = 0;
    mp_.vals[m.input_name] = iv;

    for (const onnx::NodeProto& node : g.node()) {
      try {
        const std::string& t = node.op_type();
        bool custom = !node.domain().empty() && node.domain() != "ai.onnx";
        Y7_CHECK(!custom || t == "EfficientNMS_TRT", "unsupported ONNX op '", node.domain(), "::", t, "'");
        if (t == "Constant") {
          Y7_CHECK(node.output_size() == 1, "Constant needs one output");
          Mapper::Val v;
          v.kind = Mapper::Val::Const;
          bool got = false;
          for (auto& a : node.attribute()) {
            if (a.name() == "value") v.c = tensor_from_proto(a.t(), dir), got = true;
            else if (a.name() == "value_float") v.c = Tensor::full({}, a.f()), got = true;
            else if (a.name() == "value_int") v.c = Tensor::from_vector(std::vector<int64_t>{a.i()}, {}), got = true;
            else if (a.name() == "value_floats")
              v.c = Tensor::from_vector(std::vector<float>(a.floats().begin(), a.floats().end()), {a.floats_size()}), got = true;
            else if (a.name() == "value_ints")
              v.c = Tensor::from_vector(std::vector<int64_t>(a.ints().begin(), a.ints().end()), {a.ints_size()}), got = true;
          }
          Y7_CHECK(got, "Constant without a supported value attribute");
          Y7_CHECK(!mp_.vals.count(node.output(0)), "value '", node.output(0), "' is produced twice");
          mp_.vals[node.output(0)] = v;
          continue;
        }
        Y7_CHECK(t == "EfficientNMS_TRT" || kTailOps.count(t), "unsupported ONNX op '", t, "'");
        for (const std::string& in : node.input())
          if (!in.empty()) mp_.val(in);  // defined before use (topological order)
        if (mp_.try_ir(node)) continue;
        mp_.tail_node(node);
      } catch (const Error& e) {
        fail(node_label(node), ": ", e.what());
      }
    }
    for (auto& o : g.output()) {
      Y7_CHECK(mp_.vals.count(o.name()), "ONNX graph output '", o.name(), "' is never produced");
      m.outputs.push_back(mp_.slot_of(o.name()));
      m.output_names.push_back(o.name());
      Shape s;
      if (o.type().has_tensor_type() && o.type().tensor_type().has_shape())
        for (auto& d : o.type().tensor_type().shape().dim()) s.push_back(d.has_dim_value() ? d.dim_value() : -1);
      m.output_decl.push_back(s);
    }
    Y7_CHECK(!m.outputs.empty(), "ONNX graph has no outputs");
    // drop IR nodes nobody reads (e.g. a Sigmoid folded into a SiLU)
    {
      int N = int(m.ir.nodes.size());
      std::vector<bool> live(N, false);
      live[0] = true;
      for (int o : m.ir.outputs) live[o] = true;
      for (int i = N - 1; i >= 0; --i)
        if (live[i])
          for (int p : m.ir.nodes[i].in) live[p] = true;
      std::vector<int> remap(N, -1);
      std::vector<graph::IrNode> nodes;
      for (int i = 0; i < N; ++i) {
        if (!live[i]) continue;
        remap[i] = int(nodes.size());
        graph::IrNode n = std::move(m.ir.nodes[i]);
        for (int& p : n.in) p = remap[p];
        nodes.push_back(std::move(n));
      }
      m.ir.nodes = std::move(nodes);
      for (int& o : m.ir.outputs) o = remap[o];
    }
    m.ir.validate();
    std::vector<Shape> shapes = m.ir.infer_shapes(mp_.in_shape);  // wrong weight shapes fail here
    for (size_t i = 0; i < m.ir.nodes.size(); ++i) m.ir.nodes[i].shape = shapes[i];
  } catch (const Error& e) {
    fail(one_line(e.what()));
  }

  // metadata (ours) and kind
  std::map<std::string, std::string> meta;
  for (auto& p : mp.metadata_props()) meta[p.key()] = p.value();
  auto split_f = [](const std::string& s) {
    std::vector<float> v;
    std::stringstream ss(s);
    std::string x;
    while (std::getline(ss, x, ',')) v.push_back(std::stof(x));
    return v;
  };
  try {
    if (meta.count("stride") && meta.count("anchors") && meta.count("nc") && meta.count("na")) {
      graph::IrHead h;
      h.stride = split_f(meta["stride"]);
      h.nl = int(h.stride.size());
      h.na = std::stoi(meta["na"]);
      h.nc = std::stoi(meta["nc"]);
      h.no = h.nc + 5;
      auto an = split_f(meta["anchors"]);
      Y7_CHECK(h.nl > 0 && h.na > 0 && h.nc > 0 && int64_t(an.size()) == int64_t(h.nl) * h.na * 2, "bad head metadata");
      h.anchor_grid = Tensor::from_vector(an, {h.nl, h.na, 2});
      m.head = h;
      m.nc = h.nc;
    } else {
      m.head.nl = 0;
    }
    if (meta.count("names")) {
      std::stringstream ss(meta["names"]);
      std::string x;
      while (std::getline(ss, x, ',')) m.names.push_back(x);
    }
  } catch (const std::exception& e) {
    fail("ONNX metadata: ", one_line(e.what()));
  }
  auto nm = m.output_names;
  if (nm.size() == 4 && nm[0] == "num_dets" && nm[1] == "det_boxes") m.kind = OnnxModel::Kind::TrtNms;
  else if (nm.size() == 1 && m.output_decl[0].size() == 2 && (m.output_decl[0][1] == 7)) m.kind = OnnxModel::Kind::NmsRows;
  else if (nm.size() == 1 && m.output_decl[0].size() == 3) m.kind = OnnxModel::Kind::Decoded;
  else {
    bool raw = true;
    for (auto& s : m.output_decl) raw &= s.size() == 5;
    m.kind = raw ? OnnxModel::Kind::Raw : OnnxModel::Kind::Other;
  }
  if (m.nc < 0) {
    if (m.kind == OnnxModel::Kind::Decoded && m.output_decl[0][2] > 5) m.nc = int(m.output_decl[0][2] - 5);
    if (m.kind == OnnxModel::Kind::Raw && m.output_decl[0][4] > 5) m.nc = int(m.output_decl[0][4] - 5);
  }
  if (m.names.empty() && m.nc > 0)
    for (int k = 0; k < m.nc; ++k) m.names.push_back(std::to_string(k));
  OnnxModel r;
  r.impl_ = impl;
  return r;
}

OnnxModel load_onnx(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Y7_CHECK(f.good(), "cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  try {
    return parse_onnx(bytes, dir);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

std::vector<Tensor> OnnxModel::run(const Tensor& x) const {
  NoGradGuard ng;
  const Impl& m = *impl_;
  Y7_CHECK(x.defined() && x.dtype() == DType::F32 && x.dim() == 4, "ONNX model input must be a float32 [B,C,H,W] tensor");
  for (int d = 0; d < 4; ++d)
    Y7_CHECK(m.input_shape[d] < 0 || m.input_shape[d] == x.size(d), "ONNX model input '", m.input_name, "' is ",
             shape_str(m.input_shape), ", got ", shape_str(x.sizes()));
  std::vector<Tensor> slots(size_t(m.nslots));
  for (auto& [s, t] : m.consts) slots[size_t(s)] = t;
  std::vector<Tensor> irout = m.ir.run(x);
  for (auto& [s, k] : m.ir_slots) slots[size_t(s)] = irout[size_t(k)].contiguous();
  for (const TailOp& op : m.tail) {
    std::vector<Tensor> in;
    for (int s : op.in) in.push_back(s < 0 ? Tensor() : slots[size_t(s)]);
    std::vector<Tensor> out;
    try {
      out = run_tail_op(op, in, m.opset);
    } catch (const Error& e) {
      fail("onnx node '", op.name, "' (", op.type, "): ", e.what());
    }
    Y7_CHECK(out.size() >= op.out.size() || op.type == "Split", "onnx node '", op.name, "': too few outputs");
    for (size_t k = 0; k < op.out.size() && k < out.size(); ++k)
      if (op.out[k] >= 0) slots[size_t(op.out[k])] = out[k];
  }
  std::vector<Tensor> r;
  for (int s : m.outputs) {
    Y7_CHECK(s >= 0 && slots[size_t(s)].defined(), "ONNX output not computed");
    r.push_back(slots[size_t(s)]);
  }
  return r;
}

#else  // !Y7_HAVE_ONNX

struct OnnxModel::Impl {
  graph::IrGraph ir;
  std::vector<std::string> output_names, names;
  std::string input_name;
  Shape input_shape;
  Kind kind = Kind::Other;
  graph::IrHead head;
  int nc = -1;
  std::vector<Shape> output_decl;
};
OnnxModel parse_onnx(const std::string&, const std::string&) { fail("built without ONNX support"); }
OnnxModel load_onnx(const std::string&) { fail("built without ONNX support"); }
std::vector<Tensor> OnnxModel::run(const Tensor&) const { fail("built without ONNX support"); }

#endif

const graph::IrGraph& OnnxModel::ir() const { return impl_->ir; }
int OnnxModel::num_ir_nodes() const { return int(impl_->ir.nodes.size()); }
int OnnxModel::num_tail_nodes() const {
#ifdef Y7_HAVE_ONNX
  return int(impl_->tail.size());
#else
  return 0;
#endif
}
const std::string& OnnxModel::input_name() const { return impl_->input_name; }
const Shape& OnnxModel::input_shape() const { return impl_->input_shape; }
const std::vector<std::string>& OnnxModel::output_names() const { return impl_->output_names; }
OnnxModel::Kind OnnxModel::kind() const { return impl_->kind; }
const graph::IrHead& OnnxModel::head() const { return impl_->head; }
const std::vector<std::string>& OnnxModel::names() const { return impl_->names; }
int OnnxModel::num_classes() const { return impl_->nc; }

std::vector<float> OnnxModel::strides() const {
  const Impl& m = *impl_;
  if (m.head.nl > 0) return m.head.stride;
  std::vector<float> s;
  if (m.kind == Kind::Raw && m.input_shape[2] > 0)
    for (auto& d : m.output_decl)
      if (d.size() == 5 && d[2] > 0) s.push_back(float(m.input_shape[2]) / float(d[2]));
  if (s.empty()) s = {8.f, 16.f, 32.f};
  return s;
}

bool OnnxModel::can_predict() const {
  const Impl& m = *impl_;
  return m.kind == Kind::Decoded || m.kind == Kind::NmsRows || (m.kind == Kind::Raw && m.head.nl > 0);
}

Tensor OnnxModel::predict(const Tensor& x0) const {
  const Impl& m = *impl_;
  Y7_CHECK(x0.defined() && x0.dim() == 4, "ONNX model input must be [B,C,H,W]");
  Tensor x = x0.dtype() == DType::F32 ? x0 : x0.to(DType::F32);
  Y7_CHECK(m.kind == Kind::Raw || m.kind == Kind::Decoded || m.kind == Kind::NmsRows,
           "this ONNX file's outputs (", m.output_names.size(), ": '", m.output_names[0],
           "', ...) are not detections this command can use (export with --grid, or --end2end --max-wh)");
  Y7_CHECK(m.kind != Kind::Raw || m.head.nl > 0,
           "this ONNX file has raw head outputs and no anchor metadata (export it with --grid)");
  // fixed spatial size: pad bottom/right with letterbox gray
  const Shape& is = m.input_shape;
  if ((is[2] > 0 && x.size(2) != is[2]) || (is[3] > 0 && x.size(3) != is[3])) {
    int64_t H = is[2] > 0 ? is[2] : x.size(2), W = is[3] > 0 ? is[3] : x.size(3);
    Y7_CHECK(x.size(2) <= H && x.size(3) <= W, "image ", x.size(2), "x", x.size(3),
             " is larger than the ONNX model's fixed input ", H, "x", W);
    Tensor p = Tensor::full({x.size(0), x.size(1), H, W}, 114.0 / 255.0);
    p.slice(2, 0, x.size(2)).slice(3, 0, x.size(3)).copy_(x);
    x = p;
  }
  auto one = [&](const Tensor& xb) -> Tensor {
    std::vector<Tensor> o = run(xb.contiguous());
    if (m.kind == Kind::Decoded || m.kind == Kind::NmsRows) return o.at(0);
    // Raw: [B,na,H,W,no] -> [B,na*no,H,W] -> decode
    std::vector<Tensor> maps;
    for (auto& r : o) {
      Y7_CHECK(r.dim() == 5, "raw ONNX output must be [B,na,H,W,no], got ", r.str());
      maps.push_back(r.permute({0, 1, 4, 2, 3}).contiguous().reshape({r.size(0), r.size(1) * r.size(4), r.size(2), r.size(3)}));
    }
    graph::IrGraph dec;
    dec.head = m.head;
    return dec.decode(maps);
  };
  if (is[0] > 0 && x.size(0) != is[0]) {
    Y7_CHECK(is[0] == 1, "batch ", x.size(0), " for an ONNX model with fixed batch ", is[0]);
    std::vector<Tensor> parts;
    for (int64_t b = 0; b < x.size(0); ++b) {
      Tensor r = one(x.slice(0, b, b + 1));
      if (m.kind == Kind::NmsRows && r.size(0) > 0) {
        r = r.contiguous().clone();
        for (int64_t k = 0; k < r.size(0); ++k) r.data<float>()[k * r.size(1)] = float(b);
      }
      parts.push_back(r);
    }
    return ops::concat(parts, m.kind == Kind::NmsRows ? 0 : 0).contiguous();
  }
  return one(x);
}

}  // namespace y7::io
