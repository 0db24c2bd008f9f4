// yolo7 detect: upstream detect.py on images, folders, globs and videos. Boxes are drawn and saved
// to runs/detect/exp{,2,3...}; --save-txt writes upstream's normalized label lines.
#include <glob.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>

#include "core/autograd.h"
#include "core/thread_pool.h"
#include "graph/model.h"
#include "io/draw.h"
#include "io/file_util.h"
#include "io/image.h"
#include "io/letterbox.h"
#include "io/video.h"
#include "kernels/nms.h"
#include "tools/cli.h"
#include "tools/inference_weights.h"

namespace fs = std::filesystem;

namespace y7 {
namespace {

const std::vector<std::string> kImageFormats = {"bmp", "jpg", "jpeg", "png", "tif", "tiff", "dng", "webp", "mpo"};

std::string lower_ext(const std::string& p) {
  auto dot = p.rfind('.');
  if (dot == std::string::npos) return "";
  std::string e = p.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e;
}

bool is_image_path(const std::string& p) {
  return std::find(kImageFormats.begin(), kImageFormats.end(), lower_ext(p)) != kImageFormats.end();
}

// LoadImages' file list: a glob, a directory's '*.*' entries (sorted), or one file; images first.
std::vector<std::string> list_sources(const std::string& source) {
  std::vector<std::string> files;
  std::string p = fs::absolute(source).lexically_normal().string();
  if (p.find('*') != std::string::npos) {
    glob_t g{};
    if (::glob(p.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) files.push_back(g.gl_pathv[i]);
    globfree(&g);
    std::sort(files.begin(), files.end());
  } else if (fs::is_directory(p)) {
    for (auto& e : fs::directory_iterator(p)) {
      std::string name = e.path().filename().string();
      if (name.find('.') != std::string::npos && name[0] != '.') files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(p)) {
    files.push_back(p);
  } else {
    fail("source ", p, " does not exist");
  }
  std::vector<std::string> images, videos;
  for (auto& f : files) {
    if (is_image_path(f)) images.push_back(f);
    else if (io::is_video_path(f)) videos.push_back(f);
  }
  Y7_CHECK(!images.empty() || !videos.empty(), "no images or videos found in ", p,
           " (images: bmp jpg jpeg png tif tiff dng webp mpo; videos: mov avi mp4 mpg mpeg m4v wmv mkv)");
  images.insert(images.end(), videos.begin(), videos.end());
  return images;
}

std::string fmt_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct Detector {
  graph::Model& model;
  std::function<Tensor(const Tensor&)> forward;  // images -> decoded predictions (.pt or .onnx)
  ops::NmsParams nms;
  int img_size, stride;
  bool save_img, save_txt, save_conf;
  fs::path save_dir;

  // Runs one BGR/RGB frame; returns the detections [n,6] in frame coordinates and the log text.
  Tensor run(const io::Image& im0, std::string& log, double& t_inf, double& t_nms) {
    io::Letterboxed lb = io::letterbox(im0, img_size, true, stride);
    Tensor x = io::image_to_input(lb.img);
    auto t0 = std::chrono::steady_clock::now();
    Tensor pred = forward(x);
    auto t1 = std::chrono::steady_clock::now();
    Tensor det = ops::non_max_suppression(pred, nms)[0];
    auto t2 = std::chrono::steady_clock::now();
    t_inf = std::chrono::duration<double, std::milli>(t1 - t0).count();
    t_nms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    if (det.size(0)) {
      io::scale_coords(lb.img.h, lb.img.w, det, im0.h, im0.w);
      float* d = det.data<float>();
      for (int64_t i = 0; i < det.size(0); ++i)
        for (int j = 0; j < 4; ++j) d[i * 6 + j] = std::nearbyint(d[i * 6 + j]);  // .round(): ties to even
      std::map<int, int> counts;
      for (int64_t i = 0; i < det.size(0); ++i) counts[int(d[i * 6 + 5])]++;
      for (auto& [c, n] : counts) {
        std::string name = c < int(model.names.size()) ? model.names[c] : std::to_string(c);
        log += std::to_string(n) + " " + name + (n > 1 ? "s" : "") + ", ";
      }
    }
    return det;
  }

  void write_labels(const Tensor& det, const io::Image& im0, const fs::path& txt) {
    if (!save_txt || det.size(0) == 0) return;
    std::string text;
    if (fs::exists(txt)) {  // upstream appends
      auto old = io::read_file(txt.string());
      text.assign(old.begin(), old.end());
    }
    const float* d = det.data<float>();
    for (int64_t i = det.size(0) - 1; i >= 0; --i) {  // reversed(det)
      const float* r = d + i * 6;
      float gw = float(im0.w), gh = float(im0.h);
      float cx = (r[0] + r[2]) / 2 / gw, cy = (r[1] + r[3]) / 2 / gh, w = (r[2] - r[0]) / gw, h = (r[3] - r[1]) / gh;
      text += fmt_g(r[5]) + " " + fmt_g(cx) + " " + fmt_g(cy) + " " + fmt_g(w) + " " + fmt_g(h);
      if (save_conf) text += " " + fmt_g(r[4]);
      text += "\n";
    }
    io::write_file_atomic(txt.string(), text.data(), text.size());
  }
};

int run_detect(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", -1}, {"source", 1}, {"img-size", 1}, {"conf-thres", 1}, {"iou-thres", 1},
                     {"device", 1}, {"view-img", 0}, {"save-txt", 0}, {"save-conf", 0}, {"nosave", 0},
                     {"classes", -1}, {"agnostic-nms", 0}, {"augment", 0}, {"update", 0}, {"project", 1},
                     {"name", 1}, {"exist-ok", 0}, {"no-trace", 0}, {"threads", 1}});
  Y7_CHECK(a.has("weights"), "detect: --weights is required");
  Y7_CHECK(a.list("weights").size() == 1, "detect: model ensembles (several --weights) are not supported");
  Y7_CHECK(!a.flag("augment"), "detect: --augment (test-time augmentation) is not supported yet");
  Y7_CHECK(parse_device(a.str("device", "cpu")).is_cpu(), "detect: only --device cpu is available in this build");
  if (a.has("threads")) set_num_threads(a.integer("threads", 0));
  std::string source = a.str("source", "inference/images");
  auto files = list_sources(source);

  auto weights = tools::load_inference_weights(a.str("weights"));  // .pt, or .onnx on our runtime
  auto& model = weights.model;
  int stride = 32;
  for (float s : model->stride()) stride = std::max(stride, int(s));
  int req = a.integer("img-size", 640);
  int imgsz = (req + stride - 1) / stride * stride;  // check_img_size: make_divisible
  if (imgsz != req)
    std::printf("WARNING: --img-size %d must be multiple of max stride %d, updating to %d\n", req, stride, imgsz);

  bool save_txt = a.flag("save-txt");
  bool save_img = !a.flag("nosave");
  fs::path save_dir = cli::run_dir(a, "runs/detect", save_txt);

  Detector det{*model, weights.forward, {}, imgsz, stride, save_img, save_txt, a.flag("save-conf"), save_dir};
  det.nms.conf_thres = a.num("conf-thres", 0.25);
  det.nms.iou_thres = a.num("iou-thres", 0.45);
  det.nms.classes = a.ints("classes");
  det.nms.agnostic = a.flag("agnostic-nms");

  NoGradGuard ng;
  auto t_start = std::chrono::steady_clock::now();
  int nf = int(files.size());
  for (int fi = 0; fi < nf; ++fi) {
    const std::string& path = files[fi];
    fs::path p(path);
    if (!io::is_video_path(path)) {
      io::Image im0 = io::load_image(path);
      std::string log;
      double ti, tn;
      Tensor d = det.run(im0, log, ti, tn);
      std::printf("image %d/%d %s: %s%sDone. (%.1fms) Inference, (%.1fms) NMS\n", fi + 1, nf, path.c_str(), "",
                  log.c_str(), ti, tn);
      det.write_labels(d, im0, save_dir / "labels" / (p.stem().string() + ".txt"));
      if (save_img) {
        io::draw_detections(im0, d, model->names, 1);
        io::save_image((save_dir / p.filename()).string(), im0);
        std::printf(" The image with the result is saved in: %s\n", (save_dir / p.filename()).c_str());
      }
      continue;
    }
    io::VideoReader reader(path);
    std::unique_ptr<io::VideoWriter> writer;
    fs::path out = save_dir / p.filename();
    if (save_img) writer = std::make_unique<io::VideoWriter>(out.string(), reader.width(), reader.height(), reader.fps());
    io::Image frame;
    int w, h;
    while (reader.read(frame.data, w, h)) {
      frame.w = w, frame.h = h, frame.c = 3, frame.order = io::PixelOrder::RGB;
      std::string log;
      double ti, tn;
      Tensor d = det.run(frame, log, ti, tn);
      std::printf("video %d/%d (%lld/%lld) %s: %sDone. (%.1fms) Inference, (%.1fms) NMS\n", fi + 1, nf,
                  (long long)reader.frame_index(), (long long)reader.frame_count(), path.c_str(), log.c_str(), ti, tn);
      det.write_labels(d, frame, save_dir / "labels" / (p.stem().string() + "_" + std::to_string(reader.frame_index()) + ".txt"));
      if (writer) {
        io::draw_detections(frame, d, model->names, 1);
        writer->write(frame.data.data());
      }
    }
    if (writer) writer->close();
  }
  if (save_txt || save_img) {
    std::string s;
    if (save_txt) {
      int n = 0;
      for (auto& e : fs::directory_iterator(save_dir / "labels")) n += e.path().extension() == ".txt";
      s = "\n" + std::to_string(n) + " labels saved to " + (save_dir / "labels").string();
    }
    std::printf("Results saved to %s%s\n", save_dir.c_str(), s.c_str());
  }
  std::printf("Done. (%.3fs)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  return 0;
}

cli::Register reg("detect", "detect objects in images, folders and videos (upstream detect.py)", run_detect);

}  // namespace
}  // namespace y7
