//! The paper's evaluations on any ImageFolder: top-1, per-class accuracy and confusion of the
//! full model, cutouts on their own classes' images (Table 3), and the label-guided attention
//! gain sweep (Sec. 4.5).
//!
//! The parts are pure: [`classes`] matches a dataset's class folders to the model's classes,
//! [`metrics`] counts, [`evaluator`] runs the model on batches of tensors and [`report`] holds the
//! serialisable result. Reading images (the data loader) and printing live in `hlfp eval`;
//! [`crate::model::files`] finds a model's weights and config on disk.

pub mod classes;
pub mod evaluator;
pub mod metrics;
pub mod report;

pub use classes::{align_classes, halves, parse_subset, ClassAlignment, SkippedClass};
pub use evaluator::{Classifier, EvalConfig, Evaluator, Subset, DEFAULT_GAINS};
pub use metrics::Confusion;
pub use report::{ClassResult, CutoutResult, EvalReport, FailedImage, GainResult, ModelSummary};
