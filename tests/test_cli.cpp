// End-to-end tests of the yolo7 command line against upstream fixtures.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "io/npy.h"

namespace fs = std::filesystem;
using namespace y7;
using y7::test::run_cli;

namespace {

std::vector<std::string> fixture_models() {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(test::fixtures()))
    if (fs::exists(e.path() / "model.pt") && fs::exists(e.path() / "nms.npy")) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// Upstream's agreement rule for decoded predictions [B,N,5+nc].
void expect_pred_close(const Tensor& got, const Tensor& ref, const std::string& what) {
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  Tensor g = got.contiguous(), r = ref.contiguous();
  const float *G = g.data<float>(), *R = r.data<float>();
  int64_t no = r.size(2), rows = r.numel() / no;
  double box_max = 0, dbox = 0, dscore = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int k = 0; k < 4; ++k) box_max = std::max(box_max, double(std::fabs(R[i * no + k])));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < no; ++k) {
      double d = std::fabs(G[i * no + k] - R[i * no + k]);
      (k < 4 ? dbox : dscore) = std::max(k < 4 ? dbox : dscore, d);
    }
  EXPECT_LE(dbox, 1e-5 * box_max + 1e-3) << what;
  EXPECT_LE(dscore, 1e-4) << what;
  std::printf("[ %s ] max |box diff| %.3g px, max |score diff| %.3g\n", what.c_str(), dbox, dscore);
}

}  // namespace

TEST(Cli, ForwardNmsMatchesUpstreamForEveryFixture) {
  auto models = fixture_models();
  ASSERT_GE(models.size(), 10u) << "fixtures not found in " << test::fixtures();
  std::string tmp = test::scratch("fwd_nms");
  for (const auto& m : models) {
    std::string dir = test::fixtures() + "/" + m, out = tmp + "/" + m + ".npy";
    auto r = run_cli("forward --weights " + dir + "/model.pt --input " + dir + "/input.npy --out " + out + " --nms");
    ASSERT_EQ(r.code, 0) << r.out;
    auto agr = test::compare_nms_rows(io::read_npy(out), io::read_npy(dir + "/nms.npy"));
    std::printf("[ %s ] nms: %lld of %lld reference rows matched (%lld ours), max coord diff %.3g px, max conf diff %.3g%s%s\n",
                m.c_str(), (long long)agr.matched, (long long)agr.ref_rows, (long long)agr.got_rows, agr.max_xy,
                agr.max_conf, agr.exact() ? "" : "; first difference: ", agr.first_mismatch.c_str());
    EXPECT_TRUE(agr.sorted) << m;
    // Where float noise of ~1e-7 leaves upstream's own choice among tied boxes open, the result
    // must still be a valid upstream NMS of the reference predictions under that tie.
    if (!agr.exact())
      EXPECT_EQ(test::nms_valid_under_ties(io::read_npy(out), io::read_npy(dir + "/eval_pred.npy"), 0.25, 0.45), "") << m;
    // Sanity of the checker itself: upstream's own rows are valid, and a dropped row is caught.
    Tensor ref = io::read_npy(dir + "/nms.npy");
    EXPECT_EQ(test::nms_valid_under_ties(ref, io::read_npy(dir + "/eval_pred.npy"), 0.25, 0.45), "") << m;
    if (ref.size(0) > 1 && ref.size(0) < 300)
      EXPECT_NE(test::nms_valid_under_ties(ref.slice(0, 1, ref.size(0)), io::read_npy(dir + "/eval_pred.npy"), 0.25, 0.45), "") << m;
  }
}

TEST(Cli, ForwardAndFusedForwardMatchUpstream) {
  std::string tmp = test::scratch("fwd");
  for (std::string m : {"yolov7-tiny", "yolov7-e6e", "yolov7-w6-deploy"}) {
    std::string dir = test::fixtures() + "/" + m;
    auto r = run_cli("forward --weights " + dir + "/model.pt --input " + dir + "/input.npy --out " + tmp + "/p.npy");
    ASSERT_EQ(r.code, 0) << r.out;
    expect_pred_close(io::read_npy(tmp + "/p.npy"), io::read_npy(dir + "/eval_pred.npy"), m + " eval");
    r = run_cli("forward --fuse --weights " + dir + "/model.pt --input " + dir + "/input.npy --out " + tmp + "/f.npy");
    ASSERT_EQ(r.code, 0) << r.out;
    expect_pred_close(io::read_npy(tmp + "/f.npy"), io::read_npy(dir + "/fused_pred.npy"), m + " fused");
  }
}

TEST(Cli, ForwardRejectsBadInput) {
  std::string dir = test::fixtures() + "/yolov7-tiny", tmp = test::scratch("fwd_bad");
  Tensor x = Tensor::zeros({1, 3, 100, 64});
  io::write_npy(tmp + "/odd.npy", x);
  auto r = run_cli("forward --weights " + dir + "/model.pt --input " + tmp + "/odd.npy --out " + tmp + "/o.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("multiple of the model's max stride 32"), std::string::npos) << r.out;
  io::write_npy(tmp + "/c4.npy", Tensor::zeros({1, 4, 64, 64}));
  r = run_cli("forward --weights " + dir + "/model.pt --input " + tmp + "/c4.npy --out " + tmp + "/o.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("input must be [B,3,H,W]"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp + "/o.npy"));
  r = run_cli("forward --input x.npy --out y.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--weights is required"), std::string::npos);
  r = run_cli("forward --weights " + dir + "/model.pt --bogus 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown option --bogus"), std::string::npos);
  r = run_cli("nosuchcommand");
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, InfoMatchesUpstreamModelSummary) {
  // Layer and parameter counts as upstream's model_info prints them for these checkpoints.
  auto r = run_cli("info --weights " + test::fixtures() + "/yolov7/model.pt");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Model Summary: 415 layers, 645474 parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("models.yolo.IDetect"), std::string::npos);
  r = run_cli("info --weights " + test::fixtures() + "/yolov7-e6e/model.pt");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Model Summary: 1063 layers"), std::string::npos) << r.out;
}

TEST(Cli, DetectWritesImagesLabelsAndIncrementsRuns) {
  std::string tmp = test::scratch("detect");
  std::string w = test::fixtures() + "/yolov7/model.pt", src = test::fixtures() + "/train-run/dataset/images/val";
  std::string common = "detect --weights " + w + " --source " + src + " --img-size 192 --project " + tmp + " --conf-thres 0.25";
  auto r = run_cli(common + " --save-txt --save-conf");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("image 1/4 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Results saved to " + tmp + "/exp"), std::string::npos) << r.out;
  for (std::string f : {"00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"}) EXPECT_TRUE(fs::exists(tmp + "/exp/" + f)) << f;
  int labels = 0;
  for (auto& e : fs::directory_iterator(tmp + "/exp/labels")) {
    ++labels;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      int cls;
      float x, y, ww, hh, conf;
      ASSERT_EQ(std::sscanf(line.c_str(), "%d %f %f %f %f %f", &cls, &x, &y, &ww, &hh, &conf), 6) << line;
      EXPECT_TRUE(cls >= 0 && cls < 80 && x >= 0 && x <= 1 && y >= 0 && y <= 1 && conf >= 0.25f && conf <= 1) << line;
    }
  }
  EXPECT_GT(labels, 0);
  r = run_cli(common + " --nosave");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(tmp + "/exp2"));
  EXPECT_FALSE(fs::exists(tmp + "/exp2/00000.jpg"));
  r = run_cli(common + " --nosave --exist-ok");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(fs::exists(tmp + "/exp3"));
  r = run_cli("detect --weights " + w + " --source " + tmp + "/nothing_here");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
}
