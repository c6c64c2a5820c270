//! The serde message shapes in `hlfp::ros::msgs` against the committed `.msg` definitions
//! (tests/fixtures/msg): field names, order and count, JSON kinds and integer ranges, and serde
//! round trips of filled-in messages.

use hlfp::ros::msgs::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// One field of a `.msg` file.
#[derive(Debug, Clone)]
struct Field {
    /// Type as written, e.g. `uint16`, `std_msgs/Header`, `ObjectHypothesis[]`.
    ty: String,
    name: String,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/msg")
}

/// Parse a `.msg` file: comments and blank lines skipped, constants (`type NAME=value`) skipped.
fn parse_msg(package: &str, name: &str) -> Vec<Field> {
    let path = fixture_dir().join(package).join(format!("{name}.msg"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.contains('=') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (ty, field) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            parts.next().is_none(),
            "{}: unexpected default in {line:?}",
            path.display()
        );
        fields.push(Field {
            ty: ty.to_string(),
            name: field.to_string(),
        });
    }
    assert!(!fields.is_empty(), "{} has no fields", path.display());
    fields
}

/// Split a nested type into (package, name), relative to the package of the file using it.
fn resolve(ty: &str, current_package: &str) -> (String, String) {
    match ty.split_once('/') {
        Some((pkg, name)) => (pkg.to_string(), name.to_string()),
        None => (current_package.to_string(), ty.to_string()),
    }
}

/// Largest value of an integer type, and the first value past it, as JSON.
fn int_max_and_overflow(ty: &str) -> Option<(Value, Value)> {
    Some(match ty {
        "uint8" | "byte" | "char" => (json!(255), json!(256)),
        "uint16" => (json!(65535), json!(65536)),
        "uint32" => (json!(4294967295u64), json!(4294967296u64)),
        "int8" => (json!(127), json!(128)),
        "int16" => (json!(32767), json!(32768)),
        "int32" => (json!(2147483647), json!(2147483648u64)),
        "uint64" | "int64" => return None,
        _ => return None,
    })
}

/// A JSON value filled from the `.msg` definition: integers at their maximum, floats 0.5,
/// strings named after the field, arrays with one element.
fn sample(package: &str, name: &str) -> Value {
    let mut obj = serde_json::Map::new();
    for f in parse_msg(package, name) {
        obj.insert(f.name.clone(), sample_of_type(&f.ty, &f.name, package));
    }
    Value::Object(obj)
}

fn sample_of_type(ty: &str, field: &str, package: &str) -> Value {
    if let Some(elem) = ty.strip_suffix("[]") {
        return Value::Array(vec![sample_of_type(elem, field, package)]);
    }
    if let Some((max, _)) = int_max_and_overflow(ty) {
        return max;
    }
    match ty {
        "float32" | "float64" => json!(0.5),
        "string" => json!(format!("{field}-text")),
        "bool" => json!(true),
        "int64" | "uint64" => json!(7),
        nested => {
            let (p, n) = resolve(nested, package);
            sample(&p, &n)
        }
    }
}

/// Check `T` against `package/name`.msg: names and order via an order-keeping YAML value of
/// `T::default()`, then a full sample round trip through `T`, then integer overflow rejected.
fn check<T>(package: &str, name: &str)
where
    T: RosMessage + Default + PartialEq + std::fmt::Debug,
{
    assert_eq!(T::TYPE_NAME, format!("{package}/msg/{name}"));
    let fields = parse_msg(package, name);
    let want: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();

    let yaml = serde_yaml_ng::to_value(T::default()).unwrap();
    let got: Vec<String> = yaml
        .as_mapping()
        .unwrap_or_else(|| panic!("{name} does not serialize to a mapping"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want, "{package}/{name}: field names and order");

    let sample = sample(package, name);
    let parsed: T = T::from_json(sample.clone())
        .unwrap_or_else(|e| panic!("{package}/{name}: sample {sample} does not parse: {e}"));
    let back = parsed.to_json().unwrap();
    assert_eq!(back, sample, "{package}/{name}: JSON round trip");
    assert_eq!(T::from_json(back).unwrap(), parsed);

    for f in &fields {
        if let Some((_, overflow)) = int_max_and_overflow(&f.ty) {
            let mut bad = sample.clone();
            bad[&f.name] = overflow.clone();
            assert!(
                T::from_json(bad).is_err(),
                "{package}/{name}.{}: {overflow} fits, so the Rust type is wider than {}",
                f.name,
                f.ty
            );
        }
        if f.ty == "string" {
            let mut bad = sample.clone();
            bad[&f.name] = json!(1);
            assert!(
                T::from_json(bad).is_err(),
                "{name}.{} accepts a number",
                f.name
            );
        }
    }
}

#[test]
fn builtin_and_std_msgs() {
    check::<Time>("builtin_interfaces", "Time");
    check::<Header>("std_msgs", "Header");
}

#[test]
fn sensor_msgs_image() {
    check::<Image>("sensor_msgs", "Image");
}

#[test]
fn vision_msgs_4_1_1() {
    check::<ObjectHypothesis>("vision_msgs", "ObjectHypothesis");
    check::<Classification>("vision_msgs", "Classification");
    check::<VisionClass>("vision_msgs", "VisionClass");
    check::<LabelInfo>("vision_msgs", "LabelInfo");
}

#[test]
fn diagnostic_msgs() {
    check::<KeyValue>("diagnostic_msgs", "KeyValue");
    check::<DiagnosticStatus>("diagnostic_msgs", "DiagnosticStatus");
    check::<DiagnosticArray>("diagnostic_msgs", "DiagnosticArray");
}

#[test]
fn diagnostic_levels_match_the_msg_constants() {
    let text = std::fs::read_to_string(fixture_dir().join("diagnostic_msgs/DiagnosticStatus.msg"))
        .unwrap();
    let constant = |name: &str| -> u8 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("byte {name}=")))
            .unwrap_or_else(|| panic!("no constant {name}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(DiagnosticStatus::OK, constant("OK"));
    assert_eq!(DiagnosticStatus::WARN, constant("WARN"));
    assert_eq!(DiagnosticStatus::ERROR, constant("ERROR"));
    assert_eq!(DiagnosticStatus::STALE, constant("STALE"));
}

#[test]
fn audio_common_msgs() {
    check::<AudioData>("audio_common_msgs", "AudioData");
    check::<AudioDataStamped>("audio_common_msgs", "AudioDataStamped");
}

#[test]
fn a_classification_as_ros2_topic_pub_would_write_it_parses() {
    // The README's hand-injected cue, in the JSON form r2r gives the untyped subscriber.
    let v = json!({
        "header": {"stamp": {"sec": 12, "nanosec": 500000000}, "frame_id": ""},
        "results": [{"class_id": "cat", "score": 0.9}]
    });
    let c = Classification::from_json(v).unwrap();
    assert_eq!(c.results[0].class_id, "cat");
    assert_eq!(c.header.stamp.to_ms(), 12_500);
}

#[test]
fn time_converts_to_and_from_milliseconds() {
    for ms in [0i64, 1, 999, 1000, 1_700_000_000_123, -1, -1001] {
        let t = Time::from_ms(ms);
        assert!(t.nanosec < 1_000_000_000);
        assert_eq!(t.to_ms(), ms, "{ms} ms -> {t:?}");
    }
    assert_eq!(
        Time::from_ms(1500),
        Time {
            sec: 1,
            nanosec: 500_000_000
        }
    );
    // Past the int32 range of seconds the stamp saturates instead of wrapping.
    assert_eq!(Time::from_ms(i64::MAX).sec, i32::MAX);
}
