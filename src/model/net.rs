//! The HLFP/ResNet network generic over its conv layers, with cutouts, gains and the per-selection
//! cache; [`HlfpModel`] is its autograd (BatchNorm) form.

use super::blocks::{gain_tensor, stem_forward, Block, Head};
use super::layers::{unit_rows, ConvBn, ConvLayer};
use super::spec::{ConvDesc, NetSpec, UnitSpace};
use super::{Architecture, ModelConfig, Selection, Variant};
use crate::error::CandleContext;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many cut-down weight sets a model keeps (most recently used first).
const CACHE_SLOTS: usize = 8;

/// Cut-down branch stages keyed by class positions, most recently used first.
type CutCache<L> = Vec<(Vec<usize>, Arc<BranchSet<L>>)>;

/// The branch stage (blocks + head) for one set of active classes.
#[derive(Debug)]
pub(crate) struct BranchSet<L> {
    /// Branch blocks, each stacked over the active units of its space.
    pub blocks: Vec<Block<L>>,
    /// The classifier (per-branch rows for the active classes).
    pub head: Head,
    /// HLFP-nested: channel indices that copy each active class's superclass group of block 0's
    /// output into class layout.
    pub gather: Option<Tensor>,
}

/// Intermediate maps of one forward pass, for tests and inspection.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Shared trunk output `[B, C, H, W]`.
    pub trunk: Tensor,
    /// Output of every branch block, active branches stacked along channels (class layout; for
    /// nested, block 0 after copying superclass maps to their classes). The gain stage's entry is
    /// after the gain ("gated").
    pub branch_blocks: Vec<Tensor>,
    /// The gain stage's output before the gain, when the model has branches.
    pub ungated: Option<Tensor>,
    /// Logits `[B, |selection|]`.
    pub logits: Tensor,
}

/// The network, generic over conv layers: [`ConvBn`] for training, folded convs for inference.
#[derive(Debug)]
pub(crate) struct Net<L> {
    pub cfg: ModelConfig,
    pub arch: Architecture,
    pub spec: NetSpec,
    pub stem: L,
    pub trunk: Vec<Block<L>>,
    /// Branch stage for every loaded class (all classes unless loaded as a cutout).
    pub full: Arc<BranchSet<L>>,
    /// Loaded classes, sorted: the rows of `full`'s per-class tensors.
    pub loaded_classes: Vec<usize>,
    /// Loaded superclasses (nested), sorted: the rows of block 0's tensors.
    pub loaded_supers: Vec<usize>,
    cache: Mutex<CutCache<L>>,
    pub dtype: DType,
    pub device: Device,
}

impl<L: ConvLayer> Net<L> {
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        cfg: &ModelConfig,
        spec: NetSpec,
        stem: L,
        trunk: Vec<Block<L>>,
        blocks: Vec<Block<L>>,
        head: Head,
        loaded_classes: Vec<usize>,
        loaded_supers: Vec<usize>,
    ) -> Result<Self> {
        let arch = cfg.architecture()?;
        let dtype = head.weight.dtype();
        let device = head.weight.device().clone();
        let gather = nested_gather(cfg, &arch, &loaded_classes, &loaded_supers, &device)?;
        Ok(Net {
            cfg: cfg.clone(),
            arch,
            spec,
            stem,
            trunk,
            full: Arc::new(BranchSet {
                blocks,
                head,
                gather,
            }),
            loaded_classes,
            loaded_supers,
            cache: Mutex::new(Vec::new()),
            dtype,
            device,
        })
    }

    fn is_per_class(&self) -> bool {
        self.spec.head.per_branch
    }

    /// Drop every cached cut-down weight set.
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// Number of cached cut-down weight sets.
    pub fn cached_sets(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// The branch stage for `sel`: the loaded one, a cached cut, or a new cut (cached unless
    /// `train`: a training step changes the weights, so cuts made from them would go stale).
    fn branch_set(&self, sel: &Selection, train: bool) -> Result<Arc<BranchSet<L>>> {
        if !self.is_per_class() {
            return Ok(self.full.clone());
        }
        let pos = positions(sel.classes(), &self.loaded_classes, "class")?;
        if pos.len() == self.loaded_classes.len() {
            return Ok(self.full.clone());
        }
        if train {
            return Ok(Arc::new(self.cut(sel, &pos)?));
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| Error::BadInput("model cache poisoned".into()))?;
        if let Some(i) = cache.iter().position(|(k, _)| *k == pos) {
            let hit = cache.remove(i);
            let set = hit.1.clone();
            cache.insert(0, hit);
            return Ok(set);
        }
        let set = Arc::new(self.cut(sel, &pos)?);
        cache.insert(0, (pos, set.clone()));
        cache.truncate(CACHE_SLOTS);
        Ok(set)
    }

    /// Slice the loaded branch stage down to the classes at `pos` (positions in `loaded_classes`).
    fn cut(&self, sel: &Selection, pos: &[usize]) -> Result<BranchSet<L>> {
        let sup_pos = positions(sel.superclasses(), &self.loaded_supers, "superclass")?;
        let mut blocks = Vec::with_capacity(self.full.blocks.len());
        for (block, desc) in self.full.blocks.iter().zip(&self.spec.branch) {
            let space = desc.convs[0].units.map(|u| u.space);
            let cut = match space {
                Some(UnitSpace::Superclass) => {
                    block.select_units(&sup_pos, self.loaded_supers.len())
                }
                _ => block.select_units(pos, self.loaded_classes.len()),
            };
            blocks.push(cut.ctx("cutting branch weights")?);
        }
        let head = self
            .full
            .head
            .select_units(pos)
            .ctx("cutting head weights")?;
        let gather = nested_gather(
            &self.cfg,
            &self.arch,
            sel.classes(),
            sel.superclasses(),
            &self.device,
        )?;
        Ok(BranchSet {
            blocks,
            head,
            gather,
        })
    }

    fn check_input(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<()> {
        let s = self.cfg.input_size;
        let ok = matches!(x.dims(), &[b, 3, h, w] if b > 0 && h == s && w == s);
        if !ok {
            return Err(Error::BadInput(format!(
                "expected input [batch, 3, {s}, {s}], got {:?}",
                x.dims()
            )));
        }
        if x.dtype() != self.dtype {
            return Err(Error::BadInput(format!(
                "expected input dtype {:?}, got {:?}",
                self.dtype,
                x.dtype()
            )));
        }
        let k = self.cfg.num_classes();
        if sel.num_classes() != k {
            return Err(Error::BadInput(format!(
                "selection was made for {} classes, the model has {k}",
                sel.num_classes()
            )));
        }
        if !gains.is_empty() && gains.len() != k {
            return Err(Error::BadInput(format!(
                "expected {k} gains (one per class) or none, got {}",
                gains.len()
            )));
        }
        if let Some(g) = gains.iter().find(|g| !g.is_finite() || **g < 0.0) {
            return Err(Error::BadInput(format!(
                "gains must be finite and >= 0, got {g}"
            )));
        }
        Ok(())
    }

    /// The forward pass; logits `[B, |sel|]` in `sel`'s order, and optionally the trace.
    pub fn run(
        &self,
        x: &Tensor,
        sel: &Selection,
        gains: &[f32],
        train: bool,
        trace: bool,
    ) -> Result<(Tensor, Option<Trace>)> {
        self.check_input(x, sel, gains)?;
        if train {
            self.clear_cache();
        }
        let set = self.branch_set(sel, train)?;
        let mut h = stem_forward(&self.stem, x, train).ctx("stem")?;
        for (i, b) in self.trunk.iter().enumerate() {
            h = b.forward(&h, train).ctx(format!("trunk block {i}"))?;
        }
        let trunk_out = h.clone();
        let mut blocks_out = Vec::new();
        let mut ungated = None;
        // Gains act per class; a single shared branch (1b) or no branch (ResNet) ignores them.
        let gains_active: Option<Vec<f32>> = (self.is_per_class()
            && gains.iter().any(|&g| g != 1.0))
        .then(|| sel.classes().iter().map(|&c| gains[c]).collect());
        for (j, b) in set.blocks.iter().enumerate() {
            h = b.forward(&h, train).ctx(format!("branch block {j}"))?;
            if let (0, Some(g)) = (j, &set.gather) {
                h = h.index_select(g, 1).ctx("nested gather")?;
            }
            if j == self.arch.gain_stage {
                if trace {
                    ungated = Some(h.clone());
                }
                if let Some(g) = &gains_active {
                    let c = h.dim(1).ctx("gain")? / g.len();
                    let m = gain_tensor(g, c, &self.device)
                        .and_then(|m| m.to_dtype(self.dtype))
                        .ctx("gain")?;
                    h = h.broadcast_mul(&m).ctx("gain")?;
                }
            }
            if trace {
                blocks_out.push(h.clone());
            }
        }
        let pooled = h
            .mean_keepdim(3)
            .and_then(|t| t.mean_keepdim(2))
            .and_then(|t| t.flatten_from(1))
            .ctx("pool")?;
        let mut logits = set.head.forward(&pooled).ctx("head")?;
        if !self.is_per_class() && !sel.is_all() {
            let cols = unit_rows(sel.classes(), 1, &self.device).ctx("select")?;
            logits = logits.index_select(&cols, 1).ctx("select logits")?;
        }
        let trace = trace.then(|| Trace {
            trunk: trunk_out,
            branch_blocks: blocks_out,
            ungated,
            logits: logits.clone(),
        });
        Ok((logits, trace))
    }
}

/// Positions of `wanted` (sorted) inside `loaded` (sorted), or an error naming the missing one.
fn positions(wanted: &[usize], loaded: &[usize], what: &str) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|w| {
            loaded.binary_search(w).map_err(|_| {
                Error::BadInput(format!(
                    "{what} {w} is not loaded in this model (loaded: {loaded:?})"
                ))
            })
        })
        .collect()
}

/// For nested: channel indices mapping block 0's output (stacked over `supers`) to class layout.
fn nested_gather(
    cfg: &ModelConfig,
    arch: &Architecture,
    classes: &[usize],
    supers: &[usize],
    device: &Device,
) -> Result<Option<Tensor>> {
    let (Variant::HlfpNested, Some(map)) = (cfg.variant, &cfg.superclasses) else {
        return Ok(None);
    };
    let c0 = arch.branch.first().map_or(0, |b| b.cout());
    let mut idx = Vec::with_capacity(classes.len() * c0);
    for &c in classes {
        let s = map.of_class.get(c).copied().unwrap_or(usize::MAX);
        let sp = supers
            .binary_search(&s)
            .map_err(|_| Error::BadInput(format!("superclass of class {c} is not loaded")))?;
        idx.extend((sp * c0..(sp + 1) * c0).map(|i| i as u32));
    }
    let n = idx.len();
    Tensor::from_vec(idx, n, device)
        .ctx("nested gather")
        .map(Some)
}

/// Softmax over the selection's logits (paper eq. 2): probabilities `[B, |sel|]` summing to 1.
pub fn probabilities(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(logits).ctx("softmax")
}

/// How the training path's layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainLayers {
    /// The dtype convolutions compute in: F32, or BF16/F16 on f32 weights (mixed precision;
    /// BatchNorm, head and loss stay f32; see [`ConvBn::compute`]).
    pub compute: DType,
    /// Training-mode BatchNorm as one fused op on the CPU ([`crate::kernels::bn_train`]);
    /// false runs candle's layer (an A/B switch for measurements).
    pub fused_bn: bool,
}

impl Default for TrainLayers {
    fn default() -> Self {
        TrainLayers {
            compute: DType::F32,
            fused_bn: true,
        }
    }
}

/// An HLFP or ResNet model with BatchNorm: the training (autograd) path. Build it with
/// [`HlfpModel::load`] from any `VarBuilder` (a `VarMap` for training from scratch, or a
/// memory-mapped safetensors file). Tensor names: docs/WEIGHTS.md.
#[derive(Debug)]
pub struct HlfpModel {
    net: Net<ConvBn>,
}

impl HlfpModel {
    /// Build the model from `vb` using the names of docs/WEIGHTS.md. With a `VarMap`, missing
    /// tensors are created (Kaiming-normal convs, BN weight 1 / bias 0, running stats 0 / 1).
    pub fn load(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Self::load_with(cfg, vb, TrainLayers::default())
    }

    /// [`Self::load`] with explicit layer options (mixed precision, fused BatchNorm).
    pub fn load_with(cfg: &ModelConfig, vb: VarBuilder, layers: TrainLayers) -> Result<Self> {
        let TrainLayers { compute, fused_bn } = layers;
        if !matches!(compute, DType::F32 | DType::BF16 | DType::F16) {
            return Err(Error::Config(format!(
                "convolutions can compute in f32, bf16 or f16, not {compute:?}"
            )));
        }
        let spec = NetSpec::new(cfg)?;
        let conv = |d: &ConvDesc| -> Result<ConvBn> {
            let (weight, bn) = ConvBn::load_weights(&vb, &d.conv, &d.shape, &d.bn)
                .ctx(format!("loading {}.weight and {}", d.conv, d.bn))?;
            let groups = if d.grouped {
                d.units.map_or(1, |u| u.n)
            } else {
                1
            };
            Ok(ConvBn {
                weight,
                bn,
                stride: d.stride,
                pad: d.pad,
                groups,
                grouped: d.grouped,
                compute,
                fused_bn,
            })
        };
        let block = |b: &super::spec::BlockDesc| -> Result<Block<ConvBn>> {
            Ok(Block {
                convs: b.convs.iter().map(&conv).collect::<Result<_>>()?,
                downsample: b.downsample.as_ref().map(&conv).transpose()?,
            })
        };
        let stem = conv(&spec.stem)?;
        let trunk = spec.trunk.iter().map(&block).collect::<Result<Vec<_>>>()?;
        let branch = spec.branch.iter().map(&block).collect::<Result<Vec<_>>>()?;
        let [rows, fan_in] = spec.head.shape;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let hname = spec.head.name.clone();
        let head = Head {
            weight: vb
                .get_with_hints((rows, fan_in), &format!("{hname}.weight"), init)
                .ctx(format!("loading {hname}.weight"))?,
            bias: vb
                .get_with_hints(rows, &format!("{hname}.bias"), init)
                .ctx(format!("loading {hname}.bias"))?,
            per_branch: spec.head.per_branch,
        };
        let all: Vec<usize> = (0..cfg.num_classes()).collect();
        let supers: Vec<usize> = (0..cfg.superclasses.as_ref().map_or(0, |m| m.len())).collect();
        Ok(HlfpModel {
            net: Net::assemble(cfg, spec, stem, trunk, branch, head, all, supers)?,
        })
    }

    /// Logits `[B, |sel|]` in the order of `sel.classes()`. `gains`: one per class (1.0 =
    /// identity) or empty; they scale each active branch's maps at `arch.gain_stage`. ResNets and
    /// HLFP-1b-late-SP have no per-class branch, so they ignore gains. `train` selects BatchNorm
    /// batch statistics (and updates the running ones for the full selection).
    pub fn forward_t(
        &self,
        x: &Tensor,
        sel: &Selection,
        gains: &[f32],
        train: bool,
    ) -> Result<Tensor> {
        self.net.run(x, sel, gains, train, false).map(|r| r.0)
    }

    /// Eval-mode forward (running BatchNorm statistics).
    pub fn forward(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Tensor> {
        self.forward_t(x, sel, gains, false)
    }

    /// Eval-mode forward that also returns the intermediate maps.
    pub fn forward_traced(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Trace> {
        let (_, t) = self.net.run(x, sel, gains, false, true)?;
        t.ok_or_else(|| Error::BadInput("trace missing".into()))
    }

    /// The config the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.net.cfg
    }

    /// The expanded architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.net.arch
    }

    /// Forget cached cutout weights. Call it after changing the weights outside a train-mode
    /// forward (a train-mode forward clears the cache itself).
    pub fn clear_cache(&self) {
        self.net.clear_cache()
    }

    /// Number of cached cutout weight sets (at most 8).
    pub fn cached_sets(&self) -> usize {
        self.net.cached_sets()
    }

    /// Every tensor under its docs/WEIGHTS.md name (current running statistics included).
    pub fn named_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        let mut conv = |l: &ConvBn, d: &ConvDesc| l.push_tensors(&d.conv, &d.bn, &mut out);
        let net = &self.net;
        conv(&net.stem, &net.spec.stem);
        let blocks = net
            .trunk
            .iter()
            .zip(&net.spec.trunk)
            .chain(net.full.blocks.iter().zip(&net.spec.branch));
        for (b, d) in blocks {
            for (l, ld) in b.convs.iter().zip(&d.convs) {
                conv(l, ld);
            }
            if let (Some(l), Some(ld)) = (&b.downsample, &d.downsample) {
                conv(l, ld);
            }
        }
        let h = &net.spec.head.name;
        out.insert(format!("{h}.weight"), net.full.head.weight.clone());
        out.insert(format!("{h}.bias"), net.full.head.bias.clone());
        out
    }

    /// Write every tensor to a safetensors file under the docs/WEIGHTS.md names.
    pub fn save_safetensors(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        candle_core::safetensors::save(&self.named_tensors(), path).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }
}
