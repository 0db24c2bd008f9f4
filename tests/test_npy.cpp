#include <gtest/gtest.h>

#include <cstdio>

#include "io/npy.h"

using namespace y7;

TEST(Npy, RoundTripAndFixture) {
  Tensor t = Tensor::empty({2, 3});
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = 0.5f * i;
  std::string p = testing::TempDir() + "/t.npy";
  io::write_npy(p, t);
  Tensor r = io::read_npy(p);
  EXPECT_EQ(r.sizes(), t.sizes());
  EXPECT_EQ(max_abs_diff(r, t), 0.0);
  Tensor x = io::read_npy(std::string(Y7_SHARED_FIXTURES) + "/yolov7/input.npy");
  EXPECT_EQ(x.sizes(), (Shape{2, 3, 128, 192}));
  EXPECT_EQ(x.dtype(), DType::F32);
}

TEST(Npy, RejectsGarbage) {
  std::string p = testing::TempDir() + "/bad.npy";
  FILE* f = std::fopen(p.c_str(), "wb");
  std::fputs("\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'fortran_order'", f);
  std::fclose(f);
  EXPECT_THROW(io::read_npy(p), Error);
  EXPECT_THROW(io::read_npy(p + ".missing"), Error);
}
