// Quantization-aware training for the DPU (Vitis AI model zoo's yolov7 train_qat.py driving
// vai_q_pytorch's QatProcessor), natively, on the graph IR.
//
// What it mirrors (re-implemented from the semantics):
//  - NNDCT's TQT quantizer (pytorch_nndct/nn/qat TQTQuantizer): every fix neuron holds a trainable
//    log2 threshold lt; the forward is the DPU fix neuron with fix_point = bit_width - 1 - ceil(lt)
//    (scale 2^ceil(lt) / 2^(bw-1)); the backward is the straight-through estimator for the input
//    (gradient passed where round(x/scale) lies in [-2^(bw-1), 2^(bw-1)-1], zero where it clips)
//    and TQT's gradient for lt: sum(g * s) * scale * ln 2 with s = round(x/scale) - x/scale in
//    range, qmin below, qmax above;
//  - BatchNorm: the graph is lowered with BN folded into the convs (graph::lower), i.e. NNDCT's
//    QAT with the BN statistics frozen and folded (its "fused conv-bn" after freeze_bn); the folded
//    weights and biases are what trains;
//  - the fix neurons sit where the PTQ plan puts them (quant::make_plan: quant groups, concat
//    sharing), weights/biases quantized with std_round and activations with half_up, so that the
//    exported quant_info.json + trained weights run unchanged in FakeQuantGraph / Int8Graph / the
//    .xmodel writer;
//  - initialization: thresholds from a short PTQ calibration (quant::Calibrator, no bias
//    correction) at the middle of their fix-point interval (lt = bw - 1 - fp - 0.5);
//  - train_qat.py's optimizer: SGD (nesterov, momentum) with weight decay on conv weights, none on
//    biases, and the thresholds in their own group at lr0 * --log_threshold_scale; the OTA loss of
//    train.py on the head maps; gradient accumulation to the nominal batch 64; one-cycle LR.
//
// Not mirrored: the EMA model and the warmup of train.py (QAT starts from a trained model at a
// small lr0), multi-GPU, --resume. SiLU / Sigmoid train in their float form after conversion to
// Hardswish / Hardsigmoid (ops::activation); test mode evaluates the DPU's 2731/16384 form.
//
// Output (QatResult::qat_dir, <save_dir>/qat): quant_info.json (the learned fix points after
// NNDCT's export adjustments, same format as `yolo7 quant --quant_mode calib`), params/<conv>.weight.npy
// and params/<conv>.bias.npy (the trained BN-folded float parameters of every IR Conv, by IR node
// name) and log_thresholds.txt ("<key> <lt>" per fix neuron; keys: node names, "<conv>.weight",
// "<conv>.bias"). `yolo7 quant --nndct_qat --weights <float .pt> --output_dir <qat_dir>
// --quant_mode test [--dump_model]` loads the float model for its structure, replaces the
// parameters from params/ (quant::load_qat_params) and evaluates / exports with quant_info.json.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/ir.h"
#include "quant/config.h"
#include "quant/fixpoint.h"
#include "quant/quantizer.h"

namespace y7::quant {

// NNDCT TQT: fix_point of a log2 threshold (bw - 1 - ceil(lt)); and the initial lt we give a
// calibrated fix point (the middle of its interval: ceil(lt) == bw - 1 - fp).
int tqt_fix_point(float log_threshold, int bit_width = 8);
float tqt_init_log_threshold(int fix_point, int bit_width = 8);

// The TQT fake-quant op with autograd: y = fix_neuron(x, tqt_fix_point(lt)); records the STE
// gradient for x and TQT's gradient for lt (a one-element float tensor) when either requires grad.
Tensor tqt_fake_quant(const Tensor& x, const Tensor& log_threshold, int bit_width = 8, Round m = kActRound);
struct TqtGrads {
  Tensor dx;       // contiguous, x's sizes
  double dlt = 0;  // d loss / d log_threshold
};
TqtGrads tqt_backward(const Tensor& gy, const Tensor& x, float log_threshold, int bit_width = 8, Round m = kActRound);

// The QAT graph: the DPU-converted IR (convert_for_dpu) with trainable parameters and thresholds.
class QatGraph {
 public:
  // g: the float graph from graph::lower (BN folded); init: a config for g (e.g. Calibrator::finish).
  QatGraph(const graph::IrGraph& g, const QuantConfig& init, const QuantOptions& o);
  // Head maps [B, na*no, H, W] with autograd to every parameter and threshold.
  std::vector<Tensor> forward_train(const Tensor& x) const;
  // Trainable leaves (stable pointers into this object).
  std::vector<Tensor*> weights();     // conv weights
  std::vector<Tensor*> biases();      // conv biases
  std::vector<Tensor*> thresholds();  // every log2 threshold ([1] tensors)
  void zero_grad();
  // The learned config: fix points from the thresholds, then NNDCT's export adjustments.
  QuantConfig export_config(int img_size) const;
  // Writes quant_info.json, params/ and log_thresholds.txt into dir (created).
  void save(const std::string& dir, int img_size) const;
  const graph::IrGraph& graph() const { return qg_; }
  const Plan& plan() const { return plan_; }
  // Current fix point of a fix neuron key (node name, "<conv>.weight", "<conv>.bias"); -1 if none.
  int fix_point(const std::string& key) const;

 private:
  graph::IrGraph qg_;  // converted graph; Conv weight/bias are the trainable leaves
  Plan plan_;
  QuantOptions opt_;
  std::string identity_;
  std::vector<Tensor> act_lt_, w_lt_, b_lt_;  // per node ([1] tensors; undefined where none)
};

// Replaces the Conv weights/biases of a lowered float graph by those in <qat_dir>/params
// (one-line error when a file is missing or has another shape).
void load_qat_params(graph::IrGraph& g, const std::string& qat_dir);

struct QatOptions {
  std::string weights, cfg, data, hyp;
  int epochs = 10, batch_size = 16, img_size = 640;
  double log_threshold_scale = 100;  // train_qat.py --log_threshold_scale
  QuantOptions quant;                // --nndct_convert_*
  int calib_batches = 4;             // PTQ calibration batches that initialize the thresholds
  int workers = 2;
  uint64_t seed = 0;
  std::string project = "runs/train_qat", name = "exp";
  bool exist_ok = false, quiet = false;
};
struct QatResult {
  std::string save_dir, qat_dir;
  std::vector<std::array<double, 4>> mloss;  // per epoch: mean box, obj, cls, total
  QuantConfig config;                        // the exported config
};
QatResult run_train_qat(const QatOptions& o);

}  // namespace y7::quant
