//! `hlfp listen --bench` end to end with the shipped audio model: the report says what it timed
//! (one thread, the model file, the windows it scored) and judges the real-time budget from the
//! number it printed. No speed is asserted here; the figures go to the model card.

use std::process::Command;

#[test]
fn bench_reports_the_shipped_model_on_one_thread_against_the_budget() {
    let out = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(["listen", "--bench", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hlfp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hlfp listen --bench failed: {stderr}");
    let line = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(r["threads"], 1);
    assert_eq!(r["scorer"], hlfp::audio::DEFAULT_MODEL, "{stderr}");
    // 10 s of audio scored every hop (config/cues.toml: 0.1 s) once the first window filled.
    let windows = r["windows_scored"].as_u64().unwrap();
    assert!((80..=100).contains(&windows), "{windows} windows");
    let total = r["pipeline_ms_per_s"].as_f64().unwrap();
    assert!(total > 0.0);
    assert_eq!(r["budget_ms_per_s"], 50.0);
    assert_eq!(r["budget_met"], total <= 50.0);
    assert!(r["runs"].as_u64().unwrap() >= 3);
}
