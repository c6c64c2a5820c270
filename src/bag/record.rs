//! The runtime's records as a rosbag2 MCAP file: one `vision_msgs/msg/Classification` per
//! classified frame with the frame's header (what `hlfp_node` publishes on `classification`),
//! the accepted cues as `Classification` messages, `vision_msgs/msg/LabelInfo` once, and
//! `diagnostic_msgs/msg/DiagnosticArray` every `diagnostics_period_ms` of bag time and at the
//! end, each channel with its `ros2msg` schema. Messages are built by the node's converters in
//! `ros::convert`; log times are the bag clock's times turned back into the input's log times.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mcap::records::MessageHeader;
use serde::Serialize;

use super::cdr;
use super::input::{time_from_ns, BagStats};
use super::replay::BagClock;
use super::{BagError, KnownType};
use crate::pipeline::{CueEvent, FrameResult, Record, ResultSink};
use crate::ros::convert::{
    classification_msg, diagnostic_array, diagnostic_status, label_info_msg,
};
use crate::ros::msgs::{DiagnosticStatus, Header};
use crate::Result;

/// Output topic names (those `hlfp_node` publishes under, in the root namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTopics {
    /// Per-frame results.
    pub classification: String,
    /// Accepted cues.
    pub cues: String,
    /// The class list, once.
    pub label_info: String,
    /// Status.
    pub diagnostics: String,
}

impl Default for RecordTopics {
    fn default() -> Self {
        Self {
            classification: "/classification".into(),
            cues: "/cues".into(),
            label_info: "/label_info".into(),
            diagnostics: "/diagnostics".into(),
        }
    }
}

/// rosbag2's `offered_qos_profiles` channel metadata: reliable, keep last, volatile or
/// transient local (the latched `label_info`).
fn qos_yaml(transient_local: bool) -> String {
    let durability = if transient_local { 1 } else { 2 };
    format!(
        "- history: 1\n  depth: {}\n  reliability: 1\n  durability: {durability}\n  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false\n",
        if transient_local { 1 } else { 10 }
    )
}

/// The last µs of millisecond `ms`: records carry ms, so an event logged there is never logged
/// before the input that caused it.
fn end_of_ms_us(ms: u64) -> u64 {
    ms.saturating_mul(1000).saturating_add(999)
}

/// Records the runtime's output into an MCAP file (a [`ResultSink`]).
pub struct BagRecorder {
    writer: Option<mcap::Writer<BufWriter<File>>>,
    path: PathBuf,
    classes: Vec<String>,
    clock: Arc<BagClock>,
    bag_stats: Option<Arc<Mutex<BagStats>>>,
    channels: Channels,
    label_written: bool,
    diagnostics_period_ms: u64,
    next_diagnostics_ms: u64,
    counts: Counts,
    sequence: u32,
}

#[derive(Debug, Clone, Copy)]
struct Channels {
    classification: u16,
    cues: u16,
    label_info: u16,
    diagnostics: u16,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Counts {
    frames_classified: u64,
    frames_rejected: u64,
    frames_dropped: u64,
    cues_accepted: u64,
    cues_refused: u64,
    last_time_ms: u64,
}

impl BagRecorder {
    /// Create `path` for a model with `classes`; times come from the replay's `clock`.
    pub fn create(
        path: &Path,
        topics: &RecordTopics,
        classes: Vec<String>,
        clock: Arc<BagClock>,
    ) -> std::result::Result<Self, BagError> {
        let file = File::create(path).map_err(|source| BagError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let werr = |e: mcap::McapError| BagError::Write {
            path: path.to_path_buf(),
            what: e.to_string(),
        };
        let mut writer = mcap::WriteOptions::new()
            .profile("ros2")
            .library(concat!("hlfp ", env!("CARGO_PKG_VERSION")))
            .create(BufWriter::new(file))
            .map_err(werr)?;
        let mut channel = |ty: KnownType, topic: &str, latched: bool| {
            let schema = writer
                .add_schema(ty.name(), "ros2msg", ty.schema_text().as_bytes())
                .map_err(werr)?;
            let meta = BTreeMap::from([("offered_qos_profiles".to_string(), qos_yaml(latched))]);
            writer
                .add_channel(schema, topic, "cdr", &meta)
                .map_err(werr)
        };
        let channels = Channels {
            classification: channel(KnownType::Classification, &topics.classification, false)?,
            cues: channel(KnownType::Classification, &topics.cues, false)?,
            label_info: channel(KnownType::LabelInfo, &topics.label_info, true)?,
            diagnostics: channel(KnownType::DiagnosticArray, &topics.diagnostics, false)?,
        };
        Ok(Self {
            writer: Some(writer),
            path: path.to_path_buf(),
            classes,
            clock,
            bag_stats: None,
            channels,
            label_written: false,
            diagnostics_period_ms: 1000,
            next_diagnostics_ms: 0,
            counts: Counts::default(),
            sequence: 0,
        })
    }

    /// Report these read and skip counts in the diagnostics.
    pub fn with_bag_stats(mut self, stats: Arc<Mutex<BagStats>>) -> Self {
        self.bag_stats = Some(stats);
        self
    }

    /// Diagnostics every `ms` of bag time (default 1000).
    pub fn with_diagnostics_period_ms(mut self, ms: u64) -> Self {
        self.diagnostics_period_ms = ms.max(1);
        self
    }

    fn write<T: Serialize>(&mut self, channel: u16, log_ns: u64, msg: &T) -> Result<()> {
        let data = cdr::encode(msg)?;
        let path = self.path.clone();
        let Some(w) = self.writer.as_mut() else {
            return Err(BagError::Write {
                path,
                what: "the recording is already finished".into(),
            }
            .into());
        };
        self.sequence = self.sequence.wrapping_add(1);
        w.write_to_known_channel(
            &MessageHeader {
                channel_id: channel,
                sequence: self.sequence,
                log_time: log_ns,
                publish_time: log_ns,
            },
            &data,
        )
        .map_err(|e| BagError::Write {
            path,
            what: e.to_string(),
        })?;
        Ok(())
    }

    fn stamp(log_ns: u64) -> Header {
        Header {
            stamp: time_from_ns(i64::try_from(log_ns).unwrap_or(i64::MAX)),
            frame_id: String::new(),
        }
    }

    fn ensure_label_info(&mut self) -> Result<()> {
        if self.label_written {
            return Ok(());
        }
        self.label_written = true;
        let log_ns = self.clock.log_time_ns(0);
        let msg = label_info_msg(Self::stamp(log_ns), &self.classes, 0.0)?;
        self.write(self.channels.label_info, log_ns, &msg)
    }

    fn result(&mut self, r: &FrameResult) -> Result<()> {
        self.counts.frames_classified += 1;
        let log_ns = self
            .clock
            .log_time_ns(end_of_ms_us(r.time_ms) + (r.latency_ms.max(0.0) * 1000.0) as u64);
        let header = Header {
            stamp: time_from_ns(r.stamp_ns),
            frame_id: r.frame_id.clone(),
        };
        let msg = classification_msg(header, r.top.iter().map(|c| (c.class.as_str(), c.score)));
        self.write(self.channels.classification, log_ns, &msg)
    }

    fn cue(&mut self, c: &CueEvent) -> Result<()> {
        if !c.queued {
            self.counts.cues_refused += 1;
            return Ok(());
        }
        self.counts.cues_accepted += 1;
        let log_ns = self.clock.log_time_ns(end_of_ms_us(c.time_ms));
        let header = Header {
            frame_id: c.source.clone(),
            ..Self::stamp(log_ns)
        };
        let msg = classification_msg(header, [(c.class.as_str(), c.score)]);
        self.write(self.channels.cues, log_ns, &msg)
    }

    fn diagnostics(&mut self, time_ms: u64) -> Result<()> {
        let bag = self
            .bag_stats
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default();
        let c = &self.counts;
        let mut values: Vec<(String, String)> = vec![
            ("frames_classified".into(), c.frames_classified.to_string()),
            ("frames_rejected".into(), c.frames_rejected.to_string()),
            ("frames_dropped".into(), c.frames_dropped.to_string()),
            ("cues_accepted".into(), c.cues_accepted.to_string()),
            ("cues_refused".into(), c.cues_refused.to_string()),
            ("classes".into(), self.classes.len().to_string()),
            ("bag_messages".into(), bag.messages.to_string()),
            ("bag_skipped".into(), bag.skipped_total().to_string()),
        ];
        if let Some(t) = &bag.image_topic {
            values.push(("image_topic".into(), t.clone()));
        }
        for (reason, n) in &bag.skipped {
            values.push((format!("bag_skipped.{reason}"), n.to_string()));
        }
        let problems = c.frames_rejected + bag.skipped_total();
        let (level, message) = if let Some(f) = &bag.fatal {
            (DiagnosticStatus::ERROR, f.clone())
        } else if problems > 0 {
            (
                DiagnosticStatus::WARN,
                format!("{problems} frames or messages rejected or skipped since start"),
            )
        } else {
            (DiagnosticStatus::OK, "running".to_string())
        };
        let log_ns = self.clock.log_time_ns(time_ms * 1000);
        let msg = diagnostic_array(
            Self::stamp(log_ns),
            diagnostic_status("hlfp run: bag replay", "", level, &message, &values),
        );
        self.write(self.channels.diagnostics, log_ns, &msg)
    }
}

impl ResultSink for BagRecorder {
    async fn send(&mut self, record: &Record) -> Result<()> {
        self.ensure_label_info()?;
        let time_ms = match record {
            Record::Result(r) => {
                self.result(r)?;
                r.time_ms
            }
            Record::Cue(c) => {
                self.cue(c)?;
                c.time_ms
            }
            Record::Dropped(d) => {
                self.counts.frames_dropped += 1;
                d.time_ms
            }
            Record::Error(e) => {
                self.counts.frames_rejected += 1;
                e.time_ms
            }
            Record::Summary(m) => {
                let t = m.time_ms.max(self.counts.last_time_ms);
                return self.diagnostics(t);
            }
        };
        self.counts.last_time_ms = self.counts.last_time_ms.max(time_ms);
        if time_ms >= self.next_diagnostics_ms {
            self.next_diagnostics_ms = time_ms + self.diagnostics_period_ms;
            self.diagnostics(time_ms)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.ensure_label_info()?;
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(|e| BagError::Write {
                path: self.path.clone(),
                what: e.to_string(),
            })?;
            let mut inner = w.into_inner();
            std::io::Write::flush(&mut inner).map_err(|source| BagError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}
