//! Training augmentation with a seeded RNG: random resized crop, horizontal flip, colour jitter
//! and RandAugment, following torchvision's and timm's definitions (timm's `rand-m9-mstd0.5-inc1`
//! recipe is the default), then ImageNet normalization.
//!
//! Every random draw comes from the caller's RNG, so one seed gives the same bytes on any thread.
//! [`sample_rng`] derives an independent stream per (seed, epoch, sample) for the data loader.

use crate::vision::preprocess::{
    normalize_rgb8_into, resize_region_rgb8, Region, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::{Error, Result};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// timm's fill colour for geometric ops: the ImageNet mean in 0..255.
pub const IMAGENET_FILL: [u8; 3] = [124, 116, 104];

/// Colour jitter strengths (torchvision `ColorJitter`): each factor is drawn from
/// `[max(0, 1 - s), 1 + s]`; 0 disables that adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColorJitterConfig {
    /// Brightness strength.
    pub brightness: f32,
    /// Contrast strength.
    pub contrast: f32,
    /// Saturation strength.
    pub saturation: f32,
}

/// RandAugment settings, as timm's `rand-m{magnitude}-n{num_ops}-mstd{magnitude_std}-inc1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RandAugmentConfig {
    /// Ops drawn (with replacement) per image.
    pub num_ops: usize,
    /// Magnitude on timm's 0..10 scale.
    pub magnitude: f32,
    /// Std of the Gaussian noise added to the magnitude per op (0 = fixed magnitude).
    pub magnitude_std: f32,
    /// Probability that a drawn op is applied (timm: 0.5).
    pub op_prob: f64,
    /// Fill colour for pixels that geometric ops uncover.
    pub fill: [u8; 3],
}

impl Default for RandAugmentConfig {
    fn default() -> Self {
        Self {
            num_ops: 2,
            magnitude: 9.0,
            magnitude_std: 0.5,
            op_prob: 0.5,
            fill: IMAGENET_FILL,
        }
    }
}

/// The whole training transform.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Output side in pixels.
    pub input_size: usize,
    /// Random resized crop: range of the crop's area as a fraction of the image.
    pub scale: (f64, f64),
    /// Random resized crop: range of the crop's aspect ratio (w / h).
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub hflip_prob: f64,
    /// Colour jitter, applied before RandAugment when set.
    pub color_jitter: Option<ColorJitterConfig>,
    /// RandAugment, when set.
    pub rand_augment: Option<RandAugmentConfig>,
    /// Normalization mean (RGB, 0..1).
    pub mean: [f32; 3],
    /// Normalization std (RGB, 0..1).
    pub std: [f32; 3],
}

impl AugmentConfig {
    /// timm's ImageNet training recipe as the paper used it: random resized crop (0.08-1,
    /// 3/4-4/3), flip 0.5, RandAugment m9 n2 mstd0.5; timm turns colour jitter off when
    /// RandAugment is on, so it is off here too.
    pub fn imagenet(input_size: usize) -> Self {
        Self {
            input_size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            hflip_prob: 0.5,
            color_jitter: None,
            rand_augment: Some(RandAugmentConfig::default()),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Check the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.input_size == 0 {
            return bad("augment input_size must be > 0".into());
        }
        if !(self.scale.0 > 0.0 && self.scale.0 <= self.scale.1 && self.scale.1 <= 1.0) {
            return bad(format!(
                "augment scale {:?} must satisfy 0 < lo <= hi <= 1",
                self.scale
            ));
        }
        if !(self.ratio.0 > 0.0 && self.ratio.0 <= self.ratio.1 && self.ratio.1.is_finite()) {
            return bad(format!(
                "augment ratio {:?} must satisfy 0 < lo <= hi",
                self.ratio
            ));
        }
        if !(0.0..=1.0).contains(&self.hflip_prob) {
            return bad(format!(
                "augment hflip_prob {} must be in [0, 1]",
                self.hflip_prob
            ));
        }
        if let Some(ra) = &self.rand_augment {
            if !(0.0..=1.0).contains(&ra.op_prob)
                || !ra.magnitude.is_finite()
                || ra.magnitude_std.is_nan()
                || ra.magnitude_std < 0.0
            {
                return bad(format!("bad RandAugment settings {ra:?}"));
            }
        }
        if let Some(cj) = &self.color_jitter {
            if [cj.brightness, cj.contrast, cj.saturation]
                .iter()
                .any(|s| s.is_nan() || *s < 0.0)
            {
                return bad(format!("colour jitter strengths must be >= 0, got {cj:?}"));
            }
        }
        if self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return bad(format!("augment std {:?} must be > 0", self.std));
        }
        Ok(())
    }
}

/// An independent RNG for one sample of one epoch, so augmentation does not depend on which
/// worker thread handles the sample or in which order.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    rng
}

fn luma(p: &[u8]) -> u8 {
    // PIL's "L" conversion (ITU-R 601-2), in its fixed point.
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

fn blend_px(degenerate: f32, v: u8, factor: f32) -> u8 {
    (degenerate + factor * (v as f32 - degenerate))
        .round()
        .clamp(0.0, 255.0) as u8
}

/// Horizontal mirror image.
pub fn hflip(img: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(img)
}

/// Brightness: blend with black (`factor` 0 = black, 1 = unchanged).
pub fn adjust_brightness(img: &mut RgbImage, factor: f32) {
    for v in img.iter_mut() {
        *v = blend_px(0.0, *v, factor);
    }
}

/// Contrast: blend with the mean grey level (PIL `ImageEnhance.Contrast`).
pub fn adjust_contrast(img: &mut RgbImage, factor: f32) {
    let n = (img.width() * img.height()).max(1) as f64;
    let sum: f64 = img.as_raw().chunks_exact(3).map(|p| luma(p) as f64).sum();
    let mean = (sum / n + 0.5).floor() as f32;
    for v in img.iter_mut() {
        *v = blend_px(mean, *v, factor);
    }
}

/// Saturation ("color"): blend with the pixel's grey level (0 = greyscale, 1 = unchanged).
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    for p in img.chunks_exact_mut(3) {
        let g = luma(p) as f32;
        for v in p.iter_mut() {
            *v = blend_px(g, *v, factor);
        }
    }
}

/// Sharpness: blend with PIL's 3x3 SMOOTH filter (border pixels kept), 0 = smooth, 1 = unchanged.
pub fn adjust_sharpness(img: &mut RgbImage, factor: f32) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return;
    }
    let src = img.as_raw().clone();
    let out: &mut [u8] = img;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut acc = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dy == 1 && dx == 1 { 5 } else { 1 };
                        acc += k * src[((y + dy - 1) * w + x + dx - 1) * 3 + c] as u32;
                    }
                }
                let smooth = ((acc as f32) / 13.0).round();
                let i = (y * w + x) * 3 + c;
                out[i] = blend_px(smooth, src[i], factor);
            }
        }
    }
}

/// Invert every value >= `threshold` (256 = no change).
pub fn solarize(img: &mut RgbImage, threshold: u32) {
    for v in img.iter_mut() {
        if *v as u32 >= threshold {
            *v = 255 - *v;
        }
    }
}

/// Keep the top `bits` bits of every value (>= 8 = no change, 0 = black).
pub fn posterize(img: &mut RgbImage, bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = !((1u16 << (8 - bits)) - 1) as u8;
    for v in img.iter_mut() {
        *v &= mask;
    }
}

fn apply_luts(img: &mut RgbImage, luts: &[[u8; 256]; 3]) {
    for p in img.chunks_exact_mut(3) {
        for c in 0..3 {
            p[c] = luts[c][p[c] as usize];
        }
    }
}

fn histograms(img: &RgbImage) -> [[u32; 256]; 3] {
    let mut h = [[0u32; 256]; 3];
    for p in img.as_raw().chunks_exact(3) {
        for c in 0..3 {
            h[c][p[c] as usize] += 1;
        }
    }
    h
}

/// Stretch each channel so its darkest value becomes 0 and its brightest 255 (PIL, cutoff 0).
pub fn autocontrast(img: &mut RgbImage) {
    let hist = histograms(img);
    let mut luts = [[0u8; 256]; 3];
    for c in 0..3 {
        let lo = hist[c].iter().position(|&n| n > 0).unwrap_or(0);
        let hi = hist[c].iter().rposition(|&n| n > 0).unwrap_or(255);
        for (i, l) in luts[c].iter_mut().enumerate() {
            *l = if hi <= lo {
                i as u8
            } else {
                // Integer arithmetic so the brightest value maps to exactly 255.
                ((i.saturating_sub(lo) * 255) / (hi - lo)).min(255) as u8
            };
        }
    }
    apply_luts(img, &luts);
}

/// Histogram equalization per channel (PIL `ImageOps.equalize`).
pub fn equalize(img: &mut RgbImage) {
    let hist = histograms(img);
    let mut luts = [[0u8; 256]; 3];
    for c in 0..3 {
        let h = &hist[c];
        let nonzero: Vec<u32> = h.iter().copied().filter(|&n| n > 0).collect();
        let identity = |l: &mut [u8; 256]| l.iter_mut().enumerate().for_each(|(i, v)| *v = i as u8);
        if nonzero.len() <= 1 {
            identity(&mut luts[c]);
            continue;
        }
        let total: u32 = nonzero.iter().sum();
        let step = (total - nonzero[nonzero.len() - 1]) / 256;
        if step == 0 {
            identity(&mut luts[c]);
            continue;
        }
        let mut n = step / 2;
        for i in 0..256 {
            luts[c][i] = (n / step).min(255) as u8;
            n += h[i];
        }
    }
    apply_luts(img, &luts);
}

/// Inverse affine warp: output pixel centre (x, y) samples the input at
/// `(m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5])` bilinearly; outside the image is `fill`.
pub fn affine(img: &RgbImage, m: [f64; 6], fill: [u8; 3]) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let mut out = RgbImage::new(w as u32, h as u32);
    let dst: &mut [u8] = &mut out;
    for y in 0..h {
        for x in 0..w {
            let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
            let u = m[0] * cx + m[1] * cy + m[2];
            let v = m[3] * cx + m[4] * cy + m[5];
            let o = (y * w + x) * 3;
            if !(u >= 0.0 && u <= w as f64 && v >= 0.0 && v <= h as f64) {
                dst[o..o + 3].copy_from_slice(&fill);
                continue;
            }
            let (px, py) = (u - 0.5, v - 0.5);
            let (x0f, y0f) = (px.floor(), py.floor());
            let (fx, fy) = (px - x0f, py - y0f);
            let clampx = |i: f64| (i.max(0.0) as usize).min(w - 1);
            let clampy = |i: f64| (i.max(0.0) as usize).min(h - 1);
            let (x0, x1, y0, y1) = (
                clampx(x0f),
                clampx(x0f + 1.0),
                clampy(y0f),
                clampy(y0f + 1.0),
            );
            for c in 0..3 {
                let p = |xx: usize, yy: usize| src[(yy * w + xx) * 3 + c] as f64;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                dst[o + c] = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Rotate counter-clockwise (as displayed) by `degrees` about the centre.
pub fn rotate(img: &RgbImage, degrees: f64, fill: [u8; 3]) -> RgbImage {
    let (cx, cy) = (img.width() as f64 / 2.0, img.height() as f64 / 2.0);
    let (s, c) = degrees.to_radians().sin_cos();
    // Output offset (dx, dy) from the centre reads the input at R(theta)^-1 applied to it.
    affine(
        img,
        [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy],
        fill,
    )
}

/// Shear along x: output (x, y) reads input (x + factor * y, y) (PIL/timm `shear_x`).
pub fn shear_x(img: &RgbImage, factor: f64, fill: [u8; 3]) -> RgbImage {
    affine(img, [1.0, factor, 0.0, 0.0, 1.0, 0.0], fill)
}

/// Shear along y: output (x, y) reads input (x, y + factor * x).
pub fn shear_y(img: &RgbImage, factor: f64, fill: [u8; 3]) -> RgbImage {
    affine(img, [1.0, 0.0, 0.0, factor, 1.0, 0.0], fill)
}

/// Translate: output (x, y) reads input (x + pixels, y), so content moves left for pixels > 0.
pub fn translate_x(img: &RgbImage, pixels: f64, fill: [u8; 3]) -> RgbImage {
    affine(img, [1.0, 0.0, pixels, 0.0, 1.0, 0.0], fill)
}

/// Translate: output (x, y) reads input (x, y + pixels).
pub fn translate_y(img: &RgbImage, pixels: f64, fill: [u8; 3]) -> RgbImage {
    affine(img, [1.0, 0.0, 0.0, 0.0, 1.0, pixels], fill)
}

/// RandAugment's op list (the RandAugment paper's and torchvision's; timm's "inc" variants,
/// where a larger magnitude is always a stronger change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RandAugmentOp {
    /// No change.
    Identity,
    /// [`autocontrast`].
    AutoContrast,
    /// [`equalize`].
    Equalize,
    /// [`rotate`] by up to 30 degrees.
    Rotate,
    /// [`solarize`] with threshold 256 - 256 * level.
    Solarize,
    /// Saturation factor 1 +- 0.9 * level.
    Color,
    /// [`posterize`] to 4 - 4 * level bits.
    Posterize,
    /// Contrast factor 1 +- 0.9 * level.
    Contrast,
    /// Brightness factor 1 +- 0.9 * level.
    Brightness,
    /// Sharpness factor 1 +- 0.9 * level.
    Sharpness,
    /// Shear x by up to 0.3.
    ShearX,
    /// Shear y by up to 0.3.
    ShearY,
    /// Translate x by up to 45 % of the width.
    TranslateX,
    /// Translate y by up to 45 % of the height.
    TranslateY,
}

impl RandAugmentOp {
    /// The ops RandAugment draws from.
    pub const ALL: [RandAugmentOp; 14] = [
        RandAugmentOp::Identity,
        RandAugmentOp::AutoContrast,
        RandAugmentOp::Equalize,
        RandAugmentOp::Rotate,
        RandAugmentOp::Solarize,
        RandAugmentOp::Color,
        RandAugmentOp::Posterize,
        RandAugmentOp::Contrast,
        RandAugmentOp::Brightness,
        RandAugmentOp::Sharpness,
        RandAugmentOp::ShearX,
        RandAugmentOp::ShearY,
        RandAugmentOp::TranslateX,
        RandAugmentOp::TranslateY,
    ];

    /// Apply with `level` in 0..1 (magnitude / 10); `negate` flips the direction of signed ops.
    pub fn apply(self, img: RgbImage, level: f64, negate: bool, fill: [u8; 3]) -> RgbImage {
        let level = level.clamp(0.0, 1.0);
        let sign = if negate { -1.0 } else { 1.0 };
        let factor = (1.0 + sign * 0.9 * level) as f32;
        let mut img = img;
        match self {
            RandAugmentOp::Identity => {}
            RandAugmentOp::AutoContrast => autocontrast(&mut img),
            RandAugmentOp::Equalize => equalize(&mut img),
            RandAugmentOp::Rotate => img = rotate(&img, sign * 30.0 * level, fill),
            RandAugmentOp::Solarize => solarize(&mut img, 256 - (level * 256.0) as u32),
            RandAugmentOp::Color => adjust_saturation(&mut img, factor),
            RandAugmentOp::Posterize => posterize(&mut img, 4 - (level * 4.0) as u32),
            RandAugmentOp::Contrast => adjust_contrast(&mut img, factor),
            RandAugmentOp::Brightness => adjust_brightness(&mut img, factor),
            RandAugmentOp::Sharpness => adjust_sharpness(&mut img, factor),
            RandAugmentOp::ShearX => img = shear_x(&img, sign * 0.3 * level, fill),
            RandAugmentOp::ShearY => img = shear_y(&img, sign * 0.3 * level, fill),
            RandAugmentOp::TranslateX => {
                let px = sign * 0.45 * level * img.width() as f64;
                img = translate_x(&img, px, fill)
            }
            RandAugmentOp::TranslateY => {
                let px = sign * 0.45 * level * img.height() as f64;
                img = translate_y(&img, px, fill)
            }
        }
        img
    }
}

/// A standard normal draw (Box-Muller), so the magnitude noise needs no extra crate.
fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// RandAugment: draw `num_ops` ops with replacement; each is applied with `op_prob`, at a
/// magnitude drawn from N(magnitude, magnitude_std) clipped to 0..10, in a random direction.
pub fn rand_augment<R: Rng + ?Sized>(
    img: RgbImage,
    cfg: &RandAugmentConfig,
    rng: &mut R,
) -> RgbImage {
    let mut img = img;
    for _ in 0..cfg.num_ops {
        let op = RandAugmentOp::ALL[rng.random_range(0..RandAugmentOp::ALL.len())];
        if rng.random::<f64>() >= cfg.op_prob {
            continue;
        }
        let mut m = cfg.magnitude as f64;
        if cfg.magnitude_std > 0.0 {
            m += cfg.magnitude_std as f64 * gauss(rng);
        }
        let level = m.clamp(0.0, 10.0) / 10.0;
        let negate = rng.random_bool(0.5);
        img = op.apply(img, level, negate, cfg.fill);
    }
    img
}

/// torchvision's `ColorJitter` (without hue): brightness, contrast and saturation factors, in a
/// random order.
pub fn color_jitter<R: Rng + ?Sized>(img: &mut RgbImage, cfg: &ColorJitterConfig, rng: &mut R) {
    let mut order = [0usize, 1, 2];
    rand::seq::SliceRandom::shuffle(&mut order[..], rng);
    let draw = |s: f32, rng: &mut R| {
        if s > 0.0 {
            Some(rng.random_range((1.0 - s).max(0.0)..=1.0 + s))
        } else {
            None
        }
    };
    let factors = [
        draw(cfg.brightness, rng),
        draw(cfg.contrast, rng),
        draw(cfg.saturation, rng),
    ];
    for i in order {
        match (i, factors[i]) {
            (0, Some(f)) => adjust_brightness(img, f),
            (1, Some(f)) => adjust_contrast(img, f),
            (2, Some(f)) => adjust_saturation(img, f),
            _ => {}
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries at a random area and log-uniform
/// aspect ratio, then a centre crop with the ratio clamped into range.
pub fn random_resized_crop_region<R: Rng + ?Sized>(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut R,
) -> Region {
    let (wf, hf) = (width as f64, height as f64);
    let area = wf * hf;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            let i = rng.random_range(0..=height - h);
            let j = rng.random_range(0..=width - w);
            return Region {
                x: j as f64,
                y: i as f64,
                width: w as f64,
                height: h as f64,
            };
        }
    }
    let in_ratio = wf / hf;
    let (w, h) = if in_ratio < ratio.0 {
        (width, ((wf / ratio.0).round() as usize).clamp(1, height))
    } else if in_ratio > ratio.1 {
        (((hf * ratio.1).round() as usize).clamp(1, width), height)
    } else {
        (width, height)
    };
    Region {
        x: ((width - w) / 2) as f64,
        y: ((height - h) / 2) as f64,
        width: w as f64,
        height: h as f64,
    }
}

/// Random resized crop to `size` x `size`.
pub fn random_resized_crop<R: Rng + ?Sized>(
    img: &RgbImage,
    size: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut R,
) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let region = random_resized_crop_region(w, h, scale, ratio, rng);
    let data = resize_region_rgb8(img.as_raw(), w, h, region, size, size)?;
    RgbImage::from_raw(size as u32, size as u32, data)
        .ok_or_else(|| Error::BadInput("internal: crop buffer size".into()))
}

/// The training transform of an [`AugmentConfig`].
#[derive(Debug, Clone)]
pub struct Augmenter {
    cfg: AugmentConfig,
}

impl Augmenter {
    /// A validated augmenter.
    pub fn new(cfg: AugmentConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &AugmentConfig {
        &self.cfg
    }

    /// Crop, flip, jitter and RandAugment `img` into a `size` x `size` RGB8 image.
    pub fn augment<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> Result<RgbImage> {
        if img.width() == 0 || img.height() == 0 {
            return Err(Error::BadInput("cannot augment an empty image".into()));
        }
        let c = &self.cfg;
        let mut out = random_resized_crop(img, c.input_size, c.scale, c.ratio, rng)?;
        if rng.random_bool(c.hflip_prob) {
            out = hflip(&out);
        }
        if let Some(cj) = &c.color_jitter {
            color_jitter(&mut out, cj, rng);
        }
        if let Some(ra) = &c.rand_augment {
            out = rand_augment(out, ra, rng);
        }
        Ok(out)
    }

    /// [`Augmenter::augment`], then normalize into `out` (`3 * size * size` f32, CHW).
    pub fn augment_into<R: Rng + ?Sized>(
        &self,
        img: &RgbImage,
        rng: &mut R,
        out: &mut [f32],
    ) -> Result<()> {
        let a = self.augment(img, rng)?;
        normalize_rgb8_into(
            a.as_raw(),
            self.cfg.input_size,
            self.cfg.mean,
            self.cfg.std,
            out,
        )
    }
}
