#include "train/ema.h"

#include <cmath>

namespace y7::train {

std::unique_ptr<graph::Model> clone_model(const graph::Model& m) {
  auto c = graph::Model::from_yaml(YAML::Clone(m.yaml()), m.in_channels(), m.nc());
  c->names = m.names;
  c->load_state_dict(m.state_dict(), true);  // copies into fresh storage
  return c;
}

ModelEMA::ModelEMA(const graph::Model& model, double decay, int64_t upd)
    : updates(upd), ema_(clone_model(model)), decay_(decay) {}

double ModelEMA::decay_at(int64_t u) const { return decay_ * (1 - std::exp(-double(u) / 2000)); }

void ModelEMA::update(const graph::Model& model) {
  updates += 1;
  const double d = decay_at(updates);
  auto msd = model.state_dict();
  auto esd = ema_->state_dict();
  const float fd = float(d), fe = float(1. - d);
  for (auto& [k, v] : esd) {
    if (v.dtype() != DType::F32) continue;  // integer buffers (num_batches_tracked) are not averaged
    auto it = msd.find(k);
    Y7_CHECK(it != msd.end() && it->second.sizes() == v.sizes(), "ModelEMA: model has no matching ", k);
    Tensor src = it->second.to(DType::F32).contiguous();
    Y7_CHECK(v.is_contiguous(), "ModelEMA: non-contiguous state ", k);
    float* e = v.data<float>();
    const float* s = src.data<float>();
    for (int64_t i = 0; i < v.numel(); ++i) e[i] = e[i] * fd + fe * s[i];  // v *= d; v += (1-d)*msd
  }
  ema_->reset_caches();
}

}  // namespace y7::train
