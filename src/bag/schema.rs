//! ROS 2 message definitions (`ros2msg` text) of the messages a bag is read and written with:
//! the one place their layouts are written down. The writer embeds [`KnownType::schema_text`]
//! in the MCAP schema records; the reader checks a bag's schema against it through
//! [`layout_of`], which reduces a definition to its wire layout (field types in order, names
//! and comments dropped), so a bag recorded with another definition of the same type name is
//! refused with both layouts named instead of being decoded into garbage.

use std::collections::BTreeMap;

use super::BagError;

/// `builtin_interfaces/msg/Time`.
const TIME: &str = "int32 sec\nuint32 nanosec\n";
/// `std_msgs/msg/Header`.
const HEADER: &str = "builtin_interfaces/Time stamp\nstring frame_id\n";
/// `sensor_msgs/msg/Image`.
const IMAGE: &str = "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n";
/// `sensor_msgs/msg/CompressedImage`.
const COMPRESSED_IMAGE: &str = "std_msgs/Header header\nstring format\nuint8[] data\n";
/// `vision_msgs/msg/ObjectHypothesis` (vision_msgs 4.x).
const OBJECT_HYPOTHESIS: &str = "string class_id\nfloat64 score\n";
/// `vision_msgs/msg/Classification`.
const CLASSIFICATION: &str = "std_msgs/Header header\nvision_msgs/ObjectHypothesis[] results\n";
/// `vision_msgs/msg/VisionClass`.
const VISION_CLASS: &str = "uint16 class_id\nstring class_name\n";
/// `vision_msgs/msg/LabelInfo`.
const LABEL_INFO: &str =
    "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n";
/// `diagnostic_msgs/msg/KeyValue`.
const KEY_VALUE: &str = "string key\nstring value\n";
/// `diagnostic_msgs/msg/DiagnosticStatus`.
const DIAGNOSTIC_STATUS: &str = "byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\nstring name\nstring message\nstring hardware_id\ndiagnostic_msgs/KeyValue[] values\n";
/// `diagnostic_msgs/msg/DiagnosticArray`.
const DIAGNOSTIC_ARRAY: &str =
    "std_msgs/Header header\ndiagnostic_msgs/DiagnosticStatus[] status\n";
/// `audio_common_msgs/msg/AudioData` of ros-drivers/audio_common (ROS 2 branch): raw bytes.
const AUDIO_DATA_BYTES: &str = "uint8[] data\n";
/// `audio_common_msgs/msg/AudioDataStamped` (ros-drivers/audio_common).
const AUDIO_DATA_STAMPED: &str = "std_msgs/Header header\naudio_common_msgs/AudioData audio\n";
/// `audio_common_msgs/msg/AudioData` of mgonzs13/audio_common: one typed array per sample format.
const AUDIO_DATA_TYPED: &str = "float32[] float32_data\nint32[] int32_data\nint16[] int16_data\nint8[] int8_data\nuint8[] uint8_data\n";
/// `audio_common_msgs/msg/AudioInfo` of mgonzs13/audio_common (`format` is a PortAudio sample
/// format constant).
const AUDIO_INFO: &str = "int32 format\nint32 channels\nint32 rate\nint32 chunk\n";
/// `audio_common_msgs/msg/Audio` of mgonzs13/audio_common.
const AUDIO: &str = "audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info\n";
/// `audio_common_msgs/msg/AudioStamped` of mgonzs13/audio_common.
const AUDIO_STAMPED: &str = "std_msgs/Header header\naudio_common_msgs/Audio audio\n";

const TIME_DEP: (&str, &str) = ("builtin_interfaces/Time", TIME);
const HEADER_DEP: (&str, &str) = ("std_msgs/Header", HEADER);

/// A message type this crate reads or writes in bags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KnownType {
    /// `sensor_msgs/msg/Image`.
    Image,
    /// `sensor_msgs/msg/CompressedImage`.
    CompressedImage,
    /// `vision_msgs/msg/Classification` (cues in, results and cues out).
    Classification,
    /// `vision_msgs/msg/LabelInfo`.
    LabelInfo,
    /// `diagnostic_msgs/msg/DiagnosticArray`.
    DiagnosticArray,
    /// `audio_common_msgs/msg/AudioDataStamped` (raw bytes, format from flags).
    AudioDataStamped,
    /// `audio_common_msgs/msg/AudioStamped` (typed samples with rate and channels).
    AudioStamped,
}

impl KnownType {
    /// Every known type.
    pub const ALL: [KnownType; 7] = [
        Self::Image,
        Self::CompressedImage,
        Self::Classification,
        Self::LabelInfo,
        Self::DiagnosticArray,
        Self::AudioDataStamped,
        Self::AudioStamped,
    ];

    /// The type name as rosbag2 writes it in schema records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "sensor_msgs/msg/Image",
            Self::CompressedImage => "sensor_msgs/msg/CompressedImage",
            Self::Classification => "vision_msgs/msg/Classification",
            Self::LabelInfo => "vision_msgs/msg/LabelInfo",
            Self::DiagnosticArray => "diagnostic_msgs/msg/DiagnosticArray",
            Self::AudioDataStamped => "audio_common_msgs/msg/AudioDataStamped",
            Self::AudioStamped => "audio_common_msgs/msg/AudioStamped",
        }
    }

    /// The known type of a schema name (`pkg/msg/Type` or `pkg/Type`).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = normalize_name(name);
        Self::ALL
            .into_iter()
            .find(|t| normalize_name(t.name()) == name)
    }

    /// The type's own fields and its dependencies `(pkg/Type, fields)`, in first-use order.
    fn parts(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        match self {
            Self::Image => (IMAGE, &[HEADER_DEP, TIME_DEP]),
            Self::CompressedImage => (COMPRESSED_IMAGE, &[HEADER_DEP, TIME_DEP]),
            Self::Classification => (
                CLASSIFICATION,
                &[
                    HEADER_DEP,
                    TIME_DEP,
                    ("vision_msgs/ObjectHypothesis", OBJECT_HYPOTHESIS),
                ],
            ),
            Self::LabelInfo => (
                LABEL_INFO,
                &[
                    HEADER_DEP,
                    TIME_DEP,
                    ("vision_msgs/VisionClass", VISION_CLASS),
                ],
            ),
            Self::DiagnosticArray => (
                DIAGNOSTIC_ARRAY,
                &[
                    HEADER_DEP,
                    TIME_DEP,
                    ("diagnostic_msgs/DiagnosticStatus", DIAGNOSTIC_STATUS),
                    ("diagnostic_msgs/KeyValue", KEY_VALUE),
                ],
            ),
            Self::AudioDataStamped => (
                AUDIO_DATA_STAMPED,
                &[
                    HEADER_DEP,
                    TIME_DEP,
                    ("audio_common_msgs/AudioData", AUDIO_DATA_BYTES),
                ],
            ),
            Self::AudioStamped => (
                AUDIO_STAMPED,
                &[
                    HEADER_DEP,
                    TIME_DEP,
                    ("audio_common_msgs/Audio", AUDIO),
                    ("audio_common_msgs/AudioData", AUDIO_DATA_TYPED),
                    ("audio_common_msgs/AudioInfo", AUDIO_INFO),
                ],
            ),
        }
    }

    /// The full `ros2msg` schema text, as rosbag2 embeds it: the type's fields, then each
    /// dependency after a line of 80 `=` and a `MSG: pkg/Type` line.
    pub fn schema_text(self) -> String {
        let (main, deps) = self.parts();
        let mut s = main.to_string();
        for (name, fields) in deps {
            s.push_str(&"=".repeat(80));
            s.push_str("\nMSG: ");
            s.push_str(name);
            s.push('\n');
            s.push_str(fields);
        }
        s
    }

    /// This type's wire layout (see [`layout_of`]).
    pub fn layout(self) -> Result<String, BagError> {
        layout_of(self.name(), &self.schema_text())
    }

    /// Check that a bag's schema for this type has the layout this crate decodes.
    pub fn check(self, schema_text: &str) -> Result<(), BagError> {
        let theirs = layout_of(self.name(), schema_text)?;
        let ours = self.layout()?;
        if theirs == ours {
            Ok(())
        } else {
            Err(BagError::SchemaMismatch {
                name: self.name().to_string(),
                expected: ours,
                found: theirs,
            })
        }
    }
}

/// `pkg/msg/Type` and `pkg/Type` to `pkg/Type`.
fn normalize_name(name: &str) -> String {
    let name = name.trim();
    match name.split('/').collect::<Vec<_>>().as_slice() {
        [pkg, "msg", ty] => format!("{pkg}/{ty}"),
        _ => name.to_string(),
    }
}

/// One field: its type token (array suffix included) and its name.
type Field = (String, String);

/// Parse a `ros2msg` text into its types: `pkg/Type` to fields. The first section is
/// `main_name`; the others follow `===` separator lines and a `MSG: pkg/Type` line.
fn parse_sections(main_name: &str, text: &str) -> Result<BTreeMap<String, Vec<Field>>, BagError> {
    let mut types = BTreeMap::new();
    let mut name = normalize_name(main_name);
    let mut fields: Vec<Field> = Vec::new();
    let mut expect_msg_line = false;
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().all(|c| c == '=') && line.len() >= 3 {
            types.insert(std::mem::take(&mut name), std::mem::take(&mut fields));
            expect_msg_line = true;
            continue;
        }
        if expect_msg_line {
            let Some(dep) = line.strip_prefix("MSG:") else {
                return Err(BagError::BadSchema(format!(
                    "{main_name}: expected `MSG: pkg/Type` after a separator line, found {line:?}"
                )));
            };
            name = normalize_name(dep);
            expect_msg_line = false;
            continue;
        }
        let mut tokens = line.split_whitespace();
        let (Some(ty), Some(field)) = (tokens.next(), tokens.next()) else {
            return Err(BagError::BadSchema(format!(
                "{main_name}: line {line:?}: expected `type name`"
            )));
        };
        // Constants (`byte OK=0`, `int32 X = 1`) take no space on the wire.
        if field.contains('=') || tokens.next().is_some_and(|t| t.starts_with('=')) {
            continue;
        }
        fields.push((ty.to_string(), field.to_string()));
    }
    types.insert(name, fields);
    Ok(types)
}

/// The wire layout of `main_name` as defined by `text`: nested types expanded into `{...}`,
/// primitives by their CDR kind (`byte` and `char` are `uint8`, bounded strings are `string`,
/// bounded sequences `T[]`), field names dropped. Two definitions with equal layouts decode
/// the same bytes the same way.
pub fn layout_of(main_name: &str, text: &str) -> Result<String, BagError> {
    let types = parse_sections(main_name, text)?;
    let main = normalize_name(main_name);
    let mut out = String::new();
    expand(&types, &main, &main, &mut out, 0)?;
    Ok(out)
}

fn expand(
    types: &BTreeMap<String, Vec<Field>>,
    name: &str,
    main: &str,
    out: &mut String,
    depth: usize,
) -> Result<(), BagError> {
    if depth > 32 {
        return Err(BagError::BadSchema(format!(
            "{main}: types nest more than 32 deep (a cycle?)"
        )));
    }
    let fields = types.get(name).ok_or_else(|| {
        BagError::BadSchema(format!("{main}: no definition of {name} in the schema"))
    })?;
    let pkg = name.split('/').next().unwrap_or("");
    out.push('{');
    for (i, (ty, _)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (base, suffix) = match ty.find('[') {
            Some(at) => (&ty[..at], normalize_array(&ty[at..])),
            None => (ty.as_str(), String::new()),
        };
        match primitive(base) {
            Some(p) => out.push_str(p),
            None => {
                let nested = resolve(types, pkg, base).ok_or_else(|| {
                    BagError::BadSchema(format!("{main}: unknown field type {base:?} in {name}"))
                })?;
                expand(types, &nested, main, out, depth + 1)?;
            }
        }
        out.push_str(&suffix);
    }
    out.push('}');
    Ok(())
}

/// `[<=N]` (a bounded sequence) has the wire form of `[]`; `[N]` is a fixed array.
fn normalize_array(suffix: &str) -> String {
    if suffix.starts_with("[<=") {
        "[]".into()
    } else {
        suffix.to_string()
    }
}

fn primitive(ty: &str) -> Option<&'static str> {
    let ty = ty.split("<=").next().unwrap_or(ty);
    Some(match ty {
        "bool" => "bool",
        "byte" | "char" | "uint8" => "uint8",
        "int8" => "int8",
        "int16" => "int16",
        "uint16" => "uint16",
        "int32" => "int32",
        "uint32" => "uint32",
        "int64" => "int64",
        "uint64" => "uint64",
        "float32" => "float32",
        "float64" => "float64",
        "string" => "string",
        "wstring" => "wstring",
        _ => return None,
    })
}

/// A nested type's section: `pkg/Type` as written, else `Type` in the referring package, else
/// `Header` as `std_msgs/Header`.
fn resolve(types: &BTreeMap<String, Vec<Field>>, pkg: &str, ty: &str) -> Option<String> {
    let ty = normalize_name(ty);
    if types.contains_key(&ty) {
        return Some(ty);
    }
    if !ty.contains('/') {
        let local = format!("{pkg}/{ty}");
        if types.contains_key(&local) {
            return Some(local);
        }
        if ty == "Header" && types.contains_key("std_msgs/Header") {
            return Some("std_msgs/Header".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_has_rosbag2_sections() {
        let s = KnownType::Classification.schema_text();
        assert!(s.starts_with("std_msgs/Header header\n"));
        assert!(s.contains(&format!("{}\nMSG: std_msgs/Header\n", "=".repeat(80))));
        assert!(s.contains("MSG: vision_msgs/ObjectHypothesis\nstring class_id\n"));
    }

    #[test]
    fn layouts_expand_nested_types_and_ignore_names_comments_and_constants() {
        assert_eq!(
            KnownType::Classification.layout().unwrap(),
            "{{{int32,uint32},string},{string,float64}[]}"
        );
        assert_eq!(
            KnownType::DiagnosticArray.layout().unwrap(),
            "{{{int32,uint32},string},{uint8,string,string,string,{string,string}[]}[]}"
        );
        // Bare same-package names, `pkg/msg/Type` sections, comments, bounds and renamed fields.
        let other = "# c\nHeader h  # the header\nObjectHypothesis[<=4] r\n\
            ===\nMSG: std_msgs/msg/Header\nbuiltin_interfaces/Time t\nstring<=8 f\n\
            ===\nMSG: builtin_interfaces/Time\nint32 s\nuint32 n\n\
            ===\nMSG: vision_msgs/ObjectHypothesis\nint32 K = 3\nstring id\nfloat64 p 0.5\n";
        KnownType::Classification.check(other).unwrap();
    }

    #[test]
    fn a_different_layout_is_refused_naming_both() {
        let text = KnownType::Image
            .schema_text()
            .replace("uint32 step", "uint16 step");
        let e = KnownType::Image.check(&text).unwrap_err().to_string();
        assert!(
            e.contains("sensor_msgs/msg/Image") && e.contains("uint16") && e.contains("expected"),
            "{e}"
        );
        let e = KnownType::Image
            .check("std_msgs/Header header\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown field type \"std_msgs/Header\""),
            "{e}"
        );
    }

    #[test]
    fn names_match_with_or_without_msg() {
        assert_eq!(
            KnownType::from_name("sensor_msgs/Image"),
            Some(KnownType::Image)
        );
        assert_eq!(
            KnownType::from_name("sensor_msgs/msg/CompressedImage"),
            Some(KnownType::CompressedImage)
        );
        assert_eq!(KnownType::from_name("std_msgs/msg/String"), None);
    }
}
