//! Small statistics the evaluations share: medians and quantiles, and 95 % intervals for the two
//! kinds of number a cue evaluation reports, a recall (hits out of clips) and a rate (false cues
//! in minutes of background). With a few hundred clips and under half an hour of background,
//! "0.23 against 0.26" or "2 false cues against 3" is within the noise; the intervals say so.

/// Median of `v` (sorted copy); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// Linear-interpolated quantile `q` in [0, 1] of `v`; `None` when empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(s[lo] + (s[hi] - s[lo]) * (pos - lo as f64))
}

/// The normal quantile of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// 95 % Wilson score interval of a proportion `hits / n`; `None` when `n` is 0 (or `hits > n`).
/// Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or `n` hits.
pub fn wilson_interval(hits: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 || hits > n {
        return None;
    }
    let (k, n) = (hits as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or `n` hits the bound is exactly 0 or 1 (the formula lands a rounding error away).
    let lo = if hits == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if hits as f64 == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((lo, hi))
}

/// `P(X <= k)` for `X ~ Poisson(mean)`, summed term by term in log space.
fn poisson_cdf(k: usize, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 1.0;
    }
    let (mut log_term, mut sum) = (-mean, 0.0);
    for i in 0..=k {
        if i > 0 {
            log_term += mean.ln() - (i as f64).ln();
        }
        sum += log_term.exp();
    }
    sum.min(1.0)
}

/// The mean `m` at which `poisson_cdf(k, m)` equals `target` (it falls as `m` grows), by
/// bisection: deterministic, no special functions.
fn poisson_mean_at(k: usize, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, k as f64 + 10.0 * (k as f64 + 1.0).sqrt() + 10.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if poisson_cdf(k, mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Exact (Garwood) 95 % interval of an event rate per unit of `exposure` (false cues per
/// minute of background) from `count` events; `None` when the exposure is not positive.
pub fn poisson_rate_interval(count: usize, exposure: f64) -> Option<(f64, f64)> {
    if !(exposure > 0.0 && exposure.is_finite()) {
        return None;
    }
    // Lower: the mean under which `count` or more events have probability 2.5 %; upper: the
    // mean under which `count` or fewer have probability 2.5 %.
    let lower = if count == 0 {
        0.0
    } else {
        poisson_mean_at(count - 1, 0.975)
    };
    let upper = poisson_mean_at(count, 0.025);
    Some((lower / exposure, upper / exposure))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_published_values_and_stays_in_range() {
        // 101 of 202 (SciPy's normal quantile in the textbook formula: 0.43170-0.56830).
        let (lo, hi) = wilson_interval(101, 202).unwrap();
        assert!(
            close(lo, 0.43170, 1e-5) && close(hi, 0.56830, 1e-5),
            "{lo} {hi}"
        );
        // All or none hit: one side at the bound, the other inside.
        assert_eq!(wilson_interval(0, 10).unwrap().0, 0.0);
        assert!(close(wilson_interval(0, 10).unwrap().1, 0.27753, 1e-5));
        assert!(close(wilson_interval(10, 10).unwrap().0, 0.72247, 1e-5));
        assert_eq!(wilson_interval(10, 10).unwrap().1, 1.0);
        assert_eq!(wilson_interval(0, 0), None);
        assert_eq!(wilson_interval(3, 2), None);
    }

    #[test]
    fn garwood_matches_chi_square_tables() {
        // chi2(0.025; 2k) / 2 to chi2(0.975; 2k + 2) / 2, from SciPy: 0 events -> 0-3.68888;
        // 1 -> 0.02532-5.57164; 16 -> 9.14538-25.98300.
        for (k, lo, hi) in [
            (0, 0.0, 3.68888),
            (1, 0.02532, 5.57164),
            (16, 9.14538, 25.98300),
        ] {
            let (l, h) = poisson_rate_interval(k, 1.0).unwrap();
            assert!(close(l, lo, 1e-4) && close(h, hi, 1e-4), "{k}: {l} {h}");
        }
        // Per minute: the same count over 23.9 minutes.
        let (l, h) = poisson_rate_interval(16, 23.9).unwrap();
        assert!(close(l, 9.14538 / 23.9, 1e-5) && close(h, 25.98300 / 23.9, 1e-5));
        assert_eq!(poisson_rate_interval(3, 0.0), None);
        assert_eq!(poisson_rate_interval(3, f64::NAN), None);
    }

    #[test]
    fn quantiles_interpolate_and_the_median_is_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(quantile(&[0.0, 10.0], 0.95), Some(9.5));
        assert_eq!(median(&[]), None);
    }
}
