// .xmodel writer (see xmodel.h for the NNDCT structure it follows).
#include "quant/xmodel.h"

#include <cstring>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/file_util.h"
#include "quant/fixpoint.h"

#ifdef Y7_HAVE_XIR
#include <xir/attrs/attrs.hpp>
#include <xir/graph/graph.hpp>
#include <xir/op/op.hpp>
#include <xir/tensor/tensor.hpp>
#endif

namespace y7::quant {

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

std::string xmodel_op_name(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) c = '_';
  return s;
}

#ifdef Y7_HAVE_XIR

bool xmodel_supported() { return true; }

namespace {

// libxir aborts the process on any malformed op (glog FATAL), so everything is checked before an
// op is added: names unique, inputs present, attrs of the types its OpDef registers.
class Builder {
 public:
  explicit Builder(const std::string& name) : g_(xir::Graph::create(name)) {}

  xir::Op* add(const std::string& name, const std::string& type, std::unique_ptr<xir::Attrs> attrs,
               const std::map<std::string, std::vector<xir::Op*>>& inputs) {
    Y7_CHECK(!name.empty() && names_.insert(name).second, "xmodel: two ops would be named '", name,
             "' (node names that differ only in punctuation?)");
    for (const auto& [arg, ops] : inputs)
      for (xir::Op* o : ops) Y7_CHECK(o != nullptr, "xmodel: op '", name, "' has a missing '", arg, "' input");
    return g_->add_op(name, type, std::move(attrs), inputs);
  }
  xir::Op* fix(xir::Op* in, int fix_point) {
    Y7_CHECK(fix_point >= -64 && fix_point <= 64, "xmodel: fix_point ", fix_point, " of '", in->get_name(),
             "' is out of range");
    auto a = xir::Attrs::create();
    a->set_attr<int>("fix_point", fix_point);
    a->set_attr<int>("bit_width", 8);
    a->set_attr<bool>("if_signed", true);
    a->set_attr<std::string>("round_mode", "DPU_ROUND");
    return add(in->get_name() + "_fix", "fix", std::move(a), {{"input", {in}}});
  }
  xir::Op* constant(const std::string& name, const std::vector<float>& v, const std::vector<int32_t>& shape) {
    int64_t n = 1;
    for (int32_t d : shape) n *= d;
    Y7_CHECK(n == int64_t(v.size()) && n > 0, "xmodel: const '", name, "' has ", v.size(), " values for its shape");
    std::vector<char> bytes(v.size() * sizeof(float));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    auto a = xir::Attrs::create();
    a->set_attr<std::vector<int32_t>>("shape", shape);
    a->set_attr<std::string>("data_type", "FLOAT32");
    a->set_attr<std::vector<char>>("data", bytes);
    return add(name, "const", std::move(a), {});
  }
  xir::Graph& graph() { return *g_; }

 private:
  std::unique_ptr<xir::Graph> g_;
  std::set<std::string> names_;
};

std::vector<int32_t> nhwc(const Shape& s) {
  Y7_CHECK(s.size() == 4, "xmodel: expected a 4-d activation, got ", shape_str(s));
  for (int64_t d : s) Y7_CHECK(d > 0 && d < (int64_t(1) << 30), "xmodel: bad activation shape ", shape_str(s));
  return {int32_t(s[0]), int32_t(s[2]), int32_t(s[3]), int32_t(s[1])};
}

}  // namespace

void dump_xmodel(const IrGraph& g, const QuantConfig& cfg, const QuantOptions& opt, const std::string& path) {
  Y7_CHECK(!path.empty(), "xmodel: empty output path");
  Y7_CHECK(!g.nodes.empty() && g.nodes[0].op == IrOp::Input, "xmodel: the graph has no Input node");
  g.validate();
  // checks the config against the graph and quantizes the parameters exactly as 'test' mode does
  FakeQuantGraph fq(g, cfg, opt);
  const IrGraph& q = fq.graph();
  const Plan& pl = fq.plan();
  const Shape& s0 = g.nodes[0].shape;
  Y7_CHECK(s0.size() == 4 && s0[1] > 0 && s0[2] > 0 && s0[3] > 0,
           "xmodel: the graph carries no input shape (lower it at the export size)");
  const std::vector<Shape> shapes = q.infer_shapes({1, s0[1], s0[2], s0[3]});
  const int N = int(q.nodes.size());

  Builder b("Model");  // NNDCT names the graph after the module class (Model_int.xmodel)
  std::vector<xir::Op*> out(size_t(N), nullptr);  // the op carrying node i's output (its fix when it has one)
  auto in_op = [&](int i, int k) -> xir::Op* {
    const int p = q.nodes[size_t(i)].in.at(size_t(k));
    Y7_CHECK(p >= 0 && p < i && out[size_t(p)], "xmodel: node '", q.nodes[size_t(i)].name, "' has a bad input");
    return out[size_t(p)];
  };
  for (int i = 0; i < N; ++i) {
    const IrNode& n = q.nodes[size_t(i)];
    const std::string name = xmodel_op_name(n.name);
    const std::vector<int32_t> oshape = nhwc(shapes[size_t(i)]);
    xir::Op* op = nullptr;
    switch (n.op) {
      case IrOp::Input: {
        auto a = xir::Attrs::create();
        a->set_attr<std::vector<int32_t>>("shape", oshape);
        a->set_attr<std::string>("data_type", "FLOAT32");
        op = b.add(name, "data", std::move(a), {});
        break;
      }
      case IrOp::Conv: {
        Tensor w = n.weight.contiguous(), bias = n.bias.contiguous();
        Y7_CHECK(w.dtype() == DType::F32 && w.dim() == 4 && bias.defined() && bias.numel() == w.size(0),
                 "xmodel: conv '", n.name, "' has bad parameters");
        const int64_t O = w.size(0), Ig = w.size(1), kh = w.size(2), kw = w.size(3);
        const int64_t C = shapes[size_t(n.in[0])][1];
        const bool depthwise = n.groups > 1 && n.groups == C && Ig == 1;
        std::vector<float> wv(size_t(w.numel()));
        const float* src = w.data<float>();
        std::vector<int32_t> wshape;
        if (depthwise) {  // [C*m, 1, kh, kw] -> [m, kh, kw, C]
          const int64_t m = O / C;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t mm = 0; mm < m; ++mm)
              for (int64_t y = 0; y < kh; ++y)
                for (int64_t x = 0; x < kw; ++x)
                  wv[size_t(((mm * kh + y) * kw + x) * C + c)] = src[((c * m + mm) * kh + y) * kw + x];
          wshape = {int32_t(m), int32_t(kh), int32_t(kw), int32_t(C)};
        } else {  // OIHW -> OHWI
          for (int64_t o = 0; o < O; ++o)
            for (int64_t ci = 0; ci < Ig; ++ci)
              for (int64_t y = 0; y < kh; ++y)
                for (int64_t x = 0; x < kw; ++x)
                  wv[size_t(((o * kh + y) * kw + x) * Ig + ci)] = src[((o * Ig + ci) * kh + y) * kw + x];
          wshape = {int32_t(O), int32_t(kh), int32_t(kw), int32_t(Ig)};
        }
        xir::Op* wop = b.fix(b.constant(xmodel_op_name(n.name + ".weight"), wv, wshape), cfg.weight_fp(n.name));
        std::vector<float> bv(bias.data<float>(), bias.data<float>() + bias.numel());
        xir::Op* bop = b.fix(b.constant(xmodel_op_name(n.name + ".bias"), bv, {int32_t(O)}), cfg.bias_fp(n.name));
        auto a = xir::Attrs::create();
        a->set_attr<std::vector<int32_t>>("kernel", {int32_t(kw), int32_t(kh)});
        a->set_attr<std::vector<int32_t>>("stride", {n.stride, n.stride});
        a->set_attr<std::vector<int32_t>>("dilation", {n.dilation, n.dilation});
        a->set_attr<std::vector<int32_t>>("pad", {n.pad, n.pad, n.pad, n.pad});
        a->set_attr<std::string>("pad_mode", "FLOOR");
        a->set_attr<int>("group", n.groups);
        a->set_attr<bool>("bias_term", true);
        a->set_attr<int>("in_dim", int(C));
        a->set_attr<int>("out_dim", int(O));
        op = b.add(name, depthwise ? "depthwise-conv2d" : "conv2d", std::move(a),
                   {{"input", {in_op(i, 0)}}, {"weights", {wop}}, {"bias", {bop}}});
        break;
      }
      case IrOp::Act: {
        xir::Op* x = in_op(i, 0);
        switch (n.act) {
          case ops::Act::LeakyReLU: {
            auto a = xir::Attrs::create();
            a->set_attr<float>("alpha", n.alpha);
            op = b.add(name, "leaky-relu", std::move(a), {{"input", {x}}});
            break;
          }
          case ops::Act::ReLU: op = b.add(name, "relu", xir::Attrs::create(), {{"input", {x}}}); break;
          case ops::Act::Hardsigmoid:
          case ops::Act::Hardswish: {
            xir::Op* hs = b.add(name + "_i0", "hard-sigmoid", xir::Attrs::create(), {{"input", {x}}});
            xir::Op* k = b.constant(name + "_i1", {6.0f * 2731.0f / 16384.0f}, {1});
            if (n.act == ops::Act::Hardsigmoid) {
              op = b.add(name, "mul", xir::Attrs::create(), {{"input", {hs, k}}});
            } else {
              xir::Op* m = b.add(name + "_mul", "mul", xir::Attrs::create(), {{"input", {hs, k}}});
              xir::Op* mf = b.fix(m, 7);  // the hsigmoid factor at fix_point bit_width - 1
              op = b.add(name, "mul", xir::Attrs::create(), {{"input", {mf, x}}});
            }
            break;
          }
          default: fail("xmodel: node '", n.name, "' activation ", ops::act_name(n.act), " has no DPU op");
        }
        break;
      }
      case IrOp::MaxPool: {
        auto a = xir::Attrs::create();
        a->set_attr<std::vector<int32_t>>("kernel", {n.k, n.k});
        a->set_attr<std::vector<int32_t>>("stride", {n.s, n.s});
        a->set_attr<std::vector<int32_t>>("pad", {n.p, n.p, n.p, n.p});
        a->set_attr<std::string>("pad_mode", "FLOOR");
        a->set_attr<bool>("global", false);
        op = b.add(name, "maxpool2d", std::move(a), {{"input", {in_op(i, 0)}}});
        break;
      }
      case IrOp::Upsample: {
        auto a = xir::Attrs::create();
        a->set_attr<std::string>("mode", "NEAREST");
        a->set_attr<bool>("align_corners", false);
        a->set_attr<bool>("half_pixel_centers", false);
        a->set_attr<std::vector<float>>("scale", {float(n.scale), float(n.scale)});
        op = b.add(name, "resize", std::move(a), {{"input", {in_op(i, 0)}}});
        break;
      }
      case IrOp::Concat: {
        static const int kNhwcAxis[4] = {0, 3, 1, 2};
        Y7_CHECK(n.axis >= 0 && n.axis < 4 && !n.in.empty(), "xmodel: concat '", n.name, "' has a bad axis");
        std::vector<xir::Op*> ins;
        for (size_t k = 0; k < n.in.size(); ++k) ins.push_back(in_op(i, int(k)));
        auto a = xir::Attrs::create();
        a->set_attr<int>("axis", kNhwcAxis[n.axis]);
        op = b.add(name, "concat", std::move(a), {{"input", ins}});
        break;
      }
      case IrOp::Add: {
        Y7_CHECK(n.in.size() == 2, "xmodel: add '", n.name, "' needs two inputs");
        op = b.add(name, "add", xir::Attrs::create(), {{"input", {in_op(i, 0), in_op(i, 1)}}});
        break;
      }
      default: fail("xmodel: node '", n.name, "' (", graph::ir_op_name(n.op), ") has no DPU op");
    }
    const auto got = op->get_output_tensor()->get_shape();
    Y7_CHECK(got == oshape, "xmodel: op '", name, "' has XIR shape ", shape_str(Shape(got.begin(), got.end())),
             ", expected ", shape_str(Shape(oshape.begin(), oshape.end())));
    out[size_t(i)] = pl.has_fix[size_t(i)] ? b.fix(op, cfg.output_fp(n.name)) : op;
  }
  std::string bytes;
  b.graph().serialize_to_string(&bytes);
  io::write_file_atomic(path, bytes.data(), bytes.size());
}

#else

bool xmodel_supported() { return false; }

void dump_xmodel(const IrGraph&, const QuantConfig&, const QuantOptions&, const std::string&) {
  fail("xmodel: built without XIR support (libxir-dev)");
}

#endif

}  // namespace y7::quant
