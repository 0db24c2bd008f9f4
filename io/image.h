// 8-bit images: decode (JPEG / PNG / BMP through stb_image), encode (JPEG / PNG / BMP through
// stb_image_write, written atomically), and conversions to and from uint8 tensors.
//
// Channel order: files decode to RGB (stb's order). Upstream YOLOv7 works on OpenCV images, which
// are BGR (cv2.imread), and flips to RGB only when building the network input. Image::order
// records which one a buffer holds; resize/letterbox/draw keep it, image_to_input() (letterbox.h)
// and save_image() convert as needed, so callers never have to swap by hand.
// Decoding and encoding are thread-safe (stb keeps its failure reason thread-local).
//
// Like cv2.imread(path, IMREAD_COLOR), load_image() returns 3 channels by default (gray is
// replicated, alpha dropped, 16-bit PNG reduced to its high byte) and applies the JPEG EXIF
// orientation tag. JPEG pixels can differ from OpenCV's libjpeg by a few levels (different IDCT /
// chroma upsampling); PNG and BMP decode identically.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace y7::io {

enum class PixelOrder : uint8_t { RGB, BGR };  // meaning of the first 3 channels when c >= 3

struct Image {
  int w = 0, h = 0, c = 0;    // c: 1 (gray), 3, or 4 (with alpha last)
  std::vector<uint8_t> data;  // interleaved, row-major, h * w * c bytes, no row padding
  PixelOrder order = PixelOrder::RGB;

  Image() = default;
  Image(int w, int h, int c, uint8_t fill = 0, PixelOrder order = PixelOrder::RGB);
  bool empty() const { return w == 0 || h == 0; }
  size_t row_bytes() const { return size_t(w) * size_t(c); }
  uint8_t* row(int y) { return data.data() + size_t(y) * row_bytes(); }
  const uint8_t* row(int y) const { return data.data() + size_t(y) * row_bytes(); }
  uint8_t* at(int x, int y) { return row(y) + size_t(x) * size_t(c); }
  const uint8_t* at(int x, int y) const { return row(y) + size_t(x) * size_t(c); }
};

// channels: 3 (default; like cv2.IMREAD_COLOR), 1, 4, or 0 (as stored in the file).
// Throws y7::Error naming the file for missing, unreadable, corrupt or unsupported files.
Image load_image(const std::string& path, int channels = 3, bool apply_exif_orientation = true);
Image decode_image(const void* data, size_t size, const std::string& name, int channels = 3,
                   bool apply_exif_orientation = true);
// JPEG EXIF orientation (1..8) of an encoded JPEG, or 1 when absent / not a JPEG.
int jpeg_exif_orientation(const void* data, size_t size);
// Applies an EXIF orientation the way OpenCV does (1 = identity, 6 = rotate 90 degrees clockwise, ...).
Image apply_orientation(const Image& img, int orientation);

// Format from the extension (.jpg/.jpeg: JPEG at jpeg_quality, .png, .bmp); BGR images are written
// as RGB files. Written to a temporary file, then renamed over `path`.
void save_image(const std::string& path, const Image& img, int jpeg_quality = 95);
std::vector<uint8_t> encode_image(const Image& img, const std::string& ext, int jpeg_quality = 95);

// Copy with channels 0 and 2 swapped and `order` flipped (no-op copy for 1 channel).
Image swap_rb(const Image& img);
// Copy in the requested order (swapping when it differs).
Image to_order(const Image& img, PixelOrder order);

// uint8 tensor [h, w, c] (same bytes) and back; from_u8_tensor accepts [h,w] or [h,w,c], c<=4.
Tensor image_to_u8_tensor(const Image& img);
Image image_from_u8_tensor(const Tensor& t, PixelOrder order = PixelOrder::RGB);

}  // namespace y7::io
