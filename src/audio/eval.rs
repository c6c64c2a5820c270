//! Evaluation of the streaming path on labelled clips (cue recall, false cues per minute, onset
//! latency) and the latency measurement with clips mixed into long background recordings.

use std::collections::BTreeMap;

use crate::audio::cues::{ClassCue, CueMap};
use crate::audio::detector::{SoundEvent, WindowScorer};
use crate::audio::pipeline::AudioPipeline;
use crate::stats::{median, quantile};
use crate::{Error, Result};

/// A scorer that remembers the scores of every window it has seen (keyed by the window's exact
/// bits), so a sweep over detector settings runs the classifier once per distinct window.
/// Only for offline evaluation: the cache grows with every new window.
pub struct MemoScorer<S: WindowScorer> {
    inner: S,
    cache: std::collections::HashMap<u64, Vec<f32>>,
    misses: u64,
    hits: u64,
}

impl<S: WindowScorer> MemoScorer<S> {
    /// Wrap `inner` with an empty cache.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            cache: std::collections::HashMap::new(),
            misses: 0,
            hits: 0,
        }
    }

    /// `(hits, misses)`: windows answered from the cache and windows scored by the inner scorer.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn key(window: &[f32]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        window.len().hash(&mut h);
        for v in window {
            v.to_bits().hash(&mut h);
        }
        h.finish()
    }
}

impl<S: WindowScorer> WindowScorer for MemoScorer<S> {
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }
    fn window_frames(&self) -> usize {
        self.inner.window_frames()
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        let key = Self::key(window);
        if let Some(s) = self.cache.get(&key) {
            self.hits += 1;
            return Ok(s.clone());
        }
        let s = self.inner.score(window)?;
        self.misses += 1;
        self.cache.insert(key, s.clone());
        Ok(s)
    }
}

/// One point of a threshold sweep: `base` with the same `on` for every label (per-label
/// thresholds dropped), `off = on - (base default on - base default off)` clamped at 0, and
/// the same `min_on_windows` for every label (per-label counts dropped too). Errors if `on` is
/// outside [0, 1] or the result is not a valid config.
pub fn sweep_detector_config(
    base: &crate::audio::detector::DetectorConfig,
    on: f32,
    min_on_windows: usize,
    labels: &[String],
) -> Result<crate::audio::detector::DetectorConfig> {
    if !(0.0..=1.0).contains(&on) {
        return Err(Error::Config(format!(
            "sweep threshold must be in [0, 1], got {on}"
        )));
    }
    let gap = (base.default_thresholds.on - base.default_thresholds.off).max(0.0);
    let mut cfg = base.clone();
    cfg.default_thresholds = crate::audio::detector::Thresholds {
        on,
        off: (on - gap).max(0.0),
    };
    cfg.label_thresholds.clear();
    cfg.label_min_on_windows.clear();
    cfg.min_on_windows = min_on_windows;
    cfg.validate(labels)?;
    Ok(cfg)
}

/// What the streaming path said about one clip.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClipResult {
    /// The clip's true sound label (its folder).
    pub label: String,
    /// Clip length in seconds (without the silence padding).
    pub duration_s: f64,
    /// Sound events, times from the clip start.
    pub events: Vec<SoundEvent>,
    /// Class cues, times from the clip start.
    pub cues: Vec<ClassCue>,
}

/// Run one clip through a fresh stream: reset, push the clip, then `pad_s` of silence (so a clip
/// shorter than a window is still scored), then flush.
pub fn run_clip<S: WindowScorer>(
    pipeline: &mut AudioPipeline<S>,
    label: &str,
    samples: &[f32],
    rate_hz: u32,
    pad_s: f64,
) -> Result<ClipResult> {
    pipeline.reset();
    let (mut events, mut cues) = (Vec::new(), Vec::new());
    pipeline.push(samples, rate_hz, &mut events, &mut cues)?;
    let pad = vec![0.0f32; (pad_s * rate_hz as f64).round() as usize];
    pipeline.push(&pad, rate_hz, &mut events, &mut cues)?;
    pipeline.finish(&mut events, &mut cues)?;
    Ok(ClipResult {
        label: label.to_string(),
        duration_s: samples.len() as f64 / rate_hz as f64,
        events,
        cues,
    })
}

/// The numbers `hlfp eval-audio` prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CueEvalReport {
    /// Clips per sound label.
    pub clips_per_label: BTreeMap<String, usize>,
    /// For each sound label, how many cues of each visual class its clips produced.
    pub cues_per_label: BTreeMap<String, BTreeMap<String, usize>>,
    /// For each visual class some label maps to: the fraction of that label's clips (all labels
    /// mapping to the class) that produced a cue of that class.
    pub cue_recall: BTreeMap<String, f64>,
    /// Cues on clips whose label maps to no visual class.
    pub false_cues: usize,
    /// The same false cues split by visual class (which cue went wrong); classes with none are
    /// listed with 0, so per-class thresholds can be chosen from one run.
    pub false_cues_per_class: BTreeMap<String, usize>,
    /// Minutes of audio in those clips.
    pub negative_minutes: f64,
    /// `false_cues / negative_minutes` (0 when there are no negative clips).
    pub false_cues_per_min: f64,
    /// Median over clips with a correct cue of the first correct cue's time from the clip start
    /// (an upper bound on the latency: the sound may start after the clip does).
    pub median_onset_latency_s: Option<f64>,
    /// 95th percentile (linear interpolation) of the same latencies.
    pub p95_onset_latency_s: Option<f64>,
}

/// Summarise clip results against the cue mapping.
pub fn summarize(results: &[ClipResult], map: &CueMap) -> CueEvalReport {
    let mut clips_per_label = BTreeMap::new();
    let mut cues_per_label: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut hits: BTreeMap<String, (usize, usize)> = map
        .reachable_classes()
        .into_iter()
        .map(|c| (c, (0, 0)))
        .collect();
    let (mut false_cues, mut neg_s) = (0usize, 0f64);
    let mut false_cues_per_class: BTreeMap<String, usize> = map
        .reachable_classes()
        .into_iter()
        .map(|c| (c, 0))
        .collect();
    let mut latencies = Vec::new();
    for r in results {
        *clips_per_label.entry(r.label.clone()).or_insert(0) += 1;
        let per = cues_per_label.entry(r.label.clone()).or_default();
        for c in &r.cues {
            *per.entry(c.class.clone()).or_insert(0) += 1;
        }
        let targets = map.classes_for(&r.label);
        if targets.is_empty() {
            false_cues += r.cues.len();
            for c in &r.cues {
                *false_cues_per_class.entry(c.class.clone()).or_insert(0) += 1;
            }
            neg_s += r.duration_s;
            continue;
        }
        for t in targets {
            let first = r.cues.iter().find(|c| &c.class == t).map(|c| c.time_s);
            if let Some(h) = hits.get_mut(t) {
                h.1 += 1;
                if first.is_some() {
                    h.0 += 1;
                }
            }
        }
        if let Some(t) = r
            .cues
            .iter()
            .find(|c| targets.contains(&c.class))
            .map(|c| c.time_s)
        {
            latencies.push(t);
        }
    }
    let cue_recall = hits
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(c, (h, n))| (c, h as f64 / n as f64))
        .collect();
    let negative_minutes = neg_s / 60.0;
    CueEvalReport {
        clips_per_label,
        cues_per_label,
        cue_recall,
        false_cues,
        false_cues_per_class,
        negative_minutes,
        false_cues_per_min: if negative_minutes > 0.0 {
            false_cues as f64 / negative_minutes
        } else {
            0.0
        },
        median_onset_latency_s: median(&latencies),
        p95_onset_latency_s: quantile(&latencies, 0.95),
    }
}

/// A clip to mix into the background for the latency measurement.
#[derive(Debug, Clone)]
pub struct TargetClip {
    /// True sound label.
    pub label: String,
    /// Samples at the background's rate.
    pub samples: Vec<f32>,
}

/// Latency-measurement settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyConfig {
    /// Seconds between the starts of inserted clips.
    pub spacing_s: f64,
    /// Seconds of background before the first insertion.
    pub lead_in_s: f64,
    /// A correct cue counts if it comes within this long after the clip's start.
    pub max_latency_s: f64,
    /// Signal-to-noise ratio of each inserted clip against the background under it, dB.
    pub snr_db: f64,
}

/// Result of one latency run at one SNR.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyReport {
    /// SNR of the insertions.
    pub snr_db: f64,
    /// Clips inserted whose label maps to a visual class.
    pub inserted: usize,
    /// Of those, how many got a correct cue in time.
    pub detected: usize,
    /// Median cue latency from the insertion time, seconds.
    pub median_latency_s: Option<f64>,
    /// 95th percentile of the latency.
    pub p95_latency_s: Option<f64>,
    /// Cues outside every insertion's window, or of a wrong class.
    pub false_cues: usize,
    /// Minutes of background outside the insertion windows.
    pub background_minutes: f64,
    /// `false_cues / background_minutes`.
    pub false_cues_per_min: f64,
}

fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / x.len() as f64).sqrt()
}

/// Where [`mix_scene`] put one target: `(start_s, label, len_s)`.
pub type Placement = (f64, String, f64);

/// Mix `targets` into `background` (samples at `rate_hz`) every `spacing_s`, each scaled to
/// `snr_db` against the background RMS under it; returns the mix and each insertion's
/// `(start_s, label, len_s)`.
pub fn mix_scene(
    background: &[f32],
    targets: &[TargetClip],
    rate_hz: u32,
    cfg: &LatencyConfig,
) -> Result<(Vec<f32>, Vec<Placement>)> {
    let mut mix = background.to_vec();
    let mut placed = Vec::new();
    let r = rate_hz as f64;
    let mut start_s = cfg.lead_in_s;
    for t in targets {
        let start = (start_s * r).round() as usize;
        let end = start + t.samples.len();
        if end > mix.len() {
            break;
        }
        let (bg, sig) = (rms(&background[start..end]), rms(&t.samples));
        if sig == 0.0 {
            return Err(Error::BadInput(format!(
                "target clip of {} is silent",
                t.label
            )));
        }
        // Background of zero RMS: insert at the clip's own level.
        let gain = if bg > 0.0 {
            bg * 10f64.powf(cfg.snr_db / 20.0) / sig
        } else {
            1.0
        };
        for (m, &s) in mix[start..end].iter_mut().zip(&t.samples) {
            *m += (s as f64 * gain) as f32;
        }
        placed.push((start_s, t.label.clone(), t.samples.len() as f64 / r));
        start_s += cfg.spacing_s;
    }
    Ok((mix, placed))
}

/// Stream a mixed scene and score the cues against the insertions.
pub fn measure_latency<S: WindowScorer>(
    pipeline: &mut AudioPipeline<S>,
    background: &[f32],
    targets: &[TargetClip],
    rate_hz: u32,
    cfg: &LatencyConfig,
) -> Result<LatencyReport> {
    let (mix, placed) = mix_scene(background, targets, rate_hz, cfg)?;
    pipeline.reset();
    let (mut events, mut cues) = (Vec::new(), Vec::new());
    // Push in 20 ms chunks like a live device would.
    for chunk in mix.chunks((rate_hz as usize / 50).max(1)) {
        pipeline.push(chunk, rate_hz, &mut events, &mut cues)?;
    }
    pipeline.finish(&mut events, &mut cues)?;
    let map = pipeline.cue_map().clone();
    let mut used = vec![false; cues.len()];
    let (mut inserted, mut latencies) = (0usize, Vec::new());
    let mut window_s = 0.0;
    for (start_s, label, len_s) in &placed {
        let end_s = start_s + cfg.max_latency_s.max(*len_s);
        window_s += end_s - start_s;
        let targets = map.classes_for(label);
        // Cues inside an insertion window are never false alarms; the first right one scores.
        let mut first = None;
        for (i, c) in cues.iter().enumerate() {
            if c.time_s >= *start_s && c.time_s <= end_s {
                used[i] = true;
                if first.is_none()
                    && targets.contains(&c.class)
                    && c.time_s - start_s <= cfg.max_latency_s
                {
                    first = Some(c.time_s - start_s);
                }
            }
        }
        if !targets.is_empty() {
            inserted += 1;
            latencies.extend(first);
        }
    }
    let false_cues = used.iter().filter(|u| !**u).count();
    let background_minutes = (mix.len() as f64 / rate_hz as f64 - window_s).max(0.0) / 60.0;
    Ok(LatencyReport {
        snr_db: cfg.snr_db,
        inserted,
        detected: latencies.len(),
        median_latency_s: median(&latencies),
        p95_latency_s: quantile(&latencies, 0.95),
        false_cues,
        background_minutes,
        false_cues_per_min: if background_minutes > 0.0 {
            false_cues as f64 / background_minutes
        } else {
            0.0
        },
    })
}
