//! Training throughput: one conv layer's forward+backward through candle's `conv2d` vs the
//! im2col+matmul op, and whole training steps of HLFP-small (median of several steps).
//!
//! `cargo run --release --example train_step_speed -- [width] [input] [batch] [f32|bf16]`
use candle_core::{Device, Tensor, Var};
use hlfp::data::loader::Batch;
use hlfp::kernels::im2col_op::conv_im2col;
use hlfp::model::{ModelConfig, Variant};
use hlfp::train::{OptimizerConfig, Precision, TrainConfig, Trainer};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<F: FnMut()>(n: usize, mut f: F) -> f64 {
    f();
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let width: f64 = args.first().map_or(Ok(0.25), |s| s.parse())?;
    let input: usize = args.get(1).map_or(Ok(96), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(32), |s| s.parse())?;
    let precision: Precision = args.get(3).map_or(Ok(Precision::F32), |s| s.parse())?;
    let dev = Device::Cpu;
    if std::env::var_os("NO_MALLOPT").is_none() {
        println!("allocator tuned: {}", hlfp::alloc::retain_freed_memory());
    }

    println!("conv forward+backward, batch {batch} (median ms)");
    for (name, cin, cout, hw, k, s, p) in [
        ("stem 7x7/2 3->16", 3, 16, input, 7, 2, 3),
        ("3x3 16->16", 16, 16, input / 4, 3, 1, 1),
        ("3x3/2 32->32", 32, 32, input / 4, 3, 2, 1),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (batch, cin, hw, hw), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, k, k), &dev)?)?;
        let a = time(5, || {
            let y = x.conv2d(&w, p, s, 1, 1).unwrap();
            y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        });
        let b = time(5, || {
            let y = conv_im2col(&x, &w, p, s, 1).unwrap();
            y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        });
        println!(
            "  {name:<18} conv2d {a:8.1}  im2col {b:8.1}  ratio {:.2}",
            b / a
        );
    }

    let mut cfg = ModelConfig::new(Variant::HlfpSmall, 14);
    cfg.width = width;
    cfg.input_size = input;
    let tc = TrainConfig {
        epochs: 1,
        steps_per_epoch: 100,
        optimizer: OptimizerConfig::adamw(),
        lr: 1e-3,
        min_lr: 1e-5,
        warmup_epochs: 0.0,
        label_smoothing: 0.1,
        weight_decay: 0.05,
        seed: 0,
        precision,
        fused_batch_norm: std::env::var("HLFP_TRAIN_BN").map_or(true, |v| v != "candle"),
    };
    let mut trainer = Trainer::new(cfg, tc, &dev)?;
    let images: Vec<f32> = (0..batch * 3 * input * input)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let b = Batch {
        images,
        labels: (0..batch as u32).map(|i| i % 14).collect(),
        indices: (0..batch).collect(),
        skipped: vec![],
        input_size: input,
    };
    let ms = time(4, || {
        trainer.train_step(&b).unwrap();
    });
    println!(
        "HLFP-small w{width} {input}px batch {batch}: train step {ms:.0} ms = {:.1} img/s",
        batch as f64 * 1e3 / ms
    );
    Ok(())
}
