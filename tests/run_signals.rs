//! `hlfp run` stopped by SIGTERM or SIGINT: the frame in flight finishes, the outputs are
//! flushed, the summary is written, and the exit code (128 + signal) says what happened.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hlfp::model::{weights, ModelConfig, Variant};

fn model(dir: &Path) -> std::path::PathBuf {
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, 2);
    cfg.width = 0.125;
    cfg.input_size = 64;
    let w = dir.join("m.safetensors");
    weights::write_random_safetensors(&w, &cfg, 3).unwrap();
    std::fs::write(
        ModelConfig::sidecar_path(&w),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    w
}

fn stopped_by(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..2u8 {
        image::RgbImage::from_pixel(32, 24, image::Rgb([i * 90, 60, 30]))
            .save(frames.join(format!("f{i}.png")))
            .unwrap();
    }
    let out = dir.path().join("out.jsonl");
    // An endless replay: only a signal ends it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(["run", "--loop", "--fps", "20", "--threads", "1", "--frames"])
        .arg(&frames)
        .arg("--model")
        .arg(model(dir.path()))
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run is up once it has written something (the file sink flushes only at the end, so
    // wait for the process to be past model loading instead: a second is plenty after start).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "run ended on its own");
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let res = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(128 + signal), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary", "{text}");
    assert!(last["frames_done"].as_u64().unwrap() > 0, "{last}");
    let results = text
        .lines()
        .filter(|l| l.contains("\"type\":\"result\""))
        .count() as u64;
    assert_eq!(results, last["frames_done"].as_u64().unwrap());
}

#[test]
fn sigterm_flushes_the_outputs_and_writes_the_summary() {
    stopped_by(libc::SIGTERM);
}

#[test]
fn sigint_flushes_the_outputs_and_writes_the_summary() {
    stopped_by(libc::SIGINT);
}
