//! `hlfp run --bag` end to end through the binary: the Python-written fixture bag in (see
//! `scripts/bag_fixtures.py`), `--every-frame --record` with a random-weight model and the
//! shipped audio model on the bag's audio topic; the JSON lines and the recorded bag out.

use hlfp::bag::{cdr, BagReader};
use hlfp::model::{weights, ModelConfig, Variant};
use hlfp::ros::msgs::{Classification, LabelInfo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLASSES: [&str; 4] = ["cat", "dog", "church", "tench"];

fn model(dir: &Path) -> PathBuf {
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, CLASSES.len());
    cfg.class_names = CLASSES.iter().map(|s| s.to_string()).collect();
    cfg.width = 0.125;
    cfg.input_size = 64;
    let w = dir.join("m.safetensors");
    weights::write_random_safetensors(&w, &cfg, 3).unwrap();
    std::fs::write(dir.join("m.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    w
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn run_bag_records_one_classification_per_frame_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let w = model(dir.path());
    let (out, rec) = (dir.path().join("out.jsonl"), dir.path().join("out.mcap"));
    let input = root().join("tests/fixtures/bag/inputs.mcap");
    let res = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .current_dir(root())
        .args([
            "run",
            "--every-frame",
            "--audio-topic",
            "/audio",
            "--top",
            "3",
            "--bag",
        ])
        .arg(&input)
        .arg("--model")
        .arg(&w)
        .arg("--out")
        .arg(&out)
        .arg("--record")
        .arg(&rec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(stderr.contains("frames/s wall clock"), "{stderr}");
    // The audio path read the tone (8000 samples at 16 kHz).
    assert!(stderr.contains("\"input_samples\":8000"), "{stderr}");

    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/bag/expected.json")).unwrap(),
    )
    .unwrap();
    let frames = expected["frames"].as_array().unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let results: Vec<&Value> = lines.iter().filter(|l| l["type"] == "result").collect();
    let good = frames.iter().filter(|f| f.get("class").is_some()).count();
    assert_eq!(results.len(), good);
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "error").count(),
        frames.len() - good
    );

    let mut cls = Vec::new();
    let mut labels = Vec::new();
    for m in BagReader::open(&rec).unwrap() {
        let m = m.unwrap();
        match m.channel.topic.as_str() {
            "/classification" => cls.push(cdr::decode::<Classification>(&m.data).unwrap()),
            "/label_info" => labels.push(cdr::decode::<LabelInfo>(&m.data).unwrap()),
            _ => {}
        }
    }
    assert_eq!(cls.len(), results.len());
    for (c, r) in cls.iter().zip(&results) {
        let f = &frames[r["id"].as_u64().unwrap() as usize];
        assert_eq!(c.header.frame_id, f["frame_id"].as_str().unwrap());
        assert_eq!(
            hlfp::bag::input::ns_from_time(c.header.stamp),
            f["stamp_ns"].as_i64().unwrap()
        );
        let top: Vec<&str> = r["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["class"].as_str().unwrap())
            .collect();
        assert_eq!(
            c.results
                .iter()
                .map(|h| h.class_id.as_str())
                .collect::<Vec<_>>(),
            top
        );
        assert_eq!(top.len(), 3);
    }
    assert_eq!(labels.len(), 1);
    assert_eq!(
        labels[0]
            .class_map
            .iter()
            .map(|c| c.class_name.as_str())
            .collect::<Vec<_>>(),
        CLASSES
    );
}

#[test]
fn run_bag_names_the_topics_when_the_image_topic_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let w = model(dir.path());
    let res = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(["run", "--every-frame", "--image-topic", "/nope", "--bag"])
        .arg(root().join("tests/fixtures/bag/inputs.mcap"))
        .arg("--model")
        .arg(&w)
        .arg("--out")
        .arg(dir.path().join("o.jsonl"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("/nope") && stderr.contains("/camera/image_raw"),
        "{stderr}"
    );
}
