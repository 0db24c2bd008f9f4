#include "train/shapes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/file_util.h"
#include "train/augment.h"

namespace fs = std::filesystem;

namespace y7::train {

const char* const kShapeNames[kNumShapeClasses] = {"circle", "square", "triangle", "cross", "ring", "star"};

namespace {
constexpr int kNoise = 24;  // background noise amplitude (+-)

struct Pt {
  double x, y;
};
bool in_poly(const std::vector<Pt>& p, double x, double y) {
  bool in = false;
  for (size_t i = 0, j = p.size() - 1; i < p.size(); j = i++)
    if ((p[i].y > y) != (p[j].y > y) && x < (p[j].x - p[i].x) * (y - p[i].y) / (p[j].y - p[i].y) + p[i].x) in = !in;
  return in;
}

// Whether pixel center (x, y) (relative to the shape center) is inside shape `cls` of radius r,
// rotated by th.
struct Shape {
  int cls;
  double r, th;
  std::vector<Pt> poly;
  Shape(int c, double r_, double th_) : cls(c), r(r_), th(th_) {
    if (cls == 2) {
      for (int k = 0; k < 3; ++k) {
        double a = th + M_PI / 2 + k * 2 * M_PI / 3;
        poly.push_back({r * std::cos(a), r * std::sin(a)});
      }
    } else if (cls == 5) {
      for (int k = 0; k < 10; ++k) {
        double a = th + k * M_PI / 5, rr = (k % 2) ? r * 0.45 : r;
        poly.push_back({rr * std::cos(a), rr * std::sin(a)});
      }
    }
  }
  bool inside(double x, double y) const {
    const double c = std::cos(th), s = std::sin(th);
    const double u = c * x + s * y, v = -s * x + c * y, d = std::sqrt(x * x + y * y);
    switch (cls) {
      case 0: return d <= r;
      case 1: return std::abs(u) <= r * 0.75 && std::abs(v) <= r * 0.75;
      case 2: return in_poly(poly, x, y);
      case 3: return (std::abs(u) <= r && std::abs(v) <= r * 0.3) || (std::abs(v) <= r && std::abs(u) <= r * 0.3);
      case 4: return d <= r && d >= r * 0.6;
      default: return in_poly(poly, x, y);
    }
  }
};
}  // namespace

ShapeImage make_shape_image(int size, uint64_t seed) {
  Y7_CHECK(size >= 32 && size <= 8192, "shapes: image size must be in [32, 8192], got ", size);
  std::mt19937_64 g(Rng::mix(seed, 0x5348415045ull));
  auto U = [&](double a, double b) { return a + (b - a) * (double(g() >> 11) * (1.0 / 9007199254740992.0)); };
  auto I = [&](int a, int b) { return a + int(g() % uint64_t(b - a + 1)); };

  ShapeImage out;
  // background: a random base color, a linear gradient (+-20) and uniform noise (+-kNoise)
  int base[3];
  for (int& b : base) b = I(kNoise + 20, 255 - kNoise - 20);
  const double gx = U(-20, 20) / size, gy = U(-20, 20) / size;
  out.img = io::Image(size, size, 3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      uint8_t* p = out.img.at(x, y);
      const double gr = gx * (x - size / 2.0) + gy * (y - size / 2.0);
      for (int k = 0; k < 3; ++k) p[k] = uint8_t(std::clamp(int(std::lround(base[k] + gr)) + I(-kNoise, kNoise), 0, 255));
    }
  const int lo = -kNoise - 21, hi = kNoise + 21;  // background channel k lies in [base+lo, base+hi]

  const int nobj = I(1, 6);
  std::vector<std::array<int, 4>> taken;  // boxes incl. a 2-pixel gap
  for (int o = 0; o < nobj; ++o) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      const int cls = I(0, kNumShapeClasses - 1);
      const double r = U(size * 0.04, size * 0.16);
      const double th = U(0, 2 * M_PI);
      const double cx = U(r + 1, size - r - 1), cy = U(r + 1, size - r - 1);
      Shape sh(cls, r, th);
      int bx0 = std::max(0, int(std::floor(cx - r)) - 1), by0 = std::max(0, int(std::floor(cy - r)) - 1);
      int bx1 = std::min(size, int(std::ceil(cx + r)) + 2), by1 = std::min(size, int(std::ceil(cy + r)) + 2);
      bool clash = false;
      for (const auto& t : taken) clash |= bx0 < t[2] + 2 && t[0] < bx1 + 2 && by0 < t[3] + 2 && t[1] < by1 + 2;
      if (clash) continue;
      // color: far from the background in at least one channel
      std::array<uint8_t, 3> col;
      for (;;) {
        bool far = false;
        for (int k = 0; k < 3; ++k) {
          col[k] = uint8_t(I(0, 255));
          far |= col[k] < base[k] + lo - 8 || col[k] > base[k] + hi + 8;
        }
        if (far) break;
      }
      ShapeObject ob;
      ob.cls = cls, ob.color = col;
      ob.x0 = size, ob.y0 = size, ob.x1 = -1, ob.y1 = -1;
      for (int y = by0; y < by1; ++y)
        for (int x = bx0; x < bx1; ++x)
          if (sh.inside(x + 0.5 - cx, y + 0.5 - cy)) {
            std::copy(col.begin(), col.end(), out.img.at(x, y));
            ob.x0 = std::min(ob.x0, x), ob.y0 = std::min(ob.y0, y);
            ob.x1 = std::max(ob.x1, x + 1), ob.y1 = std::max(ob.y1, y + 1);
          }
      if (ob.x1 < 0) continue;  // nothing painted (cannot happen for r >= 1, kept for safety)
      taken.push_back({ob.x0, ob.y0, ob.x1, ob.y1});
      out.objects.push_back(ob);
      break;
    }
  }
  return out;
}

uint64_t shape_image_seed(uint64_t seed, int split, int i) {
  return Rng::mix(seed, uint64_t(split) * 10000000ull + uint64_t(i));
}

std::string shape_labels_text(const ShapeImage& im) {
  std::string s;
  const double W = im.img.w, H = im.img.h;
  char buf[128];
  for (const auto& o : im.objects) {
    std::snprintf(buf, sizeof buf, "%d %.6f %.6f %.6f %.6f\n", o.cls, (o.x0 + o.x1) / 2.0 / W, (o.y0 + o.y1) / 2.0 / H,
                  (o.x1 - o.x0) / W, (o.y1 - o.y0) / H);
    s += buf;
  }
  return s;
}

std::string write_shapes_dataset(const std::string& dir, const ShapesOptions& opt) {
  Y7_CHECK(!dir.empty(), "shapes: no output directory");
  Y7_CHECK(opt.n_train >= 0 && opt.n_val >= 0 && opt.n_train + opt.n_val > 0 && opt.n_train <= 1000000 &&
               opt.n_val <= 1000000,
           "shapes: bad image counts --train ", opt.n_train, " --val ", opt.n_val);
  fs::path root = fs::absolute(fs::path(dir)).lexically_normal();
  std::error_code ec;
  const char* splits[2] = {"train", "val"};
  const int counts[2] = {opt.n_train, opt.n_val};
  for (int sp = 0; sp < 2; ++sp) {
    fs::create_directories(root / "images" / splits[sp], ec);
    Y7_CHECK(!ec, "shapes: cannot create ", (root / "images" / splits[sp]).string(), ": ", ec.message());
    fs::create_directories(root / "labels" / splits[sp], ec);
    Y7_CHECK(!ec, "shapes: cannot create ", (root / "labels" / splits[sp]).string(), ": ", ec.message());
    for (int i = 0; i < counts[sp]; ++i) {
      ShapeImage im = make_shape_image(opt.size, shape_image_seed(opt.seed, sp, i));
      char name[32];
      std::snprintf(name, sizeof name, "%05d", i);
      io::save_image((root / "images" / splits[sp] / (std::string(name) + ".png")).string(), im.img);
      std::string txt = shape_labels_text(im);
      io::write_file_atomic((root / "labels" / splits[sp] / (std::string(name) + ".txt")).string(), txt.data(),
                            txt.size());
    }
  }
  std::string y = "# synthetic shapes data set: yolo7 data shapes --seed " + std::to_string(opt.seed) + "\n";
  y += "train: " + (root / "images" / "train").string() + "\n";
  y += "val: " + (root / "images" / "val").string() + "\n";
  y += "nc: " + std::to_string(kNumShapeClasses) + "\nnames: [";
  for (int k = 0; k < kNumShapeClasses; ++k) y += std::string(k ? ", " : "") + "'" + kShapeNames[k] + "'";
  y += "]\n";
  std::string yp = (root / "data.yaml").string();
  io::write_file_atomic(yp, y.data(), y.size());
  // stale label caches from an earlier set in the same place
  for (int sp = 0; sp < 2; ++sp) fs::remove(root / "labels" / (std::string(splits[sp]) + ".y7cache"), ec);
  return yp;
}

}  // namespace y7::train
