//! Evaluation and latency measurement plumbing with the band-energy test classifier.

mod audio_common;

use audio_common::{tone, BandScorer};
use hlfp::audio::cues::{CueMap, DATA_VISUAL_CLASSES};
use hlfp::audio::detector::DetectorConfig;
use hlfp::audio::eval::{
    measure_latency, quantile, run_clip, summarize, LatencyConfig, TargetClip,
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
    assert!((rep.negative_minutes - 0.05).abs() < 1e-12);
    let lat = rep.median_onset_latency_s.unwrap();
    assert!(lat > 0.5 && lat < 1.6, "{lat}");
    // A cue on a negative clip is a false cue: relabel the cat clip as "rain".
    results[0].label = "rain".into();
    let rep = summarize(&results, &map);
    assert_eq!(rep.false_cues, 1);
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
fn quantiles_interpolate() {
    assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
    assert_eq!(quantile(&[0.0, 10.0], 0.95), Some(9.5));
    assert_eq!(quantile(&[], 0.5), None);
}
