//! Parameters of the two ROS nodes: parsing a ROS 2 params file and applying single updates.
//!
//! One code path: a params file is flattened into `(dotted.name, value)` pairs and each pair goes
//! through [`NodeParams::apply`], exactly as a `ros2 param set` update does in the nodes. An
//! update that fails leaves the config unchanged and returns the reason, which the node sends
//! back as the `SetParametersResult` reason.

use crate::guidance::{GuidanceConfig, Policy};
use crate::{Error, Result};
use std::fmt;

/// A parameter value, mirroring `rcl_interfaces/ParameterValue` (and r2r's `ParameterValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// Declared without a value.
    NotSet,
    /// `bool`.
    Bool(bool),
    /// `integer` (int64).
    Integer(i64),
    /// `double`.
    Double(f64),
    /// `string`.
    String(String),
    /// `bool[]`.
    BoolArray(Vec<bool>),
    /// `byte[]`.
    ByteArray(Vec<u8>),
    /// `integer[]`.
    IntegerArray(Vec<i64>),
    /// `double[]`.
    DoubleArray(Vec<f64>),
    /// `string[]`.
    StringArray(Vec<String>),
}

impl ParamValue {
    fn type_name(&self) -> &'static str {
        match self {
            Self::NotSet => "not set",
            Self::Bool(_) => "bool",
            Self::Integer(_) => "integer",
            Self::Double(_) => "double",
            Self::String(_) => "string",
            Self::BoolArray(_) => "bool array",
            Self::ByteArray(_) => "byte array",
            Self::IntegerArray(_) => "integer array",
            Self::DoubleArray(_) => "double array",
            Self::StringArray(_) => "string array",
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSet => f.write_str("<not set>"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Integer(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::String(v) => write!(f, "{v:?}"),
            Self::BoolArray(v) => write!(f, "{v:?}"),
            Self::ByteArray(v) => write!(f, "{v:?}"),
            Self::IntegerArray(v) => write!(f, "{v:?}"),
            Self::DoubleArray(v) => write!(f, "{v:?}"),
            Self::StringArray(v) => write!(f, "{v:?}"),
        }
    }
}

/// Why a parameter update was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The node has no parameter of that name.
    #[error("unknown parameter {name:?}; known: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The node's parameter names, comma separated.
        known: String,
    },
    /// The value has the wrong type.
    #[error("parameter {name:?}: expected {expected}, got {got} {value}")]
    WrongType {
        /// Parameter name.
        name: String,
        /// The expected type.
        expected: &'static str,
        /// The type received.
        got: &'static str,
        /// The value received.
        value: String,
    },
    /// The value has the right type but is out of range or inconsistent with another parameter.
    #[error("parameter {name:?} = {value}: {reason}")]
    Invalid {
        /// Parameter name.
        name: String,
        /// The value received.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The values together break a rule (e.g. `gain_min` above `gain_max`); the reason names
    /// the fields.
    #[error("rejected: {reason}")]
    Inconsistent {
        /// What is wrong, naming the fields.
        reason: String,
    },
    /// The parameter is read at start-up only.
    #[error("parameter {name:?} is read at start-up only; restart the node to change it")]
    ReadOnly {
        /// Parameter name.
        name: String,
    },
}

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::Config(e.to_string())
    }
}

/// The parameter handling shared by both nodes' configs.
pub trait NodeParams: Clone + Default {
    /// The node name that keys its section in a params file.
    const NODE_NAME: &'static str;
    /// Every parameter name this config takes.
    fn names() -> &'static [&'static str];
    /// Whether the parameter may change while the node runs (others: start-up only).
    fn is_dynamic(name: &str) -> bool;
    /// Set one field from a value, checking type and range of that field alone.
    fn set_field(&mut self, name: &str, value: &ParamValue) -> std::result::Result<(), ParamError>;
    /// Check the whole config (relations between fields); the error names the field.
    fn check(&self) -> std::result::Result<(), ParamError>;

    /// Apply one update, as from `ros2 param set` or one line of a params file. On error the
    /// config is unchanged.
    fn apply(&mut self, name: &str, value: &ParamValue) -> std::result::Result<(), ParamError> {
        if !Self::names().contains(&name) {
            return Err(ParamError::Unknown {
                name: name.to_string(),
                known: Self::names().join(", "),
            });
        }
        let mut next = self.clone();
        next.set_field(name, value)?;
        next.check()?;
        *self = next;
        Ok(())
    }

    /// Apply an update while the node runs: start-up-only parameters are refused.
    fn apply_runtime(
        &mut self,
        name: &str,
        value: &ParamValue,
    ) -> std::result::Result<(), ParamError> {
        if Self::names().contains(&name) && !Self::is_dynamic(name) {
            return Err(ParamError::ReadOnly {
                name: name.to_string(),
            });
        }
        self.apply(name, value)
    }

    /// Defaults, then every pair in order; the first bad pair is the error.
    fn from_pairs(pairs: &[(String, ParamValue)]) -> std::result::Result<Self, ParamError> {
        let mut cfg = Self::default();
        for (name, value) in pairs {
            cfg.apply(name, value)?;
        }
        Ok(cfg)
    }

    /// Parse this node's section of a ROS 2 params file (YAML text).
    fn from_params_yaml(text: &str) -> Result<Self> {
        let pairs = params_file_section(text, Self::NODE_NAME)?;
        Ok(Self::from_pairs(&pairs)?)
    }

    /// The current values as `(name, value)` pairs, in [`NodeParams::names`] order (what the
    /// node declares at start-up).
    fn to_pairs(&self) -> Vec<(String, ParamValue)>;
}

/// Read the `ros__parameters` of `node_name` from a ROS 2 params file, flattened to dotted names.
/// A `/**` (all nodes) section applies first, then `node_name` or `/node_name`.
pub fn params_file_section(text: &str, node_name: &str) -> Result<Vec<(String, ParamValue)>> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| Error::Config(format!("params file is not valid YAML: {e}")))?;
    let top = doc
        .as_mapping()
        .ok_or_else(|| Error::Config("params file: expected a mapping of node names".into()))?;
    let mut pairs = Vec::new();
    let mut found = false;
    for key in [
        "/**".to_string(),
        node_name.to_string(),
        format!("/{node_name}"),
    ] {
        let Some(section) = top.get(key.as_str()) else {
            continue;
        };
        found |= key != "/**";
        let params = section.get("ros__parameters").ok_or_else(|| {
            Error::Config(format!(
                "params file: section {key:?} has no ros__parameters"
            ))
        })?;
        flatten("", params, &mut pairs)?;
    }
    if !found {
        return Err(Error::Config(format!(
            "params file has no section for node {node_name:?}"
        )));
    }
    Ok(pairs)
}

fn flatten(
    prefix: &str,
    v: &serde_yaml_ng::Value,
    out: &mut Vec<(String, ParamValue)>,
) -> Result<()> {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Mapping(m) => {
            for (k, child) in m {
                let k = k.as_str().ok_or_else(|| {
                    Error::Config(format!("params file: non-string key under {prefix:?}"))
                })?;
                let name = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, child, out)?;
            }
            Ok(())
        }
        other => {
            out.push((prefix.to_string(), yaml_to_param(prefix, other)?));
            Ok(())
        }
    }
}

fn yaml_to_param(name: &str, v: &serde_yaml_ng::Value) -> Result<ParamValue> {
    use serde_yaml_ng::Value as Y;
    let scalar = |v: &Y| -> Option<ParamValue> {
        match v {
            Y::Bool(b) => Some(ParamValue::Bool(*b)),
            Y::Number(n) => n
                .as_i64()
                .map(ParamValue::Integer)
                .or_else(|| n.as_f64().map(ParamValue::Double)),
            Y::String(s) => Some(ParamValue::String(s.clone())),
            _ => None,
        }
    };
    let bad = || Error::Config(format!("params file: {name}: unsupported value {v:?}"));
    match v {
        Y::Null => Ok(ParamValue::NotSet),
        Y::Sequence(items) => {
            let items: Vec<ParamValue> = items
                .iter()
                .map(|i| scalar(i).ok_or_else(bad))
                .collect::<Result<_>>()?;
            if items.iter().all(|i| matches!(i, ParamValue::String(_))) {
                Ok(ParamValue::StringArray(
                    items
                        .into_iter()
                        .filter_map(|i| match i {
                            ParamValue::String(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                ))
            } else if items.iter().all(|i| matches!(i, ParamValue::Bool(_))) {
                Ok(ParamValue::BoolArray(
                    items
                        .into_iter()
                        .filter_map(|i| match i {
                            ParamValue::Bool(b) => Some(b),
                            _ => None,
                        })
                        .collect(),
                ))
            } else if items.iter().all(|i| matches!(i, ParamValue::Integer(_))) {
                Ok(ParamValue::IntegerArray(
                    items
                        .into_iter()
                        .filter_map(|i| match i {
                            ParamValue::Integer(x) => Some(x),
                            _ => None,
                        })
                        .collect(),
                ))
            } else if items
                .iter()
                .all(|i| matches!(i, ParamValue::Integer(_) | ParamValue::Double(_)))
            {
                Ok(ParamValue::DoubleArray(
                    items
                        .into_iter()
                        .filter_map(|i| match i {
                            ParamValue::Integer(x) => Some(x as f64),
                            ParamValue::Double(x) => Some(x),
                            _ => None,
                        })
                        .collect(),
                ))
            } else {
                Err(Error::Config(format!(
                    "params file: {name}: an array must hold one type"
                )))
            }
        }
        other => scalar(other).ok_or_else(bad),
    }
}

// --- typed getters: the type errors all read alike -------------------------------------------

fn wrong(name: &str, expected: &'static str, v: &ParamValue) -> ParamError {
    ParamError::WrongType {
        name: name.to_string(),
        expected,
        got: v.type_name(),
        value: v.to_string(),
    }
}

fn invalid(name: &str, v: &impl fmt::Display, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        name: name.to_string(),
        value: v.to_string(),
        reason: reason.into(),
    }
}

fn get_bool(name: &str, v: &ParamValue) -> std::result::Result<bool, ParamError> {
    match v {
        ParamValue::Bool(b) => Ok(*b),
        other => Err(wrong(name, "bool", other)),
    }
}

fn get_string(name: &str, v: &ParamValue) -> std::result::Result<String, ParamError> {
    match v {
        ParamValue::String(s) => Ok(s.clone()),
        other => Err(wrong(name, "string", other)),
    }
}

/// An integer in `lo..=hi`.
fn get_int(name: &str, v: &ParamValue, lo: i64, hi: i64) -> std::result::Result<i64, ParamError> {
    match v {
        ParamValue::Integer(i) if (lo..=hi).contains(i) => Ok(*i),
        ParamValue::Integer(i) => Err(invalid(
            name,
            i,
            format!("expected an integer in {lo}..={hi}"),
        )),
        other => Err(wrong(name, "integer", other)),
    }
}

/// A finite number; an integer is accepted too (`ros2 param set x 2` sends an integer).
fn get_f64(name: &str, v: &ParamValue) -> std::result::Result<f64, ParamError> {
    let x = match v {
        ParamValue::Double(d) => *d,
        ParamValue::Integer(i) => *i as f64,
        other => return Err(wrong(name, "double", other)),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(invalid(name, &x, "expected a finite number"))
    }
}

fn get_strings(name: &str, v: &ParamValue) -> std::result::Result<Vec<String>, ParamError> {
    match v {
        ParamValue::StringArray(s) => Ok(s.clone()),
        // An empty list cannot be typed in a params file; accept the empty forms.
        ParamValue::NotSet => Ok(Vec::new()),
        ParamValue::BoolArray(a) if a.is_empty() => Ok(Vec::new()),
        ParamValue::IntegerArray(a) if a.is_empty() => Ok(Vec::new()),
        ParamValue::DoubleArray(a) if a.is_empty() => Ok(Vec::new()),
        other => Err(wrong(name, "string array", other)),
    }
}

fn u64_param(name: &str, v: &ParamValue, lo: u64) -> std::result::Result<u64, ParamError> {
    Ok(get_int(name, v, lo as i64, i64::MAX)? as u64)
}

// --- vision node -----------------------------------------------------------------------------

/// Compute device for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when built with `cuda` and one is present, else CPU.
    #[default]
    Auto,
    /// CPU.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(u32),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| "expected auto, cpu, cuda or cuda:N".to_string()),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

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

/// Parameters of `hlfp_node` (vision).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionNodeConfig {
    /// `enable`: classify frames (false: frames are dropped and counted; cues still tracked).
    pub enable: bool,
    /// `model_path`: HLFP weights (`.safetensors`); relative paths are relative to the
    /// package's share directory.
    pub model_path: String,
    /// `model_config`: the model's `ModelConfig` as JSON (variant, class names in output order,
    /// width, ...); relative paths are relative to the package's share directory.
    pub model_config: String,
    /// `device`: `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
    /// `input_size`: `0` (default) takes the model config's `input_size`, the side the weights
    /// were trained at; any other value must equal it (checked at start-up by
    /// [`VisionNodeConfig::input_size_for`]), so the node never preprocesses to a size the
    /// model config does not state.
    pub input_size: u32,
    /// `top_k`: how many classes each `classification` message carries.
    pub top_k: u32,
    /// `image_qos.reliability`: `best_effort` (default) or `reliable`.
    pub image_reliability: Reliability,
    /// `image_qos.depth`: history depth of the image subscription.
    pub image_depth: u32,
    /// `use_camera`: read frames from a local camera instead of the `image` topic.
    pub use_camera: bool,
    /// `camera_index`: the camera to open when `use_camera` is true.
    pub camera_index: u32,
    /// `diagnostics_period_ms`: how often `/diagnostics` is published.
    pub diagnostics_period_ms: u64,
    /// `guidance.*`: the cue state machine (policy, ttl_ms, fade_ms, gain_min, gain_max,
    /// protected, context, context_size, max_cues, min_interval_ms, admit_burst, admit_refill_ms).
    pub guidance: GuidanceConfig,
}

impl Default for VisionNodeConfig {
    fn default() -> Self {
        Self {
            enable: true,
            model_path: "models/hlfp_small.safetensors".into(),
            model_config: "models/hlfp_small.json".into(),
            device: DeviceSpec::Auto,
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

const VISION_PARAMS: &[&str] = &[
    "enable",
    "model_path",
    "model_config",
    "device",
    "input_size",
    "top_k",
    "image_qos.reliability",
    "image_qos.depth",
    "use_camera",
    "camera_index",
    "diagnostics_period_ms",
    "guidance.policy",
    "guidance.ttl_ms",
    "guidance.fade_ms",
    "guidance.gain_min",
    "guidance.gain_max",
    "guidance.protected",
    "guidance.context",
    "guidance.context_size",
    "guidance.max_cues",
    "guidance.min_interval_ms",
    "guidance.admit_burst",
    "guidance.admit_refill_ms",
];

impl VisionNodeConfig {
    /// Check the guidance section against the model's class list (unknown protected or
    /// context class names are refused here, once the model is loaded).
    pub fn check_classes(&self, classes: &[String]) -> Result<()> {
        self.guidance.resolve(classes).map(|_| ())
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

impl NodeParams for VisionNodeConfig {
    const NODE_NAME: &'static str = "hlfp_node";

    fn names() -> &'static [&'static str] {
        VISION_PARAMS
    }

    fn is_dynamic(name: &str) -> bool {
        name == "enable" || name == "top_k" || name.starts_with("guidance.")
    }

    fn set_field(&mut self, name: &str, v: &ParamValue) -> std::result::Result<(), ParamError> {
        let g = &mut self.guidance;
        match name {
            "enable" => self.enable = get_bool(name, v)?,
            "model_path" => {
                let s = get_string(name, v)?;
                if s.trim().is_empty() {
                    return Err(invalid(name, v, "expected a path to a .safetensors file"));
                }
                self.model_path = s;
            }
            "model_config" => {
                let s = get_string(name, v)?;
                if s.trim().is_empty() {
                    return Err(invalid(
                        name,
                        v,
                        "expected a path to a model config JSON file",
                    ));
                }
                self.model_config = s;
            }
            "device" => {
                let s = get_string(name, v)?;
                self.device = s.parse().map_err(|r: String| invalid(name, v, r))?;
            }
            "input_size" => {
                let n = get_int(name, v, 0, 4096)?;
                if (1..32).contains(&n) {
                    return Err(invalid(
                        name,
                        v,
                        "expected 0 (the model config's) or a side in 32..=4096",
                    ));
                }
                self.input_size = n as u32;
            }
            "top_k" => self.top_k = get_int(name, v, 1, 1000)? as u32,
            "image_qos.reliability" => {
                self.image_reliability = match get_string(name, v)?.as_str() {
                    "best_effort" => Reliability::BestEffort,
                    "reliable" => Reliability::Reliable,
                    _ => return Err(invalid(name, v, "expected best_effort or reliable")),
                }
            }
            "image_qos.depth" => self.image_depth = get_int(name, v, 1, 1000)? as u32,
            "use_camera" => self.use_camera = get_bool(name, v)?,
            "camera_index" => self.camera_index = get_int(name, v, 0, 255)? as u32,
            "diagnostics_period_ms" => {
                self.diagnostics_period_ms = get_int(name, v, 100, 60_000)? as u64
            }
            "guidance.policy" => {
                let s = get_string(name, v)?;
                g.policy = s
                    .parse::<Policy>()
                    .map_err(|e| invalid(name, v, e.to_string()))?;
            }
            "guidance.ttl_ms" => g.ttl_ms = u64_param(name, v, 1)?,
            "guidance.fade_ms" => g.fade_ms = u64_param(name, v, 0)?,
            "guidance.gain_min" => g.gain_min = get_f64(name, v)? as f32,
            "guidance.gain_max" => g.gain_max = get_f64(name, v)? as f32,
            "guidance.protected" => g.protected = get_strings(name, v)?,
            "guidance.context" => g.context = get_strings(name, v)?,
            "guidance.context_size" => g.context_size = get_int(name, v, 0, 10_000)? as usize,
            "guidance.max_cues" => g.max_cues = get_int(name, v, 1, 10_000)? as usize,
            "guidance.min_interval_ms" => g.min_interval_ms = u64_param(name, v, 0)?,
            "guidance.admit_burst" => g.admit_burst = get_int(name, v, 1, 10_000)? as u32,
            "guidance.admit_refill_ms" => g.admit_refill_ms = u64_param(name, v, 0)?,
            _ => {
                return Err(ParamError::Unknown {
                    name: name.to_string(),
                    known: VISION_PARAMS.join(", "),
                })
            }
        }
        Ok(())
    }

    fn check(&self) -> std::result::Result<(), ParamError> {
        // The guidance checks that do not need the class list are the library's own: resolve
        // against a list that holds exactly the named classes, so only value checks can fail.
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

    fn to_pairs(&self) -> Vec<(String, ParamValue)> {
        use ParamValue as P;
        let g = &self.guidance;
        let pairs = [
            ("enable", P::Bool(self.enable)),
            ("model_path", P::String(self.model_path.clone())),
            ("model_config", P::String(self.model_config.clone())),
            ("device", P::String(self.device.to_string())),
            ("input_size", P::Integer(self.input_size.into())),
            ("top_k", P::Integer(self.top_k.into())),
            (
                "image_qos.reliability",
                P::String(self.image_reliability.to_string()),
            ),
            ("image_qos.depth", P::Integer(self.image_depth.into())),
            ("use_camera", P::Bool(self.use_camera)),
            ("camera_index", P::Integer(self.camera_index.into())),
            (
                "diagnostics_period_ms",
                P::Integer(self.diagnostics_period_ms as i64),
            ),
            ("guidance.policy", P::String(g.policy.to_string())),
            ("guidance.ttl_ms", P::Integer(g.ttl_ms as i64)),
            ("guidance.fade_ms", P::Integer(g.fade_ms as i64)),
            ("guidance.gain_min", P::Double(g.gain_min.into())),
            ("guidance.gain_max", P::Double(g.gain_max.into())),
            ("guidance.protected", P::StringArray(g.protected.clone())),
            ("guidance.context", P::StringArray(g.context.clone())),
            ("guidance.context_size", P::Integer(g.context_size as i64)),
            ("guidance.max_cues", P::Integer(g.max_cues as i64)),
            (
                "guidance.min_interval_ms",
                P::Integer(g.min_interval_ms as i64),
            ),
            ("guidance.admit_burst", P::Integer(g.admit_burst.into())),
            (
                "guidance.admit_refill_ms",
                P::Integer(g.admit_refill_ms as i64),
            ),
        ];
        pairs.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
    }
}

// --- audio node ------------------------------------------------------------------------------

/// Where `audio_cue_node` gets its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioInput {
    /// A local microphone through cpal (feature `mic`).
    #[default]
    Mic,
    /// `audio_common_msgs/AudioDataStamped` on the `audio` topic, S16LE.
    Topic,
}

impl fmt::Display for AudioInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mic => "mic",
            Self::Topic => "topic",
        })
    }
}

/// Parameters of `audio_cue_node`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioNodeConfig {
    /// `input`: `mic` or `topic`.
    pub input: AudioInput,
    /// `mic_device`: cpal input device name, or `default`.
    pub mic_device: String,
    /// `sample_rate_hz`: rate of topic audio (the publisher's rate; `AudioDataStamped` does not
    /// carry it). A microphone is captured at the device's own rate, so `mic` ignores this.
    /// Either is resampled to the model's rate.
    pub sample_rate_hz: u32,
    /// `channels`: interleaved channels of topic audio (downmixed to mono).
    pub channels: u32,
    /// `model_path`: the sound classifier's weights (labels and window in its metadata).
    pub model_path: String,
    /// `mapping_file`: sound label to visual classes, with detector settings (`config/cues.toml`
    /// format). The parameters below replace that file's hold, refractory and silence gate, and
    /// its thresholds when set; its window hop and smoothing stay.
    pub mapping_file: String,
    /// `on_threshold`: smoothed score at which a sound event starts, for every label; or
    /// [`FILE_THRESHOLDS`] (-1): the mapping file's, per label.
    pub on_threshold: f64,
    /// `off_threshold`: score below which it ends (hysteresis; at most every label's `on`), for
    /// every label; or [`FILE_THRESHOLDS`] (-1): the mapping file's, per label.
    pub off_threshold: f64,
    /// `hold_ms`: an event lasts at least this long.
    pub hold_ms: u64,
    /// `refractory_ms`: no new event of the same label sooner than this after one ends.
    pub refractory_ms: u64,
    /// `rms_gate_dbfs`: windows quieter than this are silence.
    pub rms_gate_dbfs: f64,
}

impl Default for AudioNodeConfig {
    fn default() -> Self {
        Self {
            input: AudioInput::Mic,
            mic_device: "default".into(),
            sample_rate_hz: 16_000,
            channels: 1,
            model_path: "models/audio_cues.safetensors".into(),
            mapping_file: "config/cues.toml".into(),
            on_threshold: FILE_THRESHOLDS,
            off_threshold: FILE_THRESHOLDS,
            hold_ms: 500,
            refractory_ms: 1000,
            rms_gate_dbfs: -55.0,
        }
    }
}

/// The value of `on_threshold` / `off_threshold` that keeps the mapping file's thresholds, per
/// label (a ROS parameter cannot be unset, and a params file lists every parameter).
pub const FILE_THRESHOLDS: f64 = -1.0;

const AUDIO_PARAMS: &[&str] = &[
    "input",
    "mic_device",
    "sample_rate_hz",
    "channels",
    "model_path",
    "mapping_file",
    "on_threshold",
    "off_threshold",
    "hold_ms",
    "refractory_ms",
    "rms_gate_dbfs",
];

impl NodeParams for AudioNodeConfig {
    const NODE_NAME: &'static str = "audio_cue_node";

    fn names() -> &'static [&'static str] {
        AUDIO_PARAMS
    }

    fn is_dynamic(name: &str) -> bool {
        matches!(
            name,
            "on_threshold" | "off_threshold" | "hold_ms" | "refractory_ms" | "rms_gate_dbfs"
        )
    }

    fn set_field(&mut self, name: &str, v: &ParamValue) -> std::result::Result<(), ParamError> {
        match name {
            "input" => {
                self.input = match get_string(name, v)?.as_str() {
                    "mic" => AudioInput::Mic,
                    "topic" => AudioInput::Topic,
                    _ => return Err(invalid(name, v, "expected mic or topic")),
                }
            }
            "mic_device" => self.mic_device = get_string(name, v)?,
            "sample_rate_hz" => self.sample_rate_hz = get_int(name, v, 8_000, 192_000)? as u32,
            "channels" => self.channels = get_int(name, v, 1, 32)? as u32,
            "model_path" => self.model_path = get_string(name, v)?,
            "mapping_file" => self.mapping_file = get_string(name, v)?,
            "on_threshold" | "off_threshold" => {
                let x = get_f64(name, v)?;
                if !(0.0..=1.0).contains(&x) && x != FILE_THRESHOLDS {
                    return Err(invalid(
                        name,
                        v,
                        "expected a score in [0, 1] for every label, or -1 for the mapping file's per-label thresholds",
                    ));
                }
                if name == "on_threshold" {
                    self.on_threshold = x;
                } else {
                    self.off_threshold = x;
                }
            }
            "hold_ms" => self.hold_ms = u64_param(name, v, 0)?,
            "refractory_ms" => self.refractory_ms = u64_param(name, v, 0)?,
            "rms_gate_dbfs" => {
                let x = get_f64(name, v)?;
                if !(-200.0..=0.0).contains(&x) {
                    return Err(invalid(name, v, "expected dBFS in [-200, 0]"));
                }
                self.rms_gate_dbfs = x;
            }
            _ => {
                return Err(ParamError::Unknown {
                    name: name.to_string(),
                    known: AUDIO_PARAMS.join(", "),
                })
            }
        }
        Ok(())
    }

    fn check(&self) -> std::result::Result<(), ParamError> {
        // With one of them -1 the per-label check happens where the mapping file is known
        // (`hlfp::ros::audio_core::detector_config` and the detector's own validation).
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

    fn to_pairs(&self) -> Vec<(String, ParamValue)> {
        use ParamValue as P;
        let pairs = [
            ("input", P::String(self.input.to_string())),
            ("mic_device", P::String(self.mic_device.clone())),
            ("sample_rate_hz", P::Integer(self.sample_rate_hz.into())),
            ("channels", P::Integer(self.channels.into())),
            ("model_path", P::String(self.model_path.clone())),
            ("mapping_file", P::String(self.mapping_file.clone())),
            ("on_threshold", P::Double(self.on_threshold)),
            ("off_threshold", P::Double(self.off_threshold)),
            ("hold_ms", P::Integer(self.hold_ms as i64)),
            ("refractory_ms", P::Integer(self.refractory_ms as i64)),
            ("rms_gate_dbfs", P::Double(self.rms_gate_dbfs)),
        ];
        pairs.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
    }
}
