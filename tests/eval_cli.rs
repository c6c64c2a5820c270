//! `hlfp eval` end to end on a synthetic ImageFolder (solid-colour PNGs) with a random-weight
//! model saved the way `hlfp train` saves it (`HlfpModel::save_safetensors` + `model.json`).
//! No accuracy number of the random model is asserted; only how the numbers relate.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use hlfp::model::{weights, HlfpModel, ModelConfig, Variant};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const MODEL_CLASSES: [&str; 4] = ["black", "blue", "green", "red"];

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::new(Variant::HlfpSmall, MODEL_CLASSES.len());
    c.class_names = MODEL_CLASSES.iter().map(|s| s.to_string()).collect();
    c.width = 0.125;
    c.input_size = 64;
    c
}

/// `dir/model.safetensors` and `dir/model.json`, as `hlfp train --out dir` writes them.
fn save_model(dir: &Path) {
    let cfg = cfg();
    let map = weights::random_tensors(&cfg, 7, &Device::Cpu).unwrap();
    let model = HlfpModel::load(
        &cfg,
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    model
        .save_safetensors(dir.join("model.safetensors"))
        .unwrap();
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
}

fn png(path: &Path, rgb: [u8; 3], w: u32, h: u32) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

/// red/green/blue with 3 images each, an unknown class "zebra" with 2, a garbage "png" in
/// red (caught by the header check) and a truncated PNG in green (fails at decode time).
/// The model's "black" has no folder.
fn dataset(root: &Path) {
    for (name, rgb) in [
        ("red", [220, 20, 30]),
        ("green", [30, 200, 40]),
        ("blue", [20, 30, 210]),
    ] {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..3u8 {
            let shade = |c: u8| c.saturating_sub(i * 20);
            png(
                &d.join(format!("{i}.png")),
                rgb.map(shade),
                40 + 7 * i as u32,
                50,
            );
        }
    }
    let z = root.join("zebra");
    std::fs::create_dir_all(&z).unwrap();
    png(&z.join("a.png"), [0, 0, 0], 30, 30);
    png(&z.join("b.png"), [255, 255, 255], 30, 30);
    std::fs::write(root.join("red/broken.png"), b"this is not an image").unwrap();
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(root.join("green/truncated.png"), bytes).unwrap();
}

/// The `hlfp` binary. `HLFP_BIN` overrides it: worktrees sharing one CARGO_TARGET_DIR overwrite
/// each other's uplifted `target/debug/hlfp`.
fn hlfp(args: &[&str]) -> (bool, String, String) {
    let bin = std::env::var("HLFP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hlfp").to_string());
    let out = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_report_is_complete_and_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, data, plot) = (
        tmp.path().join("run"),
        tmp.path().join("data"),
        tmp.path().join("cm.png"),
    );
    save_model(&model);
    dataset(&data);
    let (ok, out, err) = hlfp(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--json",
        "--halves",
        "--cutout",
        "red,green",
        "--gains",
        "1.5,1.0,2",
        "--confusion",
        s(&plot),
        "--batch",
        "4",
    ]);
    assert!(ok, "hlfp eval failed: {err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line: {out}");
    let r: Value = serde_json::from_str(lines[0]).unwrap();

    // 9 good images of known classes; the two bad files are counted, not evaluated.
    let images = r["images"].as_u64().unwrap();
    assert_eq!(images, 9);
    let top1 = r["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1));
    let per = r["per_class"].as_array().unwrap();
    let names: Vec<&str> = per.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, MODEL_CLASSES);
    let count = |c: &Value| c["images"].as_u64().unwrap();
    let correct = |c: &Value| c["correct"].as_u64().unwrap();
    assert_eq!(per.iter().map(count).sum::<u64>(), images);
    assert_eq!(per.iter().map(count).collect::<Vec<_>>(), vec![0, 3, 3, 3]);
    assert!(
        per[0]["top1"].is_null(),
        "a class without images has no top-1"
    );
    assert_eq!(
        r["correct"].as_u64().unwrap(),
        per.iter().map(correct).sum::<u64>()
    );
    assert!((top1 - r["correct"].as_f64().unwrap() / images as f64).abs() < 1e-12);
    let confusion = r["confusion"].as_array().unwrap();
    for (row, c) in confusion.iter().zip(per) {
        let row: Vec<u64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(row.iter().sum::<u64>(), count(c));
    }

    // Cutouts: as given, then lower/upper halves by index. Each is counted on its own
    // classes' images only, and its full-model comparison is the per-class tally over them.
    let cutouts = r["cutouts"].as_array().unwrap();
    let got: Vec<(&str, Vec<&str>)> = cutouts
        .iter()
        .map(|c| {
            let cls = c["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            (c["name"].as_str().unwrap(), cls)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("red,green", vec!["green", "red"]),
            ("lower", vec!["black", "blue"]),
            ("upper", vec!["green", "red"]),
        ]
    );
    let full = hlfp::model::cost(&cfg(), None).unwrap();
    for c in cutouts {
        let idx: Vec<usize> = c["class_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: u64 = idx.iter().map(|&i| count(&per[i])).sum();
        let ok: u64 = idx.iter().map(|&i| correct(&per[i])).sum();
        assert_eq!(c["images"].as_u64().unwrap(), n);
        assert!((c["full_top1_on_subset"].as_f64().unwrap() - ok as f64 / n as f64).abs() < 1e-12);
        let t = c["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t));
        let cc = hlfp::model::cost(&cfg(), Some(&idx)).unwrap();
        assert_eq!(c["params"].as_u64().unwrap(), cc.params);
        assert_eq!(c["macs"].as_u64().unwrap(), cc.macs);
        assert!(cc.params < full.params);
    }

    // Attention: sorted gains with 1.0 equal to the full top-1.
    let att = r["attention"].as_object().unwrap();
    let keys: Vec<&str> = att.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, vec!["1.0", "1.5", "2.0"]);
    assert_eq!(att["1.0"].as_f64().unwrap(), top1);
    for v in att.values() {
        assert!((0.0..=1.0).contains(&v.as_f64().unwrap()));
    }

    // Unknown and missing classes, and the two bad files of known classes.
    assert_eq!(
        r["skipped_classes"],
        serde_json::json!([{"name": "zebra", "images": 2}])
    );
    assert_eq!(r["missing_classes"], serde_json::json!(["black"]));
    let failed: Vec<&str> = r["failed_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().any(|p| p.ends_with("broken.png")));
    assert!(failed.iter().any(|p| p.ends_with("truncated.png")));
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0);

    let img = image::open(&plot).unwrap();
    assert!(img.width() > 4 * 16 && img.height() > 4 * 16);
}

#[test]
fn text_output_sidecar_and_config_override() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, data) = (tmp.path().join("run"), tmp.path().join("data"));
    save_model(&model);
    dataset(&data);
    // The weights file with a renamed sidecar: found only through --config.
    let weights = model.join("model.safetensors");
    let moved = tmp.path().join("elsewhere.json");
    std::fs::rename(model.join("model.json"), &moved).unwrap();
    let (ok, _, err) = hlfp(&["eval", "--model", s(&weights), "--data", s(&data)]);
    assert!(!ok);
    assert!(
        err.contains("no model config found") && err.contains("--config"),
        "{err}"
    );
    let (ok, out, err) = hlfp(&[
        "eval",
        "--model",
        s(&weights),
        "--config",
        s(&moved),
        "--data",
        s(&data),
        "--limit",
        "4",
        "--no-attention",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("top-1") && out.contains("/4 images"), "{out}");
    assert!(out.contains("skipped class \"zebra\" (2 images)"), "{out}");
    assert!(!out.contains("attention"), "{out}");
}

#[test]
fn bad_arguments_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, data) = (tmp.path().join("run"), tmp.path().join("data"));
    save_model(&model);
    dataset(&data);
    let base = ["eval", "--model", s(&model), "--data", s(&data)];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        hlfp(&a)
    };
    let expect_err = |extra: &[&str], needle: &str| {
        let (ok, _, err) = run(extra);
        assert!(!ok, "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: {err}");
    };
    expect_err(&["--cutout", "red,zebra"], "unknown class \"zebra\"");
    expect_err(&["--gains", "1.0,-1"], "gains must be finite and >= 0");
    expect_err(&["--limit", "0"], "--limit");
    expect_err(&["--batch", "0"], "--batch");
    let missing = tmp.path().join("nope.safetensors");
    let (ok, _, err) = hlfp(&["eval", "--model", s(&missing), "--data", s(&data)]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = hlfp(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&tmp.path().join("nodata")),
    ]);
    assert!(!ok && err.contains("is not a directory"), "{err}");
    // Only unknown classes: nothing to evaluate is an error, not a 0 % result.
    let only_zebra = tmp.path().join("zebra_only");
    std::fs::create_dir_all(only_zebra.join("zebra")).unwrap();
    png(&only_zebra.join("zebra/a.png"), [9, 9, 9], 20, 20);
    let (ok, _, err) = hlfp(&["eval", "--model", s(&model), "--data", s(&only_zebra)]);
    assert!(
        !ok && err.contains("no readable images of the model's classes"),
        "{err}"
    );
}
