//! Helpers shared by the model tests: small configs, random weights, deterministic inputs.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hlfp::model::{weights, HlfpModel, ModelConfig, SuperclassMap, Variant};

pub const SIZE: usize = 64;

/// Width 1/8, 64x64 input, `k` classes (nested: k/2 contiguous superclasses).
pub fn cfg(variant: Variant, k: usize) -> ModelConfig {
    let mut c = ModelConfig::new(variant, k);
    c.width = 0.125;
    c.input_size = SIZE;
    if variant == Variant::HlfpNested {
        c.superclasses = Some(SuperclassMap::contiguous(k, (k / 2).max(1)).unwrap());
    }
    c
}

/// A model with random weights and non-trivial BatchNorm statistics.
pub fn model(cfg: &ModelConfig, seed: u64) -> HlfpModel {
    let map = weights::random_tensors(cfg, seed, &Device::Cpu).unwrap();
    HlfpModel::load(cfg, VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)).unwrap()
}

/// A deterministic, image-like input `[b, 3, SIZE, SIZE]`.
pub fn input(b: usize) -> Tensor {
    let n = b * 3 * SIZE * SIZE;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.0173).sin() + 0.5 * ((i as f32) * 0.00071).cos())
        .collect();
    Tensor::from_vec(v, (b, 3, SIZE, SIZE), &Device::Cpu).unwrap()
}

pub fn to_vec2(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

/// Largest absolute difference between two equally-shaped tensors.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Column `j` of a `[B, n]` tensor.
pub fn col(t: &Tensor, j: usize) -> Vec<f32> {
    to_vec2(t).iter().map(|r| r[j]).collect()
}
