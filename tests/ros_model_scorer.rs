//! The vision node's model adapter: a small random-weight HLFP model scores frames over the
//! guidance state's active set, with its gains, as a softmax over that set.

use candle_core::{Device, Tensor};
use hlfp::guidance::{GuidanceState, Policy};
use hlfp::model::{weights, InferenceModel, ModelConfig, Selection, Variant};
use hlfp::ros::model_scorer::{candle_device, ModelScorer};
use hlfp::ros::params::DeviceSpec;
use hlfp::ros::vision_core::FrameScorer;
use hlfp::vision::preprocess::{PreprocessConfig, Preprocessor};

const SIZE: usize = 64;

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::new(Variant::HlfpSmall, 4);
    c.width = 0.125;
    c.input_size = SIZE;
    c
}

fn model() -> InferenceModel {
    let map = weights::random_tensors(&cfg(), 7, &Device::Cpu).unwrap();
    InferenceModel::from_tensors(&cfg(), &map, None, &Device::Cpu).unwrap()
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

/// The reference: preprocess, forward over `active` with `gains`, softmax, written out here.
fn reference(active: &[usize], gains: &[f32]) -> Vec<f32> {
    let mut pre = Preprocessor::new(PreprocessConfig::imagenet(SIZE)).unwrap();
    let mut buf = vec![0.0; 3 * SIZE * SIZE];
    pre.process_into(&frame(), 80, 60, &mut buf).unwrap();
    let x = Tensor::from_vec(buf, (1, 3, SIZE, SIZE), &Device::Cpu).unwrap();
    let sel = Selection::from_indices(&cfg(), active).unwrap();
    let logits: Vec<f32> = model()
        .forward(&x, &sel, gains)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let z: f32 = logits.iter().map(|l| l.exp()).sum();
    logits.iter().map(|l| l.exp() / z).collect()
}

#[test]
fn scores_are_a_softmax_over_the_active_set_with_the_gains() {
    let mut scorer = ModelScorer::new(model(), Device::Cpu).unwrap();
    assert_eq!(scorer.classes(), cfg().class_names.as_slice());

    let full = scorer
        .score(&frame(), 80, 60, &state(vec![0, 1, 2, 3], vec![1.0; 4]))
        .unwrap();
    assert_eq!(
        full.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let want = reference(&[0, 1, 2, 3], &[1.0; 4]);
    for ((_, p), w) in full.iter().zip(&want) {
        assert!((p - w).abs() < 1e-5, "{full:?} vs {want:?}");
    }

    let gains = vec![1.0, 1.0, 1.8, 1.0];
    let cut = scorer
        .score(&frame(), 80, 60, &state(vec![0, 2], gains.clone()))
        .unwrap();
    assert_eq!(cut.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [0, 2]);
    let sum: f32 = cut.iter().map(|(_, p)| p).sum();
    assert!((sum - 1.0).abs() < 1e-5);
    let want = reference(&[0, 2], &gains);
    for ((_, p), w) in cut.iter().zip(&want) {
        assert!((p - w).abs() < 1e-5, "{cut:?} vs {want:?}");
    }
    // The gain matters: without it class 2 scores differently.
    let plain = reference(&[0, 2], &[1.0; 4]);
    assert!((plain[1] - cut[1].1).abs() > 1e-6);
}

#[test]
fn bad_frames_and_selections_are_errors_not_panics() {
    let mut scorer = ModelScorer::new(model(), Device::Cpu).unwrap();
    let all = state(vec![0, 1, 2, 3], vec![1.0; 4]);
    assert!(scorer.score(&frame()[..100], 80, 60, &all).is_err());
    assert!(scorer
        .score(&frame(), 80, 60, &state(vec![9], vec![1.0; 4]))
        .is_err());
    assert!(scorer
        .score(&frame(), 80, 60, &state(vec![0], vec![1.0; 3]))
        .is_err());
    assert!(matches!(candle_device(DeviceSpec::Cpu), Ok(Device::Cpu)));
}
