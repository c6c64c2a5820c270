//! `hlfp train-audio`: read labelled clips, split, train the audio classifier, evaluate it on the
//! held-out split and write `<out>.safetensors`, the card `<out>.md` and `<out>.holdout.txt`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use hlfp::audio::augment::{MixupConfig, SpecAugmentConfig};
use hlfp::audio::classifier::{AudioClassifier, AudioClassifierConfig};
use hlfp::audio::features::{LogMel, LogMelConfig};
use hlfp::audio::mixstyle::FreqMixStyleConfig;
use hlfp::audio::sources::{self, ClipRef};
use hlfp::audio::train::{self, Clip, ClipEvalReport, TrainAudioConfig};

/// Arguments of `hlfp train-audio`.
#[derive(clap::Args)]
pub struct Args {
    /// Data directory with one folder of 16 kHz mono WAV clips per label (`<label>/*.wav`).
    /// With `--split source`, repeat it for several (e.g. `audio` and `audio_extra`); clip lists
    /// then name clips relative to each directory's parent (`audio_extra/cat/x.wav`).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// `every`: per label every `--holdout-every`-th recording held out (the first recipe).
    /// `source`: whole sources (`--test-sources`) held out, validation by recording, training
    /// on precomputed mel power with mel-domain augmentation (see `audio::melaug`).
    #[arg(long, default_value = "every")]
    pub split: String,
    /// With `--split source`: the sources (file-name prefixes) to hold out as the test set.
    #[arg(long, value_delimiter = ',')]
    pub test_sources: Vec<String>,
    /// Output channels of the conv blocks (each block halves time and frequency).
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 32, 64, 64])]
    pub channels: Vec<usize>,
    /// Blocks of the stages after the first: `plain` (conv3x3 + batch norm + ReLU + pool) or
    /// `mobilenet` (two MobileNetV2 inverted residuals per stage: twice the depth at about the
    /// same multiply-adds).
    #[arg(long, default_value = "plain")]
    pub backbone: String,
    /// Pooling over time: `meanmax` or `attention`.
    #[arg(long, default_value = "meanmax")]
    pub head: String,
    /// Per-window normalisation: `none`, or `band_mean` (each mel band's mean over the window
    /// subtracted: a microphone's colouration and a steady background cancel).
    #[arg(long, default_value = "none")]
    pub window_norm: String,
    /// Scores: `softmax` (cross-entropy over the labels) or `sigmoid` (one-vs-rest binary
    /// cross-entropy: a sound unlike every label may score low on all of them).
    #[arg(long, default_value = "softmax")]
    pub output: String,
    /// With `--split source`: a label is drawn with probability proportional to
    /// (training clips)^this (0 = uniform over labels).
    #[arg(long, default_value_t = 0.5)]
    pub label_weight_power: f64,
    /// With `--split source`: extra weight factor of the cue labels `cat` and `dog`.
    #[arg(long, default_value_t = 2.0)]
    pub cue_weight: f64,
    /// Output prefix: writes `<out>.safetensors`, `<out>.md` and `<out>.holdout.txt`
    /// (`--split every`) or `<out>.test.txt` and `<out>.val.txt` (`--split source`).
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs of `--steps-per-epoch` batches.
    #[arg(long, default_value_t = 24)]
    pub epochs: usize,
    /// Batches per epoch.
    #[arg(long, default_value_t = 50)]
    pub steps_per_epoch: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak AdamW learning rate (cosine decay to 5 %).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Seed of sampling, augmentation and initialisation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hold out every N-th recording of each label (sorted by name).
    #[arg(long, default_value_t = 5)]
    pub holdout_every: usize,
    /// Also keep every N-th recording of each label's *training* recordings out of training as a
    /// validation split (listed in `<out>.val.txt`) for choosing detector thresholds without
    /// touching the held-out clips. 0 = no validation split.
    #[arg(long, default_value_t = 0)]
    pub val_every: usize,
    /// Log-mel frames per classifier window (10 ms each; the window spans
    /// 512 + (frames - 1) * 160 samples). Must be >= 16 (four 2x pools).
    #[arg(long, default_value_t = hlfp::audio::classifier::DEFAULT_WINDOW_FRAMES)]
    pub window_frames: usize,
    /// Label smoothing of the cross-entropy (0 = none).
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Hop between evaluation windows, in frames (25 = 0.25 s).
    #[arg(long, default_value_t = 25)]
    pub eval_hop_frames: usize,
    /// Probability threshold for the cue-style numbers on the card (recall, false windows).
    #[arg(long, default_value_t = 0.5)]
    pub cue_threshold: f32,
    /// SpecAugment: probability that a training window's log-mel values get the time and
    /// frequency masks below (masked cells set to the normalisation mean). 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub spec_augment_prob: f32,
    /// SpecAugment: frequency masks per masked window.
    #[arg(long, default_value_t = 2)]
    pub freq_masks: usize,
    /// SpecAugment: widest frequency mask, in mel bins (width uniform in 0..=this).
    #[arg(long, default_value_t = 8)]
    pub freq_mask_bins: usize,
    /// SpecAugment: time masks per masked window.
    #[arg(long, default_value_t = 2)]
    pub time_masks: usize,
    /// SpecAugment: widest time mask, in frames (width uniform in 0..=this; default 10 % of
    /// `--window-frames`).
    #[arg(long)]
    pub time_mask_frames: Option<usize>,
    /// Mixup: probability that a training window is mixed (on the log-mel values) with a window
    /// of another label from its batch, the soft target weighted alike. 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub mixup_prob: f32,
    /// Mixup: the window's own weight is uniform in [this, 1].
    #[arg(long, default_value_t = 0.5)]
    pub mixup_min_weight: f32,
    /// With `--split source`: largest shift of a training clip along the mel axis, in bins
    /// (another animal's pitch; the background is not shifted). 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub freq_shift_bins: f32,
    /// With `--split source`: probability of reverberating a training clip (exponential decay
    /// in the mel-power domain, RT60 0.2-1.0 s, direct-to-reverberant ratio -3 to 12 dB: a call
    /// from across a room). 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub reverb_prob: f32,
    /// Frequency-wise MixStyle: probability that a training window takes per-mel-bin level and
    /// spread between its own and another window's of the batch (a recording setup's
    /// colouring, mixed so the network learns the sound instead). 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub freq_mixstyle_prob: f32,
    /// Frequency-wise MixStyle: the window's own share of the statistics is Beta(alpha, alpha).
    #[arg(long, default_value_t = 0.3)]
    pub freq_mixstyle_alpha: f32,
    /// With `--split source`: a training clip's drawing weight among the clips of its label is
    /// proportional to (clips of its label from its source)^(this - 1), so a source with n clips
    /// is drawn in proportion to n^this. 1 = every clip alike (large sources dominate), 0 = every
    /// source alike, 0.5 = in proportion to the square root of its size.
    #[arg(long, default_value_t = 1.0)]
    pub source_weight_power: f64,
}

/// The training settings both splits take from the command line (optimiser, schedule, label
/// smoothing, SpecAugment, mixup), checked against the window shape.
pub fn train_config(
    args: &Args,
    window_samples: usize,
    n_mels: usize,
) -> anyhow::Result<TrainAudioConfig> {
    let mut cfg = TrainAudioConfig::new(window_samples);
    cfg.epochs = args.epochs;
    cfg.steps_per_epoch = args.steps_per_epoch;
    cfg.batch_size = args.batch_size;
    cfg.lr = args.lr;
    cfg.weight_decay = args.weight_decay;
    cfg.seed = args.seed;
    cfg.label_smoothing = args.label_smoothing;
    cfg.spec_augment = SpecAugmentConfig {
        prob: args.spec_augment_prob,
        freq_masks: args.freq_masks,
        max_freq_bins: args.freq_mask_bins,
        time_masks: args.time_masks,
        max_time_frames: args
            .time_mask_frames
            .unwrap_or(SpecAugmentConfig::new(args.window_frames).max_time_frames),
    };
    cfg.spec_augment
        .validate(args.window_frames, n_mels)
        .context("--spec-augment-prob / --freq-mask* / --time-mask*")?;
    cfg.mixup = MixupConfig {
        prob: args.mixup_prob,
        min_weight: args.mixup_min_weight,
    };
    cfg.mixup
        .validate()
        .context("--mixup-prob / --mixup-min-weight")?;
    cfg.freq_mixstyle = FreqMixStyleConfig {
        prob: args.freq_mixstyle_prob,
        alpha: args.freq_mixstyle_alpha,
    };
    cfg.freq_mixstyle
        .validate()
        .context("--freq-mixstyle-prob / --freq-mixstyle-alpha")?;
    Ok(cfg)
}

/// The network `args` describe, reading `labels` from the front-end `fe` (both splits).
pub fn model_config(
    args: &Args,
    labels: Vec<String>,
    fe: &LogMelConfig,
) -> anyhow::Result<AudioClassifierConfig> {
    use hlfp::audio::classifier::{Backbone, OutputKind, PoolingHead, WindowNorm};
    let mut cfg = AudioClassifierConfig::new(labels, serde_json::to_string(fe)?);
    cfg.window_frames = args.window_frames;
    cfg.channels = args.channels.clone();
    cfg.backbone = Backbone::parse(&args.backbone)?;
    cfg.head = PoolingHead::parse(&args.head)?;
    cfg.window_norm = WindowNorm::parse(&args.window_norm)?;
    cfg.output = OutputKind::parse(&args.output)?;
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.split.as_str() {
        "source" => return super::train_audio_mel::run(&args),
        "every" => {}
        s => bail!("--split must be `every` or `source`, got {s:?}"),
    }
    if args.data.len() != 1 {
        bail!("--split every takes one --data directory");
    }
    let data = args.data[0].clone();
    let started = Instant::now();
    let fe = LogMelConfig::default();
    let mut model_cfg = model_config(&args, Vec::new(), &fe)?;
    let window_samples = fe.n_fft + (model_cfg.window_frames - 1) * fe.hop_samples;

    let refs = scan(&data)?;
    let mut labels: Vec<String> = refs.iter().map(|r| r.label.clone()).collect();
    labels.dedup();
    model_cfg.labels = labels.clone();
    let mask = sources::holdout_mask(&refs, args.holdout_every)?;
    let holdout_path = with_ext(&args.out, "holdout.txt");
    if let Some(dir) = holdout_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let held: String = refs
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(r, _)| format!("{}\n", r.rel_path))
        .collect();
    std::fs::write(&holdout_path, held)
        .with_context(|| format!("write {}", holdout_path.display()))?;
    let val_mask = if args.val_every > 0 {
        sources::validation_mask(&refs, &mask, args.val_every)?
    } else {
        vec![false; refs.len()]
    };
    let val_path = with_ext(&args.out, "val.txt");
    if args.val_every > 0 {
        let val: String = refs
            .iter()
            .zip(&val_mask)
            .filter(|(_, &v)| v)
            .map(|(r, _)| format!("{}\n", r.rel_path))
            .collect();
        std::fs::write(&val_path, val).with_context(|| format!("write {}", val_path.display()))?;
    }

    let mut train_clips = Vec::new();
    let mut held_clips = Vec::new();
    let mut n_val = 0;
    for ((r, &m), &v) in refs.iter().zip(&mask).zip(&val_mask) {
        if v {
            n_val += 1;
            continue;
        }
        let samples = read_clip(&data.join(&r.rel_path), fe.sample_rate_hz)?;
        let clip = Clip {
            label: labels.iter().position(|l| *l == r.label).unwrap_or(0),
            rel_path: r.rel_path.clone(),
            samples,
        };
        if m {
            held_clips.push(clip);
        } else {
            train_clips.push(clip);
        }
    }
    tracing::info!(
        "{} labels, {} training clips, {} held out (list in {}), {} for validation",
        labels.len(),
        train_clips.len(),
        held_clips.len(),
        holdout_path.display(),
        n_val
    );

    let cfg = train_config(&args, window_samples, model_cfg.n_mels)?;

    // One front-end instance reused for every window (reset between them).
    let stage = RefCell::new(LogMel::new(fe.clone())?);
    let features = |x: &[f32]| -> hlfp::Result<Vec<f32>> { Ok(stage.borrow_mut().clip(x)) };

    let total = (cfg.epochs * cfg.steps_per_epoch) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, {msg}, ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    let device = Device::Cpu;
    let steps_per_epoch = cfg.steps_per_epoch.max(1);
    let train_started = Instant::now();
    let model = train::train(
        model_cfg,
        &train_clips,
        &cfg,
        &features,
        &device,
        &mut |s| {
            bar.set_position(s.step as u64);
            bar.set_message(format!(
                "epoch {} loss {:.3} (avg {:.3}) lr {:.1e}",
                s.epoch, s.loss, s.loss_ema, s.lr
            ));
            // The bar is hidden when stderr is not a terminal; keep one log line per epoch.
            if s.step % steps_per_epoch == 0 {
                bar.suspend(|| {
                    tracing::info!(
                        "epoch {} done: step {}/{}, loss (avg) {:.3}, lr {:.1e}",
                        s.epoch,
                        s.step,
                        s.total_steps,
                        s.loss_ema,
                        s.lr
                    )
                });
            }
        },
    )?;
    bar.finish();
    let train_s = train_started.elapsed().as_secs_f64();

    let model_path = with_ext(&args.out, "safetensors");
    model.save(&model_path)?;
    // Evaluate the file as shipped, not the in-memory model.
    let model = AudioClassifier::load(&model_path, &device)?;
    let report = train::evaluate(
        &model,
        &held_clips,
        window_samples,
        args.eval_hop_frames,
        args.cue_threshold,
        &features,
    )?;
    let total_s = started.elapsed().as_secs_f64();
    print!("{}", accuracy_table(&report));
    let card = render_card(&CardInput {
        model_path: &model_path,
        holdout_path: &holdout_path,
        model: &model,
        cfg: &cfg,
        fe: &fe,
        window_samples,
        report: &report,
        n_train: train_clips.len(),
        n_val,
        val_every: args.val_every,
        n_held: held_clips.len(),
        train_s,
        total_s,
        holdout_every: args.holdout_every,
    });
    let card_path = with_ext(&args.out, "md");
    std::fs::write(&card_path, card).with_context(|| format!("write {}", card_path.display()))?;
    tracing::info!(
        "wrote {}, {} and {}",
        model_path.display(),
        card_path.display(),
        holdout_path.display()
    );
    Ok(())
}

/// `<out>.<ext>` without eating a dot already in the prefix.
pub(super) fn with_ext(out: &Path, ext: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Clips as `<label>/<file>.wav`, labels and files sorted by name.
pub(super) fn scan(data: &Path) -> anyhow::Result<Vec<ClipRef>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("read data dir {}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        let label = d
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("label folder name is not UTF-8: {}", d.display()))?
            .to_string();
        let mut files: Vec<String> = std::fs::read_dir(&d)
            .with_context(|| format!("read {}", d.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(|s| s.to_string()))
            .filter(|n| n.ends_with(".wav"))
            .collect();
        files.sort();
        for f in files {
            out.push(ClipRef {
                label: label.clone(),
                rel_path: format!("{label}/{f}"),
            });
        }
    }
    if out.is_empty() {
        bail!("no <label>/*.wav clips under {}", data.display());
    }
    Ok(out)
}

/// The training data is 16 kHz mono PCM (SOURCES.md); another rate is refused rather than
/// silently resampled, so the model never trains on a rate the front-end does not assume.
pub(super) fn read_clip(path: &Path, rate_hz: u32) -> anyhow::Result<Vec<f32>> {
    let clip = hlfp::audio::wav::read_wav(path)?;
    if clip.sample_rate_hz != rate_hz {
        bail!(
            "{}: expected {rate_hz} Hz, got {} Hz",
            path.display(),
            clip.sample_rate_hz
        );
    }
    if clip.non_finite > 0 {
        bail!("{}: {} non-finite samples", path.display(), clip.non_finite);
    }
    if clip.samples.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(clip.samples)
}

fn pct(num: usize, den: usize) -> String {
    if den == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * num as f64 / den as f64)
    }
}

/// Per-label held-out accuracy as a Markdown table.
pub(super) fn accuracy_table(r: &ClipEvalReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| label | clips | windows | window acc % | clip acc % (mean) | clip acc % (max) | clips with p >= {t} % | other-label windows with p >= {t} |",
        t = r.threshold
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let (mut c, mut w, mut wc, mut cm, mut cx) = (0, 0, 0, 0, 0);
    for e in &r.per_label {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            e.label,
            e.clips,
            e.windows,
            pct(e.window_correct, e.windows),
            pct(e.clip_correct_mean, e.clips),
            pct(e.clip_correct_max, e.clips),
            pct(e.clip_hit_at_threshold, e.clips),
            e.false_windows
        );
        c += e.clips;
        w += e.windows;
        wc += e.window_correct;
        cm += e.clip_correct_mean;
        cx += e.clip_correct_max;
    }
    let _ = writeln!(
        s,
        "| **all** | {c} | {w} | {} | {} | {} | | |",
        pct(wc, w),
        pct(cm, c),
        pct(cx, c)
    );
    s
}

struct CardInput<'a> {
    model_path: &'a Path,
    holdout_path: &'a Path,
    model: &'a AudioClassifier,
    cfg: &'a TrainAudioConfig,
    fe: &'a LogMelConfig,
    window_samples: usize,
    report: &'a ClipEvalReport,
    n_train: usize,
    n_val: usize,
    val_every: usize,
    n_held: usize,
    train_s: f64,
    total_s: f64,
    holdout_every: usize,
}

fn render_card(c: &CardInput) -> String {
    let mcfg = c.model.config();
    let a = &c.cfg.augment;
    let command: Vec<String> = std::env::args().collect();
    let file_bytes: usize = std::fs::metadata(c.model_path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: `{}`\n", c.model_path.display());
    let _ = writeln!(
        s,
        "A small CNN that scores one {:.2} s log-mel window against {} sound labels. It is the \
         classifier stage of the audio cue pipeline (issue 4); the streaming detector turns its \
         per-window probabilities into sound events and class cues.\n",
        c.window_samples as f64 / c.fe.sample_rate_hz as f64,
        mcfg.labels.len()
    );
    let _ = writeln!(s, "## Labels (output order)\n");
    let _ = writeln!(s, "`{}`\n", mcfg.labels.join("`, `"));
    let _ = writeln!(
        s,
        "Cue labels downstream: `cat`, `dog`, `chainsaw`. All other labels are negatives the \
         detector needs: other animals, and background sounds (`rain`, `sea_waves`, \
         `crackling_fire`, `clock_tick`, `helicopter`, `sneezing`, `crying_baby`, and \
         `chainsaw`, which is both).\n"
    );
    let _ = writeln!(s, "## Input and front-end\n");
    let _ = writeln!(
        s,
        "- Window: {} frames x {} mel bins, frame-major (`window[frame * {} + mel]`), = {} samples \
         ({:.3} s) of 16 kHz audio.",
        mcfg.window_frames,
        mcfg.n_mels,
        mcfg.n_mels,
        c.window_samples,
        c.window_samples as f64 / c.fe.sample_rate_hz as f64
    );
    let _ = writeln!(
        s,
        "- Front-end (`hlfp::audio::features`, stored as JSON in the file's `front_end` \
         metadata): {} Hz mono, n_fft {}, periodic Hann {}, hop {} samples, power spectrum, {} HTK \
         mel filters {}-{} Hz (no area norm), `10*log10(max(p, {:e}))`, no centre padding.",
        c.fe.sample_rate_hz,
        c.fe.n_fft,
        c.fe.win_length,
        c.fe.hop_samples,
        c.fe.n_mels,
        c.fe.f_min_hz,
        c.fe.f_max_hz,
        c.fe.amin_power
    );
    let _ = writeln!(
        s,
        "- The model normalises each mel bin with the mean/std stored in the file (`norm.mean`, \
         `norm.std`, measured on {} augmented training windows); feed it raw dB values.",
        c.cfg.norm_windows
    );
    let _ = writeln!(
        s,
        "- Network: {} `{}` stages with {:?} channels (each halves time and frequency), \
         `{}` pooling over time, window normalisation `{}`, `{}` scores for {} labels \
         (`audio::classifier`). File size {} bytes (f32).\n",
        mcfg.channels.len(),
        mcfg.backbone.name(),
        mcfg.channels,
        mcfg.head.name(),
        mcfg.window_norm.name(),
        mcfg.output.name(),
        mcfg.labels.len(),
        file_bytes
    );
    let _ = writeln!(s, "## Recipe\n");
    let _ = writeln!(s, "```\n{}\n```\n", command.join(" "));
    let _ = writeln!(
        s,
        "- Split: per label, recordings sorted by file name (ESC-10 takes `-A`/`-B` of one \
         Freesound recording count as one), every {}th held out with all its clips: {} training \
         clips, {} held out, listed in `{}` (paths relative to the data dir).",
        c.holdout_every,
        c.n_train,
        c.n_held,
        c.holdout_path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    if c.val_every > 0 {
        let _ = writeln!(
            s,
            "- Validation: of the training recordings, every {}th per label (same rule) kept out \
             of training: {} clips, listed in `<out>.val.txt`, for choosing detector thresholds \
             without the held-out clips; the {} training clips above exclude them.",
            c.val_every, c.n_val, c.n_train
        );
    }
    let _ = writeln!(
        s,
        "- Training: {} epochs x {} steps x {} windows, class-balanced sampling (label uniform, \
         then a clip of it uniform), AdamW (lr {:e} peak, cosine to 5 %, weight decay {:e}), \
         cross-entropy with label smoothing {}, seed {}.",
        c.cfg.epochs,
        c.cfg.steps_per_epoch,
        c.cfg.batch_size,
        c.cfg.lr,
        c.cfg.weight_decay,
        c.cfg.label_smoothing,
        c.cfg.seed
    );
    let _ = writeln!(
        s,
        "- Augmentation per window (`hlfp::audio::augment`): crop of {} samples (p = {} centred on \
         a 10 ms block within {} dB of the clip's loudest, else uniform; short clips zero-padded \
         at a random offset); with p = {} a training clip of another label from `{}` mixed in at \
         SNR U({}, {}) dB; with p = {} white noise at SNR U({}, {}) dB; a white noise floor at \
         U({}, {}) dBFS; gain U({}, {}) dB; clamp to [-1, 1].",
        a.window_samples,
        a.active_crop_prob,
        a.active_within_db,
        a.background_prob,
        c.cfg.background_labels.join("`, `"),
        a.background_snr_db.0,
        a.background_snr_db.1,
        a.noise_prob,
        a.noise_snr_db.0,
        a.noise_snr_db.1,
        a.noise_floor_dbfs.0,
        a.noise_floor_dbfs.1,
        a.gain_db.0,
        a.gain_db.1
    );
    let sa = &c.cfg.spec_augment;
    if sa.is_active() {
        let _ = writeln!(
            s,
            "- SpecAugment on the log-mel window (`hlfp::audio::augment::spec_augment`), with p = \
             {}: {} frequency masks of U{{0..{}}} mel bins and {} time masks of U{{0..{}}} frames, \
             each at a uniform position, masked cells set to the normalisation mean (0 after \
             normalisation); the normalisation itself is measured without masks.",
            sa.prob, sa.freq_masks, sa.max_freq_bins, sa.time_masks, sa.max_time_frames
        );
    } else {
        let _ = writeln!(s, "- No SpecAugment.");
    }
    if c.cfg.mixup.is_active() {
        let _ = writeln!(
            s,
            "- Mixup (`hlfp::audio::augment::mixup_batch`, before SpecAugment), with p = {}: the \
             window's log-mel values mixed with those of a window of another label from the same \
             batch, own weight U({}, 1), soft targets weighted alike (then label smoothing).",
            c.cfg.mixup.prob, c.cfg.mixup.min_weight
        );
    }
    let ms = &c.cfg.freq_mixstyle;
    if ms.is_active() {
        let _ = writeln!(
            s,
            "- Frequency-wise MixStyle (`hlfp::audio::mixstyle`, after mixup, before SpecAugment), \
             with p = {}: the window's per-mel-bin mean and deviation over time replaced by a mix \
             of its own and another batch window's, own share Beta({a}, {a}).",
            ms.prob,
            a = ms.alpha
        );
    }
    let _ = writeln!(
        s,
        "- Wall-clock: {:.0} s training, {:.0} s in all (loading, training, evaluation), on the \
         CPU of the build machine (2 cores shared with other jobs, `nice -n 19`).\n",
        c.train_s, c.total_s
    );
    let _ = writeln!(s, "## Held-out accuracy\n");
    let _ = writeln!(
        s,
        "Each held-out clip (zero-padded, centred, to one window if shorter) is cut into windows \
         every {} frames ({:.2} s), as the streaming detector sees it. **Window acc**: the \
         window's argmax is the clip's label. **Clip acc (mean)**: argmax of the mean probability \
         over the clip's windows. **Clip acc (max)**: the label of the single highest \
         (window, label) score. **Clips with p >= {t}**: share of the label's clips where some \
         window gives the label at least {t} (what a detector threshold of {t} would recall). \
         **Other-label windows with p >= {t}**: windows of *other* labels' held-out clips that \
         give this label at least {t} (false alarms before smoothing), out of {} windows in all.\n",
        c.report.hop_frames,
        c.report.hop_frames as f64 * c.fe.hop_s(),
        c.report.total_windows,
        t = c.report.threshold
    );
    s.push_str(&accuracy_table(c.report));
    let _ = writeln!(
        s,
        "\nClip-level confusion (mean rule), rows = true label:\n"
    );
    let labels = &mcfg.labels;
    let _ = writeln!(s, "| true \\ predicted | {} |", labels.join(" | "));
    let _ = writeln!(s, "| --- |{}", " ---: |".repeat(labels.len()));
    for (l, row) in labels.iter().zip(&c.report.confusion) {
        let cells: Vec<String> = row
            .iter()
            .map(|&v| if v == 0 { ".".into() } else { v.to_string() })
            .collect();
        let _ = writeln!(s, "| {l} | {} |", cells.join(" | "));
    }
    let _ = writeln!(s, "\n## Data and licences\n");
    let _ = writeln!(
        s,
        "Trained on `shared/data/audio` (444 clips, 19 labels, 16 kHz mono; see \
         `shared/data/SOURCES.md` and `audio/manifest.csv`). No audio is stored in this \
         repository or in the weights file.\n"
    );
    let _ = writeln!(
        s,
        "- **ESC-10** (K. J. Piczak, \"ESC: Dataset for Environmental Sound Classification\", ACM \
         MM 2015; `karolpiczak/ESC-10` @ 553c8f17): dog, rooster, crying_baby, sneezing, \
         clock_tick, rain, sea_waves, crackling_fire, helicopter, chainsaw. Licence: CC BY 3.0 \
         (per-clip Freesound licences CC0 / CC-BY / CC Sampling+, with per-clip attribution in \
         the manifest). Attribution is required when redistributing.\n\
         - **Sasmaz & Tek animal sounds** (E. Sasmaz, F. B. Tek, \"Animal Sound Classification \
         Using A Convolutional Neural Network\", UBMK 2018; `YashNita/Animal-Sound-Dataset` @ \
         574b5e2d): cat, dog, bird, chicken, cow, sheep, lion, frog, monkey, donkey. Licence: \
         **none stated** (no licence file, no terms in the README); SOURCES.md allows internal \
         testing and evaluation only, no redistribution. These weights are derived from those \
         clips: treat this model as internal-use until the dataset's terms are cleared or the \
         model is retrained on licensed data.\n"
    );
    let _ = writeln!(s, "## Limits\n");
    let _ = writeln!(
        s,
        "- Small data: {} held-out clips, 2-14 per label, so per-label numbers move in steps of \
         7-50 %.\n\
         - All cat clips and 40 of 70 dog clips come from one dataset (Sasmaz & Tek), partly \
         recorded at 8-11 kHz; real microphones and rooms will differ.\n\
         - The model has no \"silence\" or \"other\" label: it always picks one of its labels, so \
         the detector must gate on level and on per-label thresholds.",
        c.n_held
    );
    s
}
