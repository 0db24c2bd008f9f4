// The op layer: every tensor operation the models use, one function each. Each op's math lives in
// one file under kernels/cpu/ (forward now, backward beside it when training lands), with a plain
// reference version in kernels/cpu/reference.cpp used by tests and by builds without oneDNN.
// Tensors are NCHW-sized float32 unless stated; inputs may have any strides. Fresh results keep
// the memory format of the (first) input: channels-last in (NCHW sizes, NHWC strides) gives
// channels-last out, anything else gives plain contiguous. Channels-last is the fast layout for
// conv2d (oneDNN runs on it without reorders; see kernels/cpu/dnnl_util.h). Functions taking
// `Tensor* out` write into that preallocated tensor (which may be a strided view, e.g. a channel
// slice of a concat buffer) when it is given, and return it; if *out is an undefined Tensor, a
// fresh result is allocated and assigned to it. `out` must not overlap the inputs.
// Every shape/dtype/parameter problem throws a one-line y7::Error.
#pragma once
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace y7::ops {

enum class Act { None, SiLU, LeakyReLU, Sigmoid, Hardswish, Hardsigmoid, ReLU };
const char* act_name(Act a);

struct Conv2dParams {
  int stride = 1, pad = 0, dilation = 1, groups = 1;
  Act act = Act::None;  // fused after the bias
  float alpha = 0.1f;   // LeakyReLU slope
};

// Opaque per-layer cache (oneDNN primitive per input shape, weights reordered once). A module
// owns one; pass nullptr for a one-off call. Must be reset() when the weights change.
struct ConvCache {
  virtual ~ConvCache() = default;
  static std::unique_ptr<ConvCache> create();
  virtual void reset() = 0;
};

// y = act(conv(x, w) + b). x [N,Ci,H,W], w [Co,Ci/g,kh,kw], b [Co] or undefined.
// Groups and dilation supported; padding is symmetric (torch's int padding).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
              ConvCache* cache = nullptr, Tensor* out = nullptr);
// The portable path conv2d takes in builds without oneDNN (im2col-free packed GEMM on the
// y7::parallel_for pool); always compiled so that tests cover it in every build.
Tensor conv2d_portable(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                       Tensor* out = nullptr);

// Max pooling with -inf padding (torch semantics, floor mode).
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad, Tensor* out = nullptr);
// Nearest-neighbour upsampling by an integer factor (torch 'nearest').
Tensor upsample_nearest2d(const Tensor& x, int scale, Tensor* out = nullptr);
// Concatenation along `dim` (any rank, any strides, any dtype; all inputs the same dtype).
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// ReOrg (space-to-depth, upstream order: [::2,::2], [1::2,::2], [::2,1::2], [1::2,1::2]).
Tensor reorg(const Tensor& x);

// Elementwise activations; in-place versions modify x (contiguous or strided).
Tensor activation(const Tensor& x, Act a, float alpha = 0.1f);
void activation_(Tensor& x, Act a, float alpha = 0.1f);

// Elementwise add / mul with numpy broadcasting (same shape, or e.g. a [1,C,1,1] per-channel
// operand as ImplicitA/ImplicitM use). Result is contiguous with the broadcast shape.
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);

// BatchNorm in inference mode (running statistics), channels on dim 1 of a rank >= 2 tensor.
// weight/bias may be undefined (affine=False).
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps);

// Detect head decode for one level. raw: head conv output [N, na*no, H, W].
// Writes the permuted raw map [N,na,H,W,no] (upstream's x[i]) to *raw_out if given, and returns
// the decoded predictions [N, na*H*W, no]: sigmoid, xy = (2s-0.5+grid)*stride, wh = (2s)^2*anchor.
// anchor_grid: [na,2] in pixels. Row order of the result: anchor, then y, then x (upstream's
// y.view(bs, -1, no)). *raw_out: written into if defined (shape [N,na,H,W,no]), else assigned.
Tensor detect_decode(const Tensor& raw, int na, int no, float stride, const Tensor& anchor_grid,
                     Tensor* raw_out = nullptr);

// ---------------------------------------------------------------- training (autograd)
// Every op above records its backward (core/autograd.h) on its result when grad mode is on and an
// input requires grad; `out=` and the in-place activation_ are inference-only and refuse inputs
// that require grad. Backward kernels work on any strides and return contiguous gradients with
// the input's sizes.

// Autograd-aware views/copies (Tensor::view and friends drop autograd metadata by design).
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor contiguous(const Tensor& x);
// Sum of all elements as a [] tensor (double accumulation); mainly for tests and losses.
Tensor sum(const Tensor& x);

// BatchNorm in training mode over dims (0,2,3,...) of x: normalizes with the batch mean and the
// biased batch variance; when running_mean/running_var are defined they are updated in place as
// torch does (r = (1-momentum) r + momentum * stat, with the unbiased variance). weight/bias may
// be undefined. Upstream YOLOv7 uses momentum 0.03, eps 1e-3.
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, double momentum, double eps);

// Backward kernels (what the recorded nodes call; exposed for tests).
struct Conv2dGrads {
  Tensor dx, dw, db;
};
// gy: gradient of conv(x, w) + b (no activation) [N,Co,OH,OW].
// oneDNN convolution_backward_data / _weights (+bias) in oneDNN builds, else the portable loops.
Conv2dGrads conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_dx, bool need_dw,
                            bool need_db, const Conv2dParams& p);
// Direct loops on the y7 thread pool (always compiled, so tests cover it in every build).
Conv2dGrads conv2d_backward_portable(const Tensor& gy, const Tensor& x, const Tensor& w, bool need_dx,
                                     bool need_dw, bool need_db, const Conv2dParams& p);
Tensor activation_backward(const Tensor& gy, const Tensor& x, Act a, float alpha = 0.1f);
Tensor max_pool2d_backward(const Tensor& gy, const Tensor& x, int kernel, int stride, int pad);
Tensor upsample_nearest2d_backward(const Tensor& gy, int scale);
Tensor reorg_backward(const Tensor& gy);
// Sums g over the broadcast dims so that the result has `shape` (numpy broadcasting rules).
Tensor sum_to(const Tensor& g, const Shape& shape);
struct BatchNormGrads {
  Tensor dx, dw, db;
};
// mean/invstd: the batch statistics the forward used ([C]).
BatchNormGrads batch_norm_train_backward(const Tensor& gy, const Tensor& x, const Tensor& weight,
                                         const std::vector<double>& mean, const std::vector<double>& invstd);

namespace ref {  // plain loops, obviously correct; tests compare against these
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int pad);
Tensor upsample_nearest2d(const Tensor& x, int scale);
Tensor activation(const Tensor& x, Act a, float alpha = 0.1f);
Tensor detect_decode(const Tensor& raw, int na, int no, float stride, const Tensor& anchor_grid);
}  // namespace ref

// Scalar activation definitions shared by all implementations.
float act_scalar(Act a, float x, float alpha);

}  // namespace y7::ops
