//! r2r glue (feature `ros2`): conversions between r2r's types and the pure ones (QoS, parameter
//! values, typed messages), the parameter store behind r2r's parameter services, publishers
//! and subscriptions as the node logic's transports, and the process start-up (ROS logging,
//! context, node). No decisions: those are in [`crate::node`].

use super::msgs::{self, RosMessage};
use crate::node::logging::{node_filter, LogLine, RosLogLayer, Severity};
use crate::node::params::{NodeParams, ParamStore, ParamValue};
use crate::node::qos::{Durability, QosSpec};
use crate::node::{Publish, Reliability};
use r2r::{Parameter, ParameterValue, QosProfile};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Our QoS as r2r's.
pub fn qos_profile(q: QosSpec) -> QosProfile {
    let p = QosProfile::default().keep_last(q.depth.max(1));
    let p = match q.reliability {
        Reliability::BestEffort => p.best_effort(),
        Reliability::Reliable => p.reliable(),
    };
    match q.durability {
        Durability::Volatile => p.volatile(),
        Durability::TransientLocal => p.transient_local(),
    }
}

/// r2r's QoS as ours; `None` for policies without a plain value (system default, unknown).
pub fn qos_from_r2r(p: &QosProfile) -> Option<QosSpec> {
    use r2r::qos::{DurabilityPolicy as D, ReliabilityPolicy as R};
    let reliability = match p.reliability {
        R::Reliable => Reliability::Reliable,
        R::BestEffort => Reliability::BestEffort,
        _ => return None,
    };
    let durability = match p.durability {
        D::Volatile => Durability::Volatile,
        D::TransientLocal => Durability::TransientLocal,
        _ => return None,
    };
    Some(QosSpec {
        reliability,
        durability,
        depth: p.depth,
    })
}

/// The publishers of `topic` (fully qualified) with their QoS, for
/// [`crate::node::qos::MatchWatch`].
pub fn publishers_of(node: &r2r::Node, topic: &str) -> Vec<(String, Option<QosSpec>)> {
    match node.get_publishers_info_by_topic(topic, false) {
        Ok(infos) => infos
            .iter()
            .map(|i| {
                let ns = i.node_namespace.trim_end_matches('/');
                (
                    format!("{ns}/{}", i.node_name),
                    qos_from_r2r(&i.qos_profile),
                )
            })
            .collect(),
        Err(e) => {
            tracing::debug!("publishers of {topic}: {e}");
            Vec::new()
        }
    }
}

/// `name` in the node's namespace (`/ns/name`), as graph queries want it.
pub fn in_namespace(node: &r2r::Node, name: &str) -> String {
    let ns = node.namespace().unwrap_or_default();
    format!("{}/{name}", ns.trim_end_matches('/'))
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

fn conv_err(name: &str, e: impl std::fmt::Display) -> r2r::Error {
    r2r::Error::ParameterValueConv {
        name: name.to_string(),
        msg: e.to_string(),
    }
}

/// r2r's parameter services on our store: every call converts and delegates.
impl<T: NodeParams> r2r::RosParams for ParamStore<T> {
    fn register_parameters(
        &mut self,
        prefix: &str,
        _param: Option<Parameter>,
        params: &mut r2r::indexmap::IndexMap<String, Parameter>,
    ) -> r2r::Result<()> {
        let given: Vec<(String, ParamValue)> = params
            .iter()
            .map(|(n, p)| (n.clone(), param_from_r2r(&p.value)))
            .collect();
        for (name, value, description) in self.start(&given).map_err(|e| conv_err(prefix, e))? {
            params.insert(
                name.to_string(),
                Parameter {
                    value: param_to_r2r(&value),
                    description,
                },
            );
        }
        Ok(())
    }

    fn get_parameter(&mut self, name: &str) -> r2r::Result<ParameterValue> {
        self.get(name)
            .map(|v| param_to_r2r(&v))
            .map_err(|_| r2r::Error::InvalidParameterName {
                name: name.to_string(),
            })
    }

    fn set_parameter(&mut self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.set(name, &param_from_r2r(value))
            .map_err(|e| conv_err(name, e))
    }

    fn check_parameter(&self, name: &str, value: &ParameterValue) -> r2r::Result<()> {
        self.check(name, &param_from_r2r(value))
            .map(|_| ())
            .map_err(|e| conv_err(name, e))
    }
}

/// The config from the values given at start-up (`--params-file`, `-p name:=value`), which r2r
/// loads into `Node::params` when the node is created. Other names (e.g. `use_sim_time`) are
/// left to r2r.
pub fn startup_config<T: NodeParams>(node: &r2r::Node) -> Result<T, crate::Error> {
    let params = node
        .params
        .lock()
        .map_err(|_| crate::Error::Config("node parameters poisoned".into()))?;
    let pairs: Vec<(String, ParamValue)> = T::names()
        .into_iter()
        .filter_map(|n| {
            params
                .get(n)
                .map(|p| (n.to_string(), param_from_r2r(&p.value)))
        })
        .collect();
    Ok(T::from_pairs(&pairs)?)
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

/// A message from an untyped subscription, parsed, or why not.
pub fn parse_untyped<M: RosMessage>(item: r2r::Result<serde_json::Value>) -> Result<M, String> {
    item.map_err(|e| e.to_string())
        .and_then(|v| M::from_json(v).map_err(|e| e.to_string()))
}

/// An untyped r2r publisher as a transport for one message type.
pub struct UntypedPublisher(pub r2r::PublisherUntyped);

impl<M: RosMessage + Send> Publish<M> for UntypedPublisher {
    fn publish(&mut self, msg: M) -> crate::Result<()> {
        let json = msg
            .to_json()
            .map_err(|e| crate::Error::Runtime(format!("encoding {}: {e}", M::TYPE_NAME)))?;
        self.0
            .publish(json)
            .map_err(|e| crate::Error::Runtime(format!("publishing {}: {e}", M::TYPE_NAME)))
    }
}

/// Start a node's process: create the ROS context (which reads `--ros-args`, including
/// `--log-level`) and the node `name`, then route `tracing` through the node's ROS logger
/// (console, log file, `/rosout`). The error says which step failed.
pub fn start_node(name: &str) -> Result<r2r::Node, crate::Error> {
    let ctx = r2r::Context::create()
        .map_err(|e| crate::Error::Config(format!("creating the ROS context: {e}")))?;
    let node = r2r::Node::create(ctx, name, "")
        .map_err(|e| crate::Error::Config(format!("creating node {name}: {e}")))?;
    let logger = node.logger().to_string();
    let layer = RosLogLayer::new(move |l: LogLine| {
        let severity = match l.severity {
            Severity::Debug => r2r::LogSeverity::Debug,
            Severity::Info => r2r::LogSeverity::Info,
            Severity::Warn => r2r::LogSeverity::Warn,
            Severity::Error => r2r::LogSeverity::Error,
        };
        r2r::log(&l.text, &logger, &l.file, l.line, severity);
    });
    // A second call (e.g. from a test) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(node_filter())
        .with(layer)
        .try_init();
    Ok(node)
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

/// A header stamped now with an empty frame_id.
pub fn header_now(clock: &mut r2r::Clock) -> msgs::Header {
    msgs::Header {
        stamp: stamp_now(clock),
        frame_id: String::new(),
    }
}

/// Spin the node on the calling thread until `stop` is set, calling `tick` with the node
/// every `every` (graph queries, which need the node).
pub fn spin_until(
    mut node: r2r::Node,
    stop: &std::sync::atomic::AtomicBool,
    every: std::time::Duration,
    mut tick: impl FnMut(&r2r::Node),
) {
    let mut last = std::time::Instant::now();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        node.spin_once(std::time::Duration::from_millis(10));
        if last.elapsed() >= every {
            last = std::time::Instant::now();
            tick(&node);
        }
    }
}
