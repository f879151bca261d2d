"""PyTorch peer of graft's benchmark suite: the same networks, batch sizes and training step
(forward, summed cross-entropy, backward; no optimiser), f32, 2 threads, eager mode,
OMP_WAIT_POLICY=PASSIVE unless set (see below).

Usage: python3 benches/peers/torch_peer.py [--quick] OUT.json
Writes {"rows": [{"name": "torch/convnet/train/b64", "unit": "samples/s", "median", "min", "max"}]}.
"""
import json
import os
import sys
import time

# OpenMP's default (active) wait policy spins between parallel regions; on a shared or loaded
# machine that made eager PyTorch up to ~35x slower here (mlp step at batch 64: ~450 vs
# ~16,000 samples/s). Passive waiting is the fair setting next to graft's yielding threads.
# Must be set before torch (and its OpenMP runtime) loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from lite0_net import GROUPS, lite0_maps  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)


def convnet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                         nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


# EfficientNet-Lite0 written out with torch.nn.functional as in effnet_predict.py (bias-free
# convolutions with TensorFlow "SAME" padding, BatchNorm eps 1e-3, ReLU6), random weights.
def lite0_params():
    P = {}

    def conv(name, cout, cin, k):
        P[name] = (torch.randn(cout, cin, k, k) * (2.0 / (cin * k * k)) ** 0.5).requires_grad_()

    def bn(name, c):
        P[name + ".weight"] = torch.ones(c).requires_grad_()
        P[name + ".bias"] = torch.zeros(c).requires_grad_()
        P[name + ".running_mean"] = torch.randn(c) * 0.1
        P[name + ".running_var"] = torch.rand(c) + 0.5

    conv("_conv_stem.weight", 32, 3, 3)
    bn("_bn0", 32)
    i = 0
    for repeats, k, stride, expand, cin, cout in GROUPS:
        for j in range(repeats):
            ci = cin if j == 0 else cout
            pre, mid = f"_blocks.{i}.", ci * expand
            if expand != 1:
                conv(pre + "_expand_conv.weight", mid, ci, 1)
                bn(pre + "_bn0", mid)
            conv(pre + "_depthwise_conv.weight", mid, 1, k)
            bn(pre + "_bn1", mid)
            conv(pre + "_project_conv.weight", cout, mid, 1)
            bn(pre + "_bn2", cout)
            i += 1
    conv("_conv_head.weight", 1280, 320, 1)
    bn("_bn1", 1280)
    P["_fc.weight"] = (torch.randn(1000, 1280) * 0.02).requires_grad_()
    P["_fc.bias"] = torch.zeros(1000).requires_grad_()
    return P


def lite0_logits(P, x, training):
    f = lite0_maps(P, x).mean((2, 3))
    return F.linear(F.dropout(f, 0.2, training), P["_fc.weight"], P["_fc.bias"])


def effnet_rows(rows, rounds):
    """Batch 32 at 224 and 96: inference, feature extraction (the maps, no pooling) and a
    fine-tuning step with BatchNorm frozen; graft's effnet_rows in benches/graft_bench.rs."""
    P = lite0_params()
    b = 32
    for side in (224, 96):
        x = torch.rand(b, 3, side, side) * 2 - 1
        y = torch.randint(0, 1000, (b,))

        def infer():
            with torch.no_grad():
                lite0_logits(P, x, False)

        def features():
            with torch.no_grad():
                lite0_maps(P, x)

        def step():
            for p in P.values():
                p.grad = None
            F.cross_entropy(lite0_logits(P, x, True), y, reduction="sum").backward()

        for name, f in (("infer", infer), ("features", features), ("train-bn-frozen", step)):
            f()
            secs = []
            for _ in range(rounds):
                t = time.perf_counter()
                f()
                secs.append(time.perf_counter() - t)
            rows.append(stats(f"torch/effnet-lite0/{name}/b{b}/r{side}", b, secs))


def stats(name, batch, secs):
    v = sorted(batch / s for s in secs)
    return {"name": name, "unit": "samples/s", "median": v[len(v) // 2], "min": v[0], "max": v[-1]}


def main():
    quick = "--quick" in sys.argv
    out = [a for a in sys.argv[1:] if not a.startswith("--")][0]
    rounds = 5 if quick else 20
    rows = []
    for net_name, make in [("convnet", convnet), ("mlp", mlp)]:
        net = make()
        for b in (64, 256):
            x = torch.rand(b, 1, 28, 28)
            y = torch.randint(0, 10, (b,))

            def step():
                net.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(net(x), y, reduction="sum")
                loss.backward()

            step()
            secs = []
            for _ in range(rounds):
                t = time.perf_counter()
                step()
                secs.append(time.perf_counter() - t)
            rows.append(stats(f"torch/{net_name}/train/b{b}", b, secs))
        x = torch.rand(256, 1, 28, 28)
        with torch.no_grad():
            net(x)
            secs = []
            for _ in range(rounds):
                t = time.perf_counter()
                net(x)
                secs.append(time.perf_counter() - t)
        rows.append(stats(f"torch/{net_name}/infer/b256", 256, secs))
    if not quick:
        effnet_rows(rows, 3)
    with open(out, "w") as f:
        json.dump({"rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
