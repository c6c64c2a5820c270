//! SpecAugment on log-mel windows: masks stay inside the window and within their limits, only
//! masked cells change (to the per-bin fill), a seed reproduces the masks, no masks is the
//! identity, impossible settings are clear errors, and `train` applies it.

use hlfp::audio::augment::{spec_augment, MaskAxis, SpecAugmentConfig, SpecMask};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod audio_util;
use audio_util::{assert_train_applies, OptionCase, WINDOW_FRAMES};

const FRAMES: usize = 96;
const MELS: usize = 64;

/// A window whose every cell is distinct (and far from the fill values).
fn ramp() -> Vec<f32> {
    (0..FRAMES * MELS).map(|i| 1000.0 + i as f32).collect()
}

/// A different fill per bin, so a test can tell which bin a filled cell belongs to.
fn fill() -> Vec<f32> {
    (0..MELS).map(|m| -(m as f32) - 1.0).collect()
}

fn always(cfg: SpecAugmentConfig) -> SpecAugmentConfig {
    SpecAugmentConfig { prob: 1.0, ..cfg }
}

fn masked(masks: &[SpecMask], frame: usize, mel: usize) -> bool {
    masks.iter().any(|m| {
        let i = match m.axis {
            MaskAxis::Freq => mel,
            MaskAxis::Time => frame,
        };
        (m.start..m.start + m.width).contains(&i)
    })
}

#[test]
fn recipe_defaults_match_the_documented_ones() {
    let c = SpecAugmentConfig::new(FRAMES);
    assert_eq!(
        (
            c.prob,
            c.freq_masks,
            c.max_freq_bins,
            c.time_masks,
            c.max_time_frames
        ),
        (0.8, 2, 8, 2, 9)
    );
    assert!(c.is_active());
    assert!(!SpecAugmentConfig::off().is_active());
}

#[test]
fn masks_stay_in_bounds_within_limits_and_change_only_masked_cells() -> anyhow::Result<()> {
    let cfg = always(SpecAugmentConfig::new(FRAMES));
    let fill = fill();
    let mut rng = StdRng::seed_from_u64(11);
    let (mut widths_f, mut widths_t) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let mut w = ramp();
        let masks = spec_augment(&mut w, FRAMES, MELS, &fill, &cfg, &mut rng)?;
        assert_eq!(masks.len(), 4, "{masks:?}");
        let nf = masks.iter().filter(|m| m.axis == MaskAxis::Freq).count();
        assert_eq!(nf, 2, "{masks:?}");
        for m in &masks {
            let (max, size) = match m.axis {
                MaskAxis::Freq => (8, MELS),
                MaskAxis::Time => (9, FRAMES),
            };
            assert!(m.width <= max, "{m:?}");
            assert!(m.start + m.width <= size, "{m:?}");
            match m.axis {
                MaskAxis::Freq => widths_f.push(m.width),
                MaskAxis::Time => widths_t.push(m.width),
            }
        }
        let orig = ramp();
        for f in 0..FRAMES {
            for b in 0..MELS {
                let (got, was) = (w[f * MELS + b], orig[f * MELS + b]);
                if masked(&masks, f, b) {
                    assert_eq!(got, fill[b], "frame {f} bin {b}");
                } else {
                    assert_eq!(got, was, "frame {f} bin {b} changed outside every mask");
                }
            }
        }
    }
    // Widths are uniform over 0..=max: both ends occur in 1000 draws each.
    for (ws, max) in [(&widths_f, 8), (&widths_t, 9)] {
        assert_eq!(ws.iter().min(), Some(&0));
        assert_eq!(ws.iter().max(), Some(&max));
    }
    Ok(())
}

#[test]
fn a_mask_as_wide_as_the_window_fits() -> anyhow::Result<()> {
    let cfg = SpecAugmentConfig {
        prob: 1.0,
        freq_masks: 1,
        max_freq_bins: MELS,
        time_masks: 1,
        max_time_frames: FRAMES,
    };
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..200 {
        let mut w = ramp();
        for m in spec_augment(&mut w, FRAMES, MELS, &fill(), &cfg, &mut rng)? {
            let size = if m.axis == MaskAxis::Freq {
                MELS
            } else {
                FRAMES
            };
            assert!(m.start + m.width <= size, "{m:?}");
        }
    }
    Ok(())
}

#[test]
fn same_seed_same_masks_other_seed_other_masks() -> anyhow::Result<()> {
    let cfg = SpecAugmentConfig::new(FRAMES);
    let run = |seed| -> anyhow::Result<(Vec<Vec<SpecMask>>, Vec<f32>)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut all = Vec::new();
        let mut out = Vec::new();
        for _ in 0..20 {
            let mut w = ramp();
            all.push(spec_augment(&mut w, FRAMES, MELS, &fill(), &cfg, &mut rng)?);
            out.extend(w);
        }
        Ok((all, out))
    };
    let a = run(5)?;
    assert_eq!(a, run(5)?);
    assert_ne!(a.0, run(6)?.0);
    Ok(())
}

#[test]
fn zero_masks_or_zero_probability_is_the_identity() -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(1);
    let none = SpecAugmentConfig {
        freq_masks: 0,
        time_masks: 0,
        ..always(SpecAugmentConfig::new(FRAMES))
    };
    let zero_width = SpecAugmentConfig {
        max_freq_bins: 0,
        max_time_frames: 0,
        ..always(SpecAugmentConfig::new(FRAMES))
    };
    let never = SpecAugmentConfig {
        prob: 0.0,
        ..SpecAugmentConfig::new(FRAMES)
    };
    for cfg in [none, zero_width, never, SpecAugmentConfig::off()] {
        assert!(!cfg.is_active(), "{cfg:?}");
        for _ in 0..50 {
            let mut w = ramp();
            let masks = spec_augment(&mut w, FRAMES, MELS, &fill(), &cfg, &mut rng)?;
            assert!(masks.is_empty(), "{cfg:?}: {masks:?}");
            assert_eq!(w, ramp(), "{cfg:?}");
        }
    }
    Ok(())
}

#[test]
fn masks_are_applied_with_the_configured_probability() -> anyhow::Result<()> {
    let cfg = SpecAugmentConfig {
        prob: 0.3,
        ..SpecAugmentConfig::new(FRAMES)
    };
    let mut rng = StdRng::seed_from_u64(9);
    let n = 4000;
    let mut hit = 0;
    for _ in 0..n {
        let mut w = ramp();
        if !spec_augment(&mut w, FRAMES, MELS, &fill(), &cfg, &mut rng)?.is_empty() {
            hit += 1;
        } else {
            assert_eq!(w, ramp());
        }
    }
    // Binomial(4000, 0.3): sd 29, so +-120 is over 4 sd.
    assert!((1080..=1320).contains(&hit), "{hit} of {n} windows masked");
    Ok(())
}

#[test]
fn impossible_settings_and_wrong_shapes_are_clear_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let base = SpecAugmentConfig::new(FRAMES);
    let cases: Vec<(SpecAugmentConfig, usize, usize, &str)> = vec![
        (
            SpecAugmentConfig {
                max_time_frames: FRAMES + 1,
                ..base.clone()
            },
            FRAMES * MELS,
            MELS,
            "time masks of up to 97 frames do not fit the window's 96 frames",
        ),
        (
            SpecAugmentConfig {
                max_freq_bins: MELS + 1,
                ..base.clone()
            },
            FRAMES * MELS,
            MELS,
            "frequency masks of up to 65 bins do not fit the window's 64 mel bins",
        ),
        (
            SpecAugmentConfig {
                prob: 1.5,
                ..base.clone()
            },
            FRAMES * MELS,
            MELS,
            "prob must be in [0, 1], got 1.5",
        ),
        (
            SpecAugmentConfig {
                prob: f32::NAN,
                ..base.clone()
            },
            FRAMES * MELS,
            MELS,
            "prob must be in [0, 1], got NaN",
        ),
        (
            base.clone(),
            FRAMES * MELS - 1,
            MELS,
            "window has 6143 values, expected 96 frames x 64 bins = 6144",
        ),
        (base.clone(), FRAMES * MELS, MELS - 1, "fill has 63 values"),
    ];
    for (cfg, len, fill_len, want) in cases {
        let mut w = vec![0.0; len];
        let fill = vec![0.0; fill_len];
        let err = spec_augment(&mut w, FRAMES, MELS, &fill, &cfg, &mut rng)
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    // Too-wide masks are refused even when no mask of that kind is drawn at all.
    let unused = SpecAugmentConfig {
        time_masks: 0,
        max_time_frames: FRAMES + 1,
        ..base
    };
    assert!(unused.validate(FRAMES, MELS).is_ok());
}

// --- wiring into `train` (tiny model on two tones, as in audio_classifier_train.rs) ---

#[test]
fn train_applies_spec_augment_reproducibly_and_refuses_a_mask_wider_than_the_window(
) -> anyhow::Result<()> {
    let heavy = SpecAugmentConfig {
        prob: 1.0,
        freq_masks: 2,
        max_freq_bins: 32,
        time_masks: 2,
        max_time_frames: 8,
    };
    let too_wide = SpecAugmentConfig {
        max_time_frames: WINDOW_FRAMES + 1,
        ..heavy.clone()
    };
    assert_train_applies(
        OptionCase {
            default: SpecAugmentConfig::off(),
            off: SpecAugmentConfig::off(),
            on: heavy,
            bad: (too_wide, "do not fit the window's 16 frames"),
        },
        |cfg| cfg.spec_augment.clone(),
        |cfg, v| {
            cfg.label_smoothing = 0.0;
            cfg.spec_augment = v;
        },
    )
}
