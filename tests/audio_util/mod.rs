//! A tiny audio classifier trained on two tones: what the augmentation tests use to check that
//! `hlfp::audio::train::train` applies an option (and reproducibly).
#![allow(dead_code)]

use candle_core::Device;
use hlfp::audio::classifier::AudioClassifierConfig;
use hlfp::audio::features::{log_mel, LogMelConfig};
use hlfp::audio::train::{train, Clip, TrainAudioConfig};

/// Frames per window of the tiny model.
pub const WINDOW_FRAMES: usize = 16;
/// Samples per window (n_fft 512, hop 160).
pub const WINDOW_SAMPLES: usize = 512 + (WINDOW_FRAMES - 1) * 160;

/// Two clips per label at two loudnesses: label 0 a 500 Hz tone, label 1 a 2.5 kHz tone.
pub fn tone_clips() -> Vec<Clip> {
    let mut out = Vec::new();
    for (i, a) in [0.1f32, 0.4].into_iter().enumerate() {
        for (label, f) in [(0usize, 500.0f32), (1, 2500.0)] {
            out.push(Clip {
                label,
                rel_path: format!("{label}/{i}.wav"),
                samples: (0..6000)
                    .map(|t| a * (std::f32::consts::TAU * f * t as f32 / 16000.0).sin())
                    .collect(),
            });
        }
    }
    out
}

/// The default log-mel front-end.
pub fn features(x: &[f32]) -> hlfp::Result<Vec<f32>> {
    log_mel(x, &LogMelConfig::default())
}

/// Train the tiny model for 3 steps with the recipe `configure` adjusts, and return its
/// probabilities for a 1 kHz probe tone (a fingerprint of the trained weights).
pub fn train_probe(configure: impl FnOnce(&mut TrainAudioConfig)) -> anyhow::Result<Vec<f32>> {
    let mut mcfg = AudioClassifierConfig::new(vec!["low".into(), "high".into()], "log-mel default");
    mcfg.window_frames = WINDOW_FRAMES;
    mcfg.channels = vec![4, 8];
    let mut cfg = TrainAudioConfig::new(WINDOW_SAMPLES);
    cfg.epochs = 1;
    cfg.steps_per_epoch = 3;
    cfg.batch_size = 8;
    cfg.lr = 1e-2;
    cfg.norm_windows = 32;
    cfg.background_labels.clear();
    configure(&mut cfg);
    let m = train(
        mcfg,
        &tone_clips(),
        &cfg,
        &features,
        &Device::Cpu,
        &mut |_| {},
    )?;
    let probe: Vec<f32> = (0..WINDOW_SAMPLES)
        .map(|t| 0.3 * (std::f32::consts::TAU * 1000.0 * t as f32 / 16000.0).sin())
        .collect();
    Ok(m.predict(&features(&probe)?)?)
}

/// How one training option is checked end to end by [`assert_train_applies`].
pub struct OptionCase<T> {
    /// What the recipe (`TrainAudioConfig::new`) sets.
    pub default: T,
    /// The option switched off.
    pub off: T,
    /// The option switched on, strongly enough to change a 3-step run.
    pub on: T,
    /// A setting `train` must refuse, and a part of its message.
    pub bad: (T, &'static str),
}

/// `train` leaves the option off by default, uses it when on (the trained weights differ),
/// reproduces it from the seed, and refuses the bad setting with a message that names it.
/// `set` writes the option into a config (and whatever else the check needs).
pub fn assert_train_applies<T: Clone + PartialEq + std::fmt::Debug>(
    case: OptionCase<T>,
    get: impl Fn(&TrainAudioConfig) -> T,
    set: impl Fn(&mut TrainAudioConfig, T),
) -> anyhow::Result<()> {
    assert_eq!(
        get(&TrainAudioConfig::new(WINDOW_SAMPLES)),
        case.default,
        "the recipe's default"
    );
    let once = |v: T| train_probe(|cfg| set(cfg, v));
    let plain = once(case.off)?;
    let with = once(case.on.clone())?;
    assert_ne!(plain, with, "the option changed nothing in training");
    assert_eq!(with, once(case.on)?, "the same seed gave another model");
    let err = once(case.bad.0)
        .expect_err("the bad setting was accepted")
        .to_string();
    assert!(err.contains(case.bad.1), "{err}");
    Ok(())
}
