//! Audio cues: WAV input, resampling, the log-mel front-end, the streaming detector and the
//! sound-label -> visual-class mapping (the classifier lives next to them).

pub mod features;
