#!/usr/bin/env python3
"""Time the benchmark's architectures in PyTorch eager, batch 1, 224x224, fp32 (not run in CI).

The same cases as `hlfp bench`: ResNet50 (10 classes); HLFP-small full (k=10); cutouts k=5, 2, 1;
HLFP-small k=100 with a 5-branch cutout. HLFP's branch stage is built the efficient way in
PyTorch too: the first branch conv and its shortcut are one dense conv over the trunk output,
every later conv is grouped over the active branches (weights sliced once per cutout), the head
is a per-branch dot product. BatchNorm is folded into the convs (torch.fx-free: done by hand),
as our engine does, so both sides do the same arithmetic.

Usage (local venv with torch and torchvision):
  python3 scripts/bench_pytorch.py --threads 2 --iters 30 [--json]
  python3 scripts/bench_pytorch.py --device cuda --cuda-graph --iters 200 --warmup 20 --json

On CUDA every timed pass ends with torch.cuda.synchronize(), as `hlfp bench --device cuda` does.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.models import resnet50


def fold(conv, bn):
    """A conv with its BatchNorm folded in (eval mode)."""
    w = conv.weight
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True)
    with torch.no_grad():
        fused.weight.copy_(w * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


class FoldedBottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride, groups=1, dense_input=False):
        super().__init__()
        g_in = 1 if dense_input else groups
        cin_total = cin if dense_input else cin * groups
        self.c1 = nn.Conv2d(cin_total, mid * groups, 1, groups=g_in)
        self.c2 = nn.Conv2d(mid * groups, mid * groups, 3, stride, 1, groups=groups)
        self.c3 = nn.Conv2d(mid * groups, cout * groups, 1, groups=groups)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Conv2d(cin_total, cout * groups, 1, stride, groups=g_in)

    def forward(self, x):
        s = self.down(x) if self.down is not None else x
        y = F.relu(self.c1(x))
        y = F.relu(self.c2(y))
        return F.relu(self.c3(y) + s)


def folded_resnet_trunk(n_layers):
    """torchvision ResNet50's stem and first layers with BatchNorm folded."""
    r = resnet50().eval()
    mods = [fold(r.conv1, r.bn1), nn.ReLU(), r.maxpool]
    for layer in [r.layer1, r.layer2, r.layer3, r.layer4][:n_layers]:
        for b in layer:
            fb = FoldedBottleneck(1, 1, 1, 1)
            fb.c1, fb.c2, fb.c3 = fold(b.conv1, b.bn1), fold(b.conv2, b.bn2), fold(b.conv3, b.bn3)
            fb.down = fold(b.downsample[0], b.downsample[1]) if b.downsample is not None else None
            mods.append(fb)
    return nn.Sequential(*mods).eval()


class Hlfp(nn.Module):
    """HLFP-small with `n` active branches (weights for just those branches)."""

    def __init__(self, n):
        super().__init__()
        self.trunk = folded_resnet_trunk(2)
        self.branch = nn.Sequential(
            FoldedBottleneck(512, 128, 512, 2, groups=n, dense_input=True),
            FoldedBottleneck(512, 64, 256, 2, groups=n),
            FoldedBottleneck(256, 32, 128, 2, groups=n),
        )
        self.head_w = nn.Parameter(torch.randn(n, 128) * 0.01)
        self.head_b = nn.Parameter(torch.zeros(n))
        self.n = n

    def forward(self, x):
        y = self.branch(self.trunk(x))
        pooled = y.mean((2, 3)).reshape(-1, self.n, 128)
        return (pooled * self.head_w).sum(-1) + self.head_b


class ResNet50(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.trunk = folded_resnet_trunk(4)
        self.fc = nn.Linear(2048, k)

    def forward(self, x):
        return self.fc(self.trunk(x).mean((2, 3)))


def time_model(m, iters, warmup, device, graph=False):
    m = m.to(device)
    x = torch.randn(1, 3, 224, 224, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        run = m
        if graph:
            # Static input and output buffers; each pass copies in, replays, copies out.
            static_x = x.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    m(static_x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                static_y = m(static_x)

            def run(inp):
                static_x.copy_(inp)
                g.replay()
                return static_y.clone()
        for _ in range(warmup):
            run(x)
        sync()
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            run(x)
            sync()
            ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--no-tf32", action="store_true",
                    help="CUDA: plain fp32 convolutions (PyTorch's default lets cuDNN use TF32)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="CUDA: also time each model replayed as one CUDA graph")
    a = ap.parse_args()
    device = torch.device(a.device)
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    # A cutout of a k=100 model runs exactly the weights of its 5 branches, like k=5.
    cases = [
        ("resnet50", ResNet50(10)),
        ("hlfp-small k=10", Hlfp(10)),
        ("hlfp-small cutout 5/10", Hlfp(5)),
        ("hlfp-small cutout 2/10", Hlfp(2)),
        ("hlfp-small cutout 1/10", Hlfp(1)),
        ("hlfp-small k=100 cutout 5", Hlfp(5)),
    ]
    out = {"torch": torch.__version__, "device": str(device), "threads": a.threads,
           "tf32_convs": torch.backends.cudnn.allow_tf32 and device.type == "cuda",
           "iters": a.iters, "median_ms": {}}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for name, m in cases:
        out["median_ms"][name] = time_model(m.eval(), a.iters, a.warmup, device)
        if a.cuda_graph:
            out.setdefault("graph_median_ms", {})[name] = time_model(
                m.eval(), a.iters, a.warmup, device, graph=True)
        if not a.json:
            print(f"{name:28s} {out['median_ms'][name]:8.2f} ms")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
