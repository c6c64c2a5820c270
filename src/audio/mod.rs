//! Audio cues: front-end, classifier, augmentation, training and the streaming detector.

pub mod augment;
pub mod classifier;
pub mod train;
