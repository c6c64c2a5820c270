//! HLFP and ResNet models: the one description of the network ([`spec`]) and everything built
//! from it: configs and variants, cutout selections, cost accounting, weights I/O and model
//! files, the layers of each backend, and the network that runs them (training with BatchNorm,
//! or folded for inference on the CPU engine or on candle).

pub mod blocks;
pub mod config;
pub mod cost;
pub mod files;
pub mod infer;
pub mod layers;
pub mod net;
pub mod selection;
pub mod spec;
pub mod weights;

pub use config::{Architecture, BlockSpec, LayerSpec, ModelConfig, SuperclassMap, Variant};
pub use cost::{cost, Cost, CostBreakdown, PartCost};
pub use files::ModelFiles;
pub use infer::{Backend, InferenceModel, InferenceOptions};
pub use layers::CudaKernels;
pub use net::{probabilities, HlfpModel, Trace, TrainLayers};
pub use selection::Selection;
pub use spec::{NetSpec, TensorSpec};
