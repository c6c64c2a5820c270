//! Replay tests of the guided-search runtime, in the style of dora's integration testing:
//! a scripted, timed list of frames and cues (tests/fixtures/replay/NAME.json) goes in through
//! the in-process channel transport, the JSON lines that come out are compared with
//! tests/fixtures/replay/NAME.expected.jsonl. Time is a scripted clock: the harness sets it to
//! each event's time and the fake classifier advances it by `cost_ms` per frame, so latencies,
//! fps and cue times are exact. `UPDATE_EXPECT=1 cargo test --test replay_guided` rewrites the
//! expected files; each one was checked by hand against the reasoning in its test's comment.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hlfp::pipeline::{
    ChannelCueSource, ChannelFrameSource, ChannelSink, Classified, CueInput, CueSource, Frame,
    FrameClassifier, JsonLinesCueSource, MetricsSnapshot, Record, Runtime, RuntimeConfig,
    ScriptedClock,
};
use serde::Deserialize;
use tokio::sync::watch;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    #[allow(dead_code)]
    about: String,
    classes: Vec<String>,
    runtime: RuntimeConfig,
    /// Scripted inference time per frame.
    cost_ms: u64,
    events: Vec<Event>,
}

/// One timed event; exactly one of the optional fields is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    t_ms: u64,
    frame: Option<FrameEvent>,
    cue: Option<CueInput>,
    /// A cue line as a JSON-lines source would read it (parsed by `JsonLinesCueSource`).
    raw_cue: Option<String>,
    /// Block the classifier on its next frame until `release`.
    hold: Option<bool>,
    release: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameEvent {
    id: u64,
    /// The class the frame shows (the fake classifier reads it from the first pixel).
    shows: String,
}

/// A classifier whose output depends only on the frame, the active set and the gains:
/// logit = 2 for the class the frame shows and 1 for the others, times the branch's gain;
/// score = logit / (sum of the active logits); MACs = 100 + 10 per active branch.
/// Plain arithmetic (no exp), so the expected files do not depend on a libm.
struct FakeClassifier {
    classes: Vec<String>,
    clock: Arc<ScriptedClock>,
    cost_us: u64,
    /// `true` while the gate is closed.
    held: Arc<(Mutex<bool>, Condvar)>,
    /// Frames that entered `classify`.
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
        drop(held);
        self.clock.advance_us(self.cost_us);
        let shows = usize::from(frame.rgb[0]);
        let logits: Vec<f32> = active
            .iter()
            .map(|&i| if i == shows { 2.0 } else { 1.0 } * gains[i])
            .collect();
        let sum: f32 = logits.iter().sum();
        Ok(Classified {
            scores: active
                .iter()
                .zip(&logits)
                .map(|(&i, &l)| (i, l / sum))
                .collect(),
            macs: 100 + 10 * active.len() as u64,
        })
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replay")
        .join(name)
}

async fn wait_metrics(
    rx: &mut watch::Receiver<MetricsSnapshot>,
    what: &str,
    pred: impl FnMut(&MetricsSnapshot) -> bool,
) -> anyhow::Result<()> {
    let outcome = match tokio::time::timeout(Duration::from_secs(10), rx.wait_for(pred)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(format!("runtime ended while waiting for {what}")),
        Err(_) => Err(format!("timed out waiting for {what}")),
    };
    outcome.map_err(|e| anyhow!("{e}: {:?}", *rx.borrow()))
}

/// Play a script through the runtime and return the output lines.
async fn play(script: Script) -> anyhow::Result<Vec<String>> {
    let clock = Arc::new(ScriptedClock::new());
    let runtime = Runtime::new(script.runtime.clone(), clock.clone());
    let mut metrics = runtime.metrics();
    let (frame_tx, frames) = ChannelFrameSource::new(1);
    let (cue_tx, cues) = ChannelCueSource::new(1);
    let (sink, mut out) = ChannelSink::new(16);
    let collector = tokio::spawn(async move {
        let mut records = Vec::new();
        while let Some(r) = out.recv().await {
            records.push(r);
        }
        records
    });
    let held = Arc::new((Mutex::new(false), Condvar::new()));
    let (started_tx, mut started) = watch::channel(0u64);
    let fake = FakeClassifier {
        classes: script.classes.clone(),
        clock: clock.clone(),
        cost_us: script.cost_ms * 1000,
        held: held.clone(),
        started: started_tx,
    };
    let run = tokio::spawn(runtime.run(fake, frames, cues, sink));

    let (mut frames_sent, mut cues_sent) = (0u64, 0u64);
    // While held: the number of `classify` calls before the hold, once the worker is blocked.
    let mut hold_base: Option<(u64, bool)> = None;
    for ev in script.events {
        clock.set_ms(ev.t_ms);
        if let Some(f) = ev.frame {
            let shows = script
                .classes
                .iter()
                .position(|c| *c == f.shows)
                .ok_or_else(|| anyhow!("script frame shows unknown class {}", f.shows))?;
            let frame = Frame {
                id: f.id,
                stamp_ns: ev.t_ms as i64 * 1_000_000,
                frame_id: "cam0".into(),
                width: 1,
                height: 1,
                rgb: vec![shows as u8, 0, 0],
            };
            frame_tx.send(Ok(frame)).await?;
            frames_sent += 1;
            let n = frames_sent;
            match &mut hold_base {
                None => {
                    wait_metrics(&mut metrics, "a frame's result", |m| {
                        m.frames_in == n && m.frames_done + m.frames_dropped + m.frames_failed == n
                    })
                    .await?
                }
                Some((base, busy)) => {
                    if !*busy {
                        // The worker takes this frame and blocks in the classifier.
                        let want = *base + 1;
                        tokio::time::timeout(
                            Duration::from_secs(10),
                            started.wait_for(|s| *s >= want),
                        )
                        .await
                        .context("worker never started the held frame")??;
                        *busy = true;
                    }
                    wait_metrics(&mut metrics, "a frame's arrival", |m| m.frames_in == n).await?
                }
            }
        } else if ev.cue.is_some() || ev.raw_cue.is_some() {
            let cue = match (ev.cue, ev.raw_cue) {
                (Some(c), _) => Ok(c),
                (None, Some(line)) => JsonLinesCueSource::new(std::io::Cursor::new(line), "script")
                    .next_cue()
                    .await
                    .ok_or_else(|| anyhow!("empty raw_cue"))?,
                (None, None) => unreachable!(),
            };
            cue_tx.send(cue).await?;
            cues_sent += 1;
            let n = cues_sent;
            wait_metrics(&mut metrics, "a cue", |m| m.cues_in == n).await?;
        } else if ev.hold == Some(true) {
            *held.0.lock().unwrap() = true;
            hold_base = Some((*started.borrow(), false));
        } else if ev.release == Some(true) {
            *held.0.lock().unwrap() = false;
            held.1.notify_all();
            hold_base = None;
            let n = frames_sent;
            wait_metrics(&mut metrics, "the held frames", |m| {
                m.frames_done + m.frames_dropped + m.frames_failed == n
            })
            .await?;
        } else {
            bail!("event at {} ms has nothing to do", ev.t_ms);
        }
    }
    drop(frame_tx);
    drop(cue_tx);
    let (summary, _) = run.await??;
    let records = collector.await?;
    match records.last() {
        Some(Record::Summary(s)) if *s == summary => {}
        other => bail!("last record should be the summary, got {other:?}"),
    }
    records
        .iter()
        .map(|r| Ok(serde_json::to_string(r)?))
        .collect()
}

/// Run the named script and compare with its expected file.
async fn check(name: &str) -> anyhow::Result<Vec<Record>> {
    let script: Script =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.json")))?)
            .with_context(|| format!("reading script {name}"))?;
    let lines = play(script).await?;
    let got = lines.join("\n") + "\n";
    let path = fixture(&format!("{name}.expected.jsonl"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &got)?;
    }
    let want = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (run with UPDATE_EXPECT=1 to create it)", path.display()))?;
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        if g != w {
            bail!("{name}: line {} differs\n got: {g}\nwant: {w}", i + 1);
        }
    }
    if got.lines().count() != want.lines().count() {
        bail!(
            "{name}: {} lines, expected {}",
            got.lines().count(),
            want.lines().count()
        );
    }
    Ok(lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?)
}

fn results(records: &[Record]) -> Vec<&hlfp::pipeline::FrameResult> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Result(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn summary(records: &[Record]) -> &MetricsSnapshot {
    match records.last() {
        Some(Record::Summary(s)) => s,
        _ => panic!("no summary"),
    }
}

/// Cue arrival. Classes person, cat, dog, bird, car, bicycle; person protected, car context.
/// Frames 0 and 1 (before the cue) run all 6 branches: cat logit 2, others 1, so cat = 2/7 =
/// 0.2857143 and the rest 1/7 = 0.14285715 (ties listed by index: person, dog); MACs 100 + 60.
/// The cue (cat, 1.0) at 150 ms gives gain 1 + (1.5 - 1)·1 = 1.5. Frames 2 and 3 run the cutout
/// {person, cat, car}: logits 1, 3, 1, scores 0.2, 0.6, 0.2, MACs 130. Each latency is the 5 ms
/// of scripted inference; the summary's fps is 3 intervals over 305 - 5 ms = 10 fps.
#[tokio::test]
async fn replay_cue_arrival() -> anyhow::Result<()> {
    let rec = check("cue_arrival").await?;
    let r = results(&rec);
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].active, vec![0, 1, 2, 3, 4, 5]);
    assert!((r[0].top[0].score - 2.0 / 7.0).abs() < 1e-6);
    assert_eq!(r[2].active, vec![0, 1, 4]);
    assert_eq!(
        (r[2].top[0].class.as_str(), r[2].top[0].score),
        ("cat", 0.6)
    );
    assert_eq!((r[0].macs, r[2].macs), (160, 130));
    assert!(r.iter().all(|x| x.latency_ms == 5.0));
    let s = summary(&rec);
    assert!((s.fps - 10.0).abs() < 1e-9);
    assert_eq!(s.guidance.accepted, 1);
    Ok(())
}

/// Expiry (scripted inference 1 ms per frame). Cue (dog, 0.5) at 0 ms: gain 1 + 0.5·0.5 = 1.25 with TTL 1000 ms and fade 500 ms.
/// 500 and 990 ms: full gain 1.25, cutout {person, dog, car}, dog = 2.5 / 4.5 = 0.5555556.
/// (Events are at least `cost_ms` apart: the scripted clock never goes back, so an event due
/// before the previous frame's inference ended would be seen late.)
/// 1000 ms: the TTL is over and the fade begins at the full gain (500 of 500 ms left).
/// 1250 ms: halfway, gain 1.125, dog = 2.25 / 4.25 = 0.5294118. 1499 ms: 1 ms left, gain
/// 1 + 0.25/500 = 1.0005, still in the cutout. 1500 ms: the cue is over: all 6 branches, no
/// gains, dog = 2/7. fps: 5 intervals between completions at 501 and 1501 ms = 5.
#[tokio::test]
async fn replay_expiry() -> anyhow::Result<()> {
    let rec = check("expiry").await?;
    let r = results(&rec);
    let gain = |i: usize| r[i].gains.first().map(|g| g.gain);
    assert_eq!(gain(0), Some(1.25));
    assert_eq!(gain(1), Some(1.25));
    assert_eq!(gain(2), Some(1.25));
    assert_eq!(gain(3), Some(1.125));
    assert!((gain(4).unwrap() - 1.0005).abs() < 1e-6);
    assert_eq!(r[4].active, vec![0, 2, 4]);
    assert_eq!(gain(5), None);
    assert_eq!(r[5].active.len(), 6);
    assert!(r[5].cued.is_empty());
    assert_eq!(r[5].time_ms, 1500);
    assert_eq!(summary(&rec).guidance.expired, 1);
    assert_eq!(summary(&rec).fps, 5.0);
    Ok(())
}

/// A flood. At 100 ms: bicycle 0.6, bird 0.7, dog 0.8, cat 0.9 and ten repeats of cat 0.5,
/// applied together in canonical order (time, class index, score down): cat 0.9 takes the first
/// admission token, the ten repeats come within the 200 ms interval and are rate-limited
/// (TTL refreshed, score kept), dog 0.8 takes the second token, then bird and bicycle find the
/// cap (2) full of stronger, equally recent cues and are evicted. Frame 1 (150 ms, shows bird)
/// runs {person, cat, dog, car}: the bird it shows is not among them; cat gain 1.45, dog 1.4,
/// cat = 1.45 / 4.85 = 0.29896906. At 200 ms: cat again (within 200 ms of 100: rate-limited,
/// refreshes cat's TTL to 200) and bird (no token: the bucket refills one every 500 ms from
/// 100): rate-limited. Frame 2 is like frame 1. At 700 ms one token has refilled: bird enters
/// and evicts the oldest cue, dog (refreshed at 100; cat was refreshed at 200). Frame 3 runs
/// {person, cat, bird, car}, bird = 3 / 6.45 = 0.4651163.
/// Counters: accepted 3, rate-limited 12, evicted 3.
#[tokio::test]
async fn replay_flood() -> anyhow::Result<()> {
    let rec = check("flood").await?;
    let r = results(&rec);
    assert_eq!(r[1].active, vec![0, 1, 2, 4]);
    assert_eq!(r[2].active, vec![0, 1, 2, 4]);
    assert_eq!(r[3].active, vec![0, 1, 3, 4]);
    assert_eq!(
        (r[3].top[0].class.as_str(), r[3].top[0].score),
        ("bird", 3.0 / 6.45)
    );
    let g = summary(&rec).guidance;
    assert_eq!((g.accepted, g.rate_limited, g.evicted), (3, 12, 3));
    assert!(r.iter().all(|x| x.cued.len() <= 2));
    Ok(())
}

/// Bad cues: "unicorn" and "Cat" (names are case-sensitive) are unknown classes, cat with score
/// 1.7 is out of range, and a JSON line with an unknown field ("confidence") cannot be read.
/// Each gets a `cue` record with `queued: false` and the reason, and is counted (4 cue
/// rejections: 2 unknown, 1 bad score in the guidance counters, 1 unreadable line). Frame 1
/// after them still runs the full model with no gains; the good cue at 300 ms then works
/// (frame 2 runs the cutout {person, cat, car}).
#[tokio::test]
async fn replay_unknown_class() -> anyhow::Result<()> {
    let rec = check("unknown_class").await?;
    let cues: Vec<_> = rec
        .iter()
        .filter_map(|r| match r {
            Record::Cue(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(cues.iter().filter(|c| !c.queued).count(), 4);
    assert!(cues[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("unknown class \"unicorn\""));
    let r = results(&rec);
    assert_eq!(r[1].active.len(), 6);
    assert!(r[1].gains.is_empty());
    assert_eq!(r[2].active, vec![0, 1, 4]);
    let s = summary(&rec);
    assert_eq!((s.cues_in, s.cues_rejected), (5, 4));
    assert_eq!(
        (s.guidance.rejected_unknown, s.guidance.rejected_bad_score),
        (2, 1)
    );
    Ok(())
}

/// Overload. Frame 0 at 900 ms runs normally (5 ms). The classifier is then held: frame 1
/// (1000 ms) is taken by the inference thread and blocks; frame 2 (1010) waits in the slot;
/// frame 3 (1020) replaces it (frame 2 dropped), frame 4 (1030) replaces frame 3 (dropped).
/// At the release (1100 ms) frame 1 finishes at 1105 (latency 105 ms), then frame 4 at 1110
/// (latency 80 ms). Two drops, three results; latencies 5, 105, 80 give p50 80, p90 and
/// p99 105; fps = 2 intervals over 1110 - 905 ms = 9.756098.
#[tokio::test]
async fn replay_overload() -> anyhow::Result<()> {
    let rec = check("overload").await?;
    let dropped: Vec<u64> = rec
        .iter()
        .filter_map(|r| match r {
            Record::Dropped(d) => Some(d.id),
            _ => None,
        })
        .collect();
    assert_eq!(dropped, vec![2, 3]);
    let r = results(&rec);
    assert_eq!(
        r.iter().map(|x| (x.id, x.latency_ms)).collect::<Vec<_>>(),
        vec![(0, 5.0), (1, 105.0), (4, 80.0)]
    );
    let s = summary(&rec);
    assert_eq!((s.frames_in, s.frames_done, s.frames_dropped), (5, 3, 2));
    assert_eq!(
        (s.latency_p50_ms, s.latency_p90_ms, s.latency_p99_ms),
        (80.0, 105.0, 105.0)
    );
    assert!((s.fps - 2.0 / 0.205).abs() < 1e-9);
    Ok(())
}
