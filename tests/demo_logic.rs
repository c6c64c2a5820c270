//! The demo's pure parts: scenario layout, sound placement, and the report computed from
//! runtime records (hand-made here, so every number is known).

use std::collections::BTreeMap;
use std::path::PathBuf;

use hlfp::demo::{place_sound, timeline_figure, DemoReport, Scenario, ScenarioConfig};
use hlfp::guidance::Policy;
use hlfp::pipeline::{ClassScore, CueEvent, FrameResult, Record};

fn photos() -> BTreeMap<String, Vec<PathBuf>> {
    let mut m = BTreeMap::new();
    for (c, n) in [("dog", 5), ("cat", 4), ("church", 3)] {
        m.insert(
            c.to_string(),
            (0..n)
                .map(|i| PathBuf::from(format!("{c}/{i}.jpg")))
                .collect(),
        );
    }
    m
}

fn config(seed: u64) -> ScenarioConfig {
    ScenarioConfig {
        target: "dog".into(),
        fps: 10.0,
        seconds: 20.0,
        episode_frames: 3,
        episode_every_s: 1.5,
        seed,
    }
}

#[test]
fn scenario_is_seeded_and_episodes_are_runs_of_target_frames() {
    let a = Scenario::build(config(1), &photos()).unwrap();
    assert_eq!(a, Scenario::build(config(1), &photos()).unwrap());
    assert_ne!(a, Scenario::build(config(2), &photos()).unwrap());
    assert_eq!(a.frames.len(), 200);
    assert!(a.episodes() >= 5, "{} episodes", a.episodes());
    for e in 0..a.episodes() {
        let ids: Vec<u64> = a
            .frames
            .iter()
            .filter(|f| f.episode == Some(e))
            .map(|f| f.id)
            .collect();
        assert_eq!(ids.len(), 3, "episode {e}");
        assert_eq!(ids[2] - ids[0], 2, "episode {e} is consecutive");
    }
    for f in &a.frames {
        assert_eq!(f.class == "dog", f.episode.is_some(), "frame {}", f.id);
        assert!(f.path.starts_with(&f.class));
        assert!((f.t_s - f.id as f64 / 10.0).abs() < 1e-12);
    }
    // Distractors come from every other class.
    for c in ["cat", "church"] {
        assert!(a.frames.iter().any(|f| f.class == c), "{c} never shown");
    }
}

#[test]
fn scenario_errors_name_the_problem() {
    let mut p = photos();
    p.remove("dog");
    let e = Scenario::build(config(0), &p).unwrap_err().to_string();
    assert!(e.contains("target class") && e.contains("cat"), "{e}");
    let mut only = BTreeMap::new();
    only.insert("dog".to_string(), vec![PathBuf::from("d.jpg")]);
    assert!(Scenario::build(config(0), &only).is_err());
    let mut c = config(0);
    c.fps = 0.0;
    assert!(Scenario::build(c, &photos()).is_err());
}

#[test]
fn sound_is_placed_at_its_time_and_snr() {
    let bg = vec![0.01f32; 1000];
    let ev = vec![0.5f32; 100];
    let out = place_sound(&bg, &ev, 300, 20.0);
    assert_eq!(out.len(), 1000);
    assert_eq!(out[299], 0.01);
    // 20 dB above an RMS of 0.01 is an event RMS of 0.1.
    assert!((out[300] - 0.11).abs() < 1e-6, "{}", out[300]);
    assert_eq!(out[400], 0.01);
    // Past the end it is clipped, not extended.
    assert_eq!(place_sound(&bg, &ev, 950, 20.0).len(), 1000);
}

fn result(id: u64, t_ms: u64, top: &str, cued: bool, active: usize) -> Record {
    Record::Result(FrameResult {
        id,
        stamp_ns: 0,
        frame_id: "cam".into(),
        top: vec![ClassScore {
            index: 0,
            class: top.into(),
            score: 0.7,
        }],
        policy: Policy::Focus,
        active: (0..active).collect(),
        gains: vec![],
        cued: if cued { vec!["dog".into()] } else { vec![] },
        macs: active as u64 * 1_000_000,
        latency_ms: active as f64,
        time_ms: t_ms,
    })
}

#[test]
fn report_splits_phases_at_the_cue_and_counts_detections() {
    let s = Scenario::build(config(3), &photos()).unwrap();
    let cue_ms = 10_000u64;
    let expire_ms = 15_000u64;
    let mut records = vec![Record::Cue(CueEvent {
        time_ms: cue_ms,
        class: "dog".into(),
        score: 0.9,
        source: "audio".into(),
        queued: true,
        reason: None,
    })];
    // The model: before the cue it sees the target only on an episode's last frame; while
    // cued, on every target frame and also on every other frame whose id is divisible by 10.
    for f in &s.frames {
        let t = (f.t_s * 1000.0) as u64;
        let guided = (cue_ms..expire_ms).contains(&t);
        let last_of_episode = f.episode.is_some()
            && s.frames
                .get(f.id as usize + 1)
                .is_none_or(|n| n.episode != f.episode);
        let hit = if guided {
            f.class == "dog" || f.id % 10 == 0
        } else {
            last_of_episode
        };
        let top = if hit { "dog" } else { "cat" };
        records.push(result(f.id, t, top, guided, if guided { 4 } else { 14 }));
    }
    records.push(Record::Dropped(hlfp::pipeline::DroppedFrame {
        id: 999,
        stamp_ns: 0,
        time_ms: 1,
    }));
    let r = DemoReport::from_records(&s, &records);
    assert_eq!(r.cue_at_s, Some(10.0));
    assert_eq!(r.dropped_frames, 1);
    assert_eq!(r.before.frames + r.guided.frames + r.after.frames, 200);
    assert_eq!(r.guided.frames, 50);
    // Before: one detection per episode, two frames after its start.
    assert_eq!(r.before.target_detected * 3, r.before.target_frames);
    assert_eq!(r.before.episodes_found, r.before.episodes);
    let ttd = r.before.median_time_to_detect_s.unwrap();
    assert!((ttd - 0.2).abs() < 2e-3, "{ttd}");
    assert_eq!(r.before.false_alarms, 0);
    // Guided: every target frame, found at once; false alarms on ids divisible by 10.
    assert_eq!(r.guided.detection_rate, Some(1.0));
    assert_eq!(r.guided.median_time_to_detect_s, Some(0.0));
    let others_div10 = s
        .frames
        .iter()
        .filter(|f| (100..150).contains(&f.id) && f.class != "dog" && f.id % 10 == 0)
        .count();
    assert_eq!(r.guided.false_alarms, others_div10);
    assert_eq!(r.guided.mean_active_branches, 4.0);
    assert_eq!(r.guided.mean_mmacs, 4.0);
    assert_eq!(r.before.median_latency_ms, 14.0);
    assert!(r.text().contains("cue arrived at 10.00 s"));
    let md = r.markdown();
    assert!(md.contains("the cue arrived at 10.0 s"), "{md}");
    let detected = md
        .lines()
        .find(|l| l.starts_with("| target frames detected"))
        .unwrap();
    assert!(
        detected.contains(&format!(
            "| {}/{}, 100 % |",
            r.guided.target_detected, r.guided.target_frames
        )),
        "{detected}"
    );
    assert!(
        md.contains("| MMACs per frame (mean) | 14.0 | 4.0 |"),
        "{md}"
    );
    assert!(!md.contains("latency"), "no machine-dependent rows");
    let fig = timeline_figure(&s, &records, false);
    assert_eq!(fig.markers.len(), 1);
    // The cue window is shaded from the first cued frame to the first frame after it (fps 10).
    assert_eq!(fig.spans.len(), 1);
    let (t0, t1) = fig.spans[0].x;
    assert!(
        (t0 - 10.0).abs() < 1e-9 && (t1 - 15.0).abs() < 1e-9,
        "{t0} {t1}"
    );
    assert_eq!(fig.spans[0].x, hlfp::demo::cue_windows(&records, "dog")[0]);
    let note = fig.note.as_deref().unwrap();
    assert!(
        note.contains("over all 14") && note.contains("only 4"),
        "{note}"
    );
    assert!(fig.panels[1].integer_y, "branch counts get integer ticks");
    let on_target = &fig.panels[0].series[0].points;
    assert_eq!(
        on_target.len(),
        s.frames.iter().filter(|f| f.class == "dog").count()
    );
}

#[test]
fn no_cue_means_everything_is_before() {
    let s = Scenario::build(config(4), &photos()).unwrap();
    let records: Vec<Record> = s
        .frames
        .iter()
        .map(|f| result(f.id, (f.t_s * 1e3) as u64, "cat", false, 14))
        .collect();
    let r = DemoReport::from_records(&s, &records);
    assert_eq!(r.cue_at_s, None);
    assert_eq!(r.before.frames, 200);
    assert_eq!(r.before.detection_rate, Some(0.0));
    assert_eq!(r.before.median_time_to_detect_s, None);
    assert!(r.text().contains("never arrived"));
}
