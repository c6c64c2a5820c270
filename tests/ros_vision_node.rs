//! Golden replay of `hlfp_node`'s logic: a scripted, timed list of ROS messages (images, cue
//! messages as r2r's untyped subscription yields them, `ros2 param set` calls, diagnostics
//! ticks) goes through the node's real code in-process (the `ImageSource` and
//! `CueMessageSource` transports, the runtime, the `classification` sink, the `ParamStore`
//! with the node's model check and `VisionHandle::sync_config`), and the JSON lines that come
//! out are compared with `tests/fixtures/ros_replay/NAME.expected.jsonl`. Time is a scripted
//! clock; the fake classifier's scores are plain arithmetic. `UPDATE_EXPECT=1 cargo test --test
//! ros_vision_node` rewrites the expected files; each was checked by hand against the script's
//! `about`.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use hlfp::node::params::ParamStore;
use hlfp::node::vision::VisionNode;
use hlfp::node::vision::{config_check, CueMessage, CueMessageSource, VisionHandle, VisionInfo};
use hlfp::node::{NodeParams, ParamValue, VisionNodeConfig};
use hlfp::pipeline::{Classified, Frame, FrameClassifier, ScriptedClock};
use hlfp::ros::msgs::{Classification, Header, Image, RosMessage, Time};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_stream_shim::ReceiverStream;

/// A tiny `Stream` over an unbounded receiver (the shape r2r's subscriptions have).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc::UnboundedReceiver;

    pub struct ReceiverStream<T>(pub UnboundedReceiver<T>);

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    #[allow(dead_code)]
    about: String,
    classes: Vec<String>,
    /// Start-up parameters (as `--params-file` gives them).
    #[serde(default)]
    start: serde_json::Map<String, Value>,
    events: Vec<Event>,
}

/// One timed event; exactly one of the optional fields is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    t_ms: u64,
    image: Option<ImageEvent>,
    /// A `cues` message as JSON (what r2r's untyped subscription yields).
    cue: Option<Value>,
    param: Option<(String, Value)>,
    hold: Option<bool>,
    release: Option<bool>,
    diagnostics: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEvent {
    /// The class the frame shows (the fake classifier reads it from the first pixel).
    shows: String,
    #[serde(default = "rgb8")]
    encoding: String,
    /// Drop the last byte.
    #[serde(default)]
    truncated: bool,
}

fn rgb8() -> String {
    "rgb8".into()
}

/// Logit 2 for the shown class and 1 for the others, times the branch's gain; score = logit /
/// (sum of active logits); MACs = 10 per active branch. Blocks while the gate is held.
struct FakeClassifier {
    classes: Vec<String>,
    held: Arc<(Mutex<bool>, Condvar)>,
    started: watch::Sender<u64>,
}

impl FrameClassifier for FakeClassifier {
    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn classify(
        &mut self,
        frame: &Frame,
        active: &[usize],
        gains: &[f32],
    ) -> hlfp::Result<Classified> {
        self.started.send_modify(|n| *n += 1);
        let (lock, cv) = &*self.held;
        let mut held = lock.lock().unwrap();
        while *held {
            held = cv.wait(held).unwrap();
        }
        let shown = usize::from(frame.rgb[0]).checked_sub(1);
        let logits: Vec<f32> = active
            .iter()
            .map(|&i| if Some(i) == shown { 2.0 } else { 1.0 } * gains[i])
            .collect();
        let sum: f32 = logits.iter().sum();
        Ok(Classified {
            scores: active
                .iter()
                .zip(&logits)
                .map(|(&i, l)| (i, l / sum))
                .collect(),
            macs: 10 * active.len() as u64,
        })
    }
}

fn param_value(v: &Value) -> anyhow::Result<ParamValue> {
    Ok(match v {
        Value::Bool(b) => ParamValue::Bool(*b),
        Value::Number(n) if n.is_i64() => ParamValue::Integer(n.as_i64().unwrap_or(0)),
        Value::Number(n) => ParamValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => ParamValue::String(s.clone()),
        Value::Array(a) => ParamValue::StringArray(
            a.iter()
                .map(|x| x.as_str().map(String::from).context("string arrays only"))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => bail!("unsupported parameter value {other}"),
    })
}

fn header(t_ms: u64) -> Header {
    Header {
        stamp: Time::from_ms(t_ms as i64),
        frame_id: "camera".into(),
    }
}

fn image(t_ms: u64, e: &ImageEvent, classes: &[String]) -> Image {
    let shown = classes
        .iter()
        .position(|c| *c == e.shows)
        .map_or(0, |i| i + 1) as u8;
    let (w, h) = (4u32, 2u32);
    let mut data = vec![0u8; (w * h * 3) as usize];
    data[0] = shown;
    if e.truncated {
        data.pop();
    }
    Image {
        header: header(t_ms),
        height: h,
        width: w,
        encoding: e.encoding.clone(),
        is_bigendian: 0,
        step: w * 3,
        data,
    }
}

/// How many frames and cues the node has taken in, as the harness expects them.
#[derive(Default)]
struct Sent {
    images: u64,
    cues: u64,
}

/// Wait until the node has taken in everything sent, and (unless `held`) finished every frame.
async fn settle(h: &VisionHandle, sent: &Sent, held: bool) -> anyhow::Result<()> {
    for _ in 0..5000 {
        let m = h.metrics();
        let taken = m.frames_in + m.frames_bad == sent.images && m.cues_in == sent.cues;
        let idle =
            m.frames_done + m.frames_failed + m.frames_dropped + m.frames_disabled == m.frames_in;
        if taken && (held || idle) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("the node did not settle: {:?}", h.metrics())
}

async fn replay(
    name: &str,
) -> anyhow::Result<(Vec<Value>, VisionHandle, ParamStore<VisionNodeConfig>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ros_replay");
    let script: Script =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json")))?)?;
    let classes = script.classes.clone();

    // The node as `hlfp_node` builds it: store with the model check, then the runtime.
    let mut store =
        ParamStore::new(VisionNodeConfig::default()).with_check(config_check(classes.clone()));
    let given: Vec<(String, ParamValue)> = script
        .start
        .iter()
        .map(|(k, v)| Ok((k.clone(), param_value(v)?)))
        .collect::<anyhow::Result<_>>()?;
    store.start(&given)?;
    let clock = Arc::new(ScriptedClock::new());
    let node = VisionNode::new(store.config().clone(), clock.clone());
    let handle = node.handle();
    let info = VisionInfo {
        model: "fake".into(),
        device: "test".into(),
        classes: classes.len(),
    };

    let held = Arc::new((Mutex::new(false), Condvar::new()));
    let (started_tx, started) = watch::channel(0u64);
    let classifier = FakeClassifier {
        classes: classes.clone(),
        held: held.clone(),
        started: started_tx,
    };
    let (image_tx, image_rx) = mpsc::unbounded_channel::<Image>();
    let (cue_tx, cue_rx) = mpsc::unbounded_channel::<CueMessage>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Classification>();
    let frames = node.image_source(ReceiverStream(image_rx));
    let cues = CueMessageSource::new(ReceiverStream(cue_rx));
    let run = tokio::spawn(node.run(classifier, frames, cues, out_tx));

    let mut out = Vec::new();
    let mut sent = Sent::default();
    let mut is_held = false;
    let mut busy = false;
    for e in &script.events {
        let t = e.t_ms;
        clock.set_ms(t);
        if let Some(img) = &e.image {
            let before = *started.borrow();
            let will_run = handle.config().enable && img.encoding == "rgb8" && !img.truncated;
            image_tx.send(image(t, img, &classes))?;
            sent.images += 1;
            if is_held && will_run && !busy {
                // Wait for the classifier to take it, so later frames queue behind it.
                let mut s = started.clone();
                s.wait_for(|n| *n > before).await?;
                busy = true;
            }
        } else if let Some(v) = &e.cue {
            let parsed = Classification::from_json(v.clone()).map_err(|e| e.to_string());
            sent.cues += parsed.as_ref().map_or(1, |m| m.results.len().max(1) as u64);
            cue_tx.send(parsed)?;
        } else if let Some((name, value)) = &e.param {
            let v = param_value(value)?;
            let outcome = store.set(name, &v);
            if outcome.is_ok() {
                handle.sync_config(store.config()).await?;
            }
            out.push(json!({
                "t_ms": t, "param": name, "value": v.to_string(),
                "accepted": outcome.is_ok(),
                "reason": outcome.err().map(|e| e.to_string()),
            }));
        } else if e.hold == Some(true) {
            *held.0.lock().unwrap() = true;
            is_held = true;
        } else if e.release == Some(true) {
            *held.0.lock().unwrap() = false;
            held.1.notify_all();
            is_held = false;
            busy = false;
        } else if e.diagnostics == Some(true) {
            let d = handle.diagnostics(header(t), &info, &[]);
            let st = &d.status[0];
            let values: serde_json::Map<String, Value> = st
                .values
                .iter()
                .filter(|kv| !kv.key.starts_with("fps") && !kv.key.starts_with("latency"))
                .map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
                .collect();
            out.push(json!({"t_ms": t, "diagnostics": {
                "level": st.level, "message": st.message, "values": values}}));
        } else {
            bail!("event at {t} ms sets nothing");
        }
        settle(&handle, &sent, is_held).await?;
        while let Ok(msg) = out_rx.try_recv() {
            out.push(json!({"t_ms": t, "classification": msg.to_json()?}));
        }
    }
    handle.stop();
    run.await??;
    Ok((out, handle, store))
}

fn check(name: &str, lines: &[Value]) -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/ros_replay/{name}.expected.jsonl"));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text)?;
    }
    let want = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    for (i, (a, b)) in text.lines().zip(want.lines()).enumerate() {
        assert_eq!(a, b, "{name}: line {} differs", i + 1);
    }
    assert_eq!(
        text.lines().count(),
        want.lines().count(),
        "{name}: line count"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_node_golden_replay() -> anyhow::Result<()> {
    let (lines, handle, store) = replay("vision_node").await?;
    check("vision_node", &lines)?;
    // After accepted and refused updates, the parameter server and the node agree.
    assert_eq!(store.config(), &handle.config());
    let m = handle.metrics();
    // Four frames while the classifier held one: the held one and the newest classified, two
    // dropped.
    assert_eq!(m.frames_dropped, 2);
    assert_eq!(m.frames_bad, 2);
    assert_eq!(m.frames_disabled, 1);
    // Every cue message that arrived shows: accepted or rejected by reason.
    let g = &m.guidance;
    assert_eq!(m.cues_in, g.accepted + g.rate_limited + m.cues_rejected);
    assert_eq!(
        store.get("guidance.policy")?,
        ParamValue::String("boost".into())
    );
    assert_eq!(
        VisionNodeConfig::names().len(),
        VisionNodeConfig::table().len()
    );
    Ok(())
}
