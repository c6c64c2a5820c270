//! Streaming sound-event detector: sliding windows of log-mel frames -> a window scorer (the
//! classifier) -> smoothing, silence gate, per-label hysteresis, hold and refractory -> onsets.

use std::collections::BTreeMap;

use crate::audio::features::LogMelConfig;
use crate::{Error, Result};

/// Scores one window of log-mel frames; the audio classifier implements it, tests use fakes.
pub trait WindowScorer {
    /// Sound labels, in the order of the scores.
    fn labels(&self) -> &[String];
    /// Frames per window the scorer reads.
    fn window_frames(&self) -> usize;
    /// Probability per label (in `labels()` order) for one window of
    /// `window_frames x n_mels` values, row-major (frame after frame).
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>>;
}

impl<T: WindowScorer + ?Sized> WindowScorer for Box<T> {
    fn labels(&self) -> &[String] {
        (**self).labels()
    }
    fn window_frames(&self) -> usize {
        (**self).window_frames()
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        (**self).score(window)
    }
}

impl<T: WindowScorer + ?Sized> WindowScorer for &mut T {
    fn labels(&self) -> &[String] {
        (**self).labels()
    }
    fn window_frames(&self) -> usize {
        (**self).window_frames()
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        (**self).score(window)
    }
}

/// On/off thresholds on the smoothed score (hysteresis: `off <= on`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    /// An inactive label turns on when its smoothed score reaches this.
    pub on: f32,
    /// An active label turns off when its smoothed score drops below this (after the hold).
    pub off: f32,
}

/// Detector settings. Times are in stream seconds (sample counts / rate), never a clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// Frames between successive windows (25 = 0.25 s at a 10 ms hop).
    pub hop_frames: usize,
    /// Smoothed score = mean of the last this-many window scores (1 = no smoothing).
    pub smoothing_windows: usize,
    /// Thresholds for labels without their own entry.
    pub default_thresholds: Thresholds,
    /// Per-label thresholds; every key must be a scorer label.
    pub label_thresholds: BTreeMap<String, Thresholds>,
    /// An event stays active at least this long after its onset (no flicker off).
    pub hold_s: f64,
    /// After an event ends, the same label cannot fire again for this long.
    pub refractory_s: f64,
    /// Windows whose waveform RMS is below this (dBFS, full scale = 1.0) count as silence: all
    /// their scores are 0 and the scorer is not run.
    pub silence_rms_dbfs: f32,
    /// An inactive label turns on only after this many consecutive windows with a smoothed
    /// score at or above its `on` threshold (1 = the first such window). A single-window spike
    /// is the typical false alarm; with a short hop, 2 costs one hop of latency.
    pub min_on_windows: usize,
    /// Per-label `min_on_windows` (every key must be a scorer label); labels without an entry
    /// use `min_on_windows`. A short bark may need one window where a meow can afford two.
    pub label_min_on_windows: BTreeMap<String, usize>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            hop_frames: 25,
            smoothing_windows: 2,
            default_thresholds: Thresholds { on: 0.6, off: 0.4 },
            label_thresholds: BTreeMap::new(),
            hold_s: 0.5,
            refractory_s: 1.0,
            silence_rms_dbfs: -55.0,
            min_on_windows: 1,
            label_min_on_windows: BTreeMap::new(),
        }
    }
}

impl DetectorConfig {
    /// Consecutive windows at or above `on` that start an event of `label`.
    pub fn min_on_for(&self, label: &str) -> usize {
        self.label_min_on_windows
            .get(label)
            .copied()
            .unwrap_or(self.min_on_windows)
    }

    /// Check ranges and that every per-label threshold names one of `labels`.
    pub fn validate(&self, labels: &[String]) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("DetectorConfig: {m}")));
        if self.hop_frames == 0 {
            return bad("hop_frames must be >= 1".into());
        }
        if self.smoothing_windows == 0 {
            return bad("smoothing_windows must be >= 1".into());
        }
        if self.min_on_windows == 0 {
            return bad("min_on_windows must be >= 1".into());
        }
        if let Some((l, _)) = self.label_min_on_windows.iter().find(|(_, &n)| n == 0) {
            return bad(format!("min_on_windows for {l} must be >= 1"));
        }
        for (name, t) in std::iter::once(("default", &self.default_thresholds))
            .chain(self.label_thresholds.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if !(0.0 <= t.off && t.off <= t.on && t.on <= 1.0) {
                return bad(format!(
                    "thresholds for {name} need 0 <= off <= on <= 1, got on {} off {}",
                    t.on, t.off
                ));
            }
        }
        let unknown: Vec<&str> = self
            .label_thresholds
            .keys()
            .chain(self.label_min_on_windows.keys())
            .filter(|k| !labels.contains(k))
            .map(|k| k.as_str())
            .collect();
        if !unknown.is_empty() {
            return bad(format!(
                "thresholds or min_on_windows for unknown sound labels {unknown:?}; the scorer's \
                 labels are {labels:?}"
            ));
        }
        let non_negative = |s: f64| s.is_finite() && s >= 0.0;
        if !non_negative(self.hold_s) || !non_negative(self.refractory_s) {
            return bad("hold_s and refractory_s must be finite and >= 0".into());
        }
        if !self.silence_rms_dbfs.is_finite() {
            return bad("silence_rms_dbfs must be finite".into());
        }
        Ok(())
    }
}

/// A label turning on: what was heard, how sure, and the stream time at which it was decided
/// (the end of the window that crossed the threshold).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SoundEvent {
    /// Sound label (a scorer label).
    pub label: String,
    /// Smoothed score at onset.
    pub score: f32,
    /// Stream time of the decision in seconds (newest sample the window used).
    pub onset_s: f64,
}

#[derive(Debug, Clone, Copy)]
struct LabelState {
    thresholds: Thresholds,
    active: bool,
    on_since_s: f64,
    refractory_until_s: f64,
    /// Consecutive windows (while inactive) at or above `on`.
    above_on: usize,
    /// Windows of `above_on` that start an event.
    min_on_windows: usize,
}

/// Counters for monitoring; a stream keeps running through all of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DetectorStats {
    /// Windows assembled.
    pub windows: u64,
    /// Windows skipped by the silence gate.
    pub silent_windows: u64,
    /// Non-finite scores from the scorer, replaced by 0.
    pub bad_scores: u64,
    /// Windows with a non-finite feature (e.g. samples near 1e30 overflow the log-mel power),
    /// skipped: scored 0 like silence, the stream goes on.
    pub bad_windows: u64,
}

/// The streaming detector. Feed it each chunk of model-rate samples together with the log-mel
/// frames that chunk completed ([`Detector::process`]); it assembles windows, scores them and
/// appends onsets. Buffers are sized at construction.
pub struct Detector<S: WindowScorer> {
    scorer: S,
    cfg: DetectorConfig,
    labels: Vec<String>,
    window_frames: usize,
    n_mels: usize,
    hop_samples: usize,
    n_fft: usize,
    sample_rate_hz: f64,
    silence_ms: f64,
    /// Up to `window_frames` frames, row-major; `frames_first` is the index of the first one.
    frames: Vec<f32>,
    frames_first: u64,
    /// Sum of squares of each complete block of `hop_samples` samples; `blocks_first` indexes
    /// the first one, `block_acc`/`block_fill` hold the block being filled.
    blocks: Vec<f64>,
    blocks_first: u64,
    block_acc: f64,
    block_fill: usize,
    /// `smoothing_windows x n_labels` ring of recent scores.
    history: Vec<f32>,
    history_len: usize,
    history_pos: usize,
    smoothed: Vec<f32>,
    states: Vec<LabelState>,
    stats: DetectorStats,
}

impl<S: WindowScorer> Detector<S> {
    /// Build a detector around `scorer` for frames made with `features`.
    pub fn new(cfg: DetectorConfig, features: &LogMelConfig, scorer: S) -> Result<Self> {
        features.validate()?;
        let labels = scorer.labels().to_vec();
        if labels.is_empty() {
            return Err(Error::Config("the window scorer has no labels".into()));
        }
        cfg.validate(&labels)?;
        let window_frames = scorer.window_frames();
        if window_frames == 0 || cfg.hop_frames > window_frames {
            return Err(Error::Config(format!(
                "detector: need 1 <= hop_frames ({}) <= window_frames ({window_frames})",
                cfg.hop_frames
            )));
        }
        let states = labels
            .iter()
            .map(|l| LabelState {
                thresholds: cfg
                    .label_thresholds
                    .get(l)
                    .copied()
                    .unwrap_or(cfg.default_thresholds),
                active: false,
                on_since_s: 0.0,
                refractory_until_s: f64::NEG_INFINITY,
                above_on: 0,
                min_on_windows: cfg.min_on_for(l),
            })
            .collect();
        let n = labels.len();
        let silence_ms = 10f64.powf(cfg.silence_rms_dbfs as f64 / 10.0);
        Ok(Self {
            frames: Vec::with_capacity(window_frames * features.n_mels),
            blocks: Vec::with_capacity(window_frames + features.n_fft / features.hop_samples + 2),
            history: vec![0.0; cfg.smoothing_windows * n],
            smoothed: vec![0.0; n],
            scorer,
            labels,
            window_frames,
            n_mels: features.n_mels,
            hop_samples: features.hop_samples,
            n_fft: features.n_fft,
            sample_rate_hz: features.sample_rate_hz as f64,
            silence_ms,
            frames_first: 0,
            blocks_first: 0,
            block_acc: 0.0,
            block_fill: 0,
            history_len: 0,
            history_pos: 0,
            states,
            stats: DetectorStats::default(),
            cfg,
        })
    }

    /// Scorer labels, in score order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The config in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Frames per window.
    pub fn window_frames(&self) -> usize {
        self.window_frames
    }

    /// Latest smoothed score per label.
    pub fn smoothed(&self) -> &[f32] {
        &self.smoothed
    }

    /// Labels currently active (turned on and not yet off).
    pub fn active(&self) -> impl Iterator<Item = &str> {
        self.labels
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.active)
            .map(|(l, _)| l.as_str())
    }

    /// Counters since the start or the last reset.
    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    /// The scorer, e.g. to inspect a fake in tests.
    pub fn scorer(&self) -> &S {
        &self.scorer
    }

    /// Samples from a sound entering to the first window that covers all of it being scored,
    /// at most: one window plus one hop, plus one hop per extra confirming window
    /// (`min_on_windows - 1`, for the label that needs the most).
    pub fn latency_samples(&self) -> usize {
        let min_on = self
            .states
            .iter()
            .map(|s| s.min_on_windows)
            .max()
            .unwrap_or(self.cfg.min_on_windows);
        (self.window_frames - 1 + self.cfg.hop_frames * min_on) * self.hop_samples + self.n_fft
    }

    /// Change thresholds, hold, refractory time, silence gate and `min_on_windows` in place:
    /// buffered frames, recent scores and active events are kept, and the new values apply
    /// from the next window (a refractory period already running keeps its end). The window
    /// geometry (`hop_frames`, `smoothing_windows`) is fixed at construction; a config that
    /// changes it, or fails [`DetectorConfig::validate`], is refused and nothing changes.
    pub fn set_config(&mut self, cfg: DetectorConfig) -> Result<()> {
        cfg.validate(&self.labels)?;
        if cfg.hop_frames != self.cfg.hop_frames
            || cfg.smoothing_windows != self.cfg.smoothing_windows
        {
            return Err(Error::Config(format!(
                "detector: hop_frames and smoothing_windows are fixed once running ({} and {});                  got {} and {}",
                self.cfg.hop_frames,
                self.cfg.smoothing_windows,
                cfg.hop_frames,
                cfg.smoothing_windows
            )));
        }
        for (label, state) in self.labels.iter().zip(&mut self.states) {
            state.thresholds = cfg
                .label_thresholds
                .get(label)
                .copied()
                .unwrap_or(cfg.default_thresholds);
            state.min_on_windows = cfg.min_on_for(label);
        }
        self.silence_ms = 10f64.powf(cfg.silence_rms_dbfs as f64 / 10.0);
        self.cfg = cfg;
        Ok(())
    }

    /// Forget buffered frames, scores and event states, as for a new stream.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.frames_first = 0;
        self.blocks.clear();
        self.blocks_first = 0;
        self.block_acc = 0.0;
        self.block_fill = 0;
        self.history.iter_mut().for_each(|h| *h = 0.0);
        self.history_len = 0;
        self.history_pos = 0;
        self.smoothed.iter_mut().for_each(|s| *s = 0.0);
        for s in &mut self.states {
            s.active = false;
            s.refractory_until_s = f64::NEG_INFINITY;
            s.above_on = 0;
        }
        self.stats = DetectorStats::default();
    }

    /// Take the next model-rate `samples` and the `frames` (`k x n_mels`, row-major) the
    /// front-end produced from them; append onsets to `events`. Samples must arrive no later
    /// than the frames that cover them (true when both come from the same chunk).
    pub fn process(
        &mut self,
        samples: &[f32],
        frames: &[f32],
        events: &mut Vec<SoundEvent>,
    ) -> Result<()> {
        if frames.len() % self.n_mels != 0 {
            return Err(Error::BadInput(format!(
                "detector: {} frame values is not a whole number of {}-mel frames",
                frames.len(),
                self.n_mels
            )));
        }
        for &s in samples {
            self.block_acc += s as f64 * s as f64;
            self.block_fill += 1;
            if self.block_fill == self.hop_samples {
                self.blocks.push(self.block_acc);
                self.block_acc = 0.0;
                self.block_fill = 0;
            }
        }
        for frame in frames.chunks_exact(self.n_mels) {
            self.frames.extend_from_slice(frame);
            if self.frames.len() == self.window_frames * self.n_mels {
                self.score_window(events)?;
                let hop = self.cfg.hop_frames;
                self.frames.copy_within(hop * self.n_mels.., 0);
                self.frames
                    .truncate((self.window_frames - hop) * self.n_mels);
                self.frames_first += hop as u64;
            }
        }
        Ok(())
    }

    fn score_window(&mut self, events: &mut Vec<SoundEvent>) -> Result<()> {
        let start = self.frames_first;
        let w = self.window_frames as u64;
        let end_sample = (start + w - 1) * self.hop_samples as u64 + self.n_fft as u64;
        let time_s = end_sample as f64 / self.sample_rate_hz;
        self.stats.windows += 1;

        // RMS gate over the window's `w` hop blocks of waveform.
        if self.blocks_first < start {
            let d = ((start - self.blocks_first) as usize).min(self.blocks.len());
            self.blocks.drain(..d);
            self.blocks_first += d as u64;
        }
        if self.blocks_first > start || self.blocks.len() < w as usize {
            return Err(Error::BadInput(format!(
                "detector: window at frame {start} needs samples {}..{}, have {}..{}; push \
                 samples together with the frames made from them",
                start * self.hop_samples as u64,
                (start + w) * self.hop_samples as u64,
                self.blocks_first * self.hop_samples as u64,
                (self.blocks_first + self.blocks.len() as u64) * self.hop_samples as u64,
            )));
        }
        let sum_sq: f64 = self.blocks[..w as usize].iter().sum();
        let mean_sq = sum_sq / (w as f64 * self.hop_samples as f64);
        let n = self.labels.len();
        let row = self.history_pos * n;
        if mean_sq < self.silence_ms {
            self.stats.silent_windows += 1;
            self.history[row..row + n].iter_mut().for_each(|h| *h = 0.0);
        } else if self.frames.iter().any(|v| !v.is_finite()) {
            // One bad window must not end the stream (the scorer refuses non-finite input).
            self.stats.bad_windows += 1;
            tracing::debug!("audio window at frame {start} has non-finite features: skipped");
            self.history[row..row + n].iter_mut().for_each(|h| *h = 0.0);
        } else {
            let scores = self.scorer.score(&self.frames)?;
            if scores.len() != n {
                return Err(Error::BadInput(format!(
                    "detector: scorer returned {} scores, expected one per label ({n})",
                    scores.len()
                )));
            }
            for (h, &p) in self.history[row..row + n].iter_mut().zip(&scores) {
                *h = if p.is_finite() {
                    p.clamp(0.0, 1.0)
                } else {
                    self.stats.bad_scores += 1;
                    0.0
                };
            }
        }
        self.history_pos = (self.history_pos + 1) % self.cfg.smoothing_windows;
        self.history_len = (self.history_len + 1).min(self.cfg.smoothing_windows);

        for (i, state) in self.states.iter_mut().enumerate() {
            let sum: f32 = (0..self.history_len).map(|r| self.history[r * n + i]).sum();
            let score = sum / self.history_len as f32;
            self.smoothed[i] = score;
            if state.active {
                if score < state.thresholds.off && time_s - state.on_since_s >= self.cfg.hold_s {
                    state.active = false;
                    state.refractory_until_s = time_s + self.cfg.refractory_s;
                }
            } else if score >= state.thresholds.on && time_s >= state.refractory_until_s {
                state.above_on += 1;
                if state.above_on < state.min_on_windows {
                    continue;
                }
                state.above_on = 0;
                state.active = true;
                state.on_since_s = time_s;
                events.push(SoundEvent {
                    label: self.labels[i].clone(),
                    score,
                    onset_s: time_s,
                });
            } else {
                state.above_on = 0;
            }
        }
        Ok(())
    }
}
