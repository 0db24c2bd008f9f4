#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace y7::train {

double one_cycle(double y1, double y2, double steps, double x) {
  return ((1 - std::cos(x * std::numbers::pi / steps)) / 2) * (y2 - y1) + y1;
}

double interp(double x, double x0, double x1, double y0, double y1) {
  if (x <= x0) return y0;
  if (x >= x1) return y1;
  // numpy's formula: slope * (x - x0) + y0
  const double slope = (y1 - y0) / (x1 - x0);
  return slope * (x - x0) + y0;
}

double LrLambda::operator()(double x) const {
  if (linear) return (1 - x / (epochs - 1)) * (1.0 - lrf) + lrf;
  return one_cycle(1, lrf, epochs, x);
}

int64_t warmup_iterations(double warmup_epochs, int64_t nb, int64_t min_iters) {
  return std::max<int64_t>(int64_t(std::nearbyint(warmup_epochs * double(nb))), min_iters);
}

int nominal_accumulate(int total_batch_size, int nbs) {
  Y7_CHECK(total_batch_size > 0, "batch size must be positive, got ", total_batch_size);
  return std::max(int(std::nearbyint(double(nbs) / total_batch_size)), 1);
}

void set_epoch_lr(Optimizer& opt, const LrLambda& lf, int epoch) {
  for (auto& g : opt.groups()) g.lr = g.initial_lr * lf(epoch);
}

int apply_warmup(Optimizer& opt, int64_t ni, int64_t nw, int epoch, const LrLambda& lf, double warmup_bias_lr,
                 double warmup_momentum, double momentum, int total_batch_size, int nbs) {
  const double x = double(ni), x1 = double(nw);
  int acc = std::max(1, int(std::nearbyint(interp(x, 0, x1, 1, double(nbs) / total_batch_size))));
  auto& gs = opt.groups();
  for (size_t j = 0; j < gs.size(); ++j) {
    gs[j].lr = interp(x, 0, x1, j == 2 ? warmup_bias_lr : 0.0, gs[j].initial_lr * lf(epoch));
    if (gs[j].has_momentum) gs[j].momentum = interp(x, 0, x1, warmup_momentum, momentum);
  }
  return acc;
}

}  // namespace y7::train
