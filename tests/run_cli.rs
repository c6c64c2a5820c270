//! `hlfp run` and `hlfp demo` end to end through the binary.
//! `run`: a folder of synthetic PNGs, cues as JSON lines on stdin, a random-weight model; the
//! JSON lines out are checked for one result per frame (ids, stamps, top classes, the cued
//! cutout) and the summary. `demo`: the real scenario with the shipped models and the shared
//! data (`#[ignore = "needs ../shared/data"]`).

mod shared_data;
use hlfp::model::{weights, ModelConfig, Variant};
use serde_json::Value;
use shared_data::shared_data;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

#[test]
fn run_replays_a_folder_with_stdin_cues() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..6u8 {
        image::RgbImage::from_pixel(40, 30, image::Rgb([i * 40, 100, 200 - i * 30]))
            .save(frames.join(format!("f{i}.png")))
            .unwrap();
    }
    std::fs::write(frames.join("zz_broken.jpg"), b"not an image").unwrap();
    let w = model(dir.path());
    let out = dir.path().join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(["run", "--frames"])
        .arg(&frames)
        // --every-frame: six results whatever the machine's load (under the default
        // latest-frame policy a busy machine drops frames, and this test failed 5 in 6).
        .args([
            "--fps",
            "20",
            "--every-frame",
            "--cues-stdin",
            "--top",
            "2",
            "--model",
        ])
        .arg(&w)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A cue before the frames start; an unknown class is refused, not fatal.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"class":"dog","score":1.0}}"#).unwrap();
    writeln!(stdin, "zebra").unwrap();
    drop(stdin);
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // The log goes to a pipe, not a terminal: plain text, no ANSI colour codes.
    let log = String::from_utf8_lossy(&res.stderr);
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a piped log: {log:?}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |t: &str| lines.iter().filter(|v| v["type"] == t).collect::<Vec<_>>();
    let results = of("result");
    assert_eq!(results.len(), 6, "{lines:?}");
    assert_eq!(of("error").len(), 1, "the broken file is reported");
    let cues = of("cue");
    assert_eq!(cues.len(), 2);
    assert!(cues
        .iter()
        .any(|c| c["class"] == "dog" && c["queued"] == true));
    assert!(cues.iter().any(|c| c["queued"] == false));
    for r in &results {
        assert_eq!(r["top"].as_array().unwrap().len(), 2);
        assert_eq!(r["frame_id"], "replay");
    }
    // Once the cue is in, the focus cutout runs fewer branches with dog among them.
    let cued: Vec<&&Value> = results
        .iter()
        .filter(|r| r["cued"].as_array().is_some_and(|c| !c.is_empty()))
        .collect();
    assert!(!cued.is_empty(), "no frame ran under the cue");
    for r in cued {
        let active = r["active"].as_array().unwrap();
        assert!(active.len() < CLASSES.len() && active.contains(&Value::from(1)));
    }
    let summary = of("summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["frames_done"], 6);
}

#[test]
fn run_without_a_source_explains_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(["run", "--model", "nowhere.safetensors"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frames DIR"));
}

/// The README's demo, shortened: the shipped models, the shared photos and a real bark.
#[test]
#[ignore = "needs ../shared/data"]
fn demo_runs_and_the_bark_cues_the_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = shared_data("");
    let dir = tempfile::tempdir().unwrap();
    let res = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .current_dir(root)
        .args([
            "demo",
            "--seconds",
            "9",
            "--sound-at",
            "2",
            "--fps",
            "5",
            "--media",
        ])
        .arg(&data)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let cue = report["report"]["cue_at_s"]
        .as_f64()
        .expect("the bark was heard");
    assert!(
        (2.0..5.0).contains(&cue),
        "cue at {cue} s for a bark at 2 s"
    );
    // The default sound is a clip that every member of the shipped model left out of training
    // (its `<member>.val.txt`, written by `train-audio`).
    let sound = Path::new(report["sound"].as_str().expect("the sound's path"));
    let rel = sound
        .strip_prefix(&data)
        .unwrap()
        .to_string_lossy()
        .to_string();
    for member in hlfp::audio::ensemble::member_files(hlfp::audio::DEFAULT_MODEL) {
        let list = root.join(Path::new(member).with_extension("val.txt"));
        let text = std::fs::read_to_string(&list).unwrap();
        assert!(
            text.lines().any(|l| l == rel),
            "{rel} is not in {}",
            list.display()
        );
    }
    let g = &report["report"]["guided"];
    let b = &report["report"]["before"];
    assert!(g["frames"].as_u64().unwrap() > 0);
    assert!(
        g["mean_active_branches"].as_f64().unwrap() < b["mean_active_branches"].as_f64().unwrap()
    );
    assert!(g["mean_mmacs"].as_f64().unwrap() < b["mean_mmacs"].as_f64().unwrap());
    for f in ["timeline.png", "records.jsonl", "report.txt", "sound.wav"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
}
