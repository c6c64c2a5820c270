//! Detector behaviour with fake scorers: hysteresis, hold, refractory, smoothing, silence gate,
//! bad scores, config validation. Windows are 8 frames with a hop of 2 (one window per 20 ms),
//! window j ends at ((2j + 7)·160 + 512) / 16000 s.

mod audio_common;

use audio_common::{tone, ScriptedScorer};
use hlfp::audio::detector::{Detector, DetectorConfig, SoundEvent, Thresholds};
use hlfp::audio::features::{LogMel, LogMelConfig};

const W: usize = 8;

fn cfg(smoothing: usize, hold_s: f64, refractory_s: f64) -> DetectorConfig {
    DetectorConfig {
        hop_frames: 2,
        smoothing_windows: smoothing,
        default_thresholds: Thresholds { on: 0.6, off: 0.4 },
        hold_s,
        refractory_s,
        ..Default::default()
    }
}

fn window_end_s(j: usize) -> f64 {
    ((2 * j + 7) * 160 + 512) as f64 / 16_000.0
}

/// Run `n_windows` windows of a tone of amplitude `amp` through a detector whose scorer returns
/// `rows` (label "a" only unless rows are wider); returns the events and the detector.
fn run(
    cfg: DetectorConfig,
    rows: Vec<Vec<f32>>,
    n_windows: usize,
    amp: f64,
) -> (Vec<SoundEvent>, Detector<ScriptedScorer>) {
    let labels: Vec<&str> = ["a", "b"][..rows[0].len()].to_vec();
    let fcfg = LogMelConfig::default();
    let mut det = Detector::new(cfg, &fcfg, ScriptedScorer::new(&labels, W, rows)).unwrap();
    let events = feed(&mut det, n_windows, amp);
    (events, det)
}

/// Push `n_windows` windows of a tone of amplitude `amp` through a fresh stream of `det`.
fn feed(det: &mut Detector<ScriptedScorer>, n_windows: usize, amp: f64) -> Vec<SoundEvent> {
    let n_frames = W + 2 * (n_windows - 1);
    let x = tone(16_000, 440.0, amp, (n_frames - 1) * 160 + 512);
    let mut lm = LogMel::new(LogMelConfig::default()).unwrap();
    let mut frames = Vec::new();
    let mut events = Vec::new();
    let before = det.stats().windows as usize;
    for chunk in x.chunks(333) {
        frames.clear();
        lm.process(chunk, &mut frames);
        det.process(chunk, &frames, &mut events).unwrap();
    }
    assert_eq!(det.stats().windows as usize - before, n_windows);
    events
}

fn onsets(events: &[SoundEvent]) -> Vec<f64> {
    events.iter().map(|e| e.onset_s).collect()
}

fn rows(a: &[f32]) -> Vec<Vec<f32>> {
    a.iter().map(|&v| vec![v]).collect()
}

#[test]
fn windows_have_the_scorers_shape_and_times_are_window_ends() {
    let (events, det) = run(cfg(1, 0.0, 0.0), rows(&[0.9]), 3, 0.3);
    assert!(det.scorer().window_lens.iter().all(|&l| l == W * 64));
    assert_eq!(det.scorer().calls, 3);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].label, "a");
    assert!((events[0].onset_s - window_end_s(0)).abs() < 1e-12);
    assert!((events[0].score - 0.9).abs() < 1e-6);
}

#[test]
fn hysteresis_keeps_an_event_on_between_the_thresholds() {
    let scores = [0.0, 0.7, 0.5, 0.7, 0.3, 0.7];
    let (events, _) = run(cfg(1, 0.0, 0.0), rows(&scores), 6, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(1), window_end_s(5)]);
    // With on == off (no hysteresis) the dip to 0.5 ends the event and 0.7 re-fires it.
    let mut c = cfg(1, 0.0, 0.0);
    c.default_thresholds = Thresholds { on: 0.6, off: 0.6 };
    let (events, _) = run(c, rows(&scores), 6, 0.3);
    assert_eq!(
        onsets(&events),
        vec![window_end_s(1), window_end_s(3), window_end_s(5)]
    );
}

#[test]
fn hold_keeps_an_event_on_for_its_minimum_duration() {
    let scores = [0.9, 0.0, 0.0, 0.9];
    let (events, _) = run(cfg(1, 0.0, 0.0), rows(&scores), 4, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(0), window_end_s(3)]);
    // A 70 ms hold spans windows 1..3 (20 ms apart): the event never ends, so no second onset.
    let (events, det) = run(cfg(1, 0.07, 0.0), rows(&scores), 4, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(0)]);
    assert_eq!(det.active().collect::<Vec<_>>(), vec!["a"]);
}

#[test]
fn refractory_blocks_a_quick_refire() {
    let scores = [0.9, 0.0, 0.9, 0.0, 0.0, 0.9];
    let (events, _) = run(cfg(1, 0.0, 0.0), rows(&scores), 6, 0.3);
    assert_eq!(
        onsets(&events),
        vec![window_end_s(0), window_end_s(2), window_end_s(5)]
    );
    // Off at window 1; 50 ms refractory blocks window 2 (+20 ms) but not window 5 (+80 ms).
    let (events, _) = run(cfg(1, 0.0, 0.05), rows(&scores), 6, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(0), window_end_s(5)]);
}

#[test]
fn smoothing_averages_the_last_windows() {
    // One spike: fires without smoothing, averaged away with a mean of 2.
    let spike = [0.0, 0.9, 0.0, 0.0];
    let (events, _) = run(cfg(1, 0.0, 0.0), rows(&spike), 4, 0.3);
    assert_eq!(events.len(), 1);
    let (events, det) = run(cfg(2, 0.0, 0.0), rows(&spike), 4, 0.3);
    assert!(events.is_empty());
    assert_eq!(det.smoothed(), &[0.0]);
    // A sustained sound fires on the second window with its mean.
    let (events, det) = run(cfg(2, 0.0, 0.0), rows(&[0.0, 0.8, 0.9, 0.7]), 4, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(2)]);
    assert!((events[0].score - 0.85).abs() < 1e-6);
    assert!((det.smoothed()[0] - 0.8).abs() < 1e-6);
}

#[test]
fn per_label_thresholds_apply_to_their_label_only() {
    let mut c = cfg(1, 0.0, 0.0);
    c.label_thresholds
        .insert("b".into(), Thresholds { on: 0.95, off: 0.5 });
    let (events, _) = run(c, vec![vec![0.9, 0.9]], 2, 0.3);
    let labels: Vec<&str> = events.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, vec!["a"]);
}

#[test]
fn silence_gate_skips_quiet_windows_without_scoring() {
    // -70 dBFS tone (RMS 0.0003/sqrt2) is below the -55 dBFS gate.
    let (events, det) = run(cfg(1, 0.0, 0.0), rows(&[0.9]), 5, 0.000_3);
    assert!(events.is_empty());
    assert_eq!(det.scorer().calls, 0);
    assert_eq!(det.stats().silent_windows, 5);
    // Digital silence too.
    let (events, det) = run(cfg(1, 0.0, 0.0), rows(&[0.9]), 5, 0.0);
    assert!(events.is_empty() && det.scorer().calls == 0);
    // -20 dBFS passes.
    let (events, det) = run(cfg(1, 0.0, 0.0), rows(&[0.9]), 5, 0.1);
    assert_eq!(events.len(), 1);
    assert_eq!(det.stats().silent_windows, 0);
}

#[test]
fn clipped_full_scale_input_is_scored_normally() {
    // A tone at amplitude 4 (hard clipping territory) still gives finite frames and events.
    let (events, det) = run(cfg(1, 0.0, 0.0), rows(&[0.9]), 3, 4.0);
    assert_eq!(events.len(), 1);
    assert_eq!(det.scorer().calls, 3);
}

#[test]
fn non_finite_scores_are_zeroed_and_counted() {
    let r = vec![
        vec![f32::NAN, 0.9],
        vec![f32::INFINITY, 0.9],
        vec![f32::NEG_INFINITY, 0.9],
    ];
    let (events, det) = run(cfg(1, 0.0, 0.0), r, 3, 0.3);
    assert_eq!(det.stats().bad_scores, 3);
    let labels: Vec<&str> = events.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, vec!["b"]);
}

#[test]
fn wrong_score_count_is_an_error() {
    let fcfg = LogMelConfig::default();
    let mut scorer = ScriptedScorer::new(&["a", "b"], W, vec![vec![0.5]]);
    scorer.labels = vec!["a".into(), "b".into()];
    let mut det = Detector::new(cfg(1, 0.0, 0.0), &fcfg, scorer).unwrap();
    let x = tone(16_000, 440.0, 0.3, 7 * 160 + 512);
    let mut frames = Vec::new();
    LogMel::new(fcfg).unwrap().process(&x, &mut frames);
    let e = det
        .process(&x, &frames, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("returned 1 scores") && e.contains("(2)"), "{e}");
}

#[test]
fn frames_without_their_samples_are_an_error() {
    let fcfg = LogMelConfig::default();
    let mut det = Detector::new(
        cfg(1, 0.0, 0.0),
        &fcfg,
        ScriptedScorer::new(&["a"], W, rows(&[0.9])),
    )
    .unwrap();
    let e = det
        .process(&[], &vec![0.0; W * 64], &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("push samples together with the frames"), "{e}");
    let e = det
        .process(&[], &[0.0; 10], &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("64-mel"), "{e}");
}

#[test]
fn config_errors_name_the_problem() {
    let fcfg = LogMelConfig::default();
    let mut c = cfg(1, 0.0, 0.0);
    c.label_thresholds
        .insert("meow".into(), Thresholds { on: 0.5, off: 0.4 });
    let e = Detector::new(c, &fcfg, ScriptedScorer::new(&["a"], W, rows(&[0.0])))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("\"meow\"") && e.contains("[\"a\"]"), "{e}");
    let mut c = cfg(1, 0.0, 0.0);
    c.default_thresholds = Thresholds { on: 0.3, off: 0.5 };
    let e = Detector::new(c, &fcfg, ScriptedScorer::new(&["a"], W, rows(&[0.0])))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("off <= on"), "{e}");
    let mut c = cfg(1, 0.0, 0.0);
    c.hop_frames = 9;
    let e = Detector::new(c, &fcfg, ScriptedScorer::new(&["a"], W, rows(&[0.0])))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("hop_frames"), "{e}");
}

#[test]
fn reset_starts_a_fresh_stream() {
    let (_, mut det) = run(cfg(2, 10.0, 10.0), rows(&[0.9]), 3, 0.3);
    assert_eq!(det.active().count(), 1);
    det.reset();
    assert_eq!(det.active().count(), 0);
    assert_eq!(det.stats().windows, 0);
    assert_eq!(det.smoothed(), &[0.0]);
}

#[test]
fn min_on_windows_needs_consecutive_windows_above_on() {
    let mut c = cfg(1, 0.0, 0.0);
    c.min_on_windows = 2;
    // Single-window spikes (windows 1 and 3) never fire; the first run of two fires on its
    // second window; a dip below `on` restarts the count.
    let scores = [0.0, 0.9, 0.0, 0.9, 0.5, 0.9, 0.9, 0.9];
    let (events, _) = run(c.clone(), rows(&scores), 8, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(6)]);
    assert!((events[0].score - 0.9).abs() < 1e-6);
    // The default (1) fires on each spike, as before (the 0.5 after window 3 is above `off`, so
    // that event lasts through window 7).
    let (events, _) = run(cfg(1, 0.0, 0.0), rows(&scores), 8, 0.3);
    assert_eq!(onsets(&events), vec![window_end_s(1), window_end_s(3)]);
    // Each window of the confirming run counts only outside the refractory time.
    let mut c = cfg(1, 0.0, 0.05);
    c.min_on_windows = 2;
    let (events, _) = run(c, rows(&[0.9, 0.9, 0.0, 0.9, 0.9, 0.9, 0.9]), 7, 0.3);
    // On at window 1, off at 2 (refractory to window 2 + 50 ms = window 4.5), so windows 3 and
    // 4 do not count: the two confirming windows are 5 and 6.
    assert_eq!(onsets(&events), vec![window_end_s(1), window_end_s(6)]);
}

#[test]
fn min_on_windows_is_validated_and_reset() {
    let fcfg = LogMelConfig::default();
    let mut c = cfg(1, 0.0, 0.0);
    c.min_on_windows = 0;
    let e = Detector::new(c, &fcfg, ScriptedScorer::new(&["a"], W, rows(&[0.0])))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("min_on_windows"), "{e}");
    // One window above `on`, then a reset: the next single window must not complete the pair.
    let mut c = cfg(1, 0.0, 0.0);
    c.min_on_windows = 2;
    let (events, mut det) = run(c, rows(&[0.9]), 1, 0.3);
    assert!(events.is_empty());
    det.reset();
    let fcfg = LogMelConfig::default();
    let x = tone(16_000, 440.0, 0.3, (W - 1) * 160 + 512);
    let mut lm = LogMel::new(fcfg).unwrap();
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    lm.process(&x, &mut frames);
    det.process(&x, &frames, &mut events).unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn latency_counts_the_confirming_windows() {
    let fcfg = LogMelConfig::default();
    let mut c = cfg(1, 0.0, 0.0);
    let one = Detector::new(
        c.clone(),
        &fcfg,
        ScriptedScorer::new(&["a"], W, rows(&[0.0])),
    )
    .unwrap()
    .latency_samples();
    c.min_on_windows = 3;
    let three = Detector::new(c, &fcfg, ScriptedScorer::new(&["a"], W, rows(&[0.0])))
        .unwrap()
        .latency_samples();
    assert_eq!(one, (W - 1 + 2) * 160 + 512);
    assert_eq!(three - one, 2 * 2 * 160);
}

#[test]
fn labels_can_need_their_own_number_of_windows() {
    // "a" keeps the default of 2 windows in a row, "b" needs 1: both score 0.9 from window 1.
    let mut c = cfg(1, 0.0, 0.0);
    c.min_on_windows = 2;
    c.label_min_on_windows.insert("b".into(), 1);
    let scores: Vec<Vec<f32>> = [0.0f32, 0.9, 0.9, 0.9]
        .iter()
        .map(|&v| vec![v, v])
        .collect();
    let (events, det) = run(c.clone(), scores, 4, 0.3);
    let at = |l: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.label == l)
            .map(|e| e.onset_s)
            .collect()
    };
    assert_eq!(at("b"), vec![window_end_s(1)]);
    assert_eq!(at("a"), vec![window_end_s(2)]);
    // The latency bound follows the label that needs the most windows.
    let fcfg = LogMelConfig::default();
    let two = det.latency_samples();
    c.label_min_on_windows.insert("b".into(), 3);
    let three = Detector::new(
        c.clone(),
        &fcfg,
        ScriptedScorer::new(&["a", "b"], W, rows2()),
    )
    .unwrap()
    .latency_samples();
    assert_eq!(three - two, 2 * 160);
    // set_config changes a label's count in place: with "b" at 2, neither fires on window 1.
    let mut plain = cfg(1, 0.0, 0.0);
    plain.min_on_windows = 2;
    let both: Vec<Vec<f32>> = vec![vec![0.9, 0.9]];
    let mut det = Detector::new(
        plain.clone(),
        &fcfg,
        ScriptedScorer::new(&["a", "b"], W, both),
    )
    .unwrap();
    let mut one_b = plain.clone();
    one_b.label_min_on_windows.insert("b".into(), 1);
    det.set_config(one_b).unwrap();
    let events = feed(&mut det, 1, 0.3);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].label, "b");
    // Zero windows and unknown labels are refused, naming the label.
    for (label, n, want) in [("b", 0, "min_on_windows for b"), ("meow", 1, "\"meow\"")] {
        let mut bad = c.clone();
        bad.label_min_on_windows.insert(label.into(), n);
        let e = Detector::new(bad, &fcfg, ScriptedScorer::new(&["a", "b"], W, rows2()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

fn rows2() -> Vec<Vec<f32>> {
    vec![vec![0.0, 0.0]]
}
