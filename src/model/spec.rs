//! The network as a list of named conv/BN/linear layers, derived from an [`Architecture`].
//!
//! Both forward paths (autograd with BatchNorm, folded inference) and the weights I/O build from
//! this one description, so tensor names and shapes cannot drift apart. Branch tensors are
//! stacked over branches along dim 0 (the grouped-conv layout); see docs/WEIGHTS.md.

use super::{Architecture, BlockSpec, ModelConfig, Variant};
use crate::Result;

/// What the rows of a stacked branch tensor are indexed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitSpace {
    /// One group of rows per class.
    Class,
    /// One group of rows per superclass (HLFP-nested, branch block 0).
    Superclass,
    /// A single branch shared by every class (HLFP-1b-late-SP): never sliced.
    Single,
}

/// How a stacked tensor splits into branches: `n` equal row groups along dim 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// Number of row groups in the full tensor.
    pub n: usize,
    /// What a row group stands for.
    pub space: UnitSpace,
}

/// One convolution followed by BatchNorm.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvDesc {
    /// Name prefix of the conv weight (`{conv}.weight`), e.g. `layer1.0.conv1`.
    pub conv: String,
    /// Name prefix of the BatchNorm tensors (`{bn}.weight`, `.bias`, `.running_mean`, `.running_var`).
    pub bn: String,
    /// Full (all branches) weight shape `[n*cout, cin_per_group, kh, kw]`.
    pub shape: [usize; 4],
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// True when the conv is grouped over branches (groups = active branches); false when it is
    /// one dense conv over a shared input (trunk convs and branch block 0's conv1/downsample).
    pub grouped: bool,
    /// Branch row groups; `None` for trunk convs.
    pub units: Option<Units>,
}

/// A residual block: convs with ReLU between them, an optional projection shortcut.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockDesc {
    /// Main path, in order (3 for a bottleneck, 2 for a basic block).
    pub convs: Vec<ConvDesc>,
    /// Projection shortcut (`downsample.0` + `downsample.1`), if any.
    pub downsample: Option<ConvDesc>,
}

/// The classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadDesc {
    /// Name prefix: `fc` (ResNets) or `branch_fc` (HLFP).
    pub name: String,
    /// Weight shape `[rows, in_features]`; bias is `[rows]`.
    pub shape: [usize; 2],
    /// True for HLFP: row `i` is class `i`'s Linear(head_in, 1), applied to branch `i` only.
    /// False: an ordinary Linear over the whole pooled feature vector.
    pub per_branch: bool,
    /// Row groups (classes) when per-branch.
    pub units: Option<Units>,
}

/// The whole network as named layers.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// `conv1` + `bn1`.
    pub stem: ConvDesc,
    /// Shared trunk blocks in order (`layer1.0`, `layer1.1`, ...).
    pub trunk: Vec<BlockDesc>,
    /// Branch blocks (`branch.0`, ...), stacked over their units.
    pub branch: Vec<BlockDesc>,
    /// The classifier.
    pub head: HeadDesc,
}

/// One tensor of a weights file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Full name, e.g. `branch.1.conv2.weight`.
    pub name: String,
    /// Full shape.
    pub shape: Vec<usize>,
    /// Row groups for stacked branch tensors.
    pub units: Option<Units>,
}

impl NetSpec {
    /// Expand a config into its named layers.
    pub fn new(cfg: &ModelConfig) -> Result<Self> {
        let arch = cfg.architecture()?;
        Ok(Self::from_arch(cfg, &arch))
    }

    /// Expand an already-checked architecture.
    pub fn from_arch(cfg: &ModelConfig, arch: &Architecture) -> Self {
        let stem = ConvDesc {
            conv: "conv1".into(),
            bn: "bn1".into(),
            shape: [arch.stem_channels, 3, 7, 7],
            stride: 2,
            pad: 3,
            grouped: false,
            units: None,
        };
        let trunk = arch
            .trunk
            .iter()
            .flat_map(|layer| {
                layer.blocks.iter().enumerate().map(move |(b, spec)| {
                    block_desc(&format!("{}.{b}", layer.name), spec, None, false)
                })
            })
            .collect();
        let branch = (0..arch.branch.len())
            .map(|j| {
                let units = block_units(cfg, arch, j);
                block_desc(&format!("branch.{j}"), &arch.branch[j], Some(units), j > 0)
            })
            .collect();
        let head = if arch.branch.is_empty() {
            HeadDesc {
                name: "fc".into(),
                shape: [arch.head_out, arch.head_in],
                per_branch: false,
                units: None,
            }
        } else if cfg.variant == Variant::Hlfp1bLateSp {
            HeadDesc {
                name: "branch_fc".into(),
                shape: [arch.head_out, arch.head_in],
                per_branch: false,
                units: None,
            }
        } else {
            let k = cfg.num_classes();
            HeadDesc {
                name: "branch_fc".into(),
                shape: [k, arch.head_in],
                per_branch: true,
                units: Some(Units {
                    n: k,
                    space: UnitSpace::Class,
                }),
            }
        };
        NetSpec {
            stem,
            trunk,
            branch,
            head,
        }
    }

    /// Every tensor of the network, with its name and full shape, in a stable order.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        let mut conv = |c: &ConvDesc| {
            out.push(TensorSpec {
                name: format!("{}.weight", c.conv),
                shape: c.shape.to_vec(),
                units: c.units,
            });
            for t in ["weight", "bias", "running_mean", "running_var"] {
                out.push(TensorSpec {
                    name: format!("{}.{t}", c.bn),
                    shape: vec![c.shape[0]],
                    units: c.units,
                });
            }
        };
        conv(&self.stem);
        for b in self.trunk.iter().chain(&self.branch) {
            b.convs.iter().for_each(&mut conv);
            if let Some(d) = &b.downsample {
                conv(d);
            }
        }
        let h = &self.head;
        out.push(TensorSpec {
            name: format!("{}.weight", h.name),
            shape: h.shape.to_vec(),
            units: h.units,
        });
        out.push(TensorSpec {
            name: format!("{}.bias", h.name),
            shape: vec![h.shape[0]],
            units: h.units,
        });
        out
    }
}

/// Row groups of branch block `j`.
fn block_units(cfg: &ModelConfig, arch: &Architecture, j: usize) -> Units {
    match (cfg.variant, &cfg.superclasses) {
        (Variant::Hlfp1bLateSp, _) => Units {
            n: 1,
            space: UnitSpace::Single,
        },
        (Variant::HlfpNested, Some(map)) if j == 0 => Units {
            n: map.len(),
            space: UnitSpace::Superclass,
        },
        _ => Units {
            n: arch.num_branches,
            space: UnitSpace::Class,
        },
    }
}

/// Describe one block. `units` = None for trunk blocks. `grouped_input`: whether the block's
/// input is already split per branch (every branch block but the first).
fn block_desc(
    prefix: &str,
    spec: &BlockSpec,
    units: Option<Units>,
    grouped_input: bool,
) -> BlockDesc {
    let n = units.map_or(1, |u| u.n);
    let branch = units.is_some();
    let conv =
        |name: &str, bn: &str, cout: usize, cin: usize, k: usize, stride: usize, grouped: bool| {
            ConvDesc {
                conv: format!("{prefix}.{name}"),
                bn: format!("{prefix}.{bn}"),
                shape: [n * cout, cin, k, k],
                stride,
                pad: k / 2,
                grouped: branch && grouped,
                units,
            }
        };
    let (convs, cin, cout, stride) = match *spec {
        BlockSpec::Bottleneck {
            cin,
            mid,
            cout,
            stride,
        } => (
            vec![
                conv("conv1", "bn1", mid, cin, 1, 1, grouped_input),
                conv("conv2", "bn2", mid, mid, 3, stride, true),
                conv("conv3", "bn3", cout, mid, 1, 1, true),
            ],
            cin,
            cout,
            stride,
        ),
        BlockSpec::Basic { cin, cout, stride } => (
            vec![
                conv("conv1", "bn1", cout, cin, 3, stride, grouped_input),
                conv("conv2", "bn2", cout, cout, 3, 1, true),
            ],
            cin,
            cout,
            stride,
        ),
    };
    let downsample = spec.has_downsample().then(|| {
        conv(
            "downsample.0",
            "downsample.1",
            cout,
            cin,
            1,
            stride,
            grouped_input,
        )
    });
    BlockDesc { convs, downsample }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SuperclassMap;

    fn count(cfg: &ModelConfig) -> usize {
        NetSpec::new(cfg)
            .unwrap()
            .tensors()
            .iter()
            .filter(|t| !t.name.contains("running_"))
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    #[test]
    fn tensor_shapes_reproduce_paper_parameter_counts() {
        // PAPER.md's exact counts: the layout is the paper's architecture.
        assert_eq!(count(&ModelConfig::new(Variant::Resnet50, 10)), 23_528_522);
        assert_eq!(count(&ModelConfig::new(Variant::Resnet18, 10)), 11_181_642);
        assert_eq!(count(&ModelConfig::new(Variant::HlfpSmall, 10)), 9_611_338);
        assert_eq!(count(&ModelConfig::new(Variant::HlfpBig, 10)), 27_464_778);
        assert_eq!(
            count(&ModelConfig::new(Variant::HlfpLateSp, 10)),
            19_986_506
        );
        assert_eq!(
            count(&ModelConfig::new(Variant::Hlfp1bLateSp, 10)),
            9_688_778
        );
        let mut nested = ModelConfig::new(Variant::HlfpNested, 100);
        nested.superclasses = Some(SuperclassMap::contiguous(100, 68).unwrap());
        assert_eq!(count(&nested), 65_725_604);
    }

    #[test]
    fn branch_layout_is_dense_then_grouped() {
        let spec = NetSpec::new(&ModelConfig::new(Variant::HlfpSmall, 4)).unwrap();
        let b0 = &spec.branch[0];
        assert_eq!(b0.convs[0].shape, [4 * 128, 512, 1, 1]);
        assert!(!b0.convs[0].grouped && b0.convs[1].grouped);
        assert!(!b0.downsample.as_ref().unwrap().grouped);
        let b1 = &spec.branch[1];
        assert_eq!(b1.convs[0].shape, [4 * 64, 512, 1, 1]);
        assert!(b1.convs[0].grouped && b1.downsample.as_ref().unwrap().grouped);
        assert_eq!(spec.head.shape, [4, 128]);
    }
}
