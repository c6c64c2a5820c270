//! Vision: inference preprocessing of frames and training augmentation.

pub mod augment;
pub mod preprocess;
