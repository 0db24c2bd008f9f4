// Built-in synthetic detection data set: flat-colored geometric shapes (6 classes: circle, square,
// triangle, cross, ring, star) at random sizes, rotations and positions on noisy colored
// backgrounds, 1-6 non-touching objects per image, written in the YOLO layout
// DIR/images/{train,val}/NNNNN.png, DIR/labels/{train,val}/NNNNN.txt and DIR/data.yaml.
// Shapes are rasterized by testing pixel centers; each label is the tight box of the pixels that
// were actually painted (x0 = leftmost painted column, x1 = rightmost + 1, ...). The background
// never produces the object's exact color (a channel differs by more than the noise amplitude),
// and objects keep a gap of at least 2 pixels, so labels can be checked against the pixels.
// PNG keeps pixels exact. Fully deterministic for a seed (std::mt19937_64).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace y7::train {

inline constexpr int kNumShapeClasses = 6;
extern const char* const kShapeNames[kNumShapeClasses];

struct ShapeObject {
  int cls = 0;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // tight pixel box, exclusive end
  std::array<uint8_t, 3> color{};      // RGB
};
struct ShapeImage {
  io::Image img;  // RGB
  std::vector<ShapeObject> objects;
};

// One image of size x size for a seed.
ShapeImage make_shape_image(int size, uint64_t seed);
// The seed write_shapes_dataset uses for image i of split (0 train, 1 val).
uint64_t shape_image_seed(uint64_t seed, int split, int i);
// The YOLO label text for an image (cls cx cy w h, 6 decimals).
std::string shape_labels_text(const ShapeImage& im);

struct ShapesOptions {
  int n_train = 300, n_val = 100, size = 256;
  uint64_t seed = 0;
};
// Writes the set under dir (created if needed); returns the data.yaml path.
std::string write_shapes_dataset(const std::string& dir, const ShapesOptions& opt);

}  // namespace y7::train
