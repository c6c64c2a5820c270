//! Measures the training input pipeline on an ImageFolder (default `../shared/data/images_train`):
//! per-image cost of decoding and of augmentation on one thread, then batch-loader throughput
//! (images/s) with N workers, for the training and the validation transform, at each size.
//!
//! `cargo run --release --example loader_throughput -- [--data DIR] [--sizes 112,160]
//! [--workers 2] [--limit 1500]`

use anyhow::Context;
use clap::Parser;
use hlfp::data::image_folder::{load_rgb8, ImageFolder, Verify};
use hlfp::data::loader::{BatchLoader, LoaderConfig, Transform};
use hlfp::vision::augment::{sample_rng, AugmentConfig, Augmenter};
use hlfp::vision::preprocess::PreprocessConfig;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// ImageFolder to read.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "112,160")]
    sizes: Vec<usize>,
    /// Loader worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images per measurement (the first N of a seeded shuffle).
    #[arg(long, default_value_t = 1500)]
    limit: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = match args.data {
        Some(d) => d,
        None => [PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/images_train"
        ))]
        .into_iter()
        .find(|d| d.is_dir())
        .context("no --data given and ../shared/data/images_train not found")?,
    };
    let ds = ImageFolder::open(&data, None, Verify::Header)?;
    println!(
        "{}: {} images, {} classes, {} warnings; {} cores available",
        data.display(),
        ds.len(),
        ds.classes.len(),
        ds.report.warning_count(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let n = args.limit.min(ds.len());
    let mut samples = ds.samples.clone();
    let order = BatchLoader::new(
        samples.clone(),
        Transform::Eval(PreprocessConfig::imagenet(8)),
        LoaderConfig::train(1, 1, 0),
    )?
    .epoch_order(0);
    samples = order.iter().take(n).map(|&i| samples[i].clone()).collect();

    // Single-thread stage costs.
    let t = Instant::now();
    let decoded: Vec<_> = samples
        .iter()
        .map(|s| load_rgb8(&s.path))
        .collect::<Result<_, _>>()?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!("decode (1 thread): {decode_ms:.3} ms/image");
    for &size in &args.sizes {
        let aug = Augmenter::new(AugmentConfig::imagenet(size))?;
        let mut out = vec![0.0f32; 3 * size * size];
        let t = Instant::now();
        for (i, img) in decoded.iter().enumerate() {
            aug.augment_into(img, &mut sample_rng(0, 0, i as u64), &mut out)?;
        }
        let aug_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!("augment {size}px (1 thread, RRC+flip+RandAugment m9 n2 + normalize): {aug_ms:.3} ms/image");
    }
    drop(decoded);

    for &size in &args.sizes {
        for (name, transform) in [
            ("train", Transform::Train(AugmentConfig::imagenet(size))),
            ("eval", Transform::Eval(PreprocessConfig::imagenet(size))),
        ] {
            let loader = BatchLoader::new(
                samples.clone(),
                transform,
                LoaderConfig::train(args.batch, args.workers, 1),
            )?;
            let t = Instant::now();
            let mut images = 0usize;
            for b in loader.epoch(0) {
                images += b.len();
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "loader {name:<5} {size}px, {} workers, batch {}: {images} images in {secs:.2} s = {:.0} images/s",
                args.workers,
                args.batch,
                images as f64 / secs
            );
        }
    }
    Ok(())
}
