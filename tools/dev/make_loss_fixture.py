#!/usr/bin/python3
"""Compact references for train/loss.cpp: upstream YOLOv7 training losses and their gradients w.r.t.
the raw head maps.

Dev-only. Run with Debian's python3-torch (1.13) and an upstream yolov7 checkout:
  YOLOV7_SRC=/work/upstream /usr/bin/python3 tools/dev/make_loss_fixture.py [OUT] [--shared DIR]
OUT defaults to tests/data/loss, DIR to /work/shared/fixtures/upstream. --synthetic-only writes only
the synthetic cases (see SYNTHETIC at the end: random raw maps stored in full, raw<i>.npy and
<v>_grad<i>.npy, for nc=1, nc=3 and a 4-level AuxOTA).

For each fixture model: load model.pt, .float().train(), run it on the shared input.npy (BatchNorm on
batch statistics, exactly as the shared make_fixtures.py did when it wrote loss.npy), keep the raw
per-level maps [B,na,H,W,no] (lead levels, then aux levels for IAuxDetect).

Compaction: the loss reads the objectness channel of every cell, but the box/class channels only at
the candidate cells of find_3_positive / find_5_positive (the plain loss's build_targets uses the same
cells as find_3_positive). So we store, per level i:
  obj<i>.npy    float32 [B,na,H,W]  the raw objectness channel
  cells<i>.npy  int64   [k]         flat indices into [B,na,H,W] of the candidate cells (lead maps: the
                                    union of the 3- and 5-positive candidates; aux maps: the
                                    5-positive ones of the lead level i - nl)
  rows<i>.npy   float32 [k,no]      the full raw vectors at those cells
The raw maps rebuilt from these (zeros elsewhere) give exactly the same losses as the full maps; the
references below are computed on the rebuilt maps, and the script prints the agreement with the
shared loss.npy / loss_plain.npy (made on the full maps) as a check.

Per variant v (a loss class and hyp/gr/targets overrides, see VARIANTS):
  <v>_loss.npy          float32 [4] upstream's second return value (lbox, lobj, lcls, total)
  <v>_grad_obj<i>.npy   float32 [B,na,H,W] d(first return value = total*bs)/d(raw obj channel)
  <v>_grad_cells<i>.npy int64   [m]        flat cell indices where a box/class channel's gradient is
                                           non-zero (the positives; a subset of cells<i>)
  <v>_grad_rows<i>.npy  float32 [m,no]     the gradient there, all channels
(every other entry of the gradient is zero).
meta.json: nc, na, nl, strides, anchors (grid units, Detect's `anchors` buffer), image shape, level
shapes, base hyp (already scaled as train.py scales it), and each variant's settings.

Upstream ComputeLossOTA on a batch without any target fails on CPU (its empty-result path builds
tensors on 'cuda:0'); the "empty" variant's reference is therefore the plain ComputeLoss with no
targets, which computes the same thing (objectness BCE against zeros only).
"""
import copy, json, os, sys

import numpy as np
import torch

SRC = os.environ.get("YOLOV7_SRC", "/work/upstream")
sys.path.insert(0, SRC)
os.chdir(SRC)

from models.yolo import IAuxDetect  # noqa: E402
from utils.loss import ComputeLoss, ComputeLossOTA, ComputeLossAuxOTA  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> list of (variant, loss class, hyp overrides, gr, targets mode)
VARIANTS = {
    "yolov7-tiny": [
        ("ota", "ota", {}, 1.0, "all"),
        ("plain", "plain", {}, 1.0, "all"),
        ("ota_ls", "ota", {"label_smoothing": 0.1, "cls_pw": 1.3, "obj_pw": 0.8}, 0.7, "all"),
        ("ota_fl", "ota", {"fl_gamma": 1.5}, 1.0, "all"),
        ("plain_fl", "plain", {"fl_gamma": 2.0, "label_smoothing": 0.05, "obj_pw": 1.2}, 0.5, "all"),
        ("ota_img1", "ota", {}, 1.0, "img1"),
        ("ota_crowd", "ota", {}, 1.0, "crowd"),
        ("plain_crowd", "plain", {}, 1.0, "crowd"),
        ("empty", "plain", {}, 1.0, "none"),
    ],
    "yolov7": [
        ("ota", "ota", {}, 1.0, "all"),
        ("plain", "plain", {}, 1.0, "all"),
    ],
    "yolov7-w6": [
        ("aux", "aux", {}, 1.0, "all"),
        ("aux_fl", "aux", {"fl_gamma": 1.5, "label_smoothing": 0.1}, 0.8, "all"),
        ("aux_crowd", "aux", {}, 1.0, "crowd"),
    ],
    "yolov7-e6e": [
        ("aux", "aux", {}, 1.0, "all"),
    ],
}


def crowd_targets(targets, nc):
    """The fixture targets plus a crowd: exact duplicates, several boxes around one cell, boxes at
    the borders (clamped cells), boxes too small/large for some anchors (anchor_t filter)."""
    gen = torch.Generator().manual_seed(11)
    rows = [r.tolist() for r in targets]
    rows += [r.tolist() for r in targets[:3]]  # exact duplicates
    for b in (0, 1):
        cx, cy = 0.37, 0.52
        for k in range(6):  # a cluster of overlapping boxes
            w, h = (torch.rand(2, generator=gen) * 0.3 + 0.05).tolist()
            rows.append([b, int(torch.randint(0, nc, (1,), generator=gen)), cx + 0.01 * k, cy - 0.008 * k, w, h])
        rows.append([b, 3, 0.004, 0.5, 0.008, 0.3])    # left border
        rows.append([b, 4, 0.998, 0.996, 0.004, 0.008])  # bottom-right corner, tiny
        rows.append([b, 5, 0.5, 0.5, 1.0, 1.0])        # whole image
        rows.append([b, 6, 0.25, 0.75, 0.5, 0.5])      # on cell boundaries
        for _ in range(8):
            w, h = (torch.rand(2, generator=gen) * 0.6 + 0.01).tolist()
            cx = float(torch.rand(1, generator=gen) * (1 - w) + w / 2)
            cy = float(torch.rand(1, generator=gen) * (1 - h) + h / 2)
            rows.append([b, int(torch.randint(0, nc, (1,), generator=gen)), cx, cy, w, h])
    return torch.tensor(rows, dtype=torch.float32)


def np_save(path, t):
    np.save(path, t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t)


def main():
    args = sys.argv[1:]
    shared = "/work/shared/fixtures/upstream"
    if "--shared" in args:
        k = args.index("--shared")
        shared = args[k + 1]
        del args[k:k + 2]
    out = os.path.abspath(args[0]) if args else os.path.join(REPO, "tests", "data", "loss")
    torch.set_num_threads(2)
    for name, variants in VARIANTS.items():
        d = os.path.join(shared, name)
        meta = json.load(open(os.path.join(d, "meta.json")))
        x = torch.from_numpy(np.load(os.path.join(d, "input.npy")))
        targets = torch.from_numpy(np.load(os.path.join(d, "targets.npy")))
        ckpt = torch.load(os.path.join(d, "model.pt"), map_location="cpu")
        mt = ckpt["model"].float()
        for p in mt.parameters():
            p.requires_grad = False
        det = mt.model[-1]
        nl, na, nc, no = det.nl, det.na, det.nc, det.no
        aux = isinstance(det, IAuxDetect)
        mt.hyp, mt.gr, mt.nc = copy.deepcopy(meta["hyp"]), 1.0, nc
        mt.train()
        with torch.no_grad():
            full = [p.detach().clone() for p in mt(x)]
        # candidate cells per lead level
        helper = ComputeLossAuxOTA(mt) if aux else ComputeLossOTA(mt)
        crowd = crowd_targets(targets, nc)
        # the crowd includes the fixture targets; only models with a crowd variant need its cells
        cand_t = crowd if any(v[4] == "crowd" for v in variants) else targets
        ind3 = helper.find_3_positive(full[:nl], cand_t)[0]
        ind5 = ComputeLossAuxOTA.find_5_positive(helper, full[:nl], cand_t)[0]
        masked, cells = [], []
        for i, p in enumerate(full):
            B, A, H, W, _ = p.shape
            li = i % nl
            flat = []
            # lead maps: read at the 3-positive (lead assignment, plain loss) and 5-positive (aux
            # assignment) candidates; aux maps only at the 5-positive ones
            for (b, a, gj, gi) in ((ind3[li], ind5[li]) if i < nl else (ind5[li],)):
                flat.append(((b * A + a) * H + gj) * W + gi)
            c = torch.unique(torch.cat(flat)) if flat else torch.zeros(0, dtype=torch.int64)
            m = torch.zeros_like(p)
            m[..., 4] = p[..., 4]
            mv, pv = m.view(-1, no), p.view(-1, no)
            mv[c] = pv[c]
            masked.append(m)
            cells.append(c)
        od = os.path.join(out, name)
        os.makedirs(od, exist_ok=True)
        for i, (m, c) in enumerate(zip(masked, cells)):
            np_save(os.path.join(od, f"obj{i}.npy"), m[..., 4].contiguous())
            np_save(os.path.join(od, f"cells{i}.npy"), c.to(torch.int64))
            np_save(os.path.join(od, f"rows{i}.npy"), m.view(-1, no)[c].contiguous())
        np_save(os.path.join(od, "targets.npy"), targets)
        np_save(os.path.join(od, "targets_crowd.npy"), crowd)
        vmeta = []
        for (vname, kind, over, gr, tmode) in variants:
            hyp = copy.deepcopy(meta["hyp"])
            hyp.update(over)
            mt.hyp, mt.gr = hyp, gr
            if tmode == "all":
                tg = targets.clone()
            elif tmode == "crowd":
                tg = crowd.clone()
            elif tmode == "img1":
                tg = targets[targets[:, 0] == 1].clone()
            else:
                tg = torch.zeros(0, 6)
            lf = {"ota": ComputeLossOTA, "plain": ComputeLoss, "aux": ComputeLossAuxOTA}[kind](mt)
            leaves = [m.clone().requires_grad_(True) for m in masked]
            if kind == "plain":
                loss, li = lf(leaves, tg)
            else:
                loss, li = lf(leaves, tg, x)
            loss.backward()
            np_save(os.path.join(od, f"{vname}_loss.npy"), li.float())
            for i, (lv, c) in enumerate(zip(leaves, cells)):
                g = lv.grad if lv.grad is not None else torch.zeros_like(lv)
                gv = g.view(-1, no)
                rest = gv.clone()
                rest[:, 4] = 0
                gc = torch.nonzero(rest.abs().amax(1) > 0).flatten()
                assert bool(torch.isin(gc, c).all()), (name, vname, i)
                np_save(os.path.join(od, f"{vname}_grad_obj{i}.npy"), g[..., 4].contiguous())
                np_save(os.path.join(od, f"{vname}_grad_cells{i}.npy"), gc.to(torch.int64))
                np_save(os.path.join(od, f"{vname}_grad_rows{i}.npy"), gv[gc].contiguous())
            vmeta.append({"name": vname, "loss": kind, "hyp": hyp, "gr": gr, "targets": tmode,
                          "backward_loss": float(loss)})
            # checks against the shared fixtures (made on the full maps)
            if tmode == "all" and not over and gr == 1.0:
                ref = np.load(os.path.join(d, "loss_plain.npy" if kind == "plain" else "loss.npy"))
                rel = np.abs(li.numpy() - ref) / np.maximum(np.abs(ref), 1e-12)
                print(f"{name} {vname}: {li.numpy()} shared {ref} max rel {rel.max():.3g}", flush=True)
            else:
                print(f"{name} {vname}: {li.numpy()}", flush=True)
        meta_out = {"nc": nc, "na": na, "nl": nl, "no": no, "aux": aux,
                    "stride": [float(s) for s in det.stride],
                    "anchors": det.anchors.tolist(), "input_shape": list(x.shape),
                    "levels": [list(p.shape) for p in full], "hyp": meta["hyp"], "variants": vmeta}
        json.dump(meta_out, open(os.path.join(od, "meta.json"), "w"), indent=1)
        # also the loss on the full maps, as a check that the compaction is exact
        mt.hyp, mt.gr = copy.deepcopy(meta["hyp"]), 1.0
        lf = ComputeLossAuxOTA(mt) if aux else ComputeLossOTA(mt)
        with torch.no_grad():
            lfull = lf(full, targets, x)[1]
        print(f"{name}: full-map loss {lfull.numpy()}", flush=True)


# Synthetic cases (no model): random raw maps on small grids, stored in full, for what the fixture
# models do not cover: nc=1 (no class loss; OTA's one-hot of width 1), few classes, dense targets.
SYNTHETIC = [
    # name, nc, nl, aux, image (h, w), targets per image, variants
    ("nc1", 1, 3, False, (64, 96), 12, [("ota", "ota", {}, 1.0), ("plain", "plain", {}, 1.0)]),
    ("nc3", 3, 3, False, (96, 64), 20, [("ota", "ota", {}, 1.0), ("plain", "plain", {}, 1.0),
                                        ("ota_fl", "ota", {"fl_gamma": 2.0, "label_smoothing": 0.2,
                                                           "cls_pw": 0.6, "obj_pw": 1.5}, 0.3)]),
    ("nc3_aux", 3, 4, True, (64, 128), 16, [("aux", "aux", {}, 1.0)]),
]


class _FakeDetect(torch.nn.Module):
    def __init__(self, nc, nl, na, anchors, stride):
        super().__init__()
        self.nc, self.nl, self.na, self.no = nc, nl, na, nc + 5
        self.register_buffer("anchors", anchors)
        self.stride = stride


class _FakeModel(torch.nn.Module):
    def __init__(self, det, hyp, gr):
        super().__init__()
        self.model = torch.nn.ModuleList([det])
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.hyp, self.gr = hyp, gr


def synthetic(out):
    base = json.load(open("/work/shared/fixtures/upstream/yolov7-tiny/meta.json"))["hyp"]
    apx = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326],
           [436, 615, 739, 380, 925, 792]]
    for (name, nc, nl, aux, (H, W), per_img, variants) in SYNTHETIC:
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        B, na = 2, 3
        stride = torch.tensor([8.0, 16.0, 32.0, 64.0][:nl])
        anchors = torch.tensor(apx[:nl], dtype=torch.float32).view(nl, na, 2) / stride.view(-1, 1, 1)
        nmaps = 2 * nl if aux else nl
        raw = []
        for i in range(nmaps):
            s = stride[i % nl]
            raw.append(torch.rand(B, na, int(H / s), int(W / s), nc + 5, generator=gen) * 4.0 - 2.5)
        rows = []
        for b in range(B):
            for k in range(per_img):
                w, h = (torch.rand(2, generator=gen) * 0.5 + 0.02).tolist()
                cx = float(torch.rand(1, generator=gen) * (1 - w) + w / 2)
                cy = float(torch.rand(1, generator=gen) * (1 - h) + h / 2)
                rows.append([b, int(torch.randint(0, nc, (1,), generator=gen)), cx, cy, w, h])
            rows.append(list(rows[-1]))  # an exact duplicate
        targets = torch.tensor(rows, dtype=torch.float32)
        imgs = torch.zeros(B, 3, H, W)
        od = os.path.join(out, "synthetic", name)
        os.makedirs(od, exist_ok=True)
        for i, r in enumerate(raw):
            np_save(os.path.join(od, f"raw{i}.npy"), r)
        np_save(os.path.join(od, "targets.npy"), targets)
        vmeta = []
        for (vname, kind, over, gr) in variants:
            hyp = copy.deepcopy(base)
            hyp.update(over)
            det = _FakeDetect(nc, nl, na, anchors, stride)
            m = _FakeModel(det, hyp, gr)
            lf = {"ota": ComputeLossOTA, "plain": ComputeLoss, "aux": ComputeLossAuxOTA}[kind](m)
            leaves = [r.clone().requires_grad_(True) for r in raw]
            loss, li = lf(leaves, targets) if kind == "plain" else lf(leaves, targets, imgs)
            loss.backward()
            np_save(os.path.join(od, f"{vname}_loss.npy"), li.float())
            for i, lv in enumerate(leaves):
                np_save(os.path.join(od, f"{vname}_grad{i}.npy"), lv.grad)
            vmeta.append({"name": vname, "loss": kind, "hyp": hyp, "gr": gr, "targets": "all",
                          "backward_loss": float(loss)})
            print(f"synthetic {name} {vname}: {li.numpy()}", flush=True)
        json.dump({"nc": nc, "na": na, "nl": nl, "no": nc + 5, "aux": aux, "stride": stride.tolist(),
                   "anchors": anchors.tolist(), "input_shape": [B, 3, H, W],
                   "levels": [list(r.shape) for r in raw], "hyp": base, "variants": vmeta},
                  open(os.path.join(od, "meta.json"), "w"), indent=1)


if __name__ == "__main__":
    if "--synthetic-only" in sys.argv:
        sys.argv.remove("--synthetic-only")
        synthetic(os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(REPO, "tests", "data", "loss"))
    else:
        main()
        synthetic(os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                  else os.path.join(REPO, "tests", "data", "loss"))
