//! A bag as the runtime's frame and cue sources. One thread reads the bag in file order, maps
//! each message ([`InputMapper`]), runs audio through the streaming audio path, and hands frames
//! and cues to the runtime through its channel sources, either
//!
//! - paced ([`Pacing::Rate`]): each message is handed over when its log time comes, scaled by
//!   the rate (1 = as recorded); the runtime keeps its latest-frame policy, like on a robot; or
//! - in lockstep ([`Pacing::Lockstep`], `--every-frame`): as fast as the classifier goes, each
//!   message handed over only once the runtime has reported on the previous one (through
//!   [`GatedSink`]), so every frame is classified under the cues that preceded it in the bag
//!   and the output does not depend on the machine's speed.
//!
//! Time is bag time either way: [`BagClock`] reads the log time of the message being handed
//! over (lockstep) or the scaled wall time since the first one (paced), in µs since the bag's
//! first message; cue lifetimes are measured on it and the recorder turns it back into log
//! times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::input::{BagInput, BagStats, InputMapper};
use super::read::BagMessage;
use super::BagError;
use crate::audio::detector::WindowScorer;
use crate::audio::pipeline::{AudioPipeline, PipelineStats};
use crate::pipeline::{
    ChannelCueSource, ChannelFrameSource, Clock, CueInput, Frame, Record, ResultSink,
};
use crate::{Error, Result};

/// How a bag is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// At recorded speed times this factor (1.0 = as recorded).
    Rate(f64),
    /// Every frame, as fast as the classifier goes, one message at a time.
    Lockstep,
}

/// Bag time in µs since the bag's first message (see the module docs), and the first
/// message's log time that it counts from.
#[derive(Debug)]
pub struct BagClock {
    pacing: Pacing,
    origin_ns: OnceLock<u64>,
    started: OnceLock<Instant>,
    lockstep_us: AtomicU64,
}

impl BagClock {
    fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            origin_ns: OnceLock::new(),
            started: OnceLock::new(),
            lockstep_us: AtomicU64::new(0),
        }
    }

    /// Log time (ns since the epoch) of the bag's first message, once read.
    pub fn origin_ns(&self) -> Option<u64> {
        self.origin_ns.get().copied()
    }

    /// The log time of `bag_us` on this clock.
    pub fn log_time_ns(&self, bag_us: u64) -> u64 {
        self.origin_ns()
            .unwrap_or(0)
            .saturating_add(bag_us.saturating_mul(1000))
    }
}

impl Clock for BagClock {
    fn now_us(&self) -> u64 {
        match self.pacing {
            Pacing::Lockstep => self.lockstep_us.load(Ordering::SeqCst),
            Pacing::Rate(rate) => self
                .started
                .get()
                .map(|s| (s.elapsed().as_secs_f64() * rate * 1e6) as u64)
                .unwrap_or(0),
        }
    }
}

/// Counts the runtime's reports (results, errors, drops, cue events) so the lockstep reader
/// knows when the input it handed over has been dealt with.
#[derive(Debug, Default)]
struct Gate {
    reports: Mutex<u64>,
    changed: Condvar,
}

impl Gate {
    fn report(&self) {
        let mut n = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.changed.notify_all();
    }

    /// Wait until `want` reports arrived; false if `closed` says the runtime is gone.
    fn wait_for(&self, want: u64, closed: impl Fn() -> bool) -> bool {
        let mut n = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        while *n < want {
            if closed() {
                return false;
            }
            n = self
                .changed
                .wait_timeout(n, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// A sink that tells the lockstep reader about each report before passing it on. Use it
/// around the run's sink whenever the replay is in lockstep (a no-op otherwise).
pub struct GatedSink<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S: ResultSink> ResultSink for GatedSink<S> {
    async fn send(&mut self, record: &Record) -> Result<()> {
        let r = self.inner.send(record).await;
        if !matches!(record, Record::Summary(_)) {
            self.gate.report();
        }
        r
    }

    async fn flush(&mut self) -> Result<()> {
        self.inner.flush().await
    }
}

/// What the audio path did during a replay.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AudioReplaySummary {
    /// Sound events detected.
    pub events: usize,
    /// Cues sent to the runtime.
    pub cues: usize,
    /// Pipeline counters.
    pub stats: PipelineStats,
}

/// What the reader thread returns.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReplaySummary {
    /// Messages read and skipped.
    pub bag: BagStats,
    /// The audio path's summary, when audio was read.
    pub audio: Option<AudioReplaySummary>,
    /// Why the thread stopped early (the runtime went away, the audio path failed).
    pub stopped: Option<String>,
}

/// A running bag replay: its sources go to the runtime, its clock too (so cue lifetimes are in
/// bag time); wrap the sink with [`BagReplay::gate`]; `join` for the summary at the end.
pub struct BagReplay {
    clock: Arc<BagClock>,
    gate: Arc<Gate>,
    stats: Arc<Mutex<BagStats>>,
    handle: std::thread::JoinHandle<ReplaySummary>,
}

impl BagReplay {
    /// Start reading `messages` (a [`super::BagReader`]) through `mapper`, with `audio` for the
    /// audio topic's samples. Returns the frame and cue sources for the runtime.
    pub fn spawn<I, S>(
        messages: I,
        mapper: InputMapper,
        pacing: Pacing,
        audio: Option<AudioPipeline<S>>,
    ) -> Result<(Self, ChannelFrameSource, ChannelCueSource)>
    where
        I: Iterator<Item = std::result::Result<BagMessage, BagError>> + Send + 'static,
        S: WindowScorer + Send + 'static,
    {
        if let Pacing::Rate(r) = pacing {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::Config(format!(
                    "replay rate {r}: expected a finite number > 0 (or lockstep, --every-frame)"
                )));
            }
        }
        let (frame_tx, frames) = ChannelFrameSource::new(1);
        let (cue_tx, cues) = ChannelCueSource::new(64);
        let clock = Arc::new(BagClock::new(pacing));
        let gate = Arc::new(Gate::default());
        let stats = Arc::new(Mutex::new(mapper.stats().clone()));
        let worker = Worker {
            mapper,
            pacing,
            clock: clock.clone(),
            gate: gate.clone(),
            stats: stats.clone(),
            frame_tx,
            cue_tx,
            audio,
            handed: 0,
            audio_summary: AudioReplaySummary::default(),
        };
        let handle = std::thread::Builder::new()
            .name("hlfp-bag".into())
            .spawn(move || worker.run(messages))
            .map_err(|e| Error::Runtime(format!("starting the bag reader thread: {e}")))?;
        Ok((
            Self {
                clock,
                gate,
                stats,
                handle,
            },
            frames,
            cues,
        ))
    }

    /// The bag clock for the runtime (and the recorder).
    pub fn clock(&self) -> Arc<BagClock> {
        self.clock.clone()
    }

    /// The run's sink, wrapped so the lockstep reader hears of each report.
    pub fn gate<S: ResultSink>(&self, sink: S) -> GatedSink<S> {
        GatedSink {
            inner: sink,
            gate: self.gate.clone(),
        }
    }

    /// Live read and skip counts (for diagnostics while running).
    pub fn stats(&self) -> Arc<Mutex<BagStats>> {
        self.stats.clone()
    }

    /// Wait for the reader thread.
    pub fn join(self) -> Result<ReplaySummary> {
        self.handle
            .join()
            .map_err(|_| Error::Runtime("the bag reader thread panicked".into()))
    }
}

struct Worker<S: WindowScorer> {
    mapper: InputMapper,
    pacing: Pacing,
    clock: Arc<BagClock>,
    gate: Arc<Gate>,
    stats: Arc<Mutex<BagStats>>,
    frame_tx: mpsc::Sender<Result<Frame>>,
    cue_tx: mpsc::Sender<Result<CueInput>>,
    audio: Option<AudioPipeline<S>>,
    /// Inputs handed to the runtime (each gets one report).
    handed: u64,
    audio_summary: AudioReplaySummary,
}

impl<S: WindowScorer> Worker<S> {
    fn run(
        mut self,
        messages: impl Iterator<Item = std::result::Result<BagMessage, BagError>>,
    ) -> ReplaySummary {
        let mut stopped = None;
        for item in messages {
            let log_ns = match &item {
                Ok(m) => Some(m.log_time_ns),
                Err(e) => {
                    if matches!(
                        e,
                        BagError::Truncated { .. } | BagError::Io { .. } | BagError::Mcap { .. }
                    ) {
                        self.mapper.set_fatal(e);
                    }
                    None
                }
            };
            let input = self.mapper.map(item);
            *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.mapper.stats().clone();
            let (Some(log_ns), Some(input)) = (log_ns, input) else {
                continue;
            };
            let origin = *self.clock.origin_ns.get_or_init(|| log_ns);
            let bag_us = log_ns.saturating_sub(origin) / 1000;
            if let Err(why) = self.hand_over(bag_us, input) {
                stopped = Some(why);
                break;
            }
        }
        if stopped.is_none() {
            if let Err(why) = self.finish_audio() {
                stopped = Some(why);
            }
        }
        if let Some(a) = &self.audio {
            self.audio_summary.stats = a.stats();
        }
        ReplaySummary {
            bag: self.mapper.stats().clone(),
            audio: self.audio.is_some().then_some(self.audio_summary),
            stopped,
        }
    }

    /// Wait for the input's time (paced) or for the runtime to finish the previous inputs
    /// (lockstep), then hand it over.
    fn hand_over(&mut self, bag_us: u64, input: BagInput) -> std::result::Result<(), String> {
        match self.pacing {
            Pacing::Rate(rate) => {
                let start = *self.clock.started.get_or_init(Instant::now);
                let due = start + Duration::from_secs_f64(bag_us as f64 / 1e6 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            Pacing::Lockstep => {
                self.wait_reports()?;
                self.clock.lockstep_us.fetch_max(bag_us, Ordering::SeqCst);
            }
        }
        match input {
            BagInput::Frame(f) => self.send_frame(f),
            BagInput::Cues(cues) => cues.into_iter().try_for_each(|c| self.send_cue(c)),
            BagInput::Audio { samples, rate_hz } => {
                let Some(pipeline) = self.audio.as_mut() else {
                    return Ok(());
                };
                let (mut events, mut cues) = (Vec::new(), Vec::new());
                if let Err(e) = pipeline.push(&samples, rate_hz, &mut events, &mut cues) {
                    return Err(format!("audio path: {e}"));
                }
                self.send_audio_cues(events.len(), cues)
            }
        }
    }

    fn finish_audio(&mut self) -> std::result::Result<(), String> {
        let Some(pipeline) = self.audio.as_mut() else {
            return Ok(());
        };
        let (mut events, mut cues) = (Vec::new(), Vec::new());
        pipeline
            .finish(&mut events, &mut cues)
            .map_err(|e| format!("audio path: {e}"))?;
        if self.pacing == Pacing::Lockstep {
            self.wait_reports()?;
        }
        self.send_audio_cues(events.len(), cues)
    }

    fn send_audio_cues(
        &mut self,
        events: usize,
        cues: Vec<crate::audio::cues::ClassCue>,
    ) -> std::result::Result<(), String> {
        self.audio_summary.events += events;
        self.audio_summary.cues += cues.len();
        cues.into_iter().try_for_each(|c| {
            self.send_cue(Ok(CueInput {
                class: c.class,
                score: c.score,
                source: c.source.to_string(),
            }))
        })
    }

    fn wait_reports(&self) -> std::result::Result<(), String> {
        let (f, c) = (&self.frame_tx, &self.cue_tx);
        if self
            .gate
            .wait_for(self.handed, || f.is_closed() && c.is_closed())
        {
            Ok(())
        } else {
            Err("the runtime stopped taking input".into())
        }
    }

    fn send_frame(&mut self, f: Result<Frame>) -> std::result::Result<(), String> {
        self.frame_tx
            .blocking_send(f)
            .map_err(|_| "the runtime stopped taking frames".to_string())?;
        self.handed += 1;
        Ok(())
    }

    fn send_cue(&mut self, c: Result<CueInput>) -> std::result::Result<(), String> {
        self.cue_tx
            .blocking_send(c)
            .map_err(|_| "the runtime stopped taking cues".to_string())?;
        self.handed += 1;
        Ok(())
    }
}
