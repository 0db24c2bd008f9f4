// Upstream .pt checkpoints (io/checkpoint.h) against the upstream fixtures. Expected names, counts,
// shapes and values were read once with /usr/bin/python3 + torch 1.13 from the same files
// (torch.load(...)['model'].state_dict(), sum of parameters' numel) and are hard-coded here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/zip.h"

using namespace y7;
using namespace y7::io;
namespace fs = std::filesystem;
using K = PickleValue::Kind;

namespace y7test {
std::string make_test_zip(const std::vector<std::pair<std::string, std::string>>& files, bool zip64,
                          const std::vector<int>& methods);
}

namespace {

const std::string kFix = Y7_SHARED_FIXTURES;

struct Expected {
  const char* dir;
  size_t entries;
  int64_t params;
  const char* detect;
  const char* first;
  const char* last;
};
const Expected kExpected[] = {
    {"yolov7-d6", 1028, 2649572, "IAuxDetect", "model.1.conv.weight", "model.166.im.3.implicit"},
    {"yolov7-deploy", 560, 644485, "Detect", "model.0.conv.weight", "model.105.m.2.bias"},
    {"yolov7-e6", 896, 1965236, "IAuxDetect", "model.1.conv.weight", "model.144.im.3.implicit"},
    {"yolov7-e6e", 1490, 2826964, "IAuxDetect", "model.1.conv.weight", "model.265.im.3.implicit"},
    {"yolov7-tiny-deploy", 338, 435685, "Detect", "model.0.conv.weight", "model.77.m.2.bias"},
    {"yolov7-tiny", 344, 436674, "IDetect", "model.0.conv.weight", "model.77.im.2.implicit"},
    {"yolov7-w6-deploy", 628, 1180556, "Detect", "model.1.conv.weight", "model.118.m.3.bias"},
    {"yolov7-w6", 668, 1458516, "IAuxDetect", "model.1.conv.weight", "model.122.im.3.implicit"},
    {"yolov7", 566, 645474, "IDetect", "model.0.conv.weight", "model.105.im.2.implicit"},
    {"yolov7x", 644, 1197410, "IDetect", "model.0.conv.weight", "model.121.im.2.implicit"},
};

std::vector<double> values(const Tensor& t) {
  Tensor f = t.reshape({-1});
  std::vector<double> v;
  for (int64_t i = 0; i < f.numel(); ++i) v.push_back(f.item({i}));
  return v;
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST(Checkpoint, EveryFixtureModelLoads) {
  size_t seen = 0;
  for (auto& d : fs::directory_iterator(kFix)) {
    fs::path pt = d.path() / "model.pt";
    if (!fs::exists(pt)) continue;
    ++seen;
    std::string dir = d.path().filename().string();
    SCOPED_TRACE(dir);
    Checkpoint ck = load_checkpoint(pt.string());
    ASSERT_TRUE(ck.model.has_value());
    EXPECT_FALSE(ck.ema.has_value());
    EXPECT_EQ(ck.epoch, -1);
    EXPECT_FALSE(ck.updates.has_value());
    const ModelRecord& m = *ck.model;
    const Expected* e = nullptr;
    for (auto& x : kExpected)
      if (dir == x.dir) e = &x;
    ASSERT_NE(e, nullptr) << "unexpected fixture folder";
    EXPECT_EQ(m.state.size(), e->entries);
    EXPECT_EQ(m.order.size(), e->entries);
    EXPECT_EQ(m.num_parameters(), e->params);
    EXPECT_EQ(m.detect_type, e->detect);
    EXPECT_EQ(m.order.front(), e->first);
    EXPECT_EQ(m.order.back(), e->last);
    EXPECT_FALSE(m.has_fused_layers);
    EXPECT_EQ(m.nc, 80);
    EXPECT_EQ(m.names.size(), 80u);
    EXPECT_EQ(m.names[7], "7");
    for (auto& [name, t] : m.state) {
      bool counter = name.size() > 19 && name.substr(name.size() - 19) == "num_batches_tracked";
      EXPECT_EQ(t.dtype(), counter ? DType::I64 : DType::F16) << name;
      EXPECT_EQ(m.buffers.count(name) > 0,
                counter || name.find("running_") != std::string::npos || name.find("anchor") != std::string::npos)
          << name;
    }
    // yaml and stride agree with meta.json (written by the fixture script)
    YAML::Node meta = YAML::LoadFile((d.path() / "meta.json").string());
    ASSERT_TRUE(m.yaml.IsMap());
    EXPECT_EQ(m.yaml["nc"].as<int>(), 80);
    EXPECT_TRUE(m.yaml["backbone"].IsSequence());
    EXPECT_TRUE(m.yaml["head"].IsSequence());
    EXPECT_TRUE(m.yaml["anchors"].IsSequence());
    EXPECT_EQ(m.yaml["width_multiple"].as<double>(), meta["width_multiple"].as<double>());
    ASSERT_EQ(m.stride.size(), meta["stride"].size());
    for (size_t i = 0; i < m.stride.size(); ++i) EXPECT_EQ(m.stride[i], meta["stride"][i].as<float>());
    EXPECT_EQ(m.detect_type, meta["detect"].as<std::string>());
  }
  EXPECT_EQ(seen, std::size(kExpected));
}

TEST(Checkpoint, Yolov7ValuesShapesAndYaml) {
  Checkpoint ck = load_checkpoint(kFix + "/yolov7/model.pt");
  const ModelRecord& m = *ck.model;
  const Tensor& w = m.state.at("model.0.conv.weight");
  EXPECT_EQ(w.sizes(), (Shape{8, 3, 3, 3}));
  EXPECT_EQ(w.strides(), (Shape{27, 9, 3, 1}));
  std::vector<double> v = values(w);
  EXPECT_EQ(v[0], 0.0134429931640625);
  EXPECT_EQ(v[1], -0.11590576171875);
  EXPECT_EQ(v[2], 0.061279296875);
  EXPECT_EQ(v[3], 0.060394287109375);
  EXPECT_EQ(w.item({7, 2, 2, 2}), -0.0266876220703125);
  const Tensor& anchors = m.state.at("model.105.anchors");
  EXPECT_EQ(anchors.sizes(), (Shape{3, 3, 2}));
  std::vector<double> a = values(anchors);
  EXPECT_EQ(std::vector<double>(a.begin(), a.begin() + 6), (std::vector<double>{1.5, 2.0, 2.375, 4.5, 5.0, 3.5}));
  EXPECT_EQ(m.state.at("model.105.anchor_grid").sizes(), (Shape{3, 1, 3, 1, 1, 2}));
  std::vector<double> rv = values(m.state.at("model.0.bn.running_var"));
  EXPECT_EQ(rv[0], 0.75341796875);
  EXPECT_EQ(rv[1], 0.7548828125);
  EXPECT_EQ(rv[2], 0.7529296875);
  EXPECT_EQ(m.state.at("model.0.bn.num_batches_tracked").item(), 7.0);
  EXPECT_EQ(m.state.at("model.105.ia.0.implicit").sizes(), (Shape{1, 32, 1, 1}));
  std::vector<double> im = values(m.state.at("model.105.im.2.implicit"));
  EXPECT_EQ(im[0], 0.984375);
  EXPECT_EQ(im[1], 0.97119140625);

  const YAML::Node& y = m.yaml;
  EXPECT_EQ(y["anchors"].size(), 3u);
  EXPECT_EQ(y["anchors"][2][5].as<int>(), 401);
  EXPECT_EQ(y["backbone"].size(), 51u);
  EXPECT_EQ(y["head"].size(), 55u);
  EXPECT_EQ(y["backbone"][1][2].as<std::string>(), "Conv");
  EXPECT_EQ(y["backbone"][1][3][1].as<int>(), 3);
  const YAML::Node last = y["head"][54];
  EXPECT_EQ(last[0][2].as<int>(), 104);
  EXPECT_EQ(last[2].as<std::string>(), "IDetect");
  EXPECT_EQ(last[3][1].as<std::string>(), "anchors");
  EXPECT_EQ(y["ch"].as<int>(), 3);
  EXPECT_EQ(y["width_multiple"].as<double>(), 0.125);
  EXPECT_EQ(y["depth_multiple"].Scalar(), "1.0");
  // the cfg's "[None, 2, 'nearest']" was read by yaml.safe_load, so the model holds the string 'None'
  int upsample = 0;
  for (const auto& layer : y["head"])
    if (layer[2].as<std::string>() == "nn.Upsample") {
      ++upsample;
      EXPECT_EQ(layer[3][0].as<std::string>(), "None");
      EXPECT_EQ(layer[3][2].as<std::string>(), "nearest");
    }
  EXPECT_EQ(upsample, 2);
}

TEST(Checkpoint, PickleToYaml) {
  // {'a': None, 'b': [0.1, 1.0, 3, True, 'x'], 7: (1e+16,)} written by CPython pickle, protocol 2
  PickleResult r = unpickle(std::string("\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x4e\x58\x01\x00\x00\x00\x62\x71\x02\x5d\x71\x03\x28\x47\x3f\xb9\x99\x99\x99\x99\x99\x9a\x47\x3f\xf0\x00\x00\x00\x00\x00\x00\x4b\x03\x88\x58\x01\x00\x00\x00\x78\x71\x04\x65\x4b\x07\x47\x43\x41\xc3\x79\x37\xe0\x80\x00\x85\x71\x05\x75\x2e", 73));
  YAML::Node y = pickle_to_yaml(*r.root);
  EXPECT_TRUE(y["a"].IsNull());
  EXPECT_EQ(y["b"][0].Scalar(), "0.1");
  EXPECT_EQ(y["b"][0].as<double>(), 0.1);
  EXPECT_EQ(y["b"][1].Scalar(), "1.0");
  EXPECT_EQ(y["b"][2].as<int>(), 3);
  EXPECT_EQ(y["b"][3].as<bool>(), true);
  EXPECT_EQ(y["b"][4].as<std::string>(), "x");
  EXPECT_EQ(y["7"][0].as<double>(), 1e16);
}

TEST(Checkpoint, TinyHeadValues) {
  Checkpoint ck = load_checkpoint(kFix + "/yolov7-tiny/model.pt");
  const Tensor& w = ck.model->state.at("model.77.m.2.weight");
  EXPECT_EQ(w.sizes(), (Shape{255, 128, 1, 1}));
  std::vector<double> v = values(w);
  EXPECT_EQ(v[v.size() - 3], -0.0487060546875);
  EXPECT_EQ(v[v.size() - 2], -0.054901123046875);
  EXPECT_EQ(v[v.size() - 1], 0.021209716796875);
  std::vector<double> b = values(ck.model->state.at("model.77.m.2.bias"));
  EXPECT_EQ(b[0], -0.313232421875);
  EXPECT_EQ(b[1], -2.333984375);
  Checkpoint e6e = load_checkpoint(kFix + "/yolov7-e6e/model.pt");
  EXPECT_EQ(e6e.model->state.at("model.265.anchor_grid").sizes(), (Shape{4, 1, 3, 1, 1, 2}));
  EXPECT_EQ(e6e.model->state.at("model.265.m2.0.weight").sizes(), (Shape{255, 40, 1, 1}));
}

TEST(Checkpoint, TrainingCheckpointWithEmaAndOptimizer) {
  Checkpoint ck = load_checkpoint(kFix + "/train-run/epoch_000.pt");
  ASSERT_TRUE(ck.model && ck.ema);
  EXPECT_EQ(ck.epoch, 0);
  ASSERT_TRUE(ck.best_fitness.has_value());
  EXPECT_EQ(*ck.best_fitness, 0.0);
  ASSERT_TRUE(ck.updates.has_value());
  EXPECT_EQ(*ck.updates, 2);
  for (const ModelRecord* m : {&*ck.model, &*ck.ema}) {
    EXPECT_EQ(m->state.size(), 344u);
    EXPECT_EQ(m->detect_type, "IDetect");
    EXPECT_EQ(m->nc, 6);
    EXPECT_EQ(m->yaml["nc"].as<int>(), 6);
    EXPECT_EQ(m->yaml["width_multiple"].as<double>(), 0.25);
    ASSERT_EQ(m->names.size(), 6u);
    EXPECT_EQ(m->names[0], "circle");
    EXPECT_EQ(m->names[2], "triangle");
    EXPECT_EQ(m->state.at("model.0.conv.weight").dtype(), DType::F16);
  }
  std::vector<double> ema = values(ck.ema->state.at("model.0.conv.weight"));
  EXPECT_EQ(ema[0], 0.09906005859375);
  EXPECT_EQ(ema[1], -0.0850830078125);
  EXPECT_EQ(ema[2], -0.037445068359375);
  // the optimizer state stays reachable through the generic tree; momentum is a numpy float64
  const PickleValue* opt = ck.root->get("optimizer");
  ASSERT_TRUE(opt && opt->kind == K::Dict);
  EXPECT_EQ(opt->get("state")->entries.size(), 177u);
  const PickleValue* groups = opt->get("param_groups");
  ASSERT_TRUE(groups && groups->kind == K::List && !groups->items.empty());
  const PickleValue* momentum = groups->items[0]->get("momentum");
  ASSERT_TRUE(momentum && momentum->kind == K::Float);
  EXPECT_EQ(momentum->real, 0.8001370000000001);
  const PickleValue* buf0 = opt->get("state")->entries[0].second->get("momentum_buffer");
  ASSERT_TRUE(buf0 && buf0->kind == K::Tensor);
  EXPECT_EQ(buf0->tensor.dtype(), DType::F32);
  const PickleValue* results = ck.root->get("training_results");
  ASSERT_TRUE(results && results->kind == K::String);
  EXPECT_EQ(results->str.substr(0, 17), "       0/1       ");
  // the hyp attribute of the model (a plain dict)
  const PickleValue* hyp = ck.root->get("model")->get("hyp");
  ASSERT_TRUE(hyp && hyp->kind == K::Dict);
  EXPECT_EQ(hyp->get("obj")->real, 0.04000000000000001);

  Checkpoint last = load_checkpoint(kFix + "/train-run/last.pt");
  EXPECT_EQ(last.epoch, -1);
  EXPECT_TRUE(last.model.has_value());
  EXPECT_FALSE(last.ema.has_value());
  EXPECT_EQ(last.model->state.size(), 344u);
}

TEST(Checkpoint, GradsTensorDict) {
  auto g = load_tensor_dict(kFix + "/yolov7/grads.pt");
  EXPECT_EQ(g.size(), 288u);
  Checkpoint ck = load_checkpoint(kFix + "/yolov7/model.pt");
  for (auto& [name, t] : g) {
    EXPECT_EQ(t.dtype(), DType::F32) << name;
    ASSERT_TRUE(ck.model->state.count(name)) << name;
    EXPECT_EQ(t.sizes(), ck.model->state.at(name).sizes()) << name;
    EXPECT_FALSE(ck.model->buffers.count(name)) << name;
  }
  std::vector<double> v = values(g.at("model.0.conv.weight"));
  EXPECT_EQ(float(v[0]), 0.31683313846588135f);
  EXPECT_EQ(float(v[1]), 0.10347491502761841f);
  EXPECT_EQ(float(v[2]), -0.015180304646492004f);
  EXPECT_THROW(load_tensor_dict(kFix + "/yolov7/model.pt"), Error);  // not a dict of tensors
}

TEST(Checkpoint, TensorsAreViewsOfTheMapping) {
  ZipArchive zip = ZipArchive::open(kFix + "/yolov7-tiny/model.pt");
  PickleResult r = load_torch_pickle(zip);
  Checkpoint ck = checkpoint_from_pickle(r);
  const uint8_t* lo = zip.source()->data();
  const uint8_t* hi = lo + zip.source()->size();
  for (auto& [name, t] : ck.model->state) {
    auto* p = static_cast<const uint8_t*>(t.raw_data());
    EXPECT_TRUE(p >= lo && p + t.nbytes() <= hi) << name;
  }
  // the mapping is private: writing through a view neither crashes nor changes the file
  Tensor w = ck.model->state.at("model.0.conv.weight");
  w.fill_(0.0);
  Checkpoint again = load_checkpoint(kFix + "/yolov7-tiny/model.pt");
  EXPECT_NE(max_abs(again.model->state.at("model.0.conv.weight")), 0.0);
}

TEST(Checkpoint, Zip64RewriteLoadsTheSame) {
  // Re-pack a real checkpoint with zip64 records and extra fields everywhere.
  std::string path = kFix + "/yolov7-tiny/model.pt";
  ZipArchive zip = ZipArchive::open(path);
  std::vector<std::pair<std::string, std::string>> files;
  for (auto& e : zip.entries()) files.emplace_back(e.name, std::string(zip.bytes(e)));
  std::string z64 = y7test::make_test_zip(files, true, {});
  Checkpoint a = load_checkpoint(path);
  Checkpoint b = load_checkpoint_from_memory(z64.data(), z64.size(), "zip64.pt");
  ASSERT_EQ(a.model->order, b.model->order);
  for (auto& [name, t] : a.model->state) EXPECT_EQ(max_abs_diff(t, b.model->state.at(name)), 0.0) << name;
  // and from memory without re-packing
  std::string raw = read_all(path);
  Checkpoint c = load_checkpoint_from_memory(raw.data(), raw.size());
  EXPECT_EQ(c.model->state.size(), a.model->state.size());
}

namespace {
// Minimal protocol-2 pickle pieces for hand-made checkpoints.
std::string i32(int32_t v) {
  std::string s = "J";
  for (int i = 0; i < 4; ++i) s += char((uint32_t(v) >> (8 * i)) & 0xFF);
  return s;
}
std::string S(const std::string& v) {
  std::string s = "X";
  for (int i = 0; i < 4; ++i) s += char((v.size() >> (8 * i)) & 0xFF);
  return s + v;
}
std::string G(const std::string& m, const std::string& n) { return "c" + m + "\n" + n + "\n"; }
std::string OD() { return G("collections", "OrderedDict") + ")R"; }
std::string T(const std::string& key, int numel) {  // 1-D float tensor over storage data/<key>
  return G("torch._utils", "_rebuild_tensor_v2") + "((" + S("storage") + G("torch", "FloatStorage") + S(key) + S("cpu") +
         i32(numel) + "tQ" + i32(0) + "(" + i32(numel) + "t(" + i32(1) + "t\x89" + OD() + "tR";
}
// An nn.Module-like object: NEWOBJ then BUILD with {_parameters, _buffers, _non_persistent..., _modules}
std::string M(const std::string& mod, const std::string& cls, const std::string& params, const std::string& bufs,
              const std::string& nonpersistent, const std::string& subs) {
  return G(mod, cls) + ")\x81}(" + S("_parameters") + OD() + "(" + params + "u" + S("_buffers") + OD() + "(" + bufs + "u" +
         S("_non_persistent_buffers_set") + G("__builtin__", "set") + "](" + nonpersistent + "e\x85R" + S("_modules") + OD() +
         "(" + subs + "u" + "ub";
}
}  // namespace

TEST(Checkpoint, NonPersistentBuffersAndFusedLayers) {
  std::string conv = M("torch.nn.modules.conv", "Conv2d", S("weight") + T("0", 4) + S("bias") + "N", "", "", "");
  std::string rep = M("models.common", "RepConv", "", "", "", S("rbr_reparam") + conv + S("rbr_identity") + "N");
  std::string model = M("models.yolo", "Model", "", S("a") + T("1", 2) + S("b") + T("1", 2), S("b"), S("0") + rep);
  std::string pkl = "\x80\x02}(" + S("model") + model + S("epoch") + i32(41) + "u.";
  std::string zip = y7test::make_test_zip({{"x/data.pkl", pkl}, {"x/data/0", std::string(16, '\0')},
                                           {"x/data/1", std::string(8, '\0')}}, false, {});
  Checkpoint ck = load_checkpoint_from_memory(zip.data(), zip.size());
  ASSERT_TRUE(ck.model.has_value());
  EXPECT_EQ(ck.epoch, 41);
  EXPECT_EQ(ck.model->order, (std::vector<std::string>{"a", "0.rbr_reparam.weight"}));  // 'b' is not persistent
  EXPECT_EQ(ck.model->buffers, (std::set<std::string>{"a"}));
  EXPECT_TRUE(ck.model->has_fused_layers);
  EXPECT_EQ(ck.model->num_parameters(), 4);
  EXPECT_TRUE(ck.model->detect_type.empty());
  // the same Conv without bn is a fused models.common.Conv
  std::string fconv = M("models.common", "Conv", "", "", "", S("conv") + conv);
  std::string pkl2 = "\x80\x02}(" + S("model") + M("models.yolo", "Model", "", "", "", S("0") + fconv) + "u.";
  std::string zip2 = y7test::make_test_zip({{"x/data.pkl", pkl2}, {"x/data/0", std::string(16, '\0')}}, false, {});
  EXPECT_TRUE(load_checkpoint_from_memory(zip2.data(), zip2.size()).model->has_fused_layers);
}
