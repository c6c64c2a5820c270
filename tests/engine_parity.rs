//! The GEMM engine reproduces the PyTorch references (tests/fixtures/parity) within 1e-4:
//! full model, cutout and gains, from the same weight files the candle model reads.

use candle_core::{Device, Tensor};
use hlfp::engine::EngineModel;
use hlfp::model::ModelConfig;
use std::collections::HashMap;
use std::path::PathBuf;

fn load(
    name: &str,
) -> (
    ModelConfig,
    HashMap<String, Tensor>,
    HashMap<String, Tensor>,
) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let cfg: ModelConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let w = candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu)
        .unwrap();
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &Device::Cpu)
            .unwrap();
    (cfg, w, io)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        d <= 1e-4,
        "{what}: max diff {d} (got {got:?}, want {want:?})"
    );
}

fn check(name: &str) {
    let (cfg, w, io) = load(name);
    let k = cfg.num_classes();
    let model = EngineModel::load(&cfg, &w, 2).unwrap();
    let x = &io["input"];
    let cut: Vec<usize> = io["cutout"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&i| i as usize)
        .collect();
    let gains = io["gains"].to_vec1::<f32>().unwrap();
    let all: Vec<usize> = (0..k).collect();
    let ones = vec![1.0; k];
    let (full, cutout, gained) = (
        rows(&io["logits_full"]),
        rows(&io["logits_cutout"]),
        rows(&io["logits_gain"]),
    );
    for b in 0..x.dim(0).unwrap() {
        let img = x
            .get(b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_close(
            &model.forward_image(&img, &all, &ones).unwrap(),
            &full[b],
            &format!("{name} full, image {b}"),
        );
        assert_close(
            &model.forward_image(&img, &cut, &ones).unwrap(),
            &cutout[b],
            &format!("{name} cutout, image {b}"),
        );
        assert_close(
            &model.forward_image(&img, &all, &gains).unwrap(),
            &gained[b],
            &format!("{name} gains, image {b}"),
        );
        // The cached pack for the cutout gives the same answer the second time.
        assert_close(
            &model.forward_image(&img, &cut, &ones).unwrap(),
            &cutout[b],
            &format!("{name} cutout again"),
        );
    }
}

#[test]
fn engine_matches_pytorch_resnet50() {
    check("resnet50_w8");
}

#[test]
fn engine_matches_pytorch_hlfp_small() {
    check("hlfp_small_w8");
}

#[test]
fn engine_matches_pytorch_hlfp_nested() {
    check("hlfp_nested_w8");
}

#[test]
fn engine_rejects_bad_input() {
    let (cfg, w, _) = load("hlfp_small_w8");
    let model = EngineModel::load(&cfg, &w, 1).unwrap();
    let s = cfg.input_size;
    let img = vec![0.0; 3 * s * s];
    assert!(model
        .forward_image(&img[1..], &[0], &[1.0; 3])
        .unwrap_err()
        .to_string()
        .contains("expected 3x64x64"));
    assert!(model.forward_image(&img, &[2, 0], &[1.0; 3]).is_err());
    assert!(model.forward_image(&img, &[3], &[1.0; 3]).is_err());
    assert!(model.forward_image(&img, &[0], &[1.0; 2]).is_err());
    let mut missing = w.clone();
    missing.remove("branch.1.bn2.running_var");
    let err = EngineModel::load(&cfg, &missing, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("branch.1.bn2.running_var"), "{err}");
}

#[test]
fn engine_loads_every_variant_from_the_weights_contract() {
    // Random weights named and shaped by model::weights (the one manifest of tensor names):
    // the engine must find every tensor it needs for every variant.
    use hlfp::model::{weights::random_tensors, SuperclassMap, Variant};
    for v in Variant::ALL {
        let mut cfg = ModelConfig::new(v, 4);
        cfg.width = 0.125;
        cfg.input_size = 64;
        if v == Variant::HlfpNested {
            cfg.superclasses = Some(SuperclassMap::contiguous(4, 2).unwrap());
        }
        let w = random_tensors(&cfg, 3, &Device::Cpu).unwrap();
        let m = EngineModel::load(&cfg, &w, 1).unwrap_or_else(|e| panic!("{v}: {e}"));
        let img = vec![0.5f32; 3 * 64 * 64];
        let out = m
            .forward_image(&img, &[1, 3], &[1.0, 1.2, 1.0, 0.8])
            .unwrap();
        assert_eq!(out.len(), 2, "{v}");
        assert!(out.iter().all(|x| x.is_finite()), "{v}: {out:?}");
    }
}
