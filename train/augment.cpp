// Upstream augmentations (see train/augment.h for the exactness notes).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "train/augment.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>

#include "core/error.h"

namespace y7::train {

// ---------------------------------------------------------------- hyp
AugmentHyp AugmentHyp::from_yaml(const std::string& path) {
  Y7_CHECK(std::filesystem::is_regular_file(path), "hyp yaml not found: ", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, ": invalid yaml: ", e.msg);
  }
  Y7_CHECK(root.IsMap(), path, ": a hyp yaml must be a mapping");
  AugmentHyp h;
  auto get = [&](const char* k, double& v) {
    if (!root[k]) return;
    try {
      v = root[k].as<double>();
    } catch (const YAML::Exception&) {
      fail(path, ": hyp '", k, "' must be a number");
    }
  };
  get("hsv_h", h.hsv_h), get("hsv_s", h.hsv_s), get("hsv_v", h.hsv_v);
  get("degrees", h.degrees), get("translate", h.translate), get("scale", h.scale), get("shear", h.shear);
  get("perspective", h.perspective), get("flipud", h.flipud), get("fliplr", h.fliplr), get("mosaic", h.mosaic);
  get("mixup", h.mixup), get("copy_paste", h.copy_paste), get("paste_in", h.paste_in);
  return h;
}

// ---------------------------------------------------------------- rng
uint64_t Rng::mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double Rng::uniform(double a, double b) {
  if (pos_ < script_.size()) return script_[pos_++];
  double u = double(g_() >> 11) * (1.0 / 9007199254740992.0);  // 53 bits in [0, 1)
  return a + (b - a) * u;
}
int Rng::randint(int a, int b) {
  if (pos_ < script_.size()) return int(script_[pos_++]);
  if (b <= a) return a;
  uint64_t span = uint64_t(int64_t(b) - a) + 1;
  return int(int64_t(a) + int64_t(g_() % span));  // span is tiny vs 2^64: bias negligible
}
double Rng::beta(double a, double b) {
  if (pos_ < script_.size()) return script_[pos_++];
  std::gamma_distribution<double> ga(a, 1.0), gb(b, 1.0);
  double x = ga(g_), y = gb(g_);
  return x / (x + y);
}

Boxes xywhn_to_xyxy(const NBoxes& l, double w, double h, double padw, double padh) {
  const float fw = float(w), fh = float(h), pw = float(padw), ph = float(padh);
  Boxes out(l.size());
  for (size_t i = 0; i < l.size(); ++i) {
    const auto& x = l[i];
    out[i] = {x[0], fw * (x[1] - x[3] / 2) + pw, fh * (x[2] - x[4] / 2) + ph, fw * (x[1] + x[3] / 2) + pw,
              fh * (x[2] + x[4] / 2) + ph};
  }
  return out;
}

// ---------------------------------------------------------------- HSV
namespace {
struct HsvTables {
  int sdiv[256], hdiv[256];
  HsvTables() {
    sdiv[0] = hdiv[0] = 0;
    for (int i = 1; i < 256; ++i) {
      sdiv[i] = int(std::lrint((255 << 12) / (1. * i)));
      hdiv[i] = int(std::lrint((180 << 12) / (6. * i)));
    }
  }
};
const HsvTables& hsv_tables() {
  static const HsvTables t;
  return t;
}
inline uint8_t sat_u8f(float v) {
  int i = int(std::lrintf(v));
  return uint8_t(std::clamp(i, 0, 255));
}
}  // namespace

void rgb_to_hsv_u8(uint8_t r8, uint8_t g8, uint8_t b8, uint8_t& h8, uint8_t& s8, uint8_t& v8) {
  const auto& t = hsv_tables();
  const int shift = 12, half = 1 << (shift - 1);
  int r = r8, g = g8, b = b8;
  int v = std::max({r, g, b}), vmin = std::min({r, g, b});
  int diff = v - vmin;
  int vr = v == r ? -1 : 0, vg = v == g ? -1 : 0;
  int s = (diff * t.sdiv[v] + half) >> shift;
  int h = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + ((~vg) & (r - g + 4 * diff))));
  h = (h * t.hdiv[diff] + half) >> shift;
  h += h < 0 ? 180 : 0;
  h8 = uint8_t(std::clamp(h, 0, 255));
  s8 = uint8_t(s);
  v8 = uint8_t(v);
}

void hsv_to_rgb_u8(uint8_t h8, uint8_t s8, uint8_t v8, uint8_t& r8, uint8_t& g8, uint8_t& b8) {
  float h = float(h8), s = s8 * (1.f / 255.f), v = v8 * (1.f / 255.f);
  float b, g, r;
  if (s == 0) {
    b = g = r = v;
  } else {
    static const int sector_data[][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1}, {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
    const float hscale = 6.f / 180.f;
    h *= hscale;
    h = std::fmod(h, 6.f);
    int sector = int(std::floor(h));
    h -= float(sector);
    if (unsigned(sector) >= 6u) sector = 0, h = 0.f;
    // 1 - s*h is a fused multiply-add in OpenCV's AVX2-dispatched build of this code (1 - s*(1-h)
    // is not); this matches python3-opencv 4.6 on all 180*256*256 inputs
    float tab[4] = {v, v * (1.f - s), v * std::fma(-s, h, 1.f), v * (1.f - s * (1.f - h))};
    b = tab[sector_data[sector][0]];
    g = tab[sector_data[sector][1]];
    r = tab[sector_data[sector][2]];
  }
  b8 = sat_u8f(b * 255.f), g8 = sat_u8f(g * 255.f), r8 = sat_u8f(r * 255.f);
}

void hsv_to_rgb_u8_block(uint8_t h8, uint8_t s8, uint8_t v8, uint8_t& r8, uint8_t& g8, uint8_t& b8) {
  const float hscale = 6.0f / 180;
  float h = float(h8) * hscale, s = float(s8) * (1.0f / 255.0f), v = float(v8) * (1.0f / 255.0f);
  const float pre = std::trunc(h);
  h = h - pre;
  // OpenCV's AVX2 build contracts 1 - s*h and 1 - s*(1-h) into fused multiply-adds (found by
  // matching python3-opencv 4.6 on all 180*256*256 inputs; plain products differ in the last bit)
  const float t0 = v, t1 = v * (1.0f - s), t2 = v * std::fma(-s, h, 1.0f), t3 = v * std::fma(-s, 1.0f - h, 1.0f);
  const float sector = pre - std::trunc(pre * (1.0f / 6.0f)) * 6.0f;
  float b, g, r;
  b = sector < 2 ? t1 : sector == 2 ? t3 : sector == 3 ? t0 : sector == 4 ? t0 : t2;
  g = sector < 1 ? t3 : sector == 1 ? t0 : sector == 2 ? t0 : sector == 3 ? t2 : t1;
  r = sector < 1 ? t0 : sector == 1 ? t2 : sector == 2 ? t1 : sector == 3 ? t1 : sector == 4 ? t3 : t0;
  auto cvt = [](float x) { return uint8_t(std::clamp(int(std::trunc(x * 255.0f)), 0, 255)); };
  b8 = cvt(b), g8 = cvt(g), r8 = cvt(r);
}

void apply_hsv_gains(io::Image& img, double rh, double rs, double rv) {
  Y7_CHECK(img.c == 3, "augment_hsv: needs a 3-channel image, got ", img.c);
  uint8_t lh[256], ls[256], lv[256];
  for (int x = 0; x < 256; ++x) {
    // numpy: int16 array * float64 -> float64; % 180 (Python modulo, non-negative for r > 0);
    // astype(uint8) truncates (values are in range when gains are >= 0).
    double hv = std::fmod(x * rh, 180.0);
    if (hv < 0) hv += 180.0;
    lh[x] = uint8_t(int(hv));
    ls[x] = uint8_t(int(std::clamp(x * rs, 0.0, 255.0)));
    lv[x] = uint8_t(int(std::clamp(x * rv, 0.0, 255.0)));
  }
  const bool bgr = img.order == io::PixelOrder::BGR;
  const int simd_w = img.w / kCvHsvBlock * kCvHsvBlock;
  for (int y = 0; y < img.h; ++y) {
    uint8_t* p = img.row(y);
    for (int x = 0; x < img.w; ++x, p += 3) {
      uint8_t r = bgr ? p[2] : p[0], g = p[1], b = bgr ? p[0] : p[2];
      uint8_t h, s, v;
      rgb_to_hsv_u8(r, g, b, h, s, v);
      if (x < simd_w)
        hsv_to_rgb_u8_block(lh[h], ls[s], lv[v], r, g, b);
      else
        hsv_to_rgb_u8(lh[h], ls[s], lv[v], r, g, b);
      p[0] = bgr ? b : r, p[1] = g, p[2] = bgr ? r : b;
    }
  }
}

void augment_hsv(io::Image& img, double hgain, double sgain, double vgain, Rng& rng) {
  double r0 = rng.uniform(-1, 1) * hgain + 1, r1 = rng.uniform(-1, 1) * sgain + 1, r2 = rng.uniform(-1, 1) * vgain + 1;
  apply_hsv_gains(img, r0, r1, r2);
}

// ---------------------------------------------------------------- warps
namespace {
constexpr int kInterBits = 5, kTab = 1 << kInterBits, kAbBits = 10, kAbScale = 1 << kAbBits;

inline int cv_round_sat(double v) {
  if (!(v > double(INT_MIN))) return INT_MIN;  // also NaN
  if (v >= double(INT_MAX)) return INT_MAX;
  return int(std::lrint(v));
}

// Bilinear 8-bit sample at integer (sx, sy) with 1/32 fractions (ax, ay): cv::remap's fixed point.
inline void sample(const io::Image& src, int sx, int sy, int ax, int ay, uint8_t border, uint8_t* out) {
  const int c = src.c;
  // weights: float products (exact multiples of 1/1024) * 32768, always integral, sum 32768
  const int wx1 = ax, wx0 = kTab - ax, wy1 = ay, wy0 = kTab - ay;
  const int w00 = wy0 * wx0 * 32, w01 = wy0 * wx1 * 32, w10 = wy1 * wx0 * 32, w11 = wy1 * wx1 * 32;
  if (unsigned(sx) < unsigned(src.w - 1) && unsigned(sy) < unsigned(src.h - 1)) {
    const uint8_t* s0 = src.at(sx, sy);
    const uint8_t* s1 = s0 + src.row_bytes();
    for (int k = 0; k < c; ++k) {
      int acc = s0[k] * w00 + s0[k + c] * w01 + s1[k] * w10 + s1[k + c] * w11;
      out[k] = uint8_t((acc + (1 << 14)) >> 15);
    }
    return;
  }
  if (sx >= src.w || sx + 1 < 0 || sy >= src.h || sy + 1 < 0) {
    for (int k = 0; k < c; ++k) out[k] = border;
    return;
  }
  const bool x0 = sx >= 0 && sx < src.w, x1 = sx + 1 >= 0 && sx + 1 < src.w;
  const bool y0 = sy >= 0 && sy < src.h, y1 = sy + 1 >= 0 && sy + 1 < src.h;
  for (int k = 0; k < c; ++k) {
    int v00 = (x0 && y0) ? src.at(sx, sy)[k] : border;
    int v01 = (x1 && y0) ? src.at(sx + 1, sy)[k] : border;
    int v10 = (x0 && y1) ? src.at(sx, sy + 1)[k] : border;
    int v11 = (x1 && y1) ? src.at(sx + 1, sy + 1)[k] : border;
    int acc = v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11;
    out[k] = uint8_t((acc + (1 << 14)) >> 15);
  }
}

void check_warp(const io::Image& src, int dw, int dh, const char* what) {
  Y7_CHECK(!src.empty() && src.c >= 1 && src.c <= 4, what, ": bad source image ", src.w, "x", src.h, "x", src.c);
  Y7_CHECK(dw > 0 && dh > 0 && int64_t(dw) * dh <= (int64_t(1) << 28), what, ": bad output size ", dw, "x", dh);
}
}  // namespace

io::Image warp_affine(const io::Image& src, const std::array<double, 6>& Min, int dst_w, int dst_h, uint8_t border) {
  check_warp(src, dst_w, dst_h, "warp_affine");
  double M[6] = {Min[0], Min[1], Min[2], Min[3], Min[4], Min[5]};
  {  // invert like cv::warpAffine
    double D = M[0] * M[4] - M[1] * M[3];
    D = D != 0 ? 1. / D : 0;
    double A11 = M[4] * D, A22 = M[0] * D;
    M[0] = A11, M[1] *= -D, M[3] *= -D, M[4] = A22;
    double b1 = -M[0] * M[2] - M[1] * M[5];
    double b2 = -M[3] * M[2] - M[4] * M[5];
    M[2] = b1, M[5] = b2;
  }
  io::Image dst(dst_w, dst_h, src.c, 0, src.order);
  std::vector<int> adelta(dst_w), bdelta(dst_w);
  for (int x = 0; x < dst_w; ++x) {
    adelta[x] = cv_round_sat(M[0] * x * kAbScale);
    bdelta[x] = cv_round_sat(M[3] * x * kAbScale);
  }
  const int round_delta = kAbScale / kTab / 2;
  for (int y = 0; y < dst_h; ++y) {
    int X0 = cv_round_sat((M[1] * y + M[2]) * kAbScale) + round_delta;
    int Y0 = cv_round_sat((M[4] * y + M[5]) * kAbScale) + round_delta;
    uint8_t* d = dst.row(y);
    for (int x = 0; x < dst_w; ++x, d += src.c) {
      int X = int((int64_t(X0) + adelta[x]) >> (kAbBits - kInterBits));
      int Y = int((int64_t(Y0) + bdelta[x]) >> (kAbBits - kInterBits));
      int sx = std::clamp(X >> kInterBits, -32768, 32767), sy = std::clamp(Y >> kInterBits, -32768, 32767);
      sample(src, sx, sy, X & (kTab - 1), Y & (kTab - 1), border, d);
    }
  }
  return dst;
}

io::Image warp_perspective(const io::Image& src, const std::array<double, 9>& Mf, int dst_w, int dst_h,
                           uint8_t border) {
  check_warp(src, dst_w, dst_h, "warp_perspective");
  const double* a = Mf.data();
  double det = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) + a[2] * (a[3] * a[7] - a[4] * a[6]);
  double M[9] = {0};
  if (det != 0) {
    double id = 1.0 / det;
    M[0] = (a[4] * a[8] - a[5] * a[7]) * id, M[1] = (a[2] * a[7] - a[1] * a[8]) * id,
    M[2] = (a[1] * a[5] - a[2] * a[4]) * id;
    M[3] = (a[5] * a[6] - a[3] * a[8]) * id, M[4] = (a[0] * a[8] - a[2] * a[6]) * id,
    M[5] = (a[2] * a[3] - a[0] * a[5]) * id;
    M[6] = (a[3] * a[7] - a[4] * a[6]) * id, M[7] = (a[1] * a[6] - a[0] * a[7]) * id,
    M[8] = (a[0] * a[4] - a[1] * a[3]) * id;
  }
  io::Image dst(dst_w, dst_h, src.c, 0, src.order);
  for (int y = 0; y < dst_h; ++y) {
    double X0 = M[1] * y + M[2], Y0 = M[4] * y + M[5], W0 = M[7] * y + M[8];
    uint8_t* d = dst.row(y);
    for (int x = 0; x < dst_w; ++x, d += src.c) {
      double W = W0 + M[6] * x;
      W = W ? kTab / W : 0;
      double fX = std::max(double(INT_MIN), std::min(double(INT_MAX), (X0 + M[0] * x) * W));
      double fY = std::max(double(INT_MIN), std::min(double(INT_MAX), (Y0 + M[3] * x) * W));
      int X = cv_round_sat(fX), Y = cv_round_sat(fY);
      int sx = std::clamp(X >> kInterBits, -32768, 32767), sy = std::clamp(Y >> kInterBits, -32768, 32767);
      sample(src, sx, sy, X & (kTab - 1), Y & (kTab - 1), border, d);
    }
  }
  return dst;
}

// ---------------------------------------------------------------- boxes
bool box_candidate(const std::array<double, 4>& b1, const std::array<double, 4>& b2, double wh_thr, double ar_thr,
                   double area_thr, double eps) {
  double w1 = b1[2] - b1[0], h1 = b1[3] - b1[1];
  double w2 = b2[2] - b2[0], h2 = b2[3] - b2[1];
  double ar = std::max(w2 / (h2 + eps), h2 / (w2 + eps));
  return w2 > wh_thr && h2 > wh_thr && (w2 * h2 / (w1 * h1 + eps) > area_thr) && ar < ar_thr;
}

std::vector<std::array<double, 4>> transform_boxes(const Boxes& b, const std::array<double, 9>& M, bool perspective,
                                                   int width, int height) {
  std::vector<std::array<double, 4>> out(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    const double cx[4] = {b[i][1], b[i][3], b[i][1], b[i][3]};  // x1y1, x2y2, x1y2, x2y1
    const double cy[4] = {b[i][2], b[i][4], b[i][4], b[i][2]};
    double xmin = INFINITY, ymin = INFINITY, xmax = -INFINITY, ymax = -INFINITY;
    for (int k = 0; k < 4; ++k) {
      double X = cx[k] * M[0] + cy[k] * M[1] + M[2];
      double Y = cx[k] * M[3] + cy[k] * M[4] + M[5];
      if (perspective) {
        double W = cx[k] * M[6] + cy[k] * M[7] + M[8];
        X /= W, Y /= W;
      }
      xmin = std::min(xmin, X), xmax = std::max(xmax, X), ymin = std::min(ymin, Y), ymax = std::max(ymax, Y);
    }
    out[i] = {std::clamp(xmin, 0.0, double(width)), std::clamp(ymin, 0.0, double(height)),
              std::clamp(xmax, 0.0, double(width)), std::clamp(ymax, 0.0, double(height))};
  }
  return out;
}

namespace {
using M3 = std::array<double, 9>;
M3 mul(const M3& a, const M3& b) {
  M3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) c[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
  return c;
}
M3 eye() { return {1, 0, 0, 0, 1, 0, 0, 0, 1}; }
}  // namespace

std::array<double, 9> perspective_matrix(int img_w, int img_h, int out_w, int out_h, double px, double py, double a,
                                         double s, double shx, double shy, double tx, double ty) {
  M3 C = eye();
  C[2] = -img_w / 2.0, C[5] = -img_h / 2.0;
  M3 P = eye();
  P[6] = px, P[7] = py;
  // cv2.getRotationMatrix2D(center=(0,0), angle=a, scale=s): [[al, be, 0], [-be, al, 0]]
  const double rad = a * M_PI / 180.0;
  const double al = std::cos(rad) * s, be = std::sin(rad) * s;
  M3 R = {al, be, 0, -be, al, 0, 0, 0, 1};
  M3 S = eye();
  S[1] = std::tan(shx * M_PI / 180), S[3] = std::tan(shy * M_PI / 180);
  M3 T = eye();
  T[2] = tx * out_w, T[5] = ty * out_h;
  return mul(T, mul(S, mul(R, mul(P, C))));
}

void apply_perspective(io::Image& img, Boxes& targets, const std::array<double, 9>& M, double s, bool persp,
                       int border_h, int border_w) {
  const int height = img.h + border_h * 2, width = img.w + border_w * 2;
  Y7_CHECK(height > 0 && width > 0, "random_perspective: empty output for border ", border_h, ",", border_w);
  if (border_h != 0 || border_w != 0 || M != eye()) {
    if (persp)
      img = warp_perspective(img, M, width, height, 114);
    else
      img = warp_affine(img, {M[0], M[1], M[2], M[3], M[4], M[5]}, width, height, 114);
  }
  if (!targets.empty()) {
    auto nb = transform_boxes(targets, M, persp, width, height);
    Boxes kept;
    for (size_t i = 0; i < targets.size(); ++i) {
      // box1 = targets[:, 1:5].T * s in float32 * python float -> float32
      std::array<double, 4> b1;
      for (int k = 0; k < 4; ++k) b1[k] = double(targets[i][1 + k] * float(s));
      if (box_candidate(b1, nb[i]))
        kept.push_back({targets[i][0], float(nb[i][0]), float(nb[i][1]), float(nb[i][2]), float(nb[i][3])});
    }
    targets = std::move(kept);
  }
}

PerspectiveResult random_perspective(io::Image& img, Boxes& targets, const AugmentHyp& hyp, Rng& rng, int border_h,
                                     int border_w) {
  const int height = img.h + border_h * 2, width = img.w + border_w * 2;
  Y7_CHECK(height > 0 && width > 0, "random_perspective: empty output for border ", border_h, ",", border_w);
  double px = rng.uniform(-hyp.perspective, hyp.perspective);
  double py = rng.uniform(-hyp.perspective, hyp.perspective);
  double a = rng.uniform(-hyp.degrees, hyp.degrees);
  double s = rng.uniform(1 - hyp.scale, 1.1 + hyp.scale);
  double shx = rng.uniform(-hyp.shear, hyp.shear);
  double shy = rng.uniform(-hyp.shear, hyp.shear);
  double tx = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate);
  double ty = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate);
  PerspectiveResult res;
  res.M = perspective_matrix(img.w, img.h, width, height, px, py, a, s, shx, shy, tx, ty);
  res.s = s;
  apply_perspective(img, targets, res.M, s, hyp.perspective != 0, border_h, border_w);
  return res;
}

// ---------------------------------------------------------------- flips / mixup
void flip_lr(io::Image& img) {
  const int c = img.c;
  for (int y = 0; y < img.h; ++y) {
    uint8_t* r = img.row(y);
    for (int x = 0; x < img.w / 2; ++x)
      std::swap_ranges(r + size_t(x) * c, r + size_t(x) * c + c, r + size_t(img.w - 1 - x) * c);
  }
}
void flip_ud(io::Image& img) {
  for (int y = 0; y < img.h / 2; ++y) std::swap_ranges(img.row(y), img.row(y) + img.row_bytes(), img.row(img.h - 1 - y));
}
void mixup(io::Image& img, const io::Image& img2, double r) {
  Y7_CHECK(img.w == img2.w && img.h == img2.h && img.c == img2.c, "mixup: image sizes differ");
  for (size_t i = 0; i < img.data.size(); ++i) {
    double v = img.data[i] * r + img2.data[i] * (1 - r);
    img.data[i] = uint8_t(int(v));
  }
}

// ---------------------------------------------------------------- mosaics
namespace {
void paste(io::Image& dst, int x1a, int y1a, int x2a, int y2a, const io::Image& src, int x1b, int y1b) {
  if (x2a <= x1a || y2a <= y1a) return;
  const size_t c = size_t(dst.c), nbytes = size_t(x2a - x1a) * c;
  for (int y = y1a; y < y2a; ++y)
    std::copy_n(src.at(x1b, y1b + (y - y1a)), nbytes, dst.at(x1a, y));
}
void check_tile(const Tile& t, int c) {
  Y7_CHECK(!t.img.empty() && t.img.c == c, "mosaic: tile images must be non-empty with ", c, " channels");
}
}  // namespace

// A mosaic partner: uniform over [0, n), or over the epoch's weighted sample.
size_t draw_partner(size_t n, const std::vector<size_t>* pool, Rng& rng) {
  if (pool && !pool->empty()) return (*pool)[size_t(rng.randint(0, int(pool->size()) - 1))];
  return size_t(rng.randint(0, int(n) - 1));
}

void load_mosaic(const TileLoader& load, size_t index, size_t n, int s, const AugmentHyp& hyp, Rng& rng, io::Image& out,
                 Boxes& boxes, const std::vector<size_t>* pool) {
  Y7_CHECK(n > 0 && s > 0, "load_mosaic: empty dataset or size");
  const int border = -s / 2 - ((s % 2) ? 1 : 0);  // Python's -s // 2 (floor)
  const int yc = int(rng.uniform(-border, 2 * s + border)), xc = int(rng.uniform(-border, 2 * s + border));
  size_t idx[4] = {index, 0, 0, 0};
  for (int k = 1; k < 4; ++k) idx[k] = draw_partner(n, pool, rng);
  io::Image img4;
  boxes.clear();
  for (int i = 0; i < 4; ++i) {
    Tile t = load(idx[i]);
    const int h = t.img.h, w = t.img.w;
    if (i == 0) {
      check_tile(t, 3);
      img4 = io::Image(2 * s, 2 * s, t.img.c, 114, t.img.order);
    }
    check_tile(t, img4.c);
    int x1a, y1a, x2a, y2a, x1b, y1b, x2b, y2b;
    if (i == 0) {
      x1a = std::max(xc - w, 0), y1a = std::max(yc - h, 0), x2a = xc, y2a = yc;
      x1b = w - (x2a - x1a), y1b = h - (y2a - y1a), x2b = w, y2b = h;
    } else if (i == 1) {
      x1a = xc, y1a = std::max(yc - h, 0), x2a = std::min(xc + w, s * 2), y2a = yc;
      x1b = 0, y1b = h - (y2a - y1a), x2b = std::min(w, x2a - x1a), y2b = h;
    } else if (i == 2) {
      x1a = std::max(xc - w, 0), y1a = yc, x2a = xc, y2a = std::min(s * 2, yc + h);
      x1b = w - (x2a - x1a), y1b = 0, x2b = w, y2b = std::min(y2a - y1a, h);
    } else {
      x1a = xc, y1a = yc, x2a = std::min(xc + w, s * 2), y2a = std::min(s * 2, yc + h);
      x1b = 0, y1b = 0, x2b = std::min(w, x2a - x1a), y2b = std::min(y2a - y1a, h);
    }
    (void)x2b, (void)y2b;  // equal extents by construction (a and b slices have the same size)
    paste(img4, x1a, y1a, x2a, y2a, t.img, x1b, y1b);
    const int padw = x1a - x1b, padh = y1a - y1b;
    for (auto& b : xywhn_to_xyxy(t.labels, w, h, padw, padh)) boxes.push_back(b);
  }
  const float lim = float(2 * s);
  for (auto& b : boxes)
    for (int k = 1; k < 5; ++k) b[k] = std::clamp(b[k], 0.f, lim);
  // copy_paste needs instance segments; box-only labels have none, so upstream's copy_paste is a
  // no-op here (and so is ours).
  random_perspective(img4, boxes, hyp, rng, border, border);
  out = std::move(img4);
}

void load_mosaic9(const TileLoader& load, size_t index, size_t n, int s, const AugmentHyp& hyp, Rng& rng, io::Image& out,
                  Boxes& boxes, const std::vector<size_t>* pool) {
  Y7_CHECK(n > 0 && s > 0, "load_mosaic9: empty dataset or size");
  const int border = -s / 2 - ((s % 2) ? 1 : 0);
  size_t idx[9] = {index};
  for (int k = 1; k < 9; ++k) idx[k] = draw_partner(n, pool, rng);
  io::Image img9;
  boxes.clear();
  int h0 = 0, w0 = 0, hp = 0, wp = 0;
  for (int i = 0; i < 9; ++i) {
    Tile t = load(idx[i]);
    const int h = t.img.h, w = t.img.w;
    int c[4];
    if (i == 0) {
      check_tile(t, 3);
      img9 = io::Image(3 * s, 3 * s, t.img.c, 114, t.img.order);
      h0 = h, w0 = w;
      c[0] = s, c[1] = s, c[2] = s + w, c[3] = s + h;
    } else if (i == 1) {
      c[0] = s, c[1] = s - h, c[2] = s + w, c[3] = s;
    } else if (i == 2) {
      c[0] = s + wp, c[1] = s - h, c[2] = s + wp + w, c[3] = s;
    } else if (i == 3) {
      c[0] = s + w0, c[1] = s, c[2] = s + w0 + w, c[3] = s + h;
    } else if (i == 4) {
      c[0] = s + w0, c[1] = s + hp, c[2] = s + w0 + w, c[3] = s + hp + h;
    } else if (i == 5) {
      c[0] = s + w0 - w, c[1] = s + h0, c[2] = s + w0, c[3] = s + h0 + h;
    } else if (i == 6) {
      c[0] = s + w0 - wp - w, c[1] = s + h0, c[2] = s + w0 - wp, c[3] = s + h0 + h;
    } else if (i == 7) {
      c[0] = s - w, c[1] = s + h0 - h, c[2] = s, c[3] = s + h0;
    } else {
      c[0] = s - w, c[1] = s + h0 - hp - h, c[2] = s, c[3] = s + h0 - hp;
    }
    check_tile(t, img9.c);
    const int padx = c[0], pady = c[1];
    for (auto& b : xywhn_to_xyxy(t.labels, w, h, padx, pady)) boxes.push_back(b);
    // img9[y1:y2, x1:x2] = img[y1 - pady:, x1 - padx:] with numpy slice clipping: the region is
    // clipped to the canvas (tiles never extend past 3s for images <= s) and to the tile.
    int x1 = std::max(c[0], 0), y1 = std::max(c[1], 0);
    int x2 = std::min(std::max(c[2], 0), 3 * s), y2 = std::min(std::max(c[3], 0), 3 * s);
    x2 = std::min(x2, x1 + (w - (x1 - padx))), y2 = std::min(y2, y1 + (h - (y1 - pady)));
    paste(img9, x1, y1, x2, y2, t.img, x1 - padx, y1 - pady);
    hp = h, wp = w;
  }
  const int yc = int(rng.uniform(0, s)), xc = int(rng.uniform(0, s));
  io::Image crop(2 * s, 2 * s, img9.c, 114, img9.order);
  paste(crop, 0, 0, 2 * s, 2 * s, img9, xc, yc);
  const float lim = float(2 * s);
  for (auto& b : boxes) {
    b[1] -= float(xc), b[3] -= float(xc), b[2] -= float(yc), b[4] -= float(yc);
    for (int k = 1; k < 5; ++k) b[k] = std::clamp(b[k], 0.f, lim);
  }
  random_perspective(crop, boxes, hyp, rng, border, border);
  out = std::move(crop);
}

}  // namespace y7::train
