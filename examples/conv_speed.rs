//! Quick look: the engine's GEMM conv vs candle's conv2d on ResNet layer shapes (median of 20).
use candle_core::{Device, Tensor};
use hlfp::kernels::cpu_conv::{ConvSpec, GemmConv, Scratch};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let threads = 2;
    let shapes = [
        (
            "1x1 256->64 @56",
            ConvSpec {
                in_c: 256,
                out_c: 64,
                kernel: 1,
                stride: 1,
                pad: 0,
                groups: 1,
            },
            56,
        ),
        (
            "3x3 64->64 @56",
            ConvSpec {
                in_c: 64,
                out_c: 64,
                kernel: 3,
                stride: 1,
                pad: 1,
                groups: 1,
            },
            56,
        ),
        (
            "7x7/2 3->64 @224",
            ConvSpec {
                in_c: 3,
                out_c: 64,
                kernel: 7,
                stride: 2,
                pad: 3,
                groups: 1,
            },
            224,
        ),
        (
            "3x3/2 g10 1280->1280 @28",
            ConvSpec {
                in_c: 1280,
                out_c: 1280,
                kernel: 3,
                stride: 2,
                pad: 1,
                groups: 10,
            },
            28,
        ),
    ];
    for (name, s, hw) in shapes {
        let kg = s.k_per_group();
        let x: Vec<f32> = (0..s.in_c * hw * hw)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let w: Vec<f32> = (0..s.out_c * kg)
            .map(|i| ((i * 104729) % 1000) as f32 / 1e5)
            .collect();
        let conv = GemmConv::new(s, w.clone(), vec![0.0; s.out_c]).unwrap();
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        let mut ours = vec![];
        for _ in 0..20 {
            let t = Instant::now();
            conv.forward_into(&x, hw, hw, None, true, threads, &mut scratch, &mut out)
                .unwrap();
            ours.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let xt = Tensor::from_vec(x, (1, s.in_c, hw, hw), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(
            w,
            (s.out_c, s.in_c / s.groups, s.kernel, s.kernel),
            &Device::Cpu,
        )
        .unwrap();
        let mut theirs = vec![];
        for _ in 0..20 {
            let t = Instant::now();
            let _ = xt
                .conv2d(&wt, s.pad, s.stride, 1, s.groups)
                .unwrap()
                .relu()
                .unwrap();
            theirs.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (ho, wo) = s.out_hw(hw, hw);
        let gflop = 2.0 * (s.out_c * kg * ho * wo) as f64 / 1e9;
        let (o, c) = (median(ours), median(theirs));
        println!("{name:28} ours {o:7.2} ms ({:6.1} GFLOPS)  candle conv2d {c:7.2} ms ({:6.1} GFLOPS)  ratio {:.2}", gflop / o * 1e3, gflop / c * 1e3, o / c);
    }
}
