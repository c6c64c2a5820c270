//! `hlfp eval-audio --fold` end to end on a small synthetic fold with the shipped classifier:
//! the threshold sweep, the operating point chosen from it (`--choose-limits`), and the cue file
//! written for it (`--write-cues`), which, evaluated again, runs exactly the chosen points.

use std::path::Path;
use std::process::Command;

use hlfp::audio::cues::CueConfig;

/// 16-bit mono PCM WAV at 16 kHz.
fn write_wav(path: &Path, samples: &[f32]) -> std::io::Result<()> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut v = Vec::with_capacity(44 + data.len());
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    for x in [16u32, 1 | (1 << 16), 16_000, 32_000, 2 | (16 << 16)] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(path, v)
}

/// Deterministic noise in [-1, 1].
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A rising then falling harmonic tone (a synthetic "meow"), 1.2 s.
fn meow(f0: f32) -> Vec<f32> {
    let n = 19_200;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let f = f0 * (1.0 + 0.6 * (std::f32::consts::PI * t).sin());
            phase += 2.0 * std::f32::consts::PI * f / 16_000.0;
            let env = (std::f32::consts::PI * t).sin();
            0.4 * env
                * (1..5)
                    .map(|h| phase.mul_add(h as f32, 0.0).sin() / h as f32)
                    .sum::<f32>()
        })
        .collect()
}

/// Three short noisy harmonic bursts (a synthetic "bark"), 1.5 s.
fn bark(seed: u64) -> Vec<f32> {
    let buzz = noise(24_000, seed);
    (0..24_000)
        .map(|i| {
            let t = (i % 8_000) as f32 / 16_000.0;
            let env = if t < 0.15 {
                (1.0 - t / 0.15) * 0.8
            } else {
                0.0
            };
            let tone = (2.0 * std::f32::consts::PI * 350.0 * i as f32 / 16_000.0).sin();
            env * (0.6 * tone + 0.4 * buzz[i])
        })
        .collect()
}

fn hlfp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hlfp"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hlfp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_chosen_operating_point_is_what_the_written_cue_file_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut list = String::new();
    let mut add = |rel: String, samples: Vec<f32>| -> std::io::Result<()> {
        write_wav(&data.join(&rel), &samples)?;
        list.push_str(&rel);
        list.push('\n');
        Ok(())
    };
    for i in 0..4u64 {
        add(format!("cat/syn_cat{i}.wav"), meow(450.0 + 60.0 * i as f32))?;
        add(format!("dog/syn_dog{i}.wav"), bark(i + 1))?;
        // Rain with a short chirp in it: a false cue at low thresholds.
        let mut rain: Vec<f32> = noise(80_000, 10 + i).iter().map(|x| 0.05 * x).collect();
        for (k, c) in meow(500.0 + 40.0 * i as f32).iter().take(6_000).enumerate() {
            rain[40_000 + k] += 0.5 * c;
        }
        add(format!("rain/syn_rain{i}.wav"), rain)?;
    }
    let list_path = dir.path().join("val.txt");
    std::fs::write(&list_path, &list)?;
    let cues_out = dir.path().join("chosen.toml");
    let fold = format!("models/audio_cues.safetensors:{}", list_path.display());
    let data_s = data.display().to_string();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval-audio", "--data", &data_s, "--fold", &fold, "--json"];
        args.extend_from_slice(extra);
        hlfp(&args)
    };
    let (ok, stdout, stderr) = eval(&[
        "--sweep-on",
        "0.05,0.3,0.6,0.9",
        "--sweep-min-on",
        "1,2",
        "--choose-limits",
        "0,30,1000",
        "--choose-min-recall",
        "0.25",
        "--write-cues",
        &cues_out.display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim())?;
    let chosen = &r["chosen"];
    assert_eq!(r["sweep"].as_array().map(Vec::len), Some(8));
    let classes = chosen["classes"].as_array().expect("chosen classes");
    assert_eq!(classes.len(), 2, "{chosen}");
    let written = CueConfig::load(&cues_out)?;
    assert_eq!(
        written.cues,
        CueConfig::load(Path::new(&format!(
            "{}/config/cues.toml",
            env!("CARGO_MANIFEST_DIR")
        )))?
        .cues
    );
    for c in classes {
        let (class, p) = (c["class"].as_str().unwrap(), &c["point"]);
        // The chosen point is one of the sweep's, with the numbers the sweep reported for it.
        let row = r["sweep"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["on"] == p["on"] && s["min_on_windows"] == p["min_on_windows"])
            .expect("chosen point is in the sweep");
        assert_eq!(row["summary"][class]["recall_mixed"], p["recall"]);
        assert_eq!(
            row["summary"][class]["bg_false_cues_per_min"],
            p["false_cues_per_min"]
        );
        // The written file gives that label its own threshold and window count.
        let t = written.detector.label_thresholds[class];
        assert_eq!(t.on as f64, p["on"].as_f64().unwrap() as f32 as f64);
        assert_eq!(
            written.detector.label_min_on_windows[class] as u64,
            p["min_on_windows"].as_u64().unwrap()
        );
    }
    // Evaluated with the written file, each class runs exactly its chosen point.
    let report = dir.path().join("report.md");
    let (ok, stdout, stderr) = eval(&[
        "--cues",
        &cues_out.display().to_string(),
        "--report-md",
        &report.display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    let again: serde_json::Value = serde_json::from_str(stdout.trim())?;
    let minutes = again["operating_point"]["bg_minutes"].as_f64().unwrap();
    let md = std::fs::read_to_string(&report)?;
    for c in classes {
        let class = c["class"].as_str().unwrap();
        let op = &again["operating_point"][class];
        assert_eq!(op["recall_mixed"], c["point"]["recall"], "{class}");
        assert_eq!(
            op["bg_false_cues_per_min"], c["point"]["false_cues_per_min"],
            "{class}"
        );
        // The 95 % intervals are those of the counts behind the numbers, and hold them.
        let count = |k: &str| op[k].as_u64().unwrap() as usize;
        let pair = |k: &str| {
            let v = op[k].as_array().unwrap_or_else(|| panic!("{k}: {op}"));
            (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
        };
        let (hits, n, cues) = (
            count("recall_mixed_hits"),
            count("mixed_clips"),
            count("bg_false_cues"),
        );
        assert_eq!(hits as f64 / n as f64, op["recall_mixed"].as_f64().unwrap());
        let recall_ci = pair("recall_mixed_ci95");
        assert_eq!(Some(recall_ci), hlfp::stats::wilson_interval(hits, n));
        let rate_ci = pair("bg_false_cues_per_min_ci95");
        assert_eq!(
            Some(rate_ci),
            hlfp::stats::poisson_rate_interval(cues, minutes)
        );
        let rate = op["bg_false_cues_per_min"].as_f64().unwrap();
        assert!(
            rate_ci.0 <= rate && rate <= rate_ci.1,
            "{class}: {rate} {rate_ci:?}"
        );
        // The report's total row prints the recall interval.
        let row = format!("**{class}** | {n} |");
        let line = md.lines().find(|l| l.contains(&row)).expect("total row");
        let printed = format!("({hits}/{n}; 95 % {:.2}-{:.2})", recall_ci.0, recall_ci.1);
        assert!(line.contains(&printed), "{line}");
    }
    // Every false cue on the background is put down to the clip that was playing, and the
    // report lists those clips: here the rain with a chirp in it.
    let clips = again["bg_false_cue_clips"]
        .as_array()
        .expect("false cue clips");
    let mut attributed = 0;
    for c in classes {
        let class = c["class"].as_str().unwrap();
        let listed: u64 = clips
            .iter()
            .filter(|r| r["class"] == class)
            .map(|r| r["cues"].as_u64().unwrap())
            .sum();
        assert_eq!(
            listed,
            again["operating_point"][class]["bg_false_cues"]
                .as_u64()
                .unwrap(),
            "{class}: {clips:?}"
        );
        attributed += listed;
    }
    assert!(attributed > 0, "no false cue to attribute: {again}");
    // No other-animal clips on this fold: zero minutes of them, printed as such.
    assert_eq!(
        again["operating_point"]["other_animal_minutes"].to_string(),
        "0.0"
    );
    for r in clips {
        let clip = r["clip"].as_str().unwrap();
        assert!(clip.starts_with("rain/syn_rain"), "{clip}");
        let row = format!(
            "| {clip} | {} | {} |",
            r["class"].as_str().unwrap(),
            r["cues"]
        );
        assert!(md.contains(&row), "{row} not in\n{md}");
    }
    // The choice was not trivial: the settings differ on this fold.
    let mut seen: Vec<String> = r["sweep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["summary"]["cat"]["recall_mixed"], s["summary"]["cat"]["bg_false_cues_per_min"]
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 2, "{seen:?}");
    Ok(())
}

#[test]
fn choosing_needs_a_sweep_and_sane_limits() {
    let (ok, _, stderr) = hlfp(&[
        "eval-audio",
        "--data",
        "x",
        "--fold",
        "m:l",
        "--choose-limits",
        "1",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--sweep-on"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("l.txt");
    std::fs::write(&list, "rain/syn_a.wav\n").unwrap();
    write_wav(&dir.path().join("rain/syn_a.wav"), &noise(32_000, 3)).unwrap();
    let (ok, _, stderr) = hlfp(&[
        "eval-audio",
        "--data",
        &dir.path().display().to_string(),
        "--fold",
        &format!("models/audio_cues.safetensors:{}", list.display()),
        "--sweep-on",
        "0.5",
        "--choose-limits=-1",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("limits of false cues per minute"),
        "{stderr}"
    );
}
