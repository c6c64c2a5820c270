//! The learning-rate schedule (linear warm-up, then cosine decay, per step) and the
//! label-smoothing cross-entropy loss.

use crate::error::CandleContext;
use crate::Result;
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

/// Linear warm-up from `base_lr / warmup_steps` to `base_lr`, then cosine decay to `min_lr` at
/// `total_steps` (timm's `cosine` scheduler, stepped per iteration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub base_lr: f64,
    /// Final learning rate.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Mean cross-entropy of `logits` `[B, k]` against class indices `labels` `[B]` (u32), with
/// label smoothing `eps`: the target puts `1 - eps` on the label and `eps / k` on every class.
pub fn label_smoothing_cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1).ctx("log_softmax")?;
    let idx = labels
        .to_dtype(DType::U32)
        .and_then(|l| l.unsqueeze(1))
        .ctx("labels")?;
    let nll = logp
        .gather(&idx, 1)
        .and_then(|t| t.squeeze(1))
        .and_then(|t| t.neg())
        .ctx("nll")?;
    let smooth = logp
        .mean(D::Minus1)
        .and_then(|t| t.neg())
        .ctx("smoothing term")?;
    let per = ((nll * (1.0 - eps)).and_then(|a| a + (smooth * eps)?)).ctx("loss mix")?;
    per.mean_all().ctx("loss mean")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule {
            base_lr: 1.0,
            min_lr: 0.0,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(9) - 0.5).abs() < 1e-12); // half way through the cosine
        assert!(s.lr(14).abs() < 1e-12);
        assert!(s.lr(100).abs() < 1e-12);
        for k in 4..13 {
            assert!(s.lr(k + 1) < s.lr(k));
        }
    }

    #[test]
    fn label_smoothing_matches_hand_computation() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; label 1: nll = ln(4/3), mean(-logp) = (ln 4 + ln 4/3) / 2.
        let logits = Tensor::new(&[[0.0f32, 3f32.ln()]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        let ce = |eps| {
            label_smoothing_cross_entropy(&logits, &labels, eps)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let nll = (4.0f64 / 3.0).ln();
        let smooth = (4.0f64.ln() + (4.0f64 / 3.0).ln()) / 2.0;
        assert!((ce(0.0) - nll).abs() < 1e-6);
        assert!((ce(0.1) - (0.9 * nll + 0.1 * smooth)).abs() < 1e-6);
    }
}
