// Upstream letterbox / load_image resize / scale_coords (see io/letterbox.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "io/letterbox.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/resize.h"

namespace y7::io {

namespace {

// Python's round(x) for a float, returned as int (ties to even; default FP rounding mode).
int py_round(double x) { return int(std::nearbyint(x)); }

void check_image(const Image& img, const char* what) {
  Y7_CHECK(!img.empty() && img.c >= 1 && img.c <= 4 && img.data.size() == size_t(img.w) * img.h * img.c, what,
           ": invalid image ", img.w, "x", img.h, "x", img.c);
}

// cv2.copyMakeBorder(..., BORDER_CONSTANT, value=color)
Image pad_constant(const Image& src, int top, int bottom, int left, int right, const std::array<uint8_t, 4>& color) {
  Image out(src.w + left + right, src.h + top + bottom, src.c, 0, src.order);
  const int c = src.c;
  for (int y = 0; y < out.h; ++y) {
    uint8_t* row = out.row(y);
    for (int x = 0; x < out.w; ++x)
      for (int k = 0; k < c; ++k) row[size_t(x) * c + k] = color[size_t(k)];
  }
  for (int y = 0; y < src.h; ++y) std::memcpy(out.at(left, y + top), src.row(y), src.row_bytes());
  return out;
}

void fill_input(const Image& img, float* dst) {
  Y7_CHECK(img.c == 3, "image_to_input: expected a 3-channel image, got ", img.c, " channels");
  const size_t hw = size_t(img.w) * img.h;
  // channel ch of the RGB input comes from image channel src_ch
  for (int ch = 0; ch < 3; ++ch) {
    const int src_ch = img.order == PixelOrder::RGB ? ch : 2 - ch;
    float* d = dst + size_t(ch) * hw;
    const uint8_t* s = img.data.data() + src_ch;
    for (size_t i = 0; i < hw; ++i) d[i] = float(s[i * 3]) / 255.0f;
  }
}

}  // namespace

Letterboxed letterbox(const Image& img, const LetterboxParams& p) {
  check_image(img, "letterbox");
  Y7_CHECK(p.new_h > 0 && p.new_w > 0 && p.stride > 0, "letterbox: bad shape ", p.new_h, "x", p.new_w, " / stride ",
           p.stride);
  const int h = img.h, w = img.w;
  double r = std::min(double(p.new_h) / h, double(p.new_w) / w);
  if (!p.scaleup) r = std::min(r, 1.0);
  Letterboxed out;
  out.ratio_w = out.ratio_h = r;
  int unpad_w = py_round(w * r), unpad_h = py_round(h * r);
  double dw = p.new_w - unpad_w, dh = p.new_h - unpad_h;
  if (p.auto_pad) {
    auto pymod = [](int a, int m) { return ((a % m) + m) % m; };
    dw = pymod(p.new_w - unpad_w, p.stride);
    dh = pymod(p.new_h - unpad_h, p.stride);
  } else if (p.scale_fill) {
    dw = dh = 0.0;
    unpad_w = p.new_w;
    unpad_h = p.new_h;
    out.ratio_w = double(p.new_w) / w;
    out.ratio_h = double(p.new_h) / h;
  }
  dw /= 2;
  dh /= 2;
  Y7_CHECK(unpad_w > 0 && unpad_h > 0, "letterbox: ", w, "x", h, " image scales to an empty ", unpad_w, "x",
           unpad_h, " image");
  Image resized = (w != unpad_w || h != unpad_h) ? resize(img, unpad_w, unpad_h, Interp::Linear) : img;
  const int top = py_round(dh - 0.1), bottom = py_round(dh + 0.1);
  const int left = py_round(dw - 0.1), right = py_round(dw + 0.1);
  Y7_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "letterbox: negative padding");
  out.img = pad_constant(resized, top, bottom, left, right, p.color);
  out.dw = dw;
  out.dh = dh;
  out.top = top;
  out.left = left;
  return out;
}

Letterboxed letterbox(const Image& img, int new_shape, bool auto_pad, int stride) {
  LetterboxParams p;
  p.new_h = p.new_w = new_shape;
  p.auto_pad = auto_pad;
  p.stride = stride;
  return letterbox(img, p);
}

Image resize_long_side(const Image& img, int img_size, bool augment) {
  check_image(img, "resize_long_side");
  Y7_CHECK(img_size > 0, "resize_long_side: bad image size ", img_size);
  const double r = double(img_size) / std::max(img.h, img.w);
  if (r == 1) return img;
  const Interp interp = (r < 1 && !augment) ? Interp::Area : Interp::Linear;
  const int nw = int(img.w * r), nh = int(img.h * r);  // Python int(): truncation
  Y7_CHECK(nw > 0 && nh > 0, "resize_long_side: ", img.w, "x", img.h, " image resizes to an empty ", nw, "x", nh,
           " image at size ", img_size);
  return resize(img, nw, nh, interp);
}

Tensor image_to_input(const Image& img) {
  check_image(img, "image_to_input");
  Tensor t = Tensor::empty({1, 3, img.h, img.w});
  fill_input(img, t.data<float>());
  return t;
}

Tensor images_to_input(const std::vector<Image>& imgs) {
  Y7_CHECK(!imgs.empty(), "images_to_input: no images");
  const int h = imgs[0].h, w = imgs[0].w;
  Tensor t = Tensor::empty({int64_t(imgs.size()), 3, h, w});
  for (size_t i = 0; i < imgs.size(); ++i) {
    check_image(imgs[i], "images_to_input");
    Y7_CHECK(imgs[i].h == h && imgs[i].w == w, "images_to_input: image ", i, " is ", imgs[i].w, "x", imgs[i].h,
             ", expected ", w, "x", h);
    fill_input(imgs[i], t.data<float>() + i * size_t(3) * h * w);
  }
  return t;
}

namespace {
void check_boxes(const Tensor& t, const char* what) {
  Y7_CHECK(t.defined() && t.dim() == 2 && (t.size(0) == 0 || t.size(1) >= 4) && t.dtype() == DType::F32 &&
               t.device().is_cpu(),
           what, ": expected a float32 CPU tensor [n, >=4], got ", t.defined() ? t.str() : "undefined");
}
}  // namespace

void clip_coords(Tensor& boxes, int h, int w) {
  check_boxes(boxes, "clip_coords");
  const float fw = float(w), fh = float(h);
  auto clamp = [](float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); };  // NaN stays NaN
  float* base = boxes.data<float>();
  const int64_t s0 = boxes.stride(0), s1 = boxes.size(0) ? boxes.stride(1) : 1;
  for (int64_t i = 0; i < boxes.size(0); ++i) {
    float* b = base + i * s0;
    b[0] = clamp(b[0], 0.f, fw);
    b[s1] = clamp(b[s1], 0.f, fh);
    b[2 * s1] = clamp(b[2 * s1], 0.f, fw);
    b[3 * s1] = clamp(b[3 * s1], 0.f, fh);
  }
}

Tensor& scale_coords(int h1, int w1, Tensor& coords, int h0, int w0, const RatioPad* rp) {
  check_boxes(coords, "scale_coords");
  Y7_CHECK(h1 > 0 && w1 > 0 && h0 > 0 && w0 > 0, "scale_coords: bad shapes ", h1, "x", w1, " -> ", h0, "x", w0);
  double gain, pad_w, pad_h;
  if (rp) {
    gain = rp->gain;
    pad_w = rp->pad_w;
    pad_h = rp->pad_h;
  } else {
    gain = std::min(double(h1) / h0, double(w1) / w0);
    pad_w = (w1 - w0 * gain) / 2;
    pad_h = (h1 - h0 * gain) / 2;
  }
  // torch: float32 tensor op Python float -> the scalar is cast to float32, math in float32.
  const float g = float(gain), pw = float(pad_w), ph = float(pad_h);
  float* base = coords.data<float>();
  const int64_t s0 = coords.stride(0), s1 = coords.size(0) ? coords.stride(1) : 1;
  for (int64_t i = 0; i < coords.size(0); ++i) {
    float* b = base + i * s0;
    b[0] = b[0] - pw;
    b[2 * s1] = b[2 * s1] - pw;
    b[s1] = b[s1] - ph;
    b[3 * s1] = b[3 * s1] - ph;
    for (int k = 0; k < 4; ++k) b[k * s1] = b[k * s1] / g;
  }
  clip_coords(coords, h0, w0);
  return coords;
}

}  // namespace y7::io
