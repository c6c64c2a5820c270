//! Training and evaluation of the audio classifier: class-balanced sampling of augmented
//! windows, the AdamW loop and per-label held-out accuracy. No I/O: the caller
//! reads the clips, supplies the front-end as a function and shows progress.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use rand::Rng;

use super::augment::{
    crop_at, mixup_batch, spec_augment, AudioAugmentConfig, AudioAugmenter, MixupConfig,
    SpecAugmentConfig,
};
use super::classifier::{AudioClassifier, AudioClassifierConfig, FeatureNorm};
use super::mixstyle::{freq_mixstyle, FreqMixStyleConfig};
use crate::error::{CandleContext, Error, Result};

/// The front-end as the trainer sees it: samples in, `frames x n_mels` log-mel values out.
pub type FeatureFn<'a> = dyn Fn(&[f32]) -> Result<Vec<f32>> + 'a;

/// Labels that may be mixed under other clips as background. `chainsaw` is a background sound
/// too, but it is also a cue label (chainsaw -> chain_saw), so mixing it under a cat would teach
/// the model to ignore chainsaws; it is left out on purpose.
pub const DEFAULT_BACKGROUND_LABELS: [&str; 7] = [
    "rain",
    "sea_waves",
    "crackling_fire",
    "clock_tick",
    "helicopter",
    "sneezing",
    "crying_baby",
];

/// A decoded clip at the model's sample rate with its label index.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Index into the label list.
    pub label: usize,
    /// Path relative to the data directory.
    pub rel_path: String,
    /// Mono samples in [-1, 1] at the front-end's rate.
    pub samples: Vec<f32>,
}

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainAudioConfig {
    /// Passes over `steps_per_epoch` batches.
    pub epochs: usize,
    /// Batches per epoch (sampling is with replacement, so an epoch is a unit of work).
    pub steps_per_epoch: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Peak learning rate of AdamW; it decays along a cosine to 5 % of this.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of the sampler, augmentation and weight init.
    pub seed: u64,
    /// Augmented windows used to estimate the feature normalisation before training.
    pub norm_windows: usize,
    /// Label smoothing of the cross-entropy target: the true label gets `1 - eps`, the rest of
    /// the mass is spread evenly over all labels (0 = plain cross-entropy). Keeps the softmax
    /// from saturating, so the detector's thresholds sit on a usable range.
    pub label_smoothing: f64,
    /// Labels whose training clips are mixed under other clips as background.
    pub background_labels: Vec<String>,
    /// Augmentation settings; `window_samples` must give exactly `window_frames` frames.
    pub augment: AudioAugmentConfig,
    /// SpecAugment on each training window's log-mel values (after the waveform augmentation;
    /// masked cells get the normalisation mean). Drawn from its own RNG stream, so switching it
    /// on or off leaves the sampled clips and waveform augmentation unchanged.
    pub spec_augment: SpecAugmentConfig,
    /// Mixup of training windows with windows of other labels in the same batch (before
    /// SpecAugment), trained against the mixed soft targets; its own RNG stream too.
    pub mixup: MixupConfig,
    /// Frequency-wise MixStyle across the batch (after mixup, before SpecAugment); its own RNG
    /// stream as well.
    pub freq_mixstyle: FreqMixStyleConfig,
}

impl TrainAudioConfig {
    /// The shipped recipe for windows of `window_samples` samples.
    pub fn new(window_samples: usize) -> Self {
        Self {
            epochs: 24,
            steps_per_epoch: 50,
            batch_size: 32,
            lr: 3e-3,
            weight_decay: 1e-2,
            seed: 1,
            norm_windows: 512,
            label_smoothing: 0.1,
            background_labels: DEFAULT_BACKGROUND_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            augment: AudioAugmentConfig::new(window_samples),
            spec_augment: SpecAugmentConfig::off(),
            mixup: MixupConfig::off(),
            freq_mixstyle: FreqMixStyleConfig::off(),
        }
    }
}

/// What the progress callback sees after each step.
#[derive(Debug, Clone, Copy)]
pub struct AudioStepInfo {
    /// Steps done so far (1-based).
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Epoch of this step (1-based).
    pub epoch: usize,
    /// Cross-entropy of this batch.
    pub loss: f32,
    /// Exponential moving average of the loss (for display).
    pub loss_ema: f32,
    /// Learning rate used for this step.
    pub lr: f64,
}

/// Draws class-balanced batches of augmented feature windows from the training clips.
pub struct WindowSampler<'a> {
    by_label: Vec<Vec<&'a Clip>>,
    backgrounds: Vec<(usize, &'a [f32])>,
    augmenter: AudioAugmenter,
}

impl<'a> WindowSampler<'a> {
    /// A sampler over `clips` (`n_labels` labels). `background_labels` are label indices whose
    /// clips are mixed under others. Every label needs at least one clip.
    pub fn new(
        clips: &'a [Clip],
        n_labels: usize,
        background_labels: &[usize],
        augment: AudioAugmentConfig,
        seed: u64,
    ) -> Result<Self> {
        let mut by_label = vec![Vec::new(); n_labels];
        for c in clips {
            by_label
                .get_mut(c.label)
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "clip {} has label index {} of {n_labels}",
                        c.rel_path, c.label
                    ))
                })?
                .push(c);
        }
        if let Some(l) = by_label.iter().position(|v| v.is_empty()) {
            return Err(Error::BadInput(format!(
                "label index {l} has no training clips"
            )));
        }
        let backgrounds = clips
            .iter()
            .filter(|c| background_labels.contains(&c.label))
            .map(|c| (c.label, c.samples.as_slice()))
            .collect();
        Ok(Self {
            by_label,
            backgrounds,
            augmenter: AudioAugmenter::new(augment, seed)?,
        })
    }

    /// One augmented waveform window and its label: a label drawn uniformly (class-balanced),
    /// a clip of it drawn uniformly, backgrounds limited to other labels.
    pub fn sample_waveform(&mut self) -> Result<(Vec<f32>, usize)> {
        let label = self.augmenter.rng().random_range(0..self.by_label.len());
        let clips = &self.by_label[label];
        let clip = clips[self.augmenter.rng().random_range(0..clips.len())];
        let bgs: Vec<&[f32]> = self
            .backgrounds
            .iter()
            .filter(|(l, _)| *l != label)
            .map(|(_, s)| *s)
            .collect();
        Ok((self.augmenter.window(&clip.samples, &bgs)?, label))
    }

    /// A batch of feature windows (`n` of them, each `frames x n_mels`) and labels.
    pub fn sample_batch(
        &mut self,
        n: usize,
        features: &FeatureFn,
        window_len: usize,
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let mut xs = Vec::with_capacity(n * window_len);
        let mut ys = Vec::with_capacity(n);
        for _ in 0..n {
            let (wave, label) = self.sample_waveform()?;
            let f = features(&wave)?;
            if f.len() != window_len {
                return Err(Error::Config(format!(
                    "front-end gave {} values for a {}-sample window, the model needs {window_len}",
                    f.len(),
                    wave.len()
                )));
            }
            xs.extend_from_slice(&f);
            ys.push(label as u32);
        }
        Ok((xs, ys))
    }
}

/// Where training batches come from: raw log-mel windows (`n x frames x n_mels`, dB) and their
/// label indices.
pub trait BatchSource {
    /// The next `n` windows and labels.
    fn next_batch(&mut self, n: usize) -> Result<(Vec<f32>, Vec<u32>)>;
}

/// Waveform windows through the front-end: a [`WindowSampler`] with its feature function.
pub struct WaveBatches<'s, 'a, 'f> {
    /// The waveform sampler.
    pub sampler: &'s mut WindowSampler<'a>,
    /// The front-end.
    pub features: &'f FeatureFn<'f>,
    /// Values per window (`frames x n_mels`).
    pub window_len: usize,
}

impl BatchSource for WaveBatches<'_, '_, '_> {
    fn next_batch(&mut self, n: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        self.sampler.sample_batch(n, self.features, self.window_len)
    }
}

/// Train a classifier from scratch on `clips` (training split only). `features` is the
/// front-end; `on_step` is called after every step (progress display).
pub fn train(
    model_cfg: AudioClassifierConfig,
    clips: &[Clip],
    cfg: &TrainAudioConfig,
    features: &FeatureFn,
    device: &Device,
    on_step: &mut dyn FnMut(AudioStepInfo),
) -> Result<AudioClassifier> {
    model_cfg.validate()?;
    let bg: Vec<usize> = cfg
        .background_labels
        .iter()
        .filter_map(|b| model_cfg.labels.iter().position(|l| l == b))
        .collect();
    let mut sampler = WindowSampler::new(
        clips,
        model_cfg.labels.len(),
        &bg,
        cfg.augment.clone(),
        cfg.seed,
    )?;
    let window_len = model_cfg.window_len();
    let mut source = WaveBatches {
        sampler: &mut sampler,
        features,
        window_len,
    };
    train_with(model_cfg, &mut source, cfg, device, on_step)
}

/// Train a classifier from scratch on batches from `source`; the feature normalisation comes
/// from its first `cfg.norm_windows` windows. `cfg.augment` and `cfg.background_labels` are
/// the source's business and ignored here.
pub fn train_with(
    model_cfg: AudioClassifierConfig,
    source: &mut dyn BatchSource,
    cfg: &TrainAudioConfig,
    device: &Device,
    on_step: &mut dyn FnMut(AudioStepInfo),
) -> Result<AudioClassifier> {
    model_cfg.validate()?;
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        return Err(Error::Config(format!(
            "label_smoothing must be in [0, 1), got {}",
            cfg.label_smoothing
        )));
    }
    if cfg.epochs == 0 || cfg.steps_per_epoch == 0 || cfg.batch_size < 2 {
        return Err(Error::Config(format!(
            "need epochs > 0, steps_per_epoch > 0, batch_size >= 2 (batch norm), got {} / {} / {}",
            cfg.epochs, cfg.steps_per_epoch, cfg.batch_size
        )));
    }
    cfg.spec_augment
        .validate(model_cfg.window_frames, model_cfg.n_mels)?;
    cfg.mixup.validate()?;
    cfg.freq_mixstyle.validate()?;
    let n_labels = model_cfg.labels.len();
    let window_len = model_cfg.window_len();

    // Normalisation from augmented windows, so it matches what the network sees in training.
    // SpecAugment is left out of it: its masks are filled with this mean and never occur at
    // inference.
    let (xs, _) = source.next_batch(cfg.norm_windows.max(1))?;
    if xs.len() != cfg.norm_windows.max(1) * window_len {
        return Err(Error::Config(format!(
            "batch source gave {} values for {} windows of {window_len}",
            xs.len(),
            cfg.norm_windows.max(1)
        )));
    }
    let windows: Vec<Vec<f32>> = xs.chunks(window_len).map(|c| c.to_vec()).collect();
    let norm = FeatureNorm::from_windows(&windows, model_cfg.n_mels)?;
    let mask_fill = norm.mean.clone();
    let (frames, n_mels) = (model_cfg.window_frames, model_cfg.n_mels);
    let mut mask_rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x5BEC_A065)
    };
    let mut mix_rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x0031_C0DE)
    };
    let mut style_rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x00F5_7E1E)
    };

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = AudioClassifier::new(model_cfg, norm, vb)?;
    seeded_init(&varmap, cfg.seed, device)?;
    let params = candle_nn::ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(varmap.all_vars(), params).ctx("AdamW")?;

    let total = cfg.epochs * cfg.steps_per_epoch;
    let mut ema: Option<f32> = None;
    for step in 0..total {
        let lr = cosine_lr(cfg.lr, step, total);
        opt.set_learning_rate(lr);
        let (mut xs, ys) = source.next_batch(cfg.batch_size)?;
        if xs.len() != ys.len() * window_len {
            return Err(Error::Config(format!(
                "batch source gave {} values for {} windows of {window_len}",
                xs.len(),
                ys.len()
            )));
        }
        let soft_targets = if cfg.mixup.is_active() {
            Some(mixup_batch(
                &mut xs,
                &ys,
                window_len,
                n_labels,
                &cfg.mixup,
                &mut mix_rng,
            )?)
        } else {
            None
        };
        if cfg.freq_mixstyle.is_active() {
            freq_mixstyle(&mut xs, frames, n_mels, &cfg.freq_mixstyle, &mut style_rng)?;
        }
        if cfg.spec_augment.is_active() {
            for w in xs.chunks_exact_mut(window_len) {
                spec_augment(
                    w,
                    frames,
                    n_mels,
                    &mask_fill,
                    &cfg.spec_augment,
                    &mut mask_rng,
                )?;
            }
        }
        let loss = match soft_targets {
            Some(t) => train_step_soft(&model, &mut opt, xs, t, cfg.label_smoothing, device)?,
            None => train_step(&model, &mut opt, xs, ys, cfg.label_smoothing, device)?,
        };
        let e = ema.map_or(loss, |e| 0.95 * e + 0.05 * loss);
        ema = Some(e);
        on_step(AudioStepInfo {
            step: step + 1,
            total_steps: total,
            epoch: step / cfg.steps_per_epoch + 1,
            loss,
            loss_ema: e,
            lr,
        });
    }
    Ok(model)
}

/// Re-initialise the weights from a seeded RNG: candle's CPU RNG cannot be seeded, so without
/// this two runs with the same seed would start from different weights. Conv weights get He
/// normal init (fan-in), linear weights and biases uniform in +-1/sqrt(fan-in) (PyTorch's
/// default); batch-norm parameters keep their constant init.
pub fn seeded_init(varmap: &VarMap, seed: u64, device: &Device) -> Result<()> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5EED_1417);
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("varmap lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let head_fan_in = data
        .get("head.weight")
        .and_then(|v| v.dims().get(1).copied())
        .unwrap_or(1);
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let values: Vec<f32> = if name.ends_with("conv.weight") {
            let fan_in: usize = shape.dims()[1..].iter().product();
            let std = (2.0 / fan_in.max(1) as f64).sqrt() as f32;
            super::augment::white_noise(n, &mut rng)
                .into_iter()
                .map(|v| v * std)
                .collect()
        } else if name.starts_with("head.") || name.starts_with("att.") {
            let bound = 1.0 / (head_fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        } else {
            continue;
        };
        let t = Tensor::from_vec(values, shape, device).ctx("init tensor")?;
        var.set(&t).ctx(format!("init {name}"))?;
    }
    Ok(())
}

/// Cosine decay from `peak` to 5 % of it over `total` steps.
fn cosine_lr(peak: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    let floor = 0.05 * peak;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Mean cross-entropy of `logits` (batch x labels) against labels `y` (u32, batch) with label
/// smoothing `eps`: `(1 - eps) * CE(y) + eps * mean over labels of -log p`, as PyTorch's
/// `cross_entropy(..., label_smoothing=eps)`. `eps = 0` is plain cross-entropy.
pub fn smoothed_cross_entropy(
    logits: &Tensor,
    y: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let ce = candle_nn::loss::cross_entropy(logits, y)?;
    if eps == 0.0 {
        return Ok(ce);
    }
    let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let uniform = log_p.mean(candle_core::D::Minus1)?.mean_all()?.neg()?;
    (ce * (1.0 - eps))? + (uniform * eps)?
}

/// `(1 - eps) * targets + eps / labels`, the labels counted along `logits`' last dimension.
fn smoothed_targets(logits: &Tensor, targets: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let k = logits.dim(candle_core::D::Minus1)?;
    (targets * (1.0 - eps))? + eps / k as f64
}

/// Mean cross-entropy of `logits` (batch x labels) against soft targets (same shape, rows
/// summing to 1) with label smoothing `eps`: the targets become `(1 - eps) * t + eps / labels`.
/// For one-hot targets this equals [`smoothed_cross_entropy`].
pub fn soft_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let t = smoothed_targets(logits, targets, eps)?;
    let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    (t * log_p)?.sum(candle_core::D::Minus1)?.mean_all()?.neg()
}

/// Mean over windows of the summed one-vs-rest binary cross-entropy of `logits` (batch x
/// labels) against `targets` (same shape, in [0, 1]) smoothed to `(1 - eps) * t + eps / labels`:
/// the loss of an [`OutputKind::Sigmoid`](crate::audio::classifier::OutputKind) model. Computed
/// as `max(l, 0) - l t + ln(1 + e^-|l|)`, which never overflows.
pub fn binary_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let t = smoothed_targets(logits, targets, eps)?;
    let soft_plus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per = ((logits.relu()? - (logits * t)?)? + soft_plus)?;
    per.sum(candle_core::D::Minus1)?.mean_all()
}

/// The training loss of `model`'s output kind against soft targets.
fn loss_for(
    model: &AudioClassifier,
    logits: &Tensor,
    targets: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    match model.config().output {
        crate::audio::classifier::OutputKind::Softmax => soft_cross_entropy(logits, targets, eps),
        crate::audio::classifier::OutputKind::Sigmoid => binary_cross_entropy(logits, targets, eps),
    }
}

/// One AdamW step against soft targets (`batch x labels`, row-major, e.g. from mixup); see
/// [`train_step`].
pub fn train_step_soft(
    model: &AudioClassifier,
    opt: &mut candle_nn::AdamW,
    xs: Vec<f32>,
    targets: Vec<f32>,
    label_smoothing: f64,
    device: &Device,
) -> Result<f32> {
    let cfg = model.config();
    let k = cfg.labels.len();
    if k == 0 || targets.len() % k != 0 {
        return Err(Error::BadInput(format!(
            "{} soft-target values are not whole rows of {k} labels",
            targets.len()
        )));
    }
    let n = targets.len() / k;
    let t = Tensor::from_vec(targets, (n, k), device).ctx("soft targets")?;
    step_with(model, opt, xs, n, device, |logits| {
        loss_for(model, logits, &t, label_smoothing)
    })
}

/// Forward `xs` (n windows) in train mode, take `loss(logits)`, one optimizer step; the loss
/// before the update.
fn step_with(
    model: &AudioClassifier,
    opt: &mut candle_nn::AdamW,
    xs: Vec<f32>,
    n: usize,
    device: &Device,
    loss: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<f32> {
    let cfg = model.config();
    let x = Tensor::from_vec(xs, (n, cfg.window_frames, cfg.n_mels), device).ctx("batch")?;
    let logits = model.forward_t(&x, true).ctx("forward")?;
    let loss = loss(&logits).ctx("loss")?;
    opt.backward_step(&loss).ctx("backward")?;
    loss.to_scalar::<f32>().ctx("loss value")
}

/// One AdamW step on a batch of raw feature windows `xs` (batch x frames x mels) with labels
/// `ys` and label smoothing `label_smoothing`; returns the batch's loss before the update.
pub fn train_step(
    model: &AudioClassifier,
    opt: &mut candle_nn::AdamW,
    xs: Vec<f32>,
    ys: Vec<u32>,
    label_smoothing: f64,
    device: &Device,
) -> Result<f32> {
    let n = ys.len();
    if model.config().output == crate::audio::classifier::OutputKind::Sigmoid {
        let targets = crate::audio::augment::one_hot(&ys, model.config().labels.len())?;
        return train_step_soft(model, opt, xs, targets, label_smoothing, device);
    }
    let y = Tensor::from_vec(ys, n, device).ctx("labels")?;
    step_with(model, opt, xs, n, device, |logits| {
        smoothed_cross_entropy(logits, &y, label_smoothing)
    })
}

/// Feature windows of a whole clip for evaluation: the clip is zero-padded (centred) to at
/// least `window_samples`, run through the front-end once, and cut into windows of
/// `window_frames` every `hop_frames` (the detector's view of a clip).
pub fn clip_windows(
    samples: &[f32],
    window_samples: usize,
    window_frames: usize,
    n_mels: usize,
    hop_frames: usize,
    features: &FeatureFn,
) -> Result<Vec<Vec<f32>>> {
    if hop_frames == 0 {
        return Err(Error::Config("hop_frames must be > 0".into()));
    }
    let padded;
    let wave = if samples.len() < window_samples {
        padded = crop_at(
            samples,
            window_samples,
            (window_samples - samples.len()) / 2,
        );
        &padded[..]
    } else {
        samples
    };
    let f = features(wave)?;
    let frames = f.len() / n_mels;
    if frames < window_frames {
        return Err(Error::Config(format!(
            "front-end gave {frames} frames for {} samples, need >= {window_frames}",
            wave.len()
        )));
    }
    Ok((0..=frames - window_frames)
        .step_by(hop_frames)
        .map(|s| f[s * n_mels..(s + window_frames) * n_mels].to_vec())
        .collect())
}

/// Held-out accuracy of one label.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEval {
    /// The label.
    pub label: String,
    /// Held-out clips of this label.
    pub clips: usize,
    /// Windows cut from them.
    pub windows: usize,
    /// Windows whose argmax is this label.
    pub window_correct: usize,
    /// Clips whose mean-over-windows probability has its argmax at this label.
    pub clip_correct_mean: usize,
    /// Clips whose single highest (window, label) score is this label.
    pub clip_correct_max: usize,
    /// Clips with at least one window scoring this label >= the cue threshold (detector recall).
    pub clip_hit_at_threshold: usize,
    /// Windows of *other* labels' clips that score this label >= the cue threshold.
    pub false_windows: usize,
}

/// Evaluation of a model on held-out clips.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipEvalReport {
    /// Per label, in model label order.
    pub per_label: Vec<LabelEval>,
    /// Windows from all clips.
    pub total_windows: usize,
    /// Clip-level confusion (mean rule): `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Probability threshold used for `clip_hit_at_threshold` and `false_windows`.
    pub threshold: f32,
    /// Hop between evaluation windows in frames.
    pub hop_frames: usize,
}

/// Score every clip window by window and tally per-label accuracy.
pub fn evaluate(
    model: &AudioClassifier,
    clips: &[Clip],
    window_samples: usize,
    hop_frames: usize,
    threshold: f32,
    features: &FeatureFn,
) -> Result<ClipEvalReport> {
    let labels = model.labels();
    let n = labels.len();
    let mut per_label: Vec<LabelEval> = labels
        .iter()
        .map(|l| LabelEval {
            label: l.clone(),
            clips: 0,
            windows: 0,
            window_correct: 0,
            clip_correct_mean: 0,
            clip_correct_max: 0,
            clip_hit_at_threshold: 0,
            false_windows: 0,
        })
        .collect();
    let mut confusion = vec![vec![0usize; n]; n];
    let mut total_windows = 0;
    for clip in clips {
        let t = clip.label;
        if t >= n {
            return Err(Error::BadInput(format!(
                "clip {} has label index {t} of {n}",
                clip.rel_path
            )));
        }
        let windows = clip_windows(
            &clip.samples,
            window_samples,
            model.window_frames(),
            model.n_mels(),
            hop_frames,
            features,
        )?;
        let refs: Vec<&[f32]> = windows.iter().map(|w| w.as_slice()).collect();
        let mut probs = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(64) {
            probs.extend(model.predict_batch(chunk)?);
        }
        let e = &mut per_label[t];
        e.clips += 1;
        e.windows += probs.len();
        total_windows += probs.len();
        let mut mean = vec![0f32; n];
        let mut best = (f32::MIN, 0usize);
        let mut hit = false;
        for p in &probs {
            let am = argmax(p);
            if am == t {
                per_label[t].window_correct += 1;
            }
            if p[t] >= threshold {
                hit = true;
            }
            for (j, &v) in p.iter().enumerate() {
                mean[j] += v;
                if v > best.0 {
                    best = (v, j);
                }
                if j != t && v >= threshold {
                    per_label[j].false_windows += 1;
                }
            }
        }
        let pm = argmax(&mean);
        confusion[t][pm] += 1;
        let e = &mut per_label[t];
        if pm == t {
            e.clip_correct_mean += 1;
        }
        if best.1 == t {
            e.clip_correct_max += 1;
        }
        if hit {
            e.clip_hit_at_threshold += 1;
        }
    }
    Ok(ClipEvalReport {
        per_label,
        total_windows,
        confusion,
        threshold,
        hop_frames,
    })
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
        .0
}
