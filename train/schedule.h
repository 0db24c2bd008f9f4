// Learning-rate / momentum schedules of upstream train.py: the LambdaLR factor (one_cycle cosine
// from 1 to lrf, or --linear-lr), and the per-iteration warmup (np.interp over nw iterations: the
// bias group's lr falls from warmup_bias_lr, the others rise from 0, to initial_lr * lf(epoch);
// SGD momentum from warmup_momentum to momentum; accumulate from 1 to nbs/batch).
#pragma once
#include "train/optimizer.h"

namespace y7::train {

// utils.general.one_cycle(y1, y2, steps)(x) = ((1 - cos(x*pi/steps)) / 2) * (y2 - y1) + y1
double one_cycle(double y1, double y2, double steps, double x);
// np.interp(x, [x0, x1], [y0, y1]) (clamped at both ends).
double interp(double x, double x0, double x1, double y0, double y1);

struct LrLambda {
  bool linear = false;
  double lrf = 0.1;
  int epochs = 300;
  double operator()(double epoch) const;  // lf(epoch)
};

// max(round(warmup_epochs * nb), 1000) (python rounding, half to even).
// train.py: nw = max(round(warmup_epochs * nb), 1000). min_iters is 1000 in upstream; the optional
// hyp key `warmup_min_iters` (a yolo7 extension, absent from upstream's yaml files) lowers it for
// small data sets, where 1000 iterations would be the whole run.
int64_t warmup_iterations(double warmup_epochs, int64_t nb, int64_t min_iters = 1000);
// max(round(nbs / total_batch_size), 1).
int nominal_accumulate(int total_batch_size, int nbs = 64);

// LambdaLR: lr = initial_lr * lf(epoch) for every group (scheduler.step() / last_epoch).
void set_epoch_lr(Optimizer& opt, const LrLambda& lf, int epoch);

// The warmup block of train.py for integrated batch ni <= nw. Group 2 is the bias group. Returns
// the new accumulate (max(1, round(np.interp(ni, [0, nw], [1, nbs/bs])))).
int apply_warmup(Optimizer& opt, int64_t ni, int64_t nw, int epoch, const LrLambda& lf, double warmup_bias_lr,
                 double warmup_momentum, double momentum, int total_batch_size, int nbs = 64);

}  // namespace y7::train
