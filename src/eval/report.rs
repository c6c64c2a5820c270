//! The result of `hlfp eval`, as one serialisable object (the `--json` output).

use super::classes::SkippedClass;
use crate::model::Variant;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The evaluated model and its full cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Variant name.
    pub variant: Variant,
    /// Class names, index = class.
    pub class_names: Vec<String>,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Channel width multiplier.
    pub width: f64,
    /// Parameters of the full model.
    pub params: u64,
    /// Conv + linear MACs per image of the full model.
    pub macs: u64,
    /// ptflops-style MACs per image (the paper's GMACs convention).
    pub macs_ptflops: u64,
    /// Whether gains act on this variant (false for ResNets and HLFP-1b-late-SP, which have no
    /// per-class branch: their attention sweep is flat by construction).
    pub gains_apply: bool,
    /// What ran the model: `engine` or `candle` (folded inference), or `candle-batchnorm`.
    pub backend: String,
}

/// Accuracy on one true class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassResult {
    /// Class name.
    pub name: String,
    /// Model class index.
    pub index: usize,
    /// Evaluated images of this class.
    pub images: u64,
    /// Of those, predicted correctly by the full model.
    pub correct: u64,
    /// `correct / images`; null when the class had no images.
    pub top1: Option<f64>,
}

/// A cutout evaluated on the images of its own classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutoutResult {
    /// Label of the cutout (`lower`, `upper`, or the classes as given).
    pub name: String,
    /// Class names of the cutout, in index order.
    pub classes: Vec<String>,
    /// Their model indices.
    pub class_indices: Vec<usize>,
    /// Evaluated images whose true class is in the cutout.
    pub images: u64,
    /// Top-1 of the cutout (softmax over its classes only) on those images.
    pub top1: f64,
    /// Top-1 of the full model (all classes) on the same images.
    pub full_top1_on_subset: f64,
    /// `top1 - full_top1_on_subset`, in percentage points.
    pub change_points: f64,
    /// Parameters that run in the cutout.
    pub params: u64,
    /// Conv + linear MACs per image of the cutout.
    pub macs: u64,
    /// ptflops-style MACs per image of the cutout.
    pub macs_ptflops: u64,
}

/// Top-1 with the label-guided gain on the true class's branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GainResult {
    /// The gain.
    pub gain: f64,
    /// Top-1 over all evaluated images.
    pub top1: f64,
    /// `top1` minus the top-1 at gain 1, in percentage points.
    pub change_points: f64,
}

/// An image that could not be read or decoded: counted, not evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedImage {
    /// The file.
    pub path: PathBuf,
    /// Why it failed.
    pub reason: String,
}

/// Everything `hlfp eval` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The model.
    pub model: ModelSummary,
    /// Images evaluated (known classes, decoded).
    pub images: u64,
    /// Of those, correct under the full model.
    pub correct: u64,
    /// Top-1 of the full model.
    pub top1: f64,
    /// Per true class, in model order.
    pub per_class: Vec<ClassResult>,
    /// `confusion[t][p]`: images of true class `t` predicted as `p` (model order).
    pub confusion: Vec<Vec<u64>>,
    /// The cutouts asked for.
    pub cutouts: Vec<CutoutResult>,
    /// Gain (as text, e.g. "1.4") to top-1 with that gain on the true class's branch.
    pub attention: BTreeMap<String, f64>,
    /// The same sweep in gain order, with the change against gain 1.
    pub attention_sweep: Vec<GainResult>,
    /// Dataset classes the model does not know: skipped, with their image counts.
    pub skipped_classes: Vec<SkippedClass>,
    /// Model classes with no images in the dataset.
    pub missing_classes: Vec<String>,
    /// Images of known classes that failed to read or decode (counted, not evaluated).
    pub failed_images: Vec<FailedImage>,
}
