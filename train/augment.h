// Training augmentations, re-implemented from upstream utils/datasets.py (LoadImagesAndLabels):
// load_mosaic / load_mosaic9, random_perspective + box_candidates, augment_hsv, mixup, flips.
// Images are our RGB8 io::Image; upstream works on BGR, which only matters for HSV (handled).
//
// Exactness:
//  * warp_affine: OpenCV 4.x cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT) re-done in its fixed
//    point: the matrix is inverted in double, source coordinates are computed with 10 fractional
//    bits (cvRound per row and per column term, + 16 rounding delta), split into an integer pixel
//    and a 5-bit (1/32) fraction, and blended with 15-bit integer bilinear weights
//    ((1-fy)(1-fx), (1-fy)fx, fy(1-fx), fy fx at multiples of 1/32, sum 32768), result
//    (acc + 16384) >> 15. Neighbours outside the source read the border value. Tested for
//    equality against python3-opencv 4.6.
//  * warp_perspective: same 1/32-quantized bilinear remap, coordinates X = round(x' * 32 / w') per
//    pixel as cv2.warpPerspective does; the 3x3 inverse is computed here by the adjugate in double
//    (cv2 uses LU), so coordinates can differ in the last bit in rare cases.
//  * HSV: cv2.cvtColor 8-bit BGR2HSV (integer tables, hue 0..179) and HSV2BGR, LUTs exactly like
//    upstream augment_hsv. OpenCV 4.x converts HSV2BGR 8-bit rows in blocks of 4 SIMD vectors
//    (32 pixels with its AVX2 dispatch) with a truncating float formula and the remaining tail
//    pixels of each row with its scalar formula (fmod sector, cvRound); the block formula uses two
//    fused multiply-adds like OpenCV's AVX2 code. apply_hsv_gains does the
//    same per row (kCvHsvBlock), so it matches cv2 on AVX2 machines pixel for pixel.
// Randomness: Rng (std::mt19937_64), seeded per (seed, item index) by the dataset, so results do
// not depend on thread scheduling. Draws follow upstream's order, not its values.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "io/image.h"

namespace y7::train {

// Upstream hyp keys that drive the data pipeline (defaults: data/hyp.scratch.p5.yaml).
struct AugmentHyp {
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4;
  double degrees = 0, translate = 0.2, scale = 0.9, shear = 0, perspective = 0;
  double flipud = 0, fliplr = 0.5;
  double mosaic = 1, mixup = 0.15, copy_paste = 0, paste_in = 0.15;
  // Reads the keys present in a hyp yaml (others keep their defaults); clear errors.
  static AugmentHyp from_yaml(const std::string& path);
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : g_(seed) {}
  static uint64_t mix(uint64_t a, uint64_t b);  // splitmix64-style combination of seed and index
  double uniform(double a = 0, double b = 1);    // [a, b)
  int randint(int a, int b);                     // inclusive, like random.randint
  double beta(double a, double b);               // Beta(a, b) via two gammas
  std::mt19937_64& engine() { return g_; }
  // Test hook: uniform() / randint() / beta() return these values in order (as drawn, ignoring their
  // bounds) until they run out; lets tests replay upstream's draws exactly.
  void script(std::vector<double> values) { script_ = std::move(values), pos_ = 0; }

 private:
  std::mt19937_64 g_;
  std::vector<double> script_;
  size_t pos_ = 0;
};

// One label row in pixels: class, x1, y1, x2, y2.
using Box = std::array<float, 5>;
using Boxes = std::vector<Box>;
// One label row normalized: class, cx, cy, w, h (as stored in YOLO .txt files).
using NBoxes = std::vector<std::array<float, 5>>;

// xywhn2xyxy in float32 like numpy: x1 = w*(cx - bw/2) + padw ...
Boxes xywhn_to_xyxy(const NBoxes& l, double w, double h, double padw = 0, double padh = 0);

// ---- HSV (cv2 8-bit semantics, hue range 0..179)
void rgb_to_hsv_u8(uint8_t r, uint8_t g, uint8_t b, uint8_t& h, uint8_t& s, uint8_t& v);
void hsv_to_rgb_u8(uint8_t h, uint8_t s, uint8_t v, uint8_t& r, uint8_t& g, uint8_t& b);  // scalar path
void hsv_to_rgb_u8_block(uint8_t h, uint8_t s, uint8_t v, uint8_t& r, uint8_t& g, uint8_t& b);  // SIMD path
inline constexpr int kCvHsvBlock = 32;  // pixels per SIMD block of cv2's HSV2BGR (AVX2: 4 x 8 lanes)
// augment_hsv with fixed gains r = (rh, rs, rv) (upstream: uniform(-1,1)*gain + 1).
void apply_hsv_gains(io::Image& img, double rh, double rs, double rv);
void augment_hsv(io::Image& img, double hgain, double sgain, double vgain, Rng& rng);

// ---- warps (3 or 1 channel images; border value for every channel)
// M: 2x3 forward matrix (dst = M * src), like cv2.warpAffine without WARP_INVERSE_MAP.
io::Image warp_affine(const io::Image& src, const std::array<double, 6>& M, int dst_w, int dst_h,
                      uint8_t border = 114);
io::Image warp_perspective(const io::Image& src, const std::array<double, 9>& M, int dst_w, int dst_h,
                           uint8_t border = 114);

// box_candidates(box1 before (xyxy, already * s), box2 after): upstream thresholds.
bool box_candidate(const std::array<double, 4>& b1, const std::array<double, 4>& b2, double wh_thr = 2,
                   double ar_thr = 20, double area_thr = 0.1, double eps = 1e-16);

// Transforms boxes by M (4 corners, min/max, clipped to [0,width]x[0,height]), like upstream's
// box-only branch of random_perspective. Returns xyxy per box (before candidate filtering).
std::vector<std::array<double, 4>> transform_boxes(const Boxes& b, const std::array<double, 9>& M, bool perspective,
                                                   int width, int height);

struct PerspectiveResult {
  std::array<double, 9> M{};  // the matrix used
  double s = 1;               // its scale draw
};
// random_perspective(img, targets, degrees, translate, scale, shear, perspective, border):
// border = (border_h, border_w) as upstream's mosaic_border (negative crops). Boxes are filtered
// by box_candidates and replaced by their transformed boxes.
PerspectiveResult random_perspective(io::Image& img, Boxes& targets, const AugmentHyp& hyp, Rng& rng, int border_h = 0,
                                     int border_w = 0);
// The deterministic half of random_perspective: warps img (when M is not identity or a border is
// given) to (img.w + 2*border_w, img.h + 2*border_h) and transforms + filters the boxes (s: the
// scale draw, used by box_candidates).
void apply_perspective(io::Image& img, Boxes& targets, const std::array<double, 9>& M, double s, bool perspective,
                       int border_h, int border_w);
// The matrix upstream builds, from explicit draws (for tests): M = T @ S @ R @ P @ C.
std::array<double, 9> perspective_matrix(int img_w, int img_h, int out_w, int out_h, double px, double py, double a,
                                         double s, double shx, double shy, double tx, double ty);

// ---- flips / mixup (in place)
void flip_lr(io::Image& img);
void flip_ud(io::Image& img);
// img = uint8(img * r + img2 * (1 - r)) (truncation, like numpy's astype(np.uint8)).
void mixup(io::Image& img, const io::Image& img2, double r);

// ---- mosaics. A tile loader returns the load_image()-resized image and its normalized labels.
struct Tile {
  io::Image img;
  NBoxes labels;
};
using TileLoader = std::function<Tile(size_t)>;
// load_mosaic (4 tiles, 2s x 2s canvas, center in [s/2, 3s/2)) and load_mosaic9 (3s x 3s canvas, 2s
// crop); both then copy_paste (no-op without segments) and random_perspective with the mosaic
// border (-s/2), giving an s x s image and pixel xyxy boxes. The other tiles are drawn uniformly
// from [0, n), or from `pool` when given (upstream's random.choices(self.indices): the
// --image-weights sample of the epoch).
void load_mosaic(const TileLoader& load, size_t index, size_t n, int s, const AugmentHyp& hyp, Rng& rng, io::Image& out,
                 Boxes& boxes, const std::vector<size_t>* pool = nullptr);
void load_mosaic9(const TileLoader& load, size_t index, size_t n, int s, const AugmentHyp& hyp, Rng& rng, io::Image& out,
                  Boxes& boxes, const std::vector<size_t>* pool = nullptr);

}  // namespace y7::train
