//! `hlfp_node`'s parameters: [`VisionNodeConfig`] and its table (one row per parameter).

use super::params::{read, NodeParams, ParamError, ParamSpec, ParamType, ParamValue};
use crate::guidance::config::GAIN_LIMIT;
use crate::guidance::{GuidanceConfig, Policy};
use crate::vision::classifier::DeviceChoice;
use crate::{Error, Result};
use std::fmt;

/// QoS reliability of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reliability {
    /// Matches both best-effort and reliable publishers (cameras often publish best effort).
    #[default]
    BestEffort,
    /// Matches reliable publishers only.
    Reliable,
}

impl fmt::Display for Reliability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BestEffort => "best_effort",
            Self::Reliable => "reliable",
        })
    }
}

/// Where the vision node's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameInput {
    /// The local camera with this index.
    Camera(u32),
    /// The `image` topic.
    Topic,
}

impl fmt::Display for FrameInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Camera(i) => write!(f, "camera {i}"),
            Self::Topic => f.write_str("the image topic"),
        }
    }
}

/// The `device` parameter's text for a [`DeviceChoice`] (its `FromStr` reads it back).
pub fn device_text(d: DeviceChoice) -> String {
    match d {
        DeviceChoice::Auto => "auto".into(),
        DeviceChoice::Cpu => "cpu".into(),
        DeviceChoice::Cuda(n) => format!("cuda:{n}"),
    }
}

/// Parameters of `hlfp_node` (vision). The table in [`NodeParams::table`] describes each.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionNodeConfig {
    /// `enable`.
    pub enable: bool,
    /// `model_path`.
    pub model_path: String,
    /// `model_config`.
    pub model_config: String,
    /// `device`.
    pub device: DeviceChoice,
    /// `input_size` (0: the model config's; see [`VisionNodeConfig::input_size_for`]).
    pub input_size: u32,
    /// `top_k`.
    pub top_k: u32,
    /// `image_qos.reliability`.
    pub image_reliability: Reliability,
    /// `image_qos.depth`.
    pub image_depth: u32,
    /// `use_camera`.
    pub use_camera: bool,
    /// `camera_index`.
    pub camera_index: u32,
    /// `diagnostics_period_ms`.
    pub diagnostics_period_ms: u64,
    /// `guidance.*`: the cue state machine.
    pub guidance: GuidanceConfig,
}

impl Default for VisionNodeConfig {
    fn default() -> Self {
        Self {
            enable: true,
            model_path: "models/hlfp_small.safetensors".into(),
            model_config: "models/hlfp_small.json".into(),
            device: DeviceChoice::Auto,
            input_size: 0,
            top_k: 5,
            image_reliability: Reliability::BestEffort,
            image_depth: 1,
            use_camera: false,
            camera_index: 0,
            diagnostics_period_ms: 1000,
            guidance: GuidanceConfig::default(),
        }
    }
}

impl VisionNodeConfig {
    /// Check the guidance section against the model's class list (unknown protected or
    /// context class names are refused here, once the model is loaded).
    pub fn check_classes(&self, classes: &[String]) -> Result<()> {
        self.guidance.resolve(classes).map(|_| ())
    }

    /// The frame input in a build with (`has_camera`) or without the camera source, and a
    /// warning when that is not what `use_camera` asked for.
    pub fn frame_input(&self, has_camera: bool) -> (FrameInput, Option<String>) {
        match (self.use_camera, has_camera) {
            (true, true) => (FrameInput::Camera(self.camera_index), None),
            (true, false) => (
                FrameInput::Topic,
                Some(
                    "use_camera is true but this build has no camera source (rebuild with \
                     --features camera; colcon: --cmake-args -DHLFP_EXTRA_FEATURES=camera): \
                     subscribing to image instead"
                        .into(),
                ),
            ),
            (false, _) => (FrameInput::Topic, None),
        }
    }

    /// The input side to preprocess frames to for a model whose config says
    /// `model_input_size`: that value when `input_size` is 0, and an error naming both values
    /// when `input_size` contradicts it.
    pub fn input_size_for(&self, model_input_size: usize) -> Result<usize> {
        match self.input_size as usize {
            0 => Ok(model_input_size),
            n if n == model_input_size => Ok(n),
            n => Err(Error::Config(format!(
                "parameter \"input_size\" = {n} contradicts the model config's input_size \
                 {model_input_size}; set it to 0 (use the model config's) or {model_input_size}"
            ))),
        }
    }
}

fn non_empty(v: &ParamValue, what: &str) -> std::result::Result<String, String> {
    let s = read::text(v);
    if s.trim().is_empty() {
        return Err(format!("expected a path to {what}"));
    }
    Ok(s)
}

const fn int(min: i64, max: i64) -> ParamType {
    ParamType::Integer { min, max }
}

const NO_LIMIT: i64 = i64::MAX;

type Spec = ParamSpec<VisionNodeConfig>;
use ParamValue as P;

static TABLE: &[Spec] = &[
    Spec {
        name: "enable",
        ty: ParamType::Bool,
        dynamic: true,
        description: "Classify incoming frames. false: frames are counted (frames_disabled) and not classified; cues are still tracked.",
        get: |c| P::Bool(c.enable),
        set: |c, v| {
            c.enable = read::flag(v);
            Ok(())
        },
    },
    Spec {
        name: "model_path",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "HLFP weights (.safetensors). A relative path is looked up in the package's share directory (install/hlfp_node/share/hlfp_node/), then the working directory.",
        get: |c| P::String(c.model_path.clone()),
        set: |c, v| {
            c.model_path = non_empty(v, "a .safetensors file")?;
            Ok(())
        },
    },
    Spec {
        name: "model_config",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "The model's config as JSON (variant, class_names in output order, width, input_size), written next to the weights; relative like model_path.",
        get: |c| P::String(c.model_config.clone()),
        set: |c, v| {
            c.model_config = non_empty(v, "a model config JSON file")?;
            Ok(())
        },
    },
    Spec {
        name: "device",
        ty: ParamType::String { choices: &[] },
        dynamic: false,
        description: "Compute device: auto (CUDA 0 when built with the cuda feature and a GPU answers, else the CPU engine), cpu, cuda or cuda:N.",
        get: |c| P::String(device_text(c.device)),
        set: |c, v| {
            c.device = read::text(v).parse().map_err(|e: Error| e.to_string())?;
            Ok(())
        },
    },
    Spec {
        name: "input_size",
        ty: int(0, 4096),
        dynamic: false,
        description: "Square input side frames are resized to. 0 = the model config's input_size; any other value must equal it or the node refuses to start.",
        get: |c| P::Integer(c.input_size.into()),
        set: |c, v| {
            let n = read::int(v);
            if (1..32).contains(&n) {
                return Err("expected 0 (the model config's) or a side in 32..=4096".into());
            }
            c.input_size = n as u32;
            Ok(())
        },
    },
    Spec {
        name: "top_k",
        ty: int(1, 1000),
        dynamic: true,
        description: "Classes per classification message (best first, scores over the active set).",
        get: |c| P::Integer(c.top_k.into()),
        set: |c, v| {
            c.top_k = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "image_qos.reliability",
        ty: ParamType::String {
            choices: &["best_effort", "reliable"],
        },
        dynamic: false,
        description: "Reliability of the image subscription: best_effort receives from best-effort and reliable publishers (the usual cure for no output); reliable only from reliable ones.",
        get: |c| P::String(c.image_reliability.to_string()),
        set: |c, v| {
            c.image_reliability = if read::text(v) == "reliable" {
                Reliability::Reliable
            } else {
                Reliability::BestEffort
            };
            Ok(())
        },
    },
    Spec {
        name: "image_qos.depth",
        ty: int(1, 1000),
        dynamic: false,
        description: "History depth of the image subscription. 1 = always classify the newest frame.",
        get: |c| P::Integer(c.image_depth.into()),
        set: |c, v| {
            c.image_depth = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "use_camera",
        ty: ParamType::Bool,
        dynamic: false,
        description: "Open a local camera (the runtime's camera source, needs the camera feature) instead of subscribing to image.",
        get: |c| P::Bool(c.use_camera),
        set: |c, v| {
            c.use_camera = read::flag(v);
            Ok(())
        },
    },
    Spec {
        name: "camera_index",
        ty: int(0, 255),
        dynamic: false,
        description: "Camera to open when use_camera is true (0 = the first).",
        get: |c| P::Integer(c.camera_index.into()),
        set: |c, v| {
            c.camera_index = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "diagnostics_period_ms",
        ty: int(100, 60_000),
        dynamic: false,
        description: "Period of /diagnostics messages in milliseconds.",
        get: |c| P::Integer(c.diagnostics_period_ms as i64),
        set: |c, v| {
            c.diagnostics_period_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.policy",
        ty: ParamType::String {
            choices: &["focus", "boost", "off"],
        },
        dynamic: true,
        description: "What cues do: focus (cutout to cued + protected + context classes, gains raised), boost (all branches, cued gains raised) or off (cues tracked, no effect).",
        get: |c| P::String(c.guidance.policy.to_string()),
        set: |c, v| {
            c.guidance.policy = read::text(v)
                .parse::<Policy>()
                .map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    Spec {
        name: "guidance.ttl_ms",
        ty: int(1, NO_LIMIT),
        dynamic: true,
        description: "How long a cue holds its full gain after its last refresh (ms).",
        get: |c| P::Integer(c.guidance.ttl_ms as i64),
        set: |c, v| {
            c.guidance.ttl_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.fade_ms",
        ty: int(0, NO_LIMIT),
        dynamic: true,
        description: "After the TTL the gain fades back to 1 over this time (ms; 0 = snap back).",
        get: |c| P::Integer(c.guidance.fade_ms as i64),
        set: |c, v| {
            c.guidance.fade_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.gain_min",
        ty: ParamType::Double {
            min: 0.0,
            max: GAIN_LIMIT as f64,
        },
        dynamic: true,
        description: "Lowest gain of a cue: gain = clamp(1 + (gain_max - 1) * score, gain_min, gain_max), 0 < gain_min <= gain_max.",
        get: |c| ParamValue::from_f32(c.guidance.gain_min),
        set: |c, v| {
            c.guidance.gain_min = read::double(v) as f32;
            Ok(())
        },
    },
    Spec {
        name: "guidance.gain_max",
        ty: ParamType::Double {
            min: 0.0,
            max: GAIN_LIMIT as f64,
        },
        dynamic: true,
        description: "Gain of a cue with score 1 (below 1, cues inhibit their class).",
        get: |c| ParamValue::from_f32(c.guidance.gain_max),
        set: |c, v| {
            c.guidance.gain_max = read::double(v) as f32;
            Ok(())
        },
    },
    Spec {
        name: "guidance.protected",
        ty: ParamType::StringArray,
        dynamic: true,
        description: "Classes no cue can cut out or inhibit (safety), e.g. [person]; names must be model classes.",
        get: |c| P::StringArray(c.guidance.protected.clone()),
        set: |c, v| {
            c.guidance.protected = read::texts(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.context",
        ty: ParamType::StringArray,
        dynamic: true,
        description: "Classes always kept in a focus cutout; empty = context_size classes spread evenly over the class list.",
        get: |c| P::StringArray(c.guidance.context.clone()),
        set: |c, v| {
            c.guidance.context = read::texts(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.context_size",
        ty: int(0, 10_000),
        dynamic: true,
        description: "How many context classes to pick when context is empty.",
        get: |c| P::Integer(c.guidance.context_size as i64),
        set: |c, v| {
            c.guidance.context_size = read::uint(v) as usize;
            Ok(())
        },
    },
    Spec {
        name: "guidance.max_cues",
        ty: int(1, 10_000),
        dynamic: true,
        description: "Most classes cued at once; a new one beyond it evicts the oldest, then weakest.",
        get: |c| P::Integer(c.guidance.max_cues as i64),
        set: |c, v| {
            c.guidance.max_cues = read::uint(v) as usize;
            Ok(())
        },
    },
    Spec {
        name: "guidance.min_interval_ms",
        ty: int(0, NO_LIMIT),
        dynamic: true,
        description: "A repeat of the same class sooner than this only refreshes its TTL (ms).",
        get: |c| P::Integer(c.guidance.min_interval_ms as i64),
        set: |c, v| {
            c.guidance.min_interval_ms = read::uint(v);
            Ok(())
        },
    },
    Spec {
        name: "guidance.admit_burst",
        ty: int(1, 10_000),
        dynamic: true,
        description: "Token bucket for new classes entering the cue set: burst size (a flood of cues cannot thrash the model).",
        get: |c| P::Integer(c.guidance.admit_burst.into()),
        set: |c, v| {
            c.guidance.admit_burst = read::int(v) as u32;
            Ok(())
        },
    },
    Spec {
        name: "guidance.admit_refill_ms",
        ty: int(0, NO_LIMIT),
        dynamic: true,
        description: "Token bucket refill: one more new class every this many ms.",
        get: |c| P::Integer(c.guidance.admit_refill_ms as i64),
        set: |c, v| {
            c.guidance.admit_refill_ms = read::uint(v);
            Ok(())
        },
    },
];

impl NodeParams for VisionNodeConfig {
    const NODE_NAME: &'static str = "hlfp_node";

    fn table() -> &'static [ParamSpec<Self>] {
        TABLE
    }

    fn check(&self) -> std::result::Result<(), ParamError> {
        // The guidance checks that need no class list are the library's own: resolve against
        // a list holding exactly the named classes, so only value checks can fail here.
        let mut names: Vec<String> = self.guidance.protected.clone();
        names.extend(self.guidance.context.iter().cloned());
        names.push(String::from("\u{0}placeholder"));
        self.guidance
            .resolve(&names)
            .map(|_| ())
            .map_err(|e| ParamError::Inconsistent {
                reason: e.to_string(),
            })
    }
}
