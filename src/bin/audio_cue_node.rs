//! `audio_cue_node`: the ROS 2 audio node. Wires audio (the `audio` topic or a microphone),
//! parameters and `/diagnostics` to [`hlfp::ros::audio_core::AudioCore`], which runs the
//! library's streaming audio path and builds the messages; nothing is decided here.
//!
//! Audio from `audio` (audio_common_msgs/AudioDataStamped, interleaved S16LE) or a microphone
//! (feature `mic`); sound events on `sound_events` and the visual classes they map to on `cues`
//! (both vision_msgs/Classification, with the audio's header). Malformed audio is logged,
//! counted and skipped.

use anyhow::Context as _;
use futures::StreamExt;
use hlfp::audio::classifier::AudioClassifier;
use hlfp::audio::cues::{CueConfig, DATA_VISUAL_CLASSES};
use hlfp::audio::detector::WindowScorer;
use hlfp::ros::audio_core::{AudioCore, AudioOutput};
use hlfp::ros::msgs::{AudioDataStamped, Classification, Header, RosMessage};
use hlfp::ros::params::{AudioInput, AudioNodeConfig};
use hlfp::ros::r2r_glue::{
    diagnostics_to_r2r, resolve_share_path, stamp_now, start_node, startup_config, SharedParams,
};
use r2r::{PublisherUntyped, QosProfile};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const PACKAGE: &str = "hlfp_node";
const NODE: &str = "audio_cue_node";

type Scorer = Box<dyn WindowScorer + Send>;
type Core = AudioCore<Scorer>;

/// Lock the core; a panic elsewhere must not take the node down with it.
fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The two output topics.
struct Outputs {
    sound_events: PublisherUntyped,
    cues: PublisherUntyped,
}

impl Outputs {
    fn publish(&self, out: AudioOutput) {
        let send =
            |publisher: &PublisherUntyped, topic: &str, msg: Classification| match msg.to_json() {
                Ok(json) => {
                    if let Err(e) = publisher.publish(json) {
                        tracing::warn!("publishing {topic}: {e}");
                    }
                }
                Err(e) => tracing::warn!("encoding {topic}: {e}"),
            };
        for msg in out.sound_events {
            tracing::info!(
                "sound event {:?}",
                msg.results.first().map(|h| h.class_id.as_str())
            );
            send(&self.sound_events, "sound_events", msg);
        }
        for msg in out.cues {
            send(&self.cues, "cues", msg);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut node = start_node(NODE)?;
    let config: AudioNodeConfig = startup_config(&node).context("audio_cue_node parameters")?;

    // The classifier and the mapping, loaded and validated as `hlfp listen` does.
    let model_path = resolve_share_path(PACKAGE, &config.model_path);
    let classifier = AudioClassifier::load(&model_path, &candle_core::Device::Cpu)
        .with_context(|| format!("loading model_path {}", model_path.display()))?;
    let mapping_path = resolve_share_path(PACKAGE, &config.mapping_file);
    let mapping = CueConfig::load(&mapping_path)
        .with_context(|| format!("reading mapping_file {}", mapping_path.display()))?;
    let visual_classes: Vec<String> = DATA_VISUAL_CLASSES.iter().map(|s| s.to_string()).collect();
    let scorer: Scorer = Box::new(classifier);
    let core = Arc::new(Mutex::new(
        AudioCore::new(config.clone(), &mapping, &visual_classes, scorer)
            .with_context(|| format!("mapping_file {}", mapping_path.display()))?,
    ));
    {
        let core = lock(&core);
        let det = core.detector_config();
        tracing::info!(
            "audio_cue_node: labels {:?}, input {}, thresholds on/off: default {}/{}, per label {:?}",
            core.labels(),
            config.input,
            det.default_thresholds.on,
            det.default_thresholds.off,
            det.label_thresholds
        );
    }

    let shared = SharedParams::new(config.clone());
    let params = shared.config.clone();
    let (param_handler, mut param_events) = node
        .make_derived_parameter_handler(Arc::new(Mutex::new(shared)))
        .context("parameter services")?;

    let outputs = Outputs {
        sound_events: node
            .create_publisher_untyped(
                "sound_events",
                Classification::TYPE_NAME,
                QosProfile::default(),
            )
            .context("publisher sound_events (is vision_msgs installed?)")?,
        cues: node
            .create_publisher_untyped("cues", Classification::TYPE_NAME, QosProfile::default())
            .context("publisher cues")?,
    };
    let diag_pub = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>(
            "/diagnostics",
            QosProfile::default(),
        )
        .context("publisher /diagnostics")?;
    let mut diag_timer = node.create_wall_timer(Duration::from_secs(1))?;
    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;

    // The input: the topic subscription (served by a task below, which owns the publishers),
    // or a capture thread that owns them.
    let mut topic = None;
    let hardware_id = match config.input {
        AudioInput::Topic => {
            let audio = node
                .subscribe_untyped(
                    "audio",
                    AudioDataStamped::TYPE_NAME,
                    QosProfile::sensor_data(),
                )
                .context("subscribing to audio (is audio_common_msgs installed?)")?;
            topic = Some((audio, outputs));
            "topic audio".to_string()
        }
        AudioInput::Mic => start_mic(&config.mic_device, core.clone(), outputs),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::spawn(param_handler);

        // Parameter changes accepted by the services: bring the core in line (a detector
        // change rebuilds the pipeline).
        let core_p = core.clone();
        let params_p = params.clone();
        tokio::spawn(async move {
            while let Some((name, value)) = param_events.next().await {
                let cfg = params_p.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match lock(&core_p).sync_config(&cfg) {
                    Ok(()) => tracing::info!("parameter {name} = {value:?}"),
                    Err(e) => tracing::error!("parameter {name}: {e}"),
                }
            }
        });

        // Topic audio: JSON from the untyped subscriber, through the core, published in order.
        if let Some((mut audio, outputs)) = topic {
            let core_a = core.clone();
            tokio::spawn(async move {
                while let Some(item) = audio.next().await {
                    let parsed = item
                        .map_err(|e| e.to_string())
                        .and_then(|v| AudioDataStamped::from_json(v).map_err(|e| e.to_string()));
                    let result = {
                        let mut core = lock(&core_a);
                        match parsed {
                            Ok(msg) => core.on_message(&msg).map_err(|e| e.to_string()),
                            Err(e) => {
                                core.count_bad_message("json");
                                Err(format!("not an AudioDataStamped: {e}"))
                            }
                        }
                    };
                    match result {
                        Ok(out) => outputs.publish(out),
                        Err(e) => tracing::warn!("bad audio message: {e}"),
                    }
                }
            });
        }

        // Diagnostics every second.
        let core_d = core.clone();
        let model = config.model_path.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = diag_timer.tick().await {
                    tracing::error!("diagnostics timer: {e}");
                    break;
                }
                let header = Header {
                    stamp: stamp_now(&mut clock),
                    frame_id: String::new(),
                };
                let msg =
                    diagnostics_to_r2r(&lock(&core_d).diagnostics(header, &model, &hardware_id));
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

/// Without the `mic` feature there is no capture: say so and run without input.
#[cfg(not(feature = "mic"))]
fn start_mic(_device: &str, _core: Arc<Mutex<Core>>, _outputs: Outputs) -> String {
    tracing::error!(
        "input = mic, but this build has no microphone capture: rebuild with `--features mic` \
         (colcon: --cmake-args -DHLFP_EXTRA_FEATURES=mic), or set input: topic to read \
         audio_common_msgs/AudioDataStamped from `audio`"
    );
    "mic unavailable (built without --features mic)".to_string()
}

/// Open the microphone and feed the core from a capture thread, which publishes what each
/// buffer produces. A device that cannot be opened is logged; the node keeps running (its
/// `/diagnostics` says so). Returns the hardware id for `/diagnostics`.
#[cfg(feature = "mic")]
fn start_mic(device: &str, core: Arc<Mutex<Core>>, outputs: Outputs) -> String {
    use hlfp::audio::capture::MicCapture;
    use hlfp::pipeline::AudioInput as _;
    let name = (device != "default" && !device.is_empty()).then_some(device);
    let mut mic = match MicCapture::open(name) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("input = mic: cannot open {device:?}: {e}");
            return format!("mic {device} (failed to open)");
        }
    };
    let hardware_id = format!("mic {} at {} Hz", mic.device_name(), mic.sample_rate_hz());
    tracing::info!("capturing from {hardware_id}, {} channels", mic.channels());
    let mut clock = match r2r::Clock::create(r2r::ClockType::RosTime) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("input = mic: no ROS clock for the capture thread: {e}");
            return format!("mic {device} (no clock)");
        }
    };
    let spawned = std::thread::Builder::new()
        .name("hlfp-mic".into())
        .spawn(move || {
            let mut header = || Header {
                stamp: stamp_now(&mut clock),
                frame_id: String::new(),
            };
            loop {
                match mic.next_chunk() {
                    Ok(Some((samples, rate_hz))) => {
                        let result = lock(&core).on_chunk(&samples, rate_hz, &header());
                        mic.recycle(samples);
                        match result {
                            Ok(out) => outputs.publish(out),
                            Err(e) => tracing::warn!("microphone audio: {e}"),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("microphone capture stopped: {e}");
                        break;
                    }
                }
            }
            match lock(&core).finish(&header()) {
                Ok(out) => outputs.publish(out),
                Err(e) => tracing::warn!("flushing the audio pipeline: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::error!("input = mic: starting the capture thread: {e}");
        return format!("mic {device} (no capture thread)");
    }
    hardware_id
}
