// graph::Model -> upstream module object tree (see export_modules.h).
#include "graph/export_modules.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>

#include "core/error.h"
#include "graph/model.h"
#include "graph/modules.h"

namespace y7::graph {

using io::PyRef;
namespace py = io::py;

namespace {

// The shortest decimal that reads back as the float (0.1f -> 0.1, as the cfg wrote it).
double nice(float v) {
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return std::strtod(buf, nullptr);
}

struct Exporter {
  const ExportOptions& opt;

  PyRef module(const std::string& mod, const std::string& cls) {
    PyRef st = py::dict();
    st->set("training", py::boolean(opt.training));
    st->set("_parameters", py::odict());
    st->set("_buffers", py::odict());
    st->set("_non_persistent_buffers_set", py::set());
    st->set("_backward_hooks", py::odict());
    st->set("_is_full_backward_hook", py::none());
    st->set("_forward_hooks", py::odict());
    st->set("_forward_pre_hooks", py::odict());
    st->set("_state_dict_hooks", py::odict());
    st->set("_load_state_dict_pre_hooks", py::odict());
    st->set("_load_state_dict_post_hooks", py::odict());
    st->set("_modules", py::odict());
    return py::object(mod, cls, st);
  }
  static PyRef attrs(const PyRef& m) { return m->state; }
  static void attr(const PyRef& m, const std::string& k, PyRef v) { m->state->set(k, std::move(v)); }
  static void child(const PyRef& m, const std::string& k, PyRef c) { m->state->get("_modules")->set(k, std::move(c)); }

  Tensor floating(const Tensor& t) {
    Y7_CHECK(t.defined(), "export: a module tensor is missing");
    return t.to(opt.dtype).contiguous();
  }
  void param(const PyRef& m, const std::string& k, const Tensor& t) {
    m->state->get("_parameters")->set(k, t.defined() ? py::tensor(floating(t), true, opt.requires_grad) : py::none());
  }
  void buffer(const PyRef& m, const std::string& k, const Tensor& t) {
    m->state->get("_buffers")->set(k, py::tensor(t));
  }

  // inplace as upstream leaves it: initialize_weights() sets True on LeakyReLU/ReLU/Hardswish.
  PyRef act(ops::Act a, float alpha) {
    using A = ops::Act;
    const std::string act_mod = "torch.nn.modules.activation";
    switch (a) {
      case A::None: return module("torch.nn.modules.linear", "Identity");
      case A::SiLU: { auto m = module(act_mod, "SiLU"); attr(m, "inplace", py::boolean(false)); return m; }
      case A::LeakyReLU: {
        auto m = module(act_mod, "LeakyReLU");
        attr(m, "negative_slope", py::real(nice(alpha)));
        attr(m, "inplace", py::boolean(true));
        return m;
      }
      case A::ReLU: { auto m = module(act_mod, "ReLU"); attr(m, "inplace", py::boolean(true)); return m; }
      case A::Hardswish: { auto m = module(act_mod, "Hardswish"); attr(m, "inplace", py::boolean(true)); return m; }
      case A::Hardsigmoid: { auto m = module(act_mod, "Hardsigmoid"); attr(m, "inplace", py::boolean(false)); return m; }
      case A::Sigmoid: return module(act_mod, "Sigmoid");
    }
    fail("export: unsupported activation");
  }

  PyRef pair(int64_t v) { return py::ints({v, v}, true); }

  PyRef conv2d(const ConvUnit& u, bool with_bias) {
    auto m = module("torch.nn.modules.conv", "Conv2d");
    param(m, "weight", u.weight);
    param(m, "bias", with_bias ? u.bias : Tensor());
    attr(m, "in_channels", py::integer(u.c1));
    attr(m, "out_channels", py::integer(u.c2));
    attr(m, "kernel_size", pair(u.k));
    attr(m, "stride", pair(u.s));
    attr(m, "padding", pair(u.p));
    attr(m, "dilation", pair(u.d));
    attr(m, "transposed", py::boolean(false));
    attr(m, "output_padding", pair(0));
    attr(m, "groups", py::integer(u.g));
    attr(m, "padding_mode", py::str("zeros"));
    attr(m, "_reversed_padding_repeated_twice", py::ints({u.p, u.p, u.p, u.p}, true));
    return m;
  }
  PyRef batchnorm(const BatchNorm& bn) {
    auto m = module("torch.nn.modules.batchnorm", "BatchNorm2d");
    param(m, "weight", bn.weight);
    param(m, "bias", bn.bias);
    buffer(m, "running_mean", floating(bn.mean));
    buffer(m, "running_var", floating(bn.var));
    Tensor nbt = bn.nbt.defined() ? bn.nbt.to(DType::F64) : Tensor::zeros({}, DType::F64);
    Tensor n = Tensor::empty(nbt.sizes(), DType::I64);
    n.data<int64_t>()[0] = nbt.numel() ? int64_t(std::llround(nbt.contiguous().data<double>()[0])) : 0;
    buffer(m, "num_batches_tracked", n);
    attr(m, "num_features", py::integer(bn.weight.numel()));
    attr(m, "eps", py::real(kBnEps));
    attr(m, "momentum", py::real(0.03));
    attr(m, "affine", py::boolean(true));
    attr(m, "track_running_stats", py::boolean(true));
    return m;
  }
  PyRef maxpool(int k, int s, int p) {
    auto m = module("torch.nn.modules.pooling", "MaxPool2d");
    attr(m, "kernel_size", py::integer(k));
    attr(m, "stride", py::integer(s));
    attr(m, "padding", py::integer(p));
    attr(m, "dilation", py::integer(1));
    attr(m, "return_indices", py::boolean(false));
    attr(m, "ceil_mode", py::boolean(false));
    return m;
  }
  // models.common.Conv (or its fused form, see the header)
  PyRef conv(const ConvUnit& u, PyRef act_module = nullptr) {
    PyRef a = act_module ? act_module : act(u.act, u.alpha);
    if (!u.has_bn) {
      auto m = module("torch.nn.modules.container", "Sequential");
      child(m, "conv", conv2d(u, true));
      child(m, "act", a);
      return m;
    }
    auto m = module("models.common", "Conv");
    child(m, "conv", conv2d(u, u.bias.defined()));
    child(m, "bn", batchnorm(u.bn));
    child(m, "act", a);
    return m;
  }
  PyRef implicit(const Tensor& t, bool mul) {
    auto m = module("models.common", mul ? "ImplicitM" : "ImplicitA");
    param(m, "implicit", t);
    attr(m, "channel", py::integer(t.numel()));
    attr(m, "mean", py::real(mul ? 1.0 : 0.0));
    attr(m, "std", py::real(0.02));
    return m;
  }
  PyRef module_list(std::vector<PyRef> items) {
    auto m = module("torch.nn.modules.container", "ModuleList");
    for (size_t i = 0; i < items.size(); ++i) child(m, std::to_string(i), items[i]);
    return m;
  }

  PyRef layer(Layer& l, PyRef shared_act = nullptr) {
    if (auto* c = dynamic_cast<ConvLayer*>(&l)) return conv(c->cv, shared_act);
    if (auto* r = dynamic_cast<RepConvLayer*>(&l)) {
      auto m = module("models.common", "RepConv");
      attr(m, "deploy", py::boolean(r->deploy));
      attr(m, "groups", py::integer(r->g));
      attr(m, "in_channels", py::integer(r->c1));
      attr(m, "out_channels", py::integer(r->c2_));
      child(m, "act", shared_act ? shared_act : act(r->act.act, r->act.alpha));
      if (r->deploy) {
        child(m, "rbr_reparam", conv2d(r->reparam, true));
      } else {
        if (r->has_identity) child(m, "rbr_identity", batchnorm(r->identity));
        else attr(m, "rbr_identity", py::none());
        auto seq = [&](const ConvUnit& u) {
          auto s = module("torch.nn.modules.container", "Sequential");
          child(s, "0", conv2d(u, false));
          child(s, "1", batchnorm(u.bn));
          return s;
        };
        child(m, "rbr_dense", seq(r->dense));
        child(m, "rbr_1x1", seq(r->one));
      }
      return m;
    }
    if (auto* p = dynamic_cast<PoolLayer*>(&l)) {
      bool mp = l.type == "models.common.MP";
      auto m = module("models.common", mp ? "MP" : "SP");
      child(m, "m", mp ? maxpool(p->k, p->k, 0) : maxpool(p->k, p->s, p->k / 2));
      return m;
    }
    if (auto* u = dynamic_cast<UpsampleLayer*>(&l)) {
      auto m = module("torch.nn.modules.upsampling", "Upsample");
      attr(m, "name", py::str("Upsample"));
      attr(m, "size", py::none());
      attr(m, "scale_factor", py::real(double(u->scale)));
      attr(m, "mode", py::str("nearest"));
      attr(m, "align_corners", py::none());
      attr(m, "recompute_scale_factor", py::none());
      return m;
    }
    if (auto* c = dynamic_cast<ConcatLayer*>(&l)) {
      auto m = module("models.common", "Concat");
      attr(m, "d", py::integer(c->dim));
      return m;
    }
    if (dynamic_cast<ShortcutLayer*>(&l)) {
      auto m = module("models.common", "Shortcut");
      int64_t d = 0;
      static const std::regex re("^\\[\\s*(-?[0-9]+).*");
      std::smatch mm;
      if (std::regex_match(l.args, mm, re)) d = std::atoll(mm[1].str().c_str());
      attr(m, "d", py::integer(d));
      return m;
    }
    if (dynamic_cast<ReOrgLayer*>(&l)) return module("models.common", "ReOrg");
    if (auto* d = dynamic_cast<DownCLayer*>(&l)) {
      auto m = module("models.common", "DownC");
      child(m, "cv1", conv(d->cv1));
      child(m, "cv2", conv(d->cv2));
      child(m, "cv3", conv(d->cv3));
      child(m, "mp", maxpool(d->k, d->k, 0));
      return m;
    }
    if (auto* s = dynamic_cast<SPPCSPCLayer*>(&l)) {
      auto m = module("models.common", "SPPCSPC");
      for (int i = 0; i < 4; ++i) child(m, "cv" + std::to_string(i + 1), conv(s->cv[i]));
      std::vector<PyRef> pools;
      for (int k : s->ks) pools.push_back(maxpool(k, 1, k / 2));
      child(m, "m", module_list(pools));
      for (int i = 4; i < 7; ++i) child(m, "cv" + std::to_string(i + 1), conv(s->cv[i]));
      return m;
    }
    if (auto* im = dynamic_cast<ImplicitLayer*>(&l)) return implicit(im->implicit, im->mul);
    if (auto* c = dynamic_cast<Conv2dLayer*>(&l)) return conv2d(c->cv, c->cv.bias.defined());
    if (auto* b = dynamic_cast<BatchNormLayer*>(&l)) return batchnorm(b->bn);
    if (auto* s = dynamic_cast<SequentialLayer*>(&l)) {
      auto m = module("torch.nn.modules.container", "Sequential");
      PyRef a;
      if (s->shared_act && !s->items.empty()) {
        if (auto* c = dynamic_cast<ConvLayer*>(s->items[0].get())) a = act(c->cv.act, c->cv.alpha);
        if (auto* r = dynamic_cast<RepConvLayer*>(s->items[0].get())) a = act(r->act.act, r->act.alpha);
      }
      for (size_t i = 0; i < s->items.size(); ++i) child(m, std::to_string(i), layer(*s->items[i], a));
      return m;
    }
    fail("export: layer ", l.index, " (", l.type, ") cannot be exported");
  }

  PyRef detect(DetectLayer& d, const PyRef& stride) {
    const char* cls = d.fused ? "Detect" : d.kind == DetectLayer::Plain ? "Detect"
                                        : d.kind == DetectLayer::Implicit ? "IDetect" : "IAuxDetect";
    auto m = module("models.yolo", cls);
    attr(m, "nc", py::integer(d.nc));
    attr(m, "no", py::integer(d.no));
    attr(m, "nl", py::integer(d.nl));
    attr(m, "na", py::integer(d.na));
    PyRef zero = py::tensor(Tensor::zeros({1}, DType::F32));
    std::vector<PyRef> grid(size_t(d.nl), zero);
    attr(m, "grid", py::list(grid));
    buffer(m, "anchors", floating(d.anchors));
    buffer(m, "anchor_grid", floating(d.anchor_grid));
    std::vector<PyRef> ms, m2s, ias, ims;
    for (auto& u : d.m) ms.push_back(conv2d(u, true));
    for (auto& u : d.m2) m2s.push_back(conv2d(u, true));
    for (auto& t : d.ia) ias.push_back(implicit(t, false));
    for (auto& t : d.im) ims.push_back(implicit(t, true));
    child(m, "m", module_list(ms));
    if (!m2s.empty()) child(m, "m2", module_list(m2s));
    if (!ias.empty()) child(m, "ia", module_list(ias));
    if (!ims.empty()) child(m, "im", module_list(ims));
    (void)stride;
    return m;
  }
};

bool is_int(const std::string& s) {
  static const std::regex re("^[-+]?(0|[1-9][0-9_]*)$");
  return std::regex_match(s, re);
}
bool is_float(const std::string& s) {
  static const std::regex re("^[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+][0-9]+)?$|^[-+]?\\.(inf|Inf|INF)$|^\\.(nan|NaN|NAN)$");
  return std::regex_match(s, re);
}

}  // namespace

PyRef yaml_to_py(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return py::none();
    case YAML::NodeType::Sequence: {
      auto l = py::list();
      for (const auto& x : n) l->items.push_back(yaml_to_py(x));
      return l;
    }
    case YAML::NodeType::Map: {
      auto d = py::dict();
      for (const auto& kv : n) d->entries.emplace_back(yaml_to_py(kv.first), yaml_to_py(kv.second));
      return d;
    }
    case YAML::NodeType::Scalar: break;
  }
  const std::string& s = n.Scalar();
  if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return py::str(s);
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return py::none();
  if (s == "true" || s == "True" || s == "TRUE") return py::boolean(true);
  if (s == "false" || s == "False" || s == "FALSE") return py::boolean(false);
  if (is_int(s)) {
    std::string t;
    for (char c : s)
      if (c != '_') t += c;
    errno = 0;
    long long v = std::strtoll(t.c_str(), nullptr, 10);
    if (errno == 0) return py::integer(v);
  }
  if (is_float(s)) {
    std::string t;
    for (char c : s)
      if (c != '_') t += c;
    if (t.find("inf") != std::string::npos || t.find("Inf") != std::string::npos || t.find("INF") != std::string::npos)
      return py::real(t[0] == '-' ? -INFINITY : INFINITY);
    if (t.find("nan") != std::string::npos || t.find("NaN") != std::string::npos || t.find("NAN") != std::string::npos)
      return py::real(NAN);
    return py::real(std::strtod(t.c_str(), nullptr));
  }
  return py::str(s);
}

PyRef export_model(const Model& model, const ExportOptions& opt) {
  Exporter ex{opt};
  PyRef stride_vals;
  {
    Tensor s = Tensor::empty({int64_t(model.stride().size())}, DType::F32);
    for (size_t i = 0; i < model.stride().size(); ++i) s.data<float>()[i] = model.stride()[i];
    stride_vals = py::tensor(s);
  }
  std::vector<LayerInfo> infos = model.layers();
  auto seq = ex.module("torch.nn.modules.container", "Sequential");
  for (int i = 0; i < model.num_layers(); ++i) {
    Layer& l = model.layer(i);
    PyRef m;
    auto* det = dynamic_cast<DetectLayer*>(&l);
    m = det ? ex.detect(*det, stride_vals) : ex.layer(l);
    Exporter::attr(m, "i", py::integer(l.index));
    if (!l.from_list && l.from.size() == 1) Exporter::attr(m, "f", py::integer(l.from[0]));
    else {
      std::vector<int64_t> f(l.from.begin(), l.from.end());
      Exporter::attr(m, "f", py::ints(f, false));
    }
    Exporter::attr(m, "type", py::str(l.type));
    Exporter::attr(m, "np", py::integer(i < int(infos.size()) ? infos[i].params : 0));
    if (det) Exporter::attr(m, "stride", stride_vals);
    Exporter::child(seq, std::to_string(i), m);
  }
  auto root = ex.module("models.yolo", "Model");
  Exporter::child(root, "model", seq);
  Exporter::attr(root, "traced", py::boolean(false));
  if (!opt.yaml_file.empty()) Exporter::attr(root, "yaml_file", py::str(opt.yaml_file));
  Exporter::attr(root, "yaml", yaml_to_py(model.yaml()));
  std::vector<int64_t> save(model.save_list().begin(), model.save_list().end());
  Exporter::attr(root, "save", py::ints(save, false));
  auto names = py::list();
  for (auto& n : model.names) names->items.push_back(py::str(n));
  Exporter::attr(root, "names", names);
  Exporter::attr(root, "stride", stride_vals);
  for (auto& [k, v] : opt.model_attrs) Exporter::attr(root, k, v);
  return root;
}

}  // namespace y7::graph
