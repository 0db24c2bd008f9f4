// The quantization config: the fix_point of every fix neuron of a quantized graph::IrGraph, written
// by `yolo7 quant --quant_mode calib` to <output_dir>/quant_info.json and read back by
// `--quant_mode test`, the .xmodel writer and the int8 runner. Mirrors the content of NNDCT's
// quant_info.json (nndct_shared/quantization/quant_config_imp.py: "param" and "output" tables of
// [bit_width, fix_point] per tensor, plus the graph's md5 so that a config is tied to its model).
//
// Names are graph::IrNode names (graph/ir.h). `output[n]` is the fix_point of the fix neuron right
// after node n; a node has no entry when its output is not quantized on its own: a Conv whose only
// consumer is its LeakyReLU/ReLU Act (they run fused; the Act's entry applies), or a node whose only
// consumer is a Concat (it writes into the concat with the Concat's fix_point, NNDCT's quant_output).
// quant::Plan (quant/quantizer.h) resolves, for every node, whose entry applies. `param` holds
// "<conv>.weight" and "<conv>.bias" of every Conv. The real value of an int8 q is q * 2^-fix_point.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace y7::quant {

struct QuantConfig {
  int version = 1;
  int bit_width = 8;
  bool convert_silu_to_hswish = false;      // --nndct_convert_silu_to_hswish at calibration
  bool convert_sigmoid_to_hsigmoid = false;  // --nndct_convert_sigmoid_to_hsigmoid
  std::string graph_hash;                   // quant::graph_identity() of the calibrated graph
  int img_size = 0;                         // calibration input size (square)
  int64_t calib_batches = 0, calib_images = 0;
  std::map<std::string, int> output;  // IR node name -> fix_point of the fix neuron after it
  std::map<std::string, int> param;   // "<conv>.weight" / "<conv>.bias" -> fix_point
  // NNDCT's bias correction (nndct_param_corr, on by default; NNDCT's bias_corr.pth): per Conv,
  // the per-channel amount to subtract from the float bias before it is quantized with its
  // "<conv>.bias" fix point. Absent conv: no correction.
  std::map<std::string, std::vector<float>> bias_corr;

  // Lookups that throw a one-line error naming the missing entry.
  int output_fp(const std::string& node) const;
  int weight_fp(const std::string& conv) const;
  int bias_fp(const std::string& conv) const;
  bool has_output(const std::string& node) const { return output.count(node) != 0; }
};

// JSON text of the config / parse it back (one-line y7::Error on malformed or incomplete input).
std::string config_to_json(const QuantConfig& c);
QuantConfig config_from_json(const std::string& text, const std::string& what = "quant config");
// Files: write atomically; read with a clear error when the file is missing (no calibration).
void save_config(const QuantConfig& c, const std::string& path);
QuantConfig load_config(const std::string& path);

}  // namespace y7::quant
