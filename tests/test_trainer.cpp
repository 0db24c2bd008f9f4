// Trainer: the training step (train-mode forward -> loss -> backward -> optimizer) and the
// `yolo7 train` run on the synthetic shapes set (train/shapes.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/autograd.h"
#include "graph/model.h"
#include "graph/modules.h"
#include "io/checkpoint.h"
#include "train/autoanchor.h"
#include "train/dataset.h"
#include "train/optimizer.h"
#include "train/shapes.h"
#include "train/trainer.h"
#include "train/trainer_loss.h"
#include "tests/cli_util.h"

using namespace y7;
namespace fs = std::filesystem;

namespace {

// a hyp without augmentation, lr0 as given
std::string write_hyp(const fs::path& dir, double lr0) {
  YAML::Node h = YAML::LoadFile(test::repo_file("data/hyp.scratch.tiny.yaml"));
  for (const char* k : {"hsv_h", "hsv_s", "hsv_v", "translate", "scale", "fliplr", "mosaic", "mixup", "paste_in"})
    h[k] = 0.0;
  h["lr0"] = lr0;
  std::string p = (dir / "hyp.yaml").string();
  std::ofstream(p) << YAML::Dump(h);
  return p;
}

}  // namespace

TEST(Trainer, StepsReduceLossOnAFixedBatch) {
  fs::path dir = fs::temp_directory_path() / "y7_trainer_step";
  fs::remove_all(dir);
  auto model = graph::Model::from_yaml_file(test::write_tiny_cfg(dir), 3, 6);
  model->init_weights(0);
  model->train(true);
  auto& det = dynamic_cast<graph::DetectLayer&>(model->layer(model->num_layers() - 1));
  train::TrainLoss loss(write_hyp(dir, 0.01), 0.0, det, 6, 64);
  // a batch of 4 synthetic 64x64 images
  const int B = 4, S = 64;
  Tensor imgs = Tensor::empty({B, 3, S, S});
  std::vector<float> rows;
  for (int b = 0; b < B; ++b) {
    auto im = train::make_shape_image(S, 100 + b);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          imgs.data<float>()[((b * 3 + c) * S + y) * S + x] = im.img.data[(y * S + x) * 3 + c] / 255.f;
    for (auto& o : im.objects)
      rows.insert(rows.end(), {float(b), float(o.cls), (o.x0 + o.x1) / 2.f / S, (o.y0 + o.y1) / 2.f / S,
                               float(o.x1 - o.x0) / S, float(o.y1 - o.y0) / S});
  }
  Tensor targets = Tensor::from_vector(rows, {int64_t(rows.size() / 6), 6});
  auto opt = train::make_optimizer(*model, false, 0.05, 0.937, 0.0005);
  std::vector<double> curve;
  for (int it = 0; it < 20; ++it) {
    auto raw = model->forward_train(imgs);
    train::StepLoss l = loss(raw, targets, S);
    curve.push_back(l.total);
    backward(raw, l.grads);
    opt->step();
    model->zero_grad();
    model->reset_caches();
  }
  std::printf("  loss per step:");
  for (double v : curve) std::printf(" %.4f", v);
  std::printf("\n");
  EXPECT_LT(curve.back(), 0.8 * curve.front());
}

TEST(Trainer, CliRunWritesUpstreamRunFolder) {
  fs::path dir = test::scratch("trainer_cli");
  train::ShapesOptions so;
  so.n_train = 16, so.n_val = 8, so.size = 96, so.seed = 3;
  std::string data = train::write_shapes_dataset((dir / "shapes").string(), so);
  std::string cfg = test::write_tiny_cfg(dir), hyp = write_hyp(dir, 0.01);
  const std::string common = " --cfg " + cfg + " --data " + data + " --hyp " + hyp +
                             " --epochs 2 --batch-size 8 --img-size 96 --workers 1 --quiet --notest --project " +
                             (dir / "runs").string() + " --name exp";
  auto r = test::run_cli("train" + common);
  ASSERT_EQ(r.code, 0) << r.out;
  fs::path run = dir / "runs" / "exp";
  EXPECT_NE(r.out.find("Optimizer groups: 58 .bias, 58 conv.weight, 61 other"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Scaled weight_decay = 0.0005"), std::string::npos) << r.out;  // bs 8 x accumulate 8 = 64
  for (const char* f : {"weights/last.pt", "weights/best.pt", "hyp.yaml", "opt.yaml", "results.txt"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  // results.txt: one line per epoch, 8 + 7 columns; --notest still evaluates the final epoch
  std::ifstream rf(run / "results.txt");
  std::string line;
  int n = 0;
  while (std::getline(rf, line)) {
    std::istringstream ss(line);
    std::vector<std::string> cols;
    for (std::string c; ss >> c;) cols.push_back(c);
    EXPECT_EQ(cols.size(), 15u) << line;
    if (cols.size() == 15) {
      EXPECT_EQ(cols[0], std::to_string(n) + "/1");
      EXPECT_TRUE(std::isfinite(std::stod(cols[5])) && std::stod(cols[5]) > 0) << line;
      if (n == 1)  // the evaluated (final) epoch: test.py's val box/obj/cls losses (plain ComputeLoss)
        for (int c = 12; c < 15; ++c) EXPECT_GT(std::stod(cols[c]), 0) << line;
    }
    ++n;
  }
  EXPECT_EQ(n, 2);
  // the stripped checkpoint loads as a model (the EMA)
  auto m = graph::load_model((run / "weights/last.pt").string());
  EXPECT_EQ(m->nc(), 6);
  // a second run increments the folder name; a bad option fails with one line
  auto r2 = test::run_cli("train" + common + " --epochs 1 --nosave --image-weights --quad");
  ASSERT_EQ(r2.code, 0) << r2.out;
  EXPECT_TRUE(fs::exists(dir / "runs" / "exp2" / "results.txt"));
  auto bad = test::run_cli("train --cfg " + cfg + " --data " + data + " --hyp " + hyp + " --batch-size 0");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("yolo7: error:"), std::string::npos) << bad.out;
  auto aux = test::run_cli("train_aux" + common);
  EXPECT_EQ(aux.code, 1);
  EXPECT_NE(aux.out.find("IAuxDetect"), std::string::npos) << aux.out;
}

TEST(AutoAnchor, MetricMatchesUpstreamAndKmeansRecovers) {
  // upstream check_anchors' metric() in torch on these sizes and yolov7's anchors: bpr 0.75, aat 3.0
  std::vector<std::array<float, 2>> wh = {{5, 7},    {12, 30},   {40, 38}, {100, 60},
                                          {200, 220}, {3, 3},    {64, 16}, {150, 10}};
  std::vector<std::array<float, 2>> k = {{10, 13}, {16, 30},  {33, 23},   {30, 61},  {62, 45},
                                         {59, 119}, {116, 90}, {156, 198}, {373, 326}};
  auto m = train::anchor_metric(wh, k, 4.0);
  EXPECT_DOUBLE_EQ(m.bpr, 0.75);
  EXPECT_DOUBLE_EQ(m.aat, 3.0);
  // three tight clusters of sizes: k-means + evolution finds anchors that recall all of them
  std::vector<std::array<float, 2>> pts;
  const float centers[3][2] = {{8, 40}, {60, 12}, {150, 150}};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 30; ++i)
      pts.push_back({centers[c][0] * (1 + 0.01f * (i % 7 - 3)), centers[c][1] * (1 + 0.01f * (i % 5 - 2))});
  auto bad = std::vector<std::array<float, 2>>{{300, 300}, {310, 320}, {320, 310}};
  EXPECT_LT(train::anchor_metric(pts, bad, 4.0).bpr, 0.5);
  auto ka = train::kmean_anchors(pts, 3, 4.0, 200, 0);
  ASSERT_EQ(ka.size(), 3u);
  EXPECT_DOUBLE_EQ(train::anchor_metric(pts, ka, 4.0).bpr, 1.0);
  for (int c = 0; c < 3; ++c) {  // sorted by area: (60,12), (8,40)... areas 720, 320 -> (8,40) first
    const float* want = c == 0 ? centers[0] : c == 1 ? centers[1] : centers[2];
    EXPECT_NEAR(ka[c][0] / want[0], 1.0, 0.15) << c;
    EXPECT_NEAR(ka[c][1] / want[1], 1.0, 0.15) << c;
  }
}

TEST(AutoAnchor, CheckAnchorsInstallsBetterAnchors) {
  fs::path dir = test::scratch("autoanchor");
  train::ShapesOptions so;
  so.n_train = 16, so.n_val = 1, so.size = 96, so.seed = 4;
  train::write_shapes_dataset((dir / "shapes").string(), so);
  train::DatasetOptions dopt;
  dopt.img_size = 96, dopt.verbose = false;
  train::Dataset ds({(dir / "shapes" / "images" / "train").string()}, dopt);
  YAML::Node cfg = YAML::LoadFile(test::write_tiny_cfg(dir));
  for (auto a : cfg["anchors"])  // anchors 8x too large for 96-pixel images
    for (size_t j = 0; j < a.size(); ++j) a[j] = a[j].as<double>() * 8;
  auto model = graph::Model::from_yaml(cfg, 3, 6);
  auto& det = dynamic_cast<graph::DetectLayer&>(model->layer(model->num_layers() - 1));
  std::vector<std::array<float, 2>> before;
  for (int64_t i = 0; i < det.anchor_grid.numel() / 2; ++i)
    before.push_back({det.anchor_grid.data<float>()[2 * i], det.anchor_grid.data<float>()[2 * i + 1]});
  auto wh = train::label_sizes(ds, 96, false, 0);
  const double bpr0 = train::anchor_metric(wh, before, 4.0).bpr;
  auto m = train::check_anchors(ds, *model, 4.0, 96, 0);
  std::vector<std::array<float, 2>> after;
  for (int64_t i = 0; i < det.anchor_grid.numel() / 2; ++i)
    after.push_back({det.anchor_grid.data<float>()[2 * i], det.anchor_grid.data<float>()[2 * i + 1]});
  const double bpr1 = train::anchor_metric(wh, after, 4.0).bpr;
  std::printf("  BPR %.4f -> %.4f\n", bpr0, bpr1);
  EXPECT_LT(bpr0, 0.98);
  EXPECT_GT(bpr1, bpr0);
  EXPECT_GT(m.bpr, bpr0);
  // grid-unit anchors follow: anchors = anchor_grid / stride per level
  for (int l = 0; l < det.nl; ++l)
    for (int j = 0; j < det.na * 2; ++j)
      EXPECT_FLOAT_EQ(det.anchors.data<float>()[l * det.na * 2 + j],
                      det.anchor_grid.data<float>()[l * det.na * 2 + j] / det.stride[l]);
}

TEST(Trainer, ResumeContinuesAnInterruptedRun) {
  fs::path dir = test::scratch("trainer_resume");
  train::ShapesOptions so;
  so.n_train = 8, so.n_val = 4, so.size = 64, so.seed = 6;
  std::string data = train::write_shapes_dataset((dir / "shapes").string(), so);
  std::string cfg = test::write_tiny_cfg(dir), hyp = write_hyp(dir, 0.01);
  auto r = test::run_cli("train --cfg " + cfg + " --data " + data + " --hyp " + hyp +
                         " --epochs 3 --batch-size 4 --img-size 64 --workers 1 --quiet --notest --noautoanchor"
                         " --project " + (dir / "runs").string() + " --name a");
  ASSERT_EQ(r.code, 0) << r.out;
  fs::path a = dir / "runs" / "a", b = dir / "runs" / "b";
  // the finished run's last.pt is stripped: nothing to resume
  auto done = test::run_cli("train --resume --weights " + (a / "weights" / "last.pt").string());
  EXPECT_EQ(done.code, 1);
  EXPECT_NE(done.out.find("nothing to resume"), std::string::npos) << done.out;
  // a run interrupted after epoch 0 (train.py keeps epoch_000.pt, a full training checkpoint)
  fs::create_directories(b / "weights");
  for (const char* f : {"opt.yaml", "hyp.yaml"}) fs::copy_file(a / f, b / f);
  fs::copy_file(a / "weights" / "epoch_000.pt", b / "weights" / "last.pt");
  auto res = test::run_cli("train --resume --quiet --weights " + (b / "weights" / "last.pt").string());
  ASSERT_EQ(res.code, 0) << res.out;
  EXPECT_NE(res.out.find("2 epochs completed"), std::string::npos) << res.out;
  std::ifstream fa(a / "results.txt"), fb(b / "results.txt");
  std::vector<std::string> la, lb;
  for (std::string l; std::getline(fa, l);) la.push_back(l);
  for (std::string l; std::getline(fb, l);) lb.push_back(l);
  ASSERT_EQ(la.size(), 3u);
  ASSERT_EQ(lb.size(), 3u);
  EXPECT_EQ(la[0], lb[0]);  // epoch 0 restored from the checkpoint's training_results
  EXPECT_EQ(lb[1].substr(0, 10), "       1/2");
  EXPECT_EQ(lb[2].substr(0, 10), "       2/2");
  EXPECT_TRUE(graph::load_model((b / "weights" / "last.pt").string()) != nullptr);
}

TEST(Trainer, KillDuringCheckpointWriteKeepsLastPtAndResumes) {
  fs::path dir = test::scratch("trainer_kill");
  train::ShapesOptions so;
  so.n_train = 8, so.n_val = 4, so.size = 64, so.seed = 7;
  std::string data = train::write_shapes_dataset((dir / "shapes").string(), so);
  std::string cfg = test::write_tiny_cfg(dir), hyp = write_hyp(dir, 0.01);
  fs::path run = dir / "runs" / "k", last = run / "weights" / "last.pt";
  // SIGKILL halfway through the second write of last.pt (the end of epoch 1)
  ::setenv("Y7_FAULT_KILL_WRITE", "last.pt:2", 1);
  auto r = test::run_cli("train --cfg " + cfg + " --data " + data + " --hyp " + hyp +
                         " --epochs 3 --batch-size 4 --img-size 64 --workers 1 --quiet --notest --noautoanchor"
                         " --project " + (dir / "runs").string() + " --name k");
  ::unsetenv("Y7_FAULT_KILL_WRITE");
  ASSERT_EQ(r.code, 128 + 9) << r.out;  // killed, not a clean exit
  // the half-written temp file is there, last.pt is epoch 0's complete training checkpoint
  bool tmp_seen = false;
  for (auto& e : fs::directory_iterator(run / "weights"))
    tmp_seen |= e.path().filename().string().rfind("last.pt.tmp.", 0) == 0;
  EXPECT_TRUE(tmp_seen);
  io::Checkpoint ck = io::load_checkpoint(last.string());
  ASSERT_TRUE(ck.model.has_value());
  EXPECT_EQ(ck.epoch, 0);
  // --resume continues from epoch 1 and finishes the run
  auto res = test::run_cli("train --resume --quiet --weights " + last.string());
  ASSERT_EQ(res.code, 0) << res.out;
  EXPECT_NE(res.out.find("2 epochs completed"), std::string::npos) << res.out;
  std::ifstream f(run / "results.txt");
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].substr(0, 10), "       1/2");
  EXPECT_TRUE(graph::load_model(last.string()) != nullptr);
}

// The learning check: yolov7-tiny (full width) trained from scratch by `yolo7 train` on a
// small built-in shapes set (16 images at 64 px, one class) for 60 epochs: the loss falls and the
// final mAP@.5 (test.py on 32 held-out images) is well above an untrained model's (~0.001). The hyp
// is hyp.scratch.tiny without mosaic/mixup/HSV/scale, with obj 25 (train.py scales obj by
// (img/640)^2, which leaves almost no objectness gain at 64 px), and the yolo7 keys nbs 8 and
// warmup_min_iters 30 so that 16 images give 120 optimizer steps instead of upstream's
// 64-image nominal batch and 1000-iteration warmup. From scratch, such a short run is chaotic: the
// thread count and seed change the path (measured over 1/2 threads and seeds 0, 1, 3: final
// mAP@.5 0.028-0.083, loss down 10-38%); a warmup of only 4 iterations made some paths stall, so
// the bounds below leave room for that spread.
TEST(Trainer, LearnsShapesFromScratch) {
  fs::path dir = test::scratch("trainer_learn");
  train::ShapesOptions so;
  so.n_train = 16, so.n_val = 32, so.size = 64, so.seed = 4;
  std::string data = train::write_shapes_dataset((dir / "shapes").string(), so);
  YAML::Node h = YAML::LoadFile(test::repo_file("data/hyp.scratch.tiny.yaml"));
  for (const char* k : {"hsv_h", "hsv_s", "hsv_v", "translate", "scale", "mosaic", "mixup", "paste_in"}) h[k] = 0.0;
  h["lr0"] = 0.02, h["warmup_epochs"] = 2.0, h["obj"] = 25.0, h["nbs"] = 8, h["warmup_min_iters"] = 30;
  std::string hyp = (dir / "hyp.yaml").string();
  std::ofstream(hyp) << YAML::Dump(h);
  auto r = test::run_cli("train --weights '' --cfg " + test::repo_file("cfg/training/yolov7-tiny.yaml") + " --data " + data +
                         " --hyp " + hyp + " --epochs 60 --batch-size 8 --img-size 64 --single-cls --noautoanchor"
                         " --notest --workers 1 --quiet --project " + (dir / "runs").string() + " --name learn");
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream f(dir / "runs" / "learn" / "results.txt");
  std::vector<std::vector<double>> rows;
  for (std::string line; std::getline(f, line);) {
    std::istringstream ss(line);
    std::string epoch;
    ss >> epoch >> epoch;  // "k/59" and the gpu_mem column
    std::vector<double> v;
    for (double x; ss >> x;) v.push_back(x);
    ASSERT_EQ(v.size(), 13u) << line;  // box obj cls total labels img P R mAP@.5 mAP@.5:.95 val box/obj/cls
    rows.push_back(v);
  }
  ASSERT_EQ(rows.size(), 60u);
  auto mean_total = [&](size_t a, size_t b) {
    double s = 0;
    for (size_t i = a; i < b; ++i) s += rows[i][3];
    return s / double(b - a);
  };
  const double first = mean_total(0, 5), last = mean_total(55, 60), map50 = rows.back()[8], map = rows.back()[9];
  std::printf("  train loss (mean of 5 epochs) %.4f -> %.4f; final mAP@.5 %.3f, mAP@.5:.95 %.3f\n", first, last, map50,
              map);
  EXPECT_LT(last, 0.9 * first);
  EXPECT_GT(map50, 0.01);  // 10x an untrained model
}
