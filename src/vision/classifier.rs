//! A vision model behind the runtime's [`FrameClassifier`]: preprocessing, the
//! [`InferenceModel`] on the backend deployments use on the chosen device (the engine on the
//! CPU, candle on CUDA), softmax over the active branches, and the MACs each active set costs.
//!
//! On CUDA each (active set, gains) pair is captured once as a CUDA graph
//! ([`crate::kernels::cuda_graph::GraphForward`]) and replayed for every later frame with one launch; cues
//! change the pair rarely, frames arrive many times a second. At most [`MAX_GRAPHS`] graphs
//! are kept. If a capture fails the classifier says so once and runs eagerly from then on.

use crate::error::CandleContext;
use crate::model::{cost, InferenceModel, InferenceOptions, ModelConfig, ModelFiles, Selection};
use crate::pipeline::{Classified, Frame, FrameClassifier};
use crate::vision::preprocess::{PreprocessConfig, Preprocessor};
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when the binary has the `cuda` feature and a GPU answers, else CPU.
    Auto,
    /// The CPU GEMM engine.
    Cpu,
    /// candle's CUDA backend on GPU `n`.
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
                _ => Err(Error::Config(format!(
                    "unknown device {s:?}: expected auto, cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

impl DeviceChoice {
    /// The candle device: `Auto` is a GPU when the build has CUDA and one answers, else the
    /// CPU; `Cuda(n)` fails clearly without the `cuda` feature or without GPU `n`. GPUs are set
    /// up for low-latency inference ([`crate::kernels::cuda_graph::cuda_device`]).
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => crate::kernels::cuda_graph::cuda_device(n, true),
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    Ok(crate::kernels::cuda_graph::cuda_device(0, true).unwrap_or(Device::Cpu))
                } else {
                    Ok(Device::Cpu)
                }
            }
        }
    }
}

/// CUDA graphs kept per classifier (one per recent (active set, gains) pair).
pub const MAX_GRAPHS: usize = 16;

/// The captured graphs of a CUDA classifier, by (active set, gain bit patterns).
#[derive(Default)]
struct Graphs {
    #[cfg(feature = "cuda")]
    by_key: HashMap<(Vec<usize>, Vec<u32>), crate::kernels::cuda_graph::GraphForward>,
    /// Set after a capture failed: run eagerly from then on.
    #[cfg(feature = "cuda")]
    disabled: bool,
}

/// A loaded vision model ready to classify RGB8 frames.
pub struct VisionClassifier {
    cfg: ModelConfig,
    model: InferenceModel,
    device: Device,
    pre: Preprocessor,
    input: Vec<f32>,
    macs: HashMap<Vec<usize>, u64>,
    device_name: String,
    graphs: Graphs,
}

impl VisionClassifier {
    /// Load `weights` (safetensors) with its config; `threads` is the CPU engine's thread count.
    pub fn load(
        weights: &Path,
        cfg: &ModelConfig,
        device: DeviceChoice,
        threads: usize,
    ) -> Result<Self> {
        cfg.architecture()?;
        let device = device.device()?;
        let opts = InferenceOptions::for_device(&device).with_threads(threads);
        let model = InferenceModel::load_file_with(weights, cfg, None, &opts)?;
        let device_name = if device.is_cpu() {
            format!(
                "cpu ({} threads, {} backend)",
                opts.threads,
                model.backend()
            )
        } else {
            format!("cuda ({} backend)", model.backend())
        };
        Ok(VisionClassifier {
            cfg: cfg.clone(),
            model,
            device,
            pre: Preprocessor::new(PreprocessConfig::imagenet(cfg.input_size))?,
            input: Vec::new(),
            macs: HashMap::new(),
            device_name,
            graphs: Graphs::default(),
        })
    }

    /// Load a model named as every command names one ([`ModelFiles::resolve`]: a weights file
    /// with its sidecar config, or a training output directory).
    pub fn load_bundle(weights: &Path, device: DeviceChoice, threads: usize) -> Result<Self> {
        let files = ModelFiles::resolve(weights, None)?;
        Self::load(&files.weights, &files.config, device, threads)
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Where inference runs, in words.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Conv+linear MACs of one frame with `active` branches (cached per active set).
    pub fn macs(&mut self, active: &[usize]) -> Result<u64> {
        if let Some(&m) = self.macs.get(active) {
            return Ok(m);
        }
        let m = cost(&self.cfg, Some(active))?.macs;
        self.macs.insert(active.to_vec(), m);
        Ok(m)
    }

    /// Logits of an RGB8 image over `active` (sorted class indices) with per-class `gains`.
    pub fn logits_rgb8(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        active: &[usize],
        gains: &[f32],
    ) -> Result<Vec<f32>> {
        let s = self.cfg.input_size;
        self.input.resize(3 * s * s, 0.0);
        self.pre.process_into(rgb, width, height, &mut self.input)?;
        let x = Tensor::from_slice(&self.input, (1, 3, s, s), &self.device).ctx("input tensor")?;
        let sel = Selection::from_indices(&self.cfg, active)?;
        if sel.classes() != active {
            // Logits come back in the selection's (sorted) order: callers pair them with
            // `active`, so an unsorted list would mislabel every score.
            return Err(Error::BadInput(format!(
                "active classes must be sorted and unique, got {active:?}"
            )));
        }
        let m = &self.model;
        let y = match graph_forward(&mut self.graphs, m, &x, &sel, active, gains)? {
            Some(y) => y,
            None => m.forward(&x, &sel, gains)?,
        };
        y.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .ctx("reading logits")
    }

    /// The model that classifies (its backend, loaded classes, config).
    pub fn model(&self) -> &InferenceModel {
        &self.model
    }

    /// CUDA graphs captured so far (0 on the CPU, or where capture failed).
    pub fn cached_graphs(&self) -> usize {
        #[cfg(feature = "cuda")]
        return self.graphs.by_key.len();
        #[cfg(not(feature = "cuda"))]
        0
    }
}

/// The logits through the CUDA graph of `(active, gains)`, capturing it first if needed; `None`
/// where graphs do not apply (CPU tensors, a device not set up by [`crate::kernels::cuda_graph::cuda_device`],
/// a build without CUDA, or after a failed capture).
#[cfg(feature = "cuda")]
fn graph_forward(
    graphs: &mut Graphs,
    m: &InferenceModel,
    x: &Tensor,
    sel: &Selection,
    active: &[usize],
    gains: &[f32],
) -> Result<Option<Tensor>> {
    let tuned = x
        .device()
        .as_cuda_device()
        .is_ok_and(|d| !d.is_event_tracking());
    if graphs.disabled || !tuned {
        return Ok(None);
    }
    let key = (active.to_vec(), gains.iter().map(|g| g.to_bits()).collect());
    if let Some(g) = graphs.by_key.get(&key) {
        return g.run(x).map(Some);
    }
    if graphs.by_key.len() >= MAX_GRAPHS {
        graphs.by_key.clear();
    }
    match crate::kernels::cuda_graph::GraphForward::capture(x, |t| m.forward(t, sel, gains)) {
        Ok(g) => {
            let y = g.run(x)?;
            graphs.by_key.insert(key, g);
            Ok(Some(y))
        }
        Err(e) => {
            // Bad input fails the eager pass too: report that, keep graphs for good input.
            let eager = m.forward(x, sel, gains)?;
            tracing::warn!("CUDA graph capture failed, running eagerly from now on: {e}");
            graphs.disabled = true;
            Ok(Some(eager))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn graph_forward(
    _: &mut Graphs,
    _: &InferenceModel,
    _: &Tensor,
    _: &Selection,
    _: &[usize],
    _: &[f32],
) -> Result<Option<Tensor>> {
    Ok(None)
}

/// Softmax over the active set (paper eq. 2), numerically stable.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

impl FrameClassifier for VisionClassifier {
    fn class_names(&self) -> &[String] {
        &self.cfg.class_names
    }

    fn classify(&mut self, frame: &Frame, active: &[usize], gains: &[f32]) -> Result<Classified> {
        frame.validate()?;
        let logits = self.logits_rgb8(
            &frame.rgb,
            frame.width as usize,
            frame.height as usize,
            active,
            gains,
        )?;
        let probs = softmax(&logits);
        Ok(Classified {
            scores: active.iter().copied().zip(probs).collect(),
            macs: self.macs(active)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice_parses() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert!("tpu"
            .parse::<DeviceChoice>()
            .unwrap_err()
            .to_string()
            .contains("cuda:N"));
    }

    #[test]
    fn softmax_is_a_distribution_and_stable() {
        let p = softmax(&[1000.0, 1000.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - p[1]).abs() < 1e-7 && p[2] < p[0]);
    }
}
