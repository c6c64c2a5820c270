//! The tokio runtime: joins a frame source, a cue source, the guidance state machine, a
//! classifier on its own thread (fed by a latest-frame slot) and a sink. [`FramePolicy`] says
//! whether a frame that arrives while the classifier is busy replaces the waiting one (live
//! cameras) or the source waits (replays that must classify every frame).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::Clock;
use super::io::{CueSource, FrameSource, ResultSink};
use super::metrics::{LatencyWindow, MetricsSnapshot};
use super::slot::LatestSlot;
use super::types::{
    BranchGain, ClassScore, Classified, CueEvent, CueInput, DroppedFrame, Frame, FrameClassifier,
    FrameError, FrameResult, Record,
};
use crate::guidance::{Cue, Guidance, GuidanceConfig, GuidanceState};
use crate::{Error, Result};

/// Runtime settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// How many classes each result lists.
    pub top_n: usize,
    /// How many recent frames the fps and latency percentiles cover.
    pub metrics_window: usize,
    /// The guidance state machine's settings.
    pub guidance: GuidanceConfig,
    /// What happens to frames that arrive while the classifier is busy.
    pub frame_policy: FramePolicy,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            top_n: 5,
            metrics_window: 100,
            guidance: GuidanceConfig::default(),
            frame_policy: FramePolicy::Latest,
        }
    }
}

/// What happens to frames that arrive while the classifier is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FramePolicy {
    /// At most one frame waits; a newer one replaces it and the old is reported dropped. Results
    /// stay fresh under overload: what a robot's camera wants.
    #[default]
    Latest,
    /// No frame is dropped: the runtime reads the next frame only once the last one is
    /// classified, so the source is slowed to the classifier's pace (a folder replay at
    /// `--fps 0` then classifies every image as fast as inference runs). Live sources fall
    /// behind under overload; cues are still read while the source waits.
    Every,
}

/// Commands to a running runtime.
#[derive(Debug)]
pub enum Control {
    /// Replace the guidance config (e.g. `ros2 param set`); the reply says whether it was valid.
    SetGuidance {
        /// The new config.
        config: GuidanceConfig,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<()>>,
    },
    /// List this many classes per result from now on (at least 1).
    SetTopN(usize),
    /// `false`: count valid frames as disabled (`frames_disabled`) instead of classifying
    /// them; cues are still taken. `true`: classify again.
    SetEnabled(bool),
    /// Stop taking frames, finish the one in flight, write the summary and return.
    Stop,
}

/// A frame waiting for inference, with the guidance state at its arrival.
struct Job {
    frame: Frame,
    state: GuidanceState,
    arrival_us: u64,
}

/// A frame back from inference.
struct Done {
    id: u64,
    stamp_ns: i64,
    frame_id: String,
    state: GuidanceState,
    arrival_us: u64,
    done_us: u64,
    outcome: Result<Classified>,
}

/// The guided-search runtime. Build it, take its metrics and control handles, then `run`.
pub struct Runtime {
    config: RuntimeConfig,
    clock: Arc<dyn Clock>,
    metrics_tx: watch::Sender<MetricsSnapshot>,
    control_tx: mpsc::Sender<Control>,
    control_rx: mpsc::Receiver<Control>,
}

impl Runtime {
    /// A runtime reading time from `clock`.
    pub fn new(config: RuntimeConfig, clock: Arc<dyn Clock>) -> Self {
        let (metrics_tx, _) = watch::channel(MetricsSnapshot::default());
        let (control_tx, control_rx) = mpsc::channel(16);
        Self {
            config,
            clock,
            metrics_tx,
            control_tx,
            control_rx,
        }
    }

    /// Live metrics, updated after every frame, cue and result.
    pub fn metrics(&self) -> watch::Receiver<MetricsSnapshot> {
        self.metrics_tx.subscribe()
    }

    /// A handle to send [`Control`] commands while running.
    pub fn control(&self) -> mpsc::Sender<Control> {
        self.control_tx.clone()
    }

    /// Run until the frame source ends (or a `Stop`), then write a summary record and return
    /// the final metrics and the classifier. Errors: an invalid guidance config for the
    /// classifier's classes, a failing sink, or an inference thread that died.
    pub async fn run<K, F, C, S>(
        self,
        classifier: K,
        mut frames: F,
        mut cues: C,
        mut sink: S,
    ) -> Result<(MetricsSnapshot, K)>
    where
        K: FrameClassifier,
        F: FrameSource,
        C: CueSource,
        S: ResultSink,
    {
        let Runtime {
            config,
            clock,
            metrics_tx,
            control_tx,
            mut control_rx,
        } = self;
        // Only outside handles may keep the control channel open.
        drop(control_tx);
        let classes: Vec<String> = classifier.class_names().to_vec();
        let mut guidance = Guidance::new(classes.clone(), &config.guidance)?;

        // Sources run in their own tasks and hand over through channels, so the select below
        // never cancels a source mid-read.
        let (frame_tx, mut frame_rx) = mpsc::channel::<Result<Frame>>(1);
        let frame_task = tokio::spawn(async move {
            while let Some(f) = frames.next_frame().await {
                if frame_tx.send(f).await.is_err() {
                    break;
                }
            }
        });
        let (cue_tx, mut cue_rx) = mpsc::channel::<Result<CueInput>>(64);
        let cue_task = tokio::spawn(async move {
            while let Some(c) = cues.next_cue().await {
                if cue_tx.send(c).await.is_err() {
                    break;
                }
            }
        });

        let slot = Arc::new(LatestSlot::<Job>::new());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let worker = {
            let slot = Arc::clone(&slot);
            let clock = Arc::clone(&clock);
            let mut classifier = classifier;
            std::thread::Builder::new()
                .name("hlfp-inference".into())
                .spawn(move || {
                    while let Some(job) = slot.take() {
                        let outcome =
                            classifier.classify(&job.frame, &job.state.active, &job.state.gains);
                        let done = Done {
                            id: job.frame.id,
                            stamp_ns: job.frame.stamp_ns,
                            frame_id: job.frame.frame_id,
                            state: job.state,
                            arrival_us: job.arrival_us,
                            done_us: clock.now_us(),
                            outcome,
                        };
                        // The send is unbounded but at most one job is in flight.
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                    classifier
                })
                .map_err(|e| Error::Runtime(format!("starting the inference thread: {e}")))?
        };

        let mut st = Stats {
            m: MetricsSnapshot::default(),
            window: LatencyWindow::new(config.metrics_window),
            top_n: config.top_n,
            classes,
            in_flight: 0,
            refusals: RefusalLimiter::default(),
            enabled: true,
        };
        let (mut frames_open, mut cues_open, mut control_open) = (true, true, true);
        let outcome: Result<()> = async {
            loop {
                tokio::select! {
                    // Results first, so a finished frame is reported before new input.
                    biased;
                    done = done_rx.recv() => match done {
                        Some(d) => {
                            let rec = st.finish(d);
                            sink.send(&rec).await?;
                        }
                        // The worker ends only after the slot is closed and drained.
                        None if !frames_open => break,
                        None => return Err(Error::Runtime("the inference thread stopped".into())),
                    },
                    ctrl = control_rx.recv(), if control_open => match ctrl {
                        Some(Control::SetGuidance { config, reply }) => {
                            let _ = reply.send(guidance.set_config(&config));
                        }
                        Some(Control::SetTopN(n)) => st.top_n = n.max(1),
                        Some(Control::SetEnabled(on)) => st.enabled = on,
                        Some(Control::Stop) => {
                            frames_open = false;
                            cues_open = false;
                            slot.close();
                        }
                        None => control_open = false,
                    },
                    // Frames before cues. `Every`: no new frame while one is waiting or being
                    // classified.
                    frame = frame_rx.recv(), if frames_open
                        && (config.frame_policy == FramePolicy::Latest || st.in_flight == 0) =>
                    match frame {
                        Some(f) => {
                            let now_us = clock.now_us();
                            if let Some(rec) = st.frame(&mut guidance, &slot, f, now_us) {
                                sink.send(&rec).await?;
                            }
                        }
                        None => {
                            frames_open = false;
                            slot.close();
                        }
                    },
                    // After frames: a cue flood is read whenever no frame waits, and can no
                    // longer hold frames back (it did when cues came first).
                    cue = cue_rx.recv(), if cues_open => match cue {
                        Some(c) => {
                            if let Some(rec) = st.cue(&mut guidance, c, clock.now_ms()) {
                                sink.send(&rec).await?;
                            }
                        }
                        None => cues_open = false,
                    },
                }
                st.m.guidance = guidance.stats();
                st.m.time_ms = clock.now_ms();
                st.window.fill(&mut st.m);
                metrics_tx.send_replace(st.m.clone());
            }
            Ok(())
        }
        .await;

        frame_task.abort();
        cue_task.abort();
        slot.close();
        let summary = st.m.clone();
        let finished = match outcome {
            Ok(()) => {
                let r = sink.send(&Record::Summary(summary.clone())).await;
                r.and(sink.flush().await)
            }
            Err(e) => Err(e),
        };
        drop(done_rx);
        let classifier = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| Error::Runtime(format!("joining the inference thread: {e}")))?
            .map_err(|_| Error::Runtime("the inference thread panicked".into()))?;
        finished.map(|()| (summary, classifier))
    }
}

/// The loop's bookkeeping.
struct Stats {
    m: MetricsSnapshot,
    window: LatencyWindow,
    top_n: usize,
    classes: Vec<String>,
    /// Jobs handed to the inference thread and not finished yet.
    in_flight: usize,
    /// Which refused cues are reported (a flood of them must not flood the output and log).
    refusals: RefusalLimiter,
    /// Classify frames ([`Control::SetEnabled`]).
    enabled: bool,
}

/// Refused cues reported per second at most (as records and WARN lines); the rest are only
/// counted in `cues_rejected`, and the next report says how many were left out.
pub const REFUSED_CUES_REPORTED_PER_S: u32 = 10;

/// Rate limit for reporting refused cues, on the runtime's clock.
#[derive(Debug, Default)]
struct RefusalLimiter {
    window_start_ms: u64,
    reported: u32,
    suppressed: u64,
}

impl RefusalLimiter {
    /// Whether a refusal at `now_ms` is reported; logs it (with the number left out before
    /// it) when it is.
    fn report(&mut self, now_ms: u64, e: &str) -> bool {
        if now_ms.saturating_sub(self.window_start_ms) >= 1000 {
            self.window_start_ms = now_ms;
            self.reported = 0;
        }
        if self.reported >= REFUSED_CUES_REPORTED_PER_S {
            self.suppressed += 1;
            return false;
        }
        self.reported += 1;
        match std::mem::take(&mut self.suppressed) {
            0 => tracing::warn!("cue refused: {e}"),
            n => tracing::warn!("cue refused: {e} ({n} refused cues not reported before it)"),
        }
        true
    }
}

impl Stats {
    /// Submit a cue; the record to write, or `None` for a refusal over the report rate.
    fn cue(&mut self, guidance: &mut Guidance, c: Result<CueInput>, now_ms: u64) -> Option<Record> {
        self.m.cues_in += 1;
        let ev = match c {
            Err(e) => CueEvent {
                time_ms: now_ms,
                class: String::new(),
                score: 0.0,
                source: String::new(),
                queued: false,
                reason: Some(e.to_string()),
            },
            Ok(c) => {
                let cue = Cue {
                    class: c.class,
                    score: c.score,
                    source: c.source,
                    time_ms: now_ms,
                };
                let res = guidance.submit(&cue);
                CueEvent {
                    time_ms: now_ms,
                    class: cue.class,
                    score: cue.score,
                    source: cue.source,
                    queued: res.is_ok(),
                    reason: res.err().map(|e| e.to_string()),
                }
            }
        };
        if let Some(reason) = &ev.reason {
            self.m.cues_rejected += 1;
            if !self.refusals.report(now_ms, reason) {
                return None;
            }
        }
        Some(Record::Cue(ev))
    }

    fn frame(
        &mut self,
        guidance: &mut Guidance,
        slot: &LatestSlot<Job>,
        f: Result<Frame>,
        now_us: u64,
    ) -> Option<Record> {
        let now_ms = now_us / 1000;
        let frame = match f.and_then(|f| f.validate().map(|()| f)) {
            Ok(f) => f,
            Err(e) => {
                self.m.frames_bad += 1;
                tracing::warn!("frame refused: {e}");
                return Some(Record::Error(FrameError {
                    id: None,
                    error: e.to_string(),
                    time_ms: now_ms,
                }));
            }
        };
        self.m.frames_in += 1;
        if !self.enabled {
            self.m.frames_disabled += 1;
            return None;
        }
        let state = guidance.state_at(now_ms);
        let Some(old) = slot.put(Job {
            frame,
            state,
            arrival_us: now_us,
        }) else {
            self.in_flight += 1;
            return None;
        };
        self.m.frames_dropped += 1;
        Some(Record::Dropped(DroppedFrame {
            id: old.frame.id,
            stamp_ns: old.frame.stamp_ns,
            time_ms: now_ms,
        }))
    }

    fn finish(&mut self, d: Done) -> Record {
        self.in_flight = self.in_flight.saturating_sub(1);
        let k = self.classes.len();
        let time_ms = d.arrival_us / 1000;
        let c = match d.outcome.and_then(|c| {
            match c.scores.iter().find(|(i, s)| *i >= k || !s.is_finite()) {
                Some((i, s)) => Err(Error::BadInput(format!(
                    "classifier returned score {s} for class index {i}: expected a finite score and an index below {k}"
                ))),
                None => Ok(c),
            }
        }) {
            Ok(c) => c,
            Err(e) => {
                self.m.frames_failed += 1;
                tracing::warn!("frame {} failed: {e}", d.id);
                return Record::Error(FrameError {
                    id: Some(d.id),
                    error: e.to_string(),
                    time_ms,
                });
            }
        };
        let latency_us = d.done_us.saturating_sub(d.arrival_us);
        self.window.push(d.done_us, latency_us);
        self.m.frames_done += 1;
        self.m.active_branches = d.state.active.len();
        let mut scores = c.scores;
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores.truncate(self.top_n);
        Record::Result(FrameResult {
            id: d.id,
            stamp_ns: d.stamp_ns,
            frame_id: d.frame_id,
            top: scores
                .into_iter()
                .map(|(index, score)| ClassScore {
                    index,
                    class: self.classes[index].clone(),
                    score,
                })
                .collect(),
            policy: d.state.policy,
            active: d.state.active,
            gains: d
                .state
                .gains
                .iter()
                .enumerate()
                .filter(|(_, &g)| g != 1.0)
                .map(|(index, &gain)| BranchGain { index, gain })
                .collect(),
            cued: d.state.cued.into_iter().map(|c| c.class).collect(),
            macs: c.macs,
            latency_ms: latency_us as f64 / 1000.0,
            time_ms,
        })
    }
}
