//! `audio_cue_node`: the ROS 2 audio node. Audio from `audio` (audio_common_msgs/
//! AudioDataStamped, S16LE) or a microphone; sound events on `sound_events` and the visual
//! classes they map to on `cues` (both vision_msgs/Classification). Parameters go through
//! [`hlfp::ros::params::AudioNodeConfig`]; malformed audio is logged, counted and skipped.

use anyhow::Context as _;
use futures::StreamExt;
use hlfp::ros::convert::{diagnostic_array, diagnostic_status, s16le_mono, RejectionCounter};
use hlfp::ros::msgs::{AudioDataStamped, Classification, DiagnosticStatus, Header, RosMessage};
use hlfp::ros::params::{AudioInput, AudioNodeConfig, NodeParams};
use hlfp::ros::r2r_glue::{diagnostics_to_r2r, stamp_now, startup_config, SharedParams};
use r2r::QosProfile;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODE: &str = "audio_cue_node";

/// What the node has seen, for `/diagnostics`.
#[derive(Default)]
struct AudioCounters {
    messages: u64,
    samples: u64,
    rejected: RejectionCounter,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let ctx = r2r::Context::create().context("creating the ROS context")?;
    let mut node = r2r::Node::create(ctx, NODE, "").context("creating node audio_cue_node")?;
    let config: AudioNodeConfig = startup_config(&node).context("audio_cue_node parameters")?;
    let shared = SharedParams::new(config.clone());
    let params = shared.config.clone();
    let (param_handler, mut param_events) = node
        .make_derived_parameter_handler(Arc::new(Mutex::new(shared)))
        .context("parameter services")?;

    // Publishers of the detector's output. The streaming detector and the label -> class
    // mapping (audio issue) are not in this branch yet; once they are, each event becomes
    // `classification_msg(header, [(label, score)])` on sound_events and the mapped classes on
    // cues, with the audio message's header.
    let sound_events_pub = node
        .create_publisher_untyped(
            "sound_events",
            Classification::TYPE_NAME,
            QosProfile::default(),
        )
        .context("publisher sound_events (is vision_msgs installed?)")?;
    let cues_pub = node
        .create_publisher_untyped("cues", Classification::TYPE_NAME, QosProfile::default())
        .context("publisher cues")?;
    let diag_pub = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>(
            "/diagnostics",
            QosProfile::default(),
        )
        .context("publisher /diagnostics")?;
    let mut diag_timer = node.create_wall_timer(Duration::from_secs(1))?;
    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;

    let counters = Arc::new(Mutex::new(AudioCounters::default()));
    let audio = match config.input {
        AudioInput::Topic => Some(
            node.subscribe_untyped(
                "audio",
                AudioDataStamped::TYPE_NAME,
                QosProfile::sensor_data(),
            )
            .context("subscribing to audio (is audio_common_msgs installed?)")?,
        ),
        AudioInput::Mic => {
            tracing::error!(
                "input = mic: this build has no microphone capture wired (audio issue); \
                 set input: topic to use audio_common_msgs"
            );
            None
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::spawn(param_handler);
        tokio::spawn(async move {
            while let Some((name, value)) = param_events.next().await {
                tracing::info!("parameter {name} = {value:?}");
            }
        });

        if let Some(mut audio) = audio {
            let counters = counters.clone();
            let channels = config.channels;
            tokio::spawn(async move {
                while let Some(item) = audio.next().await {
                    let parsed = item
                        .map_err(|e| ("untyped", e.to_string()))
                        .and_then(|v| {
                            AudioDataStamped::from_json(v).map_err(|e| ("json", e.to_string()))
                        })
                        .and_then(|m| {
                            s16le_mono(&m, channels).map_err(|e| ("s16le", e.to_string()))
                        });
                    let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.messages += 1;
                    match parsed {
                        Ok(samples) => c.samples += samples.len() as u64,
                        Err((kind, e)) => {
                            c.rejected.count(kind);
                            tracing::warn!("bad audio message: {e}");
                        }
                    }
                }
            });
        }

        let counters_d = counters.clone();
        let params_d = params.clone();
        tokio::spawn(async move {
            // Keep the output publishers alive with the node (the detector will use them).
            let _outputs = (sound_events_pub, cues_pub);
            loop {
                if let Err(e) = diag_timer.tick().await {
                    tracing::error!("diagnostics timer: {e}");
                    break;
                }
                let cfg = params_d.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let c = counters_d.lock().unwrap_or_else(|p| p.into_inner());
                let mut values: Vec<(String, String)> = cfg
                    .to_pairs()
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect();
                values.push(("messages".into(), c.messages.to_string()));
                values.push(("samples".into(), c.samples.to_string()));
                values.push(("messages_rejected".into(), c.rejected.total().to_string()));
                let level = if c.rejected.total() > 0 {
                    DiagnosticStatus::WARN
                } else {
                    DiagnosticStatus::OK
                };
                drop(c);
                let header = Header {
                    stamp: stamp_now(&mut clock),
                    frame_id: String::new(),
                };
                let status = diagnostic_status(
                    "audio_cue_node: audio",
                    &cfg.mic_device,
                    level,
                    "detector not wired in this build",
                    &values,
                );
                let msg = diagnostics_to_r2r(&diagnostic_array(header, status));
                if let Err(e) = diag_pub.publish(&msg) {
                    tracing::warn!("publishing diagnostics: {e}");
                }
            }
        });

        let spin = tokio::task::spawn_blocking(move || loop {
            node.spin_once(Duration::from_millis(10));
        });
        spin.await.context("spin thread")
    })
}
