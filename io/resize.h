// Bit-exact re-implementation of OpenCV's cv2.resize(src, (w, h), interpolation=...) for 8-bit
// images with 1..4 interleaved channels (what upstream YOLOv7 calls in letterbox() and
// load_image()), following OpenCV 4.x imgproc/resize.cpp:
//  * INTER_LINEAR: the fixed-point path, 11-bit coefficients (INTER_RESIZE_COEF_SCALE = 2048)
//    rounded from float, horizontal pass in int, vertical pass
//    ((b0*(S0>>4))>>16) + ((b1*(S1>>4))>>16) + 2) >> 2. An exact 2x downscale in both axes
//    switches to the INTER_AREA fast path, as OpenCV does.
//  * INTER_AREA, downscale: integer factors use resizeAreaFast (2x2 with (sum+2)>>2, others
//    cvRound(sum * (1.f/area))); other factors the float area-weight tables (computeResizeAreaTab);
//    upscaling in either axis falls back to bilinear with area-mode coefficients.
// Same size: a copy. Tested for exact equality against Debian python3-opencv 4.6.
#pragma once
#include "io/image.h"

namespace y7::io {

enum class Interp { Linear, Area };

Image resize(const Image& src, int dst_w, int dst_h, Interp interp = Interp::Linear);

}  // namespace y7::io
