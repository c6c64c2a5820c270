//! The vision node's logic without ROS: image and cue messages in, `classification`,
//! `label_info` and `/diagnostics` messages out, parameter updates applied. `hlfp_node` calls
//! these from its r2r callbacks; tests call them directly (an in-process transport).
//!
//! Decisions stay in the library: the guidance state machine picks active branches and gains,
//! the scorer (the model) scores them; this struct moves data between them and counts.

use super::convert::{
    classification_msg, cues_from_classification, decode_image, diagnostic_array,
    diagnostic_status, label_info_msg, RejectionCounter,
};
use super::msgs::{Classification, DiagnosticArray, DiagnosticStatus, Header, Image, LabelInfo};
use super::params::{NodeParams, ParamError, ParamValue, VisionNodeConfig};
use crate::guidance::{Guidance, GuidanceState};
use crate::Result;
use std::collections::VecDeque;

/// Scores one decoded frame under a guidance state: the model behind the node. Returns
/// `(class index, score)` for the classes it ran (the active set), scores comparable across
/// them (e.g. a softmax over the active set).
pub trait FrameScorer {
    /// Score a tight RGB8 frame of `width` x `height`.
    fn score(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        state: &GuidanceState,
    ) -> Result<Vec<(usize, f32)>>;
}

/// How many recent latencies the percentiles cover.
const LATENCY_WINDOW: usize = 256;

/// Counters the node reports on `/diagnostics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisionCounters {
    /// Image messages received.
    pub frames_in: u64,
    /// Frames classified and published.
    pub frames_classified: u64,
    /// Frames dropped before inference because a newer one arrived (keep-latest).
    pub frames_dropped: u64,
    /// Frames skipped because `enable` is false.
    pub frames_disabled: u64,
    /// Frames the scorer failed on.
    pub inference_errors: u64,
    /// Cue messages that could not be parsed (counted by the binary through
    /// [`VisionCore::count_bad_cue_message`]).
    pub bad_cue_messages: u64,
}

/// The vision node's state between callbacks.
pub struct VisionCore {
    config: VisionNodeConfig,
    guidance: Guidance,
    rgb: Vec<u8>,
    /// Rejected images by reason.
    pub image_rejections: RejectionCounter,
    /// Counters.
    pub counters: VisionCounters,
    latencies_ms: VecDeque<f64>,
}

impl VisionCore {
    /// A core for the model's `classes` (branch order) and a checked config; fails if the
    /// guidance section names classes the model does not have.
    pub fn new(config: VisionNodeConfig, classes: Vec<String>) -> Result<Self> {
        let guidance = Guidance::new(classes, &config.guidance)?;
        Ok(Self {
            config,
            guidance,
            rgb: Vec::new(),
            image_rejections: RejectionCounter::default(),
            counters: VisionCounters::default(),
            latencies_ms: VecDeque::with_capacity(LATENCY_WINDOW),
        })
    }

    /// The config in force.
    pub fn config(&self) -> &VisionNodeConfig {
        &self.config
    }

    /// The guidance state machine (for its stats and state).
    pub fn guidance(&self) -> &Guidance {
        &self.guidance
    }

    /// An image arrived at `now_ms` (runtime clock). Returns the `classification` to publish,
    /// with the image's header, or `None` when the frame was skipped or rejected (counted).
    pub fn on_image(
        &mut self,
        msg: &Image,
        now_ms: u64,
        scorer: &mut dyn FrameScorer,
    ) -> std::result::Result<Option<Classification>, String> {
        self.counters.frames_in += 1;
        if !self.config.enable {
            self.counters.frames_disabled += 1;
            return Ok(None);
        }
        let layout = decode_image(msg, &mut self.rgb, &mut self.image_rejections)
            .map_err(|e| format!("image rejected: {e}"))?;
        let state = self.guidance.state_at(now_ms);
        let scores = match scorer.score(&self.rgb, layout.width, layout.height, &state) {
            Ok(s) => s,
            Err(e) => {
                self.counters.inference_errors += 1;
                return Err(format!("inference failed: {e}"));
            }
        };
        let mut scores: Vec<(usize, f32)> = scores
            .into_iter()
            .filter(|(i, s)| *i < self.guidance.classes().len() && s.is_finite())
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores.truncate(self.config.top_k as usize);
        let classes = self.guidance.classes();
        let out = classification_msg(
            msg.header.clone(),
            scores.iter().map(|(i, s)| (classes[*i].as_str(), *s)),
        );
        self.counters.frames_classified += 1;
        Ok(Some(out))
    }

    /// Record one frame's measured latency (the binary owns the clock).
    pub fn record_latency_ms(&mut self, latency_ms: f64) {
        if !latency_ms.is_finite() {
            return;
        }
        if self.latencies_ms.len() == LATENCY_WINDOW {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(latency_ms);
    }

    /// The `q`-quantile (0..=1, nearest rank) of the recent latencies, if any.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.latencies_ms.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let rank = ((q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// A `cues` message arrived at `now_ms`: each hypothesis goes to the guidance state
    /// machine. Returns the reasons of the refused ones (counted there).
    pub fn on_cues(&mut self, msg: &Classification, now_ms: u64) -> Vec<String> {
        cues_from_classification(msg, "ros", now_ms)
            .iter()
            .filter_map(|c| self.guidance.submit(c).err().map(|e| e.to_string()))
            .collect()
    }

    /// Count `n` frames dropped in favour of a newer one (the binary's keep-latest queue).
    pub fn count_dropped(&mut self, n: u64) {
        self.counters.frames_dropped += n;
    }

    /// Count a `cues` message that did not parse as a Classification.
    pub fn count_bad_cue_message(&mut self) {
        self.counters.bad_cue_messages += 1;
    }

    /// Apply a `ros2 param set` update. Guidance changes are also checked against the model's
    /// classes; on any error nothing changes and the reason is returned.
    pub fn apply_param(
        &mut self,
        name: &str,
        value: &ParamValue,
    ) -> std::result::Result<(), ParamError> {
        let mut next = self.config.clone();
        next.apply_runtime(name, value)?;
        if next.guidance != self.config.guidance {
            self.guidance
                .set_config(&next.guidance)
                .map_err(|e| ParamError::Inconsistent {
                    reason: e.to_string(),
                })?;
        }
        self.config = next;
        Ok(())
    }

    /// Bring the core in line with a config the parameter services already accepted (their
    /// check has no class list): guidance changes that the class list refuses are undone.
    pub fn sync_config(&mut self, config: &VisionNodeConfig) -> std::result::Result<(), String> {
        if config.guidance != self.config.guidance {
            self.guidance
                .set_config(&config.guidance)
                .map_err(|e| e.to_string())?;
        }
        self.config = config.clone();
        Ok(())
    }

    /// The latched `label_info` message.
    pub fn label_info(&self, header: Header) -> Result<LabelInfo> {
        label_info_msg(header, self.guidance.classes(), 0.0)
    }

    /// The `/diagnostics` message. `model` and `device` are what the binary loaded; `fps` it
    /// measured.
    pub fn diagnostics(
        &self,
        header: Header,
        model: &str,
        device: &str,
        fps: f64,
    ) -> DiagnosticArray {
        let g = self.guidance.stats();
        let state = self.guidance.state();
        let c = &self.counters;
        let mut values: Vec<(String, String)> = vec![
            ("enable".into(), self.config.enable.to_string()),
            ("model".into(), model.to_string()),
            ("device".into(), device.to_string()),
            ("fps".into(), format!("{fps:.2}")),
            ("frames_in".into(), c.frames_in.to_string()),
            ("frames_classified".into(), c.frames_classified.to_string()),
            ("frames_dropped".into(), c.frames_dropped.to_string()),
            ("frames_disabled".into(), c.frames_disabled.to_string()),
            (
                "images_rejected".into(),
                self.image_rejections.total().to_string(),
            ),
            ("inference_errors".into(), c.inference_errors.to_string()),
            ("policy".into(), state.policy.to_string()),
            ("active_branches".into(), state.active.len().to_string()),
            ("classes".into(), self.guidance.classes().len().to_string()),
            (
                "cued".into(),
                state
                    .cued
                    .iter()
                    .map(|c| c.class.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("cues_accepted".into(), g.accepted.to_string()),
            ("cues_rejected".into(), g.rejected().to_string()),
            ("cues_rate_limited".into(), g.rate_limited.to_string()),
            ("bad_cue_messages".into(), c.bad_cue_messages.to_string()),
        ];
        for (q, key) in [(0.5, "latency_p50_ms"), (0.95, "latency_p95_ms")] {
            if let Some(v) = self.latency_quantile_ms(q) {
                values.push((key.into(), format!("{v:.2}")));
            }
        }
        for (kind, n) in self.image_rejections.iter() {
            values.push((format!("images_rejected.{kind}"), n.to_string()));
        }
        let problems = self.image_rejections.total() + c.inference_errors;
        let (level, message) = if !self.config.enable {
            (
                DiagnosticStatus::OK,
                "disabled (enable = false)".to_string(),
            )
        } else if problems > 0 {
            (
                DiagnosticStatus::WARN,
                format!("{problems} frames rejected or failed since start"),
            )
        } else {
            (DiagnosticStatus::OK, "running".to_string())
        };
        diagnostic_array(
            header,
            diagnostic_status("hlfp_node: vision", device, level, &message, &values),
        )
    }
}
