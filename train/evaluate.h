// Validation with upstream test.py semantics: a self-contained val loader (LoadImagesAndLabels
// with rect=True, pad=0.5, augment=False), batched inference, NMS (multi_label), test.py's
// statistics (train/metrics.h), the printed table and speed line, and the optional outputs
// (--save-txt labels, --save-json COCO detections, a results JSON).
//
// Loader semantics (utils/datasets.py): image files from a folder (recursive), a .txt list (lines
// starting with ./ are relative to the list's folder) or a list of those, sorted, filtered by
// extension; labels at the path with the first "/images/" replaced by "/labels/" and the
// extension by "txt", rows "cls cx cy w h" normalized (rows with more than 8 values are polygons,
// boxed); images with invalid labels (not 5 columns, negative, coordinates > 1, duplicate rows)
// or images smaller than 10 px are skipped with a warning, like upstream's "corrupted" ones.
// Rect batching: images sorted by aspect ratio h/w (stable sort; numpy's argsort is not stable, so
// equal aspect ratios may be ordered differently upstream), batch shapes
// ceil([h/w ratio, 1] * img_size / stride + pad) * stride; each image is load_image-resized
// (long side to img_size, INTER_AREA when shrinking) and letterboxed (auto=False, scaleup=False)
// to its batch shape. Images decode through stb (JPEG decode can differ from cv2/libjpeg by a
// few levels per pixel).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/letterbox.h"
#include "train/metrics.h"

namespace y7::graph {
class Model;
}

namespace y7::train {

// ---- data yaml

struct DataConfig {
  std::string path;                        // the yaml file
  std::vector<std::string> train, val, test;
  int nc = 0;
  std::vector<std::string> names;
  bool is_coco = false;                    // the yaml's name ends with coco.yaml (upstream is_coco)
};
// Reads the data yaml. Relative image paths are resolved as upstream does (against the working
// directory); when that does not exist, against the yaml's folder and then its parent.
DataConfig load_data_config(const std::string& yaml_path);

// ---- val dataset

// "/images/" -> "/labels/" (first occurrence), extension -> "txt" (upstream img2label_paths).
std::string img2label_path(const std::string& img_path);
// Image files from folders / list files, sorted (upstream LoadImagesAndLabels).
std::vector<std::string> list_image_files(const std::vector<std::string>& sources);

struct ValSample {
  std::string path;
  std::vector<std::array<float, 5>> labels;  // (cls, cx, cy, w, h) normalized, float32
  int w0 = 0, h0 = 0;                        // upstream exif_size (w, h)
};

struct ValDataset {
  std::vector<ValSample> samples;           // in rect (aspect-ratio) order
  std::vector<int> batch;                   // batch index of each sample
  std::vector<std::array<int, 2>> batch_shapes;  // (h, w) per batch
  int img_size = 640, batch_size = 32, stride = 32;
  int found = 0, missing = 0, empty = 0, corrupted = 0;
  int num_batches() const { return int(batch_shapes.size()); }
};
ValDataset make_val_dataset(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                            double pad = 0.5, bool single_cls = false);

struct ValItem {
  io::Image img;   // letterboxed to the batch shape, RGB
  int h0 = 0, w0 = 0, h = 0, w = 0;  // original and resized sizes
  io::Letterboxed lb;                // ratio and padding of the letterbox
  // targets (cls, cx, cy, w, h) normalized to the letterboxed image, float32 like upstream
  std::vector<std::array<float, 5>> targets;
};
ValItem load_val_item(const ValDataset& ds, size_t index);

// ---- test.py

struct TestOptions {
  std::string data;            // data yaml
  std::string weights;         // for the --save-json file name
  std::string task = "val";    // train | val | test | speed
  int batch_size = 32, img_size = 640;
  double conf_thres = 0.001, iou_thres = 0.65;
  bool single_cls = false, verbose = false, save_txt = false, save_hybrid = false, save_conf = false,
       save_json = false, v5_metric = false;
  std::string save_dir;        // run folder (created by the caller); empty: write nothing
  bool quiet = false;          // no printing
};

struct TestResults {
  EvalResults metrics;
  std::vector<std::string> names;
  double t_inference = 0, t_nms = 0;  // seconds, all batches
  int img_size = 0, batch_size = 0;
  int labels_saved = 0;               // --save-txt files written
  std::string json_path;              // --save-json output
};

// Runs test.py's test() on a loaded (fused) model.
TestResults run_test(graph::Model& model, const TestOptions& opt);

}  // namespace y7::train
