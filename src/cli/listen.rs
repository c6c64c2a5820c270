//! `hlfp listen`: run the streaming audio path on a WAV file or a microphone and print
//! timestamped sound events and class cues; `--bench` times it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use hlfp::audio::cues::{ClassCue, CueConfig, CueMap, DATA_VISUAL_CLASSES};
use hlfp::audio::detector::{SoundEvent, WindowScorer};
use hlfp::audio::features::{LogMel, LogMelConfig};
use hlfp::audio::pipeline::AudioPipeline;
use hlfp::audio::resample::StreamResampler;
use hlfp::audio::wav::open_wav;

/// Arguments of `hlfp listen`.
#[derive(clap::Args)]
pub struct Args {
    /// WAV file to stream (16/24/32-bit int or 32-bit float, any rate and channel count).
    #[arg(long, conflicts_with = "mic")]
    pub wav: Option<PathBuf>,
    /// Capture from a microphone: the default input, or the named device (needs `--features mic`).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub mic: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Audio classifier weights (several joined by `+` are an ensemble: scores averaged;
    /// `cat@a.safetensors+b.safetensors`: a alone scores cat, b the other labels;
    /// `cat@a.safetensors+cat,*@b.safetensors`: cat averaged over both, b scores the rest).
    #[arg(long, default_value = hlfp::audio::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Cue mapping and detector settings.
    #[arg(long, default_value = "config/cues.toml")]
    pub cues: PathBuf,
    /// Time resample + features + detector on 10 s of audio and print ms per second of audio.
    #[arg(long, conflicts_with_all = ["wav", "mic"])]
    pub bench: bool,
}

/// Load the audio classifier as a window scorer: one weights file, or several joined by `+`
/// whose scores are averaged or routed by label ([`hlfp::audio::ensemble::Ensemble`]).
pub fn load_scorer(model: &Path) -> anyhow::Result<Box<dyn WindowScorer + Send>> {
    let e = hlfp::audio::ensemble::Ensemble::load(model, &candle_core::Device::Cpu)
        .with_context(|| format!("loading the audio classifier {}", model.display()))?;
    Ok(Box::new(e))
}

/// Build the pipeline for `scorer`, validating the cue file against its labels and the
/// visual classes.
pub fn build_pipeline<S: WindowScorer>(
    cues_path: &Path,
    scorer: S,
    input_rate_hz: u32,
) -> anyhow::Result<AudioPipeline<S>> {
    let cfg = CueConfig::load(cues_path)?;
    let classes: Vec<String> = DATA_VISUAL_CLASSES.iter().map(|s| s.to_string()).collect();
    let map = CueMap::new(&cfg.cues, scorer.labels(), &classes)
        .with_context(|| format!("validating {}", cues_path.display()))?;
    Ok(AudioPipeline::new(
        LogMelConfig::default(),
        cfg.detector,
        map,
        scorer,
        input_rate_hz,
    )?)
}

fn print(json: bool, events: &mut Vec<SoundEvent>, cues: &mut Vec<ClassCue>) {
    for e in events.drain(..) {
        if json {
            println!(
                "{}",
                serde_json::json!({"type": "event", "label": e.label, "score": e.score, "onset_s": e.onset_s})
            );
        } else {
            println!(
                "{:9.3} s  event {:<14} score {:.3}",
                e.onset_s, e.label, e.score
            );
        }
    }
    for c in cues.drain(..) {
        if json {
            println!(
                "{}",
                serde_json::json!({"type": "cue", "class": c.class, "score": c.score, "source": c.source, "time_s": c.time_s})
            );
        } else {
            println!(
                "{:9.3} s  cue   {:<14} score {:.3}",
                c.time_s, c.class, c.score
            );
        }
    }
}

/// Run `hlfp listen`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.bench {
        return bench(&args);
    }
    if let Some(wav) = &args.wav {
        // Streamed in 20 ms chunks, as a device would deliver it; never loaded whole.
        let mut stream = open_wav(wav)?;
        let rate = stream.sample_rate_hz();
        let scorer = load_scorer(&args.model)?;
        let mut p = build_pipeline(&args.cues, scorer, rate)?;
        let (mut events, mut cues, mut chunk) = (Vec::new(), Vec::new(), Vec::new());
        while stream.read_frames((rate as usize / 50).max(1), &mut chunk)? > 0 {
            p.push(&chunk, rate, &mut events, &mut cues)?;
            print(args.json, &mut events, &mut cues);
        }
        if stream.frames_read() == 0 {
            bail!("{}: WAV file has no samples (zero length)", wav.display());
        }
        if stream.non_finite() > 0 {
            tracing::warn!(
                "{}: {} NaN/Inf samples replaced by 0",
                wav.display(),
                stream.non_finite()
            );
        }
        if stream.truncated() {
            tracing::warn!(
                "{}: the file ends before the data size in its header (recording cut off?); \
                 used the {} samples it has",
                wav.display(),
                stream.frames_read()
            );
        }
        // Trailing silence so the last second is scored, then flush.
        let pad = vec![0.0; rate as usize];
        p.push(&pad, rate, &mut events, &mut cues)?;
        p.finish(&mut events, &mut cues)?;
        print(args.json, &mut events, &mut cues);
        tracing::info!("stats: {}", serde_json::to_string(&p.stats())?);
        return Ok(());
    }
    if let Some(device) = &args.mic {
        return listen_mic(&args, device);
    }
    bail!("give --wav FILE, --mic [DEVICE] or --bench")
}

#[cfg(not(feature = "mic"))]
fn listen_mic(_args: &Args, _device: &str) -> anyhow::Result<()> {
    bail!("microphone capture is not in this build: rebuild with `cargo build --features mic`")
}

#[cfg(feature = "mic")]
fn listen_mic(args: &Args, device: &str) -> anyhow::Result<()> {
    use hlfp::audio::capture::MicCapture;
    use std::sync::atomic::Ordering;
    let mic = MicCapture::open((!device.is_empty()).then_some(device))?;
    tracing::info!(
        "capturing from {} at {} Hz, {} channels",
        mic.device_name(),
        mic.sample_rate_hz(),
        mic.channels()
    );
    let scorer = load_scorer(&args.model)?;
    let mut p = build_pipeline(&args.cues, scorer, mic.sample_rate_hz())?;
    let (mut events, mut cues) = (Vec::new(), Vec::new());
    loop {
        if let Some(buf) = mic.recv_timeout(std::time::Duration::from_millis(500))? {
            p.push(&buf, mic.sample_rate_hz(), &mut events, &mut cues)?;
            mic.recycle(buf);
            print(args.json, &mut events, &mut cues);
        }
        let dropped = mic.counters().dropped_samples.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::debug!("dropped {dropped} samples so far");
        }
    }
}

/// A fixed-cost scorer for the benchmark when no classifier is available.
struct ConstScorer(Vec<String>);

impl WindowScorer for ConstScorer {
    fn labels(&self) -> &[String] {
        &self.0
    }
    fn window_frames(&self) -> usize {
        96
    }
    fn score(&mut self, _window: &[f32]) -> hlfp::Result<Vec<f32>> {
        Ok(vec![0.0; self.0.len()])
    }
}

/// Milliseconds of one core per second of 48 kHz audio that the whole path (resample, log-mel,
/// classifier, detector) may use (issue 15's real-time budget).
pub const BUDGET_MS_PER_S: f64 = 50.0;

/// Median of `runs` timings of `f`, in ms per second of `seconds` of audio.
fn median_ms_per_s(
    runs: usize,
    seconds: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut t_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        t_ms.push(t.elapsed().as_secs_f64() * 1000.0 / seconds as f64);
    }
    t_ms.sort_by(f64::total_cmp);
    Ok(t_ms[t_ms.len() / 2])
}

fn bench(args: &Args) -> anyhow::Result<()> {
    // One core: candle's CPU kernels read RAYON_NUM_THREADS when they first run.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let (seconds, runs) = (10usize, 5usize);
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    let mut noise = |n: usize, rate: usize| -> Vec<f32> {
        (0..n * rate)
            .map(|i| {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                0.1 * ((rng_state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    + 0.3 * (i as f32 * 0.05).sin()
            })
            .collect()
    };
    let x48 = noise(seconds, 48_000);
    let x16 = noise(seconds, 16_000);

    let resample_ms = median_ms_per_s(runs, seconds, || {
        let mut r = StreamResampler::new(48_000, 16_000)?;
        let mut out = Vec::with_capacity(16_000 * seconds + 4096);
        for c in x48.chunks(960) {
            r.process(c, &mut out)?;
        }
        Ok(())
    })?;
    let features_ms = median_ms_per_s(runs, seconds, || {
        let mut lm = LogMel::new(LogMelConfig::default())?;
        let mut frames = Vec::with_capacity(64 * 100 * seconds);
        for c in x16.chunks(320) {
            lm.process(c, &mut frames);
        }
        Ok(())
    })?;

    let (scorer, which): (Box<dyn WindowScorer>, String) = match load_scorer(&args.model) {
        Ok(s) => (s, args.model.display().to_string()),
        Err(e) => {
            tracing::warn!("{e:#}; timing the detector with a constant scorer");
            let labels = CueConfig::load(&args.cues)?.cues.keys().cloned().collect();
            (
                Box::new(ConstScorer(labels)),
                "constant scorer (no classifier)".into(),
            )
        }
    };
    let mut p = build_pipeline(&args.cues, scorer, 48_000)?;
    let (mut ev, mut cues) = (Vec::new(), Vec::new());
    let total_ms = median_ms_per_s(runs, seconds, || {
        p.reset();
        for c in x48.chunks(960) {
            p.push(c, 48_000, &mut ev, &mut cues)?;
        }
        Ok(())
    })?;
    let windows = p.stats().detector.windows;
    let met = total_ms <= BUDGET_MS_PER_S;
    let report = serde_json::json!({
        "audio_s": seconds,
        "runs": runs,
        "threads": 1,
        "resample_48k_to_16k_ms_per_s": resample_ms,
        "logmel_ms_per_s": features_ms,
        "pipeline_ms_per_s": total_ms,
        "budget_ms_per_s": BUDGET_MS_PER_S,
        "budget_met": met,
        "windows_scored": windows,
        "scorer": which,
        "real_time_factor": total_ms / 1000.0,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "1 s of 48 kHz audio on one thread (median of {runs} runs over {seconds} s): resample \
             {resample_ms:.2} ms, log-mel {features_ms:.2} ms, whole pipeline ({which}) \
             {total_ms:.2} ms ({windows} windows per run); budget {BUDGET_MS_PER_S:.0} ms: {}",
            if met { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
