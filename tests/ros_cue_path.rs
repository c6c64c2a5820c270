//! `audio_cue_node`'s thread and the cue path between the nodes, in-process: a golden replay of
//! timed audio messages, parameter updates, `label_info` and diagnostics ticks through the
//! `AudioWorker` (JSON lines compared with `tests/fixtures/ros_replay/audio_node.expected.jsonl`,
//! `UPDATE_EXPECT=1` rewrites it), and the audio node's `cues` feeding the vision node's cue
//! source, as the two nodes are wired by `guided.launch.py` (with the same, compatible QoS).

mod audio_common;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use audio_common::{tone, BandScorer};
use hlfp::audio::cues::CueConfig;
use hlfp::node::audio::{classes_from_label_info, config_check, AudioCore};
use hlfp::node::audio_worker::{request_diagnostics, AudioCommand, AudioPublishers, AudioWorker};
use hlfp::node::params::ParamStore;
use hlfp::node::qos::{compatible, CUE_QOS, LATCHED_QOS};
use hlfp::node::vision::{CueMessage, CueMessageSource, VisionNode};
use hlfp::node::{AudioNodeConfig, NodeParams, ParamValue, VisionNodeConfig};
use hlfp::pipeline::{Classified, Frame, FrameClassifier, ScriptedClock};
use hlfp::ros::convert::label_info_msg;
use hlfp::ros::msgs::{
    AudioData, AudioDataStamped, Classification, Header, Image, RosMessage, Time,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const RATE: u32 = 16_000;

/// A `Stream` over an unbounded receiver (the shape of r2r's subscriptions).
struct Rx<T>(mpsc::UnboundedReceiver<T>);

impl<T> futures::Stream for Rx<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn mapping() -> CueConfig {
    let mut cfg =
        CueConfig::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/cues.toml"))
            .unwrap();
    cfg.cues.retain(|k, _| k == "cat" || k == "dog");
    cfg.detector
        .label_thresholds
        .retain(|k, _| k == "cat" || k == "dog");
    cfg
}

fn topic_config() -> AudioNodeConfig {
    let mut c = AudioNodeConfig::default();
    c.apply("input", &ParamValue::String("topic".into()))
        .unwrap();
    c
}

fn message(samples: &[f32], header: Header) -> AudioDataStamped {
    AudioDataStamped {
        header,
        audio: AudioData {
            data: samples
                .iter()
                .flat_map(|&x| ((x * 32767.0).round() as i16).to_le_bytes())
                .collect(),
        },
    }
}

fn header(t_ms: u64) -> Header {
    Header {
        stamp: Time::from_ms(t_ms as i64),
        frame_id: "mic_link".into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    #[allow(dead_code)]
    about: String,
    events: Vec<Event>,
}

/// One timed event; exactly one of the optional fields is set. Audio is sent as 100 ms
/// messages stamped from `t_ms` on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    t_ms: u64,
    /// `[tone_hz, ms]`; 0 Hz is silence.
    audio: Option<(f64, u64)>,
    /// A message that is not an AudioDataStamped.
    bad_json: Option<bool>,
    /// A message with an odd byte count.
    bad_s16le: Option<bool>,
    param: Option<(String, f64)>,
    label_info: Option<Vec<String>>,
    diagnostics: Option<bool>,
}

/// Scores to 3 decimals, so the expected file does not depend on a libm's last bits.
fn rounded(m: &Classification) -> Value {
    json!({
        "stamp_ms": m.header.stamp.to_ms(),
        "frame_id": m.header.frame_id,
        "results": m.results.iter()
            .map(|h| json!([h.class_id, (h.score * 1000.0).round() / 1000.0]))
            .collect::<Vec<_>>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_node_golden_replay() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ros_replay");
    let script: Script =
        serde_json::from_str(&std::fs::read_to_string(dir.join("audio_node.json"))?)?;
    let labels = vec!["cat".to_string(), "dog".to_string()];
    let mut store =
        ParamStore::new(topic_config()).with_check(config_check(mapping().detector, labels));
    store.start(&[])?;
    let core = AudioCore::new(
        store.config().clone(),
        &mapping(),
        BandScorer::new("cat", "dog", 96),
    )?;
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Classification>();
    let (cue_tx, mut cue_rx) = mpsc::unbounded_channel::<Classification>();
    let worker = AudioWorker::spawn(
        core,
        AudioPublishers {
            sound_events: ev_tx,
            cues: cue_tx,
        },
    )?;
    let tx = worker.sender();

    let mut out = Vec::new();
    for e in &script.events {
        let t = e.t_ms;
        if let Some((hz, ms)) = e.audio {
            for k in 0..ms / 100 {
                let n = RATE as usize / 10;
                let x = if hz > 0.0 {
                    tone(RATE, hz, 0.3, n)
                } else {
                    vec![0.0; n]
                };
                tx.send(AudioCommand::Message(Ok(message(&x, header(t + 100 * k)))))?;
            }
        } else if e.bad_json == Some(true) {
            let parsed =
                AudioDataStamped::from_json(json!({"audio": 3})).map_err(|e| e.to_string());
            tx.send(AudioCommand::Message(parsed))?;
        } else if e.bad_s16le == Some(true) {
            let mut m = message(&[0.1, 0.2], header(t));
            m.audio.data.pop();
            tx.send(AudioCommand::Message(Ok(m)))?;
        } else if let Some((name, value)) = &e.param {
            let v = ParamValue::Double(*value);
            let outcome = store.set(name, &v);
            if outcome.is_ok() {
                tx.send(AudioCommand::Config(store.config().clone()))?;
            }
            out.push(json!({"t_ms": t, "param": name, "value": value,
                "accepted": outcome.is_ok(), "reason": outcome.err().map(|e| e.to_string())}));
        } else if let Some(classes) = &e.label_info {
            let msg = label_info_msg(header(t), classes, 0.0)?;
            tx.send(AudioCommand::VisualClasses(classes_from_label_info(&msg)))?;
        } else if e.diagnostics != Some(true) {
            bail!("event at {t} ms sets nothing");
        }
        // A diagnostics request is answered after every command before it: a barrier.
        let d = request_diagnostics(&tx, header(t), "fake", "topic audio").await?;
        if e.diagnostics == Some(true) {
            let st = &d.status[0];
            let values: serde_json::Map<String, Value> = st
                .values
                .iter()
                .map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
                .collect();
            out.push(json!({"t_ms": t, "diagnostics": {"level": st.level, "message": st.message, "values": values}}));
        }
        while let Ok(m) = ev_rx.try_recv() {
            out.push(json!({"t_ms": t, "sound_event": rounded(&m)}));
        }
        while let Ok(m) = cue_rx.try_recv() {
            out.push(json!({"t_ms": t, "cue": rounded(&m)}));
        }
    }
    drop(tx);
    worker.stop(header(12_000))?;
    let path = dir.join("audio_node.expected.jsonl");
    let text: String = out.iter().map(|l| format!("{l}\n")).collect();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text)?;
    }
    let want = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    for (i, (a, b)) in text.lines().zip(want.lines()).enumerate() {
        assert_eq!(a, b, "audio_node: line {} differs", i + 1);
    }
    assert_eq!(text.lines().count(), want.lines().count());
    Ok(())
}

/// Scores proportional to the branch gains over the active set.
struct GainClassifier(Vec<String>);

impl FrameClassifier for GainClassifier {
    fn class_names(&self) -> &[String] {
        &self.0
    }
    fn classify(&mut self, _: &Frame, active: &[usize], gains: &[f32]) -> hlfp::Result<Classified> {
        let sum: f32 = active.iter().map(|&i| gains[i]).sum();
        Ok(Classified {
            scores: active.iter().map(|&i| (i, gains[i] / sum)).collect(),
            macs: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bark_on_the_audio_node_steers_the_vision_node() -> anyhow::Result<()> {
    // The two ends of `cues` use the same QoS, and it matches; the latched class list too.
    compatible(&CUE_QOS, &CUE_QOS).map_err(anyhow::Error::msg)?;
    compatible(&LATCHED_QOS, &LATCHED_QOS).map_err(anyhow::Error::msg)?;

    let classes: Vec<String> = ["cat", "church", "dog", "golf_ball", "parachute", "tench"]
        .map(String::from)
        .to_vec();
    // The vision node, as `hlfp_node` runs it.
    let vision = VisionNode::new(VisionNodeConfig::default(), Arc::new(ScriptedClock::new()));
    let handle = vision.handle();
    let (image_tx, image_rx) = mpsc::unbounded_channel::<Image>();
    let (vcue_tx, vcue_rx) = mpsc::unbounded_channel::<CueMessage>();
    let (class_tx, mut class_rx) = mpsc::unbounded_channel::<Classification>();
    let frames = vision.image_source(Rx(image_rx));
    let run = tokio::spawn(vision.run(
        GainClassifier(classes.clone()),
        frames,
        CueMessageSource::new(Rx(vcue_rx)),
        class_tx,
    ));

    // The audio node: its `cues` publisher feeds the vision node's subscription, as JSON
    // through the untyped message shapes r2r carries.
    let core = AudioCore::new(
        topic_config(),
        &mapping(),
        BandScorer::new("cat", "dog", 96),
    )?;
    let (ev_tx, _ev_rx) = mpsc::unbounded_channel::<Classification>();
    let (cue_tx, mut cue_rx) = mpsc::unbounded_channel::<Classification>();
    let worker = AudioWorker::spawn(
        core,
        AudioPublishers {
            sound_events: ev_tx,
            cues: cue_tx,
        },
    )?;
    let tx = worker.sender();
    // The vision model's class list arrives as label_info: english_springer is not in it.
    let label = label_info_msg(header(0), &classes, 0.0)?;
    tx.send(AudioCommand::VisualClasses(classes_from_label_info(&label)))?;
    let mut x = tone(RATE, 5_000.0, 0.3, RATE as usize * 3 / 2);
    x.extend(vec![0.0; RATE as usize / 2]);
    for (i, chunk) in x.chunks(1600).enumerate() {
        tx.send(AudioCommand::Message(Ok(message(
            chunk,
            header(100 * i as u64),
        ))))?;
    }
    request_diagnostics(&tx, header(0), "fake", "audio").await?;
    let mut n_cues = 0;
    while let Ok(m) = cue_rx.try_recv() {
        let wire = Classification::from_json(m.to_json()?).map_err(|e| e.to_string());
        n_cues += 1;
        vcue_tx.send(wire)?;
    }
    assert_eq!(n_cues, 1, "one bark, one cue message");
    for _ in 0..2000 {
        if handle.metrics().cues_in == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let m = handle.metrics();
    assert_eq!((m.cues_in, m.cues_rejected), (1, 0));

    // The next frame runs the focus cutout around dog, with dog's gain raised.
    image_tx.send(Image {
        header: header(2_000),
        height: 1,
        width: 1,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: 3,
        data: vec![0, 0, 0],
    })?;
    let c = class_rx.recv().await.context("no classification")?;
    assert_eq!(c.header, header(2_000));
    assert_eq!(c.results[0].class_id, "dog");
    assert!(c.results.len() < classes.len(), "a cutout: {c:?}");
    assert!(c.results[0].score > c.results[1].score);
    assert_eq!(handle.metrics().guidance.accepted, 1);

    drop(tx);
    worker.stop(header(3_000))?;
    handle.stop();
    run.await??;
    Ok(())
}
