//! Guidance: cue types and the pure cue state machine (cues and times in, active branches and
//! gains out).

pub mod config;
pub mod cue;
pub mod state;
#[cfg(test)]
mod tests;

pub use config::{GuidanceConfig, Policy, ResolvedConfig};
pub use cue::{Cue, CueRejection, CuedClass, GuidanceState, GuidanceStats};
pub use state::{Guidance, MAX_PENDING};
