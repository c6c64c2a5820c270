//! Quick look at the engine's batch-1 latency at 224x224 with random weights (median of N).
use hlfp::engine::EngineModel;
use hlfp::model::weights::random_tensors;
use hlfp::model::{ModelConfig, Variant};
use std::time::Instant;

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let img = vec![0.1f32; 3 * 224 * 224];
    let cases: Vec<(&str, Variant, usize, Vec<usize>)> = vec![
        ("resnet50", Variant::Resnet50, 10, (0..10).collect()),
        ("hlfp-small k=10", Variant::HlfpSmall, 10, (0..10).collect()),
        (
            "hlfp-small cutout 5",
            Variant::HlfpSmall,
            10,
            (0..5).collect(),
        ),
        ("hlfp-small cutout 1", Variant::HlfpSmall, 10, vec![0]),
    ];
    for (name, v, k, active) in cases {
        let cfg = ModelConfig::new(v, k);
        let w = random_tensors(&cfg, 1, &candle_core::Device::Cpu).unwrap();
        let m = EngineModel::load(&cfg, &w, 2).unwrap();
        let gains = vec![1.0; k];
        m.forward_image(&img, &active, &gains).unwrap();
        let mut t: Vec<f64> = (0..iters)
            .map(|_| {
                let s = Instant::now();
                m.forward_image(&img, &active, &gains).unwrap();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name:22} median {:7.2} ms", t[t.len() / 2]);
    }
}
