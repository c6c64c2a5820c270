//! The evaluator: runs a model on batches and counts the full model, its cutouts and the
//! label-guided gain sweep.
//!
//! Per batch it runs the full model once; each cutout once on the batch's images of the
//! cutout's classes (a real cutout forward: trunk plus the selected branches, softmax over them);
//! and each gain other than 1 once, with that gain on every branch of the classes present in
//! the batch. Each image then reads the gained output of its TRUE class's branch only and the
//! ungained outputs of all others. This equals running every image with the gain on its own
//! true class alone, because the per-class branches do not see each other: a gain on branch c
//! changes logit c and nothing else.

use super::classes::SkippedClass;
use super::metrics::{argmax, ratio, Confusion};
use super::report::{ClassResult, CutoutResult, EvalReport, FailedImage, GainResult, ModelSummary};
use crate::error::CandleContext;
use crate::model::{cost, HlfpModel, InferenceModel, ModelConfig, Selection};
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The paper-style sweep of the attention gain (Sec. 4.5): 1.0 to 2.0 in steps of 0.2.
pub const DEFAULT_GAINS: [f64; 6] = [1.0, 1.2, 1.4, 1.6, 1.8, 2.0];

/// A model the evaluator can run: logits `[B, |sel|]` in `sel`'s order, with per-class gains
/// (one per class of the model, or empty for none).
pub trait Classifier {
    /// The model's config.
    fn config(&self) -> &ModelConfig;
    /// Inference-mode logits.
    fn logits(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Tensor>;
    /// What runs it, for reports: `engine` or `candle` (folded inference), or
    /// `candle-batchnorm` (the training path's eval mode).
    fn backend(&self) -> &'static str;
}

impl Classifier for InferenceModel {
    fn config(&self) -> &ModelConfig {
        InferenceModel::config(self)
    }
    fn logits(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Tensor> {
        self.forward(x, sel, gains)
    }
    fn backend(&self) -> &'static str {
        InferenceModel::backend(self).name()
    }
}

impl Classifier for HlfpModel {
    fn config(&self) -> &ModelConfig {
        HlfpModel::config(self)
    }
    fn logits(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> Result<Tensor> {
        self.forward(x, sel, gains)
    }
    fn backend(&self) -> &'static str {
        "candle-batchnorm"
    }
}

/// A named set of classes to evaluate as a cutout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// Label for reports.
    pub name: String,
    /// Model class indices.
    pub classes: Vec<usize>,
}

/// What to evaluate besides the full model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalConfig {
    /// Cutouts, each evaluated on the images of its own classes.
    pub cutouts: Vec<Subset>,
    /// Gains of the attention sweep; 1.0 is added when missing (the reference). Empty = no sweep.
    pub gains: Vec<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SubsetTally {
    images: u64,
    cutout_correct: u64,
    full_correct: u64,
}

/// Accumulates the evaluation of one model over batches.
pub struct Evaluator<'m, M: Classifier + ?Sized> {
    model: &'m M,
    all: Selection,
    cutouts: Vec<(Subset, Selection)>,
    gains: Vec<f64>,
    confusion: Confusion,
    subsets: Vec<SubsetTally>,
    gain_correct: Vec<u64>,
    failed: Vec<FailedImage>,
}

impl<'m, M: Classifier + ?Sized> Evaluator<'m, M> {
    /// Check `cfg` against the model: cutout classes in range, gains finite and >= 0.
    pub fn new(model: &'m M, cfg: EvalConfig) -> Result<Self> {
        let mcfg = model.config();
        let k = mcfg.num_classes();
        let mut cutouts = Vec::with_capacity(cfg.cutouts.len());
        for s in cfg.cutouts {
            let sel = Selection::from_indices(mcfg, &s.classes)
                .map_err(|e| Error::Config(format!("cutout {:?}: {e}", s.name)))?;
            cutouts.push((
                Subset {
                    name: s.name,
                    classes: sel.classes().to_vec(),
                },
                sel,
            ));
        }
        if let Some(g) = cfg.gains.iter().find(|g| !(g.is_finite() && **g >= 0.0)) {
            return Err(Error::Config(format!(
                "attention gains must be finite and >= 0, got {g}"
            )));
        }
        let mut gains = cfg.gains;
        if !gains.is_empty() && !gains.contains(&1.0) {
            gains.push(1.0);
        }
        gains.sort_by(f64::total_cmp);
        gains.dedup();
        Ok(Self {
            model,
            all: Selection::all(mcfg),
            subsets: vec![SubsetTally::default(); cutouts.len()],
            gain_correct: vec![0; gains.len()],
            cutouts,
            gains,
            confusion: Confusion::new(k),
            failed: Vec::new(),
        })
    }

    /// Evaluate a batch: `x` is `[B, 3, S, S]` (preprocessed), `labels[i]` image i's model class.
    pub fn add_batch(&mut self, x: &Tensor, labels: &[u32]) -> Result<()> {
        let k = self.confusion.num_classes();
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= k) {
            return Err(Error::BadInput(format!(
                "label {bad} is out of range for a model with {k} classes"
            )));
        }
        let b = x.dim(0).ctx("batch size")?;
        if b != labels.len() {
            return Err(Error::BadInput(format!(
                "batch has {b} images but {} labels",
                labels.len()
            )));
        }
        if b == 0 {
            return Ok(());
        }
        let full = self
            .model
            .logits(x, &self.all, &[])?
            .to_vec2::<f32>()
            .ctx("full logits")?;
        let preds: Vec<usize> = full.iter().map(|r| argmax(r)).collect();
        for (l, p) in labels.iter().zip(&preds) {
            self.confusion.add(*l as usize, *p);
        }

        for ((subset, sel), tally) in self.cutouts.iter().zip(self.subsets.iter_mut()) {
            let idx: Vec<u32> = (0..b as u32)
                .filter(|&i| subset.classes.contains(&(labels[i as usize] as usize)))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let rows = Tensor::new(idx.as_slice(), x.device()).ctx("cutout rows")?;
            let xs = x.index_select(&rows, 0).ctx("cutout images")?;
            let logits = self
                .model
                .logits(&xs, sel, &[])?
                .to_vec2::<f32>()
                .ctx("cutout logits")?;
            for (&i, row) in idx.iter().zip(&logits) {
                let truth = labels[i as usize] as usize;
                tally.images += 1;
                tally.cutout_correct += u64::from(sel.classes()[argmax(row)] == truth);
                tally.full_correct += u64::from(preds[i as usize] == truth);
            }
        }

        if self.gains.is_empty() {
            return Ok(());
        }
        let mut present: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        present.sort_unstable();
        present.dedup();
        let sel = Selection::from_indices(self.model.config(), &present)?;
        let gains_apply = self.model.config().variant.is_branched();
        for (gi, &g) in self.gains.iter().enumerate() {
            let guided = if g == 1.0 || !gains_apply {
                // Gain 1 is the identity, and variants without per-class branches ignore gains.
                preds.clone()
            } else {
                let gains = vec![g as f32; k];
                let gained = self
                    .model
                    .logits(x, &sel, &gains)?
                    .to_vec2::<f32>()
                    .ctx("gained logits")?;
                let own: Vec<f32> = labels
                    .iter()
                    .zip(&gained)
                    .map(|(&l, row)| {
                        let pos = present.binary_search(&(l as usize)).unwrap_or(0);
                        row.get(pos).copied().unwrap_or(f32::NAN)
                    })
                    .collect();
                guided_predictions(&full, labels, &own)
            };
            self.gain_correct[gi] += labels
                .iter()
                .zip(&guided)
                .filter(|(l, p)| **l as usize == **p)
                .count() as u64;
        }
        Ok(())
    }

    /// Count an image that failed to load (it is not evaluated).
    pub fn add_failed(&mut self, path: PathBuf, reason: String) {
        self.failed.push(FailedImage { path, reason });
    }

    /// Images evaluated so far.
    pub fn images(&self) -> u64 {
        self.confusion.total()
    }

    /// The confusion matrix so far.
    pub fn confusion(&self) -> &Confusion {
        &self.confusion
    }

    /// The report, with the dataset's skipped and missing classes.
    pub fn report(
        &self,
        skipped_classes: Vec<SkippedClass>,
        missing_classes: Vec<String>,
    ) -> Result<EvalReport> {
        let cfg = self.model.config();
        let full_cost = cost(cfg, None)?;
        let c = &self.confusion;
        let per_class = cfg
            .class_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let images = c.class_total(i);
                let correct = c.class_correct(i);
                ClassResult {
                    name: name.clone(),
                    index: i,
                    images,
                    correct,
                    top1: (images > 0).then(|| ratio(correct, images)),
                }
            })
            .collect();
        let mut cutouts = Vec::with_capacity(self.cutouts.len());
        for ((subset, _), t) in self.cutouts.iter().zip(&self.subsets) {
            let cc = cost(cfg, Some(&subset.classes))?;
            let top1 = ratio(t.cutout_correct, t.images);
            let full = ratio(t.full_correct, t.images);
            cutouts.push(CutoutResult {
                name: subset.name.clone(),
                classes: subset
                    .classes
                    .iter()
                    .map(|&i| cfg.class_names[i].clone())
                    .collect(),
                class_indices: subset.classes.clone(),
                images: t.images,
                top1,
                full_top1_on_subset: full,
                change_points: 100.0 * (top1 - full),
                params: cc.params,
                macs: cc.macs,
                macs_ptflops: cc.macs_ptflops,
            });
        }
        let n = c.total();
        let base = self
            .gains
            .iter()
            .position(|&g| g == 1.0)
            .map(|i| ratio(self.gain_correct[i], n));
        let attention_sweep: Vec<GainResult> = self
            .gains
            .iter()
            .zip(&self.gain_correct)
            .map(|(&gain, &ok)| {
                let top1 = ratio(ok, n);
                GainResult {
                    gain,
                    top1,
                    change_points: 100.0 * (top1 - base.unwrap_or(top1)),
                }
            })
            .collect();
        let attention: BTreeMap<String, f64> = attention_sweep
            .iter()
            .map(|r| (format!("{:?}", r.gain), r.top1))
            .collect();
        Ok(EvalReport {
            model: ModelSummary {
                variant: cfg.variant,
                class_names: cfg.class_names.clone(),
                input_size: cfg.input_size,
                width: cfg.width,
                params: full_cost.params,
                macs: full_cost.macs,
                macs_ptflops: full_cost.macs_ptflops,
                gains_apply: cfg.variant.is_branched(),
                backend: self.model.backend().to_string(),
            },
            images: n,
            correct: c.correct(),
            top1: c.top1(),
            per_class,
            confusion: c.counts().to_vec(),
            cutouts,
            attention,
            attention_sweep,
            skipped_classes,
            missing_classes,
            failed_images: self.failed.clone(),
        })
    }
}

/// Predictions under the label-guided gain: image i keeps its ungained logits `full[i]` except
/// the column of its true class `labels[i]`, which becomes `gained_true[i]` (that class's
/// logit with the gain on its branch).
pub fn guided_predictions(full: &[Vec<f32>], labels: &[u32], gained_true: &[f32]) -> Vec<usize> {
    full.iter()
        .zip(labels)
        .zip(gained_true)
        .map(|((row, &l), &g)| {
            let mut row = row.clone();
            if let Some(v) = row.get_mut(l as usize) {
                *v = g;
            }
            argmax(&row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guided_prediction_replaces_only_the_true_column() {
        let full = vec![vec![0.0, 2.0, 1.0], vec![3.0, 0.0, 1.0]];
        // Image 0 (class 2) is lifted above class 1; image 1 (class 1) stays below class 0.
        assert_eq!(guided_predictions(&full, &[2, 1], &[2.5, 2.9]), vec![2, 0]);
        // Feeding back the ungained logits gives the ungained predictions.
        assert_eq!(guided_predictions(&full, &[2, 1], &[1.0, 0.0]), vec![1, 0]);
    }
}
