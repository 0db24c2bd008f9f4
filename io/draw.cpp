// Box / label drawing (see io/draw.h).
#include "io/draw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "io/font.h"

namespace y7::io {

namespace {

constexpr Rgb kLabelText = {255, 255, 225};  // upstream putText colour [225, 255, 255] in BGR

void put(Image& img, uint8_t* px, Rgb c) {
  if (img.c == 1) {
    px[0] = uint8_t((299 * c[0] + 587 * c[1] + 114 * c[2] + 500) / 1000);
    return;
  }
  const bool bgr = img.order == PixelOrder::BGR;
  px[0] = bgr ? c[2] : c[0];
  px[1] = c[1];
  px[2] = bgr ? c[0] : c[2];
  if (img.c == 4) px[3] = 255;
}

// Fills the inclusive rectangle [x0,x1] x [y0,y1], clipped to the image.
void fill(Image& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c) {
  if (img.empty()) return;
  x0 = std::max<int64_t>(x0, 0);
  y0 = std::max<int64_t>(y0, 0);
  x1 = std::min<int64_t>(x1, img.w - 1);
  y1 = std::min<int64_t>(y1, img.h - 1);
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x) put(img, img.at(int(x), int(y)), c);
}

// Python int() of a float coordinate, kept in a range where the int arithmetic cannot overflow.
int to_int(float v) { return int(std::clamp(v, -1e7f, 1e7f)); }

}  // namespace

Rgb palette_color(int cls) {
  const double golden = 0.618033988749895;
  double h = std::fmod(std::abs(double(cls)) * golden, 1.0);
  const double s = 0.75, v = 0.95;
  const int i = int(h * 6.0) % 6;
  const double f = h * 6.0 - std::floor(h * 6.0);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r, g, b;
  switch (i) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  auto u8 = [](double x) { return uint8_t(std::lround(std::clamp(x, 0.0, 1.0) * 255.0)); };
  return {u8(r), u8(g), u8(b)};
}

int auto_line_thickness(const Image& img) {
  return int(std::nearbyint(0.002 * (img.h + img.w) / 2)) + 1;  // Python round(): ties to even
}

void draw_rect(Image& img, int x1, int y1, int x2, int y2, Rgb color, int thickness) {
  if (x1 > x2) std::swap(x1, x2);
  if (y1 > y2) std::swap(y1, y2);
  if (thickness < 0) {
    fill(img, x1, y1, x2, y2, color);
    return;
  }
  const int t = std::clamp(thickness, 1, 1000);
  const int lo = (t - 1) / 2, hi = t / 2;
  fill(img, int64_t(x1) - lo, int64_t(y1) - lo, int64_t(x2) + hi, int64_t(y1) + hi, color);  // top
  fill(img, int64_t(x1) - lo, int64_t(y2) - lo, int64_t(x2) + hi, int64_t(y2) + hi, color);  // bottom
  fill(img, int64_t(x1) - lo, int64_t(y1) - lo, int64_t(x1) + hi, int64_t(y2) + hi, color);  // left
  fill(img, int64_t(x2) - lo, int64_t(y1) - lo, int64_t(x2) + hi, int64_t(y2) + hi, color);  // right
}

int text_width(std::string_view text, int scale) {
  return text.empty() ? 0 : int(text.size()) * font::kCellW * scale - scale;
}
int text_height(int scale) { return font::kGlyphH * scale; }
int text_scale_for(int line_thickness) {
  return std::max(1, int(std::nearbyint(std::max(line_thickness, 1) / 3.0)));
}

void draw_text(Image& img, int x, int baseline, std::string_view text, int scale, Rgb color) {
  scale = std::clamp(scale, 1, 100);
  const int64_t top = int64_t(baseline) - int64_t(font::kGlyphH) * scale + 1;
  for (size_t i = 0; i < text.size(); ++i) {
    int ch = static_cast<unsigned char>(text[i]);
    if (ch < font::kFirst || ch > font::kLast) ch = '?';
    const uint8_t* g = font::kGlyphs[ch - font::kFirst];
    const int64_t gx = int64_t(x) + int64_t(i) * font::kCellW * scale;
    if (gx >= img.w) break;
    for (int col = 0; col < font::kGlyphW; ++col)
      for (int row = 0; row < font::kGlyphH; ++row)
        if ((g[col] >> row) & 1) {
          const int64_t px = gx + int64_t(col) * scale, py = top + int64_t(row) * scale;
          fill(img, px, py, px + scale - 1, py + scale - 1, color);
        }
  }
}

void plot_one_box(Image& img, float x1, float y1, float x2, float y2, Rgb color, const std::string& label,
                  int line_thickness) {
  if (!std::isfinite(x1) || !std::isfinite(y1) || !std::isfinite(x2) || !std::isfinite(y2)) return;
  const int tl = line_thickness > 0 ? line_thickness : auto_line_thickness(img);
  const int c1x = to_int(x1), c1y = to_int(y1), c2x = to_int(x2), c2y = to_int(y2);
  draw_rect(img, c1x, c1y, c2x, c2y, color, tl);
  if (label.empty()) return;
  const int s = text_scale_for(tl);
  const int tw = text_width(label, s), th = text_height(s);
  draw_rect(img, c1x, c1y, c1x + tw, c1y - th - 3, color, -1);
  draw_text(img, c1x, c1y - 2, label, s, kLabelText);
}

std::string detection_label(const std::vector<std::string>& names, int cls, float conf) {
  const std::string name = (cls >= 0 && size_t(cls) < names.size()) ? names[size_t(cls)] : std::to_string(cls);
  char buf[32];
  std::snprintf(buf, sizeof(buf), " %.2f", double(conf));
  return name + buf;
}

void draw_detections(Image& img, const Tensor& det_in, const std::vector<std::string>& names, int line_thickness) {
  Y7_CHECK(det_in.defined() && det_in.dim() == 2 && (det_in.size(0) == 0 || det_in.size(1) >= 6),
           "draw_detections: expected detections [n,6], got ", det_in.defined() ? det_in.str() : "undefined");
  const Tensor det = det_in.to(DType::F32).contiguous();
  const int64_t n = det.size(0), cols = det.size(1);
  const float* d = det.data<float>();
  for (int64_t i = n - 1; i >= 0; --i) {
    const float* r = d + i * cols;
    const int cls = std::isfinite(r[5]) ? int(std::clamp(r[5], -1e6f, 1e6f)) : -1;
    plot_one_box(img, r[0], r[1], r[2], r[3], palette_color(cls), detection_label(names, cls, r[4]), line_thickness);
  }
}

}  // namespace y7::io
