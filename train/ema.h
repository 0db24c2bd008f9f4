// upstream utils.torch_utils.ModelEMA: an eval-mode copy of the model whose floating-point state
// (parameters and buffers) follows ema = d*ema + (1-d)*model after each optimizer step, with
// d = decay * (1 - exp(-updates / 2000)).
#pragma once
#include <memory>

#include "graph/model.h"

namespace y7::train {

class ModelEMA {
 public:
  explicit ModelEMA(const graph::Model& model, double decay = 0.9999, int64_t updates = 0);
  double decay_at(int64_t updates) const;  // decay * (1 - exp(-updates/2000))
  void update(const graph::Model& model);
  graph::Model& ema() { return *ema_; }
  const graph::Model& ema() const { return *ema_; }
  int64_t updates = 0;

 private:
  std::unique_ptr<graph::Model> ema_;
  double decay_;
};

// A fresh copy (same cfg, nc, names; parameters/buffers copied) of a model, eval mode.
std::unique_ptr<graph::Model> clone_model(const graph::Model& m);

}  // namespace y7::train
