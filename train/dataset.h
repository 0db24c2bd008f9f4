// Training / validation data set, re-implemented from upstream utils/datasets.py
// LoadImagesAndLabels: image listing (directory tree, list .txt with "./" entries relative to the
// list, glob pattern; upstream's image extensions), labels from the images/ -> labels/ rule, label
// verification with upstream's rules (5 columns after polygon rows (> 8 values) are reduced to
// their boxes, all values >= 0, coordinates <= 1, no duplicate rows, images at least 10x10
// pixels; a failing file is skipped with one "WARNING: Ignoring corrupted image and/or label"
// line and counted as corrupted), the found / missing / empty / corrupted summary, rect batch
// shapes, and __getitem__ (load_image + letterbox, or mosaic / mixup / random_perspective / HSV /
// flips when augmenting).
//
// Label cache: our own binary file "<labels dir>.y7cache" (or "<list>.y7cache" for a .txt list),
// next to upstream's torch ".cache" which is never touched. It is keyed by a 64-bit FNV-1a hash of
// every image and label file name with its size (and mtime), and rebuilt when that changes.
//
// Differences from upstream (documented, deliberate):
//  * Random draws come from our seeded Rng per (seed, epoch, index), not Python's global random.
//  * Image shapes come from the file header (stb) with the JPEG EXIF orientation applied, like
//    upstream's exif_size(); a header stb cannot parse counts as corrupted.
//  * Rect mode sorts by aspect ratio with a stable sort (numpy's argsort is not stable beyond 16
//    items, so ties can be ordered differently).
//  * paste_in / copy_paste need instance segments; with box-only labels upstream's versions are
//    no-ops (its sample_segments has no segments to sample), and ours are no-ops always.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"
#include "train/augment.h"

namespace y7::train {

struct DatasetOptions {
  int img_size = 640;
  int batch_size = 16;
  bool augment = false;
  bool rect = false;
  bool single_cls = false;
  int stride = 32;
  double pad = 0.0;
  AugmentHyp hyp;
  bool write_cache = true;    // write <labels>.y7cache (a failure to write is only a warning)
  bool verbose = true;        // print the scan summary and warnings to stderr
  std::string prefix;         // message prefix ("train: ", "val: ")
};

struct LabelStats {
  int found = 0, missing = 0, empty = 0, corrupt = 0, total = 0;
};

// One dataset item, like upstream's (img, labels_out, path, shapes).
struct Item {
  io::Image img;                            // RGB, final size
  std::vector<std::array<float, 6>> labels; // (0, cls, cx, cy, w, h), normalized to img
  std::string path;
  bool has_shapes = false;                  // false for mosaics (upstream's shapes = None)
  int h0 = 0, w0 = 0;                       // original size
  double ratio_h = 1, ratio_w = 1;          // (h / h0, w / w0) of the load_image resize
  double letterbox_ratio = 1;               // letterbox gain on top of that
  double pad_w = 0, pad_h = 0;              // letterbox (dw, dh)
};

// img2label_paths: last "/images/" -> "/labels/" (first occurrence, like str.replace(.., 1)),
// extension -> txt.
std::string img2label_path(const std::string& img_path);
// Upstream's rect batch shapes for sorted aspect ratios (h/w) and batch size: [nb] of (h, w).
std::vector<std::array<int, 2>> rect_batch_shapes(const std::vector<double>& sorted_ar, int batch_size, int img_size,
                                                  int stride, double pad);

// Result of verifying one image/label pair with upstream's rules.
struct Verified {
  bool ok = false;
  std::string error;             // why it is corrupted
  int w = 0, h = 0;              // EXIF-corrected image size
  NBoxes labels;
  int label_state = 0;           // 0 found, 1 missing, 2 empty
  bool label_found = false;      // label file exists (upstream counts it as found even when corrupt)
};
Verified verify_image_label(const std::string& img_file, const std::string& label_file);
// Parses label text with upstream's rules; throws y7::Error with the reason.
NBoxes parse_labels(const std::string& text);

class Dataset {
 public:
  // sources: image directories, list files (.txt), glob patterns or single images.
  Dataset(const std::vector<std::string>& sources, const DatasetOptions& opt);

  size_t size() const { return files_.size(); }
  const std::vector<std::string>& files() const { return files_; }
  const std::vector<NBoxes>& labels() const { return labels_; }
  const std::vector<std::array<int, 2>>& shapes() const { return shapes_; }  // (w, h), like upstream
  const std::vector<std::array<int, 2>>& batch_shapes() const { return batch_shapes_; }  // (h, w)
  const LabelStats& stats() const { return stats_; }
  const std::string& cache_path() const { return cache_path_; }
  bool cache_loaded() const { return cache_loaded_; }
  const DatasetOptions& options() const { return opt_; }

  // upstream load_image: RGB image resized so its long side is img_size; (h0, w0) original.
  io::Image load_image(size_t index, int* h0 = nullptr, int* w0 = nullptr) const;
  // __getitem__. Deterministic for a given (index, seed); thread-safe.
  Item get(size_t index, uint64_t seed = 0) const;
  // The same with a caller-provided generator (tests replay upstream's draws through Rng::script).
  Item get_with(size_t index, Rng& rng) const;

  // upstream's dataset.indices (--image-weights): the epoch's weighted sample of image indices
  // (size() entries, repeats allowed). The loader reads item order[i] as indices[order[i]], and
  // mosaic partners are drawn from it. Empty: every image once. Set between epochs only.
  void set_indices(std::vector<size_t> idx);
  const std::vector<size_t>& indices() const { return indices_; }

 private:
  void scan(const std::vector<std::string>& sources);
  DatasetOptions opt_;
  std::vector<std::string> files_;
  std::vector<NBoxes> labels_;
  std::vector<std::array<int, 2>> shapes_;
  std::vector<int> batch_;  // batch index per item (rect)
  std::vector<std::array<int, 2>> batch_shapes_;
  LabelStats stats_;
  std::string cache_path_;
  bool cache_loaded_ = false;
  std::vector<size_t> indices_;
};

// Image as float32 [3, H, W] / 255 (RGB) or uint8 [3, H, W].
Tensor image_to_chw(const io::Image& img, bool as_float = true);

}  // namespace y7::train
