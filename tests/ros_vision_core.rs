//! The vision node's logic driven in-process, as the r2r callbacks drive it: scripted timed
//! images and cues in, classification / label_info / diagnostics messages out.

use hlfp::guidance::{GuidanceState, Policy};
use hlfp::ros::msgs::*;
use hlfp::ros::params::{NodeParams, ParamValue, VisionNodeConfig};
use hlfp::ros::vision_core::{FrameScorer, VisionCore};

/// A deterministic stand-in for the model: every active class scores its gain times a fixed
/// base score, and it records the active sets it was asked to run.
struct GainScorer {
    base: Vec<f32>,
    runs: Vec<Vec<usize>>,
    fail: bool,
}

impl FrameScorer for GainScorer {
    fn score(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        state: &GuidanceState,
    ) -> hlfp::Result<Vec<(usize, f32)>> {
        assert_eq!(rgb.len(), width * height * 3);
        if self.fail {
            return Err(hlfp::Error::BadInput("scorer failure".into()));
        }
        self.runs.push(state.active.clone());
        Ok(state
            .active
            .iter()
            .map(|&i| (i, self.base[i] * state.gains[i]))
            .collect())
    }
}

fn classes() -> Vec<String> {
    ["tench", "cat", "dog", "church", "golf_ball", "parachute"]
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn scorer() -> GainScorer {
    GainScorer {
        base: vec![0.30, 0.22, 0.20, 0.15, 0.12, 0.13],
        runs: Vec::new(),
        fail: false,
    }
}

fn frame(sec: i32) -> Image {
    Image {
        header: Header {
            stamp: Time { sec, nanosec: 7 },
            frame_id: "camera".into(),
        },
        height: 2,
        width: 2,
        encoding: "bgr8".into(),
        is_bigendian: 0,
        step: 6,
        data: vec![0; 12],
    }
}

fn cue(class: &str, score: f64) -> Classification {
    Classification {
        header: Header::default(),
        results: vec![ObjectHypothesis {
            class_id: class.into(),
            score,
        }],
    }
}

fn config() -> VisionNodeConfig {
    let mut c = VisionNodeConfig::default();
    c.apply("top_k", &ParamValue::Integer(3)).unwrap();
    c.apply("guidance.context_size", &ParamValue::Integer(1))
        .unwrap();
    c
}

#[test]
fn a_cue_switches_to_the_cutout_raises_the_gain_and_expires() {
    let mut core = VisionCore::new(config(), classes()).unwrap();
    let mut s = scorer();

    // Before any cue: all branches, tench on top, header copied, top_k results.
    let out = core.on_image(&frame(1), 1_000, &mut s).unwrap().unwrap();
    assert_eq!(out.header, frame(1).header);
    assert_eq!(out.results.len(), 3);
    assert_eq!(out.results[0].class_id, "tench");
    assert_eq!(s.runs[0].len(), 6);

    // A cue for dog (score 1): focus cutout and gain 1.8 put dog on top.
    assert!(core.on_cues(&cue("dog", 1.0), 1_100).is_empty());
    let out = core.on_image(&frame(2), 1_200, &mut s).unwrap().unwrap();
    assert_eq!(out.results[0].class_id, "dog");
    assert!((out.results[0].score - 0.36).abs() < 1e-6, "{out:?}");
    assert!(
        s.runs[1].len() < 6 && s.runs[1].contains(&2),
        "{:?}",
        s.runs[1]
    );

    // After TTL (3000) and fade (1000) the full model is back.
    core.on_image(&frame(3), 1_100 + 4_001, &mut s).unwrap();
    assert_eq!(s.runs[2].len(), 6);
    let d = core.diagnostics(Header::default(), "m.safetensors", "cpu", 10.0);
    let v = |k: &str| {
        d.status[0]
            .values
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(v("frames_classified"), "3");
    assert_eq!(v("cues_accepted"), "1");
    assert_eq!(v("active_branches"), "6");
    assert_eq!(v("device"), "cpu");
    assert_eq!(d.status[0].level, DiagnosticStatus::OK);
}

#[test]
fn bad_images_and_cues_are_counted_and_the_core_keeps_going() {
    let mut core = VisionCore::new(config(), classes()).unwrap();
    let mut s = scorer();
    let mut bad = frame(1);
    bad.data.truncate(5);
    let err = core.on_image(&bad, 0, &mut s).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    let mut unknown = frame(1);
    unknown.encoding = "bayer_rggb8".into();
    assert!(core.on_image(&unknown, 1, &mut s).is_err());
    let refused = core.on_cues(&cue("unicorn", 0.9), 2);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("unicorn"));
    assert_eq!(core.on_cues(&cue("cat", f64::NAN), 3).len(), 1);
    core.count_bad_cue_message();
    s.fail = true;
    assert!(core.on_image(&frame(2), 4, &mut s).is_err());
    s.fail = false;
    assert!(core.on_image(&frame(3), 5, &mut s).unwrap().is_some());

    assert_eq!(core.image_rejections.get("truncated"), 1);
    assert_eq!(core.image_rejections.get("unknown_encoding"), 1);
    assert_eq!(core.counters.inference_errors, 1);
    assert_eq!(core.counters.frames_in, 4);
    assert_eq!(core.counters.frames_classified, 1);
    let d = core.diagnostics(Header::default(), "m", "cpu", 1.0);
    let st = &d.status[0];
    assert_eq!(st.level, DiagnosticStatus::WARN);
    let get = |k: &str| {
        st.values
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.as_str())
    };
    assert_eq!(get("cues_rejected"), Some("2"));
    assert_eq!(get("bad_cue_messages"), Some("1"));
    assert_eq!(get("images_rejected.truncated"), Some("1"));
}

#[test]
fn parameter_updates_reach_the_state_machine_or_are_refused_whole() {
    let mut core = VisionCore::new(config(), classes()).unwrap();
    let mut s = scorer();
    core.apply_param("guidance.policy", &ParamValue::String("boost".into()))
        .unwrap();
    assert_eq!(core.guidance().config().policy, Policy::Boost);
    core.on_cues(&cue("dog", 1.0), 10);
    core.on_image(&frame(1), 20, &mut s).unwrap();
    assert_eq!(s.runs[0].len(), 6, "boost keeps every branch");

    // A protected class the model does not have: refused, nothing changes.
    let before = core.config().clone();
    let err = core
        .apply_param(
            "guidance.protected",
            &ParamValue::StringArray(vec!["person".into()]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("person"), "{err}");
    assert_eq!(core.config(), &before);
    assert!(core.guidance().protected().is_empty());
    // A known one is taken.
    core.apply_param(
        "guidance.protected",
        &ParamValue::StringArray(vec!["cat".into()]),
    )
    .unwrap();
    assert_eq!(core.guidance().protected(), &[1]);

    // enable = false: frames are skipped and counted.
    core.apply_param("enable", &ParamValue::Bool(false))
        .unwrap();
    assert_eq!(core.on_image(&frame(2), 30, &mut s).unwrap(), None);
    assert_eq!(core.counters.frames_disabled, 1);
    // Start-up-only parameters are refused at run time.
    assert!(core
        .apply_param("device", &ParamValue::String("cpu".into()))
        .is_err());
}

#[test]
fn label_info_latencies_and_class_lists() {
    let mut core = VisionCore::new(config(), classes()).unwrap();
    let li = core.label_info(Header::default()).unwrap();
    assert_eq!(li.class_map.len(), 6);
    assert_eq!(li.class_map[5].class_name, "parachute");
    assert_eq!(core.latency_quantile_ms(0.5), None);
    for ms in 1..=100 {
        core.record_latency_ms(ms as f64);
    }
    core.record_latency_ms(f64::NAN);
    assert_eq!(core.latency_quantile_ms(0.5), Some(50.0));
    assert_eq!(core.latency_quantile_ms(0.95), Some(95.0));
    // A guidance config naming an unknown class cannot start the core.
    let mut c = config();
    c.apply(
        "guidance.protected",
        &ParamValue::StringArray(vec!["person".into()]),
    )
    .unwrap();
    assert!(VisionCore::new(c, classes()).is_err());
}
