//! The conversions the nodes use, driven the way the node callbacks drive them: image messages
//! (good and bad, each refusal naming its reason), cue messages into the guidance state machine, output messages.

use hlfp::guidance::{Cue, CueRejection, Guidance, GuidanceConfig};
use hlfp::ros::convert::*;
use hlfp::ros::msgs::*;

fn header(sec: i32, frame: &str) -> Header {
    Header {
        stamp: Time {
            sec,
            nanosec: 250_000_000,
        },
        frame_id: frame.to_string(),
    }
}

fn image(w: u32, h: u32, enc: &str, step: u32, data: Vec<u8>) -> Image {
    Image {
        header: header(1, "cam"),
        height: h,
        width: w,
        encoding: enc.into(),
        is_bigendian: 0,
        step,
        data,
    }
}

#[test]
fn a_stream_of_images_with_bad_ones_is_decoded_and_counted_by_reason() {
    let stream = vec![
        image(2, 1, "bgr8", 6, vec![1, 2, 3, 4, 5, 6]),
        image(2, 1, "bgr8", 6, vec![1, 2, 3]), // truncated
        image(2, 1, "16UC1", 4, vec![0; 4]),   // unknown encoding
        image(0, 1, "rgb8", 0, vec![]),        // zero size
        image(2, 1, "rgb8", 5, vec![0; 6]),    // step too small
        image(3, 1, "yuyv", 6, vec![0; 6]),    // odd width
        image(2, 2, "mono8", 3, vec![9, 8, 0, 7, 6, 0]), // padded
    ];
    let mut decoded = Vec::new();
    let mut errors = Vec::new();
    for (i, msg) in stream.into_iter().enumerate() {
        match frame_from_image(msg, i as u64) {
            Ok(f) => decoded.push(f),
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded[0].rgb, vec![3, 2, 1, 6, 5, 4]);
    assert_eq!(
        (decoded[0].id, decoded[0].width, decoded[0].height),
        (0, 2, 1)
    );
    assert_eq!(decoded[0].frame_id, "cam");
    assert_eq!(decoded[0].stamp_ns, 1_250_000_000);
    assert_eq!(decoded[1].rgb, vec![9, 9, 9, 8, 8, 8, 7, 7, 7, 6, 6, 6]);
    assert!(decoded.iter().all(|f| f.validate().is_ok()));
    let kinds = [
        "truncated",
        "unknown_encoding",
        "zero_size",
        "step_too_small",
        "odd_width",
    ];
    assert_eq!(errors.len(), kinds.len());
    for (e, kind) in errors.iter().zip(kinds) {
        assert!(e.contains(&format!("({kind})")), "{e} should name {kind}");
    }
}

#[test]
fn a_result_becomes_a_classification_with_the_frame_header() {
    use hlfp::guidance::Policy;
    use hlfp::pipeline::{ClassScore, FrameResult};
    for stamp in [header(42, "cam"), header(-3, ""), header(i32::MAX, "x")] {
        let ns = stamp.stamp.to_ns();
        assert_eq!(Time::from_ns(ns), stamp.stamp);
        let r = FrameResult {
            id: 7,
            stamp_ns: ns,
            frame_id: stamp.frame_id.clone(),
            top: vec![
                ClassScore {
                    index: 2,
                    class: "dog".into(),
                    score: 0.75,
                },
                ClassScore {
                    index: 0,
                    class: "cat".into(),
                    score: 0.25,
                },
            ],
            policy: Policy::Focus,
            active: vec![0, 2],
            gains: vec![],
            cued: vec![],
            macs: 1,
            latency_ms: 0.0,
            time_ms: 0,
        };
        let c = classification_from_result(&r);
        assert_eq!(c.header, stamp);
        let ids: Vec<(&str, f64)> = c
            .results
            .iter()
            .map(|h| (h.class_id.as_str(), h.score))
            .collect();
        assert_eq!(ids, [("dog", 0.75), ("cat", 0.25)]);
    }
}

#[test]
fn cue_messages_become_cues_and_the_state_machine_judges_them() {
    let classes: Vec<String> = ["cat", "dog", "church"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut g = Guidance::new(classes, &GuidanceConfig::default()).unwrap();
    let msg = Classification {
        header: header(5, ""),
        results: vec![
            ObjectHypothesis {
                class_id: "cat".into(),
                score: 0.9,
            },
            ObjectHypothesis {
                class_id: "unicorn".into(),
                score: 0.9,
            },
            ObjectHypothesis {
                class_id: "dog".into(),
                score: 7.0,
            },
        ],
    };
    let cues: Vec<Cue> = cues_from_classification(&msg, "ros")
        .into_iter()
        .map(|c| Cue {
            class: c.class,
            score: c.score,
            source: c.source,
            time_ms: 1234,
        })
        .collect();
    assert_eq!(cues.len(), 3);
    assert_eq!(
        (cues[0].class.as_str(), cues[0].source.as_str()),
        ("cat", "ros")
    );
    assert_eq!(cues[0].score, 0.9);
    assert!(g.submit(&cues[0]).is_ok());
    assert!(matches!(
        g.submit(&cues[1]),
        Err(CueRejection::UnknownClass { .. })
    ));
    assert!(g.submit(&cues[2]).is_err());
    let state = g.state_at(1234);
    assert!(state.cued.iter().any(|c| c.class == "cat"), "{state:?}");
    let stats = g.stats();
    assert_eq!((stats.accepted, stats.rejected()), (1, 2));
}

#[test]
fn classification_output_keeps_the_input_header_and_drops_non_finite_scores() {
    let h = header(42, "camera_optical");
    let c = classification_msg(
        h.clone(),
        [("cat", 0.7f32), ("dog", f32::NAN), ("church", 0.1)],
    );
    assert_eq!(c.header, h);
    let ids: Vec<&str> = c.results.iter().map(|r| r.class_id.as_str()).collect();
    assert_eq!(ids, ["cat", "church"]);
    assert!((c.results[0].score - 0.7).abs() < 1e-6);
    // What goes to r2r's untyped publisher.
    let json = c.to_json().unwrap();
    assert_eq!(json["header"]["frame_id"], "camera_optical");
    assert_eq!(json["header"]["stamp"]["sec"], 42);
}

#[test]
fn label_info_maps_output_indices_to_names() {
    let classes: Vec<String> = ["tench", "cat"].iter().map(|c| c.to_string()).collect();
    let li = label_info_msg(Header::default(), &classes, 0.25).unwrap();
    assert_eq!(li.class_map.len(), 2);
    assert_eq!(
        (
            li.class_map[1].class_id,
            li.class_map[1].class_name.as_str()
        ),
        (1, "cat")
    );
    assert_eq!(li.threshold, 0.25);
    let many: Vec<String> = (0..70_000).map(|i| i.to_string()).collect();
    assert!(label_info_msg(Header::default(), &many, 0.0).is_err());
    assert_eq!(
        label_info_msg(Header::default(), &classes, f32::NAN)
            .unwrap()
            .threshold,
        0.0
    );
}

#[test]
fn diagnostics_carry_the_given_values() {
    let st = diagnostic_status(
        "hlfp_node: vision",
        "cpu",
        DiagnosticStatus::WARN,
        "2 images rejected",
        &[("fps".into(), "9.8".into()), ("drops".into(), "3".into())],
    );
    let arr = diagnostic_array(header(3, ""), st);
    assert_eq!(arr.status[0].level, 1);
    assert_eq!(arr.status[0].values[1].key, "drops");
    assert_eq!(arr.header.stamp.sec, 3);
}

#[test]
fn s16le_audio_to_mono_floats() {
    let msg = |data: Vec<u8>| AudioDataStamped {
        header: Header::default(),
        audio: AudioData { data },
    };
    // 0, 16384 (0.5), -32768 (-1.0), 32767
    let mono = s16le_mono(&msg(vec![0, 0, 0x00, 0x40, 0x00, 0x80, 0xff, 0x7f]), 1).unwrap();
    assert_eq!(mono, vec![0.0, 0.5, -1.0, 32767.0 / 32768.0]);
    // Stereo frames (0.5, -0.5) and (0.5, 0.5) average to 0 and 0.5.
    let stereo = s16le_mono(
        &msg(vec![0x00, 0x40, 0x00, 0xC0, 0x00, 0x40, 0x00, 0x40]),
        2,
    )
    .unwrap();
    assert_eq!(stereo, vec![0.0, 0.5]);
    assert!(s16le_mono(&msg(vec![0, 0, 0]), 1).is_err()); // odd byte count
    assert!(s16le_mono(&msg(vec![0; 6]), 2).is_err()); // 3 samples, 2 channels
    assert!(s16le_mono(&msg(vec![0; 4]), 0).is_err());
    assert!(s16le_mono(&msg(vec![]), 1).unwrap().is_empty());
}
