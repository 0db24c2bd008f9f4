#!/usr/bin/python3
# Dev-only: regenerates tests/data/dataset (references for tests/test_dataset.cpp and
# tests/test_augment.cpp) with upstream YOLOv7's utils/datasets.py and python3-opencv 4.6.
# Run: /usr/bin/python3 tools/dev/make_dataset_fixture.py /work/upstream
import os, random, shutil, sys, tempfile
import numpy as np
import cv2

up = sys.argv[1] if len(sys.argv) > 1 else '/work/upstream'
sys.path.insert(0, up)
import utils.datasets as D  # noqa: E402

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'data', 'dataset')
out = os.path.abspath(out)
os.makedirs(out, exist_ok=True)
rs = np.random.RandomState(7)

# ---- HSV conversions (cv2 8-bit, BGR order)
bgr = rs.randint(0, 256, (4096, 1, 3)).astype(np.uint8)
bgr[:64, 0, :] = np.array([[v, v, v] for v in range(0, 256, 4)])  # grays
hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
np.save(f'{out}/hsv_in_bgr.npy', bgr[:, 0])
np.save(f'{out}/hsv_out.npy', hsv[:, 0])
hsv_in = np.stack([rs.randint(0, 180, 4096), rs.randint(0, 256, 4096), rs.randint(0, 256, 4096)], 1).astype(np.uint8)
np.save(f'{out}/hsv2bgr_in.npy', hsv_in)
np.save(f'{out}/hsv2bgr_out.npy', cv2.cvtColor(hsv_in[:, None], cv2.COLOR_HSV2BGR)[:, 0])  # 1-pixel rows: scalar
np.save(f'{out}/hsv2bgr_out_simd.npy', cv2.cvtColor(hsv_in.reshape(128, 32, 3), cv2.COLOR_HSV2BGR).reshape(-1, 3))

# ---- upstream augment_hsv with fixed gains
img = rs.randint(0, 256, (24, 77, 3)).astype(np.uint8)  # 2 SIMD blocks of 32 + a 13-pixel scalar tail
np.save(f'{out}/aughsv_in_bgr.npy', img)
gains = [(1.012, 0.55, 1.3), (0.985, 1.6, 0.7)]
for k, g in enumerate(gains):
    im = img.copy()
    orig = np.random.uniform
    np.random.uniform = lambda a, b, n, g=g: (np.array(g) - 1) / np.array([0.5, 0.5, 0.5])
    D.augment_hsv(im, 0.5, 0.5, 0.5)
    np.random.uniform = orig
    np.save(f'{out}/aughsv_out{k}_bgr.npy', im)

# ---- cv2.warpAffine / warpPerspective (bilinear, border 114)
src = rs.randint(0, 256, (29, 37, 3)).astype(np.uint8)
np.save(f'{out}/warp_src_bgr.npy', src)
mats = [
    np.array([[1.2, 0.1, -3.3], [-0.05, 0.9, 4.7]]),
    np.array([[0.7071, 0.7071, 5.0], [-0.7071, 0.7071, 20.0]]),
    np.array([[1.0, 0.0, -18.5], [0.0, 1.0, -14.25]]),  # mosaic-like crop
    np.array([[2.5, 0.0, 0.3], [0.0, 0.4, -1.0]]),
]
aff = []
for k, M in enumerate(mats):
    aff.append(M.reshape(-1))
    np.save(f'{out}/warp_affine{k}_bgr.npy', cv2.warpAffine(src, M, dsize=(41, 33), borderValue=(114, 114, 114)))
np.save(f'{out}/warp_affine_mats.npy', np.stack(aff))
P = np.array([[1.1, 0.05, -2.0], [0.02, 0.95, 3.0], [0.0008, -0.0005, 1.0]])
np.save(f'{out}/warp_persp_mat.npy', P.reshape(-1))
np.save(f'{out}/warp_persp_bgr.npy', cv2.warpPerspective(src, P, dsize=(41, 33), borderValue=(114, 114, 114)))

# ---- upstream random_perspective with fixed draws (P, P, a, s, shx, shy, tx, ty)
img = rs.randint(0, 256, (40, 48, 3)).astype(np.uint8)
targets = np.array([[0, 5, 6, 20, 30], [3, 30, 2, 47, 12], [1, 40, 30, 47.5, 39], [2, 1, 1, 3, 3]], dtype=np.float32)
draws = [0.0, 0.0, 7.5, 1.15, 2.0, -3.0, 0.55, 0.45]
it = iter(draws)
orig = random.uniform
random.uniform = lambda a, b: next(it)
im2, t2 = D.random_perspective(img.copy(), targets.copy(), (), degrees=10, translate=.1, scale=.5, shear=5,
                               perspective=0.0, border=(-4, -6))
random.uniform = orig
np.save(f'{out}/rp_in_bgr.npy', img)
np.save(f'{out}/rp_targets.npy', targets)
np.save(f'{out}/rp_draws.npy', np.array(draws))
np.save(f'{out}/rp_out_bgr.npy', im2)
np.save(f'{out}/rp_out_targets.npy', np.asarray(t2, dtype=np.float32))

# ---- upstream load_mosaic / load_mosaic9 with scripted draws on cached tiles (img_size 32)
class Fake:
    pass
fk = Fake()
fk.img_size = 32
fk.mosaic_border = [-16, -16]
fk.hyp = {'copy_paste': 0.0, 'degrees': 10, 'translate': 0.1, 'scale': 0.5, 'shear': 5, 'perspective': 0.0}
tile_sizes = [(32, 20), (25, 32), (32, 32), (18, 30), (30, 11)]  # (w, h)
fk.imgs, fk.img_hw0, fk.img_hw, fk.labels, fk.segments = [], [], [], [], []
for k, (w, h) in enumerate(tile_sizes):
    im = rs.randint(0, 256, (h, w, 3)).astype(np.uint8)
    fk.imgs.append(im); fk.img_hw0.append((h, w)); fk.img_hw.append((h, w))
    fk.labels.append(np.array([[k, 0.5, 0.5, 0.6, 0.5], [1, 0.3, 0.7, 0.4, 0.3]], dtype=np.float32))
    fk.segments.append([])
    np.save(f'{out}/mosaic_tile{k}_bgr.npy', im)
    np.save(f'{out}/mosaic_tile{k}_labels.npy', fk.labels[-1])
fk.indices = range(len(tile_sizes))
persp = [0.0, 0.0, 4.0, 1.1, 0.0, 0.0, 0.52, 0.47]
for name, fn, pre, idx in (('mosaic4', D.load_mosaic, [37.4, 21.9], [2, 4, 1]),
                           ('mosaic9', D.load_mosaic9, [], [1, 2, 3, 4, 0, 2, 1, 3])):
    seq = (pre + persp) if name == 'mosaic4' else ([13.7, 5.2] + persp)
    it = iter(seq)
    ou, oc = random.uniform, random.choices
    random.uniform = lambda a, b: next(it)
    random.choices = lambda pop, k: list(idx)
    im, lab = fn(fk, 0)
    random.uniform, random.choices = ou, oc
    np.save(f'{out}/{name}_draws.npy', np.array(idx + seq if name == 'mosaic9' else seq[:2] + idx + seq[2:], dtype=np.float64))
    np.save(f'{out}/{name}_out_bgr.npy', im)
    np.save(f'{out}/{name}_out_labels.npy', np.asarray(lab, dtype=np.float32).reshape(-1, 5))

# ---- a small data set with upstream's label rules, rect shapes and letterboxed items
setdir = os.path.join(out, 'set')
shutil.rmtree(setdir, ignore_errors=True)
os.makedirs(f'{setdir}/images/train'); os.makedirs(f'{setdir}/labels/train')
good = {'a': (80, 40), 'b': (50, 90), 'c': (64, 64), 'd': (100, 30), 'e': (30, 70), 'f': (45, 45), 'g': (90, 61)}
lab = {'a': '0 0.5 0.5 0.5 0.5\n1 0.25 0.3 0.2 0.2\n', 'b': '2 0.4 0.6 0.3 0.5\n', 'c': '', 'd': '5 0.9 0.5 0.2 0.98\n',
       'e': None, 'f': '1 0.5 0.5 1 1\n  \n', 'g': '0 0.1 0.9 0.1 0.1\n3 0.6 0.3 0.5 0.4\n4 0.3 0.3 0.2 0.2\n'}
for k, (w, h) in good.items():
    cv2.imwrite(f'{setdir}/images/train/{k}.png', rs.randint(0, 256, (h, w, 3)).astype(np.uint8))
    if lab[k] is not None:
        open(f'{setdir}/labels/train/{k}.txt', 'w').write(lab[k])
bad = {'x_cols': '0 0.5 0.5 0.1 0.1 0.3\n', 'x_neg': '0 0.5 -0.5 0.1 0.1\n', 'x_oob': '0 0.5 1.5 0.1 0.1\n',
       'x_dup': '0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n', 'x_txt': '0 0.5 abc 0.1 0.1\n'}
for k, t in bad.items():
    cv2.imwrite(f'{setdir}/images/train/{k}.png', rs.randint(0, 256, (20, 20, 3)).astype(np.uint8))
    open(f'{setdir}/labels/train/{k}.txt', 'w').write(t)
cv2.imwrite(f'{setdir}/images/train/x_tiny.png', rs.randint(0, 256, (8, 30, 3)).astype(np.uint8))
open(f'{setdir}/images/train/x_notimg.jpg', 'w').write('not an image')
open(f'{setdir}/images/train/notes.md', 'w').write('not listed')

tmp = tempfile.mkdtemp()
shutil.copytree(setdir, f'{tmp}/set')
ds = D.LoadImagesAndLabels(f'{tmp}/set/images/train', img_size=64, batch_size=3, augment=False, hyp=None, rect=True,
                           stride=32, pad=0.5)
cache = D.torch.load(f'{tmp}/set/labels/train.cache')
with open(f'{out}/set_ref.txt', 'w') as f:
    f.write('results %d %d %d %d %d\n' % cache['results'])
    for i, p in enumerate(ds.img_files):
        f.write('file %s\n' % os.path.basename(p))
    for s in ds.batch_shapes:
        f.write('batch_shape %d %d\n' % (s[0], s[1]))
    for i in range(len(ds)):
        img, lab, path, shapes = ds[i]
        np.save(f'{out}/set_item{i}_rgb.npy', img.numpy().transpose(1, 2, 0).copy())
        (h0, w0), ((rh, rw), (pw, ph)) = shapes
        f.write('item %d %s %d %d %.17g %.17g %.17g %.17g %d\n' % (i, os.path.basename(path), h0, w0, rh, rw, pw, ph,
                                                                  lab.shape[0]))
        for r in lab.numpy():
            f.write('label ' + ' '.join('%.9g' % v for v in r) + '\n')

# ---- augmented __getitem__ (mosaic and plain paths) with one scripted draw sequence
hyp = {'hsv_h': 0.015, 'hsv_s': 0.7, 'hsv_v': 0.4, 'degrees': 5.0, 'translate': 0.1, 'scale': 0.5, 'shear': 2.0,
       'perspective': 0.0, 'flipud': 0.5, 'fliplr': 0.5, 'mosaic': 1.0, 'mixup': 0.15, 'copy_paste': 0.0,
       'paste_in': 0.15}
dsa = D.LoadImagesAndLabels(f'{tmp}/set/images/train', img_size=64, batch_size=3, augment=True, hyp=hyp, rect=False,
                            stride=32)
persp = [0.0, 0.0, 3.0, 0.9, 1.0, -1.5, 0.45, 0.55]
seqs = {
    'aug_mosaic': (1, [0.1, 0.5, 40.3, 70.2, 3, 0, 5, *persp, 0.9, -0.3, 0.5, 0.8, 0.9, 0.2, 0.3]),
    'aug_mixup': (4, [0.1, 0.5, 30.0, 50.0, 1, 2, 6, *persp, 0.05, 0.9, 5, 0, 1, 2, 3, 4, 5, 6, 1, 20.0, 10.0,
                      *persp, 0.37, 0.1, 0.2, -0.4, 0.9, 0.9, 0.9]),
    'aug_plain': (6, [1.0, *persp, 0.6, -0.7, 0.1, 0.9, 0.7, 0.2]),
}
with open(f'{out}/aug_ref.txt', 'w') as f:
    for name, (index, seq) in seqs.items():
        it = iter(seq)
        saved = random.random, random.uniform, random.choices, np.random.uniform, random.randint, np.random.beta
        random.random = lambda: next(it)
        random.randint = lambda a, b: int(next(it))
        np.random.beta = lambda a, b: next(it)
        random.uniform = lambda a, b: next(it)
        random.choices = lambda pop, k: [int(next(it)) for _ in range(k)]
        np.random.uniform = lambda a, b, n: np.array([next(it) for _ in range(n)])
        img, lab, path, shapes = dsa[index]
        random.random, random.uniform, random.choices, np.random.uniform, random.randint, np.random.beta = saved
        assert next(it, None) is None, name
        np.save(f'{out}/{name}_rgb.npy', img.numpy().transpose(1, 2, 0).copy())
        f.write('%s %d %s %d\n' % (name, index, ' '.join(repr(float(v)) for v in seq), lab.shape[0]))
        for r in lab.numpy():
            f.write('label ' + ' '.join('%.9g' % v for v in r) + '\n')
shutil.rmtree(tmp)
print('wrote', out)
