//! `hlfp run`: the guided pipeline without ROS. Frames from an image folder replayed at a set
//! fps (or a camera, feature `camera`, or a rosbag2 MCAP file: see `super::run_bag`); cues
//! from a WAV replayed in real time or a microphone (feature `mic`) through the streaming audio
//! path, or JSON lines on stdin. Results, cue events, drops and a final summary go out as JSON
//! lines.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use hlfp::pipeline::{
    stdin_cues, AudioCueSource, Clock, Control, CueSource, FrameClassifier, FramePolicy,
    FrameSource, ImageFolderSource, JsonLinesSink, MetricsSnapshot, MonotonicClock, NoCues,
    ResultSink, Runtime, RuntimeConfig, WavReplay,
};

use super::common::VisionArgs;

/// Arguments of `hlfp run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replay the images of this folder (sorted by name) as camera frames.
    #[arg(long, conflicts_with = "camera")]
    pub frames: Option<PathBuf>,
    #[command(flatten)]
    pub bag: super::run_bag::BagArgs,
    /// Frame rate of the replay (0 = as fast as the source reads; add --every-frame to classify
    /// every image at inference speed instead of dropping the ones that arrive while busy).
    #[arg(long, default_value_t = 10.0, conflicts_with = "bag")]
    pub fps: f64,
    /// Classify every frame: the source waits while the classifier is busy instead of the
    /// newest frame replacing the waiting one (no drops; for replays; a live camera falls
    /// behind under overload).
    #[arg(long)]
    pub every_frame: bool,
    /// Start the folder again after its last image.
    #[arg(long = "loop", conflicts_with_all = ["camera", "bag"])]
    pub looped: bool,
    /// Open this camera (index) instead of a folder; needs `--features camera`.
    #[arg(long)]
    pub camera: Option<u32>,
    /// Camera resolution WxH.
    #[arg(long, default_value = "640x480", conflicts_with_all = ["frames", "bag"])]
    pub resolution: String,
    /// Cues from this WAV, played in real time through the audio pipeline.
    #[arg(long, conflicts_with_all = ["mic", "cues_stdin"])]
    pub wav: Option<PathBuf>,
    /// Cues from a microphone (default input or the named one); needs `--features mic`.
    #[arg(long, num_args = 0..=1, default_missing_value = "", conflicts_with = "cues_stdin")]
    pub mic: Option<String>,
    /// Cues as JSON lines on stdin (`{"class":"cat","score":0.9}` or a bare class name).
    #[arg(long)]
    pub cues_stdin: bool,
    /// Audio classifier weights (with --wav or --mic; an ensemble spec as in `hlfp listen --help`).
    #[arg(long, default_value = hlfp::audio::DEFAULT_MODEL)]
    pub audio_model: PathBuf,
    /// Cue mapping and detector settings (with --wav or --mic).
    #[arg(long, default_value = "config/cues.toml")]
    pub cues: PathBuf,
    /// Classes listed per result.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Write the JSON lines here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub vision: VisionArgs,
}

/// The signal that stopped the run (0 = none): SIGINT or SIGTERM stop taking frames, flush
/// the outputs and write the summary; the process then exits with 128 + the signal number.
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// Run `hlfp run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(run_async(args));
    match STOPPED_BY.load(Ordering::SeqCst) {
        0 => outcome,
        sig => {
            outcome?;
            tracing::info!("stopped by signal {sig}; outputs flushed and the summary written");
            std::process::exit(128 + sig)
        }
    }
}

/// Wait for SIGINT or SIGTERM and return its number.
#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => 15,
        _ = int.recv() => 2,
    })
}

/// Wait for Ctrl-C and return SIGINT's number.
#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<i32> {
    tokio::signal::ctrl_c().await.map(|()| 2)
}

/// Stop the runtime on the first SIGINT/SIGTERM; exit at once on the second (a stuck run).
fn stop_on_signal(control: tokio::sync::mpsc::Sender<Control>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sig = match shutdown_signal().await {
            Ok(sig) => sig,
            Err(e) => {
                tracing::warn!("cannot watch for SIGINT/SIGTERM: {e}");
                return;
            }
        };
        STOPPED_BY.store(sig, Ordering::SeqCst);
        tracing::warn!("signal {sig}: stopping (again to exit at once)");
        let _ = control.send(Control::Stop).await;
        if let Ok(sig) = shutdown_signal().await {
            std::process::exit(128 + sig);
        }
    })
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.frames {
        let src = ImageFolderSource::open(dir, args.fps, "replay")?.looped(args.looped);
        return with_frames(&args, src).await;
    }
    if let Some(index) = args.camera {
        return camera(&args, index).await;
    }
    if let Some(bag) = &args.bag.bag {
        return super::run_bag::run(&args, bag).await;
    }
    bail!("give a frame source: --frames DIR [--fps N], --camera INDEX or --bag FILE.mcap")
}

#[cfg(feature = "camera")]
async fn camera(args: &Args, index: u32) -> anyhow::Result<()> {
    let (w, h) = args
        .resolution
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("--resolution {:?}: expected WxH", args.resolution))?;
    let src = hlfp::pipeline::camera::CameraSource::open(index, w, h, args.fps)?;
    with_frames(args, src).await
}

#[cfg(not(feature = "camera"))]
async fn camera(_args: &Args, _index: u32) -> anyhow::Result<()> {
    bail!("camera capture is not in this build: rebuild with `cargo build --features camera`, or replay a folder with --frames DIR")
}

async fn with_frames<F: FrameSource>(args: &Args, frames: F) -> anyhow::Result<()> {
    if let Some(wav) = &args.wav {
        // Streamed, never loaded whole: a long recording costs a chunk of memory.
        let replay = WavReplay::from_file(wav, 20, true)?;
        let scorer = super::listen::load_scorer(&args.audio_model)?;
        let pipeline = super::listen::build_pipeline(&args.cues, scorer, replay.sample_rate_hz())?;
        let (cues, audio) = AudioCueSource::spawn(pipeline, replay)?;
        with_cues(args, frames, cues).await?;
        let summary = audio.join()?;
        tracing::info!(
            "audio: {} events, {} cues, stats {}",
            summary.events.len(),
            summary.cues.len(),
            serde_json::to_string(&summary.stats)?
        );
        // The frames ran on, but the cues stopped: the exit code must say so.
        if let Some(e) = summary.error {
            bail!("the audio cue source stopped early: {e}");
        }
        return Ok(());
    }
    if let Some(device) = &args.mic {
        return mic(args, frames, device).await;
    }
    if args.cues_stdin {
        return with_cues(args, frames, stdin_cues()).await;
    }
    with_cues(args, frames, NoCues).await
}

#[cfg(feature = "mic")]
async fn mic<F: FrameSource>(args: &Args, frames: F, device: &str) -> anyhow::Result<()> {
    let mic = hlfp::audio::capture::MicCapture::open((!device.is_empty()).then_some(device))?;
    tracing::info!(
        "capturing from {} at {} Hz",
        mic.device_name(),
        mic.sample_rate_hz()
    );
    let scorer = super::listen::load_scorer(&args.audio_model)?;
    let pipeline = super::listen::build_pipeline(&args.cues, scorer, mic.sample_rate_hz())?;
    let (cues, _audio) = AudioCueSource::spawn(pipeline, mic)?;
    with_cues(args, frames, cues).await
}

#[cfg(not(feature = "mic"))]
async fn mic<F: FrameSource>(_args: &Args, _frames: F, _device: &str) -> anyhow::Result<()> {
    bail!("microphone capture is not in this build: rebuild with `cargo build --features mic`, or replay a recording with --wav FILE")
}

async fn with_cues<F: FrameSource, C: CueSource>(
    args: &Args,
    frames: F,
    cues: C,
) -> anyhow::Result<()> {
    let clock = Arc::new(MonotonicClock::new());
    let classifier = args.vision.load()?;
    match &args.out {
        Some(path) => {
            go(
                args,
                classifier,
                frames,
                cues,
                json_file_sink(path).await?,
                clock,
            )
            .await
        }
        None => {
            go(
                args,
                classifier,
                frames,
                cues,
                hlfp::pipeline::stdout_sink(),
                clock,
            )
            .await
        }
    }
    .map(|_| ())
}

/// JSON lines into a file (`--out`).
pub(super) async fn json_file_sink(
    path: &std::path::Path,
) -> anyhow::Result<JsonLinesSink<tokio::io::BufWriter<tokio::fs::File>>> {
    let file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(JsonLinesSink::new(
        tokio::io::BufWriter::new(file),
        path.display().to_string(),
        false,
    ))
}

/// Run the runtime on these sources and sink, with time from `clock`; the final metrics.
pub(super) async fn go<K: FrameClassifier, F: FrameSource, C: CueSource, S: ResultSink>(
    args: &Args,
    classifier: K,
    frames: F,
    cues: C,
    sink: S,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<MetricsSnapshot> {
    let config = RuntimeConfig {
        top_n: args.top,
        guidance: args.vision.guidance()?,
        frame_policy: if args.every_frame {
            FramePolicy::Every
        } else {
            FramePolicy::Latest
        },
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config, clock);
    let watcher = stop_on_signal(runtime.control());
    let outcome = runtime.run(classifier, frames, cues, sink).await;
    watcher.abort();
    let (m, _) = outcome?;
    tracing::info!(
        "done: {} frames, {:.1} fps, latency p50 {:.1} ms p99 {:.1} ms, {} dropped",
        m.frames_done,
        m.fps,
        m.latency_p50_ms,
        m.latency_p99_ms,
        m.frames_dropped
    );
    Ok(m)
}
