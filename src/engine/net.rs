//! The engine's network: an [`Architecture`] with BatchNorm folded at load time, run with
//! [`FoldedConv`]s. Branch weights are packed once per active set (a small cache), so a cutout
//! runs one dense conv over the trunk output and one grouped GEMM per later layer.

use super::conv::{global_avg_pool, maxpool3x3s2, ConvSpec, FoldedConv, Scratch};
use crate::error::CandleContext;
use crate::model::{Architecture, BlockSpec, ModelConfig, Variant};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const BN_EPS: f64 = 1e-5;

/// Where the engine reads raw (unfolded) weights from: torchvision names for the trunk and the
/// stacked `branch.{j}.*` / `branch_fc.*` names of docs/WEIGHTS.md.
pub trait WeightSource {
    /// The tensor called `name`, as f32.
    fn tensor(&self, name: &str) -> Result<Tensor>;
}

impl WeightSource for HashMap<String, Tensor> {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let t = self
            .get(name)
            .ok_or_else(|| Error::BadInput(format!("weights have no tensor {name:?}")))?;
        t.to_dtype(DType::F32)
            .ctx(format!("converting {name} to f32"))
    }
}

fn to_vec(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .ctx(format!("reading {what}"))
}

/// Fold `prefix_bn` into the conv `conv_name`: w' = w·γ/σ, b' = β − μ·γ/σ.
fn fold(
    src: &dyn WeightSource,
    conv_name: &str,
    bn_prefix: &str,
    spec: ConvSpec,
) -> Result<FoldedConv> {
    let w = src.tensor(conv_name)?;
    let expect = [
        spec.out_c,
        spec.in_c / spec.groups,
        spec.kernel,
        spec.kernel,
    ];
    if w.dims() != expect {
        return Err(Error::BadInput(format!(
            "{conv_name}: shape {:?}, expected {expect:?}",
            w.dims()
        )));
    }
    let get = |n: &str| -> Result<Vec<f32>> {
        let name = format!("{bn_prefix}.{n}");
        let v = to_vec(&src.tensor(&name)?, &name)?;
        if v.len() != spec.out_c {
            return Err(Error::BadInput(format!(
                "{name}: {} values, expected {}",
                v.len(),
                spec.out_c
            )));
        }
        Ok(v)
    };
    let (gamma, beta, mean, var) = (
        get("weight")?,
        get("bias")?,
        get("running_mean")?,
        get("running_var")?,
    );
    let mut wv = to_vec(&w, conv_name)?;
    let per_out = wv.len() / spec.out_c;
    let mut bias = Vec::with_capacity(spec.out_c);
    for o in 0..spec.out_c {
        let scale = (gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt()) as f32;
        wv[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|v| *v *= scale);
        bias.push(beta[o] - mean[o] * scale);
    }
    FoldedConv::new(spec, wv, bias)
}

/// A residual block with folded convs.
#[derive(Debug, Clone)]
struct Block {
    convs: Vec<FoldedConv>,
    downsample: Option<FoldedConv>,
}

impl Block {
    /// Load block `prefix` of `spec`, grouped `groups` ways, first conv and shortcut dense when
    /// `dense_input` (the branch stage's first block reads the shared trunk output).
    fn load(
        src: &dyn WeightSource,
        prefix: &str,
        spec: &BlockSpec,
        groups: usize,
        dense_input: bool,
    ) -> Result<Block> {
        let g = groups;
        let in_groups = if dense_input { 1 } else { g };
        let conv = |idx: usize, in_c, out_c, kernel, stride, groups| {
            let s = ConvSpec {
                in_c,
                out_c,
                kernel,
                stride,
                pad: kernel / 2,
                groups,
            };
            fold(
                src,
                &format!("{prefix}.conv{idx}.weight"),
                &format!("{prefix}.bn{idx}"),
                s,
            )
        };
        let cin = if dense_input {
            spec.cin()
        } else {
            spec.cin() * g
        };
        let convs = match *spec {
            BlockSpec::Bottleneck {
                mid, cout, stride, ..
            } => vec![
                conv(1, cin, mid * g, 1, 1, in_groups)?,
                conv(2, mid * g, mid * g, 3, stride, g)?,
                conv(3, mid * g, cout * g, 1, 1, g)?,
            ],
            BlockSpec::Basic { cout, stride, .. } => {
                vec![
                    conv(1, cin, cout * g, 3, stride, in_groups)?,
                    conv(2, cout * g, cout * g, 3, 1, g)?,
                ]
            }
        };
        let downsample = if spec.has_downsample() {
            let s = ConvSpec {
                in_c: cin,
                out_c: spec.cout() * g,
                kernel: 1,
                stride: spec.stride(),
                pad: 0,
                groups: in_groups,
            };
            Some(fold(
                src,
                &format!("{prefix}.downsample.0.weight"),
                &format!("{prefix}.downsample.1"),
                s,
            )?)
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    /// Run one image; returns the output and its size.
    fn forward(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        threads: usize,
        scratch: &mut Scratch,
    ) -> Result<(Vec<f32>, usize, usize)> {
        let (mut ch, mut cw) = (h, w);
        let n = self.convs.len();
        let shortcut_owned;
        let shortcut: &[f32] = match &self.downsample {
            Some(ds) => {
                let mut s = Vec::new();
                ds.forward_into(x, h, w, None, false, threads, scratch, &mut s)?;
                shortcut_owned = s;
                &shortcut_owned
            }
            None => x,
        };
        let mut cur: Vec<f32> = Vec::new();
        for (i, conv) in self.convs.iter().enumerate() {
            let last = i + 1 == n;
            let mut out = Vec::new();
            let input: &[f32] = if i == 0 { x } else { &cur };
            (ch, cw) = conv.forward_into(
                input,
                ch,
                cw,
                last.then_some(shortcut),
                true,
                threads,
                scratch,
                &mut out,
            )?;
            cur = out;
        }
        Ok((cur, ch, cw))
    }
}

/// Branch weights packed for one active set.
#[derive(Debug)]
struct BranchPack {
    /// For nested: the superclass blocks (block 0) packed over the needed superclasses.
    blocks: Vec<Block>,
    /// For nested: for each active class, its position among the packed superclasses.
    super_pos: Vec<usize>,
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

/// A BatchNorm-folded model run by the GEMM engine.
pub struct EngineModel {
    cfg: ModelConfig,
    arch: Architecture,
    stem: FoldedConv,
    trunk: Vec<Block>,
    /// Full-model branch stack (groups = num_branches), the source packs are sliced from.
    branch_full: Vec<Block>,
    /// Head for ResNets / 1b-late-SP: `[head_out, head_in]`, or for HLFP `[k, head_in]`.
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
    threads: usize,
    packs: Mutex<Vec<(Vec<usize>, Arc<BranchPack>)>>,
}

/// How many active sets keep their packed weights.
const PACK_CACHE: usize = 8;

impl EngineModel {
    /// Build from raw weights (BatchNorm folded here, once).
    pub fn load(cfg: &ModelConfig, src: &dyn WeightSource, threads: usize) -> Result<Self> {
        let arch = cfg.architecture()?;
        let stem = fold(
            src,
            "conv1.weight",
            "bn1",
            ConvSpec {
                in_c: 3,
                out_c: arch.stem_channels,
                kernel: 7,
                stride: 2,
                pad: 3,
                groups: 1,
            },
        )?;
        let mut trunk = Vec::new();
        for layer in &arch.trunk {
            for (i, b) in layer.blocks.iter().enumerate() {
                trunk.push(Block::load(
                    src,
                    &format!("{}.{i}", layer.name),
                    b,
                    1,
                    false,
                )?);
            }
        }
        let nested = cfg.variant == Variant::HlfpNested;
        let mut branch_full = Vec::new();
        for (j, b) in arch.branch.iter().enumerate() {
            let n = if nested && j == 0 {
                cfg.superclasses.as_ref().map_or(0, |m| m.len())
            } else {
                arch.num_branches
            };
            branch_full.push(Block::load(src, &format!("branch.{j}"), b, n, j == 0)?);
        }
        let (wname, bname) = if arch.branch.is_empty() {
            ("fc.weight", "fc.bias")
        } else {
            ("branch_fc.weight", "branch_fc.bias")
        };
        let fc_w = to_vec(&src.tensor(wname)?, wname)?;
        let fc_b = to_vec(&src.tensor(bname)?, bname)?;
        let rows = if cfg.variant.is_branched() {
            arch.num_branches
        } else {
            arch.head_out
        };
        if fc_w.len() != rows * arch.head_in || fc_b.len() != rows {
            return Err(Error::BadInput(format!(
                "{wname}: {} values, expected {rows}x{}",
                fc_w.len(),
                arch.head_in
            )));
        }
        Ok(EngineModel {
            cfg: cfg.clone(),
            arch,
            stem,
            trunk,
            branch_full,
            fc_w,
            fc_b,
            threads: threads.max(1),
            packs: Mutex::new(Vec::new()),
        })
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Logits of one image `[3, s, s]` (CHW, normalised) for the `active` classes (sorted,
    /// unique), with per-class `gains` (len k).
    pub fn forward_image(&self, x: &[f32], active: &[usize], gains: &[f32]) -> Result<Vec<f32>> {
        let s = self.cfg.input_size;
        let k = self.cfg.num_classes();
        if x.len() != 3 * s * s {
            return Err(Error::BadInput(format!(
                "image has {} values, expected 3x{s}x{s}",
                x.len()
            )));
        }
        if gains.len() != k {
            return Err(Error::BadInput(format!(
                "{} gains for {k} classes",
                gains.len()
            )));
        }
        if active.is_empty()
            || active.windows(2).any(|w| w[0] >= w[1])
            || active.iter().any(|&c| c >= k)
        {
            return Err(Error::BadInput(format!(
                "active classes must be sorted, unique and < {k}: {active:?}"
            )));
        }
        let mut scratch = Scratch::default();
        let mut a = Vec::new();
        let (h, w) =
            self.stem
                .forward_into(x, s, s, None, true, self.threads, &mut scratch, &mut a)?;
        let mut b = Vec::new();
        let (mut h, mut w) = maxpool3x3s2(&a, self.arch.stem_channels, h, w, &mut b);
        let mut cur = b;
        for block in &self.trunk {
            let (o, oh, ow) = block.forward(&cur, h, w, self.threads, &mut scratch)?;
            (cur, h, w) = (o, oh, ow);
        }
        if !self.cfg.variant.is_branched() {
            // ResNets have no branch stack; 1b-late-SP has one branch feeding a k-way head.
            for block in &self.branch_full {
                let (o, oh, ow) = block.forward(&cur, h, w, self.threads, &mut scratch)?;
                (cur, h, w) = (o, oh, ow);
            }
            let c = self.arch.head_in;
            let mut pooled = Vec::new();
            global_avg_pool(&cur, c, h * w, &mut pooled);
            return Ok(active
                .iter()
                .map(|&i| {
                    self.fc_b[i]
                        + self.fc_w[i * c..(i + 1) * c]
                            .iter()
                            .zip(&pooled)
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                })
                .collect());
        }

        let pack = self.pack(active)?;
        let n = active.len();
        let nested = self.cfg.variant == Variant::HlfpNested;
        for (j, (block, spec)) in pack.blocks.iter().zip(&self.arch.branch).enumerate() {
            let (mut o, oh, ow) = block.forward(&cur, h, w, self.threads, &mut scratch)?;
            if nested && j == 0 {
                // Each active class reads its superclass's output group.
                let (c, p) = (spec.cout(), oh * ow);
                let mut gathered = Vec::with_capacity(n * c * p);
                for &sp in &pack.super_pos {
                    gathered.extend_from_slice(&o[sp * c * p..(sp + 1) * c * p]);
                }
                o = gathered;
            }
            if j == self.arch.gain_stage {
                let gp = spec.cout() * oh * ow;
                for (chunk, &cls) in o.chunks_mut(gp).zip(active) {
                    let g = gains[cls];
                    if g != 1.0 {
                        chunk.iter_mut().for_each(|v| *v *= g);
                    }
                }
            }
            (cur, h, w) = (o, oh, ow);
        }
        let c = self.arch.head_in;
        let mut pooled = Vec::new();
        global_avg_pool(
            &cur,
            self.arch.branch.last().map_or(c, |b| b.cout()) * n,
            h * w,
            &mut pooled,
        );
        Ok((0..n)
            .map(|i| {
                pack.head_b[i]
                    + pack.head_w[i * c..(i + 1) * c]
                        .iter()
                        .zip(&pooled[i * c..(i + 1) * c])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
            })
            .collect())
    }

    /// The branch weights for `active`, packed once and cached.
    fn pack(&self, active: &[usize]) -> Result<Arc<BranchPack>> {
        {
            let packs = self
                .packs
                .lock()
                .map_err(|_| Error::BadInput("weight-pack cache poisoned".into()))?;
            if let Some((_, p)) = packs.iter().find(|(a, _)| a == active) {
                return Ok(p.clone());
            }
        }
        let nested = self.cfg.variant == Variant::HlfpNested;
        let (supers, super_pos): (Vec<usize>, Vec<usize>) = if nested {
            let map = self
                .cfg
                .superclasses
                .as_ref()
                .ok_or_else(|| Error::Config("nested model without superclasses".into()))?;
            let mut s: Vec<usize> = active.iter().map(|&c| map.of_class[c]).collect();
            s.sort_unstable();
            s.dedup();
            let pos = active
                .iter()
                .map(|&c| s.binary_search(&map.of_class[c]).unwrap_or(0))
                .collect();
            (s, pos)
        } else {
            (vec![], vec![])
        };
        let blocks = self
            .branch_full
            .iter()
            .enumerate()
            .map(|(j, b)| {
                if nested && j == 0 {
                    slice_block(b, &supers)
                } else {
                    slice_block(b, active)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let c = self.arch.head_in;
        let head_w = active
            .iter()
            .flat_map(|&i| self.fc_w[i * c..(i + 1) * c].iter().copied())
            .collect();
        let head_b = active.iter().map(|&i| self.fc_b[i]).collect();
        let pack = Arc::new(BranchPack {
            blocks,
            super_pos,
            head_w,
            head_b,
        });
        let mut packs = self
            .packs
            .lock()
            .map_err(|_| Error::BadInput("weight-pack cache poisoned".into()))?;
        if packs.len() >= PACK_CACHE {
            packs.remove(0);
        }
        packs.push((active.to_vec(), pack.clone()));
        Ok(pack)
    }
}

/// Keep the output-channel groups `keep` of a conv grouped `groups` ways (for a dense-input
/// conv the input is shared, so only its output rows are sliced).
fn slice_conv(conv: &FoldedConv, groups: usize, keep: &[usize]) -> Result<FoldedConv> {
    let s = conv.spec;
    let og = s.out_c / groups;
    let kg = s.k_per_group();
    let mut weight = Vec::with_capacity(keep.len() * og * kg);
    let mut bias = Vec::with_capacity(keep.len() * og);
    for &g in keep {
        weight.extend_from_slice(&conv.weight[g * og * kg..(g + 1) * og * kg]);
        bias.extend_from_slice(&conv.bias[g * og..(g + 1) * og]);
    }
    let dense = s.groups == 1 && groups > 1;
    let spec = ConvSpec {
        in_c: if dense {
            s.in_c
        } else {
            s.in_c / groups * keep.len()
        },
        out_c: og * keep.len(),
        groups: if dense { 1 } else { keep.len() },
        ..s
    };
    FoldedConv::new(spec, weight, bias)
}

fn slice_block(b: &Block, keep: &[usize]) -> Result<Block> {
    // The stacked block's group count is its last conv's (always grouped over branches).
    let groups = b.convs.last().map_or(1, |c| c.spec.groups);
    Ok(Block {
        convs: b
            .convs
            .iter()
            .map(|c| slice_conv(c, groups, keep))
            .collect::<Result<_>>()?,
        downsample: b
            .downsample
            .as_ref()
            .map(|d| slice_conv(d, groups, keep))
            .transpose()?,
    })
}

impl WeightSource for crate::model::weights::MmapFile {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        crate::model::weights::MmapFile::tensor(self, name)
    }
}
