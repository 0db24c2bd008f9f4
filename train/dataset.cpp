// Upstream LoadImagesAndLabels re-implemented (see train/dataset.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "train/dataset.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/file_util.h"
#include "io/letterbox.h"

#define STBI_NO_STDIO
#include <stb_image.h>

namespace fs = std::filesystem;

namespace y7::train {

namespace {
const char* kImgFormats[] = {"bmp", "jpg", "jpeg", "png", "tif", "tiff", "dng", "webp", "mpo"};

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}
bool is_img(const std::string& f) {
  auto dot = f.rfind('.');
  std::string ext = lower(dot == std::string::npos ? f : f.substr(dot + 1));
  for (const char* e : kImgFormats)
    if (ext == e) return true;
  return false;
}
std::string replace_all(std::string s, const std::string& a, const std::string& b) {
  for (size_t p = 0; (p = s.find(a, p)) != std::string::npos; p += b.size()) s.replace(p, a.size(), b);
  return s;
}
std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n\f\v"), b = s.find_last_not_of(" \t\r\n\f\v");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}
}  // namespace

std::string img2label_path(const std::string& x) {
  std::string s = x;
  auto p = s.find("/images/");
  if (p != std::string::npos) s.replace(p, 8, "/labels/");
  // 'txt'.join(s.rsplit(ext, 1)) with ext = text after the last '.' of the ORIGINAL path
  auto dot = x.rfind('.');
  std::string ext = dot == std::string::npos ? x : x.substr(dot + 1);
  auto q = s.rfind(ext);
  if (q != std::string::npos) s.replace(q, ext.size(), "txt");
  return s;
}

std::vector<std::array<int, 2>> rect_batch_shapes(const std::vector<double>& ar, int batch_size, int img_size,
                                                  int stride, double pad) {
  Y7_CHECK(batch_size > 0 && stride > 0 && img_size > 0, "rect shapes: bad batch/stride/size");
  const size_t n = ar.size();
  const size_t nb = n ? (n - 1) / size_t(batch_size) + 1 : 0;
  std::vector<std::array<int, 2>> out(nb);
  for (size_t i = 0; i < nb; ++i) {
    size_t a = i * batch_size, b = std::min(n, a + batch_size);
    double mini = *std::min_element(ar.begin() + a, ar.begin() + b);
    double maxi = *std::max_element(ar.begin() + a, ar.begin() + b);
    double sh = 1, sw = 1;
    if (maxi < 1)
      sh = maxi;
    else if (mini > 1)
      sw = 1 / mini;
    // np.ceil(shapes * img_size / stride + pad).astype(int) * stride
    out[i] = {int(std::ceil(sh * img_size / stride + pad)) * stride, int(std::ceil(sw * img_size / stride + pad)) * stride};
  }
  return out;
}

NBoxes parse_labels(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(trim(text));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> tok;
    for (std::string t; ls >> t;) tok.push_back(t);
    rows.push_back(std::move(tok));
  }
  if (rows.size() == 1 && rows[0].empty()) rows.clear();
  auto num = [](const std::string& t) -> float {
    char* end = nullptr;
    float v = std::strtof(t.c_str(), &end);
    Y7_CHECK(end && *end == 0 && !t.empty(), "could not convert string to float: '", t, "'");
    return v;
  };
  bool segments = false;
  for (const auto& r : rows) segments |= r.size() > 8;
  NBoxes out;
  for (const auto& r : rows) {
    if (segments) {  // (cls, x1, y1, x2, y2, ...) polygon -> box
      Y7_CHECK(!r.empty() && r.size() % 2 == 1 && r.size() >= 3, "polygon labels need a class and x,y pairs");
      float xmn = INFINITY, ymn = INFINITY, xmx = -INFINITY, ymx = -INFINITY;
      for (size_t k = 1; k < r.size(); k += 2) {
        float x = num(r[k]), y = num(r[k + 1]);
        xmn = std::min(xmn, x), xmx = std::max(xmx, x), ymn = std::min(ymn, y), ymx = std::max(ymx, y);
      }
      out.push_back({num(r[0]), (xmn + xmx) / 2, (ymn + ymx) / 2, xmx - xmn, ymx - ymn});
    } else {
      Y7_CHECK(r.size() == 5, "labels require 5 columns each");
      out.push_back({num(r[0]), num(r[1]), num(r[2]), num(r[3]), num(r[4])});
    }
  }
  for (const auto& l : out) {
    for (float v : l) Y7_CHECK(v >= 0, "negative labels");  // NaN fails too
    for (int k = 1; k < 5; ++k) Y7_CHECK(l[k] <= 1, "non-normalized or out of bounds coordinate labels");
  }
  std::set<std::array<float, 5>> uniq(out.begin(), out.end());
  Y7_CHECK(uniq.size() == out.size(), "duplicate labels");
  return out;
}

Verified verify_image_label(const std::string& im_file, const std::string& lb_file) {
  Verified v;
  try {
    std::vector<char> bytes = io::read_file(im_file);
    const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t n = bytes.size();
    bool jpeg = n >= 3 && u[0] == 0xFF && u[1] == 0xD8 && u[2] == 0xFF;
    bool png = n >= 8 && std::memcmp(u, "\x89PNG\r\n\x1a\n", 8) == 0;
    bool bmp = n >= 2 && u[0] == 'B' && u[1] == 'M';
    Y7_CHECK(jpeg || png || bmp, "cannot identify image file (supported: JPEG, PNG, BMP)");
    int w = 0, h = 0, c = 0;
    Y7_CHECK(n <= size_t(INT32_MAX) && stbi_info_from_memory(u, int(n), &w, &h, &c), "cannot read the image header");
    if (jpeg) {
      int o = io::jpeg_exif_orientation(u, n);
      if (o == 6 || o == 8) std::swap(w, h);  // upstream exif_size swaps for rotations 6 and 8
    }
    Y7_CHECK(w > 9 && h > 9, "image size (", w, ", ", h, ") <10 pixels");
    v.w = w, v.h = h;
    std::error_code ec;
    if (fs::is_regular_file(lb_file, ec)) {
      v.label_found = true;
      std::vector<char> t = io::read_file(lb_file, size_t(1) << 28);
      v.labels = parse_labels(std::string(t.begin(), t.end()));
      v.label_state = v.labels.empty() ? 2 : 0;
    } else {
      v.label_state = 1;
    }
    v.ok = true;
  } catch (const std::exception& e) {
    v.ok = false;
    v.error = e.what();
  }
  return v;
}

// ------------------------------------------------------------------ cache
namespace {
constexpr char kMagic[8] = {'Y', '7', 'L', 'C', 'A', 'C', 'H', '1'};

uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
uint64_t files_hash(const std::vector<std::string>& imgs, const std::vector<std::string>& lbls) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto* list : {&lbls, &imgs})
    for (const auto& f : *list) {
      h = fnv(h, f.data(), f.size() + 1);
      std::error_code ec;
      int64_t sz = -1, mt = 0;
      auto st = fs::status(f, ec);
      if (!ec && fs::is_regular_file(st)) {
        sz = int64_t(fs::file_size(f, ec));
        mt = int64_t(fs::last_write_time(f, ec).time_since_epoch().count());
      }
      h = fnv(h, &sz, 8);
      h = fnv(h, &mt, 8);
    }
  return h;
}

struct Writer {
  std::string b;
  template <typename T>
  void put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) { put<uint32_t>(uint32_t(s.size())), b += s; }
};
struct Reader {
  const std::vector<char>& b;
  size_t p = 0;
  template <typename T>
  T get() {
    Y7_CHECK(p + sizeof(T) <= b.size(), "truncated cache");
    T v;
    std::memcpy(&v, b.data() + p, sizeof v);
    p += sizeof v;
    return v;
  }
  std::string str() {
    uint32_t n = get<uint32_t>();
    Y7_CHECK(p + n <= b.size(), "truncated cache");
    std::string s(b.data() + p, n);
    p += n;
    return s;
  }
};

struct Cache {
  uint64_t hash = 0;
  LabelStats st;
  std::vector<std::string> files;
  std::vector<std::array<int, 2>> shapes;
  std::vector<NBoxes> labels;
};

bool read_cache(const std::string& path, uint64_t hash, Cache& c) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    std::vector<char> b = io::read_file(path, size_t(1) << 31);
    Reader r{b};
    for (char m : kMagic) Y7_CHECK(r.get<char>() == m, "bad magic");
    c.hash = r.get<uint64_t>();
    if (c.hash != hash) return false;
    c.st.found = r.get<int32_t>(), c.st.missing = r.get<int32_t>(), c.st.empty = r.get<int32_t>();
    c.st.corrupt = r.get<int32_t>(), c.st.total = r.get<int32_t>();
    uint32_t n = r.get<uint32_t>();
    Y7_CHECK(n <= b.size(), "bad count");
    for (uint32_t i = 0; i < n; ++i) {
      c.files.push_back(r.str());
      int w = r.get<int32_t>(), h = r.get<int32_t>();
      c.shapes.push_back({w, h});
      uint32_t nl = r.get<uint32_t>();
      Y7_CHECK(nl <= b.size(), "bad label count");
      NBoxes l(nl);
      for (auto& row : l)
        for (auto& v : row) v = r.get<float>();
      c.labels.push_back(std::move(l));
    }
    Y7_CHECK(r.p == b.size(), "trailing bytes");
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable cache: rebuild it
  }
}

void write_cache(const std::string& path, const Cache& c) {
  Writer w;
  w.b.append(kMagic, 8);
  w.put<uint64_t>(c.hash);
  w.put<int32_t>(c.st.found), w.put<int32_t>(c.st.missing), w.put<int32_t>(c.st.empty);
  w.put<int32_t>(c.st.corrupt), w.put<int32_t>(c.st.total);
  w.put<uint32_t>(uint32_t(c.files.size()));
  for (size_t i = 0; i < c.files.size(); ++i) {
    w.str(c.files[i]);
    w.put<int32_t>(c.shapes[i][0]), w.put<int32_t>(c.shapes[i][1]);
    w.put<uint32_t>(uint32_t(c.labels[i].size()));
    for (const auto& row : c.labels[i])
      for (float v : row) w.put<float>(v);
  }
  io::write_file_atomic(path, w.b.data(), w.b.size());
}
}  // namespace

// ------------------------------------------------------------------ dataset
void Dataset::scan(const std::vector<std::string>& sources) {
  const std::string& pre = opt_.prefix;
  std::vector<std::string> f;
  std::string last_source;
  bool last_is_file = false;
  for (const auto& src : sources) {
    fs::path p(src);
    std::error_code ec;
    last_source = src, last_is_file = false;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {  // glob skips hidden entries
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (name.find('.') != std::string::npos && !it->is_directory(ec)) f.push_back(it->path().string());
      }
    } else if (fs::is_regular_file(p, ec) && lower(p.extension().string()) == ".txt") {
      last_is_file = true;
      std::vector<char> t = io::read_file(src, size_t(1) << 30);
      std::string parent = p.parent_path().string() + "/";
      if (p.parent_path().empty()) parent = "./";
      std::istringstream in(trim(std::string(t.begin(), t.end())));
      for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        f.push_back(line.rfind("./", 0) == 0 ? replace_all(line, "./", parent) : line);
      }
    } else if (fs::is_regular_file(p, ec)) {
      f.push_back(src);
    } else if (src.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      if (::glob(src.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) f.push_back(g.gl_pathv[i]);
      globfree(&g);
    } else {
      fail(pre, "Error loading data from ", src, ": does not exist");
    }
  }
  std::vector<std::string> imgs;
  for (auto& x : f)
    if (is_img(x)) imgs.push_back(x);
  std::sort(imgs.begin(), imgs.end());
  Y7_CHECK(!imgs.empty(), pre, "No images found in ", sources.empty() ? std::string("(no source)") : sources[0]);

  std::vector<std::string> lbls(imgs.size());
  for (size_t i = 0; i < imgs.size(); ++i) lbls[i] = img2label_path(imgs[i]);
  fs::path base = (sources.size() == 1 && last_is_file) ? fs::path(last_source) : fs::path(lbls[0]).parent_path();
  cache_path_ = base.replace_extension(".y7cache").string();
  const uint64_t hash = files_hash(imgs, lbls);

  Cache c;
  cache_loaded_ = read_cache(cache_path_, hash, c);
  if (cache_loaded_) {
    if (opt_.verbose)
      std::fprintf(stderr, "%sScanning '%s' images and labels... %d found, %d missing, %d empty, %d corrupted\n",
                   pre.c_str(), cache_path_.c_str(), c.st.found, c.st.missing, c.st.empty, c.st.corrupt);
  } else {
    c = Cache{};
    c.hash = hash;
    for (size_t i = 0; i < imgs.size(); ++i) {
      Verified v = verify_image_label(imgs[i], lbls[i]);
      if (v.label_found) ++c.st.found;
      if (!v.ok) {
        ++c.st.corrupt;
        if (opt_.verbose)
          std::fprintf(stderr, "%sWARNING: Ignoring corrupted image and/or label %s: %s\n", pre.c_str(),
                       imgs[i].c_str(), v.error.c_str());
        continue;
      }
      if (v.label_state == 1) ++c.st.missing;
      if (v.label_state == 2) ++c.st.empty;
      c.files.push_back(imgs[i]);
      c.shapes.push_back({v.w, v.h});
      c.labels.push_back(std::move(v.labels));
    }
    c.st.total = int(imgs.size());
    if (opt_.verbose) {
      std::fprintf(stderr, "%sScanning '%s' images and labels... %d found, %d missing, %d empty, %d corrupted\n",
                   pre.c_str(), (fs::path(cache_path_).parent_path() / fs::path(cache_path_).stem()).c_str(),
                   c.st.found, c.st.missing, c.st.empty, c.st.corrupt);
      if (c.st.found == 0) std::fprintf(stderr, "%sWARNING: No labels found in %s\n", pre.c_str(), cache_path_.c_str());
    }
    if (opt_.write_cache) {
      try {
        write_cache(cache_path_, c);
      } catch (const std::exception& e) {
        if (opt_.verbose)
          std::fprintf(stderr, "%sWARNING: Cache directory is not writeable: %s\n", pre.c_str(), e.what());
      }
    }
  }
  stats_ = c.st;
  Y7_CHECK(stats_.found > 0 || !opt_.augment, pre, "No labels in ", cache_path_, ". Can not train without labels");
  Y7_CHECK(!c.files.empty(), pre, "No usable images in ", sources.empty() ? std::string() : sources[0],
           " (all corrupted)");
  files_ = std::move(c.files);
  shapes_ = std::move(c.shapes);
  labels_ = std::move(c.labels);
  if (opt_.single_cls)
    for (auto& l : labels_)
      for (auto& r : l) r[0] = 0;
}

Dataset::Dataset(const std::vector<std::string>& sources, const DatasetOptions& opt) : opt_(opt) {
  Y7_CHECK(opt_.img_size > 0 && opt_.img_size <= 16384, "dataset: bad image size ", opt_.img_size);
  Y7_CHECK(opt_.batch_size > 0, "dataset: bad batch size ", opt_.batch_size);
  Y7_CHECK(opt_.stride > 0, "dataset: bad stride ", opt_.stride);
  scan(sources);
  const size_t n = files_.size();
  batch_.resize(n);
  for (size_t i = 0; i < n; ++i) batch_[i] = int(i / size_t(opt_.batch_size));
  if (opt_.rect) {
    std::vector<double> ar(n);
    for (size_t i = 0; i < n; ++i) ar[i] = double(shapes_[i][1]) / double(shapes_[i][0]);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ar[a] < ar[b]; });
    std::vector<std::string> f2(n);
    std::vector<NBoxes> l2(n);
    std::vector<std::array<int, 2>> s2(n);
    std::vector<double> ar2(n);
    for (size_t i = 0; i < n; ++i)
      f2[i] = files_[order[i]], l2[i] = labels_[order[i]], s2[i] = shapes_[order[i]], ar2[i] = ar[order[i]];
    files_ = std::move(f2), labels_ = std::move(l2), shapes_ = std::move(s2);
    batch_shapes_ = rect_batch_shapes(ar2, opt_.batch_size, opt_.img_size, opt_.stride, opt_.pad);
  }
}

io::Image Dataset::load_image(size_t index, int* h0, int* w0) const {
  Y7_CHECK(index < files_.size(), "dataset index ", index, " out of range (", files_.size(), " images)");
  io::Image img = io::load_image(files_[index], 3);
  if (h0) *h0 = img.h;
  if (w0) *w0 = img.w;
  return io::resize_long_side(img, opt_.img_size, opt_.augment);
}

Item Dataset::get(size_t index, uint64_t seed) const {
  Rng rng(Rng::mix(seed, index));
  return get_with(index, rng);
}

void Dataset::set_indices(std::vector<size_t> idx) {
  Y7_CHECK(idx.empty() || idx.size() == files_.size(), "dataset indices: expected ", files_.size(), " entries, got ",
           idx.size());
  for (size_t i : idx) Y7_CHECK(i < files_.size(), "dataset indices: index ", i, " out of range");
  indices_ = std::move(idx);
}

Item Dataset::get_with(size_t index, Rng& rng) const {
  Y7_CHECK(index < files_.size(), "dataset index ", index, " out of range (", files_.size(), " images)");
  const AugmentHyp& hyp = opt_.hyp;
  Item it;
  it.path = files_[index];
  Boxes labels;
  io::Image img;
  const bool mosaic = opt_.augment && !opt_.rect && rng.uniform() < hyp.mosaic;
  if (mosaic) {
    TileLoader tl = [this](size_t i) { return Tile{load_image(i), labels_[i]}; };
    const int s = opt_.img_size;
    const std::vector<size_t>* pool = indices_.empty() ? nullptr : &indices_;
    if (rng.uniform() < 0.8)
      load_mosaic(tl, index, size(), s, hyp, rng, img, labels, pool);
    else
      load_mosaic9(tl, index, size(), s, hyp, rng, img, labels, pool);
    if (rng.uniform() < hyp.mixup) {
      io::Image img2;
      Boxes labels2;
      const bool four = rng.uniform() < 0.8;
      size_t j = size_t(rng.randint(0, int(size()) - 1));
      if (four)
        load_mosaic(tl, j, size(), s, hyp, rng, img2, labels2);
      else
        load_mosaic9(tl, j, size(), s, hyp, rng, img2, labels2);
      double r = rng.beta(8.0, 8.0);
      mixup(img, img2, r);
      labels.insert(labels.end(), labels2.begin(), labels2.end());
    }
  } else {
    int h0 = 0, w0 = 0;
    io::Image im = load_image(index, &h0, &w0);
    const int h = im.h, w = im.w;
    io::LetterboxParams lp;
    if (opt_.rect) {
      lp.new_h = batch_shapes_[batch_[index]][0], lp.new_w = batch_shapes_[batch_[index]][1];
    } else {
      lp.new_h = lp.new_w = opt_.img_size;
    }
    lp.auto_pad = false;
    lp.scaleup = opt_.augment;
    io::Letterboxed lb = io::letterbox(im, lp);
    img = std::move(lb.img);
    it.has_shapes = true;
    it.h0 = h0, it.w0 = w0;
    it.ratio_h = double(h) / h0, it.ratio_w = double(w) / w0;
    it.letterbox_ratio = lb.ratio_w;
    it.pad_w = lb.dw, it.pad_h = lb.dh;
    labels = xywhn_to_xyxy(labels_[index], lb.ratio_w * w, lb.ratio_h * h, lb.dw, lb.dh);
  }
  if (opt_.augment) {
    if (!mosaic) random_perspective(img, labels, hyp, rng, 0, 0);
    augment_hsv(img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, rng);
    // paste_in: upstream samples instance segments; box-only labels have none, so it adds nothing.
    (void)(rng.uniform() < hyp.paste_in);
  }
  std::vector<std::array<float, 6>> out(labels.size());
  const float H = float(img.h), W = float(img.w);
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& b = labels[i];
    out[i] = {0.f, b[0], ((b[1] + b[3]) / 2) / W, ((b[2] + b[4]) / 2) / H, (b[3] - b[1]) / W, (b[4] - b[2]) / H};
  }
  if (opt_.augment) {
    if (rng.uniform() < hyp.flipud) {
      flip_ud(img);
      for (auto& l : out) l[3] = 1 - l[3];
    }
    if (rng.uniform() < hyp.fliplr) {
      flip_lr(img);
      for (auto& l : out) l[2] = 1 - l[2];
    }
  }
  it.img = std::move(img);
  it.labels = std::move(out);
  return it;
}

Tensor image_to_chw(const io::Image& img, bool as_float) {
  Y7_CHECK(img.c == 3, "image_to_chw: needs 3 channels, got ", img.c);
  io::Image rgb = img.order == io::PixelOrder::RGB ? io::Image() : io::swap_rb(img);
  const io::Image& s = img.order == io::PixelOrder::RGB ? img : rgb;
  const size_t hw = size_t(s.w) * s.h;
  Tensor t = Tensor::empty({3, s.h, s.w}, as_float ? DType::F32 : DType::U8);
  if (as_float) {
    float* d = t.data<float>();
    for (size_t i = 0; i < hw; ++i)
      for (int k = 0; k < 3; ++k) d[k * hw + i] = float(s.data[i * 3 + k]) / 255.0f;
  } else {
    uint8_t* d = t.data<uint8_t>();
    for (size_t i = 0; i < hw; ++i)
      for (int k = 0; k < 3; ++k) d[k * hw + i] = s.data[i * 3 + k];
  }
  return t;
}

}  // namespace y7::train
