//! `hlfp train`: train a model on an ImageFolder with the threaded loader, a progress bar,
//! per-epoch checkpoints (resumable), validation and a JSONL metrics log.

use anyhow::{bail, Context};
use hlfp::data::image_folder::{read_class_list, ImageFolder, Verify};
use hlfp::data::loader::{BatchLoader, LoaderConfig, Transform};
use hlfp::model::{ModelConfig, Variant};
use hlfp::train::trainer::{init_tensors, merge_pretrained};
use hlfp::train::{Checkpoint, OptimizerConfig, Precision, TrainConfig, Trainer};
use hlfp::vision::augment::{AugmentConfig, RandAugmentConfig};
use hlfp::vision::preprocess::PreprocessConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Optimizer choice.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Opt {
    /// SGD with Nesterov momentum.
    Sgd,
    /// AdamW.
    Adamw,
}

/// Arguments of `hlfp train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training ImageFolder (DIR/<class>/*.jpg|png).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation ImageFolder, evaluated after every epoch.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Class list file (one name per line); default: the training folder's sorted subfolders.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Model variant (hlfp-small, hlfp-late-sp, resnet18, ...).
    #[arg(long, default_value = "hlfp-small")]
    pub variant: String,
    /// Channel width multiplier.
    #[arg(long, default_value_t = 0.25)]
    pub width: f64,
    /// Square input size in pixels.
    #[arg(long, default_value_t = 112)]
    pub input_size: usize,
    /// Epochs (with --resume: the total to reach).
    #[arg(long, default_value_t = 30)]
    pub epochs: u64,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: Opt,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    /// Warm-up epochs (linear).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Weight decay (not on BatchNorm parameters and biases).
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Seed of the initialization, the shuffle and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Loader worker threads (decoding and augmentation).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// RandAugment magnitude (0..10); see --no-randaugment.
    #[arg(long, default_value_t = 9.0)]
    pub magnitude: f32,
    /// RandAugment ops per image.
    #[arg(long, default_value_t = 2)]
    pub ra_ops: usize,
    /// Turn RandAugment off.
    #[arg(long, conflicts_with_all = ["magnitude", "ra_ops"])]
    pub no_randaugment: bool,
    /// Smallest random-resized-crop area fraction.
    #[arg(long, default_value_t = 0.08)]
    pub min_scale: f64,
    /// Initialize matching tensors (e.g. the shared trunk) from a torchvision/timm ResNet50
    /// safetensors file.
    #[arg(long)]
    pub init_trunk: Option<PathBuf>,
    /// Output folder: checkpoint/, metrics.jsonl, model.safetensors, model.json.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue from OUT/checkpoint.
    /// The model and the recipe come from the checkpoint, so the flags that set them are
    /// refused here (only `--epochs`, the data, loader and output flags apply).
    #[arg(long, conflicts_with_all = ["variant", "width", "input_size", "optimizer", "lr",
        "min_lr", "warmup_epochs", "label_smoothing", "weight_decay", "momentum", "precision",
        "candle_batch_norm", "init_trunk"])]
    pub resume: bool,
    /// Use only the first N training images of a seeded shuffle (smoke runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Device: auto, cpu, cuda or cuda:N (CUDA needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Convolution precision: f32, or bf16 (mixed precision: bf16 convs on f32 master weights,
    /// f32 BatchNorm and loss; for CUDA, where tensor cores run it; the CPU only emulates it).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Train with candle's BatchNorm layer instead of the fused CPU op (an A/B switch for
    /// measurements; same results).
    #[arg(long)]
    pub candle_batch_norm: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = super::common::candle_device(&args.device)?;
    let classes = args.classes.as_deref().map(read_class_list).transpose()?;
    let train_ds = ImageFolder::open(&args.data, classes.as_deref(), Verify::Header)?;
    if train_ds.is_empty() {
        bail!("{}: no training images", args.data.display());
    }
    let mut samples = train_ds.samples.clone();
    if let Some(n) = args.limit {
        let order = BatchLoader::new(
            samples.clone(),
            Transform::Eval(PreprocessConfig::imagenet(8)),
            LoaderConfig::train(1, 1, args.seed),
        )?
        .epoch_order(u64::MAX);
        samples = order
            .into_iter()
            .take(n)
            .map(|i| train_ds.samples[i].clone())
            .collect();
    }
    let aug = AugmentConfig {
        scale: (args.min_scale, 1.0),
        rand_augment: (!args.no_randaugment).then_some(RandAugmentConfig {
            num_ops: args.ra_ops,
            magnitude: args.magnitude,
            ..RandAugmentConfig::default()
        }),
        ..AugmentConfig::imagenet(args.input_size)
    };
    let loader = BatchLoader::new(
        samples,
        Transform::Train(aug),
        LoaderConfig::train(args.batch, args.workers, args.seed),
    )?;
    let val_loader = match &args.val {
        Some(dir) => {
            let ds = ImageFolder::open(dir, Some(&train_ds.classes), Verify::Header)?;
            Some(BatchLoader::new(
                ds.samples,
                Transform::Eval(PreprocessConfig::imagenet(args.input_size)),
                LoaderConfig::eval(args.batch, args.workers),
            )?)
        }
        None => None,
    };
    let ckpt_dir = args.out.join("checkpoint");
    let mut trainer = if args.resume && ckpt_dir.join(Checkpoint::STATE).exists() {
        let mut t = Checkpoint::resume(&ckpt_dir, &dev)?;
        if t.model_config().class_names != train_ds.classes {
            bail!("the checkpoint's classes differ from the training folder's");
        }
        t.set_epochs(args.epochs);
        tracing::info!(
            "resumed at epoch {} from {}",
            t.epochs_done,
            ckpt_dir.display()
        );
        t
    } else {
        let variant: Variant = args.variant.parse()?;
        let model_cfg = ModelConfig {
            class_names: train_ds.classes.clone(),
            input_size: args.input_size,
            width: args.width,
            ..ModelConfig::new(variant, train_ds.classes.len())
        };
        let cfg = TrainConfig {
            epochs: args.epochs,
            steps_per_epoch: loader.batches_per_epoch().max(1) as u64,
            optimizer: match args.optimizer {
                Opt::Sgd => OptimizerConfig::Sgd {
                    momentum: args.momentum,
                    nesterov: true,
                },
                Opt::Adamw => OptimizerConfig::adamw(),
            },
            lr: args.lr,
            min_lr: args.min_lr,
            warmup_epochs: args.warmup_epochs,
            label_smoothing: args.label_smoothing,
            weight_decay: args.weight_decay,
            seed: args.seed,
            precision: args.precision,
            fused_batch_norm: !args.candle_batch_norm,
        };
        if args.precision != Precision::F32 && dev.is_cpu() {
            tracing::warn!(
                "--precision {}: candle's CPU backend emulates it, so this run is slower than f32; mixed precision is for CUDA",
                args.precision
            );
        }
        let mut init = init_tensors(&model_cfg, args.seed, &dev)?;
        if let Some(p) = &args.init_trunk {
            let pre = candle_core::safetensors::load(p, &dev)
                .with_context(|| format!("reading {}", p.display()))?;
            let (copied, skipped) = merge_pretrained(&mut init, &pre)?;
            tracing::info!(
                "{}: copied {} tensors, skipped {} (name or shape not in this model)",
                p.display(),
                copied.len(),
                skipped.len()
            );
        }
        Trainer::from_tensors(model_cfg, cfg, init, &dev)?
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.out.join("metrics.jsonl"))?;
    let per_epoch = loader.batches_per_epoch() as u64;
    let text = super::common::load_font(None);
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} {msg} elapsed {elapsed} ETA {eta}",
    )?
    .progress_chars("=> ");
    while trainer.epochs_done < trainer.config().epochs {
        let epoch = trainer.epochs_done;
        let bar = ProgressBar::new(per_epoch).with_style(style.clone());
        bar.set_prefix(format!("{}/{}", epoch + 1, trainer.config().epochs));
        let start = Instant::now();
        let mut seen = 0usize;
        let mut m = trainer.train_epoch(loader.epoch(epoch), |s| {
            seen += s.images;
            let ips = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.1} img/s",
                s.loss, s.lr, ips
            ));
            bar.inc(1);
        })?;
        bar.finish();
        let secs = start.elapsed().as_secs_f64();
        m.seconds = Some(secs);
        m.images_per_s = Some(m.train_images as f64 / secs.max(1e-9));
        if let Some(v) = &val_loader {
            let (loss, top1) = trainer.evaluate(v.epoch(0))?;
            m.val_loss = Some(loss);
            m.val_top1 = Some(top1);
        }
        if let Some(last) = trainer.history.last_mut() {
            *last = m.clone();
        }
        writeln!(log, "{}", serde_json::to_string(&m)?)?;
        Checkpoint::save(&trainer, &ckpt_dir)?;
        trainer
            .model()
            .save_safetensors(args.out.join("model.safetensors"))?;
        std::fs::write(
            args.out.join("model.json"),
            serde_json::to_string_pretty(trainer.model_config())?,
        )?;
        write_curves(&args.out, &trainer.history, text);
        eprintln!(
            "epoch {}: train loss {:.4} top1 {:.3} | val {} | {:.1} img/s, {:.0} s, {} skipped",
            epoch + 1,
            m.train_loss,
            m.train_top1,
            m.val_top1.map_or("-".into(), |t| format!(
                "top1 {t:.3} loss {:.4}",
                m.val_loss.unwrap_or(f64::NAN)
            )),
            m.images_per_s.unwrap_or(0.0),
            secs,
            m.skipped
        );
    }
    Ok(())
}

/// Draw `OUT/curves.png` from the epoch history; a failure is a warning, never the end of a run.
fn write_curves(out: &std::path::Path, history: &[hlfp::train::EpochMetrics], text: bool) {
    let png = out.join("curves.png");
    let title = format!("{} ({} epochs)", out.display(), history.len());
    let fig = hlfp::train::curves::curves_figure(&title, history, text);
    match hlfp::plot::figure_image(&fig).map(|img| img.save(&png)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("writing {}: {e}", png.display()),
        Err(e) => tracing::warn!("drawing {}: {e}", png.display()),
    }
}

/// Arguments of `hlfp curves`.
#[derive(clap::Args, Debug)]
pub struct CurvesArgs {
    /// A `metrics.jsonl` written by `hlfp train`.
    pub metrics: PathBuf,
    /// PNG to write (default: `curves.png` next to the metrics).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `hlfp curves`: redraw the training curves of a run.
pub fn curves(args: CurvesArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.metrics)
        .with_context(|| format!("reading {}", args.metrics.display()))?;
    let history = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}", args.metrics.display(), i + 1))
        })
        .collect::<anyhow::Result<Vec<hlfp::train::EpochMetrics>>>()?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.metrics
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("curves.png")
    });
    let font = super::common::load_font(None);
    let title = format!("{} ({} epochs)", args.metrics.display(), history.len());
    let img =
        hlfp::plot::figure_image(&hlfp::train::curves::curves_figure(&title, &history, font))?;
    img.save(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
