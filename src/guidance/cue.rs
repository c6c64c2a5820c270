//! Cue types: the cue itself, why one was rejected, counters, and the guidance output.

use serde::{Deserialize, Serialize};

use super::config::Policy;

/// A cue: "look for `class`", with a confidence, where it came from and when (ms, on the
/// runtime's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    /// Visual class name, as in the model's class list.
    pub class: String,
    /// Confidence in [0, 1].
    pub score: f32,
    /// Free-form origin: "audio", "stdin", "ros", ... (reported, and used only to order equal
    /// cues deterministically).
    #[serde(default)]
    pub source: String,
    /// Arrival time in milliseconds on the runtime's clock.
    pub time_ms: u64,
}

/// Why a cue was refused at the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CueRejection {
    /// The class is not in the model's class list.
    UnknownClass {
        /// The name received.
        class: String,
    },
    /// The score is NaN, infinite or outside [0, 1].
    BadScore {
        /// The class named by the cue.
        class: String,
        /// The score received, as text (NaN does not survive JSON).
        score: String,
    },
    /// Too many cues are waiting to be applied (the state was not observed in between).
    Backlog {
        /// The backlog limit.
        limit: usize,
    },
}

impl std::fmt::Display for CueRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CueRejection::UnknownClass { class } => {
                write!(f, "unknown class {class:?}: not in the model's class list")
            }
            CueRejection::BadScore { class, score } => {
                write!(
                    f,
                    "cue for {class:?} has score {score}: expected a finite number in [0, 1]"
                )
            }
            CueRejection::Backlog { limit } => {
                write!(f, "more than {limit} cues waiting: cue dropped")
            }
        }
    }
}

impl std::error::Error for CueRejection {}

/// Counters of everything that happened to cues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuidanceStats {
    /// Cues that set or updated a class's cue (new class admitted, or score and TTL updated).
    pub accepted: u64,
    /// Cues refused for an unknown class name.
    pub rejected_unknown: u64,
    /// Cues refused for a NaN, infinite or out-of-range score.
    pub rejected_bad_score: u64,
    /// Cues refused because too many were waiting.
    pub rejected_backlog: u64,
    /// Cues slowed by a rate limit: a repeat within `min_interval_ms` (TTL refreshed only) or a
    /// new class without an admission token (dropped).
    pub rate_limited: u64,
    /// Cues pushed out by the `max_cues` cap (an old cue evicted, or a new cue too weak to enter).
    pub evicted: u64,
    /// Cues that ran out (TTL and fade over).
    pub expired: u64,
}

impl GuidanceStats {
    /// All cues refused at the door.
    pub fn rejected(&self) -> u64 {
        self.rejected_unknown + self.rejected_bad_score + self.rejected_backlog
    }
}

/// A class that is cued at the time of a [`GuidanceState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CuedClass {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub class: String,
    /// The cue's confidence.
    pub score: f32,
    /// The gain applied now (1 under the `off` policy).
    pub gain: f32,
    /// Whether the TTL is over and the gain is fading back to 1.
    pub fading: bool,
    /// When the cue ends (TTL and fade over), unless refreshed.
    pub until_ms: u64,
}

/// What the model should run at one time: active branches and per-branch gains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuidanceState {
    /// The time this state is for.
    pub time_ms: u64,
    /// The policy in force.
    pub policy: Policy,
    /// Sorted indices of the branches to run (every class when there is no cutout).
    pub active: Vec<usize>,
    /// One gain per class (1 = unchanged); only the active ones matter.
    pub gains: Vec<f32>,
    /// The live cues, by class index.
    pub cued: Vec<CuedClass>,
}

impl GuidanceState {
    /// Whether only some branches run.
    pub fn is_cutout(&self) -> bool {
        self.active.len() < self.gains.len()
    }
}
