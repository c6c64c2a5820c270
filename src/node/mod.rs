//! The two ROS 2 nodes' logic without ROS: parameter tables and the parameter store, the vision
//! node as an adapter on the runtime, the audio node's core and thread, QoS, logging and
//! shutdown decisions. `src/ros/` holds the message shapes, conversions and the r2r glue;
//! `src/bin/` only wires r2r to what is here, and the tests drive the same code in-process.

pub mod audio;
pub mod audio_params;
pub mod audio_worker;
pub mod logging;
pub mod param_docs;
pub mod params;
pub mod qos;
pub mod shutdown;
pub mod vision;
pub mod vision_params;

pub use audio_params::{AudioInputChoice, AudioNodeConfig, AudioSource, FILE_THRESHOLDS};
pub use params::{NodeParams, ParamError, ParamStore, ParamValue};
pub use vision_params::{Reliability, VisionNodeConfig};

/// Where a node publishes one kind of message: an r2r publisher in the binaries, a channel in
/// tests. An error is logged by the caller and the node goes on.
pub trait Publish<M>: Send {
    /// Publish one message.
    fn publish(&mut self, msg: M) -> crate::Result<()>;
}

impl<M: Send> Publish<M> for tokio::sync::mpsc::UnboundedSender<M> {
    fn publish(&mut self, msg: M) -> crate::Result<()> {
        self.send(msg)
            .map_err(|_| crate::Error::Runtime("the receiver is gone".into()))
    }
}
