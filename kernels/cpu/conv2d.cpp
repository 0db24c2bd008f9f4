// 2-D convolution with fused bias and activation.
//
// With oneDNN (Y7_USE_DNNL): a convolution_forward primitive per (layer, input shape), weights
// reordered once into the format oneDNN picks, the activation fused as eltwise post-ops, and the
// destination written straight into the caller's (possibly strided) `out` view. Primitives and
// reordered weights live in the layer's ConvCache.
//
// Portable path (conv2d_portable, always compiled): a packed GEMM per (image, group) computing
// out[Co/g, OH*OW] = W[Co/g, K] * cols[K, OH*OW] with K = Ci/g*kh*kw. The im2col matrix is never
// materialised: one KCxNC block of it at a time is copied from the input (1x1 stride-1 convs read
// the input planes directly), a 6x16 register-blocked micro-kernel (GCC/Clang vector extensions)
// accumulates, and bias + activation run on each finished block before it is stored. Work is
// split over column blocks on the y7 thread pool.
#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <string>
#include <unordered_map>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/autograd.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/cpu/dnnl_util.h"
#include "kernels/ops.h"

namespace y7::ops {

namespace {

struct Geom {
  int64_t N, Ci, H, W, Co, Cig, Cog, KH, KW, G, S, P, D, OH, OW;
};

Geom check_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, const char* op) {
  detail::check_rank(x, 4, op, "input");
  detail::check_rank(w, 4, op, "weight");
  if (b.defined()) {
    detail::check_f32(b, op, "bias");
    Y7_CHECK(b.dim() == 1 && b.size(0) == w.size(0), op, ": bias ", b.str(), " does not match ", w.size(0),
             " output channels");
  }
  Y7_CHECK(p.stride >= 1, op, ": stride must be >= 1, got ", p.stride);
  Y7_CHECK(p.pad >= 0, op, ": padding must be >= 0, got ", p.pad);
  Y7_CHECK(p.dilation >= 1, op, ": dilation must be >= 1, got ", p.dilation);
  Y7_CHECK(p.groups >= 1, op, ": groups must be >= 1, got ", p.groups);
  Y7_CHECK(x.size(2) >= 1 && x.size(3) >= 1 && x.size(1) >= 1, op, ": empty input ", x.str());
  Geom g{};
  g.N = x.size(0), g.Ci = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.Co = w.size(0), g.Cig = w.size(1), g.KH = w.size(2), g.KW = w.size(3);
  g.G = p.groups, g.S = p.stride, g.P = p.pad, g.D = p.dilation;
  Y7_CHECK(g.Co >= 1 && g.Cig >= 1 && g.KH >= 1 && g.KW >= 1, op, ": empty weight ", w.str());
  Y7_CHECK(g.Ci % g.G == 0 && g.Co % g.G == 0, op, ": input channels ", g.Ci, " and output channels ", g.Co,
           " must be divisible by groups ", g.G);
  Y7_CHECK(g.Cig * g.G == g.Ci, op, ": weight ", w.str(), " expects ", g.Cig * g.G, " input channels (groups ",
           g.G, "), input is ", x.str());
  g.Cog = g.Co / g.G;
  const int64_t ekh = g.D * (g.KH - 1) + 1, ekw = g.D * (g.KW - 1) + 1;
  Y7_CHECK(g.H + 2 * g.P >= ekh && g.W + 2 * g.P >= ekw, op, ": kernel ", g.KH, "x", g.KW, " (dilation ", g.D,
           ") does not fit the padded input ", x.str(), " (pad ", g.P, ")");
  g.OH = (g.H + 2 * g.P - ekh) / g.S + 1;
  g.OW = (g.W + 2 * g.P - ekw) / g.S + 1;
  return g;
}

// ------------------------------------------------------------------ portable packed GEMM path

constexpr int64_t MR = 6, NR = 16, KC = 256, NC = 128;

using v8 = detail::v8f;
inline v8 bcast(float a) { return detail::splat(a); }
inline v8 load8(const float* p) { return detail::loadu(p); }
inline void store8(float* p, v8 v) { detail::storeu(p, v); }

// C[MR x NR] (row stride ldc) (+)= A[kc x MR] (packed, k-major) * B[kc x NR] (row stride ldb)
void micro_kernel(int64_t kc, const float* A, const float* B, int64_t ldb, float* C, int64_t ldc,
                  bool accumulate) {
  v8 c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{};
  for (int64_t k = 0; k < kc; ++k) {
    const v8 b0 = load8(B + k * ldb), b1 = load8(B + k * ldb + 8);
    const float* a = A + k * MR;
    v8 t = bcast(a[0]);
    c00 += t * b0, c01 += t * b1;
    t = bcast(a[1]);
    c10 += t * b0, c11 += t * b1;
    t = bcast(a[2]);
    c20 += t * b0, c21 += t * b1;
    t = bcast(a[3]);
    c30 += t * b0, c31 += t * b1;
    t = bcast(a[4]);
    c40 += t * b0, c41 += t * b1;
    t = bcast(a[5]);
    c50 += t * b0, c51 += t * b1;
  }
  const v8 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int64_t i = 0; i < MR; ++i) {
    float* c = C + i * ldc;
    if (accumulate) {
      store8(c, load8(c) + acc[i][0]);
      store8(c + 8, load8(c + 8) + acc[i][1]);
    } else {
      store8(c, acc[i][0]);
      store8(c + 8, acc[i][1]);
    }
  }
}

// Packs weights of every group as [G][ceil(Cog/MR)][K][MR], zero-padding the last panel.
std::vector<float> pack_weights(const Tensor& w, const Geom& g) {
  const int64_t K = g.Cig * g.KH * g.KW, panels = (g.Cog + MR - 1) / MR;
  std::vector<float> out(size_t(g.G * panels * K * MR), 0.0f);
  Tensor wc = w.contiguous();
  const float* pw = wc.data<float>();
  for (int64_t grp = 0; grp < g.G; ++grp)
    for (int64_t m = 0; m < g.Cog; ++m) {
      const float* row = pw + (grp * g.Cog + m) * K;
      float* dst = out.data() + ((grp * panels + m / MR) * K) * MR + m % MR;
      for (int64_t k = 0; k < K; ++k) dst[k * MR] = row[k];
    }
  return out;
}

// Packs rows [k0, k0+kc) x columns [j0, j0+nc) of the implicit im2col matrix of image n, group
// grp into B (row-major, row stride ldb >= nc; columns nc..ldb zero-filled). Each row is copied in
// runs of one output row each, with the padding parts zeroed.
void pack_cols(const float* px, const Shape& xs, const Geom& g, int64_t n, int64_t grp, int64_t k0, int64_t kc,
               int64_t j0, int64_t nc, float* B, int64_t ldb) {
  const int64_t khw = g.KH * g.KW;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t k = k0 + kk, ci = k / khw, kh = (k % khw) / g.KW, kw = k % g.KW;
    const float* plane = px + n * xs[0] + (grp * g.Cig + ci) * xs[1];
    float* row = B + kk * ldb;
    int64_t oh = j0 / g.OW, ow = j0 % g.OW;
    for (int64_t j = 0; j < nc;) {
      const int64_t run = std::min(g.OW - ow, nc - j);
      float* d = row + j;
      const int64_t ih = oh * g.S - g.P + kh * g.D;
      if (ih < 0 || ih >= g.H) {
        std::fill(d, d + run, 0.0f);
      } else {
        // columns t of the run read iw = iw0 + t*S; keep those inside [0, W)
        const int64_t iw0 = ow * g.S - g.P + kw * g.D;
        const int64_t lo = std::min(run, iw0 >= 0 ? 0 : (-iw0 + g.S - 1) / g.S);
        const int64_t hi = std::max(lo, std::min(run, g.W - 1 - iw0 < 0 ? 0 : (g.W - 1 - iw0) / g.S + 1));
        const float* src = plane + ih * xs[2];
        std::fill(d, d + lo, 0.0f);
        if (g.S == 1 && xs[3] == 1) {
          std::memcpy(d + lo, src + iw0 + lo, size_t(hi - lo) * sizeof(float));
        } else {
          const int64_t step = g.S * xs[3];
          const float* s0 = src + (iw0 + lo * g.S) * xs[3];
          for (int64_t t = lo; t < hi; ++t) d[t] = s0[(t - lo) * step];
        }
        std::fill(d + hi, d + run, 0.0f);
      }
      j += run;
      ow = 0, ++oh;
    }
    std::fill(row + nc, row + ldb, 0.0f);
  }
}

void conv_portable_into(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, const Geom& g,
                        Tensor& y) {
  const int64_t K = g.Cig * g.KH * g.KW, mpanels = (g.Cog + MR - 1) / MR, Mpad = mpanels * MR;
  const std::vector<float> Ap = pack_weights(w, g);
  Tensor bc = b.defined() ? b.contiguous() : Tensor();
  const float* pb = bc.defined() ? bc.data<float>() : nullptr;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const Shape xs = x.strides(), ys = y.strides();
  const int64_t cols = g.OH * g.OW, jblocks = (cols + NC - 1) / NC;
  const bool plane_dense = ys[3] == 1 && ys[2] == g.OW;

  // 1x1 / stride 1 / no padding over dense planes: B rows are the input planes themselves
  const bool direct = g.KH == 1 && g.KW == 1 && g.S == 1 && g.P == 0 && xs[3] == 1 && xs[2] == g.W;

  parallel_for(g.N * g.G * jblocks, 1, [&](int64_t tb, int64_t te) {
    std::vector<float> Bp(size_t(KC * NC)), Cb(size_t(Mpad * NC));
    for (int64_t t = tb; t < te; ++t) {
      const int64_t jb = t % jblocks, grp = (t / jblocks) % g.G, n = t / (jblocks * g.G);
      const int64_t j0 = jb * NC, nc = std::min(NC, cols - j0), npan = (nc + NR - 1) / NR;
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        const float* B;
        int64_t ldb;
        if (direct && nc % NR == 0) {
          B = px + n * xs[0] + (grp * g.Cig + k0) * xs[1] + j0;
          ldb = xs[1];
        } else {
          ldb = npan * NR;
          pack_cols(px, xs, g, n, grp, k0, kc, j0, nc, Bp.data(), ldb);
          B = Bp.data();
        }
        for (int64_t mp = 0; mp < mpanels; ++mp) {
          const float* A = Ap.data() + ((grp * mpanels + mp) * K + k0) * MR;
          for (int64_t jp = 0; jp < npan; ++jp)
            micro_kernel(kc, A, B + jp * NR, ldb, Cb.data() + mp * MR * NC + jp * NR, NC, k0 > 0);
        }
      }
      for (int64_t m = 0; m < g.Cog; ++m) {
        const int64_t co = grp * g.Cog + m;
        float* row = Cb.data() + m * NC;
        if (pb)
          for (int64_t j = 0; j < nc; ++j) row[j] += pb[co];
        detail::act_inplace(row, nc, p.act, p.alpha);
        float* dst = py + n * ys[0] + co * ys[1];
        if (plane_dense) {
          std::memcpy(dst + j0, row, size_t(nc) * sizeof(float));
        } else {
          int64_t oh = j0 / g.OW, ow = j0 % g.OW;
          for (int64_t j = 0; j < nc; ++j) {
            dst[oh * ys[2] + ow * ys[3]] = row[j];
            if (++ow == g.OW) ow = 0, ++oh;
          }
        }
      }
    }
  });
}

}  // namespace

namespace {

// Records the convolution's backward on y = conv(x, w) + b (no activation).
void record_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  Tensor sx = x, sw = w;
  sx.set_autograd(nullptr);
  sw.set_autograd(nullptr);
  const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  Conv2dParams q = p;
  q.act = Act::None;
  record_fn("Conv2dBackward", {&x, &w, &b}, y, [sx, sw, gx, gw, gb, q](const std::vector<Tensor>& g) {
    Conv2dGrads r = conv2d_backward(g[0], sx, sw, gx, gw, gb, q);
    return std::vector<Tensor>{r.dx, r.dw, r.db};
  });
}

// conv2d with autograd: the convolution node, then the activation as its own node.
template <typename Fwd>
Tensor conv2d_grad(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor* out,
                   const char* op, Fwd fwd) {
  Y7_CHECK(!out, op, ": out= is not supported when recording autograd");
  Conv2dParams q = p;
  q.act = Act::None;
  Tensor y;
  {
    NoGradGuard ng;
    y = fwd(q);
  }
  record_conv(x, w, b, q, y);
  return p.act == Act::None ? y : activation(y, p.act, p.alpha);
}

}  // namespace

Tensor conv2d_portable(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor* out) {
  if (any_requires_grad({&x, &w, &b}))
    return conv2d_grad(x, w, b, p, out, "conv2d",
                       [&](const Conv2dParams& q) { return conv2d_portable(x, w, b, q, nullptr); });
  const Geom g = check_conv(x, w, b, p, "conv2d");
  Tensor y = detail::prepare_out(out, {g.N, g.Co, g.OH, g.OW}, "conv2d", x);
  Y7_CHECK(!detail::same_start(x, y), "conv2d: out must not alias the input");
  if (y.numel() == 0) return y;
  conv_portable_into(x, w, b, p, g, y);
  return y;
}

// ------------------------------------------------------------------ oneDNN path
#ifdef Y7_USE_DNNL

namespace dnnl_util {
namespace {
ConvLayout layout_from_env() {
  const char* e = std::getenv("Y7_CONV_LAYOUT");
  const std::string v = e ? e : "auto";
  if (v == "plain") return ConvLayout::Plain;
  if (v == "blocked") return ConvLayout::Blocked;
  if (v == "channels_last") return ConvLayout::ChannelsLast;
  if (v != "auto") fail("Y7_CONV_LAYOUT must be plain, blocked, channels_last or auto, got '", v, "'");
  return ConvLayout::Auto;
}
std::atomic<int> g_layout{-1};  // -1: not yet read from the environment
}  // namespace
void set_conv_layout(ConvLayout l) { g_layout = int(l); }
ConvLayout conv_layout() {
  int v = g_layout.load();
  if (v < 0) {
    v = int(layout_from_env());  // throws y7::Error on a bad value, from the first conv2d call
    g_layout = v;
  }
  return ConvLayout(v);
}
}  // namespace dnnl_util

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

struct ConvPrim {
  dnnl::convolution_forward conv;
  memory::desc src_md, wei_md, dst_md;    // what the primitive computes on
  memory::desc src_user, dst_user;        // the caller's strided NCHW views
  bool src_reorder = false, dst_reorder = false;
  dnnl::reorder src_r, dst_r;
  std::shared_ptr<memory> weights;        // reordered for this primitive
  bool has_bias = false;
};

class DnnlConvCache final : public ConvCache {
 public:
  void reset() override {
    std::lock_guard<std::mutex> l(m_);
    prims_.clear();
    weights_.clear();
    w_id_ = {};
  }

  std::shared_ptr<const ConvPrim> get(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                                      const Geom& g, const Tensor& y);

 private:
  struct WeightId {
    const void* storage = nullptr;
    int64_t offset = -1;
    Shape sizes, strides;
    bool operator==(const WeightId&) const = default;
  };
  std::shared_ptr<memory> weights_for(const memory::desc& md, const Tensor& w, const Geom& g);

  std::mutex m_;
  std::map<std::vector<int64_t>, std::shared_ptr<const ConvPrim>> prims_;
  std::vector<std::pair<memory::desc, std::shared_ptr<memory>>> weights_;
  WeightId w_id_;
};

memory::desc weight_user_md(const Tensor& w, const Geom& g) {
  if (g.G == 1) return dnnl_util::md_of(w);
  return memory::desc({g.G, g.Cog, g.Cig, g.KH, g.KW}, memory::data_type::f32,
                      {g.Cog * w.stride(0), w.stride(0), w.stride(1), w.stride(2), w.stride(3)});
}

memory::dims weight_dims(const Geom& g) {
  if (g.G == 1) return {g.Co, g.Cig, g.KH, g.KW};
  return {g.G, g.Cog, g.Cig, g.KH, g.KW};
}

dnnl::post_ops make_post_ops(Act a, float alpha) {
  using alg = dnnl::algorithm;
  dnnl::post_ops po;
  switch (a) {
    case Act::None: break;
    case Act::SiLU: po.append_eltwise(1.0f, alg::eltwise_swish, 1.0f, 0.0f); break;
    case Act::LeakyReLU: po.append_eltwise(1.0f, alg::eltwise_relu, alpha, 0.0f); break;
    case Act::Sigmoid: po.append_eltwise(1.0f, alg::eltwise_logistic, 0.0f, 0.0f); break;
    case Act::Hardswish: po.append_eltwise(1.0f, alg::eltwise_hardswish, 0.0f, 0.0f); break;
    case Act::Hardsigmoid:  // oneDNN 2.6 has no hardsigmoid: clip(x/6 + 1/2, 0, 1)
      po.append_eltwise(1.0f, alg::eltwise_linear, 1.0f / 6.0f, 0.5f);
      po.append_eltwise(1.0f, alg::eltwise_clip, 0.0f, 1.0f);
      break;
    case Act::ReLU: po.append_eltwise(1.0f, alg::eltwise_relu, 0.0f, 0.0f); break;
  }
  return po;
}

std::shared_ptr<memory> DnnlConvCache::weights_for(const memory::desc& md, const Tensor& w, const Geom& g) {
  for (auto& [d, m] : weights_)
    if (d == md) return m;
  auto m = std::make_shared<memory>(md, dnnl_util::engine());
  memory user(weight_user_md(w, g), dnnl_util::engine(), w.raw_data());
  dnnl::reorder(user, *m).execute(dnnl_util::stream(), user, *m);
  dnnl_util::stream().wait();
  weights_.emplace_back(md, m);
  return m;
}

bool is_ref_impl(const dnnl::primitive_desc_base& pd) {
  const std::string s = pd.impl_info_str();
  return s.rfind("ref", 0) == 0;
}

std::shared_ptr<const ConvPrim> DnnlConvCache::get(const Tensor& x, const Tensor& w, const Tensor& b,
                                                   const Conv2dParams& p, const Geom& g, const Tensor& y) {
  using dnnl_util::ConvLayout;
  ConvLayout layout = dnnl_util::conv_layout();
  if (layout == ConvLayout::Auto)
    layout = detail::is_channels_last(x) ? ConvLayout::ChannelsLast : ConvLayout::Blocked;
  std::vector<int64_t> key = {int64_t(layout), dnnl_util::max_threads(), b.defined(), p.stride, p.pad,
                              p.dilation, p.groups, int64_t(p.act)};
  float alpha = p.act == Act::LeakyReLU ? p.alpha : 0.0f;
  int32_t abits;
  std::memcpy(&abits, &alpha, 4);
  key.push_back(abits);
  for (const Shape* s : {&x.sizes(), &x.strides(), &y.strides(), &w.sizes()}) key.insert(key.end(), s->begin(), s->end());

  std::lock_guard<std::mutex> l(m_);
  WeightId id{w.storage().get(), w.offset(), w.sizes(), w.strides()};
  if (!(id == w_id_)) {  // different weight tensor: drop reordered copies of the old one
    weights_.clear();
    prims_.clear();
    w_id_ = id;
  }
  auto it = prims_.find(key);
  if (it != prims_.end()) return it->second;

  auto cp = std::make_shared<ConvPrim>();
  cp->has_bias = b.defined();
  cp->src_user = dnnl_util::md_of(x);
  cp->dst_user = dnnl_util::md_of(y);
  const memory::dims strides = {g.S, g.S}, dil = {g.D - 1, g.D - 1}, pad = {g.P, g.P};
  const memory::desc wei_any(weight_dims(g), memory::data_type::f32, tag::any);
  const memory::desc bias_md({g.Co}, memory::data_type::f32, tag::x);
  dnnl::primitive_attr attr;
  attr.set_post_ops(make_post_ops(p.act, p.alpha));

  auto make = [&](const memory::desc& src, const memory::desc& dst) {
    using dnnl::algorithm;
    using dnnl::prop_kind;
    // forward_training steers oneDNN 2.6 to the nChw16c jit kernels PyTorch uses (see dnnl_util.h);
    // the computation is the same as forward_inference (convolutions keep no workspace)
    const prop_kind pk = layout == ConvLayout::Blocked ? prop_kind::forward_training : prop_kind::forward_inference;
    auto d = cp->has_bias
                 ? dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src,
                                                   wei_any, bias_md, dst, strides, dil, pad, pad)
                 : dnnl::convolution_forward::desc(pk, algorithm::convolution_direct, src,
                                                   wei_any, dst, strides, dil, pad, pad);
    return dnnl::convolution_forward::primitive_desc(d, attr, dnnl_util::engine());
  };
  const memory::dims sdims = {g.N, g.Ci, g.H, g.W}, ddims = {g.N, g.Co, g.OH, g.OW};
  const memory::desc src_any(sdims, memory::data_type::f32, tag::any);
  const memory::desc dst_any(ddims, memory::data_type::f32, tag::any);

  dnnl::convolution_forward::primitive_desc pd;
  bool blocked = layout != ConvLayout::Plain;
  if (!blocked) {
    pd = make(cp->src_user, cp->dst_user);
    // the plain path must not land on oneDNN's reference loops (e.g. odd strided views)
    if (is_ref_impl(pd)) blocked = true;
  }
  if (blocked) pd = make(src_any, dst_any);
  cp->src_md = pd.src_desc();
  cp->dst_md = pd.dst_desc();
  cp->wei_md = pd.weights_desc();
  cp->conv = dnnl::convolution_forward(pd);
  cp->src_reorder = cp->src_md != cp->src_user;
  cp->dst_reorder = cp->dst_md != cp->dst_user;
  if (cp->src_reorder) cp->src_r = dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_util::engine(), cp->src_user,
                                                                              dnnl_util::engine(), cp->src_md));
  if (cp->dst_reorder) cp->dst_r = dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_util::engine(), cp->dst_md,
                                                                              dnnl_util::engine(), cp->dst_user));
  cp->weights = weights_for(cp->wei_md, w, g);
  prims_.emplace(std::move(key), cp);
  return cp;
}

// fresh_weights: reorder w for this call instead of using the cached copy (training: the weights
// change between steps while the primitive stays valid).
void conv_dnnl_into(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, const Geom& g,
                    ConvCache* cache, Tensor& y, bool fresh_weights = false) {
  std::unique_ptr<ConvCache> local;
  if (!cache) {
    local = ConvCache::create();
    cache = local.get();
  }
  auto* dc = dynamic_cast<DnnlConvCache*>(cache);
  Y7_CHECK(dc != nullptr, "conv2d: cache was not made by ConvCache::create()");
  std::shared_ptr<const ConvPrim> cp = dc->get(x, w, b, p, g, y);

  auto& eng = dnnl_util::engine();
  auto& s = dnnl_util::stream();
  memory src(cp->src_user, eng, x.raw_data());
  memory dst(cp->dst_user, eng, y.raw_data());
  if (cp->src_reorder) {
    memory tmp(cp->src_md, eng, dnnl_util::scratch(0, cp->src_md.get_size()));
    cp->src_r.execute(s, src, tmp);
    src = tmp;
  }
  memory conv_dst = cp->dst_reorder ? memory(cp->dst_md, eng, dnnl_util::scratch(1, cp->dst_md.get_size())) : dst;
  memory wei = *cp->weights;
  if (fresh_weights) {
    wei = memory(cp->wei_md, eng, dnnl_util::scratch(2, cp->wei_md.get_size()));
    memory user(weight_user_md(w, g), eng, w.raw_data());
    dnnl::reorder(user, wei).execute(s, user, wei);
  }
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, conv_dst}};
  Tensor bc;
  if (cp->has_bias) {
    bc = b.contiguous();
    args.emplace(DNNL_ARG_BIAS, memory({{g.Co}, memory::data_type::f32, tag::x}, eng, bc.raw_data()));
  }
  cp->conv.execute(s, args);
  if (cp->dst_reorder) cp->dst_r.execute(s, conv_dst, dst);
  s.wait();
}

// ---- backward: convolution_backward_data / convolution_backward_weights (+bias), on the
// blocked layouts oneDNN picks (tag::any, hinted by a forward_training descriptor), with reorders
// from/to the plain NCHW / OIHW tensors. Primitives are cached per geometry (they hold no data).
struct ConvBwdPrim {
  memory::desc src_md, dst_md, wei_md, dsrc_md, ddst_w_md, dwei_md;  // the primitives' formats
  memory::desc src_user, dst_user, wei_user;
  bool has_data = false, has_weights = false, has_bias = false;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
};

std::shared_ptr<const ConvBwdPrim> bwd_prim(const Geom& g, bool need_dx, bool need_dw, bool need_db) {
  static std::mutex mu;
  static std::map<std::vector<int64_t>, std::shared_ptr<const ConvBwdPrim>> cache;
  const std::vector<int64_t> key = {g.N,  g.Ci, g.H, g.W, g.Co, g.Cig, g.KH, g.KW, g.G, g.S, g.P, g.D,
                                    need_dx, need_dw || need_db, need_db, dnnl_util::max_threads()};
  {
    std::lock_guard<std::mutex> l(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  using dnnl::algorithm;
  auto bp = std::make_shared<ConvBwdPrim>();
  auto& eng = dnnl_util::engine();
  const memory::dims sdims = {g.N, g.Ci, g.H, g.W}, ddims = {g.N, g.Co, g.OH, g.OW};
  const memory::dims strides = {g.S, g.S}, dil = {g.D - 1, g.D - 1}, pad = {g.P, g.P};
  const memory::desc src_any(sdims, memory::data_type::f32, tag::any), dst_any(ddims, memory::data_type::f32, tag::any);
  const memory::desc wei_any(weight_dims(g), memory::data_type::f32, tag::any);
  const memory::desc bias_md({g.Co}, memory::data_type::f32, tag::x);
  bp->src_user = memory::desc(sdims, memory::data_type::f32, tag::nchw);
  bp->dst_user = memory::desc(ddims, memory::data_type::f32, tag::nchw);
  bp->wei_user = memory::desc(weight_dims(g), memory::data_type::f32, g.G == 1 ? tag::oihw : tag::goihw);
  dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, algorithm::convolution_direct, src_any,
                                     wei_any, bias_md, dst_any, strides, dil, pad, pad);
  dnnl::convolution_forward::primitive_desc fpd(fd, eng);
  if (need_dx) {
    dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, src_any, wei_any, dst_any, strides, dil,
                                            pad, pad);
    dnnl::convolution_backward_data::primitive_desc pd(d, eng, fpd);
    bp->dsrc_md = pd.diff_src_desc();
    bp->wei_md = pd.weights_desc();
    bp->dst_md = pd.diff_dst_desc();
    bp->bwd_data = dnnl::convolution_backward_data(pd);
    bp->has_data = true;
  }
  if (need_dw || need_db) {
    bp->has_bias = need_db;
    auto d = need_db ? dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src_any, wei_any,
                                                                bias_md, dst_any, strides, dil, pad, pad)
                     : dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src_any, wei_any,
                                                                dst_any, strides, dil, pad, pad);
    dnnl::convolution_backward_weights::primitive_desc pd(d, eng, fpd);
    bp->src_md = pd.src_desc();
    bp->dwei_md = pd.diff_weights_desc();
    bp->ddst_w_md = pd.diff_dst_desc();
    bp->bwd_weights = dnnl::convolution_backward_weights(pd);
    bp->has_weights = true;
  }
  std::lock_guard<std::mutex> l(mu);
  cache.emplace(key, bp);
  return bp;
}

Conv2dGrads conv2d_backward_dnnl(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_dx, bool need_dw,
                                 bool need_db, const Geom& g) {
  auto bp = bwd_prim(g, need_dx, need_dw, need_db);
  auto& eng = dnnl_util::engine();
  auto& s = dnnl_util::stream();
  Tensor gc = gy.contiguous(), xc = x.contiguous(), wc = w.contiguous();
  // a user buffer in the primitive's format (reordered when they differ)
  auto as = [&](const memory::desc& want, const memory::desc& user, void* data, int slot) {
    memory u(user, eng, data);
    if (want == user) return u;
    memory m(want, eng, dnnl_util::scratch(slot, want.get_size()));
    dnnl::reorder(u, m).execute(s, u, m);
    return m;
  };
  Conv2dGrads r;
  if (need_dx) {
    r.dx = Tensor::empty(x.sizes());
    memory ddst = as(bp->dst_md, bp->dst_user, gc.raw_data(), 0);
    memory wei = as(bp->wei_md, bp->wei_user, wc.raw_data(), 1);
    memory dsrc_user(bp->src_user, eng, r.dx.raw_data());
    memory dsrc = bp->dsrc_md == bp->src_user ? dsrc_user
                                              : memory(bp->dsrc_md, eng, dnnl_util::scratch(2, bp->dsrc_md.get_size()));
    bp->bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dsrc}});
    if (!(bp->dsrc_md == bp->src_user)) dnnl::reorder(dsrc, dsrc_user).execute(s, dsrc, dsrc_user);
    s.wait();
  }
  if (need_dw || need_db) {
    Tensor dw = Tensor::empty(w.sizes()), db = Tensor::empty({g.Co});
    memory src = as(bp->src_md, bp->src_user, xc.raw_data(), 0);
    memory ddst = as(bp->ddst_w_md, bp->dst_user, gc.raw_data(), 1);
    memory dwei_user(bp->wei_user, eng, dw.raw_data());
    memory dwei = bp->dwei_md == bp->wei_user ? dwei_user
                                              : memory(bp->dwei_md, eng, dnnl_util::scratch(2, bp->dwei_md.get_size()));
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, dwei}};
    if (need_db) args.emplace(DNNL_ARG_DIFF_BIAS, memory({{g.Co}, memory::data_type::f32, tag::x}, eng, db.raw_data()));
    bp->bwd_weights.execute(s, args);
    if (!(bp->dwei_md == bp->wei_user)) dnnl::reorder(dwei, dwei_user).execute(s, dwei, dwei_user);
    s.wait();
    if (need_dw) r.dw = dw;
    if (need_db) r.db = db;
  }
  return r;
}

}  // namespace

std::unique_ptr<ConvCache> ConvCache::create() { return std::make_unique<DnnlConvCache>(); }

#else  // !Y7_USE_DNNL

namespace {
class NoConvCache final : public ConvCache {
 public:
  void reset() override {}
};
}  // namespace

std::unique_ptr<ConvCache> ConvCache::create() { return std::make_unique<NoConvCache>(); }

#endif

Conv2dGrads conv2d_backward_portable(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_dx,
                                     bool need_dw, bool need_db, const Conv2dParams& p) {
  const char* op = "conv2d_backward";
  const Geom g = check_conv(x, w, Tensor(), p, op);
  detail::check_rank(gy, 4, op, "gradient");
  Y7_CHECK(gy.sizes() == Shape({g.N, g.Co, g.OH, g.OW}), op, ": gradient ", gy.str(), " does not match output [",
           g.N, ",", g.Co, ",", g.OH, ",", g.OW, "]");
  Conv2dGrads r;
  Tensor gc = gy.contiguous(), xc = x.contiguous(), wc = w.contiguous();
  const float *pg = gc.data<float>(), *px = xc.data<float>(), *pw = wc.data<float>();
  const int64_t HW = g.H * g.W, OHW = g.OH * g.OW, K2 = g.KH * g.KW;
  // valid output-column range for kernel column kw: iw = ow*S - P + kw*D in [0, W)
  auto ow_range = [&](int64_t off, int64_t lim, int64_t on, int64_t& lo, int64_t& hi) {
    // off = kw*D - P; need 0 <= o*S + off < lim
    lo = off >= 0 ? 0 : (-off + g.S - 1) / g.S;
    hi = lim - 1 - off < 0 ? -1 : std::min(on - 1, (lim - 1 - off) / g.S);
  };
  if (need_dx) {
    r.dx = Tensor::zeros(x.sizes());
    float* pdx = r.dx.data<float>();
    parallel_for(g.N * g.Ci, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t plane = b0; plane < e0; ++plane) {
        const int64_t n = plane / g.Ci, ci = plane % g.Ci, grp = ci / g.Cig, cil = ci % g.Cig;
        float* dxp = pdx + plane * HW;
        for (int64_t co = grp * g.Cog; co < (grp + 1) * g.Cog; ++co) {
          const float* gyp = pg + (n * g.Co + co) * OHW;
          for (int64_t kh = 0; kh < g.KH; ++kh) {
            int64_t oh0, oh1;
            ow_range(kh * g.D - g.P, g.H, g.OH, oh0, oh1);
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const float wv = pw[((co * g.Cig + cil) * g.KH + kh) * g.KW + kw];
              int64_t ow0, ow1;
              ow_range(kw * g.D - g.P, g.W, g.OW, ow0, ow1);
              for (int64_t oh = oh0; oh <= oh1; ++oh) {
                float* drow = dxp + (oh * g.S + kh * g.D - g.P) * g.W + (kw * g.D - g.P);
                const float* grow = gyp + oh * g.OW;
                if (g.S == 1) {
                  for (int64_t ow = ow0; ow <= ow1; ++ow) drow[ow] += wv * grow[ow];
                } else {
                  for (int64_t ow = ow0; ow <= ow1; ++ow) drow[ow * g.S] += wv * grow[ow];
                }
              }
            }
          }
        }
      }
    });
  }
  if (need_dw) {
    r.dw = Tensor::empty(w.sizes());
    float* pdw = r.dw.data<float>();
    parallel_for(g.Co * g.Cig, 1, [&](int64_t b0, int64_t e0) {
      for (int64_t oc = b0; oc < e0; ++oc) {
        const int64_t co = oc / g.Cig, cil = oc % g.Cig, grp = co / g.Cog, ci = grp * g.Cig + cil;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          int64_t oh0, oh1;
          ow_range(kh * g.D - g.P, g.H, g.OH, oh0, oh1);
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            int64_t ow0, ow1;
            ow_range(kw * g.D - g.P, g.W, g.OW, ow0, ow1);
            double acc = 0;
            for (int64_t n = 0; n < g.N; ++n) {
              const float* gyp = pg + (n * g.Co + co) * OHW;
              const float* xp = px + (n * g.Ci + ci) * HW;
              for (int64_t oh = oh0; oh <= oh1; ++oh) {
                const float* xrow = xp + (oh * g.S + kh * g.D - g.P) * g.W + (kw * g.D - g.P);
                const float* grow = gyp + oh * g.OW;
                float a = 0.f;
                if (g.S == 1) {
                  for (int64_t ow = ow0; ow <= ow1; ++ow) a += xrow[ow] * grow[ow];
                } else {
                  for (int64_t ow = ow0; ow <= ow1; ++ow) a += xrow[ow * g.S] * grow[ow];
                }
                acc += a;
              }
            }
            pdw[oc * K2 + kh * g.KW + kw] = float(acc);
          }
        }
      }
    });
  }
  if (need_db) {
    r.db = Tensor::empty({g.Co});
    float* pdb = r.db.data<float>();
    for (int64_t co = 0; co < g.Co; ++co) {
      double acc = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const float* gyp = pg + (n * g.Co + co) * OHW;
        float a = 0.f;
        for (int64_t i = 0; i < OHW; ++i) a += gyp[i];
        acc += a;
      }
      pdb[co] = float(acc);
    }
  }
  return r;
}

namespace {
Tensor conv2d_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, ConvCache* cache,
                   Tensor* out, bool fresh_weights);
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, ConvCache* cache,
              Tensor* out) {
  if (any_requires_grad({&x, &w, &b}))  // training: the cached primitive, the current weights
    return conv2d_grad(x, w, b, p, out, "conv2d",
                       [&](const Conv2dParams& q) { return conv2d_impl(x, w, b, q, cache, nullptr, true); });
  return conv2d_impl(x, w, b, p, cache, out, false);
}

namespace {
Tensor conv2d_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, ConvCache* cache,
                   Tensor* out, bool fresh_weights) {
  const Geom g = check_conv(x, w, b, p, "conv2d");
  Tensor y = detail::prepare_out(out, {g.N, g.Co, g.OH, g.OW}, "conv2d", x);
  Y7_CHECK(!detail::same_start(x, y), "conv2d: out must not alias the input");
  if (y.numel() == 0) return y;
#ifdef Y7_USE_DNNL
  try {
    conv_dnnl_into(x, w, b, p, g, cache, y, fresh_weights);
  } catch (const dnnl::error& e) {
    fail("conv2d: oneDNN failed (", e.what(), ") for input ", x.str(), ", weight ", w.str());
  }
#else
  (void)cache;
  (void)fresh_weights;
  conv_portable_into(x, w, b, p, g, y);
#endif
  return y;
}
}  // namespace

Conv2dGrads conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_dx, bool need_dw,
                            bool need_db, const Conv2dParams& p) {
#ifdef Y7_USE_DNNL
  const Geom g = check_conv(x, w, Tensor(), p, "conv2d_backward");
  detail::check_rank(gy, 4, "conv2d_backward", "gradient");
  Y7_CHECK(gy.sizes() == Shape({g.N, g.Co, g.OH, g.OW}), "conv2d_backward: gradient ", gy.str(),
           " does not match output [", g.N, ",", g.Co, ",", g.OH, ",", g.OW, "]");
  if (!need_dx && !need_dw && !need_db) return {};
  try {
    return conv2d_backward_dnnl(gy, x, w, need_dx, need_dw, need_db, g);
  } catch (const dnnl::error& e) {
    fail("conv2d_backward: oneDNN failed (", e.what(), ") for input ", x.str(), ", weight ", w.str());
  }
#else
  return conv2d_backward_portable(gy, x, w, need_dx, need_dw, need_db, p);
#endif
}

}  // namespace y7::ops
