#!/usr/bin/python3
"""Compact reference fixtures for the FULL-WIDTH upstream yolov7-tiny and yolov7 (nc=80) at 640x640.

Dev-only. Run with Debian's python3-torch (1.13) and an upstream yolov7 checkout:
  YOLOV7_SRC=/work/upstream /usr/bin/python3 tools/dev/make_full_fixtures.py [OUT] [--only NAME...]
OUT defaults to tests/data/full (relative to the repository root). Upstream's imports need the Debian
packages python3-torchvision python3-pandas python3-matplotlib python3-seaborn python3-scipy
python3-tqdm. Takes about two minutes on 2 cores; the output is deterministic.

Full checkpoints are far too big to commit, so the weights are split in two:
  * every nn.Conv2d weight (the 4-D "<...>.weight" tensors of conv modules) comes from a formula that
    tests/full_weights.h reproduces bit-exactly in C++ (see conv_weight() below);
  * everything else (BatchNorm params/buffers, conv biases, ImplicitA/M, anchors) is stored as a small
    float32 plain dict in small.pt ({state_dict name: tensor}).
The input image is a formula too (integer arithmetic only, then k/255 in float32).

Formula (all integer arithmetic modulo 2^64):
  mix64(z)    = splitmix64 finalizer: z ^= z>>30; z *= 0xBF58476D1CE4E5B9; z ^= z>>27;
                z *= 0x94D049BB133111EB; z ^= z>>31
  hash(s, i)  = mix64(s + (i+1) * 0x9E3779B97F4A7C15)
  seed(name)  = FNV-1a 64 of the UTF-8 state_dict name
  u(s, i)     = float32(int(hash(s,i) >> 40) - 2^23) * 2^-23          (exact, in [-1, 1))
  scale(t)    = float32(sqrt(3.0 / fan_in)) (fan_in = in/groups * kh * kw, math in float64, one rounding)
  w[i]        = float32(u(seed(name), i) * scale)                      (one float32 multiply)
i is the flat (row-major) element index.

Input ([1,3,640,640], float32): k = background gradient, overwritten by 40 hash-placed rectangles,
plus hash noise, clamped to [0,255]; x = float32(k) / 255.0f. See make_input().

The rest of the model (see settle_bn, spread_head, MARGINS below): BatchNorm statistics settled by a
training-mode pass on the input, with beta ~ +1.5 so that the random net is not chaotic (float32 noise
stays ~1e-5 relative instead of ~1e-3 at yolov7's head); head biases and ImplicitA/M chosen so that
~1000 rows score over 0.01 and NMS keeps several dozen boxes (and suppresses some); the first seed
whose NMS decisions (thresholds, score order, IoU) have safe margins against float32 noise is used.

Written under OUT/<name>/:
  cfg.yaml       the upstream training cfg used (nc=80, full width)
  small.pt       {name: float32 tensor} of every state_dict entry except the formula conv weights
                 (num_batches_tracked stays int64)
  weights.txt    one line per formula tensor: name, shape, checksum (sum of bits[i]*(2i+1) mod 2^64)
  rows.npy       int64 [K] rows of the [1,N,85] prediction that are stored: every row whose
                 obj*max(cls) > ROW_THRESH plus every STRIDE-th row
  eval_rows.npy  float32 [K,85] upstream eval predictions at those rows
  raw_rows.npy   float32 [K,85] the raw head map entry (before sigmoid) behind each of those rows
  fused_rows.npy float32 [K,85] predictions of the upstream .fuse()d model at those rows
  nms.npy        float32 [n,7] (img, x1, y1, x2, y2, conf, cls): upstream non_max_suppression,
                 conf .25, iou .45
  meta.yaml      shapes, maxima used by the tolerances, input checksum, the seed used, NMS margins,
                 and upstream's own float32-vs-float64 deviation at the stored rows (for scale)
"""
import argparse, copy, math, os, sys

import numpy as np
import torch
import yaml

SRC = os.environ.get("YOLOV7_SRC")
if not SRC:
    sys.exit("set YOLOV7_SRC to an upstream yolov7 checkout")
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, SRC)
os.chdir(SRC)

from models.yolo import Model  # noqa: E402
from utils.general import non_max_suppression  # noqa: E402

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
ROW_THRESH = 0.01
STRIDE = 97
HW = 640
MODELS = {"yolov7-tiny": "cfg/training/yolov7-tiny.yaml", "yolov7": "cfg/training/yolov7.yaml"}


# ---------------------------------------------------------------- the formula (mirrored in C++)
def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def mix64(z):  # z: np.uint64 array
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_idx(seed, idx):  # idx: np.uint64 array
    with np.errstate(over="ignore"):
        return mix64(np.uint64(seed) + (idx + np.uint64(1)) * np.uint64(GOLDEN))


def uniform_pm1(seed, n):
    k = (hash_idx(seed, np.arange(n, dtype=np.uint64)) >> np.uint64(40)).astype(np.int64) - (1 << 23)
    return k.astype(np.float32) * np.float32(2.0 ** -23)  # both steps exact


def weight_scale(shape):
    fan_in = int(shape[1]) * int(shape[2]) * int(shape[3])
    return np.float32(math.sqrt(3.0 / fan_in))  # float64 math, one rounding to float32


def conv_weight(name, shape):
    n = int(np.prod(shape))
    w = uniform_pm1(fnv1a64(name), n) * weight_scale(shape)  # float32 * float32 -> float32
    assert w.dtype == np.float32
    return w.reshape(shape)


def checksum(a):
    bits = np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        odd = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        return int(np.sum(bits * odd, dtype=np.uint64))


def make_input(tag, hw=HW):
    """Image-like [1,3,hw,hw] float32 input from integer arithmetic only."""
    s = fnv1a64(tag)
    yy, xx = np.meshgrid(np.arange(hw, dtype=np.int64), np.arange(hw, dtype=np.int64), indexing="ij")
    k = np.empty((3, hw, hw), dtype=np.int64)
    for c in range(3):  # smooth background: integer gradient
        k[c] = 40 + (xx * (60 + 30 * c)) // hw + (yy * (90 - 20 * c)) // hw
    r = [int(v) for v in hash_idx(fnv1a64(tag + "/rects"), np.arange(40 * 7, dtype=np.uint64))]
    for j in range(40):  # rectangles, drawn in order (later ones on top)
        h = r[j * 7:(j + 1) * 7]
        w_ = 24 + h[0] % 232
        h_ = 24 + h[1] % 232
        x0 = h[2] % (hw - w_)
        y0 = h[3] % (hw - h_)
        for c in range(3):
            k[c, y0:y0 + h_, x0:x0 + w_] = (h[4 + c] >> 11) % 256
    noise = hash_idx(s, np.arange(3 * hw * hw, dtype=np.uint64)).reshape(3, hw, hw)
    k = k + (noise >> np.uint64(59)).astype(np.int64) - 16  # 0..31 - 16
    k = np.clip(k, 0, 255)
    x = k.astype(np.float32) / np.float32(255.0)  # IEEE float32 division
    return torch.from_numpy(x[None].copy())


# ---------------------------------------------------------------- model setup
def conv_weight_names(model):
    names = []
    for mname, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            names.append(mname + ".weight")
    return names


def build(cfg_path):
    cfg = yaml.safe_load(open(cfg_path))
    cfg["nc"] = 80
    return Model(cfg, ch=3, nc=80), cfg


def apply_formula(model, names):
    sd = model.state_dict()
    with torch.no_grad():
        for n in names:
            sd[n].copy_(torch.from_numpy(conv_weight(n, tuple(sd[n].shape))))


# BatchNorm: gamma ~ U(0.7, 1.3), beta ~ N(BN_BETA, 0.1). With beta around 0 a random SiLU/LeakyReLU
# network with BatchNorm is chaotic (each layer amplifies perturbations: BN re-normalizes away the
# variance that the nonlinearity removes), so float32 rounding grows ~100x over yolov7's depth and
# sits above the test tolerances. A positive beta keeps most pre-activations in the near-linear part
# of the activation, which makes the net non-chaotic: measured float32-vs-float64 deviation at the
# yolov7 head input drops from ~4e-3 to ~4e-5 (in channel std units).
BN_BETA = 1.5


def settle_bn(model, gen, inputs, beta):
    """BatchNorm statistics from training-mode passes over `inputs` (cumulative average)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.7, 1.3, generator=gen)
            m.bias.normal_(beta, 0.1, generator=gen)
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        model.train()
        for x in inputs:
            model(x)
        for m in bns:
            m.momentum = 0.03
    model.eval()


# Head settings. Each head output channel is first standardized on the test input
# (z = (conv(x + ia) - mean) / std), then mapped to logit = a*z + b through ImplicitM = a/std and
# bias = b*std/a - mean, so that the scores are controlled whatever the random backbone does.
# obj: a, b per anchor put the (1-p_hi) quantile of z at logit obj_hi and the (1-p_lo) quantile at
# obj_lo, so that only ~1000 rows score over ROW_THRESH and NMS keeps several dozen boxes.
# Class 0 (then 1, 2) dominates, so that same-class boxes overlap and NMS really suppresses some.
# The gains (a) are kept low (box 0.1, class 1, obj ~4) because float32 noise in the head input
# (~3e-5 std units) times the gain is what reaches the outputs; the wh biases per level keep the big
# level-2 anchors from giving huge boxes whose wh would amplify that noise further (NMS compares
# coordinates to 1e-3 px).
HEAD = {"yolov7-tiny": dict(p_hi=0.004, obj_hi=-0.8, p_lo=0.025, obj_lo=-3.5, box_a=0.1,
                             wh=[1.2, 0.0, -1.2], cls_a=1.0),
        "yolov7": dict(p_hi=0.004, obj_hi=-0.8, p_lo=0.025, obj_lo=-3.5, box_a=0.1,
                        wh=[1.2, 0.0, -1.2], cls_a=1.0)}


def spread_head(model, gen, x, p_hi, obj_hi, p_lo, obj_lo, box_a, wh, cls_a):
    det = model.model[-1]
    na, no = det.na, det.no
    outs = {}
    hooks = [c.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out))
             for i, c in enumerate(det.m)]
    with torch.no_grad():
        for ia in det.ia:
            ia.implicit.normal_(0.0, 0.2, generator=gen)
        for conv in det.m:
            conv.bias.zero_()
        model.eval()
        model(x)
        for h in hooks:
            h.remove()
        for i, conv in enumerate(det.m):
            o = outs[i].double().transpose(0, 1).reshape(na * no, -1)
            mean, std = o.mean(1), o.std(1).clamp(min=1e-3)
            z = (o - mean[:, None]) / std[:, None]
            a = torch.empty(na, no, dtype=torch.float64)
            b = torch.empty(na, no, dtype=torch.float64)
            a[:, 0:4] = box_a
            b[:, 0:2] = 0.15 * torch.randn(na, 2, generator=gen)
            b[:, 2:4] = wh[i] + 0.15 * torch.randn(na, 2, generator=gen)
            zo = z.view(na, no, -1)[:, 4]
            q_hi = torch.quantile(zo, 1 - p_hi, dim=1)
            q_lo = torch.quantile(zo, 1 - p_lo, dim=1)
            a[:, 4] = (obj_hi - obj_lo) / (q_hi - q_lo)
            b[:, 4] = obj_hi - a[:, 4] * q_hi
            a[:, 5:] = cls_a
            b[:, 5:] = -6.0 + 0.5 * torch.randn(na, no - 5, generator=gen)
            b[:, 5] = 1.5 + 0.2 * torch.randn(na, generator=gen)  # class 0 dominates,
            b[:, 6:8] = 0.0 + 0.2 * torch.randn(na, 2, generator=gen)  # then classes 1, 2
            a, b = a.view(-1), b.view(-1)
            conv.bias.copy_((b * std / a - mean).float())
            det.im[i].implicit.copy_((a / std).float().view(1, -1, 1, 1))


def nms_rows(pred):
    dets = non_max_suppression(pred.clone(), conf_thres=0.25, iou_thres=0.45)
    rows = [torch.cat([torch.full((len(d), 1), float(i)), d], 1) for i, d in enumerate(dets)]
    return torch.cat(rows, 0) if rows else torch.zeros(0, 7)


def nms_margins(pred, conf_thres=0.25, iou_thres=0.45):
    """How far the NMS decisions are from their thresholds (so that float noise cannot flip them)."""
    x = pred[0].double()
    obj = x[:, 4]
    conf, j = (x[:, 5:] * obj[:, None]).max(1)
    m_obj = (obj - conf_thres).abs().min().item()
    m_conf = (conf - conf_thres).abs().min().item()
    cand = conf > conf_thres
    c, cl = conf[cand], j[cand]
    b = x[cand, :4]
    xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    sc = torch.sort(c, descending=True).values
    m_order = (sc[:-1] - sc[1:]).min().item() if len(sc) > 1 else 1.0
    # IoU of same-class pairs
    lt = torch.max(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = torch.min(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = (xyxy[:, 2:] - xyxy[:, :2]).prod(1)
    iou = inter / (area[:, None] + area[None, :] - inter)
    same = (cl[:, None] == cl[None, :]) & ~torch.eye(len(cl), dtype=torch.bool)
    m_iou = (iou[same] - iou_thres).abs().min().item() if same.any() else 1.0
    return {"obj": m_obj, "conf": m_conf, "order": m_order, "iou": m_iou, "candidates": int(cand.sum())}


def make_model(name, seed, head=None):
    """The upstream Model with formula conv weights, settled BatchNorm and a spread head."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, cfg = build(MODELS[name])
    wnames = conv_weight_names(model)
    apply_formula(model, wnames)
    x = make_input(name)
    settle_bn(model, gen, inputs=[x], beta=BN_BETA)
    spread_head(model, gen, x, **(head or HEAD[name]))  # calibrated on the test input
    return model, cfg, wnames, x


# NMS decisions must not be flippable by float32 noise (measured below ~2e-5 in scores and ~5e-4 px
# in boxes): the generator tries seeds (BatchNorm affine + head) until these margins hold.
MARGINS = {"obj": 5e-5, "conf": 5e-5, "order": 3e-5, "iou": 2e-4}
KEEP_RANGE = (30, 150)  # boxes NMS keeps
MIN_SUPPRESSED = 5


def margins_ok(pred):
    m = nms_margins(pred)
    kept = int(nms_rows(pred).shape[0])
    ok = (all(m[k] >= v for k, v in MARGINS.items()) and KEEP_RANGE[0] <= kept <= KEEP_RANGE[1]
          and m["candidates"] - kept >= MIN_SUPPRESSED)
    return ok, m, kept


def noise_floor(m, x, pred, raw, fpred, rows):
    """How far upstream's own float32 outputs are from a float64 run of the same model (at the stored
    rows): the scale of float32 rounding noise that any float32 implementation has."""
    m64 = copy.deepcopy(m).double()
    with torch.no_grad():
        p64, r64 = m64(x.double())
    e = (pred[0, rows].double() - p64[0, rows]).abs()
    ef = (fpred[0, rows].double() - p64[0, rows]).abs()  # fusion is exact in exact arithmetic
    return {"eval_box": float(e[:, :4].max()), "eval_score": float(e[:, 4:].max()),
            "raw_rel": max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(raw, r64)),
            "fused_box": float(ef[:, :4].max()), "fused_score": float(ef[:, 4:].max()),
            "nms_same": bool(torch.equal(nms_rows(p64.float())[:, [0, 6]], nms_rows(pred)[:, [0, 6]]))}


def one(out, name, seed, tries=30):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    cfg_path = MODELS[name]
    for s in range(seed, seed + tries):
        model, cfg, wnames, x = make_model(name, s)
        with torch.no_grad():
            ok, mg, kept = margins_ok(model(x)[0])
        print(f"{name} seed {s}: {'ok' if ok else 'rejected'}, NMS keeps {kept}/{mg['candidates']}, margins",
              {k: f"{v:.2g}" for k, v in mg.items() if k != "candidates"}, flush=True)
        if ok:
            seed = s
            break
    else:
        sys.exit(f"{name}: no seed in [{seed}, {seed + tries}) gives safe NMS margins")

    # small dict: everything except the formula weights, float32 (ints stay ints), own storages
    sd = model.state_dict()
    small = {}
    for k, v in sd.items():
        if k in wnames:
            continue
        small[k] = v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
    torch.save(small, os.path.join(d, "small.pt"))
    with open(os.path.join(d, "cfg.yaml"), "w") as f:
        f.write(f"# upstream {cfg_path} (nc=80, full width), as used by tools/dev/make_full_fixtures.py\n")
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
    with open(os.path.join(d, "weights.txt"), "w") as f:
        for n in wnames:
            w = conv_weight(n, tuple(sd[n].shape))
            f.write(f"{n} {'x'.join(str(v) for v in w.shape)} {checksum(w)}\n")

    # reference: a fresh model rebuilt from exactly what the C++ test reconstructs
    m, _ = build(cfg_path)
    full = dict(torch.load(os.path.join(d, "small.pt"), map_location="cpu"))
    for n in wnames:
        full[n] = torch.from_numpy(conv_weight(n, tuple(m.state_dict()[n].shape)))
    m.load_state_dict(full, strict=True)
    m.float().eval()
    x = make_input(name)
    with torch.no_grad():
        pred, raw = m(x)
        fpred = copy.deepcopy(m).fuse().eval()(x)[0]
        dets = nms_rows(pred)
    ok, margins, _ = margins_ok(pred)
    assert ok, "the reloaded model must give the same outputs"

    score = pred[0, :, 4] * pred[0, :, 5:].max(1).values
    N = pred.shape[1]
    sel = (score > ROW_THRESH) | (torch.arange(N) % STRIDE == 0)
    rows = torch.nonzero(sel).view(-1)
    raw_flat = torch.cat([r.reshape(1, -1, r.shape[-1]) for r in raw], 1)
    assert raw_flat.shape == pred.shape
    np.save(os.path.join(d, "rows.npy"), rows.numpy().astype(np.int64))
    np.save(os.path.join(d, "eval_rows.npy"), pred[0, rows].numpy().astype(np.float32))
    np.save(os.path.join(d, "raw_rows.npy"), raw_flat[0, rows].numpy().astype(np.float32))
    np.save(os.path.join(d, "fused_rows.npy"), fpred[0, rows].numpy().astype(np.float32))
    np.save(os.path.join(d, "nms.npy"), dets.numpy().astype(np.float32))

    xin = x.numpy()
    meta = {
        "cfg": cfg_path, "nc": 80, "seed": seed, "input_shape": list(x.shape), "input_tag": name,
        "input_sum": float(xin.astype(np.float64).sum()), "input_checksum": checksum(xin),
        "pred_shape": list(pred.shape), "stride": m.stride.tolist(),
        "raw_shapes": [list(r.shape) for r in raw],
        "box_max": float(pred[0, :, :4].abs().max()),
        "raw_max": [float(r.abs().max()) for r in raw],
        "fused_box_max": float(fpred[0, :, :4].abs().max()),
        "rows": int(rows.numel()), "rows_over_thresh": int((score > ROW_THRESH).sum()),
        "row_thresh": ROW_THRESH, "row_stride": STRIDE, "nms_rows": int(dets.shape[0]),
        "nms_candidates": margins.pop("candidates"), "nms_margins": margins,
        "float32_noise_vs_float64": noise_floor(m, x, pred, raw, fpred, rows),
        "formula_tensors": len(wnames),
        "formula_params": int(sum(np.prod(sd[n].shape) for n in wnames)),
        "bn_beta": BN_BETA, "head": HEAD[name], "torch": str(torch.__version__),
    }
    with open(os.path.join(d, "meta.yaml"), "w") as f:
        yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=None)
    print(name, {k: meta[k] for k in ("seed", "rows", "rows_over_thresh", "nms_rows", "nms_candidates",
                                       "box_max", "raw_max", "float32_noise_vs_float64")}, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.path.join(REPO, "tests", "data", "full"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = a.out if os.path.isabs(a.out) else os.path.join(os.environ.get("PWD", REPO), a.out)
    for n in MODELS:
        if a.only and n not in a.only:
            continue
        one(out, n, a.seed)


if __name__ == "__main__":
    main()
