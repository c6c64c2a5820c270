#!/usr/bin/env python3
"""Write the PyTorch parity fixtures under tests/fixtures/parity/ (deterministic; run once, commit).

Each model is built from torchvision's own `Bottleneck` blocks, ONE MODULE PER BRANCH, so the
reference never uses our stacked/grouped layout: the Rust side must reproduce per-branch outputs
from the stacked weights. Weights are random (seeded) with non-trivial BatchNorm statistics, and
every forward runs in eval mode.

Files per model NAME:
  NAME.json               the ModelConfig (variant, class_names, input_size, width, superclasses)
  NAME.safetensors        weights, named as docs/WEIGHTS.md says (torchvision trunk names,
                          `branch.{j}.*` stacked over branches, `branch_fc.*`)
  NAME.io.safetensors     input [2,3,S,S]; logits_full [2,k]; cutout (i64 class indices);
                          logits_cutout [2,|cutout|]; gains [k]; logits_gain [2,k] (full model
                          with those gains at the config's gain stage)

Usage: python3 scripts/make_parity_fixtures.py   (needs torch, torchvision, safetensors)
"""
import json
import os
import sys

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "parity")


def ch(c, width):
    return max(1, round(c * width))


def randomize_bn(module, gen):
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.8 + 0.6)


def block(cin, mid, cout, stride):
    """torchvision Bottleneck B(cin, mid, cout, stride); requires cout == 4 * mid."""
    assert cout == mid * Bottleneck.expansion, (cin, mid, cout)
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    return Bottleneck(cin, mid, stride=stride, downsample=down)


class Trunk(nn.Module):
    """torchvision ResNet50 stem + the first `n_layers` layers, at a width multiplier."""

    def __init__(self, width, depths):
        super().__init__()
        c = lambda x: ch(x, width)
        self.conv1 = nn.Conv2d(3, c(64), 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c(64))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = c(64)
        for i, (mid, n) in enumerate(zip([64, 128, 256, 512], depths)):
            blocks = []
            for b in range(n):
                stride = 2 if (b == 0 and i > 0) else 1
                blocks.append(block(cin, c(mid), c(mid) * 4, stride))
                cin = c(mid) * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_layers = len(depths)
        self.out_channels = cin

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class Branch(nn.Module):
    """One class's branch: a stack of bottlenecks, avgpool, Linear(head_in, 1)."""

    def __init__(self, specs):
        super().__init__()
        self.blocks = nn.ModuleList([block(*s) for s in specs])
        self.fc = nn.Linear(specs[-1][2], 1)
        # Larger head weights than the default init, so that logits are O(1) and the gain's
        # effect on them is far above the 1e-4 parity tolerance.
        with torch.no_grad():
            self.fc.weight.mul_(20.0)

    def forward(self, x, gain=1.0, gain_stage=1, start=0):
        for j in range(start, len(self.blocks)):
            x = self.blocks[j](x)
            if j == gain_stage:
                x = x * gain
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))[:, 0]


def stack_branch_state(prefix, block_modules):
    """Stack the same tensor of n per-branch blocks along dim 0 under `prefix`."""
    out = {}
    keys = [k for k in block_modules[0].state_dict().keys() if not k.endswith("num_batches_tracked")]
    for k in keys:
        out[f"{prefix}.{k}"] = torch.cat([m.state_dict()[k] for m in block_modules], 0).contiguous()
    return out


def trunk_state(trunk):
    return {k: v.contiguous() for k, v in trunk.state_dict().items() if not k.endswith("num_batches_tracked")}


def save(name, cfg, weights, io):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file({k: v.float().contiguous() for k, v in weights.items()}, os.path.join(OUT, f"{name}.safetensors"))
    save_file({k: v.clone().contiguous() for k, v in io.items()}, os.path.join(OUT, f"{name}.io.safetensors"))
    n = sum(v.numel() for v in weights.values())
    print(f"{name}: {n} weight values, logits_full={io['logits_full'][0].tolist()}")


def make_hlfp_small(name, width, k, cutout, gains, size, seed, superclass_of=None):
    """HLFP-small (or nested when superclass_of is given)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    c = lambda x: ch(x, width)
    trunk = Trunk(width, [3, 4])
    specs = [(c(512), c(128), c(512), 2), (c(512), c(64), c(256), 2), (c(256), c(32), c(128), 2)]
    branches = [Branch(specs) for _ in range(k)]
    if superclass_of is not None:
        n_super = max(superclass_of) + 1
        supers = [block(*specs[0]) for _ in range(n_super)]
    else:
        supers = None
    modules = [trunk] + branches + (supers or [])
    for m in modules:
        randomize_bn(m, gen)
        m.eval()

    x = torch.randn(2, 3, size, size, generator=gen)
    gains_t = torch.tensor(gains, dtype=torch.float32)
    with torch.no_grad():
        t = trunk(x)

        def logit(cls, gain):
            if supers is not None:
                s = supers[superclass_of[cls]](t)
                return branches[cls](s, gain=gain, gain_stage=1, start=1)
            return branches[cls](t, gain=gain, gain_stage=1)

        full = torch.stack([logit(i, 1.0) for i in range(k)], 1)
        cut = torch.stack([logit(i, 1.0) for i in cutout], 1)
        gained = torch.stack([logit(i, float(gains[i])) for i in range(k)], 1)

    weights = trunk_state(trunk)
    if supers is not None:
        weights.update(stack_branch_state("branch.0", supers))
        first = 1
    else:
        first = 0
    for j in range(first, len(specs)):
        weights.update(stack_branch_state(f"branch.{j}", [b.blocks[j] for b in branches]))
    weights["branch_fc.weight"] = torch.cat([b.fc.weight for b in branches], 0)
    weights["branch_fc.bias"] = torch.cat([b.fc.bias for b in branches], 0)

    class_names = [f"class{i}" for i in range(k)]
    cfg = {
        "variant": "hlfp-nested" if supers is not None else "hlfp-small",
        "class_names": class_names,
        "input_size": size,
        "width": width,
        "gain_stage": 1,
        "superclasses": None,
    }
    if supers is not None:
        cfg["superclasses"] = {"names": [f"super{i}" for i in range(max(superclass_of) + 1)], "of_class": superclass_of}
    io = {
        "input": x,
        "logits_full": full,
        "cutout": torch.tensor(cutout, dtype=torch.int64),
        "logits_cutout": cut,
        "gains": gains_t,
        "logits_gain": gained,
    }
    save(name, cfg, weights, io)


def make_resnet50(name, width, k, cutout, size, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    trunk = Trunk(width, [3, 4, 6, 3])
    fc = nn.Linear(trunk.out_channels, k)
    with torch.no_grad():
        fc.weight.mul_(20.0)
    randomize_bn(trunk, gen)
    trunk.eval()
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        feats = torch.flatten(nn.functional.adaptive_avg_pool2d(trunk(x), 1), 1)
        full = fc(feats)
    weights = trunk_state(trunk)
    weights["fc.weight"] = fc.weight.detach()
    weights["fc.bias"] = fc.bias.detach()
    cfg = {"variant": "resnet50", "class_names": [f"class{i}" for i in range(k)], "input_size": size,
           "width": width, "gain_stage": None, "superclasses": None}
    io = {
        "input": x,
        "logits_full": full,
        "cutout": torch.tensor(cutout, dtype=torch.int64),
        "logits_cutout": full[:, cutout],
        "gains": torch.ones(k),
        "logits_gain": full,
    }
    save(name, cfg, weights, io)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    make_resnet50("resnet50_w8", 1 / 8, 3, [0, 2], 64, seed=50)
    make_hlfp_small("hlfp_small_w8", 1 / 8, 3, [0, 2], [1.0, 1.7, 0.5], 64, seed=7)
    make_hlfp_small("hlfp_nested_w8", 1 / 8, 4, [1, 3], [1.5, 1.0, 1.0, 0.6], 64, seed=11, superclass_of=[0, 0, 1, 1])
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
