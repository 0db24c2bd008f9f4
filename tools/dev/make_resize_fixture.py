#!/usr/bin/python3
"""Dev-only generator for the small reference data under tests/data/image/ and tests/data/nms/.

Run with Debian's python (it has cv2 = python3-opencv 4.6, numpy, torch, torchvision):
    /usr/bin/python3 tools/dev/make_resize_fixture.py [--upstream /work/upstream]

image/:
  src_<name>.npy            uint8 [h,w,c] synthetic source images
  resize_<case>.npy         uint8 cv2.resize(src, (w,h), interpolation) output
  letterbox_<case>.npy      uint8 upstream utils.datasets.letterbox() output
  letterbox_<case>_meta.npy float64 [ratio_w, ratio_h, dw, dh]
  scale_coords_*.npy        float32 boxes before / after upstream scale_coords()
  longside_<case>.npy       uint8, the load_image()-style resize (r = size/max(h,w), AREA or LINEAR)
  photo.jpg / photo.png     cv2.imwrite() of src_photo (BGR), quality 95
  photo_jpg_cv2.npy         uint8 cv2.imread('photo.jpg') (BGR), to measure stb vs libjpeg decoding
  photo_exif{6,8}.jpg       photo.jpg with an EXIF orientation tag; _cv2.npy = cv2.imread() of it
nms/:
  <case>.npy                float32 rows (img, x1, y1, x2, y2, conf, cls) from upstream
                            non_max_suppression (real torchvision.ops.nms) with the case's options
  ties_pred.npy             a small synthetic prediction with many equal scores
The big synthetic input of the max_nms case is not stored: it is a closed-form function of the
row index (see synth_maxnms below and the same formula in tests/test_nms.cpp).
"""
import argparse
import os
import sys

import cv2
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--upstream", default="/work/upstream")
ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data"))
args = ap.parse_args()
IMG = os.path.join(args.out, "image")
NMS = os.path.join(args.out, "nms")
os.makedirs(IMG, exist_ok=True)
os.makedirs(NMS, exist_ok=True)
sys.path.insert(0, args.upstream)

rng = np.random.RandomState(7)


def synth(h, w, c=3):
    """Noise on top of gradients and a few flat blocks, so every rounding path gets exercised."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([(xx * 255 / max(w - 1, 1)), (yy * 255 / max(h - 1, 1)), ((xx + yy) * 7) % 256,
                     255 - xx * 255 / max(w - 1, 1)], -1)[..., :c]
    img = base + rng.randint(-40, 41, size=(h, w, c))
    img[h // 4:h // 2, w // 4:w // 2] = 200
    img[:, w - 3:] = rng.randint(0, 256, size=(h, 3, c))  # hard edges at the right border
    return np.clip(img, 0, 255).astype(np.uint8)


def save(d, name, a):
    np.save(os.path.join(d, name), np.ascontiguousarray(a))


# ---------------------------------------------------------------- resize
srcs = {"37x53": synth(37, 53), "64x48": synth(64, 48), "100x60": synth(100, 60), "90x70": synth(90, 70),
        "96x64": synth(96, 64), "20x31": synth(20, 31), "13x17g": synth(13, 17, 1), "15x22a": synth(15, 22, 4),
        "90x60": synth(90, 60)}
for k, v in srcs.items():
    save(IMG, f"src_{k}.npy", v)

L, A = cv2.INTER_LINEAR, cv2.INTER_AREA
# name: (src, dst_w, dst_h, interp)
cases = {
    "lin_37x53_to_20x31": ("37x53", 31, 20, L),
    "lin_64x48_to_128x96": ("64x48", 96, 128, L),
    "lin_90x70_to_33x41": ("90x70", 41, 33, L),
    "lin_37x53_to_50x71": ("37x53", 71, 50, L),
    "lin_100x60_to_50x30": ("100x60", 30, 50, L),   # exact 1/2: OpenCV switches to INTER_AREA fast
    "lin_20x31_to_37x31": ("20x31", 31, 37, L),     # one axis unchanged
    "lin_13x17g_to_29x9": ("13x17g", 9, 29, L),     # 1 channel
    "lin_15x22a_to_8x40": ("15x22a", 40, 8, L),     # 4 channels
    "area_37x53_to_20x31": ("37x53", 31, 20, A),
    "area_90x70_to_33x41": ("90x70", 41, 33, A),
    "area_100x60_to_50x30": ("100x60", 30, 50, A),  # integer 2x: resizeAreaFast, (sum+2)>>2
    "area_96x64_to_24x16": ("96x64", 16, 24, A),    # integer 4x: resizeAreaFast, cvRound(sum/16)
    "area_90x60_to_30x20": ("90x60", 20, 30, A),    # 1/3: not exactly integer in double -> general area
    "area_90x70_to_45x35": ("90x70", 35, 45, A),
    "area_20x31_to_37x53": ("20x31", 53, 37, A),    # upscale: bilinear with area-mode coefficients
    "area_37x53_to_20x71": ("37x53", 71, 20, A),    # mixed: down in y, up in x
    "area_13x17g_to_5x6": ("13x17g", 6, 5, A),
    "area_15x22a_to_7x11": ("15x22a", 11, 7, A),    # 4 channels, integer 2x
}
for name, (s, w, h, interp) in cases.items():
    save(IMG, f"resize_{name}.npy", cv2.resize(srcs[s], (w, h), interpolation=interp).reshape(h, w, -1))

# ---------------------------------------------------------------- letterbox (upstream function)
from utils.datasets import letterbox  # noqa: E402

srcs_lb = {"37x53": srcs["37x53"], "100x60": srcs["100x60"], "40x25": synth(40, 25), "90x70": srcs["90x70"]}
save(IMG, "src_40x25.npy", srcs_lb["40x25"])
lb_cases = {
    "37x53_64_auto": ("37x53", dict(new_shape=64)),
    "37x53_64_noauto": ("37x53", dict(new_shape=64, auto=False)),
    "100x60_64_auto": ("100x60", dict(new_shape=64)),
    "100x60_64_noauto": ("100x60", dict(new_shape=64, auto=False)),
    "37x53_64_noscaleup": ("37x53", dict(new_shape=64, auto=False, scaleup=False)),
    "37x53_64_scalefill": ("37x53", dict(new_shape=64, auto=False, scaleFill=True)),
    "40x25_20_noauto": ("40x25", dict(new_shape=20, auto=False)),  # 25*0.5 = 12.5 -> round() = 12
    "40x25_20_auto8": ("40x25", dict(new_shape=20, stride=8)),
    "90x70_48x64_rect": ("90x70", dict(new_shape=(48, 64), auto=False, scaleup=False)),
    "90x70_96_auto": ("90x70", dict(new_shape=96)),
}
for name, (s, kw) in lb_cases.items():
    out, ratio, (dw, dh) = letterbox(srcs_lb[s].copy(), **kw)
    save(IMG, f"letterbox_{name}.npy", out)
    save(IMG, f"letterbox_{name}_meta.npy", np.array([ratio[0], ratio[1], dw, dh], np.float64))

# ---------------------------------------------------------------- scale_coords (upstream function)
import torch  # noqa: E402
from utils.general import scale_coords  # noqa: E402

boxes = torch.from_numpy(rng.uniform(-10, 110, size=(24, 4)).astype(np.float32))
save(IMG, "scale_coords_in.npy", boxes.numpy())
save(IMG, "scale_coords_out.npy", scale_coords((64, 96), boxes.clone(), (37, 53)).numpy())
save(IMG, "scale_coords_out2.npy", scale_coords((100, 64), boxes.clone(), (90, 70)).numpy())
save(IMG, "scale_coords_out_rp.npy", scale_coords((64, 64), boxes.clone(), (37, 53),
                                                  ratio_pad=((64 / 53, 64 / 53), (0.0, 9.5))).numpy())

# ---------------------------------------------------------------- load_image()-style long-side resize
for name, (s, size, augment) in {"90x70_64": ("90x70", 64, False), "90x70_64_aug": ("90x70", 64, True),
                                 "37x53_64": ("37x53", 64, False), "100x60_50": ("100x60", 50, False)}.items():
    img = srcs[s]
    h0, w0 = img.shape[:2]
    r = size / max(h0, w0)
    if r != 1:
        interp = cv2.INTER_AREA if r < 1 and not augment else cv2.INTER_LINEAR
        img = cv2.resize(img, (int(w0 * r), int(h0 * r)), interpolation=interp)
    save(IMG, f"longside_{name}.npy", img)

# ---------------------------------------------------------------- image files
photo = cv2.GaussianBlur(synth(48, 64), (5, 5), 1.5)
save(IMG, "src_photo.npy", photo)  # BGR as cv2 sees it
cv2.imwrite(os.path.join(IMG, "photo.png"), photo)
cv2.imwrite(os.path.join(IMG, "photo.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
save(IMG, "photo_jpg_cv2.npy", cv2.imread(os.path.join(IMG, "photo.jpg")))
assert np.array_equal(cv2.imread(os.path.join(IMG, "photo.png")), photo)
# the same JPEG with an EXIF orientation tag (6: big-endian TIFF, 8: little-endian), which
# cv2.imread applies
jpg = open(os.path.join(IMG, "photo.jpg"), "rb").read()
for o, tiff in ((6, b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
                   b"\x00\x00\x00\x00"),
                (8, b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x08\x00\x00\x00"
                   b"\x00\x00\x00\x00")):
    payload = b"Exif\x00\x00" + tiff
    seg = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    f = os.path.join(IMG, f"photo_exif{o}.jpg")
    open(f, "wb").write(jpg[:2] + seg + jpg[2:])
    save(IMG, f"photo_exif{o}_cv2.npy", cv2.imread(f))

# ---------------------------------------------------------------- NMS variants (upstream code)
from utils.general import non_max_suppression  # noqa: E402

fix = os.environ.get("Y7_SHARED_FIXTURES", os.path.join(args.upstream, "..", "shared", "fixtures", "upstream"))
pred = torch.from_numpy(np.load(os.path.join(fix, "yolov7-tiny", "eval_pred.npy")))


def rows(dets):
    r = [torch.cat([torch.full((len(d), 1), float(i)), d], 1) for i, d in enumerate(dets)]
    return torch.cat(r, 0).numpy() if r else np.zeros((0, 7), np.float32)


nms_cases = {
    "tiny_classes": dict(conf_thres=0.25, iou_thres=0.45, classes=[33, 5, 70]),
    "tiny_agnostic": dict(conf_thres=0.25, iou_thres=0.45, agnostic=True),
    "tiny_multilabel": dict(conf_thres=0.25, iou_thres=0.45, multi_label=True),
    "tiny_c10_i60": dict(conf_thres=0.10, iou_thres=0.60),
    "tiny_c40_i30_agn_ml": dict(conf_thres=0.40, iou_thres=0.30, agnostic=True, multi_label=True),
}
for name, kw in nms_cases.items():
    save(NMS, f"{name}.npy", rows(non_max_suppression(pred.clone(), **kw)))

# ties: 3 images x 120 boxes, 4 classes, scores on a coarse grid, boxes on a coarse grid
rng = np.random.RandomState(11)  # own stream: independent of the image section above
t = np.zeros((3, 120, 9), np.float32)
t[..., 0] = rng.randint(0, 8, size=(3, 120)) * 8 + 20
t[..., 1] = rng.randint(0, 8, size=(3, 120)) * 8 + 20
t[..., 2] = rng.randint(2, 5, size=(3, 120)) * 8
t[..., 3] = rng.randint(2, 5, size=(3, 120)) * 8
t[..., 4] = rng.randint(1, 5, size=(3, 120)) * 0.25
t[..., 5:] = rng.randint(0, 5, size=(3, 120, 4)) * 0.25
save(NMS, "ties_pred.npy", t)
for name, kw in {"ties": dict(conf_thres=0.2, iou_thres=0.45),
                 "ties_agnostic": dict(conf_thres=0.2, iou_thres=0.3, agnostic=True),
                 "ties_multilabel": dict(conf_thres=0.2, iou_thres=0.45, multi_label=True)}.items():
    save(NMS, f"{name}.npy", rows(non_max_suppression(torch.from_numpy(t.copy()), **kw)))


def synth_maxnms(n=31000, nc=3):
    """Closed form, float32 exact: more than max_nms (30000) candidates, many equal scores."""
    i = np.arange(n, dtype=np.int64)
    p = np.zeros((1, n, 5 + nc), np.float32)
    p[0, :, 0] = ((i * 37) % 600).astype(np.float32) + np.float32(0.5)
    p[0, :, 1] = ((i * 53) % 400).astype(np.float32) + np.float32(0.25)
    p[0, :, 2] = ((i % 7) * 6 + 10).astype(np.float32)
    p[0, :, 3] = ((i % 5) * 8 + 12).astype(np.float32)
    p[0, :, 4] = np.float32(1.0)
    for c in range(nc):
        p[0, :, 5 + c] = (((i * (7919 + 104 * c)) % 61) + 20).astype(np.float32) / np.float32(80)
    return p


save(NMS, "maxnms.npy", rows(non_max_suppression(torch.from_numpy(synth_maxnms()), conf_thres=0.25, iou_thres=0.5)))
print("wrote", IMG, NMS)
