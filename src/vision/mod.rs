//! Vision: encoded image files and raw image buffers (ROS encodings) to RGB8, inference preprocessing of frames, and
//! training augmentation.

pub mod augment;
pub mod classifier;
pub mod decode;
pub mod encoding;
pub mod preprocess;
