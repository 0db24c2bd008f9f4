// Data pipeline: data yaml, Dataset (upstream label rules, cache, rect shapes, letterboxed items vs
// upstream LoadImagesAndLabels output in tests/data/dataset), DataLoader, synthetic shapes set.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_util.h"
#include "io/data_yaml.h"
#include "io/image.h"
#include "io/npy.h"
#include "train/dataloader.h"
#include "train/dataset.h"
#include "train/shapes.h"

using namespace y7;
using namespace y7::train;
namespace fs = std::filesystem;

namespace {
std::string dpath(const std::string& f) { return std::string(Y7_TEST_DATA) + "/dataset/" + f; }
void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}
// A scratch copy of tests/data/dataset/set (the Dataset writes its cache next to the labels).
std::string copy_set(const std::string& name) {
  std::string d = test::scratch(name);
  fs::copy(dpath("set"), d + "/set", fs::copy_options::recursive);
  return d + "/set";
}
struct SetRef {
  std::vector<int> results;
  std::vector<std::string> files;
  std::vector<std::array<int, 2>> batch_shapes;
  struct It {
    std::string file;
    int h0, w0, nl;
    double rh, rw, pw, ph;
    std::vector<std::array<double, 6>> labels;
  };
  std::vector<It> items;
};
SetRef read_ref() {
  SetRef r;
  std::ifstream in(dpath("set_ref.txt"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k;
    ls >> k;
    if (k == "results") {
      for (int v; ls >> v;) r.results.push_back(v);
    } else if (k == "file") {
      std::string f;
      ls >> f;
      r.files.push_back(f);
    } else if (k == "batch_shape") {
      int h, w;
      ls >> h >> w;
      r.batch_shapes.push_back({h, w});
    } else if (k == "item") {
      SetRef::It it;
      int i;
      ls >> i >> it.file >> it.h0 >> it.w0 >> it.rh >> it.rw >> it.pw >> it.ph >> it.nl;
      r.items.push_back(it);
    } else if (k == "label") {
      std::array<double, 6> l;
      for (auto& v : l) ls >> v;
      r.items.back().labels.push_back(l);
    }
  }
  return r;
}
}  // namespace

TEST(Dataset, Img2LabelPathsAndLabelRules) {
  EXPECT_EQ(img2label_path("/d/images/train/a.jpg"), "/d/labels/train/a.txt");
  EXPECT_EQ(img2label_path("/d/images/x/images/b.PNG"), "/d/labels/x/images/b.txt");
  EXPECT_EQ(img2label_path("/d/imgs/c.jpeg"), "/d/imgs/c.txt");
  auto l = parse_labels("0 0.5 0.5 0.2 0.2\n3 0.1 0.2 0.05 0.1  \n\n");
  // a blank line inside makes a ragged array upstream (corrupt), a trailing one is stripped
  EXPECT_THROW(parse_labels("0 0.5 0.5 0.2 0.2\n\n3 0.1 0.2 0.05 0.1\n"), Error);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_FLOAT_EQ(l[1][0], 3);
  EXPECT_FLOAT_EQ(l[1][4], 0.1f);
  EXPECT_TRUE(parse_labels("  \n ").empty());
  // polygon rows (> 8 values) become their boxes
  auto p = parse_labels("1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n");
  ASSERT_EQ(p.size(), 1u);  // 9 values: a polygon
  EXPECT_NEAR(p[0][1], 0.3, 1e-6);
  EXPECT_NEAR(p[0][2], 0.4, 1e-6);
  EXPECT_NEAR(p[0][3], 0.4, 1e-6);
  EXPECT_NEAR(p[0][4], 0.4, 1e-6);
  EXPECT_THROW(parse_labels("0 0.5 0.5 0.2\n"), Error);
  EXPECT_THROW(parse_labels("0 0.5 0.5 0.2 0.2 0.1\n"), Error);
  EXPECT_THROW(parse_labels("-1 0.5 0.5 0.2 0.2\n"), Error);
  EXPECT_THROW(parse_labels("0 1.5 0.5 0.2 0.2\n"), Error);
  EXPECT_THROW(parse_labels("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"), Error);
  EXPECT_THROW(parse_labels("0 0.5 nan 0.2 0.2\n"), Error);
  EXPECT_THROW(parse_labels("0 0.5 x 0.2 0.2\n"), Error);
}

TEST(Dataset, RectBatchShapesLikeUpstream) {
  // hand-computed with upstream's formula: ceil(shape * 640 / 32 + 0.5) * 32
  auto s = rect_batch_shapes({0.5, 0.6, 1.0, 1.5, 2.0}, 2, 640, 32, 0.5);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], (std::array<int, 2>{416, 672}));  // maxi 0.6 < 1: [0.6, 1] -> ceil(12.5)=13 -> 416, ceil(20.5) -> 672
  EXPECT_EQ(s[1], (std::array<int, 2>{672, 672}));  // [1, 1.5]: neither rule -> [1, 1]
  EXPECT_EQ(s[2], (std::array<int, 2>{672, 352}));  // mini 2 > 1: [1, 0.5] -> ceil(10.5)=11 -> 352
  auto t = rect_batch_shapes({0.75}, 16, 640, 32, 0.0);
  EXPECT_EQ(t[0], (std::array<int, 2>{480, 640}));
}

TEST(Dataset, MatchesUpstreamLoadImagesAndLabels) {
  SetRef ref = read_ref();
  ASSERT_EQ(ref.results.size(), 5u);
  std::string set = copy_set("dataset_upstream");
  DatasetOptions o;
  o.img_size = 64, o.batch_size = 3, o.rect = true, o.pad = 0.5, o.stride = 32, o.verbose = false;
  for (int pass = 0; pass < 2; ++pass) {
    Dataset ds({set + "/images/train"}, o);
    EXPECT_EQ(ds.cache_loaded(), pass == 1);
    EXPECT_EQ(ds.cache_path(), set + "/labels/train.y7cache");
    const auto& st = ds.stats();
    EXPECT_EQ(st.found, ref.results[0]);
    EXPECT_EQ(st.missing, ref.results[1]);
    EXPECT_EQ(st.empty, ref.results[2]);
    EXPECT_EQ(st.corrupt, ref.results[3]);
    EXPECT_EQ(st.total, ref.results[4]);
    ASSERT_EQ(ds.size(), ref.files.size());
    for (size_t i = 0; i < ds.size(); ++i) EXPECT_EQ(fs::path(ds.files()[i]).filename().string(), ref.files[i]);
    EXPECT_EQ(ds.batch_shapes(), ref.batch_shapes);
    double max_label_err = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      Item it = ds.get(i, 123);
      const auto& r = ref.items[i];
      EXPECT_EQ(fs::path(it.path).filename().string(), r.file);
      EXPECT_EQ(it.h0, r.h0);
      EXPECT_EQ(it.w0, r.w0);
      EXPECT_DOUBLE_EQ(it.ratio_h, r.rh);
      EXPECT_DOUBLE_EQ(it.ratio_w, r.rw);
      EXPECT_DOUBLE_EQ(it.pad_w, r.pw);
      EXPECT_DOUBLE_EQ(it.pad_h, r.ph);
      Tensor img = io::read_npy(dpath("set_item" + std::to_string(i) + "_rgb.npy"));
      ASSERT_EQ(img.size(0), it.img.h);
      ASSERT_EQ(img.size(1), it.img.w);
      EXPECT_TRUE(std::equal(it.img.data.begin(), it.img.data.end(), img.data<uint8_t>())) << "item " << i;
      ASSERT_EQ(int(it.labels.size()), r.nl);
      for (size_t k = 0; k < it.labels.size(); ++k)
        for (int c = 1; c < 6; ++c) max_label_err = std::max(max_label_err, std::abs(it.labels[k][c] - r.labels[k][c]));
    }
    EXPECT_LE(max_label_err, 1e-6);
  }
  EXPECT_FALSE(fs::exists(set + "/labels/train.cache"));  // upstream's cache name is never written
  // a changed label file invalidates the cache; the now-corrupt file is skipped
  write(set + "/labels/train/c.txt", "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n");
  Dataset ds2({set + "/images/train"}, o);
  EXPECT_FALSE(ds2.cache_loaded());
  EXPECT_EQ(ds2.stats().corrupt, ref.results[3] + 1);
  EXPECT_EQ(ds2.size(), ref.files.size() - 1);
  // a damaged cache file is rebuilt, not trusted
  write(set + "/labels/train.y7cache", "Y7LCACH1garbage");
  Dataset ds3({set + "/images/train"}, o);
  EXPECT_FALSE(ds3.cache_loaded());
  EXPECT_EQ(ds3.size(), ds2.size());
}

TEST(Dataset, SourcesListFileGlobAndSingleCls) {
  std::string set = copy_set("dataset_sources");
  write(set + "/list.txt", "./images/train/a.png\n./images/train/b.png\n" + set + "/images/train/c.png\n");
  DatasetOptions o;
  o.img_size = 64, o.verbose = false, o.single_cls = true;
  Dataset a({set + "/list.txt"}, o);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a.cache_path(), set + "/list.y7cache");
  for (const auto& l : a.labels())
    for (const auto& r : l) EXPECT_EQ(r[0], 0.f);
  Dataset g({set + "/images/train/[ab].png"}, o);
  EXPECT_EQ(g.size(), 2u);
  EXPECT_THROW(Dataset({set + "/nope"}, o), Error);
  fs::create_directories(set + "/empty");
  EXPECT_THROW(Dataset({set + "/empty"}, o), Error);
  o.augment = true;  // training needs labels
  write(set + "/nolabels/images/x.png", "");
  io::save_image(set + "/nolabels/images/x.png", io::Image(20, 20, 3, 7));
  EXPECT_THROW(Dataset({set + "/nolabels/images"}, o), Error);
}

TEST(Dataset, DataYaml) {
  std::string d = test::scratch("data_yaml");
  fs::create_directories(d + "/ds/images/train");
  fs::create_directories(d + "/ds/images/val");
  write(d + "/ds/data.yaml", "train: [images/train, " + d + "/ds/images/val]\nval: ds/images/val\nnc: 2\nnames: {0: a, 1: b}\n");
  auto c = io::load_data_yaml(d + "/ds/data.yaml");
  ASSERT_EQ(c.train.size(), 2u);
  EXPECT_EQ(c.train[0], d + "/ds/images/train");  // relative to the yaml's folder
  EXPECT_EQ(c.train[1], d + "/ds/images/val");
  EXPECT_EQ(c.val[0], d + "/ds/images/val");      // relative to the yaml folder's parent
  EXPECT_TRUE(c.test.empty());
  EXPECT_EQ(c.nc, 2);
  EXPECT_EQ(c.names, (std::vector<std::string>{"a", "b"}));
  write(d + "/bad1.yaml", "train: x\nnc: 3\nnames: [a, b]\n");
  EXPECT_THROW(io::load_data_yaml(d + "/bad1.yaml"), Error);
  write(d + "/bad2.yaml", "train: [x\n");
  EXPECT_THROW(io::load_data_yaml(d + "/bad2.yaml"), Error);
  write(d + "/bad3.yaml", "nc: 2\n");
  EXPECT_THROW(io::load_data_yaml(d + "/bad3.yaml"), Error);
  write(d + "/bad4.yaml", "train: {a: 1}\nnc: 1\n");
  EXPECT_THROW(io::load_data_yaml(d + "/bad4.yaml"), Error);
  EXPECT_THROW(io::load_data_yaml(d + "/missing.yaml"), Error);
  try {
    io::load_data_yaml(d + "/bad1.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(Shapes, LabelsMatchDrawnPixels) {
  std::string d = test::scratch("shapes");
  ShapesOptions so;
  so.n_train = 6, so.n_val = 2, so.size = 96, so.seed = 3;
  std::string yaml = write_shapes_dataset(d, so);
  auto cfg = io::load_data_yaml(yaml);
  EXPECT_EQ(cfg.nc, 6);
  EXPECT_EQ(cfg.names[5], "star");
  DatasetOptions o;
  o.img_size = 96, o.verbose = false;
  Dataset ds(cfg.train, o);
  ASSERT_EQ(ds.size(), 6u);
  int objects = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    ShapeImage ref = make_shape_image(96, shape_image_seed(3, 0, int(i)));
    io::Image img = io::load_image(ds.files()[i]);
    EXPECT_EQ(img.data, ref.img.data);  // PNG round trip is exact
    const auto& l = ds.labels()[i];
    ASSERT_EQ(l.size(), ref.objects.size());
    ASSERT_GE(l.size(), 1u);
    ASSERT_LE(l.size(), 6u);
    for (size_t k = 0; k < l.size(); ++k) {
      const auto& ob = ref.objects[k];
      ++objects;
      EXPECT_EQ(int(l[k][0]), ob.cls);
      // the label (6 decimals) is the tight box of the object's pixels
      const int x0 = int(std::lround((l[k][1] - l[k][3] / 2) * 96)), x1 = int(std::lround((l[k][1] + l[k][3] / 2) * 96));
      const int y0 = int(std::lround((l[k][2] - l[k][4] / 2) * 96)), y1 = int(std::lround((l[k][2] + l[k][4] / 2) * 96));
      EXPECT_EQ(x0, ob.x0);
      EXPECT_EQ(x1, ob.x1);
      EXPECT_EQ(y0, ob.y0);
      EXPECT_EQ(y1, ob.y1);
      int fx0 = 96, fy0 = 96, fx1 = -1, fy1 = -1;
      for (int y = std::max(0, y0 - 2); y < std::min(96, y1 + 2); ++y)
        for (int x = std::max(0, x0 - 2); x < std::min(96, x1 + 2); ++x)
          if (std::equal(ob.color.begin(), ob.color.end(), img.at(x, y)))
            fx0 = std::min(fx0, x), fy0 = std::min(fy0, y), fx1 = std::max(fx1, x + 1), fy1 = std::max(fy1, y + 1);
      EXPECT_EQ(fx0, x0);
      EXPECT_EQ(fy0, y0);
      EXPECT_EQ(fx1, x1);
      EXPECT_EQ(fy1, y1);
    }
  }
  EXPECT_GE(objects, 6);
  // deterministic per seed
  std::string d2 = test::scratch("shapes2");
  write_shapes_dataset(d2, so);
  for (const char* f : {"images/train/00004.png", "labels/train/00004.txt", "labels/val/00001.txt"}) {
    std::ifstream a(d + "/" + f, std::ios::binary), b(d2 + "/" + f, std::ios::binary);
    std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_FALSE(sa.empty());
    EXPECT_EQ(sa, sb) << f;
  }
  EXPECT_THROW(make_shape_image(8, 0), Error);
}

TEST(Dataset, AugmentedItemsValidAndReproducible) {
  std::string d = test::scratch("shapes_aug");
  ShapesOptions so;
  so.n_train = 8, so.n_val = 1, so.size = 64;
  write_shapes_dataset(d, so);
  DatasetOptions o;
  o.img_size = 64, o.augment = true, o.verbose = false;
  o.hyp.mixup = 0.5, o.hyp.degrees = 10, o.hyp.shear = 3, o.hyp.flipud = 0.5;
  Dataset ds({d + "/images/train"}, o);
  int nlabels = 0;
  for (size_t i = 0; i < 24; ++i) {
    Item a = ds.get(i % ds.size(), i), b = ds.get(i % ds.size(), i);
    EXPECT_EQ(a.img.w, 64);
    EXPECT_EQ(a.img.h, 64);
    EXPECT_EQ(a.img.data, b.img.data);
    ASSERT_EQ(a.labels.size(), b.labels.size());
    for (size_t k = 0; k < a.labels.size(); ++k) {
      EXPECT_EQ(a.labels[k], b.labels[k]);
      const auto& l = a.labels[k];
      ++nlabels;
      EXPECT_GE(l[1], 0);
      EXPECT_LT(l[1], 6);
      EXPECT_GT(l[4], 0);
      EXPECT_GT(l[5], 0);
      EXPECT_GE(l[2] - l[4] / 2, -1e-5);
      EXPECT_LE(l[2] + l[4] / 2, 1 + 1e-5);
      EXPECT_GE(l[3] - l[5] / 2, -1e-5);
      EXPECT_LE(l[3] + l[5] / 2, 1 + 1e-5);
    }
  }
  EXPECT_GT(nlabels, 10);
  Item x = ds.get(0, 1), y = ds.get(0, 2);
  EXPECT_NE(x.img.data, y.img.data);  // different seeds draw different augmentations
}

TEST(DataLoader, CollateWorkersAndShuffle) {
  std::string d = test::scratch("loader");
  ShapesOptions so;
  so.n_train = 10, so.n_val = 5, so.size = 64;
  write_shapes_dataset(d, so);
  AugmentHyp hyp;
  auto run = [&](int workers, int epoch) {
    auto p = make_train_loader({d + "/images/train"}, 64, 4, 32, hyp, workers, 7);
    p.loader->start_epoch(epoch);
    std::vector<Batch> out;
    for (Batch b; p.loader->next(b);) out.push_back(std::move(b));
    return out;
  };
  auto a = run(0, 0), b = run(3, 0), c = run(2, 1);
  ASSERT_EQ(a.size(), 3u);  // 10 images, batch 4: 4 + 4 + 2
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(a[2].imgs.sizes(), (Shape{2, 3, 64, 64}));
  bool epoch_differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(max_abs_diff(a[i].imgs, b[i].imgs), 0.0);
    ASSERT_EQ(a[i].targets.sizes(), b[i].targets.sizes());
    EXPECT_EQ(max_abs_diff(a[i].targets, b[i].targets), 0.0);
    epoch_differs |= a[i].targets.sizes() != c[i].targets.sizes() || max_abs_diff(a[i].imgs, c[i].imgs) != 0;
    const float* t = a[i].targets.data<float>();
    for (int64_t r = 0; r < a[i].targets.size(0); ++r) {
      EXPECT_GE(t[r * 6], 0);
      EXPECT_LT(t[r * 6], float(a[i].imgs.size(0)));
      if (r) {
        EXPECT_GE(t[r * 6], t[(r - 1) * 6]);
      }
    }
    EXPECT_GE(max_abs(a[i].imgs), 0.1);
    EXPECT_LE(max_abs(a[i].imgs), 1.0);
  }
  EXPECT_TRUE(epoch_differs);
  {  // restarting and destroying mid-epoch joins the workers cleanly
    auto p = make_train_loader({d + "/images/train"}, 64, 2, 32, hyp, 3, 7);
    p.loader->start_epoch(0);
    Batch b0;
    ASSERT_TRUE(p.loader->next(b0));
    p.loader->start_epoch(1);
    ASSERT_TRUE(p.loader->next(b0));
    EXPECT_EQ(b0.index, 0);
  }

  // validation: rect batches at their batch shapes, letterboxed with pad 0.5, in order
  auto v = make_val_loader({d + "/images/val"}, 64, 2, 32, 2);
  v.loader->start_epoch(0);
  int n = 0;
  for (Batch bt; v.loader->next(bt); ++n) {
    auto bs = v.dataset->batch_shapes()[size_t(bt.index)];
    EXPECT_EQ(bt.imgs.size(2), bs[0]);
    EXPECT_EQ(bt.imgs.size(3), bs[1]);
    EXPECT_EQ(bs[0], 96);  // square 64 images: ceil(64/32 + 0.5) * 32
    for (size_t k = 0; k < bt.items.size(); ++k) {
      EXPECT_TRUE(bt.items[k].has_shapes);
      EXPECT_EQ(bt.items[k].path, v.dataset->files()[size_t(bt.index) * 2 + k]);
      EXPECT_DOUBLE_EQ(bt.items[k].pad_w, 16);
    }
    // image pixels: first channel of the first image == item's RGB / 255
    Item it = v.dataset->get(size_t(bt.index) * 2, 0);
    EXPECT_FLOAT_EQ(bt.imgs.data<float>()[0], float(it.img.data[0]) / 255.0f);
  }
  EXPECT_EQ(n, 3);
}

TEST(DataLoader, ErrorsSurfaceAsOneLine) {
  std::string set = copy_set("loader_err");
  DatasetOptions o;
  o.img_size = 64, o.verbose = false;
  Dataset ds({set + "/images/train"}, o);
  // an image that disappears after the scan fails when loaded, on a worker, rethrown by next()
  fs::remove(set + "/images/train/" + fs::path(ds.files()[0]).filename().string());
  LoaderOptions lo;
  lo.batch_size = 2, lo.workers = 2;
  DataLoader dl(ds, lo);
  dl.start_epoch(0);
  Batch b;
  EXPECT_THROW(dl.next(b), Error);
  EXPECT_THROW(ds.get(1000), Error);
}

TEST(DataCli, ShapesAndCheck) {
  std::string d = test::scratch("data_cli");
  auto r = test::run_cli("data shapes --out " + d + "/s --train 3 --val 2 --size 64 --seed 5");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(d + "/s/images/train/00002.png"));
  EXPECT_TRUE(fs::exists(d + "/s/labels/val/00001.txt"));
  r = test::run_cli("data check --data " + d + "/s/data.yaml --img-size 64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("3 found, 0 missing, 0 empty, 0 corrupted"), std::string::npos) << r.out;
  r = test::run_cli("data shapes --out " + d + "/t --size 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("yolo7: error:"), std::string::npos) << r.out;
  r = test::run_cli("data check --data " + d + "/none.yaml");
  EXPECT_EQ(r.code, 1);
  r = test::run_cli("data frobnicate");
  EXPECT_EQ(r.code, 1);
}

TEST(Dataset, AugmentedItemsMatchUpstreamForScriptedDraws) {
  // upstream __getitem__ (augment=True) with random.random / uniform / choices and
  // np.random.uniform replaced by one scripted sequence, replayed here through Rng::script
  std::string set = copy_set("dataset_aug");
  DatasetOptions o;
  o.img_size = 64, o.batch_size = 3, o.augment = true, o.verbose = false;
  AugmentHyp& h = o.hyp;
  h.hsv_h = 0.015, h.hsv_s = 0.7, h.hsv_v = 0.4, h.degrees = 5, h.translate = 0.1, h.scale = 0.5, h.shear = 2;
  h.perspective = 0, h.flipud = 0.5, h.fliplr = 0.5, h.mosaic = 1, h.mixup = 0.15, h.copy_paste = 0, h.paste_in = 0.15;
  Dataset ds({set + "/images/train"}, o);
  std::ifstream in(dpath("aug_ref.txt"));
  std::string line;
  int cases = 0;
  std::string name;
  Item it;
  std::vector<std::array<double, 6>> ref;
  auto check = [&]() {
    if (name.empty()) return;
    ++cases;
    Tensor img = io::read_npy(dpath(name + "_rgb.npy"));
    ASSERT_EQ(img.size(0), it.img.h) << name;
    ASSERT_EQ(img.size(1), it.img.w) << name;
    EXPECT_TRUE(std::equal(it.img.data.begin(), it.img.data.end(), img.data<uint8_t>())) << name;
    ASSERT_EQ(it.labels.size(), ref.size()) << name;
    double err = 0;
    for (size_t k = 0; k < ref.size(); ++k)
      for (int c = 1; c < 6; ++c) err = std::max(err, std::abs(it.labels[k][c] - ref[k][c]));
    EXPECT_LE(err, 1e-6) << name;
  };
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k;
    ls >> k;
    if (k == "label") {
      std::array<double, 6> l;
      for (auto& v : l) ls >> v;
      ref.push_back(l);
      continue;
    }
    check();
    name = k, ref.clear();
    size_t index;
    ls >> index;
    std::vector<double> seq;
    for (double v; ls >> v;) seq.push_back(v);
    seq.pop_back();  // the label count
    Rng rng(0);
    rng.script(seq);
    it = ds.get_with(index, rng);
  }
  check();
  EXPECT_EQ(cases, 3);
}

// --quad: upstream collate_fn4 on 8 random images (tools/dev/make_quad_fixture.py, draws 0.3 then
// 0.7: group 0 upscaled 2x, group 1 tiled 2x2), pixel- and label-exact.
TEST(Quad, Collate4MatchesUpstream) {
  const std::string d = std::string(Y7_TEST_DATA) + "/dataset/";
  Tensor in = io::read_npy(d + "quad_in_chw.npy"), lin = io::read_npy(d + "quad_in_labels.npy");
  Tensor out = io::read_npy(d + "quad_out_chw.npy"), lout = io::read_npy(d + "quad_out_labels.npy");
  const int64_t N = in.size(0), C = in.size(1), H = in.size(2), W = in.size(3);
  std::vector<Item> items;
  items.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    Item& it = items[size_t(i)];
    it.img.w = int(W), it.img.h = int(H), it.img.c = int(C), it.img.order = io::PixelOrder::RGB;
    it.img.data.resize(size_t(C * H * W));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          it.img.data[size_t((y * W + x) * C + c)] = in.data<uint8_t>()[((i * C + c) * H + y) * W + x];
    for (int64_t r = 0; r < lin.size(0); ++r)
      if (int64_t(lin.data<float>()[r * 6]) == i) {
        std::array<float, 6> l;
        for (int k = 0; k < 6; ++k) l[size_t(k)] = lin.data<float>()[r * 6 + k];
        l[0] = 0;
        it.labels.push_back(l);
      }
  }
  Rng rng;
  rng.script({0.3, 0.7});
  Batch b = collate4(items, rng);
  ASSERT_EQ(shape_str(b.imgs.sizes()), "[2,3,12,10]");
  int64_t bad = 0;
  for (int64_t i = 0; i < out.numel(); ++i)
    bad += std::lround(b.imgs.data<float>()[i] * 255.0f) != out.data<uint8_t>()[i];
  EXPECT_EQ(bad, 0);
  ASSERT_EQ(shape_str(b.targets.sizes()), shape_str(lout.sizes()));
  for (int64_t i = 0; i < lout.numel(); ++i) EXPECT_EQ(b.targets.data<float>()[i], lout.data<float>()[i]) << i;
  std::vector<Item> three(3, items[0]);
  EXPECT_THROW(collate4(three, rng), Error);
}
