// Optimizers of upstream train.py: its three parameter groups (pg0: BatchNorm weights, implicit
// knowledge and other no-decay weights; pg1: conv weights with weight decay; pg2: biases), SGD with
// Nesterov momentum exactly as torch.optim.SGD (dampening 0) and Adam as torch.optim.Adam
// (betas (momentum, 0.999), eps 1e-8), float32 updates in torch's operation order. The state
// (momentum buffers, Adam moments) serialises to a torch-style optimizer.state_dict() tree.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/pickle_writer.h"

namespace y7::io {
struct PickleValue;
}

namespace y7::graph {
class Model;
}

namespace y7::train {

enum class OptKind { SGD, Adam };

struct ParamGroup {
  std::vector<std::string> names;
  std::vector<Tensor*> params;  // model parameters, updated in place
  double lr = 0.01, initial_lr = 0.01;
  double momentum = 0.9;        // SGD momentum; Adam's beta1
  double weight_decay = 0.0;
  bool has_momentum = true;     // torch: 'momentum' in the group (SGD only)
};

class Optimizer {
 public:
  // Group defaults as torch.optim.SGD(pg0, lr, momentum, nesterov=True) / Adam(pg0, lr, betas).
  Optimizer(OptKind kind, double lr, double momentum, bool nesterov = true);
  // Appends a group (torch add_param_group) using the defaults, with its own weight decay.
  ParamGroup& add_group(std::vector<std::string> names, std::vector<Tensor*> params, double weight_decay);
  // One step on every parameter that has a gradient (parameters without one are skipped).
  void step();
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  OptKind kind() const { return kind_; }
  // Per-parameter state, flat over the groups in order (undefined until the first update).
  struct State {
    Tensor momentum_buffer;       // SGD
    Tensor exp_avg, exp_avg_sq;   // Adam
    int64_t step = 0;             // Adam
  };
  const std::vector<State>& state() const { return state_; }
  // torch optimizer.state_dict(): {'state': {i: {...}}, 'param_groups': [{..., 'params': [i...]}]}.
  io::PyRef state_dict() const;
  // optimizer.load_state_dict(): group hyperparameters (lr, initial_lr, momentum/betas,
  // weight_decay) and per-parameter state from an unpickled state_dict() tree with the same
  // group sizes. Clear one-line errors on mismatches.
  void load_state_dict(const io::PickleValue& sd);

 private:
  OptKind kind_;
  double lr_, momentum_;
  bool nesterov_;
  std::vector<ParamGroup> groups_;
  std::vector<State> state_;
};

// train.py's grouping by name over the model's parameters: "*.bias" -> pg2; "*implicit*" and
// one-dimensional weights (BatchNorm) -> pg0; other weights (convolutions) -> pg1.
struct ParamGroups {
  std::vector<std::string> names[3];
  std::vector<Tensor*> params[3];
};
ParamGroups group_parameters(graph::Model& model);

// train.py's optimizer: groups pg0 (no decay), pg1 (weight_decay), pg2 (biases, no decay), lr lr0,
// momentum (SGD nesterov) or Adam with beta1 = momentum. weight_decay as already scaled by
// bs*accumulate/nbs.
std::unique_ptr<Optimizer> make_optimizer(graph::Model& model, bool adam, double lr0, double momentum,
                                          double weight_decay);

}  // namespace y7::train
