#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "graph/model.h"
#include "io/pickle.h"

namespace y7::train {

Optimizer::Optimizer(OptKind kind, double lr, double momentum, bool nesterov)
    : kind_(kind), lr_(lr), momentum_(momentum), nesterov_(nesterov) {
  Y7_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: invalid learning rate ", lr);
  Y7_CHECK(momentum >= 0 && momentum < 1, "optimizer: invalid momentum ", momentum);
}

ParamGroup& Optimizer::add_group(std::vector<std::string> names, std::vector<Tensor*> params, double weight_decay) {
  Y7_CHECK(names.size() == params.size(), "optimizer: names and parameters differ in number");
  Y7_CHECK(weight_decay >= 0 && std::isfinite(weight_decay), "optimizer: invalid weight decay ", weight_decay);
  for (Tensor* p : params)
    Y7_CHECK(p && p->defined() && p->dtype() == DType::F32 && p->is_contiguous(),
             "optimizer: parameters must be contiguous float32 tensors");
  ParamGroup g;
  g.names = std::move(names);
  g.params = std::move(params);
  g.lr = g.initial_lr = lr_;
  g.momentum = momentum_;
  g.weight_decay = weight_decay;
  g.has_momentum = kind_ == OptKind::SGD;
  state_.resize(state_.size() + g.params.size());
  groups_.push_back(std::move(g));
  return groups_.back();
}

void Optimizer::step() {
  size_t idx = 0;
  for (auto& g : groups_) {
    const float lr = float(g.lr), wd = float(g.weight_decay), m = float(g.momentum);
    for (Tensor* p : g.params) {
      State& st = state_[idx++];
      Tensor grad = p->grad();
      if (!grad.defined()) continue;
      Y7_CHECK(grad.sizes() == p->sizes(), "optimizer: gradient shape ", shape_str(grad.sizes()), " for parameter ",
               shape_str(p->sizes()));
      grad = grad.to(DType::F32).contiguous();
      const float* gp = grad.data<float>();
      float* w = p->data<float>();
      const int64_t n = p->numel();
      if (kind_ == OptKind::SGD) {
        // torch.optim.SGD (foreach=False): d_p = g + wd*p; buf = m*buf + d_p (clone at first);
        // nesterov: d_p += m*buf, else d_p = buf; p += -lr*d_p
        const bool first = !st.momentum_buffer.defined();
        if (m != 0 && first) st.momentum_buffer = Tensor::empty(p->sizes());
        float* buf = m != 0 ? st.momentum_buffer.data<float>() : nullptr;
        for (int64_t k = 0; k < n; ++k) {
          float d = wd != 0 ? gp[k] + wd * w[k] : gp[k];
          if (m != 0) {
            float b = first ? d : buf[k] * m + d;
            buf[k] = b;
            d = nesterov_ ? d + m * b : b;
          }
          w[k] = w[k] + (-lr) * d;
        }
      } else {
        // torch.optim.Adam (foreach=False, amsgrad=False)
        if (!st.exp_avg.defined()) {
          st.exp_avg = Tensor::zeros(p->sizes());
          st.exp_avg_sq = Tensor::zeros(p->sizes());
          st.step = 0;
        }
        st.step += 1;
        const double b1 = g.momentum, b2 = 0.999, eps = 1e-8;
        const double bc1 = 1 - std::pow(b1, double(st.step)), bc2 = 1 - std::pow(b2, double(st.step));
        const float step_size = float(g.lr / bc1), bc2_sqrt = float(std::sqrt(bc2));
        const float fb1 = float(b1), fb2 = float(b2), feps = float(eps), ob1 = float(1 - b1), ob2 = float(1 - b2);
        float* ea = st.exp_avg.data<float>();
        float* es = st.exp_avg_sq.data<float>();
        for (int64_t k = 0; k < n; ++k) {
          float d = wd != 0 ? gp[k] + wd * w[k] : gp[k];
          ea[k] = ea[k] * fb1 + ob1 * d;      // mul_(beta1).add_(grad, 1-beta1)
          es[k] = es[k] * fb2 + ob2 * (d * d); // mul_(beta2).addcmul_(grad, grad, 1-beta2)
          float denom = std::sqrt(es[k]) / bc2_sqrt + feps;
          w[k] = w[k] + (-step_size) * (ea[k] / denom);
        }
      }
    }
  }
}

io::PyRef Optimizer::state_dict() const {
  using namespace io;
  PyRef state = py::dict(), groups = py::list();
  int64_t idx = 0;
  for (const auto& g : groups_) {
    PyRef pg = py::dict();
    std::vector<PyRef> ids;
    for (size_t k = 0; k < g.params.size(); ++k, ++idx) {
      ids.push_back(py::integer(idx));
      const State& st = state_[size_t(idx)];
      if (kind_ == OptKind::SGD && st.momentum_buffer.defined()) {
        PyRef s = py::dict();
        s->set("momentum_buffer", py::tensor(st.momentum_buffer));
        state->entries.push_back({py::integer(idx), s});
      } else if (kind_ == OptKind::Adam && st.exp_avg.defined()) {
        PyRef s = py::dict();
        s->set("step", py::tensor(Tensor::full({}, double(st.step))));
        s->set("exp_avg", py::tensor(st.exp_avg));
        s->set("exp_avg_sq", py::tensor(st.exp_avg_sq));
        state->entries.push_back({py::integer(idx), s});
      }
    }
    pg->set("lr", py::real(g.lr));
    if (kind_ == OptKind::SGD) {
      pg->set("momentum", py::real(g.momentum));
      pg->set("dampening", py::integer(0));
      pg->set("weight_decay", py::real(g.weight_decay));
      pg->set("nesterov", py::boolean(nesterov_));
      pg->set("maximize", py::boolean(false));
      pg->set("foreach", py::none());
      pg->set("differentiable", py::boolean(false));
    } else {
      pg->set("betas", py::tuple({py::real(g.momentum), py::real(0.999)}));
      pg->set("eps", py::real(1e-8));
      pg->set("weight_decay", py::real(g.weight_decay));
      pg->set("amsgrad", py::boolean(false));
      pg->set("maximize", py::boolean(false));
      pg->set("foreach", py::none());
      pg->set("capturable", py::boolean(false));
      pg->set("differentiable", py::boolean(false));
      pg->set("fused", py::boolean(false));
    }
    pg->set("initial_lr", py::real(g.initial_lr));
    pg->set("params", py::list(std::move(ids)));
    groups->items.push_back(pg);
  }
  PyRef sd = py::dict();
  sd->set("state", state);
  sd->set("param_groups", groups);
  return sd;
}

void Optimizer::load_state_dict(const io::PickleValue& sd) {
  using K = io::PickleValue::Kind;
  const io::PickleValue* pgs = sd.get("param_groups");
  const io::PickleValue* st = sd.get("state");
  Y7_CHECK(pgs && pgs->is(K::List) && st && st->is(K::Dict), "optimizer state: not a torch optimizer state_dict");
  Y7_CHECK(pgs->items.size() == groups_.size(), "optimizer state: ", pgs->items.size(), " parameter groups, expected ",
           groups_.size());
  for (size_t j = 0; j < groups_.size(); ++j) {
    const io::PickleValue* params = pgs->items[j]->get("params");
    Y7_CHECK(params && params->items.size() == groups_[j].params.size(), "optimizer state: group ", j, " has ",
             params ? params->items.size() : 0, " parameters, the model's has ", groups_[j].params.size());
  }
  auto num = [](const io::PickleValue* g, const char* k, double def) {
    const io::PickleValue* v = g->get(k);
    return v && v->is_number() ? v->number() : def;
  };
  size_t base = 0;
  std::vector<State> fresh(state_.size());
  for (size_t j = 0; j < groups_.size(); ++j) {
    const io::PickleValue* g = pgs->items[j];
    auto& G = groups_[j];
    G.lr = num(g, "lr", G.lr);
    G.initial_lr = num(g, "initial_lr", G.initial_lr);
    G.weight_decay = num(g, "weight_decay", G.weight_decay);
    if (kind_ == OptKind::SGD) {
      G.momentum = num(g, "momentum", G.momentum);
    } else if (const io::PickleValue* b = g->get("betas"); b && !b->items.empty() && b->items[0]->is_number()) {
      G.momentum = b->items[0]->number();
    }
    const io::PickleValue* params = g->get("params");
    for (size_t k = 0; k < G.params.size(); ++k) {
      const int64_t id = params->items[k]->as_int();
      const io::PickleValue* ps = nullptr;
      for (auto& [key, val] : st->entries)
        if (key->kind == K::Int && key->integer == id) ps = val;
      if (!ps) continue;
      State& S = fresh[base + k];
      auto load = [&](const char* name) {
        const io::PickleValue* t = ps->get(name);
        if (!t) return Tensor();
        Y7_CHECK(t->is(K::Tensor) && t->tensor.sizes() == G.params[k]->sizes(), "optimizer state: '", name,
                 "' of parameter ", id, " does not match ", G.names[k]);
        Tensor c = Tensor::empty(G.params[k]->sizes());
        c.copy_(t->tensor);
        return c;
      };
      if (kind_ == OptKind::SGD) {
        S.momentum_buffer = load("momentum_buffer");
      } else {
        S.exp_avg = load("exp_avg"), S.exp_avg_sq = load("exp_avg_sq");
        const io::PickleValue* step = ps->get("step");
        if (step && step->is(K::Tensor)) S.step = int64_t(step->tensor.item());
        else if (step && step->is_number()) S.step = int64_t(step->number());
        Y7_CHECK(S.exp_avg.defined() && S.exp_avg_sq.defined(), "optimizer state: Adam state of ", G.names[k],
                 " is incomplete (was the checkpoint trained with SGD?)");
      }
    }
    base += G.params.size();
  }
  state_ = std::move(fresh);
}

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

ParamGroups group_parameters(graph::Model& model) {
  ParamGroups pg;
  for (auto& [name, t] : model.named_parameters()) {
    int g;
    if (ends_with(name, ".bias"))
      g = 2;
    else if (name.find("implicit") != std::string::npos || t->dim() <= 1)
      g = 0;  // implicit knowledge, BatchNorm weights (and other vectors): no decay
    else
      g = 1;  // convolution weights
    pg.names[g].push_back(name);
    pg.params[g].push_back(t);
  }
  // train.py visits a head's `im` before its `ia` (and the head before its children): within pg0,
  // the implicit vectors come im first, then ia (the optimizer state indices depend on it).
  std::vector<size_t> imp;
  for (size_t i = 0; i < pg.names[0].size(); ++i)
    if (pg.names[0][i].find("implicit") != std::string::npos) imp.push_back(i);
  std::vector<size_t> order = imp;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    auto rank = [&](size_t i) { return pg.names[0][i].find(".ia.") != std::string::npos ? 1 : 0; };
    return rank(a) < rank(b);
  });
  auto names0 = pg.names[0];
  auto params0 = pg.params[0];
  for (size_t k = 0; k < imp.size(); ++k) pg.names[0][imp[k]] = names0[order[k]], pg.params[0][imp[k]] = params0[order[k]];
  return pg;
}

std::unique_ptr<Optimizer> make_optimizer(graph::Model& model, bool adam, double lr0, double momentum,
                                          double weight_decay) {
  ParamGroups pg = group_parameters(model);
  auto opt = std::make_unique<Optimizer>(adam ? OptKind::Adam : OptKind::SGD, lr0, momentum, true);
  opt->add_group(pg.names[0], pg.params[0], 0.0);
  opt->add_group(pg.names[1], pg.params[1], weight_decay);
  opt->add_group(pg.names[2], pg.params[2], 0.0);
  return opt;
}

}  // namespace y7::train
