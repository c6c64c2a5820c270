//! Training windows drawn in the mel-power domain: every clip's log-mel frames are computed once
//! (as linear mel power), and each window is a crop of them with background, noise, band limit,
//! spectral tilt and gain applied as power arithmetic, then taken to dB. Mixing in this domain
//! drops the cross terms of a waveform mix (they average to zero over a mel band), which is what
//! makes training on two shared cores affordable: no STFT per training window.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// One clip as linear mel power, `frames x n_mels`, frame-major.
#[derive(Debug, Clone)]
pub struct MelClip {
    /// Index into the model's labels.
    pub label: usize,
    /// Mel power (not dB) per frame and bin.
    pub power: Vec<f32>,
    /// Drawing weight among the clips of its label, and among the backgrounds (> 0, any scale;
    /// 1 for every clip = each clip alike).
    pub weight: f64,
}

impl MelClip {
    /// A clip from log-mel dB values (as `audio::features` produces them).
    pub fn from_db(label: usize, db: &[f32]) -> Self {
        Self {
            label,
            power: db.iter().map(|&v| 10f32.powf(v / 10.0)).collect(),
            weight: 1.0,
        }
    }

    /// The same clip drawn with `weight` (see [`MelClip::weight`]).
    pub fn with_weight(self, weight: f64) -> Self {
        Self { weight, ..self }
    }

    /// Frames in the clip for `n_mels` bins.
    pub fn frames(&self, n_mels: usize) -> usize {
        self.power.len() / n_mels.max(1)
    }
}

/// Ranges and probabilities of the mel-domain augmentation; levels in dB.
#[derive(Debug, Clone, PartialEq)]
pub struct MelAugmentConfig {
    /// Frames per window.
    pub window_frames: usize,
    /// Mel bins per frame.
    pub n_mels: usize,
    /// Probability that a crop holds an active frame (within `active_within_db` of the clip's
    /// loudest); otherwise the crop is uniform.
    pub active_crop_prob: f32,
    /// A frame is active within this many dB of the clip's loudest frame.
    pub active_within_db: f32,
    /// Probability of mixing in a background clip.
    pub background_prob: f32,
    /// Window-to-background power ratio, uniform in this range.
    pub background_snr_db: (f32, f32),
    /// Probability of white noise at `noise_snr_db`.
    pub noise_prob: f32,
    /// Window-to-noise power ratio, uniform in this range.
    pub noise_snr_db: (f32, f32),
    /// A white-noise floor always added, uniform in this range (dBFS: 0 = full-scale RMS).
    pub noise_floor_dbfs: (f32, f32),
    /// Probability of a band limit (bins from a uniform cut upward emptied before the noise
    /// floor), as in clips recorded at 8 or 11 kHz.
    pub band_limit_prob: f32,
    /// Lowest and highest first-emptied bin of the band limit.
    pub band_limit_bins: (usize, usize),
    /// Largest spectral tilt: the top bin is scaled by U(-t, t) dB relative to the lowest.
    pub tilt_db: f32,
    /// Largest shift of the labelled clip along the mel axis, in bins (uniform in (-s, s),
    /// linearly interpolated, edges repeated): another animal's pitch, a resampled recording.
    /// The background is not shifted. 0 turns it off.
    pub freq_shift_bins: f32,
    /// Probability of reverberating the labelled clip ([`reverberate`]): a far-off call in a
    /// room, where a close-miked recording has none.
    pub reverb_prob: f32,
    /// Reverberation time (60 dB decay) in frames, uniform in this range.
    pub reverb_rt60_frames: (f32, f32),
    /// Direct-to-reverberant energy ratio in dB, uniform in this range.
    pub reverb_drr_db: (f32, f32),
    /// Gain, uniform in this range.
    pub gain_db: (f32, f32),
    /// dB floor of the output (the front-end's `amin_power`).
    pub amin_power: f32,
}

impl MelAugmentConfig {
    /// The training recipe for `window_frames x n_mels` windows.
    pub fn new(window_frames: usize, n_mels: usize) -> Self {
        Self {
            window_frames,
            n_mels,
            active_crop_prob: 0.9,
            active_within_db: 15.0,
            background_prob: 0.8,
            background_snr_db: (-3.0, 25.0),
            noise_prob: 0.3,
            noise_snr_db: (0.0, 30.0),
            noise_floor_dbfs: (-100.0, -55.0),
            band_limit_prob: 0.25,
            band_limit_bins: (44, 60),
            tilt_db: 6.0,
            freq_shift_bins: 0.0,
            reverb_prob: 0.0,
            reverb_rt60_frames: (20.0, 100.0),
            reverb_drr_db: (-3.0, 12.0),
            gain_db: (-30.0, 6.0),
            amin_power: 1e-10,
        }
    }

    /// Reject empty windows, reversed ranges and probabilities outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("MelAugmentConfig: {m}")));
        if self.window_frames == 0 || self.n_mels == 0 {
            return bad("window_frames and n_mels must be > 0".into());
        }
        for (n, p) in [
            ("active_crop_prob", self.active_crop_prob),
            ("background_prob", self.background_prob),
            ("noise_prob", self.noise_prob),
            ("band_limit_prob", self.band_limit_prob),
            ("reverb_prob", self.reverb_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{n} must be in [0, 1], got {p}"));
            }
        }
        for (n, (lo, hi)) in [
            ("background_snr_db", self.background_snr_db),
            ("noise_snr_db", self.noise_snr_db),
            ("noise_floor_dbfs", self.noise_floor_dbfs),
            ("gain_db", self.gain_db),
            ("reverb_drr_db", self.reverb_drr_db),
            ("reverb_rt60_frames", self.reverb_rt60_frames),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return bad(format!(
                    "{n} must be a finite range lo <= hi, got ({lo}, {hi})"
                ));
            }
        }
        let (a, b) = self.band_limit_bins;
        if a > b || b > self.n_mels {
            return bad(format!(
                "band_limit_bins ({a}, {b}) must be ordered and <= n_mels"
            ));
        }
        if self.reverb_rt60_frames.0 < 1.0 {
            return bad(format!(
                "reverb_rt60_frames must be >= 1 frame, got {:?}",
                self.reverb_rt60_frames
            ));
        }
        if !(self.tilt_db.is_finite() && self.tilt_db >= 0.0 && self.amin_power > 0.0) {
            return bad("tilt_db must be >= 0 and amin_power > 0".into());
        }
        if !(self.freq_shift_bins.is_finite()
            && self.freq_shift_bins >= 0.0
            && self.freq_shift_bins < self.n_mels as f32)
        {
            return bad(format!(
                "freq_shift_bins must be in [0, n_mels), got {}",
                self.freq_shift_bins
            ));
        }
        Ok(())
    }
}

/// Every frame of `x` (frame-major, `n_mels` bins) moved `shift` bins up the mel axis (down when
/// negative), linearly interpolated; bins that would come from outside repeat the edge bin.
pub fn shift_bins(x: &mut [f32], n_mels: usize, shift: f32) {
    if shift == 0.0 || n_mels < 2 {
        return;
    }
    let last = (n_mels - 1) as f32;
    let mut src = vec![0f32; n_mels];
    for f in x.chunks_exact_mut(n_mels) {
        src.copy_from_slice(f);
        for (i, v) in f.iter_mut().enumerate() {
            let pos = (i as f32 - shift).clamp(0.0, last);
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n_mels - 1);
            let t = pos - lo as f32;
            *v = src[lo] * (1.0 - t) + src[hi] * t;
        }
    }
}

/// Exponentially decaying reverberation of mel power `x` (frame-major, `n_mels` bins), in
/// place: each frame's power also arrives in every later frame, `60 / rt60_frames` dB weaker per
/// frame, scaled so the reverberant energy of an impulse is `drr_db` below its direct energy.
/// Power adds (incoherent reflections); the tail of frames before the window is not known and
/// not added.
pub fn reverberate(x: &mut [f32], n_mels: usize, rt60_frames: f32, drr_db: f32) {
    if n_mels == 0 || rt60_frames.is_nan() || rt60_frames < 1.0 {
        return;
    }
    let a = 10f32.powf(-6.0 / rt60_frames);
    // Sum over k >= 1 of a^k = a / (1 - a): the impulse's reverberant energy before scaling.
    let wet = 10f32.powf(-drr_db / 10.0) * (1.0 - a) / a;
    let mut tail = vec![0f32; n_mels];
    let mut prev = vec![0f32; n_mels];
    for f in x.chunks_exact_mut(n_mels) {
        for ((t, p), v) in tail.iter_mut().zip(prev.iter_mut()).zip(f.iter_mut()) {
            *t = a * (*t + *p);
            *p = *v;
            *v += wet * *t;
        }
    }
}

/// Mean over frames of the summed mel power of `x` (a window, frame-major).
fn window_power(x: &[f32], n_mels: usize) -> f64 {
    let frames = (x.len() / n_mels).max(1);
    x.iter().map(|&v| v as f64).sum::<f64>() / frames as f64
}

/// Cumulative drawing weights of `clips`, or `None` when they all weigh the same.
fn cumulative_if_uneven(clips: &[&MelClip]) -> Option<Vec<f64>> {
    let first = clips.first()?.weight;
    if clips.iter().all(|c| c.weight == first) {
        return None;
    }
    let mut acc = 0.0;
    Some(
        clips
            .iter()
            .map(|c| {
                acc += c.weight;
                acc
            })
            .collect(),
    )
}

/// An index drawn in proportion to the steps of the cumulative weights `cum` (not empty).
fn draw_cumulative(rng: &mut StdRng, cum: &[f64]) -> usize {
    let total = cum.last().copied().unwrap_or(0.0);
    let r = rng.random_range(0.0..total);
    cum.iter()
        .position(|&c| r < c)
        .unwrap_or(cum.len().saturating_sub(1))
}

/// One of `clips` (not empty): uniformly when `cum` is `None`, else by its cumulative weights.
fn draw_clip<'c>(rng: &mut StdRng, clips: &[&'c MelClip], cum: Option<&[f64]>) -> &'c MelClip {
    match cum {
        None => clips[rng.random_range(0..clips.len())],
        Some(cum) => clips[draw_cumulative(rng, cum)],
    }
}

/// Draws augmented log-mel windows (dB) from mel clips, class-weighted, from one seeded RNG.
pub struct MelSampler<'a> {
    cfg: MelAugmentConfig,
    by_label: Vec<Vec<&'a MelClip>>,
    /// Per label, the cumulative clip weights, or `None` when its clips weigh alike (drawn
    /// uniformly: the same draws as before clips had weights).
    clip_cum: Vec<Option<Vec<f64>>>,
    /// Cumulative label weights for drawing a label.
    cum_weights: Vec<f64>,
    /// Per label, the background clips of other labels that may go under its windows, and
    /// their cumulative weights (`None`: drawn uniformly); built once, not per window.
    backgrounds_for: Vec<(Vec<&'a MelClip>, Option<Vec<f64>>)>,
    /// Unit-variance white noise as mel power frames (the noise floor's and noise's shape).
    unit_noise: Vec<f32>,
    rng: StdRng,
}

impl<'a> MelSampler<'a> {
    /// A sampler over `clips` with `label_weights[label]` (drawing probability, any scale; a
    /// label without clips must weigh 0), mixing `background_labels`' clips under windows of
    /// other labels. `unit_noise` is the front-end's mel power of unit-variance white noise
    /// (at least one window of frames).
    pub fn new(
        clips: &'a [MelClip],
        label_weights: &[f64],
        background_labels: &[usize],
        unit_noise: Vec<f32>,
        cfg: MelAugmentConfig,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let n = label_weights.len();
        let mut by_label = vec![Vec::new(); n];
        for c in clips {
            if c.power.len() % cfg.n_mels != 0 || c.power.is_empty() {
                return Err(Error::BadInput(format!(
                    "mel clip of label {} has {} values, not whole {}-bin frames",
                    c.label,
                    c.power.len(),
                    cfg.n_mels
                )));
            }
            if !(c.weight.is_finite() && c.weight > 0.0) {
                return Err(Error::BadInput(format!(
                    "mel clip of label {} has drawing weight {}; it must be finite and > 0",
                    c.label, c.weight
                )));
            }
            by_label
                .get_mut(c.label)
                .ok_or_else(|| Error::BadInput(format!("clip label {} of {n}", c.label)))?
                .push(c);
        }
        let clip_cum = by_label.iter().map(|cs| cumulative_if_uneven(cs)).collect();
        let mut cum_weights = Vec::with_capacity(n);
        let mut acc = 0.0;
        for (l, &w) in label_weights.iter().enumerate() {
            if !(w.is_finite() && w >= 0.0) || (w > 0.0 && by_label[l].is_empty()) {
                return Err(Error::Config(format!(
                    "label {l}: weight {w} must be finite, >= 0, and 0 when it has no clips"
                )));
            }
            acc += w;
            cum_weights.push(acc);
        }
        if acc <= 0.0 {
            return Err(Error::Config("all label weights are 0".into()));
        }
        if unit_noise.len() < cfg.window_frames * cfg.n_mels {
            return Err(Error::Config(format!(
                "unit noise has {} values, need at least one window ({})",
                unit_noise.len(),
                cfg.window_frames * cfg.n_mels
            )));
        }
        let backgrounds: Vec<&MelClip> = clips
            .iter()
            .filter(|c| background_labels.contains(&c.label))
            .collect();
        let backgrounds_for = (0..n)
            .map(|label| {
                let others: Vec<&MelClip> = backgrounds
                    .iter()
                    .filter(|b| b.label != label)
                    .copied()
                    .collect();
                let cum = cumulative_if_uneven(&others);
                (others, cum)
            })
            .collect();
        Ok(Self {
            cfg,
            by_label,
            clip_cum,
            cum_weights,
            backgrounds_for,
            unit_noise,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &MelAugmentConfig {
        &self.cfg
    }

    /// A crop of `window_frames` frames of `power` (zero power outside the clip).
    fn crop(&mut self, power: &[f32], active: bool) -> Vec<f32> {
        let (w, m) = (self.cfg.window_frames, self.cfg.n_mels);
        let frames = power.len() / m;
        let mut out = vec![0f32; w * m];
        // `start` = clip frame at window frame 0 (may be negative: clip placed inside).
        let start: isize = if frames <= w {
            -(self.rng.random_range(0..=w - frames) as isize)
        } else if active {
            let energy: Vec<f32> = power.chunks_exact(m).map(|f| f.iter().sum()).collect();
            let max = energy.iter().cloned().fold(0f32, f32::max);
            let thr = max * 10f32.powf(-self.cfg.active_within_db / 10.0);
            let act: Vec<usize> = (0..frames).filter(|&i| energy[i] >= thr).collect();
            if act.is_empty() {
                self.rng.random_range(0..=frames - w) as isize
            } else {
                let anchor = act[self.rng.random_range(0..act.len())] as isize;
                // The anchor anywhere from a tenth of the window to its end: calls that have
                // only just begun at the window's end are what a low-latency detector sees.
                let pos = self.rng.random_range(w / 10..w) as isize;
                (anchor - pos).clamp(0, (frames - w) as isize)
            }
        } else {
            self.rng.random_range(0..=frames - w) as isize
        };
        for f in 0..w {
            let src = start + f as isize;
            if src >= 0 && (src as usize) < frames {
                let s = src as usize * m;
                out[f * m..(f + 1) * m].copy_from_slice(&power[s..s + m]);
            }
        }
        out
    }

    fn noise_crop(&mut self) -> Vec<f32> {
        let m = self.cfg.n_mels;
        let frames = self.unit_noise.len() / m;
        let s = self.rng.random_range(0..=frames - self.cfg.window_frames) * m;
        self.unit_noise[s..s + self.cfg.window_frames * m].to_vec()
    }

    /// One augmented window (dB, `window_frames x n_mels`) and its label.
    pub fn sample(&mut self) -> Result<(Vec<f32>, usize)> {
        let label = draw_cumulative(&mut self.rng, &self.cum_weights);
        let clip = draw_clip(
            &mut self.rng,
            &self.by_label[label],
            self.clip_cum[label].as_deref(),
        );
        let active = self.rng.random::<f32>() < self.cfg.active_crop_prob;
        let mut x = self.crop(&clip.power, active);
        let m = self.cfg.n_mels;
        if self.cfg.freq_shift_bins > 0.0 {
            let s = self.cfg.freq_shift_bins;
            let shift = self.rng.random_range(-s..=s);
            shift_bins(&mut x, m, shift);
        }
        if self.cfg.reverb_prob > 0.0 && self.rng.random::<f32>() < self.cfg.reverb_prob {
            let (lo, hi) = self.cfg.reverb_rt60_frames;
            let rt60 = self.rng.random_range(lo..=hi);
            let (lo, hi) = self.cfg.reverb_drr_db;
            let drr = self.rng.random_range(lo..=hi);
            reverberate(&mut x, m, rt60, drr);
        }
        let p_sig = window_power(&x, m);
        let (others, cum) = &self.backgrounds_for[label];
        if !others.is_empty() && self.rng.random::<f32>() < self.cfg.background_prob {
            let bg = draw_clip(&mut self.rng, others, cum.as_deref());
            let b = self.crop(&bg.power, false);
            let p_bg = window_power(&b, m);
            let (lo, hi) = self.cfg.background_snr_db;
            let snr = self.rng.random_range(lo..=hi) as f64;
            if p_sig > 1e-20 && p_bg > 1e-20 {
                let k = (p_sig / (p_bg * 10f64.powf(snr / 10.0))) as f32;
                x.iter_mut().zip(&b).for_each(|(v, &n)| *v += k * n);
            }
        }
        if self.rng.random::<f32>() < self.cfg.noise_prob && p_sig > 1e-20 {
            let (lo, hi) = self.cfg.noise_snr_db;
            let snr = self.rng.random_range(lo..=hi) as f64;
            let n = self.noise_crop();
            let k = (p_sig / (window_power(&n, m) * 10f64.powf(snr / 10.0))) as f32;
            x.iter_mut().zip(&n).for_each(|(v, &u)| *v += k * u);
        }
        if self.rng.random::<f32>() < self.cfg.band_limit_prob {
            let (a, b) = self.cfg.band_limit_bins;
            let cut = self.rng.random_range(a..=b);
            for f in x.chunks_exact_mut(m) {
                f[cut..].iter_mut().for_each(|v| *v = 0.0);
            }
        }
        if self.cfg.tilt_db > 0.0 {
            let t = self.rng.random_range(-self.cfg.tilt_db..=self.cfg.tilt_db);
            let gains: Vec<f32> = (0..m)
                .map(|i| 10f32.powf(t * i as f32 / (m.max(2) - 1) as f32 / 10.0))
                .collect();
            for f in x.chunks_exact_mut(m) {
                f.iter_mut().zip(&gains).for_each(|(v, g)| *v *= g);
            }
        }
        let (lo, hi) = self.cfg.gain_db;
        let g = 10f32.powf(self.rng.random_range(lo..=hi) / 10.0);
        let (lo, hi) = self.cfg.noise_floor_dbfs;
        let floor = 10f32.powf(self.rng.random_range(lo..=hi) / 10.0);
        let n = self.noise_crop();
        let amin = self.cfg.amin_power;
        for (v, &u) in x.iter_mut().zip(&n) {
            *v = 10.0 * (*v * g + floor * u).max(amin).log10();
        }
        Ok((x, label))
    }
}

impl crate::audio::train::BatchSource for MelSampler<'_> {
    fn next_batch(&mut self, n: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let mut xs = Vec::with_capacity(n * self.cfg.window_frames * self.cfg.n_mels);
        let mut ys = Vec::with_capacity(n);
        for _ in 0..n {
            let (x, y) = self.sample()?;
            xs.extend_from_slice(&x);
            ys.push(y as u32);
        }
        Ok((xs, ys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(label: usize, frames: usize, level: f32) -> MelClip {
        MelClip {
            label,
            power: vec![level; frames * 4],
            weight: 1.0,
        }
    }

    #[test]
    fn windows_have_the_shape_and_the_drawn_labels() {
        let clips = vec![clip(0, 30, 1e-2), clip(1, 5, 1e-3), clip(2, 50, 1e-4)];
        let mut cfg = MelAugmentConfig::new(16, 4);
        cfg.band_limit_bins = (2, 4);
        let noise = vec![1.0; 40 * 4];
        let mut s = MelSampler::new(
            &clips,
            &[1.0, 1.0, 0.0],
            &[2],
            noise.clone(),
            cfg.clone(),
            7,
        )
        .unwrap();
        let mut seen = [0usize; 3];
        for _ in 0..200 {
            let (x, y) = s.sample().unwrap();
            assert_eq!(x.len(), 16 * 4);
            assert!(x
                .iter()
                .all(|v| v.is_finite() && *v >= -100.0 && *v <= 20.0));
            seen[y] += 1;
        }
        assert_eq!(seen[2], 0, "a zero-weight label is never drawn");
        assert!(seen[0] > 60 && seen[1] > 60, "{seen:?}");
        // Same seed, same windows.
        let mut a = MelSampler::new(
            &clips,
            &[1.0, 1.0, 0.0],
            &[2],
            noise.clone(),
            cfg.clone(),
            3,
        )
        .unwrap();
        let mut b = MelSampler::new(&clips, &[1.0, 1.0, 0.0], &[2], noise, cfg, 3).unwrap();
        assert_eq!(a.sample().unwrap(), b.sample().unwrap());
    }

    #[test]
    fn reverb_decays_by_the_rt60_and_keeps_the_direct_to_reverberant_ratio() {
        // An impulse in frame 0 of 2 bins, 400 frames: the tail falls 60 dB in 20 frames and
        // its energy is 6 dB below the direct frame's.
        let (m, frames) = (2, 400);
        let mut x = vec![0f32; m * frames];
        x[0] = 1.0;
        x[1] = 4.0;
        reverberate(&mut x, m, 20.0, 6.0);
        assert_eq!((x[0], x[1]), (1.0, 4.0), "the direct sound is unchanged");
        let db = |v: f32| 10.0 * v.log10();
        let drop = db(x[2 * m]) - db(x[22 * m]);
        assert!(
            (drop - 60.0).abs() < 1e-2,
            "60 dB over 20 frames, got {drop}"
        );
        for bin in 0..m {
            let tail: f32 = (1..frames).map(|f| x[f * m + bin]).sum();
            let drr = db(x[bin] / tail);
            assert!((drr - 6.0).abs() < 1e-2, "bin {bin}: DRR {drr} dB");
        }
        // Power only grows: reflections add.
        let mut y = vec![3.0f32; m * 10];
        reverberate(&mut y, m, 5.0, 0.0);
        assert!(y.windows(2).all(|w| w[1] >= w[0] - 1e-6) && y[m * 9] > 3.0);
        // Degenerate settings leave the input alone.
        let mut z = vec![1.0f32; 4];
        reverberate(&mut z, m, 0.5, 0.0);
        assert_eq!(z, vec![1.0; 4]);
    }

    #[test]
    fn the_sampler_reverberates_when_asked() {
        // One clip: a loud frame then silence. No background, noise, tilt or band limit.
        let mut power = vec![0f32; 8 * 4];
        power[..4].iter_mut().for_each(|v| *v = 1.0);
        let clips = vec![MelClip {
            label: 0,
            power,
            weight: 1.0,
        }];
        let tail_db = |reverb_prob: f32| {
            let mut cfg = MelAugmentConfig::new(8, 4);
            (cfg.background_prob, cfg.noise_prob, cfg.band_limit_prob) = (0.0, 0.0, 0.0);
            (cfg.tilt_db, cfg.gain_db, cfg.noise_floor_dbfs) = (0.0, (0.0, 0.0), (-100.0, -100.0));
            (cfg.active_crop_prob, cfg.reverb_prob) = (1.0, reverb_prob);
            cfg.band_limit_bins = (2, 4);
            let mut s = MelSampler::new(&clips, &[1.0], &[], vec![1.0; 32], cfg, 5).unwrap();
            let (x, _) = s.sample().unwrap();
            let loud = (0..8)
                .max_by(|&a, &b| x[a * 4].total_cmp(&x[b * 4]))
                .unwrap();
            // The frame right after the loud one (or the floor if the window ends there).
            x.get((loud + 1) * 4).copied().unwrap_or(-100.0)
        };
        assert!(tail_db(0.0) <= -99.0, "dry: silence after the call");
        assert!(tail_db(1.0) > -40.0, "reverberant: the call rings on");
    }

    #[test]
    fn shift_moves_a_peak_along_the_mel_axis_and_keeps_the_edges() {
        // One frame of 8 bins with a peak at bin 3 on a floor of 1.
        let mut x = vec![1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 2.0];
        shift_bins(&mut x, 8, 2.0);
        assert_eq!(x, vec![1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 1.0, 1.0]);
        let mut y = vec![1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 2.0];
        shift_bins(&mut y, 8, -0.5);
        assert_eq!(y[2], 5.0, "half a bin down: halfway between 1 and 9");
        assert_eq!(y[3], 5.0);
        assert_eq!(y[7], 2.0, "the top bin repeats");
        let mut z = vec![3.0, 4.0, 5.0, 6.0];
        shift_bins(&mut z, 4, 0.0);
        assert_eq!(z, vec![3.0, 4.0, 5.0, 6.0]);
        // A sampler with the shift on still gives finite windows of the right shape.
        let clips = vec![clip(0, 30, 1e-2), clip(1, 20, 1e-3)];
        let mut cfg = MelAugmentConfig::new(16, 4);
        cfg.band_limit_bins = (2, 4);
        cfg.freq_shift_bins = 1.5;
        let mut s =
            MelSampler::new(&clips, &[1.0, 1.0], &[1], vec![1.0; 40 * 4], cfg.clone(), 5).unwrap();
        let (w, _) = s.sample().unwrap();
        assert!(w.len() == 16 * 4 && w.iter().all(|v| v.is_finite()));
        cfg.freq_shift_bins = 4.0;
        assert!(cfg.validate().is_err(), "a shift of all 4 bins is refused");
    }

    #[test]
    fn bad_weights_and_clips_are_refused() {
        let clips = vec![clip(0, 30, 1.0)];
        let mut cfg = MelAugmentConfig::new(16, 4);
        cfg.band_limit_bins = (2, 4);
        let noise = vec![1.0; 40 * 4];
        // The good case is accepted, so each refusal below is for its own reason.
        assert!(MelSampler::new(&clips, &[1.0], &[], noise.clone(), cfg.clone(), 1).is_ok());
        assert!(MelSampler::new(&clips, &[1.0, 1.0], &[], noise.clone(), cfg.clone(), 1).is_err());
        assert!(MelSampler::new(&clips, &[0.0], &[], noise.clone(), cfg.clone(), 1).is_err());
        assert!(MelSampler::new(&clips, &[1.0], &[], vec![1.0; 8], cfg.clone(), 1).is_err());
        let odd = vec![MelClip {
            label: 0,
            power: vec![1.0; 7],
            weight: 1.0,
        }];
        assert!(MelSampler::new(&odd, &[1.0], &[], noise.clone(), cfg.clone(), 1).is_err());
        for w in [0.0, -1.0, f64::NAN] {
            let bad = vec![clip(0, 30, 1e-2).with_weight(w)];
            let err = match MelSampler::new(&bad, &[1.0], &[], noise.clone(), cfg.clone(), 1) {
                Ok(_) => panic!("weight {w} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("drawing weight"), "{w}: {err}");
        }
    }

    #[test]
    fn clips_are_drawn_in_proportion_to_their_weights() {
        // Label 0: a quiet clip of weight 3 and a loud one of weight 1. Nothing but gain-free
        // cropping, so a window's level tells which clip it came from.
        let clips = vec![
            clip(0, 16, 1e-6).with_weight(3.0),
            clip(0, 16, 1e-2).with_weight(1.0),
        ];
        let mut cfg = MelAugmentConfig::new(16, 4);
        (cfg.background_prob, cfg.noise_prob, cfg.band_limit_prob) = (0.0, 0.0, 0.0);
        (cfg.tilt_db, cfg.gain_db, cfg.noise_floor_dbfs) = (0.0, (0.0, 0.0), (-100.0, -100.0));
        cfg.band_limit_bins = (2, 4);
        let mut s = MelSampler::new(&clips, &[1.0], &[], vec![1.0; 64], cfg, 9).unwrap();
        let n = 4000;
        let quiet = (0..n).filter(|_| s.sample().unwrap().0[0] < -40.0).count();
        let share = quiet as f64 / n as f64;
        assert!(
            (share - 0.75).abs() < 0.03,
            "quiet clip drawn {share} of the time"
        );
    }
}
