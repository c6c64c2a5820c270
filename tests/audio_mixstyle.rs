//! Frequency-wise MixStyle in training: off by default, applied by `train` when asked (and
//! reproducibly from the seed), bad settings refused with a message that names them.

use hlfp::audio::mixstyle::FreqMixStyleConfig;

mod audio_util;
use audio_util::{assert_train_applies, OptionCase};

#[test]
fn train_applies_freq_mixstyle_reproducibly_and_refuses_bad_settings() -> anyhow::Result<()> {
    let with_alpha = |alpha| FreqMixStyleConfig { prob: 1.0, alpha };
    assert_train_applies(
        OptionCase {
            default: FreqMixStyleConfig::off(),
            off: FreqMixStyleConfig::off(),
            on: with_alpha(0.3),
            bad: (with_alpha(-1.0), "freq-mixstyle alpha must be in (0, 4]"),
        },
        |cfg| cfg.freq_mixstyle.clone(),
        |cfg, v| cfg.freq_mixstyle = v,
    )
}
