#!/usr/bin/python3
"""Regenerates the video fixtures used by tests/test_video.cpp with OpenCV (cv2), the library
upstream detect.py uses for video I/O. Run with Debian's /usr/bin/python3 (python3-opencv).

For each codec, a clip of synthetic frames is written with cv2.VideoWriter, then decoded with
cv2.VideoCapture; the decoded frames are stored as raw interleaved RGB8 (<name>.rgb, frames one
after another) together with the clip (<name>.<ext>). The C++ reader must reproduce them.
"""
import os
import sys

import cv2
import numpy as np

W, H, N, FPS = 48, 32, 8, 25


def synth(w, h, t):
    # Same picture as synth_frame() in tests/test_video.cpp (RGB).
    img = np.zeros((h, w, 3), np.uint8)
    x = np.arange(w)
    y = np.arange(h)
    img[:, :, 0] = (40 + 120 * x // w)[None, :]
    img[:, :, 1] = (60 + 100 * y // h)[:, None]
    img[:, :, 2] = 90 + 2 * t

    def rect(x0, y0, rw, rh, c):
        img[max(0, y0):min(h, y0 + rh), max(0, x0):min(w, x0 + rw)] = c

    rect(2 + 3 * t, h // 4, w // 4, h // 3, (220, 30, 30))
    rect(w - w // 4 - 2 - 2 * t, h // 2, w // 5, h // 4, (30, 40, 210))
    rect(w // 2 - 8, t, 16, 12, (40, 200, 60))
    return img


def make(name, fourcc):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    vw = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    if not vw.isOpened():
        sys.exit(f"cv2 cannot write {fourcc}")
    for t in range(N):
        vw.write(np.ascontiguousarray(synth(W, H, t)[:, :, ::-1]))  # cv2 wants BGR
    vw.release()
    cap = cv2.VideoCapture(out)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f[:, :, ::-1])
    assert len(frames) == N, (name, len(frames))
    print(name, "fps", cap.get(cv2.CAP_PROP_FPS), "frames", len(frames))
    np.ascontiguousarray(np.stack(frames)).tofile(os.path.splitext(out)[0] + ".rgb")


if __name__ == "__main__":
    print("cv2", cv2.__version__)
    make("cv2_mp4v.mp4", "mp4v")   # what upstream detect.py writes
    make("cv2_avc1.mp4", "avc1")   # H.264, the usual camera/phone input
