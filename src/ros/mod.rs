//! The ROS 2 layer: message shapes and conversions (pure, always compiled) and the r2r glue
//! (feature `ros2`). The nodes' logic is in [`crate::node`]; the binaries in `src/bin/` wire
//! r2r to it.
pub mod convert;
pub mod msgs;
#[cfg(feature = "ros2")]
pub mod r2r_glue;
