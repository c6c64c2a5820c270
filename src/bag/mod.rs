//! rosbag2 (MCAP, CDR) replay and recording without ROS: read a robot's recording into the
//! pipeline's frames, cues and audio, and write the pipeline's results back as the ROS 2
//! messages the node publishes, so `ros2 bag play` and Foxglove read them.
//!
//! - [`schema`]: the message definitions (one place), embedded on write, checked on read.
//! - [`cdr`]: the CDR encapsulation and the message structs `src/ros/msgs.rs` lacks.
//! - [`read`]: streaming MCAP reading that contains damage to the chunk it is in.
//! - [`input`]: bag messages to frames, cues and audio chunks (the node's conversions).
//! - [`replay`]: a bag as the runtime's frame and cue sources, paced or in lockstep.
//! - [`record`]: the runtime's records as an MCAP file.

pub mod cdr;
pub mod input;
pub mod read;
pub mod record;
pub mod replay;
pub mod schema;

use std::path::PathBuf;

pub use input::{BagInput, BagStats, InputMapper, TopicConfig};
pub use read::{BagChannel, BagMessage, BagReader};
pub use record::{BagRecorder, RecordTopics};
pub use replay::{BagClock, BagReplay, GatedSink, Pacing};
pub use schema::KnownType;

/// What can go wrong reading or writing a bag. Each names the input and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The bag.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The MCAP container is malformed (bad magic, a record that does not parse).
    #[error("{path}: not a readable MCAP file: {what}")]
    Mcap {
        /// The bag.
        path: PathBuf,
        /// What the MCAP reader said.
        what: String,
    },
    /// The file ends inside a record.
    #[error("{path}: the file ends inside a record (truncated; {messages} messages read before)")]
    Truncated {
        /// The bag.
        path: PathBuf,
        /// Messages read before the cut.
        messages: u64,
    },
    /// A chunk did not decompress or parse; its remaining messages are skipped.
    #[error("damaged chunk skipped after {messages_kept} of its messages: {what}")]
    DamagedChunk {
        /// What failed.
        what: String,
        /// Messages of the chunk read before the damage.
        messages_kept: u64,
    },
    /// A schema cannot be parsed or is missing a definition.
    #[error("schema: {0}")]
    BadSchema(String),
    /// A channel's schema has another layout than the one this crate decodes.
    #[error("{name}: the bag's definition has layout {found}, expected {expected}")]
    SchemaMismatch {
        /// The type name.
        name: String,
        /// Our layout.
        expected: String,
        /// The bag's.
        found: String,
    },
    /// A message's bytes are not valid CDR for its type.
    #[error("CDR: {0}")]
    Cdr(String),
    /// The MCAP writer failed.
    #[error("writing {path}: {what}")]
    Write {
        /// The output bag.
        path: PathBuf,
        /// What failed.
        what: String,
    },
}

impl From<BagError> for crate::Error {
    fn from(e: BagError) -> Self {
        match e {
            BagError::Io { path, source } => crate::Error::Io { path, source },
            other => crate::Error::BadInput(other.to_string()),
        }
    }
}
