#include "graph/model.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "core/autograd.h"
#include "graph/modules.h"
#include "io/checkpoint.h"

namespace y7::graph {

// Per-input-shape execution plan: output shapes, and which outputs are written straight into a
// channel slice of the Concat that consumes them.
struct Model::Plan {
  Shape in;
  std::vector<Shape> shapes;
  std::vector<int> direct_into;      // concat layer index or -1
  std::vector<int64_t> direct_off;   // channel offset in that concat
  std::vector<int> last_use;         // last live layer reading this output (-1: none)
};

Model::Model() = default;
Model::~Model() = default;

namespace {

std::vector<ParamRef> collect(const std::vector<std::unique_ptr<Layer>>& layers) {
  std::vector<ParamRef> refs;
  for (auto& l : layers) l->params("model." + std::to_string(l->index) + ".", refs);
  return refs;
}

}  // namespace

std::vector<Shape> Model::infer_shapes(const Shape& in, bool all_layers) const {
  int L = int(layers_.size());
  std::vector<Shape> shapes(L);
  for (int i = 0; i < L - 1; ++i) {
    if (!all_layers && !live_[i]) continue;
    std::vector<Shape> ins;
    for (int p : inputs_[i]) ins.push_back(p < 0 ? in : shapes[p]);
    try {
      shapes[i] = layers_[i]->out_shape(ins);
    } catch (const Error& e) {
      fail("layer ", i, " (", layers_[i]->type, "): ", e.what());
    }
  }
  auto* det = static_cast<DetectLayer*>(layers_.back().get());
  std::vector<Shape> ins;
  size_t nin = all_layers ? inputs_[L - 1].size() : size_t(det->nl);
  for (size_t k = 0; k < nin; ++k) {
    int p = inputs_[L - 1][k];
    ins.push_back(p < 0 ? in : shapes[p]);
  }
  for (size_t k = 0; k < ins.size(); ++k) {
    int want = det->ch[k];
    Y7_CHECK(ins[k].size() == 4 && ins[k][1] == want, "layer ", L - 1, " (", layers_.back()->type, "): input ", k,
             " has shape ", shape_str(ins[k]), ", expected ", want, " channels");
  }
  shapes[L - 1] = det->out_shape(ins);
  return shapes;
}

const Model::Plan& Model::plan_for(const Shape& in) {
  if (plan_ && plan_->in == in) return *plan_;
  auto plan = std::make_shared<Plan>();
  plan->in = in;
  plan->shapes = infer_shapes(in, false);
  int L = int(layers_.size());
  auto* det = static_cast<DetectLayer*>(layers_.back().get());
  // consumers of each output among the live layers (the Detect reads only its lead inputs)
  std::vector<std::vector<int>> consumers(L);
  plan->last_use.assign(L, -1);
  for (int i = 0; i < L; ++i) {
    if (!live_[i]) continue;
    size_t nin = i == L - 1 ? size_t(det->nl) : inputs_[i].size();
    for (size_t k = 0; k < nin; ++k) {
      int p = inputs_[i][k];
      if (p < 0) continue;
      consumers[p].push_back(i);
      plan->last_use[p] = std::max(plan->last_use[p], i);
    }
  }
  plan->direct_into.assign(L, -1);
  plan->direct_off.assign(L, 0);
  for (int j = 0; j < L - 1; ++j) {
    auto* cat = dynamic_cast<ConcatLayer*>(layers_[j].get());
    if (!live_[j] || !cat || cat->dim != 1 || plan->shapes[j].size() != 4) continue;
    int64_t off = 0;
    for (int p : inputs_[j]) {
      if (p >= 0 && consumers[p].size() == 1 && consumers[p][0] == j && plan->shapes[p].size() == 4) {
        plan->direct_into[p] = j;
        plan->direct_off[p] = off;
      }
      off += p < 0 ? in[1] : plan->shapes[p][1];
    }
  }
  plan_ = plan;
  return *plan_;
}

Model::Output Model::forward(const Tensor& x) {
  NoGradGuard no_grad;  // inference: parameters may require grad in train mode; record nothing
  Y7_CHECK(x.defined() && x.dtype() == DType::F32, "model input must be a float32 tensor, got ",
           x.defined() ? x.str() : "undefined");
  Y7_CHECK(x.dim() == 4 && x.size(1) == ch_, "model input must be [B,", ch_, ",H,W], got ", shape_str(x.sizes()));
  Y7_CHECK(x.size(0) > 0 && x.size(2) > 0 && x.size(3) > 0, "model input is empty: ", shape_str(x.sizes()));
  const Plan& plan = plan_for(x.sizes());
  const Tensor xin = channels_last ? to_channels_last(x) : x;
  int L = int(layers_.size());
  std::vector<Tensor> outs(L), bufs(L);
  std::function<Tensor(int)> out_view;
  std::function<Tensor&(int)> buffer = [&](int j) -> Tensor& {
    if (!bufs[j].defined()) bufs[j] = plan.direct_into[j] >= 0 ? out_view(j) : empty_like_format(plan.shapes[j], xin);
    return bufs[j];
  };
  out_view = [&](int p) {
    int j = plan.direct_into[p];
    return buffer(j).slice(1, plan.direct_off[p], plan.direct_off[p] + plan.shapes[p][1]);
  };
  auto input = [&](int p) -> const Tensor& {
    if (p < 0) return xin;
    Y7_CHECK(outs[p].defined(), "internal: output of layer ", p, " is not available");
    return outs[p];
  };
  auto release = [&](int i, size_t nin) {
    for (size_t k = 0; k < nin; ++k) {
      int p = inputs_[i][k];
      if (p >= 0 && plan.last_use[p] == i) outs[p] = Tensor();
    }
  };
  for (int i = 0; i < L - 1; ++i) {
    if (!live_[i]) continue;
    std::vector<Tensor> ins;
    for (int p : inputs_[i]) ins.push_back(input(p));
    Tensor view;
    Tensor* outp = nullptr;
    if (plan.direct_into[i] >= 0) {
      view = out_view(i);
      outp = &view;
    } else if (bufs[i].defined()) {  // a Concat whose inputs were (partly) written in place
      outp = &bufs[i];
    }
    try {
      outs[i] = layers_[i]->forward(ins, outp);
    } catch (const Error& e) {
      fail("layer ", i, " (", layers_[i]->type, "): ", e.what());
    }
    bufs[i] = Tensor();
    release(i, ins.size());
    if (plan.last_use[i] < 0) outs[i] = Tensor();
  }
  auto* det = static_cast<DetectLayer*>(layers_.back().get());
  std::vector<Tensor> lead;
  for (int k = 0; k < det->nl; ++k) lead.push_back(input(inputs_[L - 1][k]));
  Output o;
  o.pred = det->detect(lead, o.raw);
  return o;
}

void Model::train(bool on) {
  Y7_CHECK(!on || !fused_, "a fused model cannot be trained (load the unfused checkpoint)");
  training_ = on;
  if (on)
    for (auto& r : collect(layers_))
      if (!r.buffer && !r.t->requires_grad()) r.t->set_requires_grad(true);
}

std::vector<Tensor> Model::forward_train(const Tensor& x) {
  Y7_CHECK(training_, "forward_train: the model is not in training mode (call train())");
  Y7_CHECK(x.defined() && x.dtype() == DType::F32, "model input must be a float32 tensor, got ",
           x.defined() ? x.str() : "undefined");
  Y7_CHECK(x.dim() == 4 && x.size(1) == ch_, "model input must be [B,", ch_, ",H,W], got ", shape_str(x.sizes()));
  Y7_CHECK(x.size(0) > 0 && x.size(2) > 0 && x.size(3) > 0, "model input is empty: ", shape_str(x.sizes()));
  infer_shapes(x.sizes(), true);  // shape errors as one-line messages before any work
  int L = int(layers_.size());
  std::vector<Tensor> outs(L);
  auto input = [&](int p) -> const Tensor& { return p < 0 ? x : outs[p]; };
  for (int i = 0; i < L - 1; ++i) {
    std::vector<Tensor> ins;
    for (int p : inputs_[i]) ins.push_back(input(p));
    try {
      outs[i] = layers_[i]->forward_train(ins);
    } catch (const Error& e) {
      fail("layer ", i, " (", layers_[i]->type, "): ", e.what());
    }
  }
  auto* det = static_cast<DetectLayer*>(layers_.back().get());
  std::vector<Tensor> ins;
  for (int p : inputs_[L - 1]) ins.push_back(input(p));
  return det->forward_train_heads(ins);
}

std::vector<std::pair<std::string, Tensor*>> Model::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> v;
  for (auto& r : collect(layers_))
    if (!r.buffer) v.push_back({r.name, r.t});
  return v;
}

void Model::zero_grad() {
  for (auto& r : collect(layers_))
    if (r.t->autograd()) r.t->autograd()->grad = Tensor();
}

void Model::reset_caches() {
  for (auto& l : layers_) l->reset_caches();
}

void Model::load_state_dict(const std::map<std::string, Tensor>& sd, bool strict) {
  std::vector<ParamRef> refs = collect(layers_);
  std::set<std::string> known;
  // check everything before changing anything
  for (auto& r : refs) {
    known.insert(r.name);
    auto it = sd.find(r.name);
    if (it == sd.end()) {
      Y7_CHECK(!strict, "missing key ", r.name);
      continue;
    }
    const Tensor& t = it->second;
    Y7_CHECK(t.defined(), "undefined tensor for key ", r.name);
    Y7_CHECK(t.sizes() == r.t->sizes(), "shape mismatch for ", r.name, ": checkpoint ", shape_str(t.sizes()),
             " vs model ", shape_str(r.t->sizes()));
    DType d = t.dtype();
    bool is_float = d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64;
    bool is_int = d == DType::I64 || d == DType::I32 || d == DType::I8 || d == DType::U8;
    Y7_CHECK(r.t->dtype() == DType::I64 ? (is_int || is_float) : is_float, "dtype mismatch for ", r.name,
             ": checkpoint ", dtype_name(d), " vs model ", dtype_name(r.t->dtype()));
    Y7_CHECK(t.device().is_cpu(), "tensor for ", r.name, " is not on the CPU");
  }
  if (strict)
    for (auto& kv : sd) Y7_CHECK(known.count(kv.first), "unexpected key ", kv.first);
  for (auto& r : refs) {
    auto it = sd.find(r.name);
    if (it == sd.end()) continue;
    Tensor fresh = Tensor::empty(r.t->sizes(), r.t->dtype());  // own memory, float32 (or int64)
    fresh.copy_(it->second);
    if (fresh.dtype() == DType::F32) {
      const float* p = fresh.data<float>();
      for (int64_t k = 0; k < fresh.numel(); ++k)
        Y7_CHECK(std::isfinite(p[k]), "non-finite value in ", r.name);
    }
    if (training_ && !r.buffer) fresh.set_requires_grad(true);
    *r.t = fresh;
  }
  for (auto& l : layers_) l->reset_caches();
}

std::map<std::string, Tensor> Model::state_dict() const {
  std::map<std::string, Tensor> sd;
  for (auto& r : collect(layers_)) sd[r.name] = *r.t;
  return sd;
}

void Model::fuse() {
  if (fused_) return;
  for (auto& l : layers_) l->fuse();
  fused_ = true;
  plan_.reset();
}

int Model::num_anchors() const { return static_cast<DetectLayer*>(layers_.back().get())->na; }

std::vector<LayerInfo> Model::layers() const {
  std::vector<LayerInfo> v;
  for (auto& l : layers_) {
    std::vector<ParamRef> refs;
    l->params("", refs);
    int64_t np = 0;
    for (auto& r : refs)
      if (!r.buffer) np += r.t->numel();
    LayerInfo info{l->index, l->from, l->n, np, l->type, l->args};
    info.from_list = l->from_list;
    v.push_back(info);
  }
  return v;
}

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (auto& r : collect(layers_))
    if (!r.buffer) n += r.t->numel();
  return n;
}

int Model::num_modules() const {
  int n = 2;  // Model, Sequential
  for (auto& l : layers_) n += l->num_modules();
  return n;
}

double Model::gflops(int img_h, int img_w) const {
  float smax = 0;
  for (float s : stride_) smax = std::max(smax, s);
  int s = std::max(int(smax), 32);
  std::vector<Shape> shapes = infer_shapes({1, ch_, s, s}, true);
  double macs = 0;
  int L = int(layers_.size());
  for (int i = 0; i < L; ++i) {
    std::vector<Shape> ins;
    for (int p : inputs_[i]) ins.push_back(p < 0 ? Shape{1, ch_, s, s} : shapes[p]);
    macs += layers_[i]->macs(ins);
  }
  return macs * 2 / 1e9 * double(img_h) / s * double(img_w) / s;
}

void Model::init_weights(uint64_t seed) {
  for (auto& l : layers_) l->init_weights(seed * 7919 + uint64_t(l->index) + 1);
  for (auto& l : layers_) l->reset_caches();
}

std::unique_ptr<Model> load_model(const std::string& weights_path) {
  io::Checkpoint ck = io::load_checkpoint(weights_path);
  const io::ModelRecord* rec = ck.ema ? &*ck.ema : ck.model ? &*ck.model : nullptr;
  Y7_CHECK(rec, weights_path, ": checkpoint holds no model");
  std::unique_ptr<Model> m;
  try {
    m = Model::from_yaml(rec->yaml);
    // A checkpoint saved after Model.fuse() holds the fused layout (conv biases, rbr_reparam):
    // pick the layout whose names match, defaulting to the checkpoint's own claim for the errors.
    auto same_keys = [&](const Model& mm) {
      std::map<std::string, Tensor> sd = mm.state_dict();
      if (sd.size() != rec->state.size()) return false;
      for (auto& kv : sd)
        if (!rec->state.count(kv.first)) return false;
      return true;
    };
    if (!same_keys(*m)) {
      std::unique_ptr<Model> f = Model::from_yaml(rec->yaml);
      f->fuse();
      if (same_keys(*f) || rec->has_fused_layers) m = std::move(f);
    }
    m->load_state_dict(rec->state, true);
  } catch (const Error& e) {
    fail(weights_path, ": ", e.what());
  } catch (const YAML::Exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    fail(weights_path, ": model cfg: ", msg);
  }
  if (!rec->names.empty()) m->names = rec->names;
  return m;
}

}  // namespace y7::graph
