// Power-of-two fix-point arithmetic of the Xilinx DPU, as Vitis AI's NNDCT (vai_q_pytorch) simulates
// it: a tensor is stored as signed `bit_width`-bit integers q with one per-tensor fix_point fp, the
// real value being q * 2^-fp. Re-implemented from the semantics of
//   csrc/cpu/nndct_fix_kernels_cpu.cc + include/cpu/nndct_fix_kernels_cpu.h
//     (_vai_round_cpu, _fix_neuron_v2_cpu: round x*2^fp, clamp to [-2^(bw-1), 2^(bw-1)-1], scale back),
//   pytorch_nndct/nn/modules/fix_ops.py diffs_fix_pos (the 'diffs' fix_point search),
//   pytorch_nndct/quantization/torchquantizer.py calibrate_int (round method per tensor kind, the
//     scope of the search, the max fix_point 12, the per-batch modal fix_point of activations),
//   pytorch_nndct/nn/modules/hardswish.py / hardsigmoid.py (the DPU's 2731/16384 forms).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace y7::quant {

// NNDCT's round methods (the `method` argument of its fix kernels; same numbering).
enum class Round : int {
  HalfUp = 2,    // DPU activations: ties toward +inf (x<0 with frac .5 -> ceil, else std::round)
  StdRound = 3,  // weights and biases: std::round, ties away from zero
  Floor = 4,
  HalfEven = 8,
};

// NNDCT's defaults for the DPU (torchquantizer.calibrate_int / quantize_int).
constexpr Round kActRound = Round::HalfUp;
constexpr Round kParamRound = Round::StdRound;
constexpr int kMaxFixPoint = 12;  // NndctOption nndct_max_fix_position (bit_width <= 8)
constexpr int kDiffsScope = 5;    // nndct_diffs_mode 'mse': try fix points max_scale .. max_scale+4
constexpr int kFixPointAllZero = 18;  // diffs_fix_pos when the tensor's range is zero

// Rounds x (the already scaled value) with NNDCT's method, in the input's precision (float here, as
// NNDCT's float32 tensors). Returns the integer as a float (exact); NaN stays NaN, +-inf stay +-inf.
float round_nndct(float x, Round m);

// The fix neuron: y = clamp(round(x * 2^fp), -2^(bw-1), 2^(bw-1)-1) * 2^-fp. NaN passes through
// unchanged (NNDCT leaves non-finite tensors unquantized); +-inf saturate. Zero and values that
// round to zero give +0.0 (NNDCT goes through an int). x and y may alias.
void fix_neuron(const float* x, float* y, int64_t n, int fix_point, int bit_width = 8, Round m = kActRound);
// Integer values q (what the DPU stores) and back.
void quantize_int8(const float* x, int8_t* q, int64_t n, int fix_point, Round m = kActRound);
void dequantize_int8(const int8_t* q, float* y, int64_t n, int fix_point);
// Tensor forms (float32, any dense layout incl. channels-last; `fake_quant_` works in place).
Tensor fake_quant(const Tensor& x, int fix_point, int bit_width = 8, Round m = kActRound);
void fake_quant_(Tensor& x, int fix_point, int bit_width = 8, Round m = kActRound);

// NNDCT's 'diffs' fix_point of one tensor (fix_ops.py diffs_fix_pos): max_scale =
// floor(log2(1/step)) with step = max(min/(-2^(bw-1)-0.5), max/(2^(bw-1)-0.5)) (18 when step is
// not positive), then among max_scale .. max_scale+scope-1 the fix_point with the least sum of
// squared quantization errors (the first on ties). Not capped: the caller applies kMaxFixPoint.
// Non-finite values: throws (NNDCT skips such tensors).
int diffs_fix_pos(const float* x, int64_t n, int bit_width = 8, int scope = kDiffsScope, Round m = kActRound);
int diffs_fix_pos(const Tensor& x, int bit_width = 8, int scope = kDiffsScope, Round m = kActRound);
// Sum of squared errors of fix_neuron at fix_point (double accumulation).
double fix_error(const float* x, int64_t n, int fix_point, int bit_width = 8, Round m = kActRound);

// scipy.stats.mode as NNDCT uses it over the per-batch fix points: the most frequent value, the
// smallest of equally frequent ones. Empty input: throws.
int modal_fix_pos(const std::vector<int>& history);

// The DPU's hard activations on an input already on its fix-point grid (NNDCT deephi_Hardswish /
// deephi_Hardsigmoid in quant mode): h = relu6(x + 3) * 2731/16384 (1/6 in the DPU's 14-bit
// form), float32 ops in that order. Hardswish quantizes h to fix_point 7 (round half up) and
// returns x * h; Hardsigmoid returns h. The caller then quantizes the output with the node's
// fix_point.
constexpr float kDpuOneSixth = 2731.0f / 16384.0f;
float dpu_hsigmoid(float x);
float dpu_hswish(float x);
// In place over a float32 tensor (any layout); and out = act(x) (same sizes; fast when x and out
// share one dense layout).
void dpu_hard_act_(Tensor& x, bool swish);
void dpu_hard_act(const Tensor& x, Tensor& out, bool swish);

}  // namespace y7::quant
