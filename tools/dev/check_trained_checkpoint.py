#!/usr/bin/python3
"""Dev-only check that checkpoints written by a real `yolo7 train` run are PyTorch checkpoints.

Runs `yolo7 data shapes` and a short `yolo7 train` (yolov7-tiny at width 0.25, nc 6, 96 px), then
with torch 1.13 and upstream's code on sys.path:
  * weights/epoch_000.pt (train.py's full checkpoint): torch.load()s it, checks train.py's keys,
    and does what train.py --resume does with it: builds models.yolo.Model from ckpt['model'].yaml,
    loads ckpt['model'].float().state_dict() strictly, builds train.py's three SGD parameter groups
    and loads ckpt['optimizer'] into them; runs ckpt['ema'] in eval mode;
  * weights/last.pt (stripped): upstream attempt_load() (.float().fuse().eval()) and its
    predictions on a fixed input, against `yolo7 forward --fuse` on the same file.
With --save-fixture DIR it stores last.pt, the input and torch's predictions for the C++ test
(tests/test_checkpoint_writer.cpp, TrainedCheckpoint*). Run from the repo root:
  /usr/bin/python3 tools/dev/check_trained_checkpoint.py --yolo7 build/yolo7 --save-fixture tests/data/trained
"""
import argparse, contextlib, io, os, shutil, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn as nn
import yaml

UPSTREAM = os.environ.get('YOLOV7_SRC', '/work/upstream')
sys.path.insert(0, UPSTREAM)
from models.experimental import attempt_load  # noqa: E402
from models.yolo import Model  # noqa: E402


def quiet(fn, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **k)


def train_py_param_groups(model):
    """train.py's pg0 (BatchNorm weights, implicit), pg1 (conv weights, decay), pg2 (biases)."""
    pg0, pg1, pg2 = [], [], []
    for k, v in model.named_modules():
        if hasattr(v, 'bias') and isinstance(v.bias, nn.Parameter):
            pg2.append(v.bias)
        if isinstance(v, nn.BatchNorm2d):
            pg0.append(v.weight)
        elif hasattr(v, 'weight') and isinstance(v.weight, nn.Parameter):
            pg1.append(v.weight)
        for attr in ('im', 'ia'):
            if hasattr(v, attr):
                obj = getattr(v, attr)
                if isinstance(obj, nn.Parameter):
                    pg0.append(obj)
                elif hasattr(obj, 'implicit'):
                    pg0.append(obj.implicit)
                else:
                    for iv in obj:
                        pg0.append(iv.implicit)
    return pg0, pg1, pg2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--yolo7', default='build/yolo7')
    ap.add_argument('--save-fixture', default='')
    args = ap.parse_args()
    y7 = os.path.abspath(args.yolo7)
    tmp = tempfile.mkdtemp(prefix='y7trained_')
    cfg = yaml.safe_load(open('cfg/training/yolov7-tiny.yaml'))
    cfg['width_multiple'], cfg['nc'] = 0.25, 6
    cfg_path = os.path.join(tmp, 'tiny25.yaml')
    yaml.safe_dump(cfg, open(cfg_path, 'w'), sort_keys=False)
    subprocess.run([y7, 'data', 'shapes', '--out', os.path.join(tmp, 'shapes'), '--train', '16', '--val', '8',
                    '--size', '96', '--seed', '5'], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([y7, 'train', '--cfg', cfg_path, '--data', os.path.join(tmp, 'shapes', 'data.yaml'),
                    '--hyp', 'data/hyp.scratch.tiny.yaml', '--epochs', '2', '--batch-size', '8', '--img-size', '96',
                    '--workers', '1', '--quiet', '--project', os.path.join(tmp, 'runs'), '--name', 'exp'],
                   check=True, stdout=subprocess.DEVNULL)
    wdir = os.path.join(tmp, 'runs', 'exp', 'weights')

    # the full training checkpoint, as train.py --resume uses it
    ck = torch.load(os.path.join(wdir, 'epoch_000.pt'), map_location='cpu')
    want = {'epoch', 'best_fitness', 'training_results', 'model', 'ema', 'updates', 'optimizer', 'wandb_id'}
    assert set(ck) == want, 'keys %s' % (set(ck) ^ want)
    assert ck['epoch'] == 0 and isinstance(ck['training_results'], str)
    model = quiet(Model, ck['model'].yaml, ch=3, nc=6)
    model.load_state_dict(ck['model'].float().state_dict(), strict=True)
    pg0, pg1, pg2 = train_py_param_groups(model)
    opt = torch.optim.SGD(pg0, lr=0.01, momentum=0.937, nesterov=True)
    opt.add_param_group({'params': pg1, 'weight_decay': 0.0005})
    opt.add_param_group({'params': pg2})
    opt.load_state_dict(ck['optimizer'])
    nstate = sum(1 for s in opt.state.values() if 'momentum_buffer' in s)
    print('epoch_000.pt: torch.load ok, keys ok, Model(yaml) strict load ok, optimizer groups %s, %d momentum buffers'
          % ([len(g['params']) for g in opt.param_groups], nstate))
    x96 = torch.from_numpy(np.random.RandomState(0).rand(1, 3, 96, 96).astype(np.float32))
    with torch.no_grad():
        ck['ema'].float().eval()(x96)

    # the stripped last.pt through attempt_load, against yolo7 forward --fuse
    last = os.path.join(wdir, 'last.pt')
    m = quiet(attempt_load, last, 'cpu')
    x = torch.from_numpy(np.random.RandomState(1).rand(2, 3, 96, 128).astype(np.float32))
    with torch.no_grad():
        pred = m(x)[0].numpy()
    np.save(os.path.join(tmp, 'x.npy'), x.numpy())
    subprocess.run([y7, 'forward', '--weights', last, '--input', os.path.join(tmp, 'x.npy'), '--out',
                    os.path.join(tmp, 'ours.npy'), '--fuse'], check=True, stdout=subprocess.DEVNULL)
    ours = np.load(os.path.join(tmp, 'ours.npy'))
    d = np.abs(ours - pred)
    print('last.pt: attempt_load ok; yolo7 forward --fuse vs torch: boxes max|d| %.3g px, scores max|d| %.3g'
          % (d[..., :4].max(), d[..., 4:].max()))
    if args.save_fixture:
        os.makedirs(args.save_fixture, exist_ok=True)
        shutil.copy(last, os.path.join(args.save_fixture, 'last.pt'))
        np.save(os.path.join(args.save_fixture, 'input.npy'), x.numpy())
        np.save(os.path.join(args.save_fixture, 'torch_pred.npy'), pred)
        print('saved fixture to', args.save_fixture)
    shutil.rmtree(tmp)


if __name__ == '__main__':
    main()
