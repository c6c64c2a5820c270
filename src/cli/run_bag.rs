//! `hlfp run --bag IN.mcap`: replay a rosbag2 MCAP recording through the same runtime as the
//! other sources (`hlfp::bag`), optionally recording the results with `--record OUT.mcap`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use hlfp::bag::{
    BagReader, BagRecorder, BagReplay, InputMapper, Pacing, RecordTopics, TopicConfig,
};
use hlfp::pipeline::{FrameClassifier, ResultSink, TeeSink};

use super::run::{go, json_file_sink, Args};

/// The bag options of `hlfp run`.
#[derive(clap::Args, Debug)]
pub struct BagArgs {
    /// Replay this rosbag2 MCAP file (CDR messages): images, cues and audio from its topics.
    #[arg(long, conflicts_with_all = ["frames", "camera", "wav", "mic", "cues_stdin"])]
    pub bag: Option<PathBuf>,
    /// Image topic of the bag (sensor_msgs/msg/Image or CompressedImage); default: the first.
    #[arg(long, requires = "bag")]
    pub image_topic: Option<String>,
    /// Cue topic of the bag (vision_msgs/msg/Classification, class_id = visual class).
    #[arg(long, default_value = "/cues", requires = "bag", conflicts_with_all = ["frames", "camera"])]
    pub cue_topic: String,
    /// Audio topic of the bag (audio_common_msgs AudioDataStamped or AudioStamped), run through
    /// the audio model (--audio-model, --cues) into cues; default: audio is not read.
    #[arg(long, requires = "bag")]
    pub audio_topic: Option<String>,
    /// Sample rate of audio messages that carry none (AudioDataStamped, S16LE).
    #[arg(long, default_value_t = 16_000, requires = "audio_topic")]
    pub audio_rate: u32,
    /// Interleaved channels of audio messages that carry none.
    #[arg(long, default_value_t = 1, requires = "audio_topic")]
    pub audio_channels: u32,
    /// Replay speed relative to the recording (1 = recorded timing); refused with
    /// --every-frame, which replays as fast as the classifier goes.
    #[arg(
        long,
        default_value_t = 1.0,
        requires = "bag",
        conflicts_with_all = ["every_frame", "frames", "camera"]
    )]
    pub rate: f64,
    /// Record the results into this MCAP file: vision_msgs Classification per frame (with the
    /// frame's header), accepted cues, LabelInfo, DiagnosticArray.
    #[arg(long, requires = "bag")]
    pub record: Option<PathBuf>,
}

/// Replay `bag` as `args` say.
pub async fn run(args: &Args, bag: &Path) -> anyhow::Result<()> {
    let b = &args.bag;
    let reader = BagReader::open(bag)?;
    let mapper = InputMapper::new(TopicConfig {
        image_topic: b.image_topic.clone(),
        cue_topic: b.cue_topic.clone(),
        audio_topic: b.audio_topic.clone(),
        audio_rate_hz: b.audio_rate,
        audio_channels: b.audio_channels,
    })?;
    let pacing = if args.every_frame {
        Pacing::Lockstep
    } else {
        Pacing::Rate(b.rate)
    };
    let audio = match &b.audio_topic {
        Some(_) => {
            let scorer = super::listen::load_scorer(&args.audio_model)?;
            Some(super::listen::build_pipeline(
                &args.cues,
                scorer,
                b.audio_rate,
            )?)
        }
        None => None,
    };
    let classifier = args.vision.load()?;
    let (replay, frames, cues) = BagReplay::spawn(reader, mapper, pacing, audio)?;
    let started = Instant::now();
    let m = match &b.record {
        Some(path) => {
            let recorder = BagRecorder::create(
                path,
                &RecordTopics::default(),
                classifier.class_names().to_vec(),
                replay.clock(),
            )?
            .with_bag_stats(replay.stats());
            match &args.out {
                Some(out) => {
                    let sink = TeeSink(json_file_sink(out).await?, recorder);
                    run_with(args, &replay, classifier, frames, cues, sink).await
                }
                None => {
                    let sink = TeeSink(hlfp::pipeline::stdout_sink(), recorder);
                    run_with(args, &replay, classifier, frames, cues, sink).await
                }
            }
        }
        None => match &args.out {
            Some(out) => {
                let sink = json_file_sink(out).await?;
                run_with(args, &replay, classifier, frames, cues, sink).await
            }
            None => {
                let sink = hlfp::pipeline::stdout_sink();
                run_with(args, &replay, classifier, frames, cues, sink).await
            }
        },
    };
    let wall_s = started.elapsed().as_secs_f64();
    let summary = replay.join()?;
    let m = m?;
    tracing::info!(
        "bag: {} messages, {} frames classified in {wall_s:.2} s ({:.1} frames/s wall clock), \
         skipped {}",
        summary.bag.messages,
        m.frames_done,
        m.frames_done as f64 / wall_s.max(1e-9),
        serde_json::to_string(&summary.bag.skipped)?
    );
    if let Some(a) = &summary.audio {
        tracing::info!("bag audio: {}", serde_json::to_string(a)?);
    }
    if let Some(why) = &summary.stopped {
        tracing::warn!("bag replay stopped early: {why}");
    }
    if let Some(fatal) = &summary.bag.fatal {
        anyhow::bail!("{fatal} (everything before it was replayed)");
    }
    if summary.bag.image_messages == 0 {
        anyhow::bail!(
            "{}: no messages on {}; the bag's topics: {}",
            bag.display(),
            b.image_topic
                .as_ref()
                .map(|t| format!("the image topic {t}"))
                .unwrap_or_else(|| "any sensor_msgs/msg/Image or CompressedImage topic".into()),
            serde_json::to_string(&summary.bag.topics)?
        );
    }
    Ok(())
}

async fn run_with<K, S>(
    args: &Args,
    replay: &BagReplay,
    classifier: K,
    frames: hlfp::pipeline::ChannelFrameSource,
    cues: hlfp::pipeline::ChannelCueSource,
    sink: S,
) -> anyhow::Result<hlfp::pipeline::MetricsSnapshot>
where
    K: FrameClassifier,
    S: ResultSink,
{
    go(
        args,
        classifier,
        frames,
        cues,
        replay.gate(sink),
        replay.clock(),
    )
    .await
    .context("bag replay")
}
