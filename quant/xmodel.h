// The quantized graph as a Vitis AI .xmodel (XIR, Debian's libxir), the file `yolo7 quant
// --quant_mode test --dump_model` writes to <output_dir>/Model_int.xmodel. It is structured as
// vai_q_pytorch's NNDCT exporter writes it (nndct_shared/compile/xir_compiler.py, xgraph.py,
// xop_creator.py), so that Vitis AI's compiler (vai_c_xir) reads it like one of NNDCT's:
//  - graph name "Model"; op names are the IR node names with every character outside [0-9A-Za-z]
//    replaced by '_' (NNDCT's formal names): "model.0.conv" -> "model_0_conv";
//  - every quantized tensor is followed by a "fix" op named "<op>_fix" with attrs fix_point,
//    bit_width 8, if_signed true, round_mode "DPU_ROUND" (NNDCT writes DPU_ROUND for all fix ops);
//  - the input is a "data" op (shape NHWC [1, H, W, C], data_type FLOAT32) + its fix;
//  - each Conv has two "const" ops "<conv>_weight" (OHWI float32, the values already on their
//    fix-point grid) and "<conv>_bias" ([O]), each + fix, and a "conv2d" op (attrs kernel {kw,kh},
//    stride, dilation, pad {l,r,t,b}, pad_mode "FLOOR", group, bias_term, in_dim, out_dim), or
//    "depthwise-conv2d" when groups == in_channels > 1 (weights [multiplier, kh, kw, C]);
//  - LeakyReLU -> "leaky-relu" (alpha 0.1015625, the DPU's 26/256), ReLU -> "relu", MaxPool ->
//    "maxpool2d" (kernel, stride, pad, pad_mode "FLOOR", global false), nearest Upsample ->
//    "resize" (mode NEAREST, scale {s, s}, align_corners/half_pixel_centers false), Concat ->
//    "concat" (axis in NHWC), Add -> "add";
//  - Hardsigmoid -> "<n>_i0" hard-sigmoid, "<n>_i1" const 6*2731/16384, "<n>" mul (+ fix);
//    Hardswish -> "<n>_i0" hard-sigmoid, "<n>_i1" const, "<n>_mul" mul, "<n>_mul_fix" fix at
//    fix_point 7, "<n>" mul of that and the input (+ fix), as xop_creator.py's hswish/hsigmoid.
// A Conv grouped with its LeakyReLU/ReLU has no fix of its own (conv2d -> leaky-relu -> fix), a node
// feeding only a Concat neither (the concat's fix applies): the fix ops are exactly the config's
// "output" entries plus one per parameter (and one per Hardswish), with the config's fix points.
// The graph ends at the lead head convs' fix ops (the detect decode stays on the CPU).
#pragma once
#include <string>

#include "graph/ir.h"
#include "quant/config.h"
#include "quant/quantizer.h"

namespace y7::quant {

// Writes the xmodel of `g` (the float graph, graph::lower()'s result, as `yolo7 quant` builds it)
// quantized with `cfg` (checked against g and opt first). The input shape is the lowering size of
// g (nodes[0].shape) at batch 1 (NNDCT exports at batch 1). One-line y7::Error on a config that
// does not fit, a graph the DPU cannot run, an unwritable path, or a build without libxir.
void dump_xmodel(const graph::IrGraph& g, const QuantConfig& cfg, const QuantOptions& opt, const std::string& path);

// NNDCT's formal op name: every character outside [0-9A-Za-z] becomes '_'.
std::string xmodel_op_name(const std::string& name);

// True when this build has libxir (Y7_HAVE_XIR).
bool xmodel_supported();

}  // namespace y7::quant
