// cv2.resize for 8-bit images, bit-exact with OpenCV 4.x (see io/resize.h). Floating-point
// contraction is disabled: OpenCV's baseline build has no FMA, and a fused multiply-add changes
// the rounding of the coefficient and area-weight arithmetic.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "io/resize.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace y7::io {

namespace {

constexpr int kCoefBits = 11;  // INTER_RESIZE_COEF_BITS
constexpr int kCoefScale = 1 << kCoefBits;

// OpenCV rounding helpers (default rounding mode: to nearest, ties to even).
inline int cv_round(double v) { return int(std::lrint(v)); }
inline int cv_round(float v) { return int(std::lrintf(v)); }
inline int cv_floor(double v) {
  int i = int(v);
  return i - (double(i) > v);
}
inline int cv_floor(float v) {
  int i = int(v);
  return i - (float(i) > v);
}
inline int16_t sat_short(float v) { return int16_t(std::clamp(cv_round(v), int(SHRT_MIN), int(SHRT_MAX))); }
inline uint8_t sat_u8(float v) {
  if (std::isnan(v)) return 0;
  return uint8_t(std::clamp(cv_round(v), 0, 255));
}
inline int clip_row(int y, int h) { return y >= 0 ? (y < h ? y : h - 1) : 0; }

// resizeGeneric_ with HResizeLinear<uchar,int,short,2048> and the uchar VResizeLinear.
void resize_linear(const Image& src, Image& dst, double inv_scale_x, double inv_scale_y, bool area_mode) {
  const int cn = src.c, sw = src.w, sh = src.h, dw = dst.w, dh = dst.h;
  const double scale_x = 1.0 / inv_scale_x, scale_y = 1.0 / inv_scale_y;
  std::vector<int> xofs(size_t(dw) * cn), yofs(static_cast<size_t>(dh));
  std::vector<int16_t> ialpha(size_t(dw) * cn * 2), ibeta(size_t(dh) * 2);
  int xmax = dw;
  for (int dx = 0; dx < dw; ++dx) {
    float fx;
    int sx;
    if (!area_mode) {
      fx = float((dx + 0.5) * scale_x - 0.5);
      sx = cv_floor(fx);
      fx -= float(sx);
    } else {
      sx = cv_floor(dx * scale_x);
      fx = float((dx + 1) - (sx + 1) * inv_scale_x);
      fx = fx <= 0 ? 0.f : fx - float(cv_floor(fx));
    }
    if (sx < 0) fx = 0, sx = 0;
    if (sx + 1 >= sw) {
      xmax = std::min(xmax, dx);
      if (sx >= sw - 1) fx = 0, sx = sw - 1;
    }
    const float c0 = 1.f - fx, c1 = fx;
    const int16_t a0 = sat_short(c0 * float(kCoefScale)), a1 = sat_short(c1 * float(kCoefScale));
    for (int k = 0; k < cn; ++k) {
      xofs[size_t(dx) * cn + k] = sx * cn + k;
      ialpha[(size_t(dx) * cn + k) * 2] = a0;
      ialpha[(size_t(dx) * cn + k) * 2 + 1] = a1;
    }
  }
  for (int dy = 0; dy < dh; ++dy) {
    float fy;
    int sy;
    if (!area_mode) {
      fy = float((dy + 0.5) * scale_y - 0.5);
      sy = cv_floor(fy);
      fy -= float(sy);
    } else {
      sy = cv_floor(dy * scale_y);
      fy = float((dy + 1) - (sy + 1) * inv_scale_y);
      fy = fy <= 0 ? 0.f : fy - float(cv_floor(fy));
    }
    yofs[size_t(dy)] = sy;
    ibeta[size_t(dy) * 2] = sat_short((1.f - fy) * float(kCoefScale));
    ibeta[size_t(dy) * 2 + 1] = sat_short(fy * float(kCoefScale));
  }

  const int width = dw * cn, two_tap = xmax * cn;
  std::vector<int> rows[2] = {std::vector<int>(static_cast<size_t>(width)), std::vector<int>(static_cast<size_t>(width))};
  int row_of[2] = {-1, -1};  // source row held by rows[i]
  auto hresize = [&](int sy, std::vector<int>& out) {
    const uint8_t* S = src.row(sy);
    int* D = out.data();
    int i = 0;
    for (; i < two_tap; ++i) {
      const int s = xofs[size_t(i)];
      D[i] = S[s] * ialpha[size_t(i) * 2] + S[s + cn] * ialpha[size_t(i) * 2 + 1];
    }
    for (; i < width; ++i) D[i] = S[xofs[size_t(i)]] * kCoefScale;
  };
  for (int dy = 0; dy < dh; ++dy) {
    const int r[2] = {clip_row(yofs[size_t(dy)], sh), clip_row(yofs[size_t(dy)] + 1, sh)};
    auto find = [&](int q) { return row_of[0] == q ? 0 : row_of[1] == q ? 1 : -1; };
    int s0 = find(r[0]), s1 = find(r[1]);
    if (s0 < 0) {
      s0 = s1 == 0 ? 1 : 0;
      hresize(r[0], rows[s0]);
      row_of[s0] = r[0];
      if (r[1] == r[0]) s1 = s0;
    }
    if (s1 < 0) {
      s1 = 1 - s0;
      hresize(r[1], rows[s1]);
      row_of[s1] = r[1];
    }
    const int* S[2] = {rows[s0].data(), rows[s1].data()};
    const int b0 = ibeta[size_t(dy) * 2], b1 = ibeta[size_t(dy) * 2 + 1];
    uint8_t* D = dst.row(dy);
    for (int x = 0; x < width; ++x)
      D[x] = uint8_t((((b0 * (S[0][x] >> 4)) >> 16) + ((b1 * (S[1][x] >> 4)) >> 16) + 2) >> 2);
  }
}

// resizeAreaFast_<uchar, int, ResizeAreaFastVec<uchar>>: integer factors.
void resize_area_fast(const Image& src, Image& dst, int isx, int isy) {
  const int cn = src.c, sw = src.w * cn, sh = src.h, width = dst.w * cn;
  const int area = isx * isy;
  const float scale = 1.f / float(area);
  const int dwidth1 = (src.w / isx) * cn;
  const bool fast2 = isx == 2 && isy == 2 && (cn == 1 || cn == 3 || cn == 4);
  std::vector<int> xofs(static_cast<size_t>(width));
  for (int dx = 0; dx < dst.w; ++dx)
    for (int k = 0; k < cn; ++k) xofs[size_t(dx) * cn + k] = isx * dx * cn + k;
  for (int dy = 0; dy < dst.h; ++dy) {
    uint8_t* D = dst.row(dy);
    const int sy0 = dy * isy;
    if (sy0 >= sh) {
      std::memset(D, 0, size_t(width));
      continue;
    }
    const int w = sy0 + isy <= sh ? dwidth1 : 0;
    int dx = 0;
    if (fast2) {
      const uint8_t* S0 = src.row(sy0);
      const uint8_t* S1 = src.row(sy0 + 1);
      for (; dx < w; ++dx) {
        const int s = xofs[size_t(dx)];
        D[dx] = uint8_t((S0[s] + S0[s + cn] + S1[s] + S1[s + cn] + 2) >> 2);
      }
    } else {
      for (; dx < w; ++dx) {
        int sum = 0;
        for (int yy = 0; yy < isy; ++yy) {
          const uint8_t* S = src.row(sy0 + yy) + xofs[size_t(dx)];
          for (int xx = 0; xx < isx; ++xx) sum += S[xx * cn];
        }
        D[dx] = sat_u8(float(sum) * scale);
      }
    }
    for (; dx < width; ++dx) {  // partial cells at the right/bottom border
      int sum = 0, count = 0;
      const int sx0 = xofs[size_t(dx)];
      for (int yy = 0; yy < isy && sy0 + yy < sh; ++yy) {
        const uint8_t* S = src.row(sy0 + yy) + sx0;
        for (int xx = 0; xx < isx * cn && sx0 + xx < sw; xx += cn) {
          sum += S[xx];
          ++count;
        }
      }
      D[dx] = count ? sat_u8(float(sum) / float(count)) : 0;
    }
  }
}

struct AreaTab {
  int di, si;
  float alpha;
};

// computeResizeAreaTab
std::vector<AreaTab> area_tab(int ssize, int dsize, int cn, double scale) {
  std::vector<AreaTab> tab;
  tab.reserve(size_t(ssize) * 2 + 2);
  for (int dx = 0; dx < dsize; ++dx) {
    const double fsx1 = dx * scale;
    const double fsx2 = fsx1 + scale;
    const double cell = std::min(scale, ssize - fsx1);
    int sx1 = int(std::ceil(fsx1)), sx2 = cv_floor(fsx2);
    sx2 = std::min(sx2, ssize - 1);
    sx1 = std::min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push_back({dx * cn, (sx1 - 1) * cn, float((sx1 - fsx1) / cell)});
    for (int sx = sx1; sx < sx2; ++sx) tab.push_back({dx * cn, sx * cn, float(1.0 / cell)});
    if (fsx2 - sx2 > 1e-3) tab.push_back({dx * cn, sx2 * cn, float(std::min(std::min(fsx2 - sx2, 1.), cell) / cell)});
  }
  return tab;
}

// resizeArea_<uchar, float>: general downscale with float area weights.
void resize_area(const Image& src, Image& dst, double scale_x, double scale_y) {
  const int cn = src.c, width = dst.w * cn;
  const std::vector<AreaTab> xtab = area_tab(src.w, dst.w, cn, scale_x);
  const std::vector<AreaTab> ytab = area_tab(src.h, dst.h, 1, scale_y);
  std::vector<float> buf(static_cast<size_t>(width)), sum(static_cast<size_t>(width));
  size_t j = 0;
  for (int dy = 0; dy < dst.h; ++dy) {
    bool first = true;
    for (; j < ytab.size() && ytab[j].di == dy; ++j) {
      const float beta = ytab[j].alpha;
      const uint8_t* S = src.row(ytab[j].si);
      std::fill(buf.begin(), buf.end(), 0.f);
      for (const AreaTab& t : xtab)
        for (int c = 0; c < cn; ++c) {
          float prod = float(S[t.si + c]) * t.alpha;
          buf[size_t(t.di + c)] = buf[size_t(t.di + c)] + prod;
        }
      for (int x = 0; x < width; ++x) {
        float v = beta * buf[size_t(x)];
        sum[size_t(x)] = first ? v : sum[size_t(x)] + v;
      }
      first = false;
    }
    uint8_t* D = dst.row(dy);
    for (int x = 0; x < width; ++x) D[x] = first ? 0 : sat_u8(sum[size_t(x)]);
  }
}

}  // namespace

Image resize(const Image& src, int dst_w, int dst_h, Interp interp) {
  Y7_CHECK(!src.empty() && src.c >= 1 && src.c <= 4 && src.data.size() == size_t(src.w) * src.h * src.c,
           "resize: invalid source image ", src.w, "x", src.h, "x", src.c);
  Y7_CHECK(dst_w > 0 && dst_h > 0, "resize: bad target size ", dst_w, "x", dst_h);
  Image dst(dst_w, dst_h, src.c, 0, src.order);
  if (dst_w == src.w && dst_h == src.h) {
    dst.data = src.data;
    return dst;
  }
  const double inv_scale_x = double(dst_w) / src.w, inv_scale_y = double(dst_h) / src.h;
  const double scale_x = 1.0 / inv_scale_x, scale_y = 1.0 / inv_scale_y;
  const int iscale_x = cv_round(scale_x), iscale_y = cv_round(scale_y);
  const bool is_area_fast =
      std::abs(scale_x - iscale_x) < DBL_EPSILON && std::abs(scale_y - iscale_y) < DBL_EPSILON;
  bool area = interp == Interp::Area;
  if (!area && is_area_fast && iscale_x == 2 && iscale_y == 2) area = true;  // as OpenCV
  if (area && scale_x >= 1 && scale_y >= 1) {
    if (is_area_fast)
      resize_area_fast(src, dst, iscale_x, iscale_y);
    else
      resize_area(src, dst, scale_x, scale_y);
    return dst;
  }
  resize_linear(src, dst, inv_scale_x, inv_scale_y, area);
  return dst;
}

}  // namespace y7::io
