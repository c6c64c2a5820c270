//! `hlfp eval`: the paper's evaluations of a model on an ImageFolder (top-1, per class,
//! confusion, cutouts on their own classes, the attention-gain sweep), as text or one JSON
//! object, with an optional confusion-matrix PNG.

use anyhow::{bail, Context};
use hlfp::data::image_folder::{ImageFolder, Sample, Verify};
use hlfp::data::loader::{BatchLoader, LoaderConfig, Transform};
use hlfp::eval::{
    align_classes, halves, parse_subset, EvalConfig, EvalReport, Evaluator, Subset, DEFAULT_GAINS,
};
use hlfp::model::{InferenceModel, ModelFiles};
use hlfp::plot::{confusion_image, ConfusionPlotConfig};
use hlfp::vision::preprocess::PreprocessConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `hlfp eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a .safetensors file (config in the sidecar <stem>.json or a state.json beside it)
    /// or a directory written by `hlfp train --out` (model.safetensors + model.json).
    #[arg(long, default_value = super::common::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Model config JSON (a ModelConfig, or a checkpoint state.json); overrides the sidecar.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// ImageFolder to evaluate (DIR/<class>/*.jpg|png); classes are matched to the model's by name.
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// A cutout to evaluate on its own classes' images: class names or indices, comma
    /// separated. Repeatable.
    #[arg(long)]
    pub cutout: Vec<String>,
    /// Also evaluate the lower and upper halves of the classes by index (the paper's Table 3).
    #[arg(long)]
    pub halves: bool,
    /// Gains of the attention sweep on the true class's branch (1.0 is always included).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_GAINS.to_vec())]
    pub gains: Vec<f64>,
    /// Skip the attention sweep.
    #[arg(long, conflicts_with = "gains")]
    pub no_attention: bool,
    /// Write the confusion matrix as a PNG here.
    #[arg(long)]
    pub confusion: Option<PathBuf>,
    /// TrueType font for the PNG's text (default: DejaVu Sans or Liberation Sans from the
    /// usual system paths; without one the PNG has no text).
    #[arg(long)]
    pub font: Option<PathBuf>,
    /// Evaluate only N images, spread evenly over the dataset's (class-sorted) order.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Decoding worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Device: auto, cpu, cuda or cuda:N (CUDA needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `n` samples spread evenly over `samples` (all of them when `n` is larger).
fn spread(samples: Vec<Sample>, n: usize) -> Vec<Sample> {
    let len = samples.len();
    if n >= len {
        return samples;
    }
    (0..n).map(|i| samples[i * len / n].clone()).collect()
}

/// The class folder of a file under `root` (its first path component).
fn class_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    Some(rel.components().next()?.as_os_str().to_str()?.to_string())
}

/// Runs `hlfp eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.batch == 0 || args.workers == 0 {
        bail!("--batch and --workers must be at least 1");
    }
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let files = ModelFiles::resolve(&args.model, args.config.as_deref())?;
    let cfg = files.config.clone();
    let names = cfg.class_names.clone();
    let mut cutouts = Vec::new();
    for spec in &args.cutout {
        cutouts.push(Subset {
            name: spec.clone(),
            classes: parse_subset(spec, &names)?,
        });
    }
    if args.halves {
        let [lower, upper] = halves(names.len())?;
        cutouts.push(Subset {
            name: "lower".into(),
            classes: lower,
        });
        cutouts.push(Subset {
            name: "upper".into(),
            classes: upper,
        });
    }
    let gains = if args.no_attention {
        Vec::new()
    } else {
        args.gains.clone()
    };
    let dev = super::common::candle_device(&args.device)?;
    let model = InferenceModel::load_file(&files.weights, &cfg, None, &dev)
        .with_context(|| format!("loading {}", files.weights.display()))?;
    let mut evaluator = Evaluator::new(&model, EvalConfig { cutouts, gains })?;

    let folder = ImageFolder::open(&args.data, None, Verify::Header)?;
    let aligned = align_classes(&folder, &names);
    for s in &aligned.skipped_classes {
        tracing::warn!(
            "class {:?} ({} images) is not one of the model's classes: skipped",
            s.name,
            s.images
        );
    }
    if !aligned.missing_classes.is_empty() {
        tracing::warn!(
            "model classes without images in {}: {}",
            args.data.display(),
            aligned.missing_classes.join(", ")
        );
    }
    for (path, reason) in &folder.report.corrupt {
        if class_of(&folder.root, path).is_some_and(|c| names.contains(&c)) {
            evaluator.add_failed(path.clone(), reason.clone());
        }
    }
    let samples = match args.limit {
        Some(n) => spread(aligned.samples.clone(), n),
        None => aligned.samples.clone(),
    };
    if samples.is_empty() {
        bail!(
            "{} has no readable images of the model's classes ({}); its classes: {}",
            args.data.display(),
            names.join(", "),
            folder.classes.join(", ")
        );
    }
    let loader = BatchLoader::new(
        samples,
        Transform::Eval(PreprocessConfig::imagenet(cfg.input_size)),
        LoaderConfig::eval(args.batch, args.workers),
    )?;
    let total = loader.samples().len() as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "eval [{bar:30}] {pos}/{len} {msg} elapsed {elapsed} ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    let start = Instant::now();
    for batch in loader.epoch(0) {
        for (path, reason) in &batch.skipped {
            evaluator.add_failed(path.clone(), reason.clone());
        }
        let (x, _) = batch.to_tensors(&dev)?;
        evaluator.add_batch(&x, &batch.labels)?;
        bar.inc((batch.len() + batch.skipped.len()) as u64);
        let ips = evaluator.images() as f64 / start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{ips:.1} img/s"));
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let report = evaluator.report(aligned.skipped_classes, aligned.missing_classes)?;
    let images_per_s = report.images as f64 / seconds.max(1e-9);

    if let Some(png) = &args.confusion {
        let text = super::common::load_font(args.font.as_deref());
        let img = confusion_image(
            &report.confusion,
            &names,
            &ConfusionPlotConfig {
                text,
                title: format!(
                    "{} on {}: top-1 {:.2} % ({} images)",
                    cfg.variant,
                    args.data.display(),
                    100.0 * report.top1,
                    report.images
                ),
            },
        )?;
        img.save(png)
            .with_context(|| format!("writing {}", png.display()))?;
    }

    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "model_path".into(),
                files.weights.display().to_string().into(),
            );
            obj.insert(
                "config_path".into(),
                files.config_path.display().to_string().into(),
            );
            obj.insert("backend".into(), report.model.backend.clone().into());
            obj.insert("data".into(), args.data.display().to_string().into());
            obj.insert(
                "unsupported_files".into(),
                folder.report.unsupported.len().into(),
            );
            obj.insert("seconds".into(), seconds.into());
            obj.insert("images_per_s".into(), images_per_s.into());
        }
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_text(&report, &files, seconds, images_per_s);
    }
    Ok(())
}

fn print_text(r: &EvalReport, files: &ModelFiles, seconds: f64, images_per_s: f64) {
    println!(
        "model {} ({}, {} classes, input {}, width {}): {:.2} M params, {:.3} GMACs (ptflops-style {:.3}), {} backend",
        files.weights.display(),
        r.model.variant,
        r.model.class_names.len(),
        r.model.input_size,
        r.model.width,
        r.model.params as f64 / 1e6,
        r.model.macs as f64 / 1e9,
        r.model.macs_ptflops as f64 / 1e9,
        r.model.backend
    );
    println!(
        "top-1 {:.2} % ({}/{} images, {:.1} s, {:.1} images/s)",
        100.0 * r.top1,
        r.correct,
        r.images,
        seconds,
        images_per_s
    );
    println!("per class:");
    for c in &r.per_class {
        let acc = c.top1.map_or("-".into(), |t| format!("{:.1} %", 100.0 * t));
        println!(
            "  {:>3} {:<24} {:>8} ({}/{})",
            c.index, c.name, acc, c.correct, c.images
        );
    }
    if !r.cutouts.is_empty() {
        println!(
            "cutouts (on their own classes' images; full = the full model on the same images):"
        );
        for c in &r.cutouts {
            println!(
                "  {:<16} {:>2} classes {:>5} images: cutout {:.2} % vs full {:.2} % ({:+.2} points), {:.2} M params, {:.3} GMACs (ptflops-style {:.3})",
                c.name,
                c.classes.len(),
                c.images,
                100.0 * c.top1,
                100.0 * c.full_top1_on_subset,
                c.change_points,
                c.params as f64 / 1e6,
                c.macs as f64 / 1e9,
                c.macs_ptflops as f64 / 1e9
            );
        }
    }
    if !r.attention_sweep.is_empty() {
        println!("attention (gain on the true class's branch):");
        for g in &r.attention_sweep {
            println!(
                "  gain {:<5} top-1 {:.2} % ({:+.2} points)",
                g.gain,
                100.0 * g.top1,
                g.change_points
            );
        }
    }
    for s in &r.skipped_classes {
        println!(
            "skipped class {:?} ({} images): unknown to the model",
            s.name, s.images
        );
    }
    if !r.missing_classes.is_empty() {
        println!(
            "model classes without images: {}",
            r.missing_classes.join(", ")
        );
    }
    if !r.failed_images.is_empty() {
        println!(
            "{} image(s) failed to load (not evaluated):",
            r.failed_images.len()
        );
        for f in r.failed_images.iter().take(5) {
            println!("  {}: {}", f.path.display(), f.reason);
        }
    }
}
