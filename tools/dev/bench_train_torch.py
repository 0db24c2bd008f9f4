#!/usr/bin/python3
"""Dev-only: PyTorch's time for one training step of upstream YOLOv7 on the CPU, the peer of
`yolo7 bench --train` (same cfg, image size, batch, synthetic targets, hyp scaling, SGD groups).
  /usr/bin/python3 tools/dev/bench_train_torch.py cfg/training/yolov7-tiny.yaml 320 8 [threads] [hyp]
"""
import sys, time

import torch
import yaml

sys.path.insert(0, '/work/upstream')
from models.yolo import Model  # noqa: E402
from utils.loss import ComputeLossOTA  # noqa: E402

cfg, s, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
hyp = yaml.safe_load(open(sys.argv[5] if len(sys.argv) > 5 else 'data/hyp.scratch.p5.yaml'))
torch.manual_seed(0)
model = Model(cfg).train()
nl, nc = model.model[-1].nl, model.model[-1].nc
hyp['box'] *= 3. / nl
hyp['cls'] *= nc / 80. * 3. / nl
hyp['obj'] *= (s / 640) ** 2 * 3. / nl
model.hyp, model.gr, model.nc = hyp, 1.0, nc
pg0, pg1, pg2 = [], [], []
for k, v in model.named_parameters():
    (pg2 if k.endswith('.bias') else pg1 if k.endswith('.weight') and v.ndim > 1 else pg0).append(v)
opt = torch.optim.SGD(pg0, lr=0.01, momentum=0.937, nesterov=True)
opt.add_param_group({'params': pg1, 'weight_decay': 0.0005})
opt.add_param_group({'params': pg2})
loss_fn = ComputeLossOTA(model)
x = torch.tensor([((i * 2654435761) % (1 << 32)) % 1000 / 1000.0 for i in range(bs * 3 * s * s)],
                 dtype=torch.float32).view(bs, 3, s, s)
rows = []
for b in range(bs):
    for k in range(6):
        rows.append([b, (b * 6 + k) % nc, 0.15 + 0.13 * k, 0.2 + 0.1 * ((b + k) % 6), 0.05 + 0.04 * k,
                     0.06 + 0.03 * ((b + 2 * k) % 5)])
targets = torch.tensor(rows, dtype=torch.float32)


def step():
    pred = model(x)
    loss, _ = loss_fn(pred, targets, x)
    loss.backward()
    opt.step()
    opt.zero_grad()


for _ in range(2):
    step()
ts = []
for _ in range(int(sys.argv[6]) if len(sys.argv) > 6 else 10):
    t = time.perf_counter()
    step()
    ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(f"torch {torch.__version__} {cfg} {s}x{s} batch {bs}, {torch.get_num_threads()} threads, train step: "
      f"median {ts[len(ts) // 2]:.2f} ms, min {ts[0]:.2f} ms")
