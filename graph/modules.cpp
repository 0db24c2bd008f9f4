#include "graph/modules.h"

#include <cmath>

namespace y7::graph {

namespace {

std::string float_repr(float v) {
  // Python repr of a float that came from a short decimal in the cfg (0.1 -> "0.1").
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(v));
    if (float(std::strtod(buf, nullptr)) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// splitmix64: fast, deterministic; initial weights need no more.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0,1)
  double normal() {  // Box-Muller
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(6.283185307179586 * u2);
  }
};

void uniform_fill(Tensor& t, double bound, Rng& rng) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float((2.0 * rng.uniform() - 1.0) * bound);
}

void normal_fill(Tensor& t, double mean, double std, Rng& rng) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(mean + std * rng.normal());
}

// torch's default Conv2d init: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// the bias likewise.
void init_conv(ConvUnit& c, Rng& rng) {
  double fan_in = double(c.c1 / c.g) * c.k * c.k;
  double bound = 1.0 / std::sqrt(fan_in);
  uniform_fill(c.weight, bound, rng);
  if (c.bias.defined()) uniform_fill(c.bias, bound, rng);
  if (c.has_bn) c.bn.init(c.c2);
}

void check_input(const std::vector<Tensor>& in, size_t n, const char* what) {
  Y7_CHECK(in.size() == n, what, ": expected ", n, " inputs, got ", in.size());
}

}  // namespace

std::string ActSpec::repr() const {
  switch (act) {
    case ops::Act::None: return "Identity()";
    case ops::Act::SiLU: return "SiLU()";
    case ops::Act::LeakyReLU: return "LeakyReLU(negative_slope=" + float_repr(alpha) + ")";
    case ops::Act::Sigmoid: return "Sigmoid()";
    case ops::Act::Hardswish: return "Hardswish()";
    case ops::Act::Hardsigmoid: return "Hardsigmoid()";
    case ops::Act::ReLU: return "ReLU()";
  }
  return "?";
}

Tensor place(const Tensor& y, Tensor* out) {
  if (!out) return y;
  if (!out->defined()) {
    *out = y;
    return y;
  }
  if (out->storage() == y.storage() && out->offset() == y.offset() && out->strides() == y.strides())
    return *out;
  out->copy_(y);
  return *out;
}

bool is_channels_last(const Tensor& t) {
  if (t.dim() != 4) return false;
  const Shape& s = t.sizes();
  const Shape want = {s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
  for (int d = 0; d < 4; ++d)
    if (s[d] != 1 && t.stride(d) != want[d]) return false;
  return true;
}

Tensor empty_like_format(const Shape& shape, const Tensor& like) {
  // channels innermost (a dense channels-last tensor or a channel slice of one)
  if (shape.size() == 4 && like.defined() && like.dim() == 4 && like.size(1) > 1 && like.stride(1) == 1)
    return Tensor::empty({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2});
  return Tensor::empty(shape);
}

Tensor to_channels_last(const Tensor& t) {
  if (t.dim() != 4 || is_channels_last(t)) return t;
  Tensor o = Tensor::empty({t.size(0), t.size(2), t.size(3), t.size(1)}, t.dtype()).permute({0, 3, 1, 2});
  o.copy_(t);
  return o;
}

// ---------------------------------------------------------------- BatchNorm

void BatchNorm::init(int c) {
  weight = Tensor::full({c}, 1.0);
  bias = Tensor::zeros({c});
  mean = Tensor::zeros({c});
  var = Tensor::full({c}, 1.0);
  nbt = Tensor::zeros({}, DType::I64);
}

void BatchNorm::params(const std::string& prefix, std::vector<ParamRef>& out) {
  out.push_back({prefix + "weight", &weight, false});
  out.push_back({prefix + "bias", &bias, false});
  out.push_back({prefix + "running_mean", &mean, true});
  out.push_back({prefix + "running_var", &var, true});
  out.push_back({prefix + "num_batches_tracked", &nbt, true});
}

Tensor BatchNorm::forward(const Tensor& x) const {
  return ops::batch_norm_eval(x, mean, var, weight, bias, kBnEps);
}

Tensor BatchNorm::forward_train(const Tensor& x) {
  Tensor y = ops::batch_norm_train(x, weight, bias, mean, var, kBnMomentum, kBnEps);
  if (nbt.defined() && nbt.dtype() == DType::I64 && nbt.numel() == 1) nbt.data<int64_t>()[0] += 1;
  return y;
}

void BatchNorm::scale_shift(std::vector<float>& scale, std::vector<float>& shift) const {
  int64_t c = weight.numel();
  scale.resize(c);
  shift.resize(c);
  const float *g = weight.data<float>(), *b = bias.data<float>(), *m = mean.data<float>(),
              *v = var.data<float>();
  for (int64_t i = 0; i < c; ++i) {
    float sd = std::sqrt(v[i] + float(kBnEps));
    scale[i] = g[i] / sd;
    shift[i] = b[i] - g[i] * m[i] / sd;
  }
}

// ---------------------------------------------------------------- ConvUnit

void ConvUnit::init(int c1_, int c2_, int k_, int s_, int p_, int g_, bool with_bias, bool with_bn) {
  Y7_CHECK(c1_ > 0 && c2_ > 0 && k_ > 0 && s_ > 0 && p_ >= 0 && g_ > 0, "invalid convolution c1=", c1_,
           " c2=", c2_, " k=", k_, " s=", s_, " p=", p_, " g=", g_);
  Y7_CHECK(c1_ % g_ == 0 && c2_ % g_ == 0, "convolution channels ", c1_, "->", c2_,
           " not divisible by groups ", g_);
  c1 = c1_, c2 = c2_, k = k_, s = s_, p = p_, g = g_;
  weight = Tensor::zeros({c2, c1 / g, k, k});
  bias = with_bias ? Tensor::zeros({c2}) : Tensor();
  has_bn = with_bn;
  if (with_bn) bn.init(c2);
  cache = ops::ConvCache::create();
}

void ConvUnit::params(const std::string& prefix, std::vector<ParamRef>& out) {
  out.push_back({prefix + wname, &weight, false});
  if (bias.defined()) out.push_back({prefix + bname, &bias, false});
  if (has_bn) bn.params(prefix + bnprefix, out);
}

void ConvUnit::reset_cache() {
  if (cache) cache->reset();
}

Tensor ConvUnit::forward(const Tensor& x, Tensor* out) {
  ops::Conv2dParams cp;
  cp.stride = s, cp.pad = p, cp.dilation = d, cp.groups = g;
  if (!has_bn) {
    cp.act = act, cp.alpha = alpha;
    return ops::conv2d(x, weight, bias, cp, cache.get(), out);
  }
  // Unfused eval path, as upstream: conv, BatchNorm (running statistics), activation.
  Tensor y = ops::conv2d(x, weight, bias, cp, cache.get());
  y = bn.forward(y);
  if (act != ops::Act::None) ops::activation_(y, act, alpha);
  return place(y, out);
}

Tensor ConvUnit::forward_train(const Tensor& x) {
  ops::Conv2dParams cp;
  cp.stride = s, cp.pad = p, cp.dilation = d, cp.groups = g;
  // the layer's cache holds the oneDNN primitive; with autograd on, conv2d reorders the current
  // weights on every call, so optimizer steps need no cache reset here
  Tensor y = ops::conv2d(x, weight, bias, cp, cache.get());
  if (has_bn) y = bn.forward_train(y);
  return act == ops::Act::None ? y : ops::activation(y, act, alpha);
}

void ConvUnit::fuse_bn() {
  if (!has_bn) return;
  // upstream fuse_conv_and_bn: w' = w * gamma/sqrt(var+eps); b' = (gamma/sqrt(var+eps)) * b + beta
  // - gamma*mean/sqrt(var+eps).
  std::vector<float> scale, shift;
  bn.scale_shift(scale, shift);
  Tensor w = weight.contiguous().clone();
  float* pw = w.data<float>();
  int64_t per = w.numel() / c2;
  for (int o = 0; o < c2; ++o)
    for (int64_t j = 0; j < per; ++j) pw[o * per + j] *= scale[o];
  Tensor b = Tensor::empty({c2});
  float* pb = b.data<float>();
  const float* ob = bias.defined() ? bias.contiguous().data<float>() : nullptr;
  for (int o = 0; o < c2; ++o) pb[o] = (ob ? scale[o] * ob[o] : 0.f) + shift[o];
  weight = w;
  bias = b;
  has_bn = false;
  bn = BatchNorm();
  bnprefix.clear();
  reset_cache();
}

Shape ConvUnit::out_shape(const Shape& in) const {
  Y7_CHECK(in.size() == 4, "convolution input must be 4-D, got ", shape_str(in));
  Y7_CHECK(in[1] == c1, "convolution expects ", c1, " input channels, got ", shape_str(in));
  int64_t ek = int64_t(d) * (k - 1) + 1;
  int64_t h = (in[2] + 2 * p - ek) / s + 1, w = (in[3] + 2 * p - ek) / s + 1;
  Y7_CHECK(in[2] + 2 * p >= ek && in[3] + 2 * p >= ek, "input ", shape_str(in), " too small for a ", k,
           "x", k, " convolution");
  return {in[0], c2, h, w};
}

double ConvUnit::macs(const Shape& in) const {
  Shape o = out_shape(in);
  return double(shape_numel(o)) * double(c1 / g) * k * k;
}

// ---------------------------------------------------------------- Conv

ConvLayer::ConvLayer(int c1, int c2_, int k, int s, int p, int g, ActSpec a) {
  cv.init(c1, c2_, k, s, p, g, false, true);
  cv.wname = "conv.weight", cv.bname = "conv.bias", cv.bnprefix = "bn.";
  cv.act = a.act, cv.alpha = a.alpha;
}

Tensor ConvLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "Conv");
  return cv.forward(in[0], out);
}

Tensor ConvLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "Conv");
  return cv.forward_train(in[0]);
}

void ConvLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  init_conv(cv, rng);
}

// ---------------------------------------------------------------- RepConv

RepConvLayer::RepConvLayer(int c1_, int c2, int k, int s_, int p, int g_, ActSpec a, bool deploy_)
    : c1(c1_), c2_(c2), s(s_), g(g_), act(a), deploy(deploy_) {
  Y7_CHECK(k == 3, "RepConv needs k=3, got ", k);
  Y7_CHECK(p == 1, "RepConv needs padding 1, got ", p);
  if (deploy) {
    reparam.init(c1, c2, 3, s, 1, g, true, false);
    reparam.wname = "rbr_reparam.weight", reparam.bname = "rbr_reparam.bias";
    reparam.act = a.act, reparam.alpha = a.alpha;
    return;
  }
  has_identity = (c1 == c2 && s == 1);
  if (has_identity) identity.init(c1);
  dense.init(c1, c2, 3, s, 1, g, false, true);
  dense.wname = "rbr_dense.0.weight", dense.bnprefix = "rbr_dense.1.";
  one.init(c1, c2, 1, s, 0, g, false, true);
  one.wname = "rbr_1x1.0.weight", one.bnprefix = "rbr_1x1.1.";
}

Shape RepConvLayer::out_shape(const std::vector<Shape>& in) const {
  return deploy ? reparam.out_shape(in.at(0)) : dense.out_shape(in.at(0));
}

void RepConvLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  if (deploy) {
    reparam.params(prefix, out);
    return;
  }
  // upstream registration order: rbr_identity, rbr_dense, rbr_1x1
  if (has_identity) identity.params(prefix + "rbr_identity.", out);
  dense.params(prefix, out);
  one.params(prefix, out);
}

Tensor RepConvLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "RepConv");
  if (deploy) return reparam.forward(in[0], out);
  Tensor y = ops::add(dense.forward(in[0]), one.forward(in[0]));
  if (has_identity) y = ops::add(y, identity.forward(in[0]));
  if (act.act != ops::Act::None) ops::activation_(y, act.act, act.alpha);
  return place(y, out);
}

Tensor RepConvLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "RepConv");
  if (deploy) return reparam.forward_train(in[0]);  // cfg/deploy: one conv with bias and the activation
  Tensor y = ops::add(dense.forward_train(in[0]), one.forward_train(in[0]));
  if (has_identity) y = ops::add(y, identity.forward_train(in[0]));
  return act.act == ops::Act::None ? y : ops::activation(y, act.act, act.alpha);
}

void RepConvLayer::fuse() {
  if (deploy) return;
  // upstream RepConv.fuse_repvgg_block: each branch folded with its BatchNorm, the 1x1 and the
  // identity (a 1x1 identity conv) zero-padded to 3x3, kernels and biases summed.
  std::vector<float> sc3, sh3, sc1, sh1, scid, shid;
  dense.bn.scale_shift(sc3, sh3);
  one.bn.scale_shift(sc1, sh1);
  if (has_identity) identity.scale_shift(scid, shid);
  int cin = c1 / g;
  Tensor w = Tensor::empty({c2_, cin, 3, 3});
  Tensor b = Tensor::empty({c2_});
  Tensor w3 = dense.weight.contiguous(), w1 = one.weight.contiguous();
  const float *p3 = w3.data<float>(), *p1 = w1.data<float>();
  float *pw = w.data<float>(), *pb = b.data<float>();
  for (int o = 0; o < c2_; ++o) {
    for (int i = 0; i < cin; ++i) {
      for (int t = 0; t < 9; ++t) {
        float v = p3[(int64_t(o) * cin + i) * 9 + t] * sc3[o];
        if (t == 4) {
          v = v + p1[int64_t(o) * cin + i] * sc1[o];
          if (has_identity && i == o % cin) v = v + scid[o];
        }
        pw[(int64_t(o) * cin + i) * 9 + t] = v;
      }
    }
    pb[o] = sh3[o] + sh1[o] + (has_identity ? shid[o] : 0.f);
  }
  reparam = ConvUnit();
  reparam.init(c1, c2_, 3, s, 1, g, true, false);
  reparam.wname = "rbr_reparam.weight", reparam.bname = "rbr_reparam.bias";
  reparam.act = act.act, reparam.alpha = act.alpha;
  reparam.weight = w;
  reparam.bias = b;
  dense = ConvUnit();
  one = ConvUnit();
  identity = BatchNorm();
  has_identity = false;
  deploy = true;
}

void RepConvLayer::reset_caches() {
  dense.reset_cache();
  one.reset_cache();
  reparam.reset_cache();
}

double RepConvLayer::macs(const std::vector<Shape>& in) const {
  if (deploy) return reparam.macs(in.at(0));
  return dense.macs(in.at(0)) + one.macs(in.at(0));
}

int RepConvLayer::num_modules() const {
  // RepConv, act, then either rbr_reparam or rbr_identity? + 2 x (Sequential, Conv2d, BatchNorm2d)
  return deploy ? 3 : 2 + (has_identity ? 1 : 0) + 6;
}

void RepConvLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  if (deploy) {
    init_conv(reparam, rng);
    return;
  }
  init_conv(dense, rng);
  init_conv(one, rng);
  if (has_identity) identity.init(c1);
}

// ---------------------------------------------------------------- pooling, upsample, concat...

Tensor PoolLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "MaxPool2d");
  return ops::max_pool2d(in[0], k, s, p, out);
}

Shape PoolLayer::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in.at(0);
  Y7_CHECK(x.size() == 4, "max pooling input must be 4-D, got ", shape_str(x));
  Y7_CHECK(x[2] + 2 * p >= k && x[3] + 2 * p >= k, "input ", shape_str(x), " too small for ", k, "x", k,
           " max pooling");
  return {x[0], x[1], (x[2] + 2 * p - k) / s + 1, (x[3] + 2 * p - k) / s + 1};
}

Tensor UpsampleLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "Upsample");
  return ops::upsample_nearest2d(in[0], scale, out);
}

Shape UpsampleLayer::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in.at(0);
  Y7_CHECK(x.size() == 4, "upsample input must be 4-D, got ", shape_str(x));
  return {x[0], x[1], x[2] * scale, x[3] * scale};
}

Tensor ConcatLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  Y7_CHECK(!in.empty(), "Concat: no inputs");
  if (out && out->defined()) {
    // Copy each input into its slice of *out; inputs already written there in place (a producer
    // that was given that slice as its output) are recognised by place() and not copied.
    std::vector<Shape> shapes;
    for (auto& t : in) shapes.push_back(t.sizes());
    Shape os = out_shape(shapes);
    Y7_CHECK(os == out->sizes(), "Concat: output ", shape_str(out->sizes()), ", expected ", shape_str(os));
    int64_t d = dim < 0 ? dim + int64_t(os.size()) : dim, off = 0;
    for (auto& t : in) {
      Tensor s = out->slice(d, off, off + t.size(d));
      place(t, &s);
      off += t.size(d);
    }
    return *out;
  }
  return place(ops::concat(in, dim), out);
}

Shape ConcatLayer::out_shape(const std::vector<Shape>& in) const {
  Y7_CHECK(!in.empty(), "Concat: no inputs");
  Shape o = in[0];
  int64_t r = int64_t(o.size());
  int64_t dd = dim < 0 ? dim + r : dim;
  Y7_CHECK(dd >= 0 && dd < r, "Concat: dimension ", dim, " out of range for ", shape_str(o));
  for (size_t i = 1; i < in.size(); ++i) {
    Y7_CHECK(in[i].size() == o.size(), "Concat: inputs ", shape_str(in[0]), " and ", shape_str(in[i]));
    for (int64_t j = 0; j < r; ++j)
      Y7_CHECK(j == dd || in[i][j] == in[0][j], "Concat: inputs ", shape_str(in[0]), " and ",
               shape_str(in[i]), " differ outside dimension ", dd);
    o[dd] += in[i][dd];
  }
  return o;
}

Tensor ShortcutLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  Y7_CHECK(in.size() >= 2, "Shortcut: needs 2 inputs");
  return place(ops::add(in[0], in[1]), out);
}

Shape ShortcutLayer::out_shape(const std::vector<Shape>& in) const {
  Y7_CHECK(in.size() >= 2, "Shortcut: needs 2 inputs");
  Y7_CHECK(in[0] == in[1], "Shortcut: inputs ", shape_str(in[0]), " and ", shape_str(in[1]), " differ");
  return in[0];
}

Tensor ReOrgLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "ReOrg");
  Tensor y = ops::reorg(in[0]);
  if (!out && in[0].size(1) > 1 && in[0].stride(1) == 1) y = to_channels_last(y);  // keep the format
  return place(y, out);
}

Tensor ReOrgLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "ReOrg");
  return ops::reorg(in[0]);
}

Shape ReOrgLayer::out_shape(const std::vector<Shape>& in) const {
  const Shape& x = in.at(0);
  Y7_CHECK(x.size() == 4, "ReOrg input must be 4-D, got ", shape_str(x));
  // x[..., ::2, ::2] etc.: every piece must have the same size, i.e. even H and W
  Y7_CHECK(x[2] % 2 == 0 && x[3] % 2 == 0, "ReOrg needs an even height and width, got ", shape_str(x));
  return {x[0], 4 * x[1], x[2] / 2, x[3] / 2};
}

// ---------------------------------------------------------------- DownC

DownCLayer::DownCLayer(int c1, int c2_, int k_) : k(k_) {
  Y7_CHECK(c2_ >= 2, "DownC: c2=", c2_, " too small");
  cv1.init(c1, c1, 1, 1, 0, 1, false, true);
  cv2.init(c1, c2_ / 2, 3, k, 1, 1, false, true);
  cv3.init(c1, c2_ / 2, 1, 1, 0, 1, false, true);
  int i = 1;
  for (ConvUnit* c : {&cv1, &cv2, &cv3}) {
    std::string p = "cv" + std::to_string(i++) + ".";
    c->wname = p + "conv.weight", c->bname = p + "conv.bias", c->bnprefix = p + "bn.";
    c->act = ops::Act::SiLU;
  }
}

Shape DownCLayer::out_shape(const std::vector<Shape>& in) const {
  Shape a = cv2.out_shape(cv1.out_shape(in.at(0)));
  const Shape& x = in.at(0);
  Y7_CHECK(x[2] >= k && x[3] >= k, "DownC: input ", shape_str(x), " too small");
  Shape b = cv3.out_shape({x[0], x[1], (x[2] - k) / k + 1, (x[3] - k) / k + 1});
  Y7_CHECK(a[2] == b[2] && a[3] == b[3], "DownC: branch shapes ", shape_str(a), " and ", shape_str(b),
           " differ (odd input size ", shape_str(x), ")");
  return {a[0], a[1] + b[1], a[2], a[3]};
}

Tensor DownCLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "DownC");
  Shape os = out_shape({in[0].sizes()});
  Tensor buf = (out && out->defined()) ? *out : empty_like_format(os, in[0]);
  int64_t h = cv2.c2;
  Tensor s0 = buf.slice(1, 0, h), s1 = buf.slice(1, h, os[1]);
  cv2.forward(cv1.forward(in[0]), &s0);
  cv3.forward(ops::max_pool2d(in[0], k, k, 0), &s1);
  if (out && !out->defined()) *out = buf;
  return buf;
}

Tensor DownCLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "DownC");
  return ops::concat({cv2.forward_train(cv1.forward_train(in[0])),
                      cv3.forward_train(ops::max_pool2d(in[0], k, k, 0))}, 1);
}

void DownCLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  cv1.params(prefix, out);
  cv2.params(prefix, out);
  cv3.params(prefix, out);
}

void DownCLayer::fuse() {
  cv1.fuse_bn();
  cv2.fuse_bn();
  cv3.fuse_bn();
}

void DownCLayer::reset_caches() {
  cv1.reset_cache();
  cv2.reset_cache();
  cv3.reset_cache();
}

double DownCLayer::macs(const std::vector<Shape>& in) const {
  const Shape& x = in.at(0);
  Shape p = {x[0], x[1], (x[2] - k) / k + 1, (x[3] - k) / k + 1};
  return cv1.macs(x) + cv2.macs(cv1.out_shape(x)) + cv3.macs(p);
}

void DownCLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  init_conv(cv1, rng);
  init_conv(cv2, rng);
  init_conv(cv3, rng);
}

// ---------------------------------------------------------------- SPPCSPC

SPPCSPCLayer::SPPCSPCLayer(int c1, int c2_, double e, std::vector<int> ks_) : ks(std::move(ks_)) {
  int c_ = int(2 * c2_ * e);
  Y7_CHECK(c_ > 0, "SPPCSPC: hidden channels ", c_);
  for (int kk : ks) Y7_CHECK(kk > 0 && kk % 2 == 1, "SPPCSPC: pooling kernel ", kk, " must be odd");
  int nk = int(ks.size());
  cv[0].init(c1, c_, 1, 1, 0, 1, false, true);
  cv[1].init(c1, c_, 1, 1, 0, 1, false, true);
  cv[2].init(c_, c_, 3, 1, 1, 1, false, true);
  cv[3].init(c_, c_, 1, 1, 0, 1, false, true);
  cv[4].init((nk + 1) * c_, c_, 1, 1, 0, 1, false, true);
  cv[5].init(c_, c_, 3, 1, 1, 1, false, true);
  cv[6].init(2 * c_, c2_, 1, 1, 0, 1, false, true);
  for (int i = 0; i < 7; ++i) {
    std::string p = "cv" + std::to_string(i + 1) + ".";
    cv[i].wname = p + "conv.weight", cv[i].bname = p + "conv.bias", cv[i].bnprefix = p + "bn.";
    cv[i].act = ops::Act::SiLU;
  }
}

Shape SPPCSPCLayer::out_shape(const std::vector<Shape>& in) const {
  Shape x1 = cv[3].out_shape(cv[2].out_shape(cv[0].out_shape(in.at(0))));
  Shape cat = x1;
  cat[1] *= int64_t(ks.size()) + 1;
  Shape y1 = cv[5].out_shape(cv[4].out_shape(cat));
  Shape y2 = cv[1].out_shape(in.at(0));
  return cv[6].out_shape({y1[0], y1[1] + y2[1], y1[2], y1[3]});
}

Tensor SPPCSPCLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "SPPCSPC");
  const Tensor& x = in[0];
  Shape s1 = cv[0].out_shape(x.sizes());
  int64_t c_ = s1[1], nk = int64_t(ks.size());
  // x1 = cv4(cv3(cv1(x))); y1 = cv6(cv5(cat[x1, pools(x1)])); y2 = cv2(x); cv7(cat[y1, y2])
  Tensor cat1 = empty_like_format({s1[0], (nk + 1) * c_, s1[2], s1[3]}, x);
  Tensor x1 = cat1.slice(1, 0, c_);
  cv[3].forward(cv[2].forward(cv[0].forward(x)), &x1);
  for (int64_t i = 0; i < nk; ++i) {
    Tensor o = cat1.slice(1, (i + 1) * c_, (i + 2) * c_);
    ops::max_pool2d(x1, ks[i], 1, ks[i] / 2, &o);
  }
  Tensor cat2 = empty_like_format({s1[0], 2 * c_, s1[2], s1[3]}, x);
  Tensor y1 = cat2.slice(1, 0, c_), y2 = cat2.slice(1, c_, 2 * c_);
  cv[5].forward(cv[4].forward(cat1), &y1);
  cv[1].forward(x, &y2);
  return cv[6].forward(cat2, out);
}

Tensor SPPCSPCLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "SPPCSPC");
  const Tensor& x = in[0];
  Tensor x1 = cv[3].forward_train(cv[2].forward_train(cv[0].forward_train(x)));
  std::vector<Tensor> parts{x1};
  for (int k : ks) parts.push_back(ops::max_pool2d(x1, k, 1, k / 2));
  Tensor y1 = cv[5].forward_train(cv[4].forward_train(ops::concat(parts, 1)));
  Tensor y2 = cv[1].forward_train(x);
  return cv[6].forward_train(ops::concat({y1, y2}, 1));
}

void SPPCSPCLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  for (auto& c : cv) c.params(prefix, out);
}

void SPPCSPCLayer::fuse() {
  for (auto& c : cv) c.fuse_bn();
}

void SPPCSPCLayer::reset_caches() {
  for (auto& c : cv) c.reset_cache();
}

double SPPCSPCLayer::macs(const std::vector<Shape>& in) const {
  const Shape& x = in.at(0);
  Shape a = cv[0].out_shape(x), b = cv[2].out_shape(a), x1 = cv[3].out_shape(b);
  Shape cat = x1;
  cat[1] *= int64_t(ks.size()) + 1;
  Shape y = cv[4].out_shape(cat), y1 = cv[5].out_shape(y);
  Shape cat2 = y1;
  cat2[1] *= 2;
  return cv[0].macs(x) + cv[1].macs(x) + cv[2].macs(a) + cv[3].macs(b) + cv[4].macs(cat) + cv[5].macs(y) +
         cv[6].macs(cat2);
}

void SPPCSPCLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  for (auto& c : cv) init_conv(c, rng);
}

// ---------------------------------------------------------------- Implicit, Conv2d, BatchNorm2d

ImplicitLayer::ImplicitLayer(int c, bool m) : mul(m) {
  Y7_CHECK(c > 0, "Implicit: channel ", c);
  implicit = Tensor::full({1, c, 1, 1}, m ? 1.0 : 0.0);
}

Tensor ImplicitLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, mul ? "ImplicitM" : "ImplicitA");
  return place(mul ? ops::mul(implicit, in[0]) : ops::add(implicit, in[0]), out);
}

void ImplicitLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  out.push_back({prefix + "implicit", &implicit, false});
}

void ImplicitLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  normal_fill(implicit, mul ? 1.0 : 0.0, 0.02, rng);
}

Conv2dLayer::Conv2dLayer(int c1, int c2_, int k, int s, int p, int d, int g, bool bias) {
  cv.init(c1, c2_, k, s, p, g, bias, false);
  cv.d = d;
  cv.act = ops::Act::None;
}

Tensor Conv2dLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "Conv2d");
  return cv.forward(in[0], out);
}

Tensor Conv2dLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "Conv2d");
  return cv.forward_train(in[0]);
}

void Conv2dLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  init_conv(cv, rng);
}

Tensor BatchNormLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  check_input(in, 1, "BatchNorm2d");
  return place(bn.forward(in[0]), out);
}

Tensor BatchNormLayer::forward_train(const std::vector<Tensor>& in) {
  check_input(in, 1, "BatchNorm2d");
  return bn.forward_train(in[0]);
}

// ---------------------------------------------------------------- Sequential

Tensor SequentialLayer::forward_train(const std::vector<Tensor>& in) {
  Tensor x = in.at(0);
  for (auto& it : items) x = it->forward_train({x});
  return x;
}

Tensor SequentialLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  Tensor x = in.at(0);
  for (size_t i = 0; i < items.size(); ++i)
    x = items[i]->forward({x}, i + 1 == items.size() ? out : nullptr);
  return x;
}

Shape SequentialLayer::out_shape(const std::vector<Shape>& in) const {
  Shape s = in.at(0);
  for (auto& it : items) s = it->out_shape({s});
  return s;
}

void SequentialLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  for (size_t i = 0; i < items.size(); ++i) items[i]->params(prefix + std::to_string(i) + ".", out);
}

void SequentialLayer::fuse() {
  for (auto& it : items) it->fuse();
}

void SequentialLayer::reset_caches() {
  for (auto& it : items) it->reset_caches();
}

double SequentialLayer::macs(const std::vector<Shape>& in) const {
  double m = 0;
  Shape s = in.at(0);
  for (auto& it : items) {
    m += it->macs({s});
    s = it->out_shape({s});
  }
  return m;
}

int SequentialLayer::num_modules() const {
  int n = 1;
  for (auto& it : items) n += it->num_modules();
  // model.modules() lists a shared module once
  if (shared_act && !items.empty()) n -= int(items.size()) - 1;
  return n;
}

void SequentialLayer::init_weights(uint64_t seed) {
  for (size_t i = 0; i < items.size(); ++i) items[i]->init_weights(seed * 1000003ull + i);
}

// ---------------------------------------------------------------- Detect

DetectLayer::DetectLayer(Kind k, int nc_, const std::vector<std::vector<float>>& anchors_, const std::vector<int>& ch_)
    : kind(k), nc(nc_), ch(ch_) {
  Y7_CHECK(nc > 0, "Detect: nc must be positive, got ", nc);
  no = nc + 5;
  nl = int(anchors_.size());
  Y7_CHECK(nl > 0, "Detect: no anchors");
  Y7_CHECK(anchors_[0].size() >= 2 && anchors_[0].size() % 2 == 0, "Detect: anchors must be (w,h) pairs");
  na = int(anchors_[0].size() / 2);
  for (auto& a : anchors_) {
    Y7_CHECK(int(a.size()) == 2 * na, "Detect: every level needs ", na, " anchors");
    anchors_px.insert(anchors_px.end(), a.begin(), a.end());
  }
  int nlead = int(ch.size());
  if (kind == Aux) {
    Y7_CHECK(int(ch.size()) == 2 * nl, "IAuxDetect: ", nl, " anchor levels need ", 2 * nl, " inputs, got ",
             ch.size());
    nlead = nl;
  } else {
    Y7_CHECK(int(ch.size()) == nl, "Detect: ", nl, " anchor levels but ", ch.size(), " inputs");
  }
  auto mk = [&](int c, const std::string& p) {
    ConvUnit u;
    u.init(c, no * na, 1, 1, 0, 1, true, false);
    u.wname = p + "weight", u.bname = p + "bias";
    u.act = ops::Act::None;
    return u;
  };
  for (int i = 0; i < nlead; ++i) m.push_back(mk(ch[i], "m." + std::to_string(i) + "."));
  if (kind == Aux)
    for (int i = 0; i < nl; ++i) m2.push_back(mk(ch[nl + i], "m2." + std::to_string(i) + "."));
  if (kind != Plain) {
    for (int i = 0; i < nlead; ++i) {
      ia.push_back(Tensor::zeros({1, ch[i], 1, 1}));
      im.push_back(Tensor::full({1, no * na, 1, 1}, 1.0));
    }
  }
  anchors = Tensor::empty({nl, na, 2});
  anchor_grid = Tensor::empty({nl, 1, na, 1, 1, 2});
  std::copy(anchors_px.begin(), anchors_px.end(), anchors.data<float>());
  std::copy(anchors_px.begin(), anchors_px.end(), anchor_grid.data<float>());
}

void DetectLayer::set_stride(const std::vector<float>& s) {
  Y7_CHECK(int(s.size()) == nl, "Detect: ", s.size(), " strides for ", nl, " levels");
  stride = s;
  // check_anchor_order: reverse the levels when anchor area order disagrees with stride order
  auto area = [&](int l, int a) { return anchors_px[(l * na + a) * 2] * anchors_px[(l * na + a) * 2 + 1]; };
  float da = area(nl - 1, na - 1) - area(0, 0);
  float ds = s.back() - s.front();
  auto sign = [](float v) { return (v > 0) - (v < 0); };
  std::vector<float> a = anchors_px;
  if (sign(da) != sign(ds)) {
    for (int l = 0; l < nl; ++l)
      std::copy(anchors_px.begin() + (nl - 1 - l) * na * 2, anchors_px.begin() + (nl - l) * na * 2,
                a.begin() + l * na * 2);
  }
  float* pa = anchors.data<float>();
  float* pg = anchor_grid.data<float>();
  for (int l = 0; l < nl; ++l)
    for (int j = 0; j < na * 2; ++j) {
      pg[l * na * 2 + j] = a[l * na * 2 + j];
      pa[l * na * 2 + j] = a[l * na * 2 + j] / s[l];
    }
}

void DetectLayer::params(const std::string& prefix, std::vector<ParamRef>& out) {
  // upstream registration order: buffers anchors, anchor_grid; then m, (m2), ia, im
  out.push_back({prefix + "anchors", &anchors, true});
  out.push_back({prefix + "anchor_grid", &anchor_grid, true});
  for (auto& u : m) u.params(prefix, out);
  for (auto& u : m2) u.params(prefix, out);
  for (size_t i = 0; i < ia.size(); ++i) out.push_back({prefix + "ia." + std::to_string(i) + ".implicit", &ia[i], false});
  for (size_t i = 0; i < im.size(); ++i) out.push_back({prefix + "im." + std::to_string(i) + ".implicit", &im[i], false});
}

Tensor DetectLayer::detect(const std::vector<Tensor>& lead, std::vector<Tensor>& raw) {
  Y7_CHECK(int(lead.size()) == nl, "Detect: expected ", nl, " inputs, got ", lead.size());
  Y7_CHECK(int(stride.size()) == nl, "Detect: strides not set");
  raw.assign(nl, Tensor());
  std::vector<Tensor> preds(nl);
  Tensor ag = anchor_grid.contiguous();
  for (int i = 0; i < nl; ++i) {
    Tensor r;
    if (kind != Plain && !fused) {
      r = m[i].forward(ops::add(ia[i], lead[i]));  // self.m[i](self.ia[i](x[i]))
      r = ops::mul(im[i], r);                      // self.im[i](x[i])
    } else {
      r = m[i].forward(lead[i]);
    }
    Tensor agi = ag.select(0, i).reshape({na, 2});
    preds[i] = ops::detect_decode(r, na, no, stride[i], agi, &raw[i]);
  }
  return nl == 1 ? preds[0] : ops::concat(preds, 1);
}

std::vector<Tensor> DetectLayer::forward_train_heads(const std::vector<Tensor>& in) {
  const int nin = kind == Aux ? 2 * nl : nl;
  Y7_CHECK(int(in.size()) == nin, "Detect: expected ", nin, " inputs, got ", in.size());
  Y7_CHECK(!fused, "Detect: a fused head cannot be trained");
  // x(bs,na*no,ny,nx) -> view(bs,na,no,ny,nx).permute(0,1,3,4,2).contiguous()
  auto to_map = [&](const Tensor& r) {
    Tensor v = ops::reshape(r, {r.size(0), na, no, r.size(2), r.size(3)});
    return ops::contiguous(ops::permute(v, {0, 1, 3, 4, 2}));
  };
  std::vector<Tensor> out;
  for (int i = 0; i < nl; ++i) {
    Tensor r;
    if (kind != Plain) {
      r = m[i].forward_train(ops::add(ia[i], in[i]));
      r = ops::mul(im[i], r);
    } else {
      r = m[i].forward_train(in[i]);
    }
    out.push_back(to_map(r));
  }
  if (kind == Aux)
    for (int i = 0; i < nl; ++i) out.push_back(to_map(m2[i].forward_train(in[nl + i])));
  return out;
}

Tensor DetectLayer::forward(const std::vector<Tensor>& in, Tensor* out) {
  fail("Detect: use Model::forward");
}

Shape DetectLayer::out_shape(const std::vector<Shape>& in) const {
  int64_t n = 0;
  for (int i = 0; i < nl; ++i) {
    Y7_CHECK(in.at(i).size() == 4 && in[i][1] == ch[i], "Detect: level ", i, " input ", shape_str(in[i]),
             ", expected ", ch[i], " channels");
    n += int64_t(na) * in[i][2] * in[i][3];
  }
  return {in.at(0)[0], n, no};
}

void DetectLayer::fuse() {
  if (fused) return;
  fused = true;
  if (kind == Plain) return;
  // IDetect.fuse: bias += W @ implicitA; then bias *= implicitM and weight rows *= implicitM.
  for (size_t i = 0; i < ia.size(); ++i) {
    ConvUnit& u = m[i];
    Tensor w = u.weight.contiguous().clone(), b = u.bias.contiguous().clone();
    Tensor a = ia[i].contiguous(), mm = im[i].contiguous();
    int co = u.c2, ci = u.c1;
    float *pw = w.data<float>(), *pb = b.data<float>();
    const float *pa = a.data<float>(), *pm = mm.data<float>();
    for (int o = 0; o < co; ++o) {
      float acc = 0.f;
      for (int k = 0; k < ci; ++k) acc += pw[int64_t(o) * ci + k] * pa[k];
      pb[o] += acc;
    }
    for (int o = 0; o < co; ++o) {
      pb[o] *= pm[o];
      for (int k = 0; k < ci; ++k) pw[int64_t(o) * ci + k] *= pm[o];
    }
    u.weight = w;
    u.bias = b;
    u.reset_cache();
  }
}

void DetectLayer::reset_caches() {
  for (auto& u : m) u.reset_cache();
  for (auto& u : m2) u.reset_cache();
}

double DetectLayer::macs(const std::vector<Shape>& in) const {
  double s = 0;
  for (size_t i = 0; i < m.size(); ++i) s += m[i].macs(in.at(i));
  for (size_t i = 0; i < m2.size(); ++i) s += m2[i].macs(in.at(nl + i));
  return s;
}

int DetectLayer::num_modules() const {
  int n = 2 + int(m.size());  // Detect, ModuleList m, convs
  if (kind == Aux) n += 1 + int(m2.size());
  if (kind != Plain) n += 2 + int(ia.size() + im.size());
  return n;
}

void DetectLayer::init_weights(uint64_t seed) {
  Rng rng(seed);
  for (auto& u : m) init_conv(u, rng);
  for (auto& u : m2) init_conv(u, rng);
  for (auto& t : ia) normal_fill(t, 0.0, 0.02, rng);
  for (auto& t : im) normal_fill(t, 1.0, 0.02, rng);
  // _initialize_biases / _initialize_aux_biases: obj += log(8/(640/s)^2), cls += log(0.6/(nc-0.99))
  auto prior = [&](ConvUnit& u, float s) {
    float* b = u.bias.data<float>();
    for (int a = 0; a < na; ++a) {
      b[a * no + 4] += float(std::log(8.0 / std::pow(640.0 / s, 2)));
      for (int c = 5; c < no; ++c) b[a * no + c] += float(std::log(0.6 / (nc - 0.99)));
    }
  };
  for (size_t i = 0; i < m.size() && i < stride.size(); ++i) prior(m[i], stride[i]);
  for (size_t i = 0; i < m2.size() && i < stride.size(); ++i) prior(m2[i], stride[i]);
}

}  // namespace y7::graph
