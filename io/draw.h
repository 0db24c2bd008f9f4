// Box and label drawing in the style of upstream utils/plots.py plot_one_box(), without OpenCV:
//  * line thickness tl = line_thickness, or round(0.002 * (h + w) / 2) + 1 when it is 0
//    (upstream detect.py passes line_thickness=1);
//  * corners (int(x1), int(y1)), (int(x2), int(y2)); the outline is tl pixels wide, covering
//    [c - (tl-1)/2, c + tl/2] around each edge coordinate (no anti-aliasing);
//  * label "<name> <conf:.2f>" in a filled box of the box colour whose bottom-left corner is the
//    box's top-left corner: width = text width, height = text height + 3, text drawn from
//    (x1, y1 - 2) upwards, in upstream's near-white (R255, G255, B225);
//  * text: the embedded 5x7 bitmap font (io/font.h) in a 6x8 cell, scaled by
//    max(1, round(tl / 3)) (upstream uses Hershey at fontScale tl / 3, ~7 px tall at tl = 1).
// Colours: upstream detect.py picks random colours per run; we use a fixed palette instead:
// class i gets hue frac(i * 0.618033988749895) at saturation 0.75, value 0.95 (see palette_color).
// Colours are given as RGB and written in the image's channel order; everything is clipped.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"

namespace y7::io {

using Rgb = std::array<uint8_t, 3>;

Rgb palette_color(int cls);
// Upstream's default thickness for an image: round(0.002 * (h + w) / 2) + 1.
int auto_line_thickness(const Image& img);

// Rectangle from (x1,y1) to (x2,y2) inclusive; thickness < 0 fills it.
void draw_rect(Image& img, int x1, int y1, int x2, int y2, Rgb color, int thickness = 1);
// Text whose glyph bottoms sit on row `baseline` (characters outside 32..126 draw as '?').
void draw_text(Image& img, int x, int baseline, std::string_view text, int scale, Rgb color);
int text_width(std::string_view text, int scale);
int text_height(int scale);
int text_scale_for(int line_thickness);

// plot_one_box; label may be empty (no label box). line_thickness 0 = auto.
void plot_one_box(Image& img, float x1, float y1, float x2, float y2, Rgb color, const std::string& label,
                  int line_thickness = 0);
// Label text as upstream detect.py: "<name> <conf:.2f>" (the class number when names lacks it).
std::string detection_label(const std::vector<std::string>& names, int cls, float conf);
// Draws NMS output det [n,6] (x1,y1,x2,y2,conf,cls) in image coordinates, lowest confidence first
// (upstream iterates reversed(det)), colour palette_color(cls).
void draw_detections(Image& img, const Tensor& det, const std::vector<std::string>& names, int line_thickness = 1);

}  // namespace y7::io
