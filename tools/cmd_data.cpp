// yolo7 data: data set tools.
//   yolo7 data shapes --out DIR [--train 300] [--val 100] [--size 256] [--seed 0]
//       writes the built-in synthetic shapes detection set (train/shapes.h)
//   yolo7 data check --data data.yaml [--img-size 640] [--batch-size 16]
//       scans train/val like upstream (label rules, found/missing/empty/corrupted summary, cache)
#include <cstdio>

#include "io/data_yaml.h"
#include "tools/cli.h"
#include "train/dataset.h"
#include "train/shapes.h"

namespace y7 {
namespace {

int run_data(const std::vector<std::string>& argv) {
  Y7_CHECK(!argv.empty(), "data: give a subcommand: shapes | check");
  const std::string sub = argv[0];
  std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (sub == "shapes") {
    cli::Args a(rest, {{"out", 1}, {"train", 1}, {"val", 1}, {"size", 1}, {"seed", 1}});
    Y7_CHECK(a.has("out"), "data shapes: give --out DIR");
    train::ShapesOptions o;
    o.n_train = a.integer("train", 300), o.n_val = a.integer("val", 100), o.size = a.integer("size", 256);
    const double seed = a.num("seed", 0);
    Y7_CHECK(seed >= 0 && seed < 9.0e15 && seed == double(uint64_t(seed)), "data shapes: --seed must be a non-negative integer");
    o.seed = uint64_t(seed);
    std::string y = train::write_shapes_dataset(a.str("out"), o);
    std::printf("wrote %d train + %d val images (%dx%d, %d classes) and %s\n", o.n_train, o.n_val, o.size, o.size,
                train::kNumShapeClasses, y.c_str());
    return 0;
  }
  if (sub == "check") {
    cli::Args a(rest, {{"data", 1}, {"img-size", 1}, {"batch-size", 1}, {"single-cls", 0}});
    Y7_CHECK(a.has("data"), "data check: give --data data.yaml");
    io::DataConfig cfg = io::load_data_yaml(a.str("data"));
    std::printf("nc=%d names=", cfg.nc);
    for (size_t i = 0; i < cfg.names.size(); ++i) std::printf("%s%s", i ? "," : "", cfg.names[i].c_str());
    std::printf("\n");
    for (int sp = 0; sp < 2; ++sp) {
      const auto& src = sp == 0 ? cfg.train : cfg.val;
      if (src.empty()) continue;
      train::DatasetOptions o;
      o.img_size = a.integer("img-size", 640), o.batch_size = a.integer("batch-size", 16);
      o.single_cls = a.flag("single-cls"), o.rect = sp == 1, o.pad = sp == 1 ? 0.5 : 0.0;
      o.prefix = sp == 0 ? "train: " : "val: ";
      train::Dataset ds(src, o);
      size_t nl = 0;
      int maxc = -1;
      for (const auto& l : ds.labels())
        for (const auto& r : l) ++nl, maxc = std::max(maxc, int(r[0]));
      const auto& s = ds.stats();
      std::printf("%s%zu images, %zu labels; %d found, %d missing, %d empty, %d corrupted; cache %s%s\n",
                  o.prefix.c_str(), ds.size(), nl, s.found, s.missing, s.empty, s.corrupt, ds.cache_path().c_str(),
                  ds.cache_loaded() ? " (loaded)" : "");
      Y7_CHECK(maxc < cfg.nc, o.prefix, "label class ", maxc, " exceeds nc=", cfg.nc, " in ", cfg.path);
    }
    return 0;
  }
  fail("data: unknown subcommand '", sub, "' (shapes | check)");
}

cli::Register reg("data", "data sets: 'shapes' writes the synthetic shapes set, 'check' scans a data yaml", run_data);

}  // namespace
}  // namespace y7
