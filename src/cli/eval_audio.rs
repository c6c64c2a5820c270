//! `hlfp eval-audio`: stream every labelled clip through the detector and print recall, false
//! cues and latency as one JSON object; `--latency` mixes clips into long background recordings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hlfp::audio::cues::CueConfig;
use hlfp::audio::detector::WindowScorer;
use hlfp::audio::eval::{
    measure_latency, run_clip, summarize, sweep_detector_config, LatencyConfig, MemoScorer,
    TargetClip,
};
use hlfp::audio::wav::read_wav;

use super::listen::{build_pipeline, load_scorer};

/// Sound labels used as background beds for `--latency` (no animal, mapped to no class).
pub const BACKGROUND_LABELS: [&str; 5] = [
    "rain",
    "sea_waves",
    "crackling_fire",
    "clock_tick",
    "helicopter",
];

/// Arguments of `hlfp eval-audio`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of `<label>/*.wav`.
    #[arg(long)]
    pub data: PathBuf,
    /// Only these clips: one path relative to `--data` per line (e.g. a `train-audio` `<out>.test.txt`).
    #[arg(long)]
    pub holdout: Option<PathBuf>,
    /// Print one JSON object (the default output is the same JSON, pretty-printed).
    #[arg(long)]
    pub json: bool,
    /// Audio classifier weights (an ensemble spec as in `hlfp listen --help`).
    #[arg(long, default_value = hlfp::audio::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Cue mapping and detector settings.
    #[arg(long, default_value = "config/cues.toml")]
    pub cues: PathBuf,
    /// Seconds of silence streamed after each clip so short clips are scored.
    #[arg(long, default_value_t = 1.0)]
    pub pad_s: f64,
    /// Latency measurement: mix clips into background recordings at these SNRs.
    #[arg(long, conflicts_with = "sweep_on")]
    pub latency: bool,
    /// SNRs for `--latency`, dB.
    #[arg(long, value_delimiter = ',', default_values_t = [20.0, 10.0, 0.0], requires = "latency")]
    pub snr_db: Vec<f64>,
    /// Threshold sweep: one JSON line per (on threshold, `--sweep-min-on`) pair, with the same
    /// `on` for every label (the file's per-label thresholds dropped) and `off = on - (default
    /// on - default off)` of the file; the classifier runs once per distinct window. Use it on
    /// a validation list (`--holdout <out>.val.txt`), not on the held-out clips.
    #[arg(long, value_delimiter = ',')]
    pub sweep_on: Vec<f32>,
    /// `min_on_windows` values for `--sweep-on` (default: the file's).
    #[arg(long, value_delimiter = ',', requires = "sweep_on")]
    pub sweep_min_on: Vec<usize>,
    /// Held-out-by-source evaluation: `MODEL.safetensors:LIST.txt`, repeatable (one per fold;
    /// LIST names clips relative to `--data` that MODEL never trained on, e.g. a
    /// `train-audio --split source` run's `<out>.test.txt`). Streams, per-source tables, and
    /// with `--sweep-on` the recall / false-cue trade-off; results pooled over folds.
    #[arg(long)]
    pub fold: Vec<String>,
    /// With `--fold`: SNR of the cat/dog clips mixed into the background stream, dB (of the
    /// clip's active part over the background under it).
    #[arg(long, default_value_t = 10.0)]
    pub mix_snr_db: f64,
    /// With `--fold`: write the detection-error plot (recall vs false cues per minute) here.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// With `--fold`: write the per-source tables as Markdown here.
    #[arg(long)]
    pub report_md: Option<PathBuf>,
    /// With `--fold` and `--sweep-on` on VALIDATION lists: choose the operating point. From the
    /// strictest of these limits (false cues per minute of background), each class takes the
    /// (on, windows in a row) with its best recall within the limit; the first limit at which
    /// every class keeps `--choose-min-recall` wins. Reported as `chosen` in the JSON.
    #[arg(long, value_delimiter = ',', requires_all = ["fold", "sweep_on"])]
    pub choose_limits: Vec<f64>,
    /// Minimum validation recall every class must keep for `--choose-limits`.
    #[arg(long, default_value_t = 0.5, requires = "choose_limits")]
    pub choose_min_recall: f64,
    /// Write `--cues` with the chosen per-label thresholds and window counts here (a cue file
    /// for `listen`, `run`, the audio node, and the held-out `--fold` evaluation).
    #[arg(long, requires = "choose_limits")]
    pub write_cues: Option<PathBuf>,
}

/// `(label, path)` of every clip in `data/<label>/*.wav`, or of the listed ones, sorted.
pub fn list_clips(data: &Path, holdout: Option<&Path>) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut clips = Vec::new();
    if let Some(list) = holdout {
        let text =
            std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let rel = Path::new(line);
            let label = rel
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str())
                .with_context(|| {
                    format!(
                        "{}: line {line:?} is not <label>/<file>.wav",
                        list.display()
                    )
                })?;
            clips.push((label.to_string(), data.join(rel)));
        }
    } else {
        let dirs =
            std::fs::read_dir(data).with_context(|| format!("reading {}", data.display()))?;
        for d in dirs {
            let d = d?.path();
            let Some(label) = d.file_name().and_then(|s| s.to_str()).map(str::to_string) else {
                continue;
            };
            if !d.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&d)? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")) {
                    clips.push((label.clone(), f));
                }
            }
        }
    }
    clips.sort();
    if clips.is_empty() {
        bail!("no clips found in {}", data.display());
    }
    Ok(clips)
}

/// Run `hlfp eval-audio`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.fold.is_empty() {
        return super::eval_audio_sources::run(&args);
    }
    let clips = list_clips(&args.data, args.holdout.as_deref())?;
    if !args.sweep_on.is_empty() {
        return sweep(&args, &clips);
    }
    let scorer = load_scorer(&args.model)?;
    let mut p = build_pipeline(&args.cues, scorer, 16_000)?;
    let report = if args.latency {
        latency(&args, &clips, &mut p)?
    } else {
        let bar = indicatif::ProgressBar::new(clips.len() as u64);
        let mut results = Vec::with_capacity(clips.len());
        for (label, path) in &clips {
            let clip = read_wav(path)?;
            results.push(run_clip(
                &mut p,
                label,
                &clip.samples,
                clip.sample_rate_hz,
                args.pad_s,
            )?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        serde_json::to_value(summarize(&results, p.cue_map()))?
    };
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// `--sweep-on`: the detector with each (on, min_on_windows) over the same clips.
fn sweep(args: &Args, clips: &[(String, PathBuf)]) -> anyhow::Result<()> {
    let file = CueConfig::load(&args.cues)?;
    let min_ons = if args.sweep_min_on.is_empty() {
        vec![file.detector.min_on_windows]
    } else {
        args.sweep_min_on.clone()
    };
    let mut memo = MemoScorer::new(load_scorer(&args.model)?);
    // Refuse a bad value before streaming anything.
    for &min_on in &min_ons {
        for &on in &args.sweep_on {
            sweep_detector_config(&file.detector, on, min_on, memo.labels())
                .context("--sweep-on / --sweep-min-on")?;
        }
    }
    let mut audio = Vec::with_capacity(clips.len());
    for (label, path) in clips {
        let c = read_wav(path)?;
        audio.push((label.as_str(), c.samples, c.sample_rate_hz));
    }
    // Validates the mapping against the classifier's labels once.
    let map = build_pipeline(&args.cues, &mut memo, 16_000)?
        .cue_map()
        .clone();
    let bar = indicatif::ProgressBar::new((args.sweep_on.len() * min_ons.len()) as u64);
    for &min_on in &min_ons {
        for &on in &args.sweep_on {
            let det = sweep_detector_config(&file.detector, on, min_on, memo.labels())
                .context("--sweep-on / --sweep-min-on")?;
            let mut p = hlfp::audio::pipeline::AudioPipeline::new(
                hlfp::audio::features::LogMelConfig::default(),
                det.clone(),
                map.clone(),
                &mut memo,
                16_000,
            )?;
            let mut results = Vec::with_capacity(audio.len());
            for (label, samples, rate) in &audio {
                results.push(run_clip(&mut p, label, samples, *rate, args.pad_s)?);
            }
            let report = summarize(&results, p.cue_map());
            let line = serde_json::json!({
                "on": on,
                "off": det.default_thresholds.off,
                "min_on_windows": min_on,
                "report": report,
            });
            bar.suspend(|| println!("{line}"));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let (hits, misses) = memo.counts();
    tracing::info!("{misses} windows scored, {hits} answered from the cache");
    Ok(())
}

fn latency<S: hlfp::audio::detector::WindowScorer>(
    args: &Args,
    clips: &[(String, PathBuf)],
    p: &mut hlfp::audio::pipeline::AudioPipeline<S>,
) -> anyhow::Result<serde_json::Value> {
    // Background: every clip of the background labels in `--data` (all of them, not only the
    // held-out ones: they are never cue targets), end to end.
    let all = list_clips(&args.data, None)?;
    let mut bg = Vec::new();
    for (label, path) in all
        .iter()
        .filter(|(l, _)| BACKGROUND_LABELS.contains(&l.as_str()))
    {
        let c = read_wav(path)?;
        if c.sample_rate_hz != 16_000 {
            bail!(
                "{}: background clips must be 16 kHz ({label})",
                path.display()
            );
        }
        bg.extend_from_slice(&c.samples);
    }
    if bg.is_empty() {
        bail!(
            "no background clips ({BACKGROUND_LABELS:?}) in {}",
            args.data.display()
        );
    }
    let mut targets = Vec::new();
    for (label, path) in clips
        .iter()
        .filter(|(l, _)| !p.cue_map().classes_for(l).is_empty())
    {
        let c = read_wav(path)?;
        if c.sample_rate_hz == 16_000 && c.samples.iter().any(|&s| s != 0.0) {
            targets.push(TargetClip {
                label: label.clone(),
                samples: c.samples,
            });
        }
    }
    let mut runs = Vec::new();
    for &snr_db in &args.snr_db {
        let cfg = LatencyConfig {
            spacing_s: 8.0,
            lead_in_s: 4.0,
            max_latency_s: 3.0,
            snr_db,
        };
        runs.push(measure_latency(p, &bg, &targets, 16_000, &cfg)?);
    }
    Ok(serde_json::json!({
        "background_labels": BACKGROUND_LABELS,
        "background_s": bg.len() as f64 / 16_000.0,
        "target_clips": targets.len(),
        "runs": runs,
    }))
}
