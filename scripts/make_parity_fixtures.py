#!/usr/bin/env python3
"""Write the PyTorch parity fixtures under tests/fixtures/parity/ (deterministic; run once, commit).

One fixture per variant of `Variant::ALL` (src/model/config.rs), all at width 1/8. Each model is
built from torchvision's own `Bottleneck` / `BasicBlock` modules, ONE MODULE PER BRANCH (per
superclass for HLFP-nested's first branch block), so the reference never uses our stacked/grouped
layout: the Rust side must reproduce per-branch outputs from the stacked weights. The channel plan
comes from `architecture()` below, a line-by-line Python mirror of `ModelConfig::architecture`
(`python3 scripts/make_parity_fixtures.py --check` compares it at width 1 with torchvision's
ResNets and with PAPER.md's parameter counts). Weights are random (seeded) with non-trivial
BatchNorm statistics, every forward runs in eval mode, and the reference runs in float64 (on the
float32 weights and input, exactly) with the logits cast to float32, so the stored logits do not
depend on the torch version, the thread count or the conv algorithm.

Files per model NAME (`<variant>_w8`, underscores):
  NAME.json               the ModelConfig (variant, class_names, input_size, width, gain_stage,
                          superclasses)
  NAME.safetensors        weights, named as docs/WEIGHTS.md says (torchvision trunk names,
                          `branch.{j}.*` stacked over branches, `branch_fc.*`; ResNets `fc.*`):
                          float32 for the original three fixtures, float16 for the others (half
                          the bytes; the loaders convert to f32, and the reference runs on exactly
                          the stored f16 values)
  NAME.io.safetensors     input [2,3,S,S] f32
                          logits_full [2,k]             full model, no gains
                          cutout [|C|] i64              sorted class indices
                          logits_cutout [2,|C|]         the cutout, no gains
                          gains [k] f32                 one gain per class
                          logits_gain [2,k]             full model, gains at the config's gain stage
                          logits_cutout_gain [2,|C|]    the cutout with gains[c] for each c in C
                          cutout2, logits_cutout2, logits_cutout2_gain   (hlfp_nested_w8 only: a
                                                        cutout inside one superclass)
                          ResNets and HLFP-1b-late-SP have no per-class branch: their cutout
                          logits are columns of the full logits and every *_gain tensor equals its
                          gain-free counterpart (the gains are non-trivial, to assert they are
                          ignored; resnet50_w8 keeps its original all-ones gains).

Usage: python3 scripts/make_parity_fixtures.py            write every fixture
       python3 scripts/make_parity_fixtures.py --check    architecture() vs torchvision / PAPER.md
       python3 scripts/make_parity_fixtures.py --verify   the written files vs a stacked-layout
                                                          re-implementation (float64 and float32)
(needs torch, torchvision, safetensors)
"""
import copy
import json
import math
import os
import sys

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "parity")

# Variants with one parallel branch per class (cutouts and gains apply): `Variant::is_branched`.
BRANCHED = {"hlfp-small", "hlfp-big", "hlfp-late-sp", "hlfp-nested", "hlfp-late-big-sp"}


def ch(c, width):
    """`ModelConfig::ch`: max(1, round(c * width)), rounding half away from zero like Rust."""
    return max(1, math.floor(c * width + 0.5))


def architecture(variant, k, width, gain_stage=None):
    """Python mirror of `ModelConfig::architecture` (src/model/config.rs).

    Returns stem (channels), trunk [(torchvision layer name, [spec])], branch [spec],
    num_branches, head_out, head_in, gain_stage. A spec is ("bottleneck", cin, mid, cout, stride)
    or ("basic", cin, cout, stride); every channel count is scaled by `ch` on its own, as in Rust.
    """
    c = lambda x: ch(x, width)

    def bott(cin, mid, cout, stride):
        return ("bottleneck", c(cin), c(mid), c(cout), stride)

    def bottleneck_layer(name, cin, mid, n, stride):
        return (name, [bott(cin, mid, mid * 4, stride) if i == 0 else bott(mid * 4, mid, mid * 4, 1)
                       for i in range(n)])

    def basic_layer(name, cin, cout, n, stride):
        return (name, [("basic", c(cin), c(cout), stride) if i == 0 else ("basic", c(cout), c(cout), 1)
                       for i in range(n)])

    def resnet50_layers(depths):
        return [bottleneck_layer("layer1", 64, 64, depths[0], 1), bottleneck_layer("layer2", 256, 128, depths[1], 2),
                bottleneck_layer("layer3", 512, 256, depths[2], 2), bottleneck_layer("layer4", 1024, 512, depths[3], 2)]

    def small_stack(cin):
        return [bott(cin, 128, 512, 2), bott(512, 64, 256, 2), bott(256, 32, 128, 2)]

    def big_stack(cin):
        return [bott(cin, 256, 1024, 2), bott(1024, 128, 512, 2), bott(512, 64, 256, 2)]

    trunk = resnet50_layers([3, 4, 6, 3])
    if variant in ("hlfp-small", "hlfp-nested"):
        trunk, branch, nb, head_out = trunk[:2], small_stack(512), k, 1
    elif variant == "hlfp-big":
        trunk, branch, nb, head_out = trunk[:2], big_stack(512), k, 1
    elif variant == "hlfp-late-sp":
        trunk, branch, nb, head_out = trunk[:3], small_stack(1024), k, 1
    elif variant == "hlfp-1b-late-sp":
        trunk, branch, nb, head_out = trunk[:3], small_stack(1024), 1, k
    elif variant == "hlfp-late-big-sp":
        trunk, branch, nb, head_out = trunk[:3], big_stack(1024), k, 1
    elif variant == "resnet18":
        trunk = [basic_layer("layer1", 64, 64, 2, 1), basic_layer("layer2", 64, 128, 2, 2),
                 basic_layer("layer3", 128, 256, 2, 2), basic_layer("layer4", 256, 512, 2, 2)]
        branch, nb, head_out = [], 0, k
    elif variant == "resnet50":
        branch, nb, head_out = [], 0, k
    elif variant == "resnet152":
        trunk, branch, nb, head_out = resnet50_layers([3, 8, 36, 3]), [], 0, k
    else:
        raise ValueError(f"unknown variant {variant}")
    trunk_out = trunk[-1][1][-1][-2] if trunk else c(64)
    head_in = branch[-1][-2] if branch else trunk_out
    gs = 1 if gain_stage is None else gain_stage
    assert not branch or gs < len(branch), "gain stage past the last branch block"
    return {"stem": c(64), "trunk": trunk, "branch": branch, "num_branches": nb, "head_out": head_out,
            "head_in": head_in, "gain_stage": gs}


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


def tv_block(spec):
    """torchvision's block for a spec; projection shortcut (`downsample`) when stride != 1 or
    cin != cout, as `BlockSpec::has_downsample`."""
    if spec[0] == "bottleneck":
        _, cin, mid, cout, stride = spec
        assert cout == mid * Bottleneck.expansion, spec
        cls, planes = Bottleneck, mid
    else:
        _, cin, cout, stride = spec
        cls, planes = BasicBlock, cout
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    return cls(cin, planes, stride=stride, downsample=down)


class Trunk(nn.Module):
    """torchvision stem (conv1/bn1/relu/maxpool) + the architecture's trunk layers, torchvision names."""

    def __init__(self, arch):
        super().__init__()
        self.conv1 = nn.Conv2d(3, arch["stem"], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(arch["stem"])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer_names = []
        for name, specs in arch["trunk"]:
            setattr(self, name, nn.Sequential(*[tv_block(s) for s in specs]))
            self.layer_names.append(name)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


def pool(x):
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class Reference(nn.Module):
    """The reference model, one torchvision module per branch.

    `branches[i]` holds class i's own blocks (all of them; for nested, blocks 1..), `heads[i]` its
    Linear(head_in, 1); `supers[s]` is nested's block 0 of superclass s. HLFP-1b-late-SP has one
    branch (`branches[0]`) and one Linear(head_in, k) head; ResNets only `heads[0]` = `fc`.
    Construction order (which fixes the random weights): trunk; per branch its blocks then its
    head; superclass blocks; for ResNets the fc after the trunk.
    """

    def __init__(self, variant, k, width, gain_stage=None, superclass_of=None, fc_scale=20.0):
        super().__init__()
        self.variant, self.k = variant, k
        self.arch = arch = architecture(variant, k, width, gain_stage)
        self.superclass_of = superclass_of
        self.trunk = Trunk(arch)
        specs = arch["branch"]
        nested = variant == "hlfp-nested"
        first = 1 if nested else 0
        self.branches, self.heads = nn.ModuleList(), nn.ModuleList()
        # Nested: each class also gets an unused, unsaved block 0 of its own (a plain list, not a
        # submodule), only so that the random stream, and hence hlfp_nested_w8's committed
        # weights, stay as the original script made them.
        self.unused = []
        n_branches, head_out = arch["num_branches"], arch["head_out"]
        for _ in range(n_branches):
            blocks = [tv_block(s) for s in specs]
            self.branches.append(nn.ModuleList(blocks[first:]))
            self.unused += blocks[:first]
            self.heads.append(nn.Linear(arch["head_in"], head_out))
        self.supers = nn.ModuleList()
        if nested:
            assert superclass_of is not None and len(superclass_of) == k
            self.supers.extend(tv_block(specs[0]) for _ in range(max(superclass_of) + 1))
        if not specs:
            self.heads.append(nn.Linear(arch["head_in"], head_out))
        # Larger head weights than the default init, so that logits are O(1) and the gain's
        # effect on them is far above the 1e-4 parity tolerance.
        with torch.no_grad():
            for h in self.heads:
                h.weight.mul_(fc_scale)

    def randomize(self, gen):
        """Random BatchNorm statistics, in the original script's order (trunk, per branch all its
        blocks, superclass blocks); returns the model in eval mode."""
        randomize_bn(self.trunk, gen)
        for i, branch in enumerate(self.branches):
            if self.unused:
                randomize_bn(self.unused[i], gen)
            randomize_bn(branch, gen)
        randomize_bn(self.supers, gen)
        return self.eval()

    def logits(self, x, classes, gains=None):
        """Logits [B, len(classes)]; `gains` (one per class of the full model) multiply class c's
        maps at the output of branch block `gain_stage`. Variants without per-class branches ignore
        gains and pick columns of the full logits."""
        t = self.trunk(x)
        if self.variant not in BRANCHED:
            y = t
            for b in (self.branches[0] if len(self.branches) else []):
                y = b(y)
            return self.heads[0](pool(y))[:, list(classes)]
        gs = self.arch["gain_stage"]
        out = []
        for c in classes:
            y, j = t, 0
            if self.variant == "hlfp-nested":
                y, j = self.supers[self.superclass_of[c]](t), 1
                if gs == 0 and gains is not None:
                    y = y * float(gains[c])
            for b in self.branches[c]:
                y = b(y)
                if j == gs and gains is not None:
                    y = y * float(gains[c])
                j += 1
            out.append(self.heads[c](pool(y))[:, 0])
        return torch.stack(out, 1)

    def weights(self):
        """The weights file's tensors (docs/WEIGHTS.md names, branches stacked along dim 0)."""
        w = {k: v.detach().contiguous() for k, v in self.trunk.state_dict().items()
             if not k.endswith("num_batches_tracked")}
        nested = self.variant == "hlfp-nested"
        if nested:
            w.update(stack_branch_state("branch.0", list(self.supers)))
        first = 1 if nested else 0
        for j in range(len(self.arch["branch"]) - first):
            w.update(stack_branch_state(f"branch.{j + first}", [b[j] for b in self.branches]))
        head = "branch_fc" if self.arch["branch"] else "fc"
        w[f"{head}.weight"] = torch.cat([h.weight.detach() for h in self.heads], 0)
        w[f"{head}.bias"] = torch.cat([h.bias.detach() for h in self.heads], 0)
        return w


def stack_branch_state(prefix, block_modules):
    """Stack the same tensor of n per-branch blocks along dim 0 under `prefix`."""
    out = {}
    keys = [k for k in block_modules[0].state_dict().keys() if not k.endswith("num_batches_tracked")]
    for k in keys:
        out[f"{prefix}.{k}"] = torch.cat([m.state_dict()[k] for m in block_modules], 0).contiguous()
    return out


def save(name, cfg, weights, io):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in weights.items()}, os.path.join(OUT, f"{name}.safetensors"))
    save_file({k: v.clone().contiguous() for k, v in io.items()}, os.path.join(OUT, f"{name}.io.safetensors"))
    n = sum(v.numel() for v in weights.values())
    print(f"{name}: {n} weight values, logits_full={[round(v, 4) for v in io['logits_full'][0].tolist()]}")


def make(name, variant, width, k, size, seed, cutout, gains, gain_stage=None, superclass_of=None, cutout2=None,
         dtype="f32"):
    """Build, run and write one fixture. dtype "f16" stores the weights as float16 (the loaders
    convert them to f32; half the bytes): the weights are rounded to f16 before the reference runs,
    so the reference uses exactly the stored values."""
    assert cutout == sorted(set(cutout)) and all(0 <= c < k for c in cutout)
    assert cutout2 is None or (cutout2 == sorted(set(cutout2)) and all(0 <= c < k for c in cutout2))
    assert len(gains) == k and all(g >= 0 for g in gains)
    if variant == "hlfp-nested":
        # SuperclassMap::names is in order of first appearance while walking the classes.
        firsts = list(dict.fromkeys(superclass_of))
        assert firsts == list(range(len(firsts))), "number superclasses by first appearance"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = Reference(variant, k, width, gain_stage, superclass_of).randomize(gen)
    x = torch.randn(2, 3, size, size, generator=gen)
    store = {"f32": torch.float32, "f16": torch.float16}[dtype]
    with torch.no_grad():
        for t in ref.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(store).float())

    ref64 = copy.deepcopy(ref).double()
    x64 = x.double()
    gains = torch.tensor(gains, dtype=torch.float32).tolist()  # the stored f32 values, exactly
    with torch.no_grad():
        run = lambda classes, g=None: ref64.logits(x64, classes, g).float().contiguous()
        io = {
            "input": x,
            "logits_full": run(range(k)),
            "cutout": torch.tensor(cutout, dtype=torch.int64),
            "logits_cutout": run(cutout),
            "gains": torch.tensor(gains, dtype=torch.float32),
            "logits_gain": run(range(k), gains),
            "logits_cutout_gain": run(cutout, gains),
        }
        if cutout2 is not None:
            io["cutout2"] = torch.tensor(cutout2, dtype=torch.int64)
            io["logits_cutout2"] = run(cutout2)
            io["logits_cutout2_gain"] = run(cutout2, gains)

    weights = {n: v.to(store) for n, v in ref.weights().items()}
    assert all(torch.equal(v.float(), w) for v, w in zip(weights.values(), ref.weights().values()))
    cfg = {"variant": variant, "class_names": [f"class{i}" for i in range(k)], "input_size": size,
           "width": width, "gain_stage": gain_stage, "superclasses": None}
    if variant == "hlfp-nested":
        cfg["superclasses"] = {"names": [f"super{i}" for i in range(max(superclass_of) + 1)],
                               "of_class": superclass_of}
    save(name, cfg, weights, io)
    return ref, io


# name, variant, k, input size, seed, cutout, gains, gain_stage (None = default 1; written to the
# config), extra. The first three are the original fixtures (same seeds, weights and inputs as
# before); the rest cover the other variants, with gain stages 0, 1 and 2 all exercised.
FIXTURES = [
    ("resnet50_w8", "resnet50", 3, 64, 50, [0, 2], [1.0, 1.0, 1.0], None, {}),
    ("hlfp_small_w8", "hlfp-small", 3, 64, 7, [0, 2], [1.0, 1.7, 0.5], 1, {}),
    ("hlfp_nested_w8", "hlfp-nested", 4, 64, 11, [1, 3], [1.5, 1.0, 1.0, 0.6], 1,
     {"superclass_of": [0, 0, 1, 1], "cutout2": [2, 3]}),
    ("hlfp_big_w8", "hlfp-big", 4, 48, 21, [1, 3], [1.0, 1.6, 0.8, 0.4], 2, {"dtype": "f16"}),
    ("hlfp_late_sp_w8", "hlfp-late-sp", 4, 40, 31, [0, 2, 3], [1.8, 1.0, 0.5, 1.3], 0, {"dtype": "f16"}),
    ("hlfp_1b_late_sp_w8", "hlfp-1b-late-sp", 4, 48, 41, [1, 2], [1.0, 1.7, 0.5, 1.2], None, {"dtype": "f16"}),
    ("hlfp_late_big_sp_w8", "hlfp-late-big-sp", 4, 48, 61, [0, 3], [0.6, 1.0, 1.4, 1.9], 1, {"dtype": "f16"}),
    ("resnet18_w8", "resnet18", 4, 40, 18, [0, 1, 3], [1.0, 1.7, 0.5, 1.2], None, {"dtype": "f16"}),
    ("resnet152_w8", "resnet152", 4, 32, 152, [1, 3], [1.0, 1.7, 0.5, 1.2], None, {"dtype": "f16"}),
]


def check_architecture():
    """At width 1 the mirror must reproduce torchvision's ResNets (names and shapes) and PAPER.md's
    parameter counts (which src/model/spec.rs also asserts)."""
    import torchvision

    def count(variant, k, supers=None):
        ref = Reference(variant, k, 1.0, superclass_of=supers)
        return sum(v.numel() for n, v in ref.weights().items() if "running_" not in n)

    for variant, ctor in [("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50),
                          ("resnet152", torchvision.models.resnet152)]:
        ours = {n: tuple(v.shape) for n, v in Reference(variant, 10, 1.0).weights().items()}
        tv = {n: tuple(v.shape) for n, v in ctor(num_classes=10).state_dict().items()
              if not n.endswith("num_batches_tracked")}
        assert ours == tv, variant
        print(f"{variant}: names and shapes == torchvision {ctor.__name__}(num_classes=10)")
    contiguous = lambda k, s: [c * s // k for c in range(k)]  # SuperclassMap::contiguous
    paper = [("resnet18", 10, None, 11_181_642), ("resnet50", 10, None, 23_528_522),
             ("resnet152", 10, None, 58_164_298), ("hlfp-small", 10, None, 9_611_338),
             ("hlfp-big", 10, None, 27_464_778), ("hlfp-late-sp", 10, None, 19_986_506),
             ("hlfp-1b-late-sp", 10, None, 9_688_778), ("hlfp-1b-late-sp", 100, None, 9_700_388),
             ("hlfp-small", 100, None, 83_109_028), ("hlfp-late-sp", 100, None, 122_975_396),
             ("hlfp-nested", 100, contiguous(100, 68), 65_725_604)]
    for variant, k, supers, want in paper:
        got = count(variant, k, supers)
        assert got == want, (variant, k, got, want)
        print(f"{variant} k={k}: {got:,} parameters == PAPER.md")
    print(f"hlfp-late-big-sp k=10: {count('hlfp-late-big-sp', 10):,} parameters (not pinned by the paper)")


def verify(dtype=torch.float64):
    """Re-read every written fixture and recompute all its logits with a SECOND implementation that
    follows docs/WEIGHTS.md's stacked layout (dense first branch conv, grouped later convs, rows
    sliced per selected branch / superclass, gains on channel groups): this checks that the weights
    files say what the references computed. Run in float32 it also shows how far an f32
    implementation lands from the stored (float64) logits. Returns the largest difference."""
    F = nn.functional
    worst = 0.0
    for name, *_ in FIXTURES:
        with open(os.path.join(OUT, f"{name}.json")) as f:
            cfg = json.load(f)
        w = {n: v.to(dtype) for n, v in load_file(os.path.join(OUT, f"{name}.safetensors")).items()}
        io = load_file(os.path.join(OUT, f"{name}.io.safetensors"))
        variant, k = cfg["variant"], len(cfg["class_names"])
        arch = architecture(variant, k, cfg["width"], cfg["gain_stage"])
        of_class = (cfg["superclasses"] or {}).get("of_class")
        expected = {n for n, _ in spec_tensors(arch, variant, k, of_class)}
        assert set(w) == expected, (name, set(w) ^ expected)
        for n, shape in spec_tensors(arch, variant, k, of_class):
            assert tuple(w[n].shape) == shape, (name, n, tuple(w[n].shape), shape)

        def rows(t, units, n):
            r = t.shape[0] // n
            return torch.cat([t[u * r:(u + 1) * r] for u in units], 0)

        def conv_bn(x, conv, bn, stride, pad, groups, units=None, n=1, relu=True):
            g = lambda s: w[s] if units is None else rows(w[s], units, n)
            y = F.conv2d(x, g(f"{conv}.weight"), stride=stride, padding=pad, groups=groups)
            y = F.batch_norm(y, g(f"{bn}.running_mean"), g(f"{bn}.running_var"),
                             g(f"{bn}.weight"), g(f"{bn}.bias"), False, 0.0, 1e-5)
            return F.relu(y) if relu else y

        def block(x, prefix, spec, units=None, n=1, dense_in=True):
            """One (possibly stacked) block; `dense_in`: the input is shared by all units."""
            gu = len(units) if units is not None else 1
            g_in = 1 if dense_in else gu
            p = lambda s: f"{prefix}.{s}"
            kw = dict(units=units, n=n)
            if spec[0] == "bottleneck":
                _, cin, mid, cout, stride = spec
                y = conv_bn(x, p("conv1"), p("bn1"), 1, 0, g_in, **kw)
                y = conv_bn(y, p("conv2"), p("bn2"), stride, 1, gu, **kw)
                y = conv_bn(y, p("conv3"), p("bn3"), 1, 0, gu, relu=False, **kw)
            else:
                _, cin, cout, stride = spec
                y = conv_bn(x, p("conv1"), p("bn1"), stride, 1, g_in, **kw)
                y = conv_bn(y, p("conv2"), p("bn2"), 1, 1, gu, relu=False, **kw)
            if stride != 1 or cin != cout:
                sc = conv_bn(x, p("downsample.0"), p("downsample.1"), stride, 0, g_in, relu=False, **kw)
            else:
                assert not (dense_in and gu > 1), "identity shortcut on a shared input: not in any variant"
                sc = x
            return F.relu(y + sc)

        def forward(x, classes, gains):
            y = F.max_pool2d(conv_bn(x, "conv1", "bn1", 2, 3, 1), 3, 2, 1)
            for lname, specs in arch["trunk"]:
                for b, spec in enumerate(specs):
                    y = block(y, f"{lname}.{b}", spec)
            if not arch["branch"]:
                return (F.linear(pool(y), w["fc.weight"], w["fc.bias"]))[:, classes]
            if variant == "hlfp-1b-late-sp":
                for j, spec in enumerate(arch["branch"]):
                    y = block(y, f"branch.{j}", spec, units=[0], n=1, dense_in=True)
                return F.linear(pool(y), w["branch_fc.weight"], w["branch_fc.bias"])[:, classes]
            gs = arch["gain_stage"]
            for j, spec in enumerate(arch["branch"]):
                if variant == "hlfp-nested" and j == 0:
                    supers = sorted(set(of_class[c] for c in classes))
                    s_out = block(y, "branch.0", spec, units=supers, n=max(of_class) + 1, dense_in=True)
                    cs = s_out.shape[1] // len(supers)
                    y = torch.cat([s_out[:, supers.index(of_class[c]) * cs:(supers.index(of_class[c]) + 1) * cs]
                                   for c in classes], 1)
                else:
                    y = block(y, f"branch.{j}", spec, units=classes, n=k, dense_in=(j == 0))
                if j == gs and gains is not None:
                    per = y.shape[1] // len(classes)
                    scale = torch.tensor([float(gains[c]) for c in classes], dtype=y.dtype).repeat_interleave(per)
                    y = y * scale[None, :, None, None]
            feats = pool(y).reshape(y.shape[0], len(classes), -1)
            fw, fb = w["branch_fc.weight"][classes], w["branch_fc.bias"][classes]
            return (feats * fw[None]).sum(-1) + fb[None]

        x = io["input"].to(dtype)
        gains = io["gains"].tolist()
        checks = [("logits_full", list(range(k)), None), ("logits_cutout", io["cutout"].tolist(), None),
                  ("logits_gain", list(range(k)), gains), ("logits_cutout_gain", io["cutout"].tolist(), gains)]
        if "cutout2" in io:
            checks += [("logits_cutout2", io["cutout2"].tolist(), None),
                       ("logits_cutout2_gain", io["cutout2"].tolist(), gains)]
        assert sorted(io) == sorted(["input", "cutout", "gains"] + [c[0] for c in checks] + (["cutout2"] if "cutout2" in io else []))
        msg = []
        with torch.no_grad():
            for key, classes, g in checks:
                d = (forward(x, classes, g).double() - io[key].double()).abs().max().item()
                worst = max(worst, d)
                msg.append(f"{key} {d:.1e}")
        print(f"verify {name} ({dtype}): " + ", ".join(msg))
    return worst


def spec_tensors(arch, variant, k, of_class):
    """Tensor names and shapes as src/model/spec.rs `NetSpec::tensors` lists them."""
    out = []

    def conv(conv_name, bn_name, shape):
        out.append((f"{conv_name}.weight", tuple(shape)))
        for t in ["weight", "bias", "running_mean", "running_var"]:
            out.append((f"{bn_name}.{t}", (shape[0],)))

    def block(prefix, spec, n):
        if spec[0] == "bottleneck":
            _, cin, mid, cout, stride = spec
            conv(f"{prefix}.conv1", f"{prefix}.bn1", [n * mid, cin, 1, 1])
            conv(f"{prefix}.conv2", f"{prefix}.bn2", [n * mid, mid, 3, 3])
            conv(f"{prefix}.conv3", f"{prefix}.bn3", [n * cout, mid, 1, 1])
        else:
            _, cin, cout, stride = spec
            conv(f"{prefix}.conv1", f"{prefix}.bn1", [n * cout, cin, 3, 3])
            conv(f"{prefix}.conv2", f"{prefix}.bn2", [n * cout, cout, 3, 3])
        if stride != 1 or cin != cout:
            conv(f"{prefix}.downsample.0", f"{prefix}.downsample.1", [n * cout, cin, 1, 1])

    conv("conv1", "bn1", [arch["stem"], 3, 7, 7])
    for lname, specs in arch["trunk"]:
        for b, spec in enumerate(specs):
            block(f"{lname}.{b}", spec, 1)
    for j, spec in enumerate(arch["branch"]):
        if variant == "hlfp-1b-late-sp":
            n = 1
        elif variant == "hlfp-nested" and j == 0:
            n = max(of_class) + 1
        else:
            n = arch["num_branches"]
        block(f"branch.{j}", spec, n)
    if not arch["branch"]:
        out += [("fc.weight", (arch["head_out"], arch["head_in"])), ("fc.bias", (arch["head_out"],))]
    elif variant == "hlfp-1b-late-sp":
        out += [("branch_fc.weight", (arch["head_out"], arch["head_in"])), ("branch_fc.bias", (arch["head_out"],))]
    else:
        out += [("branch_fc.weight", (k, arch["head_in"])), ("branch_fc.bias", (k,))]
    return out


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if "--check" in sys.argv[1:]:
        check_architecture()
        return 0
    if "--verify" in sys.argv[1:]:
        d64 = verify(torch.float64)
        d32 = verify(torch.float32)
        print(f"largest difference: stacked float64 {d64:.1e}, stacked float32 {d32:.1e}")
        return 0 if d64 < 1e-5 and d32 < 2e-5 else 1
    for name, variant, k, size, seed, cutout, gains, gain_stage, extra in FIXTURES:
        make(name, variant, 1 / 8, k, size, seed, cutout, gains, gain_stage, **extra)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
