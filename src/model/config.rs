//! Model configuration and the architecture spec every other model part reads.
//!
//! A [`ModelConfig`] (variant, classes, input size, width multiplier, superclasses) expands into an
//! [`Architecture`]: the shared trunk as torchvision-named layers of blocks, and the per-branch
//! stack. The forward pass, the weights I/O and the cost accounting all walk this one spec, so they
//! cannot disagree about the shape of the network.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The model families of PAPER.md's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Trunk to layer2 (512 ch @ 28x28); per-branch B(512,128,512)->B(512,64,256)->B(256,32,128).
    HlfpSmall,
    /// Trunk to layer2; per-branch B(512,256,1024)->B(1024,128,512)->B(512,64,256).
    HlfpBig,
    /// Trunk to layer3 (1024 ch @ 14x14); per-branch B(1024,128,512)->B(512,64,256)->B(256,32,128).
    HlfpLateSp,
    /// As late-SP but ONE branch with a Linear(128, k) head.
    #[serde(rename = "hlfp-1b-late-sp", alias = "hlfp1b-late-sp")]
    Hlfp1bLateSp,
    /// HLFP-small trunk; first branch block per superclass, the rest per class.
    HlfpNested,
    /// Our reconstruction (not pinned by the paper): late-SP trunk with HLFP-big's branch stack
    /// widened at the split, B(1024,256,1024)->B(1024,128,512)->B(512,64,256), Linear(256,1).
    HlfpLateBigSp,
    /// torchvision ResNet18 (basic blocks).
    Resnet18,
    /// torchvision ResNet50 (v1.5 bottlenecks).
    Resnet50,
    /// torchvision ResNet152.
    Resnet152,
}

impl Variant {
    /// Every variant, in PAPER.md's order.
    pub const ALL: [Variant; 9] = [
        Variant::HlfpSmall,
        Variant::HlfpBig,
        Variant::HlfpLateSp,
        Variant::Hlfp1bLateSp,
        Variant::HlfpNested,
        Variant::HlfpLateBigSp,
        Variant::Resnet18,
        Variant::Resnet50,
        Variant::Resnet152,
    ];

    /// The kebab-case name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            Variant::HlfpSmall => "hlfp-small",
            Variant::HlfpBig => "hlfp-big",
            Variant::HlfpLateSp => "hlfp-late-sp",
            Variant::Hlfp1bLateSp => "hlfp-1b-late-sp",
            Variant::HlfpNested => "hlfp-nested",
            Variant::HlfpLateBigSp => "hlfp-late-big-sp",
            Variant::Resnet18 => "resnet18",
            Variant::Resnet50 => "resnet50",
            Variant::Resnet152 => "resnet152",
        }
    }

    /// True for the variants with one parallel branch per class (cutouts and gains apply).
    pub fn is_branched(self) -> bool {
        matches!(
            self,
            Variant::HlfpSmall
                | Variant::HlfpBig
                | Variant::HlfpLateSp
                | Variant::HlfpNested
                | Variant::HlfpLateBigSp
        )
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == norm)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                Error::Config(format!(
                    "unknown variant {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One residual block. Bottleneck: 1x1 cin->mid, 3x3 mid->mid (stride), 1x1 mid->cout.
/// Basic (ResNet18): 3x3 cin->cout (stride), 3x3 cout->cout. A projection shortcut
/// (1x1 conv + BN, named `downsample`) exists when stride != 1 or cin != cout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockSpec {
    /// ResNet v1.5 bottleneck, stride on the 3x3 conv.
    Bottleneck {
        cin: usize,
        mid: usize,
        cout: usize,
        stride: usize,
    },
    /// ResNet basic block.
    Basic {
        cin: usize,
        cout: usize,
        stride: usize,
    },
}

impl BlockSpec {
    /// Input channels.
    pub fn cin(&self) -> usize {
        match *self {
            BlockSpec::Bottleneck { cin, .. } | BlockSpec::Basic { cin, .. } => cin,
        }
    }
    /// Output channels.
    pub fn cout(&self) -> usize {
        match *self {
            BlockSpec::Bottleneck { cout, .. } | BlockSpec::Basic { cout, .. } => cout,
        }
    }
    /// Spatial stride.
    pub fn stride(&self) -> usize {
        match *self {
            BlockSpec::Bottleneck { stride, .. } | BlockSpec::Basic { stride, .. } => stride,
        }
    }
    /// Whether the block has a projection shortcut (`downsample`).
    pub fn has_downsample(&self) -> bool {
        self.stride() != 1 || self.cin() != self.cout()
    }
}

/// A torchvision layer (`layer1`, ...): a named run of blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// torchvision name, e.g. `layer2`; blocks are `layer2.0`, `layer2.1`, ...
    pub name: String,
    /// The blocks in order.
    pub blocks: Vec<BlockSpec>,
}

/// The expanded architecture of a [`ModelConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Channels of the stem conv (`conv1`, 7x7 stride 2, then `bn1`, ReLU, 3x3/2 max-pool).
    pub stem_channels: usize,
    /// Shared trunk layers after the stem (torchvision names).
    pub trunk: Vec<LayerSpec>,
    /// Per-branch block stack (empty for ResNets). For nested, block 0 is per superclass.
    pub branch: Vec<BlockSpec>,
    /// Number of parallel branches that exist in the full model (k, 1 for 1b-late-SP, 0 for ResNets).
    pub num_branches: usize,
    /// Output features of each branch head (1 for HLFP, k for 1b-late-SP).
    pub head_out: usize,
    /// Input features of the head: branch output channels, or trunk output for ResNets.
    pub head_in: usize,
    /// Branch block index whose OUTPUT the gain multiplies (0-based), when branched.
    pub gain_stage: usize,
}

/// Superclass structure for HLFP-nested: each class reads exactly one superclass block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuperclassMap {
    /// Superclass names, index = superclass id.
    pub names: Vec<String>,
    /// For each class (by index), its superclass id.
    pub of_class: Vec<usize>,
}

impl SuperclassMap {
    /// Parse a map from text: one `class_name,superclass_name` per line (blank lines and `#`
    /// comments ignored). Every class of `class_names` must appear exactly once.
    pub fn parse(text: &str, class_names: &[String]) -> Result<Self> {
        let mut by_class: BTreeMap<&str, &str> = BTreeMap::new();
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (class, sup) = line.split_once(',').ok_or_else(|| {
                Error::Config(format!(
                    "superclass map line {}: expected `class,superclass`, got {line:?}",
                    lineno + 1
                ))
            })?;
            let (class, sup) = (class.trim(), sup.trim());
            if class.is_empty() || sup.is_empty() {
                return Err(Error::Config(format!(
                    "superclass map line {}: empty class or superclass name",
                    lineno + 1
                )));
            }
            if by_class.insert(class, sup).is_some() {
                return Err(Error::Config(format!(
                    "superclass map line {}: class {class:?} listed twice",
                    lineno + 1
                )));
            }
        }
        let mut names: Vec<String> = Vec::new();
        let mut of_class = Vec::with_capacity(class_names.len());
        for class in class_names {
            let sup = by_class.remove(class.as_str()).ok_or_else(|| {
                Error::Config(format!("superclass map has no entry for class {class:?}"))
            })?;
            let id = match names.iter().position(|n| n == sup) {
                Some(id) => id,
                None => {
                    names.push(sup.to_string());
                    names.len() - 1
                }
            };
            of_class.push(id);
        }
        if let Some(extra) = by_class.keys().next() {
            return Err(Error::Config(format!(
                "superclass map names class {extra:?}, which is not one of the model's classes"
            )));
        }
        Ok(SuperclassMap { names, of_class })
    }

    /// A map that puts class `i` into superclass `i * num_superclasses / num_classes`
    /// (contiguous groups); used for cost reports and tests when no file is given.
    pub fn contiguous(num_classes: usize, num_superclasses: usize) -> Result<Self> {
        if num_superclasses == 0 || num_superclasses > num_classes {
            return Err(Error::Config(format!(
                "need 1..={num_classes} superclasses, got {num_superclasses}"
            )));
        }
        Ok(SuperclassMap {
            names: (0..num_superclasses).map(|i| format!("super{i}")).collect(),
            of_class: (0..num_classes)
                .map(|c| c * num_superclasses / num_classes)
                .collect(),
        })
    }

    /// Number of superclasses.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no superclasses.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Largest input side [`ModelConfig::architecture`] accepts, in pixels. The stem's activation
/// at width 4 is then 256 channels x 512 x 512 floats (268 MB); a side read from a file beyond
/// this is refused before anything is allocated (100000 px would ask for 120 GB).
pub const MAX_INPUT_SIZE: usize = 1024;

/// Most classes a model may have (ImageNet-1k). Each class of a branched variant is a branch.
pub const MAX_CLASSES: usize = 1000;

/// Longest class name, in bytes.
pub const MAX_CLASS_NAME_BYTES: usize = 256;

/// Everything needed to build a model: variant, classes, input size, width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which family.
    pub variant: Variant,
    /// Class names; their count is k.
    pub class_names: Vec<String>,
    /// Square input side in pixels (224 for the paper).
    pub input_size: usize,
    /// Channel width multiplier (1.0 = the paper's models). Every channel count c becomes
    /// `max(1, round(c * width))`.
    pub width: f64,
    /// Superclasses, required for HLFP-nested and ignored otherwise.
    #[serde(default)]
    pub superclasses: Option<SuperclassMap>,
    /// Branch block whose output the gain multiplies (0-based). `None` = the paper's
    /// "conv block 5": the second branch block (index 1).
    #[serde(default)]
    pub gain_stage: Option<usize>,
}

impl ModelConfig {
    /// A config with classes named `class0..class{k-1}`, 224x224 input and width 1.
    pub fn new(variant: Variant, num_classes: usize) -> Self {
        ModelConfig {
            variant,
            class_names: (0..num_classes).map(|i| format!("class{i}")).collect(),
            input_size: 224,
            width: 1.0,
            superclasses: None,
            gain_stage: None,
        }
    }

    /// The config file that sits next to a weights file: `model.safetensors` -> `model.json`.
    pub fn sidecar_path(weights: &std::path::Path) -> std::path::PathBuf {
        weights.with_extension("json")
    }

    /// Number of classes k.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Index of a class by name.
    pub fn class_index(&self, name: &str) -> Result<usize> {
        self.class_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown class {name:?}; the model knows {}",
                    self.class_names.join(", ")
                ))
            })
    }

    /// Scale a channel count by the width multiplier.
    pub fn ch(&self, c: usize) -> usize {
        ((c as f64 * self.width).round() as usize).max(1)
    }

    /// Check the config and expand it into its architecture. Sizes and counts are
    /// range-checked here, before any caller allocates: 1..=[`MAX_CLASSES`] classes of at most
    /// [`MAX_CLASS_NAME_BYTES`], an input side in 32..=[`MAX_INPUT_SIZE`], a width in (0, 4].
    pub fn architecture(&self) -> Result<Architecture> {
        let k = self.num_classes();
        if k == 0 || k > MAX_CLASSES {
            return Err(Error::Config(format!(
                "a model needs 1..={MAX_CLASSES} classes, got {k}"
            )));
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 4.0) {
            return Err(Error::Config(format!(
                "width multiplier must be in (0, 4], got {}",
                self.width
            )));
        }
        if !(32..=MAX_INPUT_SIZE).contains(&self.input_size) {
            return Err(Error::Config(format!(
                "input size must be 32..={MAX_INPUT_SIZE} px, got {}",
                self.input_size
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.class_names {
            if name.is_empty() || name.len() > MAX_CLASS_NAME_BYTES || !seen.insert(name.as_str()) {
                return Err(Error::Config(format!(
                    "class names must be non-empty, unique and at most {MAX_CLASS_NAME_BYTES} bytes; bad: {name:?}"
                )));
            }
        }
        if self.variant == Variant::HlfpNested {
            match &self.superclasses {
                None => return Err(Error::Config("hlfp-nested needs a superclass map".into())),
                Some(m) if m.of_class.len() != k || m.of_class.iter().any(|&s| s >= m.len()) => {
                    return Err(Error::Config(format!(
                        "superclass map covers {} classes, the model has {k}",
                        m.of_class.len()
                    )))
                }
                Some(_) => {}
            }
        }

        let c = |x: usize| self.ch(x);
        let bott = |cin, mid, cout, stride| BlockSpec::Bottleneck {
            cin: c(cin),
            mid: c(mid),
            cout: c(cout),
            stride,
        };
        // torchvision's layer: first block may stride / project, the rest are identity blocks.
        let bottleneck_layer =
            |name: &str, cin: usize, mid: usize, n: usize, stride: usize| LayerSpec {
                name: name.to_string(),
                blocks: (0..n)
                    .map(|i| {
                        if i == 0 {
                            bott(cin, mid, mid * 4, stride)
                        } else {
                            bott(mid * 4, mid, mid * 4, 1)
                        }
                    })
                    .collect(),
            };
        let basic_layer =
            |name: &str, cin: usize, cout: usize, n: usize, stride: usize| LayerSpec {
                name: name.to_string(),
                blocks: (0..n)
                    .map(|i| {
                        if i == 0 {
                            BlockSpec::Basic {
                                cin: c(cin),
                                cout: c(cout),
                                stride,
                            }
                        } else {
                            BlockSpec::Basic {
                                cin: c(cout),
                                cout: c(cout),
                                stride: 1,
                            }
                        }
                    })
                    .collect(),
            };
        let resnet50_layers = |depths: [usize; 4]| {
            vec![
                bottleneck_layer("layer1", 64, 64, depths[0], 1),
                bottleneck_layer("layer2", 256, 128, depths[1], 2),
                bottleneck_layer("layer3", 512, 256, depths[2], 2),
                bottleneck_layer("layer4", 1024, 512, depths[3], 2),
            ]
        };
        let small_stack = |cin| {
            vec![
                bott(cin, 128, 512, 2),
                bott(512, 64, 256, 2),
                bott(256, 32, 128, 2),
            ]
        };
        let big_stack = |cin| {
            vec![
                bott(cin, 256, 1024, 2),
                bott(1024, 128, 512, 2),
                bott(512, 64, 256, 2),
            ]
        };

        let mut trunk = resnet50_layers([3, 4, 6, 3]);
        let (branch, num_branches, head_out) = match self.variant {
            Variant::HlfpSmall | Variant::HlfpNested => {
                trunk.truncate(2);
                (small_stack(512), k, 1)
            }
            Variant::HlfpBig => {
                trunk.truncate(2);
                (big_stack(512), k, 1)
            }
            Variant::HlfpLateSp => {
                trunk.truncate(3);
                (small_stack(1024), k, 1)
            }
            Variant::Hlfp1bLateSp => {
                trunk.truncate(3);
                (small_stack(1024), 1, k)
            }
            Variant::HlfpLateBigSp => {
                trunk.truncate(3);
                (big_stack(1024), k, 1)
            }
            Variant::Resnet18 => {
                trunk = vec![
                    basic_layer("layer1", 64, 64, 2, 1),
                    basic_layer("layer2", 64, 128, 2, 2),
                    basic_layer("layer3", 128, 256, 2, 2),
                    basic_layer("layer4", 256, 512, 2, 2),
                ];
                (vec![], 0, k)
            }
            Variant::Resnet50 => (vec![], 0, k),
            Variant::Resnet152 => {
                trunk = resnet50_layers([3, 8, 36, 3]);
                (vec![], 0, k)
            }
        };
        let trunk_out = trunk
            .last()
            .and_then(|l| l.blocks.last())
            .map(|b| b.cout())
            .unwrap_or(c(64));
        let head_in = branch.last().map(|b| b.cout()).unwrap_or(trunk_out);
        let gain_stage = self.gain_stage.unwrap_or(1);
        if !branch.is_empty() && gain_stage >= branch.len() {
            return Err(Error::Config(format!(
                "gain stage {gain_stage} is past the last branch block ({} blocks)",
                branch.len()
            )));
        }
        Ok(Architecture {
            stem_channels: c(64),
            trunk,
            branch,
            num_branches,
            head_out,
            head_in,
            gain_stage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_round_trip() {
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
            // Config files spell variants as the command line does.
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
            assert_eq!(serde_json::from_str::<Variant>(&json).unwrap(), v);
        }
        assert_eq!("HLFP_small".parse::<Variant>().unwrap(), Variant::HlfpSmall);
        let err = "hlfp-tiny".parse::<Variant>().unwrap_err().to_string();
        assert!(err.contains("hlfp-small"), "{err}");
    }

    #[test]
    fn small_architecture_matches_paper() {
        let a = ModelConfig::new(Variant::HlfpSmall, 10)
            .architecture()
            .unwrap();
        assert_eq!(a.trunk.len(), 2);
        assert_eq!(a.trunk[1].blocks.last().unwrap().cout(), 512);
        assert_eq!(
            a.branch[0],
            BlockSpec::Bottleneck {
                cin: 512,
                mid: 128,
                cout: 512,
                stride: 2
            }
        );
        assert_eq!(a.head_in, 128);
        assert_eq!((a.num_branches, a.head_out, a.gain_stage), (10, 1, 1));
    }

    #[test]
    fn superclass_map_parses_and_rejects() {
        let classes: Vec<String> = ["cat", "dog", "car"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = SuperclassMap::parse("# pets\ncat, animal\ndog,animal\n\ncar,vehicle\n", &classes)
            .unwrap();
        assert_eq!(m.names, vec!["animal", "vehicle"]);
        assert_eq!(m.of_class, vec![0, 0, 1]);
        assert!(SuperclassMap::parse("cat,animal\ndog,animal", &classes)
            .unwrap_err()
            .to_string()
            .contains("car"));
        assert!(SuperclassMap::parse("cat,a\ndog,a\ncar,b\nbus,b", &classes)
            .unwrap_err()
            .to_string()
            .contains("bus"));
        assert!(SuperclassMap::parse("cat animal", &classes).is_err());
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(ModelConfig::new(Variant::HlfpSmall, 0)
            .architecture()
            .is_err());
        assert!(ModelConfig::new(Variant::HlfpNested, 4)
            .architecture()
            .is_err());
        let mut c = ModelConfig::new(Variant::HlfpSmall, 3);
        c.width = 0.0;
        assert!(c.architecture().is_err());
        c.width = 1.0;
        c.gain_stage = Some(3);
        assert!(c.architecture().is_err());
    }

    #[test]
    fn sizes_and_counts_from_a_file_are_range_checked() {
        // Values a JSON file can hold that used to reach an allocation (100000 px: 120 GB).
        for size in [0, 31, MAX_INPUT_SIZE + 1, 100_000, usize::MAX] {
            let mut c = ModelConfig::new(Variant::HlfpSmall, 3);
            c.input_size = size;
            let e = c.architecture().unwrap_err().to_string();
            assert!(e.contains("input size") && e.contains("1024"), "{e}");
        }
        let mut c = ModelConfig::new(Variant::HlfpSmall, 3);
        c.input_size = MAX_INPUT_SIZE;
        assert!(c.architecture().is_ok());
        let e = ModelConfig::new(Variant::HlfpSmall, MAX_CLASSES + 1)
            .architecture()
            .unwrap_err()
            .to_string();
        assert!(e.contains("1001"), "{e}");
        let mut c = ModelConfig::new(Variant::Resnet18, 2);
        c.class_names[0] = "x".repeat(MAX_CLASS_NAME_BYTES + 1);
        assert!(c.architecture().is_err());
        for w in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            c = ModelConfig::new(Variant::HlfpSmall, 3);
            c.width = w;
            assert!(c.architecture().is_err(), "width {w}");
        }
    }
}
