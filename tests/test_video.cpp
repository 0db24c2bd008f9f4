// Video I/O (io/video.h): round trips through the MPEG-4 encoder and back, compared with the
// synthetic frames that went in, and every kind of bad input giving a y7::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/video.h"

using namespace y7;

namespace {

#define SKIP_WITHOUT_VIDEO()                                                    \
  do {                                                                          \
    if (!io::video_supported()) GTEST_SKIP() << "built without FFmpeg";         \
  } while (0)

std::string tmp_path(const std::string& name) { return testing::TempDir() + "/y7video_" + name; }

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::vector<char> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void spit(const std::string& p, const std::vector<char>& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Frame t of a test clip: a smooth gradient background with a red and a blue rectangle moving
// in opposite directions and a green one moving down. Smooth areas and flat blocks keep the
// lossy codec's error small and predictable.
std::vector<uint8_t> synth_frame(int w, int h, int t) {
  std::vector<uint8_t> img(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(40 + 120 * x / w);
      p[1] = static_cast<uint8_t>(60 + 100 * y / h);
      p[2] = static_cast<uint8_t>(90 + 2 * t);
    }
  auto rect = [&](int x0, int y0, int rw, int rh, uint8_t r, uint8_t g, uint8_t b) {
    for (int y = std::max(0, y0); y < std::min(h, y0 + rh); ++y)
      for (int x = std::max(0, x0); x < std::min(w, x0 + rw); ++x) {
        uint8_t* p = &img[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = r;
        p[1] = g;
        p[2] = b;
      }
  };
  rect(2 + 3 * t, h / 4, w / 4, h / 3, 220, 30, 30);
  rect(w - w / 4 - 2 - 2 * t, h / 2, w / 5, h / 4, 30, 40, 210);
  rect(w / 2 - 8, t, 16, 12, 40, 200, 60);
  return img;
}

double mean_abs_err(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
  return a.empty() ? 0 : s / static_cast<double>(a.size());
}

// Writes `n` synthetic frames; returns them.
std::vector<std::vector<uint8_t>> write_clip(const std::string& path, int w, int h, double fps,
                                             int n) {
  std::vector<std::vector<uint8_t>> frames;
  io::VideoWriter vw(path, w, h, fps);
  for (int t = 0; t < n; ++t) {
    frames.push_back(synth_frame(w, h, t));
    vw.write(frames.back().data());
  }
  EXPECT_EQ(vw.frames_written(), n);
  vw.close();
  return frames;
}

// Reads every frame back and checks it against the frames written.
void check_clip(const std::string& path, const std::vector<std::vector<uint8_t>>& want, int w,
                int h, double fps, double tol) {
  io::VideoReader vr(path);
  EXPECT_EQ(vr.width(), w);
  EXPECT_EQ(vr.height(), h);
  EXPECT_NEAR(vr.fps(), fps, 1e-3);
  std::vector<uint8_t> rgb;
  int fw = 0, fh = 0;
  size_t n = 0;
  double worst = 0, sum = 0;
  while (vr.read(rgb, fw, fh)) {
    ++n;
    EXPECT_EQ(vr.frame_index(), static_cast<int64_t>(n));
    ASSERT_EQ(fw, w);
    ASSERT_EQ(fh, h);
    ASSERT_LE(n, want.size()) << "more frames read than written";
    double e = mean_abs_err(rgb, want[n - 1]);
    EXPECT_LT(e, tol) << path << " frame " << n;
    worst = std::max(worst, e);
    sum += e;
  }
  EXPECT_EQ(n, want.size());
  EXPECT_FALSE(vr.read(rgb, fw, fh)) << "read() after the end must stay false";
  std::printf("[ video ] %s: %zu frames %dx%d, mean abs err per frame: avg %.3f, worst %.3f\n",
              path.substr(path.find_last_of('/') + 1).c_str(), n, w, h, n ? sum / n : 0.0, worst);
}

// Opens `path` and decodes every frame; returns the number of frames.
int read_all(const std::string& path) {
  io::VideoReader vr(path);
  std::vector<uint8_t> rgb;
  int w = 0, h = 0, n = 0;
  while (vr.read(rgb, w, h)) {
    ++n;
    EXPECT_EQ(rgb.size(), static_cast<size_t>(w) * h * 3);
  }
  return n;
}

void open_writer(const std::string& path, int w, int h, double fps) {
  io::VideoWriter vw(path, w, h, fps);
}

}  // namespace

TEST(Video, IsVideoPath) {
  for (const char* p : {"a.mp4", "b.MOV", "dir/c.avi", "x.y.Mkv", "v.mpg", "v.mpeg", "v.m4v",
                        "v.WMV"})
    EXPECT_TRUE(io::is_video_path(p)) << p;
  for (const char* p : {"a.jpg", "mp4", "a.mp4.txt", "dir.mp4/file", "a.", "", "a.mp", "a.webm"})
    EXPECT_FALSE(io::is_video_path(p)) << p;
}

TEST(Video, RoundTripMp4) {
  SKIP_WITHOUT_VIDEO();
  const int w = 96, h = 64, n = 24;
  const std::string path = tmp_path("roundtrip.mp4");
  std::remove(path.c_str());
  auto frames = write_clip(path, w, h, 25.0, n);
  ASSERT_TRUE(exists(path));
  // No temporary file is left next to the output.
  EXPECT_FALSE(exists(path + ".tmp." + std::to_string(::getpid())));

  // An ISO-BMFF file whose sample entry is 'mp4v' (what cv2's fourcc 'mp4v' produces).
  std::vector<char> bytes = slurp(path);
  ASSERT_GT(bytes.size(), 16u);
  EXPECT_EQ(std::string(bytes.data() + 4, 4), "ftyp");
  EXPECT_NE(std::string(bytes.begin(), bytes.end()).find("mp4v"), std::string::npos);

  {
    io::VideoReader vr(path);
    EXPECT_EQ(vr.frame_count(), n);
    EXPECT_EQ(vr.frame_index(), 0);
  }
  check_clip(path, frames, w, h, 25.0, 6.0);
}

// Clips written by cv2.VideoWriter and the frames cv2.VideoCapture decodes from them
// (tests/data/video/make_fixtures.py): the reader must give the very same pixels, for the
// 'mp4v' stream upstream writes and for H.264 with B-frames (typical camera input).
TEST(Video, DecodesLikeCv2) {
  SKIP_WITHOUT_VIDEO();
  for (const char* name : {"cv2_mp4v", "cv2_avc1"}) {
    const std::string base = std::string(Y7_TEST_DATA) + "/video/" + name;
    std::vector<char> ref = slurp(base + ".rgb");
    const int w = 48, h = 32;
    const size_t fsize = static_cast<size_t>(w) * h * 3;
    ASSERT_EQ(ref.size(), 8 * fsize) << base;
    io::VideoReader vr(base + ".mp4");
    EXPECT_EQ(vr.width(), w);
    EXPECT_EQ(vr.height(), h);
    EXPECT_DOUBLE_EQ(vr.fps(), 25.0);
    EXPECT_EQ(vr.frame_count(), 8);
    std::vector<uint8_t> rgb;
    int fw = 0, fh = 0;
    size_t n = 0;
    int max_diff = 0;
    while (vr.read(rgb, fw, fh)) {
      ASSERT_LT(n, 8u);
      ASSERT_EQ(fw, w);
      ASSERT_EQ(fh, h);
      ASSERT_EQ(rgb.size(), fsize);
      for (size_t i = 0; i < fsize; ++i)
        max_diff = std::max(max_diff, std::abs(int(rgb[i]) - int(uint8_t(ref[n * fsize + i]))));
      ++n;
    }
    EXPECT_EQ(n, 8u) << name;
    EXPECT_EQ(max_diff, 0) << name;
    std::printf("[ video ] %s: %zu frames, max abs diff to cv2 %d\n", name, n, max_diff);
  }
}

TEST(Video, OtherContainersAndRates) {
  SKIP_WITHOUT_VIDEO();
  // NTSC rate, odd frame size, and the containers picked by extension.
  struct Case {
    const char* name;
    int w, h;
    double fps;
  } cases[] = {{"ntsc.mp4", 97, 45, 30000.0 / 1001.0},
               {"clip.avi", 64, 48, 30.0},
               {"clip.mkv", 64, 48, 12.5},
               {"clip.MOV", 80, 40, 60.0}};
  for (const Case& c : cases) {
    const std::string path = tmp_path(c.name);
    auto frames = write_clip(path, c.w, c.h, c.fps, 8);
    check_clip(path, frames, c.w, c.h, c.fps, 6.0);
  }
}

TEST(Video, BadInputsGiveErrors) {
  SKIP_WITHOUT_VIDEO();
  // Missing file.
  EXPECT_THROW(read_all(tmp_path("missing.mp4")), Error);
  // A directory.
  EXPECT_THROW(read_all(testing::TempDir()), Error);
  // Text under a video name.
  const std::string text = tmp_path("text.mp4");
  spit(text, std::vector<char>(300, 'x'));
  EXPECT_THROW(read_all(text), Error);
  // Empty file.
  const std::string empty = tmp_path("empty.mp4");
  spit(empty, {});
  EXPECT_THROW(read_all(empty), Error);

  // Damaged copies of a real clip.
  const std::string good = tmp_path("good.mp4");
  write_clip(good, 64, 48, 25.0, 12);
  std::vector<char> bytes = slurp(good);
  ASSERT_GT(bytes.size(), 400u);

  // Truncated right after the header boxes: no decodable frame.
  const std::string trunc = tmp_path("trunc.mp4");
  spit(trunc, std::vector<char>(bytes.begin(), bytes.begin() + 40));
  EXPECT_THROW(read_all(trunc), Error);

  // Garbage with a plausible start: the first box header only.
  const std::string garbage = tmp_path("garbage.mp4");
  std::vector<char> g(bytes.begin(), bytes.begin() + 32);
  for (int i = 0; i < 4000; ++i) g.push_back(static_cast<char>((i * 7919 + 13) & 0xff));
  spit(garbage, g);
  EXPECT_THROW(read_all(garbage), Error);

  // Scrambled payload, intact container: either frames (concealed) or a y7::Error, nothing
  // else, and never more frames than were written.
  std::vector<char> scr = bytes;
  for (size_t i = 48; i < scr.size(); i += 5) scr[i] = static_cast<char>(scr[i] ^ 0x5a);
  const std::string scrambled = tmp_path("scrambled.mp4");
  spit(scrambled, scr);
  try {
    io::VideoReader vr(scrambled);
    std::vector<uint8_t> rgb;
    int w, h, n = 0;
    while (vr.read(rgb, w, h)) {
      ++n;
      ASSERT_EQ(rgb.size(), static_cast<size_t>(w) * h * 3);
    }
    EXPECT_LE(n, 64);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }

  // Every error is one line.
  try {
    io::VideoReader vr(text);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find("text.mp4"), std::string::npos) << m;
  }
}

TEST(Video, WriterErrorsLeaveNoOutput) {
  SKIP_WITHOUT_VIDEO();
  const std::string path = tmp_path("never.mp4");
  std::remove(path.c_str());
  EXPECT_THROW(open_writer(path, 0, 10, 25.0), Error);
  EXPECT_THROW(open_writer(path, 10, 10, 0.0), Error);
  EXPECT_THROW(open_writer(path, 10, 10, std::nan("")), Error);
  EXPECT_THROW(open_writer(path, 9000, 10, 25.0), Error);
  EXPECT_THROW(open_writer(tmp_path("no_such_dir/x.mp4"), 16, 16, 25.0), Error);
  EXPECT_FALSE(exists(path));

  // abort(): nothing at the destination.
  {
    io::VideoWriter vw(path, 32, 32, 25.0);
    auto f = synth_frame(32, 32, 0);
    vw.write(f.data());
    vw.abort();
    EXPECT_THROW(vw.write(f.data()), Error);
  }
  EXPECT_FALSE(exists(path));

  // Destroyed while an exception unwinds: nothing at the destination either.
  try {
    io::VideoWriter vw(path, 32, 32, 25.0);
    auto f = synth_frame(32, 32, 0);
    vw.write(f.data());
    throw std::runtime_error("detection failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(exists(path));
  EXPECT_FALSE(exists(path + ".tmp." + std::to_string(::getpid())));

  // Destroyed normally without close(): the file is finished.
  {
    io::VideoWriter vw(path, 32, 32, 25.0);
    for (int t = 0; t < 3; ++t) {
      auto f = synth_frame(32, 32, t);
      vw.write(f.data());
    }
  }
  ASSERT_TRUE(exists(path));
  io::VideoReader vr(path);
  std::vector<uint8_t> rgb;
  int w, h, n = 0;
  while (vr.read(rgb, w, h)) ++n;
  EXPECT_EQ(n, 3);
}

TEST(Video, WithoutFfmpegTheErrorSaysWhatToInstall) {
  if (io::video_supported()) GTEST_SKIP() << "built with FFmpeg";
  try {
    io::VideoReader vr("x.mp4");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("libavformat-dev"), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_writer("x.mp4", 16, 16, 25.0), Error);
}
