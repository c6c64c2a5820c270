//! The colcon package files: package.xml is well-formed format 3 and lists every ROS package
//! CMakeLists.txt finds and every message package the code uses; the launch file compiles and,
//! run against stub `launch` modules, starts both nodes with the params file, overrides and
//! remappings asked for.

use hlfp::node::{NodeParams, ParamValue, VisionNodeConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Package names listed as dependencies of any kind in package.xml.
fn package_xml_deps() -> (BTreeSet<String>, roxmltree::Document<'static>) {
    let text: &'static str = Box::leak(read("package.xml").into_boxed_str());
    let doc = roxmltree::Document::parse(text).expect("package.xml is not well-formed XML");
    let deps = doc
        .root_element()
        .children()
        .filter(|n| {
            matches!(
                n.tag_name().name(),
                "depend"
                    | "build_depend"
                    | "exec_depend"
                    | "build_export_depend"
                    | "buildtool_depend"
            )
        })
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    (deps, doc)
}

/// CMake text with `#` comments removed.
fn cmake_code(rel: &str) -> String {
    read(rel)
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Arguments of the first call `name(...)` in CMake code, split on whitespace.
fn cmake_call_args(code: &str, name: &str) -> Vec<String> {
    let start = code
        .find(&format!("{name}("))
        .unwrap_or_else(|| panic!("no call to {name}( in CMakeLists.txt"));
    let rest = &code[start + name.len() + 1..];
    let end = rest.find(')').expect("unclosed call");
    rest[..end].split_whitespace().map(str::to_string).collect()
}

/// The PACKAGES list of the r2r_cargo call.
fn r2r_cargo_packages(code: &str) -> Vec<String> {
    let args = cmake_call_args(code, "\nr2r_cargo");
    let keywords = ["PACKAGES", "BINARIES", "FEATURES", "PROFILE"];
    args.iter()
        .skip_while(|a| *a != "PACKAGES")
        .skip(1)
        .take_while(|a| !keywords.contains(&a.as_str()))
        .cloned()
        .collect()
}

#[test]
fn package_xml_is_format_3_ament_cmake() {
    let (deps, doc) = package_xml_deps();
    let pkg = doc.root_element();
    assert_eq!(pkg.tag_name().name(), "package");
    assert_eq!(pkg.attribute("format"), Some("3"));
    let child = |tag: &str| {
        pkg.children()
            .find(|n| n.tag_name().name() == tag)
            .and_then(|n| n.text())
            .map(str::trim)
    };
    assert_eq!(child("name"), Some("hlfp_node"));
    for required in ["version", "description", "maintainer", "license"] {
        assert!(
            child(required).is_some_and(|t| !t.is_empty()),
            "no <{required}>"
        );
    }
    assert!(deps.contains("ament_cmake"));
    let build_type = doc
        .descendants()
        .find(|n| n.tag_name().name() == "build_type")
        .and_then(|n| n.text());
    assert_eq!(build_type, Some("ament_cmake"));
}

#[test]
fn package_xml_lists_every_package_cmake_finds() {
    let (deps, _) = package_xml_deps();
    let code = cmake_code("CMakeLists.txt");
    let mut found: BTreeSet<String> = BTreeSet::new();
    for (i, _) in code.match_indices("find_package(") {
        let name = code[i + "find_package(".len()..]
            .split(|c: char| c.is_whitespace() || c == ')')
            .next()
            .unwrap_or("");
        found.insert(name.to_string());
    }
    let r2r_pkgs = r2r_cargo_packages(&code);
    assert!(r2r_pkgs.len() >= 5, "r2r_cargo PACKAGES: {r2r_pkgs:?}");
    found.extend(r2r_pkgs);
    // r2r 0.9.7 links the logging backend and the RMW loader besides rcl.
    found.extend([
        "rcl_logging_spdlog".to_string(),
        "rmw_implementation".to_string(),
    ]);
    for pkg in &found {
        assert!(
            deps.contains(pkg),
            "CMakeLists.txt uses {pkg}, package.xml does not list it"
        );
    }
}

/// Message packages named in the Rust sources: `pkg/msg/Type` strings and `r2r::pkg::msg` paths.
fn message_packages_in_sources() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in ["src/ros", "src/bin"] {
        if let Ok(rd) = std::fs::read_dir(root().join(dir)) {
            files.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    let mut pkgs = BTreeSet::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("/msg/") {
            let before = &text[..i];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            // Only type names in string literals ("vision_msgs/msg/..."), not prose paths.
            if before[..start].ends_with('"') {
                pkgs.insert(before[start..].to_string());
            }
        }
        for (i, _) in text.match_indices("r2r::") {
            let rest = &text[i + 5..];
            if let Some((pkg, tail)) = rest.split_once("::") {
                if tail.starts_with("msg") && pkg.ends_with("_msgs") || pkg == "builtin_interfaces"
                {
                    pkgs.insert(pkg.to_string());
                }
            }
        }
    }
    pkgs.remove("");
    pkgs
}

#[test]
fn every_message_package_the_code_uses_is_a_dependency() {
    let (deps, _) = package_xml_deps();
    let r2r_pkgs: BTreeSet<String> = r2r_cargo_packages(&cmake_code("CMakeLists.txt"))
        .into_iter()
        .collect();
    let used = message_packages_in_sources();
    for expected in [
        "sensor_msgs",
        "vision_msgs",
        "diagnostic_msgs",
        "audio_common_msgs",
        "std_msgs",
    ] {
        assert!(used.contains(expected), "scan missed {expected}: {used:?}");
    }
    for pkg in &used {
        assert!(
            deps.contains(pkg),
            "the code uses {pkg}; package.xml does not list it"
        );
        assert!(
            r2r_pkgs.contains(pkg),
            "the code uses {pkg}; r2r_cargo PACKAGES lacks it"
        );
    }
}

#[test]
fn cmake_builds_both_binaries_and_installs_launch_config_models() {
    let code = cmake_code("CMakeLists.txt");
    let args = cmake_call_args(&code, "\nr2r_cargo");
    for bin in ["hlfp_node", "audio_cue_node"] {
        assert!(
            args.contains(&bin.to_string()),
            "r2r_cargo does not build {bin}"
        );
    }
    assert!(args
        .windows(2)
        .any(|w| w[0] == "PROFILE" && w[1] == "colcon"));
    assert!(code.contains("install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})"));
    assert!(code.contains("install(DIRECTORY models DESTINATION share/${PROJECT_NAME})"));
    let helper = cmake_code("cmake/r2r_cargo.cmake");
    assert!(helper.contains("DESTINATION lib/${PROJECT_NAME}"));
    // colcon prints the cargo command as a command line, not a `;`-separated CMake list.
    assert!(
        helper.contains(r#"string(REPLACE ";" " " _cargo_command_line "cargo;${_cargo_args}")"#)
    );
    assert!(helper.contains(r#"COMMENT "${_cargo_command_line}""#));
    let cargo = read("Cargo.toml");
    assert!(cargo.contains("[profile.colcon]"));
    for bin in ["hlfp_node", "audio_cue_node"] {
        let at = cargo
            .find(&format!("[[bin]]\nname = \"{bin}\""))
            .unwrap_or_else(|| panic!("Cargo.toml has no [[bin]] {bin}"));
        let entry = &cargo[at..cargo[at..].find("\n\n").map_or(cargo.len(), |e| at + e)];
        assert!(
            entry.contains("required-features = [\"ros2\"]"),
            "{bin}: {entry}"
        );
    }
}

fn python3() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 not found; the launch file was not checked");
    }
    ok.then_some("python3")
}

#[test]
fn launch_file_passes_py_compile() {
    let Some(py) = python3() else { return };
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(py)
        .args(["-m", "py_compile", "launch/guided.launch.py"])
        .current_dir(root())
        // Keep __pycache__ out of the source tree (it would be installed with launch/).
        .env("PYTHONPYCACHEPREFIX", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "py_compile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stubs of the launch API, enough to run generate_launch_description and the node function.
const STUB_RUNNER: &str = r#"
import importlib.util, json, sys, types

def module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m

class Entity:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

class LaunchConfiguration:
    def __init__(self, name):
        self.name = name
    def perform(self, context):
        return context[self.name]

module("ament_index_python")
module("ament_index_python.packages", get_package_share_directory=lambda p: "install/share/" + p)
module("launch", LaunchDescription=Entity)
module("launch.actions", DeclareLaunchArgument=Entity, OpaqueFunction=Entity)
module("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
module("launch_ros")
module("launch_ros.actions", Node=Entity)

spec = importlib.util.spec_from_file_location("guided", sys.argv[1])
guided = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guided)
ld = guided.generate_launch_description()
entities = ld.args[0]
declared = {e.args[0]: e.kwargs["default_value"] for e in entities if "default_value" in e.kwargs}
context = dict(declared)
context.update(json.loads(sys.argv[2]))
func = [e for e in entities if "function" in e.kwargs][0].kwargs["function"]
nodes = [n.kwargs for n in func(context)]
print(json.dumps({"declared": sorted(declared), "nodes": nodes}))
"#;

fn run_launch(py: &str, args: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let runner = dir.path().join("run.py");
    std::fs::write(&runner, STUB_RUNNER).unwrap();
    let out = Command::new(py)
        .arg(&runner)
        .arg(root().join("launch/guided.launch.py"))
        .arg(args)
        .env("PYTHONPYCACHEPREFIX", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {v}"))
}

#[test]
fn launch_declares_the_arguments_and_wires_params_and_remappings() {
    let Some(py) = python3() else { return };
    let v = run_launch(py, "{}");
    for arg in [
        "image_topic",
        "use_camera",
        "camera_index",
        "model",
        "device",
        "namespace",
    ] {
        assert!(
            v["declared"].as_array().unwrap().iter().any(|a| a == arg),
            "launch argument {arg} not declared: {}",
            v["declared"]
        );
    }
    // Defaults: both nodes, the installed params file, no overrides, image remapped to itself.
    let vision = node(&v, "hlfp_node");
    assert_eq!(vision["executable"], "hlfp_node");
    assert_eq!(
        vision["parameters"][0],
        "install/share/hlfp_node/config/guided.yaml"
    );
    assert_eq!(vision["parameters"][1], serde_json::json!({}));
    assert_eq!(
        vision["remappings"],
        serde_json::json!([["image", "image"]])
    );
    assert_eq!(node(&v, "audio_cue_node")["executable"], "audio_cue_node");

    let v = run_launch(
        py,
        r#"{"image_topic": "/camera/image_raw", "use_camera": "true", "camera_index": "2",
            "model": "my_models/m.safetensors", "device": "cuda:0", "namespace": "robot1",
            "audio_input": "topic", "with_audio": "true"}"#,
    );
    let vision = node(&v, "hlfp_node");
    assert_eq!(vision["namespace"], "robot1");
    assert_eq!(node(&v, "audio_cue_node")["namespace"], "robot1");
    assert_eq!(
        vision["remappings"],
        serde_json::json!([["image", "/camera/image_raw"]])
    );
    let overrides = vision["parameters"][1].as_object().unwrap();
    // use_camera, camera_index, device, and the model's weights with the config next to them.
    assert_eq!(overrides.len(), 5, "{overrides:?}");
    assert_eq!(overrides["model_config"], "my_models/m.json");
    // Every override is a real parameter with a valid value, applied by the node's own code.
    let mut cfg = VisionNodeConfig::default();
    for (name, value) in overrides {
        let value = match value {
            serde_json::Value::Bool(b) => ParamValue::Bool(*b),
            serde_json::Value::Number(n) => ParamValue::Integer(n.as_i64().unwrap()),
            serde_json::Value::String(s) => ParamValue::String(s.clone()),
            other => panic!("{name}: {other}"),
        };
        cfg.apply(name, &value)
            .unwrap_or_else(|e| panic!("launch sets {name}: {e}"));
    }
    assert!(cfg.use_camera);
    assert_eq!(cfg.camera_index, 2);
    assert_eq!(cfg.model_path, "my_models/m.safetensors");
    assert_eq!(cfg.model_config, "my_models/m.json");
    let audio = &node(&v, "audio_cue_node")["parameters"][1];
    assert_eq!(audio["input"], "topic");
    // The audio node checks cues against the model the vision node runs.
    assert_eq!(audio["vision_model_config"], "my_models/m.json");
    let mut a = hlfp::node::AudioNodeConfig::default();
    for (name, value) in audio.as_object().unwrap() {
        a.apply(name, &ParamValue::String(value.as_str().unwrap().into()))
            .unwrap_or_else(|e| panic!("launch sets {name}: {e}"));
    }

    let v = run_launch(py, r#"{"with_audio": "false"}"#);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
}

#[test]
fn the_params_file_installed_by_launch_is_the_committed_one() {
    assert!(Path::new(&root().join("config/guided.yaml")).exists());
    assert!(read("launch/guided.launch.py").contains("\"config\", \"guided.yaml\""));
}
