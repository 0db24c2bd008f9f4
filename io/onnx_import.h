// ONNX import: an .onnx file (ours, or upstream's torch.onnx export of YOLOv7 at opset 11..17) run
// on our CPU kernels.
//
// Loading maps the convolutional body onto the graph IR (graph/ir.h): Conv, activations (including
// torch's Sigmoid+Mul SiLU and HardSigmoid+Mul Hardswish patterns), MaxPool, nearest Resize by
// integer scales, channel Concat, Add/Mul (of two IR values or by a per-channel constant) and
// ReOrg (four strided Slices + Concat) whose inputs come from the image. Everything else (the
// Detect tail: Reshape, Transpose, Split, Slice, Pow, grids, NMS, ...) runs in a small node
// interpreter (float32 and int64 tensors) after the IR part.
//
// Errors (truncated protobuf, unsupported op, wrong shapes, bad attributes, external data outside
// the model's folder, ...) are one-line y7::Errors, raised at load time where possible.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/ir.h"

namespace y7::io {

class OnnxModel {
 public:
  // What the outputs are (from their ranks and names).
  enum class Kind {
    Raw,      // per level [B,na,H,W,no] head maps (upstream's default export)
    Decoded,  // one [B,N,5+nc] prediction tensor (--grid)
    NmsRows,  // one [n,7] tensor (batch, x1, y1, x2, y2, class, score) (--end2end --max-wh)
    TrtNms,   // num_dets, det_boxes, det_scores, det_classes (--end2end / --include-nms, TensorRT)
    Other
  };

  const graph::IrGraph& ir() const;  // the mapped part (head.nl == 0; outputs: values the rest needs)
  int num_ir_nodes() const;
  int num_tail_nodes() const;
  const std::string& input_name() const;
  const Shape& input_shape() const;  // declared; -1 for symbolic dims
  const std::vector<std::string>& output_names() const;
  Kind kind() const;
  // Detect head description from the file's metadata_props (ours: stride, anchors, nc, names);
  // head().nl == 0 when the file has none.
  const graph::IrHead& head() const;
  const std::vector<std::string>& names() const;
  int num_classes() const;  // from the metadata or the output shape, -1 when unknown
  std::vector<float> strides() const;  // metadata, or the input/output map ratios of a Raw file

  // Runs the graph on x (shape as declared, symbolic dims free); returns the graph outputs in order.
  std::vector<Tensor> run(const Tensor& x) const;
  // Decoded predictions [B,N,5+nc] for Raw (decoded with the metadata head) and Decoded files, the
  // rows [n,7] for NmsRows files. Adapts the input to a fixed-size graph: a fixed batch of 1 runs
  // image by image; a smaller image is padded at the bottom/right with 114/255 (coordinates stay
  // the same); a larger one is an error.
  Tensor predict(const Tensor& x) const;
  // Whether predict() works for this file (Raw needs the anchor metadata; TrtNms/Other do not).
  bool can_predict() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
  friend OnnxModel parse_onnx(const std::string&, const std::string&);
};

// Loads a file (external data resolved inside its folder only).
OnnxModel load_onnx(const std::string& path);
// From serialized bytes; `dir` is the folder external data must stay in ("" = none allowed).
OnnxModel parse_onnx(const std::string& bytes, const std::string& dir);

bool is_onnx_path(const std::string& path);  // ends with .onnx (case-insensitive)

}  // namespace y7::io
