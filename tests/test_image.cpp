// Image I/O, cv2-exact resize, upstream letterbox / load_image resize / scale_coords, drawing.
// References in tests/data/image/ come from tools/dev/make_resize_fixture.py (Debian
// python3-opencv 4.6 and the upstream functions).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/draw.h"
#include "io/image.h"
#include "io/letterbox.h"
#include "io/npy.h"
#include "io/resize.h"

using namespace y7;
using namespace y7::io;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(Y7_TEST_DATA) + "/image/";

Image load_npy_image(const std::string& name, PixelOrder order = PixelOrder::BGR) {
  Tensor t = read_npy(kDir + name);
  return image_from_u8_tensor(t, order);
}

struct Diff {
  int max = 0;
  int64_t count = 0;
};

Diff diff(const Image& a, const Image& b) {
  Diff d;
  EXPECT_EQ(a.w, b.w);
  EXPECT_EQ(a.h, b.h);
  EXPECT_EQ(a.c, b.c);
  if (a.data.size() != b.data.size()) {
    d.max = 256;
    return d;
  }
  for (size_t i = 0; i < a.data.size(); ++i) {
    int e = std::abs(int(a.data[i]) - int(b.data[i]));
    d.max = std::max(d.max, e);
    d.count += e != 0;
  }
  return d;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  std::string p = testing::TempDir() + "/" + name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

}  // namespace

TEST(Resize, MatchesOpenCvExactly) {
  struct Case {
    const char* name;
    const char* src;
    int w, h;
    Interp interp;
  };
  const Interp L = Interp::Linear, A = Interp::Area;
  const Case cases[] = {
      {"lin_37x53_to_20x31", "37x53", 31, 20, L},   {"lin_64x48_to_128x96", "64x48", 96, 128, L},
      {"lin_90x70_to_33x41", "90x70", 41, 33, L},   {"lin_37x53_to_50x71", "37x53", 71, 50, L},
      {"lin_100x60_to_50x30", "100x60", 30, 50, L}, {"lin_20x31_to_37x31", "20x31", 31, 37, L},
      {"lin_13x17g_to_29x9", "13x17g", 9, 29, L},   {"lin_15x22a_to_8x40", "15x22a", 40, 8, L},
      {"area_37x53_to_20x31", "37x53", 31, 20, A},  {"area_90x70_to_33x41", "90x70", 41, 33, A},
      {"area_100x60_to_50x30", "100x60", 30, 50, A}, {"area_96x64_to_24x16", "96x64", 16, 24, A},
      {"area_90x60_to_30x20", "90x60", 20, 30, A},  {"area_90x70_to_45x35", "90x70", 35, 45, A},
      {"area_20x31_to_37x53", "20x31", 53, 37, A},  {"area_37x53_to_20x71", "37x53", 71, 20, A},
      {"area_13x17g_to_5x6", "13x17g", 6, 5, A},    {"area_15x22a_to_7x11", "15x22a", 11, 7, A},
  };
  int total_max = 0;
  for (const Case& c : cases) {
    Image src = load_npy_image(std::string("src_") + c.src + ".npy");
    Image ref = load_npy_image(std::string("resize_") + c.name + ".npy");
    Image got = resize(src, c.w, c.h, c.interp);
    Diff d = diff(got, ref);
    EXPECT_EQ(d.count, 0) << c.name << ": " << d.count << " bytes differ, max " << d.max;
    total_max = std::max(total_max, d.max);
  }
  std::printf("[resize] %zu cv2.resize cases, max |diff| %d\n", std::size(cases), total_max);
}

TEST(Resize, SameSizeCopiesAndBadArgs) {
  Image src = load_npy_image("src_37x53.npy");
  Image same = resize(src, src.w, src.h, Interp::Area);
  EXPECT_EQ(same.data, src.data);
  EXPECT_EQ(same.order, PixelOrder::BGR);
  EXPECT_THROW(resize(src, 0, 10), Error);
  EXPECT_THROW(resize(Image(), 10, 10), Error);
  // 1-pixel sources and extreme ratios stay in bounds
  Image one(1, 1, 3, 77);
  EXPECT_EQ(resize(one, 5, 3).data, std::vector<uint8_t>(45, 77));
  EXPECT_EQ(resize(src, 1, 1, Interp::Area).w, 1);
  EXPECT_EQ(resize(src, 200, 1, Interp::Linear).h, 1);
}

TEST(Letterbox, MatchesUpstream) {
  struct Case {
    const char* name;
    const char* src;
    int new_h, new_w;
    bool auto_pad, scale_fill, scaleup;
    int stride;
  };
  const Case cases[] = {
      {"37x53_64_auto", "37x53", 64, 64, true, false, true, 32},
      {"37x53_64_noauto", "37x53", 64, 64, false, false, true, 32},
      {"100x60_64_auto", "100x60", 64, 64, true, false, true, 32},
      {"100x60_64_noauto", "100x60", 64, 64, false, false, true, 32},
      {"37x53_64_noscaleup", "37x53", 64, 64, false, false, false, 32},
      {"37x53_64_scalefill", "37x53", 64, 64, false, true, true, 32},
      {"40x25_20_noauto", "40x25", 20, 20, false, false, true, 32},
      {"40x25_20_auto8", "40x25", 20, 20, true, false, true, 8},
      {"90x70_48x64_rect", "90x70", 48, 64, false, false, false, 32},
      {"90x70_96_auto", "90x70", 96, 96, true, false, true, 32},
  };
  for (const Case& c : cases) {
    LetterboxParams p;
    p.new_h = c.new_h;
    p.new_w = c.new_w;
    p.auto_pad = c.auto_pad;
    p.scale_fill = c.scale_fill;
    p.scaleup = c.scaleup;
    p.stride = c.stride;
    Letterboxed lb = letterbox(load_npy_image(std::string("src_") + c.src + ".npy"), p);
    Diff d = diff(lb.img, load_npy_image(std::string("letterbox_") + c.name + ".npy"));
    EXPECT_EQ(d.count, 0) << c.name << ": " << d.count << " bytes differ, max " << d.max;
    Tensor meta = read_npy(kDir + "letterbox_" + c.name + "_meta.npy");
    EXPECT_EQ(lb.ratio_w, meta.item({0})) << c.name;
    EXPECT_EQ(lb.ratio_h, meta.item({1})) << c.name;
    EXPECT_EQ(lb.dw, meta.item({2})) << c.name;
    EXPECT_EQ(lb.dh, meta.item({3})) << c.name;
  }
  // the convenience overload is letterbox(img, 64) with the defaults
  Letterboxed a = letterbox(load_npy_image("src_37x53.npy"), 64);
  EXPECT_EQ(diff(a.img, load_npy_image("letterbox_37x53_64_auto.npy")).count, 0);
  EXPECT_EQ(a.top, 9);  // dh = 9.5 -> top round(9.4) = 9, bottom round(9.6) = 10
  EXPECT_THROW(letterbox(Image(), 64), Error);
  EXPECT_THROW(letterbox(a.img, 0), Error);
}

TEST(Letterbox, LongSideResizeMatchesLoadImage) {
  struct Case {
    const char* name;
    const char* src;
    int size;
    bool augment;
  };
  for (const Case& c : {Case{"90x70_64", "90x70", 64, false}, Case{"90x70_64_aug", "90x70", 64, true},
                        Case{"37x53_64", "37x53", 64, false}, Case{"100x60_50", "100x60", 50, false}}) {
    Image got = resize_long_side(load_npy_image(std::string("src_") + c.src + ".npy"), c.size, c.augment);
    Diff d = diff(got, load_npy_image(std::string("longside_") + c.name + ".npy"));
    EXPECT_EQ(d.count, 0) << c.name << " max " << d.max;
  }
  EXPECT_THROW(resize_long_side(Image(1, 1000, 3), 640), Error);  // width int(0.64) = 0
}

TEST(Letterbox, InputTensorAndScaleCoords) {
  Image bgr = load_npy_image("src_37x53.npy", PixelOrder::BGR);
  Tensor x = image_to_input(bgr);
  ASSERT_EQ(x.sizes(), (Shape{1, 3, 37, 53}));
  const float* p = x.data<float>();
  // channel 0 of the input is R = BGR channel 2; values are u8 / 255 in float32
  for (int y : {0, 17, 36})
    for (int xx : {0, 25, 52}) {
      const uint8_t* px = bgr.at(xx, y);
      EXPECT_EQ(p[(0 * 37 + y) * 53 + xx], float(px[2]) / 255.0f);
      EXPECT_EQ(p[(1 * 37 + y) * 53 + xx], float(px[1]) / 255.0f);
      EXPECT_EQ(p[(2 * 37 + y) * 53 + xx], float(px[0]) / 255.0f);
    }
  Tensor x2 = image_to_input(swap_rb(bgr));  // same pixels stored as RGB: same input
  EXPECT_EQ(max_abs_diff(x, x2), 0.0);
  Tensor b = images_to_input({bgr, bgr});
  EXPECT_EQ(b.sizes(), (Shape{2, 3, 37, 53}));
  EXPECT_EQ(max_abs_diff(b.slice(0, 1, 2), x), 0.0);
  EXPECT_THROW(image_to_input(Image(4, 4, 1)), Error);

  Tensor in = read_npy(kDir + "scale_coords_in.npy");
  Tensor c1 = in.clone(), c2 = in.clone(), c3 = in.clone();
  scale_coords(64, 96, c1, 37, 53);
  scale_coords(100, 64, c2, 90, 70);
  RatioPad rp{64.0 / 53.0, 0.0, 9.5};
  scale_coords(64, 64, c3, 37, 53, &rp);
  EXPECT_EQ(max_abs_diff(c1, read_npy(kDir + "scale_coords_out.npy")), 0.0);
  EXPECT_EQ(max_abs_diff(c2, read_npy(kDir + "scale_coords_out2.npy")), 0.0);
  EXPECT_EQ(max_abs_diff(c3, read_npy(kDir + "scale_coords_out_rp.npy")), 0.0);
  // clip_coords on a strided [n,6] detection tensor only touches columns 0..3
  Tensor det = Tensor::from_vector<float>({-5, -5, 500, 500, 0.9f, 3}, {1, 6});
  clip_coords(det, 40, 60);
  EXPECT_EQ(max_abs_diff(det, Tensor::from_vector<float>({0, 0, 60, 40, 0.9f, 3}, {1, 6})), 0.0);
  Tensor bad = Tensor::zeros({3, 2});
  EXPECT_THROW(clip_coords(bad, 10, 10), Error);
}

TEST(ImageIo, PngExactJpegCloseToOpenCv) {
  const Image ref = load_npy_image("src_photo.npy", PixelOrder::BGR);  // what cv2 wrote
  Image png = load_image(kDir + "photo.png");
  EXPECT_EQ(png.order, PixelOrder::RGB);
  EXPECT_EQ(diff(to_order(png, PixelOrder::BGR), ref).count, 0);

  Image jpg = to_order(load_image(kDir + "photo.jpg"), PixelOrder::BGR);
  const Image cv = load_npy_image("photo_jpg_cv2.npy");
  Diff d = diff(jpg, cv);
  double mean = 0;
  for (size_t i = 0; i < jpg.data.size(); ++i) mean += std::abs(int(jpg.data[i]) - int(cv.data[i]));
  mean /= double(jpg.data.size());
  std::printf("[image] stb vs cv2 (libjpeg) JPEG decode: max |diff| %d, mean %.3f, %.1f%% of bytes differ\n", d.max,
              mean, 100.0 * double(d.count) / double(jpg.data.size()));
  EXPECT_LE(d.max, 8);
  EXPECT_LE(mean, 1.0);

  // EXIF orientation, applied like cv2.imread: same pixels as rotating photo.jpg
  for (int o : {6, 8}) {
    Image e = to_order(load_image(kDir + "photo_exif" + std::to_string(o) + ".jpg"), PixelOrder::BGR);
    Image cve = load_npy_image("photo_exif" + std::to_string(o) + "_cv2.npy");
    EXPECT_EQ(e.w, cve.w);
    EXPECT_EQ(e.h, cve.h);
    EXPECT_EQ(diff(e, apply_orientation(jpg, o)).count, 0) << o;
    EXPECT_LE(diff(e, cve).max, 8) << o;
    Image raw = load_image(kDir + "photo_exif" + std::to_string(o) + ".jpg", 3, /*apply_exif_orientation=*/false);
    EXPECT_EQ(raw.w, 64);
  }
  std::vector<char> bytes;
  {
    std::ifstream f(kDir + "photo_exif6.jpg", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  EXPECT_EQ(jpeg_exif_orientation(bytes.data(), bytes.size()), 6);

  // channel options
  EXPECT_EQ(load_image(kDir + "photo.png", 1).c, 1);
  EXPECT_EQ(load_image(kDir + "photo.png", 4).c, 4);
  EXPECT_EQ(load_image(kDir + "photo.png", 0).c, 3);
}

TEST(ImageIo, SaveRoundTripAtomic) {
  const Image ref = load_npy_image("src_37x53.npy", PixelOrder::BGR);
  const std::string dir = testing::TempDir() + "/y7_image_io";
  fs::create_directories(dir);
  for (const char* ext : {"png", "bmp", "PNG"}) {
    std::string p = dir + "/out." + ext;
    save_image(p, ref);
    Image back = load_image(p);
    EXPECT_EQ(back.order, PixelOrder::RGB);
    EXPECT_EQ(diff(to_order(back, PixelOrder::BGR), ref).count, 0) << ext;  // BGR saved as RGB file
  }
  save_image(dir + "/out.jpg", ref);
  Image j = to_order(load_image(dir + "/out.jpg"), PixelOrder::BGR);
  EXPECT_EQ(j.w, ref.w);
  double mean = 0;
  for (size_t i = 0; i < j.data.size(); ++i) mean += std::abs(int(j.data[i]) - int(ref.data[i]));
  EXPECT_LT(mean / double(j.data.size()), 12.0);  // noisy synthetic image at quality 95
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "leftover " << e.path();
  EXPECT_THROW(save_image(dir + "/out.gif", ref), Error);
  EXPECT_THROW(save_image(dir + "/noext", ref), Error);
  EXPECT_THROW(save_image(dir + "/missing_dir/out.png", ref), Error);
  EXPECT_THROW(save_image(dir + "/empty.png", Image()), Error);
  EXPECT_THROW(save_image(dir + "/q.jpg", ref, 0), Error);
}

TEST(ImageIo, BadFilesGiveErrorsNamingTheFile) {
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      load_image(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  expect_error(testing::TempDir() + "/no_such_image.jpg", "no_such_image");
  expect_error(write_bytes("empty.jpg", ""), "empty");
  expect_error(write_bytes("garbage.png", "this is not an image at all"), "supported");
  expect_error(write_bytes("tiff.tif", std::string("II*\0\x08\0\0\0", 8) + "xxxxxxxx"), "TIFF");
  expect_error(write_bytes("webp.webp", std::string("RIFF\x10\0\0\0WEBPVP8 ", 16)), "WebP");
  // truncated files
  std::string png, jpg;
  {
    std::ifstream f(kDir + "photo.png", std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(f), {});
    std::ifstream g(kDir + "photo.jpg", std::ios::binary);
    jpg.assign(std::istreambuf_iterator<char>(g), {});
  }
  expect_error(write_bytes("trunc.png", png.substr(0, png.size() / 2)), "trunc.png");
  expect_error(write_bytes("header_only.jpg", jpg.substr(0, 20)), "header_only.jpg");
  // a corrupted JPEG either decodes (stb is lenient) or throws, never crashes
  std::string bad = jpg;
  for (size_t i = 200; i < bad.size(); i += 7) bad[i] = char(bad[i] ^ 0x5a);
  try {
    Image im = load_image(write_bytes("corrupt.jpg", bad));
    EXPECT_EQ(im.w, 64);
  } catch (const Error&) {
  }
  EXPECT_THROW(load_image(kDir + "photo.png", 2), Error);
}

TEST(Draw, BoxAndLabelPixels) {
  Image img(120, 100, 3, 0, PixelOrder::RGB);
  const Rgb red = {200, 10, 20};
  plot_one_box(img, 10.7f, 40.2f, 60.9f, 80.5f, red, "ab 0.50", 1);
  auto is = [&](int x, int y, Rgb c) {
    const uint8_t* p = img.at(x, y);
    return p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
  };
  const Rgb black = {0, 0, 0};
  // 1-px outline through int() corners (10,40)-(60,80)
  EXPECT_TRUE(is(10, 60, red));
  EXPECT_TRUE(is(60, 60, red));
  EXPECT_TRUE(is(35, 80, red));
  EXPECT_TRUE(is(35, 40, red));
  EXPECT_TRUE(is(11, 60, black));
  EXPECT_TRUE(is(59, 60, black));
  EXPECT_TRUE(is(35, 41, black));
  EXPECT_TRUE(is(35, 79, black));
  EXPECT_TRUE(is(61, 60, black));
  EXPECT_TRUE(is(35, 81, black));
  // label box: x 10..10+tw, y 40-7-3=30..40; text rows 32..38 (baseline 38)
  const int tw = text_width("ab 0.50", 1);
  EXPECT_EQ(tw, 7 * 6 - 1);
  EXPECT_TRUE(is(10, 30, red));
  EXPECT_TRUE(is(10 + tw, 30, red));
  EXPECT_TRUE(is(10 + tw, 39, red));
  EXPECT_TRUE(is(10 + tw + 1, 35, black));
  EXPECT_TRUE(is(10, 29, black));
  int text_px = 0;
  for (int y = 30; y <= 40; ++y)
    for (int x = 10; x <= 10 + tw; ++x) {
      const uint8_t* p = img.at(x, y);
      if (p[0] == 255 && p[1] == 255 && p[2] == 225) {
        ++text_px;
        EXPECT_GE(y, 32);
        EXPECT_LE(y, 38);
      }
    }
  EXPECT_GT(text_px, 40);
  // 'a' (column 0x20 at x=10: only the row-5 bit) -> (10, 37) is text, (10, 32) is box colour
  EXPECT_TRUE(is(10, 37, {255, 255, 225}));
  EXPECT_TRUE(is(10, 32, red));

  // thickness 3 covers c-1..c+1; BGR images get the colour swapped
  Image bgr(50, 50, 3, 0, PixelOrder::BGR);
  plot_one_box(bgr, 10, 10, 40, 40, red, "", 3);
  for (int x : {9, 10, 11}) {
    EXPECT_EQ(bgr.at(x, 25)[0], 20);
    EXPECT_EQ(bgr.at(x, 25)[2], 200);
  }
  EXPECT_EQ(bgr.at(12, 25)[0], 0);
  EXPECT_EQ(bgr.at(8, 25)[0], 0);

  // auto thickness: round(0.002 * (480 + 640) / 2) + 1 = 2; clipping and NaN are harmless
  Image big(640, 480, 3);
  EXPECT_EQ(auto_line_thickness(big), 2);
  plot_one_box(big, -100, -50, 1e9f, 1e9f, red, "x 1.00", 0);
  EXPECT_TRUE(big.at(639, 479)[0] == 0 && big.at(0, 0)[0] == 0);  // edges fall outside
  plot_one_box(big, NAN, 1, 2, 3, red, "nan", 0);

  // draw_detections: labels and palette colours
  EXPECT_EQ(detection_label({"person", "car"}, 1, 0.875f), "car 0.88");
  EXPECT_EQ(detection_label({"person"}, 7, 0.5f), "7 0.50");
  EXPECT_NE(palette_color(0), palette_color(1));
  Image canvas(100, 100, 3);
  Tensor det = Tensor::from_vector<float>({20, 30, 70, 90, 0.9f, 1, 25, 35, 60, 80, 0.4f, 0}, {2, 6});
  draw_detections(canvas, det, {"person", "car"});
  const Rgb c1 = palette_color(1);
  EXPECT_TRUE(canvas.at(20, 60)[0] == c1[0] && canvas.at(20, 60)[1] == c1[1]);
  EXPECT_THROW(draw_detections(canvas, Tensor::zeros({2, 4}), {}), Error);
}
