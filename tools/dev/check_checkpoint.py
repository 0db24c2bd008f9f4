#!/usr/bin/python3
"""Dev-only check of checkpoints written by `yolo7 convert` (io/checkpoint_writer.h).

For each fixture model: writes stripped checkpoints (fp16, --fp32, --fuse) with our writer, then
  * torch.load()s them (torch 1.13) with upstream's code on sys.path and compares the state_dict
    with upstream's own checkpoint (bit-exact expected),
  * runs upstream attempt_load() (.float().fuse().eval() + compatibility loop) on ours and on the
    original, and compares the predictions on the fixture input,
  * runs `yolo7 forward --fuse` on ours and compares with torch's predictions from our file.
Also round-trips the full training checkpoint (convert --full) and checks every field.
Optionally (--save-fixture DIR) stores our yolov7-tiny checkpoint's torch predictions for the C++
test. Run:  /usr/bin/python3 tools/dev/check_checkpoint.py --yolo7 build-ckpt/yolo7
"""
import argparse, os, subprocess, sys, tempfile, zipfile

import numpy as np
import torch

UPSTREAM = os.environ.get('YOLOV7_SRC', '/work/upstream')
FIX = os.environ.get('Y7_FIXTURES', '/work/shared/fixtures/upstream')
sys.path.insert(0, UPSTREAM)
from models.experimental import attempt_load  # noqa: E402
import contextlib, io  # noqa: E402


def quiet(fn, *a):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)


def sd_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    if list(sa.keys()) != list(sb.keys()):
        return 'keys differ: %s' % (set(sa) ^ set(sb))
    worst = 0.0
    for k in sa:
        if sa[k].dtype != sb[k].dtype or sa[k].shape != sb[k].shape:
            return '%s: %s%s vs %s%s' % (k, sa[k].dtype, tuple(sa[k].shape), sb[k].dtype, tuple(sb[k].shape))
        worst = max(worst, (sa[k].double() - sb[k].double()).abs().max().item() if sa[k].numel() else 0)
    return worst


def attr_diff(ours, theirs):
    """Modules pairwise (same order): class and __dict__ keys/values (tensors and containers by type)."""
    diffs = []
    mo, mt = list(ours.modules()), list(theirs.modules())
    if len(mo) != len(mt):
        return ['module count %d vs %d' % (len(mo), len(mt))]
    for a, b in zip(mo, mt):
        if type(a) is not type(b):
            diffs.append('%s vs %s' % (type(a).__name__, type(b).__name__))
            continue
        if list(a.__dict__) != list(b.__dict__):
            diffs.append('%s keys %s' % (type(a).__name__, set(a.__dict__) ^ set(b.__dict__) or 'order'))
        for k, v in b.__dict__.items():
            u = a.__dict__.get(k)
            if isinstance(v, (torch.Tensor, dict, list, set)) or k in ('yaml',):
                if k in ('f', 'save', 'names', 'yaml') and u != v:
                    diffs.append('%s.%s' % (type(a).__name__, k))
                continue
            if u != v:
                diffs.append('%s.%s=%r vs %r' % (type(a).__name__, k, u, v))
    return sorted(set(diffs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--yolo7', default='build-ckpt/yolo7')
    ap.add_argument('--models', nargs='*', default=['yolov7-tiny', 'yolov7', 'yolov7-w6', 'yolov7-deploy',
                                                     'yolov7-tiny-deploy', 'yolov7-d6', 'yolov7-e6e'])
    ap.add_argument('--save-fixture', default='')
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='y7ck_')
    ok = True
    for name in args.models:
        src = os.path.join(FIX, name, 'model.pt')
        x = torch.from_numpy(np.load(os.path.join(FIX, name, 'input.npy')))
        orig = torch.load(src, map_location='cpu')
        with torch.no_grad():
            ref = quiet(attempt_load, src, 'cpu')(x)[0]
        for variant, flags in [('fp16', []), ('fp32', ['--fp32']), ('fused', ['--fuse']),
                               ('fused32', ['--fuse', '--fp32'])]:
            out = os.path.join(tmp, '%s-%s.pt' % (name, variant))
            subprocess.run([args.yolo7, 'convert', '--weights', src, '--out', out] + flags, check=True,
                           stdout=subprocess.DEVNULL)
            ck = torch.load(out, map_location='cpu')
            keys_ok = list(ck.keys()) == ['model', 'optimizer', 'training_results', 'epoch', 'ema', 'updates', 'wandb_id']
            msg = ''
            if variant == 'fp16':
                d = sd_diff(ck['model'], orig['model'])
                msg += ' state_dict vs upstream: %s;' % d
                ok &= d == 0.0
                ad = attr_diff(ck['model'], orig['model'])
                msg += ' module attrs vs upstream: %s;' % (ad or 'identical')
                zt = zipfile.ZipFile(out).testzip()
                msg += ' zip CRCs %s;' % ('ok' if zt is None else 'BAD ' + zt)
                ok &= zt is None
            with torch.no_grad():
                m = quiet(attempt_load, out, 'cpu')
                pred = m(x)[0]
            dt = (pred - ref).abs().max().item()
            fw = out + '.pred.npy'
            subprocess.run([args.yolo7, 'forward', '--weights', out, '--input', os.path.join(FIX, name, 'input.npy'),
                            '--out', fw, '--fuse'], check=True, stdout=subprocess.DEVNULL)
            ours = np.load(fw)
            dc = np.abs(ours - pred.numpy()).max()
            scale = np.abs(pred.numpy()).max()
            print('%-20s %-6s keys %s;%s attempt_load(ours) vs attempt_load(upstream) max|d| %.3g; '
                  'yolo7 forward vs torch(ours) max|d| %.3g (max |pred| %.1f)' % (name, variant, keys_ok, msg, dt, dc, scale))
            # unfused files hold upstream's exact tensors (identical predictions); fused fp16 files hold
            # fp16-rounded fused weights (upstream fuses in fp32 after .float()), fused fp32 ones differ
            # from upstream's fusion only in float rounding order
            tol = {'fp16': 0, 'fp32': 0, 'fused': 1e-3 * scale, 'fused32': 1e-5 * scale}[variant]
            ok &= keys_ok and dt <= tol and dc < 1e-5 * max(1, scale)
            if args.save_fixture and name == 'yolov7-tiny' and variant == 'fp16':
                x_small = x[:1, :, :64, :64].contiguous()
                np.save(os.path.join(args.save_fixture, 'tiny_input.npy'), x_small.numpy())
                with torch.no_grad():
                    np.save(os.path.join(args.save_fixture, 'tiny_torch_pred1.npy'), m(x_small)[0].numpy())
    # full training checkpoint
    src = os.path.join(FIX, 'train-run', 'epoch_000.pt')
    out = os.path.join(tmp, 'epoch_000.pt')
    subprocess.run([args.yolo7, 'convert', '--full', '--weights', src, '--out', out], check=True, stdout=subprocess.DEVNULL)
    a, b = torch.load(out, map_location='cpu'), torch.load(src, map_location='cpu')
    same_keys = list(a.keys()) == list(b.keys())
    fields = all(a[k] == b[k] for k in ['epoch', 'training_results', 'updates', 'wandb_id'])
    bf = (type(a['best_fitness']).__name__, float(a['best_fitness']) == float(b['best_fitness']))
    dm, de = sd_diff(a['model'], b['model']), sd_diff(a['ema'], b['ema'])
    modes = (a['model'].training, a['ema'].training, next(a['model'].parameters()).requires_grad,
             next(a['ema'].parameters()).requires_grad)
    oa, ob = a['optimizer'], b['optimizer']
    st_ok = oa['state'].keys() == ob['state'].keys() and all(
        torch.equal(oa['state'][k]['momentum_buffer'], ob['state'][k]['momentum_buffer']) for k in ob['state'])
    pg_ok = len(oa['param_groups']) == len(ob['param_groups']) and all(
        {k: (float(v) if not isinstance(v, (list, bool, type(None))) else v) for k, v in ga.items()} ==
        {k: (float(v) if not isinstance(v, (list, bool, type(None))) else v) for k, v in gb.items()}
        for ga, gb in zip(oa['param_groups'], ob['param_groups']))
    extra = all(getattr(a['model'], k, None) is not None for k in ['nc', 'hyp', 'gr', 'class_weights'])
    x = torch.from_numpy(np.load(os.path.join(FIX, 'yolov7-tiny', 'input.npy')))
    with torch.no_grad():
        pa, pb = quiet(attempt_load, out, 'cpu')(x)[0], quiet(attempt_load, src, 'cpu')(x)[0]
    dp = (pa - pb).abs().max().item()
    print('training ckpt module attrs vs upstream: model %s, ema %s' % (attr_diff(a['model'], b['model']) or 'identical',
                                                                      attr_diff(a['ema'], b['ema']) or 'identical'))
    print('training ckpt: keys %s fields %s best_fitness %s model sd %s ema sd %s modes(train,ema,rg,ema_rg) %s '
          'optimizer state %s param_groups %s model attrs %s attempt_load max|d| %.3g' %
          (same_keys, fields, bf, dm, de, modes, st_ok, pg_ok, extra, dp))
    ok &= same_keys and fields and bf[1] and dm == 0.0 and de == 0.0 and modes == (True, False, True, False) \
        and st_ok and pg_ok and extra and dp == 0.0
    print('ALL OK' if ok else 'FAILURES')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
