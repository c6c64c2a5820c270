//! HLFP and ResNet models: architecture configs, cost accounting, forward passes, weights I/O.
pub mod config;
pub mod cost;

pub use config::{Architecture, BlockSpec, LayerSpec, ModelConfig, SuperclassMap, Variant};
pub use cost::{cost, Cost, CostBreakdown, PartCost};
