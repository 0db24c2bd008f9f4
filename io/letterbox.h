// Upstream YOLOv7 image preprocessing and box rescaling, same arithmetic as
// utils/datasets.py letterbox() / load_image() and utils/general.py scale_coords() / clip_coords():
// double-precision ratios, Python's round() (ties to even) for the unpadded size and for the
// border split int(round(d -/+ 0.1)), cv2.resize INTER_LINEAR (io/resize.h) only when the size
// changes, constant borders; box arithmetic in float32 like torch.
#pragma once
#include <array>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"

namespace y7::io {

struct LetterboxParams {
  int new_h = 640, new_w = 640;                          // target shape (new_shape)
  std::array<uint8_t, 4> color = {114, 114, 114, 0};     // border value per channel (image order)
  bool auto_pad = true;    // pad only to a multiple of stride ("auto" upstream)
  bool scale_fill = false; // stretch to new shape, no padding (only when !auto_pad)
  bool scaleup = true;     // allow r > 1
  int stride = 32;
};

struct Letterboxed {
  Image img;
  double ratio_w = 1, ratio_h = 1;  // upstream `ratio` (width, height)
  double dw = 0, dh = 0;            // upstream (dw, dh): half the padding, may be x.5
  int top = 0, left = 0;            // the actual border sizes applied on top / left
};

Letterboxed letterbox(const Image& img, const LetterboxParams& p = {});
// letterbox(img, new_shape, auto=auto_pad, stride=stride) with the other defaults.
Letterboxed letterbox(const Image& img, int new_shape, bool auto_pad = true, int stride = 32);

// load_image()-style resize: r = img_size / max(h, w); when r != 1, cv2.resize to
// (int(w*r), int(h*r)) with INTER_AREA if r < 1 and not augment, else INTER_LINEAR.
Image resize_long_side(const Image& img, int img_size, bool augment = false);

// Network input: float32 [1, 3, H, W], RGB (swapped from BGR if needed), value / 255 in float32
// exactly like torch's img.float() / 255.0. The image must have 3 channels.
Tensor image_to_input(const Image& img);
// Same for a batch of equally sized images: [B, 3, H, W].
Tensor images_to_input(const std::vector<Image>& imgs);

// Upstream ratio_pad: gain = ratio_pad[0][0], pad = ratio_pad[1] (w, h).
struct RatioPad {
  double gain = 1, pad_w = 0, pad_h = 0;
};
// scale_coords(img1_shape, coords, img0_shape, ratio_pad): rescales xyxy boxes (columns 0..3 of a
// float32 [n, >=4] tensor, in place) from the letterboxed img1 (h1, w1) to the original img0
// (h0, w0), then clips them. Returns coords.
Tensor& scale_coords(int h1, int w1, Tensor& coords, int h0, int w0, const RatioPad* ratio_pad = nullptr);
// clip_coords: clamps x1,x2 to [0, w] and y1,y2 to [0, h] in place.
void clip_coords(Tensor& boxes, int h, int w);

}  // namespace y7::io
