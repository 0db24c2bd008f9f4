// Reverse-mode autograd metadata. Every differentiable op in kernels/ records a Node (its backward,
// written next to its forward) on its outputs when grad mode is on and an input requires grad.
// The engine that walks the graph lives in core/autograd.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace y7 {

struct Node;

struct Edge {
  std::shared_ptr<Node> node;  // producer of the input (null for leaves: grads accumulate in meta)
  std::shared_ptr<AutogradMeta> leaf;  // set when the input is a leaf that requires grad
  int output_index = 0;                // which output of `node` the input is
  bool active() const { return node || leaf; }
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grads of this node's outputs -> grads of its inputs (undefined tensor = no gradient)
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;
  std::vector<Edge> inputs;
  int num_outputs = 1;
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;  // producer of a non-leaf
  int output_index = 0;           // which output of grad_fn this tensor is
};

// Grad mode is thread-local and on by default; inference code runs under NoGradGuard.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op over these inputs must record a Node.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// The edge a gradient for `t` flows along (inactive when t does not require grad).
Edge edge_of(const Tensor& t);

// A Node whose backward is a function (what the ops record).
struct FnNode : Node {
  using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
  FnNode(const char* n, Fn f) : name_(n), fn(std::move(f)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return fn(g); }
  const char* name_;
  Fn fn;
};

// Connects `node` to `inputs` (their edges, in order: backward() returns one gradient per input)
// and makes each of `outputs` a non-leaf produced by it (fresh AutogradMeta; the tensors' other
// copies keep theirs). Returns the node.
std::shared_ptr<Node> record(std::shared_ptr<Node> node, const std::vector<const Tensor*>& inputs,
                             const std::vector<Tensor*>& outputs);
// Shorthand: a FnNode with one output.
void record_fn(const char* name, const std::vector<const Tensor*>& inputs, Tensor& output, FnNode::Fn fn);

// Reverse-mode pass from `root`: walks grad_fn nodes in topological order (each node runs once,
// after all its consumers) and accumulates into the leaves' AutogradMeta::grad (a fresh tensor per
// accumulation; never in place). `grad` defaults to 1 for a one-element root. Runs without grad
// mode (no higher-order graphs). Gradients of non-leaves are not kept.
void backward(const Tensor& root, const Tensor& grad = {});
// Same, from several roots at once (e.g. the per-level head maps with their loss gradients).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads);

}  // namespace y7
