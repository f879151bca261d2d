"""EfficientNet-Lite0 written out with torch.nn.functional, shared by the peer scripts
(effnet_predict.py, lite0_grey_features.py, torch_peer.py): every convolution bias-free with
TensorFlow "SAME" padding, BatchNorm in eval mode with eps 1e-3, ReLU6, no squeeze-excite.
P maps the checkpoint's names (`_conv_stem.weight`, `_blocks.N._bn1.running_var`, ...) to
tensors.
"""
import torch.nn.functional as F

GROUPS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def same(x, w, stride, groups=1):
    k = w.shape[-1]

    def pad(n):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        return total // 2, total - total // 2

    (t, b), (l, r) = pad(x.shape[-2]), pad(x.shape[-1])
    return F.conv2d(F.pad(x, (l, r, t, b)), w, stride=stride, groups=groups)


def lite0_maps(P, x):
    """Every unit with BatchNorm in eval mode: the last unit's 1280 maps."""
    bn = lambda h, n: F.batch_norm(h, P[n + ".running_mean"], P[n + ".running_var"],
                                   P[n + ".weight"], P[n + ".bias"], False, 0.0, 1e-3)
    h = F.relu6(bn(same(x, P["_conv_stem.weight"], 2), "_bn0"))
    i = 0
    for repeats, k, stride, expand, cin, cout in GROUPS:
        for j in range(repeats):
            pre, inp = f"_blocks.{i}.", h
            s, ci = (stride, cin) if j == 0 else (1, cout)
            if expand != 1:
                h = F.relu6(bn(same(h, P[pre + "_expand_conv.weight"], 1), pre + "_bn0"))
            h = F.relu6(bn(same(h, P[pre + "_depthwise_conv.weight"], s, h.shape[1]), pre + "_bn1"))
            h = bn(same(h, P[pre + "_project_conv.weight"], 1), pre + "_bn2")
            if s == 1 and ci == cout:
                h = h + inp
            i += 1
    return F.relu6(bn(same(h, P["_conv_head.weight"], 1), "_bn1"))
