//! Each augmentation op's effect on tiny synthetic images, with values worked out by hand.

use hlfp::vision::augment::*;
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const FILL: [u8; 3] = [1, 2, 3];

fn solid(w: u32, h: u32, px: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(px))
}

/// A w x h image whose pixel (x, y) is (10x + y, 100 + y, 200 - x): every pixel distinct.
fn ramp(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(10 * x + y) as u8, (100 + y) as u8, (200 - x) as u8])
    })
}

#[test]
fn identity_is_a_no_op() {
    let img = ramp(6, 5);
    assert_eq!(
        RandAugmentOp::Identity.apply(img.clone(), 1.0, false, FILL),
        img
    );
}

#[test]
fn hflip_mirrors_columns() {
    let img = ramp(4, 3);
    let f = hflip(&img);
    for y in 0..3 {
        for x in 0..4 {
            assert_eq!(f.get_pixel(x, y), img.get_pixel(3 - x, y));
        }
    }
}

#[test]
fn autocontrast_stretches_each_channel_to_full_range() {
    // Channel 0 spans 50..150: 50 -> 0, 100 -> floor(50 * 255 / 100) = 127, 150 -> 255.
    let mut img = RgbImage::from_fn(3, 1, |x, _| Rgb([50 + 50 * x as u8, 7, 9]));
    autocontrast(&mut img);
    assert_eq!(img.get_pixel(0, 0).0[0], 0);
    assert_eq!(img.get_pixel(1, 0).0[0], 127);
    assert_eq!(img.get_pixel(2, 0).0[0], 255);
    // A constant channel is left alone.
    assert_eq!(img.get_pixel(1, 0).0[1], 7);
}

#[test]
fn equalize_spreads_a_two_level_histogram() {
    // 1024 pixels, half at 10 and half at 20: PIL's step = (1024 - 512) / 256 = 2, so 10 -> 0 and
    // 20 -> min(255, (1 + 512) / 2).
    let mut img = RgbImage::from_fn(32, 32, |x, _| Rgb([if x < 16 { 10 } else { 20 }; 3]));
    equalize(&mut img);
    assert_eq!(img.get_pixel(0, 0).0, [0; 3]);
    assert_eq!(img.get_pixel(31, 0).0, [255; 3]);
    // A tiny image (step 0) is unchanged, as in PIL.
    let mut small = RgbImage::from_fn(4, 4, |x, _| Rgb([if x < 2 { 10 } else { 20 }; 3]));
    let before = small.clone();
    equalize(&mut small);
    assert_eq!(small, before);
}

#[test]
fn rotate_quarter_turn_moves_top_to_left() {
    // Pixel (2, 0) of a 4x4 image turns counter-clockwise to (0, 1); four turns restore it.
    let mut img = solid(4, 4, [0; 3]);
    img.put_pixel(2, 0, Rgb([255; 3]));
    let r = rotate(&img, 90.0, FILL);
    assert_eq!(r.get_pixel(0, 1).0, [255; 3]);
    assert_eq!(r.get_pixel(2, 0).0, [0; 3]);
    let back = rotate(&rotate(&rotate(&r, 90.0, FILL), 90.0, FILL), 90.0, FILL);
    assert_eq!(back, img);
    // The op at level 1 is a 30 degree turn, negated when asked.
    let p = ramp(9, 9);
    assert_eq!(
        RandAugmentOp::Rotate.apply(p.clone(), 1.0, false, FILL),
        rotate(&p, 30.0, FILL)
    );
    assert_eq!(
        RandAugmentOp::Rotate.apply(p.clone(), 1.0, true, FILL),
        rotate(&p, -30.0, FILL)
    );
    // A 30 degree turn uncovers corners, which get the fill colour.
    assert_eq!(rotate(&p, 30.0, FILL).get_pixel(0, 0).0, FILL);
}

#[test]
fn solarize_inverts_values_above_threshold() {
    let mut img = RgbImage::from_fn(2, 1, |x, _| Rgb([if x == 0 { 100 } else { 200 }, 127, 128]));
    solarize(&mut img, 128);
    assert_eq!(img.get_pixel(0, 0).0, [100, 127, 127]);
    assert_eq!(img.get_pixel(1, 0).0, [55, 127, 127]);
    // The op at level 0.5 uses threshold 256 - 128 = 128; at level 0 it changes nothing.
    let src = RgbImage::from_fn(2, 1, |x, _| Rgb([if x == 0 { 100 } else { 200 }, 127, 128]));
    assert_eq!(
        RandAugmentOp::Solarize.apply(src.clone(), 0.5, false, FILL),
        img
    );
    assert_eq!(
        RandAugmentOp::Solarize.apply(src.clone(), 0.0, false, FILL),
        src
    );
}

#[test]
fn posterize_keeps_top_bits() {
    let mut img = solid(1, 1, [0b1011_0110, 0b0111_1111, 255]);
    posterize(&mut img, 2);
    assert_eq!(
        img.get_pixel(0, 0).0,
        [0b1000_0000, 0b0100_0000, 0b1100_0000]
    );
    // Level 0.5 keeps 4 - 2 = 2 bits; level 0 keeps 4 bits.
    let src = solid(1, 1, [0b1011_0110, 0b0111_1111, 255]);
    assert_eq!(
        RandAugmentOp::Posterize.apply(src.clone(), 0.5, false, FILL),
        img
    );
    let four = RandAugmentOp::Posterize.apply(src, 0.0, false, FILL);
    assert_eq!(
        four.get_pixel(0, 0).0,
        [0b1011_0000, 0b0111_0000, 0b1111_0000]
    );
}

#[test]
fn saturation_zero_is_grey_and_color_op_scales_spread() {
    // PIL luma of pure red: (255 * 19595 + 32768) >> 16 = 76.
    let mut img = solid(2, 2, [255, 0, 0]);
    adjust_saturation(&mut img, 0.0);
    assert_eq!(img.get_pixel(1, 1).0, [76, 76, 76]);
    // Color op at level 1: factor 1.9 pushes away from grey, factor 0.1 pulls towards it.
    let src = solid(1, 1, [155, 100, 100]); // luma 116
    let up = RandAugmentOp::Color
        .apply(src.clone(), 1.0, false, FILL)
        .get_pixel(0, 0)
        .0;
    let down = RandAugmentOp::Color
        .apply(src, 1.0, true, FILL)
        .get_pixel(0, 0)
        .0;
    assert_eq!(up, [190, 86, 86]); // 116 + 1.9 * 39 = 190.1, 116 - 1.9 * 16 = 85.6
    assert_eq!(down, [120, 114, 114]); // 116 + 0.1 * 39 = 119.9, 116 - 0.1 * 16 = 114.4
}

#[test]
fn contrast_blends_with_mean_grey() {
    // Half black, half white (grey): luma mean 127.5 -> int(127.5 + 0.5) = 128.
    let src = RgbImage::from_fn(4, 1, |x, _| Rgb([if x < 2 { 0 } else { 255 }; 3]));
    let mut flat = src.clone();
    adjust_contrast(&mut flat, 0.0);
    assert!(flat.pixels().all(|p| p.0 == [128; 3]));
    let mut half = src.clone();
    adjust_contrast(&mut half, 0.5);
    assert_eq!(half.get_pixel(0, 0).0, [64; 3]); // 128 - 64
    assert_eq!(half.get_pixel(3, 0).0, [192; 3]); // 128 + 63.5 rounded
    let up = RandAugmentOp::Contrast.apply(src, 1.0, false, FILL);
    assert_eq!(up.get_pixel(0, 0).0, [0; 3]);
    assert_eq!(up.get_pixel(3, 0).0, [255; 3]);
}

#[test]
fn brightness_scales_and_clamps() {
    let mut img = solid(1, 1, [200, 100, 10]);
    adjust_brightness(&mut img, 0.5);
    assert_eq!(img.get_pixel(0, 0).0, [100, 50, 5]);
    let up = RandAugmentOp::Brightness.apply(solid(1, 1, [200, 100, 10]), 1.0, false, FILL);
    assert_eq!(up.get_pixel(0, 0).0, [255, 190, 19]);
    let down = RandAugmentOp::Brightness.apply(solid(1, 1, [200, 100, 10]), 1.0, true, FILL);
    assert_eq!(down.get_pixel(0, 0).0, [20, 10, 1]);
}

#[test]
fn sharpness_blends_with_smooth_filter_keeping_borders() {
    // One white pixel at the centre of a black 5x5 image. SMOOTH = [1 1 1; 1 5 1; 1 1 1] / 13:
    // centre 5 * 255 / 13 = 98.1, neighbours 255 / 13 = 19.6.
    let mut img = solid(5, 5, [0; 3]);
    img.put_pixel(2, 2, Rgb([255; 3]));
    let mut smooth = img.clone();
    adjust_sharpness(&mut smooth, 0.0);
    assert_eq!(smooth.get_pixel(2, 2).0, [98; 3]);
    assert_eq!(smooth.get_pixel(1, 1).0, [20; 3]);
    assert_eq!(smooth.get_pixel(0, 0).0, [0; 3]); // border kept
    let mut sharp = img.clone();
    adjust_sharpness(&mut sharp, 2.0);
    assert_eq!(sharp.get_pixel(2, 2).0, [255; 3]); // 98 + 2 * 157, clamped
    assert_eq!(sharp.get_pixel(1, 2).0, [0; 3]); // 20 - 40, clamped
    let mut same = img.clone();
    adjust_sharpness(&mut same, 1.0);
    assert_eq!(same, img);
}

#[test]
fn shear_x_shifts_rows_by_their_height() {
    // Factor 2/3: row 1 (centre y = 1.5) reads x + 1 exactly, so it moves one pixel left.
    let img = ramp(6, 4);
    let s = shear_x(&img, 2.0 / 3.0, FILL);
    for x in 0..5 {
        assert_eq!(s.get_pixel(x, 1), img.get_pixel(x + 1, 1), "x={x}");
    }
    assert_eq!(s.get_pixel(5, 1).0, FILL);
    // Rows further down shift further: row 3 (y = 3.5) reads x + 2.33, beyond the edge sooner.
    assert_eq!(s.get_pixel(4, 3).0, FILL);
    assert_ne!(s.get_pixel(4, 1).0, FILL);
}

#[test]
fn shear_y_shifts_columns_by_their_x() {
    let img = ramp(4, 6);
    let s = shear_y(&img, 2.0 / 3.0, FILL);
    for y in 0..5 {
        assert_eq!(s.get_pixel(1, y), img.get_pixel(1, y + 1), "y={y}");
    }
    assert_eq!(s.get_pixel(1, 5).0, FILL);
}

#[test]
fn translate_moves_content_and_fills() {
    let img = ramp(5, 4);
    let t = translate_x(&img, 2.0, FILL);
    for y in 0..4 {
        for x in 0..3 {
            assert_eq!(t.get_pixel(x, y), img.get_pixel(x + 2, y));
        }
        assert_eq!(t.get_pixel(3, y).0, FILL);
        assert_eq!(t.get_pixel(4, y).0, FILL);
    }
    let t = translate_y(&img, -1.0, FILL);
    for x in 0..5 {
        assert_eq!(t.get_pixel(x, 0).0, FILL);
        for y in 1..4 {
            assert_eq!(t.get_pixel(x, y), img.get_pixel(x, y - 1));
        }
    }
    // The ops move by 45 % of the side at level 1: 0.45 * 20 = 9 pixels.
    let big = ramp(20, 20);
    assert_eq!(
        RandAugmentOp::TranslateX.apply(big.clone(), 1.0, false, FILL),
        translate_x(&big, 9.0, FILL)
    );
    assert_eq!(
        RandAugmentOp::TranslateY.apply(big.clone(), 1.0, true, FILL),
        translate_y(&big, -9.0, FILL)
    );
    assert_eq!(
        RandAugmentOp::ShearX.apply(big.clone(), 1.0, false, FILL),
        shear_x(&big, 0.3, FILL)
    );
    assert_eq!(
        RandAugmentOp::ShearY.apply(big.clone(), 0.5, true, FILL),
        shear_y(&big, -0.15, FILL)
    );
}

#[test]
fn random_resized_crop_regions_respect_scale_and_ratio() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..500 {
        let r = random_resized_crop_region(160, 120, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert!(
            r.x >= 0.0 && r.y >= 0.0 && r.x + r.width <= 160.0 && r.y + r.height <= 120.0,
            "{r:?}"
        );
        let frac = r.width * r.height / (160.0 * 120.0);
        let ratio = r.width / r.height;
        // Rounding to whole pixels moves area and ratio a little; the fallback is the full image.
        let fallback = r.width == 160.0 && r.height == 120.0;
        assert!(fallback || (frac > 0.07 && frac <= 1.0), "{frac}");
        assert!(fallback || (ratio > 0.7 && ratio < 1.4), "{ratio}");
    }
    // Scale 1 and ratio 1 on a square image: the whole image, resized.
    let img = ramp(8, 8);
    let out = random_resized_crop(&img, 8, (1.0, 1.0), (1.0, 1.0), &mut rng).unwrap();
    assert_eq!(out, img);
    // An impossible ratio falls back to the centre crop with the ratio clamped.
    let r = random_resized_crop_region(100, 10, (1.0, 1.0), (1.0, 1.0), &mut rng);
    assert_eq!((r.x, r.y, r.width, r.height), (45.0, 0.0, 10.0, 10.0));
}

#[test]
fn color_jitter_factors_stay_in_range() {
    let cfg = ColorJitterConfig {
        brightness: 0.5,
        contrast: 0.0,
        saturation: 0.0,
    };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let mut img = solid(2, 2, [100; 3]);
        color_jitter(&mut img, &cfg, &mut ChaCha8Rng::seed_from_u64(seed));
        let v = img.get_pixel(0, 0).0[0];
        assert!((50..=150).contains(&v), "{v}");
        seen.insert(v);
    }
    assert!(seen.len() > 10, "brightness factor should vary: {seen:?}");
    let zero = ColorJitterConfig {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
    };
    let img = ramp(5, 5);
    let mut same = img.clone();
    color_jitter(&mut same, &zero, &mut ChaCha8Rng::seed_from_u64(1));
    assert_eq!(same, img);
}

#[test]
fn rand_augment_with_zero_probability_or_ops_is_identity() {
    let img = ramp(12, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let off = RandAugmentConfig {
        op_prob: 0.0,
        ..RandAugmentConfig::default()
    };
    assert_eq!(rand_augment(img.clone(), &off, &mut rng), img);
    let none = RandAugmentConfig {
        num_ops: 0,
        ..RandAugmentConfig::default()
    };
    assert_eq!(rand_augment(img.clone(), &none, &mut rng), img);
    // With ops always applied at magnitude 10, almost every draw changes the image.
    let on = RandAugmentConfig {
        op_prob: 1.0,
        magnitude: 10.0,
        magnitude_std: 0.0,
        ..RandAugmentConfig::default()
    };
    let changed = (0..40)
        .filter(|_| rand_augment(img.clone(), &on, &mut rng) != img)
        .count();
    assert!(changed >= 30, "{changed} of 40 changed");
}
