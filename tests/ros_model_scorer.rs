//! The vision node's model: the runtime's `VisionClassifier` (loaded from a small random-weight
//! safetensors file) as the node's `FrameScorer`. Scores are a softmax over exactly the active
//! set, a gain changes only its own class's logit, bad input is an error, and `VisionCore`
//! publishes its scores with the image's header.

use hlfp::guidance::{GuidanceState, Policy};
use hlfp::model::{weights, ModelConfig, Variant};
use hlfp::ros::model_scorer::device_choice;
use hlfp::ros::msgs::{Header, Image, Time};
use hlfp::ros::params::{DeviceSpec, VisionNodeConfig};
use hlfp::ros::vision_core::{FrameScorer, VisionCore};
use hlfp::vision::classifier::{softmax, DeviceChoice, VisionClassifier};

const SIZE: usize = 64;

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::new(Variant::HlfpSmall, 4);
    c.width = 0.125;
    c.input_size = SIZE;
    c
}

/// The classifier on the CPU engine, from random weights written to a temporary file.
fn classifier() -> VisionClassifier {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hlfp_small.safetensors");
    weights::write_random_safetensors(&path, &cfg(), 7).unwrap();
    VisionClassifier::load(&path, &cfg(), DeviceChoice::Cpu, 1).unwrap()
}

fn state(active: Vec<usize>, gains: Vec<f32>) -> GuidanceState {
    GuidanceState {
        time_ms: 0,
        policy: Policy::Focus,
        active,
        gains,
        cued: Vec::new(),
    }
}

/// An 80x60 frame with some structure.
fn frame() -> Vec<u8> {
    (0..80 * 60 * 3).map(|i| ((i * 31) % 256) as u8).collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn scores_are_a_softmax_over_exactly_the_active_set() {
    let mut clf = classifier();
    let full_logits = clf
        .logits_rgb8(&frame(), 80, 60, &[0, 1, 2, 3], &[1.0; 4])
        .unwrap();

    let full = clf
        .score(&frame(), 80, 60, &state(vec![0, 1, 2, 3], vec![1.0; 4]))
        .unwrap();
    assert_eq!(
        full.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let p: Vec<f32> = full.iter().map(|(_, p)| *p).collect();
    assert!(close(&p, &softmax(&full_logits)), "{p:?}");

    // A cutout scores only its classes, normalised among themselves: the softmax of those
    // classes' logits, not the full distribution restricted to them.
    let cut = clf
        .score(&frame(), 80, 60, &state(vec![0, 2], vec![1.0; 4]))
        .unwrap();
    assert_eq!(cut.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [0, 2]);
    let p: Vec<f32> = cut.iter().map(|(_, p)| *p).collect();
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(
        close(&p, &softmax(&[full_logits[0], full_logits[2]])),
        "{p:?} vs logits {full_logits:?}"
    );
    assert!(p[0] > full[0].1 && p[1] > full[2].1);
}

#[test]
fn a_gain_changes_only_its_own_class() {
    let mut clf = classifier();
    let active = [0, 1, 2, 3];
    let plain = clf
        .logits_rgb8(&frame(), 80, 60, &active, &[1.0; 4])
        .unwrap();
    let gains = vec![1.0, 1.0, 1.8, 1.0];
    let gained = clf.logits_rgb8(&frame(), 80, 60, &active, &gains).unwrap();
    for c in [0, 1, 3] {
        assert_eq!(plain[c], gained[c], "class {c}: {plain:?} vs {gained:?}");
    }
    assert!(
        (plain[2] - gained[2]).abs() > 1e-4,
        "{plain:?} vs {gained:?}"
    );

    // Through the scorer: class 2's score moves, the others keep their ratios.
    let before = clf
        .score(&frame(), 80, 60, &state(active.to_vec(), vec![1.0; 4]))
        .unwrap();
    let after = clf
        .score(&frame(), 80, 60, &state(active.to_vec(), gains))
        .unwrap();
    assert!(close(
        &after.iter().map(|s| s.1).collect::<Vec<_>>(),
        &softmax(&gained)
    ));
    assert_ne!(before[2].1, after[2].1);
    let ratio = |s: &[(usize, f32)]| s[0].1 / s[3].1;
    assert!((ratio(&before) - ratio(&after)).abs() < 1e-4);
}

#[test]
fn bad_frames_and_selections_are_errors_not_panics() {
    let mut clf = classifier();
    let all = state(vec![0, 1, 2, 3], vec![1.0; 4]);
    assert!(clf.score(&frame()[..100], 80, 60, &all).is_err());
    assert!(clf
        .score(&frame(), 80, 60, &state(vec![9], vec![1.0; 4]))
        .is_err());
    assert!(clf
        .score(&frame(), 80, 60, &state(vec![2, 0], vec![1.0; 4]))
        .is_err());
    assert!(clf
        .score(&frame(), 80, 60, &state(vec![0], vec![1.0; 3]))
        .is_err());
    assert_eq!(device_choice(DeviceSpec::Cpu), DeviceChoice::Cpu);
    assert_eq!(device_choice(DeviceSpec::Auto), DeviceChoice::Auto);
    assert_eq!(device_choice(DeviceSpec::Cuda(1)), DeviceChoice::Cuda(1));
}

#[test]
fn the_vision_core_publishes_the_classifier_scores_with_the_image_header() {
    let mut clf = classifier();
    let config = VisionNodeConfig {
        top_k: 2,
        ..VisionNodeConfig::default()
    };
    assert_eq!(config.input_size_for(SIZE).unwrap(), SIZE);
    let mut core = VisionCore::new(config, cfg().class_names.clone()).unwrap();
    let header = Header {
        stamp: Time {
            sec: 12,
            nanosec: 34,
        },
        frame_id: "camera".into(),
    };
    let img = Image {
        header: header.clone(),
        height: 60,
        width: 80,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: 240,
        data: frame(),
    };
    let msg = core.on_image(&img, 0, &mut clf).unwrap().unwrap();
    assert_eq!(msg.header, header);
    assert_eq!(msg.results.len(), 2);
    // No cues: every branch runs; the two best of the full softmax, best first.
    let all = clf
        .score(&frame(), 80, 60, &state(vec![0, 1, 2, 3], vec![1.0; 4]))
        .unwrap();
    let mut best = all.clone();
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (h, (c, p)) in msg.results.iter().zip(&best) {
        assert_eq!(h.class_id, cfg().class_names[*c]);
        assert!((h.score - f64::from(*p)).abs() < 1e-6);
    }
}

#[test]
fn input_size_follows_the_model_config() {
    let mut c = VisionNodeConfig::default();
    assert_eq!(c.input_size, 0);
    assert_eq!(c.input_size_for(96).unwrap(), 96);
    c.input_size = 96;
    assert_eq!(c.input_size_for(96).unwrap(), 96);
    c.input_size = 224;
    let err = c.input_size_for(96).unwrap_err().to_string();
    assert!(err.contains("224") && err.contains("96"), "{err}");
}
