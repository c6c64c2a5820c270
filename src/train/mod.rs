//! Training: optimizers with checkpointable state, the learning-rate schedule, the loss, seeded
//! initialization, checkpoints, and the epoch loop over the data loader's batches.

pub mod checkpoint;
pub mod curves;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{Checkpoint, TrainState};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::{label_smoothing_cross_entropy, LrSchedule};
pub use trainer::{EpochMetrics, Precision, StepInfo, TrainConfig, Trainer};
