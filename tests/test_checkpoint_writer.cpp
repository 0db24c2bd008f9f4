// Checkpoint writer (io/pickle_writer.h, io/zip_writer.h, io/checkpoint_writer.h,
// graph/export_modules.h). References: a small torch.save file made by torch 1.13
// (tests/data/ckpt/torch_odict.pt, generator beside it) that our pickler must reproduce byte for
// byte; the upstream fixtures (our written checkpoints must read back with identical tensors, yaml,
// names); and tests/data/ckpt/tiny_torch_pred1.npy: the predictions that torch 1.13 + upstream
// attempt_load() computed from a yolov7-tiny checkpoint written by this writer
// (tools/dev/check_checkpoint.py --save-fixture), which our forward must reproduce.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "graph/export_modules.h"
#include "graph/model.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/npy.h"
#include "io/pickle.h"
#include "io/pickle_writer.h"
#include "io/zip.h"
#include "io/zip_writer.h"
#include "cli_util.h"

using namespace y7;
using namespace y7::io;
namespace fs = std::filesystem;

namespace {

const std::string kFix = Y7_SHARED_FIXTURES;
const std::string kData = std::string(Y7_TEST_DATA) + "/ckpt";

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("y7_ckw_" + std::to_string(::getpid()) + "_" + name)).string();
}

Tensor f32(std::vector<float> v, Shape s) {
  Tensor t = Tensor::empty(s, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

double diff_f64(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(DType::F64).contiguous(), y = b.to(DType::F64).contiguous();
  EXPECT_EQ(shape_str(x.sizes()), shape_str(y.sizes()));
  if (x.numel() != y.numel()) return INFINITY;
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(x.data<double>()[i] - y.data<double>()[i]));
  return m;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || shape_str(a.sizes()) != shape_str(b.sizes())) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), size_t(x.numel()) * dtype_size(x.dtype())) == 0;
}

TEST(CheckpointWriter, Crc32) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
}

// The same tree torch.save pickled in tests/data/ckpt/make_torch_odict.py.
TEST(CheckpointWriter, TorchBytes) {
  ZipArchive ref = ZipArchive::open(kData + "/torch_odict.pt");
  Tensor w = f32({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor bias = f32({1.5f, -2.0f}, {2}).to(DType::F16);
  Tensor nbt = Tensor::empty({}, DType::I64);
  nbt.data<int64_t>()[0] = 7;
  Tensor ones = f32({1, 1}, {2});
  PyRef wt = py::tensor(w);
  PyRef od = py::odict();
  od->set("weight", wt);
  od->set("bias", py::tensor(bias));
  od->set("num_batches_tracked", py::tensor(nbt));
  od->set("alias", wt);
  od->set("view", py::tensor(Tensor::from_storage(w.storage(), DType::F32, {3}, {1}, 3)));
  od->set("param", py::tensor(ones, true, true));
  PyRef root = py::dict();
  root->set("sd", od);
  root->set("f", py::real(0.5));
  root->set("big", py::integer(int64_t(1) << 40));
  root->set("neg", py::integer(-3));
  root->set("mid", py::integer(70000));
  root->set("n", py::none());
  root->set("yes", py::boolean(true));
  root->set("t", py::ints({1, 2, 3, 4}, true));
  root->set("l", py::list({py::integer(1), py::str("x")}));
  root->set("np", py::numpy_f64(0.25));
  root->set("b", py::bytes(std::string("\x00\xff", 2)));
  root->set("e", py::dict());
  root->set("el", py::list());
  PickledData d = pickle_torch(*root);
  std::string_view expect = ref.bytes(ref.at("torch_odict/data.pkl"));
  EXPECT_EQ(d.pickle.size(), expect.size());
  EXPECT_TRUE(d.pickle == expect) << "data.pkl differs from torch's";
  ASSERT_EQ(d.storages.size(), 4u);
  for (auto& s : d.storages) {
    std::string_view sb = ref.bytes(ref.at("torch_odict/data/" + s.key));
    ASSERT_EQ(sb.size(), size_t(s.numel) * dtype_size(s.dtype)) << s.key;
    EXPECT_EQ(std::memcmp(sb.data(), s.storage->data(), sb.size()), 0) << s.key;
  }
  // and our whole archive reads back with our reader
  std::string zip = save_torch_to_memory(*root, "torch_odict");
  ZipArchive z = ZipArchive::from_memory(zip.data(), zip.size());
  for (auto& e : z.entries()) EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  EXPECT_EQ(z.bytes(z.at("torch_odict/version")), "3\n");
  PickleResult r = load_torch_pickle(z);
  const PickleValue* sd = r.root->get("sd");
  ASSERT_TRUE(sd);
  EXPECT_TRUE(bit_equal(sd->get("weight")->tensor, w));
  EXPECT_TRUE(bit_equal(sd->get("view")->tensor, f32({3, 4, 5}, {3})));
  EXPECT_TRUE(bit_equal(sd->get("bias")->tensor, bias));
  EXPECT_EQ(r.root->get("np")->number(), 0.25);
  EXPECT_EQ(r.root->get("b")->str, std::string("\x00\xff", 2));
  EXPECT_EQ(r.root->get("big")->as_int(), int64_t(1) << 40);
}

// The zip64 layout (used past 4 GiB), exercised with a low threshold: every entry gets zip64
// size/offset fields and the archive zip64 end records; our reader must read it all back.
TEST(CheckpointWriter, Zip64Layout) {
  std::string path = tmp_path("z64.zip");
  std::string big(1000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 7);
  {
    ZipWriter z(path, 64, 16);
    z.add("a/small", "0123456789", 10);  // below the threshold: classic fields
    z.add("a/big", big.data(), big.size());
    z.add("a/after", "xyz", 3);          // offset past the threshold
    z.finish();
  }
  ZipArchive a = ZipArchive::open(path);
  ASSERT_EQ(a.entries().size(), 3u);
  EXPECT_EQ(a.bytes(a.at("a/small")), "0123456789");
  EXPECT_EQ(a.bytes(a.at("a/big")), big);
  EXPECT_EQ(a.bytes(a.at("a/after")), "xyz");
  for (auto& e : a.entries()) EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  fs::remove(path);
}

TEST(CheckpointWriter, YamlScalarsTypedLikePyYaml) {
  YAML::Node n = YAML::Load("{a: 1, b: 0.25, c: None, d: ~, e: true, f: nearest, g: '3', h: [-1, 1e3]}");
  PyRef p = graph::yaml_to_py(n);
  EXPECT_EQ(p->get("a")->t, Py::T::Int);
  EXPECT_EQ(p->get("b")->t, Py::T::Float);
  EXPECT_EQ(p->get("c")->t, Py::T::Str);  // the cfg's `None` is the string 'None' for PyYAML
  EXPECT_EQ(p->get("d")->t, Py::T::None);
  EXPECT_EQ(p->get("e")->t, Py::T::Bool);
  EXPECT_EQ(p->get("g")->t, Py::T::Str);
  EXPECT_EQ(p->get("h")->items[0]->i, -1);
  EXPECT_EQ(p->get("h")->items[1]->t, Py::T::Str);  // PyYAML: 1e3 without a dot is a string
}

void expect_same_record(const ModelRecord& a, const ModelRecord& b, bool exact_dtype) {
  ASSERT_EQ(a.order, b.order);
  EXPECT_EQ(a.buffers, b.buffers);
  for (auto& [k, t] : b.state) {
    const Tensor& u = a.state.at(k);
    if (exact_dtype) EXPECT_TRUE(bit_equal(u, t)) << k;
    else EXPECT_EQ(diff_f64(u, t), 0.0) << k;
  }
  EXPECT_EQ(YAML::Dump(a.yaml), YAML::Dump(b.yaml));
  EXPECT_EQ(a.names, b.names);
  EXPECT_EQ(a.stride, b.stride);
  EXPECT_EQ(a.detect_type, b.detect_type);
}

// Writes each fixture model back (fp16, as upstream saved it): our reader gets bit-identical
// tensors, the same yaml, names, strides and head type.
TEST(CheckpointWriter, StrippedRoundTripMatchesUpstreamFiles) {
  for (const char* name : {"yolov7-tiny", "yolov7", "yolov7-w6", "yolov7-deploy", "yolov7-d6", "yolov7-e6e"}) {
    SCOPED_TRACE(name);
    std::string src = kFix + "/" + name + "/model.pt";
    auto model = graph::load_model(src);
    std::string out = tmp_path(std::string(name) + ".pt");
    save_stripped_checkpoint(out, *model);
    Checkpoint a = load_checkpoint(out), b = load_checkpoint(src);
    fs::remove(out);
    ASSERT_TRUE(a.model && b.model);
    EXPECT_EQ(a.epoch, -1);
    EXPECT_FALSE(a.ema);
    EXPECT_FALSE(a.model->has_fused_layers);
    expect_same_record(*a.model, *b.model, true);
    for (const char* k : {"optimizer", "training_results", "ema", "updates", "wandb_id"})
      EXPECT_TRUE(a.root->get(k) && a.root->get(k)->is_none()) << k;
  }
}

// The torch predictions of a yolov7-tiny checkpoint written by us (attempt_load: fused, fp32).
TEST(CheckpointWriter, TinyForwardMatchesTorchOnOurFile) {
  auto model = graph::load_model(kFix + "/yolov7-tiny/model.pt");
  std::string dir = y7::test::scratch("ckpt_tiny");
  save_stripped_checkpoint(dir + "/tiny.pt", *model);
  // `yolo7 forward --fuse` on our file (attempt_load also fuses)
  auto r = y7::test::run_cli("forward --weights " + dir + "/tiny.pt --input " + kData + "/tiny_input.npy --out " + dir +
                             "/pred.npy --fuse");
  ASSERT_EQ(r.code, 0) << r.out;
  Tensor pred = read_npy(dir + "/pred.npy");
  Tensor ref = read_npy(kData + "/tiny_torch_pred1.npy");
  double scale = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, double(std::abs(ref.data<float>()[i])));
  double d = diff_f64(pred, ref);
  std::printf("tiny: yolo7 forward on our checkpoint vs torch attempt_load on it: max|d| %.3g (max |pred| %.1f)\n", d,
              scale);
  EXPECT_LT(d, 1e-5 * scale);
}

// A checkpoint written by a real `yolo7 train` run (tests/data/trained, made by
// tools/dev/check_trained_checkpoint.py): torch 1.13 loaded it with upstream's attempt_load and
// predicted torch_pred.npy; `yolo7 forward --fuse` on the same file must agree. (The same script
// checks that train.py --resume's steps accept the run's full epoch_000.pt: strict state_dict and
// optimizer loads.)
TEST(CheckpointWriter, TrainedCheckpointPredictsLikeTorch) {
  const std::string d = std::string(Y7_TEST_DATA) + "/trained";
  std::string dir = y7::test::scratch("ckpt_trained");
  auto r = y7::test::run_cli("forward --weights " + d + "/last.pt --input " + d + "/input.npy --out " + dir +
                             "/pred.npy --fuse");
  ASSERT_EQ(r.code, 0) << r.out;
  Tensor pred = read_npy(dir + "/pred.npy"), ref = read_npy(d + "/torch_pred.npy");
  ASSERT_EQ(shape_str(pred.sizes()), shape_str(ref.sizes()));
  Tensor p = pred.contiguous(), q = ref.contiguous();
  const int64_t no = ref.size(2);
  double dbox = 0, dscore = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    double e = std::abs(double(p.data<float>()[i]) - double(q.data<float>()[i]));
    (i % no < 4 ? dbox : dscore) = std::max(i % no < 4 ? dbox : dscore, e);
  }
  std::printf("yolo7-trained last.pt: forward vs torch attempt_load: boxes %.3g px, scores %.3g\n", dbox, dscore);
  EXPECT_LT(dbox, 1e-3);
  EXPECT_LT(dscore, 1e-5);
}

// Fused writes (Conv -> Sequential(conv, act), RepConv deploy, IDetect/IAuxDetect -> Detect) read
// back into fused models whose forward equals the fused original.
TEST(CheckpointWriter, FusedAndFp32RoundTrip) {
  for (const char* name : {"yolov7-tiny", "yolov7", "yolov7-w6"}) {
    SCOPED_TRACE(name);
    std::string src = kFix + "/" + name + "/model.pt";
    auto model = graph::load_model(src);
    Tensor x2 = read_npy(kFix + "/" + name + "/input.npy");
    Tensor x = Tensor::from_storage(x2.storage(), DType::F32, {1, 3, x2.size(2), x2.size(3)}, x2.strides(), 0);
    NoGradGuard ng;
    if (std::string(name) == "yolov7-tiny") {  // fp32 files: same tensors, same outputs
      std::string out32 = tmp_path(std::string(name) + "-32.pt");
      save_stripped_checkpoint(out32, *model, false);
      auto m32 = graph::load_model(out32);
      Checkpoint c32 = load_checkpoint(out32);
      fs::remove(out32);
      EXPECT_EQ(c32.model->state.begin()->second.dtype(), DType::F32);
      EXPECT_EQ(diff_f64(m32->forward(x).pred, model->forward(x).pred), 0.0);
      continue;
    }
    model->fuse();
    std::string out = tmp_path(std::string(name) + "-fused.pt");
    save_stripped_checkpoint(out, *model, false);
    Checkpoint c = load_checkpoint(out);
    auto back = graph::load_model(out);
    fs::remove(out);
    EXPECT_TRUE(back->fused());
    EXPECT_EQ(c.model->detect_type, "Detect");
    EXPECT_EQ(diff_f64(back->forward(x).pred, model->forward(x).pred), 0.0);
  }
}

std::unique_ptr<graph::Model> from_record(const ModelRecord& r) {
  auto m = graph::Model::from_yaml(r.yaml);
  m->load_state_dict(r.state, true);
  m->names = r.names;
  return m;
}

// Full training checkpoint: model + EMA + optimizer state (generic tree) + numpy best_fitness.
TEST(CheckpointWriter, TrainingCheckpointRoundTrip) {
  std::string src = kFix + "/train-run/epoch_000.pt";
  Checkpoint b = load_checkpoint(src);
  ASSERT_TRUE(b.model && b.ema);
  auto model = from_record(*b.model), ema = from_record(*b.ema);
  TrainingCheckpoint t;
  t.epoch = 5;
  t.best_fitness = 0.125;
  t.training_results = "results\n";
  t.model = model.get();
  t.ema = ema.get();
  t.updates = b.updates;
  t.optimizer = py::from_pickle(*b.root->get("optimizer"));
  t.model_attrs.emplace_back("nc", py::from_pickle(*b.root->get("model")->get("nc")));
  std::string out = tmp_path("train.pt");
  save_training_checkpoint(out, t);
  Checkpoint a = load_checkpoint(out);
  fs::remove(out);
  EXPECT_EQ(a.epoch, 5);
  ASSERT_TRUE(a.best_fitness);
  EXPECT_EQ(*a.best_fitness, 0.125);
  EXPECT_EQ(a.updates, b.updates);
  EXPECT_EQ(a.root->get("training_results")->as_string(), "results\n");
  ASSERT_TRUE(a.model && a.ema);
  expect_same_record(*a.model, *b.model, true);
  expect_same_record(*a.ema, *b.ema, true);
  EXPECT_EQ(a.model->nc, 6);
  EXPECT_TRUE(a.root->get("model")->get("training")->boolean);
  EXPECT_FALSE(a.root->get("ema")->get("training")->boolean);
  // optimizer: every momentum buffer and param group value as read from upstream's file
  const PickleValue *oa = a.root->get("optimizer"), *ob = b.root->get("optimizer");
  const PickleValue *sa = oa->get("state"), *sb = ob->get("state");
  ASSERT_EQ(sa->entries.size(), sb->entries.size());
  for (size_t i = 0; i < sb->entries.size(); ++i) {
    EXPECT_EQ(sa->entries[i].first->as_int(), sb->entries[i].first->as_int());
    EXPECT_TRUE(bit_equal(sa->entries[i].second->get("momentum_buffer")->tensor,
                          sb->entries[i].second->get("momentum_buffer")->tensor));
  }
  const PickleValue *ga = oa->get("param_groups"), *gb = ob->get("param_groups");
  ASSERT_EQ(ga->items.size(), gb->items.size());
  for (size_t g = 0; g < gb->items.size(); ++g) {
    ASSERT_EQ(ga->items[g]->entries.size(), gb->items[g]->entries.size());
    for (size_t e = 0; e < gb->items[g]->entries.size(); ++e) {
      const PickleValue *va = ga->items[g]->entries[e].second, *vb = gb->items[g]->entries[e].second;
      EXPECT_EQ(ga->items[g]->entries[e].first->str, gb->items[g]->entries[e].first->str);
      if (vb->is_number()) EXPECT_EQ(va->number(), vb->number());
      else if (vb->kind == PickleValue::Kind::List) EXPECT_EQ(va->items.size(), vb->items.size());
      else EXPECT_EQ(va->kind, vb->kind);
    }
  }
}

// yolo7 convert: stripped (fused fp32) and --full files read back; bad usage is a one-line error.
TEST(CheckpointWriter, ConvertCli) {
  std::string dir = y7::test::scratch("convert");
  auto r = y7::test::run_cli("convert --weights " + kFix + "/yolov7-tiny/model.pt --out " + dir + "/f.pt --fuse --fp32");
  ASSERT_EQ(r.code, 0) << r.out;
  auto m = graph::load_model(dir + "/f.pt");
  EXPECT_TRUE(m->fused());
  Checkpoint c = load_checkpoint(dir + "/f.pt");
  EXPECT_EQ(c.model->state.at("model.0.conv.weight").dtype(), DType::F32);
  EXPECT_TRUE(c.model->state.count("model.0.conv.bias"));
  r = y7::test::run_cli("convert --full --weights " + kFix + "/train-run/epoch_000.pt --out " + dir + "/e.pt");
  ASSERT_EQ(r.code, 0) << r.out;
  Checkpoint e = load_checkpoint(dir + "/e.pt"), o = load_checkpoint(kFix + "/train-run/epoch_000.pt");
  EXPECT_EQ(e.epoch, o.epoch);
  EXPECT_EQ(e.best_fitness, o.best_fitness);
  EXPECT_EQ(e.updates, o.updates);
  ASSERT_TRUE(e.ema && e.model);
  expect_same_record(*e.ema, *o.ema, true);
  EXPECT_EQ(e.root->get("optimizer")->get("state")->entries.size(), o.root->get("optimizer")->get("state")->entries.size());
  r = y7::test::run_cli("convert --weights " + kFix + "/yolov7-tiny/model.pt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error: convert: --out is required"), std::string::npos) << r.out;
  r = y7::test::run_cli("convert --weights " + dir + "/missing.pt --out " + dir + "/x.pt");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(dir + "/x.pt"));
}

TEST(CheckpointWriter, ErrorsAreOneLine) {
  auto model = graph::load_model(kFix + "/yolov7-tiny/model.pt");
  try {
    save_stripped_checkpoint("/nonexistent-dir/x/y.pt", *model);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_NE(m.find("/nonexistent-dir/x/y.pt"), std::string::npos) << m;
  }
  // a failed write leaves no temporary file behind
  ZipWriter* z = new ZipWriter(tmp_path("partial.pt"));
  z->add("a/data.pkl", "x", 1);
  delete z;
  EXPECT_FALSE(fs::exists(tmp_path("partial.pt")));
  for (auto& e : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_EQ(e.path().filename().string().find("y7_ckw_" + std::to_string(::getpid()) + "_partial.pt.tmp"),
              std::string::npos);
}

}  // namespace
