//! The training curves figure: loss and top-1 per epoch, training and validation.

use super::trainer::EpochMetrics;
use crate::plot::{Figure, Mark, Panel, Series};

/// Loss (train, val) and top-1 (train, val) against epochs (1-based), ready for
/// [`crate::plot::figure_image`]. `text` draws the labels (needs a registered font).
pub fn curves_figure(title: &str, history: &[EpochMetrics], text: bool) -> Figure {
    let pts = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64 + 1.0, v)))
            .collect()
    };
    let series = |name: &str, points, rgb| Series {
        name: name.into(),
        points,
        rgb,
        mark: Mark::Line,
    };
    const TRAIN: (u8, u8, u8) = (31, 119, 180);
    const VAL: (u8, u8, u8) = (214, 39, 40);
    Figure {
        title: title.into(),
        x_label: "epoch".into(),
        panels: vec![
            Panel {
                y_label: "loss".into(),
                series: vec![
                    series(
                        "train (smoothed labels)",
                        pts(&|m| Some(m.train_loss)),
                        TRAIN,
                    ),
                    series("validation", pts(&|m| m.val_loss), VAL),
                ],
                ..Default::default()
            },
            Panel {
                y_label: "top-1".into(),
                series: vec![
                    series("train (augmented)", pts(&|m| Some(m.train_top1)), TRAIN),
                    series("validation", pts(&|m| m.val_top1), VAL),
                ],
                y_range: Some((0.0, 1.0)),
                integer_y: false,
            },
        ],
        text,
        width: 720,
        panel_height: 260,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(epoch: u64, val: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 2.0 - epoch as f64 * 0.1,
            train_top1: 0.1 * epoch as f64,
            train_images: 10,
            skipped: 0,
            val_loss: val.map(|v| 2.0 - v),
            val_top1: val,
            lr: 1e-3,
            seconds: None,
            images_per_s: None,
        }
    }

    #[test]
    fn one_point_per_epoch_and_missing_validation_is_left_out() {
        let f = curves_figure("t", &[m(0, Some(0.2)), m(1, None), m(2, Some(0.5))], false);
        assert_eq!(f.panels[0].series[0].points.len(), 3);
        assert_eq!(f.panels[1].series[1].points, vec![(1.0, 0.2), (3.0, 0.5)]);
        let img = crate::plot::figure_image(&f).unwrap();
        assert!(img.pixels().any(|p| p.0 == [214, 39, 40]));
    }
}
