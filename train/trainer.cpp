#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "core/autograd.h"
#include "graph/model.h"
#include "graph/modules.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/pickle.h"
#include "io/data_yaml.h"
#include "train/autoanchor.h"
#include "train/dataloader.h"
#include "train/ema.h"
#include "train/evaluate.h"
#include "train/hyp.h"
#include "train/trainer_loss.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/sampling.h"
#include "train/schedule.h"
#include "io/file_util.h"

namespace fs = std::filesystem;

namespace y7::train {
namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string fmts(const char* f, const std::string& v) {
  char b[256];
  std::snprintf(b, sizeof b, f, v.c_str());
  return b;
}

// F.interpolate(x, size, mode='bilinear', align_corners=False) on a contiguous [B,C,H,W] float32.
Tensor resize_bilinear(const Tensor& x, int64_t oh, int64_t ow) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty({B, C, oh, ow});
  const float* s = xc.data<float>();
  float* d = y.data<float>();
  const double sh = double(H) / oh, sw = double(W) / ow;
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t i = 0; i < oh; ++i) {
      double fy = std::max((i + 0.5) * sh - 0.5, 0.0);
      int64_t y0 = std::min<int64_t>(int64_t(fy), H - 1), y1 = std::min<int64_t>(y0 + 1, H - 1);
      double ly = fy - y0;
      for (int64_t j = 0; j < ow; ++j) {
        double fx = std::max((j + 0.5) * sw - 0.5, 0.0);
        int64_t x0 = std::min<int64_t>(int64_t(fx), W - 1), x1 = std::min<int64_t>(x0 + 1, W - 1);
        double lx = fx - x0;
        const float* p = s + bc * H * W;
        d[(bc * oh + i) * ow + j] = float((1 - ly) * ((1 - lx) * p[y0 * W + x0] + lx * p[y0 * W + x1]) +
                                          ly * ((1 - lx) * p[y1 * W + x0] + lx * p[y1 * W + x1]));
      }
    }
  return y;
}

void write_hyp_yaml(const fs::path& p, const Hyp& h) {
  std::ofstream f(p);
  for (auto& [k, v] : h.values) {
    std::string t;
    for (int prec = 1; prec <= 17; ++prec) {  // shortest text that reads back exactly (python repr)
      char b[40];
      std::snprintf(b, sizeof b, "%.*g", prec, v);
      t = b;
      if (std::strtod(b, nullptr) == v) break;
    }
    f << k << ": " << t << "\n";
  }
}

void write_opt_yaml(const fs::path& p, const TrainOptions& o, const std::string& save_dir) {
  std::ofstream f(p);
  auto b = [](bool v) { return v ? "true" : "false"; };
  f << "weights: '" << o.weights << "'\ncfg: '" << o.cfg << "'\ndata: " << o.data << "\nhyp: " << o.hyp
    << "\nepochs: " << o.epochs << "\nbatch_size: " << o.batch_size << "\nimg_size:\n- " << o.img_size << "\n- "
    << o.img_size_test << "\nrect: " << b(o.rect) << "\nresume: " << b(o.resume) << "\nnosave: " << b(o.nosave)
    << "\nnotest: " << b(o.notest) << "\nnoautoanchor: " << b(o.noautoanchor) << "\nmulti_scale: " << b(o.multi_scale)
    << "\nsingle_cls: " << b(o.single_cls) << "\nimage_weights: " << b(o.image_weights) << "\nquad: " << b(o.quad) << "\nadam: " << b(o.adam) << "\nworkers: " << o.workers
    << "\nproject: " << o.project << "\nname: " << o.name << "\nexist_ok: " << b(o.exist_ok)
    << "\nlinear_lr: " << b(o.linear_lr) << "\nlabel_smoothing: " << o.label_smoothing << "\nsave_period: "
    << o.save_period << "\nfreeze:\n";
  for (int x : o.freeze) f << "- " << x << "\n";
  f << "seed: " << o.seed << "\nsave_dir: " << save_dir << "\ntotal_batch_size: " << o.batch_size
    << "\nworld_size: 1\nglobal_rank: -1\n";
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int check_img_size(int s, int gs) {
  Y7_CHECK(s > 0, "--img-size must be positive, got ", s);
  int n = (s + gs - 1) / gs * gs;
  if (n != s) std::printf("WARNING: --img-size %d must be multiple of max stride %d, updating to %d\n", s, gs, n);
  return n;
}

// --resume: the checkpoint (given, or the newest last.pt under the project folder) and the run's
// opt.yaml, which supplies the options like upstream.
struct ResumeState {
  fs::path ckpt_path, save_dir;
  io::Checkpoint ck;
};

fs::path latest_last_pt(const fs::path& project) {
  fs::path best;
  fs::file_time_type t{};
  if (fs::exists(project))
    for (auto& e : fs::recursive_directory_iterator(project))
      if (e.is_regular_file() && e.path().filename().string().rfind("last", 0) == 0 && e.path().extension() == ".pt" &&
          (best.empty() || e.last_write_time() > t))
        best = e.path(), t = e.last_write_time();
  Y7_CHECK(!best.empty(), "--resume: no last*.pt found under ", project.string());
  return best;
}

TrainOptions resume_options(const TrainOptions& in, ResumeState& rs) {
  rs.ckpt_path = in.weights.empty() ? latest_last_pt(in.project) : fs::path(in.weights);
  Y7_CHECK(fs::is_regular_file(rs.ckpt_path), "--resume: checkpoint ", rs.ckpt_path.string(), " does not exist");
  rs.save_dir = rs.ckpt_path.parent_path().parent_path();
  fs::path opt_yaml = rs.save_dir / "opt.yaml";
  Y7_CHECK(fs::exists(opt_yaml), "--resume: ", opt_yaml.string(), " not found next to the checkpoint");
  YAML::Node y;
  try {
    y = YAML::LoadFile(opt_yaml.string());
  } catch (const std::exception& e) {
    fail("--resume: cannot read ", opt_yaml.string(), ": ", e.what());
  }
  TrainOptions o = in;
  try {
    o.data = y["data"].as<std::string>();
    o.epochs = y["epochs"].as<int>();
    o.batch_size = y["batch_size"].as<int>();
    o.img_size = y["img_size"][0].as<int>(), o.img_size_test = y["img_size"][1].as<int>();
    for (auto [k, f] : std::initializer_list<std::pair<const char*, bool*>>{
             {"rect", &o.rect}, {"nosave", &o.nosave}, {"notest", &o.notest}, {"noautoanchor", &o.noautoanchor},
             {"multi_scale", &o.multi_scale}, {"single_cls", &o.single_cls}, {"adam", &o.adam},
             {"linear_lr", &o.linear_lr}, {"image_weights", &o.image_weights}, {"quad", &o.quad}})
      if (y[k]) *f = y[k].as<bool>();
    if (y["label_smoothing"]) o.label_smoothing = y["label_smoothing"].as<double>();
    if (y["workers"]) o.workers = y["workers"].as<int>();
    if (y["save_period"]) o.save_period = y["save_period"].as<int>();
    if (y["seed"]) o.seed = y["seed"].as<uint64_t>();
    if (y["freeze"]) o.freeze = y["freeze"].as<std::vector<int>>();
  } catch (const YAML::Exception& e) {
    fail("--resume: bad ", opt_yaml.string(), ": ", e.what());
  }
  o.hyp = (rs.save_dir / "hyp.yaml").string();
  o.resume = true;
  rs.ck = io::load_checkpoint(rs.ckpt_path.string());
  Y7_CHECK(rs.ck.epoch >= 0 && rs.ck.model && rs.ck.root && rs.ck.root->get("optimizer") &&
               !rs.ck.root->get("optimizer")->is_none(),
           rs.ckpt_path.string(), " training to ", o.epochs, " epochs is finished, nothing to resume.");
  return o;
}

}  // namespace

TrainResult run_train(const TrainOptions& o_in) {
  ResumeState rs;
  const TrainOptions o = o_in.resume ? resume_options(o_in, rs) : o_in;
  Y7_CHECK(o.epochs > 0, "--epochs must be positive, got ", o.epochs);
  Y7_CHECK(o.batch_size > 0, "--batch-size must be positive, got ", o.batch_size);
  Y7_CHECK(!o.data.empty(), "give --data data.yaml");
  Y7_CHECK(!o.cfg.empty() || !o.weights.empty(), "either --cfg or --weights must be specified");
  const auto t_start = std::chrono::steady_clock::now();
  TrainResult R;
  fs::path save_dir = o.resume ? rs.save_dir : fs::path(io::increment_path((fs::path(o.project) / o.name).string(), o.exist_ok));
  R.save_dir = save_dir.string();
  fs::path wdir = save_dir / "weights";
  fs::create_directories(wdir);
  const fs::path last = wdir / "last.pt", best = wdir / "best.pt", results_file = save_dir / "results.txt";

  // Hyperparameters
  Y7_CHECK(!o.hyp.empty(), "give --hyp hyp.yaml");
  const Hyp hyp = load_hyp(o.hyp);  // unscaled: the optimizer and schedule read it
  const AugmentHyp data_hyp = AugmentHyp::from_yaml(o.hyp);  // the augmentation keys
  if (!o.quiet) {
    std::printf("hyperparameters: ");
    for (size_t i = 0; i < hyp.values.size(); ++i)
      std::printf("%s%s=%g", i ? ", " : "", hyp.values[i].first.c_str(), hyp.values[i].second);
    std::printf("\n");
  }
  if (!o.resume) {
    write_hyp_yaml(save_dir / "hyp.yaml", hyp);
    write_opt_yaml(save_dir / "opt.yaml", o, save_dir.string());
  }

  io::DataConfig data = io::load_data_yaml(o.data);
  const int nc = o.single_cls ? 1 : data.nc;
  std::vector<std::string> names = o.single_cls && data.names.size() != 1 ? std::vector<std::string>{"item"} : data.names;
  Y7_CHECK(!data.train.empty(), "no train source in ", o.data);

  // Model
  std::unique_ptr<graph::Model> model;
  if (o.resume) {
    model = graph::Model::from_yaml(YAML::Clone(rs.ck.model->yaml), 3, nc);
    model->load_state_dict(rs.ck.model->state, true);
    std::printf("Resuming training from %s\n", rs.ckpt_path.string().c_str());
  } else if (!o.weights.empty()) {
    auto pre = graph::load_model(o.weights);
    if (!o.cfg.empty())
      model = graph::Model::from_yaml_file(o.cfg, 3, nc);
    else
      model = graph::Model::from_yaml(YAML::Clone(pre->yaml()), 3, nc);
    model->init_weights(o.seed);
    // intersect_dicts: same keys and shapes; anchors excluded when a cfg is given
    auto msd = model->state_dict();
    std::map<std::string, Tensor> sd;
    for (auto& [k, v] : pre->state_dict()) {
      auto it = msd.find(k);
      if (it == msd.end() || it->second.sizes() != v.sizes()) continue;
      if (!o.cfg.empty() && k.find("anchor") != std::string::npos) continue;
      sd[k] = v;
    }
    model->load_state_dict(sd, false);
    std::printf("Transferred %zu/%zu items from %s\n", sd.size(), msd.size(), o.weights.c_str());
  } else {
    model = graph::Model::from_yaml_file(o.cfg, 3, nc);
    model->init_weights(o.seed);
  }
  model->names = names;
  auto& det = dynamic_cast<graph::DetectLayer&>(model->layer(model->num_layers() - 1));
  Y7_CHECK(!o.aux || det.kind == graph::DetectLayer::Aux, "train_aux needs a model with an IAuxDetect head (",
           o.cfg, ")");
  Y7_CHECK(o.aux || det.kind != graph::DetectLayer::Aux,
           "this model has an IAuxDetect head: train it with 'yolo7 train_aux'");
  model->train(true);

  // Freeze
  std::vector<std::string> freeze;  // train_aux.py freezes nothing
  if (o.aux)
    ;
  else if (o.freeze.size() > 1)
    for (int x : o.freeze) freeze.push_back("model." + std::to_string(x) + ".");
  else
    for (int x = 0; x < (o.freeze.empty() ? 0 : o.freeze[0]); ++x) freeze.push_back("model." + std::to_string(x) + ".");
  for (auto& [k, t] : model->named_parameters())
    for (auto& f : freeze)
      if (k.find(f) != std::string::npos) {
        std::printf("freezing %s\n", k.c_str());
        t->set_requires_grad(false);
        break;
      }

  // Optimizer
  const int nbs = int(hyp.nbs), total_bs = o.batch_size;  // nominal batch size (train.py: 64)
  Y7_CHECK(nbs >= 1, o.hyp, ": nbs must be >= 1");
  int accumulate = nominal_accumulate(total_bs, nbs);
  const double wd = hyp.weight_decay * total_bs * accumulate / nbs;
  std::printf("Scaled weight_decay = %g\n", wd);
  auto optimizer = make_optimizer(*model, o.adam, hyp.lr0, hyp.momentum, wd);
  std::printf("Optimizer groups: %zu .bias, %zu conv.weight, %zu other\n", optimizer->groups()[2].params.size(),
              optimizer->groups()[1].params.size(), optimizer->groups()[0].params.size());
  LrLambda lf{o.linear_lr, hyp.lrf, o.epochs};
  set_epoch_lr(*optimizer, lf, 0);  // LambdaLR construction: lr = initial_lr * lf(0)

  // Image sizes
  float smax = 0;
  for (float s : model->stride()) smax = std::max(smax, s);
  const int gs = std::max(int(smax), 32);
  const int imgsz = check_img_size(o.img_size, gs), imgsz_test = check_img_size(o.img_size_test, gs);

  // Loaders
  LoaderPair train = make_train_loader(data.train, imgsz, o.batch_size, gs, data_hyp, o.workers, o.seed, o.rect,
                                       o.single_cls, o.quad);
  int mlc = -1;
  for (auto& l : train.dataset->labels())
    for (auto& r : l) mlc = std::max(mlc, int(r[0]));
  Y7_CHECK(mlc < nc, "Label class ", mlc, " exceeds nc=", nc, " in ", o.data, ". Possible class labels are 0-", nc - 1);
  const int64_t nb = int64_t(train.loader->num_batches());
  Y7_CHECK(nb > 0, "no training batches in ", o.data);

  // Anchors
  if (!o.resume) {
    if (!o.noautoanchor) check_anchors(*train.dataset, *model, hyp.anchor_t, imgsz);
    // model.half().float(): every float parameter and buffer rounded to float16 precision
    for (auto& [k, v] : model->state_dict())
      if (v.dtype() == DType::F32) v.copy_(v.to(DType::F16));
    model->reset_caches();
  }

  // EMA
  ModelEMA ema(*model);
  int start_epoch = 0;
  double best_fitness = 0;
  if (o.resume) {
    optimizer->load_state_dict(*rs.ck.root->get("optimizer"));
    if (rs.ck.ema) {
      ema.ema().load_state_dict(rs.ck.ema->state, true);
      ema.updates = rs.ck.updates.value_or(0);
    }
    best_fitness = rs.ck.best_fitness.value_or(0.0);
    if (const io::PickleValue* tr = rs.ck.root->get("training_results"); tr && tr->is(io::PickleValue::Kind::String))
      std::ofstream(results_file) << tr->str;
    start_epoch = int(rs.ck.epoch) + 1;
    Y7_CHECK(start_epoch < o.epochs, rs.ckpt_path.string(), " training to ", o.epochs,
             " epochs is finished, nothing to resume.");
    rs.ck = io::Checkpoint();  // free the checkpoint's memory
  }

  // Loss
  TrainLoss loss_fn(o.hyp, o.label_smoothing, det, nc, imgsz);

  const int64_t nw = warmup_iterations(hyp.warmup_epochs, nb, int64_t(hyp.warmup_min_iters));
  std::array<double, 7> results{0, 0, 0, 0, 0, 0, 0};
  std::mt19937_64 ms_rng(o.seed ^ 0x9e3779b97f4a7c15ULL);
  std::printf("Image sizes %d train, %d test\nUsing %d dataloader workers\nLogging results to %s\n"
              "Starting training for %d epochs...\n",
              imgsz, imgsz_test, o.workers, save_dir.string().c_str(), o.epochs);

  // --image-weights: model.class_weights (inverse label frequencies x nc) and the last per-class
  // mAP@.5:.95 (zeros until the first test) steer each epoch's weighted draw of images
  std::vector<double> class_weights, maps(size_t(nc), 0.0);
  if (o.image_weights) {
    class_weights = labels_to_class_weights(train.dataset->labels(), nc);
    for (double& c : class_weights) c *= nc;
  }
  std::mt19937_64 iw_rng(o.seed ^ 0x696d616765ULL);

  for (int epoch = start_epoch; epoch < o.epochs; ++epoch) {
    std::array<double, 4> mloss{0, 0, 0, 0};
    if (o.image_weights) {
      std::vector<double> epoch_cw(class_weights.size());
      for (size_t c = 0; c < epoch_cw.size(); ++c) epoch_cw[c] = class_weights[c] * (1 - maps[c]) * (1 - maps[c]) / nc;
      const auto& labels = train.dataset->labels();
      train.dataset->set_indices(weighted_choices(labels_to_image_weights(labels, nc, epoch_cw), labels.size(), iw_rng));
    }
    std::printf("\n%10s%10s%10s%10s%10s%10s%10s%10s\n", "Epoch", "gpu_mem", "box", "obj", "cls", "total", "labels",
                "img_size");
    train.loader->start_epoch(epoch);
    model->zero_grad();
    Batch batch;
    std::string s;
    int64_t i = 0;
    for (; train.loader->next(batch); ++i) {
      const int64_t ni = i + nb * epoch;
      Tensor imgs = batch.imgs;
      if (ni <= nw)
        accumulate = apply_warmup(*optimizer, ni, nw, epoch, lf, hyp.warmup_bias_lr, hyp.warmup_momentum,
                                  hyp.momentum, total_bs, nbs);
      if (o.multi_scale) {
        const int lo = int(imgsz * 0.5), hi = int(imgsz * 1.5 + gs);
        std::uniform_int_distribution<int> u(lo, hi - 1);
        const int sz = u(ms_rng) / gs * gs;
        const double sf = double(sz) / std::max(imgs.size(2), imgs.size(3));
        if (sf != 1) {
          int64_t nh = int64_t(std::ceil(imgs.size(2) * sf / gs)) * gs, nw2 = int64_t(std::ceil(imgs.size(3) * sf / gs)) * gs;
          imgs = resize_bilinear(imgs, nh, nw2);
        }
      }
      // Forward, loss (scaled by batch size), backward
      std::vector<Tensor> raw = model->forward_train(imgs);
      StepLoss lr = loss_fn(raw, batch.targets, imgs.size(2));
      Y7_CHECK(std::isfinite(lr.loss), "training diverged: non-finite loss at epoch ", epoch, " batch ", i);
      y7::backward(raw, lr.grads);
      raw.clear();
      // Optimize
      if (ni % accumulate == 0) {
        optimizer->step();
        model->zero_grad();
        model->reset_caches();
        ema.update(*model);
      }
      const double items[4] = {lr.lbox, lr.lobj, lr.lcls, lr.total};
      for (int k = 0; k < 4; ++k) mloss[k] = (mloss[k] * double(i) + items[k]) / double(i + 1);
      char buf[256];
      std::snprintf(buf, sizeof buf, "%10s%10s%10.4g%10.4g%10.4g%10.4g%10.4g%10.4g",
                    (std::to_string(epoch) + "/" + std::to_string(o.epochs - 1)).c_str(), "0G", mloss[0], mloss[1],
                    mloss[2], mloss[3], double(batch.targets.size(0)), double(imgs.size(3)));
      s = buf;
      if (!o.quiet) std::printf("%s  %lld/%lld\n", s.c_str(), (long long)(i + 1), (long long)nb);
    }
    if (o.quiet) std::printf("%s\n", s.c_str());
    std::fflush(stdout);
    R.mloss.push_back(mloss);
    // Scheduler
    set_epoch_lr(*optimizer, lf, epoch + 1);

    // mAP
    const bool final_epoch = epoch + 1 == o.epochs;
    if ((!o.notest || final_epoch) && !data.val.empty()) {
      auto em = clone_model(ema.ema());
      em->fuse();
      TestOptions to;
      to.data = o.data;
      to.batch_size = o.batch_size * 2;
      to.img_size = imgsz_test;
      to.single_cls = o.single_cls;
      to.workers = o.workers;
      to.verbose = nc < 50 && final_epoch;
      to.compute_loss = [&](const std::vector<Tensor>& raw, const Tensor& targets, int64_t) {
        return loss_fn.val_loss(raw, targets);
      };
      TestResults tr = run_test(*em, to);
      results = {tr.metrics.mp, tr.metrics.mr, tr.metrics.map50, tr.metrics.map, tr.loss[0], tr.loss[1], tr.loss[2]};
      if (tr.metrics.maps.size() == size_t(nc)) maps = tr.metrics.maps;
    }
    {
      std::ofstream f(results_file, std::ios::app);
      f << s;
      for (double v : results) f << fmt("%10.4g", v);
      f << "\n";
    }
    R.results.push_back(results);
    const double fi = fitness(results[0], results[1], results[2], results[3]);
    if (fi > best_fitness) best_fitness = fi;

    // Save
    if (!o.nosave || final_epoch) {
      io::TrainingCheckpoint ck;
      ck.epoch = epoch;
      ck.best_fitness = best_fitness;
      ck.training_results = read_text(results_file);
      ck.model = model.get();
      ck.ema = &ema.ema();
      ck.updates = ema.updates;
      ck.optimizer = optimizer->state_dict();
      ck.wandb_id = io::py::none();
      ck.model_attrs = {{"nc", io::py::integer(nc)}, {"gr", io::py::real(1.0)}};
      io::save_training_checkpoint(last.string(), ck);
      if (best_fitness == fi) io::copy_file_atomic(last.string(), best.string());
      auto keep = [&](const std::string& name) {
        io::copy_file_atomic(last.string(), (wdir / (name + fmt("%03.0f", epoch) + ".pt")).string());
      };
      if (best_fitness == fi && epoch >= 200) keep("best_");
      if (epoch == 0 || (epoch + 1) % 25 == 0 || epoch >= o.epochs - 5) keep("epoch_");  // train.py's snapshots
    }
  }
  R.best_fitness = best_fitness;
  // strip_optimizer: the EMA model alone, half precision
  for (const fs::path& f : {last, best})
    if (fs::exists(f)) {
      auto m = graph::load_model(f.string());
      io::save_stripped_checkpoint(f.string(), *m, true);
    }
  R.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::printf("%d epochs completed in %.3f hours.\n", o.epochs - start_epoch, R.seconds / 3600);
  return R;
}

}  // namespace y7::train
