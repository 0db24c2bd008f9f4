// NNDCT-style post-training quantization of a graph::IrGraph for the Xilinx DPU (vai_q_pytorch's
// torch_quantizer in 'calib' and 'test' modes, as Vitis AI's yolov7 test_nndct.py drives it).
//
// The float graph comes from graph::lower(), which already folds BatchNorm into the convolutions
// (NNDCT's parser does the same, nndct_shared/optimization/fuse_conv_bn.py) and ends at the lead head
// convs, so the detect decode stays outside the quantized graph (the model zoo's NNDctDetect:
// DeQuantStub after each head conv). Here:
//  - the graph rewrite: SiLU -> Hardswish (--nndct_convert_silu_to_hswish) and Sigmoid ->
//    Hardsigmoid (--nndct_convert_sigmoid_to_hsigmoid), computed in the DPU's form
//    (quant/fixpoint.h dpu_hswish / dpu_hsigmoid); ops the DPU cannot run are refused;
//  - the Plan: where fix neurons sit (NNDCT's quant groups and quant_output: a Conv grouped with its
//    only consumer LeakyReLU/ReLU, a node whose only consumer is a Concat sharing the Concat's
//    fix_point; nndct_shared/nndct_graph/nndctgraph_holder.py, nndct_shared/quantization/
//    commander.py, pytorch_nndct/quantization/torch_qstrategy.py TorchNndctQstrategy);
//  - calibration (torchquantizer.py calibrate_int): weights and biases get their 'diffs' fix_point
//    once (std_round), every activation fix neuron gets a 'diffs' fix_point per batch (half_up; the
//    graph input with scope 1) and uses the modal value of all batches so far, so that later layers
//    calibrate on already-quantized inputs; all capped at 12;
//  - the fix-point adjustments at export (torchquantizer.py QuantizeFixPosChecker + nndct_shared/
//    quantization/fix_pos_adjust.py): nearest Upsample output = its input's fix_point (unless it
//    feeds a Concat), Hardsigmoid output >= 7, Hardswish/Hardsigmoid input >= 0, Hardswish output
//    <= input + 7, and the DPU's shift_cut (0..16) / shift_bias limits of every Conv;
//  - bias correction (NNDCT's default nndct_param_corr, pytorch_nndct/nn/modules/conv.py and
//    quant_noise.py): per calibration batch each conv's quantized output is compared with the float
//    conv of the same input, and rate x the per-channel mean error is taken off its bias until the
//    signal-to-noise estimate settles; the total becomes QuantConfig::bias_corr;
//  - the fake-quantized forward ('test' mode): weights/biases quantized in a copy of the graph,
//    activations quantized by a run() hook, hard activations in the DPU form.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/ir.h"
#include "quant/config.h"

namespace y7::quant {

struct QuantOptions {
  bool convert_silu_to_hswish = false;      // --nndct_convert_silu_to_hswish
  bool convert_sigmoid_to_hsigmoid = false;  // --nndct_convert_sigmoid_to_hsigmoid
  // NNDCT's bias correction during calibration (nndct_param_corr, default on; rate
  // nndct_param_corr_rate 0.05): pytorch_nndct/nn/modules/conv.py + quant_noise.py eval_qnoise.
  bool bias_correction = true;
};

// A stable hex identity of the graph's structure (node names, ops, inputs, parameter shapes,
// conv/pool/activation attributes; not the weights' values nor the input size), NNDCT's graph_md5.
std::string graph_identity(const graph::IrGraph& g);

// Rejects a config made for another model, with other conversion flags, or lacking an entry the
// plan needs (one-line y7::Error).
void check_config_matches(const QuantConfig& c, const graph::IrGraph& g, const QuantOptions& o);

// The graph with the activation conversions applied (float Hardswish/Hardsigmoid, as NNDCT's
// float branch of deephi_Hardswish/deephi_Hardsigmoid). Throws a one-line error naming the first
// node the DPU cannot run: SiLU or Sigmoid without its conversion flag, ReOrg, Mul, an Add of a
// constant, or an activation other than ReLU/LeakyReLU/Hardswish/Hardsigmoid.
graph::IrGraph convert_for_dpu(const graph::IrGraph& g, const QuantOptions& o);

struct Plan {
  // Per node (IrGraph::nodes index):
  std::vector<bool> has_fix;  // a fix neuron sits right after this node (QuantConfig::output entry)
  // The node whose fix neuron gives this node's output its fix_point, as the DPU stores it: the
  // node itself when has_fix; its Act when the two run fused (Conv/Add + LeakyReLU/ReLU); the
  // Concat it only feeds (it writes into the concat's buffer with the concat's fix_point).
  std::vector<int> fix_at;
  std::vector<int> group_end;  // NNDCT quant group end (a Conv/Add fused with its LeakyReLU/ReLU -> the Act)
  std::vector<int> scope;  // diffs search width of each fix neuron (1 for the graph input, 5 else)
  std::vector<bool> dpu_act;  // Act node computed in the DPU's Hardswish/Hardsigmoid form
  int num_fix() const;
};
// Plan of a converted graph (convert_for_dpu's result).
Plan make_plan(const graph::IrGraph& converted);

// Calibration ('calib' mode). Keeps its own converted copy of the graph with quantized weights.
class Calibrator {
 public:
  Calibrator(const graph::IrGraph& g, const QuantOptions& o);
  // One batch: runs the fake-quantized graph, recording each activation's fix_point; returns the
  // head maps (as run() does) computed with the fix points so far (NNDCT's calib forward).
  std::vector<Tensor> add_batch(const Tensor& x);
  // Modal fix points plus NNDCT's export-time adjustments. Throws when no batch was added.
  QuantConfig finish(int img_size) const;
  const graph::IrGraph& graph() const { return qg_; }
  const Plan& plan() const { return plan_; }
  int64_t batches() const { return batches_; }

 private:
  graph::IrGraph qg_;
  QuantOptions opt_;
  Plan plan_;
  std::string identity_;
  std::vector<int> wfp_, bfp_;                 // per Conv node
  std::vector<std::vector<int>> history_;      // per node with a fix
  struct BiasCorr {                            // per Conv node (conv.py deephi_Conv2d state)
    bool stop = false;
    double rate = 0.05, efficency = 0, deviation = 0;
    Tensor wf, bf;                             // float weight/bias (weight_bak, bias_bak)
  };
  std::vector<BiasCorr> bc_;
  int64_t batches_ = 0, images_ = 0;
};

// Conv pairs that NNDCT's cross-layer equalization (nndct_equalization, on by default;
// nndct_shared/optimization/commander.py equalize_weights_cross_conv_layers) would rescale: a Conv
// reaching another Conv through single-consumer ReLU / MaxPool nodes only. Not implemented here;
// YOLOv7 graphs have none (every conv is followed by SiLU/LeakyReLU or is a head output), and
// `yolo7 quant` warns when a graph has some.
int count_cle_pairs(const graph::IrGraph& converted);

// Applies NNDCT's export-time fix_point adjustments (QuantizeFixPosChecker) to `c` in place, in
// graph order. Exposed for tests.
void adjust_fix_points(const graph::IrGraph& converted, const Plan& plan, QuantConfig& c);

// The fake-quantized model ('test' mode): the DPU's arithmetic simulated in float.
class FakeQuantGraph {
 public:
  FakeQuantGraph(const graph::IrGraph& g, const QuantConfig& c, const QuantOptions& o);
  std::vector<Tensor> run(const Tensor& x) const;  // dequantized head maps [B, na*no, H, W]
  Tensor forward(const Tensor& x) const;           // decoded predictions [B, N, 5+nc]
  const graph::IrGraph& graph() const { return qg_; }
  const Plan& plan() const { return plan_; }

 private:
  graph::IrGraph qg_;
  Plan plan_;
  std::vector<int> fp_;  // per node: fix_point of its fix neuron (when plan_.has_fix)
};

}  // namespace y7::quant
