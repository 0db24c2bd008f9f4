// The building blocks of a YOLOv7 network: one Layer per row of the cfg's backbone+head list
// (Conv, RepConv, MP, SP, SPPCSPC, Concat, nn.Upsample, DownC, ReOrg, Shortcut, ImplicitA/M,
// nn.Conv2d, nn.BatchNorm2d, Detect/IDetect/IAuxDetect), each exposing its tensors under the same
// names as upstream's state_dict, an eval-mode forward, shape inference and fusion.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace y7::graph {

// BatchNorm2d eps: upstream's initialize_weights() sets 1e-3 on every BatchNorm2d.
inline constexpr double kBnEps = 1e-3;
// BatchNorm2d momentum in training: upstream's initialize_weights() sets 0.03.
inline constexpr double kBnMomentum = 0.03;

// A named parameter or buffer (points into the owning module).
struct ParamRef {
  std::string name;
  Tensor* t;
  bool buffer;  // running stats, num_batches_tracked, anchors: not counted as parameters
};

// The activation module of a Conv/RepConv (SiLU by default, nn.LeakyReLU(a) when given).
struct ActSpec {
  ops::Act act = ops::Act::SiLU;
  float alpha = 0.1f;
  std::string repr() const;  // as torch prints the module: "SiLU()", "LeakyReLU(negative_slope=0.1)"
};

// BatchNorm2d in eval mode: weight, bias, running_mean, running_var, num_batches_tracked.
struct BatchNorm {
  Tensor weight, bias, mean, var, nbt;
  void init(int c);
  void params(const std::string& prefix, std::vector<ParamRef>& out);
  Tensor forward(const Tensor& x) const;
  // Training mode: batch statistics, running stats and num_batches_tracked updated; recorded
  // for autograd when weight/bias/x require grad.
  Tensor forward_train(const Tensor& x);
  // Per-channel scale gamma/sqrt(var+eps) and shift beta - gamma*mean/sqrt(var+eps), in float32.
  void scale_shift(std::vector<float>& scale, std::vector<float>& shift) const;
};

// A convolution with optional bias, optional BatchNorm after it, and an activation. The
// unfused forward is conv -> batch_norm_eval -> act (upstream's eval path); fuse_bn() folds the
// BatchNorm into weight/bias so the forward becomes a single conv2d with fused bias+act.
struct ConvUnit {
  int c1 = 0, c2 = 0, k = 1, s = 1, p = 0, d = 1, g = 1;
  Tensor weight, bias;  // bias undefined when absent
  bool has_bn = false;
  BatchNorm bn;
  ops::Act act = ops::Act::None;
  float alpha = 0.1f;
  std::string wname = "weight", bname = "bias", bnprefix;  // names relative to the module prefix
  std::unique_ptr<ops::ConvCache> cache;

  void init(int c1, int c2, int k, int s, int p, int g, bool bias, bool bn);
  void params(const std::string& prefix, std::vector<ParamRef>& out);
  Tensor forward(const Tensor& x, Tensor* out = nullptr);
  // Training-mode forward (BatchNorm on batch statistics), connected to the autograd graph.
  Tensor forward_train(const Tensor& x);
  void fuse_bn();
  Shape out_shape(const Shape& in) const;
  double macs(const Shape& in) const;  // multiply-accumulates of the convolution
  void reset_cache();
};

class Layer {
 public:
  virtual ~Layer() = default;
  int index = 0;
  std::vector<int> from;     // as written in the cfg (-1 = previous layer)
  bool from_list = false;    // the cfg gave a list
  int n = 1;                 // repeats, as upstream prints it
  std::string type;          // upstream's module type string
  std::string args;          // upstream's printed argument list
  int c2 = 0;                // output channels (upstream's ch bookkeeping)

  // Eval-mode forward. When `out` is given, the result is written into *out (possibly a strided
  // channel slice of a concat buffer) and *out is returned.
  virtual Tensor forward(const std::vector<Tensor>& in, Tensor* out) = 0;
  // Training-mode forward: fresh results only (no `out` slices), BatchNorm on batch statistics
  // (running stats updated), every op recorded for autograd. The default runs the eval forward,
  // which is right for layers without BatchNorm whose forward is plain autograd-aware ops.
  virtual Tensor forward_train(const std::vector<Tensor>& in) { return forward(in, nullptr); }
  virtual Shape out_shape(const std::vector<Shape>& in) const = 0;
  virtual void params(const std::string& prefix, std::vector<ParamRef>& out) {}
  virtual void fuse() {}
  virtual void reset_caches() {}
  virtual double macs(const std::vector<Shape>& in) const { return 0; }
  // Number of torch modules this layer contributes to model.modules() (upstream's "layers").
  virtual int num_modules() const { return 1; }
  virtual void init_weights(uint64_t seed) {}
};

// Writes y into *out when given (returns *out), else returns y.
Tensor place(const Tensor& y, Tensor* out);

// Activation memory format. The oneDNN convolutions run channels-last, so the graph keeps its
// activations channels-last (NHWC memory, NCHW sizes) to avoid a reorder around every conv.
bool is_channels_last(const Tensor& t);
// A fresh 4-D float32 tensor of `shape` in the memory format of `like`.
Tensor empty_like_format(const Shape& shape, const Tensor& like);
Tensor to_channels_last(const Tensor& t);

// ---------------------------------------------------------------- concrete layers

class ConvLayer : public Layer {  // models.common.Conv
 public:
  ConvUnit cv;
  ConvLayer(int c1, int c2, int k, int s, int p, int g, ActSpec act);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override { return cv.out_shape(in.at(0)); }
  void params(const std::string& prefix, std::vector<ParamRef>& out) override { cv.params(prefix, out); }
  void fuse() override { cv.fuse_bn(); }
  void reset_caches() override { cv.reset_cache(); }
  double macs(const std::vector<Shape>& in) const override { return cv.macs(in.at(0)); }
  int num_modules() const override { return cv.has_bn ? 4 : 3; }
  void init_weights(uint64_t seed) override;
};

class RepConvLayer : public Layer {  // models.common.RepConv
 public:
  int c1, c2_, s, g;
  ActSpec act;
  bool deploy = false;            // rbr_reparam only
  ConvUnit dense, one, reparam;   // rbr_dense (3x3+BN), rbr_1x1 (1x1+BN), rbr_reparam
  bool has_identity = false;
  BatchNorm identity;             // rbr_identity
  RepConvLayer(int c1, int c2, int k, int s, int p, int g, ActSpec act, bool deploy);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void fuse() override;
  void reset_caches() override;
  double macs(const std::vector<Shape>& in) const override;
  int num_modules() const override;
  void init_weights(uint64_t seed) override;
};

class PoolLayer : public Layer {  // models.common.MP / SP
 public:
  int k, s, p;
  PoolLayer(int k, int s, int p) : k(k), s(s), p(p) {}
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  int num_modules() const override { return 2; }
};

class UpsampleLayer : public Layer {  // nn.Upsample(None, scale, 'nearest')
 public:
  int scale;
  explicit UpsampleLayer(int scale) : scale(scale) {}
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
};

class ConcatLayer : public Layer {  // models.common.Concat
 public:
  int dim;
  explicit ConcatLayer(int dim) : dim(dim) {}
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
};

class ShortcutLayer : public Layer {  // models.common.Shortcut: x[0] + x[1]
 public:
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
};

class ReOrgLayer : public Layer {  // models.common.ReOrg
 public:
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
};

class DownCLayer : public Layer {  // models.common.DownC
 public:
  int k;
  ConvUnit cv1, cv2, cv3;
  DownCLayer(int c1, int c2, int k);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void fuse() override;
  void reset_caches() override;
  double macs(const std::vector<Shape>& in) const override;
  int num_modules() const override { return 2 + 3 * (cv1.has_bn ? 4 : 3); }
  void init_weights(uint64_t seed) override;
};

class SPPCSPCLayer : public Layer {  // models.common.SPPCSPC
 public:
  std::vector<int> ks;
  ConvUnit cv[7];
  SPPCSPCLayer(int c1, int c2, double e, std::vector<int> ks);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void fuse() override;
  void reset_caches() override;
  double macs(const std::vector<Shape>& in) const override;
  int num_modules() const override { return 2 + int(ks.size()) + 7 * (cv[0].has_bn ? 4 : 3); }
  void init_weights(uint64_t seed) override;
};

class ImplicitLayer : public Layer {  // models.common.ImplicitA (add) / ImplicitM (mul)
 public:
  bool mul;
  Tensor implicit;  // [1,C,1,1]
  ImplicitLayer(int c, bool mul);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void init_weights(uint64_t seed) override;
};

class Conv2dLayer : public Layer {  // torch.nn.Conv2d as a cfg row
 public:
  ConvUnit cv;
  Conv2dLayer(int c1, int c2, int k, int s, int p, int d, int g, bool bias);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override { return cv.out_shape(in.at(0)); }
  void params(const std::string& prefix, std::vector<ParamRef>& out) override { cv.params(prefix, out); }
  void reset_caches() override { cv.reset_cache(); }
  double macs(const std::vector<Shape>& in) const override { return cv.macs(in.at(0)); }
  void init_weights(uint64_t seed) override;
};

class BatchNormLayer : public Layer {  // torch.nn.BatchNorm2d as a cfg row
 public:
  BatchNorm bn;
  explicit BatchNormLayer(int c) { bn.init(c); }
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  void params(const std::string& prefix, std::vector<ParamRef>& out) override { bn.params(prefix, out); }
};

// A cfg row with number > 1 for a plain module: nn.Sequential of n copies.
class SequentialLayer : public Layer {
 public:
  std::vector<std::unique_ptr<Layer>> items;
  bool shared_act = false;  // the copies share one activation module (an nn.X(...) cfg argument)
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Tensor forward_train(const std::vector<Tensor>& in) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void fuse() override;
  void reset_caches() override;
  double macs(const std::vector<Shape>& in) const override;
  int num_modules() const override;
  void init_weights(uint64_t seed) override;
};

// Detect / IDetect / IAuxDetect. Inference uses the lead heads only (m, ia, im); IAuxDetect's m2
// heads are carried as parameters.
class DetectLayer : public Layer {
 public:
  enum Kind { Plain, Implicit, Aux } kind;
  int nc, no, nl, na;
  std::vector<float> anchors_px;  // cfg anchors, [nl*na*2]
  std::vector<int> ch;            // input channels (all entries of `from`)
  std::vector<float> stride;      // per lead level, set by the builder
  std::vector<ConvUnit> m, m2;    // 1x1 convs with bias
  std::vector<Tensor> ia, im;     // [1,C,1,1] implicit vectors
  Tensor anchors, anchor_grid;    // [nl,na,2] in grid units, [nl,1,na,1,1,2] in pixels
  bool fused = false;

  DetectLayer(Kind kind, int nc, const std::vector<std::vector<float>>& anchors, const std::vector<int>& ch);
  // Runs the lead heads on their inputs: decoded predictions [B,N,no] and raw maps [B,na,H,W,no].
  Tensor detect(const std::vector<Tensor>& lead, std::vector<Tensor>& raw);
  // Training-mode head (upstream's Detect/IDetect/IAuxDetect in training): the raw maps
  // [B,na,H,W,no] of every level, lead levels then (IAuxDetect) the aux levels; `in` holds all
  // of the layer's inputs (lead, then aux).
  std::vector<Tensor> forward_train_heads(const std::vector<Tensor>& in);
  Tensor forward(const std::vector<Tensor>& in, Tensor* out) override;
  Shape out_shape(const std::vector<Shape>& in) const override;
  void params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void fuse() override;
  void reset_caches() override;
  double macs(const std::vector<Shape>& in) const override;
  int num_modules() const override;
  void init_weights(uint64_t seed) override;
  // Buffers from the cfg anchors and the strides (anchors / stride), with upstream's
  // check_anchor_order() flip.
  void set_stride(const std::vector<float>& s);
};

}  // namespace y7::graph
