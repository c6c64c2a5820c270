//! Inference preprocessing: RGB8 of any size to a normalized CHW f32 tensor (short-side resize,
//! centre crop, ImageNet mean and std), and the separable resampler that augmentation reuses.
//!
//! The resampler is PIL's bilinear ("triangle") filter with antialiasing when shrinking, the
//! behaviour of torchvision's `Resize` on PIL images, computed in f32 without the intermediate
//! rounding to u8. Only the pixels inside the crop are computed: the crop of a resize is the
//! resize of a box, so a camera frame is resampled straight into the crop window.

use crate::error::CandleContext;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB, on a 0..1 scale), as torchvision and timm use.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB, on a 0..1 scale).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How a frame becomes the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Side of the square model input in pixels (the centre crop).
    pub input_size: usize,
    /// The short side is resized to this many pixels before the crop (>= `input_size`).
    pub resize_short_px: usize,
    /// Channel means subtracted after scaling to 0..1 (RGB).
    pub mean: [f32; 3],
    /// Channel standard deviations divided by after the mean (RGB).
    pub std: [f32; 3],
}

impl PreprocessConfig {
    /// The ImageNet evaluation recipe: short side to `input_size * 256 / 224` (rounded down, as
    /// 224 -> 256, 160 -> 182, 112 -> 128), centre crop `input_size`, ImageNet mean and std.
    pub fn imagenet(input_size: usize) -> Self {
        Self {
            input_size,
            resize_short_px: input_size * 256 / 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Check the sizes and the std; every constructor of a [`Preprocessor`] calls this.
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 {
            return Err(Error::Config("preprocess input_size must be > 0".into()));
        }
        if self.resize_short_px < self.input_size {
            return Err(Error::Config(format!(
                "preprocess resize_short_px {} must be >= input_size {}",
                self.resize_short_px, self.input_size
            )));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::Config(format!(
                "preprocess mean {:?} must be finite and std {:?} finite and > 0",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// Number of f32 values of one preprocessed image (3 x size x size).
    pub fn output_len(&self) -> usize {
        3 * self.input_size * self.input_size
    }
}

/// A rectangle of the source image in pixel units (may be fractional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width (> 0).
    pub width: f64,
    /// Height (> 0).
    pub height: f64,
}

/// Filter taps of one axis: for output index i, source indices `starts[i]..starts[i]+lens[i]`
/// with weights `weights[i*stride..]`.
#[derive(Debug, Clone)]
struct AxisWeights {
    starts: Vec<usize>,
    lens: Vec<usize>,
    stride: usize,
    weights: Vec<f32>,
}

impl AxisWeights {
    /// PIL's `precompute_coeffs` for the bilinear filter: resample `box_len` source pixels from
    /// `box_start` onto `out_len` outputs; the filter widens by the scale when shrinking.
    fn new(in_len: usize, box_start: f64, box_len: f64, out_len: usize) -> Self {
        let scale = box_len / out_len as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale; // bilinear support 1.0, widened
        let stride = (support.ceil() as usize) * 2 + 1;
        let mut starts = Vec::with_capacity(out_len);
        let mut lens = Vec::with_capacity(out_len);
        let mut weights = vec![0.0f32; out_len * stride];
        for i in 0..out_len {
            let center = box_start + (i as f64 + 0.5) * scale;
            let lo =
                ((center - support + 0.5).floor().max(0.0) as usize).min(in_len.saturating_sub(1));
            let hi = ((center + support + 0.5).floor().max(0.0) as usize)
                .min(in_len)
                .max(lo + 1);
            let len = (hi - lo).min(stride);
            let w = &mut weights[i * stride..i * stride + len];
            let mut sum = 0.0f64;
            for (k, wk) in w.iter_mut().enumerate() {
                let x = ((lo + k) as f64 - center + 0.5) / filter_scale;
                let t = (1.0 - x.abs()).max(0.0);
                *wk = t as f32;
                sum += t;
            }
            if sum > 0.0 {
                let inv = (1.0 / sum) as f32;
                w.iter_mut().for_each(|wk| *wk *= inv);
            } else {
                // A box outside the image: take the nearest edge pixel.
                w[0] = 1.0;
            }
            starts.push(lo);
            lens.push(len);
        }
        Self {
            starts,
            lens,
            stride,
            weights,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        let s = i * self.stride;
        (self.starts[i], &self.weights[s..s + self.lens[i]])
    }

    /// Source rows touched by any output (first, one past last).
    fn span(&self) -> (usize, usize) {
        let first = self.starts.iter().copied().min().unwrap_or(0);
        let last = self
            .starts
            .iter()
            .zip(&self.lens)
            .map(|(s, l)| s + l)
            .max()
            .unwrap_or(0);
        (first, last)
    }
}

/// A precomputed separable resampling of a fixed source size onto a fixed output size.
#[derive(Debug, Clone)]
struct ResizePlan {
    src_w: usize,
    src_h: usize,
    out_w: usize,
    out_h: usize,
    xw: AxisWeights,
    yw: AxisWeights,
}

impl ResizePlan {
    fn new(src_w: usize, src_h: usize, region: Region, out_w: usize, out_h: usize) -> Self {
        Self {
            src_w,
            src_h,
            out_w,
            out_h,
            xw: AxisWeights::new(src_w, region.x, region.width, out_w),
            yw: AxisWeights::new(src_h, region.y, region.height, out_h),
        }
    }

    /// Resample `src` (tight RGB8) and hand each output row (interleaved RGB f32, 0..255) to `emit`.
    /// `tmp` and `row` are reused between calls so a steady stream of frames allocates nothing.
    fn run(
        &self,
        src: &[u8],
        tmp: &mut Vec<f32>,
        row: &mut Vec<f32>,
        mut emit: impl FnMut(usize, &[f32]),
    ) {
        let (r0, r1) = self.yw.span();
        let line = self.out_w * 3;
        tmp.clear();
        tmp.resize((r1 - r0) * line, 0.0);
        // Horizontal pass, only over the source rows the vertical filter reads.
        for r in r0..r1 {
            let srow = &src[r * self.src_w * 3..(r + 1) * self.src_w * 3];
            let trow = &mut tmp[(r - r0) * line..(r - r0 + 1) * line];
            for x in 0..self.out_w {
                let (start, w) = self.xw.taps(x);
                let px = &srow[start * 3..(start + w.len()) * 3];
                let (mut a, mut b, mut c) = (0.0f32, 0.0f32, 0.0f32);
                for (k, wk) in w.iter().enumerate() {
                    a += wk * px[k * 3] as f32;
                    b += wk * px[k * 3 + 1] as f32;
                    c += wk * px[k * 3 + 2] as f32;
                }
                trow[x * 3] = a;
                trow[x * 3 + 1] = b;
                trow[x * 3 + 2] = c;
            }
        }
        // Vertical pass, a whole output row at a time so the inner loop vectorizes.
        row.clear();
        row.resize(line, 0.0);
        for y in 0..self.out_h {
            let (start, w) = self.yw.taps(y);
            row.iter_mut().for_each(|v| *v = 0.0);
            for (k, wk) in w.iter().enumerate() {
                let t = &tmp[(start + k - r0) * line..(start + k - r0 + 1) * line];
                for (o, s) in row.iter_mut().zip(t) {
                    *o += wk * s;
                }
            }
            emit(y, row);
        }
    }
}

fn check_rgb8(rgb: &[u8], width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::BadInput(format!(
            "expected an RGB8 image with width and height > 0, got {width}x{height}"
        )));
    }
    let want = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| Error::BadInput(format!("image size {width}x{height} overflows")))?;
    if rgb.len() != want {
        return Err(Error::BadInput(format!(
            "expected an RGB8 buffer of {width}x{height}x3 = {want} bytes, got {}",
            rgb.len()
        )));
    }
    Ok(())
}

/// Resample a region of a tight RGB8 image to `out_w` x `out_h` RGB8 (bilinear, antialiased when
/// shrinking). Random resized crop is this with a random region.
pub fn resize_region_rgb8(
    rgb: &[u8],
    width: usize,
    height: usize,
    region: Region,
    out_w: usize,
    out_h: usize,
) -> Result<Vec<u8>> {
    check_rgb8(rgb, width, height)?;
    if out_w == 0 || out_h == 0 || !(region.width > 0.0 && region.height > 0.0) {
        return Err(Error::BadInput(format!(
            "resize needs a non-empty region and output, got {region:?} -> {out_w}x{out_h}"
        )));
    }
    let plan = ResizePlan::new(width, height, region, out_w, out_h);
    let mut out = vec![0u8; out_w * out_h * 3];
    let (mut tmp, mut row) = (Vec::new(), Vec::new());
    plan.run(rgb, &mut tmp, &mut row, |y, r| {
        for (o, v) in out[y * out_w * 3..(y + 1) * out_w * 3].iter_mut().zip(r) {
            *o = v.round().clamp(0.0, 255.0) as u8;
        }
    });
    Ok(out)
}

/// Torchvision's `int(round(diff / 2))`, which rounds halves to even.
fn centre_offset(diff: usize) -> usize {
    let q = diff / 2;
    if diff % 2 == 0 || q % 2 == 0 {
        q
    } else {
        q + 1
    }
}

/// The resize-then-crop geometry: the source region that lands in the crop.
fn crop_region(cfg: &PreprocessConfig, width: usize, height: usize) -> Region {
    let short = width.min(height);
    let long = width.max(height);
    // torchvision: the long side is `int(size * long / short)`.
    let new_long = (cfg.resize_short_px as u128 * long as u128 / short as u128) as usize;
    let (new_w, new_h) = if width <= height {
        (cfg.resize_short_px, new_long)
    } else {
        (new_long, cfg.resize_short_px)
    };
    let left = centre_offset(new_w - cfg.input_size);
    let top = centre_offset(new_h - cfg.input_size);
    let sx = width as f64 / new_w as f64;
    let sy = height as f64 / new_h as f64;
    Region {
        x: left as f64 * sx,
        y: top as f64 * sy,
        width: cfg.input_size as f64 * sx,
        height: cfg.input_size as f64 * sy,
    }
}

/// Reusable inference preprocessor. It caches the filter taps for the last frame size, so a
/// camera stream of one resolution costs one resampling pass per frame and no allocation.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    cfg: PreprocessConfig,
    plan: Option<ResizePlan>,
    tmp: Vec<f32>,
    row: Vec<f32>,
}

impl Preprocessor {
    /// A preprocessor for `cfg` (validated).
    pub fn new(cfg: PreprocessConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            plan: None,
            tmp: Vec::new(),
            row: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PreprocessConfig {
        &self.cfg
    }

    /// Preprocess a tight RGB8 image (`width * height * 3` bytes, row-major) into `out`
    /// (`3 * S * S` f32, CHW, normalized).
    pub fn process_into(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<()> {
        check_rgb8(rgb, width, height)?;
        let s = self.cfg.input_size;
        if out.len() != self.cfg.output_len() {
            return Err(Error::BadInput(format!(
                "expected an output buffer of 3x{s}x{s} = {} f32, got {}",
                self.cfg.output_len(),
                out.len()
            )));
        }
        let fresh = !matches!(&self.plan, Some(p) if p.src_w == width && p.src_h == height);
        if fresh {
            let region = crop_region(&self.cfg, width, height);
            self.plan = Some(ResizePlan::new(width, height, region, s, s));
        }
        let Some(plan) = self.plan.as_ref() else {
            return Err(Error::BadInput("internal: no resize plan".into()));
        };
        let mut scale = [0.0f32; 3];
        let mut bias = [0.0f32; 3];
        for c in 0..3 {
            scale[c] = 1.0 / (255.0 * self.cfg.std[c]);
            bias[c] = -self.cfg.mean[c] / self.cfg.std[c];
        }
        let plane = s * s;
        plan.run(rgb, &mut self.tmp, &mut self.row, |y, r| {
            for c in 0..3 {
                let dst = &mut out[c * plane + y * s..c * plane + (y + 1) * s];
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = r[x * 3 + c] * scale[c] + bias[c];
                }
            }
        });
        Ok(())
    }

    /// Preprocess into a new vector of `3 * S * S` f32 (CHW).
    pub fn process(&mut self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.cfg.output_len()];
        self.process_into(rgb, width, height, &mut out)?;
        Ok(out)
    }
}

/// One-shot [`Preprocessor::process`].
pub fn preprocess_rgb8(
    rgb: &[u8],
    width: usize,
    height: usize,
    cfg: &PreprocessConfig,
) -> Result<Vec<f32>> {
    Preprocessor::new(*cfg)?.process(rgb, width, height)
}

/// Normalize an RGB8 image that already has the model's size (S x S) into CHW f32, as the
/// training pipeline does after augmentation (no resampling).
pub fn normalize_rgb8_into(
    rgb: &[u8],
    size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    out: &mut [f32],
) -> Result<()> {
    check_rgb8(rgb, size, size)?;
    if out.len() != 3 * size * size {
        return Err(Error::BadInput(format!(
            "expected an output buffer of 3x{size}x{size} f32, got {}",
            out.len()
        )));
    }
    let plane = size * size;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * std[c]);
        let bias = -mean[c] / std[c];
        for (i, d) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
            *d = rgb[i * 3 + c] as f32 * scale + bias;
        }
    }
    Ok(())
}

/// Wrap `n` preprocessed images (`n * 3 * S * S` f32) as a `[n, 3, S, S]` tensor.
pub fn chw_to_tensor(
    chw: Vec<f32>,
    size: usize,
    device: &candle_core::Device,
) -> Result<candle_core::Tensor> {
    let per = 3 * size * size;
    if per == 0 || chw.len() % per != 0 {
        return Err(Error::BadInput(format!(
            "expected a multiple of 3x{size}x{size} f32, got {}",
            chw.len()
        )));
    }
    let n = chw.len() / per;
    candle_core::Tensor::from_vec(chw, (n, 3, size, size), device).ctx("building the image tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: usize, h: usize, px: [u8; 3]) -> Vec<u8> {
        px.iter().copied().cycle().take(w * h * 3).collect()
    }

    #[test]
    fn imagenet_resize_sizes() {
        assert_eq!(PreprocessConfig::imagenet(224).resize_short_px, 256);
        assert_eq!(PreprocessConfig::imagenet(160).resize_short_px, 182);
        assert_eq!(PreprocessConfig::imagenet(112).resize_short_px, 128);
    }

    #[test]
    fn solid_colour_normalizes_to_known_values() {
        let cfg = PreprocessConfig::imagenet(8);
        let out = preprocess_rgb8(&solid(13, 7, [255, 0, 128]), 13, 7, &cfg).unwrap();
        assert_eq!(out.len(), 3 * 64);
        let want = [
            (1.0 - 0.485) / 0.229,
            (0.0 - 0.456) / 0.224,
            (128.0 / 255.0 - 0.406) / 0.225,
        ];
        for c in 0..3 {
            for v in &out[c * 64..(c + 1) * 64] {
                assert!(
                    (v - want[c]).abs() < 1e-5,
                    "channel {c}: {v} vs {}",
                    want[c]
                );
            }
        }
    }

    #[test]
    fn crop_is_centred_on_wide_images() {
        // 30x10: left third red, middle green, right blue. Short side 10 -> 9 (S=8 with resize 9),
        // width 27; the 8-px crop lies within the green middle (9..18 after scaling).
        let (w, h) = (30, 10);
        let mut img = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let c = x / 10;
                img[(y * w + x) * 3 + c] = 255;
            }
        }
        let cfg = PreprocessConfig {
            input_size: 8,
            resize_short_px: 9,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let out = preprocess_rgb8(&img, w, h, &cfg).unwrap();
        // Green plane: all ones in the crop's interior columns.
        for y in 0..8 {
            for x in 1..7 {
                assert!((out[64 + y * 8 + x] - 1.0).abs() < 1e-5, "({x},{y})");
                assert!(out[y * 8 + x].abs() < 1e-5);
            }
        }
    }

    #[test]
    fn linear_ramp_stays_linear_when_upscaling() {
        // A horizontal ramp 0, 10, 20, ... under bilinear upscaling stays a ramp in the interior.
        let (w, h) = (16, 16);
        let img: Vec<u8> = (0..w * h).flat_map(|i| [((i % w) * 10) as u8; 3]).collect();
        let out = resize_region_rgb8(
            &img,
            w,
            h,
            Region {
                x: 0.0,
                y: 0.0,
                width: 16.0,
                height: 16.0,
            },
            32,
            32,
        )
        .unwrap();
        // Output pixel x samples source position (x + 0.5) / 2 - 0.5, value 10 * that.
        for x in 2..30 {
            let want = 10.0 * ((x as f64 + 0.5) / 2.0 - 0.5);
            let got = out[(5 * 32 + x) * 3] as f64;
            assert!((got - want).abs() <= 0.5, "x={x}: {got} vs {want}");
        }
    }

    #[test]
    fn shrinking_averages_with_antialias() {
        // A 1-px checkerboard shrunk 4x averages to mid grey (no aliasing to black or white).
        let (w, h) = (64, 64);
        let img: Vec<u8> = (0..w * h)
            .flat_map(|i| [if (i % w + i / w) % 2 == 0 { 255u8 } else { 0 }; 3])
            .collect();
        let region = Region {
            x: 0.0,
            y: 0.0,
            width: 64.0,
            height: 64.0,
        };
        let out = resize_region_rgb8(&img, w, h, region, 16, 16).unwrap();
        for v in &out[3 * 16 * 3..13 * 16 * 3] {
            assert!((*v as i32 - 128).abs() <= 2, "{v}");
        }
    }

    #[test]
    fn same_size_identity() {
        // Resizing a region of exactly the output size returns the input.
        let (w, h) = (5, 4);
        let img: Vec<u8> = (0..(w * h * 3) as u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let region = Region {
            x: 0.0,
            y: 0.0,
            width: 5.0,
            height: 4.0,
        };
        assert_eq!(resize_region_rgb8(&img, w, h, region, 5, 4).unwrap(), img);
    }

    #[test]
    fn shape_errors_name_the_expectation() {
        let cfg = PreprocessConfig::imagenet(8);
        let err = preprocess_rgb8(&[0u8; 10], 2, 2, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2x2x3 = 12 bytes, got 10"), "{err}");
        let err = preprocess_rgb8(&[], 0, 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("width and height > 0"), "{err}");
        let mut p = Preprocessor::new(cfg).unwrap();
        let mut small = vec![0.0f32; 5];
        let err = p
            .process_into(&[0u8; 12], 2, 2, &mut small)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3x8x8 = 192 f32, got 5"), "{err}");
        assert!(Preprocessor::new(PreprocessConfig {
            resize_short_px: 4,
            ..cfg
        })
        .is_err());
    }

    #[test]
    fn cached_plan_follows_frame_size() {
        // The same preprocessor handles a size change and gives the one-shot result each time.
        let cfg = PreprocessConfig::imagenet(8);
        let mut p = Preprocessor::new(cfg).unwrap();
        let a: Vec<u8> = (0..20 * 12 * 3).map(|i| (i % 256) as u8).collect();
        let b: Vec<u8> = (0..9 * 15 * 3).map(|i| (i * 3 % 256) as u8).collect();
        for _ in 0..2 {
            assert_eq!(
                p.process(&a, 20, 12).unwrap(),
                preprocess_rgb8(&a, 20, 12, &cfg).unwrap()
            );
            assert_eq!(
                p.process(&b, 9, 15).unwrap(),
                preprocess_rgb8(&b, 9, 15, &cfg).unwrap()
            );
        }
    }

    #[test]
    fn centre_offset_rounds_half_to_even() {
        assert_eq!(centre_offset(0), 0);
        assert_eq!(centre_offset(1), 0); // round(0.5) = 0
        assert_eq!(centre_offset(3), 2); // round(1.5) = 2
        assert_eq!(centre_offset(5), 2); // round(2.5) = 2
        assert_eq!(centre_offset(32), 16);
    }

    #[test]
    fn tensor_shape() {
        let t = chw_to_tensor(vec![0.0; 2 * 3 * 4 * 4], 4, &candle_core::Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 4, 4]);
        assert!(chw_to_tensor(vec![0.0; 7], 4, &candle_core::Device::Cpu).is_err());
    }
}
