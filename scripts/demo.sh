#!/usr/bin/env bash
# The main job on the built-in default. Until training lands (issue 4) it runs inference on an
# upstream checkpoint from the reference fixtures: summary, forward+NMS, detect on generated images, bench.
set -euo pipefail
cd "$(dirname "$0")/.."
Y7=${1:-build/yolo7}
FIX=${Y7_FIXTURES:-../shared/fixtures/upstream}
W=$FIX/yolov7/model.pt
[ -f "$W" ] || { echo "demo: no checkpoint at $W (set Y7_FIXTURES)" >&2; exit 1; }
OUT=runs/demo
mkdir -p "$OUT"
"$Y7" info --weights "$W"
"$Y7" forward --weights "$W" --input "$FIX/yolov7/input.npy" --out "$OUT/nms.npy" --nms
"$Y7" detect --weights "$W" --source "$FIX/train-run/dataset/images/val" --img-size 192 --save-txt --save-conf \
  --project runs/detect --name demo --exist-ok
"$Y7" bench --weights "$W" --img-size 640 --iters 5
