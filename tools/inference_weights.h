// --weights for the inference commands (forward, test, detect): a .pt checkpoint (load_model, fused
// as attempt_load does) or an .onnx file run on our runtime (io/onnx_import.h).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "graph/model.h"
#include "io/onnx_import.h"

namespace y7::tools {

struct InferenceWeights {
  // .pt: the fused model. .onnx: a one-conv stand-in that carries only the max stride and the class
  // names for code that asks a Model for them (run_test, detect); it is never run.
  std::unique_ptr<graph::Model> model;
  std::optional<io::OnnxModel> onnx;
  // images [B,3,H,W] -> decoded predictions [B,N,5+nc] (ONNX: OnnxModel::predict)
  std::function<Tensor(const Tensor&)> forward;
};

InferenceWeights load_inference_weights(const std::string& path);

}  // namespace y7::tools
