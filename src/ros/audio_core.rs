//! The audio node's logic without ROS: audio chunks (topic messages or microphone buffers) in,
//! `sound_events` and `cues` messages out, through the library's streaming [`AudioPipeline`]
//! (resample, log-mel, detector, cue mapping). `audio_cue_node` calls these from its r2r
//! callbacks and its capture thread; tests call them directly (an in-process transport).
//!
//! Decisions stay in the library: the detector decides events, the cue map the classes they
//! cue; this struct checks inputs, builds messages with the input's header, and counts.

use super::convert::{
    classification_msg, diagnostic_array, diagnostic_status, s16le_mono, RejectionCounter,
};
use super::msgs::{AudioDataStamped, Classification, DiagnosticArray, DiagnosticStatus, Header};
use super::params::{AudioNodeConfig, NodeParams, ParamError, ParamValue, FILE_THRESHOLDS};
use crate::audio::cues::{CueConfig, CueMap};
use crate::audio::detector::{DetectorConfig, SoundEvent, Thresholds, WindowScorer};
use crate::audio::features::LogMelConfig;
use crate::audio::pipeline::{AudioPipeline, PipelineStats};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Sample rates a chunk may have (the `sample_rate_hz` parameter's range).
pub const RATE_RANGE_HZ: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// The detector settings the node runs: the mapping file's `[detector]` section with the node
/// parameters in place of what they define. `on_threshold` and `off_threshold` each replace
/// that threshold for every label, or keep the file's (default and per label) when they are
/// [`FILE_THRESHOLDS`]; `hold_ms`, `refractory_ms` and `rms_gate_dbfs` replace `hold_s`,
/// `refractory_s` and `silence_rms_dbfs`; the window hop and the smoothing stay the file's.
/// The result is checked when a pipeline is built from it (e.g. an `off_threshold` above a
/// label's file `on` is refused there).
pub fn detector_config(file: &DetectorConfig, params: &AudioNodeConfig) -> DetectorConfig {
    let set = |x: f64| (x != FILE_THRESHOLDS).then_some(x as f32);
    let (on, off) = (set(params.on_threshold), set(params.off_threshold));
    let apply = |t: &Thresholds| Thresholds {
        on: on.unwrap_or(t.on),
        off: off.unwrap_or(t.off),
    };
    // A threshold set for every label makes the per-label entries that only differed in it
    // redundant; keep the map only while some per-label value is still the file's.
    let label_thresholds = if on.is_some() && off.is_some() {
        BTreeMap::new()
    } else {
        file.label_thresholds
            .iter()
            .map(|(k, t)| (k.clone(), apply(t)))
            .collect()
    };
    DetectorConfig {
        default_thresholds: apply(&file.default_thresholds),
        label_thresholds,
        hold_s: params.hold_ms as f64 / 1000.0,
        refractory_s: params.refractory_ms as f64 / 1000.0,
        silence_rms_dbfs: params.rms_gate_dbfs as f32,
        ..file.clone()
    }
}

fn add_stats(into: &mut PipelineStats, s: &PipelineStats) {
    into.input_samples += s.input_samples;
    into.non_finite_samples += s.non_finite_samples;
    into.model_samples += s.model_samples;
    into.frames += s.frames;
    into.detector.windows += s.detector.windows;
    into.detector.silent_windows += s.detector.silent_windows;
    into.detector.bad_scores += s.detector.bad_scores;
}

/// The scorer shared between the pipeline in use and the one rebuilt on a parameter change
/// (the pipeline owns its scorer; the detector settings are fixed at construction).
struct SharedScorer<S> {
    labels: Vec<String>,
    window_frames: usize,
    inner: Arc<Mutex<S>>,
}

impl<S> Clone for SharedScorer<S> {
    fn clone(&self) -> Self {
        Self {
            labels: self.labels.clone(),
            window_frames: self.window_frames,
            inner: self.inner.clone(),
        }
    }
}

impl<S: WindowScorer> WindowScorer for SharedScorer<S> {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn window_frames(&self) -> usize {
        self.window_frames
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        // Only this core scores; a poisoned lock means an earlier score panicked mid-call,
        // which leaves no state behind in a window scorer.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .score(window)
    }
}

/// What one audio chunk produced, ready to publish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioOutput {
    /// For `sound_events`: one message per sound event, `class_id` the sound label, `score`
    /// the detector's smoothed score, the input chunk's header.
    pub sound_events: Vec<Classification>,
    /// For `cues`: one message per sound event that maps to visual classes, `class_id` each
    /// visual class, `score` the event's score, the input chunk's header.
    pub cues: Vec<Classification>,
}

impl AudioOutput {
    /// Nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.sound_events.is_empty() && self.cues.is_empty()
    }
}

/// Counters the node reports on `/diagnostics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioCounters {
    /// Chunks received (messages or capture buffers), good or bad.
    pub chunks_in: u64,
    /// Mono samples of the accepted chunks, at their own rate.
    pub samples_in: u64,
    /// Sound events published.
    pub sound_events: u64,
    /// Visual-class hypotheses published on `cues`.
    pub cues: u64,
    /// Chunks the pipeline failed on (e.g. the classifier), after they were accepted.
    pub pipeline_errors: u64,
    /// Pipelines rebuilt for a detector parameter change (each starts a new stream).
    pub detector_rebuilds: u64,
}

/// The audio node's state between callbacks.
pub struct AudioCore<S: WindowScorer> {
    config: AudioNodeConfig,
    file_detector: DetectorConfig,
    features: LogMelConfig,
    scorer: SharedScorer<S>,
    pipeline: AudioPipeline<SharedScorer<S>>,
    rate_hz: u32,
    /// Pipeline counters of the pipelines replaced by rebuilds.
    earlier: PipelineStats,
    events: Vec<SoundEvent>,
    class_cues: Vec<crate::audio::cues::ClassCue>,
    /// Bad messages by reason (`rate`, `s16le`, and what the binary counts, e.g. `json`).
    pub rejections: RejectionCounter,
    /// Counters.
    pub counters: AudioCounters,
}

impl<S: WindowScorer> AudioCore<S> {
    /// A core for a checked `config`, the mapping file's contents, the vision model's
    /// `visual_classes` and the sound classifier. The mapping is validated against the
    /// scorer's labels and `visual_classes`; the pipeline starts at `config.sample_rate_hz` and
    /// follows the rate of the chunks it is given.
    pub fn new(
        config: AudioNodeConfig,
        mapping: &CueConfig,
        visual_classes: &[String],
        scorer: S,
    ) -> Result<Self> {
        let cue_map = CueMap::new(&mapping.cues, scorer.labels(), visual_classes)?;
        let scorer = SharedScorer {
            labels: scorer.labels().to_vec(),
            window_frames: scorer.window_frames(),
            inner: Arc::new(Mutex::new(scorer)),
        };
        let features = LogMelConfig::default();
        let rate_hz = config.sample_rate_hz;
        let pipeline = AudioPipeline::new(
            features.clone(),
            detector_config(&mapping.detector, &config),
            cue_map,
            scorer.clone(),
            rate_hz,
        )?;
        Ok(Self {
            config,
            file_detector: mapping.detector.clone(),
            features,
            scorer,
            pipeline,
            rate_hz,
            earlier: PipelineStats::default(),
            events: Vec::new(),
            class_cues: Vec::new(),
            rejections: RejectionCounter::default(),
            counters: AudioCounters::default(),
        })
    }

    /// The config in force.
    pub fn config(&self) -> &AudioNodeConfig {
        &self.config
    }

    /// The detector settings in force (see [`detector_config`]).
    pub fn detector_config(&self) -> &DetectorConfig {
        self.pipeline.detector().config()
    }

    /// The sound labels of the classifier.
    pub fn labels(&self) -> &[String] {
        &self.scorer.labels
    }

    /// Pipeline counters since start (summed over rebuilds).
    pub fn pipeline_stats(&self) -> PipelineStats {
        let mut s = self.pipeline.stats();
        add_stats(&mut s, &self.earlier);
        s
    }

    /// An `AudioDataStamped` arrived (topic input): interleaved S16LE with `channels` channels
    /// at `sample_rate_hz`. A malformed message is counted and returned as the error.
    pub fn on_message(&mut self, msg: &AudioDataStamped) -> Result<AudioOutput> {
        match s16le_mono(msg, self.config.channels) {
            Ok(samples) => self.on_chunk(&samples, self.config.sample_rate_hz, &msg.header),
            Err(e) => {
                self.counters.chunks_in += 1;
                self.rejections.count("s16le");
                Err(e)
            }
        }
    }

    /// Mono `samples` at `rate_hz` arrived with `header` (a message's, or the capture time
    /// for a microphone). Every event the detector decides in this chunk is returned with
    /// `header`. A rate outside [`RATE_RANGE_HZ`] is counted and returned as the error; a rate
    /// change within it restarts the resampler and keeps the timeline.
    pub fn on_chunk(
        &mut self,
        samples: &[f32],
        rate_hz: u32,
        header: &Header,
    ) -> Result<AudioOutput> {
        self.counters.chunks_in += 1;
        if !RATE_RANGE_HZ.contains(&rate_hz) {
            self.rejections.count("rate");
            return Err(Error::BadInput(format!(
                "audio: sample rate {rate_hz} Hz is outside {}..={} Hz",
                RATE_RANGE_HZ.start(),
                RATE_RANGE_HZ.end()
            )));
        }
        self.counters.samples_in += samples.len() as u64;
        self.rate_hz = rate_hz;
        self.events.clear();
        self.class_cues.clear();
        if let Err(e) = self
            .pipeline
            .push(samples, rate_hz, &mut self.events, &mut self.class_cues)
        {
            self.counters.pipeline_errors += 1;
            return Err(e);
        }
        Ok(self.output(header))
    }

    /// End of stream (a capture that stopped): flush the resampler's tail through the
    /// detector; events decided there get `header`.
    pub fn finish(&mut self, header: &Header) -> Result<AudioOutput> {
        self.events.clear();
        self.class_cues.clear();
        if let Err(e) = self.pipeline.finish(&mut self.events, &mut self.class_cues) {
            self.counters.pipeline_errors += 1;
            return Err(e);
        }
        Ok(self.output(header))
    }

    fn output(&mut self, header: &Header) -> AudioOutput {
        let mut out = AudioOutput::default();
        let map = self.pipeline.cue_map();
        for e in &self.events {
            out.sound_events.push(classification_msg(
                header.clone(),
                [(e.label.as_str(), e.score)],
            ));
            let classes = map.classes_for(&e.label);
            if !classes.is_empty() {
                let msg = classification_msg(
                    header.clone(),
                    classes.iter().map(|c| (c.as_str(), e.score)),
                );
                self.counters.cues += msg.results.len() as u64;
                out.cues.push(msg);
            }
        }
        self.counters.sound_events += out.sound_events.len() as u64;
        out
    }

    /// Count a message on `audio` that did not parse (e.g. `json`).
    pub fn count_bad_message(&mut self, kind: &'static str) {
        self.counters.chunks_in += 1;
        self.rejections.count(kind);
    }

    /// Apply a `ros2 param set` update; a detector change rebuilds the pipeline (a new stream:
    /// buffered audio and active events are dropped). On any error nothing changes.
    pub fn apply_param(
        &mut self,
        name: &str,
        value: &ParamValue,
    ) -> std::result::Result<(), ParamError> {
        let mut next = self.config.clone();
        next.apply_runtime(name, value)?;
        self.sync_config(&next)
            .map_err(|e| ParamError::Inconsistent {
                reason: e.to_string(),
            })
    }

    /// Bring the core in line with a config the parameter services already accepted: when the
    /// detector settings it implies differ, the pipeline is rebuilt with them. On error the
    /// core keeps its config.
    pub fn sync_config(&mut self, config: &AudioNodeConfig) -> Result<()> {
        let det = detector_config(&self.file_detector, config);
        if &det != self.pipeline.detector().config() {
            let pipeline = AudioPipeline::new(
                self.features.clone(),
                det,
                self.pipeline.cue_map().clone(),
                self.scorer.clone(),
                self.rate_hz,
            )?;
            let old = std::mem::replace(&mut self.pipeline, pipeline);
            add_stats(&mut self.earlier, &old.stats());
            self.counters.detector_rebuilds += 1;
        }
        self.config = config.clone();
        Ok(())
    }

    /// The `/diagnostics` message. `model` is what the binary loaded, `hardware_id` the
    /// input (microphone name or topic).
    pub fn diagnostics(&self, header: Header, model: &str, hardware_id: &str) -> DiagnosticArray {
        let c = &self.counters;
        let p = self.pipeline_stats();
        let mut values: Vec<(String, String)> = self
            .config
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        values.extend([
            ("model".to_string(), model.to_string()),
            ("labels".into(), self.scorer.labels.join(",")),
            ("rate_hz".into(), self.rate_hz.to_string()),
            ("chunks_in".into(), c.chunks_in.to_string()),
            ("samples_in".into(), c.samples_in.to_string()),
            ("sound_events".into(), c.sound_events.to_string()),
            ("cues".into(), c.cues.to_string()),
            (
                "messages_rejected".into(),
                self.rejections.total().to_string(),
            ),
            ("pipeline_errors".into(), c.pipeline_errors.to_string()),
            ("detector_rebuilds".into(), c.detector_rebuilds.to_string()),
            ("windows".into(), p.detector.windows.to_string()),
            (
                "silent_windows".into(),
                p.detector.silent_windows.to_string(),
            ),
            (
                "non_finite_samples".into(),
                p.non_finite_samples.to_string(),
            ),
            ("bad_scores".into(), p.detector.bad_scores.to_string()),
            (
                "active".into(),
                self.pipeline
                    .detector()
                    .active()
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]);
        for (kind, n) in self.rejections.iter() {
            values.push((format!("messages_rejected.{kind}"), n.to_string()));
        }
        let problems = self.rejections.total() + c.pipeline_errors;
        let (level, message) = if problems > 0 {
            (
                DiagnosticStatus::WARN,
                format!("{problems} audio chunks rejected or failed since start"),
            )
        } else {
            (DiagnosticStatus::OK, "running".to_string())
        };
        diagnostic_array(
            header,
            diagnostic_status(
                "audio_cue_node: audio",
                hardware_id,
                level,
                &message,
                &values,
            ),
        )
    }
}
