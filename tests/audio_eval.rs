//! Evaluation and latency measurement plumbing with the band-energy test classifier.

mod audio_common;

use audio_common::{tone, BandScorer};
use hlfp::audio::cues::{CueMap, DATA_VISUAL_CLASSES};
use hlfp::audio::detector::DetectorConfig;
use hlfp::audio::eval::{
    measure_latency, run_clip, summarize, sweep_detector_config, LatencyConfig, MemoScorer,
    TargetClip,
};
use hlfp::audio::features::LogMelConfig;
use hlfp::audio::pipeline::AudioPipeline;
use std::collections::BTreeMap;

fn pipeline() -> AudioPipeline<BandScorer> {
    let scorer = BandScorer::new("cat", "rain", 96);
    let labels = scorer.labels.clone();
    let classes: Vec<String> = DATA_VISUAL_CLASSES.iter().map(|s| s.to_string()).collect();
    let cues = BTreeMap::from([("cat".to_string(), vec!["cat".to_string()])]);
    let map = CueMap::new(&cues, &labels, &classes).unwrap();
    AudioPipeline::new(
        LogMelConfig::default(),
        DetectorConfig::default(),
        map,
        scorer,
        16_000,
    )
    .unwrap()
}

#[test]
fn eval_counts_recall_false_cues_and_latency() {
    let mut p = pipeline();
    let cat = tone(16_000, 300.0, 0.3, 24_000); // 1.5 s low tone: "cat" -> cue cat
    let short_cat = tone(16_000, 300.0, 0.3, 12_800); // 0.8 s, shorter than a window: needs the padding
    let rain = tone(16_000, 5_000.0, 0.3, 48_000); // 3 s high tone: "rain", maps to nothing
    let quiet = vec![0.0f32; 16_000]; // a "cat" clip with no sound: a miss
    let mut results = vec![
        run_clip(&mut p, "cat", &cat, 16_000, 1.0).unwrap(),
        run_clip(&mut p, "cat", &short_cat, 16_000, 1.0).unwrap(),
        run_clip(&mut p, "cat", &quiet, 16_000, 1.0).unwrap(),
        run_clip(&mut p, "rain", &rain, 16_000, 1.0).unwrap(),
    ];
    let map = p.cue_map().clone();
    let rep = summarize(&results, &map);
    assert_eq!(rep.clips_per_label["cat"], 3);
    assert_eq!(rep.cues_per_label["cat"]["cat"], 2);
    assert!((rep.cue_recall["cat"] - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(rep.false_cues, 0);
    assert_eq!(
        rep.false_cues_per_class,
        BTreeMap::from([("cat".to_string(), 0)])
    );
    assert!((rep.negative_minutes - 0.05).abs() < 1e-12);
    let lat = rep.median_onset_latency_s.unwrap();
    assert!(lat > 0.5 && lat < 1.6, "{lat}");
    // Two latencies: the p95 lies between them, at 95 % of the way to the later one.
    let times: Vec<f64> = results[..2].iter().map(|r| r.cues[0].time_s).collect();
    let p95 = rep.p95_onset_latency_s.unwrap();
    let (lo, hi) = (times[0].min(times[1]), times[0].max(times[1]));
    assert!(
        (p95 - (lo + 0.95 * (hi - lo))).abs() < 1e-12,
        "{p95} {times:?}"
    );
    // A cue on a negative clip is a false cue: relabel the cat clip as "rain".
    results[0].label = "rain".into();
    let rep = summarize(&results, &map);
    assert_eq!(rep.false_cues, 1);
    assert_eq!(rep.false_cues_per_class["cat"], 1);
    assert!((rep.false_cues_per_min - 1.0 / ((3.0 + 1.5) / 60.0)).abs() < 1e-9);
}

#[test]
fn latency_run_finds_inserted_clips_at_several_snrs() {
    let mut p = pipeline();
    // Background: 40 s of a quiet high tone (a "rain"-like bed that maps to no class).
    let bg = tone(16_000, 5_000.0, 0.02, 16_000 * 40);
    let targets: Vec<TargetClip> = (0..4)
        .map(|_| TargetClip {
            label: "cat".into(),
            samples: tone(16_000, 300.0, 0.3, 24_000),
        })
        .collect();
    for snr_db in [20.0, 10.0] {
        let cfg = LatencyConfig {
            spacing_s: 8.0,
            lead_in_s: 4.0,
            max_latency_s: 2.5,
            snr_db,
        };
        let rep = measure_latency(&mut p, &bg, &targets, 16_000, &cfg).unwrap();
        assert_eq!(rep.inserted, 4);
        assert_eq!(rep.detected, 4, "{rep:?}");
        let med = rep.median_latency_s.unwrap();
        assert!(med > 0.2 && med < 1.5, "{rep:?}");
        assert!(rep.p95_latency_s.unwrap() >= med);
        assert_eq!(rep.false_cues, 0);
        assert!(
            rep.background_minutes > 0.4 && rep.background_minutes < 0.7,
            "{rep:?}"
        );
    }
}

#[test]
fn memo_scorer_scores_each_distinct_window_once_with_the_same_result() {
    let cat = tone(16_000, 300.0, 0.3, 24_000);
    let plain = {
        let mut p = pipeline();
        run_clip(&mut p, "cat", &cat, 16_000, 1.0).unwrap()
    };
    let mut memo = MemoScorer::new(BandScorer::new("cat", "rain", 96));
    let classes: Vec<String> = DATA_VISUAL_CLASSES.iter().map(|s| s.to_string()).collect();
    let cues = BTreeMap::from([("cat".to_string(), vec!["cat".to_string()])]);
    let labels = vec!["cat".to_string(), "rain".to_string()];
    let map = CueMap::new(&cues, &labels, &classes).unwrap();
    let mut runs = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..2 {
        let mut p = AudioPipeline::new(
            LogMelConfig::default(),
            DetectorConfig::default(),
            map.clone(),
            &mut memo,
            16_000,
        )
        .unwrap();
        runs.push(run_clip(&mut p, "cat", &cat, 16_000, 1.0).unwrap());
        drop(p);
        counts.push(memo.counts());
    }
    for r in &runs {
        assert_eq!(r.cues.len(), plain.cues.len());
        assert_eq!(r.events, plain.events);
    }
    // The second pass is answered from the cache alone: no new misses, one hit per window.
    let ((h1, m1), (h2, m2)) = (counts[0], counts[1]);
    assert!(m1 > 0);
    assert_eq!(m2, m1);
    assert_eq!(h2 - h1, h1 + m1);
}

#[test]
fn sweep_config_sets_one_threshold_for_all_labels() {
    use hlfp::audio::detector::Thresholds;
    let labels = vec!["cat".to_string(), "rain".to_string()];
    let mut base = DetectorConfig::default(); // on 0.6, off 0.4: a gap of 0.2
    base.label_thresholds
        .insert("cat".into(), Thresholds { on: 0.9, off: 0.8 });
    base.label_min_on_windows.insert("cat".into(), 3);
    let c = sweep_detector_config(&base, 0.5, 2, &labels).unwrap();
    assert!(c.label_thresholds.is_empty());
    assert_eq!(c.min_on_windows, 2);
    assert_eq!(
        c.min_on_for("cat"),
        2,
        "the swept count holds for every label"
    );
    assert!((c.default_thresholds.on - 0.5).abs() < 1e-6);
    assert!((c.default_thresholds.off - 0.3).abs() < 1e-6);
    assert_eq!(c.hop_frames, base.hop_frames);
    // `off` is clamped at 0; bad values are errors that say what was wrong.
    let c = sweep_detector_config(&base, 0.1, 1, &labels).unwrap();
    assert_eq!(c.default_thresholds.off, 0.0);
    for (on, min_on) in [(1.5, 1), (-0.1, 1), (f32::NAN, 1), (0.5, 0)] {
        let e = sweep_detector_config(&base, on, min_on, &labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sweep") || e.contains("min_on_windows"), "{e}");
    }
}

mod operating_point {
    use hlfp::audio::detector::{DetectorConfig, Thresholds};
    use hlfp::audio::operating_point::{apply, choose, OperatingPoint, SweepPoint};
    use std::collections::BTreeMap;

    fn pt(on: f32, min_on_windows: usize, recall: f64, false_cues_per_min: f64) -> SweepPoint {
        SweepPoint {
            on,
            min_on_windows,
            recall,
            false_cues_per_min,
        }
    }

    /// cat is best with two windows, dog with one; at 0.5/min dog has nothing >= 0.5.
    fn sweeps() -> BTreeMap<String, Vec<SweepPoint>> {
        BTreeMap::from([
            (
                "cat".to_string(),
                vec![
                    pt(0.6, 1, 0.80, 3.0),
                    pt(0.9, 1, 0.55, 0.8),
                    pt(0.6, 2, 0.74, 0.9),
                    pt(0.9, 2, 0.52, 0.4),
                ],
            ),
            (
                "dog".to_string(),
                vec![
                    pt(0.6, 1, 0.90, 4.0),
                    pt(0.9, 1, 0.66, 0.9),
                    pt(0.9, 2, 0.30, 0.3),
                    pt(0.95, 2, 0.10, 0.1),
                ],
            ),
        ])
    }

    #[test]
    fn strictest_limit_where_every_class_keeps_the_minimum_recall() -> anyhow::Result<()> {
        let op = choose(&sweeps(), &[1.0, 0.1, 0.5], 0.5)?;
        assert_eq!(op.limit_per_min, 1.0);
        assert!(op.min_recall_met);
        let got: Vec<(&str, SweepPoint)> = op
            .classes
            .iter()
            .map(|c| (c.class.as_str(), c.point))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cat", pt(0.6, 2, 0.74, 0.9)),
                ("dog", pt(0.9, 1, 0.66, 0.9))
            ]
        );
        // With a lower bar the 0.5/min limit is met first, and cat takes its best point there.
        let op = choose(&sweeps(), &[0.1, 0.5, 1.0], 0.3)?;
        assert_eq!(op.limit_per_min, 0.5);
        assert_eq!(op.classes[0].point, pt(0.9, 2, 0.52, 0.4));
        assert_eq!(op.classes[1].point, pt(0.9, 2, 0.30, 0.3));
        Ok(())
    }

    #[test]
    fn ties_go_to_fewer_false_cues_then_the_higher_threshold_then_fewer_windows(
    ) -> anyhow::Result<()> {
        let one = |pts: Vec<SweepPoint>| BTreeMap::from([("cat".to_string(), pts)]);
        let pick = |pts| -> anyhow::Result<SweepPoint> {
            Ok(choose(&one(pts), &[1.0], 0.0)?.classes[0].point)
        };
        assert_eq!(
            pick(vec![pt(0.5, 1, 0.7, 0.9), pt(0.6, 1, 0.7, 0.5)])?,
            pt(0.6, 1, 0.7, 0.5)
        );
        assert_eq!(
            pick(vec![pt(0.7, 1, 0.7, 0.5), pt(0.6, 1, 0.7, 0.5)])?,
            pt(0.7, 1, 0.7, 0.5)
        );
        assert_eq!(
            pick(vec![pt(0.7, 2, 0.7, 0.5), pt(0.7, 1, 0.7, 0.5)])?,
            pt(0.7, 1, 0.7, 0.5)
        );
        Ok(())
    }

    #[test]
    fn no_limit_meeting_the_recall_falls_back_to_the_loosest_and_says_so() -> anyhow::Result<()> {
        let op = choose(&sweeps(), &[0.05, 0.5], 0.9)?;
        assert!(!op.min_recall_met);
        assert_eq!(op.limit_per_min, 0.5);
        assert_eq!(op.classes[0].point, pt(0.9, 2, 0.52, 0.4));
        // Nothing within 0.05/min: the point with the fewest false cues.
        let op = choose(&sweeps(), &[0.05], 0.9)?;
        assert_eq!(op.classes[0].point, pt(0.9, 2, 0.52, 0.4));
        assert_eq!(op.classes[1].point, pt(0.95, 2, 0.10, 0.1));
        Ok(())
    }

    #[test]
    fn bad_sweeps_limits_and_recall_are_refused_by_name() {
        let err = |r: hlfp::Result<OperatingPoint>| r.unwrap_err().to_string();
        assert!(err(choose(&BTreeMap::new(), &[1.0], 0.5)).contains("no classes"));
        let empty = BTreeMap::from([("cat".to_string(), vec![])]);
        assert!(err(choose(&empty, &[1.0], 0.5)).contains("\"cat\" has no sweep points"));
        for limits in [vec![], vec![-1.0], vec![f64::NAN]] {
            assert!(
                err(choose(&sweeps(), &limits, 0.5)).contains("limits"),
                "{limits:?}"
            );
        }
        assert!(err(choose(&sweeps(), &[1.0], 1.5)).contains("minimum recall"));
    }

    #[test]
    fn apply_sets_each_cueing_labels_thresholds_and_window_count() -> anyhow::Result<()> {
        let mut base = DetectorConfig {
            default_thresholds: Thresholds { on: 0.6, off: 0.4 },
            min_on_windows: 2,
            ..DetectorConfig::default()
        };
        base.label_thresholds
            .insert("chainsaw".into(), Thresholds { on: 0.7, off: 0.5 });
        base.label_min_on_windows.insert("cat".into(), 3);
        let op = choose(&sweeps(), &[0.1, 0.5, 1.0], 0.5)?;
        let cfg = apply(&base, &op, |c| vec![c.to_string()])?;
        assert_eq!(
            cfg.label_thresholds["cat"],
            Thresholds { on: 0.6, off: 0.4 }
        );
        assert_eq!(cfg.label_thresholds["dog"].on, 0.9);
        assert_eq!(cfg.label_thresholds["dog"].off, 0.7);
        assert_eq!(
            cfg.label_thresholds["chainsaw"],
            base.label_thresholds["chainsaw"]
        );
        assert_eq!(cfg.label_min_on_windows["cat"], 2);
        assert_eq!(cfg.label_min_on_windows["dog"], 1);
        assert_eq!(cfg.min_on_windows, 2);
        let labels: Vec<String> = ["cat", "dog", "chainsaw"].map(String::from).to_vec();
        cfg.validate(&labels)?;
        // One label cueing both classes cannot take two settings; a class nobody cues is named.
        let clash = apply(&base, &op, |_| vec!["dog".to_string()]).unwrap_err();
        assert!(
            clash.to_string().contains("chosen at different settings"),
            "{clash}"
        );
        let none = apply(&base, &op, |_| vec![]).unwrap_err();
        assert!(none.to_string().contains("no sound label cues"), "{none}");
        Ok(())
    }
}
