#include "graph/ir.h"

#include <map>
#include <mutex>
#include <set>

#include "core/autograd.h"
#include "graph/model.h"
#include "graph/modules.h"

namespace y7::graph {

const char* ir_op_name(IrOp op) {
  switch (op) {
    case IrOp::Input: return "Input";
    case IrOp::Conv: return "Conv";
    case IrOp::Act: return "Act";
    case IrOp::MaxPool: return "MaxPool";
    case IrOp::Upsample: return "Upsample";
    case IrOp::Concat: return "Concat";
    case IrOp::Add: return "Add";
    case IrOp::Mul: return "Mul";
    case IrOp::ReOrg: return "ReOrg";
  }
  return "?";
}

// One oneDNN primitive cache per Conv node, shared by copies of the graph (the cache notices a
// different weight tensor and rebuilds; it has its own lock).
struct IrGraph::Caches {
  std::mutex m;
  std::vector<std::unique_ptr<ops::ConvCache>> conv;
};

namespace {

// ---------------------------------------------------------------- lowering

struct Lowerer {
  IrGraph g;
  std::set<std::string> used;

  int add(IrNode n) {
    std::string base = n.name;
    for (int k = 1; used.count(n.name); ++k) n.name = base + "_" + std::to_string(k);
    used.insert(n.name);
    g.nodes.push_back(std::move(n));
    return int(g.nodes.size()) - 1;
  }

  // A ConvUnit: Conv node (+ Act node). prefix ends with '.'.
  int conv(ConvUnit& u, const std::string& prefix, int x) {
    Y7_CHECK(!u.has_bn, "lower: ", prefix, u.wname, " still has a BatchNorm (model not fused)");
    std::string nm = prefix + u.wname;
    const std::string w = "weight";
    if (nm.size() >= w.size() && nm.compare(nm.size() - w.size(), w.size(), w) == 0) nm.resize(nm.size() - w.size());
    while (!nm.empty() && nm.back() == '.') nm.pop_back();
    IrNode n;
    n.op = IrOp::Conv;
    n.name = nm;
    n.in = {x};
    n.weight = u.weight.contiguous().clone();
    n.bias = u.bias.defined() ? u.bias.contiguous().clone() : Tensor::zeros({u.c2});
    n.stride = u.s, n.pad = u.p, n.dilation = u.d, n.groups = u.g;
    int c = add(std::move(n));
    if (u.act == ops::Act::None) return c;
    IrNode a;
    a.op = IrOp::Act;
    const std::string cs = ".conv";
    if (nm.size() > cs.size() && nm.compare(nm.size() - cs.size(), cs.size(), cs) == 0)
      a.name = nm.substr(0, nm.size() - cs.size()) + ".act";
    else
      a.name = prefix + "act";
    a.in = {c};
    a.act = u.act, a.alpha = u.alpha;
    return add(std::move(a));
  }

  int simple(IrOp op, const std::string& name, std::vector<int> in) {
    IrNode n;
    n.op = op;
    n.name = name;
    n.in = std::move(in);
    return add(std::move(n));
  }

  int pool(const std::string& name, int x, int k, int s, int p) {
    IrNode n;
    n.op = IrOp::MaxPool;
    n.name = name;
    n.in = {x};
    n.k = k, n.s = s, n.p = p;
    return add(std::move(n));
  }

  int constant(IrOp op, const std::string& name, int x, Tensor c) {
    IrNode n;
    n.op = op;
    n.name = name;
    n.in = {x};
    n.weight = std::move(c);
    return add(std::move(n));
  }

  // One layer (or Sequential item); prefix "model.<i>." (with the trailing dot).
  int layer(Layer& L, const std::string& prefix, const std::vector<int>& in) {
    const std::string self = prefix.substr(0, prefix.size() - 1);
    auto one = [&]() {
      Y7_CHECK(in.size() == 1, "lower: ", self, " (", L.type, ") expects 1 input, got ", in.size());
      return in[0];
    };
    if (auto* c = dynamic_cast<ConvLayer*>(&L)) return conv(c->cv, prefix, one());
    if (auto* r = dynamic_cast<RepConvLayer*>(&L)) {
      Y7_CHECK(r->deploy, "lower: ", self, " RepConv is not re-parameterized (model not fused)");
      return conv(r->reparam, prefix, one());
    }
    if (auto* c = dynamic_cast<Conv2dLayer*>(&L)) return conv(c->cv, prefix, one());
    if (auto* p = dynamic_cast<PoolLayer*>(&L)) return pool(self, one(), p->k, p->s, p->p);
    if (auto* u = dynamic_cast<UpsampleLayer*>(&L)) {
      IrNode n;
      n.op = IrOp::Upsample;
      n.name = self;
      n.in = {one()};
      n.scale = u->scale;
      return add(std::move(n));
    }
    if (auto* c = dynamic_cast<ConcatLayer*>(&L)) {
      IrNode n;
      n.op = IrOp::Concat;
      n.name = self;
      n.in = in;
      n.axis = c->dim < 0 ? c->dim + 4 : c->dim;
      Y7_CHECK(n.axis >= 0 && n.axis < 4, "lower: ", self, " Concat dimension ", c->dim);
      return add(std::move(n));
    }
    if (dynamic_cast<ShortcutLayer*>(&L)) {
      Y7_CHECK(in.size() >= 2, "lower: ", self, " Shortcut needs 2 inputs");
      return simple(IrOp::Add, self, {in[0], in[1]});
    }
    if (dynamic_cast<ReOrgLayer*>(&L)) return simple(IrOp::ReOrg, self, {one()});
    if (auto* d = dynamic_cast<DownCLayer*>(&L)) {
      int x = one();
      int a = conv(d->cv2, prefix, conv(d->cv1, prefix, x));
      int b = conv(d->cv3, prefix, pool(prefix + "mp", x, d->k, d->k, 0));
      IrNode n;
      n.op = IrOp::Concat;
      n.name = prefix + "cat";
      n.in = {a, b};
      return add(std::move(n));
    }
    if (auto* s = dynamic_cast<SPPCSPCLayer*>(&L)) {
      int x = one();
      int x1 = conv(s->cv[3], prefix, conv(s->cv[2], prefix, conv(s->cv[0], prefix, x)));
      std::vector<int> parts{x1};
      for (size_t i = 0; i < s->ks.size(); ++i)
        parts.push_back(pool(prefix + "m." + std::to_string(i), x1, s->ks[i], 1, s->ks[i] / 2));
      IrNode c1;
      c1.op = IrOp::Concat;
      c1.name = prefix + "cat1";
      c1.in = parts;
      int cat1 = add(std::move(c1));
      int y1 = conv(s->cv[5], prefix, conv(s->cv[4], prefix, cat1));
      int y2 = conv(s->cv[1], prefix, x);
      IrNode c2;
      c2.op = IrOp::Concat;
      c2.name = prefix + "cat2";
      c2.in = {y1, y2};
      return conv(s->cv[6], prefix, add(std::move(c2)));
    }
    if (auto* im = dynamic_cast<ImplicitLayer*>(&L))
      return constant(im->mul ? IrOp::Mul : IrOp::Add, self, one(), im->implicit.contiguous().clone());
    if (auto* b = dynamic_cast<BatchNormLayer*>(&L)) {
      std::vector<float> sc, sh;
      b->bn.scale_shift(sc, sh);
      Shape cs = {1, int64_t(sc.size()), 1, 1};
      int m = constant(IrOp::Mul, prefix + "scale", one(), Tensor::from_vector(sc, cs));
      return constant(IrOp::Add, prefix + "shift", m, Tensor::from_vector(sh, cs));
    }
    if (auto* q = dynamic_cast<SequentialLayer*>(&L)) {
      std::vector<int> cur = in;
      for (size_t i = 0; i < q->items.size(); ++i) cur = {layer(*q->items[i], prefix + std::to_string(i) + ".", cur)};
      return cur.at(0);
    }
    fail("lower: ", self, ": unsupported module ", L.type);
  }
};

void check_x(const Tensor& x, const char* what) {
  Y7_CHECK(x.defined() && x.dtype() == DType::F32, what, " input must be a float32 tensor, got ",
           x.defined() ? x.str() : "undefined");
  Y7_CHECK(x.dim() == 4, what, " input must be [B,C,H,W], got ", shape_str(x.sizes()));
  Y7_CHECK(x.size(0) > 0 && x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0, what, " input is empty: ",
           shape_str(x.sizes()));
}

}  // namespace

IrGraph lower(Model& model, const Shape& input) {
  Y7_CHECK(input.size() == 4 && input[0] > 0 && input[2] > 0 && input[3] > 0,
           "lower: input shape must be [B,C,H,W], got ", shape_str(input));
  Y7_CHECK(input[1] == model.in_channels(), "lower: the model takes ", model.in_channels(), " channels, got ",
           shape_str(input));
  if (!model.fused()) model.fuse();
  int L = model.num_layers();
  auto* det = dynamic_cast<DetectLayer*>(&model.layer(L - 1));
  Y7_CHECK(det, "lower: the last layer is not a Detect head");

  Lowerer lw;
  IrNode in;
  in.op = IrOp::Input;
  in.name = "images";
  lw.add(std::move(in));
  std::vector<int> out_of(L, -1);  // layer -> its node
  auto resolve = [&](int i, int f) {
    int p = f == -1 ? i - 1 : (f < 0 ? i + f : f);
    if (p < 0) return 0;  // the image
    Y7_CHECK(p < i && out_of[p] >= 0, "lower: layer ", i, " reads layer ", p, " which is not available");
    return out_of[p];
  };
  for (int i = 0; i < L - 1; ++i) {
    Layer& ly = model.layer(i);
    std::vector<int> ins;
    for (int f : ly.from) ins.push_back(resolve(i, f));
    out_of[i] = lw.layer(ly, "model." + std::to_string(i) + ".", ins);
  }
  Y7_CHECK(det->fused || det->kind == DetectLayer::Plain, "lower: Detect head not fused");
  Y7_CHECK(int(det->from.size()) >= det->nl, "lower: Detect has ", det->from.size(), " inputs for ", det->nl,
           " levels");
  std::string dp = "model." + std::to_string(L - 1) + ".";
  for (int l = 0; l < det->nl; ++l) {
    int x = resolve(L - 1, det->from[l]);
    lw.g.outputs.push_back(lw.conv(det->m[l], dp, x));
  }

  // drop what the lead outputs do not need (e.g. IAuxDetect's aux branches), keep the order
  IrGraph& g0 = lw.g;
  int N = int(g0.nodes.size());
  std::vector<bool> live(N, false);
  live[0] = true;
  for (int o : g0.outputs) live[o] = true;
  for (int i = N - 1; i >= 0; --i)
    if (live[i])
      for (int p : g0.nodes[i].in) live[p] = true;
  std::vector<int> remap(N, -1);
  IrGraph g;
  for (int i = 0; i < N; ++i) {
    if (!live[i]) continue;
    remap[i] = int(g.nodes.size());
    IrNode n = std::move(g0.nodes[i]);
    for (int& p : n.in) p = remap[p];
    g.nodes.push_back(std::move(n));
  }
  for (int o : g0.outputs) g.outputs.push_back(remap[o]);

  g.head.nc = det->nc, g.head.na = det->na, g.head.no = det->no, g.head.nl = det->nl;
  g.head.stride = det->stride;
  g.head.anchor_grid = det->anchor_grid.contiguous().reshape({det->nl, det->na, 2}).clone();
  g.names = model.names;
  g.validate();
  std::vector<Shape> shapes = g.infer_shapes(input);
  for (size_t i = 0; i < g.nodes.size(); ++i) g.nodes[i].shape = shapes[i];
  return g;
}

// ---------------------------------------------------------------- checks and shapes

int IrGraph::find(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name) return int(i);
  return -1;
}

void IrGraph::validate() const {
  Y7_CHECK(!nodes.empty() && nodes[0].op == IrOp::Input, "graph: node 0 must be the Input");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const IrNode& n = nodes[i];
    auto where = [&]() { return "graph node " + std::to_string(i) + " '" + n.name + "' (" + ir_op_name(n.op) + ")"; };
    for (int p : n.in) Y7_CHECK(p >= 0 && p < int(i), where(), ": input index ", p, " out of order");
    if (i > 0) Y7_CHECK(n.op != IrOp::Input, where(), ": only node 0 may be an Input");
    size_t need = 1;
    switch (n.op) {
      case IrOp::Input: need = 0; break;
      case IrOp::Concat: need = n.in.empty() ? 1 : n.in.size(); break;
      case IrOp::Add:
      case IrOp::Mul: need = n.weight.defined() ? 1 : 2; break;
      default: break;
    }
    Y7_CHECK(n.in.size() == need, where(), ": ", n.in.size(), " inputs, expected ", need);
    switch (n.op) {
      case IrOp::Conv: {
        Y7_CHECK(n.weight.defined() && n.weight.dtype() == DType::F32 && n.weight.dim() == 4, where(),
                 ": weight must be a float32 [O,I/g,kh,kw] tensor");
        Y7_CHECK(n.bias.defined() && n.bias.dtype() == DType::F32 && n.bias.dim() == 1 &&
                     n.bias.size(0) == n.weight.size(0),
                 where(), ": bias must be float32 [", n.weight.size(0), "]");
        Y7_CHECK(n.stride >= 1 && n.pad >= 0 && n.dilation >= 1 && n.groups >= 1, where(), ": bad stride ",
                 n.stride, " pad ", n.pad, " dilation ", n.dilation, " groups ", n.groups);
        Y7_CHECK(n.weight.size(0) % n.groups == 0, where(), ": ", n.weight.size(0), " outputs not divisible by ",
                 n.groups, " groups");
        break;
      }
      case IrOp::MaxPool:
        Y7_CHECK(n.k >= 1 && n.s >= 1 && n.p >= 0 && 2 * n.p <= n.k, where(), ": bad kernel ", n.k, " stride ",
                 n.s, " pad ", n.p);
        break;
      case IrOp::Upsample: Y7_CHECK(n.scale >= 1 && n.scale <= 64, where(), ": bad scale ", n.scale); break;
      case IrOp::Concat: Y7_CHECK(n.axis >= 0 && n.axis < 4, where(), ": bad axis ", n.axis); break;
      case IrOp::Act: Y7_CHECK(n.act != ops::Act::None, where(), ": no activation"); break;
      case IrOp::Add:
      case IrOp::Mul:
        if (n.weight.defined())
          Y7_CHECK(n.weight.dtype() == DType::F32 && n.weight.dim() == 4 && n.weight.size(0) == 1 &&
                       n.weight.size(2) == 1 && n.weight.size(3) == 1,
                   where(), ": constant must be float32 [1,C,1,1], got ", n.weight.str());
        break;
      default: break;
    }
  }
  for (int o : outputs) Y7_CHECK(o >= 0 && o < int(nodes.size()), "graph: output index ", o, " out of range");
  if (head.nl == 0) return;
  Y7_CHECK(head.nl == int(outputs.size()), "graph: ", outputs.size(), " outputs for ", head.nl, " detect levels");
  Y7_CHECK(head.na >= 1 && head.nc >= 1 && head.no == head.nc + 5, "graph: bad detect head na=", head.na,
           " nc=", head.nc, " no=", head.no);
  Y7_CHECK(int(head.stride.size()) == head.nl, "graph: ", head.stride.size(), " strides for ", head.nl, " levels");
  Y7_CHECK(head.anchor_grid.defined() && head.anchor_grid.sizes() == Shape({head.nl, head.na, 2}),
           "graph: anchor_grid must be [", head.nl, ",", head.na, ",2]");
}

Shape ir_node_shape(const IrNode& n, const std::vector<Shape>& s, const Shape& in) {
  auto where = [&]() { return "node '" + n.name + "' (" + ir_op_name(n.op) + ")"; };
  for (int p : n.in)
    Y7_CHECK(p >= 0 && p < int(s.size()) && s[p].size() == 4, where(), ": input ", p, " has no shape");
  auto x = [&](int k) -> const Shape& { return s[n.in[k]]; };
  switch (n.op) {
    case IrOp::Input:
      Y7_CHECK(in.size() == 4, "graph input must be [B,C,H,W], got ", shape_str(in));
      if (n.shape.size() == 4)
        Y7_CHECK(in[1] == n.shape[1], "graph input must have ", n.shape[1], " channels, got ", shape_str(in));
      return in;
    case IrOp::Conv: {
      const Shape& a = x(0);
      Y7_CHECK(n.weight.defined() && n.weight.dim() == 4, where(), ": no weight");
      int64_t co = n.weight.size(0), kh = n.weight.size(2), kw = n.weight.size(3);
      Y7_CHECK(a[1] == n.weight.size(1) * n.groups, where(), ": input ", shape_str(a), " but weight ",
               n.weight.str(), " with ", n.groups, " groups");
      int64_t ekh = int64_t(n.dilation) * (kh - 1) + 1, ekw = int64_t(n.dilation) * (kw - 1) + 1;
      Y7_CHECK(a[2] + 2 * n.pad >= ekh && a[3] + 2 * n.pad >= ekw, where(), ": input ", shape_str(a), " too small");
      return {a[0], co, (a[2] + 2 * n.pad - ekh) / n.stride + 1, (a[3] + 2 * n.pad - ekw) / n.stride + 1};
    }
    case IrOp::Act: return x(0);
    case IrOp::MaxPool: {
      const Shape& a = x(0);
      Y7_CHECK(a[2] + 2 * n.p >= n.k && a[3] + 2 * n.p >= n.k, where(), ": input ", shape_str(a), " too small");
      return {a[0], a[1], (a[2] + 2 * n.p - n.k) / n.s + 1, (a[3] + 2 * n.p - n.k) / n.s + 1};
    }
    case IrOp::Upsample: return {x(0)[0], x(0)[1], x(0)[2] * n.scale, x(0)[3] * n.scale};
    case IrOp::Concat: {
      Shape o = x(0);
      for (size_t k = 1; k < n.in.size(); ++k) {
        for (int d = 0; d < 4; ++d)
          Y7_CHECK(d == n.axis || x(int(k))[d] == o[d], where(), ": inputs ", shape_str(o), " and ",
                   shape_str(x(int(k))), " differ outside axis ", n.axis);
        o[n.axis] += x(int(k))[n.axis];
      }
      return o;
    }
    case IrOp::Add:
    case IrOp::Mul:
      if (n.weight.defined()) {
        Y7_CHECK(n.weight.size(1) == x(0)[1] || n.weight.size(1) == 1, where(), ": constant ", n.weight.str(),
                 " for input ", shape_str(x(0)));
      } else {
        Y7_CHECK(x(0) == x(1), where(), ": inputs ", shape_str(x(0)), " and ", shape_str(x(1)), " differ");
      }
      return x(0);
    case IrOp::ReOrg: {
      const Shape& a = x(0);
      Y7_CHECK(a[2] % 2 == 0 && a[3] % 2 == 0, where(), ": needs an even height and width, got ", shape_str(a));
      return {a[0], 4 * a[1], a[2] / 2, a[3] / 2};
    }
  }
  fail(where(), ": unknown op");
}

std::vector<Shape> IrGraph::infer_shapes(const Shape& in) const {
  std::vector<Shape> s(nodes.size());
  Y7_CHECK(in.size() == 4, "graph input must be [B,C,H,W], got ", shape_str(in));
  for (size_t i = 0; i < nodes.size(); ++i) s[i] = ir_node_shape(nodes[i], s, in);
  return s;
}

// ---------------------------------------------------------------- execution

std::vector<Tensor> IrGraph::run(const Tensor& x, const std::function<void(int, Tensor&)>& hook) const {
  NoGradGuard no_grad;
  check_x(x, "graph");
  infer_shapes(x.sizes());  // every shape problem as a one-line error before any work
  const int N = int(nodes.size());
  {
    static std::mutex create_m;
    std::lock_guard<std::mutex> l(create_m);
    if (!caches_) caches_ = std::make_shared<Caches>();
  }
  {
    std::lock_guard<std::mutex> l(caches_->m);
    if (int(caches_->conv.size()) < N) caches_->conv.resize(N);
    for (int i = 0; i < N; ++i)
      if (nodes[i].op == IrOp::Conv && !caches_->conv[i]) caches_->conv[i] = ops::ConvCache::create();
  }
  std::vector<int> uses(N, 0), last_use(N, -1);
  for (int i = 0; i < N; ++i)
    for (int p : nodes[i].in) {
      ++uses[p];
      last_use[p] = i;
    }
  std::vector<bool> is_out(N, false);
  for (int o : outputs) is_out[o] = true;
  std::vector<Tensor> v(N);
  Tensor xin = channels_last ? to_channels_last(x) : x.contiguous();
  if (hook && xin.storage() == x.storage()) xin = xin.clone();
  if (hook && channels_last) xin = to_channels_last(xin);
  v[0] = xin;
  if (hook) hook(0, v[0]);
  std::vector<bool> fused_into_next(N, false);
  for (int i = 1; i < N; ++i) {
    const IrNode& n = nodes[i];
    try {
      switch (n.op) {
        case IrOp::Input: fail("a second Input node");
        case IrOp::Conv: {
          ops::Conv2dParams cp;
          cp.stride = n.stride, cp.pad = n.pad, cp.dilation = n.dilation, cp.groups = n.groups;
          // Conv -> Act fusion (no hook; the Act is the conv's only consumer; not a graph output)
          if (!hook && uses[i] == 1 && !is_out[i] && i + 1 < N && nodes[i + 1].op == IrOp::Act &&
              nodes[i + 1].in[0] == i) {
            cp.act = nodes[i + 1].act, cp.alpha = nodes[i + 1].alpha;
            fused_into_next[i] = true;
          }
          v[i] = ops::conv2d(v[n.in[0]], n.weight, n.bias, cp, caches_->conv[i].get());
          break;
        }
        case IrOp::Act:
          if (fused_into_next[n.in[0]])
            v[i] = v[n.in[0]];
          else
            v[i] = ops::activation(v[n.in[0]], n.act, n.alpha);
          break;
        case IrOp::MaxPool: v[i] = ops::max_pool2d(v[n.in[0]], n.k, n.s, n.p); break;
        case IrOp::Upsample: v[i] = ops::upsample_nearest2d(v[n.in[0]], n.scale); break;
        case IrOp::Concat: {
          std::vector<Tensor> xs;
          for (int p : n.in) xs.push_back(v[p]);
          v[i] = xs.size() == 1 ? xs[0].clone() : ops::concat(xs, n.axis);
          break;
        }
        case IrOp::Add:
        case IrOp::Mul: {
          const Tensor& a = v[n.in[0]];
          const Tensor& b = n.weight.defined() ? n.weight : v[n.in[1]];
          v[i] = n.op == IrOp::Add ? ops::add(a, b) : ops::mul(a, b);
          break;
        }
        case IrOp::ReOrg: v[i] = ops::reorg(v[n.in[0]]); break;
      }
    } catch (const Error& e) {
      fail("node '", n.name, "' (", ir_op_name(n.op), "): ", e.what());
    }
    if (channels_last && v[i].dim() == 4 && !is_channels_last(v[i])) v[i] = to_channels_last(v[i]);
    if (hook) {
      for (int p : n.in)  // a hook may modify the output in place: never let it alias an input
        if (v[p].storage() == v[i].storage()) v[i] = channels_last ? to_channels_last(v[i].clone()) : v[i].clone();
      hook(i, v[i]);
    }
    for (int p : n.in)
      if (last_use[p] == i && !is_out[p]) v[p] = Tensor();
  }
  std::vector<Tensor> outs;
  for (int o : outputs) outs.push_back(v[o]);
  return outs;
}

Tensor IrGraph::decode(const std::vector<Tensor>& outs) const {
  NoGradGuard no_grad;
  Y7_CHECK(int(outs.size()) == head.nl, "decode: ", outs.size(), " maps for ", head.nl, " levels");
  Tensor ag = head.anchor_grid.contiguous();
  std::vector<Tensor> preds;
  for (int l = 0; l < head.nl; ++l) {
    const Tensor& r = outs[l];
    Y7_CHECK(r.defined() && r.dim() == 4 && r.size(1) == int64_t(head.na) * head.no, "decode: level ", l, " map ",
             r.defined() ? r.str() : "undefined", ", expected [B,", head.na * head.no, ",H,W]");
    preds.push_back(ops::detect_decode(r, head.na, head.no, head.stride[l], ag.select(0, l)));
  }
  return preds.size() == 1 ? preds[0] : ops::concat(preds, 1);
}

}  // namespace y7::graph
