// graph/ fusion: upstream Model.fuse() (RepConv re-parameterization, Conv+BN folding, implicit
// folding into the head convs) against the upstream fused_pred.npy fixtures.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli_util.h"
#include "graph/model.h"
#include "io/checkpoint.h"
#include "io/npy.h"

using namespace y7;
using namespace y7::test;

namespace {

class FusionFixture : public testing::TestWithParam<std::string> {};

TEST_P(FusionFixture, FusedForwardMatchesUpstream) {
  std::string dir = fixtures_dir() + "/" + GetParam();
  auto model = graph::load_model(dir + "/model.pt");
  Tensor x = io::read_npy(dir + "/input.npy");
  model->fuse();
  ASSERT_TRUE(model->fused());
  graph::Model::Output out = model->forward(x);
  Tensor ref = io::read_npy(dir + "/fused_pred.npy");
  auto d = compare_pred(out.pred, ref);
  std::printf("[ %s fused ] pred %s: max |box diff| %.3g px (tol %.3g), max |score diff| %.3g\n", GetParam().c_str(),
              shape_str(ref.sizes()).c_str(), d[0], d[1], d[2]);
  // the fused graph has no BatchNorm and no RepConv branches left
  for (auto& kv : model->state_dict()) {
    EXPECT_EQ(kv.first.find(".bn."), std::string::npos) << kv.first;
    EXPECT_EQ(kv.first.find("rbr_dense"), std::string::npos) << kv.first;
    EXPECT_EQ(kv.first.find("rbr_identity"), std::string::npos) << kv.first;
  }
  // idempotent
  model->fuse();
  EXPECT_EQ(max_abs_diff(model->forward(x).pred, out.pred), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Upstream, FusionFixture, testing::ValuesIn(model_fixtures()), fixture_param_name);

// Parameter and module counts before/after fusion, as upstream's model.parameters() and
// len(list(model.modules())) give them for the fixture models (torch 1.13, upstream Model.fuse()).
TEST(Fusion, ParameterAndModuleCountsMatchUpstream) {
  struct Ref {
    const char* name;
    int64_t params;
    int modules;
    int64_t fused_params;
    int fused_modules;
  };
  const Ref refs[] = {
      {"yolov7", 645474, 415, 631386, 314},          {"yolov7-d6", 2649572, 733, 2642460, 566},
      {"yolov7-deploy", 644485, 407, 630397, 306},   {"yolov7-e6", 1965236, 645, 1959308, 500},
      {"yolov7-e6e", 2826964, 1063, 2817756, 819},   {"yolov7-tiny", 436674, 263, 434826, 208},
      {"yolov7-tiny-deploy", 435685, 255, 433837, 200}, {"yolov7-w6", 1458516, 477, 1454124, 370},
      {"yolov7-w6-deploy", 1180556, 446, 1176564, 343}, {"yolov7x", 1197410, 467, 1193274, 362},
  };
  for (const Ref& r : refs) {
    io::Checkpoint ck = io::load_checkpoint(fixtures_dir() + "/" + r.name + "/model.pt");
    auto m = graph::Model::from_yaml(ck.model->yaml);
    EXPECT_EQ(m->num_parameters(), r.params) << r.name;
    EXPECT_EQ(m->num_modules(), r.modules) << r.name;
    m->fuse();
    EXPECT_EQ(m->num_parameters(), r.fused_params) << r.name;
    EXPECT_EQ(m->num_modules(), r.fused_modules) << r.name;
  }
}

// A fused state dict (upstream's names after fuse(): conv.bias, rbr_reparam.*, the implicit
// vectors kept) loads into a freshly fused model and reproduces the outputs exactly.
TEST(Fusion, FusedStateDictRoundTrip) {
  std::string dir = fixtures_dir() + "/yolov7";
  auto a = graph::load_model(dir + "/model.pt");
  a->fuse();
  auto sd = a->state_dict();
  EXPECT_TRUE(sd.count("model.102.rbr_reparam.weight"));
  EXPECT_TRUE(sd.count("model.102.rbr_reparam.bias"));
  EXPECT_TRUE(sd.count("model.0.conv.bias"));
  EXPECT_TRUE(sd.count("model.105.ia.0.implicit"));
  EXPECT_FALSE(sd.count("model.0.bn.weight"));
  io::Checkpoint ck = io::load_checkpoint(dir + "/model.pt");
  auto b = graph::Model::from_yaml(ck.model->yaml);
  EXPECT_THROW(b->load_state_dict(sd), Error);  // unfused layout: conv.bias unexpected / bn missing
  b->fuse();
  b->load_state_dict(sd);
  Tensor x = io::read_npy(dir + "/input.npy");
  EXPECT_EQ(max_abs_diff(a->forward(x).pred, b->forward(x).pred), 0.0);
}

// Fusing a RepConv + IDetect model changes the arithmetic but not the function: compare our own
// unfused and fused outputs on an input of another size (odd multiples of the stride).
TEST(Fusion, FusedAgreesWithUnfusedAtOtherSizes) {
  std::string dir = fixtures_dir() + "/yolov7-e6e";
  auto a = graph::load_model(dir + "/model.pt");
  auto b = graph::load_model(dir + "/model.pt");
  b->fuse();
  Tensor x = Tensor::empty({1, 3, 128, 64});
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float((i * 7919) % 1000) / 1000.f;
  auto ra = a->forward(x), rb = b->forward(x);
  auto d = compare_pred(rb.pred, ra.pred);
  std::printf("[ yolov7-e6e 128x64 ] fused vs unfused: box %.3g px, score %.3g\n", d[0], d[2]);
  // plain NCHW activations give the same results as the default channels-last ones
  b->channels_last = false;
  auto rc = b->forward(x);
  d = compare_pred(rc.pred, rb.pred);
  std::printf("[ yolov7-e6e 128x64 ] fused NCHW vs channels-last: box %.3g px, score %.3g\n", d[0], d[2]);
}

}  // namespace
