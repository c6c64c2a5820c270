//! The guided-search runtime (tokio): traits for frame and cue sources and result sinks, an
//! injectable clock, the latest-frame slot, live metrics, and the loop joining them.

pub mod audio_cues;
#[cfg(feature = "camera")]
pub mod camera;
pub mod clock;
pub mod folder;
pub mod io;
pub mod metrics;
pub mod runtime;
pub mod slot;
pub mod types;

pub use audio_cues::{AudioCueSource, AudioInput, AudioSummary, AudioThread, WavReplay};
pub use clock::{Clock, MonotonicClock, ScriptedClock};
pub use folder::ImageFolderSource;
pub use io::{
    stdin_cues, stdout_sink, ChannelCueSource, ChannelFrameSource, ChannelSink, CueSource,
    FrameSource, JsonLinesCueSource, JsonLinesSink, NoCues, ResultSink, TeeSink,
};
pub use metrics::{LatencyWindow, MetricsSnapshot};
pub use runtime::{Control, FramePolicy, Runtime, RuntimeConfig};
pub use slot::LatestSlot;
pub use types::{
    BranchGain, ClassScore, Classified, CueEvent, CueInput, DroppedFrame, Frame, FrameClassifier,
    FrameError, FrameResult, Record,
};
