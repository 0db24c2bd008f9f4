// The quantized graph executed in integer arithmetic on the CPU, as the DPU computes it: int8
// activations (NHWC) with one power-of-two fix_point per tensor, int8 weights (w * 2^wfp, exact),
// int32 accumulation (oneDNN s8 x s8 -> s32 convolutions: VNNI/AMX where the CPU has them), the
// bias aligned to the accumulator, then the DPU's requantize: an arithmetic shift by
// (in_fp + w_fp - out_fp) with its round-half-up (DPU_ROUND: ties toward +inf), saturated to int8.
//  - Conv + LeakyReLU/ReLU run fused as on the DPU: LeakyReLU multiplies negative accumulators by
//    26 and shifts 8 more (the slope 0.1015625 = 26/256 that NNDCT sets), ReLU clamps at 0;
//  - Add aligns both inputs to the finer fix point, adds exactly, then shifts (fused act likewise);
//  - MaxPool takes the max of int8 values; nearest Upsample copies; Concat copies each input into
//    its channel slice; each then requantizes to its output fix point (a shift with DPU rounding);
//  - stand-alone activations on int8 inputs (Hardswish/Hardsigmoid in the DPU's 2731/16384 form,
//    LeakyReLU, ReLU) are int8 -> int8 tables of the DPU function, built once per node;
//  - the head convs' int8 outputs are dequantized (q * 2^-fp) into float maps.
// Its outputs equal FakeQuantGraph::run() (quant/quantizer.h) bit for bit: every fake-quantized
// float value there is an exact multiple of its step, so the integer path is the same arithmetic
// (as long as the float32 simulation itself is exact: |conv sums| below 2^24 steps, true of the
// fixture and full-width models tested). The parameters are taken from FakeQuantGraph (weights and
// bias-corrected biases already on their grids). Environment: Y7_INT8_PROFILE=1 prints per-op
// times to stderr; Y7_INT8_REFERENCE_CONV=1 (read at construction) uses the portable integer
// convolution instead of oneDNN's (also the path of builds without oneDNN).
#pragma once
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "graph/ir.h"
#include "quant/config.h"
#include "quant/quantizer.h"

namespace y7::quant {

class Int8Graph {
 public:
  // g: the float graph (graph::lower()); c: its config (checked as FakeQuantGraph checks it).
  // One-line y7::Error for a config that does not fit or a node the integer path cannot run.
  Int8Graph(const graph::IrGraph& g, const QuantConfig& c, const QuantOptions& o);
  ~Int8Graph();
  Int8Graph(Int8Graph&&) noexcept;

  // x: [B, C, H, W] float32 (finite). Returns the dequantized head maps [B, na*no, H, W] (contiguous
  // NCHW), equal to FakeQuantGraph::run(x).
  std::vector<Tensor> run(const Tensor& x) const;
  Tensor forward(const Tensor& x) const;  // decoded predictions [B, N, 5+nc]
  const graph::IrGraph& graph() const;

  // Raw int8 head outputs (NHWC [B, H, W, C]) and their fix points, for inspection/tests.
  std::vector<Tensor> run_int8(const Tensor& x, std::vector<int>* fix_points = nullptr) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> p_;
};

// The DPU's requantize of an integer value v on step 2^-f_in to step 2^-f_out: v * 2^(f_out-f_in)
// rounded half up (ties toward +inf), saturated to [-128, 127]. Exposed for tests.
int8_t dpu_requantize(int64_t v, int shift /* f_in - f_out */);

}  // namespace y7::quant
