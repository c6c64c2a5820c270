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

impl EvalReport {
    /// The headline numbers as a markdown table for the docs (what `hlfp eval --markdown FILE`
    /// writes): the full model, each cutout on its own classes' images next to the full model
    /// on the same images, and the attention sweep. Nothing machine-dependent (no timing).
    pub fn markdown(&self) -> String {
        let pct = |v: f64| format!("{:.1} %", 100.0 * v);
        let mmacs = |m: u64| format!("{:.1}", m as f64 / 1e6);
        let k = self.model.class_names.len();
        let mut s = format!(
            "{} at width {} and {} px, {} images of {} classes.\n\n",
            self.model.variant,
            self.model.width,
            self.model.input_size,
            self.images,
            self.per_class.iter().filter(|c| c.images > 0).count()
        );
        s += "| running | params | MMACs | top-1 (its images) | full model on the same images |\n";
        s += "|---|---:|---:|---:|---:|\n";
        s += &format!(
            "| all {k} branches | {} | {} | **{}** | - |\n",
            thousands(self.model.params),
            mmacs(self.model.macs),
            pct(self.top1)
        );
        for c in &self.cutouts {
            let which = match c.name.as_str() {
                "lower" | "upper" => format!("cutout: {} {} classes", c.name, c.classes.len()),
                _ => format!("cutout: {}", c.classes.join(", ")),
            };
            s += &format!(
                "| {which} | {} | {} | {} | {} |\n",
                thousands(c.params),
                mmacs(c.macs),
                pct(c.top1),
                pct(c.full_top1_on_subset)
            );
        }
        let sweep: Vec<&GainResult> = self
            .attention_sweep
            .iter()
            .filter(|g| g.gain != 1.0)
            .collect();
        if !sweep.is_empty() {
            let gains: Vec<String> = sweep.iter().map(|g| g.gain.to_string()).collect();
            let tops: Vec<String> = sweep.iter().map(|g| pct(g.top1)).collect();
            s += &format!(
                "| attention gain {} on the true class | {} | {} | {} | {} |\n",
                gains.join(" / "),
                thousands(self.model.params),
                mmacs(self.model.macs),
                tops.join(" / "),
                pct(self.top1)
            );
        }
        s
    }
}

/// `1234567` as `1,234,567` (the docs' tables write counts this way).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        let v: Vec<String> = [0, 999, 1000, 820_638, 1_234_567].map(thousands).to_vec();
        assert_eq!(v, ["0", "999", "1,000", "820,638", "1,234,567"]);
    }
}
