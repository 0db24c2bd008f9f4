// Quantization-aware training on the graph IR (see qat.h for what it mirrors).
#include "quant/qat.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "graph/model.h"
#include "graph/modules.h"
#include "io/data_yaml.h"
#include "io/file_util.h"
#include "io/npy.h"
#include "kernels/ops.h"
#include "train/augment.h"
#include "train/dataloader.h"
#include "train/hyp.h"
#include "train/schedule.h"
#include "train/trainer_loss.h"

namespace fs = std::filesystem;

namespace y7::quant {

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

// ---------------------------------------------------------------- TQT

int tqt_fix_point(float lt, int bw) {
  Y7_CHECK(std::isfinite(lt), "qat: non-finite log threshold");
  return bw - 1 - int(std::ceil(lt));
}

float tqt_init_log_threshold(int fp, int bw) { return float(bw - 1 - fp) - 0.5f; }

TqtGrads tqt_backward(const Tensor& gy, const Tensor& x, float lt, int bw, Round m) {
  Y7_CHECK(gy.sizes() == x.sizes(), "tqt_backward: gradient ", gy.str(), " vs input ", x.str());
  const int fp = tqt_fix_point(lt, bw);
  const double scale = std::ldexp(1.0, -fp);  // 2^ceil(lt) / 2^(bw-1)
  const float inv = std::ldexp(1.0f, fp);
  const float qmin = -std::ldexp(1.0f, bw - 1), qmax = std::ldexp(1.0f, bw - 1) - 1;
  Tensor gc = gy.contiguous(), xc = x.contiguous();
  TqtGrads r;
  r.dx = Tensor::empty(x.sizes());
  const float *pg = gc.data<float>(), *px = xc.data<float>();
  float* pd = r.dx.data<float>();
  double s = 0;
  for (int64_t i = 0, n = xc.numel(); i < n; ++i) {
    const float sx = px[i] * inv;
    const float q = round_nndct(sx, m);
    double d;
    if (q < qmin) d = qmin, pd[i] = 0.f;
    else if (q > qmax) d = qmax, pd[i] = 0.f;
    else d = double(q) - double(sx), pd[i] = pg[i];
    s += double(pg[i]) * d;
  }
  r.dlt = s * scale * std::log(2.0);
  return r;
}

Tensor tqt_fake_quant(const Tensor& x, const Tensor& lt, int bw, Round m) {
  Y7_CHECK(lt.defined() && lt.numel() == 1 && lt.dtype() == DType::F32, "tqt_fake_quant: log threshold must be one float");
  const float l = lt.contiguous().data<float>()[0];
  Tensor xs = x;
  xs.set_autograd(nullptr);
  Tensor y = fake_quant(xs, tqt_fix_point(l, bw), bw, m);
  if (any_requires_grad({&x, &lt})) {
    const bool need_dx = x.requires_grad() || x.autograd();
    record_fn("TqtFakeQuantBackward", {&x, &lt}, y, [xs, l, bw, m, need_dx](const std::vector<Tensor>& g) {
      TqtGrads r = tqt_backward(g[0], xs, l, bw, m);
      return std::vector<Tensor>{need_dx ? r.dx : Tensor(), Tensor::full({1}, r.dlt)};
    });
  }
  return y;
}

// ---------------------------------------------------------------- QatGraph

namespace {
Tensor leaf(const Tensor& t) {
  Tensor c = t.contiguous().clone();
  c.set_requires_grad(true);
  return c;
}
Tensor lt_leaf(int fp) { return leaf(Tensor::full({1}, tqt_init_log_threshold(fp))); }
float lt_value(const Tensor& t) { return t.contiguous().data<float>()[0]; }
}  // namespace

QatGraph::QatGraph(const IrGraph& g, const QuantConfig& c, const QuantOptions& o) : opt_(o) {
  check_config_matches(c, g, o);
  identity_ = graph_identity(g);
  qg_ = convert_for_dpu(g, o);
  plan_ = make_plan(qg_);
  const size_t N = qg_.nodes.size();
  act_lt_.resize(N), w_lt_.resize(N), b_lt_.resize(N);
  for (size_t i = 0; i < N; ++i) {
    IrNode& n = qg_.nodes[i];
    if (plan_.has_fix[i]) act_lt_[i] = lt_leaf(c.output_fp(n.name));
    if (n.op == IrOp::Conv) {
      n.weight = leaf(n.weight);
      n.bias = leaf(n.bias);
      w_lt_[i] = lt_leaf(c.weight_fp(n.name));
      b_lt_[i] = lt_leaf(c.bias_fp(n.name));
    }
  }
}

std::vector<Tensor> QatGraph::forward_train(const Tensor& x) const {
  const int N = int(qg_.nodes.size());
  Y7_CHECK(x.dim() == 4 && x.dtype() == DType::F32, "qat: input must be float32 [B,C,H,W], got ", x.str());
  qg_.infer_shapes(x.sizes());  // one-line shape errors before any work
  std::vector<int> last(size_t(N), -1);
  for (int i = 0; i < N; ++i)
    for (int p : qg_.nodes[size_t(i)].in) last[size_t(p)] = i;
  for (int o : qg_.outputs) last[size_t(o)] = N;
  std::vector<Tensor> v(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) {
    const IrNode& n = qg_.nodes[size_t(i)];
    auto in = [&](int k) -> const Tensor& { return v[size_t(n.in[size_t(k)])]; };
    Tensor y;
    switch (n.op) {
      case IrOp::Input: y = x; break;
      case IrOp::Conv: {
        ops::Conv2dParams p;
        p.stride = n.stride, p.pad = n.pad, p.dilation = n.dilation, p.groups = n.groups;
        Tensor w = tqt_fake_quant(n.weight, w_lt_[size_t(i)], 8, kParamRound);
        Tensor b = tqt_fake_quant(n.bias, b_lt_[size_t(i)], 8, kParamRound);
        y = ops::conv2d(in(0), w, b, p);
        break;
      }
      case IrOp::Act: y = ops::activation(in(0), n.act, n.alpha); break;
      case IrOp::MaxPool: y = ops::max_pool2d(in(0), n.k, n.s, n.p); break;
      case IrOp::Upsample: y = ops::upsample_nearest2d(in(0), n.scale); break;
      case IrOp::Concat: {
        std::vector<Tensor> xs;
        for (size_t k = 0; k < n.in.size(); ++k) xs.push_back(in(int(k)));
        y = ops::concat(xs, n.axis);
        break;
      }
      case IrOp::Add: y = ops::add(in(0), in(1)); break;
      default: fail("qat: node '", n.name, "' (", graph::ir_op_name(n.op), ") cannot be trained");
    }
    if (plan_.has_fix[size_t(i)]) y = tqt_fake_quant(y, act_lt_[size_t(i)], 8, kActRound);
    v[size_t(i)] = y;
    for (int p : n.in)
      if (last[size_t(p)] == i) v[size_t(p)] = Tensor();
  }
  std::vector<Tensor> outs;
  for (int o : qg_.outputs) outs.push_back(v[size_t(o)]);
  return outs;
}

std::vector<Tensor*> QatGraph::weights() {
  std::vector<Tensor*> r;
  for (auto& n : qg_.nodes)
    if (n.op == IrOp::Conv) r.push_back(&n.weight);
  return r;
}
std::vector<Tensor*> QatGraph::biases() {
  std::vector<Tensor*> r;
  for (auto& n : qg_.nodes)
    if (n.op == IrOp::Conv) r.push_back(&n.bias);
  return r;
}
std::vector<Tensor*> QatGraph::thresholds() {
  std::vector<Tensor*> r;
  for (auto* vec : {&act_lt_, &w_lt_, &b_lt_})
    for (auto& t : *vec)
      if (t.defined()) r.push_back(&t);
  return r;
}
void QatGraph::zero_grad() {
  auto z = [](Tensor* t) {
    if (t->autograd()) t->autograd()->grad = Tensor();
  };
  for (auto* t : weights()) z(t);
  for (auto* t : biases()) z(t);
  for (auto* t : thresholds()) z(t);
}

int QatGraph::fix_point(const std::string& key) const {
  for (size_t i = 0; i < qg_.nodes.size(); ++i) {
    const std::string& nm = qg_.nodes[i].name;
    if (key == nm && act_lt_[i].defined()) return tqt_fix_point(lt_value(act_lt_[i]));
    if (key == nm + ".weight" && w_lt_[i].defined()) return tqt_fix_point(lt_value(w_lt_[i]));
    if (key == nm + ".bias" && b_lt_[i].defined()) return tqt_fix_point(lt_value(b_lt_[i]));
  }
  return -1;
}

QuantConfig QatGraph::export_config(int img_size) const {
  QuantConfig c;
  c.convert_silu_to_hswish = opt_.convert_silu_to_hswish;
  c.convert_sigmoid_to_hsigmoid = opt_.convert_sigmoid_to_hsigmoid;
  c.graph_hash = identity_;
  c.img_size = img_size;
  for (size_t i = 0; i < qg_.nodes.size(); ++i) {
    const IrNode& n = qg_.nodes[i];
    if (act_lt_[i].defined()) c.output[n.name] = tqt_fix_point(lt_value(act_lt_[i]));
    if (n.op == IrOp::Conv) {
      c.param[n.name + ".weight"] = tqt_fix_point(lt_value(w_lt_[i]));
      c.param[n.name + ".bias"] = tqt_fix_point(lt_value(b_lt_[i]));
    }
  }
  adjust_fix_points(qg_, plan_, c);
  return c;
}

void QatGraph::save(const std::string& dir, int img_size) const {
  fs::create_directories(fs::path(dir) / "params");
  std::ostringstream lts;
  lts.precision(9);
  for (size_t i = 0; i < qg_.nodes.size(); ++i) {
    const IrNode& n = qg_.nodes[i];
    if (act_lt_[i].defined()) lts << n.name << " " << lt_value(act_lt_[i]) << "\n";
    if (n.op != IrOp::Conv) continue;
    lts << n.name << ".weight " << lt_value(w_lt_[i]) << "\n" << n.name << ".bias " << lt_value(b_lt_[i]) << "\n";
    Tensor w = n.weight, b = n.bias;
    w.set_autograd(nullptr), b.set_autograd(nullptr);
    io::write_npy((fs::path(dir) / "params" / (n.name + ".weight.npy")).string(), w);
    io::write_npy((fs::path(dir) / "params" / (n.name + ".bias.npy")).string(), b);
  }
  const std::string t = lts.str();
  io::write_file_atomic((fs::path(dir) / "log_thresholds.txt").string(), t.data(), t.size());
  save_config(export_config(img_size), (fs::path(dir) / "quant_info.json").string());
}

void load_qat_params(IrGraph& g, const std::string& dir) {
  const fs::path pd = fs::path(dir) / "params";
  Y7_CHECK(fs::is_directory(pd), "qat: ", pd.string(), " not found (run yolo7 train_qat first)");
  for (auto& n : g.nodes) {
    if (n.op != IrOp::Conv) continue;
    for (auto [t, suf] : {std::pair<Tensor*, const char*>{&n.weight, ".weight.npy"}, {&n.bias, ".bias.npy"}}) {
      const fs::path p = pd / (n.name + suf);
      Y7_CHECK(fs::is_regular_file(p), "qat: ", p.string(), " not found (trained for another model?)");
      Tensor v = io::read_npy(p.string());
      Y7_CHECK(v.dtype() == DType::F32 && v.sizes() == t->sizes(), "qat: ", p.string(), " has ", v.str(), ", the model ",
               t->str());
      *t = v;
    }
  }
  g.reset_caches();
}

// ---------------------------------------------------------------- training

namespace {

// torch.optim.SGD(nesterov=True) for one parameter list.
struct SgdGroup {
  std::vector<Tensor*> params;
  double lr0 = 0, weight_decay = 0;
  std::vector<Tensor> buf;
  std::vector<bool> started;
  void step(double lr_factor, double momentum) {
    buf.resize(params.size());
    started.resize(params.size(), false);
    const double lr = lr0 * lr_factor;
    for (size_t k = 0; k < params.size(); ++k) {
      Tensor& p = *params[k];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      g = g.contiguous();
      float* pp = p.data<float>();
      const float* pg = g.data<float>();
      if (!buf[k].defined()) buf[k] = Tensor::zeros(p.sizes());
      float* pb = buf[k].data<float>();
      const bool first = !started[k];  // torch: buf = d_p on the first step
      started[k] = true;
      for (int64_t i = 0; i < p.numel(); ++i) {
        const double d = double(pg[i]) + weight_decay * pp[i];
        const double b = first ? d : momentum * pb[i] + d;
        pb[i] = float(b);
        pp[i] = float(pp[i] - lr * (d + momentum * b));
      }
    }
  }
};

}  // namespace

QatResult run_train_qat(const QatOptions& o) {
  Y7_CHECK(!o.weights.empty(), "train_qat: --weights (the float checkpoint to quantize) is required");
  Y7_CHECK(fs::is_regular_file(o.weights), "train_qat: weights ", o.weights, " not found");
  Y7_CHECK(!o.data.empty() && fs::is_regular_file(o.data), "train_qat: data yaml '", o.data, "' not found");
  Y7_CHECK(!o.hyp.empty() && fs::is_regular_file(o.hyp), "train_qat: hyp yaml '", o.hyp, "' not found");
  Y7_CHECK(o.epochs > 0, "train_qat: --epochs must be positive, got ", o.epochs);
  Y7_CHECK(o.batch_size > 0 && o.batch_size <= 4096, "train_qat: bad --batch-size ", o.batch_size);
  Y7_CHECK(o.img_size > 0 && o.img_size <= 16384, "train_qat: bad --img-size ", o.img_size);
  Y7_CHECK(o.calib_batches > 0, "train_qat: calibration batches must be positive");
  Y7_CHECK(std::isfinite(o.log_threshold_scale) && o.log_threshold_scale >= 0, "train_qat: bad --log_threshold_scale");
  const auto t0 = std::chrono::steady_clock::now();
  const train::Hyp hyp = train::load_hyp(o.hyp);
  const train::AugmentHyp aug = train::AugmentHyp::from_yaml(o.hyp);
  io::DataConfig data = io::load_data_yaml(o.data);
  Y7_CHECK(!data.train.empty(), "train_qat: no train source in ", o.data);

  std::unique_ptr<graph::Model> model = graph::load_model(o.weights);
  if (!o.cfg.empty()) {  // the cfg's structure, the checkpoint's weights (all of them must fit)
    auto m = graph::Model::from_yaml_file(o.cfg, 3, data.nc);
    m->load_state_dict(model->state_dict(), true);
    m->names = model->names;
    model = std::move(m);
  }
  auto* det = dynamic_cast<graph::DetectLayer*>(&model->layer(model->num_layers() - 1));
  Y7_CHECK(det && det->kind != graph::DetectLayer::Aux, "train_qat: the model needs a Detect/IDetect head (train_qat.py "
           "refuses IAuxDetect)");
  float smax = 0;
  for (float s : model->stride()) smax = std::max(smax, s);
  const int gs = std::max(int(smax), 32);
  const int imgsz = (o.img_size + gs - 1) / gs * gs;
  train::TrainLoss loss_fn(o.hyp, 0.0, *det, data.nc, imgsz);
  const int na = det->na, no = det->no;
  model->train(false);
  model->fuse();
  IrGraph g = graph::lower(*model, {1, model->in_channels(), imgsz, imgsz});

  QuantOptions qo = o.quant;
  qo.bias_correction = false;  // QAT learns the biases
  Calibrator cal(g, qo);       // refuses SiLU/Sigmoid without the convert flags, DPU-less ops
  Y7_CHECK(det->nc == data.nc, "train_qat: the model has nc=", det->nc, ", ", o.data, " nc=", data.nc);

  QatResult R;
  fs::path save_dir = io::increment_path((fs::path(o.project) / o.name).string(), o.exist_ok);
  fs::create_directories(save_dir);
  R.save_dir = save_dir.string();
  R.qat_dir = (save_dir / "qat").string();

  // initial fix points: a short PTQ calibration on training images (letterboxed, no augmentation)
  {
    NoGradGuard ng;
    auto cl = train::make_val_loader(data.train, imgsz, o.batch_size, gs, o.workers, false, false);
    cl.loader->start_epoch(0);
    train::Batch b;
    for (int k = 0; k < o.calib_batches && cl.loader->next(b); ++k) cal.add_batch(b.imgs);
  }
  QuantConfig init = cal.finish(imgsz);
  init.bias_corr.clear();
  QatGraph qat(g, init, qo);
  std::printf("train_qat: %d fix neurons, %zu convs; thresholds initialized from %lld calibration images\n",
              qat.plan().num_fix(), qat.weights().size(), static_cast<long long>(init.calib_images));

  auto tl = train::make_train_loader(data.train, imgsz, o.batch_size, gs, aug, o.workers, o.seed);
  const int64_t nb = int64_t(tl.loader->num_batches());
  Y7_CHECK(nb > 0, "train_qat: no training batches in ", o.data);
  const int nbs = int(hyp.nbs);
  const int accumulate = std::max(int(std::lround(double(nbs) / o.batch_size)), 1);
  SgdGroup gw{qat.weights(), hyp.lr0, hyp.weight_decay * o.batch_size * accumulate / nbs, {}, {}};
  SgdGroup gb{qat.biases(), hyp.lr0, 0.0, {}, {}};
  SgdGroup gt{qat.thresholds(), hyp.lr0 * o.log_threshold_scale, 0.0, {}, {}};
  train::LrLambda lf{false, hyp.lrf, o.epochs};

  std::printf("Starting QAT for %d epochs (%lld batches of %d at %d px, accumulate %d)\n", o.epochs,
              static_cast<long long>(nb), o.batch_size, imgsz, accumulate);
  int64_t ni = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    const double f = lf(epoch);
    std::array<double, 4> ml{0, 0, 0, 0};
    tl.loader->start_epoch(epoch);
    qat.zero_grad();
    train::Batch batch;
    int64_t i = 0;
    for (; tl.loader->next(batch); ++i, ++ni) {
      std::vector<Tensor> raw = qat.forward_train(batch.imgs);
      std::vector<Tensor> maps;
      for (auto& r : raw)
        maps.push_back(ops::contiguous(ops::permute(ops::reshape(r, {r.size(0), na, no, r.size(2), r.size(3)}), {0, 1, 3, 4, 2})));
      raw.clear();
      train::StepLoss sl = loss_fn(maps, batch.targets, batch.imgs.size(2));
      Y7_CHECK(std::isfinite(sl.loss), "train_qat: non-finite loss at epoch ", epoch, " batch ", i);
      y7::backward(maps, sl.grads);
      maps.clear();
      if ((ni + 1) % accumulate == 0) {
        gw.step(f, hyp.momentum), gb.step(f, hyp.momentum), gt.step(f, hyp.momentum);
        qat.zero_grad();
      }
      const double items[4] = {sl.lbox, sl.lobj, sl.lcls, sl.total};
      for (int k = 0; k < 4; ++k) ml[size_t(k)] = (ml[size_t(k)] * double(i) + items[k]) / double(i + 1);
      if (!o.quiet)
        std::printf("%10s %10.4g%10.4g%10.4g%10.4g  %lld/%lld\n",
                    (std::to_string(epoch) + "/" + std::to_string(o.epochs - 1)).c_str(), ml[0], ml[1], ml[2], ml[3],
                    static_cast<long long>(i + 1), static_cast<long long>(nb));
    }
    R.mloss.push_back(ml);
    std::printf("epoch %d/%d: box %.4g obj %.4g cls %.4g total %.4g\n", epoch, o.epochs - 1, ml[0], ml[1], ml[2], ml[3]);
    std::fflush(stdout);
    qat.save(R.qat_dir, imgsz);  // the QAT state after every epoch
  }
  R.config = qat.export_config(imgsz);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d QAT epochs completed in %.3f hours. Results in %s; evaluate with: yolo7 quant --nndct_qat --weights %s "
              "--data %s --output_dir %s --quant_mode test\n",
              o.epochs, secs / 3600, R.qat_dir.c_str(), o.weights.c_str(), o.data.c_str(), R.qat_dir.c_str());
  return R;
}

}  // namespace y7::quant
