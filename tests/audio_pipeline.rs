//! End-to-end streaming path (resample -> log-mel -> detector -> cues) with a tiny band-energy
//! classifier: events are right, any chunking gives the same events, NaN input is counted, a
//! device rate change keeps the timeline; and the cue mapping's load-time validation.

mod audio_common;

use audio_common::{tone, BandScorer};
use hlfp::audio::cues::{ClassCue, CueConfig, CueMap, DATA_VISUAL_CLASSES};
use hlfp::audio::detector::{DetectorConfig, SoundEvent};
use hlfp::audio::features::LogMelConfig;
use hlfp::audio::pipeline::AudioPipeline;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn classes() -> Vec<String> {
    DATA_VISUAL_CLASSES.iter().map(|s| s.to_string()).collect()
}

fn pipeline(rate_hz: u32) -> AudioPipeline<BandScorer> {
    let scorer = BandScorer::new("cat", "dog", 96);
    let cfg = CueConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/cues.toml"
    )))
    .unwrap();
    let labels = scorer.labels.clone();
    let mut cues = cfg.cues.clone();
    cues.retain(|k, _| labels.contains(k));
    let map = CueMap::new(&cues, &labels, &classes()).unwrap();
    let det = DetectorConfig {
        label_thresholds: Default::default(),
        ..cfg.detector
    };
    AudioPipeline::new(LogMelConfig::default(), det, map, scorer, rate_hz).unwrap()
}

/// 1.5 s of a 300 Hz tone ("cat"), 1 s silence, 1.5 s of 5 kHz ("dog"), 1 s silence.
fn scene(rate_hz: u32) -> Vec<f32> {
    let r = rate_hz as usize;
    let mut x = tone(rate_hz, 300.0, 0.3, r * 3 / 2);
    x.extend(vec![0.0; r]);
    x.extend(tone(rate_hz, 5_000.0, 0.3, r * 3 / 2));
    x.extend(vec![0.0; r]);
    x
}

fn run_chunked(
    p: &mut AudioPipeline<BandScorer>,
    x: &[f32],
    rate_hz: u32,
    rng: &mut StdRng,
    max_chunk: usize,
) -> (Vec<SoundEvent>, Vec<ClassCue>) {
    let (mut ev, mut cues) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < x.len() {
        let n = rng.random_range(0..=max_chunk).min(x.len() - pos);
        p.push(&x[pos..pos + n], rate_hz, &mut ev, &mut cues)
            .unwrap();
        pos += n;
    }
    p.finish(&mut ev, &mut cues).unwrap();
    (ev, cues)
}

#[test]
fn scene_gives_cat_then_dog_with_cues_and_chunking_does_not_matter() {
    let mut rng = StdRng::seed_from_u64(11);
    for rate in [16_000u32, 44_100] {
        let x = scene(rate);
        let mut p = pipeline(rate);
        let (ev, cues) = run_chunked(&mut p, &x, rate, &mut rng, x.len());
        let labels: Vec<&str> = ev.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, vec!["cat", "dog"], "rate {rate}: {ev:?}");
        // The cat tone starts at 0 s: first decision at the end of a window (~1 s).
        assert!(ev[0].onset_s > 0.9 && ev[0].onset_s < 1.6, "{ev:?}");
        // The dog tone starts at 2.5 s.
        assert!(ev[1].onset_s > 2.5 && ev[1].onset_s < 3.6, "{ev:?}");
        let cue_classes: Vec<&str> = cues.iter().map(|c| c.class.as_str()).collect();
        assert_eq!(cue_classes, vec!["cat", "dog", "english_springer"]);
        assert!(cues.iter().all(|c| c.source == "audio"));
        assert_eq!(cues[1].time_s, ev[1].onset_s);
        let st = p.stats();
        assert!(st.detector.silent_windows > 0, "the silent gaps are gated");
        for max_chunk in [1usize, 37, 512, 4096] {
            p.reset();
            let (ev2, cues2) = run_chunked(&mut p, &x, rate, &mut rng, max_chunk);
            assert_eq!(ev2, ev, "rate {rate} max chunk {max_chunk}");
            assert_eq!(cues2, cues);
        }
    }
}

#[test]
fn nan_and_inf_input_is_zeroed_counted_and_equals_zeros() {
    let mut x = scene(16_000);
    let mut zeroed = x.clone();
    for i in (0..x.len()).step_by(997) {
        x[i] = if i % 2 == 0 { f32::NAN } else { f32::INFINITY };
        zeroed[i] = 0.0;
    }
    let mut rng = StdRng::seed_from_u64(1);
    let mut p = pipeline(16_000);
    let (ev, _) = run_chunked(&mut p, &x, 16_000, &mut rng, 3000);
    assert_eq!(p.stats().non_finite_samples as usize, x.len().div_ceil(997));
    let mut q = pipeline(16_000);
    let (ev_zero, _) = run_chunked(&mut q, &zeroed, 16_000, &mut rng, 3000);
    assert_eq!(ev, ev_zero);
    assert_eq!(ev.len(), 2);
}

#[test]
fn device_rate_change_mid_stream_keeps_event_times() {
    // First 2.5 s (cat tone + silence) at 48 kHz, the rest at 22.05 kHz.
    let a = scene(48_000)[..120_000].to_vec();
    let b = scene(22_050)[55_125..].to_vec();
    let mut p = pipeline(48_000);
    let (mut ev, mut cues) = (Vec::new(), Vec::new());
    p.push(&a, 48_000, &mut ev, &mut cues).unwrap();
    p.push(&b, 22_050, &mut ev, &mut cues).unwrap();
    p.finish(&mut ev, &mut cues).unwrap();
    let mut q = pipeline(16_000);
    let (mut ev16, mut c16) = (Vec::new(), Vec::new());
    q.push(&scene(16_000), 16_000, &mut ev16, &mut c16).unwrap();
    q.finish(&mut ev16, &mut c16).unwrap();
    let labels: Vec<&str> = ev.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, vec!["cat", "dog"]);
    for (e, f) in ev.iter().zip(&ev16) {
        assert!((e.onset_s - f.onset_s).abs() < 0.3, "{e:?} vs {f:?}");
    }
    assert_eq!(p.stats().model_samples, 80_000, "5 s at 16 kHz");
}

#[test]
fn shipped_cue_config_maps_cat_dog_chainsaw() {
    let cfg = CueConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/cues.toml"
    )))
    .unwrap();
    let labels: Vec<String> = ["cat", "dog", "chainsaw", "rain", "bird"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let map = CueMap::new(&cfg.cues, &labels, &classes()).unwrap();
    assert_eq!(map.classes_for("cat"), ["cat"]);
    assert_eq!(map.classes_for("dog"), ["dog", "english_springer"]);
    assert_eq!(map.classes_for("chainsaw"), ["chain_saw"]);
    assert!(map.classes_for("rain").is_empty());
    assert_eq!(
        map.reachable_classes(),
        vec!["cat", "chain_saw", "dog", "english_springer"]
    );
    cfg.detector.validate(&labels).unwrap();
}

#[test]
fn unknown_labels_and_classes_are_rejected_by_name() {
    let labels: Vec<String> = ["cat", "dog"].iter().map(|s| s.to_string()).collect();
    let cfg =
        CueConfig::from_toml("[cues]\nmeow = [\"cat\"]\ndog = [\"dog\"]\n", "t.toml").unwrap();
    let e = CueMap::new(&cfg.cues, &labels, &classes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"meow\"") && e.contains("sound labels"), "{e}");
    let cfg = CueConfig::from_toml("[cues]\ncat = [\"kitten\", \"cat\"]\n", "t.toml").unwrap();
    let e = CueMap::new(&cfg.cues, &labels, &classes())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"kitten\"") && e.contains("visual classes"),
        "{e}"
    );
    let cfg = CueConfig::from_toml("[cues]\ncat = []\n", "t.toml").unwrap();
    assert!(CueMap::new(&cfg.cues, &labels, &classes())
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let e = CueConfig::from_toml("[cues]\ncat = [\"cat\"]\n[detectr]\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.toml") && e.contains("detectr"), "{e}");
}
