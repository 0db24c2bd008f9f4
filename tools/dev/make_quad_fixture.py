#!/usr/bin/python3
"""Dev-only: upstream LoadImagesAndLabels.collate_fn4 (--quad) on 8 small random images with labels,
with random.random() scripted to [0.3, 0.7] (group 0 upscaled, group 1 tiled). Writes
tests/data/dataset/quad_*.npy for tests/test_dataset.cpp (Quad*).
  /usr/bin/python3 tools/dev/make_quad_fixture.py"""
import random, sys
import numpy as np
import torch
sys.path.insert(0, '/work/upstream')
from utils.datasets import LoadImagesAndLabels  # noqa: E402

rs = np.random.RandomState(0)
imgs = rs.randint(0, 256, size=(8, 3, 6, 5)).astype(np.uint8)
labels = []
for i in range(8):
    n = 1 + i % 3
    l = np.zeros((n, 6), np.float32)
    l[:, 1] = rs.randint(0, 4, n)
    l[:, 2:] = rs.uniform(0.1, 0.9, (n, 4)).astype(np.float32)
    labels.append(l)
batch = [(torch.from_numpy(imgs[i]), torch.from_numpy(labels[i]), 'p%d' % i, None) for i in range(8)]
draws = iter([0.3, 0.7])
random.random = lambda: next(draws)
img4, label4, _, _ = LoadImagesAndLabels.collate_fn4(batch)
out = 'tests/data/dataset/'
np.save(out + 'quad_in_chw.npy', imgs)
np.save(out + 'quad_in_labels.npy', np.concatenate([np.c_[np.full((len(l), 1), i, np.float32), l[:, 1:]] for i, l in enumerate(labels)]))
np.save(out + 'quad_out_chw.npy', img4.numpy())
np.save(out + 'quad_out_labels.npy', label4.numpy())
print(img4.shape, img4.dtype, label4.shape)
