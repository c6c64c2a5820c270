//! `hlfp_node`: the ROS 2 vision node. Wires r2r topics, parameters and `/diagnostics` to
//! [`hlfp::node::vision::VisionNode`] (the guided-search runtime); nothing is decided here.
//!
//! Subscribes `image` (sensor_msgs/Image, `image_qos.*`) and `cues` (vision_msgs/Classification);
//! publishes `classification` (the input header kept), `label_info` (latched) and
//! `/diagnostics`. SIGINT/SIGTERM stop the runtime and exit 0.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use hlfp::model::ModelConfig;
use hlfp::node::params::ParamStore;
use hlfp::node::qos::{self, MatchWatch};
use hlfp::node::shutdown::{install_signal_handlers, signals_received, supervise};
use hlfp::node::vision::{config_check, CueMessageSource, VisionInfo, VisionNode};
#[cfg(feature = "camera")]
use hlfp::node::vision_params::FrameInput;
use hlfp::node::{Publish, VisionNodeConfig};
use hlfp::pipeline::{FrameClassifier, MonotonicClock};
use hlfp::ros::convert::label_info_msg;
use hlfp::ros::msgs::{Classification, LabelInfo, RosMessage};
use hlfp::ros::r2r_glue::{
    diagnostics_to_r2r, header_now, image_from_r2r, in_namespace, parse_untyped, publishers_of,
    qos_profile, resolve_share_path, spin_until, start_node, startup_config, UntypedPublisher,
};
use hlfp::vision::classifier::VisionClassifier;

const PACKAGE: &str = "hlfp_node";

fn main() -> anyhow::Result<()> {
    let mut node = start_node(PACKAGE)?;
    install_signal_handlers()?;
    let config: VisionNodeConfig = startup_config(&node).context("hlfp_node parameters")?;

    // The model, loaded as the CLI loads it, on the asked device.
    let cfg_path = resolve_share_path(PACKAGE, &config.model_config);
    let model_cfg: ModelConfig = serde_json::from_str(
        &std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading model_config {}", cfg_path.display()))?,
    )
    .with_context(|| format!("model_config {}", cfg_path.display()))?;
    config.input_size_for(model_cfg.input_size)?;
    let weights = resolve_share_path(PACKAGE, &config.model_path);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let classifier = VisionClassifier::load(&weights, &model_cfg, config.device, threads)
        .with_context(|| format!("loading model_path {}", weights.display()))?;
    let classes = classifier.class_names().to_vec();
    let info = VisionInfo {
        model: config.model_path.clone(),
        device: classifier.device_name().to_string(),
        classes: classes.len(),
    };

    let store = Arc::new(Mutex::new(
        ParamStore::new(config.clone()).with_check(config_check(classes.clone())),
    ));
    let (param_services, mut param_events) = node
        .make_derived_parameter_handler(store.clone())
        .context("parameter services")?;

    let images = node
        .subscribe::<r2r::sensor_msgs::msg::Image>(
            "image",
            qos_profile(qos::image_qos(config.image_reliability, config.image_depth)),
        )
        .context("subscribing to image")?;
    let cue_msgs = node
        .subscribe_untyped("cues", Classification::TYPE_NAME, qos_profile(qos::CUE_QOS))
        .context("subscribing to cues (is vision_msgs installed?)")?;
    let classification = UntypedPublisher(
        node.create_publisher_untyped(
            "classification",
            Classification::TYPE_NAME,
            qos_profile(qos::EVENT_QOS),
        )
        .context("publisher classification")?,
    );
    let label_pub = node
        .create_publisher_untyped(
            "label_info",
            LabelInfo::TYPE_NAME,
            qos_profile(qos::LATCHED_QOS),
        )
        .context("publisher label_info")?;
    let diag_pub = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>(
            "/diagnostics",
            r2r::QosProfile::default(),
        )
        .context("publisher /diagnostics")?;
    let mut diag_timer = node
        .create_wall_timer(Duration::from_millis(config.diagnostics_period_ms))
        .context("diagnostics timer")?;
    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;
    UntypedPublisher(label_pub).publish(label_info_msg(header_now(&mut clock), &classes, 0.0)?)?;

    let vision = VisionNode::new(config.clone(), Arc::new(MonotonicClock::new()));
    let handle = vision.handle();
    tracing::info!(
        "hlfp_node: {} classes on {}, policy {}, image QoS {}",
        info.classes,
        info.device,
        config.guidance.policy,
        qos::image_qos(config.image_reliability, config.image_depth)
    );

    // Graph queries on the spin thread: log when `cues` gains or loses a publisher.
    let cue_topic = in_namespace(&node, "cues");
    let cue_publishers = Arc::new(AtomicUsize::new(0));
    let seen = cue_publishers.clone();
    let mut watch = MatchWatch::new(cue_topic.clone(), qos::CUE_QOS);
    let stop_spin = Arc::new(AtomicBool::new(false));
    let stop = stop_spin.clone();
    let spin = std::thread::spawn(move || {
        spin_until(node, &stop, Duration::from_secs(1), |node| {
            watch
                .update(&publishers_of(node, &cue_topic))
                .iter()
                .for_each(|n| n.log());
            seen.store(watch.matched(), Ordering::Relaxed);
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exit = runtime.block_on(async move {
        tokio::spawn(param_services);
        // Accepted parameter updates: the store holds the config, the runtime follows it.
        let h = handle.clone();
        tokio::spawn(async move {
            while let Some((name, value)) = param_events.next().await {
                let Some(cfg) = store.lock().ok().map(|s| s.config().clone()) else {
                    break;
                };
                let value = hlfp::ros::r2r_glue::param_from_r2r(&value);
                match h.sync_config(&cfg).await {
                    Ok(()) => tracing::info!("parameter {name} set to {value}"),
                    Err(e) => tracing::error!("parameter {name} = {value} not applied: {e}"),
                }
            }
        });
        let h = handle.clone();
        tokio::spawn(async move {
            while diag_timer.tick().await.is_ok() {
                let extra = [(
                    "cue_publishers_matched".to_string(),
                    cue_publishers.load(Ordering::Relaxed).to_string(),
                )];
                let msg = h.diagnostics(header_now(&mut clock), &info, &extra);
                if let Err(e) = diag_pub.publish(&diagnostics_to_r2r(&msg)) {
                    tracing::warn!("publishing diagnostics: {e}");
                }
            }
        });

        let cues = CueMessageSource::new(cue_msgs.map(parse_untyped::<Classification>));
        let work = run_frames(vision, classifier, images, cues, classification, &config);
        let stopper = handle.clone();
        supervise(
            work,
            move || stopper.stop(),
            signals_received,
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .await
    });
    stop_spin.store(true, Ordering::SeqCst);
    let _ = spin.join();
    tracing::info!("hlfp_node: {}", exit.reason);
    std::process::exit(exit.code)
}

/// Frames from the camera (`use_camera`, feature `camera`) or the `image` topic.
async fn run_frames<S, C, P>(
    vision: VisionNode,
    classifier: VisionClassifier,
    images: S,
    cues: C,
    out: P,
    config: &VisionNodeConfig,
) -> Result<(), String>
where
    S: futures::Stream<Item = r2r::sensor_msgs::msg::Image> + Send + Unpin + 'static,
    C: hlfp::pipeline::CueSource,
    P: Publish<Classification> + 'static,
{
    let (input, warning) = config.frame_input(cfg!(feature = "camera"));
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    #[cfg(feature = "camera")]
    if let FrameInput::Camera(index) = input {
        let cam = hlfp::pipeline::camera::CameraSource::open(index, 640, 480, 30.0)
            .map_err(|e| format!("use_camera: {e}"))?;
        let outcome = vision.run(classifier, cam, cues, out).await;
        return outcome.map(drop).map_err(|e| e.to_string());
    }
    tracing::info!("frames from {input}");
    let frames = vision.image_source(images.map(image_from_r2r));
    vision
        .run(classifier, frames, cues, out)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
