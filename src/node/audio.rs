//! `audio_cue_node`'s logic without ROS: audio chunks (topic messages or microphone buffers) in,
//! `sound_events` and `cues` messages out, through the library's streaming [`AudioPipeline`]
//! (resample, log-mel, detector, cue mapping). [`super::audio_worker`] runs it on its own
//! thread; tests call it directly too.
//!
//! Cues are checked against the vision model's class list (its config, or the latched
//! `label_info`): a mapped class the model lacks is reported once and skipped. Detector
//! parameter changes apply in place: buffered audio and active events are kept.

use std::collections::{BTreeMap, BTreeSet};

use super::audio_params::{AudioNodeConfig, FILE_THRESHOLDS};
use super::params::{ConfigCheck, NodeParams};
use crate::audio::cues::{ClassCue, CueConfig, CueMap};
use crate::audio::detector::{DetectorConfig, SoundEvent, Thresholds, WindowScorer};
use crate::audio::features::LogMelConfig;
use crate::audio::pipeline::{AudioPipeline, PipelineStats};
use crate::ros::convert::{
    classification_msg, diagnostic_array, diagnostic_status, s16le_mono, RejectionCounter,
};
use crate::ros::msgs::{
    AudioDataStamped, Classification, DiagnosticArray, DiagnosticStatus, Header, LabelInfo,
};
use crate::{Error, Result};

/// Sample rates a chunk may have (the `sample_rate_hz` parameter's range).
pub const RATE_RANGE_HZ: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// The detector settings the node runs: the mapping file's `[detector]` section with the node
/// parameters in place of what they define. `on_threshold` and `off_threshold` each replace
/// that threshold for every label, or keep the file's (default and per label) when they are
/// [`FILE_THRESHOLDS`]; `hold_ms`, `refractory_ms` and `rms_gate_dbfs` replace `hold_s`,
/// `refractory_s` and `silence_rms_dbfs`; the window hop and the smoothing stay the file's.
pub fn detector_config(file: &DetectorConfig, params: &AudioNodeConfig) -> DetectorConfig {
    let set = |x: f64| (x != FILE_THRESHOLDS).then_some(x as f32);
    let (on, off) = (set(params.on_threshold), set(params.off_threshold));
    let apply = |t: &Thresholds| Thresholds {
        on: on.unwrap_or(t.on),
        off: off.unwrap_or(t.off),
    };
    // Thresholds set for every label make the per-label entries redundant.
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

/// The check the audio node's parameter store runs on every config: the detector settings
/// it implies must be valid for the classifier's `labels` with the mapping file's `file`
/// detector (e.g. an `off_threshold` above a label's file `on` is refused), so the parameter
/// services refuse what the node would.
pub fn config_check(file: DetectorConfig, labels: Vec<String>) -> ConfigCheck<AudioNodeConfig> {
    Box::new(move |c: &AudioNodeConfig| {
        detector_config(&file, c)
            .validate(&labels)
            .map_err(|e| e.to_string())
    })
}

/// The `class_names` of a vision model config file (the JSON `hlfp train` writes next to the
/// weights), in output order.
pub fn classes_from_model_config(path: &std::path::Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Classes {
        class_names: Vec<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let c: Classes = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: no class_names list: {e}", path.display())))?;
    Ok(c.class_names)
}

/// The class names of a `label_info` message, in `class_id` order.
pub fn classes_from_label_info(msg: &LabelInfo) -> Vec<String> {
    let mut v: Vec<(u16, &str)> = msg
        .class_map
        .iter()
        .map(|c| (c.class_id, c.class_name.as_str()))
        .collect();
    v.sort_unstable_by_key(|(id, _)| *id);
    v.into_iter().map(|(_, n)| n.to_string()).collect()
}

/// What one audio chunk produced, ready to publish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioOutput {
    /// For `sound_events`: one message per sound event, `class_id` the sound label, `score`
    /// the detector's smoothed score, the input chunk's header.
    pub sound_events: Vec<Classification>,
    /// For `cues`: one message per sound event that maps to known visual classes, one
    /// hypothesis per class with the event's score, the input chunk's header.
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
    /// Mapped classes skipped because the vision model lacks them.
    pub cues_skipped: u64,
    /// Chunks the pipeline failed on (e.g. the classifier), after they were accepted.
    pub pipeline_errors: u64,
    /// Detector parameter changes applied.
    pub detector_updates: u64,
}

/// The audio node's state.
pub struct AudioCore<S: WindowScorer> {
    config: AudioNodeConfig,
    file_detector: DetectorConfig,
    pipeline: AudioPipeline<S>,
    rate_hz: u32,
    /// The vision model's classes; `None` until known (cues then pass unchecked).
    visual_classes: Option<Vec<String>>,
    /// Mapped classes already reported as unknown to the vision model.
    reported: BTreeSet<String>,
    events: Vec<SoundEvent>,
    class_cues: Vec<ClassCue>,
    /// Bad messages by reason (`rate`, `s16le`, `json`).
    pub rejections: RejectionCounter,
    /// Counters.
    pub counters: AudioCounters,
}

impl<S: WindowScorer> AudioCore<S> {
    /// A core for a checked `config`, the mapping file's contents and the sound classifier.
    /// Every sound label of the mapping must be a classifier label (an error otherwise); the
    /// visual classes are checked when the vision model's list is given
    /// ([`AudioCore::set_visual_classes`]). The pipeline starts at `config.sample_rate_hz` and
    /// follows the rate of the chunks it is given.
    pub fn new(config: AudioNodeConfig, mapping: &CueConfig, scorer: S) -> Result<Self> {
        let mut mapped: Vec<String> = mapping.cues.values().flatten().cloned().collect();
        mapped.sort();
        mapped.dedup();
        let cue_map = CueMap::new(&mapping.cues, scorer.labels(), &mapped)?;
        let rate_hz = config.sample_rate_hz;
        let pipeline = AudioPipeline::new(
            LogMelConfig::default(),
            detector_config(&mapping.detector, &config),
            cue_map,
            scorer,
            rate_hz,
        )?;
        Ok(Self {
            config,
            file_detector: mapping.detector.clone(),
            pipeline,
            rate_hz,
            visual_classes: None,
            reported: BTreeSet::new(),
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
        self.pipeline.detector().labels()
    }

    /// Pipeline counters since start.
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.pipeline.stats()
    }

    /// Set the vision model's class list. Returns the mapped classes it lacks, each reported
    /// (in the returned list) only the first time; their cues are skipped from now on.
    pub fn set_visual_classes(&mut self, classes: Vec<String>) -> Vec<String> {
        let unknown: Vec<String> = self
            .pipeline
            .cue_map()
            .reachable_classes()
            .into_iter()
            .filter(|c| !classes.contains(c) && self.reported.insert(c.clone()))
            .collect();
        self.visual_classes = Some(classes);
        unknown
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
    /// for a microphone). A rate outside [`RATE_RANGE_HZ`] is counted and returned as the
    /// error; a rate change within it restarts the resampler and keeps the timeline.
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

    /// End of stream: flush the resampler's tail through the detector; events decided there
    /// get `header`.
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
        for e in &self.events {
            tracing::info!("sound event {} (score {:.2})", e.label, e.score);
            out.sound_events.push(classification_msg(
                header.clone(),
                [(e.label.as_str(), e.score)],
            ));
            let mut known = Vec::new();
            for c in self.pipeline.cue_map().classes_for(&e.label) {
                match &self.visual_classes {
                    Some(list) if !list.contains(c) => {
                        self.counters.cues_skipped += 1;
                        if self.reported.insert(c.clone()) {
                            tracing::warn!(
                                "cue class {c} is not a class of the vision model: skipped \
                                 (reported once)"
                            );
                        }
                    }
                    _ => known.push(c.as_str()),
                }
            }
            if !known.is_empty() {
                let msg = classification_msg(header.clone(), known.iter().map(|c| (*c, e.score)));
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

    /// Bring the core in line with a config the parameter store accepted: detector settings
    /// change in place (buffered audio and active events are kept). On error the core keeps
    /// its config.
    pub fn sync_config(&mut self, config: &AudioNodeConfig) -> Result<()> {
        let det = detector_config(&self.file_detector, config);
        if &det != self.pipeline.detector().config() {
            self.pipeline.set_detector_config(det)?;
            self.counters.detector_updates += 1;
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
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let visual = match &self.visual_classes {
            Some(v) => v.len().to_string(),
            None => "unknown (waiting for label_info)".into(),
        };
        values.extend(
            [
                ("model", model.to_string()),
                ("labels", self.labels().join(",")),
                ("visual_classes", visual),
                ("rate_hz", self.rate_hz.to_string()),
                ("chunks_in", c.chunks_in.to_string()),
                ("samples_in", c.samples_in.to_string()),
                ("sound_events", c.sound_events.to_string()),
                ("cues", c.cues.to_string()),
                ("cues_skipped", c.cues_skipped.to_string()),
                ("messages_rejected", self.rejections.total().to_string()),
                ("pipeline_errors", c.pipeline_errors.to_string()),
                ("detector_updates", c.detector_updates.to_string()),
                ("windows", p.detector.windows.to_string()),
                ("silent_windows", p.detector.silent_windows.to_string()),
                ("non_finite_samples", p.non_finite_samples.to_string()),
                ("bad_scores", p.detector.bad_scores.to_string()),
                (
                    "active",
                    self.pipeline
                        .detector()
                        .active()
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
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
