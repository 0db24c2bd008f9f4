#!/usr/bin/env python3
"""Reference for tests/test_quant.cpp QuantModel.FakeQuantMatchesTorchReference (dev only).

Runs an upstream YOLOv7 model in PyTorch with NNDCT's DPU fake quantization applied from a yolo7
quant_info.json, written here independently of yolo7's C++ graph code: the upstream modules run as
they are (Model.fuse()'d, as attempt_load does), and
  - every Conv weight/bias is replaced by its fix-point value (std::round: ties away from zero),
    the bias first corrected by the config's bias_corr (NNDCT's param_corr);
  - every tensor named in the config's "output" table is fake-quantized where it is produced
    (forward hooks on the module of that name; the input by a pre-hook; SPPCSPC's two concats
    by a patched forward), with the DPU's round half up;
  - SiLU runs as the DPU's Hardswish: x * Q7(relu6(x + 3) * 2731/16384), Q7 = round half up at 2^-7
    saturating at 127/128 (pytorch_nndct/nn/modules/hardswish.py); LeakyReLU slope 0.1015625.
The input is the fixture's input.npy cropped to [:1, :, :64, :64]; the outputs are the head convs'
fix-point integers (int8, NCHW [1, na*no, h, w]) as qraw<l>.npy.

  YOLOV7_SRC=/work/upstream /usr/bin/python3 tools/dev/make_quant_fixture.py \
      ../shared/fixtures/upstream/yolov7-tiny tests/data/quant/yolov7-tiny
(the directory must already hold quant_info.json: yolo7's calibration of that input).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.environ.get("YOLOV7_SRC", "/work/upstream"))
import models.common as common  # noqa: E402


def fix_half_up(x, fp):
    v = x.double() * (2.0 ** fp)
    return (torch.floor(v + 0.5).clamp(-128, 127) / (2.0 ** fp)).float()


def fix_std_round(x, fp):
    v = x.double() * (2.0 ** fp)
    r = torch.sign(v) * torch.floor(v.abs() + 0.5)
    return (r.clamp(-128, 127) / (2.0 ** fp)).float()


class DpuHswish(nn.Module):
    def forward(self, x):
        h = torch.clamp(x + 3.0, 0.0, 6.0) * (2731.0 / 16384.0)  # float32, as NNDCT
        return x * fix_half_up(h, 7)


def main(fixture_dir, out_dir):
    cfg = json.load(open(os.path.join(out_dir, "quant_info.json")))
    ck = torch.load(os.path.join(fixture_dir, "model.pt"), map_location="cpu")
    model = (ck.get("ema") or ck["model"]).float().eval()
    model.fuse()
    mods = dict(model.named_modules())
    outs = {k: v[1] for k, v in cfg["output"].items()}  # [bit_width, fix_point]
    with torch.no_grad():
        for key, (_, fp) in cfg["param"].items():
            name, kind = key.rsplit(".", 1)
            m = mods[name]
            t = getattr(m, kind).data.clone()
            if kind == "bias" and name in cfg.get("bias_corr", {}):
                t = t - torch.tensor(cfg["bias_corr"][name], dtype=torch.float32)
            getattr(m, kind).data = fix_std_round(t, fp)
    for name, m in list(mods.items()):
        if isinstance(getattr(m, "act", None), nn.SiLU):  # Conv, RepConv
            assert cfg["nndct_convert_silu_to_hswish"]
            m.act = DpuHswish()
            mods[name + ".act"] = m.act
        if isinstance(m, nn.LeakyReLU):
            m.negative_slope = 0.1015625

    def out_hook(fp):
        return lambda mod, inp, out: fix_half_up(out, fp)

    for name, fp in outs.items():
        if name == "images":
            model.model[0].register_forward_pre_hook(lambda mod, inp, fp=fp: (fix_half_up(inp[0], fp),))
        elif name in mods:
            mods[name].register_forward_hook(out_hook(fp))
        elif not (name.endswith(".cat1") or name.endswith(".cat2")):
            raise SystemExit("no module for " + name)

    for name, m in mods.items():  # SPPCSPC: the concats inside its forward
        if type(m) is common.SPPCSPC:
            def fwd(x, m=m, name=name):
                q = lambda t, k: fix_half_up(t, outs[k]) if k in outs else t
                x1 = m.cv4(m.cv3(m.cv1(x)))
                c1 = q(torch.cat([x1] + [p(x1) for p in m.m], 1), name + ".cat1")
                y1 = m.cv6(m.cv5(c1))
                c2 = q(torch.cat((y1, m.cv2(x)), dim=1), name + ".cat2")
                return m.cv7(c2)
            m.forward = fwd

    x = torch.from_numpy(np.load(os.path.join(fixture_dir, "input.npy")))[:1, :, :64, :64].contiguous()
    det = model.model[-1]
    raw = []
    for i, conv in enumerate(det.m):  # the head convs' outputs (after their fix hook), before the reshape
        conv.register_forward_hook(lambda mod, inp, out: raw.append(out.clone()))
    with torch.no_grad():
        model(x)
    heads = [n for n in outs if n.startswith(f"model.{len(model.model) - 1}.m.")]
    for l, r in enumerate(raw):
        fp = outs[f"model.{len(model.model) - 1}.m.{l}"]
        q = torch.round(r.double() * 2.0 ** fp)
        assert torch.equal(q, r.double() * 2.0 ** fp) and q.abs().max() <= 128, "head not on its grid"
        np.save(os.path.join(out_dir, f"qraw{l}.npy"), q.numpy().astype(np.int8))
        print(f"qraw{l}: {tuple(q.shape)} fix_point {fp}, {int((q != 0).sum())} nonzero")
    assert len(heads) == len(raw)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
