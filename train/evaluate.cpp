// Validation with upstream test.py semantics (see evaluate.h). Box arithmetic in float32 without
// FMA contraction, as numpy/torch compute it.
#pragma GCC optimize("fp-contract=off")
#include "train/evaluate.h"

#include <stb_image.h>
#include <yaml-cpp/yaml.h>

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
#include "io/file_util.h"
#include "kernels/nms.h"

namespace fs = std::filesystem;

namespace y7::train {

namespace {

const std::set<std::string> kImgFormats = {"bmp", "jpg", "jpeg", "png", "tif", "tiff", "dng", "webp", "mpo"};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> yaml_paths(const YAML::Node& n) {
  std::vector<std::string> v;
  if (!n || n.IsNull()) return v;
  if (n.IsSequence())
    for (const auto& x : n) v.push_back(x.as<std::string>());
  else
    v.push_back(n.as<std::string>());
  return v;
}

std::string resolve(const std::string& p, const fs::path& yaml_dir) {
  if (fs::path(p).is_absolute() || fs::exists(p)) return p;
  for (const fs::path& base : {yaml_dir, yaml_dir.parent_path()}) {
    fs::path c = base / p;
    if (!base.empty() && fs::exists(c)) return c.string();
  }
  return p;
}

// Python str.split() then float32 like np.array(rows, dtype=np.float32).
bool parse_float(const std::string& s, float& out) {
  const char* b = s.c_str();
  char* e = nullptr;
  errno = 0;
  double d = std::strtod(b, &e);
  if (e == b || *e != '\0') return false;
  out = float(d);
  return true;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream ss(line);
  std::vector<std::string> v;
  std::string t;
  while (ss >> t) v.push_back(t);
  return v;
}

// Reads and validates one label file like cache_labels(); returns false with why on a corrupt one.
bool read_labels(const std::string& file, std::vector<std::array<float, 5>>& out, std::string& why, bool& empty) {
  out.clear();
  empty = false;
  std::ifstream f(file, std::ios::binary);
  if (!f) {
    why = "cannot read " + file;
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::istringstream in(ss.str());
  while (std::getline(in, line)) {
    auto t = split_ws(line);
    if (!t.empty()) rows.push_back(std::move(t));
  }
  bool segments = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.size() > 8; });
  for (const auto& r : rows) {
    std::array<float, 5> l{};
    if (segments) {
      if (r.size() < 3 || (r.size() - 1) % 2 != 0) {
        why = "bad polygon row";
        return false;
      }
      float cls, x1 = 0, y1 = 0, x2 = 0, y2 = 0;
      if (!parse_float(r[0], cls)) {
        why = "bad number '" + r[0] + "'";
        return false;
      }
      for (size_t i = 1; i < r.size(); i += 2) {
        float x, y;
        if (!parse_float(r[i], x) || !parse_float(r[i + 1], y)) {
          why = "bad number in polygon";
          return false;
        }
        if (i == 1) x1 = x2 = x, y1 = y2 = y;
        x1 = std::min(x1, x), x2 = std::max(x2, x), y1 = std::min(y1, y), y2 = std::max(y2, y);
      }
      l = {cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1};
    } else {
      if (r.size() != 5) {
        why = "labels require 5 columns each";
        return false;
      }
      for (int i = 0; i < 5; ++i)
        if (!parse_float(r[size_t(i)], l[size_t(i)])) {
          why = "bad number '" + r[size_t(i)] + "'";
          return false;
        }
    }
    out.push_back(l);
  }
  if (out.empty()) {
    empty = true;
    return true;
  }
  for (const auto& l : out) {
    for (float v : l)
      if (!(v >= 0)) {
        why = "negative labels";
        return false;
      }
    for (int i = 1; i < 5; ++i)
      if (!(l[size_t(i)] <= 1)) {
        why = "non-normalized or out of bounds coordinate labels";
        return false;
      }
  }
  std::set<std::array<float, 5>> uniq(out.begin(), out.end());
  if (uniq.size() != out.size()) {
    why = "duplicate labels";
    return false;
  }
  return true;
}

// exif_size(): (w, h), swapped for EXIF orientation 6 or 8 only.
bool image_size(const std::string& path, int& w, int& h, std::string& why) {
  std::vector<char> bytes;
  try {
    bytes = io::read_file(path);
  } catch (const std::exception& e) {
    why = e.what();
    return false;
  }
  int comp = 0;
  if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), int(bytes.size()), &w, &h, &comp)) {
    why = "unsupported or corrupt image";
    return false;
  }
  int o = io::jpeg_exif_orientation(bytes.data(), bytes.size());
  if (o == 6 || o == 8) std::swap(w, h);
  if (!(w > 9 && h > 9)) {
    why = "image size (" + std::to_string(w) + ", " + std::to_string(h) + ") <10 pixels";
    return false;
  }
  return true;
}

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

DataConfig load_data_config(const std::string& yaml_path) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(yaml_path);
  } catch (const std::exception& e) {
    fail("data yaml ", yaml_path, ": ", e.what());
  }
  Y7_CHECK(y.IsMap(), "data yaml ", yaml_path, ": not a mapping");
  DataConfig c;
  c.path = yaml_path;
  const fs::path dir = fs::path(yaml_path).parent_path();
  try {
    for (auto [key, dst] : {std::pair{"train", &c.train}, std::pair{"val", &c.val}, std::pair{"test", &c.test}})
      for (const auto& p : yaml_paths(y[key])) dst->push_back(resolve(p, dir));
    Y7_CHECK(y["nc"], "data yaml ", yaml_path, ": no 'nc'");
    c.nc = y["nc"].as<int>();
    if (y["names"] && y["names"].IsSequence())
      for (const auto& n : y["names"]) c.names.push_back(n.as<std::string>());
    else if (y["names"] && y["names"].IsMap())
      for (const auto& kv : y["names"]) c.names.push_back(kv.second.as<std::string>());
  } catch (const YAML::Exception& e) {
    fail("data yaml ", yaml_path, ": ", e.what());
  }
  Y7_CHECK(c.nc > 0, "data yaml ", yaml_path, ": nc must be positive");
  Y7_CHECK(c.names.empty() || int(c.names.size()) == c.nc, "data yaml ", yaml_path, ": ", c.names.size(),
           " names for nc ", c.nc);
  const std::string s = yaml_path;
  c.is_coco = s.size() >= 9 && s.compare(s.size() - 9, 9, "coco.yaml") == 0;
  return c;
}

std::string img2label_path(const std::string& img) {
  std::string x = img;
  const std::string sa = "/images/", sb = "/labels/";
  size_t k = x.find(sa);
  if (k != std::string::npos) x.replace(k, sa.size(), sb);
  // 'txt'.join(x.rsplit(ext, 1)), ext = the text after the last '.' of the original path
  const size_t dot = img.rfind('.');
  const std::string ext = dot == std::string::npos ? img : img.substr(dot + 1);
  size_t e = x.rfind(ext);
  if (e != std::string::npos) x.replace(e, ext.size(), "txt");
  return x;
}

std::vector<std::string> list_image_files(const std::vector<std::string>& sources) {
  std::vector<std::string> f;
  for (const auto& src : sources) {
    fs::path p(src);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
      Y7_CHECK(!ec, "cannot list ", src, ": ", ec.message());
      for (; it != end; it.increment(ec)) {
        Y7_CHECK(!ec, "cannot list ", src, ": ", ec.message());
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {  // glob skips hidden entries
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (name.find('.') == std::string::npos || !it->is_regular_file(ec)) continue;
        f.push_back(it->path().string());
      }
    } else if (fs::is_regular_file(p, ec)) {
      std::ifstream in(src);
      Y7_CHECK(in.good(), "cannot read ", src);
      const std::string parent = p.parent_path().string() + "/";
      std::string line;
      while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
        size_t b = line.find_first_not_of(" \t");
        if (b == std::string::npos) continue;
        line = line.substr(b);
        if (line.rfind("./", 0) == 0) line = parent + line.substr(2);
        f.push_back(line);
      }
    } else {
      fail(src, " does not exist");
    }
  }
  std::vector<std::string> img;
  for (auto& x : f) {
    const size_t d = x.rfind('.');
    if (d != std::string::npos && kImgFormats.count(lower(x.substr(d + 1)))) img.push_back(x);
  }
  std::sort(img.begin(), img.end());
  Y7_CHECK(!img.empty(), "no images found in ", sources.empty() ? std::string("(no source)") : sources[0]);
  return img;
}

ValDataset make_val_dataset(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                            double pad, bool single_cls) {
  Y7_CHECK(img_size > 0 && batch_size > 0 && stride > 0, "val dataset: bad img_size/batch_size/stride");
  ValDataset ds;
  ds.img_size = img_size, ds.batch_size = batch_size, ds.stride = stride;
  for (const auto& path : list_image_files(sources)) {
    ValSample s;
    s.path = path;
    std::string why;
    bool ok = image_size(path, s.w0, s.h0, why);
    if (ok) {
      const std::string lf = img2label_path(path);
      if (fs::is_regular_file(lf)) {
        ++ds.found;
        bool empty = false;
        ok = read_labels(lf, s.labels, why, empty);
        if (ok && empty) ++ds.empty;
      } else {
        ++ds.missing;
      }
    }
    if (!ok) {
      ++ds.corrupted;
      std::fprintf(stderr, "WARNING: Ignoring corrupted image and/or label %s: %s\n", path.c_str(), why.c_str());
      continue;
    }
    if (single_cls)
      for (auto& l : s.labels) l[0] = 0;
    ds.samples.push_back(std::move(s));
  }
  const size_t n = ds.samples.size();
  Y7_CHECK(n > 0, "no valid images in ", sources.empty() ? std::string() : sources[0]);
  // rect: sort by aspect ratio h / w
  std::vector<double> ar(n);
  for (size_t i = 0; i < n; ++i) ar[i] = double(ds.samples[i].h0) / double(ds.samples[i].w0);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ar[a] < ar[b]; });
  std::vector<ValSample> sorted;
  std::vector<double> ars;
  for (size_t i : order) sorted.push_back(std::move(ds.samples[i])), ars.push_back(ar[i]);
  ds.samples = std::move(sorted);
  const int nb = int((n + size_t(batch_size) - 1) / size_t(batch_size));
  ds.batch.resize(n);
  for (size_t i = 0; i < n; ++i) ds.batch[i] = int(i / size_t(batch_size));
  for (int b = 0; b < nb; ++b) {
    double mini = 1e300, maxi = -1e300;
    for (size_t i = size_t(b) * batch_size; i < std::min(n, size_t(b + 1) * batch_size); ++i)
      mini = std::min(mini, ars[i]), maxi = std::max(maxi, ars[i]);
    double sh = 1, sw = 1;
    if (maxi < 1) sh = maxi;
    else if (mini > 1) sw = 1 / mini;
    const int h = int(std::ceil(sh * img_size / stride + pad)) * stride;
    const int w = int(std::ceil(sw * img_size / stride + pad)) * stride;
    ds.batch_shapes.push_back({h, w});
  }
  return ds;
}

ValItem load_val_item(const ValDataset& ds, size_t index) {
  Y7_CHECK(index < ds.samples.size(), "val item ", index, " out of range");
  const ValSample& s = ds.samples[index];
  ValItem it;
  io::Image img = io::load_image(s.path, 3);
  it.h0 = img.h, it.w0 = img.w;
  img = io::resize_long_side(img, ds.img_size, false);
  it.h = img.h, it.w = img.w;
  const auto& shape = ds.batch_shapes[size_t(ds.batch[index])];
  io::LetterboxParams lp;
  lp.new_h = shape[0], lp.new_w = shape[1];
  lp.auto_pad = false;
  lp.scaleup = false;
  it.lb = io::letterbox(img, lp);
  const float W = float(it.lb.ratio_w * it.w), H = float(it.lb.ratio_h * it.h);
  const float pw = float(it.lb.dw), ph = float(it.lb.dh);
  const float iw = float(it.lb.img.w), ih = float(it.lb.img.h);
  for (const auto& l : s.labels) {
    // xywhn2xyxy (numpy float32 with float32-cast scalars), then xyxy2xywh and normalization
    const float x1 = W * (l[1] - l[3] / 2) + pw, y1 = H * (l[2] - l[4] / 2) + ph;
    const float x2 = W * (l[1] + l[3] / 2) + pw, y2 = H * (l[2] + l[4] / 2) + ph;
    std::array<float, 5> t = {l[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1};
    t[1] /= iw, t[3] /= iw, t[2] /= ih, t[4] /= ih;
    it.targets.push_back(t);
  }
  it.img = std::move(it.lb.img);
  return it;
}

TestResults run_test(graph::Model& model, const TestOptions& opt) {
  using clock = std::chrono::steady_clock;
  DataConfig data = load_data_config(opt.data);
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
  ValDataset ds = make_val_dataset(src, imgsz, opt.batch_size, gs, 0.5, opt.single_cls);
  const int bs = std::min<int>(opt.batch_size, int(ds.samples.size()));
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
  ops::NmsParams nms;
  nms.conf_thres = opt.conf_thres;
  nms.iou_thres = opt.iou_thres;
  nms.multi_label = true;
  const size_t n = ds.samples.size();
  for (size_t b0 = 0; b0 < n; b0 += size_t(bs)) {
    const size_t b1 = std::min(n, b0 + size_t(bs));
    std::vector<ValItem> items;
    for (size_t i = b0; i < b1; ++i) items.push_back(load_val_item(ds, i));
    std::vector<io::Image> imgs;
    for (auto& it : items) imgs.push_back(it.img);
    Tensor x = io::images_to_input(imgs);
    const int height = int(x.size(2)), width = int(x.size(3));
    auto t0 = clock::now();
    Tensor pred = model.forward(x).pred;
    auto t1 = clock::now();
    // targets to pixels (float32 multiply like torch)
    std::vector<std::vector<std::array<float, 5>>> tpx(items.size());
    for (size_t k = 0; k < items.size(); ++k)
      for (auto t : items[k].targets) {
        t[1] *= float(width), t[2] *= float(height), t[3] *= float(width), t[4] *= float(height);
        tpx[k].push_back(t);
      }
    if (opt.save_hybrid) {
      nms.labels.clear();
      for (auto& t : tpx) {
        std::vector<float> v;
        for (auto& r : t) v.insert(v.end(), r.begin(), r.end());
        nms.labels.push_back(Tensor::from_vector(v, {int64_t(t.size()), 5}));
      }
    }
    auto t2 = clock::now();
    std::vector<Tensor> out = ops::non_max_suppression(pred, nms);
    auto t3 = clock::now();
    res.t_inference += std::chrono::duration<double>(t1 - t0).count();
    res.t_nms += std::chrono::duration<double>(t3 - t2).count();

    for (size_t si = 0; si < items.size(); ++si) {
      const ValItem& it = items[si];
      const ValSample& s = ds.samples[b0 + si];
      Tensor p = out[si].to(DType::F32).contiguous();
      const int64_t np_ = p.size(0);
      io::RatioPad rp{double(it.h) / double(it.h0), it.lb.dw, it.lb.dh};
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
        const std::string stem = fs::path(s.path).stem().string();
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
            const int cat = data.is_coco && cls >= 0 && cls < 80 ? kCoco91[cls] : cls;
            jdict += std::string(jcount++ ? ", " : "") + "{\"image_id\": " + image_id +
                     ", \"category_id\": " + std::to_string(cat) + ", \"bbox\": [";
            for (int c = 0; c < 4; ++c) jdict += (c ? ", " : "") + py_float(py_round(bb[4 * k + c], 3));
            jdict += "], \"score\": " + py_float(py_round(raw[6 * k + 4], 5)) + "}";
          }
        }
      }
      stats.add_image(dets, labels);
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
  res.labels_saved = int(txt_written.size());
  return res;
}

}  // namespace y7::train
