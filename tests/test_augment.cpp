// Augmentations vs python3-opencv 4.6 / upstream utils/datasets.py references
// (tests/data/dataset, made by tools/dev/make_dataset_fixture.py), and invariants of the random ones.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "io/npy.h"
#include "train/augment.h"

using namespace y7;
using namespace y7::train;

namespace {
std::string dpath(const std::string& f) { return std::string(Y7_TEST_DATA) + "/dataset/" + f; }

io::Image npy_image(const std::string& f, io::PixelOrder order = io::PixelOrder::BGR) {
  Tensor t = io::read_npy(dpath(f));
  EXPECT_EQ(t.dim(), 3);
  io::Image im(int(t.size(1)), int(t.size(0)), int(t.size(2)), 0, order);
  Tensor c = t.contiguous();
  std::copy_n(c.data<uint8_t>(), im.data.size(), im.data.data());
  return im;
}
std::vector<double> npy_f64(const std::string& f) {
  Tensor t = io::read_npy(dpath(f)).to(DType::F64).contiguous();
  return std::vector<double>(t.data<double>(), t.data<double>() + t.numel());
}
int count_diff(const io::Image& a, const io::Image& b, int* maxd = nullptr) {
  EXPECT_EQ(a.w, b.w);
  EXPECT_EQ(a.h, b.h);
  if (a.data.size() != b.data.size()) return -1;
  int n = 0, m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    int d = std::abs(int(a.data[i]) - int(b.data[i]));
    n += d != 0, m = std::max(m, d);
  }
  if (maxd) *maxd = m;
  return n;
}
}  // namespace

TEST(Augment, HsvConversionMatchesCv2) {
  Tensor in = io::read_npy(dpath("hsv_in_bgr.npy")), ref = io::read_npy(dpath("hsv_out.npy"));
  const uint8_t *p = in.data<uint8_t>(), *q = ref.data<uint8_t>();
  int bad = 0;
  for (int64_t i = 0; i < in.size(0); ++i) {
    uint8_t h, s, v;
    rgb_to_hsv_u8(p[i * 3 + 2], p[i * 3 + 1], p[i * 3], h, s, v);
    bad += h != q[i * 3] || s != q[i * 3 + 1] || v != q[i * 3 + 2];
  }
  EXPECT_EQ(bad, 0) << "of " << in.size(0) << " BGR2HSV pixels";
  Tensor in2 = io::read_npy(dpath("hsv2bgr_in.npy")), ref2 = io::read_npy(dpath("hsv2bgr_out.npy"));
  p = in2.data<uint8_t>(), q = ref2.data<uint8_t>();
  bad = 0;
  for (int64_t i = 0; i < in2.size(0); ++i) {
    uint8_t r, g, b;
    hsv_to_rgb_u8(p[i * 3], p[i * 3 + 1], p[i * 3 + 2], r, g, b);
    bad += b != q[i * 3] || g != q[i * 3 + 1] || r != q[i * 3 + 2];
  }
  EXPECT_EQ(bad, 0) << "of " << in2.size(0) << " HSV2BGR pixels (scalar path)";
  Tensor ref3 = io::read_npy(dpath("hsv2bgr_out_simd.npy"));
  q = ref3.data<uint8_t>();
  bad = 0;
  for (int64_t i = 0; i < in2.size(0); ++i) {
    uint8_t r, g, b;
    hsv_to_rgb_u8_block(p[i * 3], p[i * 3 + 1], p[i * 3 + 2], r, g, b);
    bad += b != q[i * 3] || g != q[i * 3 + 1] || r != q[i * 3 + 2];
  }
  EXPECT_EQ(bad, 0) << "of " << in2.size(0) << " HSV2BGR pixels (32-pixel SIMD blocks)";
}

TEST(Augment, AugmentHsvMatchesUpstream) {
  const double gains[2][3] = {{1.012, 0.55, 1.3}, {0.985, 1.6, 0.7}};
  for (int k = 0; k < 2; ++k) {
    io::Image im = npy_image("aughsv_in_bgr.npy");
    apply_hsv_gains(im, gains[k][0], gains[k][1], gains[k][2]);
    io::Image ref = npy_image("aughsv_out" + std::to_string(k) + "_bgr.npy");
    EXPECT_EQ(count_diff(im, ref), 0) << "gains " << k;
    // the same pixels in RGB order give the same (swapped) result
    io::Image rgb = io::swap_rb(npy_image("aughsv_in_bgr.npy"));
    apply_hsv_gains(rgb, gains[k][0], gains[k][1], gains[k][2]);
    EXPECT_EQ(count_diff(io::swap_rb(rgb), ref), 0);
  }
}

TEST(Augment, WarpAffineMatchesCv2) {
  io::Image src = npy_image("warp_src_bgr.npy");
  std::vector<double> m = npy_f64("warp_affine_mats.npy");
  ASSERT_EQ(m.size(), 24u);
  for (int k = 0; k < 4; ++k) {
    std::array<double, 6> M;
    std::copy_n(m.begin() + k * 6, 6, M.begin());
    io::Image out = warp_affine(src, M, 41, 33, 114);
    io::Image ref = npy_image("warp_affine" + std::to_string(k) + "_bgr.npy");
    EXPECT_EQ(count_diff(out, ref), 0) << "matrix " << k;
  }
}

TEST(Augment, WarpPerspectiveMatchesCv2) {
  io::Image src = npy_image("warp_src_bgr.npy");
  std::vector<double> m = npy_f64("warp_persp_mat.npy");
  std::array<double, 9> M;
  std::copy_n(m.begin(), 9, M.begin());
  io::Image out = warp_perspective(src, M, 41, 33, 114);
  io::Image ref = npy_image("warp_persp_bgr.npy");
  int maxd = 0;
  int n = count_diff(out, ref, &maxd);
  // cv2 inverts the matrix by LU, we by the adjugate: a coordinate may round differently in the
  // last 1/32 step; allow a handful of values, each off by little.
  EXPECT_LE(n, 8) << "max diff " << maxd;
  EXPECT_LE(maxd, 16);
}

TEST(Augment, RandomPerspectiveMatchesUpstreamForFixedDraws) {
  io::Image img = npy_image("rp_in_bgr.npy");
  std::vector<double> t = npy_f64("rp_targets.npy"), d = npy_f64("rp_draws.npy"), rt = npy_f64("rp_out_targets.npy");
  Boxes boxes;
  for (size_t i = 0; i + 4 < t.size(); i += 5)
    boxes.push_back({float(t[i]), float(t[i + 1]), float(t[i + 2]), float(t[i + 3]), float(t[i + 4])});
  const int bh = -4, bw = -6;
  auto M = perspective_matrix(img.w, img.h, img.w + 2 * bw, img.h + 2 * bh, d[0], d[1], d[2], d[3], d[4], d[5], d[6],
                              d[7]);
  apply_perspective(img, boxes, M, d[3], false, bh, bw);
  EXPECT_EQ(count_diff(img, npy_image("rp_out_bgr.npy")), 0);
  ASSERT_EQ(boxes.size() * 5, rt.size());
  double maxerr = 0;
  for (size_t i = 0; i < boxes.size(); ++i)
    for (int k = 0; k < 5; ++k) maxerr = std::max(maxerr, std::abs(double(boxes[i][k]) - rt[i * 5 + k]));
  EXPECT_LE(maxerr, 1e-5);
}

TEST(Augment, BoxCandidatesRules) {
  EXPECT_TRUE(box_candidate({0, 0, 10, 10}, {0, 0, 10, 10}));
  EXPECT_FALSE(box_candidate({0, 0, 10, 10}, {0, 0, 2, 10}));    // w <= 2 px
  EXPECT_FALSE(box_candidate({0, 0, 100, 100}, {0, 0, 30, 30})); // area ratio 0.09
  EXPECT_TRUE(box_candidate({0, 0, 100, 100}, {0, 0, 40, 30}));
  EXPECT_FALSE(box_candidate({0, 0, 100, 5}, {0, 0, 100, 4.9})); // aspect ratio >= 20
}

TEST(Augment, BoxesFollowTheImageUnderRandomPerspective) {
  AugmentHyp hyp;
  hyp.degrees = 20, hyp.translate = 0.1, hyp.scale = 0.3, hyp.shear = 5;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    io::Image img(64, 48, 3, 0);
    const int x0 = 17, y0 = 11, x1 = 41, y1 = 30;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) std::fill_n(img.at(x, y), 3, 255);
    Boxes b = {{0, float(x0), float(y0), float(x1), float(y1)}};
    Rng rng(seed);
    random_perspective(img, b, hyp, rng);
    int fx0 = img.w, fy0 = img.h, fx1 = -1, fy1 = -1;
    for (int y = 0; y < img.h; ++y)
      for (int x = 0; x < img.w; ++x)
        if (img.at(x, y)[0] > 200 && img.at(x, y)[0] != 114)
          fx0 = std::min(fx0, x), fy0 = std::min(fy0, y), fx1 = std::max(fx1, x + 1), fy1 = std::max(fy1, y + 1);
    if (b.empty()) continue;  // filtered (mostly outside): nothing to compare
    ASSERT_GE(fx1, 0) << "seed " << seed;
    // the label covers the painted region and is tight to it within the bilinear edge
    EXPECT_LE(b[0][1], fx0 + 1.0) << seed;
    EXPECT_LE(b[0][2], fy0 + 1.0) << seed;
    EXPECT_GE(b[0][3], fx1 - 1.0) << seed;
    EXPECT_GE(b[0][4], fy1 - 1.0) << seed;
    EXPECT_NEAR(b[0][1], fx0, 2.0) << seed;
    EXPECT_NEAR(b[0][3], fx1, 2.0) << seed;
    EXPECT_NEAR(b[0][2], fy0, 2.0) << seed;
    EXPECT_NEAR(b[0][4], fy1, 2.0) << seed;
  }
}

TEST(Augment, FlipsMixupAndRng) {
  io::Image a(3, 2, 3, 0);
  for (size_t i = 0; i < a.data.size(); ++i) a.data[i] = uint8_t(i);
  io::Image b = a;
  flip_lr(b);
  EXPECT_EQ(b.at(0, 0)[0], a.at(2, 0)[0]);
  EXPECT_EQ(b.at(2, 1)[2], a.at(0, 1)[2]);
  flip_ud(b);
  EXPECT_EQ(b.at(0, 0)[1], a.at(2, 1)[1]);
  io::Image c(3, 2, 3, 200), d(3, 2, 3, 101);
  mixup(c, d, 0.3);  // 200*0.3 + 101*0.7 = 130.7 -> 130 (truncation like astype(uint8))
  EXPECT_EQ(c.data[0], 130);
  Rng r1(5), r2(5);
  for (int i = 0; i < 100; ++i) {
    double u = r1.uniform(-2, 3);
    EXPECT_EQ(u, r2.uniform(-2, 3));
    EXPECT_GE(u, -2);
    EXPECT_LT(u, 3);
    int k = r1.randint(2, 4);
    r2.randint(2, 4);
    EXPECT_GE(k, 2);
    EXPECT_LE(k, 4);
  }
  double m = 0;
  for (int i = 0; i < 2000; ++i) m += r1.beta(8, 8);
  EXPECT_NEAR(m / 2000, 0.5, 0.02);
}

TEST(Augment, BadInputsThrow) {
  io::Image empty;
  EXPECT_THROW(warp_affine(empty, {1, 0, 0, 0, 1, 0}, 4, 4), Error);
  io::Image img(4, 4, 3, 0);
  EXPECT_THROW(warp_affine(img, {1, 0, 0, 0, 1, 0}, 0, 4), Error);
  io::Image g(4, 4, 1, 0);
  EXPECT_THROW(apply_hsv_gains(g, 1, 1, 1), Error);
  EXPECT_THROW(mixup(img, g, 0.5), Error);
  EXPECT_THROW(AugmentHyp::from_yaml("/nonexistent/hyp.yaml"), Error);
}

TEST(Augment, MosaicsMatchUpstreamForScriptedDraws) {
  std::vector<Tile> tiles;
  for (int k = 0; k < 5; ++k) {
    Tile t;
    t.img = npy_image("mosaic_tile" + std::to_string(k) + "_bgr.npy");
    std::vector<double> l = npy_f64("mosaic_tile" + std::to_string(k) + "_labels.npy");
    for (size_t i = 0; i + 4 < l.size(); i += 5)
      t.labels.push_back({float(l[i]), float(l[i + 1]), float(l[i + 2]), float(l[i + 3]), float(l[i + 4])});
    tiles.push_back(t);
  }
  TileLoader load = [&](size_t i) { return tiles.at(i); };
  AugmentHyp hyp;
  hyp.perspective = 0;
  for (const char* name : {"mosaic4", "mosaic9"}) {
    Rng rng(0);
    rng.script(npy_f64(std::string(name) + "_draws.npy"));
    io::Image out;
    Boxes boxes;
    if (std::string(name) == "mosaic4")
      load_mosaic(load, 0, tiles.size(), 32, hyp, rng, out, boxes);
    else
      load_mosaic9(load, 0, tiles.size(), 32, hyp, rng, out, boxes);
    EXPECT_EQ(count_diff(out, npy_image(std::string(name) + "_out_bgr.npy")), 0) << name;
    std::vector<double> ref = npy_f64(std::string(name) + "_out_labels.npy");
    ASSERT_EQ(boxes.size() * 5, ref.size()) << name;
    double maxerr = 0;
    for (size_t i = 0; i < boxes.size(); ++i)
      for (int k = 0; k < 5; ++k) maxerr = std::max(maxerr, std::abs(double(boxes[i][k]) - ref[i * 5 + k]));
    EXPECT_LE(maxerr, 1e-5) << name;
  }
}

TEST(Augment, MosaicLabelsCoverTheirTiles) {
  // tiles: black with one white filled box each, labelled exactly; random mosaics must keep every
  // surviving white region inside some label box
  std::vector<Tile> tiles;
  for (int k = 0; k < 4; ++k) {
    const int w = 40 + 7 * k, h = 50 - 5 * k;
    Tile t;
    t.img = io::Image(w, h, 3, 0);
    const int x0 = 5 + k, y0 = 8, x1 = w - 9, y1 = h - 6 - k;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) std::fill_n(t.img.at(x, y), 3, 255);
    t.labels.push_back({float(k), (x0 + x1) / 2.f / w, (y0 + y1) / 2.f / h, float(x1 - x0) / w, float(y1 - y0) / h});
    tiles.push_back(t);
  }
  TileLoader load = [&](size_t i) { return tiles.at(i); };
  AugmentHyp hyp;
  hyp.degrees = 10, hyp.scale = 0.5, hyp.translate = 0.1;
  int checked = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    Rng rng(seed);
    io::Image out;
    Boxes boxes;
    if (seed % 3 == 2)
      load_mosaic9(load, seed % 4, 4, 64, hyp, rng, out, boxes);
    else
      load_mosaic(load, seed % 4, 4, 64, hyp, rng, out, boxes);
    ASSERT_EQ(out.w, 64);
    ASSERT_EQ(out.h, 64);
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x) {
        if (out.at(x, y)[0] < 250) continue;
        bool inside = false;
        for (const auto& b : boxes) inside |= x + 0.5 >= b[1] - 1 && x + 0.5 <= b[3] + 1 && y + 0.5 >= b[2] - 1 && y + 0.5 <= b[4] + 1;
        // a tiny sliver of a box can be dropped by box_candidates (area < 10% or < 2 px)
        if (!inside) {
          int near = 0;
          for (int dy = -2; dy <= 2; ++dy)
            for (int dx = -2; dx <= 2; ++dx) {
              int xx = x + dx, yy = y + dy;
              near += xx >= 0 && yy >= 0 && xx < 64 && yy < 64 && out.at(xx, yy)[0] >= 250;
            }
          EXPECT_LT(near, 25) << "seed " << seed << " pixel " << x << "," << y << " outside every label";
        }
        ++checked;
      }
    for (const auto& b : boxes) {
      EXPECT_GE(b[1], 0);
      EXPECT_LE(b[3], 64);
      EXPECT_GT(b[3] - b[1], 2);
      EXPECT_GT(b[4] - b[2], 2);
    }
  }
  EXPECT_GT(checked, 1000);
}
