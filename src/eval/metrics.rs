//! Counting: the confusion matrix (true class x predicted class) and what follows from it.

use serde::Serialize;

/// A `k x k` confusion matrix: `counts[t][p]` images of true class `t` predicted as `p`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// An empty matrix over `k` classes.
    pub fn new(k: usize) -> Self {
        Self {
            counts: vec![vec![0; k]; k],
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Count one image. Out-of-range classes are ignored (the evaluator never produces them).
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if let Some(c) = self
            .counts
            .get_mut(truth)
            .and_then(|row| row.get_mut(predicted))
        {
            *c += 1;
        }
    }

    /// The rows (true class) of counts per predicted class.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Images counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.counts.len()).map(|i| self.counts[i][i]).sum()
    }

    /// Images of true class `t`.
    pub fn class_total(&self, t: usize) -> u64 {
        self.counts.get(t).map_or(0, |r| r.iter().sum())
    }

    /// Correct predictions of true class `t`.
    pub fn class_correct(&self, t: usize) -> u64 {
        self.counts
            .get(t)
            .and_then(|r| r.get(t))
            .copied()
            .unwrap_or(0)
    }

    /// Top-1 accuracy over all counted images (0 when none).
    pub fn top1(&self) -> f64 {
        ratio(self.correct(), self.total())
    }
}

/// `num / den`, or 0 for an empty denominator.
pub fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_rows_by_truth() {
        let mut c = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 2), (1, 1), (2, 2), (2, 2), (2, 0)] {
            c.add(t, p);
        }
        assert_eq!(c.counts(), &[vec![1, 0, 1], vec![0, 1, 0], vec![1, 0, 2]]);
        assert_eq!((c.total(), c.correct()), (6, 4));
        assert_eq!((c.class_total(2), c.class_correct(2)), (3, 2));
        assert!((c.top1() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(Confusion::new(2).top1(), 0.0);
    }

    #[test]
    fn argmax_takes_first_max_and_skips_nan() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, 2.0]), 2);
        assert_eq!(argmax(&[3.0]), 0);
    }
}
