//! Vision: raw image buffer decoding (ROS encodings), inference preprocessing of frames, and
//! training augmentation.

pub mod augment;
pub mod classifier;
pub mod encoding;
pub mod preprocess;
