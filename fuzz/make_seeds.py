#!/usr/bin/python3
"""Dev-only: writes a few tiny torch.save checkpoints shaped like upstream YOLOv7 ones into
fuzz/corpus/ as libFuzzer seeds. Needs Debian's /usr/bin/python3 with torch 1.13 and numpy; the
upstream classes are stand-in nn.Module subclasses registered under models.common / models.yolo,
so the pickles name the same globals that real checkpoints do.

  /usr/bin/python3 fuzz/make_seeds.py fuzz/corpus
"""
import copy, io, os, sys, types, zipfile

import numpy as np
import torch
from torch import nn

_classes = {}


def _module(name):
    m = types.ModuleType(name)

    def getattr_(attr):
        key = (name, attr)
        if key not in _classes:
            _classes[key] = type(attr, (nn.Module,), {"__module__": name})
        return _classes[key]

    m.__getattr__ = getattr_
    sys.modules[name] = m
    return m


sys.modules["models"] = types.ModuleType("models")
common, yolo = _module("models.common"), _module("models.yolo")


def conv(c1, c2, k, fused=False):
    m = common.Conv()
    m.conv = nn.Conv2d(c1, c2, k, padding=k // 2, bias=fused)
    if not fused:
        m.bn = nn.BatchNorm2d(c2)
    m.act = nn.SiLU()
    return m


def model(fused=False, detect="IDetect"):
    torch.manual_seed(0)
    m = yolo.Model()
    d = getattr(yolo, detect)()
    d.m = nn.ModuleList([nn.Conv2d(4, 7 * 3, 1)])
    d.register_buffer("anchors", torch.tensor([[[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]]]))
    d.register_buffer("anchor_grid", d.anchors.clone().view(1, 1, 3, 1, 1, 2))
    if detect == "IDetect":
        ia, im = common.ImplicitA(), common.ImplicitM()
        ia.implicit = nn.Parameter(torch.zeros(1, 4, 1, 1))
        im.implicit = nn.Parameter(torch.ones(1, 21, 1, 1))
        d.ia, d.im = nn.ModuleList([ia]), nn.ModuleList([im])
    m.model = nn.Sequential(conv(3, 4, 3, fused), nn.MaxPool2d(2), conv(4, 4, 1, fused), d)
    m.yaml = {"nc": 2, "depth_multiple": 1.0, "width_multiple": 0.125,
              "anchors": [[10, 13, 16, 30, 33, 23]],
              "backbone": [[-1, 1, "Conv", [32, 3, 1]], [-1, 1, "MP", []], [-1, 1, "Conv", [32, 1, 1]]],
              "head": [[[2], 1, detect, ["nc", "anchors"]]], "ch": 3}
    m.names, m.nc, m.stride = ["cat", "dog"], 2, torch.tensor([8.0])
    m.hyp = {"lr0": 0.01, "box": 0.05}
    return m


def save(obj, path, protocol=2):
    torch.save(obj, path, pickle_protocol=protocol)
    print(path, os.path.getsize(path))


def main(out):
    os.makedirs(out, exist_ok=True)
    m = model().half()
    save({"model": m, "optimizer": None, "epoch": -1, "training_results": None, "ema": None, "updates": None,
          "wandb_id": None}, os.path.join(out, "stripped.pt"))
    train = model()
    opt = torch.optim.SGD(train.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    for p in train.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    opt.param_groups[0]["momentum"] = np.float64(0.8001370000000001)
    save({"epoch": 3, "best_fitness": np.array([0.25]), "training_results": "  3/9  0.1\n",
          "model": copy.deepcopy(train).half(), "ema": copy.deepcopy(train).half(), "updates": np.int64(12),
          "optimizer": opt.state_dict(), "wandb_id": None}, os.path.join(out, "training.pt"))
    save({"model": model(fused=True, detect="Detect").half(), "epoch": 1, "best_fitness": np.float32(0.5)},
         os.path.join(out, "fused_protocol4.pt"), protocol=4)
    save({k: v.float() for k, v in model().state_dict().items() if v.is_floating_point()},
         os.path.join(out, "grads.pt"))
    # the bare pickle of a checkpoint (the fuzz target also runs non-zip input as a pickle)
    with zipfile.ZipFile(os.path.join(out, "stripped.pt")) as z:
        name = [n for n in z.namelist() if n.endswith("data.pkl")][0]
        with open(os.path.join(out, "stripped.pkl"), "wb") as f:
            f.write(z.read(name))
    print(os.path.join(out, "stripped.pkl"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
