// Integer execution of the quantized graph (see int8_runner.h).
#include "quant/int8_runner.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "core/thread_pool.h"
#include "quant/fixpoint.h"

#ifdef Y7_USE_DNNL
#include <dnnl.hpp>

#include "kernels/cpu/dnnl_util.h"
#endif

namespace y7::quant {

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

int8_t dpu_requantize(int64_t v, int shift) {
  if (shift <= 0) {
    if (v == 0) return 0;
    if (-shift >= 8) return v > 0 ? 127 : -128;
    v *= int64_t(1) << (-shift);
  } else if (shift >= 62) {
    v = v >= 0 ? 0 : (v >= -(int64_t(1) << 61) ? 0 : -1);  // |v| < 2^61 here: rounds to 0 (or -0.5 ties up to 0)
  } else {
    v = (v + (int64_t(1) << (shift - 1))) >> shift;  // floor(v / 2^s + 1/2): ties toward +inf
  }
  return int8_t(std::clamp<int64_t>(v, -128, 127));
}

namespace {

using Lut = std::array<int8_t, 256>;

// Fewest elements per parallel chunk of the cheap elementwise passes: small layers run on one
// thread, since every parallel region costs a barrier (expensive on a shared, loaded machine).
constexpr int64_t kMinChunk = int64_t(1) << 17;

// int8 on step 2^-fi -> int8 on step 2^-fo
Lut requant_lut(int fi, int fo) {
  Lut l;
  for (int q = -128; q < 128; ++q) l[size_t(q + 128)] = dpu_requantize(q, fi - fo);
  return l;
}
bool is_identity(const Lut& l) {
  for (int q = -128; q < 128; ++q)
    if (l[size_t(q + 128)] != int8_t(q)) return false;
  return true;
}

// The DPU activation of an int8 input on step 2^-fi, as an int8 on step 2^-fo: the function of the
// 256 possible inputs, evaluated in the arithmetic NNDCT simulates (the values are exact multiples
// of their steps, so each entry is the DPU's integer result).
Lut act_lut(const IrNode& n, int fi, int fo) {
  Lut l;
  const float step = std::ldexp(1.0f, -fi);
  for (int q = -128; q < 128; ++q) {
    const float x = float(q) * step;
    float y = 0;
    switch (n.act) {
      case ops::Act::LeakyReLU: y = x > 0 ? x : x * n.alpha; break;
      case ops::Act::ReLU: y = x > 0 ? x : 0.0f; break;
      case ops::Act::Hardswish: y = dpu_hswish(x); break;
      case ops::Act::Hardsigmoid: y = dpu_hsigmoid(x); break;
      default: fail("int8: node '", n.name, "' activation ", ops::act_name(n.act), " is not supported");
    }
    float r = y;
    fix_neuron(&y, &r, 1, fo, 8, kActRound);
    l[size_t(q + 128)] = int8_t(std::lround(std::ldexp(double(r), fo)));
  }
  return l;
}

struct ConvPrep {
  int O = 0, C = 0, G = 1, kh = 1, kw = 1;
  std::vector<int8_t> w;     // OIHW (goihw) int8
  std::vector<int64_t> bias;  // aligned to the accumulator step 2^-F
  int acc_shift = 0;          // accumulator << acc_shift is on step 2^-F
  int shift = 0;              // F - out_fp
  ops::Act act = ops::Act::None;  // fused LeakyReLU / ReLU
  bool fast32 = false;        // all intermediate values fit int32 (vectorized path)
  int32_t neg_clamp = 0;      // fast32 LeakyReLU: t >= -neg_clamp (smaller t saturate at -128 all the same)
};

struct NodePrep {
  bool fused_away = false;  // a Conv/Add whose output only its fused Act reads (computed there)
  int act_of = -1;          // Conv/Add: the fused Act node that stores the result
  int fp = 0;               // fix point of the stored int8 output
  ConvPrep conv;
  Lut lut{};                // Act / MaxPool / Upsample
  bool lut_identity = true;
  std::vector<Lut> in_luts;  // Concat: per input
};

#ifdef Y7_USE_DNNL
struct DnnlConv {
  dnnl::convolution_forward prim;
  dnnl::memory::desc src_md, dst_md;
  dnnl::memory weights;
};
#endif

}  // namespace

struct Int8Graph::Impl {
  bool reference_conv = false;  // portable integer convolutions instead of oneDNN's
  IrGraph q;
  Plan plan;
  std::vector<NodePrep> prep;
#ifdef Y7_USE_DNNL
  mutable std::mutex mu;
  mutable std::map<std::tuple<int, int64_t, int64_t, int64_t>, std::shared_ptr<DnnlConv>> cache;
#endif
};

namespace {

// an int8 NHWC activation
struct Act8 {
  Tensor t;  // I8 [B, H, W, C]
  int64_t B = 0, H = 0, W = 0, C = 0;
  int8_t* p() const { return t.data<int8_t>(); }
};
Act8 make_act(int64_t B, int64_t H, int64_t W, int64_t C) {
  Act8 a;
  a.t = Tensor::empty({B, H, W, C}, DType::I8);
  a.B = B, a.H = H, a.W = W, a.C = C;
  return a;
}

// int8 stores may alias anything (char type): every loop bound and parameter is a local copy and
// the pointers are __restrict so that the loops vectorize.
template <int kAct>  // 0 none, 1 LeakyReLU, 2 ReLU
void requant_rows32(const int32_t* __restrict acc, int8_t* __restrict out, const int32_t* __restrict bias, int64_t n_pix,
                    const int O, const int s, const int32_t nc) {
  const int32_t r1 = int32_t(1) << (s - 1), r2 = int32_t(1) << (s + 7);
  for (int64_t p = 0; p < n_pix; ++p) {
    const int32_t* __restrict a = acc + p * O;
    int8_t* __restrict o = out + p * O;
    for (int c = 0; c < O; ++c) {
      const int32_t t = a[c] + bias[c];
      int32_t v;
      if constexpr (kAct == 1) {
        const int32_t tn = t < nc ? nc : (t > 0 ? 0 : t);  // the negative branch only (no overflow)
        const int32_t pos = (t + r1) >> s, neg = (tn * 26 + r2) >> (s + 8);
        v = t < 0 ? neg : pos;
      } else if constexpr (kAct == 2) {
        v = ((t < 0 ? 0 : t) + r1) >> s;
      } else {
        v = (t + r1) >> s;
      }
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
      o[c] = int8_t(v);
    }
  }
}

void requant_conv(const ConvPrep& cp, const int32_t* acc, int8_t* out, int64_t pixels) {
  const int O = cp.O;
  std::vector<int32_t> b32(cp.bias.begin(), cp.bias.end());
  parallel_for(pixels, std::max<int64_t>(1, kMinChunk / std::max(1, O)), [&](int64_t p0, int64_t p1) {
    if (cp.fast32) {
      const int32_t* a = acc + p0 * O;
      int8_t* o = out + p0 * O;
      if (cp.act == ops::Act::LeakyReLU) requant_rows32<1>(a, o, b32.data(), p1 - p0, O, cp.shift, -cp.neg_clamp);
      else if (cp.act == ops::Act::ReLU) requant_rows32<2>(a, o, b32.data(), p1 - p0, O, cp.shift, 0);
      else requant_rows32<0>(a, o, b32.data(), p1 - p0, O, cp.shift, 0);
      return;
    }
    for (int64_t p = p0; p < p1; ++p)
      for (int c = 0; c < O; ++c) {
        int64_t t = (int64_t(acc[p * O + c]) << cp.acc_shift) + cp.bias[size_t(c)];
        int8_t v;
        if (cp.act == ops::Act::LeakyReLU && t < 0) v = dpu_requantize(t * 26, cp.shift + 8);
        else if (cp.act == ops::Act::ReLU && t < 0) v = 0;
        else v = dpu_requantize(t, cp.shift);
        out[p * O + c] = v;
      }
  });
}

// Max pooling of NHWC int8 rows [r0, r1) of B*OH (torch semantics: padding never wins), then the
// requantize table (null: identity). Value parameters and __restrict pointers: vectorized over C.
void maxpool_rows(const int8_t* __restrict x, int8_t* __restrict out, const int8_t* __restrict lut, int64_t r0, int64_t r1,
                  const int64_t OH, const int64_t OW, const int64_t IH, const int64_t IW, const int64_t C, const int k,
                  const int st, const int pd) {
  std::vector<int8_t> mx(static_cast<size_t>(C));
  int8_t* __restrict m8 = mx.data();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / OH, oy = r % OH;
    for (int64_t ox = 0; ox < OW; ++ox) {
      for (int64_t c = 0; c < C; ++c) m8[c] = -128;
      for (int ky = 0; ky < k; ++ky) {
        const int64_t iy = oy * st - pd + ky;
        if (iy < 0 || iy >= IH) continue;
        for (int kx = 0; kx < k; ++kx) {
          const int64_t ix = ox * st - pd + kx;
          if (ix < 0 || ix >= IW) continue;
          const int8_t* __restrict xp = x + ((b * IH + iy) * IW + ix) * C;
          for (int64_t c = 0; c < C; ++c) m8[c] = m8[c] > xp[c] ? m8[c] : xp[c];
        }
      }
      int8_t* __restrict op = out + ((b * OH + oy) * OW + ox) * C;
      if (!lut)
        for (int64_t c = 0; c < C; ++c) op[c] = m8[c];
      else
        for (int64_t c = 0; c < C; ++c) op[c] = lut[int(m8[c]) + 128];
    }
  }
}

// Portable integer convolution (NHWC int8 x OIHW int8 -> NHWC int32).
void conv_ref(const ConvPrep& cp, const IrNode& n, const Act8& x, int32_t* acc, int64_t OH, int64_t OW) {
  const int O = cp.O, G = cp.G, Cg = cp.C / G, Og = O / G;
  parallel_for(x.B * OH, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / OH, oy = r % OH;
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int o = 0; o < O; ++o) {
          const int g = o / Og;
          int32_t s = 0;
          for (int ky = 0; ky < cp.kh; ++ky) {
            const int64_t iy = oy * n.stride - n.pad + ky * n.dilation;
            if (iy < 0 || iy >= x.H) continue;
            for (int kx = 0; kx < cp.kw; ++kx) {
              const int64_t ix = ox * n.stride - n.pad + kx * n.dilation;
              if (ix < 0 || ix >= x.W) continue;
              const int8_t* xp = x.p() + ((b * x.H + iy) * x.W + ix) * x.C + g * Cg;
              const int8_t* wp = cp.w.data() + (size_t(o) * Cg * cp.kh + ky) * cp.kw + kx;
              for (int c = 0; c < Cg; ++c) s += int32_t(xp[c]) * int32_t(wp[size_t(c) * cp.kh * cp.kw]);
            }
          }
          acc[((b * OH + oy) * OW + ox) * O + o] = s;
        }
    }
  });
}

}  // namespace

Int8Graph::Int8Graph(const IrGraph& g, const QuantConfig& c, const QuantOptions& o) : p_(std::make_unique<Impl>()) {
  Impl& m = *p_;
  if (const char* e = std::getenv("Y7_INT8_REFERENCE_CONV")) m.reference_conv = e[0] == '1';
  {
    // the converted graph with its weights and (bias-corrected) biases already on their fix-point
    // grids, exactly as 'test' mode quantizes them (and the config checked against g)
    FakeQuantGraph fq(g, c, o);
    m.q = fq.graph();
    m.q.reset_caches();
    m.plan = fq.plan();
  }
  const IrGraph& q = m.q;
  const Plan& pl = m.plan;
  const int N = int(q.nodes.size());
  m.prep.resize(size_t(N));
  std::vector<int> users(size_t(N), 0);
  for (const auto& n : q.nodes)
    for (int p : n.in) ++users[size_t(p)];
  auto stored_fp = [&](int i) {
    const int f = pl.fix_at[size_t(i)];
    Y7_CHECK(pl.has_fix[size_t(f)], "int8: node '", q.nodes[size_t(i)].name, "' has an unquantized output");
    return c.output_fp(q.nodes[size_t(f)].name);
  };
  for (int i = 0; i < N; ++i) {
    const IrNode& n = q.nodes[size_t(i)];
    NodePrep& np = m.prep[size_t(i)];
    const int ge = pl.group_end[size_t(i)];
    if ((n.op == IrOp::Conv || n.op == IrOp::Add) && ge != i) {
      const IrNode& a = q.nodes[size_t(ge)];
      Y7_CHECK(a.op == IrOp::Act && a.in.size() == 1 && a.in[0] == i &&
                   (a.act == ops::Act::LeakyReLU || a.act == ops::Act::ReLU),
               "int8: node '", n.name, "' is grouped with '", a.name, "', which the integer path cannot fuse");
      np.fused_away = true;
      np.act_of = ge;
      m.prep[size_t(ge)].fp = stored_fp(ge);
    } else {
      if (n.op == IrOp::Act && !n.in.empty() && m.prep[size_t(n.in[0])].act_of == i) continue;  // fused, fp set
      np.fp = stored_fp(i);
    }
  }
  for (int i = 0; i < N; ++i) {
    const IrNode& n = q.nodes[size_t(i)];
    NodePrep& np = m.prep[size_t(i)];
    const int out_fp = np.fused_away ? m.prep[size_t(np.act_of)].fp : np.fp;
    auto in_fp = [&](int k) {
      const int p = n.in.at(size_t(k));
      Y7_CHECK(!m.prep[size_t(p)].fused_away, "int8: node '", n.name, "' reads an unquantized conv output");
      return m.prep[size_t(p)].fp;
    };
    switch (n.op) {
      case IrOp::Input: break;
      case IrOp::Conv: {
        ConvPrep& cp = np.conv;
        Tensor w = n.weight.contiguous(), b = n.bias.contiguous();
        cp.O = int(w.size(0)), cp.G = n.groups, cp.kh = int(w.size(2)), cp.kw = int(w.size(3));
        cp.C = int(w.size(1)) * n.groups;
        const int fi = in_fp(0), fw = c.weight_fp(n.name), fb = c.bias_fp(n.name);
        // the parameters are already on their grids: these are exact multiplications by 2^fp
        cp.w.resize(size_t(w.numel()));
        quantize_int8(w.data<float>(), cp.w.data(), w.numel(), fw, kParamRound);
        std::vector<int8_t> qb(size_t(b.numel()));
        quantize_int8(b.data<float>(), qb.data(), b.numel(), fb, kParamRound);
        for (int64_t k = 0; k < b.numel(); ++k)
          Y7_CHECK(std::ldexp(float(qb[size_t(k)]), -fb) == b.data<float>()[k], "int8: conv '", n.name, "' bias is off its grid");
        const int F = std::max(fi + fw, fb);
        cp.acc_shift = F - (fi + fw);
        Y7_CHECK(cp.acc_shift <= 24 && F - fb <= 40, "int8: conv '", n.name, "' fix points are out of range");
        cp.bias.resize(qb.size());
        int64_t bmax = 0;
        for (size_t k = 0; k < qb.size(); ++k) {
          cp.bias[k] = int64_t(qb[k]) * (int64_t(1) << (F - fb));
          bmax = std::max<int64_t>(bmax, std::abs(cp.bias[k]));
        }
        cp.shift = F - out_fp;
        if (np.fused_away) cp.act = q.nodes[size_t(np.act_of)].act;
        if (cp.act == ops::Act::LeakyReLU)
          Y7_CHECK(q.nodes[size_t(np.act_of)].alpha == 0.1015625f, "int8: conv '", n.name, "' LeakyReLU slope is not 26/256");
        // int32 path: |acc| <= K * 2^14 and |bias| <= 2^23 keep acc + bias in int32; a LeakyReLU input
        // is clamped at -neg_clamp first (below it the output saturates at -128 anyway) so that
        // t * 26 stays in int32 too
        const int64_t K = int64_t(w.size(1)) * cp.kh * cp.kw;
        const int64_t tmax = K * 128 * 128 + bmax;
        cp.fast32 = cp.acc_shift == 0 && cp.shift >= 1 && tmax + (int64_t(1) << (cp.shift - 1)) < (int64_t(1) << 31) &&
                    (cp.act != ops::Act::LeakyReLU || cp.shift <= 15);
        cp.neg_clamp = cp.act == ops::Act::LeakyReLU && cp.fast32 ? int32_t(((int64_t(129) << (cp.shift + 8)) / 26) + 1) : 0;
        break;
      }
      case IrOp::Act:
        if (!n.in.empty() && m.prep[size_t(n.in[0])].act_of == i) break;  // computed with its Conv/Add
        np.lut = act_lut(n, in_fp(0), out_fp), np.lut_identity = false;
        break;
      case IrOp::MaxPool:
      case IrOp::Upsample:
        np.lut = requant_lut(in_fp(0), out_fp), np.lut_identity = is_identity(np.lut);
        break;
      case IrOp::Concat:
        Y7_CHECK(n.axis == 1, "int8: concat '", n.name, "' is not along channels");
        for (size_t k = 0; k < n.in.size(); ++k) np.in_luts.push_back(requant_lut(in_fp(int(k)), out_fp));
        break;
      case IrOp::Add:
        Y7_CHECK(n.in.size() == 2, "int8: add '", n.name, "' needs two inputs");
        in_fp(0), in_fp(1);
        break;
      default: fail("int8: node '", n.name, "' (", graph::ir_op_name(n.op), ") is not supported");
    }
  }
  for (int o : q.outputs) Y7_CHECK(!m.prep[size_t(o)].fused_away, "int8: a graph output is not quantized");
}

Int8Graph::~Int8Graph() = default;
Int8Graph::Int8Graph(Int8Graph&&) noexcept = default;

const IrGraph& Int8Graph::graph() const { return p_->q; }

std::vector<Tensor> Int8Graph::run_int8(const Tensor& x_in, std::vector<int>* fix_points) const {
  const Impl& m = *p_;
  const IrGraph& q = m.q;
  const int N = int(q.nodes.size());
  Y7_CHECK(x_in.defined() && x_in.dtype() == DType::F32 && x_in.dim() == 4, "int8: expected a float32 [B,C,H,W] input, got ",
           x_in.defined() ? x_in.str() : std::string("an undefined tensor"));
  const std::vector<Shape> shapes = q.infer_shapes(x_in.sizes());  // checks channels and sizes
  std::vector<Act8> v(static_cast<size_t>(N));
  std::vector<int> last_use(size_t(N), -1);
  for (int i = 0; i < N; ++i)
    for (int p : q.nodes[size_t(i)].in) last_use[size_t(p)] = i;
  for (int o : q.outputs) last_use[size_t(o)] = N;
  std::vector<int32_t> accbuf;

  static const bool prof = std::getenv("Y7_INT8_PROFILE") != nullptr;
  double tk[9] = {0}, tconv = 0, treq = 0;
  for (int i = 0; i < N; ++i) {
    const IrNode& n = q.nodes[size_t(i)];
    const NodePrep& np = m.prep[size_t(i)];
    if (n.op == IrOp::Act && !n.in.empty() && m.prep[size_t(n.in[0])].act_of == i) continue;  // done
    auto t0 = std::chrono::steady_clock::now();
    struct Tm { double& acc; std::chrono::steady_clock::time_point t0; ~Tm() { acc += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); } } tm{tk[int(n.op)], t0};
    const Shape& os = shapes[size_t(i)];
    const int store = np.fused_away ? np.act_of : i;
    const int64_t B = os[0], OC = os[1], OH = os[2], OW = os[3];
    switch (n.op) {
      case IrOp::Input: {
        Tensor x = x_in.contiguous();
        Act8 a = make_act(B, OH, OW, OC);
        const float amp = std::ldexp(1.0f, np.fp);
        const float* xp = x.data<float>();
        int8_t* out = a.p();
        std::atomic<bool> finite{true};
        const int64_t HW = OH * OW;
        parallel_for(B * HW, 4096, [&](int64_t p0, int64_t p1) {
          bool ok = true;
          for (int64_t c = 0; c < OC; ++c)
            for (int64_t e = p0; e < p1; ++e) {
              const int64_t b = e / HW, k = e % HW;
              const float f = xp[(b * OC + c) * HW + k];
              ok &= std::isfinite(f);
              const float t = f * amp, fl = std::floor(t);
              float r = fl + ((t - fl) >= 0.5f ? 1.0f : 0.0f);
              r = r > 127.f ? 127.f : (r < -128.f ? -128.f : r);
              out[e * OC + c] = int8_t(r);
            }
          if (!ok) finite = false;
        });
        Y7_CHECK(finite, "int8: the input has non-finite values");
        v[size_t(i)] = std::move(a);
        break;
      }
      case IrOp::Conv: {
        const ConvPrep& cp = np.conv;
        const Act8& x = v[size_t(n.in[0])];
        const int64_t pixels = B * OH * OW;
        accbuf.resize(size_t(pixels * OC));
#ifdef Y7_USE_DNNL
        if (m.reference_conv) {
          conv_ref(cp, n, x, accbuf.data(), OH, OW);
        } else {
          std::shared_ptr<DnnlConv> dc;
          const auto key = std::make_tuple(i, x.B, x.H, x.W);
          {
            std::lock_guard<std::mutex> lk(m.mu);
            auto it = m.cache.find(key);
            if (it != m.cache.end()) dc = it->second;
          }
          using tag = dnnl::memory::format_tag;
          using dt = dnnl::memory::data_type;
          auto& eng = ops::dnnl_util::engine();
          if (!dc) {
            dc = std::make_shared<DnnlConv>();
            dnnl::memory::dims sd{x.B, x.C, x.H, x.W}, dd{B, OC, OH, OW};
            dnnl::memory::dims wd = cp.G > 1 ? dnnl::memory::dims{cp.G, cp.O / cp.G, cp.C / cp.G, cp.kh, cp.kw}
                                             : dnnl::memory::dims{cp.O, cp.C, cp.kh, cp.kw};
            dc->src_md = dnnl::memory::desc(sd, dt::s8, tag::nhwc);
            dc->dst_md = dnnl::memory::desc(dd, dt::s32, tag::nhwc);
            dnnl::memory::desc wany(wd, dt::s8, tag::any);
            dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                              dc->src_md, wany, dc->dst_md, {n.stride, n.stride},
                                              {n.dilation - 1, n.dilation - 1}, {n.pad, n.pad}, {n.pad, n.pad});
            dnnl::convolution_forward::primitive_desc pd(d, eng);
            dc->prim = dnnl::convolution_forward(pd);
            dnnl::memory user(dnnl::memory::desc(wd, dt::s8, cp.G > 1 ? tag::goihw : tag::oihw), eng,
                              const_cast<int8_t*>(cp.w.data()));
            dc->weights = dnnl::memory(pd.weights_desc(), eng);
            auto& st = ops::dnnl_util::stream();
            dnnl::reorder(user, dc->weights).execute(st, user, dc->weights);
            st.wait();
            std::lock_guard<std::mutex> lk(m.mu);
            m.cache[key] = dc;
          }
          dnnl::memory src(dc->src_md, eng, x.p());
          dnnl::memory dst(dc->dst_md, eng, accbuf.data());
          auto& st = ops::dnnl_util::stream();
          dc->prim.execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, dc->weights}, {DNNL_ARG_DST, dst}});
          st.wait();
        }
#else
        conv_ref(cp, n, x, accbuf.data(), OH, OW);
#endif
        Act8 a = make_act(B, OH, OW, OC);
        auto tq = std::chrono::steady_clock::now();
        tconv += std::chrono::duration<double, std::milli>(tq - t0).count();
        requant_conv(cp, accbuf.data(), a.p(), pixels);
        treq += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tq).count();
        v[size_t(store)] = std::move(a);
        break;
      }
      case IrOp::Act: {
        const Act8& x = v[size_t(n.in[0])];
        Act8 a = make_act(B, OH, OW, OC);
        const int64_t total = a.t.numel();
        const int8_t* xp = x.p();
        int8_t* op = a.p();
        const Lut& l = np.lut;
        parallel_for(total, 1 << 16, [&](int64_t e0, int64_t e1) {
          for (int64_t e = e0; e < e1; ++e) op[e] = l[size_t(int(xp[e]) + 128)];
        });
        v[size_t(i)] = std::move(a);
        break;
      }
      case IrOp::MaxPool: {
        const Act8& x = v[size_t(n.in[0])];
        Act8 a = make_act(B, OH, OW, OC);
        const Lut& l = np.lut;
        const bool ident = np.lut_identity;
        const int k = n.k, st = n.s, pd = n.p;
        const int64_t IH = x.H, IW = x.W, C = OC;
        const int8_t* xbase = x.p();
        int8_t* obase = a.p();
        const Lut* lp = ident ? nullptr : &l;
        parallel_for(B * OH, std::max<int64_t>(1, kMinChunk / std::max<int64_t>(1, OW * OC)), [&](int64_t r0, int64_t r1) {
          maxpool_rows(xbase, obase, lp ? lp->data() : nullptr, r0, r1, OH, OW, IH, IW, C, k, st, pd);
        });
        v[size_t(i)] = std::move(a);
        break;
      }
      case IrOp::Upsample: {
        const Act8& x = v[size_t(n.in[0])];
        Act8 a = make_act(B, OH, OW, OC);
        const Lut& l = np.lut;
        const bool ident = np.lut_identity;
        parallel_for(B * OH, std::max<int64_t>(1, kMinChunk / std::max<int64_t>(1, OW * OC)), [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / OH, oy = r % OH, iy = std::min(x.H - 1, oy / n.scale);
            for (int64_t ox = 0; ox < OW; ++ox) {
              const int64_t ix = std::min(x.W - 1, ox / n.scale);
              const int8_t* xp = x.p() + ((b * x.H + iy) * x.W + ix) * x.C;
              int8_t* op = a.p() + ((b * OH + oy) * OW + ox) * OC;
              if (ident) std::memcpy(op, xp, size_t(OC));
              else
                for (int64_t c = 0; c < OC; ++c) op[c] = l[size_t(int(xp[c]) + 128)];
            }
          }
        });
        v[size_t(i)] = std::move(a);
        break;
      }
      case IrOp::Concat: {
        Act8 a = make_act(B, OH, OW, OC);
        int64_t off = 0;
        for (size_t k = 0; k < n.in.size(); ++k) {
          const Act8& x = v[size_t(n.in[k])];
          const Lut& l = np.in_luts[k];
          const bool ident = is_identity(l);
          const int64_t Ck = x.C;
          parallel_for(B * OH * OW, std::max<int64_t>(1, kMinChunk / std::max<int64_t>(1, Ck)), [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
              const int8_t* xp = x.p() + p * Ck;
              int8_t* op = a.p() + p * OC + off;
              if (ident) std::memcpy(op, xp, size_t(Ck));
              else
                for (int64_t c = 0; c < Ck; ++c) op[c] = l[size_t(int(xp[c]) + 128)];
            }
          });
          off += Ck;
        }
        v[size_t(i)] = std::move(a);
        break;
      }
      case IrOp::Add: {
        const Act8& x0 = v[size_t(n.in[0])];
        const Act8& x1 = v[size_t(n.in[1])];
        const int f0 = m.prep[size_t(n.in[0])].fp, f1 = m.prep[size_t(n.in[1])].fp;
        const int F = std::max(f0, f1);
        const int fo = np.fused_away ? m.prep[size_t(np.act_of)].fp : np.fp;
        const ops::Act act = np.fused_away ? q.nodes[size_t(np.act_of)].act : ops::Act::None;
        Act8 a = make_act(B, OH, OW, OC);
        const int8_t *p0 = x0.p(), *p1 = x1.p();
        int8_t* op = a.p();
        parallel_for(a.t.numel(), 1 << 14, [&](int64_t e0, int64_t e1) {
          for (int64_t e = e0; e < e1; ++e) {
            const int64_t t = (int64_t(p0[e]) << (F - f0)) + (int64_t(p1[e]) << (F - f1));
            if (act == ops::Act::LeakyReLU && t < 0) op[e] = dpu_requantize(t * 26, F - fo + 8);
            else if (act == ops::Act::ReLU && t < 0) op[e] = 0;
            else op[e] = dpu_requantize(t, F - fo);
          }
        });
        v[size_t(store)] = std::move(a);
        break;
      }
      default: fail("int8: node '", n.name, "' is not supported");
    }
    // free inputs no longer needed
    for (int p : n.in)
      if (last_use[size_t(p)] <= i && last_use[size_t(p)] != N) v[size_t(p)] = Act8();
  }
  if (prof)
    std::fprintf(stderr, "int8 profile ms: input %.2f conv %.2f (dnnl %.2f requant %.2f) act %.2f maxpool %.2f upsample %.2f concat %.2f add %.2f\n",
                 tk[0], tk[1], tconv, treq, tk[2], tk[3], tk[4], tk[5], tk[6]);
  std::vector<Tensor> outs;
  if (fix_points) fix_points->clear();
  for (int o : q.outputs) {
    outs.push_back(v[size_t(o)].t);
    if (fix_points) fix_points->push_back(m.prep[size_t(o)].fp);
  }
  return outs;
}

std::vector<Tensor> Int8Graph::run(const Tensor& x) const {
  std::vector<int> fps;
  auto q8 = run_int8(x, &fps);
  std::vector<Tensor> outs;
  for (size_t k = 0; k < q8.size(); ++k) {
    const Tensor& t = q8[k];
    const int64_t B = t.size(0), H = t.size(1), W = t.size(2), C = t.size(3);
    Tensor y = Tensor::empty({B, C, H, W});
    const float inv = std::ldexp(1.0f, -fps[k]);
    const int8_t* src = t.data<int8_t>();
    float* dst = y.data<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < H * W; ++p)
        for (int64_t c = 0; c < C; ++c) dst[(b * C + c) * H * W + p] = float(src[(b * H * W + p) * C + c]) * inv;
    outs.push_back(std::move(y));
  }
  return outs;
}

Tensor Int8Graph::forward(const Tensor& x) const { return p_->q.decode(run(x)); }

}  // namespace y7::quant
