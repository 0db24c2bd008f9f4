#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

using namespace y7;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::empty({2, 3, 4});
  for (int i = 0; i < 24; ++i) t.data<float>()[i] = float(i);
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.sizes(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.item({1, 1, 2}), 1 * 12 + 2 * 4 + 1);
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.data<float>()[0 * 6 + 1 * 3 + 2], 12 + 8);
  Tensor s = t.slice(2, 1, 4, 2);
  EXPECT_EQ(s.sizes(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.item({1, 2, 1}), 12 + 8 + 3);
  s.fill_(-1);
  EXPECT_EQ(t.data<float>()[12 + 8 + 3], -1);
  EXPECT_EQ(t.view({6, -1}).size(1), 4);
  EXPECT_THROW(p.view({24}), Error);
}

TEST(Tensor, HalfAndBf16RoundTrip) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, 0.333333f}) {
    EXPECT_NEAR(half_to_float(float_to_half(f)), f, std::abs(f) * 1e-3 + 1e-7) << f;
  }
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(1.0009765625f + 0.00048828125f), 0x3c02);  // tie rounds to even
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.5f)), 1.5f);
  Tensor h = Tensor::full({3}, 0.5, DType::F16);
  EXPECT_EQ(h.to(DType::F32).data<float>()[2], 0.5f);
}

TEST(Tensor, FromStorageBoundsChecked) {
  auto st = Storage::allocate(16 * 4);
  EXPECT_NO_THROW(Tensor::from_storage(st, DType::F32, {4, 4}, {4, 1}, 0));
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {4, 4}, {4, 1}, 1), Error);
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {5, 4}, {4, 1}, 0), Error);
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {2}, {-20}, 0), Error);
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {int64_t(1) << 50}, {1}, 0), Error);
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {(int64_t(1) << 40) - 1, (int64_t(1) << 40) - 1}, {(int64_t(1) << 40) - 1, (int64_t(1) << 40) - 1}, 0), Error);
  EXPECT_THROW(Tensor::from_storage(st, DType::F32, {int64_t(1) << 40, int64_t(1) << 40}, {0, 0}, 0), Error);
}

TEST(ThreadPool, ParallelForCoversRange) {
  std::vector<int> hit(10007, 0);
  parallel_for(10007, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hit[i]++;
  });
  for (int v : hit) ASSERT_EQ(v, 1);
}

TEST(Autograd, GradModeGuard) {
  Tensor t = Tensor::zeros({2});
  t.set_requires_grad(true);
  EXPECT_TRUE(any_requires_grad({&t}));
  {
    NoGradGuard g;
    EXPECT_FALSE(any_requires_grad({&t}));
  }
  EXPECT_TRUE(grad_enabled());
}
