//! Audio cues: WAV input, resampling, the log-mel front-end, the streaming detector and the
//! sound-label -> visual-class mapping (the classifier lives next to them).

pub mod augment;
pub mod blocks;
#[cfg(feature = "mic")]
pub mod capture;
pub mod classifier;
pub mod cues;
pub mod detector;
pub mod ensemble;
pub mod eval;
pub mod features;
pub mod melaug;
pub mod mixstyle;
pub mod operating_point;
pub mod pipeline;
pub mod resample;
pub mod sources;
pub mod streams;
pub mod train;
pub mod wav;
