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

/// The shipped sound classifier ([`ensemble`] spec, paths relative to the repository root or
/// the ROS package's share directory): two 0.97 s-window models trained with cat and dog drawn
/// 4x (seeds 1 and 2) score `cat` (their mean), `dog` is the mean of all three, every other
/// label the 0.65 s model's (card: `models/audio_cues.md`).
pub const DEFAULT_MODEL: &str = "cat,dog@models/audio_cues_long_cue4.safetensors\
    +cat,dog@models/audio_cues_long_cue4_seed2.safetensors\
    +dog,*@models/audio_cues.safetensors";
