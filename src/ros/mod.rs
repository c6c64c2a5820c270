//! The ROS 2 layer: message shapes, parameter parsing, conversions and the two nodes' logic
//! (pure, always compiled), and the r2r glue (feature `ros2`). The nodes in `src/bin/` only wire
//! these to topics.
pub mod audio_core;
pub mod convert;
pub mod model_scorer;
pub mod msgs;
pub mod params;
#[cfg(feature = "ros2")]
pub mod r2r_glue;
pub mod vision_core;
