//! `hlfp demo`: the cross-modal scenario. Photos of several classes stream past at a set fps;
//! the target appears now and then. Partway through, a real recording of the target's sound
//! (a held-out ESC-10 dog bark by default) plays through the real audio pipeline (resampler,
//! log-mel, classifier, detector, cue map) in real time; its cue switches the vision model to
//! the cutout with a raised gain. Prints the report and writes the timeline PNG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use hlfp::audio::wav::read_wav;
use hlfp::demo::{
    background_noise, place_sound, timeline_figure, DemoReport, Scenario, ScenarioConfig,
};
use hlfp::pipeline::{
    AudioCueSource, ChannelSink, ImageFolderSource, MonotonicClock, Record, Runtime, RuntimeConfig,
    WavReplay,
};

use super::common::VisionArgs;

/// Arguments of `hlfp demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shared data folder: photos in `images/<class>/`, sounds in `audio/<label>/`.
    #[arg(long, default_value = "../shared/data")]
    pub media: PathBuf,
    /// The class to look for.
    #[arg(long, default_value = "dog")]
    pub target: String,
    /// The sound that cues it: a WAV file. Default: the first held-out ESC-10 clip (CC BY) of
    /// the sound label mapped to the target (models/audio_cues.holdout.txt), else any held-out
    /// clip of that label.
    #[arg(long)]
    pub sound: Option<PathBuf>,
    /// When the sound starts, in seconds from the start.
    #[arg(long, default_value_t = 10.0)]
    pub sound_at: f64,
    /// Length of the run in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Frames per second.
    #[arg(long, default_value_t = 8.0)]
    pub fps: f64,
    /// Mean seconds between target appearances.
    #[arg(long, default_value_t = 1.5)]
    pub episode_every: f64,
    /// Frames per target appearance.
    #[arg(long, default_value_t = 3)]
    pub episode_frames: usize,
    /// Seed of the scenario layout.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How long the cue holds after the sound (ms); the demo keeps looking for a while.
    #[arg(long, default_value_t = 12_000)]
    pub cue_ttl_ms: u64,
    /// Audio classifier weights.
    #[arg(long, default_value = "models/audio_cues.safetensors")]
    pub audio_model: PathBuf,
    /// Cue mapping and detector settings.
    #[arg(long, default_value = "config/cues.toml")]
    pub cues: PathBuf,
    /// Output folder: report.txt, report.json, records.jsonl, timeline.png, sound.wav.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub vision: VisionArgs,
}

fn photos_by_class(
    dir: &Path,
    classes: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut out = BTreeMap::new();
    for c in classes {
        let d = dir.join(c);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut v: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        v.sort();
        if !v.is_empty() {
            out.insert(c.clone(), v);
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no photos of the model's classes (expected {}/<class>/*.jpg)",
            dir.display(),
            dir.display()
        );
    }
    Ok(out)
}

/// The default sound: a held-out clip of a label whose cue reaches the target.
fn default_sound(args: &Args, cues_path: &Path) -> anyhow::Result<PathBuf> {
    let cfg = hlfp::audio::cues::CueConfig::load(cues_path)?;
    let labels: Vec<&String> = cfg
        .cues
        .iter()
        .filter(|(_, classes)| classes.contains(&args.target))
        .map(|(l, _)| l)
        .collect();
    if labels.is_empty() {
        bail!(
            "no sound label in {} cues {:?}; pass --sound FILE",
            cues_path.display(),
            args.target
        );
    }
    let holdout_path = args.audio_model.with_extension("holdout.txt");
    let holdout = std::fs::read_to_string(&holdout_path)
        .with_context(|| format!("reading {} (the held-out clips)", holdout_path.display()))?;
    let candidates: Vec<&str> = holdout
        .lines()
        .map(str::trim)
        .filter(|l| labels.iter().any(|lab| l.starts_with(&format!("{lab}/"))))
        .collect();
    let pick = candidates
        .iter()
        .find(|l| l.contains("/esc10_"))
        .or(candidates.first())
        .with_context(|| {
            format!(
                "no held-out clip of {labels:?} in {}",
                holdout_path.display()
            )
        })?;
    Ok(args.media.join("audio").join(pick))
}

fn write_wav(path: &Path, samples: &[f32], rate: u32) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("creating {}", path.display()))?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// Run `hlfp demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.media.join("images").is_dir() {
        bail!(
            "{}: media not found. The demo plays photos and sounds from the shared data folder \
             (images/<class>/*.jpg, audio/<label>/*.wav); pass --media DIR",
            args.media.display()
        );
    }
    let classifier = args.vision.load()?;
    let classes = classifier.config().class_names.clone();
    if !classes.contains(&args.target) {
        bail!("target {:?} is not a model class: {classes:?}", args.target);
    }
    let photos = photos_by_class(&args.media.join("images"), &classes)?;
    let scenario = Scenario::build(
        ScenarioConfig {
            target: args.target.clone(),
            fps: args.fps,
            seconds: args.seconds,
            episode_frames: args.episode_frames,
            episode_every_s: args.episode_every,
            seed: args.seed,
        },
        &photos,
    )?;

    // The audio track: quiet noise for the whole run with the sound placed at --sound-at.
    let sound_path = match &args.sound {
        Some(p) => p.clone(),
        None => default_sound(&args, &args.cues)?,
    };
    let clip = read_wav(&sound_path)?;
    let rate = clip.sample_rate_hz;
    let total = (args.seconds * rate as f64) as usize;
    let at = (args.sound_at * rate as f64) as usize;
    if at >= total {
        bail!(
            "--sound-at {} s is past the end of the run ({} s)",
            args.sound_at,
            args.seconds
        );
    }
    let track = place_sound(
        &background_noise(total, 0.003, args.seed),
        &clip.samples,
        at,
        30.0,
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_wav(&args.out.join("sound.wav"), &track, rate)?;

    let scorer = super::listen::load_scorer(&args.audio_model)?;
    let pipeline = super::listen::build_pipeline(&args.cues, scorer, rate)?;
    let mut guidance = args.vision.guidance()?;
    guidance.ttl_ms = args.cue_ttl_ms;
    let config = RuntimeConfig {
        top_n: classes.len(),
        guidance,
        ..RuntimeConfig::default()
    };
    eprintln!(
        "demo: {} frames at {} fps ({:.0} s), {} appearances of {:?}; sound {} at {:.1} s; model {} on {}",
        scenario.frames.len(),
        args.fps,
        args.seconds,
        scenario.episodes(),
        args.target,
        sound_path.display(),
        args.sound_at,
        args.vision.model.display(),
        classifier.device_name()
    );
    let files: Vec<PathBuf> = scenario.frames.iter().map(|f| f.path.clone()).collect();
    let frames = ImageFolderSource::from_files(files, args.fps, "demo_camera")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bar = indicatif::ProgressBar::new(scenario.frames.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} frames {msg}")?,
    );
    let (records, audio) = rt.block_on(async {
        let runtime = Runtime::new(config, Arc::new(MonotonicClock::new()));
        let (sink, mut rx) = ChannelSink::new(256);
        let collector = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(r) = rx.recv().await {
                match &r {
                    Record::Result(f) => {
                        bar.inc(1);
                        bar.set_message(format!(
                            "top {} | {} branches",
                            f.top.first().map_or("-", |c| c.class.as_str()),
                            f.active.len()
                        ));
                    }
                    Record::Cue(c) => bar.println(format!(
                        "{:6.2} s  cue {} (score {:.2}, from {})",
                        c.time_ms as f64 / 1e3,
                        c.class,
                        c.score,
                        c.source
                    )),
                    _ => {}
                }
                out.push(r);
            }
            bar.finish_and_clear();
            out
        });
        let replay = WavReplay::new(track, rate, 20, true)?;
        let (cues, audio) = AudioCueSource::spawn(pipeline, replay)?;
        runtime.run(classifier, frames, cues, sink).await?;
        let records = collector.await?;
        anyhow::Ok((records, audio))
    })?;
    let audio = audio.join()?;

    let report = DemoReport::from_records(&scenario, &records);
    let text = report.text();
    println!("{text}");
    for e in &audio.events {
        println!(
            "sound event {} (score {:.2}) at {:.2} s of audio",
            e.label, e.score, e.onset_s
        );
    }
    std::fs::write(args.out.join("report.txt"), &text)?;
    let json = serde_json::json!({
        "report": report,
        "scenario": scenario.config,
        "sound": sound_path,
        "sound_at_s": args.sound_at,
        "audio": audio,
        "model": args.vision.model,
    });
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let mut lines = String::new();
    for r in &records {
        lines += &serde_json::to_string(r)?;
        lines.push('\n');
    }
    std::fs::write(args.out.join("records.jsonl"), lines)?;
    let font = super::common::load_font(None);
    let img = hlfp::plot::figure_image(&timeline_figure(&scenario, &records, font))?;
    let png = args.out.join("timeline.png");
    img.save(&png)
        .with_context(|| format!("writing {}", png.display()))?;
    println!(
        "wrote {} (report.txt, report.json, records.jsonl, timeline.png, sound.wav)",
        args.out.display()
    );
    Ok(())
}
