"""Cross-check `hlfp cost` against ptflops itself (not needed by `cargo test`).

Builds the PAPER.md architectures from torchvision blocks (branches as separate modules: grouped
convs cost the same in ptflops' formulas) and prints params plus ptflops' MACs for both of its
backends: `pytorch` (the paper's convention, our `macs_ptflops`) and `aten` (conv + linear, our
`macs`; it also counts the linear bias). Usage, with torch, torchvision and ptflops importable:

    python scripts/ptflops_crosscheck.py            # prints one JSON line per model
"""
import json
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck
from ptflops import get_model_complexity_info


def block(cin, mid, cout, stride):
    ds = None
    if stride != 1 or cin != cout:
        ds = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    b = Bottleneck(cin, mid, stride=stride, downsample=ds)
    # torchvision's Bottleneck fixes cout = 4 * mid; HLFP branch blocks do not, so rebuild conv3.
    b.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
    b.bn3 = nn.BatchNorm2d(cout)
    return b


def trunk(layers):
    r = torchvision.models.resnet50()
    mods = [r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3][: 4 + layers]
    return nn.Sequential(*mods)


def stack(spec):
    return nn.Sequential(*[block(*s) for s in spec])


SMALL = [(128, 512, 2), (64, 256, 2), (32, 128, 2)]
BIG = [(256, 1024, 2), (128, 512, 2), (64, 256, 2)]


def head(c, out):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out))


def branch(cin, spec, out=1):
    blocks, c = [], cin
    for mid, cout, s in spec:
        blocks.append((c, mid, cout, s))
        c = cout
    return nn.Sequential(stack(blocks), head(c, out))


class Hlfp(nn.Module):
    def __init__(self, layers, cin, spec, n, out=1):
        super().__init__()
        self.trunk = trunk(layers)
        self.branches = nn.ModuleList([branch(cin, spec, out) for _ in range(n)])

    def forward(self, x):
        t = self.trunk(x)
        return torch.cat([b(t) for b in self.branches], 1)


class Nested(nn.Module):
    def __init__(self, supers, classes):
        super().__init__()
        self.trunk = trunk(2)
        self.supers = nn.ModuleList([block(512, 128, 512, 2) for _ in range(supers)])
        # Classes spread contiguously over the superclasses.
        self.of_class = [c * supers // classes for c in range(classes)]
        self.classes = nn.ModuleList([branch(512, SMALL[1:]) for _ in range(classes)])

    def forward(self, x):
        t = self.trunk(x)
        s = [m(t) for m in self.supers]
        return torch.cat([b(s[i]) for b, i in zip(self.classes, self.of_class)], 1)


def models():
    yield "resnet18 k=10", torchvision.models.resnet18(num_classes=10), 224
    yield "resnet50 k=10", torchvision.models.resnet50(num_classes=10), 224
    yield "resnet50 k=1000", torchvision.models.resnet50(), 224
    yield "resnet152 k=10", torchvision.models.resnet152(num_classes=10), 224
    for k in (1, 5, 10, 20, 80):
        yield f"hlfp-small k={k}", Hlfp(2, 512, SMALL, k), 224
    yield "hlfp-small k=3 input=161", Hlfp(2, 512, SMALL, 3), 161
    yield "hlfp-big k=10", Hlfp(2, 512, BIG, 10), 224
    yield "hlfp-late-sp k=10", Hlfp(3, 1024, SMALL, 10), 224
    yield "hlfp-1b-late-sp k=10", Hlfp(3, 1024, SMALL, 1, out=10), 224
    yield "hlfp-late-big-sp k=10", Hlfp(3, 1024, BIG, 10), 224
    yield "hlfp-nested 17 supers 20 classes", Nested(17, 20), 224
    yield "hlfp-nested 52 supers 80 classes", Nested(52, 80), 224


def main():
    torch.set_grad_enabled(False)
    only = sys.argv[1:]
    for name, m, size in models():
        if only and not any(o in name for o in only):
            continue
        m.eval()
        row = {"model": name, "input_size": size}
        for backend in ("pytorch", "aten"):
            macs, params = get_model_complexity_info(
                m, (3, size, size), as_strings=False, print_per_layer_stat=False, backend=backend
            )
            row[f"macs_{backend}"] = macs
            row["params"] = params
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
