// Formula weights and input for the full-width model agreement test (tests/test_full_models.cpp).
// Bit-exact mirror of tools/dev/make_full_fixtures.py, which made the upstream references from
// exactly these float32 values:
//   mix64(z)   = splitmix64 finalizer
//   hash(s, i) = mix64(s + (i+1) * 0x9E3779B97F4A7C15)            (all mod 2^64)
//   seed       = FNV-1a 64 of the state_dict name
//   u          = float(int(hash >> 40) - 2^23) * 2^-23             (exact, in [-1, 1))
//   scale      = float(sqrt(3.0 / fan_in))                          (double math, one rounding)
//   w[i]       = u * scale                                          (one float32 multiply)
// Header-only: only tests/*.cpp are globbed into the test binary.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/tensor.h"

namespace y7::test::full {

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t hash_idx(uint64_t seed, uint64_t i) { return mix64(seed + (i + 1) * 0x9E3779B97F4A7C15ull); }

// Uniform in [-1, 1) with 24 bits; both steps are exact in float32.
inline float uniform_pm1(uint64_t seed, uint64_t i) {
  int64_t k = int64_t(hash_idx(seed, i) >> 40) - (int64_t(1) << 23);
  return float(k) * 0x1p-23f;
}

inline float weight_scale(const Shape& shape) {
  Y7_CHECK(shape.size() == 4, "formula weights are 4-D, got ", shape_str(shape));
  int64_t fan_in = shape[1] * shape[2] * shape[3];
  Y7_CHECK(fan_in > 0, "empty fan-in for ", shape_str(shape));
  return float(std::sqrt(3.0 / double(fan_in)));
}

// The formula weight of the conv whose state_dict name is `name`.
inline Tensor conv_weight(const std::string& name, const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  const uint64_t seed = fnv1a64(name);
  const float scale = weight_scale(shape);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) p[i] = uniform_pm1(seed, uint64_t(i)) * scale;
  return t;
}

// sum_i bits(x[i]) * (2i+1) mod 2^64 over a float32 tensor (the generator's checksum).
inline uint64_t checksum(const Tensor& t) {
  Tensor c = t.contiguous();
  const float* p = c.data<float>();
  uint64_t s = 0;
  for (int64_t i = 0; i < c.numel(); ++i) {
    uint32_t b;
    std::memcpy(&b, &p[i], 4);
    s += uint64_t(b) * (2 * uint64_t(i) + 1);
  }
  return s;
}

// The generator's image-like input [1,3,hw,hw]: integer gradient background, 40 hash-placed
// rectangles, hash noise in [-16, 15], clamped to [0,255], then k / 255 in float32.
inline Tensor make_input(const std::string& tag, int64_t hw = 640) {
  Y7_CHECK(hw > 256, "make_input: size ", hw, " too small for the rectangles");
  std::vector<int64_t> k(size_t(3 * hw * hw));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < hw; ++y)
      for (int64_t x = 0; x < hw; ++x)
        k[size_t((c * hw + y) * hw + x)] = 40 + (x * (60 + 30 * c)) / hw + (y * (90 - 20 * c)) / hw;
  const uint64_t rs = fnv1a64(tag + "/rects");
  for (uint64_t j = 0; j < 40; ++j) {
    uint64_t h[7];
    for (uint64_t q = 0; q < 7; ++q) h[q] = hash_idx(rs, j * 7 + q);
    const int64_t w = 24 + int64_t(h[0] % 232), hh = 24 + int64_t(h[1] % 232);
    const int64_t x0 = int64_t(h[2] % uint64_t(hw - w)), y0 = int64_t(h[3] % uint64_t(hw - hh));
    for (int64_t c = 0; c < 3; ++c) {
      const int64_t col = int64_t((h[4 + c] >> 11) % 256);
      for (int64_t y = y0; y < y0 + hh; ++y)
        for (int64_t x = x0; x < x0 + w; ++x) k[size_t((c * hw + y) * hw + x)] = col;
    }
  }
  const uint64_t s = fnv1a64(tag);
  Tensor t = Tensor::empty({1, 3, hw, hw});
  float* p = t.data<float>();
  for (int64_t i = 0; i < 3 * hw * hw; ++i) {
    int64_t v = k[size_t(i)] + int64_t(hash_idx(s, uint64_t(i)) >> 59) - 16;
    v = std::clamp<int64_t>(v, 0, 255);
    p[i] = float(v) / 255.0f;
  }
  return t;
}

}  // namespace y7::test::full
