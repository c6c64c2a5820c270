//! The training transform end to end: shapes, normalization, and determinism under a seed.

use hlfp::vision::augment::{sample_rng, AugmentConfig, Augmenter, ColorJitterConfig};
use image::{Rgb, RgbImage};

fn photo_like(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x * 7 + y * 13) % 256) as u8,
        ])
    })
}

fn full_config() -> AugmentConfig {
    AugmentConfig {
        color_jitter: Some(ColorJitterConfig {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        }),
        ..AugmentConfig::imagenet(32)
    }
}

#[test]
fn same_seed_same_bytes_different_seed_differs() {
    let aug = Augmenter::new(full_config()).unwrap();
    let img = photo_like(64, 48);
    let run = |seed: u64, epoch: u64, index: u64| {
        let mut out = vec![0.0f32; 3 * 32 * 32];
        aug.augment_into(&img, &mut sample_rng(seed, epoch, index), &mut out)
            .unwrap();
        out.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    for index in 0..8 {
        assert_eq!(run(42, 0, index), run(42, 0, index), "index {index}");
    }
    let differ = |a: Vec<u8>, b: Vec<u8>| a != b;
    assert!(differ(run(42, 0, 0), run(43, 0, 0)), "seed must matter");
    assert!(differ(run(42, 0, 0), run(42, 1, 0)), "epoch must matter");
    assert!(
        differ(run(42, 0, 0), run(42, 0, 1)),
        "sample index must matter"
    );
}

#[test]
fn output_has_input_size_and_normalized_range() {
    let aug = Augmenter::new(full_config()).unwrap();
    let img = photo_like(50, 70);
    for seed in 0..10 {
        let a = aug.augment(&img, &mut sample_rng(seed, 0, 0)).unwrap();
        assert_eq!(a.dimensions(), (32, 32));
        let mut out = vec![0.0f32; 3 * 32 * 32];
        aug.augment_into(&img, &mut sample_rng(seed, 0, 0), &mut out)
            .unwrap();
        // (0 - 0.485) / 0.229 = -2.12 .. (1 - 0.406) / 0.225 = 2.64
        assert!(out.iter().all(|v| (-2.2..=2.7).contains(v)));
        // The f32 output is exactly the normalized RGB8 output.
        let r0 = a.get_pixel(0, 0).0[0] as f32 / 255.0;
        assert!((out[0] - (r0 - 0.485) / 0.229).abs() < 1e-5);
    }
}

#[test]
fn bad_configs_are_rejected() {
    let base = AugmentConfig::imagenet(32);
    assert!(Augmenter::new(AugmentConfig {
        scale: (0.5, 0.1),
        ..base
    })
    .is_err());
    assert!(Augmenter::new(AugmentConfig {
        ratio: (0.0, 1.0),
        ..base
    })
    .is_err());
    assert!(Augmenter::new(AugmentConfig {
        hflip_prob: 1.5,
        ..base
    })
    .is_err());
    assert!(Augmenter::new(AugmentConfig {
        input_size: 0,
        ..base
    })
    .is_err());
    let aug = Augmenter::new(base).unwrap();
    assert!(aug
        .augment(&RgbImage::new(0, 0), &mut sample_rng(0, 0, 0))
        .is_err());
}
