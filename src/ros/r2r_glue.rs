//! r2r glue (feature `ros2`): QoS profiles from parameters, parameter values and typed messages
//! to and from the pure shapes in [`super::msgs`] and [`super::params`], and the `RosParams`
//! adapter that routes every `ros2 param set` through [`NodeParams::apply_runtime`].

use super::msgs;
use super::params::{NodeParams, ParamValue, Reliability};
use r2r::{Parameter, ParameterValue, QosProfile};
use std::sync::{Arc, Mutex};

/// QoS of the image subscription: keep-last `depth`, reliability from the parameter.
pub fn image_qos(reliability: Reliability, depth: u32) -> QosProfile {
    let qos = QosProfile::default()
        .keep_last(depth.max(1) as usize)
        .volatile();
    match reliability {
        Reliability::BestEffort => qos.best_effort(),
        Reliability::Reliable => qos.reliable(),
    }
}

/// QoS of latched topics (`label_info`): reliable, transient local, last message kept, so late
/// subscribers get the class map.
pub fn latched_qos() -> QosProfile {
    QosProfile::default()
        .keep_last(1)
        .reliable()
        .transient_local()
}

/// r2r's parameter value to ours.
pub fn param_from_r2r(v: &ParameterValue) -> ParamValue {
    match v {
        ParameterValue::NotSet => ParamValue::NotSet,
        ParameterValue::Bool(b) => ParamValue::Bool(*b),
        ParameterValue::Integer(i) => ParamValue::Integer(*i),
        ParameterValue::Double(d) => ParamValue::Double(*d),
        ParameterValue::String(s) => ParamValue::String(s.clone()),
        ParameterValue::BoolArray(a) => ParamValue::BoolArray(a.clone()),
        ParameterValue::ByteArray(a) => ParamValue::ByteArray(a.clone()),
        ParameterValue::IntegerArray(a) => ParamValue::IntegerArray(a.clone()),
        ParameterValue::DoubleArray(a) => ParamValue::DoubleArray(a.clone()),
        ParameterValue::StringArray(a) => ParamValue::StringArray(a.clone()),
    }
}

/// Our parameter value to r2r's.
pub fn param_to_r2r(v: &ParamValue) -> ParameterValue {
    match v {
        ParamValue::NotSet => ParameterValue::NotSet,
        ParamValue::Bool(b) => ParameterValue::Bool(*b),
        ParamValue::Integer(i) => ParameterValue::Integer(*i),
        ParamValue::Double(d) => ParameterValue::Double(*d),
        ParamValue::String(s) => ParameterValue::String(s.clone()),
        ParamValue::BoolArray(a) => ParameterValue::BoolArray(a.clone()),
        ParamValue::ByteArray(a) => ParameterValue::ByteArray(a.clone()),
        ParamValue::IntegerArray(a) => ParameterValue::IntegerArray(a.clone()),
        ParamValue::DoubleArray(a) => ParameterValue::DoubleArray(a.clone()),
        ParamValue::StringArray(a) => ParameterValue::StringArray(a.clone()),
    }
}

/// A node config shared between the parameter services and the node's tasks. r2r calls
/// [`r2r::RosParams`] on it: start-up values (command line, params file) go through
/// [`NodeParams::apply`], later `ros2 param set` calls through [`NodeParams::apply_runtime`];
/// a refused update answers `successful: false` with our reason.
pub struct SharedParams<T: NodeParams> {
    /// The current config.
    pub config: Arc<Mutex<T>>,
    started: bool,
    check: Option<ConfigCheck<T>>,
}

/// A check of a whole config that needs more than the parameters (e.g. the model's classes).
pub type ConfigCheck<T> = Box<dyn Fn(&T) -> std::result::Result<(), String> + Send>;

impl<T: NodeParams> SharedParams<T> {
    /// Wrap a config (usually `T::default()`).
    pub fn new(config: T) -> Self {
        Self {
            config: Arc::new(Mutex::new(config)),
            started: false,
            check: None,
        }
    }

    /// Also run `check` on every updated config before accepting it.
    pub fn with_check(mut self, check: ConfigCheck<T>) -> Self {
        self.check = Some(check);
        self
    }

    /// `cfg` with one update applied and checked, or the reason it is refused.
    fn updated(&self, cfg: &T, name: &str, value: &ParameterValue) -> r2r::Result<T> {
        let mut next = cfg.clone();
        let v = param_from_r2r(value);
        if self.started {
            next.apply_runtime(name, &v)
        } else {
            next.apply(name, &v)
        }
        .map_err(|e| conv_err(name, e))?;
        if let Some(check) = &self.check {
            check(&next).map_err(|e| conv_err(name, e))?;
        }
        Ok(next)
    }

    fn lock(&self) -> r2r::Result<std::sync::MutexGuard<'_, T>> {
        self.config
            .lock()
            .map_err(|_| r2r::Error::ParameterValueConv {
                name: String::new(),
                msg: "parameter store poisoned by a panic".into(),
            })
    }
}

fn conv_err(name: &str, e: impl std::fmt::Display) -> r2r::Error {
    r2r::Error::ParameterValueConv {
        name: name.to_string(),
        msg: e.to_string(),
    }
}

impl<T: NodeParams + Send> r2r::RosParams for SharedParams<T> {
    fn register_parameters(
        &mut self,
        prefix: &str,
        _param: Option<Parameter>,
        params: &mut r2r::indexmap::IndexMap<String, Parameter>,
    ) -> r2r::Result<()> {
        let mut cfg = self.lock()?.clone();
        // Values given at start-up (--params-file, -p name:=value) in the order r2r holds them.
        for name in T::names() {
            let full = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(p) = params.get(&full) {
                cfg.apply(name, &param_from_r2r(&p.value))
                    .map_err(|e| conv_err(&full, e))?;
            }
        }
        if let Some(check) = &self.check {
            check(&cfg).map_err(|e| conv_err(prefix, e))?;
        }
        for (name, value) in cfg.to_pairs() {
            params.insert(name, Parameter::new(param_to_r2r(&value)));
        }
        *self.lock()? = cfg;
        self.started = true;
        Ok(())
    }

    fn get_parameter(&mut self, param_name: &str) -> r2r::Result<ParameterValue> {
        self.lock()?
            .to_pairs()
            .into_iter()
            .find(|(n, _)| n == param_name)
            .map(|(_, v)| param_to_r2r(&v))
            .ok_or_else(|| r2r::Error::InvalidParameterName {
                name: param_name.to_string(),
            })
    }

    fn set_parameter(&mut self, param_name: &str, param_val: &ParameterValue) -> r2r::Result<()> {
        let current = self.lock()?.clone();
        let next = self.updated(&current, param_name, param_val)?;
        *self.lock()? = next;
        Ok(())
    }

    fn check_parameter(&self, param_name: &str, param_val: &ParameterValue) -> r2r::Result<()> {
        let current = self.lock()?.clone();
        self.updated(&current, param_name, param_val).map(|_| ())
    }
}

/// A typed r2r header to ours.
pub fn header_from_r2r(h: &r2r::std_msgs::msg::Header) -> msgs::Header {
    msgs::Header {
        stamp: msgs::Time {
            sec: h.stamp.sec,
            nanosec: h.stamp.nanosec,
        },
        frame_id: h.frame_id.clone(),
    }
}

/// Our header to r2r's.
pub fn header_to_r2r(h: &msgs::Header) -> r2r::std_msgs::msg::Header {
    r2r::std_msgs::msg::Header {
        stamp: r2r::builtin_interfaces::msg::Time {
            sec: h.stamp.sec,
            nanosec: h.stamp.nanosec,
        },
        frame_id: h.frame_id.clone(),
    }
}

/// A typed r2r image to ours (moves the pixel buffer).
pub fn image_from_r2r(img: r2r::sensor_msgs::msg::Image) -> msgs::Image {
    msgs::Image {
        header: header_from_r2r(&img.header),
        height: img.height,
        width: img.width,
        encoding: img.encoding,
        is_bigendian: img.is_bigendian,
        step: img.step,
        data: img.data,
    }
}

/// Our diagnostics to r2r's typed message (diagnostic_msgs is bundled with r2r).
pub fn diagnostics_to_r2r(d: &msgs::DiagnosticArray) -> r2r::diagnostic_msgs::msg::DiagnosticArray {
    use r2r::diagnostic_msgs::msg as dm;
    dm::DiagnosticArray {
        header: header_to_r2r(&d.header),
        status: d
            .status
            .iter()
            .map(|s| dm::DiagnosticStatus {
                level: s.level,
                name: s.name.clone(),
                message: s.message.clone(),
                hardware_id: s.hardware_id.clone(),
                values: s
                    .values
                    .iter()
                    .map(|kv| dm::KeyValue {
                        key: kv.key.clone(),
                        value: kv.value.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Start a node's process: log to stderr at `RUST_LOG` (default `info`), create the ROS context
/// and the node `name`. The error says which step failed.
pub fn start_node(name: &str) -> Result<r2r::Node, crate::Error> {
    // A second call (e.g. from a test) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let ctx = r2r::Context::create()
        .map_err(|e| crate::Error::Config(format!("creating the ROS context: {e}")))?;
    r2r::Node::create(ctx, name, "")
        .map_err(|e| crate::Error::Config(format!("creating node {name}: {e}")))
}

/// The config from the values given at start-up (`--params-file`, `-p name:=value`), which r2r
/// loads into `Node::params` when the node is created. Unknown names (e.g. `use_sim_time`) are
/// left to r2r.
pub fn startup_config<T: NodeParams>(node: &r2r::Node) -> Result<T, crate::Error> {
    let params = node
        .params
        .lock()
        .map_err(|_| crate::Error::Config("node parameters poisoned".into()))?;
    let pairs: Vec<(String, ParamValue)> = T::names()
        .iter()
        .filter_map(|n| {
            params
                .get(*n)
                .map(|p| (n.to_string(), param_from_r2r(&p.value)))
        })
        .collect();
    Ok(T::from_pairs(&pairs)?)
}

/// Where a relative path from a parameter points: the package's share directory (found on
/// `AMENT_PREFIX_PATH`), else the working directory.
pub fn resolve_share_path(package: &str, path: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    if let Some(prefixes) = std::env::var_os("AMENT_PREFIX_PATH") {
        for prefix in std::env::split_paths(&prefixes) {
            let candidate = prefix.join("share").join(package).join(p);
            if candidate.exists() {
                return candidate;
            }
        }
    }
    p.to_path_buf()
}

/// A stamp from a ROS clock reading (sim time when `use_sim_time` is set).
pub fn stamp_now(clock: &mut r2r::Clock) -> msgs::Time {
    match clock.get_now() {
        Ok(d) => msgs::Time {
            sec: i32::try_from(d.as_secs()).unwrap_or(i32::MAX),
            nanosec: d.subsec_nanos(),
        },
        Err(_) => msgs::Time::default(),
    }
}
