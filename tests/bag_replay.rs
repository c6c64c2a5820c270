//! Bag replay and recording (`hlfp::bag`) against bags written by the official Python `mcap` and
//! `mcap-ros2-support` packages (`scripts/bag_fixtures.py make`, committed under
//! `tests/fixtures/bag/` with the `expected.json` that script wrote). Frames go through the real
//! runtime in lockstep with a colour classifier (the mean colour picks red, green, blue or gray),
//! so each image encoding is checked by the class its decoded pixels give. The round trip's
//! recorded bag and JSON lines are left in `CARGO_TARGET_TMPDIR` for
//! `scripts/bag_fixtures.py check`, which decodes them with mcap-ros2-support (CI runs it).

use std::path::{Path, PathBuf};

use hlfp::audio::detector::WindowScorer;
use hlfp::audio::pipeline::AudioPipeline;
use hlfp::bag::cdr;
use hlfp::bag::replay::ReplaySummary;
use hlfp::bag::{
    BagInput, BagReader, BagRecorder, BagReplay, InputMapper, Pacing, RecordTopics, TopicConfig,
};
use hlfp::guidance::GuidanceConfig;
use hlfp::pipeline::{
    ChannelSink, Classified, Frame, FrameClassifier, FramePolicy, JsonLinesSink, Record, Runtime,
    RuntimeConfig, TeeSink,
};
use hlfp::ros::msgs::{Classification, DiagnosticArray, LabelInfo};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bag")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

/// Mean colour to class: red, green or blue by the largest channel, gray when the channels are
/// close. Scores are `[r, g, b, 255 - spread]` times the branch gains, normalised over the
/// active branches.
struct ColourClassifier(Vec<String>);

impl FrameClassifier for ColourClassifier {
    fn class_names(&self) -> &[String] {
        &self.0
    }

    fn classify(
        &mut self,
        frame: &Frame,
        active: &[usize],
        gains: &[f32],
    ) -> hlfp::Result<Classified> {
        let n = (frame.width * frame.height) as f32;
        let mut mean = [0f32; 3];
        for px in frame.rgb.chunks_exact(3) {
            for (m, &v) in mean.iter_mut().zip(px) {
                *m += f32::from(v) / n;
            }
        }
        let spread = mean.iter().cloned().fold(f32::MIN, f32::max)
            - mean.iter().cloned().fold(f32::MAX, f32::min);
        let raw = [mean[0], mean[1], mean[2], 255.0 - spread];
        let total: f32 = active.iter().map(|&i| raw[i] * gains[i]).sum();
        Ok(Classified {
            scores: active
                .iter()
                .map(|&i| (i, raw[i] * gains[i] / total))
                .collect(),
            macs: 0,
        })
    }
}

fn classes() -> Vec<String> {
    expected()["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

const TTL_MS: u64 = 300;

fn runtime_config(policy: FramePolicy) -> RuntimeConfig {
    RuntimeConfig {
        top_n: 4,
        frame_policy: policy,
        guidance: GuidanceConfig {
            ttl_ms: TTL_MS,
            fade_ms: 0,
            protected: classes(),
            ..GuidanceConfig::default()
        },
        ..RuntimeConfig::default()
    }
}

type NoAudio = Option<AudioPipeline<Box<dyn WindowScorer + Send>>>;

/// Replay `bag` through the runtime; the records, the replay's summary and (when `record` is
/// given) the recorded bag and its JSON lines.
fn replay(
    bag: &Path,
    topics: TopicConfig,
    pacing: Pacing,
    record: Option<&Path>,
) -> (Vec<Record>, ReplaySummary) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reader = BagReader::open(bag).unwrap();
        let mapper = InputMapper::new(topics).unwrap();
        let (replay, frames, cues) =
            BagReplay::spawn(reader, mapper, pacing, None as NoAudio).unwrap();
        let policy = match pacing {
            Pacing::Lockstep => FramePolicy::Every,
            Pacing::Rate(_) => FramePolicy::Latest,
        };
        let runtime = Runtime::new(runtime_config(policy), replay.clock());
        let (collect, mut rx) = ChannelSink::new(10_000);
        let classifier = ColourClassifier(classes());
        match record {
            Some(path) => {
                let recorder =
                    BagRecorder::create(path, &RecordTopics::default(), classes(), replay.clock())
                        .unwrap()
                        .with_bag_stats(replay.stats())
                        .with_diagnostics_period_ms(500);
                let file = tokio::fs::File::create(path.with_extension("jsonl"))
                    .await
                    .unwrap();
                let json = JsonLinesSink::new(tokio::io::BufWriter::new(file), "jsonl", false);
                let sink = replay.gate(TeeSink(collect, TeeSink(json, recorder)));
                runtime.run(classifier, frames, cues, sink).await.unwrap();
            }
            None => {
                runtime
                    .run(classifier, frames, cues, replay.gate(collect))
                    .await
                    .unwrap();
            }
        }
        let summary = replay.join().unwrap();
        let mut records = Vec::new();
        while let Ok(r) = rx.try_recv() {
            records.push(r);
        }
        (records, summary)
    })
}

fn results(records: &[Record]) -> Vec<&hlfp::pipeline::FrameResult> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Result(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn errors(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Error(e) => Some(e.error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_encoding_replays_with_its_header_and_class_and_cues_hold_for_their_bag_time() {
    let exp = expected();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bag_roundtrip.mcap");
    let (records, summary) = replay(
        &fixture("inputs.mcap"),
        TopicConfig::default(),
        Pacing::Lockstep,
        Some(&out),
    );
    let res = results(&records);
    let frames = exp["frames"].as_array().unwrap();
    let good: Vec<&Value> = frames.iter().filter(|f| f.get("class").is_some()).collect();
    assert_eq!(res.len(), good.len(), "{records:#?}");
    let t0 = exp["t0_ns"].as_u64().unwrap();
    let cue_ms = (exp["cues"][0]["log_time_ns"].as_u64().unwrap() - t0) / 1_000_000;
    for (r, f) in res.iter().zip(&good) {
        assert_eq!(r.id, f["index"].as_u64().unwrap());
        assert_eq!(r.stamp_ns, f["stamp_ns"].as_i64().unwrap());
        assert_eq!(r.frame_id, f["frame_id"].as_str().unwrap());
        assert_eq!(
            r.top[0].class,
            f["class"].as_str().unwrap(),
            "{} ({})",
            r.id,
            f["encoding"]
        );
        // Bag time: the frame arrives at its log time; the cue holds from its log time for TTL_MS.
        let at_ms = (f["log_time_ns"].as_u64().unwrap() - t0) / 1_000_000;
        assert_eq!(r.time_ms, at_ms);
        let cued = at_ms >= cue_ms && at_ms < cue_ms + TTL_MS;
        assert_eq!(
            r.cued,
            if cued {
                vec!["blue".to_string()]
            } else {
                vec![]
            },
            "frame {}",
            r.id
        );
    }
    let errs = errors(&records);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("message 10") && errs[0].contains("unknown image encoding \"16UC1\""),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("message 11") && errs[1].contains("CDR"),
        "{}",
        errs[1]
    );
    let cue_events: Vec<(String, bool)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Cue(c) => Some((c.class.clone(), c.queued)),
            _ => None,
        })
        .collect();
    assert_eq!(
        cue_events,
        vec![("blue".into(), true), ("zebra".into(), false)]
    );
    let b = &summary.bag;
    assert_eq!(b.image_topic.as_deref(), Some("/camera/image_raw"));
    assert_eq!(
        (b.image_messages, b.frames, b.cue_messages),
        (frames.len() as u64, good.len() as u64, 2)
    );
    assert_eq!(b.skipped.get("unknown_encoding"), Some(&1));
    assert_eq!(b.skipped.get("cdr"), Some(&1));
    assert_eq!(b.skipped_total(), 2);
    assert!(summary.stopped.is_none() && b.fatal.is_none());

    // The recorded bag, read back: one Classification per result with the frame's header.
    let mut by_topic: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
    let mut channels = std::collections::BTreeMap::new();
    for m in BagReader::open(&out).unwrap() {
        let m = m.unwrap();
        channels.insert(
            m.channel.topic.clone(),
            (
                m.channel.schema_name.clone(),
                m.channel.message_encoding.clone(),
            ),
        );
        by_topic
            .entry(m.channel.topic.clone())
            .or_default()
            .push(m.data);
    }
    assert_eq!(
        channels["/classification"],
        ("vision_msgs/msg/Classification".into(), "cdr".into())
    );
    let cls: Vec<Classification> = by_topic["/classification"]
        .iter()
        .map(|d| cdr::decode(d).unwrap())
        .collect();
    assert_eq!(cls.len(), res.len());
    for (c, r) in cls.iter().zip(&res) {
        assert_eq!(hlfp::bag::input::ns_from_time(c.header.stamp), r.stamp_ns);
        assert_eq!(c.header.frame_id, r.frame_id);
        let names: Vec<&str> = c.results.iter().map(|h| h.class_id.as_str()).collect();
        assert_eq!(
            names,
            r.top.iter().map(|t| t.class.as_str()).collect::<Vec<_>>()
        );
    }
    let labels: Vec<LabelInfo> = by_topic["/label_info"]
        .iter()
        .map(|d| cdr::decode(d).unwrap())
        .collect();
    assert_eq!(labels.len(), 1);
    assert_eq!(
        labels[0]
            .class_map
            .iter()
            .map(|c| c.class_name.clone())
            .collect::<Vec<_>>(),
        classes()
    );
    let cues: Vec<Classification> = by_topic["/cues"]
        .iter()
        .map(|d| cdr::decode(d).unwrap())
        .collect();
    assert_eq!(cues.len(), 1);
    assert_eq!(cues[0].results[0].class_id, "blue");
    let diags: Vec<DiagnosticArray> = by_topic["/diagnostics"]
        .iter()
        .map(|d| cdr::decode(d).unwrap())
        .collect();
    // Every 500 ms of a 1.2 s bag, and at the end.
    assert!(diags.len() >= 3, "{}", diags.len());
    let last = &diags.last().unwrap().status[0];
    let value = |k: &str| {
        last.values
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(value("frames_classified"), Some(res.len().to_string()));
    assert_eq!(value("bag_skipped.unknown_encoding"), Some("1".into()));
    assert_eq!(last.level, hlfp::ros::msgs::DiagnosticStatus::WARN);
}

#[test]
fn lockstep_replays_are_identical() {
    let a = replay(
        &fixture("inputs.mcap"),
        TopicConfig::default(),
        Pacing::Lockstep,
        None,
    );
    let b = replay(
        &fixture("inputs.mcap"),
        TopicConfig::default(),
        Pacing::Lockstep,
        None,
    );
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
}

#[test]
fn compressed_images_decode_jpeg_and_png() {
    let exp = expected();
    let topics = TopicConfig {
        image_topic: Some("/camera/image_raw/compressed".into()),
        ..TopicConfig::default()
    };
    let (records, _) = replay(&fixture("inputs.mcap"), topics, Pacing::Lockstep, None);
    let res = results(&records);
    let want = exp["compressed"].as_array().unwrap();
    assert_eq!(res.len(), want.len());
    for (r, w) in res.iter().zip(want) {
        assert_eq!(
            (r.frame_id.as_str(), r.stamp_ns),
            (
                w["frame_id"].as_str().unwrap(),
                w["stamp_ns"].as_i64().unwrap()
            )
        );
        assert_eq!(r.top[0].class, w["class"].as_str().unwrap());
    }
}

#[test]
fn a_wrong_schema_or_message_encoding_is_a_counted_skip() {
    let exp = expected();
    for (topic, reason) in exp["refused"].as_object().unwrap() {
        let topics = TopicConfig {
            image_topic: Some(topic.clone()),
            ..TopicConfig::default()
        };
        let (records, summary) = replay(&fixture("inputs.mcap"), topics, Pacing::Lockstep, None);
        assert!(results(&records).is_empty());
        let errs = errors(&records);
        assert_eq!(errs.len(), 1, "{topic}: {errs:?}");
        assert!(
            errs[0].contains(topic.as_str()) && errs[0].contains("expected"),
            "{}",
            errs[0]
        );
        assert_eq!(
            summary.bag.skipped.get(reason.as_str().unwrap()),
            Some(&1),
            "{topic}"
        );
        // The rest of the bag is still read: the cues arrive.
        assert_eq!(summary.bag.cue_messages, 2);
    }
}

#[test]
fn a_damaged_chunk_is_skipped_and_the_rest_replayed() {
    let exp = &expected()["damaged"];
    let lost: Vec<u64> = exp["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let (records, summary) = replay(
        &fixture("damaged.mcap"),
        TopicConfig::default(),
        Pacing::Lockstep,
        None,
    );
    let got: Vec<(String, String)> = results(&records)
        .iter()
        .map(|r| (r.frame_id.clone(), r.top[0].class.clone()))
        .collect();
    let want: Vec<(String, String)> = (0..exp["frames"].as_u64().unwrap())
        .filter(|i| !lost.contains(i))
        .map(|i| {
            (
                format!("cam{i}"),
                exp["classes"][i as usize].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(summary.bag.skipped.get("damaged_chunk"), Some(&1));
    assert!(summary.bag.fatal.is_none());
}

#[test]
fn a_truncated_bag_replays_up_to_the_cut_and_says_so() {
    let kept: Vec<String> = expected()["truncated"]["frames_kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("cam{}", i.as_u64().unwrap()))
        .collect();
    let (records, summary) = replay(
        &fixture("truncated.mcap"),
        TopicConfig::default(),
        Pacing::Lockstep,
        None,
    );
    let got: Vec<String> = results(&records)
        .iter()
        .map(|r| r.frame_id.clone())
        .collect();
    assert_eq!(got, kept);
    let fatal = summary.bag.fatal.expect("a truncated bag is reported");
    assert!(
        fatal.contains("truncated") && fatal.contains("truncated.mcap"),
        "{fatal}"
    );
}

#[test]
fn paced_replay_reports_every_frame_once() {
    let exp = expected();
    let n = exp["frames"].as_array().unwrap().len();
    let (records, summary) = replay(
        &fixture("inputs.mcap"),
        TopicConfig::default(),
        Pacing::Rate(4.0),
        None,
    );
    let handled = records
        .iter()
        .filter(|r| matches!(r, Record::Result(_) | Record::Error(_) | Record::Dropped(_)))
        .count();
    assert_eq!(handled, n);
    for r in results(&records) {
        let f = &exp["frames"][r.id as usize];
        assert_eq!(r.top[0].class, f["class"].as_str().unwrap());
    }
    assert_eq!(summary.bag.frames as usize, n - 2);
}

#[test]
fn audio_messages_become_mono_samples_at_their_rate() {
    let exp = &expected()["audio"];
    for (topic, channels) in [("/audio", 1u32), ("/audio_raw", 2)] {
        let want = &exp[topic];
        let mut mapper = InputMapper::new(TopicConfig {
            audio_topic: Some(topic.into()),
            audio_rate_hz: want["rate_hz"].as_u64().unwrap() as u32,
            audio_channels: channels,
            ..TopicConfig::default()
        })
        .unwrap();
        let mut samples = Vec::new();
        for m in BagReader::open(&fixture("inputs.mcap")).unwrap() {
            if let Some(BagInput::Audio {
                samples: s,
                rate_hz,
            }) = mapper.map(m)
            {
                assert_eq!(u64::from(rate_hz), want["rate_hz"].as_u64().unwrap());
                samples.extend(s);
            }
        }
        assert_eq!(
            samples.len() as u64,
            want["samples"].as_u64().unwrap(),
            "{topic}"
        );
        let first: Vec<f32> = if channels == 1 {
            want["first"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32 / 32768.0)
                .collect()
        } else {
            let (l, r) = (
                want["first_left"].as_array().unwrap(),
                want["first_right"].as_array().unwrap(),
            );
            l.iter()
                .zip(r)
                .map(|(a, b)| {
                    (a.as_f64().unwrap() as f32 / 32768.0 + b.as_f64().unwrap() as f32 / 32768.0)
                        / 2.0
                })
                .collect()
        };
        assert_eq!(&samples[..first.len()], &first[..], "{topic}");
        // Only the image topic's two bad messages are skipped.
        assert_eq!(
            mapper.stats().skipped.keys().collect::<Vec<_>>(),
            ["cdr", "unknown_encoding"]
        );
    }
}

#[test]
fn our_schemas_have_the_layouts_of_the_upstream_definitions() {
    // tests/fixtures/msg holds the upstream .msg files; rebuild ros2msg texts from them.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/msg");
    let read = |p: &str| std::fs::read_to_string(dir.join(format!("{p}.msg"))).unwrap();
    let sep = "=".repeat(80);
    let text = |main: &str, deps: &[&str]| {
        let mut s = read(main);
        for d in deps {
            s.push_str(&format!("\n{sep}\nMSG: {d}\n{}", read(d)));
        }
        s
    };
    let hdr = ["std_msgs/Header", "builtin_interfaces/Time"];
    use hlfp::bag::KnownType as K;
    let cases = [
        (K::Image, text("sensor_msgs/Image", &hdr)),
        (
            K::Classification,
            text(
                "vision_msgs/Classification",
                &[hdr[0], hdr[1], "vision_msgs/ObjectHypothesis"],
            ),
        ),
        (
            K::LabelInfo,
            text(
                "vision_msgs/LabelInfo",
                &[hdr[0], hdr[1], "vision_msgs/VisionClass"],
            ),
        ),
        (
            K::DiagnosticArray,
            text(
                "diagnostic_msgs/DiagnosticArray",
                &[
                    hdr[0],
                    hdr[1],
                    "diagnostic_msgs/DiagnosticStatus",
                    "diagnostic_msgs/KeyValue",
                ],
            ),
        ),
        (
            K::AudioDataStamped,
            text(
                "audio_common_msgs/AudioDataStamped",
                &[hdr[0], hdr[1], "audio_common_msgs/AudioData"],
            ),
        ),
    ];
    for (k, upstream) in cases {
        k.check(&upstream)
            .unwrap_or_else(|e| panic!("{}: {e}", k.name()));
    }
}
