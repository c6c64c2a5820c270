//! `hlfp_node`: the ROS 2 vision node. Wires topics, parameters and `/diagnostics` to
//! [`hlfp::ros::vision_core::VisionCore`], which holds the logic; nothing is decided here.
//!
//! Subscribes `image` (sensor_msgs/Image, QoS from `image_qos.*`, best effort by default) and
//! `cues` (vision_msgs/Classification, untyped); publishes `classification` (the input header
//! kept), `label_info` (transient local) and `/diagnostics`. Every callback logs and counts a bad
//! message and carries on.

use anyhow::Context as _;
use futures::StreamExt;
use hlfp::model::ModelConfig;
use hlfp::pipeline::FrameClassifier;
use hlfp::ros::model_scorer::device_choice;
use hlfp::ros::msgs::{Classification, Header, LabelInfo, RosMessage};
use hlfp::ros::params::VisionNodeConfig;
use hlfp::ros::r2r_glue::{
    diagnostics_to_r2r, image_from_r2r, image_qos, latched_qos, resolve_share_path, stamp_now,
    start_node, startup_config, SharedParams,
};
use hlfp::ros::vision_core::VisionCore;
use hlfp::vision::classifier::VisionClassifier;
use r2r::QosProfile;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const PACKAGE: &str = "hlfp_node";

/// Lock the core; a panic elsewhere must not take the node down with it.
fn lock(core: &Mutex<VisionCore>) -> MutexGuard<'_, VisionCore> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn main() -> anyhow::Result<()> {
    let mut node = start_node(PACKAGE)?;

    // Start-up parameters first: the class list they name is needed to check guidance updates.
    let config: VisionNodeConfig = startup_config(&node).context("hlfp_node parameters")?;
    // The model: its config (class names in output order, input size) and weights, loaded by
    // the same classifier the CLI and the runtime use, on the asked device.
    let model_cfg_path = resolve_share_path(PACKAGE, &config.model_config);
    let model_cfg_text = std::fs::read_to_string(&model_cfg_path)
        .with_context(|| format!("reading model_config {}", model_cfg_path.display()))?;
    let model_cfg: ModelConfig = serde_json::from_str(&model_cfg_text)
        .with_context(|| format!("model_config {}", model_cfg_path.display()))?;
    config
        .input_size_for(model_cfg.input_size)
        .with_context(|| format!("model_config {}", model_cfg_path.display()))?;
    let weights = resolve_share_path(PACKAGE, &config.model_path);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scorer =
        VisionClassifier::load(&weights, &model_cfg, device_choice(config.device), threads)
            .with_context(|| format!("loading model_path {}", weights.display()))?;
    let device_name = scorer.device_name().to_string();
    let classes = scorer.class_names().to_vec();
    if config.use_camera && !cfg!(feature = "camera") {
        tracing::error!(
            "use_camera is true but this build has no camera source (rebuild with --features \
             camera); subscribing to image instead"
        );
    }
    let core = Arc::new(Mutex::new(
        VisionCore::new(config.clone(), classes.clone()).context("guidance parameters")?,
    ));

    let check_classes = classes.clone();
    let shared =
        SharedParams::new(config.clone()).with_check(Box::new(move |c: &VisionNodeConfig| {
            c.check_classes(&check_classes).map_err(|e| e.to_string())
        }));
    let params = shared.config.clone();
    let (param_handler, mut param_events) = node
        .make_derived_parameter_handler(Arc::new(Mutex::new(shared)))
        .context("parameter services")?;

    let images = node
        .subscribe::<r2r::sensor_msgs::msg::Image>(
            "image",
            image_qos(config.image_reliability, config.image_depth),
        )
        .context("subscribing to image")?;
    let mut cues = node
        .subscribe_untyped("cues", Classification::TYPE_NAME, QosProfile::default())
        .context("subscribing to cues (is vision_msgs installed?)")?;
    let classification_pub = node
        .create_publisher_untyped(
            "classification",
            Classification::TYPE_NAME,
            QosProfile::default(),
        )
        .context("publisher classification")?;
    let label_pub = node
        .create_publisher_untyped("label_info", LabelInfo::TYPE_NAME, latched_qos())
        .context("publisher label_info")?;
    let diag_pub = node
        .create_publisher::<r2r::diagnostic_msgs::msg::DiagnosticArray>(
            "/diagnostics",
            QosProfile::default(),
        )
        .context("publisher /diagnostics")?;
    let mut diag_timer = node
        .create_wall_timer(Duration::from_millis(config.diagnostics_period_ms))
        .context("diagnostics timer")?;

    let mut clock = r2r::Clock::create(r2r::ClockType::RosTime)?;
    let label = lock(&core).label_info(Header {
        stamp: stamp_now(&mut clock),
        frame_id: String::new(),
    })?;
    label_pub
        .publish(label.to_json()?)
        .context("publishing label_info")?;

    // The guidance clock: milliseconds since start, on the monotonic clock.
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;

    // Inference runs on its own thread; the image task hands over only the newest frame.
    let (frame_tx, frame_rx) = mpsc::sync_channel::<hlfp::ros::msgs::Image>(1);
    {
        let core = core.clone();
        let mut scorer = scorer;
        std::thread::Builder::new()
            .name("hlfp-inference".into())
            .spawn(move || {
                while let Ok(frame) = frame_rx.recv() {
                    let t0 = Instant::now();
                    let result = lock(&core).on_image(&frame, now_ms(), &mut scorer);
                    match result {
                        Ok(Some(msg)) => {
                            lock(&core).record_latency_ms(t0.elapsed().as_secs_f64() * 1e3);
                            match msg.to_json() {
                                Ok(json) => {
                                    if let Err(e) = classification_pub.publish(json) {
                                        tracing::warn!("publishing classification: {e}");
                                    }
                                }
                                Err(e) => tracing::warn!("encoding classification: {e}"),
                            }
                        }
                        Ok(None) => {}
                        Err(reason) => tracing::warn!("frame {:?}: {reason}", frame.header.stamp),
                    }
                }
            })
            .context("starting the inference thread")?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::spawn(param_handler);

        // Parameter changes accepted by the services: bring the core in line.
        let core_p = core.clone();
        let params_p = params.clone();
        tokio::spawn(async move {
            while let Some((name, value)) = param_events.next().await {
                let cfg = params_p
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone();
                match lock(&core_p).sync_config(&cfg) {
                    Ok(()) => tracing::info!("parameter {name} = {value:?}"),
                    Err(e) => tracing::error!("parameter {name}: {e}"),
                }
            }
        });

        // use_camera: frames from the runtime's camera source take the image topic's path.
        #[cfg(feature = "camera")]
        if config.use_camera {
            let core_cam = core.clone();
            let tx = frame_tx.clone();
            let index = config.camera_index;
            let mut cam_clock = r2r::Clock::create(r2r::ClockType::RosTime)?;
            tokio::spawn(async move {
                use hlfp::pipeline::FrameSource;
                let mut cam =
                    match hlfp::pipeline::camera::CameraSource::open(index, 640, 480, 30.0) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!("use_camera: {e}");
                            return;
                        }
                    };
                while let Some(frame) = cam.next_frame().await {
                    match frame {
                        Ok(f) => {
                            let header = Header {
                                stamp: stamp_now(&mut cam_clock),
                                frame_id: f.frame_id.clone(),
                            };
                            let img = hlfp::ros::convert::image_from_frame(f, header);
                            if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(img) {
                                lock(&core_cam).count_dropped(1);
                            }
                        }
                        Err(e) => tracing::warn!("camera frame: {e}"),
                    }
                }
            });
        }

        // Images: keep the newest of whatever arrived together; count the rest as dropped.
        let core_i = core.clone();
        tokio::spawn(async move {
            let mut batches = images.ready_chunks(16);
            while let Some(mut batch) = batches.next().await {
                let Some(newest) = batch.pop() else { continue };
                let mut dropped = batch.len() as u64;
                if let Err(mpsc::TrySendError::Full(_)) = frame_tx.try_send(image_from_r2r(newest))
                {
                    dropped += 1;
                }
                if dropped > 0 {
                    lock(&core_i).count_dropped(dropped);
                }
            }
        });

        // Cues: JSON from the untyped subscriber; anything malformed is logged and counted.
        let core_c = core.clone();
        tokio::spawn(async move {
            while let Some(item) = cues.next().await {
                let parsed = item
                    .map_err(|e| e.to_string())
                    .and_then(|v| Classification::from_json(v).map_err(|e| e.to_string()));
                let mut core = lock(&core_c);
                match parsed {
                    Ok(msg) => {
                        for reason in core.on_cues(&msg, now_ms()) {
                            tracing::warn!("cue refused: {reason}");
                        }
                    }
                    Err(e) => {
                        core.count_bad_cue_message();
                        tracing::warn!("bad message on cues: {e}");
                    }
                }
            }
        });

        // Diagnostics at the configured period.
        let core_d = core.clone();
        let model = config.model_path.clone();
        let device = device_name.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                if let Err(e) = diag_timer.tick().await {
                    tracing::error!("diagnostics timer: {e}");
                    break;
                }
                let core = lock(&core_d);
                let done = core.counters.frames_classified;
                let secs = last.0.elapsed().as_secs_f64().max(1e-9);
                let fps = (done - last.1) as f64 / secs;
                last = (Instant::now(), done);
                let header = Header {
                    stamp: stamp_now(&mut clock),
                    frame_id: String::new(),
                };
                let msg = diagnostics_to_r2r(&core.diagnostics(header, &model, &device, fps));
                drop(core);
                if let Err(e) = diag_pub.publish(&msg) {
                    tracing::warn!("publishing diagnostics: {e}");
                }
            }
        });

        tracing::info!(
            "hlfp_node: {} classes on {device_name}, policy {}, image QoS {} depth {}",
            classes.len(),
            config.guidance.policy,
            config.image_reliability,
            config.image_depth
        );
        // r2r's executor: spin on a blocking thread for the life of the node.
        let spin = tokio::task::spawn_blocking(move || loop {
            node.spin_once(Duration::from_millis(10));
        });
        spin.await.context("spin thread")
    })
}
