//! The threaded batch loader: deterministic batches whatever the worker count and timing,
//! seeded shuffles, skipped corrupt files, and the batch layout.

use hlfp::data::image_folder::{ImageFolder, Verify};
use hlfp::data::loader::{Batch, BatchLoader, LoaderConfig, Transform};
use hlfp::vision::augment::AugmentConfig;
use hlfp::vision::preprocess::PreprocessConfig;
use image::{Rgb, RgbImage};
use std::path::Path;

/// 3 classes, 7 images each, solid colours (red, green, blue families); sizes vary a lot so
/// workers finish out of order.
fn make_set(root: &Path) {
    for (c, name) in ["r", "g", "b"].iter().enumerate() {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..7u32 {
            let mut px = [20u8, 20, 20];
            px[c] = 200 + i as u8 * 5;
            let side = if i % 3 == 0 { 400 } else { 24 + i * 3 };
            RgbImage::from_pixel(side, side * 3 / 4, Rgb(px))
                .save(root.join(name).join(format!("{i}.jpg")))
                .unwrap();
        }
    }
}

fn collect(loader: &BatchLoader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).collect()
}

#[test]
fn batches_are_identical_for_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path());
    let ds = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    let transform = Transform::Train(AugmentConfig::imagenet(16));
    let run = |workers: usize, prefetch: usize| {
        let cfg = LoaderConfig {
            prefetch_per_worker: prefetch,
            ..LoaderConfig::train(4, workers, 7)
        };
        collect(
            &BatchLoader::new(ds.samples.clone(), transform, cfg).unwrap(),
            3,
        )
    };
    let reference = run(1, 1);
    assert_eq!(reference.len(), 21 / 4, "drop_last keeps only full batches");
    for (workers, prefetch) in [(2, 1), (3, 5), (5, 2), (3, 1)] {
        assert_eq!(
            run(workers, prefetch),
            reference,
            "workers={workers} prefetch={prefetch}"
        );
    }
}

#[test]
fn shuffle_depends_on_seed_and_epoch_and_covers_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path());
    let ds = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    let t = Transform::Eval(PreprocessConfig::imagenet(16));
    let mk =
        |seed| BatchLoader::new(ds.samples.clone(), t, LoaderConfig::train(4, 2, seed)).unwrap();
    let a = mk(1);
    let (e0, e1) = (a.epoch_order(0), a.epoch_order(1));
    assert_ne!(e0, e1);
    assert_eq!(e0, mk(1).epoch_order(0));
    assert_ne!(e0, mk(2).epoch_order(0));
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..21).collect::<Vec<_>>());
    // The batches follow the order.
    let batches = collect(&a, 1);
    let seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seen, e1[..20]);
}

#[test]
fn eval_batches_keep_order_layout_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path());
    let ds = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    let loader = BatchLoader::new(
        ds.samples.clone(),
        Transform::Eval(PreprocessConfig::imagenet(8)),
        LoaderConfig::eval(5, 3),
    )
    .unwrap();
    let batches = collect(&loader, 0);
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [5, 5, 5, 5, 1]
    );
    let plane = 64;
    for b in &batches {
        assert_eq!(b.images.len(), b.len() * 3 * plane);
        for (i, &label) in b.labels.iter().enumerate() {
            assert_eq!(label, ds.samples[b.indices[i]].label);
            // The label's colour channel is the brightest in the normalized image.
            let img = &b.images[i * 3 * plane..(i + 1) * 3 * plane];
            let mean =
                |c: usize| img[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32;
            let brightest = (0..3).max_by(|&x, &y| mean(x).total_cmp(&mean(y))).unwrap();
            let want = ["r", "g", "b"]
                .iter()
                .position(|n| *n == ds.classes[label as usize])
                .unwrap();
            assert_eq!(brightest, want);
        }
    }
    let (x, y) = batches[0].to_tensors(&candle_core::Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[5, 3, 8, 8]);
    assert_eq!(y.dims(), &[5]);
}

#[test]
fn corrupt_files_are_skipped_and_counted_by_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path());
    std::fs::write(dir.path().join("g/zz_bad.jpg"), b"\xFF\xD8\xFF garbage").unwrap();
    std::fs::write(dir.path().join("g/zz_notes.txt"), b"text").unwrap();
    // Verify::None lets the corrupt file through the scan; the loader must skip it.
    let ds = ImageFolder::open(dir.path(), None, Verify::None).unwrap();
    assert_eq!(ds.len(), 22);
    assert_eq!(ds.report.unsupported.len(), 1);
    let loader = BatchLoader::new(
        ds.samples.clone(),
        Transform::Eval(PreprocessConfig::imagenet(8)),
        LoaderConfig::eval(4, 2),
    )
    .unwrap();
    let batches = collect(&loader, 0);
    let images: usize = batches.iter().map(|b| b.len()).sum();
    let skipped: Vec<_> = batches.iter().flat_map(|b| b.skipped.clone()).collect();
    assert_eq!(images, 21);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].0.ends_with("g/zz_bad.jpg"));
    assert!(batches.iter().all(|b| !b.indices.contains(
        &ds.samples
            .iter()
            .position(|s| s.path.ends_with("g/zz_bad.jpg"))
            .unwrap()
    )));
}

#[test]
fn stopping_early_releases_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    make_set(dir.path());
    let ds = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    let cfg = LoaderConfig {
        prefetch_per_worker: 1,
        ..LoaderConfig::train(2, 3, 0)
    };
    let loader = BatchLoader::new(
        ds.samples,
        Transform::Train(AugmentConfig::imagenet(16)),
        cfg,
    )
    .unwrap();
    // Take one batch and drop the iterator: this must return (workers blocked on send exit).
    let first = loader.epoch(0).next().unwrap();
    assert_eq!(first.len(), 2);
}

#[test]
fn bad_loader_configs_are_rejected() {
    let t = Transform::Eval(PreprocessConfig::imagenet(8));
    assert!(BatchLoader::new(vec![], t, LoaderConfig::eval(0, 1)).is_err());
    assert!(BatchLoader::new(vec![], t, LoaderConfig::eval(1, 0)).is_err());
    let empty = BatchLoader::new(vec![], t, LoaderConfig::eval(4, 2)).unwrap();
    assert_eq!(empty.epoch(0).count(), 0);
}
