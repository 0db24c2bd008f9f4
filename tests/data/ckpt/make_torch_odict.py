# Makes tests/data/ckpt/torch_odict.pt: torch.save of a small tree our pickle writer must reproduce
# byte for byte (see tests/test_checkpoint_writer.cpp, TorchBytes).
import collections, numpy as np, torch
w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
od = collections.OrderedDict()
od['weight'] = w
od['bias'] = torch.tensor([1.5, -2.0], dtype=torch.half)
od['num_batches_tracked'] = torch.tensor(7)
od['alias'] = w
od['view'] = w[1]
od['param'] = torch.nn.Parameter(torch.ones(2))
obj = {'sd': od, 'f': 0.5, 'big': 1 << 40, 'neg': -3, 'mid': 70000, 'n': None, 'yes': True,
       't': (1, 2, 3, 4), 'l': [1, 'x'], 'np': np.float64(0.25), 'b': b'\x00\xff', 'e': {}, 'el': []}
torch.save(obj, 'torch_odict.pt')
