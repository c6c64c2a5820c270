//! Frequency-wise MixStyle in training: off by default, applied by `train` when asked (and
//! reproducibly from the seed), bad settings refused with a message that names them.

use hlfp::audio::mixstyle::FreqMixStyleConfig;
use hlfp::audio::train::TrainAudioConfig;

mod audio_util;
use audio_util::{train_probe, WINDOW_SAMPLES};

fn train_once(style: FreqMixStyleConfig) -> anyhow::Result<Vec<f32>> {
    train_probe(|cfg| cfg.freq_mixstyle = style)
}

#[test]
fn train_applies_freq_mixstyle_reproducibly_and_refuses_bad_settings() -> anyhow::Result<()> {
    assert_eq!(
        TrainAudioConfig::new(WINDOW_SAMPLES).freq_mixstyle,
        FreqMixStyleConfig::off(),
        "the recipe's default"
    );
    let on = FreqMixStyleConfig {
        prob: 1.0,
        alpha: 0.3,
    };
    let plain = train_once(FreqMixStyleConfig::off())?;
    let styled = train_once(on.clone())?;
    assert_ne!(plain, styled, "MixStyle changed nothing in training");
    assert_eq!(styled, train_once(on)?);
    let err = train_once(FreqMixStyleConfig {
        prob: 0.5,
        alpha: -1.0,
    })
    .expect_err("negative alpha")
    .to_string();
    assert!(
        err.contains("freq-mixstyle alpha must be in (0, 4]"),
        "{err}"
    );
    Ok(())
}
