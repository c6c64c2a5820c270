//! Exact cost accounting: parameters and MACs (two conventions) of any variant, class count and cutout.
//!
//! The counts come from walking the [`Architecture`] that the forward pass builds from, so the two
//! cannot disagree. Spatial sizes follow the real convolutions (stem 7x7/2 pad 3, max-pool 3/2
//! pad 1, bottleneck 3x3 pad 1 with the block's stride, 1x1 strided projection), so any input size
//! and width multiplier is handled.
//!
//! Two MAC conventions are reported:
//! - [`Cost::macs`]: multiply-accumulates of the convolutions and linear layers only (weights x
//!   output positions; biases are not MACs).
//! - [`Cost::macs_ptflops`]: what `ptflops` (its default PyTorch-module backend) reports and what
//!   the paper quotes as GMACs: conv MACs (plus `out_channels` per output position for convs that
//!   have a bias; ours have none), linear `in * out + out` (bias included), BatchNorm2d
//!   `2 * input elements` (affine), ReLU one per output element per *call* (torchvision's blocks
//!   call their one ReLU module 3 times in a bottleneck and twice in a basic block), and pooling
//!   one per *input* element. ptflops >= 0.7 by default also patches `F.relu`, `F.max_pool2d` and
//!   `F.adaptive_avg_pool2d`, which `nn.ReLU`, `nn.MaxPool2d` and `nn.AdaptiveAvgPool2d` call
//!   inside their forward, so every ReLU and pooling element is counted twice: once by the module
//!   hook and once by the functional patch. We reproduce that (it is what gives ResNet50 its
//!   4,130,408,458 "MACs" in ptflops 0.7.5, and the paper's 4.13 G). The residual addition
//!   (`out += identity`, an in-place operator ptflops does not patch), the gain multiplication and
//!   the softmax are not counted. `scripts/ptflops_crosscheck.py` checks all of this against
//!   ptflops itself.
//!
//! Branches are additive in both conventions: the dense first branch conv (cin -> k*mid), the
//! grouped later convs (groups = active branches) and the per-branch heads cost exactly the sum of
//! the per-branch costs, so a cutout with `n` branches costs trunk + n x branch.

use crate::model::config::{Architecture, BlockSpec, ModelConfig, SuperclassMap, Variant};
use crate::{Error, Result};
use serde::Serialize;
use std::ops::{Add, AddAssign, Mul};

/// Parameters and MACs of one part of a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PartCost {
    /// Trainable parameters (conv and linear weights, linear biases, BatchNorm weight and bias;
    /// BatchNorm running statistics are buffers and not counted, as in PyTorch).
    pub params: u64,
    /// Conv + linear multiply-accumulates.
    pub macs: u64,
    /// ptflops-style count (conv + linear + BatchNorm + ReLU + pooling; see the module docs).
    pub macs_ptflops: u64,
}

impl Add for PartCost {
    type Output = PartCost;
    fn add(self, o: PartCost) -> PartCost {
        PartCost {
            params: self.params + o.params,
            macs: self.macs + o.macs,
            macs_ptflops: self.macs_ptflops + o.macs_ptflops,
        }
    }
}

impl AddAssign for PartCost {
    fn add_assign(&mut self, o: PartCost) {
        *self = *self + o;
    }
}

impl Mul<u64> for PartCost {
    type Output = PartCost;
    fn mul(self, n: u64) -> PartCost {
        PartCost {
            params: self.params * n,
            macs: self.macs * n,
            macs_ptflops: self.macs_ptflops * n,
        }
    }
}

/// Where the cost of a model goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CostBreakdown {
    /// Stem and shared trunk layers (for ResNets: everything before the global average pool).
    pub trunk: PartCost,
    /// HLFP-nested only: the per-superclass first branch blocks that run.
    pub superclass_blocks: PartCost,
    /// The per-branch block stacks that run (for nested: the per-class blocks after the
    /// superclass block).
    pub branches: PartCost,
    /// Global average pools and linear heads (one Linear(c, 1) per running branch for HLFP;
    /// Linear(c, k) for ResNets and HLFP-1b-late-SP).
    pub heads: PartCost,
}

/// The cost of a model, or of a cutout of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// The variant costed.
    pub variant: Variant,
    /// Classes of the full model (k).
    pub num_classes: usize,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Channel width multiplier.
    pub width: f64,
    /// Total parameters of what runs.
    pub params: u64,
    /// Total conv + linear MACs for one image.
    pub macs: u64,
    /// Total ptflops-style MACs for one image (the paper's convention).
    pub macs_ptflops: u64,
    /// Trunk / superclass blocks / branches / heads.
    pub breakdown: CostBreakdown,
    /// One branch's block stack plus its head (for nested: the per-class part only, without the
    /// superclass block; for HLFP-1b-late-SP: its single branch with the k-way head; zero for
    /// ResNets).
    pub per_branch: PartCost,
    /// HLFP-nested: one superclass block; zero otherwise.
    pub per_superclass_block: PartCost,
    /// Classes whose logits are read (the cutout size, or k).
    pub active_classes: usize,
    /// Parallel branches that run.
    pub active_branches: usize,
    /// Superclass blocks that run (HLFP-nested only, else 0).
    pub active_superclass_blocks: usize,
    /// True when the cutout really shrinks the network. False for the full model, and for
    /// ResNets and HLFP-1b-late-SP, where a cutout only chooses which logits are read: the whole
    /// network still runs, so its cost is the full model's.
    pub cutout_changes_network: bool,
}

/// How often ptflops counts each ReLU and pooling element: its module hook and its patch of the
/// functional op that the module's forward calls both fire.
const PTFLOPS_ELEMENTWISE_REPEAT: u64 = 2;

/// Running totals while walking layers; `side` is the square feature-map side.
#[derive(Default)]
struct Acc {
    cost: PartCost,
}

impl Acc {
    /// A bias-free conv (all of ours), counted per branch: weights `k*k*cin*cout`.
    fn conv(&mut self, cin: usize, cout: usize, kernel: usize, out_side: usize) {
        let w = (kernel * kernel * cin * cout) as u64;
        let pos = (out_side * out_side) as u64;
        self.cost.params += w;
        self.cost.macs += w * pos;
        self.cost.macs_ptflops += w * pos;
    }
    /// BatchNorm2d (affine): weight + bias; ptflops counts 2 per input element.
    fn bn(&mut self, c: usize, side: usize) {
        self.cost.params += 2 * c as u64;
        self.cost.macs_ptflops += 2 * (c * side * side) as u64;
    }
    /// One ReLU call: one per output element, counted twice (module hook + `F.relu` patch).
    fn relu(&mut self, c: usize, side: usize) {
        self.cost.macs_ptflops += PTFLOPS_ELEMENTWISE_REPEAT * (c * side * side) as u64;
    }
    /// Max- or average-pool: one per input element, counted twice (module hook + functional patch).
    fn pool(&mut self, c: usize, in_side: usize) {
        self.cost.macs_ptflops += PTFLOPS_ELEMENTWISE_REPEAT * (c * in_side * in_side) as u64;
    }
    /// Linear with bias.
    fn linear(&mut self, fin: usize, fout: usize) {
        let w = (fin * fout) as u64;
        self.cost.params += w + fout as u64;
        self.cost.macs += w;
        self.cost.macs_ptflops += w + fout as u64;
    }
}

/// Output side of a conv or pool.
fn out_side(side: usize, kernel: usize, stride: usize, pad: usize) -> Result<usize> {
    if side + 2 * pad < kernel || stride == 0 {
        return Err(Error::Config(format!(
            "feature map of side {side} is too small for a {kernel}x{kernel} window (pad {pad}); use a larger input size"
        )));
    }
    Ok((side + 2 * pad - kernel) / stride + 1)
}

/// Cost of one block for one branch, reading a map of side `side`; returns the cost and the
/// output side. Mirrors torchvision: ReLU after bn1, after bn2, and after the residual add.
fn block_cost(b: &BlockSpec, side: usize) -> Result<(PartCost, usize)> {
    let mut a = Acc::default();
    let out = out_side(side, 3, b.stride(), 1)?;
    match *b {
        BlockSpec::Bottleneck { cin, mid, cout, .. } => {
            a.conv(cin, mid, 1, side);
            a.bn(mid, side);
            a.relu(mid, side);
            a.conv(mid, mid, 3, out);
            a.bn(mid, out);
            a.relu(mid, out);
            a.conv(mid, cout, 1, out);
            a.bn(cout, out);
        }
        BlockSpec::Basic { cin, cout, .. } => {
            a.conv(cin, cout, 3, out);
            a.bn(cout, out);
            a.relu(cout, out);
            a.conv(cout, cout, 3, out);
            a.bn(cout, out);
        }
    }
    if b.has_downsample() {
        // 1x1 conv with the block's stride: same output side as the 3x3 pad-1 conv.
        a.conv(b.cin(), b.cout(), 1, out);
        a.bn(b.cout(), out);
    }
    a.relu(b.cout(), out);
    Ok((a.cost, out))
}

/// Cost of a run of blocks for one branch; returns the cost and the output side.
fn blocks_cost(blocks: &[BlockSpec], mut side: usize) -> Result<(PartCost, usize)> {
    let mut total = PartCost::default();
    for b in blocks {
        let (c, s) = block_cost(b, side)?;
        total += c;
        side = s;
    }
    Ok((total, side))
}

/// Global average pool over `c` channels of side `side`, then Linear(c, out).
fn head_cost(c: usize, side: usize, out: usize) -> PartCost {
    let mut a = Acc::default();
    a.pool(c, side);
    a.linear(c, out);
    a.cost
}

/// Checks a cutout selection against k classes: non-empty, in range, no repeats.
fn check_active(active: &[usize], k: usize) -> Result<()> {
    if active.is_empty() {
        return Err(Error::Config("a cutout needs at least one class".into()));
    }
    let mut seen = vec![false; k];
    for &i in active {
        let slot = seen.get_mut(i).ok_or_else(|| {
            Error::Config(format!(
                "cutout class index {i} is out of range: the model has {k} classes (indices 0..={})",
                k - 1
            ))
        })?;
        if *slot {
            return Err(Error::Config(format!(
                "cutout class index {i} is selected twice"
            )));
        }
        *slot = true;
    }
    Ok(())
}

/// Parameters and MACs of `cfg`, or of the cutout `active` (class indices; `None` = full model).
///
/// For HLFP-nested a cutout also runs the superclass block of every selected class (each once).
/// For ResNets and HLFP-1b-late-SP a cutout does not change the network, only which logits are
/// read, so the cost is the full model's and [`Cost::cutout_changes_network`] is false.
pub fn cost(cfg: &ModelConfig, active: Option<&[usize]>) -> Result<Cost> {
    let arch: Architecture = cfg.architecture()?;
    let k = cfg.num_classes();
    if let Some(a) = active {
        check_active(a, k)?;
    }
    let active_classes = active.map_or(k, |a| a.len());

    // Stem: conv1 7x7/2 pad 3, bn1, relu, maxpool 3/2 pad 1.
    let mut stem = Acc::default();
    let s1 = out_side(cfg.input_size, 7, 2, 3)?;
    stem.conv(3, arch.stem_channels, 7, s1);
    stem.bn(arch.stem_channels, s1);
    stem.relu(arch.stem_channels, s1);
    stem.pool(arch.stem_channels, s1);
    let mut side = out_side(s1, 3, 2, 1)?;
    let mut trunk = stem.cost;
    for layer in &arch.trunk {
        let (c, s) = blocks_cost(&layer.blocks, side)?;
        trunk += c;
        side = s;
    }

    let mut breakdown = CostBreakdown {
        trunk,
        ..CostBreakdown::default()
    };
    let mut per_branch = PartCost::default();
    let mut per_superclass_block = PartCost::default();
    let mut active_branches = 0;
    let mut active_superclass_blocks = 0;
    let mut cutout_changes_network = false;

    if arch.branch.is_empty() {
        // ResNets: one head over the trunk output.
        breakdown.heads = head_cost(arch.head_in, side, arch.head_out);
    } else if cfg.variant == Variant::Hlfp1bLateSp {
        let (stack, s) = blocks_cost(&arch.branch, side)?;
        let head = head_cost(arch.head_in, s, arch.head_out);
        per_branch = stack + head;
        breakdown.branches = stack;
        breakdown.heads = head;
        active_branches = 1;
    } else if cfg.variant == Variant::HlfpNested {
        let map: &SuperclassMap = cfg
            .superclasses
            .as_ref()
            .ok_or_else(|| Error::Config("hlfp-nested needs a superclass map".into()))?;
        let (sup, s_sup) = blocks_cost(&arch.branch[..1], side)?;
        let (stack, s) = blocks_cost(&arch.branch[1..], s_sup)?;
        let head = head_cost(arch.head_in, s, arch.head_out);
        per_superclass_block = sup;
        per_branch = stack + head;
        active_branches = active_classes;
        active_superclass_blocks = match active {
            None => map.len(),
            Some(a) => {
                let mut used = vec![false; map.len()];
                for &c in a {
                    used[map.of_class[c]] = true;
                }
                used.iter().filter(|&&u| u).count()
            }
        };
        cutout_changes_network = active_classes < k;
        breakdown.superclass_blocks = sup * active_superclass_blocks as u64;
        breakdown.branches = stack * active_branches as u64;
        breakdown.heads = head * active_branches as u64;
    } else {
        let (stack, s) = blocks_cost(&arch.branch, side)?;
        let head = head_cost(arch.head_in, s, arch.head_out);
        per_branch = stack + head;
        active_branches = if active.is_some() {
            active_classes
        } else {
            arch.num_branches
        };
        cutout_changes_network = active_branches < arch.num_branches;
        breakdown.branches = stack * active_branches as u64;
        breakdown.heads = head * active_branches as u64;
    }

    let total =
        breakdown.trunk + breakdown.superclass_blocks + breakdown.branches + breakdown.heads;
    Ok(Cost {
        variant: cfg.variant,
        num_classes: k,
        input_size: cfg.input_size,
        width: cfg.width,
        params: total.params,
        macs: total.macs,
        macs_ptflops: total.macs_ptflops,
        breakdown,
        per_branch,
        per_superclass_block,
        active_classes,
        active_branches,
        active_superclass_blocks,
        cutout_changes_network,
    })
}

/// A superclass map for `num_classes` classes and `num_superclasses` superclasses in which the
/// first `split` classes use exactly `lower_superclasses` superclasses (the first ones) and the
/// other classes use exactly `upper_superclasses` (the last ones); the two sets overlap when
/// `lower + upper > num_superclasses`. Classes are spread over their superclasses contiguously.
/// Used to build maps with the superclass counts of the paper's nested cutouts (100 classes,
/// 68 superclasses: lower 20 use 17, upper 80 use 52); costs depend only on such counts.
pub fn split_superclass_map(
    num_classes: usize,
    num_superclasses: usize,
    split: usize,
    lower_superclasses: usize,
    upper_superclasses: usize,
) -> Result<SuperclassMap> {
    let upper_classes = num_classes.saturating_sub(split);
    let ok = split > 0
        && upper_classes > 0
        && (1..=split).contains(&lower_superclasses)
        && (1..=upper_classes).contains(&upper_superclasses)
        && lower_superclasses <= num_superclasses
        && upper_superclasses <= num_superclasses
        && lower_superclasses + upper_superclasses >= num_superclasses;
    if !ok {
        return Err(Error::Config(format!(
            "cannot split {num_classes} classes at {split} into {lower_superclasses} + {upper_superclasses} \
             superclasses covering all {num_superclasses}"
        )));
    }
    let upper_first = num_superclasses - upper_superclasses;
    let of_class = (0..num_classes)
        .map(|c| {
            if c < split {
                c * lower_superclasses / split
            } else {
                upper_first + (c - split) * upper_superclasses / upper_classes
            }
        })
        .collect();
    Ok(SuperclassMap {
        names: (0..num_superclasses).map(|i| format!("super{i}")).collect(),
        of_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_output_sides_follow_the_real_convs() {
        // 224 -> 112 (7x7/2 pad 3) -> 56 (max-pool 3/2 pad 1); odd sizes round like PyTorch.
        assert_eq!(out_side(224, 7, 2, 3).unwrap(), 112);
        assert_eq!(out_side(112, 3, 2, 1).unwrap(), 56);
        assert_eq!(out_side(7, 3, 2, 1).unwrap(), 4);
        assert_eq!(out_side(225, 7, 2, 3).unwrap(), 113);
        assert!(out_side(1, 7, 1, 0).is_err());
    }

    #[test]
    fn bottleneck_block_counts_by_hand() {
        // B(512,128,512,s2) at 28x28: the nested superclass block of PAPER.md.
        let b = BlockSpec::Bottleneck {
            cin: 512,
            mid: 128,
            cout: 512,
            stride: 2,
        };
        let (c, side) = block_cost(&b, 28).unwrap();
        assert_eq!(side, 14);
        assert_eq!(c.params, 543_232);
        let macs = 28 * 28 * 512 * 128 + 14 * 14 * (9 * 128 * 128 + 128 * 512 + 512 * 512);
        assert_eq!(c.macs, macs as u64);
        // bn1 + relu at 28x28 over 128 ch; bn2 + relu at 14x14 over 128; bn3, bn_ds, final relu
        // over 512 ch at 14x14; BatchNorm counts 2 per element.
        // ReLUs count twice (see the module docs).
        let extra = 4 * 128 * 28 * 28 + 4 * 128 * 14 * 14 + (2 + 2 + 2) * 512 * 14 * 14;
        assert_eq!(c.macs_ptflops, (macs + extra) as u64);
    }

    #[test]
    fn bad_active_indices_are_errors() {
        let cfg = ModelConfig::new(Variant::HlfpSmall, 10);
        let err = cost(&cfg, Some(&[0, 10])).unwrap_err().to_string();
        assert!(
            err.contains("out of range") && err.contains("10 classes"),
            "{err}"
        );
        let err = cost(&cfg, Some(&[3, 3])).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(cost(&cfg, Some(&[])).is_err());
        // Also for variants where a cutout does not change the network.
        assert!(cost(&ModelConfig::new(Variant::Resnet50, 5), Some(&[5])).is_err());
    }

    #[test]
    fn cutout_cost_is_trunk_plus_n_branches() {
        let cfg = ModelConfig::new(Variant::HlfpSmall, 10);
        let full = cost(&cfg, None).unwrap();
        let cut = cost(&cfg, Some(&[1, 4, 7])).unwrap();
        assert!(cut.cutout_changes_network && !full.cutout_changes_network);
        assert_eq!(cut.active_branches, 3);
        assert_eq!(
            cut.params,
            full.breakdown.trunk.params + 3 * full.per_branch.params
        );
        assert_eq!(
            cut.macs_ptflops,
            full.breakdown.trunk.macs_ptflops + 3 * full.per_branch.macs_ptflops
        );
        assert_eq!(
            full.params,
            full.breakdown.trunk.params + 10 * full.per_branch.params
        );
    }

    #[test]
    fn resnet_cutout_keeps_the_whole_network() {
        let cfg = ModelConfig::new(Variant::Resnet50, 10);
        let full = cost(&cfg, None).unwrap();
        let cut = cost(&cfg, Some(&[2])).unwrap();
        assert_eq!(
            (cut.params, cut.macs, cut.macs_ptflops),
            (full.params, full.macs, full.macs_ptflops)
        );
        assert!(!cut.cutout_changes_network);
        assert_eq!((cut.active_classes, cut.active_branches), (1, 0));
    }

    #[test]
    fn smaller_inputs_and_widths_cost_less() {
        let mut cfg = ModelConfig::new(Variant::HlfpSmall, 3);
        let base = cost(&cfg, None).unwrap();
        cfg.input_size = 64;
        let small_in = cost(&cfg, None).unwrap();
        assert_eq!(small_in.params, base.params);
        assert!(small_in.macs < base.macs / 10);
        cfg.width = 0.125;
        let narrow = cost(&cfg, None).unwrap();
        assert!(narrow.params < base.params / 30);
        // The smallest allowed input still costs: the maps shrink to 1x1, as in PyTorch.
        cfg.input_size = 32;
        assert!(cost(&cfg, None).is_ok());
    }

    #[test]
    fn split_map_has_the_requested_counts() {
        let m = split_superclass_map(100, 68, 20, 17, 52).unwrap();
        assert_eq!(m.len(), 68);
        let distinct = |r: std::ops::Range<usize>| {
            let mut v: Vec<_> = r.map(|c| m.of_class[c]).collect();
            v.sort();
            v.dedup();
            v.len()
        };
        assert_eq!(distinct(0..20), 17);
        assert_eq!(distinct(20..100), 52);
        assert_eq!(distinct(0..100), 68);
        assert!(split_superclass_map(100, 68, 20, 10, 52).is_err());
        assert!(split_superclass_map(100, 68, 20, 21, 52).is_err());
    }
}
