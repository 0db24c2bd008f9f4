#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

namespace y7 {

namespace {
thread_local bool g_grad_enabled = true;

// a + b as a fresh contiguous float32 tensor of a's shape (b may have any strides)
Tensor sum_fresh(const Tensor& a, const Tensor& b) {
  Y7_CHECK(a.sizes() == b.sizes(), "autograd: gradient shapes ", shape_str(a.sizes()), " and ",
           shape_str(b.sizes()), " differ");
  Tensor r = a.contiguous().clone();
  Tensor bc = b.dtype() == DType::F32 ? b.contiguous() : b.to(DType::F32).contiguous();
  float* pr = r.data<float>();
  const float* pb = bc.data<float>();
  const int64_t n = r.numel();
  for (int64_t i = 0; i < n; ++i) pr[i] += pb[i];
  return r;
}

void accumulate(Tensor& acc, const Tensor& g) {
  if (!g.defined()) return;
  acc = acc.defined() ? sum_fresh(acc, g) : g;
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge edge_of(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.requires_grad()) return e;
  const auto& m = t.autograd();
  if (m->grad_fn) {
    e.node = m->grad_fn;
    e.output_index = m->output_index;
  } else {
    e.leaf = m;
  }
  return e;
}

std::shared_ptr<Node> record(std::shared_ptr<Node> node, const std::vector<const Tensor*>& inputs,
                             const std::vector<Tensor*>& outputs) {
  node->inputs.clear();
  for (const Tensor* t : inputs) node->inputs.push_back(t ? edge_of(*t) : Edge());
  node->num_outputs = int(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto m = std::make_shared<AutogradMeta>();
    m->requires_grad = true;
    m->grad_fn = node;
    m->output_index = int(i);
    outputs[i]->set_autograd(std::move(m));
  }
  return node;
}

void record_fn(const char* name, const std::vector<const Tensor*>& inputs, Tensor& output, FnNode::Fn fn) {
  record(std::make_shared<FnNode>(name, std::move(fn)), inputs, {&output});
}

void backward(const Tensor& root, const Tensor& grad) {
  Tensor g = grad;
  if (!g.defined()) {
    Y7_CHECK(root.defined() && root.numel() == 1, "backward: a gradient is needed for a root of shape ",
             root.defined() ? shape_str(root.sizes()) : std::string("(undefined)"));
    g = Tensor::full(root.sizes(), 1.0);
  }
  backward(std::vector<Tensor>{root}, std::vector<Tensor>{g});
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
  Y7_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " roots but ", grads.size(), " gradients");
  NoGradGuard ng;
  std::unordered_map<Node*, std::vector<Tensor>> pending;  // per node: grads of its outputs
  std::unordered_map<Node*, int> deps;                     // consumers not yet run
  std::vector<std::shared_ptr<Node>> starts;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Y7_CHECK(r.defined() && r.requires_grad(), "backward: root ", i, " does not require grad");
    Y7_CHECK(grads[i].defined() && grads[i].sizes() == r.sizes(), "backward: gradient ", i, " has shape ",
             grads[i].defined() ? shape_str(grads[i].sizes()) : std::string("(undefined)"), ", root is ",
             shape_str(r.sizes()));
    Edge e = edge_of(r);
    if (e.leaf) {
      accumulate(e.leaf->grad, grads[i].clone());
      continue;
    }
    starts.push_back(e.node);
  }
  // reachable nodes and their dependency counts (iterative DFS)
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (auto& n : starts)
    if (seen.insert(n.get()).second) stack.push_back(n.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->inputs) {
      if (!e.node) continue;
      deps[e.node.get()]++;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    Edge e = edge_of(roots[i]);
    if (!e.node) continue;
    auto& slot = pending[e.node.get()];
    slot.resize(e.node->num_outputs);
    accumulate(slot[e.output_index], grads[i]);
  }
  std::vector<std::shared_ptr<Node>> ready;
  std::unordered_set<Node*> queued;
  for (auto& n : starts)
    if (deps[n.get()] == 0 && queued.insert(n.get()).second) ready.push_back(n);
  while (!ready.empty()) {
    std::shared_ptr<Node> n = ready.back();
    ready.pop_back();
    std::vector<Tensor> gout = std::move(pending[n.get()]);
    pending.erase(n.get());
    gout.resize(n->num_outputs);
    bool any = false;
    for (auto& t : gout) any = any || t.defined();
    std::vector<Tensor> gin;
    if (any) {
      gin = n->backward(gout);
      Y7_CHECK(gin.size() == n->inputs.size(), "autograd: ", n->name(), " returned ", gin.size(),
               " gradients for ", n->inputs.size(), " inputs");
    }
    for (size_t k = 0; k < n->inputs.size(); ++k) {
      const Edge& e = n->inputs[k];
      const Tensor* gk = k < gin.size() && gin[k].defined() ? &gin[k] : nullptr;
      if (e.leaf) {
        if (gk) accumulate(e.leaf->grad, gk->contiguous().clone());
      } else if (e.node) {
        if (gk) {
          auto& slot = pending[e.node.get()];
          slot.resize(e.node->num_outputs);
          accumulate(slot[e.output_index], *gk);
        }
        if (--deps[e.node.get()] == 0) ready.push_back(e.node);
      }
    }
  }
}

}  // namespace y7
