// io/onnx_export + io/onnx_import: every upstream fixture model exports (raw maps and --grid),
// passes onnx::checker with strict shape inference, and our runtime running the file matches
// Model::forward of the fused .pt; --end2end gives yolo7 forward --nms's detections; an ONNX file
// exported by upstream PyTorch (tests/data/onnx, tools/dev/make_onnx_fixture.py) runs and matches
// upstream's outputs; hostile files give one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"
#include "io/onnx_export.h"
#include "io/onnx_import.h"
#include "kernels/nms.h"
#include "train/evaluate.h"
#include <yaml-cpp/yaml.h>

#ifdef Y7_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

using namespace y7;
using namespace y7::test;

namespace {

#ifdef Y7_HAVE_ONNX

std::string data(const std::string& f) { return std::string(Y7_TEST_DATA) + "/onnx/" + f; }

double rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.sizes()), shape_str(b.sizes()));
  if (a.sizes() != b.sizes()) return INFINITY;
  return max_abs_diff(a, b) / std::max(max_abs(b), 1e-12);
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class OnnxFixture : public testing::TestWithParam<std::string> {};

TEST_P(OnnxFixture, ExportCheckShapesAndRuntimeParity) {
  std::string dir = fixtures_dir() + "/" + GetParam();
  auto model = graph::load_model(dir + "/model.pt");
  Tensor x = io::read_npy(dir + "/input.npy");
  model->fuse();
  graph::Model::Output ref = model->forward(x);
  graph::IrGraph g = graph::lower(*model, x.sizes());
  const int na = g.head.na, no = g.head.no;

  for (bool grid : {false, true}) {
    io::OnnxExportOptions o;
    o.grid = grid;
    std::vector<io::OnnxOutputInfo> declared;
    std::string bytes = io::onnx_export(g, o, &declared);
    // checker + strict shape inference; the inferred output shapes are the right ones
    std::vector<io::OnnxOutputInfo> inferred = io::onnx_check(bytes);
    ASSERT_EQ(inferred.size(), declared.size());
    if (grid) {
      ASSERT_EQ(inferred.size(), 1u);
      EXPECT_EQ(inferred[0].name, "output");
      EXPECT_EQ(shape_str(inferred[0].shape), shape_str(ref.pred.sizes()));
    } else {
      ASSERT_EQ(int(inferred.size()), g.head.nl);
      EXPECT_EQ(inferred[0].name, "output");
      for (size_t l = 0; l < inferred.size(); ++l) {
        EXPECT_EQ(shape_str(inferred[l].shape), shape_str(ref.raw[l].sizes()));
        EXPECT_EQ(inferred[l].shape[1], na);
        EXPECT_EQ(inferred[l].shape[4], no);
      }
    }
    // shape inference on a copy without the declared output shapes derives them itself
    if (grid || GetParam() == "yolov7-tiny") {
      onnx::ModelProto mp;
      ASSERT_TRUE(mp.ParseFromString(bytes));
      for (auto& out : *mp.mutable_graph()->mutable_output())
        for (auto& dim : *out.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim())
          dim.set_dim_param("unknown");
      std::string stripped;
      mp.SerializeToString(&stripped);
      auto inf2 = io::onnx_check(stripped);
      for (size_t l = 0; l < inf2.size(); ++l) EXPECT_EQ(shape_str(inf2[l].shape), shape_str(inferred[l].shape));
    }

    // our runtime on the exported file
    io::OnnxModel om = io::parse_onnx(bytes, "");
    EXPECT_GT(om.num_ir_nodes(), int(g.nodes.size()) / 2);  // the body was mapped onto the IR
    std::vector<Tensor> outs = om.run(x);
    double worst = 0;
    if (grid) {
      worst = rel_diff(outs.at(0), ref.pred);
    } else {
      for (size_t l = 0; l < outs.size(); ++l) worst = std::max(worst, rel_diff(outs[l], ref.raw[l]));
      if (GetParam() == "yolov7-tiny" || GetParam() == "yolov7-w6")  // decoded with the metadata head
        worst = std::max(worst, rel_diff(om.predict(x), ref.pred));
    }
    std::printf("[ %s %s ] %zu bytes, %d IR nodes + %d interpreted; max rel diff vs forward %.3g\n",
                GetParam().c_str(), grid ? "grid" : "raw", bytes.size(), om.num_ir_nodes(), om.num_tail_nodes(), worst);
    EXPECT_LE(worst, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Upstream, OnnxFixture, testing::ValuesIn(model_fixtures()), fixture_param_name);

// --end2end with --max-wh (onnxruntime NonMaxSuppression): the rows equal yolo7 forward --nms's
// (up to --topk-all per image), columns (batch, x1, y1, x2, y2, class, score).
TEST(Onnx, End2EndMatchesForwardNms) {
  std::string dir = fixtures_dir() + "/yolov7-tiny";
  auto model = graph::load_model(dir + "/model.pt");
  Tensor x = io::read_npy(dir + "/input.npy");
  model->fuse();
  Tensor pred = model->forward(x).pred;
  graph::IrGraph g = graph::lower(*model, x.sizes());
  for (int opset : {11, 12, 13, 17}) {
    io::OnnxExportOptions o;
    o.end2end = true;
    o.max_wh = 640;
    o.opset = opset;
    o.conf_thres = 0.5f;
    o.topk_all = 300;  // upstream's max_det: nothing is cut differently
    std::string bytes = io::onnx_export(g, o);
    auto inf = io::onnx_check(bytes);
    ASSERT_EQ(inf.size(), 1u);
    EXPECT_EQ(inf[0].name, "output");
    EXPECT_EQ(inf[0].shape.at(1), 7);
    Tensor rows = io::parse_onnx(bytes, "").run(x).at(0);
    ops::NmsParams p;
    p.conf_thres = 0.5;
    p.iou_thres = 0.45;
    auto dets = ops::non_max_suppression(pred, p);
    int64_t n = 0;
    for (auto& d : dets) n += d.size(0);
    ASSERT_GT(n, 5);
    for (auto& d : dets) ASSERT_LT(d.size(0), 300);
    ASSERT_EQ(rows.size(0), n) << "opset " << opset;
    Tensor r = rows.contiguous();
    int64_t k = 0;
    double maxd = 0;
    for (size_t i = 0; i < dets.size(); ++i) {
      Tensor d = dets[i].contiguous();
      for (int64_t j = 0; j < d.size(0); ++j, ++k) {
        const float* a = r.data<float>() + k * 7;
        const float* b = d.data<float>() + j * 6;
        EXPECT_EQ(a[0], float(i));
        for (int c = 0; c < 4; ++c) maxd = std::max(maxd, double(std::abs(a[1 + c] - b[c])));
        EXPECT_EQ(a[5], b[5]);                   // class
        EXPECT_NEAR(a[6], b[4], 1e-5);           // score
      }
    }
    EXPECT_LE(maxd, 1e-3);
  }
  // TensorRT layout (no --max-wh): EfficientNMS_TRT, run by our interpreter
  io::OnnxExportOptions o;
  o.end2end = true;
  o.conf_thres = 0.5f;
  std::string bytes = io::onnx_export(g, o);
  auto inf = io::onnx_check(bytes);
  ASSERT_EQ(inf.size(), 4u);
  EXPECT_EQ(inf[0].name, "num_dets");
  EXPECT_EQ(inf[3].name, "det_classes");
  auto outs = io::parse_onnx(bytes, "").run(x);
  ASSERT_EQ(outs.size(), 4u);
  EXPECT_EQ(shape_str(outs[1].sizes()), "[2,100,4]");
  EXPECT_GT(outs[0].item({0, 0}), 0);
}

// ONNX files exported by upstream PyTorch (torch 1.13 torch.onnx.export of upstream's model, as
// export.py does it): raw maps, --grid, and --end2end --max-wh 640 (ONNX_ORT).
TEST(Onnx, UpstreamExportedFilesRunAndMatchUpstream) {
  Tensor x = io::read_npy(data("yolov7_input.npy"));
  {
    io::OnnxModel m = io::load_onnx(data("yolov7.onnx"));
    EXPECT_EQ(m.kind(), io::OnnxModel::Kind::Raw);
    EXPECT_FALSE(m.can_predict());  // upstream writes no anchors into the file
    auto outs = m.run(x);
    ASSERT_EQ(outs.size(), 3u);
    double worst = 0;
    for (int i = 0; i < 3; ++i) worst = std::max(worst, rel_diff(outs[i], io::read_npy(data("yolov7_out" + std::to_string(i) + ".npy"))));
    std::printf("[ upstream raw ] %d IR nodes + %d interpreted; max rel diff vs upstream %.3g\n", m.num_ir_nodes(),
                m.num_tail_nodes(), worst);
    EXPECT_LE(worst, 1e-5);
    int convs = 0;
    for (auto& n : m.ir().nodes) convs += n.op == graph::IrOp::Conv;
    EXPECT_EQ(convs, 92);  // every Conv of the file runs in the IR
  }
  Tensor gref = io::read_npy(data("yolov7_grid_out.npy"));
  {
    io::OnnxModel m = io::load_onnx(data("yolov7_grid.onnx"));
    EXPECT_EQ(m.kind(), io::OnnxModel::Kind::Decoded);
    Tensor p = m.predict(x);
    double d = rel_diff(p, gref);
    std::printf("[ upstream grid ] max rel diff vs upstream %.3g (max |ref| %.4g)\n", d, max_abs(gref));
    EXPECT_LE(d, 1e-5);
  }
  {
    io::OnnxModel m = io::load_onnx(data("yolov7_e2e.onnx"));
    EXPECT_EQ(m.kind(), io::OnnxModel::Kind::NmsRows);
    Tensor rows = m.predict(x).contiguous();
    // reference: upstream's decoded output through ONNX_ORT's selection (best class, conf 0.25, IoU
    // 0.45, class offset 640), which for these thresholds is non_max_suppression (multi_label off)
    ops::NmsParams p;
    auto dets = ops::non_max_suppression(gref, p);
    ASSERT_EQ(dets.size(), 1u);
    Tensor d = dets[0].contiguous();
    ASSERT_GT(d.size(0), 0);
    ASSERT_EQ(rows.size(0), d.size(0));
    for (int64_t j = 0; j < d.size(0); ++j) {
      for (int c = 0; c < 4; ++c) EXPECT_NEAR(rows.data<float>()[j * 7 + 1 + c], d.data<float>()[j * 6 + c], 1e-3);
      EXPECT_EQ(rows.data<float>()[j * 7 + 5], d.data<float>()[j * 6 + 5]);
      EXPECT_NEAR(rows.data<float>()[j * 7 + 6], d.data<float>()[j * 6 + 4], 1e-5);
    }
  }
}

// yolo7 export / yolo7 forward --weights x.onnx through the CLI (upstream's file names).
TEST(Onnx, CliExportAndForward) {
  std::string d = scratch("onnx_cli");
  std::filesystem::copy_file(fixtures_dir() + "/yolov7-tiny/model.pt", d + "/tiny.pt");
  std::string in = fixtures_dir() + "/yolov7-tiny/input.npy";
  auto r = run_cli("export --weights " + d + "/tiny.pt --img-size 128 192 --grid --batch-size 2");
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(std::filesystem::exists(d + "/tiny.onnx")) << r.out;
  r = run_cli("forward --weights " + d + "/tiny.onnx --input " + in + " --out " + d + "/a.npy");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("forward --weights " + d + "/tiny.pt --fuse --input " + in + " --out " + d + "/b.npy");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_LE(rel_diff(io::read_npy(d + "/a.npy"), io::read_npy(d + "/b.npy")), 1e-5);
  // --nms on the ONNX predictions equals --nms on the .pt
  r = run_cli("forward --weights " + d + "/tiny.onnx --nms --input " + in + " --out " + d + "/an.npy");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("forward --weights " + d + "/tiny.pt --fuse --nms --input " + in + " --out " + d + "/bn.npy");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(compare_nms_rows(io::read_npy(d + "/an.npy"), io::read_npy(d + "/bn.npy")).exact());
  // end2end, dynamic batch, no-op flags
  r = run_cli("export --weights " + d + "/tiny.pt --img-size 128 192 --grid --end2end --max-wh 640 --dynamic-batch "
              "--simplify --fp16 --topk-all 50");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("forward --weights " + d + "/tiny.onnx --input " + in + " --out " + d + "/e.npy");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(io::read_npy(d + "/e.npy").size(1), 7);
}

// yolo7 test --weights best.onnx (test_onnx.py's mAP check): the same metrics as the .pt with the
// same square letterboxed batches (a fixed-size ONNX graph runs rect=False).
TEST(Onnx, TestCommandOnOnnxMatchesPt) {
  const std::string run = fixtures_dir() + "/train-run";
  std::string d = scratch("onnx_test_cmd");
  std::filesystem::copy_file(run + "/last.pt", d + "/best.pt");
  auto r = run_cli("export --weights " + d + "/best.pt --grid --img-size 640");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("test --weights " + d + "/best.onnx --data " + run + "/dataset/data.yaml --img-size 640 --project " + d +
              " --name exp");
  ASSERT_EQ(r.code, 0) << r.out;
  YAML::Node j = YAML::LoadFile(d + "/exp/results.json");
  EXPECT_EQ(j["seen"].as<int>(), 4);
  // reference: the fused .pt through run_test with the same batches
  auto model = graph::load_model(d + "/best.pt");
  model->fuse();
  train::TestOptions o;
  o.data = run + "/dataset/data.yaml";
  o.img_size = 640;
  o.rect = false;
  o.quiet = true;
  auto ref = train::run_test(*model, o);
  std::printf("[ test --weights best.onnx ] mAP@.5 %.6g (pt %.6g), mAP@.5:.95 %.6g (pt %.6g), P %.6g R %.6g\n",
              j["map50"].as<double>(), ref.metrics.map50, j["map"].as<double>(), ref.metrics.map, j["mp"].as<double>(),
              j["mr"].as<double>());
  EXPECT_GT(ref.metrics.mr, 0.0);  // not a vacuous comparison
  EXPECT_NEAR(j["map50"].as<double>(), ref.metrics.map50, 1e-9);
  EXPECT_NEAR(j["map"].as<double>(), ref.metrics.map, 1e-9);
  EXPECT_NEAR(j["mp"].as<double>(), ref.metrics.mp, 1e-9);
  EXPECT_NEAR(j["mr"].as<double>(), ref.metrics.mr, 1e-9);
  // detect runs on it too
  r = run_cli("detect --weights " + d + "/best.onnx --source " + run + "/dataset/images/val --img-size 320 --project " +
              d + " --name det --save-txt");
  EXPECT_EQ(r.code, 0) << r.out;
  // files test/detect cannot use (upstream's raw maps: no anchors in the file) are refused with one line
  r = run_cli("test --weights " + data("yolov7.onnx") + " --data " + run + "/dataset/data.yaml --project " + d);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--grid"), std::string::npos) << r.out;
}

// Hostile files: one-line errors, non-zero exit, no crash.
TEST(Onnx, HostileFiles) {
  std::string d = scratch("onnx_hostile");
  std::string good = read_file(data("yolov7_grid.onnx"));
  ASSERT_GT(good.size(), 1000u) << "missing fixture " << data("yolov7_grid.onnx");
  std::string in = data("yolov7_input.npy");
  auto expect_fail = [&](const std::string& bytes, const std::string& name, const std::string& needle) {
    std::string f = d + "/" + name + ".onnx";
    std::ofstream(f, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    try {
      io::load_onnx(f).run(io::read_npy(in));
      ADD_FAILURE() << name << ": no error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << name << ": " << m;
    }
    auto r = run_cli("forward --weights " + f + " --input " + in + " --out " + d + "/o.npy");
    EXPECT_EQ(r.code, 1) << name << ": " << r.out;
    EXPECT_EQ(r.out.rfind("yolo7: error: ", 0), 0u) << r.out;
    EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  expect_fail(good.substr(0, good.size() / 2), "truncated", "protobuf");
  expect_fail("", "empty", "");
  expect_fail(std::string(1000, '\xff'), "garbage", "protobuf");

  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(good));
  auto edit = [&](auto fn) {
    onnx::ModelProto c = mp;
    fn(c);
    std::string s;
    c.SerializeToString(&s);
    return s;
  };
  expect_fail(edit([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(5)->set_op_type("FancyOp"); }), "unknown_op",
              "unsupported ONNX op 'FancyOp'");
  expect_fail(edit([](onnx::ModelProto& m) {
                for (auto& t : *m.mutable_graph()->mutable_initializer())
                  if (t.name() == "model.1.conv.weight") t.set_dims(1, t.dims(1) + 1);
              }),
              "wrong_dims", "model.1.conv.weight");
  expect_fail(edit([](onnx::ModelProto& m) {  // an enormous tensor claimed with a few bytes: no allocation
                for (auto& t : *m.mutable_graph()->mutable_initializer())
                  if (t.name() == "model.1.conv.weight") t.set_dims(0, int64_t(1) << 29);
              }),
              "huge_dims", "model.1.conv.weight");
  expect_fail(edit([](onnx::ModelProto& m) {
                for (auto& t : *m.mutable_graph()->mutable_initializer())
                  if (t.name() == "model.1.conv.weight") {  // consistent tensor, wrong channel count
                    t.set_dims(1, t.dims(1) * 2);
                    std::string raw = t.raw_data();
                    t.set_raw_data(raw + raw);
                  }
              }),
              "wrong_shape", "model.1");
  expect_fail(edit([](onnx::ModelProto& m) {
                for (auto& t : *m.mutable_graph()->mutable_initializer())
                  if (t.name() == "model.1.conv.weight") {
                    t.clear_raw_data();
                    t.set_data_location(onnx::TensorProto::EXTERNAL);
                    auto* kv = t.add_external_data();
                    kv->set_key("location");
                    kv->set_value("../../../../etc/passwd");
                  }
              }),
              "external_outside", "outside the model's folder");
  expect_fail(edit([](onnx::ModelProto& m) {
                for (auto& t : *m.mutable_graph()->mutable_initializer())
                  if (t.name() == "model.1.conv.weight") {
                    t.clear_raw_data();
                    t.set_data_location(onnx::TensorProto::EXTERNAL);
                    auto* kv = t.add_external_data();
                    kv->set_key("location");
                    kv->set_value("/etc/passwd");
                  }
              }),
              "external_absolute", "must be relative");
  expect_fail(edit([](onnx::ModelProto& m) {
                auto* dim = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1);
                dim->set_dim_value(5);
              }),
              "wrong_input", "input [1,5,96,128]");
  // wrong input tensor for a good file
  try {
    io::load_onnx(data("yolov7_grid.onnx")).run(Tensor::zeros({1, 3, 64, 64}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input"), std::string::npos) << e.what();
  }
}

// External data inside the model's folder is read.
TEST(Onnx, ExternalDataInsideFolder) {
  std::string d = scratch("onnx_external");
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(read_file(data("yolov7_grid.onnx"))));
  std::ofstream w(d + "/weights.bin", std::ios::binary);
  int64_t off = 0;
  for (auto& t : *mp.mutable_graph()->mutable_initializer()) {
    if (t.raw_data().size() < 1024) continue;
    std::string raw = t.raw_data();
    w.write(raw.data(), std::streamsize(raw.size()));
    t.clear_raw_data();
    t.set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const std::string& k, const std::string& v) {
      auto* kv = t.add_external_data();
      kv->set_key(k);
      kv->set_value(v);
    };
    add("location", "weights.bin");
    add("offset", std::to_string(off));
    add("length", std::to_string(raw.size()));
    off += int64_t(raw.size());
  }
  w.close();
  std::string s;
  mp.SerializeToString(&s);
  std::ofstream(d + "/m.onnx", std::ios::binary).write(s.data(), std::streamsize(s.size()));
  Tensor x = io::read_npy(data("yolov7_input.npy"));
  EXPECT_LE(rel_diff(io::load_onnx(d + "/m.onnx").predict(x), io::read_npy(data("yolov7_grid_out.npy"))), 1e-5);
}

#else

TEST(Onnx, BuiltWithoutOnnx) {
  EXPECT_THROW(io::load_onnx("x.onnx"), Error);
}

#endif

}  // namespace
