"""ONNX files exported by upstream PyTorch YOLOv7, for tests/data/onnx (dev-only tooling).

Run with Debian's python3-torch 1.13 and an upstream yolov7 checkout:
  YOLOV7_SRC=/work/upstream /usr/bin/python3 tools/dev/make_onnx_fixture.py tests/data/onnx

A small model (an upstream cfg at a reduced width, few classes, BatchNorm statistics settled by a
few training-mode passes, head biases spread) is saved as a temporary .pt (strip_optimizer layout,
fp16), loaded back and exported the way upstream export.py's ONNX part does it: attempt_load()-style
.float().fuse().eval(), export-friendly activations, Detect.export = not --grid, opset 12, input
'images', output 'output'; --grid sets Detect.concat; --end2end wraps the model in End2End (ONNX_ORT
NonMaxSuppression with max_wh). Written per model:
  <name>.onnx               raw head maps (Detect.export: outputs [B,na,H,W,no] per level)
  <name>_grid.onnx          --grid: decoded [B,N,no]
  <name>_e2e.onnx           --grid --end2end --max-wh 640 (ORT NMS; output [n,7])
  <name>_input.npy          float32 input
  <name>_out<i>.npy         upstream's outputs of <name>.onnx's graph (the traced torch model)
  <name>_grid_out.npy       upstream's decoded output (--grid)
"""
import argparse, copy, os, sys, tempfile

import numpy as np
import torch
import yaml

SRC = os.environ.get("YOLOV7_SRC", "/work/upstream")
sys.path.insert(0, SRC)

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--models", nargs="+", default=["yolov7:deploy:0.03125"])
ap.add_argument("--nc", type=int, default=5)
ap.add_argument("--size", type=int, nargs=2, default=[96, 128])
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
out = os.path.abspath(args.out)
os.makedirs(out, exist_ok=True)
os.chdir(SRC)

import torch.nn as nn  # noqa: E402
import models  # noqa: E402
from models.yolo import Model  # noqa: E402
from models.experimental import End2End  # noqa: E402
from utils.activations import SiLU, Hardswish  # noqa: E402


def build(cfg_path, width, nc, gen, shape):
    cfg = yaml.safe_load(open(cfg_path))
    cfg["width_multiple"] = width
    cfg["nc"] = nc
    m = Model(cfg, ch=3, nc=nc)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.7, 1.3, generator=gen)
                mod.bias.normal_(0.0, 0.05, generator=gen)
        m.train()
        for _ in range(4):
            m(torch.rand(shape, generator=gen))
        m.eval()
        for conv in m.model[-1].m:
            conv.bias.normal_(-1.0, 1.5, generator=gen)
        for p in m.parameters():
            p.requires_grad = False
    return m


def load_fused(path):
    # attempt_load(): ckpt['model'].float().fuse().eval(), then export.py's export-friendly acts
    ckpt = torch.load(path, map_location="cpu")
    m = ckpt["model"].float().fuse().eval()
    for k, mod in m.named_modules():
        mod._non_persistent_buffers_set = set()
        if isinstance(mod, models.common.Conv):
            if isinstance(mod.act, nn.Hardswish):
                mod.act = Hardswish()
            elif isinstance(mod.act, nn.SiLU):
                mod.act = SiLU()
    return m


def export(m, img, f, names):
    torch.onnx.export(m, img, f, verbose=False, opset_version=12, input_names=["images"], output_names=names)
    print(f, os.path.getsize(f), "bytes")


gen = torch.Generator().manual_seed(args.seed)
torch.manual_seed(args.seed)
shape = (1, 3, *args.size)
for spec in args.models:
    name, kind, width = spec.split(":")
    width = float(width)
    m = build(f"cfg/{kind}/{name}.yaml", width, args.nc, gen, shape)
    pt = os.path.join(tempfile.mkdtemp(), f"{name}.pt")
    torch.save({"model": copy.deepcopy(m).half(), "optimizer": None, "training_results": None, "epoch": -1,
                "ema": None, "updates": None, "wandb_id": None}, pt)
    x = torch.rand(shape, generator=gen)
    np.save(os.path.join(out, f"{name}_input.npy"), x.numpy())

    # default export: Detect.export = True (raw maps)
    fm = load_fused(pt)
    fm.model[-1].export = True
    with torch.no_grad():
        raw = fm(x)
    for i, r in enumerate(raw):
        np.save(os.path.join(out, f"{name}_out{i}.npy"), r.numpy())
    export(fm, x, os.path.join(out, f"{name}.onnx"), ["output"])

    # --grid: decoded output in the graph
    fm = load_fused(pt)
    fm.model[-1].export = False
    fm.model[-1].concat = True
    with torch.no_grad():
        pred = fm(x)
    np.save(os.path.join(out, f"{name}_grid_out.npy"), pred.numpy())
    export(fm, x, os.path.join(out, f"{name}_grid.onnx"), ["output"])

    # --grid --end2end --max-wh 640: ONNX_ORT NonMaxSuppression (torch's NMS stand-in returns random
    # indices, so no reference output is kept; tests compare with NMS of the grid output)
    fm = load_fused(pt)
    fm.model[-1].export = False
    e2e = End2End(fm, 100, 0.45, 0.25, 640, torch.device("cpu"), args.nc)
    export(e2e, x, os.path.join(out, f"{name}_e2e.onnx"), ["output"])
