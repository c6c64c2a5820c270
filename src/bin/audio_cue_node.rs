//! `audio_cue_node`: the ROS 2 audio node. Wires r2r topics, parameters and `/diagnostics` to
//! the audio thread of [`hlfp::node::audio_worker`]; nothing is decided here.
//!
//! Audio from `audio` (audio_common_msgs/AudioDataStamped, interleaved S16LE) or a microphone
//! (feature `mic`); sound events on `sound_events` and the visual classes they map to on `cues`
//! (vision_msgs/Classification, the audio's header), checked against the vision model's classes
//! (`vision_model_config`, then the latched `label_info`). SIGINT/SIGTERM flush and exit 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use hlfp::audio::cues::CueConfig;
use hlfp::audio::detector::WindowScorer as _;
use hlfp::audio::ensemble::{self, Ensemble};
use hlfp::node::audio::{
    classes_from_label_info, classes_from_model_config, config_check, AudioCore,
};
use hlfp::node::audio_worker::{request_diagnostics, AudioCommand, AudioPublishers, AudioWorker};
use hlfp::node::params::ParamStore;
use hlfp::node::qos::{self, MatchWatch};
use hlfp::node::shutdown::{install_signal_handlers, signals_received, supervise};
use hlfp::node::{AudioNodeConfig, AudioSource};
use hlfp::ros::msgs::{AudioDataStamped, Classification, LabelInfo, RosMessage};
use hlfp::ros::r2r_glue::{
    diagnostics_to_r2r, header_now, in_namespace, param_from_r2r, parse_untyped, publishers_of,
    qos_profile, resolve_share_path, spin_until, start_node, startup_config, UntypedPublisher,
};

const PACKAGE: &str = "hlfp_node";
const NODE: &str = "audio_cue_node";

fn main() -> anyhow::Result<()> {
    let mut node = start_node(NODE)?;
    install_signal_handlers()?;
    let config: AudioNodeConfig = startup_config(&node).context("audio_cue_node parameters")?;
    let (source, warning) = config.input.resolve(cfg!(feature = "mic"));
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    tracing::info!("audio input: {source} (input = {})", config.input);

    // The classifier and the mapping, loaded and validated as `hlfp listen` does.
    // One weights file, or several joined by `+` (an ensemble, as the CLI takes them, members
    // optionally prefixed by the labels they own, `cat@`); each file is resolved against the
    // package share directory on its own.
    let model_path: std::path::PathBuf = ensemble::map_paths(&config.model_path, |p| {
        resolve_share_path(PACKAGE, p)
            .to_string_lossy()
            .into_owned()
    })
    .into();
    let classifier = Ensemble::load(&model_path, &candle_core::Device::Cpu)
        .with_context(|| format!("loading model_path {}", model_path.display()))?;
    let mapping_path = resolve_share_path(PACKAGE, &config.mapping_file);
    let mapping = CueConfig::load(&mapping_path)
        .with_context(|| format!("reading mapping_file {}", mapping_path.display()))?;
    let labels = classifier.labels().to_vec();
    let core = AudioCore::new(config.clone(), &mapping, classifier)
        .with_context(|| format!("mapping_file {}", mapping_path.display()))?;
    tracing::info!(
        "audio_cue_node: labels {}, detector thresholds on {} off {}",
        labels.join(", "),
        core.detector_config().default_thresholds.on,
        core.detector_config().default_thresholds.off
    );

    let store = Arc::new(Mutex::new(
        ParamStore::new(config.clone()).with_check(config_check(mapping.detector, labels)),
    ));
    let (param_services, mut param_events) = node
        .make_derived_parameter_handler(store.clone())
        .context("parameter services")?;

    let publisher = |node: &mut r2r::Node, topic: &str| {
        node.create_publisher_untyped(topic, Classification::TYPE_NAME, qos_profile(qos::CUE_QOS))
            .map(UntypedPublisher)
            .with_context(|| format!("publisher {topic} (is vision_msgs installed?)"))
    };
    let out = AudioPublishers {
        sound_events: publisher(&mut node, "sound_events")?,
        cues: publisher(&mut node, "cues")?,
    };
    let label_info = node
        .subscribe_untyped(
            "label_info",
            LabelInfo::TYPE_NAME,
            qos_profile(qos::LATCHED_QOS),
        )
        .context("subscribing to label_info")?;
    let diag_pub = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>(
            "/diagnostics",
            r2r::QosProfile::default(),
        )
        .context("publisher /diagnostics")?;
    let mut diag_timer = node.create_wall_timer(Duration::from_secs(1))?;
    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;

    let worker = AudioWorker::spawn(core, out)?;
    let tx = worker.sender();
    if !config.vision_model_config.is_empty() {
        let path = resolve_share_path(PACKAGE, &config.vision_model_config);
        match classes_from_model_config(&path) {
            Ok(classes) => {
                let _ = tx.send(AudioCommand::VisualClasses(classes));
            }
            Err(e) => tracing::warn!(
                "vision_model_config {}: {e}; cues are checked once label_info arrives",
                path.display()
            ),
        }
    }

    let audio_topic = match source {
        AudioSource::Topic => Some(
            node.subscribe_untyped(
                "audio",
                AudioDataStamped::TYPE_NAME,
                qos_profile(qos::AUDIO_QOS),
            )
            .context("subscribing to audio (is audio_common_msgs installed?)")?,
        ),
        AudioSource::Mic => None,
    };
    let hardware_id = match source {
        AudioSource::Topic => format!("topic {}", in_namespace(&node, "audio")),
        AudioSource::Mic => start_mic(&config.mic_device, tx.clone())?,
    };

    // Graph queries on the spin thread: log when `label_info` and `audio` gain a publisher.
    let mut watches = vec![MatchWatch::new(
        in_namespace(&node, "label_info"),
        qos::LATCHED_QOS,
    )];
    if source == AudioSource::Topic {
        watches.push(MatchWatch::new(
            in_namespace(&node, "audio"),
            qos::AUDIO_QOS,
        ));
    }
    let stop_spin = Arc::new(AtomicBool::new(false));
    let stop = stop_spin.clone();
    let spin = std::thread::spawn(move || {
        spin_until(node, &stop, Duration::from_secs(1), |node| {
            for w in &mut watches {
                let topic = w.topic().to_string();
                w.update(&publishers_of(node, &topic))
                    .iter()
                    .for_each(|n| n.log());
            }
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stop_clock = r2r::Clock::create(r2r::ClockType::RosTime)?;
    let exit = runtime.block_on(async move {
        tokio::spawn(param_services);
        let t = tx.clone();
        tokio::spawn(async move {
            while let Some((name, value)) = param_events.next().await {
                let Some(cfg) = store.lock().ok().map(|s| s.config().clone()) else {
                    break;
                };
                tracing::info!("parameter {name} set to {}", param_from_r2r(&value));
                if t.send(AudioCommand::Config(cfg)).is_err() {
                    break;
                }
            }
        });
        let t = tx.clone();
        tokio::spawn(label_info.for_each(move |item| {
            match parse_untyped::<LabelInfo>(item) {
                Ok(msg) => {
                    let _ = t.send(AudioCommand::VisualClasses(classes_from_label_info(&msg)));
                }
                Err(e) => tracing::warn!("label_info: {e}"),
            }
            std::future::ready(())
        }));
        if let Some(audio) = audio_topic {
            let t = tx.clone();
            tokio::spawn(audio.for_each(move |item| {
                let _ = t.send(AudioCommand::Message(parse_untyped(item)));
                std::future::ready(())
            }));
        }
        let t = tx.clone();
        let model = config.model_path.clone();
        tokio::spawn(async move {
            while diag_timer.tick().await.is_ok() {
                let header = header_now(&mut clock);
                match request_diagnostics(&t, header, &model, &hardware_id).await {
                    Ok(msg) => {
                        if let Err(e) = diag_pub.publish(&diagnostics_to_r2r(&msg)) {
                            tracing::warn!("publishing diagnostics: {e}");
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let work = async move {
            tokio::task::spawn_blocking(move || worker.join())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        };
        supervise(
            work,
            move || {
                let _ = tx.send(AudioCommand::Stop(header_now(&mut stop_clock)));
            },
            signals_received,
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .await
    });
    stop_spin.store(true, Ordering::SeqCst);
    let _ = spin.join();
    tracing::info!("audio_cue_node: {}", exit.reason);
    std::process::exit(exit.code)
}

/// Without the `mic` feature the input resolves to the topic; never called.
#[cfg(not(feature = "mic"))]
fn start_mic(
    _device: &str,
    _tx: tokio::sync::mpsc::UnboundedSender<AudioCommand>,
) -> anyhow::Result<String> {
    anyhow::bail!("this build has no microphone capture")
}

/// Open the microphone and feed the audio thread from a capture thread. Returns the hardware
/// id for `/diagnostics`.
#[cfg(feature = "mic")]
fn start_mic(
    device: &str,
    tx: tokio::sync::mpsc::UnboundedSender<AudioCommand>,
) -> anyhow::Result<String> {
    use hlfp::audio::capture::MicCapture;
    let name = (device != "default" && !device.is_empty()).then_some(device);
    let mic = MicCapture::open(name).with_context(|| format!("input = mic: opening {device}"))?;
    let id = format!("mic {} at {} Hz", mic.device_name(), mic.sample_rate_hz());
    tracing::info!("capturing from {id}, {} channels", mic.channels());
    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;
    hlfp::node::audio_worker::feed_from_input(mic, tx, move || header_now(&mut clock))?;
    Ok(id)
}
