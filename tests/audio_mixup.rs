//! Mixup of training windows: partners have another label, windows and targets are mixed with
//! the same weight, a seed reproduces it, off or a one-label batch changes nothing, bad input is
//! an error; the soft-target loss matches the smoothed one on one-hot targets; `train` uses it.

use candle_core::{Device, Tensor};
use hlfp::audio::augment::{mixup_batch, MixupConfig};
use hlfp::audio::train::{binary_cross_entropy, smoothed_cross_entropy, soft_cross_entropy};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod audio_util;
use audio_util::{assert_train_applies, OptionCase};

const LEN: usize = 6;
const LABELS: usize = 4;

/// Window `i` holds `10 * i + k` at position k.
fn batch(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| (0..LEN).map(move |k| (10 * i + k) as f32))
        .collect()
}

#[test]
fn mixed_windows_pair_other_labels_with_matching_weights() -> anyhow::Result<()> {
    let ys = [0u32, 1, 1, 2, 3, 0, 2, 1];
    let cfg = MixupConfig {
        prob: 1.0,
        min_weight: 0.5,
    };
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..100 {
        let orig = batch(ys.len());
        let mut xs = orig.clone();
        let t = mixup_batch(&mut xs, &ys, LEN, LABELS, &cfg, &mut rng)?;
        assert_eq!(t.len(), ys.len() * LABELS);
        for (i, &y) in ys.iter().enumerate() {
            let row = &t[i * LABELS..(i + 1) * LABELS];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
            let w = row[y as usize];
            assert!((0.5..=1.0).contains(&w), "own weight {w}");
            let other: Vec<usize> = (0..LABELS)
                .filter(|&l| l != y as usize && row[l] > 0.0)
                .collect();
            assert_eq!(other.len(), 1, "p = 1 mixes every window: {row:?}");
            assert!((row[other[0]] - (1.0 - w)).abs() < 1e-6);
            // Some window of the partner's label, as it was before mixing, explains the values.
            let x = &xs[i * LEN..(i + 1) * LEN];
            let explained = (0..ys.len())
                .filter(|&j| ys[j] as usize == other[0])
                .any(|j| {
                    (0..LEN).all(|k| {
                        let want = w * orig[i * LEN + k] + (1.0 - w) * orig[j * LEN + k];
                        (x[k] - want).abs() < 1e-4
                    })
                });
            assert!(
                explained,
                "window {i}: {x:?} (w {w}, partner label {})",
                other[0]
            );
        }
    }
    Ok(())
}

#[test]
fn off_or_one_label_batches_are_unchanged_with_one_hot_targets() -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(1);
    let one_hot = |ys: &[u32]| -> Vec<f32> {
        ys.iter()
            .flat_map(|&y| (0..LABELS).map(move |l| if l == y as usize { 1.0 } else { 0.0 }))
            .collect()
    };
    let on = MixupConfig {
        prob: 1.0,
        min_weight: 0.5,
    };
    for (cfg, ys) in [
        (MixupConfig::off(), vec![0u32, 1, 2, 3]),
        (on, vec![2u32, 2, 2]),
    ] {
        let mut xs = batch(ys.len());
        let t = mixup_batch(&mut xs, &ys, LEN, LABELS, &cfg, &mut rng)?;
        assert_eq!(xs, batch(ys.len()), "{cfg:?}");
        assert_eq!(t, one_hot(&ys), "{cfg:?}");
    }
    Ok(())
}

#[test]
fn same_seed_same_mix_and_probability_is_respected() -> anyhow::Result<()> {
    let ys: Vec<u32> = (0..200).map(|i| (i % LABELS) as u32).collect();
    let run = |seed, prob| -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut xs = batch(ys.len());
        let cfg = MixupConfig {
            prob,
            min_weight: 0.5,
        };
        let t = mixup_batch(&mut xs, &ys, LEN, LABELS, &cfg, &mut rng)?;
        Ok((xs, t))
    };
    let a = run(7, 0.5)?;
    assert_eq!(a, run(7, 0.5)?);
    assert_ne!(a, run(8, 0.5)?);
    let mixed =
        a.1.chunks(LABELS)
            .filter(|r| r.iter().all(|&v| v < 1.0))
            .count();
    // Binomial(200, 0.5): sd 7.1. (A weight of exactly 1 would count as unmixed; it has
    // probability 0 here.)
    assert!((70..=130).contains(&mixed), "{mixed} of 200 mixed");
    Ok(())
}

#[test]
fn bad_config_and_shapes_are_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let ok = MixupConfig::new();
    let cases: Vec<(MixupConfig, usize, Vec<u32>, &str)> = vec![
        (
            MixupConfig {
                prob: 1.5,
                ..ok.clone()
            },
            2 * LEN,
            vec![0, 1],
            "mixup prob must be in [0, 1], got 1.5",
        ),
        (
            MixupConfig {
                min_weight: -0.1,
                ..ok.clone()
            },
            2 * LEN,
            vec![0, 1],
            "min_weight must be in [0, 1]",
        ),
        (
            ok.clone(),
            2 * LEN - 1,
            vec![0, 1],
            "11 values for 2 windows of 6",
        ),
        (ok.clone(), 2 * LEN, vec![0, 4], "label 4 is not below 4"),
    ];
    for (cfg, len, ys, want) in cases {
        let mut xs = vec![0.0; len];
        let err = mixup_batch(&mut xs, &ys, LEN, LABELS, &cfg, &mut rng)
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
}

#[test]
fn soft_loss_equals_smoothed_loss_on_one_hot_targets_and_a_hand_value() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let logits = Tensor::from_vec(
        vec![2.0f32, -1.0, 0.5, 0.0, 1.0, 3.0, -2.0, 0.25],
        (2, 4),
        &dev,
    )?;
    let y = Tensor::from_vec(vec![0u32, 1], 2, &dev)?;
    let one_hot = Tensor::from_vec(
        vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        (2, 4),
        &dev,
    )?;
    for eps in [0.0, 0.1] {
        let a = soft_cross_entropy(&logits, &one_hot, eps)?.to_scalar::<f32>()?;
        let b = smoothed_cross_entropy(&logits, &y, eps)?.to_scalar::<f32>()?;
        assert!((a - b).abs() < 1e-5, "eps {eps}: {a} vs {b}");
    }
    // Row 0 with target (0.7, 0.3, 0, 0), no smoothing: -(0.7 log p0 + 0.3 log p1).
    let row = [2.0f64, -1.0, 0.5, 0.0];
    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
    let want = -(0.7 * (row[0] - lse) + 0.3 * (row[1] - lse));
    let l = Tensor::from_vec(row.map(|v| v as f32).to_vec(), (1, 4), &dev)?;
    let t = Tensor::from_vec(vec![0.7f32, 0.3, 0.0, 0.0], (1, 4), &dev)?;
    let got = soft_cross_entropy(&l, &t, 0.0)?.to_scalar::<f32>()? as f64;
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    Ok(())
}

#[test]
fn binary_cross_entropy_matches_the_formula_and_survives_large_logits() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let row = [2.0f64, -1.0, 0.5, 0.0];
    let target = [0.7f64, 0.3, 0.0, 0.0];
    let sig = |l: f64| 1.0 / (1.0 + (-l).exp());
    for eps in [0.0, 0.2] {
        let want: f64 = row
            .iter()
            .zip(&target)
            .map(|(&l, &t)| {
                let t = t * (1.0 - eps) + eps / 4.0;
                -(t * sig(l).ln() + (1.0 - t) * (1.0 - sig(l)).ln())
            })
            .sum();
        let l = Tensor::from_vec(row.map(|v| v as f32).to_vec(), (1, 4), &dev)?;
        let t = Tensor::from_vec(target.map(|v| v as f32).to_vec(), (1, 4), &dev)?;
        let got = binary_cross_entropy(&l, &t, eps)?.to_scalar::<f32>()? as f64;
        assert!((got - want).abs() < 1e-4, "eps {eps}: {got} vs {want}");
    }
    // Logits far past exp's range stay finite: right and sure costs ~0, wrong and sure ~|l|.
    let l = Tensor::from_vec(vec![200f32, -200.0], (1, 2), &dev)?;
    let right = Tensor::from_vec(vec![1f32, 0.0], (1, 2), &dev)?;
    let wrong = Tensor::from_vec(vec![0f32, 1.0], (1, 2), &dev)?;
    assert!(binary_cross_entropy(&l, &right, 0.0)?.to_scalar::<f32>()? < 1e-6);
    let w = binary_cross_entropy(&l, &wrong, 0.0)?.to_scalar::<f32>()?;
    assert!((w - 400.0).abs() < 1e-2, "{w}");
    Ok(())
}

// --- wiring into `train` ---

#[test]
fn train_applies_mixup_reproducibly_and_refuses_bad_settings() -> anyhow::Result<()> {
    let with_prob = |prob| MixupConfig {
        prob,
        min_weight: 0.5,
    };
    assert_train_applies(
        OptionCase {
            default: MixupConfig::off(),
            off: MixupConfig::off(),
            on: with_prob(1.0),
            bad: (with_prob(-1.0), "mixup prob must be in [0, 1]"),
        },
        |cfg| cfg.mixup.clone(),
        |cfg, v| cfg.mixup = v,
    )
}
