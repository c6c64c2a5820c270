//! Node parameters through the code that ships: the params file is the tables' render and parses
//! to the defaults, `docs/ros.md` holds the tables' render, and updates go through
//! [`ParamStore`], the store r2r's parameter services call (start-up values, `ros2 param set`,
//! the nodes' config checks). `UPDATE_EXPECT=1 cargo test --test ros_params` rewrites the
//! generated files.

use hlfp::audio::cues::CueConfig;
use hlfp::guidance::Policy;
use hlfp::node::audio::config_check as audio_check;
use hlfp::node::param_docs::{params_file, with_markdown_table};
use hlfp::node::params::{params_file_section, ParamType};
use hlfp::node::vision::config_check as vision_check;
use hlfp::node::vision_params::{device_text, FrameInput};
use hlfp::node::{
    AudioInputChoice, AudioNodeConfig, AudioSource, NodeParams, ParamError, ParamStore, ParamValue,
    Reliability, VisionNodeConfig,
};
use hlfp::vision::classifier::DeviceChoice;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guided_yaml() -> String {
    std::fs::read_to_string(root().join("config/guided.yaml")).unwrap()
}

fn s(v: &str) -> ParamValue {
    ParamValue::String(v.to_string())
}

/// `path` must hold `want`; with `UPDATE_EXPECT=1` it is rewritten instead.
fn expect_file(rel: &str, want: &str) {
    let path = root().join(rel);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{rel} is not the render of the parameter tables; run UPDATE_EXPECT=1 cargo test --test \
         ros_params and review the diff"
    );
}

#[test]
fn the_params_file_is_the_render_of_the_tables() {
    expect_file(
        "config/guided.yaml",
        &params_file::<VisionNodeConfig, AudioNodeConfig>(),
    );
}

#[test]
fn the_docs_hold_the_render_of_the_tables() {
    let doc = std::fs::read_to_string(root().join("docs/ros.md")).unwrap();
    let doc =
        with_markdown_table::<VisionNodeConfig>(&doc).expect("docs/ros.md: no hlfp_node marker");
    let doc = with_markdown_table::<AudioNodeConfig>(&doc).expect("docs/ros.md: no audio marker");
    expect_file("docs/ros.md", &doc);
}

#[test]
fn the_committed_params_file_parses_to_the_defaults() {
    let text = guided_yaml();
    assert_eq!(
        VisionNodeConfig::from_params_yaml(&text).unwrap(),
        VisionNodeConfig::default()
    );
    assert_eq!(
        AudioNodeConfig::from_params_yaml(&text).unwrap(),
        AudioNodeConfig::default()
    );
    // Every parameter is in it, and the dynamic ones say so.
    for spec in VisionNodeConfig::table() {
        let leaf = spec.name.rsplit('.').next().unwrap();
        assert!(text.contains(&format!("{leaf}:")), "{} missing", spec.name);
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("# [dynamic]"))
            .count(),
        VisionNodeConfig::table()
            .iter()
            .filter(|p| p.dynamic)
            .count()
            + AudioNodeConfig::table()
                .iter()
                .filter(|p| p.dynamic)
                .count()
    );
}

#[test]
fn the_file_sets_values_not_just_defaults() {
    let text = guided_yaml()
        .replace("policy: focus", "policy: boost")
        .replace("reliability: best_effort", "reliability: reliable")
        .replace("input: auto", "input: topic")
        .replace("device: auto", "device: gpu")
        .replace(
            "# protected: [a, b]   (none by default; an empty list cannot be written)",
            "protected: [dog, cat]",
        );
    let v = VisionNodeConfig::from_params_yaml(&text).unwrap();
    assert_eq!(v.guidance.policy, Policy::Boost);
    assert_eq!(v.image_reliability, Reliability::Reliable);
    assert_eq!(v.device, DeviceChoice::Cuda(0));
    assert_eq!(v.guidance.protected, ["dog", "cat"]);
    assert_eq!(
        AudioNodeConfig::from_params_yaml(&text).unwrap().input,
        AudioInputChoice::Topic
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
        ("device: auto", "device: tpu", "device"),
        ("gain_min: 1.0", "gain_min: 2.5", "gain_min"),
        ("top_k: 5", "top_k: \"five\"", "top_k"),
        ("enable: true", "enable: 1", "enable"),
        ("ttl_ms: 3000", "ttl: 3000", "guidance.ttl"),
    ];
    let base = guided_yaml();
    for (from, to, name) in cases {
        let text = base.replace(from, to);
        assert_ne!(text, base, "{from} not in the file");
        let err = VisionNodeConfig::from_params_yaml(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{to}: {err:?} does not name {name}");
    }
    let text = base
        .replace("on_threshold: -1.0", "on_threshold: 0.6")
        .replace("off_threshold: -1.0", "off_threshold: 0.9");
    let err = AudioNodeConfig::from_params_yaml(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("off_threshold") && err.contains("on_threshold"),
        "{err}"
    );
}

#[test]
fn params_file_sections_wildcard_and_missing() {
    let text = "/**:\n  ros__parameters:\n    top_k: 3\nhlfp_node:\n  ros__parameters:\n    device: cuda:1\n";
    let v = VisionNodeConfig::from_params_yaml(text).unwrap();
    assert_eq!((v.top_k, v.device), (3, DeviceChoice::Cuda(1)));
    let pairs = params_file_section(text, "hlfp_node").unwrap();
    assert_eq!(pairs[0], ("top_k".to_string(), ParamValue::Integer(3)));
    assert!(VisionNodeConfig::from_params_yaml("other_node:\n  ros__parameters: {}\n").is_err());
    assert!(VisionNodeConfig::from_params_yaml("hlfp_node: [1, 2]\n").is_err());
    assert!(VisionNodeConfig::from_params_yaml(": : :").is_err());
}

#[test]
fn the_default_paths_name_files_that_ship() {
    let a = AudioNodeConfig::default();
    let v = VisionNodeConfig::default();
    // Every member file of the (routed ensemble) model spec.
    let members: Vec<String> = hlfp::audio::ensemble::member_files(&a.model_path)
        .map(String::from)
        .collect();
    assert_eq!(members.len(), 3, "{}", a.model_path);
    for path in members
        .iter()
        .chain([&a.mapping_file, &a.vision_model_config, &v.model_config])
    {
        assert!(root().join(path).exists(), "{path} does not exist");
    }
    // The audio node checks cues against the vision node's default model.
    assert_eq!(a.vision_model_config, v.model_config);
    assert_eq!(
        v.model_config,
        hlfp::model::ModelConfig::sidecar_path(std::path::Path::new(&v.model_path))
            .to_string_lossy()
    );
}

/// The vision store as `hlfp_node` builds it, for a model with these classes.
fn vision_store() -> ParamStore<VisionNodeConfig> {
    let classes = ["cat", "dog", "church"].map(String::from).to_vec();
    ParamStore::new(VisionNodeConfig::default()).with_check(vision_check(classes))
}

#[test]
fn the_store_applies_start_up_values_and_declares_every_parameter() {
    let mut store = vision_store();
    let given = vec![
        ("top_k".to_string(), ParamValue::Integer(3)),
        ("use_sim_time".to_string(), ParamValue::Bool(true)), // r2r's, not ours
        ("guidance.gain_max".to_string(), ParamValue::Integer(2)),
    ];
    let declared = store.start(&given).unwrap();
    assert_eq!(store.config().top_k, 3);
    assert_eq!(store.config().guidance.gain_max, 2.0);
    let names: Vec<&str> = declared.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, VisionNodeConfig::names());
    let (_, value, description) = &declared[names.iter().position(|n| *n == "top_k").unwrap()];
    assert_eq!(value, &ParamValue::Integer(3));
    assert!(description.contains("classification"));
    // A start-up value the model check refuses stops the node from starting.
    let mut store = vision_store();
    let bad = vec![(
        "guidance.protected".to_string(),
        ParamValue::StringArray(vec!["person".into()]),
    )];
    let err = store.start(&bad).unwrap_err().to_string();
    assert!(err.contains("person"), "{err}");
}

#[test]
fn ros2_param_set_is_accepted_or_refused_whole_by_the_store() {
    let mut store = vision_store();
    store.start(&[]).unwrap();
    store.set("guidance.policy", &s("boost")).unwrap();
    store
        .set(
            "guidance.protected",
            &ParamValue::StringArray(vec!["dog".into()]),
        )
        .unwrap();
    assert_eq!(store.config().guidance.policy, Policy::Boost);
    assert_eq!(store.get("guidance.policy").unwrap(), s("boost"));

    let before = store.config().clone();
    let refused: [(&str, ParamValue, &str); 9] = [
        ("guidance.gain_min", ParamValue::Double(3.0), "gain_min"),
        ("guidance.gain_max", ParamValue::Double(f64::NAN), "number"),
        ("guidance.policy", s("fast"), "focus"),
        ("guidance.ttl_ms", ParamValue::Integer(-5), ">= 1"),
        ("guidance.protected", s("person"), "string array"),
        (
            "guidance.protected",
            ParamValue::StringArray(vec!["person".into()]),
            "person",
        ),
        ("top_k", ParamValue::Integer(0), "1..=1000"),
        ("no_such_param", ParamValue::Bool(true), "known"),
        ("model_path", s("other.safetensors"), "start-up only"),
    ];
    for (name, value, says) in refused {
        let err = store.set(name, &value).unwrap_err().to_string();
        assert!(
            err.contains(says),
            "{name} = {value}: {err:?} lacks {says:?}"
        );
        assert_eq!(
            store.config(),
            &before,
            "{name} = {value} changed the store"
        );
        assert!(store.check(name, &value).is_err());
    }
    assert!(matches!(
        store.set("device", &s("cpu")),
        Err(ParamError::ReadOnly { .. })
    ));
    // `check` answers without changing anything.
    let next = store.check("top_k", &ParamValue::Integer(7)).unwrap();
    assert_eq!((next.top_k, store.config().top_k), (7, 5));
    assert!(store.get("no_such_param").is_err());
}

fn shipped_mapping() -> CueConfig {
    CueConfig::load(&root().join("config/cues.toml")).unwrap()
}

#[test]
fn the_audio_store_refuses_thresholds_the_detector_would_refuse() {
    let mapping = shipped_mapping();
    let labels: Vec<String> = mapping.cues.keys().cloned().collect();
    let lowest_off = std::iter::once(mapping.detector.default_thresholds.off)
        .chain(mapping.detector.label_thresholds.values().map(|t| t.off))
        .fold(f32::INFINITY, f32::min);
    let mut store = ParamStore::new(AudioNodeConfig::default())
        .with_check(audio_check(mapping.detector.clone(), labels));
    store.start(&[]).unwrap();
    // An `on` below a file `off` leaves that label with off > on: refused, nothing changes.
    let err = store
        .set(
            "on_threshold",
            &ParamValue::Double(f64::from(lowest_off) / 2.0),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("off <= on"), "{err}");
    assert_eq!(store.config(), &AudioNodeConfig::default());
    // Both for every label, `off` first: fine.
    store
        .set("off_threshold", &ParamValue::Double(0.1))
        .unwrap();
    store.set("on_threshold", &ParamValue::Double(0.2)).unwrap();
    assert!(store.set("input", &s("topic")).is_err(), "start-up only");
    assert!(store
        .set("on_threshold", &ParamValue::Double(-0.5))
        .is_err());
}

#[test]
fn the_device_parameter_takes_the_cli_spellings() {
    for (text, want) in [
        ("auto", DeviceChoice::Auto),
        ("CPU", DeviceChoice::Cpu),
        ("gpu", DeviceChoice::Cuda(0)),
        ("cuda", DeviceChoice::Cuda(0)),
        ("cuda:3", DeviceChoice::Cuda(3)),
    ] {
        let mut c = VisionNodeConfig::default();
        c.apply("device", &s(text)).unwrap();
        assert_eq!(c.device, want, "{text}");
        // What the node declares reads back to the same choice.
        assert_eq!(device_text(want).parse::<DeviceChoice>().unwrap(), want);
    }
    let err = VisionNodeConfig::default()
        .apply("device", &s("tpu"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cuda:N"), "{err}");
}

#[test]
fn pairs_round_trip_and_values_print_as_typed() {
    let mut v = VisionNodeConfig::default();
    v.apply("device", &s("cuda:2")).unwrap();
    v.apply(
        "guidance.context",
        &ParamValue::StringArray(vec!["a".into()]),
    )
    .unwrap();
    let pairs: Vec<(String, ParamValue)> = v
        .to_pairs()
        .into_iter()
        .map(|(n, x)| (n.to_string(), x))
        .collect();
    assert_eq!(VisionNodeConfig::from_pairs(&pairs).unwrap(), v);
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).unwrap().1.to_string();
    assert_eq!(get("guidance.gain_max"), "1.8");
    assert_eq!(get("guidance.gain_min"), "1.0");
    assert_eq!(get("device"), "cuda:2");
    assert_eq!(get("guidance.context"), "[a]");
    assert_eq!(get("guidance.policy"), "focus");
    assert_eq!(
        ParamType::Integer {
            min: 1,
            max: i64::MAX
        }
        .range(),
        ">= 1"
    );
}

#[test]
fn inputs_say_what_a_build_really_uses() {
    assert_eq!(AudioNodeConfig::default().input, AudioInputChoice::Auto);
    assert_eq!(
        AudioInputChoice::Auto.resolve(false),
        (AudioSource::Topic, None)
    );
    assert_eq!(
        AudioInputChoice::Auto.resolve(true),
        (AudioSource::Mic, None)
    );
    assert_eq!(
        AudioInputChoice::Topic.resolve(true),
        (AudioSource::Topic, None)
    );
    let (src, warning) = AudioInputChoice::Mic.resolve(false);
    assert_eq!(src, AudioSource::Topic);
    let w = warning.expect("a warning");
    assert!(
        w.contains("--features mic") && w.contains("audio topic"),
        "{w}"
    );

    let mut v = VisionNodeConfig::default();
    assert_eq!(v.frame_input(true), (FrameInput::Topic, None));
    v.apply("use_camera", &ParamValue::Bool(true)).unwrap();
    v.apply("camera_index", &ParamValue::Integer(2)).unwrap();
    assert_eq!(v.frame_input(true), (FrameInput::Camera(2), None));
    let (input, warning) = v.frame_input(false);
    assert_eq!(input, FrameInput::Topic);
    assert!(warning.unwrap().contains("--features camera"));
}

#[test]
fn input_size_follows_the_model_config() {
    let mut v = VisionNodeConfig::default();
    assert_eq!(v.input_size_for(160).unwrap(), 160);
    v.apply("input_size", &ParamValue::Integer(160)).unwrap();
    assert_eq!(v.input_size_for(160).unwrap(), 160);
    let err = v.input_size_for(224).unwrap_err().to_string();
    assert!(err.contains("160") && err.contains("224"), "{err}");
    assert!(v.apply("input_size", &ParamValue::Integer(8)).is_err());
}
