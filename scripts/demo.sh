#!/usr/bin/env bash
# The main job on the built-in default: make the synthetic shapes data set, train yolov7-tiny on it
# from scratch, evaluate the result (test.py's metrics) and detect on the validation images.
# Sizes are small so that it finishes in minutes on 2 CPU cores; raise EPOCHS/IMG for a real run.
set -euo pipefail
cd "$(dirname "$0")/.."
Y7=${1:-build/yolo7}
EPOCHS=${EPOCHS:-30}
IMG=${IMG:-160}
"$Y7" data shapes --out data/shapes --train 300 --val 60 --size "$IMG" --seed 0
"$Y7" train --weights '' --cfg cfg/training/yolov7-tiny.yaml --data data/shapes/data.yaml \
  --hyp data/hyp.shapes.yaml --epochs "$EPOCHS" --batch-size 16 --img-size "$IMG" "$IMG" \
  --project runs/train --name demo --exist-ok
W=runs/train/demo/weights/best.pt
"$Y7" test --weights "$W" --data data/shapes/data.yaml --img-size "$IMG" --batch-size 16 \
  --project runs/test --name demo --exist-ok
"$Y7" detect --weights "$W" --source data/shapes/images/val --img-size "$IMG" --save-txt --save-conf \
  --project runs/detect --name demo --exist-ok
"$Y7" info --weights "$W"
