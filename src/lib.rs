//! hlfp: High-Level Feature Parallelization vision models, audio cues and guided search.
//!
//! The library is pure: no ROS, no devices, no clock. I/O lives in the binaries and behind
//! cargo features (`ros2`, `camera`, `mic`, `cuda`).

pub mod alloc;
pub mod audio;
pub mod bag;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval;
pub mod guidance;
pub mod kernels;
pub mod model;
pub mod node;
pub mod pipeline;
pub mod plot;
pub mod ros;
pub mod stats;
pub mod train;
pub mod vision;

pub use error::{Error, Result};
