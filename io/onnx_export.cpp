#include "io/onnx_export.h"

#include <cstring>
#include <limits>
#include <set>
#include <sstream>

#include "graph/ir.h"

#ifdef Y7_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#endif

namespace y7::io {

#ifdef Y7_HAVE_ONNX
namespace {

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

// "model.51.cv1.conv" -> "/model.51/cv1/conv" (torch.onnx's scope names; "m.0" kept together)
std::string scope_of(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  std::string p;
  while (std::getline(ss, p, '.')) parts.push_back(p);
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    bool num = !parts[i].empty() && std::isdigit(static_cast<unsigned char>(parts[i][0]));
    if (i == 0 || num)
      s += (i == 0 ? "/" : ".") + parts[i];
    else
      s += "/" + parts[i];
  }
  return s;
}

struct Builder {
  onnx::GraphProto* g;
  int opset;
  std::set<std::string> used;

  std::string unique(const std::string& n) {
    std::string s = n;
    for (int k = 1; used.count(s); ++k) s = n + "_" + std::to_string(k);
    used.insert(s);
    return s;
  }
  std::string tensor(const std::string& name, const Tensor& t) {
    std::string n = unique(name);
    onnx::TensorProto* tp = g->add_initializer();
    tp->set_name(n);
    for (int64_t d : t.sizes()) tp->add_dims(d);
    Tensor c = t.contiguous();
    if (c.dtype() == DType::F32) {
      tp->set_data_type(onnx::TensorProto::FLOAT);
    } else if (c.dtype() == DType::I64) {
      tp->set_data_type(onnx::TensorProto::INT64);
    } else {
      fail("onnx export: unsupported constant dtype ", dtype_name(c.dtype()));
    }
    tp->set_raw_data(std::string(static_cast<const char*>(c.raw_data()), c.nbytes()));
    return n;
  }
  std::string ints(const std::string& name, const std::vector<int64_t>& v) {
    return tensor(name, Tensor::from_vector(v, {int64_t(v.size())}));
  }
  std::string floats(const std::string& name, const std::vector<float>& v, const Shape& s) {
    return tensor(name, Tensor::from_vector(v, s));
  }
  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& in,
                        const std::vector<std::string>& out, const std::string& domain = "") {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    if (!domain.empty()) n->set_domain(domain);
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  // a node with one fresh output "<name>_output_0"; returns the output name
  std::string op1(const std::string& op, const std::string& name, const std::vector<std::string>& in,
                  onnx::NodeProto** np = nullptr) {
    std::string nn = unique(name);
    std::string out = nn + "_output_0";
    auto* n = node(op, nn, in, {out});
    if (np) *np = n;
    return out;
  }
  static void attr(onnx::NodeProto* n, const std::string& k, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& k, float v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& k, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& k, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  std::string unsqueeze(const std::string& name, const std::string& x, int64_t axis) {
    onnx::NodeProto* n;
    if (opset >= 13) return op1("Unsqueeze", name, {x, ints(name + "_axes", {axis})});
    std::string o = op1("Unsqueeze", name, {x}, &n);
    attr(n, "axes", std::vector<int64_t>{axis});
    return o;
  }
};

void set_type(onnx::ValueInfoProto* v, const std::string& name, int elem, const Shape& s,
              const std::vector<std::string>& params = {}) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* sh = tt->mutable_shape();
  for (size_t i = 0; i < s.size(); ++i) {
    auto* d = sh->add_dim();
    if (i < params.size() && !params[i].empty())
      d->set_dim_param(params[i]);
    else if (s[i] >= 0)
      d->set_dim_value(s[i]);
    else
      d->set_dim_param("unk_" + std::to_string(i));
  }
}

// the activation of an Act node; returns the output value name
std::string emit_act(Builder& b, const IrNode& n, const std::string& x) {
  std::string sc = scope_of(n.name);
  onnx::NodeProto* p;
  switch (n.act) {
    case ops::Act::SiLU: {
      std::string s = b.op1("Sigmoid", sc + "/Sigmoid", {x});
      return b.op1("Mul", sc + "/Mul", {x, s});
    }
    case ops::Act::LeakyReLU: {
      std::string o = b.op1("LeakyRelu", sc + "/LeakyRelu", {x}, &p);
      Builder::attr(p, "alpha", n.alpha);
      return o;
    }
    case ops::Act::ReLU: return b.op1("Relu", sc + "/Relu", {x});
    case ops::Act::Sigmoid: return b.op1("Sigmoid", sc + "/Sigmoid", {x});
    case ops::Act::Hardsigmoid:
    case ops::Act::Hardswish: {
      std::string o = b.op1("HardSigmoid", sc + "/HardSigmoid", {x}, &p);
      Builder::attr(p, "alpha", 1.f / 6.f);
      Builder::attr(p, "beta", 0.5f);
      if (n.act == ops::Act::Hardsigmoid) return o;
      return b.op1("Mul", sc + "/Mul", {x, o});
    }
    case ops::Act::None: break;
  }
  fail("onnx export: node '", n.name, "' has no activation");
}

}  // namespace

std::string onnx_export(const graph::IrGraph& g, const OnnxExportOptions& opt, std::vector<OnnxOutputInfo>* outs) {
  g.validate();
  Y7_CHECK(opt.opset >= 11 && opt.opset <= 17, "onnx export: --opset ", opt.opset, " not supported (11..17)");
  Y7_CHECK(g.head.nl > 0 && int(g.outputs.size()) == g.head.nl, "onnx export: the graph has no detect head");
  const Shape& in = g.nodes[0].shape;
  Y7_CHECK(in.size() == 4, "onnx export: the graph was lowered without an input shape");
  Y7_CHECK(opt.topk_all > 0, "onnx export: --topk-all must be positive");
  std::vector<Shape> shapes = g.infer_shapes(in);
  const bool grid = opt.grid || opt.end2end || opt.include_nms;
  const int64_t B = in[0];
  const int64_t rb = opt.dynamic_batch ? 0 : B;  // batch in Reshape targets (0: copy the input dim)

  onnx::ModelProto m;
  m.set_ir_version(opt.opset >= 15 ? 8 : 7);
  m.set_producer_name("yolo7.cpp");
  m.set_producer_version("0.1.0");
  auto* os = m.add_opset_import();
  os->set_domain("");
  os->set_version(opt.opset);
  Builder b{m.mutable_graph(), opt.opset, {}};
  onnx::GraphProto* gp = m.mutable_graph();
  gp->set_name("main_graph");
  const std::vector<std::string> bparam = {opt.dynamic_batch ? "batch" : ""};
  set_type(gp->add_input(), "images", onnx::TensorProto::FLOAT, in, bparam);
  b.used.insert("images");

  std::vector<std::string> val(g.nodes.size());
  val[0] = "images";
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const IrNode& n = g.nodes[i];
    std::string sc = scope_of(n.name);
    auto x = [&](int k) { return val[n.in[k]]; };
    onnx::NodeProto* p = nullptr;
    switch (n.op) {
      case IrOp::Input: fail("onnx export: a second Input node");
      case IrOp::Conv: {
        std::string w = b.tensor(n.name + ".weight", n.weight), bi = b.tensor(n.name + ".bias", n.bias);
        val[i] = b.op1("Conv", sc + "/Conv", {x(0), w, bi}, &p);
        Builder::attr(p, "dilations", std::vector<int64_t>{n.dilation, n.dilation});
        Builder::attr(p, "group", int64_t(n.groups));
        Builder::attr(p, "kernel_shape", std::vector<int64_t>{n.weight.size(2), n.weight.size(3)});
        Builder::attr(p, "pads", std::vector<int64_t>{n.pad, n.pad, n.pad, n.pad});
        Builder::attr(p, "strides", std::vector<int64_t>{n.stride, n.stride});
        break;
      }
      case IrOp::Act: val[i] = emit_act(b, n, x(0)); break;
      case IrOp::MaxPool:
        val[i] = b.op1("MaxPool", sc + "/MaxPool", {x(0)}, &p);
        Builder::attr(p, "ceil_mode", int64_t(0));
        Builder::attr(p, "kernel_shape", std::vector<int64_t>{n.k, n.k});
        Builder::attr(p, "pads", std::vector<int64_t>{n.p, n.p, n.p, n.p});
        Builder::attr(p, "strides", std::vector<int64_t>{n.s, n.s});
        break;
      case IrOp::Upsample: {
        std::string roi = b.floats(sc.substr(1) + "/roi", {}, {0});
        std::string scales = b.floats(sc.substr(1) + "/scales", {1.f, 1.f, float(n.scale), float(n.scale)}, {4});
        val[i] = b.op1("Resize", sc + "/Resize", {x(0), roi, scales}, &p);
        Builder::attr(p, "coordinate_transformation_mode", std::string("asymmetric"));
        Builder::attr(p, "cubic_coeff_a", -0.75f);
        Builder::attr(p, "mode", std::string("nearest"));
        Builder::attr(p, "nearest_mode", std::string("floor"));
        break;
      }
      case IrOp::Concat: {
        std::vector<std::string> xs;
        for (int k : n.in) xs.push_back(val[k]);
        val[i] = b.op1("Concat", sc + "/Concat", xs, &p);
        Builder::attr(p, "axis", int64_t(n.axis));
        break;
      }
      case IrOp::Add:
      case IrOp::Mul: {
        std::string other = n.weight.defined() ? b.tensor(n.name.size() > 6 && (n.name.ends_with(".scale") || n.name.ends_with(".shift")) ? n.name : n.name + ".implicit", n.weight)
                                               : x(1);
        val[i] = b.op1(n.op == IrOp::Add ? "Add" : "Mul", sc + (n.op == IrOp::Add ? "/Add" : "/Mul"), {x(0), other});
        break;
      }
      case IrOp::ReOrg: {
        // x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2] (H, W starts)
        const int64_t big = std::numeric_limits<int64_t>::max();
        std::string axes = b.ints(sc.substr(1) + "/axes", {2, 3}), steps = b.ints(sc.substr(1) + "/steps", {2, 2});
        std::string ends = b.ints(sc.substr(1) + "/ends", {big, big});
        std::vector<std::string> parts;
        const int64_t st[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
        for (int k = 0; k < 4; ++k) {
          std::string starts = b.ints(sc.substr(1) + "/starts", {st[k][0], st[k][1]});
          parts.push_back(b.op1("Slice", sc + "/Slice", {x(0), starts, ends, axes, steps}));
        }
        val[i] = b.op1("Concat", sc + "/Concat", parts, &p);
        Builder::attr(p, "axis", int64_t(1));
        break;
      }
    }
  }

  // ---- Detect head
  const auto& h = g.head;
  const int na = h.na, no = h.no, nc = h.nc, nl = h.nl;
  std::string dsc = "/model." + std::to_string(999);
  {
    // scope of the head: the lead conv names are "model.<L>.m.<i>"
    const std::string& cn = g.nodes[g.outputs[0]].name;
    size_t dot = cn.find(".m.");
    dsc = "/" + (dot == std::string::npos ? std::string("detect") : cn.substr(0, dot));
  }
  std::vector<OnnxOutputInfo> info;
  std::vector<std::string> levels, z;
  int64_t N = 0;
  Tensor ag = h.anchor_grid.contiguous();
  for (int l = 0; l < nl; ++l) {
    const Shape& cs = shapes[g.outputs[l]];
    int64_t ny = cs[2], nx = cs[3];
    onnx::NodeProto* p;
    std::string r = b.op1("Reshape", dsc + "/Reshape", {val[g.outputs[l]], b.ints(dsc.substr(1) + "/shape", {rb, na, no, ny, nx})});
    std::string t = b.op1("Transpose", dsc + "/Transpose", {r}, &p);
    Builder::attr(p, "perm", std::vector<int64_t>{0, 1, 3, 4, 2});
    levels.push_back(t);
    N += int64_t(na) * ny * nx;
    if (!grid) continue;
    std::string y = b.op1("Sigmoid", dsc + "/Sigmoid", {t});
    std::string sxy = b.unique(dsc + "/Split"), o0 = sxy + "_output_0", o1 = sxy + "_output_1", o2 = sxy + "_output_2";
    onnx::NodeProto* sp;
    if (opt.opset >= 13) {
      sp = b.node("Split", sxy, {y, b.ints(dsc.substr(1) + "/split", {2, 2, nc + 1})}, {o0, o1, o2});
    } else {
      sp = b.node("Split", sxy, {y}, {o0, o1, o2});
      Builder::attr(sp, "split", std::vector<int64_t>{2, 2, int64_t(nc) + 1});
    }
    Builder::attr(sp, "axis", int64_t(4));
    float s = h.stride[l];
    // xy * (2*stride) + stride * (grid - 0.5)
    std::vector<float> gv(size_t(ny * nx * 2));
    for (int64_t yy = 0; yy < ny; ++yy)
      for (int64_t xx = 0; xx < nx; ++xx) {
        gv[size_t((yy * nx + xx) * 2)] = s * (float(xx) - 0.5f);
        gv[size_t((yy * nx + xx) * 2 + 1)] = s * (float(yy) - 0.5f);
      }
    std::string xy = b.op1("Mul", dsc + "/Mul", {o0, b.floats(dsc.substr(1) + "/two_stride", {2.f * s}, {})});
    xy = b.op1("Add", dsc + "/Add", {xy, b.floats(dsc.substr(1) + "/grid", gv, {1, 1, ny, nx, 2})});
    // wh ** 2 * (4 * anchor_grid)
    std::vector<float> av(size_t(na * 2));
    for (int a = 0; a < na * 2; ++a) av[size_t(a)] = 4.f * ag.data<float>()[l * na * 2 + a];
    std::string wh = b.op1("Pow", dsc + "/Pow", {o1, b.floats(dsc.substr(1) + "/two", {2.f}, {})});
    wh = b.op1("Mul", dsc + "/Mul", {wh, b.floats(dsc.substr(1) + "/anchor_grid4", av, {1, na, 1, 1, 2})});
    std::string cat = b.op1("Concat", dsc + "/Concat", {xy, wh, o2}, &p);
    Builder::attr(p, "axis", int64_t(4));
    z.push_back(b.op1("Reshape", dsc + "/Reshape", {cat, b.ints(dsc.substr(1) + "/shape", {rb, -1, no})}));
  }
  auto add_out = [&](const std::string& value, const std::string& name, int elem, const Shape& s,
                     const std::vector<std::string>& params) {
    // rename the producing node's output to the graph output name
    for (auto& nd : *gp->mutable_node())
      for (auto& o : *nd.mutable_output())
        if (o == value) o = name;
    for (auto& nd : *gp->mutable_node())
      for (auto& i : *nd.mutable_input())
        if (i == value) i = name;
    set_type(gp->add_output(), name, elem, s, params);
    Shape sh = s;
    for (size_t k = 0; k < params.size() && k < sh.size(); ++k)
      if (!params[k].empty()) sh[k] = -1;
    info.push_back({name, sh});
  };
  const int64_t ob = opt.dynamic_batch ? -1 : B;
  if (!grid) {
    for (int l = 0; l < nl; ++l) {
      const Shape& cs = shapes[g.outputs[l]];
      add_out(levels[l], l == 0 ? "output" : "output" + std::to_string(l), onnx::TensorProto::FLOAT,
              {B, na, cs[2], cs[3], no}, bparam);
    }
  } else {
    onnx::NodeProto* p;
    std::string pred = z[0];
    if (nl > 1) {
      pred = b.op1("Concat", dsc + "/Concat", z, &p);
      Builder::attr(p, "axis", int64_t(1));
    }
    const std::string e = "/end2end";
    auto slice = [&](const std::string& x, int64_t s0, int64_t e0) {
      return b.op1("Slice", e + "/Slice",
                   {x, b.ints("end2end/starts", {s0}), b.ints("end2end/ends", {e0}), b.ints("end2end/axes", {2}),
                    b.ints("end2end/steps", {1})});
    };
    if (!opt.end2end && !opt.include_nms) {
      add_out(pred, "output", onnx::TensorProto::FLOAT, {B, N, no}, bparam);
    } else {
      std::string boxes = slice(pred, 0, 4), conf = slice(pred, 4, 5);
      std::string scores = nc == 1 ? conf : b.op1("Mul", e + "/Mul", {slice(pred, 5, no), conf});
      const bool ort = opt.end2end && opt.max_wh >= 0;
      if (ort || opt.include_nms) {
        // boxes @ [[1,0,1,0],[0,1,0,1],[-0.5,0,0.5,0],[0,-0.5,0,0.5]]: xywh -> xyxy
        boxes = b.op1("MatMul", e + "/MatMul",
                      {boxes, b.floats("end2end/convert_matrix",
                                       {1, 0, 1, 0, 0, 1, 0, 1, -0.5f, 0, 0.5f, 0, 0, -0.5f, 0, 0.5f}, {4, 4})});
      }
      if (ort) {
        std::string mx = b.op1("ReduceMax", e + "/ReduceMax", {scores}, &p);
        Builder::attr(p, "axes", std::vector<int64_t>{2});
        Builder::attr(p, "keepdims", int64_t(1));
        std::string am = b.op1("ArgMax", e + "/ArgMax", {scores}, &p);
        Builder::attr(p, "axis", int64_t(2));
        Builder::attr(p, "keepdims", int64_t(1));
        std::string cf = b.op1("Cast", e + "/Cast", {am}, &p);
        Builder::attr(p, "to", int64_t(onnx::TensorProto::FLOAT));
        std::string dis = b.op1("Mul", e + "/Mul", {cf, b.floats("end2end/max_wh", {float(opt.max_wh)}, {})});
        std::string nmsbox = b.op1("Add", e + "/Add", {boxes, dis});
        std::string mt = b.op1("Transpose", e + "/Transpose", {mx}, &p);
        Builder::attr(p, "perm", std::vector<int64_t>{0, 2, 1});
        std::string sel = b.op1("NonMaxSuppression", e + "/NonMaxSuppression",
                                {nmsbox, mt, b.ints("end2end/max_output_boxes_per_class", {opt.topk_all}),
                                 b.floats("end2end/iou_threshold", {opt.iou_thres}, {1}),
                                 b.floats("end2end/score_threshold", {opt.conf_thres}, {1})});
        std::string X = b.op1("Gather", e + "/Gather", {sel, b.ints("end2end/i0", {0})}, &p);
        Builder::attr(p, "axis", int64_t(1));
        std::string Y = b.op1("Gather", e + "/Gather", {sel, b.ints("end2end/i2", {2})}, &p);
        Builder::attr(p, "axis", int64_t(1));
        std::string idx = b.op1("Concat", e + "/Concat", {X, Y}, &p);  // [n,2]
        Builder::attr(p, "axis", int64_t(1));
        std::string sb = b.op1("GatherND", e + "/GatherND", {boxes, idx});
        std::string scat = b.op1("GatherND", e + "/GatherND", {cf, idx});
        std::string ssc = b.op1("GatherND", e + "/GatherND", {mx, idx});
        std::string xf = b.op1("Cast", e + "/Cast", {X}, &p);
        Builder::attr(p, "to", int64_t(onnx::TensorProto::FLOAT));
        std::string out = b.op1("Concat", e + "/Concat", {xf, sb, scat, ssc}, &p);
        Builder::attr(p, "axis", int64_t(1));
        add_out(out, "output", onnx::TensorProto::FLOAT, {-1, 7}, {"num_selected"});
      } else {
        // TensorRT EfficientNMS plugin (upstream ONNX_TRT / RegisterNMS)
        auto* os2 = m.add_opset_import();
        os2->set_domain("TRT");
        os2->set_version(1);
        auto* n = b.node("EfficientNMS_TRT", b.unique(opt.include_nms ? "batched_nms" : e + "/TRT_NMS"),
                         {boxes, scores}, {"num_dets", "det_boxes", "det_scores", "det_classes"}, "TRT");
        Builder::attr(n, "background_class", int64_t(-1));
        Builder::attr(n, "box_coding", int64_t(opt.include_nms ? 0 : 1));
        Builder::attr(n, "iou_threshold", opt.iou_thres);
        Builder::attr(n, "max_output_boxes", int64_t(opt.topk_all));
        Builder::attr(n, "plugin_version", std::string("1"));
        Builder::attr(n, "score_activation", int64_t(0));
        Builder::attr(n, "score_threshold", opt.conf_thres);
        int64_t k = opt.topk_all;
        set_type(gp->add_output(), "num_dets", onnx::TensorProto::INT32, {B, 1}, bparam);
        set_type(gp->add_output(), "det_boxes", onnx::TensorProto::FLOAT, {B, k, 4}, bparam);
        set_type(gp->add_output(), "det_scores", onnx::TensorProto::FLOAT, {B, k}, bparam);
        set_type(gp->add_output(), "det_classes", onnx::TensorProto::INT32, {B, k}, bparam);
        info.push_back({"num_dets", {ob, 1}});
        info.push_back({"det_boxes", {ob, k, 4}});
        info.push_back({"det_scores", {ob, k}});
        info.push_back({"det_classes", {ob, k}});
      }
    }
  }

  // metadata for runtimes that decode raw outputs
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = m.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  std::ostringstream st, an, nm;
  for (int l = 0; l < nl; ++l) st << (l ? "," : "") << h.stride[l];
  for (int64_t k = 0; k < ag.numel(); ++k) an << (k ? "," : "") << ag.data<float>()[k];
  for (size_t k = 0; k < g.names.size(); ++k) nm << (k ? "," : "") << g.names[k];
  meta("stride", st.str());
  meta("anchors", an.str());
  meta("nc", std::to_string(nc));
  meta("na", std::to_string(na));
  meta("names", nm.str());
  if (outs) *outs = info;
  std::string bytes;
  Y7_CHECK(m.SerializeToString(&bytes), "onnx export: serialization failed");
  return bytes;
}

std::vector<OnnxOutputInfo> onnx_check(const std::string& bytes) {
  onnx::ModelProto m;
  Y7_CHECK(m.ParseFromString(bytes), "onnx check: not a valid ONNX protobuf");
  try {
    onnx::checker::check_model(m);
    onnx::ShapeInferenceOptions so(true, 1, false);
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), so);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n' || c == '\r') c = ' ';
    fail("onnx check: ", msg);
  }
  std::vector<OnnxOutputInfo> r;
  for (auto& o : m.graph().output()) {
    OnnxOutputInfo i{o.name(), {}};
    if (o.type().has_tensor_type() && o.type().tensor_type().has_shape())
      for (auto& d : o.type().tensor_type().shape().dim()) i.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    r.push_back(i);
  }
  return r;
}

#else  // !Y7_HAVE_ONNX

std::string onnx_export(const graph::IrGraph&, const OnnxExportOptions&, std::vector<OnnxOutputInfo>*) {
  fail("built without ONNX support");
}
std::vector<OnnxOutputInfo> onnx_check(const std::string&) { fail("built without ONNX support"); }

#endif

}  // namespace y7::io
