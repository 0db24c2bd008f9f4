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

}  // namespace y7
