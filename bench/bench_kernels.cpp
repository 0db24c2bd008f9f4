// Google Benchmark suites for the CPU kernels on typical YOLOv7 / YOLOv7-tiny layer shapes at
// 640x640, batch 1. Threads: set Y7_THREADS (e.g. Y7_THREADS=2 taskset -c 0,1 yolo7_bench
// --benchmark_repetitions=5 --benchmark_report_aggregates_only=true). Conv benchmarks run every
// oneDNN layout policy, the portable path and channels-last tensors; GFLOPs counts 2 * MACs.
// On a shared machine read the "_min" rows, and the CPU column of single-thread runs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

#include "core/thread_pool.h"
#include "kernels/cpu/dnnl_util.h"
#include "kernels/ops.h"

using namespace y7;
using ops::Act;

namespace {

const int g_threads_set = [] {
  if (const char* s = std::getenv("Y7_THREADS")) set_num_threads(std::atoi(s));
  return 0;
}();

Tensor to_cl(const Tensor& t) { return t.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2}); }

Tensor randn(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// The machine may be shared: run with --benchmark_repetitions=N and read the "_min" rows.
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// NCHW tensors through each oneDNN layout policy (kernels/cpu/dnnl_util.h): plain, blocked
// (nChw16c jit kernels + reorders, as PyTorch), channels_last (brgconv on NHWC + reorders), auto
// (the default); portable: conv2d_portable on NCHW; nhwc: channels-last tensors (NCHW sizes, NHWC
// strides) under the default policy, which runs oneDNN on them without any reorder; nhwc_blocked:
// channels-last tensors under the blocked policy (reorders to nChw16c and back).
enum Impl { kPlain = 0, kBlocked = 1, kChannelsLast = 2, kAuto = 3, kPortable = 4, kNhwc = 5, kNhwcBlocked = 6 };
const char* impl_name(int i) {
  static const char* n[] = {"plain", "blocked", "channels_last", "auto", "portable", "nhwc", "nhwc_blocked"};
  return n[i];
}

// args: ci, co, k, stride, h (= w), impl
void BM_Conv(benchmark::State& st) {
  const int64_t ci = st.range(0), co = st.range(1), k = st.range(2), s = st.range(3), h = st.range(4);
  const int impl = int(st.range(5));
  st.SetLabel(std::to_string(ci) + "->" + std::to_string(co) + " " + std::to_string(k) + "x" +
              std::to_string(k) + " s" + std::to_string(s) + " @" + std::to_string(h) + " " + impl_name(impl));
#ifdef Y7_USE_DNNL
  using L = ops::dnnl_util::ConvLayout;
  if (impl != kPortable)
    ops::dnnl_util::set_conv_layout(impl == kPlain           ? L::Plain
                                    : impl == kBlocked || impl == kNhwcBlocked ? L::Blocked
                                    : impl == kChannelsLast  ? L::ChannelsLast
                                                             : L::Auto);
#else
  if (impl != kPortable) {
    st.SkipWithError("built without oneDNN");
    return;
  }
#endif
  Tensor x = randn({1, ci, h, h}, 1);
  const bool cl = impl == kNhwc || impl == kNhwcBlocked;
  if (cl) x = x.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
  Tensor w = randn({co, ci, k, k}, 2);
  Tensor b = randn({co}, 3);
  ops::Conv2dParams p;
  p.stride = int(s), p.pad = int(k / 2), p.act = Act::SiLU;
  const int64_t oh = (h + 2 * p.pad - k) / s + 1;
  Tensor out = Tensor::empty({1, co, oh, oh});
  if (cl) out = Tensor::empty({1, oh, oh, co}).permute({0, 3, 1, 2});
  auto cache = ops::ConvCache::create();
  auto run = [&] {
    if (impl == kPortable) ops::conv2d_portable(x, w, b, p, &out);
    else ops::conv2d(x, w, b, p, cache.get(), &out);
  };
  run();  // create and cache the primitive
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(out.raw_data());
  }
  const double flops = 2.0 * double(co) * double(ci) * double(k * k) * double(oh * oh);
  st.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
#ifdef Y7_USE_DNNL
  ops::dnnl_util::set_conv_layout(L::Auto);
#endif
}

void conv_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][5] = {
      {3, 32, 3, 1, 640},     // yolov7 stem
      {3, 32, 3, 2, 640},     // yolov7-tiny stem
      {32, 64, 3, 2, 640},    // yolov7 layer 1
      {64, 128, 3, 2, 320},   // yolov7 layer 3
      {64, 64, 3, 1, 160},    // ELAN 3x3
      {128, 64, 1, 1, 160},   // ELAN 1x1
      {256, 256, 1, 1, 80},   // ELAN transition
      {128, 128, 3, 1, 80},
      {128, 256, 3, 1, 80},   // head 3x3 before the P3 detect conv
      {1024, 512, 1, 1, 20},
      {512, 255, 1, 1, 20},   // detect conv at P5
  };
  for (auto& s : shapes)
    for (int impl : {kPlain, kBlocked, kChannelsLast, kAuto, kPortable, kNhwc, kNhwcBlocked}) b->Args({s[0], s[1], s[2], s[3], s[4], impl});
}
BENCHMARK(BM_Conv)->Apply(conv_args)->Unit(benchmark::kMillisecond)->UseRealTime()->ComputeStatistics("min", min_of);

// Same conv written into a channel slice of a concat buffer (the in-place concat path).
void BM_ConvIntoConcatSlice(benchmark::State& st) {
  const int64_t c = 64, h = 160;
  Tensor x = randn({1, c, h, h}, 1), w = randn({c, c, 3, 3}, 2), b = randn({c}, 3);
  Tensor buf = Tensor::empty({1, 4 * c, h, h});
  Tensor out = buf.slice(1, c, 2 * c);
  ops::Conv2dParams p;
  p.pad = 1, p.act = Act::SiLU;
  auto cache = ops::ConvCache::create();
  ops::conv2d(x, w, b, p, cache.get(), &out);
  for (auto _ : st) ops::conv2d(x, w, b, p, cache.get(), &out);
}
BENCHMARK(BM_ConvIntoConcatSlice)->Unit(benchmark::kMillisecond)->UseRealTime()->ComputeStatistics("min", min_of);

// args: c, h, kernel, stride, channels-last
void BM_MaxPool(benchmark::State& st) {
  const int64_t c = st.range(0), h = st.range(1), k = st.range(2), s = st.range(3);
  Tensor x = randn({1, c, h, h}, 4);
  if (st.range(4)) x = to_cl(x);
  Tensor out;
  ops::max_pool2d(x, int(k), int(s), int(k / 2) * (s == 1), &out);
  for (auto _ : st) ops::max_pool2d(x, int(k), int(s), int(k / 2) * (s == 1), &out);
  st.SetBytesProcessed(int64_t(st.iterations()) * (x.nbytes() + out.nbytes()));
}
BENCHMARK(BM_MaxPool)
    ->ArgsProduct({{64}, {320}, {2}, {2}, {0, 1}})  // MP in the yolov7 backbone
    ->ArgsProduct({{128}, {160}, {2}, {2}, {0, 1}})
    ->ArgsProduct({{512}, {20}, {5, 9, 13}, {1}, {0, 1}})  // SPPCSPC pools
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->ComputeStatistics("min", min_of);

void BM_Upsample(benchmark::State& st) {
  const int64_t c = st.range(0), h = st.range(1);
  Tensor x = randn({1, c, h, h}, 5);
  if (st.range(2)) x = to_cl(x);
  Tensor out;
  ops::upsample_nearest2d(x, 2, &out);
  for (auto _ : st) ops::upsample_nearest2d(x, 2, &out);
  st.SetBytesProcessed(int64_t(st.iterations()) * (x.nbytes() + out.nbytes()));
}
BENCHMARK(BM_Upsample)->ArgsProduct({{256}, {20}, {0, 1}})->ArgsProduct({{128}, {40}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime()->ComputeStatistics("min", min_of);

void BM_Concat(benchmark::State& st) {
  const int64_t c = st.range(0), h = st.range(1);
  std::vector<Tensor> xs;
  for (int i = 0; i < 4; ++i) xs.push_back(st.range(2) ? to_cl(randn({1, c, h, h}, 6 + i)) : randn({1, c, h, h}, 6 + i));
  for (auto _ : st) benchmark::DoNotOptimize(ops::concat(xs, 1).raw_data());
  st.SetBytesProcessed(int64_t(st.iterations()) * 2 * 4 * xs[0].nbytes());
}
BENCHMARK(BM_Concat)->ArgsProduct({{64}, {160}, {0, 1}})->ArgsProduct({{128}, {80}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime()->ComputeStatistics("min", min_of);

void BM_SiLU(benchmark::State& st) {
  const int64_t c = st.range(0), h = st.range(1);
  Tensor x = randn({1, c, h, h}, 10);
  for (auto _ : st) ops::activation_(x, Act::SiLU);
  st.SetBytesProcessed(int64_t(st.iterations()) * 2 * x.nbytes());
}
BENCHMARK(BM_SiLU)->Args({32, 640})->Args({128, 80})->Unit(benchmark::kMicrosecond)->UseRealTime()->ComputeStatistics("min", min_of);

void BM_DetectDecode(benchmark::State& st) {
  const int64_t h = st.range(0);
  Tensor raw = randn({1, 255, h, h}, 11);
  Tensor ag = Tensor::from_vector<float>({12, 16, 19, 36, 40, 28}, {3, 2});
  Tensor perm;
  for (auto _ : st) benchmark::DoNotOptimize(ops::detect_decode(raw, 3, 85, 8.0f, ag, &perm).raw_data());
}
BENCHMARK(BM_DetectDecode)->Arg(80)->Arg(20)->Unit(benchmark::kMicrosecond)->UseRealTime()->ComputeStatistics("min", min_of);

}  // namespace
