//! `audio_cue_node`'s parameters: [`AudioNodeConfig`] and its table (one row per parameter),
//! and which audio input a build really uses.

use super::params::{read, NodeParams, ParamError, ParamSpec, ParamType, ParamValue};
use std::fmt;

/// The `input` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioInputChoice {
    /// The microphone in builds with the `mic` feature, else the topic.
    #[default]
    Auto,
    /// A local microphone through cpal (feature `mic`).
    Mic,
    /// `audio_common_msgs/AudioDataStamped` on the `audio` topic, S16LE.
    Topic,
}

impl fmt::Display for AudioInputChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Mic => "mic",
            Self::Topic => "topic",
        })
    }
}

/// The input a node really reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioSource {
    /// The microphone.
    Mic,
    /// The `audio` topic.
    Topic,
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mic => "the microphone",
            Self::Topic => "the audio topic",
        })
    }
}

impl AudioInputChoice {
    /// The input used in a build with (`has_mic`) or without microphone capture, and a warning
    /// when that is not what the parameter asked for.
    pub fn resolve(self, has_mic: bool) -> (AudioSource, Option<String>) {
        match (self, has_mic) {
            (Self::Mic, true) | (Self::Auto, true) => (AudioSource::Mic, None),
            (Self::Topic, _) | (Self::Auto, false) => (AudioSource::Topic, None),
            (Self::Mic, false) => (
                AudioSource::Topic,
                Some(
                    "input = mic, but this build has no microphone capture (rebuild with \
                     --features mic; colcon: --cmake-args -DHLFP_EXTRA_FEATURES=mic): reading \
                     audio_common_msgs/AudioDataStamped from the audio topic instead"
                        .into(),
                ),
            ),
        }
    }
}

/// Parameters of `audio_cue_node`. The table in [`NodeParams::table`] describes each.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioNodeConfig {
    /// `input`.
    pub input: AudioInputChoice,
    /// `mic_device`.
    pub mic_device: String,
    /// `sample_rate_hz` (topic audio).
    pub sample_rate_hz: u32,
    /// `channels` (topic audio).
    pub channels: u32,
    /// `model_path`: one audio classifier weights file, or several joined by `+` (an ensemble:
    /// scores averaged, `audio::ensemble`; `cat@long.safetensors+short.safetensors` has the
    /// first file alone score `cat`).
    pub model_path: String,
    /// `mapping_file`.
    pub mapping_file: String,
    /// `vision_model_config`: whose `class_names` the cues are checked against.
    pub vision_model_config: String,
    /// `on_threshold` ([`FILE_THRESHOLDS`]: the mapping file's).
    pub on_threshold: f64,
    /// `off_threshold` ([`FILE_THRESHOLDS`]: the mapping file's).
    pub off_threshold: f64,
    /// `hold_ms`.
    pub hold_ms: u64,
    /// `refractory_ms`.
    pub refractory_ms: u64,
    /// `rms_gate_dbfs`.
    pub rms_gate_dbfs: f64,
}

impl Default for AudioNodeConfig {
    fn default() -> Self {
        Self {
            input: AudioInputChoice::Auto,
            mic_device: "default".into(),
            sample_rate_hz: 16_000,
            channels: 1,
            model_path: crate::audio::DEFAULT_MODEL.into(),
            mapping_file: "config/cues.toml".into(),
            vision_model_config: "models/hlfp_small.json".into(),
            on_threshold: FILE_THRESHOLDS,
            off_threshold: FILE_THRESHOLDS,
            hold_ms: 500,
            refractory_ms: 3000,
            rms_gate_dbfs: -55.0,
        }
    }
}

/// The value of `on_threshold` / `off_threshold` that keeps the mapping file's thresholds, per
/// label (a ROS parameter cannot be unset, and a params file lists every parameter).
pub const FILE_THRESHOLDS: f64 = -1.0;

fn threshold(v: &ParamValue) -> Result<f64, String> {
    let x = read::double(v);
    if (0.0..=1.0).contains(&x) || x == FILE_THRESHOLDS {
        Ok(x)
    } else {
        Err("expected a score in [0, 1] for every label, or -1 for the mapping file's per-label thresholds".into())
    }
}

type Spec = ParamSpec<AudioNodeConfig>;
use ParamValue as P;

static TABLE: &[Spec] = &[
    Spec {
        name: "input",
        ty: ParamType::String {
            choices: &["auto", "mic", "topic"],
        },
        dynamic: false,
        description: "Audio source: mic (local microphone, needs the mic feature), topic (audio_common_msgs/AudioDataStamped on audio, interleaved S16LE) or auto (mic in builds with the mic feature, else topic). The input really used is logged at start-up.",
        get: |c| P::String(c.input.to_string()),
        set: |c, v| {
            c.input = match read::text(v).as_str() {
                "mic" => AudioInputChoice::Mic,
                "topic" => AudioInputChoice::Topic,
                _ => AudioInputChoice::Auto,
            };
            Ok(())
        },
    },
    Spec {
        name: "mic_device",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "cpal input device name, or default.",
        get: |c| P::String(c.mic_device.clone()),
        set: |c, v| {
            c.mic_device = read::text(v);
            Ok(())
        },
    },
    Spec {
        name: "sample_rate_hz",
        ty: ParamType::Integer {
            min: 8_000,
            max: 192_000,
        },
        dynamic: false,
        description: "Rate of topic audio in Hz (AudioDataStamped does not carry it); a microphone uses its own rate. Resampled to the classifier's 16 kHz.",
        get: |c| P::Integer(c.sample_rate_hz.into()),
        set: |c, v| {
            c.sample_rate_hz = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "channels",
        ty: ParamType::Integer { min: 1, max: 32 },
        dynamic: false,
        description: "Interleaved channels of topic audio; downmixed to mono.",
        get: |c| P::Integer(c.channels.into()),
        set: |c, v| {
            c.channels = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "model_path",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "Sound classifier weights (labels and window in the file); several joined by `+` are an ensemble, `cat@a.safetensors+b.safetensors` has a alone score cat, `cat@a.safetensors+cat,*@b.safetensors` averages cat over both and has b score the rest; each file relative to the package's share directory.",
        get: |c| P::String(c.model_path.clone()),
        set: |c, v| {
            c.model_path = read::text(v);
            Ok(())
        },
    },
    Spec {
        name: "mapping_file",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "Sound label -> visual classes and the detector settings (config/cues.toml format); relative to the share directory.",
        get: |c| P::String(c.mapping_file.clone()),
        set: |c, v| {
            c.mapping_file = read::text(v);
            Ok(())
        },
    },
    Spec {
        name: "vision_model_config",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "The vision model's config JSON, whose class_names the cues are checked against (a mapped class the model lacks is reported once and skipped). Empty: wait for the latched label_info of hlfp_node. A label_info that arrives replaces the list.",
        get: |c| P::String(c.vision_model_config.clone()),
        set: |c, v| {
            c.vision_model_config = read::text(v);
            Ok(())
        },
    },
    Spec {
        name: "on_threshold",
        ty: ParamType::Double {
            min: FILE_THRESHOLDS,
            max: 1.0,
        },
        dynamic: true,
        description: "Smoothed score at which a sound event starts, for every label (0..1); -1 = the mapping file's per-label thresholds.",
        get: |c| P::Double(c.on_threshold),
        set: |c, v| {
            c.on_threshold = threshold(v)?;
            Ok(())
        },
    },
    Spec {
        name: "off_threshold",
        ty: ParamType::Double {
            min: FILE_THRESHOLDS,
            max: 1.0,
        },
        dynamic: true,
        description: "Score below which the event ends, for every label, at most every label's on (hysteresis); -1 = the mapping file's.",
        get: |c| P::Double(c.off_threshold),
        set: |c, v| {
            c.off_threshold = threshold(v)?;
            Ok(())
        },
    },
    Spec {
        name: "hold_ms",
        ty: ParamType::Integer {
            min: 0,
            max: i64::MAX,
        },
        dynamic: true,
        description: "Shortest event (ms).",
        get: |c| P::Integer(c.hold_ms as i64),
        set: |c, v| {
            c.hold_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "refractory_ms",
        ty: ParamType::Integer {
            min: 0,
            max: i64::MAX,
        },
        dynamic: true,
        description: "No new event of the same label sooner than this after one ends (ms).",
        get: |c| P::Integer(c.refractory_ms as i64),
        set: |c, v| {
            c.refractory_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "rms_gate_dbfs",
        ty: ParamType::Double {
            min: -200.0,
            max: 0.0,
        },
        dynamic: true,
        description: "Audio windows quieter than this RMS level (dBFS) count as silence.",
        get: |c| P::Double(c.rms_gate_dbfs),
        set: |c, v| {
            c.rms_gate_dbfs = read::double(v);
            Ok(())
        },
    },
];

impl NodeParams for AudioNodeConfig {
    const NODE_NAME: &'static str = "audio_cue_node";

    fn table() -> &'static [ParamSpec<Self>] {
        TABLE
    }

    fn check(&self) -> Result<(), ParamError> {
        // With one of them -1 the per-label check needs the mapping file: the node's config
        // check (`super::audio::config_check`) does it.
        if self.on_threshold >= 0.0 && self.off_threshold > self.on_threshold {
            return Err(ParamError::Inconsistent {
                reason: format!(
                    "off_threshold = {} is above on_threshold = {}: expected off_threshold <= on_threshold (hysteresis)",
                    self.off_threshold, self.on_threshold
                ),
            });
        }
        Ok(())
    }
}
