//! Augmentation for training the audio classifier: on the waveform, crops, gain, background
//! mixing and additive noise at a requested SNR, all driven by one seeded RNG so a run is
//! reproducible; on the log-mel window, SpecAugment's time and frequency masks.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Ranges and probabilities of each augmentation. Powers and SNRs are in dB.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioAugmentConfig {
    /// Samples per output window.
    pub window_samples: usize,
    /// Probability that a crop is centred on an active (loud) part of the clip rather than drawn
    /// uniformly; recordings have silent stretches that would otherwise become mislabelled windows.
    pub active_crop_prob: f32,
    /// A 10 ms block counts as active if its energy is within this many dB of the clip's loudest.
    pub active_within_db: f32,
    /// Gain applied last, uniform in this range (dB).
    pub gain_db: (f32, f32),
    /// Probability of mixing in a background clip.
    pub background_prob: f32,
    /// SNR of the clip over the mixed-in background, uniform in this range (dB).
    pub background_snr_db: (f32, f32),
    /// Probability of adding white noise.
    pub noise_prob: f32,
    /// SNR of the window over the white noise, uniform in this range (dB).
    pub noise_snr_db: (f32, f32),
    /// RMS of a white noise floor always added (dBFS, uniform in this range), so that zero
    /// padding never reaches the model as digital silence, which no microphone produces.
    pub noise_floor_dbfs: (f32, f32),
}

impl AudioAugmentConfig {
    /// The training recipe for windows of `window_samples` samples.
    pub fn new(window_samples: usize) -> Self {
        Self {
            window_samples,
            active_crop_prob: 0.9,
            active_within_db: 15.0,
            gain_db: (-20.0, 6.0),
            background_prob: 0.5,
            background_snr_db: (0.0, 20.0),
            noise_prob: 0.3,
            noise_snr_db: (0.0, 30.0),
            noise_floor_dbfs: (-120.0, -60.0),
        }
    }

    /// Reject impossible settings (empty window, reversed ranges, probabilities outside [0, 1]).
    pub fn validate(&self) -> Result<()> {
        if self.window_samples == 0 {
            return Err(Error::Config("augment window_samples must be > 0".into()));
        }
        for (name, p) in [
            ("active_crop_prob", self.active_crop_prob),
            ("background_prob", self.background_prob),
            ("noise_prob", self.noise_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!("{name} must be in [0, 1], got {p}")));
            }
        }
        for (name, (lo, hi)) in [
            ("gain_db", self.gain_db),
            ("background_snr_db", self.background_snr_db),
            ("noise_snr_db", self.noise_snr_db),
            ("noise_floor_dbfs", self.noise_floor_dbfs),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(Error::Config(format!(
                    "{name} must be a finite range lo <= hi, got ({lo}, {hi})"
                )));
            }
        }
        Ok(())
    }
}

/// Mean power (mean of squares) of `x`; 0 for an empty slice.
pub fn power(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64
}

/// Signal-to-noise ratio in dB of `signal` over `noise` (equal lengths).
pub fn snr_db(signal: &[f32], noise: &[f32]) -> f64 {
    10.0 * (power(signal) / power(noise)).log10()
}

/// Multiply `x` by a gain given in dB.
pub fn apply_gain_db(x: &mut [f32], gain_db: f32) {
    let g = 10f32.powf(gain_db / 20.0);
    x.iter_mut().for_each(|v| *v *= g);
}

/// Add `other`, scaled so that `signal` is `snr_db` above it, into `signal` (equal lengths).
/// Returns the scale applied to `other`; when either part is silent nothing is added (an SNR is
/// undefined) and the scale is 0.
pub fn mix_at_snr(signal: &mut [f32], other: &[f32], snr_db: f32) -> Result<f32> {
    if signal.len() != other.len() {
        return Err(Error::BadInput(format!(
            "mix_at_snr needs equal lengths, got {} and {}",
            signal.len(),
            other.len()
        )));
    }
    if !snr_db.is_finite() {
        return Err(Error::BadInput(format!("SNR must be finite, got {snr_db}")));
    }
    let ps = power(signal);
    let po = power(other);
    if ps <= 1e-20 || po <= 1e-20 {
        return Ok(0.0);
    }
    let scale = (ps / (po * 10f64.powf(snr_db as f64 / 10.0))).sqrt() as f32;
    signal
        .iter_mut()
        .zip(other)
        .for_each(|(s, &o)| *s += scale * o);
    Ok(scale)
}

/// Gaussian white noise with unit variance (Box-Muller; no extra crate).
pub fn white_noise(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // 1 - u keeps the log argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out.truncate(len);
    out
}

/// Add white noise at `snr_db` below the window's own power. The noise is scaled with its
/// measured power, so the realised SNR equals the requested one. Silent input is left as is.
pub fn add_noise_at_snr(x: &mut [f32], snr_db: f32, rng: &mut impl Rng) -> Result<()> {
    let noise = white_noise(x.len(), rng);
    mix_at_snr(x, &noise, snr_db).map(|_| ())
}

/// A window of `window_samples` from `clip`. A longer clip is cropped at `start` (clamped); a
/// shorter one is zero-padded and placed at offset `start` (clamped) inside the window.
pub fn crop_at(clip: &[f32], window_samples: usize, start: usize) -> Vec<f32> {
    if clip.len() >= window_samples {
        let s = start.min(clip.len() - window_samples);
        clip[s..s + window_samples].to_vec()
    } else {
        let mut out = vec![0.0; window_samples];
        let off = start.min(window_samples - clip.len());
        out[off..off + clip.len()].copy_from_slice(clip);
        out
    }
}

/// Starts (sample offsets) of the 10 ms blocks of `clip` whose energy is within `within_db` of
/// the loudest block.
pub fn active_blocks(clip: &[f32], within_db: f32) -> Vec<usize> {
    const BLOCK: usize = 160;
    let energies: Vec<f64> = clip.chunks(BLOCK).map(power).collect();
    let max = energies.iter().cloned().fold(0.0, f64::max);
    if max <= 0.0 {
        return Vec::new();
    }
    let thr = max * 10f64.powf(-within_db as f64 / 10.0);
    energies
        .iter()
        .enumerate()
        .filter(|(_, &e)| e >= thr)
        .map(|(i, _)| i * BLOCK)
        .collect()
}

/// Draws augmented training windows; all randomness comes from one seeded RNG.
#[derive(Debug, Clone)]
pub struct AudioAugmenter {
    cfg: AudioAugmentConfig,
    rng: StdRng,
}

impl AudioAugmenter {
    /// An augmenter with its own RNG seeded with `seed`.
    pub fn new(cfg: AudioAugmentConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &AudioAugmentConfig {
        &self.cfg
    }

    /// The RNG, for callers that draw their own choices (clip sampling) from the same stream.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A random crop of `clip`: with `active_crop_prob` one that contains a random active 10 ms
    /// block at a random position, otherwise a uniform one. Short clips land at a random offset.
    pub fn random_crop(&mut self, clip: &[f32]) -> Vec<f32> {
        let w = self.cfg.window_samples;
        if clip.len() <= w {
            let start = self.rng.random_range(0..=w - clip.len());
            return crop_at(clip, w, start);
        }
        let max_start = clip.len() - w;
        let active = if self.rng.random::<f32>() < self.cfg.active_crop_prob {
            active_blocks(clip, self.cfg.active_within_db)
        } else {
            Vec::new()
        };
        let start = if active.is_empty() {
            self.rng.random_range(0..=max_start)
        } else {
            let anchor = active[self.rng.random_range(0..active.len())];
            // Place the anchor block anywhere in the middle 80 % of the window.
            let pos = self.rng.random_range(w / 10..w - w / 10);
            anchor.saturating_sub(pos).min(max_start)
        };
        crop_at(clip, w, start)
    }

    /// One augmented window from `clip`: crop, optional background mix (a random crop of one of
    /// `backgrounds`), optional white noise, a low noise floor, then gain, clamped to [-1, 1].
    /// `backgrounds` must already exclude clips of `clip`'s own label.
    pub fn window(&mut self, clip: &[f32], backgrounds: &[&[f32]]) -> Result<Vec<f32>> {
        if let Some(p) = clip.iter().position(|v| !v.is_finite()) {
            return Err(Error::BadInput(format!(
                "clip has a non-finite sample at index {p}"
            )));
        }
        let mut x = self.random_crop(clip);
        if !backgrounds.is_empty() && self.rng.random::<f32>() < self.cfg.background_prob {
            let bg = backgrounds[self.rng.random_range(0..backgrounds.len())];
            let bg = self.random_crop(bg);
            let (lo, hi) = self.cfg.background_snr_db;
            let snr = self.rng.random_range(lo..=hi);
            mix_at_snr(&mut x, &bg, snr)?;
        }
        if self.rng.random::<f32>() < self.cfg.noise_prob {
            let (lo, hi) = self.cfg.noise_snr_db;
            let snr = self.rng.random_range(lo..=hi);
            add_noise_at_snr(&mut x, snr, &mut self.rng)?;
        }
        let (lo, hi) = self.cfg.noise_floor_dbfs;
        let floor = 10f32.powf(self.rng.random_range(lo..=hi) / 20.0);
        let noise = white_noise(x.len(), &mut self.rng);
        x.iter_mut().zip(&noise).for_each(|(v, n)| *v += floor * n);
        let (lo, hi) = self.cfg.gain_db;
        let gain = self.rng.random_range(lo..=hi);
        apply_gain_db(&mut x, gain);
        x.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
        Ok(x)
    }
}

/// SpecAugment (Park et al., 2019) without time warping: frequency and time masks on one log-mel
/// window. A mask's width is uniform in `0..=max`, its start uniform among the positions where it
/// fits; masks may overlap. Masked values are set to a per-bin fill value: the training loop uses
/// the model's normalisation mean, so a masked cell is 0 after normalisation ("no information")
/// rather than digital silence, which the model never sees at inference.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecAugmentConfig {
    /// Probability that a window is masked at all (0 = SpecAugment off).
    pub prob: f32,
    /// Frequency masks per masked window.
    pub freq_masks: usize,
    /// Widest frequency mask, in mel bins.
    pub max_freq_bins: usize,
    /// Time masks per masked window.
    pub time_masks: usize,
    /// Widest time mask, in frames.
    pub max_time_frames: usize,
}

impl SpecAugmentConfig {
    /// The recipe for windows of `window_frames` frames: with p = 0.8, 2 frequency masks of up to
    /// 8 bins and 2 time masks of up to 10 % of the frames (9 of 96).
    pub fn new(window_frames: usize) -> Self {
        Self {
            prob: 0.8,
            freq_masks: 2,
            max_freq_bins: 8,
            time_masks: 2,
            max_time_frames: window_frames / 10,
        }
    }

    /// No masking.
    pub fn off() -> Self {
        Self {
            prob: 0.0,
            freq_masks: 0,
            max_freq_bins: 0,
            time_masks: 0,
            max_time_frames: 0,
        }
    }

    /// Whether any window can be changed.
    pub fn is_active(&self) -> bool {
        self.prob > 0.0
            && ((self.freq_masks > 0 && self.max_freq_bins > 0)
                || (self.time_masks > 0 && self.max_time_frames > 0))
    }

    /// Reject settings that cannot apply to a `frames x n_mels` window: a probability outside
    /// [0, 1] or a mask wider than the window.
    pub fn validate(&self, frames: usize, n_mels: usize) -> Result<()> {
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(Error::Config(format!(
                "SpecAugment prob must be in [0, 1], got {}",
                self.prob
            )));
        }
        if self.freq_masks > 0 && self.max_freq_bins > n_mels {
            return Err(Error::Config(format!(
                "SpecAugment frequency masks of up to {} bins do not fit the window's {n_mels} mel bins",
                self.max_freq_bins
            )));
        }
        if self.time_masks > 0 && self.max_time_frames > frames {
            return Err(Error::Config(format!(
                "SpecAugment time masks of up to {} frames do not fit the window's {frames} frames",
                self.max_time_frames
            )));
        }
        Ok(())
    }
}

/// Which axis a [`SpecMask`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskAxis {
    /// Mel bins `start..start + width` of every frame.
    Freq,
    /// Frames `start..start + width`, all bins.
    Time,
}

/// One mask applied by [`spec_augment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecMask {
    /// Frequency or time.
    pub axis: MaskAxis,
    /// First masked bin or frame.
    pub start: usize,
    /// Masked bins or frames (may be 0).
    pub width: usize,
}

/// Apply SpecAugment to `window` (`frames x n_mels`, frame-major: `window[frame * n_mels + mel]`)
/// in place, setting masked cells of bin `mel` to `fill[mel]`. Returns the masks drawn (none
/// when the window was left alone), frequency masks first. Errors on a window or fill of the
/// wrong length and on a config that does not fit the window.
pub fn spec_augment(
    window: &mut [f32],
    frames: usize,
    n_mels: usize,
    fill: &[f32],
    cfg: &SpecAugmentConfig,
    rng: &mut impl Rng,
) -> Result<Vec<SpecMask>> {
    cfg.validate(frames, n_mels)?;
    if window.len() != frames * n_mels {
        return Err(Error::BadInput(format!(
            "SpecAugment window has {} values, expected {frames} frames x {n_mels} bins = {}",
            window.len(),
            frames * n_mels
        )));
    }
    if fill.len() != n_mels {
        return Err(Error::BadInput(format!(
            "SpecAugment fill has {} values, expected one per mel bin ({n_mels})",
            fill.len()
        )));
    }
    if !cfg.is_active() || rng.random::<f32>() >= cfg.prob {
        return Ok(Vec::new());
    }
    let mut masks = Vec::with_capacity(cfg.freq_masks + cfg.time_masks);
    for (axis, count, max, size) in [
        (MaskAxis::Freq, cfg.freq_masks, cfg.max_freq_bins, n_mels),
        (MaskAxis::Time, cfg.time_masks, cfg.max_time_frames, frames),
    ] {
        for _ in 0..count {
            let width = rng.random_range(0..=max);
            let start = rng.random_range(0..=size - width);
            masks.push(SpecMask { axis, start, width });
        }
    }
    for m in &masks {
        match m.axis {
            MaskAxis::Freq => {
                for frame in window.chunks_exact_mut(n_mels) {
                    frame[m.start..m.start + m.width]
                        .copy_from_slice(&fill[m.start..m.start + m.width]);
                }
            }
            MaskAxis::Time => {
                for frame in
                    window[m.start * n_mels..(m.start + m.width) * n_mels].chunks_exact_mut(n_mels)
                {
                    frame.copy_from_slice(fill);
                }
            }
        }
    }
    Ok(masks)
}

/// Mixup between training windows of different labels (Zhang et al., 2018), on the log-mel
/// values: a window becomes `w * itself + (1 - w) * another window of the batch with another
/// label`, and its target puts `w` on its own label and `1 - w` on the other's.
#[derive(Debug, Clone, PartialEq)]
pub struct MixupConfig {
    /// Probability that a window is mixed (0 = mixup off).
    pub prob: f32,
    /// The window's own weight `w` is uniform in `[min_weight, 1]`, so it stays the main sound.
    pub min_weight: f32,
}

impl MixupConfig {
    /// The recipe: with p = 0.5, own weight U(0.5, 1).
    pub fn new() -> Self {
        Self {
            prob: 0.5,
            min_weight: 0.5,
        }
    }

    /// No mixing.
    pub fn off() -> Self {
        Self {
            prob: 0.0,
            min_weight: 0.5,
        }
    }

    /// Whether any window can be mixed.
    pub fn is_active(&self) -> bool {
        self.prob > 0.0
    }

    /// Reject a probability or weight outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("prob", self.prob), ("min_weight", self.min_weight)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!(
                    "mixup {name} must be in [0, 1], got {v}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Labels `ys` as one-hot rows of `n_labels` (row-major); a label out of range is an error.
pub fn one_hot(ys: &[u32], n_labels: usize) -> Result<Vec<f32>> {
    if let Some(&y) = ys.iter().find(|&&y| y as usize >= n_labels) {
        return Err(Error::BadInput(format!(
            "label {y} is not below {n_labels}"
        )));
    }
    let mut targets = vec![0f32; ys.len() * n_labels];
    for (i, &y) in ys.iter().enumerate() {
        targets[i * n_labels + y as usize] = 1.0;
    }
    Ok(targets)
}

/// Apply mixup to a batch `xs` (`ys.len()` windows of `window_len` values) with labels `ys` in
/// place. Partners are drawn from the batch as it was before mixing, among windows of another
/// label (a window with no such partner is left alone). Returns the soft targets,
/// `ys.len() x n_labels`, row-major (one-hot for unmixed windows).
pub fn mixup_batch(
    xs: &mut [f32],
    ys: &[u32],
    window_len: usize,
    n_labels: usize,
    cfg: &MixupConfig,
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    if window_len == 0 || xs.len() != ys.len() * window_len {
        return Err(Error::BadInput(format!(
            "mixup batch has {} values for {} windows of {window_len}",
            xs.len(),
            ys.len()
        )));
    }
    let mut targets = one_hot(ys, n_labels)?;
    if !cfg.is_active() {
        return Ok(targets);
    }
    let orig = xs.to_vec();
    for (i, &y) in ys.iter().enumerate() {
        if rng.random::<f32>() >= cfg.prob {
            continue;
        }
        let others: Vec<usize> = (0..ys.len()).filter(|&j| ys[j] != y).collect();
        if others.is_empty() {
            continue;
        }
        let j = others[rng.random_range(0..others.len())];
        let w = rng.random_range(cfg.min_weight..=1.0);
        let partner = &orig[j * window_len..(j + 1) * window_len];
        xs[i * window_len..(i + 1) * window_len]
            .iter_mut()
            .zip(partner)
            .for_each(|(a, &b)| *a = w * *a + (1.0 - w) * b);
        let row = &mut targets[i * n_labels..(i + 1) * n_labels];
        row[y as usize] = w;
        row[ys[j] as usize] = 1.0 - w;
    }
    Ok(targets)
}
