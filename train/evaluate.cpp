// Validation with upstream test.py semantics (see evaluate.h). Box arithmetic in float32 without
// FMA contraction, as numpy/torch compute it.
#pragma GCC optimize("fp-contract=off")
#include "train/evaluate.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "core/error.h"
#include "graph/model.h"
#include "io/data_yaml.h"
#include "io/file_util.h"
#include "io/letterbox.h"
#include "io/npy.h"
#include "train/dataloader.h"
#include "kernels/nms.h"

namespace fs = std::filesystem;

namespace y7::train {

namespace {

// Python's shortest float repr (JSON-compatible).
std::string py_float(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// round(x, n) like Python (decimal rounding of the exact binary value).
double py_round(double x, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", n, x);
  return std::strtod(buf, nullptr);
}

std::string fmt_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

const int kCoco91[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                         22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                         46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                         67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

}  // namespace

TestResults run_test(graph::Model& model, const TestOptions& opt) {
  using clock = std::chrono::steady_clock;
  io::DataConfig data = io::load_data_yaml(opt.data);
  const std::string& dp = opt.data;
  const bool is_coco = dp.size() >= 9 && dp.compare(dp.size() - 9, 9, "coco.yaml") == 0;
  TestResults res;
  const int nc = opt.single_cls ? 1 : data.nc;
  float smax = 0;
  for (float s : model.stride()) smax = std::max(smax, s);
  const int gs = std::max(int(smax), 32);
  const int imgsz = int(std::ceil(double(opt.img_size) / gs)) * gs;  // check_img_size
  if (imgsz != opt.img_size && !opt.quiet)
    std::printf("WARNING: --img-size %d must be multiple of max stride %d, updating to %d\n", opt.img_size, gs, imgsz);
  Y7_CHECK(opt.batch_size > 0, "test: --batch-size must be positive");
  Y7_CHECK(opt.task == "train" || opt.task == "val" || opt.task == "test" || opt.task == "speed",
           "test: unknown --task '", opt.task, "' (train, val, test or speed)");
  const std::string task = opt.task == "speed" ? "val" : opt.task;
  const auto& src = task == "train" ? data.train : task == "test" ? data.test : data.val;
  Y7_CHECK(!src.empty(), "data yaml ", opt.data, ": no '", task, "' images");
  LoaderPair lp = make_val_loader(src, imgsz, opt.batch_size, gs, opt.workers, opt.single_cls, opt.rect);
  res.img_size = imgsz;
  res.batch_size = opt.batch_size;
  res.names = model.names;
  if (opt.v5_metric && !opt.quiet) std::printf("Testing with YOLOv5 AP metric...\n");
  if (!opt.quiet) std::printf("%s\n", table_header().c_str());

  const fs::path save_dir = opt.save_dir;
  const bool write = !opt.save_dir.empty();
  const bool save_txt = (opt.save_txt || opt.save_hybrid) && write;
  if (save_txt) fs::create_directories(save_dir / "labels");
  std::set<std::string> txt_written;
  std::string jdict;
  size_t jcount = 0;

  MetricStats stats;
  std::vector<float> npy_d, npy_l;  // --save-npy rows
  ops::NmsParams nms;
  nms.conf_thres = opt.conf_thres;
  nms.iou_thres = opt.iou_thres;
  nms.multi_label = true;
  lp.loader->start_epoch(0);
  std::array<double, 3> loss_sum{0, 0, 0};
  int64_t nbatches = 0;
  Batch batch;
  int64_t batches = 0;
  while ((opt.max_batches <= 0 || batches++ < opt.max_batches) && lp.loader->next(batch)) {
    const auto& items = batch.items;
    const Tensor& x = batch.imgs;
    const int height = int(x.size(2)), width = int(x.size(3));
    auto t0 = clock::now();
    Tensor pred;
    if (opt.forward) {
      pred = opt.forward(x);
    } else {
      graph::Model::Output o = model.forward(x);
      pred = o.pred;
      if (opt.compute_loss) {
        std::array<double, 3> l = opt.compute_loss(o.raw, batch.targets, x.size(2));
        for (int k = 0; k < 3; ++k) loss_sum[k] += l[k];
      }
    }
    ++nbatches;
    auto t1 = clock::now();
    // targets to pixels (float32 multiply like torch), per image
    std::vector<std::vector<std::array<float, 5>>> tpx(items.size());
    {
      Tensor tg = batch.targets.contiguous();
      const float* t = tg.data<float>();
      for (int64_t k = 0; k < tg.size(0); ++k, t += 6) {
        const auto img = size_t(t[0]);
        Y7_CHECK(img < items.size(), "test: target image index out of range");
        tpx[img].push_back({t[1], t[2] * float(width), t[3] * float(height), t[4] * float(width), t[5] * float(height)});
      }
    }
    if (opt.save_hybrid) {
      nms.labels.clear();
      for (auto& tv : tpx) {
        std::vector<float> v;
        for (auto& r : tv) v.insert(v.end(), r.begin(), r.end());
        nms.labels.push_back(Tensor::from_vector(v, {int64_t(tv.size()), 5}));
      }
    }
    auto t2 = clock::now();
    std::vector<Tensor> out = ops::non_max_suppression(pred, nms);
    auto t3 = clock::now();
    res.t_inference += std::chrono::duration<double>(t1 - t0).count();
    res.t_nms += std::chrono::duration<double>(t3 - t2).count();

    for (size_t si = 0; si < items.size(); ++si) {
      const ItemInfo& it = items[si];
      Tensor p = out[si].to(DType::F32).contiguous();
      const int64_t np_ = p.size(0);
      io::RatioPad rp{it.ratio_h, it.pad_w, it.pad_h};
      // labels: xywh2xyxy then scale_coords to the original image
      std::vector<Label> labels;
      if (!tpx[si].empty()) {
        std::vector<float> tb;
        for (auto& t : tpx[si]) {
          tb.push_back(t[1] - t[3] / 2), tb.push_back(t[2] - t[4] / 2);
          tb.push_back(t[1] + t[3] / 2), tb.push_back(t[2] + t[4] / 2);
        }
        Tensor tbox = Tensor::from_vector(tb, {int64_t(tpx[si].size()), 4});
        io::scale_coords(height, width, tbox, it.h0, it.w0, &rp);
        const float* q = tbox.data<float>();
        for (size_t k = 0; k < tpx[si].size(); ++k)
          labels.push_back({tpx[si][k][0], q[4 * k], q[4 * k + 1], q[4 * k + 2], q[4 * k + 3]});
      }
      std::vector<Detection> dets;
      if (np_ > 0) {
        Tensor predn = p.clone();
        io::scale_coords(height, width, predn, it.h0, it.w0, &rp);
        const float* q = predn.data<float>();
        const float* raw = p.data<float>();
        for (int64_t k = 0; k < np_; ++k)
          dets.push_back({q[6 * k], q[6 * k + 1], q[6 * k + 2], q[6 * k + 3], raw[6 * k + 4], raw[6 * k + 5]});
        const std::string stem = fs::path(it.path).stem().string();
        if (save_txt) {
          Tensor xywh = ops::xyxy2xywh(predn.slice(1, 0, 4));
          const float* w = xywh.data<float>();
          const float gn[4] = {float(it.w0), float(it.h0), float(it.w0), float(it.h0)};
          const fs::path f = save_dir / "labels" / (stem + ".txt");
          std::ofstream o(f, std::ios::app);
          Y7_CHECK(o.good(), "test: cannot write ", f.string());
          for (int64_t k = 0; k < np_; ++k) {
            std::string line = fmt_g(raw[6 * k + 5]);
            for (int c = 0; c < 4; ++c) line += " " + fmt_g(w[4 * k + c] / gn[c]);
            if (opt.save_conf) line += " " + fmt_g(raw[6 * k + 4]);
            o << line << "\n";
          }
          txt_written.insert(f.string());
        }
        if (opt.save_json && write) {
          const bool numeric = !stem.empty() && std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; });
          std::string image_id;
          if (numeric) {
            size_t k = stem.find_first_not_of('0');
            image_id = k == std::string::npos ? "0" : stem.substr(k);
          } else {
            std::string e;
            for (char c : stem) {
              if (c == '"' || c == '\\') e += '\\';
              e += c;
            }
            image_id = "\"" + e + "\"";
          }
          Tensor box = ops::xyxy2xywh(predn.slice(1, 0, 4));
          float* bb = box.data<float>();
          for (int64_t k = 0; k < np_; ++k) {
            bb[4 * k] -= bb[4 * k + 2] / 2, bb[4 * k + 1] -= bb[4 * k + 3] / 2;
            const int cls = int(raw[6 * k + 5]);
            const int cat = is_coco && cls >= 0 && cls < 80 ? kCoco91[cls] : cls;
            jdict += std::string(jcount++ ? ", " : "") + "{\"image_id\": " + image_id +
                     ", \"category_id\": " + std::to_string(cat) + ", \"bbox\": [";
            for (int c = 0; c < 4; ++c) jdict += (c ? ", " : "") + py_float(py_round(bb[4 * k + c], 3));
            jdict += "], \"score\": " + py_float(py_round(raw[6 * k + 4], 5)) + "}";
          }
        }
      }
      stats.add_image(dets, labels);
      const float img_idx = float(stats.seen - 1);
      for (const auto& d : dets) npy_d.insert(npy_d.end(), {img_idx, d.x1, d.y1, d.x2, d.y2, d.conf, d.cls});
      for (const auto& l : labels) npy_l.insert(npy_l.end(), {img_idx, l.cls, l.x1, l.y1, l.x2, l.y2});
    }
  }
  res.metrics = summarize(stats, nc, opt.v5_metric);
  const auto& e = res.metrics;
  auto name_of = [&](int c) { return c >= 0 && size_t(c) < model.names.size() ? model.names[size_t(c)] : std::to_string(c); };
  if (!opt.quiet) {
    std::printf("%s\n", table_row("all", e.seen, e.n_labels, e.mp, e.mr, e.map50, e.map).c_str());
    if ((opt.verbose || nc < 50) && nc > 1 && stats.any_image)
      for (size_t i = 0; i < e.per_class.classes.size(); ++i) {
        const int c = e.per_class.classes[i];
        const int64_t nt = size_t(c) < e.nt.size() ? e.nt[size_t(c)] : 0;
        std::printf("%s\n", table_row(name_of(c), e.seen, nt, e.per_class.p[i], e.per_class.r[i], e.per_class.ap50[i],
                                      e.per_class.ap_mean[i])
                                .c_str());
      }
    const double seen = double(std::max<int64_t>(e.seen, 1));
    std::printf("Speed: %.1f/%.1f/%.1f ms inference/NMS/total per %gx%g image at batch-size %g\n",
                res.t_inference / seen * 1e3, res.t_nms / seen * 1e3, (res.t_inference + res.t_nms) / seen * 1e3,
                double(imgsz), double(imgsz), double(opt.batch_size));
  }
  if (opt.save_json && write && jcount) {
    const std::string w = fs::path(opt.weights).stem().string();
    res.json_path = (save_dir / (w + "_predictions.json")).string();
    const std::string body = "[" + jdict + "]";
    io::write_file_atomic(res.json_path, body.data(), body.size());
    if (!opt.quiet)
      std::printf("\nEvaluating pycocotools mAP... saving %s...\npycocotools is not available: predictions saved only\n",
                  res.json_path.c_str());
  }
  if (opt.save_npy && write) {
    io::write_npy((save_dir / "detections.npy").string(), Tensor::from_vector(npy_d, {int64_t(npy_d.size() / 7), 7}));
    io::write_npy((save_dir / "labels.npy").string(), Tensor::from_vector(npy_l, {int64_t(npy_l.size() / 6), 6}));
  }
  res.labels_saved = int(txt_written.size());
  if (opt.compute_loss && nbatches > 0)
    for (int k = 0; k < 3; ++k) res.loss[k] = loss_sum[k] / double(nbatches);
  return res;
}

void save_results_json(const TestResults& r, const TestOptions& opt, const std::string& json) {
  const std::string path = (fs::path(opt.save_dir) / "results.json").string();
  io::write_file_atomic(path, json.data(), json.size());
  std::string s;
  if (opt.save_txt) s = "\n" + std::to_string(r.labels_saved) + " labels saved to " + (fs::path(opt.save_dir) / "labels").string();
  std::printf("Results saved to %s%s\n", opt.save_dir.c_str(), s.c_str());
}

}  // namespace y7::train
