//! The fast CPU inference engine: BatchNorm-folded convolutions run as GEMMs (see `conv`).

pub mod conv;
pub mod net;

pub use net::{EngineModel, WeightSource};
