//! The CUDA path: the inference convolution (one im2col launch + one batched GEMM for all
//! groups) against the CPU's im2col convolution, CUDA-graph replay against eager passes, and
//! bf16 mixed-precision training steps.
//! Built only with `--features cuda`; each test skips, saying so, where no GPU is present (CI
//! has none).
#![cfg(feature = "cuda")]

use candle_core::{Device, Tensor};
use hlfp::kernels::cuda_conv::conv_cuda;
use hlfp::kernels::im2col_op::conv_im2col;

mod model_util;
use model_util::max_diff;

fn gpu() -> Option<Device> {
    match hlfp::kernels::cuda_graph::cuda_device(0, true) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIP: no CUDA device ({e})");
            None
        }
    }
}

fn tensor(shape: &[usize], salt: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0) - 1.0)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn grouped_strided_padded_convs_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    // (batch, groups, cin per group, cout per group, side, kernel, stride, pad): the stem's
    // 7x7/2, a 3x3/2 downsampling conv, grouped branch convs, odd sizes, batch > 1.
    let cases = [
        (1, 1, 3, 8, 23, 7, 2, 3),
        (1, 1, 16, 16, 14, 3, 1, 1),
        (1, 10, 4, 4, 14, 3, 2, 1),
        (1, 5, 8, 4, 7, 3, 1, 1),
        (3, 4, 2, 3, 9, 3, 2, 1),
        (2, 1, 5, 6, 6, 3, 1, 0),
    ];
    for (i, &(b, g, cg, og, side, k, s, p)) in cases.iter().enumerate() {
        let x = tensor(&[b, g * cg, side, side], i);
        let w = tensor(&[g * og, cg, k, k], i + 100);
        let want = conv_im2col(&x, &w, p, s, g).unwrap();
        let got = conv_cuda(
            &x.to_device(&dev).unwrap(),
            &w.to_device(&dev).unwrap(),
            p,
            s,
            g,
        )
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap();
        let d = max_diff(&got, &want);
        assert!(
            d < 1e-4,
            "case {i} {:?}: CUDA differs from CPU by {d}",
            cases[i]
        );
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let Some(dev) = gpu() else { return };
    let x = tensor(&[1, 6, 5, 5], 0).to_device(&dev).unwrap();
    // 6 channels do not split into 4 groups of 2.
    let w = tensor(&[4, 2, 3, 3], 1).to_device(&dev).unwrap();
    assert!(conv_cuda(&x, &w, 1, 1, 4).is_err());
    // A 7x7 kernel does not fit a 5x5 input without padding.
    let w = tensor(&[4, 6, 7, 7], 2).to_device(&dev).unwrap();
    assert!(conv_cuda(&x, &w, 0, 1, 1).is_err());
}

#[test]
fn graph_replay_equals_eager_for_each_cutout_and_new_inputs() {
    use hlfp::kernels::cuda_graph::GraphForward;
    use hlfp::model::{weights, InferenceModel, ModelConfig, Selection, Variant};
    let Some(dev) = gpu() else { return };
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, 6);
    cfg.input_size = 64;
    cfg.width = 0.25;
    let map = weights::random_tensors(&cfg, 3, &dev).unwrap();
    let m = InferenceModel::from_tensors(&cfg, &map, None, &dev).unwrap();
    for active in [vec![0, 1, 2, 3, 4, 5], vec![1, 4], vec![5]] {
        let sel = Selection::from_indices(&cfg, &active).unwrap();
        let x0 = tensor(&[1, 3, 64, 64], 7).to_device(&dev).unwrap();
        let g = GraphForward::capture(&x0, |t| m.forward(t, &sel, &[])).unwrap();
        // The graph reads its input buffer anew on every replay.
        for salt in [11, 12] {
            let x = tensor(&[1, 3, 64, 64], salt).to_device(&dev).unwrap();
            let eager = m.forward(&x, &sel, &[]).unwrap();
            let replay = g.run(&x).unwrap();
            assert_eq!(replay.dims(), &[1, active.len()]);
            let d = max_diff(
                &replay.to_device(&Device::Cpu).unwrap(),
                &eager.to_device(&Device::Cpu).unwrap(),
            );
            assert!(d < 1e-5, "{active:?}: replay differs from eager by {d}");
        }
        let wrong = tensor(&[1, 3, 32, 32], 0).to_device(&dev).unwrap();
        assert!(
            g.run(&wrong).is_err(),
            "a different input shape must be refused"
        );
    }
}

#[test]
fn graph_capture_needs_a_tuned_device() {
    let Some(_) = gpu() else { return };
    let plain = hlfp::kernels::cuda_graph::cuda_device(0, false).unwrap();
    let x = tensor(&[1, 4], 0).to_device(&plain).unwrap();
    let r = hlfp::kernels::cuda_graph::GraphForward::capture(&x, |t| Ok(t.clone()));
    assert!(r.is_err());
}

/// The shipped vision model on CUDA: each (active set, gains) pair becomes one cached CUDA
/// graph, later frames replay it, and the logits match the CPU engine's.
#[test]
fn classifier_on_cuda_replays_graphs_and_matches_the_cpu_engine() {
    use hlfp::vision::classifier::{DeviceChoice, VisionClassifier};
    let Some(_) = gpu() else { return };
    let weights =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/hlfp_small.safetensors");
    let mut cpu = VisionClassifier::load_bundle(&weights, DeviceChoice::Cpu, 2).unwrap();
    let mut gpu_clf = VisionClassifier::load_bundle(&weights, DeviceChoice::Cuda(0), 2).unwrap();
    let k = cpu.config().num_classes();
    let (w, h) = (120usize, 90usize);
    let frame = |salt: usize| -> Vec<u8> {
        (0..w * h * 3)
            .map(|i| ((i * 37 + salt * 101) % 251) as u8)
            .collect()
    };
    let mut boosted = vec![1.0f32; k];
    boosted[3] = 2.0;
    let cases: Vec<(Vec<usize>, Vec<f32>)> = vec![
        ((0..k).collect(), vec![1.0; k]),
        (vec![1, 3, 5], vec![1.0; k]),
        (vec![1, 3, 5], boosted.clone()),
        (vec![3], boosted),
    ];
    for (i, (active, gains)) in cases.iter().enumerate() {
        for salt in 0..3 {
            let rgb = frame(salt);
            let want = cpu.logits_rgb8(&rgb, w, h, active, gains).unwrap();
            let got = gpu_clf.logits_rgb8(&rgb, w, h, active, gains).unwrap();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-3,
                    "case {i}: cuda {got:?} vs cpu {want:?}"
                );
            }
        }
        assert_eq!(
            gpu_clf.cached_graphs(),
            i + 1,
            "one graph per (active, gains)"
        );
    }
    // Bad gains are the eager path's clear error, and graphs keep working afterwards.
    assert!(gpu_clf
        .logits_rgb8(&frame(0), w, h, &[1, 3], &vec![f32::NAN; k])
        .is_err());
    assert!(gpu_clf
        .logits_rgb8(&frame(0), w, h, &[1, 3], &vec![1.0; k])
        .is_ok());
    assert_eq!(gpu_clf.cached_graphs(), 5);
}

/// The fused bias + residual + ReLU kernel equals candle's three ops.
#[test]
fn fused_epilogue_equals_bias_add_residual_relu() {
    use hlfp::kernels::cuda_conv::bias_residual_act;
    let Some(dev) = gpu() else { return };
    for (b, c, side) in [(1, 8, 5), (2, 3, 7), (1, 64, 14)] {
        let y = tensor(&[b, c, side, side], 1);
        let bias = tensor(&[1, c, 1, 1], 2);
        let res = tensor(&[b, c, side, side], 3);
        let on = |t: &Tensor| t.to_device(&dev).unwrap();
        for relu in [false, true] {
            for with_res in [false, true] {
                let mut want = y.broadcast_add(&bias).unwrap();
                if with_res {
                    want = (want + &res).unwrap();
                }
                if relu {
                    want = want.relu().unwrap();
                }
                let r = on(&res);
                let got = bias_residual_act(on(&y), &on(&bias), with_res.then_some(&r), relu)
                    .unwrap()
                    .to_device(&Device::Cpu)
                    .unwrap();
                let d = max_diff(&got, &want);
                assert!(
                    d < 1e-6,
                    "{b}x{c}x{side} relu {relu} residual {with_res}: {d}"
                );
            }
        }
    }
    // A bias of the wrong length is an error, not a wild read.
    let y = tensor(&[1, 4, 3, 3], 0).to_device(&dev).unwrap();
    let bias = tensor(&[1, 3, 1, 1], 0).to_device(&dev).unwrap();
    assert!(bias_residual_act(y, &bias, None, true).is_err());
}

#[test]
fn bf16_mixed_precision_training_steps_on_cuda_track_f32_and_learn() {
    use hlfp::data::loader::Batch;
    use hlfp::model::{ModelConfig, Variant};
    use hlfp::train::{OptimizerConfig, Precision, TrainConfig, Trainer};
    let Some(dev) = gpu() else { return };
    let model = ModelConfig {
        input_size: 32,
        width: 0.125,
        ..ModelConfig::new(Variant::HlfpSmall, 3)
    };
    let recipe = |precision| TrainConfig {
        epochs: 100,
        steps_per_epoch: 2,
        optimizer: OptimizerConfig::adamw(),
        lr: 3e-3,
        min_lr: 0.0,
        warmup_epochs: 0.0,
        label_smoothing: 0.1,
        weight_decay: 1e-4,
        seed: 5,
        precision,
    };
    // Label = the channel holding a bright square.
    let n = 12;
    let plane = 32 * 32;
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    let images: Vec<f32> = (0..n * 3 * plane)
        .map(|j| {
            let (b, c, p) = (j / (3 * plane), (j / plane) % 3, j % plane);
            let (y, x) = (p / 32, p % 32);
            let inside = (8..24).contains(&y) && (8..24).contains(&x);
            let noise = ((j * 7919) % 2001) as f32 / 1000.0 - 1.0;
            noise
                + if inside && c == labels[b] as usize {
                    2.0
                } else {
                    0.0
                }
        })
        .collect();
    let batch = Batch {
        images,
        labels,
        indices: (0..n).collect(),
        skipped: vec![],
        input_size: 32,
    };
    let mut full = Trainer::new(model.clone(), recipe(Precision::F32), &dev).unwrap();
    let mut mixed = Trainer::new(model, recipe(Precision::Bf16), &dev).unwrap();
    let l32 = full.train_step(&batch).unwrap().loss;
    let first = mixed.train_step(&batch).unwrap().loss;
    assert!(
        (l32 - first).abs() < 0.05 * l32.abs(),
        "f32 {l32} vs bf16 {first}"
    );
    let mut last = first;
    for _ in 0..7 {
        last = mixed.train_step(&batch).unwrap().loss;
    }
    assert!(last < 0.7 * first, "bf16 on CUDA: loss {first} -> {last}");
    for (name, t) in mixed.model().named_tensors() {
        assert_eq!(t.dtype(), candle_core::DType::F32, "{name}");
    }
}
