//! The reader and loader over the project's real photos (`../shared/data/images`); ignored
//! unless run with `--include-ignored` where the data exists.

mod shared_data;
use shared_data::shared_data;

use hlfp::data::image_folder::{ImageFolder, Verify};
use hlfp::data::loader::{BatchLoader, LoaderConfig, Transform};
use hlfp::vision::augment::AugmentConfig;

#[test]
#[ignore = "needs ../shared/data"]
fn real_validation_photos_scan_clean_and_load() {
    let dir = shared_data("images");
    let ds = ImageFolder::open(&dir, None, Verify::Header).unwrap();
    assert_eq!(ds.classes.len(), 14, "{:?}", ds.classes);
    assert_eq!(ds.len(), 1100);
    assert!(ds.report.corrupt.is_empty(), "{:?}", ds.report.corrupt);
    assert!(ds.report.skipped_folders.is_empty() && ds.report.missing_classes.is_empty());
    // manifest.csv (and anything else outside class folders) is reported, not read.
    for p in &ds.report.stray_files {
        assert!(!p.is_dir());
    }
    let loader = BatchLoader::new(
        ds.samples.clone(),
        Transform::Train(AugmentConfig::imagenet(64)),
        LoaderConfig::train(16, 2, 0),
    )
    .unwrap();
    let batches: Vec<_> = loader.epoch(0).take(2).collect();
    assert_eq!(batches.len(), 2);
    for b in &batches {
        assert_eq!(b.len(), 16);
        assert!(b.skipped.is_empty());
        assert_eq!(b.images.len(), 16 * 3 * 64 * 64);
        assert!(b.images.iter().all(|v| v.is_finite()));
        assert!(b.labels.iter().all(|&l| (l as usize) < 14));
    }
}
