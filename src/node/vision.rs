//! `hlfp_node` as an adapter on [`Runtime`]: ROS image messages become runtime frames (the
//! runtime's latest-frame slot drops and counts what arrives while the classifier is busy),
//! `cues` messages become runtime cues, results become `classification` messages with the
//! image's header, parameter updates become [`Control`] messages, and `/diagnostics` is built
//! from the runtime's [`MetricsSnapshot`]. The binary passes r2r streams and publishers; the
//! tests pass channels, and both run this code.

use std::collections::VecDeque;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::vision_params::{device_text, VisionNodeConfig};
use super::Publish;
use crate::pipeline::{
    Clock, Control, CueInput, CueSource, FrameClassifier, FramePolicy, FrameSource,
    MetricsSnapshot, Record, ResultSink, Runtime, RuntimeConfig,
};
use crate::ros::convert::{
    classification_from_result, cues_from_classification, diagnostic_array, diagnostic_status,
    frame_from_image,
};
use crate::ros::msgs::{Classification, DiagnosticArray, DiagnosticStatus, Header, Image};
use crate::{Error, Result};

/// The runtime settings a node config asks for.
pub fn runtime_config(cfg: &VisionNodeConfig) -> RuntimeConfig {
    RuntimeConfig {
        top_n: cfg.top_k as usize,
        guidance: cfg.guidance.clone(),
        frame_policy: FramePolicy::Latest,
        ..RuntimeConfig::default()
    }
}

/// Frames from `sensor_msgs/Image` messages. Of the messages waiting together only the newest
/// is decoded (to RGB8) and handed on; the older ones are counted as dropped, as the runtime's
/// latest-frame slot counts what it replaces. Every message gets a number, dropped or not. A
/// message that cannot be decoded is an error the runtime counts (`frames_bad`) and logs.
pub struct ImageSource<S> {
    images: S,
    next_id: u64,
    dropped: Arc<AtomicU64>,
}

impl<S> ImageSource<S> {
    /// Frames from a stream of image messages; the ones skipped are added to `dropped`.
    pub fn new(images: S, dropped: Arc<AtomicU64>) -> Self {
        Self {
            images,
            next_id: 0,
            dropped,
        }
    }
}

impl<S: Stream<Item = Image> + Send + Unpin + 'static> FrameSource for ImageSource<S> {
    async fn next_frame(&mut self) -> Option<Result<crate::pipeline::Frame>> {
        let mut msg = self.images.next().await?;
        self.next_id += 1;
        // Whatever else is already waiting is newer: keep the newest.
        while let Some(Some(newer)) = self.images.next().now_or_never() {
            msg = newer;
            self.next_id += 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Some(frame_from_image(msg, self.next_id))
    }
}

/// A `cues` message as received: parsed, or why it could not be.
pub type CueMessage = std::result::Result<Classification, String>;

/// Cues from `cues` messages: one per hypothesis. A message that did not parse, or has no
/// hypotheses, is an error the runtime counts as a rejected cue, so every message that
/// reaches the node shows in its counters.
pub struct CueMessageSource<S> {
    messages: S,
    pending: VecDeque<CueInput>,
}

impl<S> CueMessageSource<S> {
    /// Cues from a stream of parsed messages.
    pub fn new(messages: S) -> Self {
        Self {
            messages,
            pending: VecDeque::new(),
        }
    }
}

impl<S: Stream<Item = CueMessage> + Send + Unpin + 'static> CueSource for CueMessageSource<S> {
    async fn next_cue(&mut self) -> Option<Result<CueInput>> {
        if let Some(c) = self.pending.pop_front() {
            return Some(Ok(c));
        }
        match self.messages.next().await? {
            Err(e) => Some(Err(Error::BadInput(format!(
                "cues: not a vision_msgs/Classification: {e}"
            )))),
            Ok(msg) => {
                self.pending.extend(cues_from_classification(&msg, "cues"));
                match self.pending.pop_front() {
                    Some(c) => Some(Ok(c)),
                    None => Some(Err(Error::BadInput(
                        "cues: a Classification with no results".into(),
                    ))),
                }
            }
        }
    }
}

/// Results as `classification` messages (the image's header, best first); a publish that
/// fails is logged and the run goes on. Other records are already logged by the runtime.
pub struct ClassificationSink<P> {
    out: P,
}

impl<P> ClassificationSink<P> {
    /// Publish through `out`.
    pub fn new(out: P) -> Self {
        Self { out }
    }
}

impl<P: Publish<Classification>> ResultSink for ClassificationSink<P> {
    async fn send(&mut self, record: &Record) -> Result<()> {
        match record {
            Record::Result(r) => {
                if let Err(e) = self.out.publish(classification_from_result(r)) {
                    tracing::warn!("publishing classification: {e}");
                }
            }
            Record::Summary(m) => tracing::info!(
                "stopped: {} frames classified, {} dropped, {} rejected, {} cues",
                m.frames_done,
                m.frames_dropped,
                m.frames_bad,
                m.cues_in
            ),
            _ => {}
        }
        Ok(())
    }
}

/// What `/diagnostics` says about the loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionInfo {
    /// The weights file.
    pub model: String,
    /// Where inference runs, in words.
    pub device: String,
    /// Number of classes.
    pub classes: usize,
}

/// A running vision node's handles: control, metrics and the config it runs.
#[derive(Clone)]
pub struct VisionHandle {
    control: mpsc::Sender<Control>,
    /// Image messages skipped by [`ImageSource`]s made by [`VisionNode::image_source`].
    skipped: Arc<AtomicU64>,
    metrics: watch::Receiver<MetricsSnapshot>,
    applied: Arc<watch::Sender<VisionNodeConfig>>,
}

impl VisionHandle {
    /// The config the runtime runs with.
    pub fn config(&self) -> VisionNodeConfig {
        self.applied.borrow().clone()
    }

    /// The latest metrics, with the image messages skipped at the source counted as dropped
    /// (and received).
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.metrics.borrow().clone();
        let skipped = self.skipped.load(Ordering::Relaxed);
        m.frames_dropped += skipped;
        m.frames_in += skipped;
        m
    }

    /// A receiver of the metrics, updated after every event.
    pub fn watch_metrics(&self) -> watch::Receiver<MetricsSnapshot> {
        self.metrics.clone()
    }

    async fn send(&self, c: Control) -> Result<()> {
        self.control
            .send(c)
            .await
            .map_err(|_| Error::Runtime("the vision runtime has stopped".into()))
    }

    /// Bring the runtime in line with a config the parameter store accepted (the production
    /// path of `ros2 param set`): guidance, `top_k` and `enable` changes become control
    /// messages. A guidance config the runtime refuses leaves everything as it was.
    pub async fn sync_config(&self, cfg: &VisionNodeConfig) -> Result<()> {
        let old = self.config();
        if cfg.guidance != old.guidance {
            let (reply, outcome) = oneshot::channel();
            self.send(Control::SetGuidance {
                config: cfg.guidance.clone(),
                reply,
            })
            .await?;
            outcome
                .await
                .map_err(|_| Error::Runtime("the vision runtime has stopped".into()))??;
        }
        if cfg.top_k != old.top_k {
            self.send(Control::SetTopN(cfg.top_k as usize)).await?;
        }
        if cfg.enable != old.enable {
            self.send(Control::SetEnabled(cfg.enable)).await?;
        }
        self.applied.send_replace(cfg.clone());
        Ok(())
    }

    /// Ask the runtime to stop: it finishes the frame in flight and writes its summary.
    /// Callable from any thread or a signal path (does not wait).
    pub fn stop(&self) {
        // Full (16 commands queued) or closed: it is busy with earlier commands or stopped.
        let _ = self.control.try_send(Control::Stop);
    }

    /// The `/diagnostics` message now; `extra` values (e.g. matched publishers) are appended.
    pub fn diagnostics(
        &self,
        header: Header,
        info: &VisionInfo,
        extra: &[(String, String)],
    ) -> DiagnosticArray {
        vision_diagnostics(header, &self.metrics(), &self.config(), info, extra)
    }
}

/// The vision node: a [`Runtime`] configured from the node's parameters.
pub struct VisionNode {
    runtime: Runtime,
    handle: VisionHandle,
}

impl VisionNode {
    /// A node for a checked config, reading time from `clock`.
    pub fn new(config: VisionNodeConfig, clock: Arc<dyn Clock>) -> Self {
        let runtime = Runtime::new(runtime_config(&config), clock);
        let handle = VisionHandle {
            control: runtime.control(),
            skipped: Arc::new(AtomicU64::new(0)),
            metrics: runtime.metrics(),
            applied: Arc::new(watch::channel(config).0),
        };
        Self { runtime, handle }
    }

    /// The frame source for a stream of image messages; what it skips shows in the metrics.
    pub fn image_source<S>(&self, images: S) -> ImageSource<S> {
        ImageSource::new(images, Arc::clone(&self.handle.skipped))
    }

    /// Handles for parameter updates, diagnostics and stopping.
    pub fn handle(&self) -> VisionHandle {
        self.handle.clone()
    }

    /// Run until the frames end or [`VisionHandle::stop`]; returns the final metrics.
    pub async fn run<K, F, C, P>(
        self,
        classifier: K,
        frames: F,
        cues: C,
        out: P,
    ) -> Result<MetricsSnapshot>
    where
        K: FrameClassifier,
        F: FrameSource,
        C: CueSource,
        P: Publish<Classification>,
    {
        if !self.handle.config().enable {
            // Queued before the first frame: the runtime reads control messages first.
            self.handle.send(Control::SetEnabled(false)).await?;
        }
        let sink = ClassificationSink::new(out);
        let (m, _) = self.runtime.run(classifier, frames, cues, sink).await?;
        Ok(m)
    }
}

/// `/diagnostics` from the runtime's metrics and the node's config.
pub fn vision_diagnostics(
    header: Header,
    m: &MetricsSnapshot,
    cfg: &VisionNodeConfig,
    info: &VisionInfo,
    extra: &[(String, String)],
) -> DiagnosticArray {
    let g = &m.guidance;
    let unreadable = m.cues_rejected.saturating_sub(g.rejected());
    let mut values: Vec<(String, String)> = [
        ("enable", cfg.enable.to_string()),
        ("model", info.model.clone()),
        ("device", info.device.clone()),
        ("device_parameter", device_text(cfg.device)),
        ("classes", info.classes.to_string()),
        ("policy", cfg.guidance.policy.to_string()),
        ("top_k", cfg.top_k.to_string()),
        ("fps", format!("{:.2}", m.fps)),
        ("latency_p50_ms", format!("{:.2}", m.latency_p50_ms)),
        ("latency_p90_ms", format!("{:.2}", m.latency_p90_ms)),
        ("latency_p99_ms", format!("{:.2}", m.latency_p99_ms)),
        ("frames_in", m.frames_in.to_string()),
        ("frames_classified", m.frames_done.to_string()),
        ("frames_dropped", m.frames_dropped.to_string()),
        ("frames_disabled", m.frames_disabled.to_string()),
        ("images_rejected", m.frames_bad.to_string()),
        ("inference_errors", m.frames_failed.to_string()),
        ("active_branches", m.active_branches.to_string()),
        ("cues_in", m.cues_in.to_string()),
        ("cues_accepted", g.accepted.to_string()),
        ("cues_rejected", m.cues_rejected.to_string()),
        ("cues_rejected.unreadable", unreadable.to_string()),
        (
            "cues_rejected.unknown_class",
            g.rejected_unknown.to_string(),
        ),
        ("cues_rejected.bad_score", g.rejected_bad_score.to_string()),
        ("cues_rejected.backlog", g.rejected_backlog.to_string()),
        ("cues_rate_limited", g.rate_limited.to_string()),
        ("cues_evicted", g.evicted.to_string()),
        ("cues_expired", g.expired.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    values.extend_from_slice(extra);
    let problems = m.frames_bad + m.frames_failed;
    let (level, message) = if !cfg.enable {
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
        diagnostic_status("hlfp_node: vision", &info.device, level, &message, &values),
    )
}

/// The check the vision node's parameter store runs on every config: the guidance section
/// against the model's classes, so `ros2 param set` refuses what the runtime would.
pub fn config_check(classes: Vec<String>) -> super::params::ConfigCheck<VisionNodeConfig> {
    Box::new(move |c: &VisionNodeConfig| c.check_classes(&classes).map_err(|e| e.to_string()))
}
