//! Node parameters: the committed `config/guided.yaml` parsed by the code the nodes use, and
//! single `ros2 param set`-style updates accepted or refused with a reason.

use hlfp::guidance::Policy;
use hlfp::ros::params::{
    params_file_section, AudioInput, AudioNodeConfig, DeviceSpec, NodeParams, ParamError,
    ParamValue, Reliability, VisionNodeConfig,
};

const GUIDED_YAML: &str = include_str!("../config/guided.yaml");

fn s(v: &str) -> ParamValue {
    ParamValue::String(v.to_string())
}

#[test]
fn the_committed_params_file_parses_for_both_nodes() {
    let v = VisionNodeConfig::from_params_yaml(GUIDED_YAML).unwrap();
    assert!(v.enable);
    assert_eq!(v.model_path, "models/hlfp_small.safetensors");
    assert_eq!(v.model_config, "models/hlfp_small.json");
    assert_eq!(v.input_size, 0);
    assert_eq!(v.device, DeviceSpec::Auto);
    assert_eq!(v.image_reliability, Reliability::BestEffort);
    assert_eq!(v.image_depth, 1);
    assert!(!v.use_camera);
    assert_eq!(v.guidance.policy, Policy::Focus);
    assert_eq!(v.guidance.ttl_ms, 3000);
    assert_eq!((v.guidance.gain_min, v.guidance.gain_max), (1.0, 1.8));

    let a = AudioNodeConfig::from_params_yaml(GUIDED_YAML).unwrap();
    assert_eq!(a.input, AudioInput::Mic);
    assert_eq!(a.sample_rate_hz, 16_000);
    // -1: the mapping file's per-label thresholds.
    assert_eq!((a.on_threshold, a.off_threshold), (-1.0, -1.0));
    assert_eq!(a.model_path, "models/audio_cues.safetensors");
    assert_eq!(a.mapping_file, "config/cues.toml");
    // The file and the built-in defaults agree.
    assert_eq!(v, VisionNodeConfig::default());
    assert_eq!(a, AudioNodeConfig::default());
}

#[test]
fn the_default_paths_name_files_that_ship() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let a = AudioNodeConfig::default();
    for path in [&a.model_path, &a.mapping_file] {
        assert!(root.join(path).exists(), "{path} does not exist");
    }
    // The vision model is a bundle as `hlfp train` writes it: weights and a sidecar config
    // with the same stem.
    let v = VisionNodeConfig::default();
    assert_eq!(
        v.model_config,
        hlfp::model::ModelConfig::sidecar_path(std::path::Path::new(&v.model_path))
            .to_string_lossy()
    );
}

#[test]
fn every_parameter_is_documented_in_the_params_file() {
    for name in VisionNodeConfig::names()
        .iter()
        .chain(AudioNodeConfig::names())
    {
        let leaf = name.rsplit('.').next().unwrap();
        assert!(
            GUIDED_YAML.contains(&format!("{leaf}:")),
            "config/guided.yaml does not mention {name}"
        );
    }
}

#[test]
fn the_file_sets_values_not_just_defaults() {
    // Change values in the text and see them arrive: the file is really read.
    let text = GUIDED_YAML
        .replace("policy: focus", "policy: boost")
        .replace("reliability: best_effort", "reliability: reliable")
        .replace("input: mic", "input: topic")
        .replace(
            "      # protected: [\"dog\"]",
            "      protected: [\"dog\", \"cat\"]",
        );
    let v = VisionNodeConfig::from_params_yaml(&text).unwrap();
    assert_eq!(v.guidance.policy, Policy::Boost);
    assert_eq!(v.image_reliability, Reliability::Reliable);
    assert_eq!(
        v.guidance.protected,
        vec!["dog".to_string(), "cat".to_string()]
    );
    assert_eq!(
        AudioNodeConfig::from_params_yaml(&text).unwrap().input,
        AudioInput::Topic
    );
}

#[test]
fn bad_values_in_the_file_are_errors_naming_the_parameter() {
    let cases = [
        ("ttl_ms: 3000", "ttl_ms: 0", "guidance.ttl_ms"),
        (
            "reliability: best_effort",
            "reliability: sometimes",
            "image_qos.reliability",
        ),
        ("device: auto", "device: gpu", "device"),
        ("gain_min: 1.0", "gain_min: 2.5", "gain_min"),
        ("top_k: 5", "top_k: \"five\"", "top_k"),
        ("enable: true", "enable: 1", "enable"),
    ];
    for (from, to, name) in cases {
        let text = GUIDED_YAML.replace(from, to);
        assert_ne!(text, GUIDED_YAML, "{from} not in the file");
        let err = VisionNodeConfig::from_params_yaml(&text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(name),
            "{to}: error {err:?} does not name {name}"
        );
    }
    let text = GUIDED_YAML
        .replace("on_threshold: -1.0", "on_threshold: 0.6")
        .replace("off_threshold: -1.0", "off_threshold: 0.9");
    let err = AudioNodeConfig::from_params_yaml(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("off_threshold") && err.contains("on_threshold"),
        "{err}"
    );
    // An unknown parameter (a typo) is refused, listing the known ones.
    let text = GUIDED_YAML.replace("ttl_ms: 3000", "ttl: 3000");
    let err = VisionNodeConfig::from_params_yaml(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("guidance.ttl") && err.contains("known"),
        "{err}"
    );
}

#[test]
fn params_file_sections_wildcard_and_missing() {
    let text = "/**:\n  ros__parameters:\n    top_k: 3\nhlfp_node:\n  ros__parameters:\n    device: cuda:1\n";
    let v = VisionNodeConfig::from_params_yaml(text).unwrap();
    assert_eq!((v.top_k, v.device), (3, DeviceSpec::Cuda(1)));
    let pairs = params_file_section(text, "hlfp_node").unwrap();
    assert_eq!(pairs[0], ("top_k".to_string(), ParamValue::Integer(3)));
    assert!(VisionNodeConfig::from_params_yaml("other_node:\n  ros__parameters: {}\n").is_err());
    assert!(VisionNodeConfig::from_params_yaml("hlfp_node: [1, 2]\n").is_err());
    assert!(VisionNodeConfig::from_params_yaml(": : :").is_err());
}

#[test]
fn single_updates_apply_or_leave_the_config_unchanged() {
    let mut c = VisionNodeConfig::default();
    c.apply_runtime("guidance.policy", &s("boost")).unwrap();
    assert_eq!(c.guidance.policy, Policy::Boost);
    // `ros2 param set ... guidance.gain_max 2` sends an integer: accepted for a double.
    c.apply_runtime("guidance.gain_max", &ParamValue::Integer(2))
        .unwrap();
    assert_eq!(c.guidance.gain_max, 2.0);

    let before = c.clone();
    let refused: [(&str, ParamValue); 8] = [
        ("guidance.gain_min", ParamValue::Double(3.0)), // above gain_max
        ("guidance.gain_max", ParamValue::Double(f64::NAN)),
        ("guidance.policy", s("fast")),
        ("guidance.ttl_ms", ParamValue::Integer(-5)),
        ("guidance.protected", s("person")), // a string, not a list
        ("top_k", ParamValue::Integer(0)),
        ("no_such_param", ParamValue::Bool(true)),
        ("model_path", s("other.safetensors")), // start-up only
    ];
    for (name, value) in refused {
        let err = c.apply_runtime(name, &value).unwrap_err();
        assert_eq!(c, before, "{name} = {value} changed the config");
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        c.apply_runtime("model_path", &s("x")),
        Err(ParamError::ReadOnly { .. })
    ));
    // At start-up the same parameter is fine.
    c.apply("model_path", &s("x.safetensors")).unwrap();
    assert_eq!(c.model_path, "x.safetensors");
}

#[test]
fn protected_classes_are_checked_against_the_model_classes() {
    let classes: Vec<String> = ["cat", "dog", "church"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut c = VisionNodeConfig::default();
    c.apply_runtime(
        "guidance.protected",
        &ParamValue::StringArray(vec!["dog".into()]),
    )
    .unwrap();
    c.check_classes(&classes).unwrap();
    c.apply_runtime(
        "guidance.protected",
        &ParamValue::StringArray(vec!["person".into()]),
    )
    .unwrap();
    let err = c.check_classes(&classes).unwrap_err().to_string();
    assert!(err.contains("person"), "{err}");
}

#[test]
fn pairs_round_trip_for_both_configs() {
    let mut v = VisionNodeConfig::default();
    v.apply("device", &s("cuda:2")).unwrap();
    v.apply(
        "guidance.context",
        &ParamValue::StringArray(vec!["a".into()]),
    )
    .unwrap();
    v.apply("image_qos.reliability", &s("reliable")).unwrap();
    assert_eq!(VisionNodeConfig::from_pairs(&v.to_pairs()).unwrap(), v);
    let names: Vec<String> = v.to_pairs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, VisionNodeConfig::names());

    let mut a = AudioNodeConfig::default();
    a.apply("input", &s("topic")).unwrap();
    a.apply("channels", &ParamValue::Integer(2)).unwrap();
    assert_eq!(AudioNodeConfig::from_pairs(&a.to_pairs()).unwrap(), a);
}

#[test]
fn audio_updates() {
    let mut a = AudioNodeConfig::default();
    a.apply_runtime("off_threshold", &ParamValue::Double(0.4))
        .unwrap();
    a.apply_runtime("on_threshold", &ParamValue::Double(0.8))
        .unwrap();
    let before = a.clone();
    assert!(a
        .apply_runtime("on_threshold", &ParamValue::Double(0.3))
        .is_err()); // < off
    assert!(a
        .apply_runtime("off_threshold", &ParamValue::Double(1.5))
        .is_err());
    assert!(a.apply_runtime("input", &s("topic")).is_err()); // start-up only
    assert!(a.apply("input", &s("usb")).is_err());
    assert!(a
        .apply("sample_rate_hz", &ParamValue::Integer(100))
        .is_err());
    assert_eq!(a, before);
}
