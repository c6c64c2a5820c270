//! Runtime behaviour outside the scripted replays: bad frames and classifier errors are counted
//! and the run goes on, runtime control (guidance config, stop), and the file transports end to
//! end (image folder in, JSON-lines cues from a reader, JSON-lines records to a file), and the
//! frame policies under a burst (latest frame vs every frame).

use std::sync::Arc;

use hlfp::guidance::{GuidanceConfig, Policy};
use hlfp::pipeline::{
    ChannelCueSource, ChannelFrameSource, ChannelSink, Classified, Control, Frame, FrameClassifier,
    FramePolicy, ImageFolderSource, JsonLinesCueSource, JsonLinesSink, MonotonicClock, NoCues,
    Record, Runtime, RuntimeConfig, ScriptedClock,
};
use tokio::sync::oneshot;

/// Scores uniform over the active set; fails on frames whose id is divisible by `fail_every`.
struct Uniform {
    classes: Vec<String>,
    fail_every: u64,
}

impl FrameClassifier for Uniform {
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn classify(
        &mut self,
        frame: &Frame,
        active: &[usize],
        _gains: &[f32],
    ) -> hlfp::Result<Classified> {
        if self.fail_every > 0 && frame.id % self.fail_every == 0 {
            return Err(hlfp::Error::BadInput(format!(
                "frame {} is cursed",
                frame.id
            )));
        }
        let p = 1.0 / active.len() as f32;
        Ok(Classified {
            scores: active.iter().map(|&i| (i, p)).collect(),
            macs: active.len() as u64,
        })
    }
}

fn classes() -> Vec<String> {
    ["person", "cat", "dog"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn frame(id: u64, w: u32, h: u32, len: usize) -> Frame {
    Frame {
        id,
        stamp_ns: id as i64,
        frame_id: "cam".into(),
        width: w,
        height: h,
        rgb: vec![0; len],
    }
}

#[tokio::test]
async fn bad_frames_and_classifier_errors_are_counted_and_the_run_goes_on() -> anyhow::Result<()> {
    let rt = Runtime::new(RuntimeConfig::default(), Arc::new(ScriptedClock::new()));
    let (tx, frames) = ChannelFrameSource::new(8);
    let (sink, mut out) = ChannelSink::new(64);
    let run = tokio::spawn(rt.run(
        Uniform {
            classes: classes(),
            fail_every: 2,
        },
        frames,
        NoCues,
        sink,
    ));
    tx.send(Ok(frame(1, 2, 2, 12))).await?;
    tx.send(Ok(frame(3, 2, 2, 11))).await?; // truncated buffer
    tx.send(Err(hlfp::Error::BadInput("unreadable file".into())))
        .await?;
    // Wait for each result so no frame is dropped by the latest-frame slot.
    let mut records = vec![];
    while records.len() < 3 {
        records.push(out.recv().await.unwrap());
    }
    tx.send(Ok(frame(2, 2, 2, 12))).await?; // the classifier fails on even ids
    records.push(out.recv().await.unwrap());
    tx.send(Ok(frame(5, 1, 1, 3))).await?;
    drop(tx);
    let (summary, _) = run.await??;
    while let Some(r) = out.recv().await {
        records.push(r);
    }
    assert_eq!((summary.frames_in, summary.frames_done), (3, 2));
    assert_eq!((summary.frames_bad, summary.frames_failed), (2, 1));
    let errors: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Error(e) => Some(e.error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors
        .iter()
        .any(|e| e.contains("11 bytes") && e.contains("expected 12")));
    assert!(errors.iter().any(|e| e.contains("cursed")));
    assert!(matches!(records.last(), Some(Record::Summary(_))));
    Ok(())
}

#[tokio::test]
async fn guidance_config_changes_at_run_time_and_stop_ends_the_run() -> anyhow::Result<()> {
    let rt = Runtime::new(RuntimeConfig::default(), Arc::new(MonotonicClock::new()));
    let control = rt.control();
    let (frame_tx, frames) = ChannelFrameSource::new(1);
    let (cue_tx, cues) = ChannelCueSource::new(4);
    let (sink, mut out) = ChannelSink::new(64);
    let run = tokio::spawn(rt.run(
        Uniform {
            classes: classes(),
            fail_every: 0,
        },
        frames,
        cues,
        sink,
    ));

    let bad = GuidanceConfig {
        ttl_ms: 0,
        ..GuidanceConfig::default()
    };
    let (reply, answer) = oneshot::channel();
    control
        .send(Control::SetGuidance { config: bad, reply })
        .await?;
    assert!(answer.await?.unwrap_err().to_string().contains("ttl_ms"));

    let boost = GuidanceConfig {
        policy: Policy::Boost,
        ..GuidanceConfig::default()
    };
    let (reply, answer) = oneshot::channel();
    control
        .send(Control::SetGuidance {
            config: boost,
            reply,
        })
        .await?;
    answer.await??;
    cue_tx
        .send(Ok(hlfp::pipeline::CueInput {
            class: "cat".into(),
            score: 1.0,
            source: "t".into(),
        }))
        .await?;
    // The cue record comes back before the frame is sent, so the frame sees the cue.
    assert!(matches!(out.recv().await, Some(Record::Cue(c)) if c.queued));
    frame_tx.send(Ok(frame(1, 1, 1, 3))).await?;
    match out.recv().await {
        Some(Record::Result(r)) => {
            assert_eq!(r.policy, Policy::Boost);
            assert_eq!(r.active, vec![0, 1, 2], "boost keeps every branch");
            assert_eq!(r.gains.len(), 1);
            assert_eq!(r.gains[0].index, 1);
        }
        other => panic!("expected a result, got {other:?}"),
    }
    // The frame source is still open: only Stop ends the run.
    control.send(Control::Stop).await?;
    let (summary, _) = tokio::time::timeout(std::time::Duration::from_secs(10), run).await???;
    assert_eq!(summary.frames_done, 1);
    drop(frame_tx);
    Ok(())
}

#[tokio::test]
async fn image_folder_and_json_lines_transports_end_to_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (i, px) in [[255u8, 0, 0], [0, 255, 0]].iter().enumerate() {
        image::RgbImage::from_pixel(8, 6, image::Rgb(*px))
            .save(dir.path().join(format!("{i:03}.png")))?;
    }
    std::fs::write(dir.path().join("002.jpg"), b"broken")?;
    let frames = ImageFolderSource::open(dir.path(), 0.0, "folder")?;
    // An unknown class and a bare class name.
    let cues = JsonLinesCueSource::new(&b"{\"class\":\"zebra\"}\ncat\n"[..], "stdin");
    let out_path = dir.path().join("out.jsonl");
    let file = tokio::fs::File::create(&out_path).await?;
    let sink = JsonLinesSink::new(file, "out.jsonl", false);
    let rt = Runtime::new(RuntimeConfig::default(), Arc::new(MonotonicClock::new()));
    let (summary, _) = rt
        .run(
            Uniform {
                classes: classes(),
                fail_every: 0,
            },
            frames,
            cues,
            sink,
        )
        .await?;
    let text = std::fs::read_to_string(&out_path)?;
    let records: Vec<Record> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        summary.frames_bad, 1,
        "the broken jpg is skipped and counted"
    );
    assert_eq!(summary.frames_in, 2);
    assert_eq!(summary.frames_done + summary.frames_dropped, 2);
    assert!(matches!(records.last(), Some(Record::Summary(s)) if *s == summary));
    assert!(records
        .iter()
        .any(|r| matches!(r, Record::Error(e) if e.error.contains("002.jpg"))));
    for r in &records {
        if let Record::Result(x) = r {
            assert_eq!(x.frame_id, "folder");
            assert!(x.top.len() <= 5);
        }
    }
    Ok(())
}

/// [`Uniform`] that takes `ms` per frame, so frames pile up behind it.
struct Slow {
    inner: Uniform,
    ms: u64,
}

impl FrameClassifier for Slow {
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn classify(
        &mut self,
        frame: &Frame,
        active: &[usize],
        gains: &[f32],
    ) -> hlfp::Result<Classified> {
        std::thread::sleep(std::time::Duration::from_millis(self.ms));
        self.inner.classify(frame, active, gains)
    }
}

/// Ten frames sent at once to a 15 ms classifier under `policy`: the summary and the ids of the
/// frames that got a result or an error.
async fn burst(policy: FramePolicy) -> anyhow::Result<(hlfp::pipeline::MetricsSnapshot, Vec<u64>)> {
    let config = RuntimeConfig {
        frame_policy: policy,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config, Arc::new(MonotonicClock::new()));
    let (tx, frames) = ChannelFrameSource::new(16);
    let (sink, mut out) = ChannelSink::new(64);
    let slow = Slow {
        inner: Uniform {
            classes: classes(),
            fail_every: 4, // frame 4 and 8 fail: an error must not stall `Every`
        },
        ms: 15,
    };
    let run = tokio::spawn(rt.run(slow, frames, NoCues, sink));
    for id in 1..=10 {
        tx.send(Ok(frame(id, 2, 2, 12))).await?;
    }
    drop(tx);
    let (summary, _) = run.await??;
    let mut seen = vec![];
    while let Some(r) = out.recv().await {
        match r {
            Record::Result(r) => seen.push(r.id),
            Record::Error(e) => seen.extend(e.id),
            _ => {}
        }
    }
    Ok((summary, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_policy_classifies_every_frame_in_order_and_latest_drops() -> anyhow::Result<()>
{
    let (every, seen) = burst(FramePolicy::Every).await?;
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    assert_eq!((every.frames_in, every.frames_dropped), (10, 0));
    assert_eq!((every.frames_done, every.frames_failed), (8, 2));

    // The default keeps only the newest waiting frame: a burst loses frames.
    let (latest, seen) = burst(FramePolicy::Latest).await?;
    assert_eq!(latest.frames_in, 10);
    assert!(latest.frames_dropped > 0, "{latest:?}");
    assert_eq!(
        seen.len() as u64 + latest.frames_dropped,
        10,
        "every frame is classified or reported dropped"
    );
    Ok(())
}
