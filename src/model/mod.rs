//! HLFP and ResNet models: architecture configs, cost accounting, forward passes, weights I/O.

pub mod blocks;
pub mod bn_train;
pub mod config;
pub mod cost;
#[cfg(feature = "cuda")]
pub mod cuda_conv;
pub mod im2col;
pub mod infer;
pub mod net;
pub mod selection;
pub mod spec;
pub mod weights;

pub use config::{Architecture, BlockSpec, LayerSpec, ModelConfig, SuperclassMap, Variant};
pub use cost::{cost, Cost, CostBreakdown, PartCost};
pub use infer::InferenceModel;
pub use net::{probabilities, HlfpModel, Trace};
pub use selection::Selection;
pub use spec::{NetSpec, TensorSpec};
