//! Serde shapes of the ROS 2 messages the nodes use, as r2r's untyped (JSON) API sees them.
//!
//! Field names and order follow the `.msg` definitions (Humble and Jazzy); the tests in
//! `tests/ros_msgs.rs` parse the committed definitions in `tests/fixtures/msg/` and compare.
//! vision_msgs and audio_common_msgs are not bundled with r2r, so the nodes publish and subscribe
//! to them through `create_publisher_untyped` / `subscribe_untyped` with these structs converted
//! to and from `serde_json::Value`. A JSON number in a field typed `float64` must be finite:
//! serde_json writes NaN as `null`, which r2r rejects, so builders here drop non-finite scores.

use serde::{Deserialize, Serialize};

/// A ROS message with its fully qualified type name, as r2r's untyped API wants it.
pub trait RosMessage: Serialize + for<'de> Deserialize<'de> {
    /// Type name such as `vision_msgs/msg/Classification`.
    const TYPE_NAME: &'static str;

    /// This message as the JSON value r2r's untyped publisher takes.
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// Parse the JSON value r2r's untyped subscriber yields.
    fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

/// `builtin_interfaces/msg/Time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Seconds.
    pub sec: i32,
    /// Nanoseconds within the second (0..1e9).
    pub nanosec: u32,
}

impl Time {
    /// Milliseconds since the epoch of this stamp (negative seconds allowed).
    pub fn to_ms(self) -> i64 {
        i64::from(self.sec) * 1000 + i64::from(self.nanosec / 1_000_000)
    }

    /// Nanoseconds since the epoch of this stamp (the runtime's `stamp_ns`).
    pub fn to_ns(self) -> i64 {
        i64::from(self.sec) * 1_000_000_000 + i64::from(self.nanosec)
    }

    /// The stamp for `ns` nanoseconds (inverse of [`Time::to_ns`]); saturates at the `int32`
    /// seconds range.
    pub fn from_ns(ns: i64) -> Self {
        let sec = ns.div_euclid(1_000_000_000);
        Self {
            sec: sec.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            nanosec: ns.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// The stamp for `ms` milliseconds; saturates at the `int32` seconds range.
    pub fn from_ms(ms: i64) -> Self {
        let sec = ms.div_euclid(1000);
        let rem_ms = ms.rem_euclid(1000);
        let sec = sec.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        Self {
            sec,
            nanosec: (rem_ms as u32) * 1_000_000,
        }
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Acquisition time.
    pub stamp: Time,
    /// Coordinate frame.
    pub frame_id: String,
}

/// `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Stamp and frame of the capture.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding, e.g. `bgr8`.
    pub encoding: String,
    /// Byte order of multi-byte pixels (0 or 1).
    pub is_bigendian: u8,
    /// Row length in bytes.
    pub step: u32,
    /// `step * height` bytes.
    pub data: Vec<u8>,
}

impl RosMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
}

/// `vision_msgs/msg/ObjectHypothesis` (vision_msgs 4.x).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesis {
    /// Class name (this package uses names, not numbers, as ids).
    pub class_id: String,
    /// Confidence in 0..=1.
    pub score: f64,
}

impl RosMessage for ObjectHypothesis {
    const TYPE_NAME: &'static str = "vision_msgs/msg/ObjectHypothesis";
}

/// `vision_msgs/msg/Classification`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The header of the data classified.
    pub header: Header,
    /// Class hypotheses, best first in this package.
    pub results: Vec<ObjectHypothesis>,
}

impl RosMessage for Classification {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Classification";
}

/// `vision_msgs/msg/VisionClass`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisionClass {
    /// Numeric class id (the model's output index).
    pub class_id: u16,
    /// Human-readable name.
    pub class_name: String,
}

impl RosMessage for VisionClass {
    const TYPE_NAME: &'static str = "vision_msgs/msg/VisionClass";
}

/// `vision_msgs/msg/LabelInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelInfo {
    /// Stamp of publication.
    pub header: Header,
    /// Id to name map.
    pub class_map: Vec<VisionClass>,
    /// Confidence threshold in use.
    pub threshold: f32,
}

impl RosMessage for LabelInfo {
    const TYPE_NAME: &'static str = "vision_msgs/msg/LabelInfo";
}

/// `diagnostic_msgs/msg/KeyValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Name of the value.
    pub key: String,
    /// The value, as text.
    pub value: String,
}

impl RosMessage for KeyValue {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/KeyValue";
}

/// `diagnostic_msgs/msg/DiagnosticStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticStatus {
    /// One of [`DiagnosticStatus::OK`], `WARN`, `ERROR`, `STALE`.
    pub level: u8,
    /// Component name.
    pub name: String,
    /// Summary.
    pub message: String,
    /// Hardware identifier.
    pub hardware_id: String,
    /// Named values.
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    /// `byte OK=0`.
    pub const OK: u8 = 0;
    /// `byte WARN=1`.
    pub const WARN: u8 = 1;
    /// `byte ERROR=2`.
    pub const ERROR: u8 = 2;
    /// `byte STALE=3`.
    pub const STALE: u8 = 3;
}

impl RosMessage for DiagnosticStatus {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticStatus";
}

/// `diagnostic_msgs/msg/DiagnosticArray`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticArray {
    /// Stamp of publication.
    pub header: Header,
    /// One status per component.
    pub status: Vec<DiagnosticStatus>,
}

impl RosMessage for DiagnosticArray {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticArray";
}

/// `audio_common_msgs/msg/AudioData` (ros-drivers/audio_common, ROS 2 branch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioData {
    /// Raw audio bytes; this package reads them as S16LE mono.
    pub data: Vec<u8>,
}

impl RosMessage for AudioData {
    const TYPE_NAME: &'static str = "audio_common_msgs/msg/AudioData";
}

/// `audio_common_msgs/msg/AudioDataStamped`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioDataStamped {
    /// Capture stamp.
    pub header: Header,
    /// The samples.
    pub audio: AudioData,
}

impl RosMessage for AudioDataStamped {
    const TYPE_NAME: &'static str = "audio_common_msgs/msg/AudioDataStamped";
}

impl RosMessage for Header {
    const TYPE_NAME: &'static str = "std_msgs/msg/Header";
}

impl RosMessage for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
}
