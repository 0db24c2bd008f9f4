// Batches from a Dataset: upstream's collate_fn (images stacked to float32 [B,3,H,W] / 255, labels
// concatenated with their image index in column 0), loaded on worker threads with a bounded
// prefetch queue. Batches come back in order and are identical for any worker count: item i of
// epoch e is built with seed mix(seed, e) (train/dataset.h Dataset::get), and the per-epoch shuffle
// is a seeded std::shuffle on a mt19937_64.
#pragma once
#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "train/dataset.h"

namespace y7::train {

struct LoaderOptions {
  int batch_size = 16;
  int workers = 2;      // loading threads (0: load on the calling thread)
  bool shuffle = false;
  uint64_t seed = 0;
  int prefetch = 2;     // batches kept ready per worker
  bool drop_last = false;
  bool quad = false;    // --quad: collate_fn4 (batch_size items -> batch_size/4 images of 2x size)
};

struct ItemInfo {  // upstream's per-image `shapes` entry plus the path
  std::string path;
  bool has_shapes = false;
  int h0 = 0, w0 = 0;
  double ratio_h = 1, ratio_w = 1, letterbox_ratio = 1, pad_w = 0, pad_h = 0;
};

struct Batch {
  int index = -1;                 // batch number within the epoch
  Tensor imgs;                    // float32 [B, 3, H, W], RGB / 255
  Tensor targets;                 // float32 [N, 6]: image index, cls, cx, cy, w, h (normalized)
  std::vector<ItemInfo> items;
};

// Collates items (all images must have the same size).
Batch collate(std::vector<Item>& items);
// upstream collate_fn4 (--quad): every 4 items become one image of twice the size, either item 0
// upscaled 2x (bilinear, align_corners=False, truncated back to uint8) with its labels, or (p=0.5
// each, one rng.uniform() per group) the 2x2 tiling [0 above 1 | 2 above 3] with the labels moved
// and halved. Items beyond a multiple of 4 are dropped; fewer than 4 is an error.
Batch collate4(std::vector<Item>& items, Rng& rng);

class DataLoader {
 public:
  DataLoader(const Dataset& ds, const LoaderOptions& opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  size_t num_batches() const;
  // Starts producing the batches of `epoch` (stops any epoch in progress).
  void start_epoch(int epoch);
  // Next batch of the current epoch in order; false when the epoch is done. Errors raised while
  // loading (a corrupt image) are rethrown here.
  bool next(Batch& out);
  // Item order of the current epoch.
  const std::vector<size_t>& order() const { return order_; }

 private:
  Batch build(int b) const;
  void stop();
  void worker();

  const Dataset& ds_;
  LoaderOptions opt_;
  std::vector<size_t> order_;
  uint64_t epoch_seed_ = 0;
  int nb_ = 0, next_take_ = 0, next_out_ = 0;
  bool stopping_ = false;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  std::map<int, Batch> ready_;
  std::map<int, std::string> errors_;
  std::vector<std::thread> threads_;
};

// Loaders configured like upstream's create_dataloader: training (augment, mosaic, shuffle) and
// validation (rect, pad 0.5, no augmentation, no shuffle).
struct LoaderPair {
  std::unique_ptr<Dataset> dataset;
  std::unique_ptr<DataLoader> loader;
};
LoaderPair make_train_loader(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                             const AugmentHyp& hyp, int workers, uint64_t seed, bool rect = false, bool single_cls = false,
                             bool quad = false);
// rect=false: square img_size letterboxed batches (test_nndct.py's loader for a fixed-size graph).
LoaderPair make_val_loader(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                           int workers, bool single_cls = false, bool rect = true);

}  // namespace y7::train
