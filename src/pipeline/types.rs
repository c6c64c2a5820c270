//! The runtime's data: frames, the classifier trait, cue messages and the output records.

use serde::{Deserialize, Serialize};

use super::metrics::MetricsSnapshot;
use crate::guidance::Policy;
use crate::{Error, Result};

/// One RGB8 image with its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Sequence number from the source.
    pub id: u64,
    /// Capture time in nanoseconds (source's time base, copied into the result).
    pub stamp_ns: i64,
    /// Coordinate frame or camera name (copied into the result).
    pub frame_id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB8, row-major, `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// Check that the buffer matches the size.
    pub fn validate(&self) -> Result<()> {
        let want = u64::from(self.width) * u64::from(self.height) * 3;
        if self.width == 0 || self.height == 0 {
            return Err(Error::BadInput(format!(
                "frame {}: size {}x{}: expected a non-empty image",
                self.id, self.width, self.height
            )));
        }
        if self.rgb.len() as u64 != want {
            return Err(Error::BadInput(format!(
                "frame {}: {} bytes for {}x{} RGB8: expected {want}",
                self.id,
                self.rgb.len(),
                self.width,
                self.height
            )));
        }
        Ok(())
    }
}

/// What a classifier returns for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// (class index, probability) over the active branches.
    pub scores: Vec<(usize, f32)>,
    /// Multiply-accumulates spent on this frame.
    pub macs: u64,
}

/// A vision model that can run a subset of its branches with gains. Called on the runtime's
/// inference thread only.
pub trait FrameClassifier: Send + 'static {
    /// Class names, in branch order.
    fn class_names(&self) -> &[String];
    /// Classify `frame` running only the branches in `active` (sorted class indices), each
    /// branch `i` scaled by `gains[i]` (one gain per class).
    fn classify(&mut self, frame: &Frame, active: &[usize], gains: &[f32]) -> Result<Classified>;
}

/// A cue message as received (the runtime stamps it with its clock on arrival).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueInput {
    /// Visual class name.
    pub class: String,
    /// Confidence in [0, 1] (1 when absent).
    #[serde(default = "one")]
    pub score: f32,
    /// Where it came from ("audio", "stdin", ...).
    #[serde(default)]
    pub source: String,
}

fn one() -> f32 {
    1.0
}

/// A class and its score in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub class: String,
    /// Probability over the active set.
    pub score: f32,
}

/// A branch whose gain is not 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchGain {
    /// Class index.
    pub index: usize,
    /// Gain applied to the branch.
    pub gain: f32,
}

/// The result for one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameResult {
    /// The frame's id.
    pub id: u64,
    /// The frame's stamp (ns).
    pub stamp_ns: i64,
    /// The frame's frame_id.
    pub frame_id: String,
    /// Top classes over the active set, best first (ties by index).
    pub top: Vec<ClassScore>,
    /// Guidance policy in force.
    pub policy: Policy,
    /// Branches run (sorted class indices).
    pub active: Vec<usize>,
    /// Branches whose gain differs from 1.
    pub gains: Vec<BranchGain>,
    /// Names of the cued classes.
    pub cued: Vec<String>,
    /// Multiply-accumulates spent.
    pub macs: u64,
    /// From arrival at the runtime to the result, in ms.
    pub latency_ms: f64,
    /// Clock time at which the frame arrived (the guidance state is the one for this time).
    pub time_ms: u64,
}

/// What happened to a cue message at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CueEvent {
    /// Clock time of arrival.
    pub time_ms: u64,
    /// The class named (empty for an unreadable message).
    pub class: String,
    /// The score given.
    pub score: f32,
    /// Its source.
    pub source: String,
    /// `true` if the cue passed validation and was queued for the guidance state machine (it
    /// may still be rate-limited or evicted there:
    /// see the counters).
    pub queued: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A frame dropped by the latest-frame slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedFrame {
    /// The frame's id.
    pub id: u64,
    /// The frame's stamp (ns).
    pub stamp_ns: i64,
    /// Clock time of the drop.
    pub time_ms: u64,
}

/// A frame that could not be classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameError {
    /// The frame's id, when known.
    pub id: Option<u64>,
    /// What went wrong.
    pub error: String,
    /// Clock time.
    pub time_ms: u64,
}

/// One output line of the runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A classified frame.
    Result(FrameResult),
    /// A cue message received.
    Cue(CueEvent),
    /// A frame dropped under overload.
    Dropped(DroppedFrame),
    /// A frame refused or failed.
    Error(FrameError),
    /// Final metrics at the end of a run.
    Summary(MetricsSnapshot),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_validation_names_the_expected_size() {
        let mut f = Frame {
            id: 3,
            stamp_ns: 0,
            frame_id: "cam".into(),
            width: 2,
            height: 2,
            rgb: vec![0; 12],
        };
        assert!(f.validate().is_ok());
        f.rgb.pop();
        assert!(f
            .validate()
            .unwrap_err()
            .to_string()
            .contains("expected 12"));
        f.width = 0;
        assert!(f.validate().is_err());
    }

    #[test]
    fn records_are_tagged_json() {
        let r = Record::Dropped(DroppedFrame {
            id: 1,
            stamp_ns: 2,
            time_ms: 3,
        });
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"type":"dropped","id":1,"stamp_ns":2,"time_ms":3}"#);
        assert_eq!(serde_json::from_str::<Record>(&s).unwrap(), r);
        let c: CueInput = serde_json::from_str(r#"{"class":"cat"}"#).unwrap();
        assert_eq!(c.score, 1.0);
    }
}
