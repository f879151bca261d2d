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
from torch import nn

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
    with open(out, "w") as f:
        json.dump({"rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
