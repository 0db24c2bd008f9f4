#include "tools/inference_weights.h"

#include <algorithm>
#include <cmath>

#include <yaml-cpp/yaml.h>

namespace y7::tools {

InferenceWeights load_inference_weights(const std::string& path) {
  InferenceWeights w;
  if (!io::is_onnx_path(path)) {
    w.model = graph::load_model(path);
    w.model->fuse();
    graph::Model* m = w.model.get();
    w.forward = [m](const Tensor& x) { return m->forward(x).pred; };
    return w;
  }
  w.onnx = io::load_onnx(path);
  const io::OnnxModel& om = *w.onnx;
  Y7_CHECK(om.can_predict(), path, ": this ONNX file's outputs are not decoded detections (",
           om.output_names().size(), " outputs, the first '", om.output_names()[0],
           "'); export it with --grid (yolo7 export --grid)");
  Y7_CHECK(om.kind() != io::OnnxModel::Kind::NmsRows, path,
           ": this ONNX file has NMS inside (--end2end); test/detect need the --grid export");
  int nc = om.num_classes();
  Y7_CHECK(nc > 0, path, ": cannot tell the number of classes from the ONNX file");
  float smax = 32;
  for (float s : om.strides()) smax = std::max(smax, s);
  int S = int(std::lround(smax));
  Y7_CHECK(S >= 1 && S <= 256 && 256 % S == 0, path, ": unusual max stride ", smax);
  YAML::Node cfg = YAML::Load("{nc: " + std::to_string(nc) +
                              ", depth_multiple: 1.0, width_multiple: 1.0, anchors: [[10,13, 16,30, 33,23]],"
                              " backbone: [[-1, 1, Conv, [8, 3, " + std::to_string(S) + "]]],"
                              " head: [[[-1], 1, Detect, [nc, anchors]]]}");
  w.model = graph::Model::from_yaml(cfg);
  if (!om.names().empty()) w.model->names = om.names();
  const io::OnnxModel* p = &*w.onnx;
  w.forward = [p](const Tensor& x) { return p->predict(x); };
  return w;
}

}  // namespace y7::tools
