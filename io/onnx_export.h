// ONNX export of a graph IR (graph/ir.h), the C++ counterpart of the ONNX part of upstream
// export.py, written through Debian's libonnx protobuf types and checked with onnx::checker.
//
// The graph: input "images" [B,3,H,W] float32; every IR node as plain ONNX ops (Conv with
// initializers named by upstream's state_dict names "model.<i>....weight/bias", SiLU as
// Sigmoid + Mul as torch.onnx exports it, LeakyRelu, MaxPool, Resize (nearest, asymmetric, floor),
// Concat, Add/Mul, ReOrg as four strided Slices + Concat); then the Detect head:
//   default      : per level Reshape [B,na,no,H,W] + Transpose -> [B,na,H,W,no] (upstream's
//                  Detect.export = True); outputs "output" (level 0), "output1", "output2", ...
//                  (torch names only the first one; the others get torch's internal numbers)
//   grid         : the decode in the graph (Sigmoid, Split, xy*2s + s*(grid-0.5), wh^2*4*anchor,
//                  as upstream's ONNX branch of Detect) -> "output" [B,N,5+nc]
//   end2end + max_wh >= 0 : upstream's ONNX_ORT: scores*obj, boxes to xyxy (MatMul), best class,
//                  class offset * max_wh, NonMaxSuppression -> "output" [n,7] rows
//                  (batch index, x1, y1, x2, y2, class, score)
//   end2end, no max_wh    : upstream's ONNX_TRT: TRT::EfficientNMS_TRT (box_coding 1) -> num_dets
//                  [B,1] int32, det_boxes [B,topk,4], det_scores [B,topk], det_classes [B,topk] int32
//   include_nms  : upstream's Detect.include_nms + RegisterNMS: EfficientNMS_TRT (box_coding 0) on
//                  boxes xyxy and scores*obj, the same four outputs
// metadata_props: "stride", "names", "nc", "anchors" (for runtimes that decode raw outputs).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace y7::graph {
struct IrGraph;
}

namespace y7::io {

struct OnnxExportOptions {
  int opset = 12;              // 11..17
  bool dynamic_batch = false;  // batch axis of images/outputs named "batch"
  bool grid = false;           // decode in the graph
  bool end2end = false;        // NMS in the graph (implies grid)
  int topk_all = 100;
  float iou_thres = 0.45f, conf_thres = 0.25f;
  int max_wh = -1;             // < 0: upstream's None (TensorRT NMS plugin); >= 0: onnxruntime NMS
  bool include_nms = false;
};

struct OnnxOutputInfo {
  std::string name;
  Shape shape;  // -1: dynamic
};

// Serialized ModelProto. The graph's input size is its Input node's shape (IrNode::shape).
std::string onnx_export(const graph::IrGraph& g, const OnnxExportOptions& opt,
                        std::vector<OnnxOutputInfo>* outputs = nullptr);
// onnx::checker::check_model, then strict shape inference (onnx.checker full_check: type checks on,
// node errors thrown); returns the inferred output shapes (-1 for symbolic/unknown dims). One-line
// y7::Error on any problem.
std::vector<OnnxOutputInfo> onnx_check(const std::string& model_bytes);

}  // namespace y7::io
