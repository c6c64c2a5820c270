//! PyTorch parity: our models reproduce torchvision-built references within 1e-4.
//!
//! Fixtures come from `scripts/make_parity_fixtures.py` (deterministic, committed under
//! `tests/fixtures/parity/`). The references run one torchvision module per branch, so these
//! tests check our stacked/grouped branch layout, the cutout slicing and the gain stage against
//! an independent implementation.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hlfp::model::{HlfpModel, InferenceModel, ModelConfig, Selection};
use std::collections::HashMap;
use std::path::PathBuf;

mod model_util;
use model_util::max_diff;

const TOL: f32 = 1e-4;

struct Fixture {
    cfg: ModelConfig,
    weights: PathBuf,
    io: HashMap<String, Tensor>,
}

fn fixture(name: &str) -> Fixture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let cfg_text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let cfg: ModelConfig = serde_json::from_str(&cfg_text).unwrap();
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &Device::Cpu)
            .unwrap();
    Fixture {
        cfg,
        weights: dir.join(format!("{name}.safetensors")),
        io,
    }
}

fn cutout(f: &Fixture) -> Selection {
    let idx: Vec<usize> = f.io["cutout"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|i| i as usize)
        .collect();
    Selection::from_indices(&f.cfg, &idx).unwrap()
}

fn gains(f: &Fixture) -> Vec<f32> {
    f.io["gains"].to_vec1::<f32>().unwrap()
}

fn check_training_path(name: &str) {
    let f = fixture(name);
    let dev = Device::Cpu;
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&f.weights], DType::F32, &dev).unwrap() };
    let model = HlfpModel::load(&f.cfg, vb).unwrap();
    let x = &f.io["input"];
    let ones = vec![1.0f32; f.cfg.num_classes()];
    let all = Selection::all(&f.cfg);

    let full = model.forward(x, &all, &ones).unwrap();
    let d = max_diff(&full, &f.io["logits_full"]);
    assert!(d <= TOL, "{name}: full logits differ from PyTorch by {d}");

    let cut = model.forward(x, &cutout(&f), &ones).unwrap();
    let d = max_diff(&cut, &f.io["logits_cutout"]);
    assert!(d <= TOL, "{name}: cutout logits differ from PyTorch by {d}");

    let gained = model.forward(x, &all, &gains(&f)).unwrap();
    let d = max_diff(&gained, &f.io["logits_gain"]);
    assert!(d <= TOL, "{name}: gained logits differ from PyTorch by {d}");
}

fn check_inference_path(name: &str) {
    check_inference_path_on(name, &Device::Cpu);
}

/// The folded inference path on `dev`; logits are compared on the CPU.
fn check_inference_path_on(name: &str, dev: &Device) {
    let f = fixture(name);
    let x = &f.io["input"].to_device(dev).unwrap();
    let cpu_diff = |a: &Tensor, b: &Tensor| max_diff(&a.to_device(&Device::Cpu).unwrap(), b);
    let ones = vec![1.0f32; f.cfg.num_classes()];
    let all = Selection::all(&f.cfg);
    let sel = cutout(&f);

    // Full load, BatchNorm folded.
    let full_model = InferenceModel::load_file(&f.weights, &f.cfg, None, dev).unwrap();
    let d = cpu_diff(
        &full_model.forward(x, &all, &ones).unwrap(),
        &f.io["logits_full"],
    );
    assert!(
        d <= TOL,
        "{name}: folded full logits differ from PyTorch by {d}"
    );
    let d = cpu_diff(
        &full_model.forward(x, &sel, &ones).unwrap(),
        &f.io["logits_cutout"],
    );
    assert!(
        d <= TOL,
        "{name}: folded cutout logits differ from PyTorch by {d}"
    );
    let d = cpu_diff(
        &full_model.forward(x, &all, &gains(&f)).unwrap(),
        &f.io["logits_gain"],
    );
    assert!(
        d <= TOL,
        "{name}: folded gained logits differ from PyTorch by {d}"
    );

    // Load only the cutout's branches from the file.
    let cut_model = InferenceModel::load_file(&f.weights, &f.cfg, Some(&sel), dev).unwrap();
    let d = cpu_diff(
        &cut_model.forward(x, &sel, &ones).unwrap(),
        &f.io["logits_cutout"],
    );
    assert!(
        d <= TOL,
        "{name}: cutout-only load differs from PyTorch by {d}"
    );
}

#[test]
fn resnet50_matches_pytorch() {
    check_training_path("resnet50_w8");
    check_inference_path("resnet50_w8");
}

#[test]
fn hlfp_small_matches_pytorch_full_cutout_and_gain() {
    check_training_path("hlfp_small_w8");
    check_inference_path("hlfp_small_w8");
}

#[test]
fn hlfp_nested_matches_pytorch_full_cutout_and_gain() {
    check_training_path("hlfp_nested_w8");
    check_inference_path("hlfp_nested_w8");
}

/// The same fixtures through candle's CUDA backend (own im2col + batched GEMM convs). Built only
/// with `--features cuda`; skips, saying so, where no GPU is present (CI has none).
#[cfg(feature = "cuda")]
#[test]
fn inference_path_matches_pytorch_on_cuda() {
    let dev = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP inference_path_matches_pytorch_on_cuda: no CUDA device ({e})");
            return;
        }
    };
    for name in ["resnet50_w8", "hlfp_small_w8", "hlfp_nested_w8"] {
        check_inference_path_on(name, &dev);
    }
}
