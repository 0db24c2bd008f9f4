// Model construction from a cfg dict with upstream parse_model() semantics: depth/width
// multiples, argument evaluation, channel bookkeeping, the save list, strides and anchors.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <regex>
#include <sstream>

#include "graph/model.h"
#include "graph/modules.h"

namespace y7::graph {

namespace {

// A cfg argument after upstream's `eval(a) if isinstance(a, str) else a`.
struct Arg {
  enum Kind { None, Bool, Int, Float, Str, List, Module } kind = None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Arg> list;
  ActSpec act;

  static Arg none() { return Arg(); }
  static Arg integer(int64_t v) {
    Arg a;
    a.kind = Int, a.i = v;
    return a;
  }
  bool is_number() const { return kind == Int || kind == Float || kind == Bool; }
  double number() const { return kind == Int ? double(i) : kind == Bool ? double(b) : f; }

  std::string repr() const {
    switch (kind) {
      case None: return "None";
      case Bool: return b ? "True" : "False";
      case Int: return std::to_string(i);
      case Float: {
        char buf[64];
        for (int prec = 1; prec <= 17; ++prec) {
          std::snprintf(buf, sizeof buf, "%.*g", prec, f);
          if (std::strtod(buf, nullptr) == f) break;
        }
        std::string r = buf;
        if (r.find_first_of(".ein") == std::string::npos) r += ".0";
        return r;
      }
      case Str: return "'" + s + "'";
      case List: {
        std::string r = "[";
        for (size_t k = 0; k < list.size(); ++k) r += (k ? ", " : "") + list[k].repr();
        return r + "]";
      }
      case Module: return act.repr();
    }
    return "?";
  }
};

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool parse_int(const std::string& t, int64_t& v) {
  static const std::regex re("^[-+]?[0-9]+$");
  if (!std::regex_match(t, re)) return false;
  errno = 0;
  v = std::strtoll(t.c_str(), nullptr, 10);
  return errno == 0;
}

bool parse_float(const std::string& t, double& v, bool need_dot) {
  static const std::regex re_py("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$");
  static const std::regex re_yaml("^[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+][0-9]+)?$");
  if (!std::regex_match(t, need_dot ? re_yaml : re_py)) return false;
  v = std::strtod(t.c_str(), nullptr);
  return true;
}

struct EvalContext {
  int64_t nc;
  Arg anchors;
};

// nn.LeakyReLU(0.1), nn.SiLU(), torch.nn.ReLU(), ...
bool parse_module(const std::string& t, ActSpec& a) {
  static const std::regex re("^(torch\\.)?nn\\.([A-Za-z0-9_]+)\\((.*)\\)$");
  std::smatch mm;
  if (!std::regex_match(t, mm, re)) return false;
  std::string name = mm[2], inner = trim(mm[3]);
  auto no_args = [&]() { return inner.empty() || inner == "inplace=True" || inner == "True"; };
  if (name == "LeakyReLU") {
    a.act = ops::Act::LeakyReLU;
    a.alpha = 0.01f;
    std::string v = inner;
    size_t comma = v.find(',');
    if (comma != std::string::npos) v = trim(v.substr(0, comma));
    if (v.rfind("negative_slope=", 0) == 0) v = trim(v.substr(15));
    double d;
    if (!v.empty()) {
      if (!parse_float(v, d, false)) return false;
      a.alpha = float(d);
    }
    return true;
  }
  static const std::map<std::string, ops::Act> simple = {
      {"SiLU", ops::Act::SiLU},           {"ReLU", ops::Act::ReLU},       {"Sigmoid", ops::Act::Sigmoid},
      {"Hardswish", ops::Act::Hardswish}, {"Identity", ops::Act::None}, {"Hardsigmoid", ops::Act::Hardsigmoid}};
  auto it = simple.find(name);
  if (it == simple.end() || !(no_args() || name == "Identity")) return false;
  a.act = it->second;
  return true;
}

// Python eval() of a cfg string, for the names and literals cfgs use; anything else stays a string
// (upstream's bare `except: pass`).
Arg eval_string(const std::string& text, const EvalContext& ctx) {
  std::string t = trim(text);
  Arg a;
  int64_t iv;
  double fv;
  if (t == "None") return a;
  if (t == "True" || t == "False") {
    a.kind = Arg::Bool, a.b = (t == "True");
  } else if (parse_int(t, iv)) {
    a.kind = Arg::Int, a.i = iv;
  } else if (parse_float(t, fv, false)) {
    a.kind = Arg::Float, a.f = fv;
  } else if (t == "nc") {
    a.kind = Arg::Int, a.i = ctx.nc;
  } else if (t == "anchors") {
    a = ctx.anchors;
  } else if (parse_module(t, a.act)) {
    a.kind = Arg::Module;
  } else {
    a.kind = Arg::Str, a.s = text;
  }
  return a;
}

// A YAML value as PyYAML's safe_load gives it (YAML 1.1 scalars), strings then eval'd.
Arg from_yaml(const YAML::Node& n, const EvalContext* ctx, const std::string& what) {
  Arg a;
  if (!n.IsDefined() || n.IsNull()) return a;
  if (n.IsSequence()) {
    a.kind = Arg::List;
    for (const auto& e : n) a.list.push_back(from_yaml(e, ctx, what));
    return a;
  }
  Y7_CHECK(n.IsScalar(), what, ": unsupported value (a mapping)");
  std::string t = n.Scalar();
  if (n.Tag() != "!") {  // plain scalar: YAML 1.1 resolution
    static const std::regex re_null("^(~|null|Null|NULL|)$");
    static const std::regex re_true("^(yes|Yes|YES|true|True|TRUE|on|On|ON)$");
    static const std::regex re_false("^(no|No|NO|false|False|FALSE|off|Off|OFF)$");
    int64_t iv;
    double fv;
    if (std::regex_match(t, re_null)) return a;
    if (std::regex_match(t, re_true) || std::regex_match(t, re_false)) {
      a.kind = Arg::Bool, a.b = std::regex_match(t, re_true);
      return a;
    }
    if (parse_int(t, iv)) return Arg::integer(iv);
    if (parse_float(t, fv, true)) {
      a.kind = Arg::Float, a.f = fv;
      return a;
    }
  }
  if (!ctx) {
    a.kind = Arg::Str, a.s = t;
    return a;
  }
  return eval_string(t, *ctx);
}

bool py_is_true(const Arg& a) { return a.kind == Arg::Bool && a.b; }

std::string module_type(const std::string& m) {
  static const std::map<std::string, std::string> types = {
      {"Conv", "models.common.Conv"},
      {"RepConv", "models.common.RepConv"},
      {"MP", "models.common.MP"},
      {"SP", "models.common.SP"},
      {"SPPCSPC", "models.common.SPPCSPC"},
      {"Concat", "models.common.Concat"},
      {"DownC", "models.common.DownC"},
      {"ReOrg", "models.common.ReOrg"},
      {"Shortcut", "models.common.Shortcut"},
      {"ImplicitA", "models.common.ImplicitA"},
      {"ImplicitM", "models.common.ImplicitM"},
      {"nn.Upsample", "torch.nn.modules.upsampling.Upsample"},
      {"nn.Conv2d", "torch.nn.modules.conv.Conv2d"},
      {"nn.BatchNorm2d", "torch.nn.modules.batchnorm.BatchNorm2d"},
      {"Detect", "models.yolo.Detect"},
      {"IDetect", "models.yolo.IDetect"},
      {"IAuxDetect", "models.yolo.IAuxDetect"},
  };
  std::string key = m;
  if (key.rfind("torch.nn.", 0) == 0) key = key.substr(6);
  auto it = types.find(key);
  return it == types.end() ? "" : it->second;
}

}  // namespace

struct ModelBuilder {
  static std::unique_ptr<Model> build(const YAML::Node& cfg_in, int ch_in, int nc_override);
};

std::unique_ptr<Model> ModelBuilder::build(const YAML::Node& cfg_in, int ch_in, int nc_override) {
  Y7_CHECK(cfg_in.IsMap(), "model cfg must be a mapping");
  YAML::Node cfg = YAML::Clone(cfg_in);
  if (cfg["ch"]) {
    Arg c = from_yaml(cfg["ch"], nullptr, "cfg ch");
    Y7_CHECK(c.kind == Arg::Int && c.i > 0 && c.i < 65536, "cfg: bad ch '", c.repr(), "'");
    ch_in = int(c.i);
  } else {
    cfg["ch"] = ch_in;
  }
  Y7_CHECK(ch_in > 0, "input channels must be positive, got ", ch_in);
  for (const char* key : {"nc", "anchors", "backbone", "head", "depth_multiple", "width_multiple"})
    Y7_CHECK(cfg[key], "model cfg has no '", key, "'");
  if (nc_override > 0) cfg["nc"] = nc_override;
  Arg nca = from_yaml(cfg["nc"], nullptr, "cfg nc");
  Y7_CHECK(nca.kind == Arg::Int && nca.i > 0 && nca.i < 1000000, "cfg: bad nc '", nca.repr(), "'");
  Arg gda = from_yaml(cfg["depth_multiple"], nullptr, "cfg depth_multiple");
  Arg gwa = from_yaml(cfg["width_multiple"], nullptr, "cfg width_multiple");
  Y7_CHECK(gda.is_number() && gda.number() > 0, "cfg: bad depth_multiple '", gda.repr(), "'");
  Y7_CHECK(gwa.is_number() && gwa.number() > 0, "cfg: bad width_multiple '", gwa.repr(), "'");
  const int64_t nc = nca.i;
  const double gd = gda.number(), gw = gwa.number();
  EvalContext ctx{nc, from_yaml(cfg["anchors"], nullptr, "cfg anchors")};
  const Arg& anchors = ctx.anchors;
  int64_t na;
  if (anchors.kind == Arg::List) {
    Y7_CHECK(!anchors.list.empty() && anchors.list[0].kind == Arg::List, "cfg: anchors must be a list of lists");
    na = int64_t(anchors.list[0].list.size() / 2);
  } else {
    Y7_CHECK(anchors.kind == Arg::Int && anchors.i > 0, "cfg: bad anchors '", anchors.repr(), "'");
    na = anchors.i;
  }
  const int64_t no = na * (nc + 5);

  std::vector<YAML::Node> rows;
  for (const char* part : {"backbone", "head"}) {
    Y7_CHECK(cfg[part].IsSequence(), "cfg: '", part, "' must be a list");
    for (const auto& r : cfg[part]) rows.push_back(r);
  }
  Y7_CHECK(!rows.empty(), "cfg: no layers");

  std::unique_ptr<Model> model(new Model());
  model->ch_ = ch_in;
  model->nc_ = int(nc);
  std::vector<int64_t> ch = {ch_in};
  std::vector<int> save;
  int64_t c2 = ch_in;

  for (size_t li = 0; li < rows.size(); ++li) {
    const int i = int(li);
    const YAML::Node& row = rows[li];
    std::string where = "cfg layer " + std::to_string(i);
    Y7_CHECK(row.IsSequence() && row.size() == 4, where, ": expected [from, number, module, args]");
    // from
    std::vector<int> from;
    bool from_list = row[0].IsSequence();
    {
      Arg f = from_yaml(row[0], nullptr, where);
      auto get = [&](const Arg& a) {
        Y7_CHECK(a.kind == Arg::Int && a.i > -100000 && a.i < 100000, where, ": bad 'from' ", f.repr());
        return int(a.i);
      };
      if (from_list) {
        Y7_CHECK(!f.list.empty(), where, ": empty 'from' list");
        for (auto& e : f.list) from.push_back(get(e));
      } else {
        from.push_back(get(f));
      }
    }
    for (int f : from) {
      if (f == -1) continue;
      int a = f < 0 ? i + f : f;
      Y7_CHECK(a >= 0 && a < i, where, ": 'from' ", f, " does not name an earlier layer");
    }
    // python ch[x] indexing (negative from the end)
    auto chf = [&](int f) -> int64_t {
      int64_t idx = f < 0 ? int64_t(ch.size()) + f : f;
      Y7_CHECK(idx >= 0 && idx < int64_t(ch.size()), where, ": 'from' ", f, " out of range");
      return ch[idx];
    };
    auto single_from = [&]() {
      Y7_CHECK(!from_list || from.size() == 1, where, ": this module takes one input");
      return from[0];
    };
    // number
    Arg na_ = from_yaml(row[1], nullptr, where);
    Y7_CHECK(na_.kind == Arg::Int && na_.i >= 1 && na_.i < 10000, where, ": bad number ", na_.repr());
    int64_t n = na_.i;
    if (n > 1) {  // max(round(n * gd), 1), Python's round: half to even
      double v = double(n) * gd, r = std::floor(v), frac = v - r;
      if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1;
      Y7_CHECK(r < 10000, where, ": number ", v, " too large");
      n = std::max<int64_t>(int64_t(r), 1);
    }
    // module
    Y7_CHECK(row[2].IsScalar(), where, ": module must be a name");
    std::string mname = trim(row[2].Scalar());
    std::string type = module_type(mname);
    Y7_CHECK(!type.empty(), where, ": unsupported module '", mname, "'");
    std::string mkey = mname.rfind("torch.nn.", 0) == 0 ? mname.substr(6) : mname;
    // args
    std::vector<Arg> args;
    if (row[3].IsSequence()) {
      for (const auto& a : row[3]) args.push_back(from_yaml(a, &ctx, where));
    } else {
      Y7_CHECK(!row[3].IsDefined() || row[3].IsNull(), where, ": args must be a list");
    }
    auto arg = [&](size_t k) -> const Arg* { return k < args.size() ? &args[k] : nullptr; };
    auto int_arg = [&](size_t k, int64_t def, const char* name) -> int64_t {
      const Arg* a = arg(k);
      if (!a) return def;
      Y7_CHECK(a->kind == Arg::Int || a->kind == Arg::Bool, where, " (", mname, "): argument ", name,
               " must be an integer, got ", a->repr());
      Y7_CHECK(std::llabs(a->kind == Arg::Int ? a->i : 0) < 1000000, where, ": argument ", name, " out of range");
      return a->kind == Arg::Int ? a->i : int64_t(a->b);
    };
    auto act_arg = [&](size_t k) {
      const Arg* a = arg(k);
      ActSpec s;  // act=True default -> SiLU
      if (!a) return s;
      if (a->kind == Arg::Module) return a->act;
      if (!py_is_true(*a)) s.act = ops::Act::None;  // act is not True and not a module -> Identity
      return s;
    };
    auto pad_arg = [&](size_t k, int64_t kk) -> int64_t {
      const Arg* a = arg(k);
      if (!a || a->kind == Arg::None) return kk / 2;  // autopad
      return int_arg(k, 0, "p");
    };

    // channel bookkeeping and module construction, as parse_model
    std::function<std::unique_ptr<Layer>()> make;
    static const std::set<std::string> convlike = {"nn.Conv2d", "Conv", "RepConv", "DownC", "SPPCSPC"};
    if (convlike.count(mkey)) {
      int64_t c1 = chf(single_from());
      Y7_CHECK(!args.empty() && args[0].is_number(), where, " (", mname, "): first argument must be the output channels");
      double c2d = args[0].number();
      if (c2d != double(no)) c2d = std::ceil(c2d * gw / 8.0) * 8.0;  // make_divisible(c2 * gw, 8)
      Y7_CHECK(c2d >= 1 && c2d < 1e6, where, ": bad output channels ", c2d);
      c2 = int64_t(c2d);
      std::vector<Arg> a2 = {Arg::integer(c1), Arg::integer(c2)};
      a2.insert(a2.end(), args.begin() + 1, args.end());
      args = a2;
      if (mkey == "DownC" || mkey == "SPPCSPC") {
        args.insert(args.begin() + 2, Arg::integer(n));
        n = 1;
      }
      int c1i = int(c1), c2i = int(c2);
      if (mkey == "Conv") {
        int64_t k = int_arg(2, 1, "k"), s = int_arg(3, 1, "s"), p = pad_arg(4, k), g = int_arg(5, 1, "g");
        ActSpec act = act_arg(6);
        make = [=]() { return std::make_unique<ConvLayer>(c1i, c2i, int(k), int(s), int(p), int(g), act); };
      } else if (mkey == "RepConv") {
        int64_t k = int_arg(2, 3, "k"), s = int_arg(3, 1, "s"), p = pad_arg(4, k), g = int_arg(5, 1, "g");
        ActSpec act = act_arg(6);
        bool deploy = arg(7) && arg(7)->is_number() && arg(7)->number() != 0;
        make = [=]() {
          return std::make_unique<RepConvLayer>(c1i, c2i, int(k), int(s), int(p), int(g), act, deploy);
        };
      } else if (mkey == "DownC") {
        int64_t k = int_arg(3, 2, "k");
        Y7_CHECK(k >= 1, where, ": DownC k must be positive");
        make = [=]() { return std::make_unique<DownCLayer>(c1i, c2i, int(k)); };
      } else if (mkey == "SPPCSPC") {
        double e = 0.5;
        if (arg(5)) {
          Y7_CHECK(arg(5)->is_number(), where, ": SPPCSPC e must be a number");
          e = arg(5)->number();
        }
        std::vector<int> ks = {5, 9, 13};
        if (arg(6)) {
          Y7_CHECK(arg(6)->kind == Arg::List && !arg(6)->list.empty(), where, ": SPPCSPC k must be a list");
          ks.clear();
          for (auto& v : arg(6)->list) {
            Y7_CHECK(v.kind == Arg::Int && v.i > 0 && v.i < 1000, where, ": bad SPPCSPC kernel ", v.repr());
            ks.push_back(int(v.i));
          }
        }
        make = [=]() { return std::make_unique<SPPCSPCLayer>(c1i, c2i, e, ks); };
      } else {  // nn.Conv2d(in, out, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)
        Y7_CHECK(arg(2), where, ": nn.Conv2d needs a kernel size");
        int64_t k = int_arg(2, 1, "kernel_size"), s = int_arg(3, 1, "stride"), p = int_arg(4, 0, "padding"),
                d = int_arg(5, 1, "dilation"), g = int_arg(6, 1, "groups");
        bool bias = !arg(7) || !arg(7)->is_number() || arg(7)->number() != 0;
        make = [=]() { return std::make_unique<Conv2dLayer>(c1i, c2i, int(k), int(s), int(p), int(d), int(g), bias); };
      }
    } else if (mkey == "nn.BatchNorm2d") {
      int64_t c = chf(single_from());
      args = {Arg::integer(c)};
      // (upstream leaves c2 unchanged here)
      make = [=]() { return std::make_unique<BatchNormLayer>(int(c)); };
    } else if (mkey == "Concat") {
      c2 = 0;
      for (int f : from) c2 += chf(f);
      int64_t d = int_arg(0, 1, "dimension");
      make = [=]() { return std::make_unique<ConcatLayer>(int(d)); };
    } else if (mkey == "Shortcut") {
      Y7_CHECK(from.size() >= 2, where, ": Shortcut needs two inputs");
      c2 = chf(from[0]);
      make = [=]() { return std::make_unique<ShortcutLayer>(); };
    } else if (mkey == "Detect" || mkey == "IDetect" || mkey == "IAuxDetect") {
      Y7_CHECK(li + 1 == rows.size(), where, ": ", mname, " must be the last layer");
      std::vector<int> chs;
      Arg chl;
      chl.kind = Arg::List;
      for (int f : from) {
        chs.push_back(int(chf(f)));
        chl.list.push_back(Arg::integer(chs.back()));
      }
      Y7_CHECK(args.size() >= 2, where, ": ", mname, " needs [nc, anchors]");
      if (args[1].kind == Arg::Int) {  // number of anchors -> [list(range(2*na))] * len(f)
        Arg lvl;
        lvl.kind = Arg::List;
        for (int64_t k = 0; k < 2 * args[1].i; ++k) lvl.list.push_back(Arg::integer(k));
        Arg all;
        all.kind = Arg::List;
        all.list.assign(from.size(), lvl);
        args[1] = all;
      }
      args.push_back(chl);
      Y7_CHECK(args[0].kind == Arg::Int && args[0].i > 0, where, ": bad nc ", args[0].repr());
      int dnc = int(args[0].i);
      std::vector<std::vector<float>> anc;
      Y7_CHECK(args[1].kind == Arg::List && !args[1].list.empty(), where, ": anchors must be a list");
      for (auto& lvl : args[1].list) {
        Y7_CHECK(lvl.kind == Arg::List, where, ": anchors must be a list of lists");
        anc.emplace_back();
        for (auto& v : lvl.list) {
          Y7_CHECK(v.is_number(), where, ": anchor values must be numbers");
          anc.back().push_back(float(v.number()));
        }
      }
      DetectLayer::Kind kind = mkey == "Detect" ? DetectLayer::Plain
                               : mkey == "IDetect" ? DetectLayer::Implicit
                                                    : DetectLayer::Aux;
      make = [=]() { return std::make_unique<DetectLayer>(kind, dnc, anc, chs); };
    } else if (mkey == "ReOrg") {
      c2 = chf(single_from()) * 4;
      make = [=]() { return std::make_unique<ReOrgLayer>(); };
    } else {
      c2 = chf(single_from());
      if (mkey == "MP") {
        int64_t k = int_arg(0, 2, "k");
        Y7_CHECK(k >= 1, where, ": MP k must be positive");
        make = [=]() { return std::make_unique<PoolLayer>(int(k), int(k), 0); };
      } else if (mkey == "SP") {
        int64_t k = int_arg(0, 3, "k"), s = int_arg(1, 1, "s");
        Y7_CHECK(k >= 1 && s >= 1, where, ": bad SP arguments");
        make = [=]() { return std::make_unique<PoolLayer>(int(k), int(s), int(k / 2)); };
      } else if (mkey == "nn.Upsample") {
        Y7_CHECK(!arg(0) || arg(0)->kind == Arg::None, where, ": nn.Upsample with a fixed size is not supported");
        Y7_CHECK(arg(1) && arg(1)->is_number(), where, ": nn.Upsample needs a scale factor");
        double sf = arg(1)->number();
        Y7_CHECK(sf >= 1 && sf <= 64 && sf == std::floor(sf), where, ": nn.Upsample scale ", sf,
                 " must be a positive integer");
        Y7_CHECK(!arg(2) || (arg(2)->kind == Arg::Str && arg(2)->s == "nearest"), where,
                 ": only nn.Upsample mode 'nearest' is supported");
        make = [=]() { return std::make_unique<UpsampleLayer>(int(sf)); };
      } else if (mkey == "ImplicitA" || mkey == "ImplicitM") {
        int64_t c = int_arg(0, 0, "channel");
        bool mul = mkey == "ImplicitM";
        make = [=]() { return std::make_unique<ImplicitLayer>(int(c), mul); };
      } else {
        fail(where, ": unsupported module '", mname, "'");
      }
    }

    std::unique_ptr<Layer> layer;
    if (n > 1) {
      Y7_CHECK(mkey != "Detect" && mkey != "IDetect" && mkey != "IAuxDetect", where, ": a Detect layer cannot repeat");
      auto seq = std::make_unique<SequentialLayer>();
      for (int64_t r = 0; r < n; ++r) seq->items.push_back(make());
      seq->shared_act = (mkey == "Conv" || mkey == "RepConv") && arg(6) && arg(6)->kind == Arg::Module;
      layer = std::move(seq);
    } else {
      layer = make();
    }
    layer->index = i;
    layer->from = from;
    layer->from_list = from_list;
    layer->n = int(n);
    layer->type = type;
    {
      std::string s = "[";
      for (size_t k = 0; k < args.size(); ++k) s += (k ? ", " : "") + args[k].repr();
      layer->args = s + "]";
    }
    layer->c2 = int(c2);
    for (int f : from)
      if (f != -1) save.push_back(((f % i) + i) % i);  // python x % i
    model->layers_.push_back(std::move(layer));
    if (i == 0) ch.clear();
    ch.push_back(c2);
  }

  Y7_CHECK(dynamic_cast<DetectLayer*>(model->layers_.back().get()), "cfg: the last layer must be a Detect head");
  std::sort(save.begin(), save.end());
  model->save_list_ = save;
  model->save_.assign(model->layers_.size(), false);
  for (int s : save) model->save_[s] = true;

  // resolved inputs, liveness (what the lead detection outputs need)
  int L = int(model->layers_.size());
  model->inputs_.resize(L);
  for (int i = 0; i < L; ++i)
    for (int f : model->layers_[i]->from) model->inputs_[i].push_back(f == -1 ? i - 1 : (f < 0 ? i + f : f));
  auto* det = static_cast<DetectLayer*>(model->layers_.back().get());
  model->live_.assign(L, false);
  model->live_[L - 1] = true;
  for (int i = L - 1; i >= 0; --i) {
    if (!model->live_[i]) continue;
    size_t nin = model->inputs_[i].size();
    if (i == L - 1 && det->kind == DetectLayer::Aux) nin = size_t(det->nl);
    for (size_t k = 0; k < nin; ++k)
      if (model->inputs_[i][k] >= 0) model->live_[model->inputs_[i][k]] = true;
  }

  // strides: upstream runs a 256x256 forward and divides by each head input's height
  std::vector<Shape> shapes;
  try {
    shapes = model->infer_shapes({1, ch_in, 256, 256}, true);
  } catch (const Error& e) {
    fail("cannot build the model (shape check at 256x256): ", e.what());
  }
  std::vector<float> strides;
  for (int l = 0; l < det->nl; ++l) {
    int src = model->inputs_[L - 1][l];
    int64_t h = src < 0 ? 256 : shapes[src][2];
    strides.push_back(256.f / float(h));
  }
  det->set_stride(strides);
  model->stride_ = strides;
  model->yaml_ = cfg;
  model->names.clear();
  for (int64_t k = 0; k < nc; ++k) model->names.push_back(std::to_string(k));
  model->init_weights(0);
  return model;
}

std::unique_ptr<Model> Model::from_yaml(const YAML::Node& cfg, int ch, int nc_override) {
  return ModelBuilder::build(cfg, ch, nc_override);
}

std::unique_ptr<Model> Model::from_yaml_file(const std::string& path, int ch, int nc_override) {
  std::ifstream f(path);
  Y7_CHECK(f.good(), "cannot open model cfg '", path, "'");
  YAML::Node n;
  try {
    n = YAML::Load(f);
  } catch (const YAML::Exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    fail(path, ": ", msg);
  }
  try {
    return ModelBuilder::build(n, ch, nc_override);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  } catch (const YAML::Exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    fail(path, ": ", msg);
  }
}

}  // namespace y7::graph
