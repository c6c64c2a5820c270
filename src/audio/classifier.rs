//! The audio cue classifier: a small candle CNN over one log-mel window, its safetensors I/O
//! (weights, labels, window length, front-end and feature normalisation in one file).
//!
//! Input: one window of `window_frames` log-mel frames x `n_mels` bins, row-major (frame-major),
//! exactly as the front-end in `audio::features` produces them (dB values, not normalised).
//! The model normalises each mel bin with the mean/std stored in the file, then runs
//! `channels.len()` stages that each halve time and frequency ([`Backbone`]: conv3x3 + batch
//! norm + ReLU + 2x2 max-pool, or MobileNetV2-style inverted residuals), flattens
//! channels x remaining frequency bins, pools over time (mean and max, concatenated) and maps to
//! one logit per label.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

pub use crate::audio::blocks::Backbone;
use crate::audio::blocks::Stages;
use crate::error::{CandleContext, Error, Result};
use crate::model::layers::InferConv;
use crate::model::Backend;

/// Value of the `format` metadata key; `load` refuses files without it.
pub const FORMAT: &str = "hlfp-audio-classifier-v1";

/// Frames per window of the shipped model: 96 frames of hop 160 at 16 kHz with n_fft 512 span
/// 512 + 95 * 160 = 15 712 samples (0.982 s). 96 = 6 * 2^4, so four 2x2 pools divide it evenly.
pub const DEFAULT_WINDOW_FRAMES: usize = 96;

/// Mel bins of the front-end.
pub const DEFAULT_N_MELS: usize = 64;

/// How the per-frame features become one score per label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingHead {
    /// Mean and max over time, concatenated, then one linear layer (the first shipped model).
    #[default]
    MeanMax,
    /// Decision-level attention: per frame, one logit and one attention score per label; the
    /// window's logit is the attention-weighted (softmax over time) sum of the frame logits, so
    /// a short call in a few frames can decide the window.
    Attention,
}

impl PoolingHead {
    /// Name stored in the weights file.
    pub fn name(self) -> &'static str {
        match self {
            Self::MeanMax => "meanmax",
            Self::Attention => "attention",
        }
    }

    /// Parse a stored or command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "meanmax" => Ok(Self::MeanMax),
            "attention" => Ok(Self::Attention),
            _ => Err(Error::Config(format!(
                "unknown pooling head {s:?}; expected \"meanmax\" or \"attention\""
            ))),
        }
    }
}

/// How a window is normalised before the first conv block (after the per-bin [`FeatureNorm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowNorm {
    /// Nothing more: the network sees absolute (normalised) levels (the first shipped models).
    #[default]
    None,
    /// Each mel band's mean over the window is subtracted, so a fixed per-band offset in dB (a
    /// microphone's or a room's colouration, a gain) and a steady background's level cancel:
    /// the network sees how each band changes within the window, not how a setup sounds.
    BandMean,
}

impl WindowNorm {
    /// Name stored in the weights file.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::BandMean => "band_mean",
        }
    }

    /// Parse a stored or command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "band_mean" => Ok(Self::BandMean),
            _ => Err(Error::Config(format!(
                "unknown window normalisation {s:?}; expected \"none\" or \"band_mean\""
            ))),
        }
    }
}

/// How logits become the scores the detector thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// One softmax over the labels (trained with cross-entropy): the scores sum to 1, so a
    /// sound unlike every label is still pushed onto one of them.
    #[default]
    Softmax,
    /// One sigmoid per label (trained one-vs-rest with binary cross-entropy, as audio taggers
    /// are): a sound unlike every label may score low on all of them.
    Sigmoid,
}

impl OutputKind {
    /// Name stored in the weights file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Sigmoid => "sigmoid",
        }
    }

    /// Parse a stored or command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "softmax" => Ok(Self::Softmax),
            "sigmoid" => Ok(Self::Sigmoid),
            _ => Err(Error::Config(format!(
                "unknown output {s:?}; expected \"softmax\" or \"sigmoid\""
            ))),
        }
    }
}

/// Shape of an [`AudioClassifier`]: what it reads and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClassifierConfig {
    /// Sound labels, one logit each, in output order.
    pub labels: Vec<String>,
    /// Log-mel frames per window.
    pub window_frames: usize,
    /// Mel bins per frame.
    pub n_mels: usize,
    /// Output channels of each conv block (each block halves time and frequency).
    pub channels: Vec<usize>,
    /// Human-readable description of the front-end the model expects (stored in the file).
    pub front_end: String,
    /// Pooling over time (files without a `head` key are [`PoolingHead::MeanMax`]).
    pub head: PoolingHead,
    /// Per-window normalisation (files without a `window_norm` key are [`WindowNorm::None`]).
    pub window_norm: WindowNorm,
    /// Scores from logits (files without an `output` key are [`OutputKind::Softmax`]).
    pub output: OutputKind,
    /// Blocks of the stages (files without a `backbone` key are [`Backbone::Plain`]).
    pub backbone: Backbone,
}

impl AudioClassifierConfig {
    /// The shipped recipe: 96 x 64 input, blocks of 16, 32, 64, 64 channels.
    pub fn new(labels: Vec<String>, front_end: impl Into<String>) -> Self {
        Self {
            labels,
            window_frames: DEFAULT_WINDOW_FRAMES,
            n_mels: DEFAULT_N_MELS,
            channels: vec![16, 32, 64, 64],
            front_end: front_end.into(),
            head: PoolingHead::MeanMax,
            window_norm: WindowNorm::None,
            output: OutputKind::Softmax,
            backbone: Backbone::Plain,
        }
    }

    /// Reject configs the network cannot run: no labels, duplicate labels, a window or mel count
    /// that the pools would shrink to zero.
    pub fn validate(&self) -> Result<()> {
        if self.labels.is_empty() {
            return Err(Error::Config(
                "audio classifier needs at least one label".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.labels {
            if l.is_empty() || !seen.insert(l.as_str()) {
                return Err(Error::Config(format!(
                    "audio classifier labels must be unique and non-empty, got {:?}",
                    self.labels
                )));
            }
        }
        if self.channels.is_empty() {
            return Err(Error::Config(
                "audio classifier needs at least one conv block".into(),
            ));
        }
        let shrink = 1usize << self.channels.len();
        if self.window_frames < shrink || self.n_mels < shrink {
            return Err(Error::Config(format!(
                "window {} frames x {} mels is too small for {} pooling blocks (need >= {shrink})",
                self.window_frames,
                self.n_mels,
                self.channels.len()
            )));
        }
        Ok(())
    }

    /// Values per window (`window_frames * n_mels`).
    pub fn window_len(&self) -> usize {
        self.window_frames * self.n_mels
    }
}

/// Per-mel-bin normalisation applied inside the model: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureNorm {
    /// Mean of each mel bin over the training windows (dB).
    pub mean: Vec<f32>,
    /// Standard deviation of each mel bin (dB), floored so it is never zero.
    pub std: Vec<f32>,
}

impl FeatureNorm {
    /// Identity normalisation (mean 0, std 1) for `n_mels` bins.
    pub fn identity(n_mels: usize) -> Self {
        Self {
            mean: vec![0.0; n_mels],
            std: vec![1.0; n_mels],
        }
    }

    /// Mean and std per bin over `windows` (each frames x `n_mels`, row-major). The std is floored
    /// at 1e-3 dB so a constant bin does not divide by zero.
    pub fn from_windows(windows: &[Vec<f32>], n_mels: usize) -> Result<Self> {
        if n_mels == 0 {
            return Err(Error::Config("n_mels must be > 0".into()));
        }
        let mut sum = vec![0f64; n_mels];
        let mut sum_sq = vec![0f64; n_mels];
        let mut count = 0usize;
        for w in windows {
            if w.len() % n_mels != 0 {
                return Err(Error::BadInput(format!(
                    "window of {} values is not a whole number of {n_mels}-bin frames",
                    w.len()
                )));
            }
            for frame in w.chunks_exact(n_mels) {
                for (i, &v) in frame.iter().enumerate() {
                    sum[i] += v as f64;
                    sum_sq[i] += (v as f64) * (v as f64);
                }
                count += 1;
            }
        }
        if count == 0 {
            return Err(Error::BadInput(
                "no frames to compute a feature norm from".into(),
            ));
        }
        let n = count as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum_sq
            .iter()
            .zip(&sum)
            .map(|(sq, s)| {
                let m = s / n;
                ((sq / n - m * m).max(0.0).sqrt() as f32).max(1e-3)
            })
            .collect();
        Ok(Self { mean, std })
    }
}

/// A small CNN that scores one log-mel window against each sound label.
#[derive(Debug, Clone)]
pub struct AudioClassifier {
    cfg: AudioClassifierConfig,
    norm: FeatureNorm,
    norm_mean: Tensor,
    norm_std: Tensor,
    stages: Stages,
    /// The stages with batch norm folded, on the device's backend (the CPU engine on the CPU),
    /// scoring windows when present: set by [`AudioClassifier::load`] (a loaded model is not
    /// trained further), absent while training.
    folded: Option<Stages<InferConv>>,
    head: Linear,
    /// Attention scores per frame and label ([`PoolingHead::Attention`] only).
    att: Option<Linear>,
    device: Device,
}

impl AudioClassifier {
    /// Build the network from `vb` (a `VarMap` for training, or stored weights) with the feature
    /// normalisation `norm` (kept outside `vb` so training never updates it).
    pub fn new(cfg: AudioClassifierConfig, norm: FeatureNorm, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        if norm.mean.len() != cfg.n_mels || norm.std.len() != cfg.n_mels {
            return Err(Error::Config(format!(
                "feature norm has {}/{} values, expected {} mel bins",
                norm.mean.len(),
                norm.std.len(),
                cfg.n_mels
            )));
        }
        if norm.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || norm.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::Config(
                "feature norm must be finite with std > 0".into(),
            ));
        }
        let device = vb.device().clone();
        let stages = Stages::new(cfg.backbone, &cfg.channels, vb.clone())
            .ctx(format!("audio classifier {} stages", cfg.backbone.name()))?;
        let c_in = *cfg.channels.last().unwrap_or(&1);
        let f_out = cfg.n_mels >> cfg.channels.len();
        let (head_in, att) = match cfg.head {
            PoolingHead::MeanMax => (2 * c_in * f_out, None),
            PoolingHead::Attention => (
                c_in * f_out,
                Some(
                    candle_nn::linear(c_in * f_out, cfg.labels.len(), vb.pp("att"))
                        .ctx("audio classifier attention")?,
                ),
            ),
        };
        let head = candle_nn::linear(head_in, cfg.labels.len(), vb.pp("head"))
            .ctx("audio classifier head")?;
        let norm_mean = Tensor::from_slice(&norm.mean, (1, 1, 1, cfg.n_mels), &device)
            .ctx("feature norm mean")?;
        let norm_std = Tensor::from_slice(&norm.std, (1, 1, 1, cfg.n_mels), &device)
            .ctx("feature norm std")?;
        Ok(Self {
            cfg,
            norm,
            norm_mean,
            norm_std,
            stages,
            folded: None,
            head,
            att,
            device,
        })
    }

    /// Load a model written by [`AudioClassifier::save`]: weights are memory-mapped, labels,
    /// window length, front-end and normalisation come from the same file.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let werr = |msg: String| Error::Weights {
            path: path.to_path_buf(),
            msg,
        };
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the file is opened read-only and the map lives only inside this function; a
        // concurrent writer could change bytes under us, which safetensors parsing then rejects.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&mmap)
            .map_err(|e| werr(format!("not a safetensors file: {e}")))?;
        let meta = header
            .metadata()
            .clone()
            .ok_or_else(|| werr("no __metadata__ map (labels, window) in file".into()))?;
        let (cfg, norm) = config_from_metadata(&meta, &mmap).map_err(werr)?;
        // NaN weights would make every window score NaN and the detector silently never fire.
        if let Some(name) = first_non_finite_tensor(&mmap) {
            return Err(werr(format!(
                "tensor {name} holds NaN or infinity; refusing weights that cannot score a window"
            )));
        }
        drop(mmap);
        // SAFETY: as above; candle keeps its own map of the same read-only file.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device) }
            .map_err(|e| werr(format!("cannot map weights: {e}")))?;
        let mut model = Self::new(cfg, norm, vb).map_err(|e| werr(e.to_string()))?;
        model.folded = Some(
            model
                .stages
                // One thread per GEMM: the stream scores one window at a time.
                .on_backend(Backend::for_device(device), 1)
                .map_err(|e| {
                    werr(format!(
                        "cannot build the scoring layers (batch norm folded): {e}"
                    ))
                })?,
        );
        Ok(model)
    }

    /// Write weights, batch-norm statistics, feature norm and metadata to one safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tensors = Vec::new();
        self.stages.named_tensors(&mut tensors);
        tensors.push(("head.weight".into(), self.head.weight().clone()));
        if let Some(b) = self.head.bias() {
            tensors.push(("head.bias".into(), b.clone()));
        }
        if let Some(att) = &self.att {
            tensors.push(("att.weight".into(), att.weight().clone()));
            if let Some(b) = att.bias() {
                tensors.push(("att.bias".into(), b.clone()));
            }
        }
        tensors.push((
            "norm.mean".into(),
            self.norm_mean.flatten_all().ctx("norm mean")?,
        ));
        tensors.push((
            "norm.std".into(),
            self.norm_std.flatten_all().ctx("norm std")?,
        ));
        // Tensors may live on another device; safetensors needs host memory.
        let tensors: Vec<(String, Tensor)> = tensors
            .into_iter()
            .map(|(n, t)| {
                t.to_device(&Device::Cpu)
                    .and_then(|t| t.contiguous())
                    .map(|t| (n, t))
            })
            .collect::<candle_core::Result<_>>()
            .ctx("copy weights to host")?;
        safetensors::serialize_to_file(tensors, Some(self.metadata()), path).map_err(|e| {
            Error::Weights {
                path: path.to_path_buf(),
                msg: format!("cannot write: {e}"),
            }
        })
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert(
            "labels".into(),
            serde_json::to_string(&self.cfg.labels).unwrap_or_default(),
        );
        m.insert("window_frames".into(), self.cfg.window_frames.to_string());
        m.insert("n_mels".into(), self.cfg.n_mels.to_string());
        m.insert(
            "channels".into(),
            serde_json::to_string(&self.cfg.channels).unwrap_or_default(),
        );
        m.insert("front_end".into(), self.cfg.front_end.clone());
        m.insert("head".into(), self.cfg.head.name().into());
        m.insert("window_norm".into(), self.cfg.window_norm.name().into());
        m.insert("output".into(), self.cfg.output.name().into());
        m.insert("backbone".into(), self.cfg.backbone.name().into());
        m
    }

    /// Sound labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.cfg.labels
    }

    /// Log-mel frames per window.
    pub fn window_frames(&self) -> usize {
        self.cfg.window_frames
    }

    /// Mel bins per frame.
    pub fn n_mels(&self) -> usize {
        self.cfg.n_mels
    }

    /// The config this model was built with.
    pub fn config(&self) -> &AudioClassifierConfig {
        &self.cfg
    }

    /// The feature normalisation stored with the model.
    pub fn feature_norm(&self) -> &FeatureNorm {
        &self.norm
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits for a batch of raw log-mel windows shaped `(batch, window_frames, n_mels)`.
    /// `train` switches batch norm to batch statistics (and updates its running statistics).
    /// There is no dropout: candle's CPU RNG cannot be seeded, and a seeded run must be
    /// reproducible; augmentation regularises instead.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, t, f) = x.dims3()?;
        if t != self.cfg.window_frames || f != self.cfg.n_mels {
            candle_core::bail!(
                "audio classifier expects (batch, {}, {}) windows, got {:?}",
                self.cfg.window_frames,
                self.cfg.n_mels,
                x.shape()
            );
        }
        let mut x = x
            .reshape((b, 1, t, f))?
            .broadcast_sub(&self.norm_mean)?
            .broadcast_div(&self.norm_std)?;
        if self.cfg.window_norm == WindowNorm::BandMean {
            x = x.broadcast_sub(&x.mean_keepdim(2)?)?;
        }
        let x = match (&self.folded, train) {
            (Some(folded), false) => folded.forward_t(&x, false)?,
            _ => self.stages.forward_t(&x, train)?,
        };
        // (b, c, t', f') -> (b, t', c * f'): frequency stays a position (a meow and a bark
        // differ in *where* the energy is, which a frequency average would throw away); then
        // mean and max over time, so a short call anywhere in the window counts.
        let (b, c, t, f) = x.dims4()?;
        let x = x.permute((0, 2, 1, 3))?.reshape((b, t, c * f))?;
        match &self.att {
            None => {
                let pooled = Tensor::cat(&[x.mean(1)?, x.max(1)?], 1)?;
                self.head.forward(&pooled)
            }
            Some(att) => {
                let (frame_logits, weights) = self.frame_outputs(&x, att)?;
                (frame_logits * weights)?.sum(1)
            }
        }
    }

    /// Per-frame logits and attention weights (softmax over time), each `(b, t', labels)`.
    fn frame_outputs(&self, x: &Tensor, att: &Linear) -> candle_core::Result<(Tensor, Tensor)> {
        let logits = self.head.forward(x)?;
        let weights = candle_nn::ops::softmax(&att.forward(x)?, 1)?;
        Ok((logits, weights))
    }

    /// Scores per label (softmax or sigmoid, [`OutputKind`]) for one window of `window_frames * n_mels` values
    /// (frame-major), as produced by the front-end.
    pub fn predict(&self, window: &[f32]) -> Result<Vec<f32>> {
        let mut out = self.predict_batch(&[window])?;
        out.pop()
            .ok_or_else(|| Error::BadInput("empty prediction batch".into()))
    }

    /// Scores per label for each window (see [`AudioClassifier::predict`]).
    pub fn predict_batch(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let len = self.cfg.window_len();
        let mut flat = Vec::with_capacity(len * windows.len());
        for (i, w) in windows.iter().enumerate() {
            if w.len() != len {
                return Err(Error::BadInput(format!(
                    "audio window {i} has {} values, expected {} frames x {} mels = {len}",
                    w.len(),
                    self.cfg.window_frames,
                    self.cfg.n_mels
                )));
            }
            if let Some(p) = w.iter().position(|v| !v.is_finite()) {
                return Err(Error::BadInput(format!(
                    "audio window {i} has a non-finite value ({}) at index {p}",
                    w[p]
                )));
            }
            flat.extend_from_slice(w);
        }
        let x = Tensor::from_vec(
            flat,
            (windows.len(), self.cfg.window_frames, self.cfg.n_mels),
            &self.device,
        )
        .ctx("audio window tensor")?;
        let probs = self
            .forward_t(&x, false)
            .and_then(|l| match self.cfg.output {
                OutputKind::Softmax => candle_nn::ops::softmax_last_dim(&l),
                OutputKind::Sigmoid => candle_nn::ops::sigmoid(&l),
            })
            .and_then(|p| p.to_device(&Device::Cpu))
            .and_then(|p| p.to_vec2::<f32>())
            .ctx("audio classifier forward")?;
        Ok(probs)
    }
}

/// Parse labels, shape and normalisation from a file's metadata and `norm.*` tensors.
fn config_from_metadata(
    meta: &HashMap<String, String>,
    bytes: &[u8],
) -> std::result::Result<(AudioClassifierConfig, FeatureNorm), String> {
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| format!("metadata has no {k:?} key"))
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(format!("format {format:?}, expected {FORMAT:?}"));
    }
    let labels: Vec<String> =
        serde_json::from_str(get("labels")?).map_err(|e| format!("labels: {e}"))?;
    let window_frames: usize = get("window_frames")?
        .parse()
        .map_err(|e| format!("window_frames: {e}"))?;
    let n_mels: usize = get("n_mels")?.parse().map_err(|e| format!("n_mels: {e}"))?;
    let channels: Vec<usize> =
        serde_json::from_str(get("channels")?).map_err(|e| format!("channels: {e}"))?;
    let front_end = get("front_end")?.clone();
    let head = match meta.get("head") {
        Some(h) => PoolingHead::parse(h).map_err(|e| e.to_string())?,
        None => PoolingHead::MeanMax,
    };
    let window_norm = match meta.get("window_norm") {
        Some(n) => WindowNorm::parse(n).map_err(|e| e.to_string())?,
        None => WindowNorm::None,
    };
    let output = match meta.get("output") {
        Some(o) => OutputKind::parse(o).map_err(|e| e.to_string())?,
        None => OutputKind::Softmax,
    };
    let backbone = match meta.get("backbone") {
        Some(b) => Backbone::parse(b).map_err(|e| e.to_string())?,
        None => Backbone::Plain,
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let read = |name: &str| -> std::result::Result<Vec<f32>, String> {
        let v = st.tensor(name).map_err(|e| format!("{name}: {e}"))?;
        if v.dtype() != safetensors::Dtype::F32 || v.shape() != [n_mels] {
            return Err(format!(
                "{name}: expected f32 [{n_mels}], got {:?} {:?}",
                v.dtype(),
                v.shape()
            ));
        }
        Ok(v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let norm = FeatureNorm {
        mean: read("norm.mean")?,
        std: read("norm.std")?,
    };
    Ok((
        AudioClassifierConfig {
            labels,
            window_frames,
            n_mels,
            channels,
            front_end,
            head,
            window_norm,
            output,
            backbone,
        },
        norm,
    ))
}

/// The streaming detector scores windows through this trait.
impl crate::audio::detector::WindowScorer for AudioClassifier {
    fn labels(&self) -> &[String] {
        AudioClassifier::labels(self)
    }

    fn window_frames(&self) -> usize {
        AudioClassifier::window_frames(self)
    }

    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        self.predict(window)
    }
}

/// The name of the first F32 tensor of a safetensors file holding NaN or infinity.
fn first_non_finite_tensor(bytes: &[u8]) -> Option<String> {
    let st = safetensors::SafeTensors::deserialize(bytes).ok()?;
    let bad = st.iter().find_map(|(name, view)| {
        (view.dtype() == safetensors::Dtype::F32
            && view
                .data()
                .chunks_exact(4)
                .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()))
        .then(|| name.to_string())
    });
    bad
}
