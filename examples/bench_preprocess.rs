//! Measures inference preprocessing per camera frame: ours (cached taps, crop-only resampling,
//! no allocation) against the plain route (image crate's triangle resize of the whole frame,
//! crop, normalize), both antialiased bilinear. Prints ms per frame and the ratio.
//!
//! `cargo run --release --example bench_preprocess`

use hlfp::vision::preprocess::{PreprocessConfig, Preprocessor};
use image::{imageops, Rgb, RgbImage};
use std::time::Instant;

fn frame(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 3 + y) as u8, (x ^ y) as u8, (y * 5) as u8])
    })
}

fn plain(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let short = w.min(h) as u64;
    let r = cfg.resize_short_px as u64;
    let (nw, nh) = if w <= h {
        (r as u32, (r * h as u64 / short) as u32)
    } else {
        ((r * w as u64 / short) as u32, r as u32)
    };
    let resized = imageops::resize(img, nw, nh, imageops::FilterType::Triangle);
    let s = cfg.input_size as u32;
    let crop = imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image();
    let plane = (s * s) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, p) in crop.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (p.0[c] as f32 / 255.0 - cfg.mean[c]) / cfg.std[c];
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    println!("frame       input  ours ms  plain ms  plain/ours");
    for (w, h) in [(640u32, 480u32), (1280, 720), (160, 160)] {
        for size in [224usize, 160, 112] {
            let img = frame(w, h);
            let cfg = PreprocessConfig::imagenet(size);
            let mut pre = Preprocessor::new(cfg)?;
            let mut out = vec![0.0f32; cfg.output_len()];
            let iters = (4_000_000 / (w * h) as usize).clamp(20, 400);
            pre.process_into(img.as_raw(), w as usize, h as usize, &mut out)?; // warm-up
            let t = Instant::now();
            for _ in 0..iters {
                pre.process_into(img.as_raw(), w as usize, h as usize, &mut out)?;
            }
            let ours = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
            let mut sink = 0.0f32;
            let t = Instant::now();
            for _ in 0..iters {
                sink += plain(&img, &cfg)[0];
            }
            let theirs = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
            std::hint::black_box(sink);
            println!(
                "{:>4}x{:<5} {:>5}  {:>7.3}  {:>8.3}  {:>9.1}x",
                w,
                h,
                size,
                ours,
                theirs,
                theirs / ours
            );
        }
    }
    Ok(())
}
