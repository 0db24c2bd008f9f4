// yolo7 export: the ONNX part of upstream export.py. Loads --weights (attempt_load: fused, float32),
// lowers it to the graph IR at --img-size and writes W.onnx beside the weights (upstream's
// weights.replace('.pt', '.onnx')), checked with onnx::checker and strict shape inference.
// --fp16 is upstream's CoreML-only flag and leaves the ONNX file float32; --simplify is accepted as
// a no-op: our graph has no Shape/Gather/Constant chains for onnx-simplifier to fold.
#include <cstdio>
#include <fstream>

#include "graph/ir.h"
#include "graph/model.h"
#include "io/onnx_export.h"
#include "tools/cli.h"

namespace y7 {
namespace {

int run_export(const std::vector<std::string>& argv) {
  cli::Args a(argv, {{"weights", 1}, {"img-size", -1}, {"batch-size", 1}, {"dynamic-batch", 0}, {"grid", 0},
                     {"end2end", 0}, {"topk-all", 1}, {"iou-thres", 1}, {"conf-thres", 1}, {"max-wh", 1},
                     {"include-nms", 0}, {"fp16", 0}, {"simplify", 0}, {"opset", 1}, {"device", 1}, {"out", 1}});
  Y7_CHECK(a.has("weights"), "export: --weights is required");
  const std::string w = a.str("weights");
  std::vector<int> sz = a.has("img-size") ? a.ints("img-size") : std::vector<int>{640, 640};
  Y7_CHECK(sz.size() == 1 || sz.size() == 2, "export: --img-size takes 1 or 2 values");
  if (sz.size() == 1) sz.push_back(sz[0]);
  int bs = a.integer("batch-size", 1);
  Y7_CHECK(bs >= 1 && bs <= 4096, "export: bad --batch-size ", bs);

  io::OnnxExportOptions o;
  o.opset = a.integer("opset", 12);
  o.dynamic_batch = a.flag("dynamic-batch");
  o.grid = a.flag("grid");
  o.end2end = a.flag("end2end");
  o.include_nms = a.flag("include-nms");
  o.topk_all = a.integer("topk-all", 100);
  o.iou_thres = float(a.num("iou-thres", 0.45));
  o.conf_thres = float(a.num("conf-thres", 0.25));
  o.max_wh = a.has("max-wh") ? a.integer("max-wh", 0) : -1;
  Y7_CHECK(!a.has("max-wh") || o.max_wh >= 0, "export: --max-wh must be >= 0");
  Y7_CHECK(!(o.end2end && o.include_nms), "export: use either --end2end or --include-nms");
  if ((o.end2end || o.include_nms) && !o.grid)
    std::printf("export: --%s needs the decode in the graph; exporting with --grid\n",
                o.end2end ? "end2end" : "include-nms");

  auto model = graph::load_model(w);
  model->fuse();
  int gs = 0;
  for (float s : model->stride()) gs = std::max(gs, int(s));
  for (int& v : sz) {
    Y7_CHECK(v > 0 && v <= 8192, "export: bad --img-size ", v);
    int nv = (v + gs - 1) / gs * gs;  // check_img_size: round up to a multiple of the max stride
    if (nv != v) std::printf("WARNING: --img-size %d must be multiple of max stride %d, updating to %d\n", v, gs, nv);
    v = nv;
  }
  graph::IrGraph g = graph::lower(*model, {bs, 3, sz[0], sz[1]});
  std::vector<io::OnnxOutputInfo> outs;
  std::string bytes = io::onnx_export(g, o, &outs);
  io::onnx_check(bytes);

  std::string f = a.str("out");
  if (f.empty()) {
    // upstream: opt.weights.replace('.pt', '.onnx'), i.e. W.onnx beside W.pt (only the suffix here)
    f = w.size() > 3 && w.ends_with(".pt") ? w.substr(0, w.size() - 3) + ".onnx" : w + ".onnx";
  }
  std::ofstream os(f, std::ios::binary);
  Y7_CHECK(os.good(), "export: cannot write ", f);
  os.write(bytes.data(), std::streamsize(bytes.size()));
  os.close();
  Y7_CHECK(os.good(), "export: error writing ", f);
  std::printf("ONNX export success (opset %d, %zu nodes), saved as %s\n", o.opset, g.nodes.size(), f.c_str());
  for (auto& oi : outs) std::printf("  output %s %s\n", oi.name.c_str(), shape_str(oi.shape).c_str());
  return 0;
}

cli::Register reg("export", "export --weights W.pt to ONNX (W.onnx), as upstream export.py", run_export);

}  // namespace
}  // namespace y7
