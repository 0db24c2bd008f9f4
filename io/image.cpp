// Image decode/encode through stb (the one translation unit holding the stb implementations).
#include "io/image.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

#include "core/error.h"
#include "io/file_util.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 16)
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace y7::io {

namespace {

constexpr int64_t kMaxPixels = int64_t(1) << 28;  // 268M pixels; larger files are refused

std::string lower_ext(const std::string& path) {
  size_t slash = path.find_last_of("/\\");
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot + 1);
  for (char& ch : e) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return e;
}

// Names formats stb cannot read, for a clearer message than stb's "unknown image type".
const char* sniff_unsupported(const uint8_t* p, size_t n) {
  if (n >= 4 && ((p[0] == 'I' && p[1] == 'I' && p[2] == 42 && p[3] == 0) ||
                 (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && p[3] == 42)))
    return "TIFF";
  if (n >= 12 && !std::memcmp(p, "RIFF", 4) && !std::memcmp(p + 8, "WEBP", 4)) return "WebP";
  if (n >= 4 && !std::memcmp(p, "GIF8", 4)) return "GIF";
  if (n >= 12 && !std::memcmp(p + 4, "ftyp", 4)) return "HEIF/AVIF";
  return nullptr;
}

uint32_t rd(const uint8_t* p, int bytes, bool le) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint32_t(p[le ? i : bytes - 1 - i]) << (8 * i);
  return v;
}

// Orientation tag in a TIFF block (the payload of an Exif APP1 segment after "Exif\0\0").
int tiff_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 1;
  if (rd(t + 2, 2, le) != 42) return 1;
  uint32_t ifd = rd(t + 4, 4, le);
  if (ifd > n || n - ifd < 2) return 1;
  uint32_t count = rd(t + ifd, 2, le);
  for (uint32_t i = 0; i < count; ++i) {
    size_t e = size_t(ifd) + 2 + size_t(i) * 12;
    if (e + 12 > n) break;
    if (rd(t + e, 2, le) == 0x0112) {
      uint32_t type = rd(t + e + 2, 2, le);
      uint32_t v = type == 3 ? rd(t + e + 8, 2, le) : type == 4 ? rd(t + e + 8, 4, le) : 1;
      return (v >= 1 && v <= 8) ? int(v) : 1;
    }
  }
  return 1;
}

}  // namespace

Image::Image(int w_, int h_, int c_, uint8_t fill, PixelOrder order_) : w(w_), h(h_), c(c_), order(order_) {
  Y7_CHECK(w_ >= 0 && h_ >= 0 && c_ >= 1 && c_ <= 4, "image: bad size ", w_, "x", h_, "x", c_);
  Y7_CHECK(int64_t(w_) * h_ <= kMaxPixels, "image: ", w_, "x", h_, " is too large");
  data.assign(size_t(w_) * size_t(h_) * size_t(c_), fill);
}

int jpeg_exif_orientation(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (size < 4 || p[0] != 0xFF || p[1] != 0xD8) return 1;
  size_t i = 2;
  while (i + 4 <= size) {
    if (p[i] != 0xFF) return 1;
    uint8_t m = p[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // markers without a length
      i += 2;
      continue;
    }
    if (m == 0xDA || m == 0xD9) return 1;  // start of scan / end of image: no EXIF before it
    size_t len = (size_t(p[i + 2]) << 8) | p[i + 3];
    if (len < 2 || i + 2 + len > size) return 1;
    if (m == 0xE1 && len >= 8 && !std::memcmp(p + i + 4, "Exif\0\0", 6))
      return tiff_orientation(p + i + 10, len - 8);
    i += 2 + len;
  }
  return 1;
}

Image apply_orientation(const Image& img, int o) {
  Y7_CHECK(o >= 1 && o <= 8, "bad EXIF orientation ", o);
  if (o == 1) return img;
  // OpenCV: 2 flip x; 3 flip both; 4 flip y; 5 transpose; 6 transpose+flip x;
  // 7 transpose+flip both; 8 transpose+flip y.
  const bool transpose = o >= 5;
  const bool fx = o == 2 || o == 3 || o == 6 || o == 7;
  const bool fy = o == 3 || o == 4 || o == 7 || o == 8;
  Image out(transpose ? img.h : img.w, transpose ? img.w : img.h, img.c, 0, img.order);
  for (int y = 0; y < out.h; ++y)
    for (int x = 0; x < out.w; ++x) {
      int tx = fx ? out.w - 1 - x : x, ty = fy ? out.h - 1 - y : y;  // position before the flip
      int sx = transpose ? ty : tx, sy = transpose ? tx : ty;
      std::memcpy(out.at(x, y), img.at(sx, sy), size_t(img.c));
    }
  return out;
}

Image decode_image(const void* data, size_t size, const std::string& name, int channels, bool exif) {
  Y7_CHECK(channels >= 0 && channels <= 4 && channels != 2, "load_image: channels must be 0, 1, 3 or 4, got ",
           channels);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  Y7_CHECK(size > 0, "cannot read image '", name, "': empty file");
  Y7_CHECK(size <= size_t(INT_MAX), "cannot read image '", name, "': file too large");
  if (const char* fmt = sniff_unsupported(p, size))
    fail("cannot read image '", name, "': unsupported format ", fmt, " (supported: JPEG, PNG, BMP)");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(p, int(size), &w, &h, &comp))
    fail("cannot read image '", name, "': ", stbi_failure_reason() ? stbi_failure_reason() : "unknown format",
         " (supported: JPEG, PNG, BMP)");
  Y7_CHECK(w > 0 && h > 0 && int64_t(w) * h <= kMaxPixels, "cannot read image '", name, "': bad size ", w, "x", h);
  int got = 0;
  stbi_uc* px = stbi_load_from_memory(p, int(size), &w, &h, &got, channels);
  if (!px)
    fail("cannot read image '", name, "': corrupt or unsupported (",
         stbi_failure_reason() ? stbi_failure_reason() : "decode failed", ")");
  const int c = channels ? channels : got;
  Image img;
  img.w = w;
  img.h = h;
  img.c = c == 2 ? 4 : c;
  img.order = PixelOrder::RGB;
  if (c == 2) {  // gray + alpha stored: expand to RGBA so that c is 1, 3 or 4
    img.data.resize(size_t(w) * h * 4);
    for (size_t i = 0; i < size_t(w) * h; ++i) {
      img.data[i * 4] = img.data[i * 4 + 1] = img.data[i * 4 + 2] = px[i * 2];
      img.data[i * 4 + 3] = px[i * 2 + 1];
    }
  } else {
    img.data.assign(px, px + size_t(w) * h * c);
  }
  stbi_image_free(px);
  if (exif) {
    int o = jpeg_exif_orientation(data, size);
    if (o != 1) img = apply_orientation(img, o);
  }
  return img;
}

Image load_image(const std::string& path, int channels, bool exif) {
  std::vector<char> buf = read_file(path, size_t(1) << 31);
  return decode_image(buf.data(), buf.size(), path, channels, exif);
}

std::vector<uint8_t> encode_image(const Image& in, const std::string& ext_in, int quality) {
  Y7_CHECK(!in.empty() && in.c >= 1 && in.c <= 4 && in.data.size() == size_t(in.w) * in.h * in.c,
           "save_image: invalid image ", in.w, "x", in.h, "x", in.c);
  Y7_CHECK(quality >= 1 && quality <= 100, "save_image: JPEG quality must be 1..100, got ", quality);
  std::string ext = ext_in;
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  const Image img = to_order(in, PixelOrder::RGB);
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* d, int n) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(d), static_cast<uint8_t*>(d) + n);
  };
  int ok = 0;
  if (ext == "jpg" || ext == "jpeg")
    ok = stbi_write_jpg_to_func(sink, &out, img.w, img.h, img.c, img.data.data(), quality);
  else if (ext == "png")
    ok = stbi_write_png_to_func(sink, &out, img.w, img.h, img.c, img.data.data(), int(img.row_bytes()));
  else if (ext == "bmp")
    ok = stbi_write_bmp_to_func(sink, &out, img.w, img.h, img.c, img.data.data());
  else
    fail("save_image: unsupported image extension '", ext_in, "' (use .jpg, .jpeg, .png or .bmp)");
  Y7_CHECK(ok && !out.empty(), "save_image: encoding ", ext, " failed");
  return out;
}

void save_image(const std::string& path, const Image& img, int quality) {
  std::string ext = lower_ext(path);
  Y7_CHECK(!ext.empty(), "save_image: '", path, "' has no extension (use .jpg, .png or .bmp)");
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_image(img, ext, quality);
  } catch (const Error& e) {
    fail("cannot write '", path, "': ", e.what());
  }
  write_file_atomic(path, bytes.data(), bytes.size());
}

Image swap_rb(const Image& img) {
  Image out = img;
  out.order = img.order == PixelOrder::RGB ? PixelOrder::BGR : PixelOrder::RGB;
  if (img.c >= 3) {
    const size_t n = size_t(img.w) * img.h;
    for (size_t i = 0; i < n; ++i) std::swap(out.data[i * img.c], out.data[i * img.c + 2]);
  }
  return out;
}

Image to_order(const Image& img, PixelOrder order) { return img.order == order ? img : swap_rb(img); }

Tensor image_to_u8_tensor(const Image& img) {
  Tensor t = Tensor::empty({img.h, img.w, img.c}, DType::U8);
  if (!img.data.empty()) std::memcpy(t.data<uint8_t>(), img.data.data(), img.data.size());
  return t;
}

Image image_from_u8_tensor(const Tensor& t_in, PixelOrder order) {
  Y7_CHECK(t_in.defined() && (t_in.dim() == 2 || t_in.dim() == 3), "image_from_u8_tensor: expected [h,w] or [h,w,c]");
  Y7_CHECK(t_in.dtype() == DType::U8, "image_from_u8_tensor: expected uint8, got ", t_in.str());
  const int c = t_in.dim() == 3 ? int(t_in.size(2)) : 1;
  Y7_CHECK(c >= 1 && c <= 4, "image_from_u8_tensor: ", c, " channels");
  Tensor t = t_in.contiguous();
  Image img(int(t.size(1)), int(t.size(0)), c, 0, order);
  if (!img.data.empty()) std::memcpy(img.data.data(), t.data<uint8_t>(), img.data.size());
  return img;
}

}  // namespace y7::io
