//! Frequency-wise MixStyle for training batches of log-mel windows: each chosen window keeps
//! its own time pattern in every mel bin but takes a level and spread per bin that lie between
//! its own and another window's. A recording setup shows up as a per-bin level and spread
//! (microphone response, room, codec), so mixing those statistics across the batch asks the
//! network to hear the sound, not the setup (Kim et al., DCASE 2022 device generalisation;
//! Zhou et al., ICLR 2021 for image styles). The labels stay as they are.

use rand::Rng;

use crate::error::{Error, Result};

/// Settings of [`freq_mixstyle`].
#[derive(Debug, Clone, PartialEq)]
pub struct FreqMixStyleConfig {
    /// Probability that a window's per-bin statistics are mixed (0 = off).
    pub prob: f32,
    /// The mixing weight `lambda` (the window's own share) is Beta(alpha, alpha): small alpha
    /// puts most draws near 0 or 1, so most mixed windows take mostly one window's statistics.
    pub alpha: f32,
}

impl FreqMixStyleConfig {
    /// Largest `alpha` accepted: the Beta sampler slows down as alpha grows, and above a few
    /// the draws all sit near 0.5 anyway.
    pub const MAX_ALPHA: f32 = 4.0;

    /// The usual setting in the DCASE literature: p = 0.4, alpha = 0.3.
    pub fn new() -> Self {
        Self {
            prob: 0.4,
            alpha: 0.3,
        }
    }

    /// No mixing.
    pub fn off() -> Self {
        Self {
            prob: 0.0,
            alpha: 0.3,
        }
    }

    /// Whether any window can be mixed.
    pub fn is_active(&self) -> bool {
        self.prob > 0.0
    }

    /// Reject a probability outside [0, 1] or an alpha outside (0, MAX_ALPHA].
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(Error::Config(format!(
                "freq-mixstyle prob must be in [0, 1], got {}",
                self.prob
            )));
        }
        if !(self.alpha > 0.0 && self.alpha <= Self::MAX_ALPHA) {
            return Err(Error::Config(format!(
                "freq-mixstyle alpha must be in (0, {}], got {}",
                Self::MAX_ALPHA,
                self.alpha
            )));
        }
        Ok(())
    }
}

impl Default for FreqMixStyleConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A draw from Beta(a, b) by Jöhnk's method (exact; fast for the small shapes used here).
pub fn sample_beta(a: f32, b: f32, rng: &mut impl Rng) -> f32 {
    let (ia, ib) = (1.0 / a as f64, 1.0 / b as f64);
    loop {
        let x = rng.random::<f64>().powf(ia);
        let y = rng.random::<f64>().powf(ib);
        let s = x + y;
        if s <= 1.0 && s > 0.0 {
            return (x / s) as f32;
        }
    }
}

/// Mean and standard deviation over time of every mel bin of one window
/// (`frames x n_mels`, frame-major).
fn bin_stats(w: &[f32], frames: usize, n_mels: usize) -> (Vec<f32>, Vec<f32>) {
    const VAR_EPS: f64 = 1e-6;
    let mut mean = vec![0f64; n_mels];
    for f in w.chunks_exact(n_mels) {
        mean.iter_mut().zip(f).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= frames as f64);
    let mut var = vec![0f64; n_mels];
    for f in w.chunks_exact(n_mels) {
        for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(f) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|&s| ((s / frames as f64) + VAR_EPS).sqrt() as f32)
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

/// Frequency-wise MixStyle on a batch of log-mel windows (`xs` = whole `frames x n_mels`
/// windows, frame-major, dB): with probability `prob` a window is standardised per mel bin over
/// time and given the per-bin mean and deviation `lambda * own + (1 - lambda) * partner's`, the
/// partner drawn from the other windows of the batch (any label). Statistics are those of the
/// windows as they came in, so the order of the windows does not matter.
pub fn freq_mixstyle(
    xs: &mut [f32],
    frames: usize,
    n_mels: usize,
    cfg: &FreqMixStyleConfig,
    rng: &mut impl Rng,
) -> Result<()> {
    cfg.validate()?;
    let window_len = frames * n_mels;
    if window_len == 0 || xs.len() % window_len != 0 {
        return Err(Error::BadInput(format!(
            "freq-mixstyle batch has {} values, not whole windows of {frames} x {n_mels}",
            xs.len()
        )));
    }
    let n = xs.len() / window_len;
    if !cfg.is_active() || n < 2 {
        return Ok(());
    }
    let stats: Vec<(Vec<f32>, Vec<f32>)> = xs
        .chunks_exact(window_len)
        .map(|w| bin_stats(w, frames, n_mels))
        .collect();
    for (i, w) in xs.chunks_exact_mut(window_len).enumerate() {
        if rng.random::<f32>() >= cfg.prob {
            continue;
        }
        let mut j = rng.random_range(0..n - 1);
        if j >= i {
            j += 1;
        }
        let lambda = sample_beta(cfg.alpha, cfg.alpha, rng);
        let (mu, sd) = &stats[i];
        let (mu_p, sd_p) = &stats[j];
        let mix = |a: f32, b: f32| lambda * a + (1.0 - lambda) * b;
        for f in w.chunks_exact_mut(n_mels) {
            for (b, v) in f.iter_mut().enumerate() {
                *v = (*v - mu[b]) / sd[b] * mix(sd[b], sd_p[b]) + mix(mu[b], mu_p[b]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Two windows of 8 frames x 3 bins with different levels and spreads per bin.
    fn batch() -> Vec<f32> {
        let mut xs = Vec::new();
        for (level, spread) in [(-60f32, 2f32), (-20f32, 9f32)] {
            for t in 0..8 {
                for b in 0..3 {
                    let wave = ((t * 5 + b * 3) % 7) as f32 - 3.0;
                    xs.push(level + b as f32 * 4.0 + spread * (b as f32 + 1.0) * wave / 3.0);
                }
            }
        }
        xs
    }

    #[test]
    fn off_leaves_the_batch_alone() {
        let mut xs = batch();
        let before = xs.clone();
        let mut rng = StdRng::seed_from_u64(1);
        freq_mixstyle(&mut xs, 8, 3, &FreqMixStyleConfig::off(), &mut rng).unwrap();
        assert_eq!(xs, before);
    }

    #[test]
    fn mixed_windows_keep_their_pattern_and_take_statistics_between_the_two() {
        let before = batch();
        let cfg = FreqMixStyleConfig {
            prob: 1.0,
            alpha: 0.3,
        };
        let mut moved = 0;
        for seed in 0..20 {
            let mut xs = before.clone();
            let mut rng = StdRng::seed_from_u64(seed);
            freq_mixstyle(&mut xs, 8, 3, &cfg, &mut rng).unwrap();
            let own: Vec<_> = before.chunks(24).map(|w| bin_stats(w, 8, 3)).collect();
            for (i, w) in xs.chunks(24).enumerate() {
                let (mu, sd) = bin_stats(w, 8, 3);
                let (mu0, sd0) = &own[i];
                let (mu1, sd1) = &own[1 - i];
                for b in 0..3 {
                    let between =
                        |v: f32, a: f32, c: f32| v >= a.min(c) - 1e-3 && v <= a.max(c) + 1e-3;
                    assert!(between(mu[b], mu0[b], mu1[b]), "mean {} of bin {b}", mu[b]);
                    assert!(
                        between(sd[b], sd0[b], sd1[b]),
                        "deviation {} of bin {b}",
                        sd[b]
                    );
                    if (mu[b] - mu0[b]).abs() > 1.0 {
                        moved += 1;
                    }
                    // The standardised time pattern of every bin is the window's own.
                    for t in 0..8 {
                        let z_new = (w[t * 3 + b] - mu[b]) / sd[b];
                        let z_old = (before[i * 24 + t * 3 + b] - mu0[b]) / sd0[b];
                        assert!(
                            (z_new - z_old).abs() < 1e-3,
                            "t {t} bin {b}: {z_new} vs {z_old}"
                        );
                    }
                }
            }
        }
        assert!(moved > 20, "statistics moved in only {moved} bins");
    }

    #[test]
    fn beta_draws_have_the_beta_mean_and_variance() {
        let mut rng = StdRng::seed_from_u64(3);
        for (a, b) in [(0.3f32, 0.3f32), (2.0, 1.0)] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| sample_beta(a, b, &mut rng) as f64).collect();
            assert!(xs.iter().all(|&x| (0.0..=1.0).contains(&x)));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (a, b) = (a as f64, b as f64);
            let want_mean = a / (a + b);
            let want_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!(
                (mean - want_mean).abs() < 0.01,
                "mean {mean} vs {want_mean}"
            );
            assert!(
                (var - want_var).abs() < 0.01,
                "variance {var} vs {want_var}"
            );
        }
    }

    #[test]
    fn bad_settings_and_shapes_are_errors() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut xs = batch();
        for cfg in [
            FreqMixStyleConfig {
                prob: 1.5,
                alpha: 0.3,
            },
            FreqMixStyleConfig {
                prob: 0.5,
                alpha: 0.0,
            },
            FreqMixStyleConfig {
                prob: 0.5,
                alpha: f32::NAN,
            },
            FreqMixStyleConfig {
                prob: 0.5,
                alpha: 9.0,
            },
        ] {
            assert!(
                freq_mixstyle(&mut xs, 8, 3, &cfg, &mut rng).is_err(),
                "{cfg:?}"
            );
        }
        let mut short = vec![0f32; 25];
        let err = freq_mixstyle(&mut short, 8, 3, &FreqMixStyleConfig::new(), &mut rng);
        assert!(err.unwrap_err().to_string().contains("whole windows"));
    }
}
