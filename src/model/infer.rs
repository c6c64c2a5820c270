//! The inference model: BatchNorm folded into the convs at load time, loadable straight from a
//! memory-mapped safetensors file with only a cutout's branches read, run by one of two
//! backends: the CPU engine (GEMM kernels, what CPU deployments run) or candle's ops (any device;
//! what CUDA deployments run). Both are the same [`Net`] built from the same [`NetSpec`]; they
//! differ only in the conv layer ([`InferConv`]).

use super::blocks::{Block, Head};
use super::layers::{CudaKernels, EngineConv, FoldedConv, InferConv};
use super::net::{Net, Trace};
use super::spec::{BlockDesc, ConvDesc, NetSpec, UnitSpace, Units};
use super::weights::{MapSource, MmapFile, Source};
use super::{Architecture, HlfpModel, ModelConfig, Selection};
use crate::error::CandleContext;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Which implementation runs the folded network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The CPU engine: GEMM convolutions with a fused bias/residual/ReLU epilogue.
    Engine,
    /// candle's tensor ops (CPU or CUDA; on CUDA with our conv and epilogue kernels).
    Candle,
}

impl Backend {
    /// The backend deployments run on `device`: the engine on the CPU, candle elsewhere.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Backend::Engine
        } else {
            Backend::Candle
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Engine => "engine",
            Backend::Candle => "candle",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "engine" => Ok(Backend::Engine),
            "candle" => Ok(Backend::Candle),
            other => Err(Error::Config(format!(
                "unknown backend {other:?}: expected engine or candle"
            ))),
        }
    }
}

/// Most threads the engine's GEMMs may be asked to use (`--threads`, a node parameter).
pub const MAX_ENGINE_THREADS: usize = 256;

/// How an [`InferenceModel`] is built: device, backend and the backends' switches.
#[derive(Debug, Clone)]
pub struct InferenceOptions {
    /// Where the weights live and inference runs.
    pub device: Device,
    /// Which implementation runs the network (the engine needs the CPU).
    pub backend: Backend,
    /// Threads each engine GEMM may use.
    pub threads: usize,
    /// Which of our CUDA kernels the candle backend uses on a GPU.
    pub cuda: CudaKernels,
}

impl InferenceOptions {
    /// What deployments run on `device` ([`Backend::for_device`]), with every core and our
    /// CUDA kernels.
    pub fn for_device(device: &Device) -> Self {
        InferenceOptions {
            device: device.clone(),
            backend: Backend::for_device(device),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cuda: CudaKernels::default(),
        }
    }

    /// The same options with another backend.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The same options with `threads` engine threads (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    fn check(&self) -> Result<()> {
        if self.threads > MAX_ENGINE_THREADS {
            return Err(Error::Config(format!(
                "{} engine threads: at most {MAX_ENGINE_THREADS} (GEMM scratch is per thread)",
                self.threads
            )));
        }
        if self.backend == Backend::Engine && !self.device.is_cpu() {
            return Err(Error::Config(
                "the engine backend runs on the CPU only; use the candle backend on a GPU".into(),
            ));
        }
        Ok(())
    }
}

/// An HLFP or ResNet model for inference (eval mode only), with BatchNorm folded into conv
/// weights and biases. Its outputs match [`HlfpModel::forward`] to float rounding on either
/// backend.
///
/// Loaded as a cutout, it holds only the selected classes' branches (and, for nested, their
/// superclasses); forward passes may then use any selection within those classes.
#[derive(Debug)]
pub struct InferenceModel {
    net: Net<InferConv>,
    backend: Backend,
}

impl InferenceModel {
    /// Load from a safetensors file (memory-mapped) on the backend deployments use on `device`.
    /// With `cutout`, only those classes' rows of every stacked branch tensor are read from the
    /// file. ResNets and HLFP-1b-late-SP have no per-class branches, so a cutout loads them
    /// whole (their selection picks logits).
    pub fn load_file(
        path: impl AsRef<Path>,
        cfg: &ModelConfig,
        cutout: Option<&Selection>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_file_with(path, cfg, cutout, &InferenceOptions::for_device(device))
    }

    /// [`Self::load_file`] with explicit options (backend, threads, CUDA kernels).
    pub fn load_file_with(
        path: impl AsRef<Path>,
        cfg: &ModelConfig,
        cutout: Option<&Selection>,
        opts: &InferenceOptions,
    ) -> Result<Self> {
        opts.check()?;
        let file = MmapFile::open(path, &opts.device)?;
        Self::build(cfg, &file, cutout, opts)
    }

    /// Fold an in-memory map of named tensors (e.g. [`crate::model::weights::random_tensors`])
    /// for the backend deployments use on `device`.
    pub fn from_tensors(
        cfg: &ModelConfig,
        tensors: &HashMap<String, Tensor>,
        cutout: Option<&Selection>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_tensors_with(cfg, tensors, cutout, &InferenceOptions::for_device(device))
    }

    /// [`Self::from_tensors`] with explicit options.
    pub fn from_tensors_with(
        cfg: &ModelConfig,
        tensors: &HashMap<String, Tensor>,
        cutout: Option<&Selection>,
        opts: &InferenceOptions,
    ) -> Result<Self> {
        opts.check()?;
        let src = MapSource {
            map: tensors,
            device: opts.device.clone(),
        };
        Self::build(cfg, &src, cutout, opts)
    }

    /// Fold a trained [`HlfpModel`] (its current running statistics) for the backend
    /// deployments use on the model's device.
    pub fn from_model(model: &HlfpModel, cutout: Option<&Selection>) -> Result<Self> {
        let map = model.named_tensors();
        let device = map
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        Self::from_tensors(model.config(), &map, cutout, &device)
    }

    fn build(
        cfg: &ModelConfig,
        src: &dyn Source,
        cutout: Option<&Selection>,
        opts: &InferenceOptions,
    ) -> Result<Self> {
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
        let conv = |d: &ConvDesc| -> Result<InferConv> {
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
            let folded = FoldedConv::fold(
                &w, &gamma, &beta, &mean, &var, d.stride, d.pad, groups, d.grouped, opts.cuda,
            )
            .ctx(format!("folding {}", d.conv))?;
            check_finite(&folded, &d.conv)?;
            Ok(match opts.backend {
                Backend::Candle => InferConv::Candle(folded),
                Backend::Engine => InferConv::Engine(
                    EngineConv::from_folded(&folded, opts.threads)
                        .ctx(format!("packing {} for the engine", d.conv))?,
                ),
            })
        };
        let block = |b: &BlockDesc| -> Result<Block<InferConv>> {
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
            backend: opts.backend,
        })
    }

    /// The backend that runs this model.
    pub fn backend(&self) -> Backend {
        self.backend
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

/// Refuse a layer whose folded weights or bias hold NaN or infinity (a corrupt file, a
/// negative BatchNorm variance): they would give plausible-looking but meaningless outputs.
/// One sum per tensor, on its device: NaN and infinity survive a sum, so no copy of the weights
/// is needed (a sum of finite weights overflowing f32 would also be refused; no trained layer
/// comes near that).
fn check_finite(c: &FoldedConv, name: &str) -> Result<()> {
    for (what, t) in [("weight", &c.weight), ("bias", &c.bias)] {
        let sum = t
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f32>())
            .ctx(format!("checking {name}"))?;
        if !sum.is_finite() {
            return Err(Error::BadInput(format!(
                "{name}: the folded {what} holds NaN or infinity (non-finite weights, or a \
                 BatchNorm running_var below -eps)"
            )));
        }
    }
    Ok(())
}
