// A flat operator graph (the "graph IR") lowered from a fused graph::Model: what the ONNX exporter
// writes, what the ONNX importer reads back, and what the quantizer instruments.
//
// Lowering expects a fused model (Model::fuse(): Conv+BN folded, RepConv re-parameterized, the
// IDetect implicit vectors folded into the head convs); lower() fuses the model first if needed.
// Every layer becomes plain nodes:
//   Conv/RepConv/Conv2d/DownC/SPPCSPC convs -> Conv (weight [O,I/g,kh,kw], bias [O] always defined)
//   followed by a separate Act node when the module has an activation; MP/SP and the pools inside
//   DownC/SPPCSPC -> MaxPool; nn.Upsample -> Upsample; Concat -> Concat; Shortcut -> Add (2 inputs);
//   ImplicitA / ImplicitM rows -> Add / Mul by a constant `weight` [1,C,1,1] (1 input); a lone
//   nn.BatchNorm2d row -> Mul by its per-channel scale then Add of its shift (constants [1,C,1,1]);
//   ReOrg -> ReOrg; nn.Sequential rows -> their items in order; Detect/IDetect/IAuxDetect -> the
//   lead head 1x1 convs "model.<i>.m.<l>" (IAuxDetect's aux heads are dropped, as in inference).
// Layers that the lead outputs do not need are dropped.
//
// Node names are unique and follow upstream's module paths: "model.3.conv" (a Conv's conv),
// "model.3.act" (its activation), "model.51.cv1.conv", "model.77.rbr_reparam", "model.105.m.0",
// "model.7" (a single-node layer: MaxPool, Concat, Upsample, ...), "model.4.1.conv" (Sequential).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace y7::graph {

class Model;

enum class IrOp { Input, Conv, Act, MaxPool, Upsample, Concat, Add, Mul, ReOrg };
const char* ir_op_name(IrOp op);

struct IrNode {
  IrOp op = IrOp::Input;
  std::string name;
  std::vector<int> in;  // producer node indices (all < this node's index)
  // Conv: weight [O, I/g, kh, kw] and bias [O]. Add/Mul with ONE input: the constant second
  // operand [1,C,1,1] in `weight` (bias undefined). Add/Mul with two inputs: elementwise.
  Tensor weight, bias;
  int stride = 1, pad = 0, dilation = 1, groups = 1;  // Conv (square kernel, symmetric padding)
  ops::Act act = ops::Act::None;                      // Act
  float alpha = 0.1f;                                 // LeakyReLU slope
  int k = 1, s = 1, p = 0;                            // MaxPool (torch semantics, -inf padding, floor)
  int scale = 2;                                      // Upsample (nearest, integer factor)
  int axis = 1;                                       // Concat
  Shape shape;                                        // NCHW output shape at the lowering input size
};

// What the detect decode needs (upstream Detect's inference branch).
struct IrHead {
  int nc = 80, na = 3, no = 85, nl = 3;  // nl == 0: no detect head (e.g. an imported ONNX graph)
  std::vector<float> stride;  // per level, pixels
  Tensor anchor_grid;         // [nl, na, 2] anchor (w, h) in pixels
};

struct IrGraph {
  std::vector<IrNode> nodes;  // topological order; nodes[0] is the Input "images"
  std::vector<int> outputs;   // the lead head conv per level: [B, na*no, H, W] (decode stays outside)
  IrHead head;
  std::vector<std::string> names;  // class names (from the model)
  // Execution memory format of run(): channels-last activations (NHWC memory, NCHW sizes; what the
  // oneDNN convolutions compute in) or plain contiguous NCHW. Results agree to float rounding.
  bool channels_last = true;

  // Runs the graph on the CPU kernels; returns the tensors of `outputs` ([B, na*no, H, W]).
  // x: [B, C, H, W] float32 with H, W any size the graph accepts (not only the lowering size).
  // hook (optional) is called after each node (Input included) with that node's output, which it
  // may modify in place (same sizes; the tensor is dense but may be channels-last: use its strides).
  // Conv -> Act fusion: without a hook, a Conv whose only consumer is an Act node runs as one conv
  // with the activation fused (the Conv's own output is never materialized); with a hook every
  // node runs on its own so that the hook sees the pre-activation Conv output too.
  std::vector<Tensor> run(const Tensor& x, const std::function<void(int node, Tensor& out)>& hook = {}) const;
  // The detect decode of run()'s outputs -> [B, N, 5+nc], exactly as Model::forward's pred.
  Tensor decode(const std::vector<Tensor>& outs) const;
  // Output shapes of every node for input shape `in` (checks channels; one-line errors).
  std::vector<Shape> infer_shapes(const Shape& in) const;
  // Index of the node called `name`, or -1.
  int find(const std::string& name) const;
  // Structural checks (input indices, weights, parameters; the detect head when head.nl > 0: a
  // graph without a head, e.g. the mapped part of an imported ONNX file, has head.nl == 0 and any
  // outputs); throws a one-line y7::Error.
  void validate() const;

  // Per-Conv-node oneDNN primitive caches (shared by copies of the graph; a cache notices when a
  // node's weight is a different tensor). After modifying a weight IN PLACE, reset_caches().
  struct Caches;
  mutable std::shared_ptr<Caches> caches_;
  void reset_caches() const { caches_.reset(); }
};

// Output shape of one node given the shapes of the nodes before it (`in`: the graph input shape,
// used by the Input node). One-line y7::Error on inconsistent shapes.
Shape ir_node_shape(const IrNode& n, const std::vector<Shape>& shapes, const Shape& in);

// Lowers a model (fused first if it is not) at input shape `input` ([B,C,H,W]; sets IrNode::shape).
IrGraph lower(Model& model, const Shape& input);

}  // namespace y7::graph
