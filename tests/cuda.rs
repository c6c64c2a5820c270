//! The CUDA path: the inference convolution (one im2col launch + one batched GEMM for all
//! groups) against the CPU's im2col convolution, and CUDA-graph replay against eager passes.
//! Built only with `--features cuda`; each test skips, saying so, where no GPU is present (CI
//! has none).
#![cfg(feature = "cuda")]

use candle_core::{Device, Tensor};
use hlfp::model::cuda_conv::conv_cuda;
use hlfp::model::im2col::conv_im2col;

fn gpu() -> Option<Device> {
    match hlfp::gpu::cuda_device(0, true) {
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

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
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
        let d = max_abs(&got, &want);
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
    use hlfp::gpu::GraphForward;
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
            let d = max_abs(
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
    let plain = hlfp::gpu::cuda_device(0, false).unwrap();
    let x = tensor(&[1, 4], 0).to_device(&plain).unwrap();
    let r = hlfp::gpu::GraphForward::capture(&x, |t| Ok(t.clone()));
    assert!(r.is_err());
}
