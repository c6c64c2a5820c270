//! The inference model: BatchNorm folded into the convs at load time, loadable straight from a
//! memory-mapped safetensors file with only a cutout's branches read.

use super::blocks::{Block, FoldedConv, Head};
use super::net::{Net, Trace};
use super::spec::{BlockDesc, ConvDesc, NetSpec, UnitSpace, Units};
use super::weights::{MapSource, MmapFile, Source};
use super::{Architecture, HlfpModel, ModelConfig, Selection};
use crate::error::CandleContext;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// An HLFP or ResNet model for inference (eval mode only), with BatchNorm folded into conv
/// weights and biases. Its outputs match [`HlfpModel::forward`] to float rounding.
///
/// Loaded as a cutout, it holds only the selected classes' branches (and, for nested, their
/// superclasses); forward passes may then use any selection within those classes.
#[derive(Debug)]
pub struct InferenceModel {
    net: Net<FoldedConv>,
}

impl InferenceModel {
    /// Load from a safetensors file (memory-mapped). With `cutout`, only those classes' rows of
    /// every stacked branch tensor are read from the file. ResNets and HLFP-1b-late-SP have no
    /// per-class branches, so a cutout loads them whole (their selection picks logits).
    pub fn load_file(
        path: impl AsRef<Path>,
        cfg: &ModelConfig,
        cutout: Option<&Selection>,
        device: &Device,
    ) -> Result<Self> {
        let file = MmapFile::open(path, device)?;
        Self::build(cfg, &file, cutout)
    }

    /// Fold an in-memory map of named tensors (e.g. [`crate::model::weights::random_tensors`]).
    pub fn from_tensors(
        cfg: &ModelConfig,
        tensors: &HashMap<String, Tensor>,
        cutout: Option<&Selection>,
        device: &Device,
    ) -> Result<Self> {
        Self::build(
            cfg,
            &MapSource {
                map: tensors,
                device: device.clone(),
            },
            cutout,
        )
    }

    /// Fold a trained [`HlfpModel`] (its current running statistics).
    pub fn from_model(model: &HlfpModel, cutout: Option<&Selection>) -> Result<Self> {
        let map = model.named_tensors();
        let device = map
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        Self::build(model.config(), &MapSource { map: &map, device }, cutout)
    }

    fn build(cfg: &ModelConfig, src: &dyn Source, cutout: Option<&Selection>) -> Result<Self> {
        let spec = NetSpec::new(cfg)?;
        let all = Selection::all(cfg);
        let sel = cutout.unwrap_or(&all);
        if sel.num_classes() != cfg.num_classes() {
            return Err(Error::BadInput(format!(
                "cutout was made for {} classes, the model has {}",
                sel.num_classes(),
                cfg.num_classes()
            )));
        }
        // A shared single branch or a ResNet head cannot be cut: load everything.
        let per_class = spec.head.per_branch;
        let classes: Vec<usize> = if per_class {
            sel.classes().to_vec()
        } else {
            all.classes().to_vec()
        };
        let supers: Vec<usize> = if per_class {
            sel.superclasses().to_vec()
        } else {
            all.superclasses().to_vec()
        };
        let units_for = |u: Option<Units>| -> Option<(Vec<usize>, usize)> {
            match u {
                Some(Units {
                    n,
                    space: UnitSpace::Class,
                }) => Some((classes.clone(), n)),
                Some(Units {
                    n,
                    space: UnitSpace::Superclass,
                }) => Some((supers.clone(), n)),
                _ => None,
            }
        };
        let conv = |d: &ConvDesc| -> Result<FoldedConv> {
            let units = units_for(d.units);
            let u = units.as_ref().map(|(v, n)| (v.as_slice(), *n));
            let get = |name: String, shape: &[usize]| src.fetch(&name, shape, u);
            let w = get(format!("{}.weight", d.conv), &d.shape)?;
            let c = [d.shape[0]];
            let gamma = get(format!("{}.weight", d.bn), &c)?;
            let beta = get(format!("{}.bias", d.bn), &c)?;
            let mean = get(format!("{}.running_mean", d.bn), &c)?;
            let var = get(format!("{}.running_var", d.bn), &c)?;
            let groups = if d.grouped {
                units.as_ref().map_or(1, |(v, _)| v.len())
            } else {
                1
            };
            FoldedConv::fold(
                &w, &gamma, &beta, &mean, &var, d.stride, d.pad, groups, d.grouped,
            )
            .ctx(format!("folding {}", d.conv))
        };
        let block = |b: &BlockDesc| -> Result<Block<FoldedConv>> {
            Ok(Block {
                convs: b.convs.iter().map(conv).collect::<Result<_>>()?,
                downsample: b.downsample.as_ref().map(conv).transpose()?,
            })
        };
        let stem = conv(&spec.stem)?;
        let trunk = spec.trunk.iter().map(block).collect::<Result<Vec<_>>>()?;
        let branch = spec.branch.iter().map(block).collect::<Result<Vec<_>>>()?;
        let hu = units_for(spec.head.units);
        let hu = hu.as_ref().map(|(v, n)| (v.as_slice(), *n));
        let h = &spec.head;
        let head = Head {
            weight: src.fetch(&format!("{}.weight", h.name), &h.shape, hu)?,
            bias: src.fetch(&format!("{}.bias", h.name), &[h.shape[0]], hu)?,
            per_branch: h.per_branch,
        };
        Ok(InferenceModel {
            net: Net::assemble(cfg, spec, stem, trunk, branch, head, classes, supers)?,
        })
    }

    /// Logits `[B, |sel|]` in `sel`'s order; `sel` must lie within the loaded classes. Same
    /// contract as [`HlfpModel::forward`].
    pub fn forward(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Tensor> {
        self.net.run(x, sel, gains, false, false).map(|r| r.0)
    }

    /// Forward that also returns the intermediate maps.
    pub fn forward_traced(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Trace> {
        let (_, t) = self.net.run(x, sel, gains, false, true)?;
        t.ok_or_else(|| Error::BadInput("trace missing".into()))
    }

    /// Classes whose branches are loaded (sorted).
    pub fn loaded_classes(&self) -> &[usize] {
        &self.net.loaded_classes
    }

    /// The config.
    pub fn config(&self) -> &ModelConfig {
        &self.net.cfg
    }

    /// The expanded architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.net.arch
    }

    /// Number of cached cut-down weight sets (at most 8).
    pub fn cached_sets(&self) -> usize {
        self.net.cached_sets()
    }
}
