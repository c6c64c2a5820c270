//! Choosing the detector's operating point from a validation threshold sweep (`hlfp eval-audio
//! --fold ... --sweep-on ... --choose-limits ...`). The rule, fixed before any test data is seen:
//! try the limits of false cues per minute of background from the strictest; at each, every cued
//! class takes the (on threshold, windows in a row) with the best validation recall whose false
//! cues stay within the limit; the first limit at which every class reaches `min_recall` wins.
//! If none does, the loosest limit is used and the choice says so.

use std::collections::BTreeMap;

use crate::audio::detector::{DetectorConfig, Thresholds};
use crate::{Error, Result};

/// One detector setting's result for one class on the validation streams.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SweepPoint {
    /// `on` threshold (the same for every label in the sweep).
    pub on: f32,
    /// Windows in a row at or above `on` before an onset.
    pub min_on_windows: usize,
    /// Cue recall of the class's clips mixed into background.
    pub recall: f64,
    /// False cues of the class per minute of non-animal background.
    pub false_cues_per_min: f64,
}

/// What one class runs at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassChoice {
    /// Cued (visual) class.
    pub class: String,
    /// The sweep point chosen for it.
    pub point: SweepPoint,
}

/// The chosen operating point: the limit it was chosen under and each class's setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperatingPoint {
    /// False cues per minute of background each class stays within (on validation).
    pub limit_per_min: f64,
    /// Whether every class reached the minimum recall at this limit (false: no limit allowed
    /// it, and this is the loosest limit).
    pub min_recall_met: bool,
    /// One choice per class, in class order.
    pub classes: Vec<ClassChoice>,
}

/// Better of two points for one class: higher recall, then fewer false cues, then the higher
/// threshold, then fewer windows in a row (earlier onsets).
fn better(a: &SweepPoint, b: &SweepPoint) -> bool {
    a.recall
        .total_cmp(&b.recall)
        .then(b.false_cues_per_min.total_cmp(&a.false_cues_per_min))
        .then(a.on.total_cmp(&b.on))
        .then(b.min_on_windows.cmp(&a.min_on_windows))
        .is_gt()
}

/// The best point within `limit`, if any.
fn best_under(points: &[SweepPoint], limit: f64) -> Option<SweepPoint> {
    points
        .iter()
        .filter(|p| p.false_cues_per_min <= limit)
        .fold(None, |best: Option<SweepPoint>, p| match best {
            Some(b) if !better(p, &b) => Some(b),
            _ => Some(*p),
        })
}

/// Choose the operating point from per-class sweeps (see the module docs). A class with no
/// point within even the loosest limit takes its point with the fewest false cues.
pub fn choose(
    sweeps: &BTreeMap<String, Vec<SweepPoint>>,
    limits: &[f64],
    min_recall: f64,
) -> Result<OperatingPoint> {
    let bad = |m: String| Err(Error::Config(format!("choosing the operating point: {m}")));
    if sweeps.is_empty() {
        return bad("no classes were swept".into());
    }
    if let Some((c, _)) = sweeps.iter().find(|(_, p)| p.is_empty()) {
        return bad(format!("class {c:?} has no sweep points"));
    }
    if limits.is_empty() || limits.iter().any(|l| !l.is_finite() || *l < 0.0) {
        return bad(format!(
            "limits of false cues per minute must be finite and >= 0, got {limits:?}"
        ));
    }
    if !(0.0..=1.0).contains(&min_recall) {
        return bad(format!(
            "minimum recall must be in [0, 1], got {min_recall}"
        ));
    }
    let mut sorted = limits.to_vec();
    sorted.sort_by(f64::total_cmp);
    for &limit in &sorted {
        let picks: Option<Vec<ClassChoice>> = sweeps
            .iter()
            .map(|(c, pts)| {
                best_under(pts, limit)
                    .filter(|p| p.recall >= min_recall)
                    .map(|point| ClassChoice {
                        class: c.clone(),
                        point,
                    })
            })
            .collect();
        if let Some(classes) = picks {
            return Ok(OperatingPoint {
                limit_per_min: limit,
                min_recall_met: true,
                classes,
            });
        }
    }
    let loosest = sorted[sorted.len() - 1];
    let classes = sweeps
        .iter()
        .map(|(c, pts)| {
            let point = best_under(pts, loosest).unwrap_or_else(|| {
                let fewest = pts
                    .iter()
                    .map(|p| p.false_cues_per_min)
                    .fold(f64::INFINITY, f64::min);
                best_under(pts, fewest).unwrap_or(pts[0])
            });
            ClassChoice {
                class: c.clone(),
                point,
            }
        })
        .collect();
    Ok(OperatingPoint {
        limit_per_min: loosest,
        min_recall_met: false,
        classes,
    })
}

/// `base` with the chosen settings: for every sound label that cues a chosen class
/// (`labels_of(class)`), its own thresholds (`off` keeps the gap of the default thresholds, to 0.001) and
/// its own window count. The sweep used one `on` for all labels; labels that cue no chosen class
/// keep their settings from `base`. A label that cues two classes with different choices is an
/// error, as is a class no label cues.
pub fn apply(
    base: &DetectorConfig,
    point: &OperatingPoint,
    labels_of: impl Fn(&str) -> Vec<String>,
) -> Result<DetectorConfig> {
    let gap = (base.default_thresholds.on - base.default_thresholds.off).max(0.0);
    let mut cfg = base.clone();
    let mut set: BTreeMap<String, &ClassChoice> = BTreeMap::new();
    for choice in &point.classes {
        let labels = labels_of(&choice.class);
        if labels.is_empty() {
            return Err(Error::Config(format!(
                "no sound label cues the chosen class {:?}",
                choice.class
            )));
        }
        for label in labels {
            if let Some(prev) = set.get(&label) {
                if prev.point.on != choice.point.on
                    || prev.point.min_on_windows != choice.point.min_on_windows
                {
                    return Err(Error::Config(format!(
                        "sound label {label:?} cues {:?} and {:?}, chosen at different settings",
                        prev.class, choice.class
                    )));
                }
            }
            let on = choice.point.on;
            // Rounded to 0.001 so the written file reads 0.7, not 0.6999999.
            let off = ((on - gap).max(0.0) * 1000.0).round() / 1000.0;
            cfg.label_thresholds.insert(
                label.clone(),
                Thresholds {
                    on,
                    off: off.min(on),
                },
            );
            cfg.label_min_on_windows
                .insert(label.clone(), choice.point.min_on_windows);
            set.insert(label, choice);
        }
    }
    Ok(cfg)
}
