//! Augmentation (determinism, SNR, crops, background choice) and the held-out split.

use hlfp::audio::augment::{
    active_blocks, add_noise_at_snr, crop_at, mix_at_snr, power, snr_db, AudioAugmentConfig,
    AudioAugmenter,
};
use hlfp::audio::sources::{holdout_mask, recording_key, validation_mask, ClipRef};
use hlfp::audio::train::{Clip, WindowSampler};
use rand::SeedableRng;

fn sine(freq_hz: f32, len: usize, amp: f32) -> Vec<f32> {
    (0..len)
        .map(|i| amp * (std::f32::consts::TAU * freq_hz * i as f32 / 16000.0).sin())
        .collect()
}

/// Everything random switched off except what a test turns on.
fn quiet_cfg(window: usize) -> AudioAugmentConfig {
    AudioAugmentConfig {
        window_samples: window,
        active_crop_prob: 0.0,
        active_within_db: 15.0,
        gain_db: (0.0, 0.0),
        background_prob: 0.0,
        background_snr_db: (10.0, 10.0),
        noise_prob: 0.0,
        noise_snr_db: (10.0, 10.0),
        noise_floor_dbfs: (-400.0, -400.0),
    }
}

#[test]
fn same_seed_same_windows_other_seed_other_windows() -> anyhow::Result<()> {
    let clip = sine(440.0, 40_000, 0.3);
    let bg = sine(97.0, 30_000, 0.5);
    let cfg = AudioAugmentConfig::new(8000);
    let run = |seed| -> anyhow::Result<Vec<Vec<f32>>> {
        let mut a = AudioAugmenter::new(cfg.clone(), seed)?;
        (0..5).map(|_| Ok(a.window(&clip, &[&bg])?)).collect()
    };
    let a = run(7)?;
    assert_eq!(a, run(7)?);
    assert_ne!(a, run(8)?);
    assert!(a.iter().all(|w| w.len() == 8000));
    assert!(a
        .iter()
        .flatten()
        .all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
    Ok(())
}

#[test]
fn mixing_and_noise_hit_the_requested_snr() -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let signal = sine(440.0, 16_000, 0.2);
    let other = sine(1234.0, 16_000, 0.7);
    for snr in [0.0f32, 5.0, 10.0, 20.0, 30.0] {
        let mut mixed = signal.clone();
        let scale = mix_at_snr(&mut mixed, &other, snr)?;
        let added: Vec<f32> = other.iter().map(|o| o * scale).collect();
        let measured = snr_db(&signal, &added);
        assert!(
            (measured - snr as f64).abs() < 1e-3,
            "mix {snr}: {measured}"
        );
        // The mix is signal + scaled other, nothing else.
        for ((m, s), a) in mixed.iter().zip(&signal).zip(&added) {
            assert!((m - s - a).abs() < 1e-6);
        }

        let mut noisy = signal.clone();
        add_noise_at_snr(&mut noisy, snr, &mut rng)?;
        let noise: Vec<f32> = noisy.iter().zip(&signal).map(|(n, s)| n - s).collect();
        let measured = snr_db(&signal, &noise);
        assert!(
            (measured - snr as f64).abs() < 1e-2,
            "noise {snr}: {measured}"
        );
    }
    // Silence has no SNR: nothing is added.
    let mut silent = vec![0.0; 100];
    assert_eq!(mix_at_snr(&mut silent, &other[..100], 10.0)?, 0.0);
    assert!(silent.iter().all(|&v| v == 0.0));
    assert!(mix_at_snr(&mut [0.1; 10], &[0.1; 9], 0.0).is_err());
    assert!(mix_at_snr(&mut [0.1; 10], &[0.1; 10], f32::NAN).is_err());
    Ok(())
}

#[test]
fn gain_is_applied_exactly() -> anyhow::Result<()> {
    let clip = sine(300.0, 1000, 0.1);
    let mut cfg = quiet_cfg(1000);
    cfg.gain_db = (6.0, 6.0);
    let out = AudioAugmenter::new(cfg, 0)?.window(&clip, &[])?;
    let ratio_db = 10.0 * (power(&out) / power(&clip)).log10();
    assert!((ratio_db - 6.0).abs() < 1e-3, "{ratio_db}");
    Ok(())
}

#[test]
fn crops_pad_short_clips_and_find_the_active_part() -> anyhow::Result<()> {
    assert_eq!(crop_at(&[1.0, 2.0], 4, 1), vec![0.0, 1.0, 2.0, 0.0]);
    assert_eq!(crop_at(&[1.0, 2.0], 4, 99), vec![0.0, 0.0, 1.0, 2.0]);
    assert_eq!(crop_at(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, 2), vec![3.0, 4.0]);
    assert_eq!(crop_at(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, 99), vec![4.0, 5.0]);

    // 5 s of near-silence with a 0.1 s burst at 3.0 s.
    let mut clip = vec![1e-4f32; 80_000];
    clip[48_000..49_600].copy_from_slice(&sine(800.0, 1600, 0.5));
    assert_eq!(
        active_blocks(&clip, 15.0),
        (48_000..49_600).step_by(160).collect::<Vec<_>>()
    );
    let mut cfg = quiet_cfg(16_000);
    cfg.active_crop_prob = 1.0;
    let mut a = AudioAugmenter::new(cfg, 3)?;
    for _ in 0..50 {
        let w = a.random_crop(&clip);
        assert_eq!(w.len(), 16_000);
        assert!(
            w.iter().any(|v| v.abs() > 0.1),
            "active crop missed the burst"
        );
    }
    // Uniform crops miss it often: the active rule is what finds it.
    let mut a = AudioAugmenter::new(quiet_cfg(16_000), 3)?;
    let misses = (0..50)
        .filter(|_| a.random_crop(&clip).iter().all(|v| v.abs() < 0.1))
        .count();
    assert!(misses > 10, "uniform crops missed only {misses}/50");
    Ok(())
}

#[test]
fn backgrounds_of_the_clips_own_label_are_never_mixed() -> anyhow::Result<()> {
    // Labels 0 and 1 have quiet 700 / 300 Hz clips (power 0.005); the only background label is
    // 0, whose extra clip is a loud 2 kHz tone (power 0.125). With background_prob 1 at 10 dB
    // SNR, label 1 windows are always mixed (power 0.0055); label 0 windows never are (0.005 or
    // 0.125), because a clip's own label is excluded from its backgrounds.
    let clips = vec![
        Clip {
            label: 0,
            rel_path: "a/0.wav".into(),
            samples: sine(700.0, 4000, 0.1),
        },
        Clip {
            label: 1,
            rel_path: "b/0.wav".into(),
            samples: sine(300.0, 4000, 0.1),
        },
        Clip {
            label: 0,
            rel_path: "a/bg.wav".into(),
            samples: sine(2000.0, 4000, 0.5),
        },
    ];
    let mut cfg = quiet_cfg(2000);
    cfg.background_prob = 1.0;
    let mut s = WindowSampler::new(&clips, 2, &[0], cfg, 9)?;
    let (mut seen0, mut seen1) = (0, 0);
    for _ in 0..60 {
        let (w, label) = s.sample_waveform()?;
        let p = power(&w);
        if label == 1 {
            seen1 += 1;
            assert!(
                (p - 0.0055).abs() < 1e-4,
                "label 1 window not mixed: power {p}"
            );
        } else {
            seen0 += 1;
            let own = (p - 0.005).abs() < 1e-4 || (p - 0.125).abs() < 2e-3;
            assert!(
                own,
                "label 0 window was mixed with its own label: power {p}"
            );
        }
    }
    assert!(seen0 > 10 && seen1 > 10);
    Ok(())
}

#[test]
fn nan_clips_and_bad_configs_are_errors() {
    let mut a = AudioAugmenter::new(AudioAugmentConfig::new(100), 0).unwrap();
    let mut clip = vec![0.1f32; 200];
    clip[50] = f32::NAN;
    assert!(a
        .window(&clip, &[])
        .unwrap_err()
        .to_string()
        .contains("index 50"));
    let mut bad = AudioAugmentConfig::new(100);
    bad.noise_prob = 1.5;
    assert!(AudioAugmenter::new(bad, 0).is_err());
    let mut bad = AudioAugmentConfig::new(100);
    bad.gain_db = (6.0, -6.0);
    assert!(AudioAugmenter::new(bad, 0).is_err());
    assert!(AudioAugmenter::new(AudioAugmentConfig::new(0), 0).is_err());
}

#[test]
fn recording_key_follows_the_source_split_recordings() {
    assert_eq!(recording_key("dog/esc10_1-30226-A.wav"), "esc10_1-30226");
    assert_eq!(recording_key("dog/esc10_1-30226-B.wav"), "esc10_1-30226");
    assert_eq!(
        recording_key("cat/sasmaz_kedi-part1_cat_15.wav"),
        "sasmaz_kedi-part1_cat_15"
    );
    // One cat of CatMeows is one recording, as in `--split source`.
    let a = "audio/cat/catmeows_B_ANI01_MC_FN_SIM01_101.wav";
    let b = "cat/catmeows_F_ANI01_MC_FN_SIM01_302.wav";
    assert_eq!(recording_key(a), recording_key(b));
    let stem = |p: &str| {
        p.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".wav")
            .to_string()
    };
    assert_eq!(
        recording_key(a),
        hlfp::audio::sources::recording_of(&stem(a))
    );
    assert_ne!(
        recording_key(a),
        recording_key("cat/catmeows_B_BRA01_MC_MN_SIM01_101.wav")
    );
    // Names without a `<source>_` prefix are their own recording.
    assert_eq!(recording_key("cat/c04.wav"), "c04");
}

#[test]
fn holdout_is_every_fifth_recording_per_label_and_keeps_takes_together() -> anyhow::Result<()> {
    let mut clips: Vec<ClipRef> = (0..10)
        .map(|i| ClipRef {
            label: "cat".into(),
            rel_path: format!("cat/c{i:02}.wav"),
        })
        .collect();
    // 6 recordings of rain, recording 4 has two takes (index 4 in sorted recording order).
    for (id, takes) in [(10, 1), (11, 1), (12, 1), (13, 1), (14, 2), (15, 1)] {
        for t in 0..takes {
            let take = ["A", "B"][t];
            clips.push(ClipRef {
                label: "rain".into(),
                rel_path: format!("rain/esc10_1-{id}-{take}.wav"),
            });
        }
    }
    // A label with 3 recordings still holds one out.
    for i in 0..3 {
        clips.push(ClipRef {
            label: "frog".into(),
            rel_path: format!("frog/f{i}.wav"),
        });
    }
    let mask = holdout_mask(&clips, 5)?;
    let held: Vec<&str> = clips
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(c, _)| c.rel_path.as_str())
        .collect();
    assert_eq!(
        held,
        vec![
            "cat/c04.wav",
            "cat/c09.wav",
            "rain/esc10_1-14-A.wav",
            "rain/esc10_1-14-B.wav",
            "frog/f2.wav"
        ]
    );
    // Input order does not matter.
    let mut rev = clips.clone();
    rev.reverse();
    let mut mask_rev = holdout_mask(&rev, 5)?;
    mask_rev.reverse();
    assert_eq!(mask, mask_rev);
    assert!(holdout_mask(&clips, 1).is_err());
    Ok(())
}

#[test]
fn validation_split_comes_from_training_recordings_only() -> anyhow::Result<()> {
    // 10 cat recordings; 12 rain recordings, recording 18 with takes A and B.
    let mut clips: Vec<ClipRef> = (0..10)
        .map(|i| ClipRef {
            label: "cat".into(),
            rel_path: format!("cat/c{i:02}.wav"),
        })
        .collect();
    for id in 10..22 {
        let takes: &[&str] = if id == 18 { &["A", "B"] } else { &["A"] };
        for t in takes {
            clips.push(ClipRef {
                label: "rain".into(),
                rel_path: format!("rain/esc10_1-{id}-{t}.wav"),
            });
        }
    }
    let held = holdout_mask(&clips, 5)?;
    let val = validation_mask(&clips, &held, 4)?;
    let pick = |m: &[bool]| -> Vec<&str> {
        clips
            .iter()
            .zip(m)
            .filter(|(_, &x)| x)
            .map(|(c, _)| c.rel_path.as_str())
            .collect()
    };
    // Held out: cat c04, c09; rain recordings 14 and 19 (5th and 10th).
    assert_eq!(
        pick(&held),
        vec![
            "cat/c04.wav",
            "cat/c09.wav",
            "rain/esc10_1-14-A.wav",
            "rain/esc10_1-19-A.wav"
        ]
    );
    // Validation: every 4th of the rest. Cats left: c00..c03, c05..c08 -> c03, c08. Rain left:
    // 10, 11, 12, 13, 15, 16, 17, 18, 20, 21 -> 13 and 18 (both takes of 18).
    assert_eq!(
        pick(&val),
        vec![
            "cat/c03.wav",
            "cat/c08.wav",
            "rain/esc10_1-13-A.wav",
            "rain/esc10_1-18-A.wav",
            "rain/esc10_1-18-B.wav"
        ]
    );
    assert!(held.iter().zip(&val).all(|(h, v)| !(*h && *v)));
    // A mask of the wrong length and a bad `every` are errors.
    assert!(validation_mask(&clips, &held[1..], 4).is_err());
    assert!(validation_mask(&clips, &held, 1).is_err());
    Ok(())
}
